//! The thin HTTP layer (axum, JSON under `/api/v1`). Handlers parse the request, call
//! the engine and turn its answer or error into JSON or `problem+json`; no rule of the
//! domain lives here.

mod admin;
mod cases;
mod documents;
pub mod error;
mod extract;
mod parties;
mod reference;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post, put},
};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::{auth::Keys, engine::service::Engine};
use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub keys: Arc<Keys>,
    pub max_upload_bytes: usize,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "gradsign", description = "Graduate employment signing and destination registration: cases, transitions and reference data."),
    paths(cases::start, cases::get, cases::list, cases::fire, parties::put_school, parties::put_student, parties::put_employer, parties::destination, parties::destinations,
        documents::list, documents::get, documents::upload, documents::verify, admin::emails, admin::resend, admin::overdue,
        reference::destination_categories),
    components(schemas(error::Problem)),
    modifiers(&BearerAuth),
    tags((name = "cases", description = "start, read, list and advance cases"), (name = "parties", description = "reference data synced by the platform"), (name = "documents", description = "agreements, uploads and verification"), (name = "admin", description = "mail log and overdue reviews"), (name = "reference", description = "destination categories and code lists"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The whole API, testable with `tower::ServiceExt::oneshot` or a real listener.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/cases", post(cases::start).get(cases::list))
        .route("/cases/{id}", get(cases::get))
        .route("/cases/{id}/transitions/{name}", post(cases::fire))
        .route("/schools/{id}", put(parties::put_school))
        .route("/students/{id}", put(parties::put_student))
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
        .route(
            "/reference/destination-categories",
            get(reference::destination_categories),
        );
    Router::new()
        .nest("/api/v1", api)
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
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
