//! The review pages: the inbox (cases waiting for the school, filters, search, bulk
//! approve or return), a case (state, actions as the API gives them, data, history,
//! documents with page images, mail) and firing one of its actions.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Session, page, problem_page, session::field};
use crate::{
    definition::{Definition, Field, Role},
    domain::FieldError,
    engine::{input, view::CaseView},
    http::{AppState, documents::document_response, error::ApiError, reviews::review_many},
    store::CaseFilter,
};

/// Rows on one inbox page.
const PAGE_ROWS: i64 = 50;

pub async fn home(_session: Session) -> Redirect {
    Redirect::to("/console/inbox")
}

#[derive(Debug, Default, Deserialize)]
pub struct InboxQuery {
    pub q: Option<String>,
    pub college: Option<String>,
    pub workflow: Option<String>,
    /// The last row of the previous page: `{entered ms}.{case id}`.
    pub after: Option<String>,
}

/// The states cases wait for the school in (`review = true`), from every current
/// definition; for people who do not review, every state of their own cases.
fn review_states(state: &AppState) -> Vec<String> {
    let mut names: Vec<String> = state
        .engine
        .registry
        .all_current()
        .flat_map(|d| d.states.values().filter(|s| s.review).map(|s| s.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn reviews(role: Role) -> bool {
    matches!(role, Role::SchoolReviewer | Role::SchoolAdmin | Role::PlatformAdmin)
}

/// The transitions the person may fire from a review state (of `states`, when given: the
/// states of the cases listed), by name (the same name in several workflows is one
/// button), with the fields their forms ask for.
fn review_transitions(state: &AppState, role: Role, states: Option<&[String]>) -> Vec<(String, String, Vec<Field>)> {
    let mut out: Vec<(String, String, Vec<Field>)> = Vec::new();
    for def in state.engine.registry.all_current() {
        for t in &def.transitions {
            let from_review = t
                .from
                .iter()
                .any(|f| def.state(f).is_some_and(|s| s.review) && states.is_none_or(|listed| listed.contains(f)));
            let mine = def.roles_of(&t.by, role).next().is_some();
            if !from_review || !mine || t.upload.is_some() || t.download.is_some() {
                continue;
            }
            let fields = transition_fields(def, &t.name);
            match out.iter_mut().find(|(name, _, _)| *name == t.name) {
                Some((_, _, known)) => {
                    for f in fields {
                        if !known.iter().any(|k| k.name == f.name) {
                            known.push(f);
                        }
                    }
                }
                None => out.push((t.name.clone(), t.title.clone(), fields)),
            }
        }
    }
    out
}

/// Every field a transition's forms may ask for.
fn transition_fields(def: &Definition, transition: &str) -> Vec<Field> {
    def.transitions
        .iter()
        .filter(|t| t.name == transition)
        .flat_map(|t| t.input.iter())
        .filter_map(|i| def.forms.get(&i.form))
        .flat_map(|f| f.fields.iter().cloned())
        .collect()
}

/// "3 天 / 3 d", "5 小时 / 5 h": how long since an RFC 3339 moment.
fn waited(now: chrono::DateTime<chrono::Utc>, since: &str) -> (i64, String) {
    let Ok(at) = chrono::DateTime::parse_from_rfc3339(since) else {
        return (0, String::new());
    };
    let minutes = (now - at.with_timezone(&chrono::Utc)).num_minutes().max(0);
    let text = if minutes >= 24 * 60 {
        format!("{} 天 / {} d", minutes / 1440, minutes / 1440)
    } else if minutes >= 60 {
        format!("{} 小时 / {} h", minutes / 60, minutes / 60)
    } else {
        format!("{minutes} 分钟 / {minutes} min")
    };
    (minutes, text)
}

/// A moment as people in China read it: `2026-11-30 18:04`.
pub fn local_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| {
            t.with_timezone(&chrono_tz::Asia::Shanghai)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| rfc3339.to_string())
}

/// The review inbox: the school's cases waiting for review, longest waiting first.
pub async fn inbox(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<InboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let text =
        q.q.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
    if text.as_ref().is_some_and(|t| t.chars().count() > 100) {
        let e = ApiError::invalid(vec![
            FieldError::new("format", "搜索内容最多100个字", "at most 100 characters").with_field("q"),
        ]);
        return problem_page(Some(&session), e);
    }
    let after = q.after.as_deref().and_then(|a| {
        let (at, id) = a.split_once('.')?;
        Some((Some(at.parse::<i64>().ok()?), id.to_string()))
    });
    let role = session.actor.role;
    let blank = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let filter = CaseFilter {
        workflow: blank(&q.workflow),
        states: if reviews(role) {
            review_states(&state)
        } else {
            Vec::new()
        },
        student: None,
        employer: None,
        school: None,
        college: blank(&q.college),
        text: text.clone(),
        entered_before: None,
        by_waiting: true,
        after,
        limit: PAGE_ROWS + 1,
    };
    let mut rows = match state.engine.list(&session.actor, filter).await {
        Ok(rows) => rows,
        Err(e) => return problem_page(Some(&session), e.into()),
    };
    let more = rows.len() as i64 > PAGE_ROWS;
    rows.truncate(PAGE_ROWS as usize);
    let now = state.engine.now();
    let next = more
        .then(|| rows.last())
        .flatten()
        .and_then(|c| {
            chrono::DateTime::parse_from_rfc3339(&c.waiting_since)
                .ok()
                .map(|t| (t, c))
        })
        .map(|(t, c)| {
            // The next page keeps the filters.
            let mut url = format!("/console/inbox?after={}.{}", t.timestamp_millis(), urlencode(&c.id));
            for (k, v) in [("q", &text), ("college", &q.college), ("workflow", &q.workflow)] {
                if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                    url.push_str(&format!("&{k}={}", urlencode(v)));
                }
            }
            url
        });
    let cases: Vec<Value> = rows
        .iter()
        .map(|c| {
            let (minutes, waiting) = waited(now, &c.waiting_since);
            json!({
                "id": c.id, "workflow_title": c.workflow_title, "state_title": c.state_title,
                "student_name": c.student_name, "student_number": c.student_number,
                "college": c.college, "employer_name": c.employer_name, "position": c.position,
                "waiting": waiting, "late": minutes >= 3 * 1440,
                "deadline": c.deadline.as_deref().map(local_time),
            })
        })
        .collect();
    // One button per review transition the listed cases can take, and one input per field
    // those transitions ask for (one reason serves every return).
    let listed: Vec<String> = rows.iter().map(|c| c.state.clone()).collect();
    let transitions = if reviews(role) {
        review_transitions(&state, role, Some(&listed))
    } else {
        Vec::new()
    };
    let mut fields: Vec<&Field> = Vec::new();
    for f in transitions.iter().flat_map(|(_, _, fields)| fields) {
        if !fields.iter().any(|known| known.name == f.name) {
            fields.push(f);
        }
    }
    let workflows: Vec<Value> = state
        .engine
        .registry
        .all_current()
        .map(|d| json!({ "name": d.name, "title": d.title }))
        .collect();
    page(
        StatusCode::OK,
        "inbox.html",
        Some(&session),
        json!({
            "cases": cases, "next": next, "reviewing": reviews(role),
            "transitions": transitions.iter()
                .map(|(name, title, _)| json!({ "name": name, "title": title }))
                .collect::<Vec<_>>(),
            "fields": fields,
            "workflows": workflows,
            "filter": { "q": text, "college": q.college, "workflow": q.workflow },
        }),
    )
}

/// A case's page: `done` names the transition just fired.
#[derive(Debug, Default, Deserialize)]
pub struct CaseQuery {
    pub done: Option<String>,
}

pub async fn case(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    query: Result<Query<CaseQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let done = query.ok().and_then(|Query(q)| q.done);
    case_page(&state, &session, &id, StatusCode::OK, done, None).await
}

/// The case page with an optional notice of a transition done, or a refusal (at its status).
async fn case_page(
    state: &AppState,
    session: &Session,
    id: &str,
    status: StatusCode,
    done: Option<String>,
    refused: Option<ApiError>,
) -> Response {
    let view = match state.engine.view(id, &session.actor).await {
        Ok(v) => v,
        Err(e) => return problem_page(Some(session), e.into()),
    };
    let documents = match state.engine.documents(id, &session.actor).await {
        Ok(d) => d,
        Err(e) => return problem_page(Some(session), e.into()),
    };
    let role = session.actor.role;
    let mails = if reviews(role) {
        match state.engine.list_emails(None, Some(id)).await {
            Ok(m) => m,
            Err(e) => return problem_page(Some(session), e.into()),
        }
    } else {
        Vec::new()
    };
    let def = state.engine.registry.by_hash(&view.workflow_version);
    let done_title = done.as_deref().map(|name| transition_title(def.as_deref(), name));
    let ctx = json!({
        "case": case_context(&view, def.as_deref()),
        "documents": documents_context(&documents),
        "renders": documents.renders,
        "mails": mails.iter().map(|m| json!({
            "template": m.template, "to_role": m.to_role, "to_name": m.to_name,
            "to_address": m.to_address, "status": m.status, "attempts": m.attempts,
            "last_error": m.last_error, "at": local_time(m.sent_at.as_deref().unwrap_or(&m.created_at)),
        })).collect::<Vec<_>>(),
        "show_mails": reviews(role),
        "done": done_title,
        "refused": refused.map(|e| *e.0),
    });
    page(status, "case.html", Some(session), ctx)
}

fn transition_title(def: Option<&Definition>, name: &str) -> String {
    def.and_then(|d| d.transitions.iter().find(|t| t.name == name).map(|t| t.title.clone()))
        .or_else(|| def.filter(|d| d.start.name == name).map(|d| d.start.title.clone()))
        .unwrap_or_else(|| name.to_string())
}

fn state_title(def: Option<&Definition>, name: &str) -> String {
    def.and_then(|d| d.state(name).map(|s| s.title.clone()))
        .unwrap_or_else(|| name.to_string())
}

/// A value as one line of text.
fn shown(v: &Value) -> String {
    match v {
        // A moment (a deadline, when the agreement was issued) as people read it.
        Value::String(s) if s.len() > 19 && chrono::DateTime::parse_from_rfc3339(s).is_ok() => local_time(s),
        Value::String(s) => s.clone(),
        Value::Bool(true) => "是 / yes".into(),
        Value::Bool(false) => "否 / no".into(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn flat(v: &Value) -> Vec<Value> {
    match v {
        Value::Object(map) => input::flatten(map)
            .into_iter()
            .map(|(k, v)| json!({ "name": k, "value": shown(&v) }))
            .collect(),
        _ => Vec::new(),
    }
}

fn case_context(view: &CaseView, def: Option<&Definition>) -> Value {
    let history: Vec<Value> = view
        .history
        .iter()
        .rev()
        .map(|h| {
            json!({
                "title": transition_title(def, &h.transition), "transition": h.transition,
                "from": h.from.as_deref().map(|f| state_title(def, f)), "to": state_title(def, &h.to),
                "by": h.by, "at": local_time(&h.at), "input": flat(&h.input),
                "changes": h.changes.iter().map(|c| json!({
                    "field": c.field, "label": c.label, "old": shown(&c.old), "new": shown(&c.new),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "id": view.id, "workflow_title": view.workflow_title, "state": view.state,
        "state_title": view.state_title, "terminal": view.terminal, "version": view.version,
        "student": view.parties.student, "employer": view.parties.employer, "school": view.parties.school,
        "data": flat(&view.data), "history": history,
        "events": view.events.iter().map(|e| json!({
            "event": e.event, "state": state_title(def, &e.state), "to": e.to.join(", "),
            "at": local_time(&e.at), "resolved_at": e.resolved_at.as_deref().map(local_time),
        })).collect::<Vec<_>>(),
        "actions": view.actions,
        "created_at": local_time(&view.created_at),
        "updated_at": local_time(&view.updated_at),
    })
}

/// Current documents, each with its page images; replaced ones are left to the API.
fn documents_context(list: &crate::engine::documents::DocumentList) -> Vec<Value> {
    let current: Vec<_> = list.documents.iter().filter(|d| d.replaced_at.is_none()).collect();
    current
        .iter()
        .filter(|d| d.page == 0)
        .map(|d| {
            let pages: Vec<Value> = current
                .iter()
                .filter(|p| p.page > 0 && p.slot == d.slot && p.case_version == d.case_version)
                .map(|p| json!({ "id": p.id, "page": p.page }))
                .collect();
            json!({
                "id": d.id, "slot": d.slot, "file_name": d.file_name, "content_type": d.content_type,
                "size_kb": (d.size + 1023) / 1024, "added_by": d.added_by, "at": local_time(&d.created_at),
                "image": d.content_type.starts_with("image/"), "pages": pages,
            })
        })
        .collect()
}

/// The input a form gives a transition: each of its fields the form filled, typed by
/// the field's kind, at the field's path.
fn form_input(fields: &[Field], form: &[(String, String)]) -> Value {
    let mut input = Value::Object(Map::new());
    for f in fields {
        let Some(raw) = field(form, &format!("f.{}", f.name)) else {
            continue;
        };
        let value = match f.kind.as_str() {
            "boolean" => Value::Bool(raw == "true"),
            _ if raw.trim().is_empty() => continue,
            "integer" => raw
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or(Value::String(raw.into())),
            _ => Value::String(raw.to_string()),
        };
        input::set_path(&mut input, &f.name, value);
    }
    input
}

/// Fires one of the case's actions from its form, through the engine's one transition
/// path, with the version the page showed (a stale page is refused, 412).
pub async fn fire(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = session.check_form(&state, &form) {
        return problem_page(Some(&session), e);
    }
    let transition = field(&form, "transition").unwrap_or_default().to_string();
    let version = field(&form, "version").and_then(|v| v.parse::<i64>().ok());
    let fields = match state.engine.view(&id, &session.actor).await {
        Ok(view) => view
            .actions
            .into_iter()
            .find(|a| a.name == transition)
            .map(|a| a.fields)
            .unwrap_or_default(),
        Err(e) => return problem_page(Some(&session), e.into()),
    };
    let input = form_input(&fields, &form);
    match state
        .engine
        .fire(&session.actor, &id, &transition, &input, version, None)
        .await
    {
        Ok(_) => Redirect::to(&format!(
            "/console/cases/{}?done={}",
            urlencode(&id),
            urlencode(&transition)
        ))
        .into_response(),
        Err(e) => {
            let e: ApiError = e.into();
            let status = StatusCode::from_u16(e.0.status).unwrap_or(StatusCode::CONFLICT);
            case_page(&state, &session, &id, status, None, Some(e)).await
        }
    }
}

/// Several selected cases approved, or returned with one reason: the API's bulk review.
pub async fn bulk(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = session.check_form(&state, &form) {
        return problem_page(Some(&session), e);
    }
    let transition = field(&form, "transition").unwrap_or_default().to_string();
    let cases: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "case")
        .map(|(_, v)| v.clone())
        .collect();
    let fields: Vec<Field> = review_transitions(&state, session.actor.role, None)
        .into_iter()
        .find(|(name, _, _)| *name == transition)
        .map(|(_, _, fields)| fields)
        .unwrap_or_default();
    let input = form_input(&fields, &form);
    let answer = match review_many(&state, &session.actor, &transition, &input, cases, None).await {
        Ok(a) => a,
        Err(e) => return problem_page(Some(&session), e),
    };
    let title = state
        .engine
        .registry
        .all_current()
        .find_map(|d| {
            d.transitions
                .iter()
                .find(|t| t.name == transition)
                .map(|t| t.title.clone())
        })
        .unwrap_or(transition);
    page(
        StatusCode::OK,
        "bulk.html",
        Some(&session),
        json!({ "title": title, "done": answer.done, "refused": answer.refused, "results": answer.results }),
    )
}

/// A document or page image, read as the API reads it (the same rules of who may read
/// which slot in which state).
pub async fn document(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match state.engine.read_document(&id, &session.actor).await {
        Ok((doc, bytes)) => document_response(&doc, bytes, &headers),
        Err(e) => problem_page(Some(&session), e.into()),
    }
}

/// Percent-encodes a path or query part.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}
