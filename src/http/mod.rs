//! The thin HTTP layer (axum, JSON under `/api/v1`). Handlers parse the request, call
//! the engine and turn its answer or error into JSON or `problem+json`; no rule of the
//! domain lives here. `edge` wraps every route (request ids, panics, time limits,
//! security headers); `server` is the connection loop beneath.

mod admin;
mod cases;
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

use std::sync::Arc;

use crate::{auth::Keys, engine::service::Engine};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::IntoResponse,
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
}

/// The largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// The whole API, testable with `tower::ServiceExt::oneshot` or a real listener.
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
        .route("/emails", get(admin::emails))
        .route("/emails/{id}/resend", post(admin::resend))
        .route("/reviews/overdue", get(admin::overdue))
        .route("/reviews/bulk", post(reviews::bulk))
        .route("/statistics/destinations", get(statistics::destinations))
        .route("/exports/destinations.csv", get(exports::destinations_csv))
        .route("/exports/destinations.xlsx", get(exports::destinations_xlsx))
        .route(
            "/reference/destination-categories",
            get(reference::destination_categories),
        );
    let limits = state.limits;
    let routes = Router::new()
        .nest("/api/v1", api)
        .route("/openapi.json", get(openapi_json))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
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

/// Ready when the database answers.
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.engine.db.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "the database does not answer",
            "数据库暂不可用",
        )
    })?;
    Ok("ready")
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no-such-route",
        "no such route",
        "请求的地址不存在",
    )
}
