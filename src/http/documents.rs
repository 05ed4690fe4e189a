//! Documents: list a case's, download one (PDF or PNG with a Chinese file name per
//! RFC 6266/5987 and an `ETag`), upload a file (multipart), and verify an agreement.

use axum::{
    Json,
    extract::{Multipart, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    AppState,
    error::{ApiError, Problem},
    extract::{Caller, if_match},
};
use crate::{
    domain::{FieldError, files},
    engine::documents::{DocumentList, Upload, Verification},
};

/// A case's documents the caller may read, and the state of its renders.
#[utoipa::path(get, path = "/api/v1/cases/{id}/documents", tag = "documents",
    responses((status = 200, body = DocumentList), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Json<DocumentList>, ApiError> {
    Ok(Json(state.engine.documents(&id, &actor).await?))
}

/// One document's content.
#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "documents",
    responses((status = 200, description = "the PDF or PNG"), (status = 304), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (doc, bytes) = state.engine.read_document(&id, &actor).await?;
    let etag = format!("\"{}\"", doc.sha256);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let disposition = if doc.content_type == "application/pdf" {
        "attachment"
    } else {
        "inline"
    };
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&doc.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(disposition, &doc.file_name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    Ok(response)
}

/// `attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded` (RFC 6266,
/// RFC 5987): browsers that know `filename*` show the Chinese name.
pub fn content_disposition(kind: &str, name: &str) -> String {
    // The ASCII fallback keeps what old clients can show: letters, digits and -._ (a
    // Chinese name becomes its number and extension, e.g. `2026-10212-000001-A.pdf`).
    let kept: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-._".contains(*c))
        .collect();
    let fallback = kept.trim_start_matches(['-', '_', '.']).to_string();
    let fallback = if fallback.is_empty() || fallback.starts_with('.') {
        format!("document{fallback}")
    } else {
        fallback
    };
    let mut encoded = String::new();
    for b in name.as_bytes() {
        match *b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => encoded.push(*b as char),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Upload a file into one of the case's upload slots (multipart: `slot`, then `file`).
/// The type is judged by content; the file fires the definition's upload transition.
#[utoipa::path(post, path = "/api/v1/cases/{id}/documents", tag = "documents",
    request_body(content_type = "multipart/form-data", description = "`slot` (text) and `file` (PDF, JPEG or PNG)"),
    responses((status = 200, description = "the case after the upload"), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            e.body_text(),
            "请以 multipart/form-data 上传文件",
        )
    })?;
    let max = state.max_upload_bytes;
    let (mut slot, mut file) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "slot" => slot = Some(field.text().await.map_err(multipart_error)?),
            "file" => {
                let name = field.file_name().unwrap_or_default().to_string();
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.len() > max {
                    return Err(too_large(max));
                }
                file = Some((name, bytes));
            }
            other => {
                let other = other.to_string();
                return Err(ApiError::invalid(vec![
                    FieldError::new(
                        "unknown_field",
                        format!("不认识的字段：{other}"),
                        format!("unknown field {other}"),
                    )
                    .with_field(other),
                ]));
            }
        }
    }
    let slot = slot.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        ApiError::invalid(vec![
            FieldError::new("required", "请指定上传项 slot", "slot is required").with_field("slot"),
        ])
    })?;
    let (name, bytes) = file.ok_or_else(|| {
        ApiError::invalid(vec![
            FieldError::new("required", "请选择要上传的文件", "file is required").with_field("file"),
        ])
    })?;
    let content_type = files::sniff(&bytes).map_err(|problem| {
        let status = if problem == files::FileProblem::WrongType {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let e = problem.field_error();
        ApiError::new(status, "invalid-file", e.en.clone(), e.zh.clone()).with_errors(vec![e])
    })?;
    let upload = Upload {
        slot: slot.trim().to_string(),
        file_name: files::sanitise_file_name(&name, content_type),
        content_type,
        bytes: bytes.to_vec(),
    };
    let body = state.engine.upload(&actor, &id, upload, if_match(&headers)?).await?;
    Ok((StatusCode::OK, Json(body)).into_response())
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        format!("the file is larger than {} MB", max / (1024 * 1024)),
        format!("文件超过 {} MB 的上限", max / (1024 * 1024)),
    )
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            e.body_text(),
            "上传内容超过大小上限",
        );
    }
    ApiError::malformed(format!("the multipart body cannot be read: {}", e.body_text()))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct VerifyQuery {
    /// The verification code printed beside the number.
    pub code: String,
}

/// Whether an agreement is genuine (no login): only the parties' names, the date and the state.
#[utoipa::path(get, path = "/api/v1/verify/{number}", tag = "documents", params(VerifyQuery),
    responses((status = 200, body = Verification)))]
pub async fn verify(
    State(state): State<AppState>,
    Path(number): Path<String>,
    query: Result<Query<VerifyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Verification>, ApiError> {
    let Query(q) = query.map_err(|_| {
        ApiError::invalid(vec![
            FieldError::new("required", "请提供核验码 code", "the code is required").with_field("code"),
        ])
    })?;
    Ok(Json(state.engine.verify(&number, &q.code).await?))
}
