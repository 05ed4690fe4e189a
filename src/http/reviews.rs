//! Bulk review: one transition (approve, or return with one reason) fired on many cases,
//! each in its own transaction with its own result.

use axum::{Json, extract::State, http::HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::{
    AppState,
    cases::request_hash,
    error::{ApiError, Problem},
    extract::{Body, Caller, idempotency_key},
};
use crate::{
    domain::FieldError,
    engine::{Actor, service::Idempotency},
};

/// The most cases one bulk review takes.
pub const MAX_BULK_CASES: usize = 500;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkReview {
    /// The transition to fire on every case, as the cases' definition names it
    /// (`approve`, or `reject` with a reason).
    #[schema(min_length = 1)]
    pub transition: String,
    /// The transition's input, the same for every case (a return's reason).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Option<Map<String, Value>>,
    /// The cases, 1 to 500.
    #[schema(min_items = 1, max_items = 500)]
    pub cases: Vec<String>,
}

/// What happened to one case.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub case: String,
    /// `done`: the transition fired; `refused`: it did not, and `problem` says why.
    pub outcome: String,
    /// The case's state after the transition (when done).
    pub state: Option<String>,
    /// The answer was replayed from an earlier request with the same key.
    pub replayed: bool,
    /// Why the case was refused: the problem a single request would have answered.
    pub problem: Option<Problem>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkReviewAnswer {
    pub done: usize,
    pub refused: usize,
    /// One result per case, in the order sent.
    pub results: Vec<BulkResult>,
}

/// Fire one transition on many cases — approve them, or return them with one reason.
/// Each case is its own transaction: one refused (moved on meanwhile, not the caller's)
/// leaves the others done. With an `Idempotency-Key`, a repeated request answers each
/// case as before and fires nothing twice.
#[utoipa::path(post, path = "/api/v1/reviews/bulk", operation_id = "bulk_review", request_body = BulkReview, tag = "cases",
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,200}$",
        description = "same key and body → the same results, nothing fired twice")),
    responses((status = 200, body = BulkReviewAnswer, description = "each case's result"),
        (status = 422, body = Problem, description = "no transition, no cases, too many, an empty one, or one named twice")),
    security(("bearer" = [])))]
pub async fn bulk(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    body: Body<BulkReview>,
) -> Result<Json<BulkReviewAnswer>, ApiError> {
    let key = idempotency_key(&headers)?;
    let BulkReview {
        transition,
        input,
        cases,
    } = body.value;
    let input = Value::Object(input.unwrap_or_default());
    Ok(Json(
        review_many(&state, &actor, &transition, &input, cases, key).await?,
    ))
}

/// Fires `transition` with `input` on each case, each in its own transaction, after
/// checking the list (1 to 500 cases, none empty, none twice). The API's bulk review and
/// the console's both come here.
pub(super) async fn review_many(
    state: &AppState,
    actor: &Actor,
    transition: &str,
    input: &Value,
    cases: Vec<String>,
    key: Option<String>,
) -> Result<BulkReviewAnswer, ApiError> {
    let invalid = |zh: &str, en: &str| ApiError::invalid(vec![FieldError::new("range", zh, en).with_field("cases")]);
    if cases.is_empty() || cases.len() > MAX_BULK_CASES {
        return Err(invalid("须列出 1 到 500 个案件", "list 1 to 500 cases"));
    }
    if transition.is_empty() {
        return Err(ApiError::invalid(vec![
            FieldError::new("required", "请填写要执行的操作", "transition is required").with_field("transition"),
        ]));
    }
    if cases.iter().any(String::is_empty) {
        return Err(invalid("案件编号不能为空", "a case id is empty"));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = cases.iter().find(|c| !seen.insert(c.as_str())) {
        return Err(invalid(
            &format!("案件 {twice} 列了两次"),
            &format!("case {twice} is listed twice"),
        ));
    }
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        // The key of each case's own request: the bulk key and the case.
        let idem = key.as_ref().map(|key| Idempotency {
            key: format!("{key}#{case}"),
            request_hash: request_hash(
                "POST",
                &format!("/api/v1/cases/{case}/transitions/{transition}"),
                &json!({ "input": input }),
            ),
        });
        let result = match state.engine.fire(actor, &case, transition, input, None, idem).await {
            // Only successes are answered (and kept under a key); refusals are errors.
            Ok(answer) => BulkResult {
                state: answer.body.get("state").and_then(Value::as_str).map(str::to_string),
                outcome: "done".into(),
                replayed: answer.replayed,
                problem: None,
                case,
            },
            Err(e) => BulkResult {
                outcome: "refused".into(),
                state: None,
                replayed: false,
                problem: Some(*ApiError::from(e).0),
                case,
            },
        };
        results.push(result);
    }
    let done = results.iter().filter(|r| r.outcome == "done").count();
    Ok(BulkReviewAnswer {
        refused: results.len() - done,
        done,
        results,
    })
}
