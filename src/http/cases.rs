//! Cases: start one, read one, list them, fire a transition.

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::{
    AppState,
    error::{ApiError, Problem},
    extract::{Body, Caller, idempotency_key, if_match},
};
use crate::{
    engine::{
        service::{Answer, Idempotency, Start},
        view::{CaseSummary, CaseView},
    },
    store::CaseFilter,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartCase {
    /// The workflow to start: `online_signing`, `offline_signing` or
    /// `destination_registration`.
    #[schema(min_length = 1)]
    pub workflow: String,
    /// The student the case is about (omit when the caller is the student).
    pub student: Option<String>,
    /// The employer, when someone other than the employer starts a workflow whose start
    /// is the employer's (a platform admin inviting on its behalf).
    pub employer: Option<String>,
    /// The start transition's input, e.g. the invitation's terms and deadline.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Option<Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FireTransition {
    /// The transition's input: the fields its forms ask for.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only cases of this workflow, e.g. `online_signing`.
    pub workflow: Option<String>,
    /// Only cases in one of these states, comma-separated: `submitted,change_submitted`.
    pub state: Option<String>,
    /// Only this student's cases (a student always sees only their own).
    pub student: Option<String>,
    /// Only this employer's cases (an employer always sees only its own).
    pub employer: Option<String>,
    /// Only cases of this school's students (school staff always see only their school's).
    pub school: Option<String>,
    /// Only cases of students of this college (院系).
    pub college: Option<String>,
    /// Text in the student's name or number or the employer's name.
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// Only cases that have waited in their state longer than this many days.
    #[param(minimum = 0, maximum = 3650)]
    pub waiting_days: Option<i64>,
    /// `created` (default: oldest case first) or `waiting` (longest waiting first).
    #[param(inline)]
    pub sort: Option<ListSort>,
    /// At most this many (1–200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (with the same filters and sort).
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ListSort {
    Created,
    Waiting,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CaseList {
    pub cases: Vec<CaseSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The hash an idempotency key is tied to: method, path and the canonical JSON body.
pub(super) fn request_hash(method: &str, path: &str, body: &Value) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b" ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    hex::encode(h.finalize())
}

fn idempotency(headers: &HeaderMap, method: &str, path: &str, body: &Value) -> Result<Option<Idempotency>, ApiError> {
    Ok(idempotency_key(headers)?.map(|key| Idempotency {
        key,
        request_hash: request_hash(method, path, body),
    }))
}

/// The engine's answer as a response, with the case version as `ETag`.
fn answer(a: Answer) -> Response {
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(&a.body)).into_response();
    let headers = response.headers_mut();
    if let Some(version) = a.body.get("version").and_then(Value::as_i64)
        && let Ok(v) = HeaderValue::from_str(&format!("\"{version}\""))
    {
        headers.insert(header::ETAG, v);
    }
    if status == StatusCode::CREATED
        && let Some(id) = a.body.get("id").and_then(Value::as_str)
        && let Ok(v) = HeaderValue::from_str(&format!("/api/v1/cases/{id}"))
    {
        headers.insert(header::LOCATION, v);
    }
    if a.replayed {
        headers.insert("idempotent-replay", HeaderValue::from_static("true"));
    }
    response
}

/// Start a case of a workflow (for online signing: an employer invites a student).
#[utoipa::path(post, path = "/api/v1/cases", operation_id = "start_case", request_body = StartCase, tag = "cases",
    params(("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,200}$",
        description = "same key and body → same answer, no second case")),
    responses((status = 201, body = CaseView, description = "the new case"), (status = 403, body = Problem, description = "the caller's role does not start this workflow"),
        (status = 409, body = Problem, description = "a claim the case needs is held, or a condition is not met")),
    security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    body: Body<StartCase>,
) -> Result<Response, ApiError> {
    let raw: Value = serde_json::from_slice(&body.bytes).unwrap_or(Value::Null);
    let idem = idempotency(&headers, "POST", "/api/v1/cases", &raw)?;
    let StartCase {
        workflow,
        student,
        employer,
        input,
    } = body.value;
    let input = Value::Object(input.unwrap_or_default());
    let a = state
        .engine
        .start(
            &actor,
            Start {
                workflow,
                student,
                employer,
                input,
            },
            idem,
        )
        .await?;
    Ok(answer(a))
}

/// A case as the caller sees it, with the caller's actions.
#[utoipa::path(get, path = "/api/v1/cases/{id}", operation_id = "get_case", tag = "cases",
    params(("id" = String, Path, description = "the case")),
    responses((status = 200, body = CaseView, description = "the case"), (status = 403, body = Problem, description = "not the caller's case")),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = state.engine.view(&id, &actor).await?;
    let body = serde_json::to_value(&view).map_err(ApiError::internal)?;
    Ok(answer(Answer {
        status: 200,
        body,
        replayed: false,
    }))
}

/// The caller's cases: a student's own, an employer's invitations, a school's students'.
#[utoipa::path(get, path = "/api/v1/cases", operation_id = "list_cases", tag = "cases", params(ListQuery),
    responses((status = 200, body = CaseList, description = "a page of cases"), (status = 422, body = Problem, description = "`limit` or `waiting_days` out of range, `q` too long, or a cursor of another sort")),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CaseList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::malformed(e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid(vec![
            crate::domain::FieldError::new("range", "limit 须在 1 到 200 之间", "limit must be 1 to 200")
                .with_field("limit"),
        ]));
    }
    // One more than asked: whether there is a next page.
    let filter = case_filter(&state, q, limit + 1)?;
    let by_waiting = filter.by_waiting;
    let mut cases = state.engine.list(&actor, filter).await?;
    let next_cursor = if cases.len() as i64 > limit {
        cases.truncate(limit as usize);
        cases.last().map(|c| cursor_after(c, by_waiting))
    } else {
        None
    };
    Ok(Json(CaseList { cases, next_cursor }))
}

/// What a list query asks for, checked: the filters, the sort and where to start.
pub(super) fn case_filter(state: &AppState, q: ListQuery, limit: i64) -> Result<CaseFilter, ApiError> {
    let by_waiting = q.sort == Some(ListSort::Waiting);
    let bad = |field: &str, zh: &str, en: &str| {
        ApiError::invalid(vec![crate::domain::FieldError::new("format", zh, en).with_field(field)])
    };
    let after = match q.cursor {
        None => None,
        Some(cursor) if by_waiting => {
            let parsed = cursor
                .split_once('.')
                .and_then(|(at, id)| Some((Some(at.parse::<i64>().ok()?), id.to_string())));
            Some(parsed.ok_or_else(|| bad("cursor", "翻页标记无效", "not a cursor of this sort"))?)
        }
        Some(cursor) => Some((None, cursor)),
    };
    let text = q.q.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    if text.as_ref().is_some_and(|t| t.chars().count() > 100) {
        return Err(bad("q", "搜索内容最多100个字", "at most 100 characters"));
    }
    let entered_before = match q.waiting_days {
        None => None,
        Some(days) if (0..=3650).contains(&days) => Some(crate::store::millis(state.engine.now()) - days * 86_400_000),
        Some(_) => return Err(bad("waiting_days", "天数须在 0 到 3650 之间", "must be 0 to 3650")),
    };
    Ok(CaseFilter {
        workflow: q.workflow,
        states: q
            .state
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        student: q.student,
        employer: q.employer,
        school: q.school,
        college: q.college,
        text,
        entered_before,
        by_waiting,
        after,
        limit,
    })
}

/// Where the page after `last` starts, in the filter's order: its time in its state
/// (longest waiting first) and its id.
pub(super) fn resume_after(last: &CaseSummary, by_waiting: bool) -> (Option<i64>, String) {
    let at = by_waiting.then(|| {
        chrono::DateTime::parse_from_rfc3339(&last.waiting_since)
            .map(|t| t.timestamp_millis())
            .unwrap_or_default()
    });
    (at, last.id.clone())
}

/// [`resume_after`] as the `cursor` a client passes back.
fn cursor_after(last: &CaseSummary, by_waiting: bool) -> String {
    match resume_after(last, by_waiting) {
        (Some(at), id) => format!("{at}.{id}"),
        (None, id) => id,
    }
}

/// Fire a transition. `If-Match` with the case version refuses a stale write (412).
#[utoipa::path(post, path = "/api/v1/cases/{id}/transitions/{name}", operation_id = "fire_transition", request_body = FireTransition, tag = "cases",
    params(("id" = String, Path, description = "the case"), ("name" = String, Path, description = "the transition, e.g. `accept`"),
        ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]{1,200}$",
            description = "same key and body → same answer, no second effect"),
        ("If-Match" = Option<String>, Header, pattern = r#"^(\*|(W/)?"?[0-9]{1,18}"?)$"#,
            description = "the case version, e.g. \"3\"; a stale one is refused with 412")),
    responses((status = 200, body = CaseView, description = "the case after the transition"),
        (status = 403, body = Problem, description = "not the caller's case, or not the caller's transition"),
        (status = 409, body = Problem, description = "not allowed in the case's state, a condition not met, or a claim held"),
        (status = 412, body = Problem, description = "`If-Match` names an older version")),
    security(("bearer" = [])))]
pub async fn fire(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body<FireTransition>,
) -> Result<Response, ApiError> {
    let raw: Value = serde_json::from_slice(&body.bytes).unwrap_or(Value::Null);
    let idem = idempotency(
        &headers,
        "POST",
        &format!("/api/v1/cases/{id}/transitions/{name}"),
        &raw,
    )?;
    let if_match = if_match(&headers)?;
    let input = Value::Object(body.value.input.unwrap_or_default());
    let a = state.engine.fire(&actor, &id, &name, &input, if_match, idem).await?;
    Ok(answer(a))
}
