//! Exports for the Ministry's reporting: every graduate with the destination record in
//! force, in the columns and codes of the national graduate employment system
//! (REFERENCE.md §1–§3), a page at a time so a province-wide export is never held whole;
//! and case lists, a row as the review inbox shows it.

use serde_json::Value;

use super::{
    service::{Engine, Result},
    shown_as, shown_in,
    view::CaseSummary,
};
use crate::{
    definition::Definition,
    domain::Reference,
    store::{ExportFilter, ExportRow, StoreError, from_millis},
};

/// The columns, in order: the Ministry's names. Coded columns hold codes.
pub const DESTINATION_COLUMNS: [&str; 23] = [
    "学号",
    "姓名",
    "性别",
    "身份证号",
    "学校代码",
    "院系",
    "专业",
    "学历代码",
    "学制",
    "培养方式代码",
    "政治面貌代码",
    "毕业时间",
    "生源地代码",
    "毕业去向代码",
    "毕业去向",
    "单位名称",
    "统一社会信用代码",
    "单位性质代码",
    "单位行业代码",
    "单位所在地代码",
    "工作职位类别代码",
    "审核人",
    "审核时间",
];

/// The columns of a case list export: what a row of the review inbox shows.
pub const CASE_COLUMNS: [&str; 13] = [
    "案件编号",
    "流程",
    "状态代码",
    "状态",
    "学号",
    "姓名",
    "院系",
    "单位名称",
    "职位",
    "学校代码",
    "截止时间",
    "进入当前状态时间",
    "最后更新时间",
];

/// A case list row as a line of [`CASE_COLUMNS`]; times in Beijing time.
pub fn case_line(c: &CaseSummary) -> Vec<String> {
    let time = |text: &str| {
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| beijing(t.with_timezone(&chrono::Utc)))
            .unwrap_or_default()
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    vec![
        c.id.clone(),
        c.workflow_title.clone(),
        c.state.clone(),
        c.state_title.clone(),
        text(&c.student_number),
        text(&c.student_name),
        text(&c.college),
        text(&c.employer_name),
        text(&c.position),
        c.school_id.clone(),
        c.deadline.as_deref().map(time).unwrap_or_default(),
        time(&c.waiting_since),
        time(&c.updated_at),
    ]
}

/// A moment as an export writes it: Beijing time to the minute.
fn beijing(t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// An export as an XLSX workbook of one sheet, `columns` then the lines of each page as
/// they come, every cell text (codes keep their leading zeros). Rows go to the writer's
/// temporary files and the workbook to a temporary file, already unlinked when it is
/// returned: nothing of a province-wide export is held in memory, and nothing stays on
/// disk once the file is closed.
pub async fn xlsx_file(
    sheet_name: &str,
    columns: &[&str],
    pages: impl futures::Stream<Item = Result<Vec<Vec<String>>>>,
) -> Result<std::fs::File> {
    let xlsx_error = |e: rust_xlsxwriter::XlsxError| StoreError::Export(format!("the xlsx writer failed: {e}"));
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet_with_constant_memory().map_err(xlsx_error)?;
    sheet.set_name(sheet_name).map_err(xlsx_error)?;
    for (col, name) in columns.iter().enumerate() {
        sheet.write_string(0, col as u16, *name).map_err(xlsx_error)?;
    }
    let mut row = 1u32;
    let mut pages = std::pin::pin!(pages);
    while let Some(lines) = futures::StreamExt::next(&mut pages).await {
        for line in lines? {
            for (col, value) in line.iter().enumerate() {
                if !value.is_empty() {
                    sheet.write_string(row, col as u16, value).map_err(xlsx_error)?;
                }
            }
            row += 1;
        }
    }
    let path = std::env::temp_dir().join(format!("gradsign-export-{}.xlsx", uuid::Uuid::now_v7()));
    let file = tokio::task::spawn_blocking(move || -> std::result::Result<std::fs::File, StoreError> {
        let saved = workbook.save(&path).map_err(xlsx_error);
        let file = saved.and_then(|()| {
            std::fs::File::open(&path).map_err(|e| StoreError::Export(format!("the workbook file: {e}")))
        });
        // Unlinked at once: the open file stays readable until it is closed.
        let _ = std::fs::remove_file(&path);
        file
    })
    .await
    .map_err(|e| StoreError::Export(format!("the xlsx writer stopped: {e}")))??;
    Ok(file)
}

impl Engine {
    /// One page of the export (at most `filter.limit` graduates, after `filter.after`),
    /// as lines of [`DESTINATION_COLUMNS`], and the id to continue after.
    pub async fn export_page(&self, filter: &ExportFilter) -> Result<(Vec<Vec<String>>, Option<String>)> {
        let mut tx = self.db.read().await?;
        let rows = tx.export_rows(filter).await?;
        let mut lines = Vec::with_capacity(rows.len());
        for row in &rows {
            let def = match &row.workflow_hash {
                Some(hash) => Some(self.definition_of(&mut tx, hash).await?),
                None => None,
            };
            lines.push(line(row, def.as_deref()));
        }
        tx.rollback().await?;
        let last = (rows.len() as i64 == filter.limit)
            .then(|| rows.last().map(|r| r.id.clone()))
            .flatten();
        Ok((lines, last))
    }
}

/// A graduate's line. A unit's codes come from the registration's fields, else the
/// employer typed into the case, else the employer's synced record — the first two where
/// the definition of the record's case keeps them (`def`: its field of kind `destination`,
/// its `[typed_parties]`).
fn line(row: &ExportRow, def: Option<&Definition>) -> Vec<String> {
    let parse = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .unwrap_or(Value::Null)
    };
    let student = parse(&Some(row.student.clone()));
    let record = parse(&row.record);
    let employer = parse(&row.employer);
    let s = |key: &str| student.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let unit = |names: &[&str]| -> String {
        let registration = def
            .and_then(|d| d.destination_field.as_deref())
            .and_then(|path| crate::definition::data_at(path, &record))
            .and_then(|r| r.get("fields"));
        let typed = def
            .and_then(|d| d.typed_party("employer", &record))
            .map(|typed| Value::Object(typed.clone()));
        let sources = [registration, typed.as_ref(), Some(&employer)];
        sources
            .into_iter()
            .flatten()
            .find_map(|source| names.iter().find_map(|n| source.get(*n).and_then(Value::as_str)))
            .unwrap_or_default()
            .to_string()
    };
    let reference = Reference::builtin();
    let code = row.category_code.clone().unwrap_or_default();
    let category = reference
        .category(code.get(..2).unwrap_or(&code))
        .map(|c| c.name_zh.clone())
        .unwrap_or_default();
    let approver = row
        .approver
        .as_deref()
        .map(|label| {
            let (sub, name) = (row.approver_sub.as_deref(), row.approver_name.as_deref());
            match (def, &row.approval) {
                (Some(def), Some(transition)) => shown_in(def, transition, label, sub, name),
                _ => shown_as(label, sub, name),
            }
        })
        .unwrap_or_default();
    let approved = row.approved_at.map(|ms| beijing(from_millis(ms))).unwrap_or_default();
    // Codes as the lists keep them, whichever spelling a party record holds.
    let coded = |list: &str, value: String| {
        reference
            .code_list(list)
            .and_then(|l| l.lookup(&value))
            .map(|e| e.code.clone())
            .unwrap_or(value)
    };
    vec![
        s("student_number"),
        row.name.clone(),
        s("gender"),
        s("id_number"),
        row.school_id.clone().unwrap_or_default(),
        s("college"),
        s("major"),
        s("education_level"),
        s("study_years"),
        s("training_mode"),
        s("political_status"),
        s("graduation_date"),
        s("origin_region"),
        code,
        category,
        row.unit_name.clone().unwrap_or_default(),
        unit(&["credit_code"]),
        coded("unit_nature", unit(&["unit_nature", "nature"])),
        coded("industry", unit(&["industry"])),
        unit(&["location"]),
        coded("job_category", unit(&["job_category"])),
        approver,
        approved,
    ]
}

/// A CSV field: quoted when it holds a comma, quote or line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
pub fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// A CSV line with its CRLF.
pub fn csv_line(fields: &[String]) -> String {
    let mut out = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=1+1"), "'=1+1");
        assert_eq!(csv_line(&["1".into(), "x\ny".into()]), "1,\"x\ny\"\r\n");
    }
}
