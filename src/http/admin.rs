//! What administrators watch: mail (failed sends, resend) and overdue reviews.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    AppState,
    error::{ApiError, Problem},
    extract::Caller,
};
use crate::{
    definition::Role,
    engine::notify::{EmailView, OverdueView},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EmailQuery {
    /// pending, sending, sent, failed or skipped
    pub status: Option<String>,
    /// Only the mail of this case.
    pub case: Option<String>,
}

/// Mail as recorded, e.g. `?status=failed` (platform admins).
#[utoipa::path(get, path = "/api/v1/emails", operation_id = "list_emails", tag = "admin", params(EmailQuery),
    responses((status = 200, body = Vec<EmailView>, description = "the mail log"), (status = 403, body = Problem, description = "not a platform admin")),
    security(("bearer" = [])))]
pub async fn emails(
    State(state): State<AppState>,
    Caller(actor): Caller,
    query: Result<Query<EmailQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<EmailView>>, ApiError> {
    platform_admin(&actor.role)?;
    let Query(q) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    Ok(Json(
        state.engine.list_emails(q.status.as_deref(), q.case.as_deref()).await?,
    ))
}

/// Queue a failed mail again (platform admins).
#[utoipa::path(post, path = "/api/v1/emails/{id}/resend", operation_id = "resend_email", tag = "admin",
    params(("id" = String, Path, description = "the mail")),
    responses((status = 202, description = "queued again"), (status = 403, body = Problem, description = "not a platform admin"),
        (status = 409, body = Problem, description = "the mail has not failed")),
    security(("bearer" = [])))]
pub async fn resend(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    platform_admin(&actor.role)?;
    if state.engine.resend_email(&id).await? {
        Ok(StatusCode::ACCEPTED)
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-failed",
            "only a failed mail can be resent",
            "只有发送失败的邮件可以重发",
        ))
    }
}

/// Reviews escalated for waiting too long, with how long each has waited: a school
/// admin sees their school's, a platform admin all.
#[utoipa::path(get, path = "/api/v1/reviews/overdue", operation_id = "list_overdue_reviews", tag = "admin",
    responses((status = 200, body = Vec<OverdueView>, description = "the overdue reviews"), (status = 403, body = Problem, description = "not a school or platform admin")),
    security(("bearer" = [])))]
pub async fn overdue(State(state): State<AppState>, Caller(actor): Caller) -> Result<Json<Vec<OverdueView>>, ApiError> {
    let school = match actor.role {
        Role::PlatformAdmin => None,
        Role::SchoolAdmin => actor.school.clone(),
        _ => {
            return Err(ApiError::forbidden(
                "only school and platform admins see overdue reviews",
                "仅学校管理员和平台管理员可查看超时审核",
            ));
        }
    };
    Ok(Json(state.engine.overdue(school.as_deref()).await?))
}

pub(super) fn platform_admin(role: &Role) -> Result<(), ApiError> {
    if *role == Role::PlatformAdmin {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only platform admins see the mail log",
            "仅平台管理员可查看邮件记录",
        ))
    }
}
