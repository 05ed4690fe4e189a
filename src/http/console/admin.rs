//! The administrators' pages: statistics with server-drawn SVG charts, overdue reviews,
//! the mail log (failed sends, resend), the queues, and the definitions (versions,
//! source, diff, publish with the checker's problems by line, activate). Each page calls
//! the JSON API's own handler or engine function, so it answers with the same rules.

use axum::{
    Form, Json,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Session, page, pages::local_time, pages::urlencode, problem_page, session::field};
use std::collections::BTreeMap;

use crate::{
    domain::FieldError,
    engine::{
        service::EngineError,
        versions::{MigrationPlan, TimerPolicy, problem_items},
    },
    http::{
        AppState, admin as api_admin,
        error::ApiError,
        exports as api_exports,
        extract::Caller,
        statistics::{self as api_statistics, GroupByParam, StatisticsQuery},
        workflows::platform_admin,
    },
};

fn caller(session: &Session) -> Caller {
    Caller(session.actor.clone())
}

/// Escapes text for SVG and HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A horizontal bar chart: one bar per (label, value, text shown), scaled to `max`.
pub fn bar_chart(title: &str, bars: &[(String, f64, String)], max: f64) -> String {
    let row = 26.0;
    let label_w = 180.0;
    let bar_w = 260.0;
    let height = 28.0 + row * bars.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {height}" role="img" aria-label="{t}" class="chart"><title>{t}</title>"#,
        w = label_w + bar_w + 90.0,
        t = escape(title)
    );
    for (i, (label, value, text)) in bars.iter().enumerate() {
        let y = 20.0 + row * i as f64;
        let w = if max > 0.0 {
            (value / max).clamp(0.0, 1.0) * bar_w
        } else {
            0.0
        };
        svg.push_str(&format!(
            r#"<text x="{lx}" y="{ty}" text-anchor="end" class="label">{l}</text><rect x="{x}" y="{y}" width="{w:.1}" height="18" rx="2" class="bar"/><text x="{vx:.1}" y="{ty}" class="value">{v}</text>"#,
            lx = label_w - 8.0,
            ty = y + 13.0,
            l = escape(label),
            x = label_w,
            vx = label_w + w + 6.0,
            v = escape(text),
        ));
    }
    svg.push_str("</svg>");
    svg
}

#[derive(Debug, Default, Deserialize)]
pub struct StatisticsForm {
    pub school: Option<String>,
    pub graduation_year: Option<String>,
    pub as_of: Option<String>,
}

/// Destination statistics of the school (or the province): 落实率 per college and the
/// graduates per destination group, drawn as SVG on the server.
pub async fn statistics(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<StatisticsForm>, QueryRejection>,
) -> Response {
    let form = query.map(|Query(q)| q).unwrap_or_default();
    let blank = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let year = match blank(form.graduation_year.clone()).map(|y| y.parse::<i32>()) {
        None => None,
        Some(Ok(y)) => Some(y),
        Some(Err(_)) => Some(0),
    };
    let q = StatisticsQuery {
        school: blank(form.school.clone()),
        group_by: Some(GroupByParam::College),
        as_of: blank(form.as_of.clone()),
        graduation_year: year,
        formula: None,
    };
    let stats = match api_statistics::destinations(State(state.clone()), caller(&session), Ok(Query(q))).await {
        Ok(Json(s)) => s,
        Err(e) => return problem_page(Some(&session), e),
    };
    let rates: Vec<(String, f64, String)> = stats
        .groups
        .iter()
        .map(|g| {
            let key = g
                .key
                .clone()
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "（未填写 / blank）".into());
            (
                key,
                g.rate,
                format!("{:.1}% ({}/{})", g.rate * 100.0, g.placed, g.graduates),
            )
        })
        .collect();
    let max_group = stats.total.by_group.values().copied().max().unwrap_or(0) as f64;
    let groups: Vec<(String, f64, String)> = stats
        .total
        .by_group
        .iter()
        .map(|(k, n)| (group_title(k), *n as f64, n.to_string()))
        .chain(std::iter::once((
            "无去向 / without a destination".to_string(),
            stats.total.without_destination as f64,
            stats.total.without_destination.to_string(),
        )))
        .collect();
    let max_group = max_group.max(stats.total.without_destination as f64);
    let mut export = String::new();
    let year = stats.graduation_year.map(|y| y.to_string());
    for (k, v) in [("school", &stats.school), ("graduation_year", &year)] {
        if let Some(v) = v {
            export.push_str(&format!(
                "{}{k}={}",
                if export.is_empty() { "?" } else { "&" },
                urlencode(v)
            ));
        }
    }
    page(
        StatusCode::OK,
        "statistics.html",
        Some(&session),
        json!({
            "stats": stats,
            "rate_percent": format!("{:.1}", stats.total.rate * 100.0),
            "rate_chart": bar_chart("毕业去向落实率（按院系） / placement rate by college", &rates, 1.0),
            "group_chart": bar_chart("去向分布 / graduates by destination", &groups, max_group),
            "form": { "school": form.school, "graduation_year": form.graduation_year, "as_of": form.as_of },
            "export": export,
        }),
    )
}

/// A destination group's name in both languages (`agreement_or_contract` → 协议和合同就业).
fn group_title(group: &str) -> String {
    crate::domain::Reference::builtin()
        .categories()
        .iter()
        .find(|c| c.group == group)
        .map(|c| format!("{} / {group}", c.group_zh))
        .unwrap_or_else(|| group.to_string())
}

/// The destination export as CSV, as `GET /api/v1/exports/destinations.csv` answers it.
pub async fn export_csv(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<api_exports::ExportQuery>, QueryRejection>,
) -> Response {
    match api_exports::destinations_csv(State(state), caller(&session), query).await {
        Ok(r) => r,
        Err(e) => problem_page(Some(&session), e),
    }
}

/// The destination export as XLSX.
pub async fn export_xlsx(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<api_exports::ExportQuery>, QueryRejection>,
) -> Response {
    match api_exports::destinations_xlsx(State(state), caller(&session), query).await {
        Ok(r) => r,
        Err(e) => problem_page(Some(&session), e),
    }
}

/// Reviews escalated for waiting too long, as `GET /api/v1/reviews/overdue` lists them.
pub async fn overdue(State(state): State<AppState>, session: Session) -> Response {
    let rows = match api_admin::overdue(State(state.clone()), caller(&session)).await {
        Ok(Json(rows)) => rows,
        Err(e) => return problem_page(Some(&session), e),
    };
    let rows: Vec<Value> = rows
        .iter()
        .map(|o| {
            let title = state
                .engine
                .registry
                .current(&o.workflow)
                .and_then(|d| d.state(&o.state).map(|s| s.title.clone()))
                .unwrap_or_else(|| o.state.clone());
            json!({
                "case_id": o.case_id, "state_title": title, "student_id": o.student_id,
                "school_id": o.school_id, "level": o.level, "escalated_to": o.escalated_to,
                "escalated_at": local_time(&o.escalated_at), "waiting_since": local_time(&o.waiting_since),
                "waited_days": o.waited_hours / 24, "waited_hours": o.waited_hours % 24,
            })
        })
        .collect();
    page(
        StatusCode::OK,
        "mail.html",
        Some(&session),
        json!({ "overdue": rows, "view": "overdue" }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct MailQuery {
    pub status: Option<String>,
}

/// The mail log (platform admins), failed sends first to hand, with resend.
pub async fn mail(
    State(state): State<AppState>,
    session: Session,
    query: Result<Query<MailQuery>, QueryRejection>,
) -> Response {
    let status = query.ok().and_then(|Query(q)| q.status).filter(|s| !s.is_empty());
    let q = api_admin::EmailQuery {
        status: status.clone(),
        case: None,
    };
    let mails = match api_admin::emails(State(state), caller(&session), Ok(Query(q))).await {
        Ok(Json(m)) => m,
        Err(e) => return problem_page(Some(&session), e),
    };
    let rows: Vec<Value> = mails
        .iter()
        .rev()
        .take(500)
        .map(|m| {
            json!({
                "id": m.id, "case_id": m.case_id, "template": m.template, "to_role": m.to_role,
                "to_name": m.to_name, "to_address": m.to_address, "status": m.status,
                "attempts": m.attempts, "last_error": m.last_error,
                "at": local_time(m.sent_at.as_deref().unwrap_or(&m.created_at)),
            })
        })
        .collect();
    page(
        StatusCode::OK,
        "mail.html",
        Some(&session),
        json!({ "mails": rows, "status": status, "view": "mail" }),
    )
}

/// The renders that failed, with the reason (platform admins).
pub async fn renders(State(state): State<AppState>, session: Session) -> Response {
    if let Err(e) = platform_admin(&session.actor) {
        return problem_page(Some(&session), e);
    }
    let rows = match state.engine.failed_renders().await {
        Ok(r) => r,
        Err(e) => return problem_page(Some(&session), e.into()),
    };
    let rows: Vec<Value> = rows
        .iter()
        .map(|(case, r)| {
            json!({ "case_id": case, "slot": r.slot, "case_version": r.case_version, "attempts": r.attempts,
                "error": r.error, "at": local_time(&r.updated_at) })
        })
        .collect();
    page(
        StatusCode::OK,
        "mail.html",
        Some(&session),
        json!({ "renders": rows, "view": "renders" }),
    )
}

/// Queues a failed mail again, as `POST /api/v1/emails/{id}/resend` does.
pub async fn resend(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = session.check_form(&state, &form) {
        return problem_page(Some(&session), e);
    }
    match api_admin::resend(State(state), caller(&session), Path(id)).await {
        Ok(_) => Redirect::to("/console/mail?status=failed").into_response(),
        Err(e) => problem_page(Some(&session), e),
    }
}

/// Per queue: jobs waiting, running, failed, and how long the oldest has waited.
pub async fn queues(State(state): State<AppState>, session: Session) -> Response {
    if let Err(e) = platform_admin(&session.actor) {
        return problem_page(Some(&session), e);
    }
    let gauges = match state.engine.queue_gauges().await {
        Ok(g) => g,
        Err(e) => return problem_page(Some(&session), e.into()),
    };
    let idle = state.engine.queues_without_workers().await.unwrap_or_default();
    let rows: Vec<Value> = gauges
        .iter()
        .map(|g| {
            json!({
                "queue": g.queue, "waiting": g.waiting, "running": g.running, "failed": g.failed,
                "oldest": g.oldest_waiting_seconds as i64, "idle": idle.contains(&g.queue),
            })
        })
        .collect();
    page(StatusCode::OK, "queues.html", Some(&session), json!({ "queues": rows }))
}

/// A platform admin's form: its CSRF token checked, then the role.
fn admin_form(state: &AppState, session: &Session, form: &[(String, String)]) -> Result<(), ApiError> {
    session
        .check_form(state, form)
        .and_then(|()| platform_admin(&session.actor))
}

/// Puts a queue's failed jobs back to wait (platform admins).
pub async fn retry_queue(
    State(state): State<AppState>,
    session: Session,
    Path(queue): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = admin_form(&state, &session, &form) {
        return problem_page(Some(&session), e);
    }
    match state.engine.retry_failed_jobs(&queue).await {
        Ok(n) => {
            tracing::info!(queue = %queue, jobs = n, who = %session.actor.who(), "failed jobs retried from the console");
            Redirect::to(&format!("/console/queues?retried={n}")).into_response()
        }
        Err(e) => problem_page(Some(&session), e.into()),
    }
}

/// Every workflow with its active version.
pub async fn definitions(State(state): State<AppState>, session: Session) -> Response {
    if let Err(e) = platform_admin(&session.actor) {
        return problem_page(Some(&session), e);
    }
    match state.engine.workflows().await {
        Ok(w) => page(
            StatusCode::OK,
            "definitions.html",
            Some(&session),
            json!({ "workflows": w }),
        ),
        Err(e) => problem_page(Some(&session), e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DefinitionQuery {
    /// The version shown (default: the active one).
    pub v: Option<String>,
}

/// One workflow: its versions with live cases and diffs, a version's source, and the
/// form to publish a new one.
pub async fn definition(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    query: Result<Query<DefinitionQuery>, QueryRejection>,
) -> Response {
    let shown = query.ok().and_then(|Query(q)| q.v);
    definition_page(&state, &session, &name, shown, StatusCode::OK, None, None, None).await
}

#[allow(clippy::too_many_arguments)]
async fn definition_page(
    state: &AppState,
    session: &Session,
    name: &str,
    shown: Option<String>,
    status: StatusCode,
    draft: Option<String>,
    problems: Option<Value>,
    migrated: Option<Value>,
) -> Response {
    if let Err(e) = platform_admin(&session.actor) {
        return problem_page(Some(session), e);
    }
    let versions = match state.engine.versions(name).await {
        Ok(v) => v,
        Err(e) => return problem_page(Some(session), e.into()),
    };
    let hash = shown
        .filter(|h| versions.iter().any(|v| &v.hash == h))
        .or_else(|| versions.iter().find(|v| v.active).map(|v| v.hash.clone()))
        .or_else(|| versions.first().map(|v| v.hash.clone()));
    let source = match &hash {
        Some(h) => state.engine.version_source(name, h).await.unwrap_or_default(),
        None => String::new(),
    };
    let live = hash
        .as_ref()
        .and_then(|h| versions.iter().find(|v| &v.hash == h))
        .map(|v| v.live_cases.clone())
        .unwrap_or_default();
    let graph = hash
        .as_ref()
        .and_then(|h| state.engine.registry.by_hash(h))
        .or_else(|| {
            crate::definition::Definition::parse(&format!("{name}.toml"), &source, state.engine.registry.catalog())
                .ok()
                .map(std::sync::Arc::new)
        })
        .map(|def| crate::definition::graph::svg(&def, &live))
        .unwrap_or_default();
    // For a version not yet active: what activating it and moving the live cases of the
    // others onto it would do (read only, by state name).
    let shown_active = hash
        .as_ref()
        .is_some_and(|h| versions.iter().any(|v| &v.hash == h && v.active));
    let impact = match &hash {
        Some(h) if !shown_active => state
            .engine
            .impact(name, h, &std::collections::BTreeMap::new())
            .await
            .ok(),
        _ => None,
    };
    // With the checker's problems, the lines shown are the draft's, which they name.
    let listed = match (&problems, &draft) {
        (Some(_), Some(d)) => d.clone(),
        _ => source.clone(),
    };
    let lines: Vec<Value> = listed
        .lines()
        .enumerate()
        .map(|(i, l)| json!({ "n": i + 1, "text": l }))
        .collect();
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "hash": v.hash, "short": &v.hash[..v.hash.len().min(12)], "active": v.active,
                "published_at": local_time(&v.published_at.to_rfc3339()), "published_by": v.published_by,
                "live_cases": v.live_cases, "diff": v.diff,
            })
        })
        .collect();
    page(
        status,
        "definitions.html",
        Some(session),
        json!({
            "name": name, "versions": versions, "shown": hash, "lines": lines, "graph": graph, "impact": impact,
            "draft": draft.unwrap_or(source), "problems": problems, "migrated": migrated,
        }),
    )
}

/// Publishes a new version from the form; the checker's problems come back with lines.
pub async fn publish(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = admin_form(&state, &session, &form) {
        return problem_page(Some(&session), e);
    }
    let source = field(&form, "source").unwrap_or_default().replace("\r\n", "\n");
    match state.engine.publish(&session.actor, &name, &source).await {
        Ok(p) => Redirect::to(&format!(
            "/console/definitions/{}?v={}",
            urlencode(&name),
            urlencode(&p.hash)
        ))
        .into_response(),
        Err(EngineError::InvalidDefinition(e)) => {
            let items = problem_items(&e);
            definition_page(
                &state,
                &session,
                &name,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(source),
                Some(json!(items)),
                None,
            )
            .await
        }
        Err(e) => problem_page(Some(&session), ApiError::from(e)),
    }
}

/// Moves the live cases of the workflow's other versions onto this one, as
/// `POST /api/v1/workflows/{name}/versions/{hash}/migrate` does: the states renamed
/// (`old=new`, a line each) and a policy per timer (`name=keep|recompute|cancel`); each case
/// in its own transaction, those that cannot move listed with the reason.
pub async fn migrate(
    State(state): State<AppState>,
    session: Session,
    Path((name, hash)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = admin_form(&state, &session, &form) {
        return problem_page(Some(&session), e);
    }
    let pairs = |key: &str| -> Vec<(String, String)> {
        field(&form, key)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .collect()
    };
    let states: BTreeMap<String, String> = pairs("states").into_iter().collect();
    let mut timers = BTreeMap::new();
    for (timer, policy) in pairs("timers") {
        let Ok(policy) = serde_json::from_value::<TimerPolicy>(json!(policy)) else {
            return problem_page(
                Some(&session),
                ApiError::invalid(vec![
                    FieldError::new(
                        "format",
                        "计时器的处理方式须为 keep、recompute 或 cancel",
                        "a timer's policy is keep, recompute or cancel",
                    )
                    .with_field("timers"),
                ]),
            );
        };
        timers.insert(timer, policy);
    }
    // Every live case of the other versions, as the impact lists them.
    let cases = match state.engine.impact(&name, &hash, &states).await {
        Ok(impact) => impact.groups.into_iter().flat_map(|g| g.cases).collect(),
        Err(e) => return problem_page(Some(&session), e.into()),
    };
    let plan = MigrationPlan { cases, states, timers };
    match state.engine.migrate(&session.actor, &name, &hash, &plan).await {
        Ok(m) => {
            let migrated = json!({ "moved": m.moved.len(), "unmoved": m.unmoved.iter()
                .map(|u| json!({ "id": u.id, "reason": u.reason })).collect::<Vec<_>>() });
            definition_page(
                &state,
                &session,
                &name,
                Some(hash),
                StatusCode::OK,
                None,
                None,
                Some(migrated),
            )
            .await
        }
        Err(e) => problem_page(Some(&session), e.into()),
    }
}

/// Makes a version the active one.
pub async fn activate(
    State(state): State<AppState>,
    session: Session,
    Path((name, hash)): Path<(String, String)>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(e) = admin_form(&state, &session, &form) {
        return problem_page(Some(&session), e);
    }
    match state.engine.activate(&session.actor, &name, &hash).await {
        Ok(_) => Redirect::to(&format!("/console/definitions/{}", urlencode(&name))).into_response(),
        Err(e) => problem_page(Some(&session), e.into()),
    }
}
