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
    engine::{
        documents::{DocumentList, Upload, Verification},
        view::CaseView,
    },
};

/// A case's documents the caller may read, and the state of its renders.
#[utoipa::path(get, path = "/api/v1/cases/{id}/documents", operation_id = "list_documents", tag = "documents",
    params(("id" = String, Path, description = "the case")),
    responses((status = 200, body = DocumentList, description = "the documents and renders"), (status = 403, body = Problem, description = "not the caller's case")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Json<DocumentList>, ApiError> {
    Ok(Json(state.engine.documents(&id, &actor).await?))
}

/// One document's content.
#[utoipa::path(get, path = "/api/v1/documents/{id}", operation_id = "get_document", tag = "documents",
    params(("id" = String, Path, description = "the document"),
        ("If-None-Match" = Option<String>, Header, description = "the `ETag` of a copy held: 304 when it is current")),
    responses((status = 200, description = "the PDF or PNG", content(("application/pdf",), ("image/png",), ("image/jpeg",))),
        (status = 304, description = "the copy held is current"),
        (status = 403, body = Problem, description = "not the caller's case"),
        (status = 409, body = Problem, description = "not readable by the caller in the case's state")),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (doc, bytes) = state.engine.read_document(&id, &actor).await?;
    Ok(document_response(&doc, bytes, &headers))
}

/// A document's bytes as an answer: its type, a download name (PDFs as attachments,
/// images inline), its hash as `ETag` (304 for a current copy), private caching.
pub(super) fn document_response(
    doc: &crate::engine::documents::DocumentView,
    bytes: Vec<u8>,
    headers: &HeaderMap,
) -> Response {
    let etag = format!("\"{}\"", doc.sha256);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
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
    if let Ok(v) = HeaderValue::from_str(&content_disposition(disposition, &doc.file_name, &doc.slot)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    response
}

/// `attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded` (RFC 6266,
/// RFC 5987): browsers that know `filename*` show the Chinese name.
pub fn content_disposition(kind: &str, name: &str, slot: &str) -> String {
    let mut encoded = String::new();
    for b in name.as_bytes() {
        match *b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => encoded.push(*b as char),
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    format!(
        "{kind}; filename=\"{}\"; filename*=UTF-8''{encoded}",
        ascii_file_name(name, slot)
    )
}

/// The name old clients show: the name itself when it is plain ASCII (letters, digits,
/// `-._`), else the slot in English with the name's ASCII part, e.g.
/// `agreement-2026-10212-000001-A.pdf` for `就业协议书-李明-2026-10212-000001-A.pdf`.
fn ascii_file_name(name: &str, slot: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    let ext: String = ext.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let dotted = |stem: String| if ext.is_empty() { stem } else { format!("{stem}.{ext}") };
    if !name.is_empty() && name.chars().all(plain) && !name.starts_with('.') {
        return name.to_string();
    }
    let mut ascii = String::new();
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() {
            ascii.push(c);
        } else if !ascii.is_empty() && !ascii.ends_with('-') {
            ascii.push('-');
        }
    }
    let ascii = ascii.trim_end_matches('-');
    let prefix: String = slot
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let prefix = if prefix.trim_matches('-').is_empty() {
        "document".to_string()
    } else {
        prefix
    };
    if ascii.is_empty() {
        dotted(prefix)
    } else {
        dotted(format!("{prefix}-{ascii}"))
    }
}

/// Upload a file into one of the case's upload slots (multipart: `slot`, then `file`).
/// The type is judged by content and must agree with the type the part declares; the
/// file fires the definition's upload transition. Who may upload is checked before the
/// body is read.
#[utoipa::path(post, path = "/api/v1/cases/{id}/documents", operation_id = "upload_document", tag = "documents",
    params(("id" = String, Path, description = "the case"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"?[0-9]{1,18}"?)$"#,
            description = "the case version, e.g. \"3\"; a stale one is refused with 412")),
    request_body(content_type = "multipart/form-data", content = UploadForm, description = "`slot` (text) and `file` (PDF, JPEG or PNG)"),
    responses((status = 200, body = CaseView, description = "the case after the upload"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 412, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    state.engine.may_upload(&actor, &id).await?;
    let if_match = if_match(&headers)?;
    let multipart = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            e.body_text(),
            "请以 multipart/form-data 上传文件",
        )
    })?;
    let (slot, file) = read_form(multipart, state.max_upload_bytes).await?;
    let content_type = files::sniff(&file.bytes).map_err(file_problem)?;
    if let Some(declared) = &file.declared
        && !files::declared_type_agrees(declared, content_type)
    {
        return Err(file_problem(files::FileProblem::Mismatch {
            declared: declared.clone(),
            found: content_type,
        }));
    }
    let upload = Upload {
        slot,
        file_name: files::sanitise_file_name(&file.name, content_type),
        content_type,
        bytes: file.bytes.to_vec(),
    };
    let body = state.engine.upload(&actor, &id, upload, if_match).await?;
    Ok((StatusCode::OK, Json(body)).into_response())
}

/// The multipart form of an upload, as documented (only its schema is used).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The upload slot, e.g. `stamped_agreement` or `proof`.
    slot: String,
    /// The file: PDF, JPEG or PNG.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// The file part of an upload form.
struct FilePart {
    name: String,
    /// The part's own `Content-Type`, unless it says nothing (`application/octet-stream`).
    declared: Option<String>,
    bytes: axum::body::Bytes,
}

/// Reads `slot` and `file`; any other part is refused by name.
async fn read_form(mut multipart: Multipart, max: usize) -> Result<(String, FilePart), ApiError> {
    let (mut slot, mut file) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "slot" => slot = Some(field.text().await.map_err(multipart_error)?),
            "file" => {
                let name = field.file_name().unwrap_or_default().to_string();
                let declared = field
                    .content_type()
                    .map(|t| t.trim().to_ascii_lowercase())
                    .filter(|t| !t.is_empty() && t != "application/octet-stream");
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if bytes.len() > max {
                    return Err(too_large(max));
                }
                file = Some(FilePart { name, declared, bytes });
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
    let slot = slot
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(vec![
                FieldError::new("required", "请指定上传项 slot", "slot is required").with_field("slot"),
            ])
        })?;
    let file = file.ok_or_else(|| {
        ApiError::invalid(vec![
            FieldError::new("required", "请选择要上传的文件", "file is required").with_field("file"),
        ])
    })?;
    Ok((slot, file))
}

/// A refused file: `415` when it is not a type we take (or not the type it says it
/// is), `422` when it is one but broken or empty.
fn file_problem(problem: files::FileProblem) -> ApiError {
    let status = match problem {
        files::FileProblem::WrongType | files::FileProblem::Mismatch { .. } | files::FileProblem::Active => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let e = problem.field_error();
    ApiError::new(status, "invalid-file", e.en.clone(), e.zh.clone()).with_errors(vec![e])
}

fn too_large(max: usize) -> ApiError {
    let limit = files::readable_size(max);
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        format!("the file is larger than {limit}"),
        format!("文件超过 {limit} 的上限"),
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
#[into_params(parameter_in = Query)]
pub struct VerifyQuery {
    /// The verification code printed beside the number.
    pub code: String,
    /// The case version the scanned copy was rendered from (the QR code carries it), so the
    /// answer can say whether that copy was superseded by an amendment.
    pub v: Option<i64>,
}

/// Whether an agreement is genuine (no login): only the parties' names, the date and what
/// the agreement is now. Limited per client address (`GRADSIGN_VERIFY_PER_MINUTE`).
#[utoipa::path(get, path = "/api/v1/verify/{number}", operation_id = "verify_agreement", tag = "documents",
    params(("number" = String, Path, description = "the agreement number, e.g. `2026-10212-000001-A`"), VerifyQuery),
    responses((status = 200, body = Verification, description = "whether the number and code are genuine, and what the agreement is now"),
        (status = 422, body = Problem, description = "the code is missing"),
        (status = 429, body = Problem, description = "too many verifications from this address this minute; `Retry-After` says when to try again",
            headers(("Retry-After" = u64, description = "seconds to wait")))))]
pub async fn verify(
    State(state): State<AppState>,
    client: Option<axum::Extension<super::server::ClientAddr>>,
    Path(number): Path<String>,
    headers: HeaderMap,
    query: Result<Query<VerifyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(q) = query.map_err(|_| {
        ApiError::invalid(vec![
            FieldError::new(
                "required",
                "请提供核验码 code（及可选的版本 v，整数）",
                "the code is required (and v, if given, is a whole number)",
            )
            .with_field("code"),
        ])
    })?;
    if let Some(refused) = rate_limit(&state, "verify", client).await? {
        return Ok(refused);
    }
    let verification = state.engine.verify(&number, &q.code, q.v).await?;
    if wants_html(&headers) {
        return Ok(verify_page(&verification));
    }
    Ok(Json(verification).into_response())
}

/// Whether the client asks for a page (a phone's browser opening the QR code) rather than
/// JSON: `text/html` in `Accept`, ahead of any JSON type.
fn wants_html(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let html = accept.find("text/html");
    let json = accept.find("json");
    html.is_some_and(|h| json.is_none_or(|j| h < j))
}

/// The verification as a page fit for a phone, the status in words beside its code.
fn verify_page(v: &Verification) -> Response {
    let status_zh = match v.status.as_deref() {
        Some("pending") => "签署中，尚未生效",
        Some("awaiting_review") => "待学校审核",
        Some("returned") => "已被学校退回",
        Some("in_force") => "有效",
        Some("superseded") => "此份已被修改后的新版本取代",
        Some("terminated") => "已解约",
        Some("void") => "已作废",
        _ => "",
    };
    super::console::page(
        StatusCode::OK,
        "verify.html",
        None,
        serde_json::json!({ "v": v, "status_zh": status_zh }),
    )
}

/// Counts a request of the client to a verify operation (`what`) and answers `429` with
/// `Retry-After` when it made more than `GRADSIGN_VERIFY_PER_MINUTE` to it this minute.
async fn rate_limit(
    state: &AppState,
    what: &str,
    client: Option<axum::Extension<super::server::ClientAddr>>,
) -> Result<Option<Response>, ApiError> {
    let client = client.map_or_else(|| "unknown".to_string(), |c| c.0.to_string());
    let Some(wait) = state
        .engine
        .rate_limited(what, &client, state.verify_per_minute)
        .await?
    else {
        return Ok(None);
    };
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!("too many verifications from this address; try again in {wait} s"),
        format!("核验过于频繁，请 {wait} 秒后再试"),
    )
    .with_extra(serde_json::json!({ "retry_after": wait }))
    .into_response();
    response
        .headers_mut()
        .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(wait));
    Ok(Some(response))
}

/// Whether a PDF is a document the platform produced and whether its case's history was
/// altered since (no login): the file's evidence (its metadata) names the agreement and
/// version, its bytes must be a stored rendering of them, and the history chain is
/// recomputed from the database. A file the platform did not produce is refused (422).
/// Limited per client address (`GRADSIGN_VERIFY_PER_MINUTE`, counted apart from
/// `GET /api/v1/verify/{number}`).
#[utoipa::path(post, path = "/api/v1/verify", operation_id = "verify_document", tag = "documents",
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "the PDF's bytes (sent as `application/pdf` or `application/octet-stream`)"),
    responses((status = 200, body = crate::engine::evidence::DocumentCheck, description = "the platform produced this file; whether the history is intact, and what the agreement is now"),
        (status = 422, body = Problem, description = "not a document the platform produced, or changed after", content_type = "application/problem+json"),
        (status = 429, body = Problem, description = "too many verifications from this address this minute; `Retry-After` says when to try again",
            headers(("Retry-After" = u64, description = "seconds to wait")))))]
pub async fn verify_document(
    State(state): State<AppState>,
    client: Option<axum::Extension<super::server::ClientAddr>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
    if declared.is_some_and(|t| t != "application/pdf" && t != "application/octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the PDF itself as application/pdf",
            "请以 application/pdf 提交 PDF 文件本身",
        ));
    }
    if let Some(refused) = rate_limit(&state, "verify_document", client).await? {
        return Ok(refused);
    }
    Ok(Json(state.engine.verify_document(&body).await?).into_response())
}
