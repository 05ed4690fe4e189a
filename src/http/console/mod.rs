//! The console: server-rendered pages under `/console/` for school officers and
//! administrators (tera templates compiled into the binary from `templates/console/`,
//! one stylesheet and one small script served by the binary).
//!
//! A page is a reader of the same engine functions the JSON API calls, with the same
//! authorisation: the session is an HttpOnly, SameSite=Strict cookie carrying the
//! platform's token, checked on every request as a bearer token is, so no process keeps
//! a session in memory. Every form carries a CSRF token (an HMAC of the session under
//! the server's JWT secret) and every POST must come from this origin. Writes go through
//! `Engine::fire` and the bulk review of `http::reviews`: there is no second write path.
//! Knows no workflow by name: states, transitions and fields come from the definitions.

mod admin;
mod pages;
mod session;

use std::sync::LazyLock;

use axum::{
    Router,
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::{AppState, error::ApiError};
pub use session::Session;

/// What a console page may load: its own stylesheet, script and images, nothing inline.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; img-src 'self'; style-src 'self'; \
     script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS: &str = include_str!("../../../templates/console/console.css");
const JS: &str = include_str!("../../../templates/console/console.js");
const ICON: &str = include_str!("../../../templates/console/icon.svg");

/// The console's templates, compiled in: a console never depends on the working folder.
static TEMPLATES: LazyLock<tera::Tera> = LazyLock::new(|| {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(vec![".html"]);
    // Every value is escaped for HTML (`/` left alone: tera's own escaper mangles paths).
    tera.set_escape_fn(admin::escape);
    tera.add_raw_templates(vec![
        ("base.html", include_str!("../../../templates/console/base.html")),
        ("signin.html", include_str!("../../../templates/console/signin.html")),
        ("inbox.html", include_str!("../../../templates/console/inbox.html")),
        ("case.html", include_str!("../../../templates/console/case.html")),
        ("bulk.html", include_str!("../../../templates/console/bulk.html")),
        ("error.html", include_str!("../../../templates/console/error.html")),
        ("verify.html", include_str!("../../../templates/console/verify.html")),
        (
            "statistics.html",
            include_str!("../../../templates/console/statistics.html"),
        ),
        ("queues.html", include_str!("../../../templates/console/queues.html")),
        ("mail.html", include_str!("../../../templates/console/mail.html")),
        (
            "definitions.html",
            include_str!("../../../templates/console/definitions.html"),
        ),
    ])
    .expect("the console templates parse (checked by the console tests)");
    tera
});

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/", get(pages::home))
        .route("/console", get(pages::home))
        .route("/console/signin", get(session::signin_form).post(session::signin))
        .route("/console/signout", post(session::signout))
        .route("/console/inbox", get(pages::inbox))
        .route("/console/cases/{id}", get(pages::case))
        .route("/console/cases/{id}/fire", post(pages::fire))
        .route("/console/reviews/bulk", post(pages::bulk))
        .route("/console/documents/{id}", get(pages::document))
        .route("/console/statistics", get(admin::statistics))
        .route("/console/exports/destinations.csv", get(admin::export_csv))
        .route("/console/exports/destinations.xlsx", get(admin::export_xlsx))
        .route("/console/overdue", get(admin::overdue))
        .route("/console/mail", get(admin::mail))
        .route("/console/mail/{id}/resend", post(admin::resend))
        .route("/console/renders", get(admin::renders))
        .route("/console/queues", get(admin::queues))
        .route("/console/queues/{queue}/retry", post(admin::retry_queue))
        .route("/console/definitions", get(admin::definitions))
        .route(
            "/console/definitions/{name}",
            get(admin::definition).post(admin::publish),
        )
        .route("/console/definitions/{name}/{hash}/activate", post(admin::activate))
        .route("/console/definitions/{name}/{hash}/migrate", post(admin::migrate))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route("/console/assets/icon.svg", get(icon))
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        body,
    )
        .into_response()
}

/// Renders a page with `status`; `ctx` must be a JSON object. The session (when there is
/// one) gives the navigation and the CSRF token every form carries.
pub fn page(status: StatusCode, template: &str, session: Option<&Session>, mut ctx: Value) -> Response {
    if let (Some(s), Some(map)) = (session, ctx.as_object_mut()) {
        map.insert("me".into(), s.me());
        map.insert("csrf".into(), Value::String(s.csrf.clone()));
    }
    let context = match tera::Context::from_value(ctx) {
        Ok(c) => c,
        Err(e) => return render_failed(template, &e),
    };
    match TEMPLATES.render(template, &context) {
        Ok(html) => html_response(status, html),
        Err(e) => render_failed(template, &e),
    }
}

fn render_failed(template: &str, e: &tera::Error) -> Response {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    tracing::error!(template, error = %chain, "a console page did not render");
    html_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "<!doctype html><title>500</title><p>页面出错 / the page failed to render</p>".into(),
    )
}

/// An HTML answer with the console's security policy; pages are per person, never cached.
pub fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

/// An API problem as a page: the same status and messages the API answers.
pub fn problem_page(session: Option<&Session>, e: ApiError) -> Response {
    let p = *e.0;
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    page(status, "error.html", session, json!({ "problem": p }))
}
