//! Publishing workflow definitions (platform admins): store a checked version, activate
//! it for new cases in every process, list the versions with their live cases and diffs,
//! read a version's source or its diagram, and read the audit.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AppState,
    error::{ApiError, Problem},
    extract::{Body, Caller},
};
use crate::{
    definition::Role,
    engine::{
        Actor,
        versions::{AuditView, Impact, Migration, MigrationPlan, Published, VersionView, WorkflowView},
    },
};

pub(super) fn platform_admin(actor: &Actor) -> Result<(), ApiError> {
    if actor.role == Role::PlatformAdmin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only platform admins publish and read workflow versions",
            "仅平台管理员可发布和查看流程版本",
        ))
    }
}

/// A stored version's source.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionSource {
    pub name: String,
    pub hash: String,
    /// The TOML as published.
    pub source: String,
}

/// Every workflow and the version new cases start on.
#[utoipa::path(get, path = "/api/v1/workflows", operation_id = "list_workflows", tag = "workflows",
    responses((status = 200, body = Vec<WorkflowView>, description = "the workflows"), (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, Caller(actor): Caller) -> Result<Json<Vec<WorkflowView>>, ApiError> {
    platform_admin(&actor)?;
    Ok(Json(state.engine.workflows().await?))
}

/// Check a definition (the TOML body) and store it as a version of `name`; it does not
/// run until it is activated. Its problems are a 422 whose `problems` give file, line
/// and message.
#[utoipa::path(post, path = "/api/v1/workflows/{name}/versions", operation_id = "publish_version", tag = "workflows",
    params(("name" = String, Path, description = "the workflow")),
    request_body(content_type = "text/plain", content = String, description = "the definition, as in `workflows/NAME.toml` (also accepted as `application/toml`)"),
    responses((status = 201, body = Published, description = "stored as a new version"), (status = 200, body = Published, description = "this source was published before"),
        (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    platform_admin(&actor)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !(content_type.starts_with("application/toml") || content_type.starts_with("text/plain")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send the definition as text/plain or application/toml",
            "请以 text/plain 或 application/toml 提交流程定义",
        ));
    }
    let source = String::from_utf8(body.to_vec()).map_err(|_| ApiError::malformed("the body is not UTF-8"))?;
    let published = state.engine.publish(&actor, &name, &source).await?;
    let status = if published.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(published)))
}

/// The versions of a workflow, oldest first: who published each and when, the diff
/// against the one before, and how many live cases run on each, by state.
#[utoipa::path(get, path = "/api/v1/workflows/{name}/versions", operation_id = "list_versions", tag = "workflows",
    params(("name" = String, Path, description = "the workflow")),
    responses((status = 200, body = Vec<VersionView>, description = "the versions"), (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn versions(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(name): Path<String>,
) -> Result<Json<Vec<VersionView>>, ApiError> {
    platform_admin(&actor)?;
    Ok(Json(state.engine.versions(&name).await?))
}

/// A version's source.
#[utoipa::path(get, path = "/api/v1/workflows/{name}/versions/{hash}", operation_id = "get_version", tag = "workflows",
    params(("name" = String, Path, description = "the workflow"), ("hash" = String, Path, description = "the version (SHA-256 of its source)")),
    responses((status = 200, body = VersionSource, description = "the source"), (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn source(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((name, hash)): Path<(String, String)>,
) -> Result<Json<VersionSource>, ApiError> {
    platform_admin(&actor)?;
    let source = state.engine.version_source(&name, &hash).await?;
    Ok(Json(VersionSource { name, hash, source }))
}

/// A version drawn as a Mermaid state diagram, or as SVG for a browser (`Accept:
/// image/svg+xml`), its states shaded by the live cases in them.
#[utoipa::path(get, path = "/api/v1/workflows/{name}/versions/{hash}/graph", operation_id = "get_version_graph", tag = "workflows",
    params(("name" = String, Path, description = "the workflow"), ("hash" = String, Path, description = "the version")),
    responses((status = 200, description = "the Mermaid source, or the SVG drawing when `Accept` asks for `image/svg+xml`",
            content((String = "text/vnd.mermaid"), (String = "image/svg+xml"))),
        (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn graph(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((name, hash)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    platform_admin(&actor)?;
    let svg = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("image/svg+xml"));
    Ok(if svg {
        let drawing = state.engine.version_graph_svg(&name, &hash).await?;
        ([(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")], drawing)
    } else {
        let mermaid = state.engine.version_graph(&name, &hash).await?;
        ([(header::CONTENT_TYPE, "text/vnd.mermaid; charset=utf-8")], mermaid)
    })
}

/// Make a stored version the one new cases of the workflow start on, in every process;
/// running cases keep the version they started on.
#[utoipa::path(post, path = "/api/v1/workflows/{name}/versions/{hash}/activate", operation_id = "activate_version", tag = "workflows",
    params(("name" = String, Path, description = "the workflow"), ("hash" = String, Path, description = "the version")),
    responses((status = 200, body = WorkflowView, description = "now active"), (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn activate(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((name, hash)): Path<(String, String)>,
) -> Result<Json<WorkflowView>, ApiError> {
    platform_admin(&actor)?;
    Ok(Json(state.engine.activate(&actor, &name, &hash).await?))
}

/// Every publish, activation and migration, newest first.
#[utoipa::path(get, path = "/api/v1/workflows/audit", operation_id = "list_workflow_audit", tag = "workflows",
    responses((status = 200, body = Vec<AuditView>, description = "the audit"), (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn audit(State(state): State<AppState>, Caller(actor): Caller) -> Result<Json<Vec<AuditView>>, ApiError> {
    platform_admin(&actor)?;
    Ok(Json(state.engine.audit(None).await?))
}

/// How to read the states of older versions on the new one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImpactRequest {
    /// Old state → new state, for states renamed; a state not named keeps its name.
    #[serde(default)]
    pub states: std::collections::BTreeMap<String, String>,
}

/// Before activating: for the live cases of the workflow's other versions, where each would
/// be on this version, and which could not move (a state gone or terminal) or would change
/// (claims, timers). Reads only.
#[utoipa::path(post, path = "/api/v1/workflows/{name}/versions/{hash}/impact", operation_id = "version_impact", tag = "workflows",
    params(("name" = String, Path, description = "the workflow"), ("hash" = String, Path, description = "the version")),
    request_body(content = ImpactRequest, description = "renamed states, old → new"),
    responses((status = 200, body = Impact, description = "the impact"), (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn impact(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((name, hash)): Path<(String, String)>,
    body: Body<ImpactRequest>,
) -> Result<Json<Impact>, ApiError> {
    platform_admin(&actor)?;
    Ok(Json(state.engine.impact(&name, &hash, &body.value.states).await?))
}

/// Move chosen live cases of the workflow's other versions onto this version: states
/// mapped (a state not named keeps its name), each timer of the new state set by its
/// policy (`keep` the pending due time — the default —, `recompute` from the state's
/// entry, or `cancel`), one transaction per case, recorded in each case's history and in
/// the audit. A case that cannot move is listed with the reason and left as it is.
#[utoipa::path(post, path = "/api/v1/workflows/{name}/versions/{hash}/migrate", operation_id = "migrate_cases", tag = "workflows",
    params(("name" = String, Path, description = "the workflow"), ("hash" = String, Path, description = "the version to move onto")),
    request_body(content = MigrationPlan, description = "the cases, the state mapping and the timer policies"),
    responses((status = 200, body = Migration, description = "what moved and what did not"), (status = 403, body = Problem, description = "not a platform admin"),
        (status = 422, body = Problem, description = "a plan that names no case, maps to no live state, or names an unknown timer")),
    security(("bearer" = [])))]
pub async fn migrate(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((name, hash)): Path<(String, String)>,
    body: Body<MigrationPlan>,
) -> Result<Json<Migration>, ApiError> {
    platform_admin(&actor)?;
    Ok(Json(state.engine.migrate(&actor, &name, &hash, &body.value).await?))
}
