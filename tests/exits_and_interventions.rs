//! Exits from every waiting state, R3 view-only, no proxy signing, and races and refusals
//! of the change requests (issue 10), through HTTP on SQLite and PostgreSQL.

mod support;

use chrono::Duration as Days;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, Reply, TestApp, action, spawn_seeded};

on_both_backends!(
    an_acceptance_not_confirmed_in_time_lapses_and_frees_the_student,
    the_student_may_back_out_before_signing,
    a_signed_student_can_only_view_other_invitations,
    a_platform_admin_cannot_sign_for_a_party_but_intervenes_with_a_reason,
    two_termination_requests_at_once_make_one_request,
    a_withdrawal_and_a_correction_racing_on_one_registration_have_one_winner,
    refused_change_requests_answer_problem_json_and_change_nothing,
);

/// An invitation from `employer` to `student`, opened and accepted: awaiting 现在签约.
async fn accepted(app: &TestApp, employer: &str, student: &str) -> String {
    let case = app.invite(employer, student).await.id();
    let token = app.student(student);
    app.fire(&case, "view", &token, json!({})).await;
    // E2 and E3 do not take the 档案 and 户口: the student says where they go (R7).
    let files = json!({ "terms": { "archive_unit": "黑龙江省人才服务中心", "archive_address": "哈尔滨市南岗区中山路 1 号",
        "hukou_unit": "哈尔滨市公安局南岗分局", "hukou_address": "哈尔滨市南岗区学府路 2 号" } });
    let input = if employer == "E1" { json!({}) } else { files };
    let r = app.fire(&case, "accept", &token, input).await;
    assert_eq!(r.body["state"], "confirming", "{}", r.body);
    case
}

/// The refusal is `problem+json` with `status` and `type`.
fn assert_problem(reply: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.problem(), kind, "{}", reply.body);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert!(!reply.body["detail_zh"].as_str().unwrap_or_default().is_empty());
}

async fn an_acceptance_not_confirmed_in_time_lapses_and_frees_the_student(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = accepted(&app, "E1", "S3").await;
    let s3 = app.student("S3");
    let view = app.case(&case, &s3).await.body;
    assert_eq!(view["timers"][0]["fire"], "lapse", "confirming has a validity: {view}");
    app.clock.advance(Days::days(2));
    app.sweep_through_worker().await;
    assert_eq!(app.case(&case, &s3).await.body["state"], "confirming");
    assert_eq!(app.app.engine.sweep_timers().await.unwrap(), 0, "not due yet");

    app.clock.advance(Days::days(2));
    app.sweep_through_worker().await;
    let lapsed = app
        .wait_for_case(&case, &s3, "the lapse", |c| c["state"] == "lapsed")
        .await;
    assert_eq!(lapsed["terminal"], true);
    assert_eq!(lapsed["history"].as_array().unwrap().last().unwrap()["actor"], "system");
    assert_eq!(app.count("claims WHERE key = 'destination:S3'").await, 0);
    accepted(&app, "E2", "S3").await;
}

async fn the_student_may_back_out_before_signing(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = accepted(&app, "E1", "S2").await;
    let s2 = app.student("S2");
    assert_eq!(action(&app.case(&case, &s2).await.body, "back_out")["enabled"], true);
    let backed = app
        .fire(&case, "back_out", &s2, json!({ "decline_reason": "决定继续升学" }))
        .await;
    assert_eq!(backed.body["state"], "declined", "{}", backed.body);
    assert!(
        backed.body["timers"].as_array().unwrap().is_empty(),
        "the validity timer ends"
    );
    assert_eq!(app.count("claims WHERE key = 'destination:S2'").await, 0);
    accepted(&app, "E2", "S2").await;
}

async fn a_signed_student_can_only_view_other_invitations(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let s1 = app.student("S1");
    let pending = app.invite("E2", "S1").await.id();
    let signed = app.sign_online("E1", "S1").await;
    // R4: invitations may still arrive, and may be opened.
    let later = app.invite("E3", "S1").await.id();
    for other in [&pending, &later] {
        let opened = app.fire(other, "view", &s1, json!({})).await;
        assert_eq!(opened.body["state"], "viewed", "{}", opened.body);
        for name in ["accept", "reject"] {
            let a = action(&opened.body, name);
            assert_eq!(a["enabled"], false, "{name}: {a}");
            assert!(a["reason"]["zh"].as_str().unwrap().contains("已与其他单位签约"), "{a}");
            assert!(!a["reason"]["en"].as_str().unwrap().is_empty(), "{a}");
        }
        let files = json!({ "terms": { "archive_unit": "某人才中心", "archive_address": "某地址 1 号", "hukou_unit": "某派出所", "hukou_address": "某地址 2 号" } });
        let accept = app.fire(other, "accept", &s1, files).await;
        assert_problem(&accept, StatusCode::CONFLICT, "claim-held");
        assert_eq!(accept.body["held_by_case"], signed.as_str());
        let reject = app.fire(other, "reject", &s1, json!({})).await;
        assert_problem(&reject, StatusCode::CONFLICT, "condition-not-met");
        assert!(
            reject.body["detail"].as_str().unwrap().contains("viewed only"),
            "{}",
            reject.body
        );
        assert_eq!(app.case(other, &s1).await.body["version"], opened.body["version"]);
    }
}

async fn a_platform_admin_cannot_sign_for_a_party_but_intervenes_with_a_reason(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let admin = app.admin();
    let s2 = app.student("S2");
    let case = app.invite("E1", "S2").await.id();
    app.fire(&case, "view", &s2, json!({})).await;
    let before = app.case(&case, &s2).await.body;
    for step in ["accept", "reject", "withdraw"] {
        assert_problem(
            &app.fire(&case, step, &admin, json!({})).await,
            StatusCode::FORBIDDEN,
            "wrong-role",
        );
    }
    assert_eq!(app.case(&case, &s2).await.body, before, "nothing changed");
    let seen = app.case(&case, &admin).await.body;
    assert!(
        seen["actions"].as_array().unwrap().is_empty(),
        "no party's step: {}",
        seen["actions"]
    );

    // A claim stuck by a data error: released by a declared intervention, with a reason.
    app.fire(&case, "accept", &s2, json!({})).await;
    assert_problem(
        &app.fire(&case, "confirm", &admin, json!({})).await,
        StatusCode::FORBIDDEN,
        "wrong-role",
    );
    let no_reason = app.fire(&case, "admin_release", &admin, json!({})).await;
    assert_problem(&no_reason, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    assert_eq!(no_reason.body["errors"][0]["field"], "input.intervention.reason");
    let reason = "学生信息同步错误，工单 2027-0412";
    let released = app
        .fire(
            &case,
            "admin_release",
            &admin,
            json!({ "intervention": { "reason": reason } }),
        )
        .await;
    assert_eq!(released.body["state"], "voided", "{}", released.body);
    assert_eq!(app.count("claims WHERE key = 'destination:S2'").await, 0);
    // Every party sees it: in the history, by whom and why.
    for token in [app.student("S2"), app.employer("E1"), app.reviewer()] {
        let view = app.case(&case, &token).await.body;
        let last = view["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["transition"], "admin_release");
        assert_eq!(last["actor"], "platform_admin");
        assert_eq!(last["input"]["intervention"]["reason"], reason);
    }

    // A court order terminates an approved agreement; the record is withdrawn.
    let signed = app.sign_online("E1", "S3").await;
    let order = json!({ "intervention": { "reason": "（2027）黑0103民初123号民事判决" } });
    let terminated = app.fire(&signed, "admin_terminate", &admin, order).await;
    assert_eq!(terminated.body["state"], "terminated", "{}", terminated.body);
    assert_eq!(app.count("claims WHERE key = 'destination:S3'").await, 0);
    let records = app.get("/api/v1/students/S3/destinations", &admin).await.body;
    assert_eq!(records["records"][0]["status"], "withdrawn");
    assert_eq!(records["records"][0]["ended_by"], "admin_terminate");
}

async fn two_termination_requests_at_once_make_one_request(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = app.sign_online("E1", "S4").await;
    let (s4, e1) = (app.student("S4"), app.employer("E1"));
    let student = json!({ "termination": { "reason": "考取研究生" } });
    let employer = json!({ "termination": { "reason": "岗位调整" } });
    let (a, b) = tokio::join!(
        app.fire(&case, "request_termination", &s4, student),
        app.fire(&case, "request_termination", &e1, employer),
    );
    let statuses = [a.status, b.status];
    assert!(statuses.contains(&StatusCode::OK), "{statuses:?}");
    let loser = if a.status == StatusCode::OK { &b } else { &a };
    assert_problem(loser, StatusCode::CONFLICT, "not-allowed-in-state");
    let view = app.case(&case, &s4).await.body;
    assert_eq!(view["state"], "termination_requested");
    let requests = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["transition"] == "request_termination")
        .count();
    assert_eq!(requests, 1, "one request, by whoever came first");
    assert_eq!(app.count("cases").await, 1);
}

async fn a_withdrawal_and_a_correction_racing_on_one_registration_have_one_winner(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let s1 = app.student("S1");
    let body = json!({ "workflow": "destination_registration", "input": { "destination": { "category": "70", "fields": { "sub_status": "seeking" } } } });
    let case = app.post("/api/v1/cases", &s1, &body).await.id();
    app.fire(&case, "submit", &s1, json!({})).await;
    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.body["state"], "approved", "{}", approved.body);
    let correction = json!({ "correction": { "destination": { "category": "70", "fields": { "sub_status": "public_exam" } }, "reason": "改为准备公招考试" } });
    let withdrawal = json!({ "withdrawal": { "reason": "已找到工作" } });
    let (c, w) = tokio::join!(
        app.fire(&case, "correct", &s1, correction),
        app.fire(&case, "request_withdrawal", &s1, withdrawal),
    );
    let won: Vec<_> = [&c, &w].into_iter().filter(|r| r.status == StatusCode::OK).collect();
    assert_eq!(won.len(), 1, "{:?} {:?}", c.body, w.body);
    let lost = if c.status == StatusCode::OK { &w } else { &c };
    assert_problem(lost, StatusCode::CONFLICT, "not-allowed-in-state");
    let state = won[0].body["state"].as_str().unwrap();
    assert_eq!(lost.body["state"], state, "the refusal names the state the winner left");
    assert_eq!(app.case(&case, &s1).await.body["version"], won[0].body["version"]);
}

async fn refused_change_requests_answer_problem_json_and_change_nothing(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = app.sign_online("E1", "S1").await;
    let (s1, e1) = (app.student("S1"), app.employer("E1"));
    let reason = json!({ "termination": { "reason": "个人原因" } });
    let approved = app.case(&case, &s1).await.body;
    let refusals: Vec<(Reply, StatusCode, &str)> = vec![
        (
            app.fire(&case, "request_termination", &app.student("S2"), reason.clone())
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            app.fire(&case, "request_termination", &app.reviewer(), reason.clone())
                .await,
            StatusCode::FORBIDDEN,
            "wrong-role",
        ),
        (
            app.fire(&case, "request_termination", &s1, json!({})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-input",
        ),
        (
            app.fire(&case, "approve_termination", &app.reviewer(), json!({})).await,
            StatusCode::CONFLICT,
            "not-allowed-in-state",
        ),
        (
            app.fire(&case, "consent_termination", &e1, json!({})).await,
            StatusCode::CONFLICT,
            "not-allowed-in-state",
        ),
    ];
    for (reply, status, kind) in &refusals {
        assert_problem(reply, *status, kind);
    }
    assert_eq!(app.case(&case, &s1).await.body, approved, "nothing changed");

    let requested = app.fire(&case, "request_termination", &e1, reason).await;
    assert_eq!(requested.body["state"], "termination_requested", "{}", requested.body);
    let before = app.case(&case, &s1).await.body;
    // The one who asked cannot consent; the other party cannot take the request back.
    let own = app.fire(&case, "consent_termination", &e1, json!({})).await;
    assert_problem(&own, StatusCode::CONFLICT, "condition-not-met");
    assert!(
        own.body["detail"].as_str().unwrap().contains("other party"),
        "{}",
        own.body
    );
    let not_theirs = app.fire(&case, "withdraw_termination", &s1, json!({})).await;
    assert_problem(&not_theirs, StatusCode::CONFLICT, "condition-not-met");
    let by_the_school = app.fire(&case, "decline_termination", &app.reviewer(), json!({})).await;
    assert_problem(&by_the_school, StatusCode::FORBIDDEN, "wrong-role");
    let after: Value = app.case(&case, &s1).await.body;
    assert_eq!(after, before, "nothing changed");
    assert_eq!(app.count("claims WHERE key = 'destination:S1'").await, 1);
}
