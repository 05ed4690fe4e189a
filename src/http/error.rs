//! The one error shape of the API: `application/problem+json` (RFC 9457) with a stable
//! `type`, the message in English (`detail`) and Chinese (`detail_zh`), and the fields
//! at fault. 5xx bodies are generic; their cause is logged.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::Value;

use crate::{
    auth::AuthError,
    domain::FieldError,
    engine::{Refusal, service::EngineError},
};

/// A problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:gradsign:claim-held`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// English.
    pub detail: String,
    /// 中文.
    pub detail_zh: String,
    /// The fields at fault, each with its own messages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<FieldError>,
    /// Extra facts: the case holding a claim, the current version, …
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub extra: Option<Value>,
}

#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl ApiError {
    pub fn new(status: StatusCode, slug: &str, en: impl Into<String>, zh: impl Into<String>) -> ApiError {
        ApiError(Box::new(Problem {
            kind: format!("urn:gradsign:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: en.into(),
            detail_zh: zh.into(),
            errors: Vec::new(),
            extra: None,
        }))
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> ApiError {
        self.0.errors = errors;
        self
    }

    pub fn with_extra(mut self, extra: Value) -> ApiError {
        self.0.extra = Some(extra);
        self
    }

    pub fn malformed(en: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            en,
            "请求格式有误，无法解析",
        )
    }

    pub fn invalid(errors: Vec<FieldError>) -> ApiError {
        let en = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
        let zh = errors.iter().map(|e| e.zh.clone()).collect::<Vec<_>>().join("；");
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", en, zh).with_errors(errors)
    }

    pub fn forbidden(en: impl Into<String>, zh: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", en, zh)
    }

    pub fn not_found(what: &str, id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("{what} {id} not found"),
            format!("未找到{}：{id}", zh_name(what)),
        )
    }

    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
            "系统内部错误，请稍后再试",
        )
    }
}

fn zh_name(what: &str) -> &'static str {
    match what {
        "case" => "案件",
        "student" => "学生",
        "employer" => "用人单位",
        "school" => "学校",
        "workflow" => "流程",
        "destination" => "毕业去向",
        _ => "记录",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(*self.0)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let zh = match e {
            AuthError::Missing => "缺少登录凭证（Bearer 令牌）",
            AuthError::Invalid(_) => "登录凭证无效或已过期",
        };
        let mut err = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string(), zh);
        err.0.title = "Unauthorized".into();
        err
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> ApiError {
        match e {
            EngineError::Refused(r) => refusal(r),
            EngineError::NotFound { what, id } => ApiError::not_found(what, &id),
            EngineError::ClaimHeld { key, holder, message } => {
                ApiError::new(StatusCode::CONFLICT, "claim-held", message.en, message.zh)
                    .with_extra(serde_json::json!({ "claim": key, "held_by_case": holder }))
            }
            EngineError::Stale { current } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "stale-version",
                format!("the case has changed: it is at version {current}; read it again"),
                format!("案件已被更新（当前版本 {current}），请刷新后重试"),
            )
            .with_extra(serde_json::json!({ "current_version": current })),
            EngineError::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "this Idempotency-Key was already used for a different request",
                "该幂等键已用于另一个不同的请求",
            ),
            EngineError::UnknownWorkflow(name) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-workflow",
                format!("unknown workflow {name}"),
                format!("不存在名为 {name} 的流程"),
            )
            .with_errors(vec![
                FieldError::new("unknown", "流程不存在", "unknown workflow").with_field("workflow"),
            ]),
            EngineError::UnknownParty { kind, id, field } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown-party",
                format!("unknown {kind} {id}"),
                format!("未找到{}：{id}", zh_name(kind)),
            )
            .with_errors(vec![
                FieldError::new("unknown", format!("未找到{}", zh_name(kind)), format!("unknown {kind}"))
                    .with_field(field),
            ]),
            EngineError::InvalidDefinition(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-definition",
                format!(
                    "the definition has {} problem(s); `problems` lists each with its line",
                    e.problems.len()
                ),
                format!("流程定义有 {} 处问题，见 `problems`（含行号）", e.problems.len()),
            )
            .with_extra(serde_json::json!({ "problems": crate::engine::versions::problem_items(&e) })),
            EngineError::Store(e) => ApiError::internal(e),
        }
    }
}

fn refusal(r: Refusal) -> ApiError {
    match r {
        Refusal::UnknownTransition(name) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-transition",
            format!("this workflow has no transition {name}"),
            format!("此流程没有名为 {name} 的操作"),
        ),
        Refusal::NotYourCase => ApiError::forbidden("this case is not yours", "您无权查看或操作此案件"),
        Refusal::WrongRole {
            transition,
            title,
            role,
            allowed,
        } => {
            let names = allowed;
            let en: Vec<_> = names.iter().map(|m| m.en.as_str()).collect();
            let zh: Vec<_> = names.iter().map(|m| m.zh.as_str()).collect();
            ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong-role",
                format!(
                    "“{}” is done by the {}, not by a {}",
                    title.en,
                    en.join(" or "),
                    role.title().en
                ),
                format!("「{}」只能由{}执行", title.zh, zh.join("或")),
            )
            .with_extra(serde_json::json!({ "transition": transition }))
        }
        Refusal::NotInState {
            transition,
            state,
            titles,
        } => ApiError::new(
            StatusCode::CONFLICT,
            "not-allowed-in-state",
            format!(
                "“{}” cannot be done while the case is “{}”",
                titles.transition.en, titles.state.en
            ),
            format!(
                "案件当前状态为「{}」，不能执行「{}」",
                titles.state.zh, titles.transition.zh
            ),
        )
        .with_extra(serde_json::json!({ "state": state, "transition": transition })),
        Refusal::Guard(message) => ApiError::new(StatusCode::CONFLICT, "condition-not-met", message.en, message.zh),
        Refusal::Invalid(errors) => ApiError::invalid(errors),
        Refusal::Definition(e) => ApiError::internal(format!("definition: {e}")),
    }
}
