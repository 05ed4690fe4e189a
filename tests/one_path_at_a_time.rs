//! R1 across the three paths: online signing, offline signing and other destination
//! registration share the claim `destination:{student}`. Whichever path takes it first
//! (online: accept; offline: generate; registration: submit), the others are refused
//! with 409 `claim-held` naming the case, until a rejection or a cancellation releases
//! it. Starting a draft is always allowed. Also a race between two paths.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, Reply, TestApp, spawn_app};

on_both_backends!(
    online_accepted_blocks_offline_and_registration_until_returned,
    offline_generated_blocks_registration_and_online_until_cancelled,
    registration_submitted_blocks_online_and_offline_until_rejected,
    an_online_accept_and_an_offline_generate_racing_have_one_winner,
);

async fn app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.seed().await;
    Some(app)
}

fn id(reply: &Reply) -> String {
    reply.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no case id in {}", reply.body))
        .to_string()
}

fn assert_held_by(reply: &Reply, case: &str) {
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert_eq!(reply.problem(), "claim-held", "{}", reply.body);
    assert_eq!(reply.body["held_by_case"], case, "{}", reply.body);
    assert_eq!(reply.body["claim"], "destination:S1");
}

/// An invitation from E1 to S1, opened: ready to accept.
async fn online_viewed(app: &TestApp) -> String {
    let case = id(&app.invite("E1", "S1").await);
    app.fire(&case, "view", &app.student("S1"), json!({})).await;
    case
}

/// An offline case of S1, typed in and previewed: ready to generate.
async fn offline_previewed(app: &TestApp) -> String {
    let s1 = app.student("S1");
    let input = json!({
        "employer": { "name": "冰城机械制造有限公司", "credit_code": "91110000101623741K", "receives_archive": true, "receives_hukou": true },
        "terms": { "position": "机械设计工程师", "work_place": "哈尔滨市平房区" }
    });
    let r = app
        .post(
            "/api/v1/cases",
            &s1,
            &json!({ "workflow": "offline_signing", "input": input }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "starting is free: {}", r.body);
    let case = id(&r);
    let r = app.fire(&case, "preview", &s1, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    case
}

async fn generate(app: &TestApp, case: &str) -> Reply {
    app.fire(case, "generate", &app.student("S1"), json!({ "confirmed": true }))
        .await
}

/// A registration of S1 (70 待就业: no proof needed), saved: ready to submit.
async fn registration_draft(app: &TestApp) -> String {
    let body = json!({ "workflow": "destination_registration", "input": { "destination": { "category": "70", "fields": { "sub_status": "seeking" } } } });
    let r = app.post("/api/v1/cases", &app.student("S1"), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "starting is free: {}", r.body);
    id(&r)
}

async fn submit(app: &TestApp, case: &str) -> Reply {
    app.fire(case, "submit", &app.student("S1"), json!({})).await
}

async fn accept(app: &TestApp, case: &str) -> Reply {
    app.fire(case, "accept", &app.student("S1"), json!({})).await
}

fn state(reply: &Reply) -> &Value {
    &reply.body["state"]
}

async fn online_accepted_blocks_offline_and_registration_until_returned(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let online = online_viewed(&app).await;
    assert_eq!(state(&accept(&app, &online).await), "confirming");
    let offline = offline_previewed(&app).await;
    let registration = registration_draft(&app).await;
    let versions = (
        app.case(&offline, &app.admin()).await.body["version"].clone(),
        app.case(&registration, &app.admin()).await.body["version"].clone(),
    );
    assert_held_by(&generate(&app, &offline).await, &online);
    assert_held_by(&submit(&app, &registration).await, &online);
    assert_eq!(
        (
            app.case(&offline, &app.admin()).await.body["version"].clone(),
            app.case(&registration, &app.admin()).await.body["version"].clone()
        ),
        versions,
        "a refused transition writes nothing"
    );
    let view = app.case(&offline, &app.student("S1")).await.body;
    assert_eq!(support::action(&view, "generate")["enabled"], false, "{view}");

    // The school returns the online agreement: the claim is released; offline goes ahead.
    let s1 = app.student("S1");
    assert_eq!(state(&app.fire(&online, "confirm", &s1, json!({})).await), "submitted");
    let returned = app
        .fire(
            &online,
            "return",
            &app.reviewer(),
            json!({ "review": { "reason": "岗位填写有误" } }),
        )
        .await;
    assert_eq!(state(&returned), "rejected");
    let generated = generate(&app, &offline).await;
    assert_eq!(state(&generated), "generated", "{}", generated.body);
    // Now the online path cannot sign again, nor the registration be sent.
    assert_held_by(&app.fire(&online, "resign", &s1, json!({})).await, &offline);
    assert_held_by(&submit(&app, &registration).await, &offline);
}

async fn offline_generated_blocks_registration_and_online_until_cancelled(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let offline = offline_previewed(&app).await;
    assert_eq!(state(&generate(&app, &offline).await), "generated");
    let registration = registration_draft(&app).await;
    assert_held_by(&submit(&app, &registration).await, &offline);
    let online = online_viewed(&app).await;
    assert_held_by(&accept(&app, &online).await, &offline);
    // A second offline application cannot be generated either.
    let second = offline_previewed(&app).await;
    assert_held_by(&generate(&app, &second).await, &offline);
    // Cancelled before submission: the claim is released.
    let cancelled = app.fire(&offline, "cancel", &app.student("S1"), json!({})).await;
    assert_eq!(state(&cancelled), "cancelled", "{}", cancelled.body);
    let sent = submit(&app, &registration).await;
    assert_eq!(state(&sent), "submitted", "{}", sent.body);
    let approved = app.fire(&registration, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(state(&approved), "approved", "{}", approved.body);
    let record = app.get("/api/v1/students/S1/destination", &app.student("S1")).await;
    assert_eq!(record.body["category_code"], "70");
    assert_eq!(record.body["case_id"], registration.as_str());
    // Approved, the registration keeps the claim for good.
    assert_held_by(&accept(&app, &online).await, &registration);
}

async fn registration_submitted_blocks_online_and_offline_until_rejected(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let registration = registration_draft(&app).await;
    assert_eq!(state(&submit(&app, &registration).await), "submitted");
    let online = online_viewed(&app).await;
    assert_held_by(&accept(&app, &online).await, &registration);
    let offline = offline_previewed(&app).await;
    assert_held_by(&generate(&app, &offline).await, &registration);
    // A second registration cannot be sent either.
    let second = registration_draft(&app).await;
    assert_held_by(&submit(&app, &second).await, &registration);
    let rejected = app
        .fire(
            &registration,
            "return",
            &app.reviewer(),
            json!({ "review": { "reason": "请说明求职情况" } }),
        )
        .await;
    assert_eq!(state(&rejected), "rejected");
    // Released: the online path takes it, and the rejected registration cannot be resent.
    assert_eq!(state(&accept(&app, &online).await), "confirming");
    assert_held_by(&submit(&app, &registration).await, &online);
    let s1 = app.student("S1");
    app.fire(&online, "confirm", &s1, json!({})).await;
    let approved = app.fire(&online, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(state(&approved), "approved");
    let record = app.get("/api/v1/students/S1/destination", &s1).await;
    assert_eq!(record.body["category_code"], "10");
    assert_eq!(record.body["case_id"], online.as_str());
}

async fn an_online_accept_and_an_offline_generate_racing_have_one_winner(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    for _ in 0..3 {
        let online = online_viewed(&app).await;
        let offline = offline_previewed(&app).await;
        let (a, g) = tokio::join!(accept(&app, &online), generate(&app, &offline));
        let winners = [&a, &g].iter().filter(|r| r.status == StatusCode::OK).count();
        assert_eq!(winners, 1, "accept: {} / generate: {}", a.body, g.body);
        let (winner, loser) = if a.status == StatusCode::OK {
            (&online, &g)
        } else {
            (&offline, &a)
        };
        assert_held_by(loser, winner);
        assert_eq!(app.count("claims WHERE key LIKE 'destination:%'").await, 1);
        // Release for the next round: withdraw whichever won.
        let s1 = app.student("S1");
        if winner == &online {
            app.fire(&online, "confirm", &s1, json!({})).await;
            let r = app
                .fire(
                    &online,
                    "return",
                    &app.reviewer(),
                    json!({ "review": { "reason": "再来一次" } }),
                )
                .await;
            assert_eq!(state(&r), "rejected");
            app.fire(&offline, "cancel", &s1, json!({})).await;
        } else {
            let r = app.fire(&offline, "cancel", &s1, json!({})).await;
            assert_eq!(state(&r), "cancelled");
            app.fire(&online, "reject", &s1, json!({})).await;
        }
        assert_eq!(app.count("claims WHERE key LIKE 'destination:%'").await, 0);
    }
}
