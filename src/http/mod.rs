//! The thin HTTP layer (axum, JSON under `/api/v1`). Handlers parse the request, call
//! the engine and turn its answer or error into JSON or `problem+json`; no rule of the
//! domain lives here. `edge` wraps every route (request ids, panics, time limits,
//! security headers); `server` is the connection loop beneath.

mod admin;
mod cases;
pub mod console;
mod documents;
pub mod edge;
pub mod error;
mod exports;
mod extract;
pub mod openapi;
mod parties;
mod reference;
mod reviews;
pub mod server;
mod statistics;
mod workflows;

use std::sync::Arc;

use crate::{auth::Keys, engine::service::Engine};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub keys: Arc<Keys>,
    pub max_upload_bytes: usize,
    pub limits: edge::Limits,
    /// Verifications one client address may ask for per minute.
    pub verify_per_minute: u32,
}

/// The largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// The whole API, testable with `tower::ServiceExt::oneshot` or a real listener.
/// What a `worker` process serves on `GRADSIGN_METRICS_LISTEN`: its metrics and health,
/// nothing of the API.
pub fn operations_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/cases", post(cases::start).get(cases::list))
        .route("/cases/{id}", get(cases::get))
        .route("/cases/{id}/transitions/{name}", post(cases::fire))
        .route("/schools/{id}", put(parties::put_school))
        .route("/students/{id}", put(parties::put_student))
        .route(
            "/students",
            put(parties::put_students)
                .get(parties::list_students)
                .layer(DefaultBodyLimit::max(parties::MAX_BULK_BYTES)),
        )
        .route("/employers/{id}", put(parties::put_employer))
        .route("/students/{id}/destination", get(parties::destination))
        .route("/students/{id}/destinations", get(parties::destinations))
        .route(
            "/cases/{id}/documents",
            get(documents::list)
                .post(documents::upload)
                .layer(DefaultBodyLimit::max(state.max_upload_bytes + 64 * 1024)),
        )
        .route("/documents/{id}", get(documents::get))
        .route("/verify/{number}", get(documents::verify))
        .route(
            "/verify",
            post(documents::verify_document).layer(DefaultBodyLimit::max(state.max_upload_bytes)),
        )
        .route("/emails", get(admin::emails))
        .route("/emails/{id}/resend", post(admin::resend))
        .route("/reviews/overdue", get(admin::overdue))
        .route("/workflows", get(workflows::list))
        .route("/workflows/audit", get(workflows::audit))
        .route(
            "/workflows/{name}/versions",
            post(workflows::publish).get(workflows::versions),
        )
        .route("/workflows/{name}/versions/{hash}", get(workflows::source))
        .route("/workflows/{name}/versions/{hash}/graph", get(workflows::graph))
        .route("/workflows/{name}/versions/{hash}/activate", post(workflows::activate))
        .route("/workflows/{name}/versions/{hash}/impact", post(workflows::impact))
        .route("/workflows/{name}/versions/{hash}/migrate", post(workflows::migrate))
        .route("/reviews/bulk", post(reviews::bulk))
        .route("/statistics/destinations", get(statistics::destinations))
        .route("/exports/destinations.csv", get(exports::destinations_csv))
        .route("/exports/destinations.xlsx", get(exports::destinations_xlsx))
        .route("/exports/cases.csv", get(exports::cases_csv))
        .route("/exports/cases.xlsx", get(exports::cases_xlsx))
        .route(
            "/reference/destination-categories",
            get(reference::destination_categories),
        );
    let limits = state.limits;
    let routes = Router::new()
        .nest("/api/v1", api)
        .merge(console::router())
        // The QR code's address for people: a page to a browser, JSON to a program.
        .route("/verify/{number}", get(documents::verify))
        .route("/openapi.json", get(openapi_json))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), count_request))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
        .with_state(state);
    edge::harden(routes, limits)
}

async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    let mut vocabulary = openapi::Vocabulary::default();
    for def in state.engine.registry.all_current() {
        vocabulary.workflows.push(def.name.clone());
        vocabulary
            .transitions
            .extend(def.transitions.iter().map(|t| t.name.clone()));
        vocabulary.upload_slots.extend(def.uploads.keys().cloned());
    }
    for names in [
        &mut vocabulary.workflows,
        &mut vocabulary.transitions,
        &mut vocabulary.upload_slots,
    ] {
        names.sort();
        names.dedup();
    }
    Json(openapi::document(&vocabulary))
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers and every queue has a live worker (in this process
/// or another on the same database).
#[utoipa::path(get, path = "/readyz", operation_id = "readiness", tag = "operations",
    responses(
        (status = 200, body = String, content_type = "text/plain", description = "`ready`: the database answers and every queue has a live worker"),
        (status = 503, description = "the database does not answer, or a queue has no live worker")))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let unavailable = |en: String, zh: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", en, zh);
    state.engine.db.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready: the database does not answer");
        unavailable("the database does not answer".into(), "数据库暂不可用".into())
    })?;
    let idle = state.engine.queues_without_workers().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready: cannot read the workers");
        unavailable("the workers cannot be read".into(), "无法读取后台任务进程状态".into())
    })?;
    if !idle.is_empty() {
        let queues = idle.join(", ");
        // Normal for the first seconds after a start; the answer itself tells the operator.
        tracing::info!(queues = %queues, "not ready: queues without a live worker");
        return Err(unavailable(
            format!("no live worker runs the queues {queues}"),
            format!("以下队列没有在运行的后台任务进程：{queues}"),
        ));
    }
    Ok("ready")
}

/// The Prometheus text exposition (`metrics.rs`).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain",
        description = "Prometheus text format 0.0.4: this process's transitions, timers, renders, mails and HTTP requests, and every queue's jobs as the database has them")))]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state.engine.metrics_text().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    ))
}

/// Counts and times every routed request by its route (the pattern, not the path, so
/// ids do not make new series) and status.
async fn count_request(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let busy = state.engine.foreground.busy();
    let response = next.run(req).await;
    drop(busy);
    let metrics = &state.engine.metrics;
    let status = response.status().as_u16().to_string();
    metrics.inc(
        "gradsign_http_requests_total",
        &[("route", &route), ("status", &status)],
    );
    metrics.observe("gradsign_http_request_seconds", &[("route", &route)], started.elapsed());
    response
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no-such-route",
        "no such route",
        "请求的地址不存在",
    )
}
