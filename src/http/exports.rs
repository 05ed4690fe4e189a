//! Exports: for the Ministry's reporting every graduate with the destination in force,
//! and the caller's case lists, as CSV (streamed, a page at a time) or XLSX (written to
//! a temporary file a page at a time, then streamed).

use axum::{
    body::{Body, Bytes},
    extract::{Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use utoipa::IntoParams;

use super::{
    AppState,
    cases::{ListQuery, case_filter, resume_after},
    error::{ApiError, Problem},
    extract::Caller,
};
use crate::{
    domain::FieldError,
    engine::{
        Actor,
        exports::{CASE_COLUMNS, DESTINATION_COLUMNS, case_line, csv_line, xlsx_file},
        service::{Engine, Result as EngineResult},
    },
    store::{CaseFilter, ExportFilter},
};

/// Graduates read per page while streaming.
const PAGE: i64 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// One school (a platform admin; school staff always get their own). Absent: every school.
    pub school: Option<String>,
    /// Only graduates of this year.
    #[param(minimum = 1900, maximum = 9999)]
    pub graduation_year: Option<i32>,
}

/// Every graduate in scope with the destination record in force, as CSV (UTF-8 with a
/// byte-order mark, CRLF lines) in the Ministry's columns and codes: 学号, 姓名, …,
/// 毕业去向代码, 单位名称, 统一社会信用代码, 单位性质代码, 单位行业代码, 单位所在地代码, 工作职位类别代码,
/// 审核人 (the person and role who approved it), 审核时间.
#[utoipa::path(get, path = "/api/v1/exports/destinations.csv", operation_id = "export_destinations_csv", tag = "statistics",
    params(ExportQuery),
    responses((status = 200, content_type = "text/csv", body = String, description = "the export, streamed"),
        (status = 403, body = Problem, description = "neither school staff nor a platform admin"),
        (status = 422, body = Problem, description = "`graduation_year` out of range")),
    security(("bearer" = [])))]
pub async fn destinations_csv(
    State(state): State<AppState>,
    Caller(actor): Caller,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let filter = export_filter(&actor, query)?;
    Ok(csv_response(
        "destinations.csv",
        &DESTINATION_COLUMNS,
        destination_pages(state.engine.clone(), filter),
    ))
}

/// The same export as an XLSX workbook: one sheet, 毕业去向, with the same columns; every
/// cell is text, so codes keep their leading zeros.
#[utoipa::path(get, path = "/api/v1/exports/destinations.xlsx", operation_id = "export_destinations_xlsx", tag = "statistics",
    params(ExportQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>,
            description = "the workbook"),
        (status = 403, body = Problem, description = "neither school staff nor a platform admin"),
        (status = 422, body = Problem, description = "`graduation_year` out of range")),
    security(("bearer" = [])))]
pub async fn destinations_xlsx(
    State(state): State<AppState>,
    Caller(actor): Caller,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let filter = export_filter(&actor, query)?;
    let pages = destination_pages(state.engine.clone(), filter);
    xlsx_response("destinations.xlsx", "毕业去向", &DESTINATION_COLUMNS, pages).await
}

/// The caller's cases as `GET /api/v1/cases` lists them, with the same filters and sort,
/// every page, as CSV (UTF-8 with a byte-order mark, CRLF lines): 案件编号, 流程, 状态代码,
/// 状态, 学号, 姓名, 院系, 单位名称, 职位, 学校代码, 截止时间, 进入当前状态时间, 最后更新时间.
/// `limit` and `cursor` page a screen, not an export, and are refused.
#[utoipa::path(get, path = "/api/v1/exports/cases.csv", operation_id = "export_cases_csv", tag = "cases",
    params(ListQuery),
    responses((status = 200, content_type = "text/csv", body = String, description = "the export, streamed"),
        (status = 422, body = Problem, description = "a filter out of range, or `limit`/`cursor` given")),
    security(("bearer" = [])))]
pub async fn cases_csv(
    State(state): State<AppState>,
    Caller(actor): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let filter = case_export_filter(&state, query)?;
    Ok(csv_response(
        "cases.csv",
        &CASE_COLUMNS,
        case_pages(state.engine.clone(), actor, filter),
    ))
}

/// The same case list as an XLSX workbook: one sheet, 案件, with the same columns.
#[utoipa::path(get, path = "/api/v1/exports/cases.xlsx", operation_id = "export_cases_xlsx", tag = "cases",
    params(ListQuery),
    responses((status = 200, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>,
            description = "the workbook"),
        (status = 422, body = Problem, description = "a filter out of range, or `limit`/`cursor` given")),
    security(("bearer" = [])))]
pub async fn cases_xlsx(
    State(state): State<AppState>,
    Caller(actor): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let filter = case_export_filter(&state, query)?;
    let pages = case_pages(state.engine.clone(), actor, filter);
    xlsx_response("cases.xlsx", "案件", &CASE_COLUMNS, pages).await
}

/// A case list query checked for an export: every page from the first.
fn case_export_filter(
    state: &AppState,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<CaseFilter, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    for (field, given) in [("limit", q.limit.is_some()), ("cursor", q.cursor.is_some())] {
        if given {
            return Err(ApiError::invalid(vec![
                FieldError::new(
                    "not-for-exports",
                    "导出包含全部结果，不分页",
                    "an export holds every result; it is not paged",
                )
                .with_field(field),
            ]));
        }
    }
    case_filter(state, q, PAGE)
}

/// The destination export's lines, a page of graduates at a time.
fn destination_pages(engine: Engine, filter: ExportFilter) -> impl Stream<Item = EngineResult<Vec<Vec<String>>>> {
    futures::stream::try_unfold(Some(filter), move |next| {
        let engine = engine.clone();
        async move {
            let Some(filter) = next else { return Ok(None) };
            let (lines, last) = engine.export_page(&filter).await?;
            let next = last.map(|after| ExportFilter {
                after: Some(after),
                ..filter
            });
            Ok(Some((lines, next)))
        }
    })
}

/// The case export's lines, a page of the caller's cases at a time, as the list pages them.
fn case_pages(engine: Engine, actor: Actor, filter: CaseFilter) -> impl Stream<Item = EngineResult<Vec<Vec<String>>>> {
    futures::stream::try_unfold(Some(filter), move |next| {
        let (engine, actor) = (engine.clone(), actor.clone());
        async move {
            let Some(filter) = next else { return Ok(None) };
            let cases = engine.list(&actor, filter.clone()).await?;
            let next = (cases.len() as i64 == filter.limit)
                .then(|| cases.last().map(|last| resume_after(last, filter.by_waiting)))
                .flatten()
                .map(|after| CaseFilter {
                    after: Some(after),
                    ..filter
                });
            Ok(Some((cases.iter().map(case_line).collect(), next)))
        }
    })
}

/// A CSV download: the header line, then each page's lines as they are read. A failed page
/// ends the stream with an error (the client sees a cut transfer, not a short file).
fn csv_response(
    file_name: &'static str,
    columns: &[&str],
    pages: impl Stream<Item = EngineResult<Vec<Vec<String>>>> + Send + 'static,
) -> Response {
    let header_line = format!(
        "\u{feff}{}",
        csv_line(&columns.iter().map(|c| c.to_string()).collect::<Vec<_>>())
    );
    let head = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(header_line)) });
    let lines = pages.map(|page| match page {
        Ok(lines) => Ok(Bytes::from(lines.iter().map(|l| csv_line(l)).collect::<String>())),
        Err(e) => {
            tracing::error!(error = %e, "export page failed");
            Err(std::io::Error::other(e.to_string()))
        }
    });
    download(
        Body::from_stream(head.chain(lines)),
        "text/csv; charset=utf-8",
        file_name,
    )
}

/// An XLSX download: the workbook is written to an unlinked temporary file, then sent
/// from it a chunk at a time.
async fn xlsx_response(
    file_name: &'static str,
    sheet_name: &str,
    columns: &[&str],
    pages: impl Stream<Item = EngineResult<Vec<Vec<String>>>>,
) -> Result<Response, ApiError> {
    let file = tokio::fs::File::from_std(xlsx_file(sheet_name, columns, pages).await?);
    let chunks = futures::stream::try_unfold(file, |mut file| async move {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = file.read(&mut chunk).await?;
        chunk.truncate(n);
        Ok::<_, std::io::Error>((n > 0).then(|| (Bytes::from(chunk), file)))
    });
    Ok(download(
        Body::from_stream(chunks),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        file_name,
    ))
}

fn download(body: Body, content_type: &'static str, file_name: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    response
}

/// The export's scope for the caller: school staff get their own school.
fn export_filter(
    actor: &crate::engine::Actor,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<ExportFilter, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    let school = super::statistics::reporting_scope(
        actor,
        q.school,
        q.graduation_year,
        (
            "only school staff and platform admins export",
            "仅学校工作人员和平台管理员可导出",
        ),
    )?;
    Ok(ExportFilter {
        school,
        graduating: q.graduation_year.map(|y| format!("{y:04}")),
        after: None,
        limit: PAGE,
    })
}
