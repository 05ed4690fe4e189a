//! Extractors whose rejections speak the API's problem format: the bearer token and a
//! JSON body that tells a syntax error (400) from a body of the wrong shape (422).

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use super::{AppState, error::ApiError};
use crate::{auth::AuthError, domain::FieldError, engine::Actor};

/// The authenticated caller.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or(AuthError::Missing)?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| AuthError::Invalid("expected `Authorization: Bearer <token>`".into()))?;
        Ok(Caller(state.keys.verify(token.trim())?))
    }
}

/// A JSON body, with the raw bytes kept for hashing (`Idempotency-Key`).
pub struct Body<T> {
    pub value: T,
    pub bytes: Bytes,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json") || ct.contains("+json"));
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "the request body is too large",
                    "请求内容过大",
                )
            } else {
                ApiError::malformed(format!("cannot read the body: {e}"))
            }
        })?;
        if !is_json && !bytes.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as application/json",
                "请求内容须为 application/json",
            ));
        }
        let text: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        let json: serde_json::Value = serde_json::from_slice(text).map_err(json_error)?;
        if let Some(field) = nul_in(&json, "") {
            return Err(ApiError::invalid(vec![
                FieldError::new(
                    "text.control_char",
                    "内容含有空字符（NUL, \\u0000）",
                    "contains a NUL character (\\u0000)",
                )
                .with_field(if field.is_empty() { "body".into() } else { field }),
            ]));
        }
        let value = serde_json::from_value(json).map_err(json_error)?;
        Ok(Body { value, bytes })
    }
}

/// The dotted name of the first string or key holding a NUL, which no field takes and
/// PostgreSQL cannot store; `Some("")` for the body itself.
pub(super) fn nul_in(value: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let join = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match value {
        Value::String(s) => s.contains('\0').then(|| at.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(v, &join(&i.to_string()))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else {
                nul_in(v, &join(k))
            }
        }),
        _ => None,
    }
}

/// Syntax errors are 400; a well-formed body of the wrong shape is 422 naming the field.
fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => ApiError::invalid(vec![shape_error(&e, "body", "请求内容的字段类型不正确")]),
        _ => ApiError::malformed(format!("the body is not valid JSON: {e}")),
    }
}

/// A JSON value of the wrong shape as a field error: an unknown or a missing field is named
/// (`unknown_field`, or `type` for the rest); anything else is laid at `whole` with
/// `otherwise` as its Chinese message.
pub(super) fn shape_error(e: &serde_json::Error, whole: &str, otherwise: &str) -> FieldError {
    let message = e.to_string();
    let unknown = message.starts_with("unknown field");
    let missing = message.starts_with("missing field");
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| unknown || missing)
        .unwrap_or(whole)
        .to_string();
    let zh = if unknown {
        format!("不认识的字段：{field}")
    } else if missing {
        format!("缺少字段：{field}")
    } else {
        otherwise.to_string()
    };
    let code = if unknown { "unknown_field" } else { "type" };
    FieldError::new(code, zh, message).with_field(field)
}

/// The `Idempotency-Key` header, if sent.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::malformed("Idempotency-Key must be visible ASCII"))?
        .trim();
    if key.is_empty() || key.len() > 200 {
        return Err(ApiError::malformed("Idempotency-Key must be 1 to 200 characters"));
    }
    Ok(Some(key.to_string()))
}

/// The case version in `If-Match` (`"3"`, `W/"3"` or `3`), if sent. `*` matches any
/// version (RFC 9110), so it asks for no check, and so does an empty value.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" || text.is_empty() {
        return Ok(None);
    }
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse().map(Some).map_err(|_| {
        ApiError::malformed(format!(
            "If-Match must hold the case version, such as \"3\"; got {text:?}"
        ))
    })
}
