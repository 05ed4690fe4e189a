//! Exports for the Ministry's reporting: every graduate with the destination in force,
//! as CSV (streamed, a page of graduates at a time) or XLSX.

use axum::{
    body::{Body, Bytes},
    extract::{Query, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    AppState,
    error::{ApiError, Problem},
    extract::Caller,
};
use crate::{
    engine::exports::{DESTINATION_COLUMNS, csv_line},
    store::ExportFilter,
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
    let header_line = format!("\u{feff}{}", csv_line(&DESTINATION_COLUMNS.map(str::to_string)));
    let engine = state.engine.clone();
    // The header, then a page at a time until a short page; a failed page ends the
    // stream with an error (the client sees a cut transfer, not a short file).
    let pages = futures::stream::unfold(Some(filter), move |next| {
        let engine = engine.clone();
        async move {
            let filter = next?;
            match engine.export_page(&filter).await {
                Ok((lines, last)) => {
                    let text: String = lines.iter().map(|l| csv_line(l)).collect();
                    let next = last.map(|after| ExportFilter {
                        after: Some(after),
                        ..filter
                    });
                    Some((Ok::<_, std::io::Error>(Bytes::from(text)), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "export page failed");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    let head = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(header_line)) });
    let body = Body::from_stream(futures::StreamExt::chain(head, pages));
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"destinations.csv\""),
    );
    Ok(response)
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
    let bytes = state.engine.destinations_xlsx(filter).await?;
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"destinations.xlsx\""),
    );
    Ok(response)
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
