//! The edge every request crosses before a handler sees it, and every response after:
//! a request id in the log span and the `x-request-id` header, a caught panic answered
//! with `500 problem+json`, a time limit per request, refusals of overlong addresses and
//! NUL characters, security headers, and `problem+json` for the error answers axum and
//! tower make themselves (405, 408, 413, a path that does not parse…).
//!
//! Knows HTTP only; no rule of the domain lives here.

use std::{
    any::Any,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use hyper::body::Body as _;
use tower_http::{catch_panic::CatchPanicLayer, set_header::SetResponseHeaderLayer, timeout::TimeoutLayer};
use tracing::Instrument;

use super::error::ApiError;

/// Longest request target (path and query) accepted; longer is `414`.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Largest total of header names and values accepted; more is `431`. (Hyper bounds what
/// it buffers too, loosely: see `server::MAX_HEAD_BYTES`.)
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The header carrying the request id, taken from the client when it is a plain token.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An API answers JSON, PDFs and images: nothing in them may run, load or be framed.
pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Limits of the HTTP edge.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a request may take, reading its body included; then `408`.
    pub request_timeout: Duration,
}

/// Wraps the routes in the layers of the edge (outermost last).
pub fn harden(router: Router, limits: Limits) -> Router {
    router
        .layer(middleware::from_fn(refuse_bad_targets))
        .layer(CatchPanicLayer::custom(panic_answer))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::from_fn(problem_for_bare_errors))
        .layer(middleware::from_fn(close_unless_body_read))
        .layer(middleware::from_fn(request_span))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        // A console page sets its own policy (its styles and script from 'self'); every
        // other answer gets the API's.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

/// Gives the request an id (the client's when it is a plain token of at most 64
/// characters, else a new UUID), runs it inside a span carrying that id, and sends the
/// id back, so a user's report and the log line meet.
async fn request_span(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| plain_token(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    req.headers_mut().insert(REQUEST_ID, value.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    // `/readyz` answers 503 by design while the workers start: a health answer, not a failure.
    let health = req.uri().path() == "/readyz";
    let mut response = next.run(req).instrument(span.clone()).await;
    if response.status().is_server_error() && !health {
        span.in_scope(|| tracing::error!(status = response.status().as_u16(), "request failed"));
    }
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

/// Answers `Connection: close` when the request's body was not read to its end (a
/// refusal before a large upload was read): the rest of it is still on its way, so the
/// connection cannot carry another request, and a client told so will not try.
async fn close_unless_body_read(req: Request, next: Next) -> Response {
    let read = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| {
        if body.is_end_stream() {
            read.store(true, Ordering::Relaxed);
        }
        axum::body::Body::new(WatchedBody {
            inner: body,
            read: read.clone(),
        })
    });
    let mut response = next.run(req).await;
    if !read.load(Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that notes when it has been read to its end.
struct WatchedBody {
    inner: axum::body::Body,
    read: Arc<AtomicBool>,
}

impl hyper::body::Body for WatchedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

fn plain_token(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// `414` for an overlong address, `431` for overlarge headers; `400` for a NUL (`%00`)
/// in the path or the query, which no identifier or text of ours holds and PostgreSQL
/// cannot store.
async fn refuse_bad_targets(req: Request, next: Next) -> Response {
    let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if header_bytes > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "header-fields-too-large",
            format!("the request headers are larger than {MAX_HEADER_BYTES} bytes"),
            format!("请求头超过 {MAX_HEADER_BYTES} 字节的上限"),
        )
        .into_response();
    }
    let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or_default();
    if target.len() > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            format!("the address is longer than {MAX_URI_BYTES} bytes"),
            format!("请求地址超过 {MAX_URI_BYTES} 字节的上限"),
        )
        .into_response();
    }
    if target.contains("%00") {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "the address holds a NUL character (%00)",
            "请求地址中含有空字符（%00）",
        )
        .into_response();
    }
    next.run(req).await
}

/// A caught panic: logged (inside the request's span, so with its id) and answered with
/// the generic `500`.
fn panic_answer(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    ApiError::internal(format!("the request panicked: {message}")).into_response()
}

/// Turns an error answer that is not `problem+json` (axum's 405 and rejections, the
/// timeout's 408, …) into one, keeping its status and headers (`Allow`, …).
async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let response = next.run(req).await;
    let status = response.status();
    // A console page (HTML) is an answer of its own, with its messages in it.
    if status.as_u16() < 400 || is_problem(&response) || is_page(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4 * 1024)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let mut fresh = problem_for_status(status, &method, text).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().append(name.clone(), value.clone());
        }
    }
    fresh
}

fn is_problem(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

fn is_page(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"))
}

/// The problem for a status the server answered without one. A 4xx keeps the text it
/// came with (axum's reason a path or query did not parse); a 5xx says nothing more.
pub fn problem_for_status(status: StatusCode, method: &Method, text: Option<String>) -> ApiError {
    let (slug, en, zh): (&str, String, String) = match status.as_u16() {
        400 => (
            "malformed-request",
            "the request is malformed".into(),
            "请求格式有误，无法解析".into(),
        ),
        404 => ("no-such-route", "no such route".into(), "请求的地址不存在".into()),
        405 => (
            "method-not-allowed",
            format!("this address does not take {method}"),
            format!("此地址不支持 {method} 请求"),
        ),
        408 => (
            "request-timeout",
            "the request took too long".into(),
            "请求超时，请重试".into(),
        ),
        413 => (
            "payload-too-large",
            "the request body is too large".into(),
            "请求内容过大".into(),
        ),
        414 => ("uri-too-long", "the address is too long".into(), "请求地址过长".into()),
        415 => (
            "unsupported-media-type",
            "this content type is not accepted here".into(),
            "不支持该请求内容类型".into(),
        ),
        422 => (
            "invalid-input",
            "the request cannot be processed".into(),
            "请求内容无法处理".into(),
        ),
        431 => (
            "header-fields-too-large",
            "the request headers are too large".into(),
            "请求头过大".into(),
        ),
        code if code >= 500 => {
            return ApiError::new(status, "internal", "internal error", "系统内部错误，请稍后再试");
        }
        code => (
            "request-refused",
            format!("the request was refused ({code})"),
            format!("请求被拒绝（{code}）"),
        ),
    };
    let en = match text {
        Some(t) if status.is_client_error() && t.len() <= 300 => format!("{en}: {t}"),
        _ => en,
    };
    ApiError::new(status, slug, en, zh)
}
