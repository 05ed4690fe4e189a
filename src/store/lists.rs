//! Lists people work through: cases with what a row on screen needs, and a school's
//! graduates. Filters are bound values; pages are keyset cursors, so page 1,000 costs
//! what page 1 costs (the indexes are in `migrations/20261212000003_lists.sql`).

use super::{Result, Tx, on_tx};

/// Which cases a listing returns. The engine fills the scope from the caller.
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    pub workflow: Option<String>,
    /// Any of these states (none: every state).
    pub states: Vec<String>,
    pub student: Option<String>,
    pub employer: Option<String>,
    pub school: Option<String>,
    /// The student's college.
    pub college: Option<String>,
    /// Text in the student's name or number or the employer's name (case-insensitive).
    pub text: Option<String>,
    /// Only cases that entered their state before this moment (epoch ms).
    pub entered_before: Option<i64>,
    /// Longest waiting first (by the time the case entered its state), instead of
    /// by creation.
    pub by_waiting: bool,
    /// Cases after this one in the order asked: its id, and for `by_waiting` the time it
    /// entered its state.
    pub after: Option<(Option<i64>, String)>,
    pub limit: i64,
}

/// A case as a list row shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseListRow {
    pub id: String,
    pub workflow: String,
    pub workflow_hash: String,
    pub state: String,
    pub version: i64,
    pub data: String,
    pub student_id: String,
    pub employer_id: Option<String>,
    pub school_id: String,
    pub updated_at: i64,
    pub state_entered_at: i64,
    pub student_name: Option<String>,
    pub student_number: Option<String>,
    pub college: Option<String>,
    pub employer_name: Option<String>,
    /// The earliest pending timer that fires a transition: the case's deadline.
    pub deadline: Option<i64>,
}

/// A graduate as a list row shows them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GraduateRow {
    pub id: String,
    pub school_id: Option<String>,
    pub name: String,
    pub student_number: Option<String>,
    pub college: Option<String>,
    pub major: Option<String>,
    pub education_level: Option<String>,
    pub graduation_date: Option<String>,
    /// The category of the destination record in force, if any.
    pub category_code: Option<String>,
}

/// Which graduates a listing returns.
#[derive(Debug, Clone, Default)]
pub struct GraduateFilter {
    pub school: Option<String>,
    pub college: Option<String>,
    pub without_destination: bool,
    pub after: Option<String>,
    pub limit: i64,
}

pub(super) enum Bind {
    Text(String),
    Int(i64),
}

/// A statement's conditions and their values, numbered `$1…` in order.
#[derive(Default)]
pub(super) struct Conditions {
    pub(super) sql: Vec<String>,
    pub(super) binds: Vec<Bind>,
}

impl Conditions {
    /// Adds `condition`, in which `?` stands for the next value.
    pub(super) fn add(&mut self, condition: &str, value: Bind) {
        self.binds.push(value);
        self.sql.push(condition.replace('?', &format!("${}", self.binds.len())));
    }

    pub(super) fn text(&mut self, condition: &str, value: &str) {
        self.add(condition, Bind::Text(value.to_string()));
    }

    pub(super) fn next(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.binds.len())
    }

    pub(super) fn where_clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.sql.join(" AND "))
        }
    }
}

/// `%text%` for `LIKE … ESCAPE '\'`, with the user's `%`, `_` and `\` taken literally.
fn like_pattern(text: &str) -> String {
    let escaped: String = text
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("%{escaped}%")
}

/// Runs a statement with its numbered values on either backend.
macro_rules! fetch_all_with {
    ($tx:expr, $row:ty, $sql:expr, $binds:expr) => {
        on_tx!($tx, |c| {
            let mut q = sqlx::query_as::<_, $row>(sqlx::AssertSqlSafe($sql));
            for b in $binds {
                q = match b {
                    Bind::Text(s) => q.bind(s.clone()),
                    Bind::Int(i) => q.bind(*i),
                };
            }
            q.fetch_all(c).await
        })
    };
}
pub(super) use fetch_all_with;

impl Tx {
    /// Cases matching `f`, at most `f.limit`, in the order asked.
    pub async fn cases(&mut self, f: &CaseFilter) -> Result<Vec<CaseListRow>> {
        let mut w = Conditions::default();
        for (column, value) in [
            ("c.workflow", &f.workflow),
            ("c.student_id", &f.student),
            ("c.employer_id", &f.employer),
            ("c.school_id", &f.school),
            ("s.college", &f.college),
        ] {
            if let Some(v) = value {
                w.text(&format!("{column} = ?"), v);
            }
        }
        if !f.states.is_empty() {
            let marks: Vec<String> = f.states.iter().map(|s| w.next(Bind::Text(s.clone()))).collect();
            w.sql.push(format!("c.state IN ({})", marks.join(", ")));
        }
        if let Some(text) = &f.text {
            let p = w.next(Bind::Text(like_pattern(text)));
            // The matching people first, then their cases: each LIKE is over one column of
            // `parties`, which PostgreSQL answers from a trigram index.
            w.sql.push(format!(
                "(c.student_id IN (SELECT p.id FROM parties p WHERE p.kind = 'student' \
                   AND (LOWER(p.name) LIKE {p} ESCAPE '\\' OR LOWER(p.student_number) LIKE {p} ESCAPE '\\')) \
                 OR c.employer_id IN (SELECT p.id FROM parties p WHERE p.kind = 'employer' \
                   AND LOWER(p.name) LIKE {p} ESCAPE '\\'))"
            ));
        }
        if let Some(before) = f.entered_before {
            w.add("c.state_entered_at < ?", Bind::Int(before));
        }
        let order = if f.by_waiting {
            if let Some((at, id)) = &f.after {
                let at = w.next(Bind::Int(at.unwrap_or_default()));
                let id = w.next(Bind::Text(id.clone()));
                w.sql.push(format!(
                    "(c.state_entered_at > {at} OR (c.state_entered_at = {at} AND c.id > {id}))"
                ));
            }
            "c.state_entered_at, c.id"
        } else {
            if let Some((_, id)) = &f.after {
                w.text("c.id > ?", id);
            }
            "c.id"
        };
        let limit = w.next(Bind::Int(f.limit));
        let sql = format!(
            "SELECT c.id, c.workflow, c.workflow_hash, c.state, c.version, c.data, c.student_id, c.employer_id,
                    c.school_id, c.updated_at, c.state_entered_at,
                    s.name AS student_name, s.student_number, s.college, e.name AS employer_name,
                    (SELECT MIN(t.due_at) FROM timers t WHERE t.case_id = c.id AND t.status = 'pending' AND t.fire <> '') AS deadline
             FROM cases c
             LEFT JOIN parties s ON s.kind = 'student' AND s.id = c.student_id
             LEFT JOIN parties e ON e.kind = 'employer' AND e.id = c.employer_id
             {} ORDER BY {order} LIMIT {limit}",
            w.where_clause()
        );
        Ok(fetch_all_with!(self, CaseListRow, sql.as_str(), &w.binds)?)
    }

    /// Graduates matching `f`, by id, at most `f.limit`.
    pub async fn graduates(&mut self, f: &GraduateFilter) -> Result<Vec<GraduateRow>> {
        let mut w = Conditions::default();
        w.sql.push("s.kind = 'student'".into());
        if let Some(school) = &f.school {
            w.text("s.school_id = ?", school);
        }
        if let Some(college) = &f.college {
            w.text("s.college = ?", college);
        }
        if f.without_destination {
            w.sql.push("d.id IS NULL".into());
        }
        if let Some(after) = &f.after {
            w.text("s.id > ?", after);
        }
        let limit = w.next(Bind::Int(f.limit));
        let sql = format!(
            "SELECT s.id, s.school_id, s.name, s.student_number, s.college, s.major, s.education_level,
                    s.graduation_date, d.category_code
             FROM parties s
             LEFT JOIN destinations d ON d.student_id = s.id AND d.status = 'in_force'
             {} ORDER BY s.id LIMIT {limit}",
            w.where_clause()
        );
        Ok(fetch_all_with!(self, GraduateRow, sql.as_str(), &w.binds)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("Li_100%"), "%li\\_100\\%%");
    }

    #[test]
    fn conditions_number_their_values_in_order() {
        let mut w = Conditions::default();
        w.text("a = ?", "x");
        w.add("b < ?", Bind::Int(3));
        assert_eq!(w.where_clause(), "WHERE a = $1 AND b < $2");
    }
}

/// Which graduates an export covers, a page at a time.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    pub school: Option<String>,
    /// Graduates whose `graduation_date` starts with this (a year).
    pub graduating: Option<String>,
    pub after: Option<String>,
    pub limit: i64,
}

/// A graduate with the destination record in force (if any), the employer of the case
/// that wrote it, and who approved it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    pub id: String,
    pub school_id: Option<String>,
    pub name: String,
    /// The student's record (JSON).
    pub student: String,
    pub category_code: Option<String>,
    pub unit_name: Option<String>,
    pub location: Option<String>,
    /// The case data the record was made from (JSON).
    pub record: Option<String>,
    /// The version of the workflow that case runs: where its data keeps the unit.
    pub workflow_hash: Option<String>,
    pub approved_at: Option<i64>,
    /// The synced record of the case's employer (JSON), when it has one.
    pub employer: Option<String>,
    /// The history row of the approval: role label and person.
    pub approver: Option<String>,
    pub approver_sub: Option<String>,
    pub approver_name: Option<String>,
    /// The transition the approver fired (the role it acted in is its definition's).
    pub approval: Option<String>,
}

impl Tx {
    /// A page of graduates for an export, by id.
    pub async fn export_rows(&mut self, f: &ExportFilter) -> Result<Vec<ExportRow>> {
        let mut w = Conditions::default();
        w.sql.push("s.kind = 'student'".into());
        if let Some(school) = &f.school {
            w.text("s.school_id = ?", school);
        }
        if let Some(year) = &f.graduating {
            w.text("s.graduation_date LIKE ?", &format!("{year}%"));
        }
        if let Some(after) = &f.after {
            w.text("s.id > ?", after);
        }
        let limit = w.next(Bind::Int(f.limit));
        let sql = format!(
            "SELECT s.id, s.school_id, s.name, s.data AS student, d.category_code, d.unit_name, d.location,
                    d.data AS record, c.workflow_hash, d.approved_at, e.data AS employer,
                    h.actor AS approver, h.actor_sub AS approver_sub, h.actor_name AS approver_name, h.transition AS approval
             FROM parties s
             LEFT JOIN destinations d ON d.student_id = s.id AND d.status = 'in_force'
             LEFT JOIN cases c ON c.id = d.case_id
             LEFT JOIN parties e ON e.kind = 'employer' AND e.id = c.employer_id
             LEFT JOIN history h ON h.case_id = d.case_id
                  AND h.seq = (SELECT MAX(h2.seq) FROM history h2 WHERE h2.case_id = d.case_id AND h2.at <= d.approved_at)
             {} ORDER BY s.id LIMIT {limit}",
            w.where_clause()
        );
        Ok(fetch_all_with!(self, ExportRow, sql.as_str(), &w.binds)?)
    }
}
