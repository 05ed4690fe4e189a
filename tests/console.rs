//! The console in the browser (`/console/`): HTTP-level checks on both backends (the
//! same authorisation as the API, CSRF, escaping, the verify page's content negotiation)
//! and the review walk in Debian's Chromium driven by `playwright-core`
//! (tests/browser/console.mjs), which also writes screenshots at desktop and phone widths
//! to `target/tmp/console-screenshots/`.

mod support;

use std::{path::PathBuf, process::Command};

use gradsign::definition::Role;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use support::{Backend, SCHOOL, TestApp, spawn_app_with, spawn_seeded};

on_both_backends!(
    a_reviewer_of_another_school_gets_403_on_the_case_page,
    a_form_without_the_session_csrf_token_is_refused_and_changes_nothing,
    the_verify_address_answers_a_browser_with_a_page_and_a_program_with_json,
    a_student_named_script_is_shown_as_text,
    approving_from_the_case_page_goes_through_the_transition_path,
    bulk_return_needs_the_reason_the_definition_asks_for,
    a_failed_mail_is_listed_with_its_reason_and_resent_from_the_mail_log,
    a_failed_render_is_listed_with_the_missing_character,
    a_queue_s_failed_jobs_are_retried_from_the_queue_page,
    live_cases_are_migrated_from_the_definitions_page,
);

/// The name of the student whose name is markup.
const SCRIPT_NAME: &str = "<script>alert('x')</script>";

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A console GET with the session cookie: status, headers, body.
async fn page(app: &TestApp, path: &str, token: &str) -> (StatusCode, header::HeaderMap, String) {
    let r = no_redirects()
        .get(format!("{}{path}", app.base))
        .header(header::COOKIE, format!("gradsign_session={token}"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// A console form POST with the session cookie, from the console's own origin.
async fn post_form(app: &TestApp, path: &str, token: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let r = no_redirects()
        .post(format!("{}{path}", app.base))
        .header(header::COOKIE, format!("gradsign_session={token}"))
        .header(header::ORIGIN, app.base.clone())
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let location = r
        .headers()
        .get(header::LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    let body = r.text().await.unwrap();
    (status, location.unwrap_or(body))
}

/// The CSRF token the console puts in the forms of `token`'s session.
fn csrf(app: &TestApp, token: &str) -> String {
    app.app.keys.form_token(token)
}

/// Adds the student whose name is markup (S5).
async fn seed_script_student(app: &TestApp) {
    let r = app
        .put(
            "/api/v1/students/S5",
            &app.admin(),
            &json!({ "school": SCHOOL, "name": SCRIPT_NAME, "major": "计算机科学与技术", "phone": "13800138000",
                "email": "s5@students.example.edu.cn" }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
}

/// An online invitation from E1 taken to the school's review; returns the case id.
async fn awaiting_review(app: &TestApp, student: &str) -> String {
    let invited = app.invite("E1", student).await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let case = invited.id();
    let token = app.student(student);
    for step in ["view", "accept", "confirm"] {
        let r = app.fire(&case, step, &token, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    case
}

async fn a_reviewer_of_another_school_gets_403_on_the_case_page(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = awaiting_review(&app, "S1").await;
    let own = page(&app, &format!("/console/cases/{case}"), &app.reviewer()).await;
    assert_eq!(own.0, StatusCode::OK, "{}", own.2);
    assert!(own.2.contains("李明"), "{}", own.2);

    let other = app.token(Role::SchoolReviewer, None, Some("99999"));
    let (status, _, body) = page(&app, &format!("/console/cases/{case}"), &other).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        !body.contains("李明"),
        "the other school's page names the student: {body}"
    );
    // Nor does the inbox list it, nor a page image of it open.
    let (_, _, inbox) = page(&app, "/console/inbox", &other).await;
    assert!(!inbox.contains(&case), "{inbox}");
}

async fn a_form_without_the_session_csrf_token_is_refused_and_changes_nothing(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = awaiting_review(&app, "S1").await;
    let reviewer = app.reviewer();
    let before = app.case(&case, &reviewer).await.body;
    let version = before["version"].to_string();
    let path = format!("/console/cases/{case}/fire");
    let other_session = csrf(&app, &app.token(Role::SchoolAdmin, None, Some(SCHOOL)));
    for token in ["", "0000", other_session.as_str()] {
        let (status, body) = post_form(
            &app,
            &path,
            &reviewer,
            &[("csrf", token), ("transition", "approve"), ("version", &version)],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("表单校验码") && body.contains("CSRF"), "{body}");
    }
    // Posted from another site, even with the right token: sent to sign in, nothing fired.
    let r = no_redirects()
        .post(format!("{}{path}", app.base))
        .header(header::COOKIE, format!("gradsign_session={reviewer}"))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[
            ("csrf", csrf(&app, &reviewer).as_str()),
            ("transition", "approve"),
            ("version", version.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let after = app.case(&case, &reviewer).await.body;
    assert_eq!(after["state"], before["state"]);
    assert_eq!(after["version"], before["version"]);
}

async fn approving_from_the_case_page_goes_through_the_transition_path(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = awaiting_review(&app, "S1").await;
    let reviewer = app.reviewer();
    let version = app.case(&case, &reviewer).await.body["version"].to_string();
    let token = csrf(&app, &reviewer);
    let path = format!("/console/cases/{case}/fire");
    // A stale page (an older version) is refused as the API refuses it, and nothing moves.
    let stale = (version.parse::<i64>().unwrap() - 1).to_string();
    let (status, body) = post_form(
        &app,
        &path,
        &reviewer,
        &[("csrf", &token), ("transition", "approve"), ("version", &stale)],
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(app.case(&case, &reviewer).await.body["state"], "submitted");

    let (status, location) = post_form(
        &app,
        &path,
        &reviewer,
        &[("csrf", &token), ("transition", "approve"), ("version", &version)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(location, format!("/console/cases/{case}?done=approve"));
    let after = app.case(&case, &reviewer).await.body;
    assert_eq!(after["state"], "approved", "{after}");
    let last = after["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["transition"], "approve");
    assert_eq!(last["actor"], format!("school_reviewer@{SCHOOL}"));
    // The page now says so, and the inbox no longer lists it.
    let (_, _, body) = page(&app, &location, &reviewer).await;
    assert!(body.contains("已执行"), "{body}");
    let (_, _, inbox) = page(&app, "/console/inbox", &reviewer).await;
    assert!(!inbox.contains(&case), "{inbox}");
}

async fn bulk_return_needs_the_reason_the_definition_asks_for(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let a = awaiting_review(&app, "S1").await;
    let b = awaiting_review(&app, "S2").await;
    let reviewer = app.reviewer();
    let token = csrf(&app, &reviewer);
    // Without the reason: each case refused with the API's field error, none moved.
    let (status, body) = post_form(
        &app,
        "/console/reviews/bulk",
        &reviewer,
        &[("csrf", &token), ("case", &a), ("case", &b), ("transition", "return")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("review.reason"), "{body}");
    for case in [&a, &b] {
        assert_eq!(app.case(case, &reviewer).await.body["state"], "submitted");
    }
    let (status, body) = post_form(
        &app,
        "/console/reviews/bulk",
        &reviewer,
        &[
            ("csrf", &token),
            ("case", &a),
            ("case", &b),
            ("transition", "return"),
            ("f.review.reason", "请补充单位盖章页"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#"<strong class="done-count">2</strong>"#), "{body}");
    for case in [&a, &b] {
        let c = app.case(case, &reviewer).await.body;
        assert_eq!(c["data"]["review"]["reason"], "请补充单位盖章页", "{c}");
    }
}

async fn a_failed_mail_is_listed_with_its_reason_and_resent_from_the_mail_log(backend: Backend) {
    use gradsign::mail::test_support::SmtpSink;
    let sink = SmtpSink::start().await.unwrap();
    let smtp = sink.smtp_config();
    let Some(app) = spawn_app_with(backend, |c| {
        c.smtp_host = Some(smtp.host.clone());
        c.smtp_port = smtp.port;
        c.smtp_security = "none".into();
    })
    .await
    else {
        return;
    };
    app.seed().await;
    sink.fail_next_data(1, 550);
    app.invite("E1", "S2").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let failed = loop {
        let failed = app.app.engine.list_emails(Some("failed"), None).await.unwrap();
        if let Some(first) = failed.into_iter().next() {
            break first;
        }
        assert!(tokio::time::Instant::now() < deadline, "no mail failed");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let admin = app.admin();
    let (status, _, log) = page(&app, "/console/mail?status=failed", &admin).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert!(
        log.contains("550") && log.contains(&format!("/console/mail/{}/resend", failed.id)),
        "{log}"
    );
    // Without the session's token nothing is queued; with it, the mail goes out.
    let path = format!("/console/mail/{}/resend", failed.id);
    let (status, _) = post_form(&app, &path, &admin, &[("csrf", "nope")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, location) = post_form(&app, &path, &admin, &[("csrf", &csrf(&app, &admin))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let mails = sink
        .wait_for(1, std::time::Duration::from_secs(60))
        .await
        .expect("the resent mail arrives");
    assert_eq!(mails[0].rcpt_to.join(","), "s2@students.example.edu.cn");
    // Resending again: the API's refusal (it has not failed), as a page.
    let (status, body) = post_form(&app, &path, &admin, &[("csrf", &csrf(&app, &admin))]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("只有发送失败的邮件可以重发"), "{body}");
}

async fn a_failed_render_is_listed_with_the_missing_character(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let r = app
        .put(
            "/api/v1/students/S9",
            &app.admin(),
            &json!({ "school": SCHOOL, "name": "王𠇔" }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let case = awaiting_review(&app, "S9").await;
    app.wait_for_render(&case, "agreement_preview", "failed").await;
    let (status, _, body) = page(&app, "/console/renders", &app.admin()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains(&case) && body.contains('𠇔') && body.contains("student.name"),
        "{body}"
    );
    // The case page says so too, to the school.
    let (_, _, case_page) = page(&app, &format!("/console/cases/{case}"), &app.reviewer()).await;
    assert!(case_page.contains("failed") && case_page.contains('𠇔'), "{case_page}");
}

async fn a_queue_s_failed_jobs_are_retried_from_the_queue_page(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    // A sweep job due tomorrow (so no worker takes it yet), then marked failed as a job
    // out of attempts is.
    let engine = &app.app.engine;
    let mut tx = engine.db.begin().await.unwrap();
    let tomorrow = engine.now() + chrono::Duration::days(1);
    engine
        .push(&mut tx, &gradsign::jobs::Job::SweepTimers, tomorrow)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let fail = match &engine.db {
        gradsign::store::Db::Sqlite(p) => sqlx::query("UPDATE Jobs SET status = 'Failed' WHERE status = 'Pending'")
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        gradsign::store::Db::Postgres(p, _) => {
            sqlx::query("UPDATE apalis.jobs SET status = 'Failed', attempts = max_attempts WHERE status = 'Pending'")
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        }
    };
    assert_eq!(fail.unwrap(), 1);
    let failed_queue = app
        .jobs()
        .await
        .into_iter()
        .find(|(_, status, _, _)| status == "Failed")
        .map(|(queue, _, _, _)| queue)
        .unwrap();
    let admin = app.admin();
    let (_, _, queues) = page(&app, "/console/queues", &admin).await;
    let retry = format!("/console/queues/{failed_queue}/retry");
    assert!(queues.contains(&retry), "{queues}");
    let (status, location) = post_form(&app, &retry, &admin, &[("csrf", &csrf(&app, &admin))]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(location, "/console/queues?retried=1");
    // The worker runs it now.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let jobs = app.jobs().await;
        if jobs.iter().all(|(_, status, _, _)| status == "Done") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retried job did not run: {jobs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A reviewer may not; an unknown queue is not found.
    let reviewer = app.reviewer();
    let (status, _) = post_form(&app, &retry, &reviewer, &[("csrf", &csrf(&app, &reviewer))]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = post_form(
        &app,
        "/console/queues/nope/retry",
        &admin,
        &[("csrf", &csrf(&app, &admin))],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn the_verify_address_answers_a_browser_with_a_page_and_a_program_with_json(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = awaiting_review(&app, "S1").await;
    let data = app.case(&case, &app.student("S1")).await.body["data"].clone();
    let number = data["agreement"]["number"].as_str().unwrap();
    let code = data["agreement"]["verification_code"].as_str().unwrap();
    for prefix in ["/api/v1/verify", "/verify"] {
        let url = format!("{}{prefix}/{number}?code={code}", app.base);
        let browser = app
            .client
            .get(&url)
            .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(browser.status(), StatusCode::OK);
        assert!(
            browser.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let csp = browser.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let html = browser.text().await.unwrap();
        for fact in ["李明", "龙江软件有限公司", number, "待学校审核", "width=device-width"] {
            assert!(html.contains(fact), "{fact} missing: {html}");
        }
        let program = app.client.get(&url).send().await.unwrap();
        assert!(
            program.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let json: Value = program.json().await.unwrap();
        assert_eq!(json["genuine"], true, "{json}");
        assert_eq!(json["student_name"], "李明");
    }
    // A wrong code: the same page, saying it is not genuine, naming nobody.
    let wrong = app
        .client
        .get(format!("{}/verify/{number}?code=WRONG1", app.base))
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(wrong.contains("未找到") && !wrong.contains("李明"), "{wrong}");
}

async fn a_student_named_script_is_shown_as_text(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    seed_script_student(&app).await;
    let case = awaiting_review(&app, "S5").await;
    let reviewer = app.reviewer();
    for path in ["/console/inbox".to_string(), format!("/console/cases/{case}")] {
        let (status, headers, body) = page(&app, &path, &reviewer).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(!body.contains(SCRIPT_NAME), "unescaped on {path}: {body}");
        assert!(
            body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;&#x2F;script&gt;") || body.contains("&lt;script&gt;"),
            "{body}"
        );
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
}

/// More than a page of waiting cases, filtered by college: the next page keeps the filter
/// and lists the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_pages_on_with_its_filters() {
    let Some(app) = spawn_seeded(Backend::Sqlite).await else {
        return;
    };
    let records: Vec<Value> = (0..52)
        .map(|i| {
            json!({ "id": format!("P{i:03}"), "school": SCHOOL, "name": format!("翻页{i}"),
                "college": if i < 51 { "计算机学院" } else { "机械学院" }, "graduation_date": "2026-06-30" })
        })
        .collect();
    let r = app.put("/api/v1/students", &app.admin(), &Value::Array(records)).await;
    assert_eq!(r.body["stored"], 52, "{}", r.body);
    let mut cases = Vec::new();
    for i in 0..52 {
        cases.push(awaiting_review(&app, &format!("P{i:03}")).await);
    }
    let reviewer = app.reviewer();
    let college = "%E8%AE%A1%E7%AE%97%E6%9C%BA%E5%AD%A6%E9%99%A2"; // 计算机学院
    let (status, _, first) = page(&app, &format!("/console/inbox?college={college}"), &reviewer).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first.matches("<tr data-case=").count(), 50);
    let next = first
        .split(r#"class="next""#)
        .next()
        .and_then(|head| head.rsplit("href=\"").next())
        .map(|href| href.trim_end_matches(['"', ' ']).replace("&amp;", "&"))
        .unwrap();
    assert!(next.contains(&format!("college={college}")), "{next}");
    let (status, _, second) = page(&app, &next, &reviewer).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second.matches("<tr data-case=").count(), 1, "{second}");
    assert!(second.contains(&cases[50]) && !second.contains(&cases[51]), "{second}");
}

#[tokio::test]
async fn pages_without_a_session_send_the_browser_to_sign_in() {
    let Some(app) = spawn_seeded(Backend::Sqlite).await else {
        return;
    };
    for path in [
        "/console/inbox",
        "/console/cases/x",
        "/console/statistics",
        "/console/queues",
    ] {
        let (status, headers, _) = page(&app, path, "not-a-token").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(headers[header::LOCATION], "/console/signin", "{path}");
    }
    // Signing in with a bad token says why, with no cookie set.
    let r = no_redirects()
        .post(format!("{}/console/signin", app.base))
        .form(&[("token", "abc.def.ghi")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    // A good one sets an HttpOnly, SameSite=Strict cookie holding it.
    let reviewer = app.reviewer();
    let r = no_redirects()
        .post(format!("{}/console/signin", app.base))
        .form(&[("token", reviewer.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

/// Admin pages answer with the API's authorisation: a reviewer may not read the queues
/// or the definitions; a platform admin may.
#[tokio::test]
async fn admin_pages_follow_the_api_authorisation() {
    let Some(app) = spawn_seeded(Backend::Sqlite).await else {
        return;
    };
    let reviewer = app.reviewer();
    for path in [
        "/console/queues",
        "/console/definitions",
        "/console/mail",
        "/console/overdue",
        "/console/renders",
    ] {
        let (status, _, body) = page(&app, path, &reviewer).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let admin = app.admin();
    for path in [
        "/console/queues",
        "/console/definitions",
        "/console/definitions/online_signing",
        "/console/mail",
        "/console/mail?status=failed",
        "/console/renders",
        "/console/overdue",
        "/console/statistics",
        "/console/inbox",
    ] {
        let (status, _, body) = page(&app, path, &admin).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, _, stats) = page(&app, "/console/statistics", &reviewer).await;
    assert!(stats.contains("<svg") && stats.contains("落实率"), "{stats}");
    // The export buttons work with the session (the API's own export, by cookie).
    let csv = no_redirects()
        .get(format!("{}/console/exports/destinations.csv", app.base))
        .header(header::COOKIE, format!("gradsign_session={reviewer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(csv.text().await.unwrap().contains("学号"));
    // A valid new version published from the page: shown with its impact, not active.
    let active = app
        .app
        .engine
        .workflows()
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.name == "online_signing")
        .unwrap()
        .active;
    let source = app.app.engine.version_source("online_signing", &active).await.unwrap();
    let edited = format!("{source}\n# edited in the console\n");
    let (status, location) = post_form(
        &app,
        "/console/definitions/online_signing",
        &admin,
        &[("csrf", &csrf(&app, &admin)), ("source", &edited)],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (status, _, shown) = page(&app, &location, &admin).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(
        shown.contains("迁移影响") && shown.contains(r#"class="movable""#),
        "{shown}"
    );
    assert!(shown.contains("edited in the console"), "{shown}");
    // The graph: every state of the definition drawn once, from its own data.
    let (_, _, def) = page(&app, "/console/definitions/online_signing", &admin).await;
    for state in ["invited", "submitted", "approved", "terminated"] {
        assert_eq!(
            def.matches(&format!("data-state=\"{state}\"")).count(),
            1,
            "{state}: {def}"
        );
    }
}

// ---- The walk in Chromium ----

/// Where the browser scripts live, and whether they can run here: `None` (with a
/// `skipped:` line) outside CI when node, its modules or chromium are missing; in CI
/// their absence fails the test, since `.ci/run` installs them.
fn browser() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let missing = if !dir.join("node_modules/playwright-core").is_dir() {
        Some("tests/browser/node_modules (run `npm ci` there)")
    } else if !std::path::Path::new(CHROMIUM).exists() {
        Some(CHROMIUM)
    } else if Command::new("node").arg("--version").output().is_err() {
        Some("node")
    } else {
        None
    };
    match missing {
        None => Some(dir),
        Some(what) if std::env::var("CI").is_err() => {
            eprintln!("skipped: the browser tests need {what}; CI installs it");
            None
        }
        Some(what) => panic!("the browser tests need {what} in CI; .ci/run installs it"),
    }
}

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_works_through_the_inbox_in_chromium() {
    let Some(dir) = browser() else { return };
    let Some(app) = spawn_seeded(Backend::Sqlite).await else {
        return;
    };
    seed_script_student(&app).await;
    let mut cases = serde_json::Map::new();
    for student in ["S1", "S2", "S3", "S4", "S5"] {
        cases.insert(student.into(), Value::String(awaiting_review(&app, student).await));
    }
    let first = cases["S1"].as_str().unwrap().to_string();
    // The page images of the preview exist before the browser looks for them.
    app.wait_for_render(&first, "agreement_preview", "done").await;
    let data = app.case(&first, &app.student("S1")).await.body["data"].clone();
    let verify_url = format!(
        "{}/api/v1/verify/{}?code={}",
        app.base,
        data["agreement"]["number"].as_str().unwrap(),
        data["agreement"]["verification_code"].as_str().unwrap()
    );
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let config = json!({
        "base": app.base,
        "chromium": CHROMIUM,
        "screenshots": shots,
        "cases": cases,
        "script_name": SCRIPT_NAME,
        "verify_url": verify_url,
        "tokens": {
            "reviewer": app.reviewer(),
            "other_reviewer": app.token(Role::SchoolReviewer, None, Some("99999")),
            "student_s5": app.student("S5"),
            "admin": app.admin(),
            "school_admin": app.token(Role::SchoolAdmin, None, Some(SCHOOL)),
        },
    });
    // The app serves on this runtime's other threads while node drives the browser.
    // Chromium here may have no Chinese font: give it the agreement's (Noto Serif SC), so
    // the screenshots show the labels, not boxes.
    let fonts = tempfile::tempdir().unwrap();
    let fonts_conf = fonts.path().join("fonts.conf");
    std::fs::write(
        &fonts_conf,
        format!(
            r#"<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig><include ignore_missing="yes">/etc/fonts/fonts.conf</include><dir>{}</dir><cachedir>{}</cachedir></fontconfig>"#,
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates/agreement/fonts").display(),
            fonts.path().join("cache").display()
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .env("FONTCONFIG_FILE", &fonts_conf)
            .arg(dir.join("console.mjs"))
            .arg(config.to_string())
            .current_dir(&dir)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "the browser walk failed:\n{stdout}\n{stderr}");

    // What the browser did is what the database holds.
    let reviewer = app.reviewer();
    for student in ["S1", "S2", "S3", "S4"] {
        let c = app.case(cases[student].as_str().unwrap(), &reviewer).await.body;
        assert_eq!(c["state"], "approved", "{student}: {c}");
    }
    let returned = app.case(cases["S5"].as_str().unwrap(), &reviewer).await.body;
    assert_eq!(
        returned["data"]["review"]["reason"], "请补充单位盖章页（浏览器）",
        "{returned}"
    );
    for name in [
        "inbox-desktop.png",
        "inbox-phone.png",
        "case-desktop.png",
        "case-phone.png",
        "verify-phone.png",
    ] {
        let png = std::fs::read(shots.join(name)).unwrap_or_default();
        assert!(png.starts_with(b"\x89PNG"), "{name} was not written");
    }
}

/// A platform admin moves the live cases onto a newer version from its definitions page:
/// the form goes through the engine's migration (history and audit as the API's), a bad
/// timer policy is refused with its field, and a form without the CSRF token moves nothing.
async fn live_cases_are_migrated_from_the_definitions_page(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let admin = app.admin();
    let case = awaiting_review(&app, "S1").await;
    let v1 = app.get(&format!("/api/v1/cases/{case}"), &admin).await.body["workflow_version"]
        .as_str()
        .unwrap()
        .to_string();
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/online_signing.toml")).unwrap();
    let v2_source = source.replace("invitation_valid_for = \"7d\"", "invitation_valid_for = \"5d\"");
    assert_ne!(v2_source, source);
    let published = app
        .client
        .post(format!("{}/api/v1/workflows/online_signing/versions", app.base))
        .bearer_auth(&admin)
        .header("content-type", "application/toml")
        .body(v2_source)
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    let v2 = published.json::<Value>().await.unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/console/definitions/online_signing/{v2}/migrate");
    // The page of the new version offers the form.
    let (status, _, body) = page(&app, &format!("/console/definitions/online_signing?v={v2}"), &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(&path), "{body}");
    // Without the CSRF token, or with a policy that does not exist: refused, nothing moves.
    let (status, _) = post_form(&app, &path, &admin, &[("states", ""), ("timers", "")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let token = csrf(&app, &admin);
    let (status, body) = post_form(&app, &path, &admin, &[("csrf", &token), ("timers", "approve=later")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("keep, recompute or cancel"), "{body}");
    let still = app.get(&format!("/api/v1/cases/{case}"), &admin).await.body;
    assert_eq!(still["workflow_version"], v1.as_str());
    // Moved, with its state and a migration in its history.
    let (status, body) = post_form(&app, &path, &admin, &[("csrf", &token), ("states", ""), ("timers", "")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("class=\"moved\">1<"), "{body}");
    let moved = app.get(&format!("/api/v1/cases/{case}"), &admin).await.body;
    assert_eq!(moved["workflow_version"], v2.as_str(), "{moved}");
    assert_eq!(moved["state"], "submitted", "{moved}");
    let last = moved["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["transition"], "migrate", "{last}");
}
