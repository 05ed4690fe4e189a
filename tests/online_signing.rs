//! Online signing (线上签约, R3–R9) end to end through HTTP, on SQLite and PostgreSQL.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Backend, TestApp, action, spawn_app};

on_both_backends!(
    the_whole_online_path_ends_with_a_destination_record,
    accepting_when_the_employer_keeps_no_archive_requires_where_it_goes,
    a_rejected_review_can_be_signed_again_and_resubmitted,
    once_signed_the_other_invitations_cannot_be_accepted,
    a_second_invitation_while_one_is_pending_is_refused,
    an_expired_invitation_frees_the_employer_to_invite_again,
    an_expiry_after_the_case_moved_on_does_nothing,
    twenty_concurrent_accepts_have_exactly_one_winner,
    twenty_concurrent_identical_invitations_make_one_case,
    a_transition_sent_twice_with_one_key_happens_once,
    refused_requests_change_nothing,
);

async fn app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.seed().await;
    Some(app)
}

fn id(reply: &support::Reply) -> String {
    reply.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no case id in {}", reply.body))
        .to_string()
}

async fn the_whole_online_path_ends_with_a_destination_record(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let invited = app.invite("E1", "S1").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    assert_eq!(invited.body["state"], "invited");
    assert_eq!(
        invited.body["timers"][0]["fire"], "expire",
        "the validity period is a timer"
    );
    let case = id(&invited);
    let s1 = app.student("S1");

    let seen = app.case(&case, &s1).await;
    assert_eq!(action(&seen.body, "view")["enabled"], true);
    assert_eq!(action(&seen.body, "accept"), &Value::Null, "accept only after viewing");

    assert_eq!(app.fire(&case, "view", &s1, json!({})).await.status, StatusCode::OK);
    let accepted = app.fire(&case, "accept", &s1, json!({})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["state"], "confirming");
    let timers: Vec<_> = accepted.body["timers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["fire"].as_str().unwrap())
        .collect();
    assert_eq!(
        timers,
        ["lapse"],
        "accepting ends the invitation's validity and starts the confirmation's"
    );
    let confirmed = app.fire(&case, "confirm", &s1, json!({})).await;
    assert_eq!(confirmed.body["state"], "submitted");

    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["state"], "approved");
    assert_eq!(
        approved.body["terminal"], false,
        "an approved agreement may still be terminated"
    );
    let steps: Vec<_> = approved.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["transition"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["invite", "view", "accept", "confirm", "approve"]);

    let destination = app.get("/api/v1/students/S1/destination", &s1).await;
    assert_eq!(destination.status, StatusCode::OK, "{}", destination.body);
    assert_eq!(destination.body["category_code"], "10");
    assert_eq!(destination.body["category_name"], "签就业协议形式就业");
    assert_eq!(destination.body["unit_name"], "龙江软件有限公司");
    assert_eq!(destination.body["case_id"], case.as_str());
    // Another student learns nothing, not even that S1 exists.
    let other = app.get("/api/v1/students/S1/destination", &app.student("S2")).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

async fn accepting_when_the_employer_keeps_no_archive_requires_where_it_goes(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let case = id(&app.invite("E2", "S1").await);
    let s1 = app.student("S1");
    app.fire(&case, "view", &s1, json!({})).await;
    let view = app.case(&case, &s1).await;
    let fields: Vec<_> = action(&view.body, "accept")["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        fields.contains(&"terms.archive_unit".to_string()) && fields.contains(&"terms.hukou_address".to_string()),
        "{fields:?}"
    );

    let missing = app
        .fire(
            &case,
            "accept",
            &s1,
            json!({ "terms": { "archive_unit": "黑龙江省人才服务中心" } }),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.problem(), "invalid-input");
    let named: Vec<_> = missing.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(named.contains(&"input.terms.archive_address"), "{named:?}");
    assert!(
        missing.body["detail_zh"].as_str().unwrap().contains("请填写"),
        "{}",
        missing.body
    );

    let input = json!({ "terms": {
        "archive_unit": "黑龙江省人才服务中心", "archive_address": "哈尔滨市南岗区中山路 1 号",
        "hukou_unit": "哈尔滨市公安局南岗分局", "hukou_address": "哈尔滨市南岗区学府路 2 号" } });
    let accepted = app.fire(&case, "accept", &s1, input).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["data"]["terms"]["archive_unit"], "黑龙江省人才服务中心");
    assert_eq!(
        accepted.body["data"]["terms"]["position"], "软件工程师",
        "the invitation's terms stay"
    );
}

async fn a_rejected_review_can_be_signed_again_and_resubmitted(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let case = id(&app.invite("E1", "S1").await);
    let s1 = app.student("S1");
    for step in ["view", "accept", "confirm"] {
        assert_eq!(
            app.fire(&case, step, &s1, json!({})).await.status,
            StatusCode::OK,
            "{step}"
        );
    }
    let reviewer = app.reviewer();
    let no_reason = app.fire(&case, "return", &reviewer, json!({})).await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_reason.body["errors"][0]["field"], "input.review.reason");

    let returned = app
        .fire(
            &case,
            "return",
            &reviewer,
            json!({ "review": { "reason": "岗位名称与单位人事处登记不一致" } }),
        )
        .await;
    assert_eq!(returned.status, StatusCode::OK, "{}", returned.body);
    assert_eq!(returned.body["state"], "rejected");
    assert_eq!(
        returned.body["data"]["review"]["reason"],
        "岗位名称与单位人事处登记不一致"
    );

    let amended = app
        .fire(
            &case,
            "amend",
            &app.employer("E1"),
            json!({ "terms": { "position": "后端开发工程师" } }),
        )
        .await;
    assert_eq!(amended.status, StatusCode::OK, "{}", amended.body);
    assert_eq!(amended.body["state"], "rejected", "amending does not move the case");
    assert_eq!(
        app.fire(&case, "resign", &s1, json!({})).await.body["state"],
        "confirming"
    );
    assert_eq!(
        app.fire(&case, "confirm", &s1, json!({})).await.body["state"],
        "submitted"
    );
    let approved = app.fire(&case, "approve", &reviewer, json!({})).await;
    assert_eq!(approved.body["state"], "approved");
    assert_eq!(approved.body["data"]["terms"]["position"], "后端开发工程师");
}

async fn once_signed_the_other_invitations_cannot_be_accepted(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let s1 = app.student("S1");
    let mut cases = Vec::new();
    for employer in ["E1", "E2", "E3"] {
        let case = id(&app.invite(employer, "S1").await);
        app.fire(&case, "view", &s1, json!({})).await;
        cases.push(case);
    }
    let won = app.fire(&cases[0], "accept", &s1, json!({})).await;
    assert_eq!(won.status, StatusCode::OK, "{}", won.body);
    for other in &cases[1..] {
        let view = app.case(other, &s1).await;
        let accept = action(&view.body, "accept");
        assert_eq!(accept["enabled"], false, "{}", view.body);
        assert!(
            accept["reason"]["zh"].as_str().unwrap().contains("已与其他单位签约"),
            "{accept}"
        );
        assert!(!accept["reason"]["en"].as_str().unwrap().is_empty());
        assert_eq!(
            action(&view.body, "reject")["enabled"],
            false,
            "R3: the other invitations can be viewed, not acted on"
        );
        let input = json!({ "terms": { "archive_unit": "某人才中心", "archive_address": "某地址 1 号", "hukou_unit": "某派出所", "hukou_address": "某地址 2 号" } });
        let refused = app.fire(other, "accept", &s1, input).await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert_eq!(refused.problem(), "claim-held");
        assert_eq!(refused.body["held_by_case"], cases[0].as_str());
        assert_eq!(app.case(other, &s1).await.body["state"], "viewed");
    }
}

async fn a_second_invitation_while_one_is_pending_is_refused(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let first = id(&app.invite("E1", "S1").await);
    let second = app.invite("E1", "S1").await;
    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    assert_eq!(second.problem(), "claim-held");
    assert_eq!(second.body["held_by_case"], first.as_str());
    assert!(second.body["detail_zh"].as_str().unwrap().contains("尚未处理的邀请"));
    assert_eq!(
        app.invite("E2", "S1").await.status,
        StatusCode::CREATED,
        "R4: other employers may invite"
    );

    let rejected = app
        .fire(
            &first,
            "reject",
            &app.student("S1"),
            json!({ "decline_reason": "已有其他打算" }),
        )
        .await;
    assert_eq!(rejected.body["state"], "declined");
    assert_eq!(
        app.invite("E1", "S1").await.status,
        StatusCode::CREATED,
        "after a rejection the employer may invite again"
    );
}

async fn an_expired_invitation_frees_the_employer_to_invite_again(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let case = id(&app.invite("E1", "S2").await);
    let s2 = app.student("S2");
    app.clock.advance(chrono::Duration::days(6));
    app.sweep_through_worker().await;
    // The sweep ran (or will run) but the invitation is not yet due: a later sweep after
    // the deadline must be what expires it.
    assert_eq!(app.case(&case, &s2).await.body["state"], "invited");

    app.clock.advance(chrono::Duration::days(2));
    app.sweep_through_worker().await;
    let expired = app
        .wait_for_case(&case, &s2, "the expiry", |c| c["state"] == "expired")
        .await;
    let last = expired["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["transition"], "expire");
    assert_eq!(last["actor"], "system");
    assert_eq!(action(&expired, "accept"), &Value::Null);
    assert_eq!(app.invite("E1", "S2").await.status, StatusCode::CREATED);
}

async fn an_expiry_after_the_case_moved_on_does_nothing(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let case = id(&app.invite("E1", "S3").await);
    let s3 = app.student("S3");
    app.fire(&case, "view", &s3, json!({})).await;
    app.fire(&case, "accept", &s3, json!({})).await;
    app.clock.advance(chrono::Duration::days(30));
    let fired = app.app.engine.sweep_timers().await.unwrap();
    assert_eq!(fired, 1, "only the confirmation's own validity fires");
    app.sweep_through_worker().await;
    let view = app.case(&case, &s3).await;
    assert_eq!(
        view.body["state"], "lapsed",
        "not expired: the invitation's timer was cancelled"
    );
    assert_eq!(view.body["version"], 4);
    let last = view.body["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["transition"], "lapse");
}

async fn twenty_concurrent_accepts_have_exactly_one_winner(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let admin = app.admin();
    let s4 = app.student("S4");
    let mut cases = Vec::new();
    for i in 0..20 {
        let employer = format!("R{i}");
        let body = json!({ "name": format!("竞速单位{i}"), "credit_code": "91110000600037341L", "receives_archive": true, "receives_hukou": true });
        assert!(
            app.put(&format!("/api/v1/employers/{employer}"), &admin, &body)
                .await
                .status
                .is_success()
        );
        let case = id(&app.invite(&employer, "S4").await);
        app.fire(&case, "view", &s4, json!({})).await;
        cases.push(case);
    }
    let replies = futures::future::join_all(cases.iter().map(|c| app.fire(c, "accept", &s4, json!({})))).await;
    let won: Vec<_> = replies.iter().filter(|r| r.status == StatusCode::OK).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        replies
            .iter()
            .map(|r| (r.status, r.problem().to_string()))
            .collect::<Vec<_>>()
    );
    assert!(
        replies
            .iter()
            .filter(|r| r.status != StatusCode::OK)
            .all(|r| r.status == StatusCode::CONFLICT && r.problem() == "claim-held")
    );
    assert_eq!(app.count("claims WHERE key = 'destination:S4'").await, 1);
}

async fn twenty_concurrent_identical_invitations_make_one_case(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let replies = futures::future::join_all((0..20).map(|_| app.invite("E3", "S2"))).await;
    let created = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{:?}", replies.iter().map(|r| r.status).collect::<Vec<_>>());
    assert!(
        replies
            .iter()
            .filter(|r| r.status != StatusCode::CREATED)
            .all(|r| r.status == StatusCode::CONFLICT)
    );
    assert_eq!(app.count("cases").await, 1);
}

async fn a_transition_sent_twice_with_one_key_happens_once(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let case = id(&app.invite("E1", "S1").await);
    let s1 = app.student("S1");
    let path = format!("/api/v1/cases/{case}/transitions/view");
    let body = json!({ "input": {} });
    let key = [("Idempotency-Key", "view-once-7f3a")];
    let first = app.request(Method::POST, &path, Some(&s1), Some(&body), &key).await;
    let second = app.request(Method::POST, &path, Some(&s1), Some(&body), &key).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.body, second.body, "the same answer");
    assert_eq!(second.headers.get("idempotent-replay").unwrap(), "true");
    assert_eq!(
        app.count(&format!("history WHERE case_id = '{case}'")).await,
        2,
        "invite + one view"
    );

    let other = app
        .request(
            Method::POST,
            &path,
            Some(&s1),
            Some(&json!({ "input": { "x": 1 } })),
            &key,
        )
        .await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.problem(), "idempotency-key-reused");

    let invite = json!({ "workflow": "online_signing", "student": "S3" });
    let key = [("Idempotency-Key", "invite-s3")];
    let e2 = app.employer("E2");
    let a = app
        .request(Method::POST, "/api/v1/cases", Some(&e2), Some(&invite), &key)
        .await;
    let b = app
        .request(Method::POST, "/api/v1/cases", Some(&e2), Some(&invite), &key)
        .await;
    assert_eq!((a.status, b.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(a.body["id"], b.body["id"], "one case, not two");
}

async fn refused_requests_change_nothing(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let case = id(&app.invite("E2", "S1").await);
    let s1 = app.student("S1");
    app.fire(&case, "view", &s1, json!({})).await;
    let before = app.case(&case, &s1).await.body;
    let path = format!("/api/v1/cases/{case}/transitions/accept");

    let stale = app
        .request(
            Method::POST,
            &path,
            Some(&s1),
            Some(&json!({ "input": {} })),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.problem(), "stale-version");
    assert_eq!(stale.body["current_version"], 2);

    let invalid = app
        .fire(
            &case,
            "accept",
            &s1,
            json!({ "terms": { "archive_unit": "", "colour": "blue" } }),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> = invalid.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"input.terms.colour") && fields.contains(&"input.terms.archive_unit"),
        "{fields:?}"
    );

    let wrong_role = app.fire(&case, "withdraw", &s1, json!({})).await;
    assert_eq!(wrong_role.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong_role.problem(), "wrong-role");

    let stranger = app.fire(&case, "reject", &app.student("S2"), json!({})).await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
    assert_eq!(stranger.problem(), "forbidden");
    assert_eq!(app.case(&case, &app.student("S2")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.case(&case, &app.employer("E1")).await.status, StatusCode::FORBIDDEN);

    let not_now = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(not_now.status, StatusCode::CONFLICT);
    assert_eq!(not_now.problem(), "not-allowed-in-state");

    let unknown = app.fire(&case, "teleport", &s1, json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let malformed = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(&s1)
        .header("content-type", "application/json")
        .body("{\"input\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(malformed.headers()["content-type"], "application/problem+json");

    let unknown_field = app
        .request(Method::POST, &path, Some(&s1), Some(&json!({ "inptu": {} })), &[])
        .await;
    assert_eq!(unknown_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown_field.body["errors"][0]["field"], "inptu");

    let no_token = app.request(Method::POST, &path, None, Some(&json!({})), &[]).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    let bad_token = app
        .request(Method::POST, &path, Some("not-a-jwt"), Some(&json!({})), &[])
        .await;
    assert_eq!(bad_token.status, StatusCode::UNAUTHORIZED);

    let after = app.case(&case, &s1).await.body;
    assert_eq!(after["version"], before["version"]);
    assert_eq!(after["state"], before["state"]);
    assert_eq!(after["history"], before["history"]);
    assert_eq!(after["data"], before["data"]);
}
