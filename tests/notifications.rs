//! Mail, reminders and review escalation, end to end: a real SMTP conversation with a
//! sink on loopback, decoded with mail-parser; the clock moved by hand.

mod support;

use std::time::Duration;

use chrono::Duration as Days;
use gradsign::mail::test_support::SmtpSink;
use mail_parser::MessageParser;
use reqwest::StatusCode;
use serde_json::json;
use support::{Backend, TestApp, spawn_app_with};

on_both_backends!(
    an_invitation_mails_the_student_in_chinese_and_english,
    the_expiring_reminder_goes_out_once_at_its_time,
    an_invitation_accepted_early_gets_no_reminder,
    an_overdue_review_is_reminded_then_escalated,
    a_review_done_in_time_is_neither_reminded_nor_escalated,
    a_mail_job_run_twice_sends_one_message,
    a_mail_refused_for_good_is_visible_and_can_be_resent,
);

/// The deployment's platform name, configured as the sender's display name.
const PLATFORM: &str = "龙江省高校毕业生就业网";

async fn app(backend: Backend) -> Option<(TestApp, SmtpSink)> {
    let sink = SmtpSink::start().await.unwrap();
    let smtp = sink.smtp_config();
    let app = spawn_app_with(backend, |c| {
        c.smtp_host = Some(smtp.host.clone());
        c.smtp_port = smtp.port;
        c.smtp_security = "none".into();
        c.base_url = Some("https://jy.example.edu.cn".into());
        c.mail_from = format!("{PLATFORM} <no-reply@jy.example.edu.cn>");
    })
    .await?;
    app.seed().await;
    Some((app, sink))
}

fn id(r: &support::Reply) -> String {
    r.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", r.body))
        .to_string()
}

/// Waits until the sink holds `n` messages and returns them parsed: (to, subject, text, html, message-id).
async fn arrived(sink: &SmtpSink, n: usize) -> Vec<(String, String, String, String, String)> {
    let mails = sink
        .wait_for(n, Duration::from_secs(60))
        .await
        .unwrap_or_else(|_| panic!("fewer than {n} mails arrived: {}", sink.count()));
    mails
        .iter()
        .map(|m| {
            let parsed = MessageParser::default().parse(&m.data).expect("a parseable message");
            (
                m.rcpt_to.join(","),
                parsed.subject().unwrap_or_default().to_string(),
                parsed.body_text(0).unwrap_or_default().to_string(),
                parsed.body_html(0).unwrap_or_default().to_string(),
                parsed.message_id().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Fires due timers now (the worker's sweep, run in place so the test knows when it is done).
async fn sweep(app: &TestApp) -> usize {
    app.app.engine.sweep_timers().await.unwrap()
}

async fn an_invitation_mails_the_student_in_chinese_and_english(backend: Backend) {
    let Some((app, sink)) = app(backend).await else { return };
    let case = id(&app.invite("E1", "S1").await);
    let mails = arrived(&sink, 1).await;
    let (to, subject, text, html, message_id) = &mails[0];
    assert_eq!(to, "s1@students.example.edu.cn");
    assert!(
        subject.contains("签约邀请") && subject.contains("invitation"),
        "{subject}"
    );
    for part in [text, html] {
        assert!(
            part.contains("龙江软件有限公司") && part.contains("软件工程师"),
            "{part}"
        );
        assert!(
            part.contains(&format!("https://jy.example.edu.cn/console/cases/{case}")),
            "{part}"
        );
    }
    let (zh, en) = (
        text.find("同学").unwrap(),
        text.find("Dear").or_else(|| text.find("Hello")).unwrap_or(usize::MAX),
    );
    assert!(zh < en, "Chinese first, English below");
    assert!(!message_id.is_empty());
    let raw = String::from_utf8_lossy(&sink.received()[0].data).to_string();
    assert!(raw.contains("multipart/alternative") && raw.contains("Date:"), "{raw}");
}

async fn the_expiring_reminder_goes_out_once_at_its_time(backend: Backend) {
    let Some((app, sink)) = app(backend).await else { return };
    let case = id(&app.invite("E2", "S2").await);
    arrived(&sink, 1).await;
    app.clock.advance(Days::days(5));
    sweep(&app).await;
    assert!(
        app.mails("invitation_expiring").await.is_empty(),
        "not yet: the deadline is two days away"
    );
    app.clock.advance(Days::hours(25)); // 6 days 1 hour: less than a day is left
    assert_eq!(sweep(&app).await, 1);
    let mails = arrived(&sink, 2).await;
    let (to, subject, text, _, _) = &mails[1];
    assert_eq!(to, "s2@students.example.edu.cn");
    assert!(subject.contains("即将") || subject.contains("expire"), "{subject}");
    assert!(text.contains("松花江数据科技有限公司"));
    // 23 hours and some minutes are left: a person says "about a day".
    assert!(text.contains("约 1 天") && text.contains("about 1 day"), "{text}");
    assert!(!text.contains("23 小时"), "{text}");
    // The footer names the deployment's platform and sends the student to the school's office.
    assert!(text.contains(&format!("本邮件由{PLATFORM}自动发送")), "{text}");
    assert!(text.contains("请联系北方理工大学就业指导中心"), "{text}");
    sweep(&app).await;
    app.sweep_through_worker().await;
    assert_eq!(app.mails("invitation_expiring").await.len(), 1, "once");
    assert_eq!(app.case(&case, &app.student("S2")).await.body["state"], "invited");
    // The expiry itself then tells the employer.
    app.clock.advance(Days::days(1));
    sweep(&app).await;
    let mails = arrived(&sink, 3).await;
    assert_eq!(mails[2].0, "hr@e2.example.com");
    assert_eq!(app.mails("invitation_expiring").await.len(), 1);
}

async fn an_invitation_accepted_early_gets_no_reminder(backend: Backend) {
    let Some((app, _sink)) = app(backend).await else { return };
    let case = id(&app.invite("E1", "S3").await);
    let s3 = app.student("S3");
    app.fire(&case, "view", &s3, json!({})).await;
    assert_eq!(app.fire(&case, "accept", &s3, json!({})).await.status, StatusCode::OK);
    app.clock.advance(Days::hours(6 * 24 + 12));
    // The only timer left is the acceptance's own validity: it lapses; no invitation reminder.
    assert_eq!(sweep(&app).await, 1);
    assert_eq!(app.case(&case, &s3).await.body["state"], "lapsed");
    assert!(app.mails("invitation_expiring").await.is_empty());
}

async fn submitted(app: &TestApp, student: &str) -> String {
    let case = id(&app.invite("E1", student).await);
    let token = app.student(student);
    for step in ["view", "accept", "confirm"] {
        assert_eq!(
            app.fire(&case, step, &token, json!({})).await.status,
            StatusCode::OK,
            "{step}"
        );
    }
    case
}

async fn an_overdue_review_is_reminded_then_escalated(backend: Backend) {
    let Some((app, sink)) = app(backend).await else { return };
    let case = submitted(&app, "S1").await;
    let version_in_review = app.case(&case, &app.admin()).await.body["version"].clone();
    let before = arrived(&sink, 3).await; // invitation, and agreement_confirmed to employer and reviewers
    assert!(
        before
            .iter()
            .any(|m| m.0 == "review@nit.example.edu.cn" && m.1.contains("协议")),
        "{before:?}"
    );
    // The reviewers are asked to review; only the employer is told the result will follow.
    // School staff are pointed to the platform, not told to contact their own office.
    let to_reviewer = &before.iter().find(|m| m.0 == "review@nit.example.edu.cn").unwrap().2;
    assert!(
        to_reviewer.contains("等待您审核") && !to_reviewer.contains("另行通知"),
        "{to_reviewer}"
    );
    assert!(!to_reviewer.contains("will be notified"), "{to_reviewer}");
    assert!(
        to_reviewer.contains("请联系平台管理员") && !to_reviewer.contains("请联系北方理工大学就业指导中心"),
        "{to_reviewer}"
    );
    let to_employer = &before.iter().find(|m| m.0.starts_with("hr@")).unwrap().2;
    assert!(
        to_employer.contains("另行通知") && to_employer.contains("就业指导中心"),
        "{to_employer}"
    );
    app.clock.advance(Days::hours(49));
    assert_eq!(sweep(&app).await, 1);
    let mails = arrived(&sink, 4).await;
    assert_eq!(mails[3].0, "review@nit.example.edu.cn", "the reviewers are reminded");
    let school_admin = app.token(gradsign::definition::Role::SchoolAdmin, None, Some(support::SCHOOL));
    assert!(
        app.get("/api/v1/reviews/overdue", &school_admin)
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );

    app.clock.advance(Days::hours(3 * 24 + 1)); // five days and change in review
    assert_eq!(sweep(&app).await, 1);
    let mails = arrived(&sink, 5).await;
    assert_eq!(mails[4].0, "dean@nit.example.edu.cn", "escalated to the school admin");
    assert!(mails[4].2.contains("李明"));
    let overdue = app.get("/api/v1/reviews/overdue", &school_admin).await;
    assert_eq!(overdue.status, StatusCode::OK);
    let row = &overdue.body[0];
    assert_eq!(row["case_id"], case.as_str());
    assert_eq!(row["level"], 1);
    assert!(row["waited_hours"].as_i64().unwrap() >= 5 * 24, "{row}");
    // An event of the case, not a transition: no version, nothing in the history (which
    // the agreement's signing record prints).
    let view = app.case(&case, &app.admin()).await.body;
    let events = view["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "escalate:1" && e["to"] == json!(["school_admin"]) && e["resolved_at"].is_null()),
        "{events:?}"
    );
    assert!(
        view["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["actor"] != "system"),
        "{}",
        view["history"]
    );
    assert_eq!(view["version"], version_in_review, "the escalation changed no version");
    assert_eq!(
        app.get("/api/v1/reviews/overdue", &app.student("S1")).await.status,
        StatusCode::FORBIDDEN
    );

    // Reviewing resolves it, with the version the reviewer read before the escalation.
    let approve = app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/cases/{case}/transitions/approve"),
            Some(&app.reviewer()),
            Some(&json!({ "input": {} })),
            &[("If-Match", &format!("\"{version_in_review}\""))],
        )
        .await;
    assert_eq!(approve.status, StatusCode::OK, "{}", approve.body);
    let events = app.case(&case, &app.admin()).await.body["events"].clone();
    assert!(!events[0]["resolved_at"].is_null(), "{events}");
    assert!(
        app.get("/api/v1/reviews/overdue", &school_admin)
            .await
            .body
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn a_review_done_in_time_is_neither_reminded_nor_escalated(backend: Backend) {
    let Some((app, _sink)) = app(backend).await else { return };
    let case = submitted(&app, "S2").await;
    app.clock.advance(Days::days(1));
    assert_eq!(
        app.fire(&case, "approve", &app.reviewer(), json!({})).await.status,
        StatusCode::OK
    );
    app.clock.advance(Days::days(12));
    assert_eq!(sweep(&app).await, 0);
    assert!(app.mails("review_pending").await.is_empty());
    assert!(app.mails("review_overdue").await.is_empty());
    assert_eq!(
        app.mails("review_approved").await.len(),
        2,
        "student and employer hear the result"
    );
}

async fn a_mail_job_run_twice_sends_one_message(backend: Backend) {
    let Some((app, sink)) = app(backend).await else { return };
    app.invite("E3", "S4").await;
    arrived(&sink, 1).await;
    let mail = sent(&app, "invitation_received", "s4@students.example.edu.cn").await;
    // The same job again, twice at once, as a duplicated or re-enqueued job would run.
    let engine = &app.app.engine;
    let (a, b) = tokio::join!(engine.send_email(&mail.id, 5), engine.send_email(&mail.id, 5));
    let _ = (a, b);
    engine.send_email(&mail.id, 5).await.unwrap();
    assert_eq!(sink.count(), 1, "exactly one message at the server");

    // A worker that died holding the mail (status sending, lease run out) before it
    // reached the server: the retry sends it, once.
    app.invite("E3", "S3").await;
    arrived(&sink, 2).await;
    let second = sent(&app, "invitation_received", "s3@students.example.edu.cn").await;
    let mut tx = engine.db.begin().await.unwrap();
    tx.set_email_status(&second.id, "sending", 1, None, Some(0), None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    engine.send_email(&second.id, 5).await.unwrap();
    engine.send_email(&second.id, 5).await.unwrap();
    assert_eq!(sink.count(), 3, "one more message for the retried mail, not two");
}

async fn a_mail_refused_for_good_is_visible_and_can_be_resent(backend: Backend) {
    let Some((app, sink)) = app(backend).await else { return };
    sink.fail_next_data(1, 550);
    app.invite("E1", "S2").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let failed = loop {
        let r = app.get("/api/v1/emails?status=failed", &app.admin()).await;
        if let Some(first) = r.body.as_array().and_then(|a| a.first()).cloned() {
            break first;
        }
        assert!(tokio::time::Instant::now() < deadline, "no failed mail listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed["template"], "invitation_received");
    assert!(failed["last_error"].as_str().unwrap().contains("550"), "{failed}");
    assert_eq!(
        app.get("/api/v1/emails?status=failed", &app.student("S2")).await.status,
        StatusCode::FORBIDDEN
    );
    let resent = app
        .post(
            &format!("/api/v1/emails/{}/resend", failed["id"].as_str().unwrap()),
            &app.admin(),
            &json!({}),
        )
        .await;
    assert_eq!(resent.status, StatusCode::ACCEPTED);
    let mails = arrived(&sink, 1).await;
    assert_eq!(mails[0].0, "s2@students.example.edu.cn");
}

/// Waits until the mail of `template` to `address` is marked sent.
async fn sent(app: &TestApp, template: &str, address: &str) -> gradsign::engine::notify::EmailView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let found = app
            .mails(template)
            .await
            .into_iter()
            .find(|m| m.to_address.as_deref() == Some(address));
        if let Some(m) = found.filter(|m| m.status == "sent") {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{template} to {address} was not marked sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

on_both_backends!(the_daily_digest_lists_waiting_reviews_oldest_first);

async fn the_daily_digest_lists_waiting_reviews_oldest_first(backend: Backend) {
    let Some((app, sink)) = app(backend).await else { return };
    submitted(&app, "S1").await;
    app.clock.advance(Days::hours(3));
    submitted(&app, "S2").await;
    assert_eq!(
        app.app.engine.daily_digest().await.unwrap(),
        1,
        "one digest for the one school"
    );
    assert_eq!(app.app.engine.daily_digest().await.unwrap(), 1);
    let digest = sent(&app, "daily_digest", "review@nit.example.edu.cn").await;
    let mails = arrived(&sink, sink.count()).await;
    let ids: Vec<_> = mails
        .iter()
        .filter(|m| m.1.contains("待审核") || m.1.contains("待办"))
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "one digest message: {:?}",
        mails.iter().map(|m| &m.1).collect::<Vec<_>>()
    );
    let (to, _, text, _, _) = ids[0].clone();
    assert_eq!(to, "review@nit.example.edu.cn");
    assert_eq!(digest.template, "daily_digest");
    let (li, wang) = (text.find("李明").unwrap(), text.find("王芳").unwrap());
    assert!(li < wang, "oldest first: {text}");
    assert_eq!(
        app.mails("daily_digest").await.len(),
        1,
        "once a day, however often it runs"
    );
}

#[test]
fn the_digest_schedule_fires_at_eight_in_shanghai_across_a_day_boundary() {
    use chrono::TimeZone;
    let source =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workers/mail.toml")).unwrap();
    let queue = gradsign::jobs::config::parse("workers/mail.toml", &source).unwrap();
    let cron = queue.cron.iter().find(|c| c.job == "daily_digest").unwrap();
    // 23:30 on 27 November in Shanghai is 15:30 UTC; the next 08:00 there is the 28th.
    let start = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 11, 27, 23, 30, 0)
        .unwrap();
    let next: Vec<_> = cron.schedule.after(&start).take(2).collect();
    assert_eq!(
        next[0],
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 11, 28, 8, 0, 0)
            .unwrap()
    );
    assert_eq!(
        next[0].with_timezone(&chrono::Utc),
        chrono::Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).unwrap()
    );
    assert_eq!(
        next[1],
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 11, 29, 8, 0, 0)
            .unwrap()
    );
}

on_both_backends!(every_link_in_the_mail_opens_the_case_in_the_console);

/// Every address in a delivered message (text and HTML parts, `href`s included).
fn links(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = message;
    while let Some(at) = rest.find("http") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '\'' | '）' | ')'))
            .unwrap_or(tail.len());
        let link = &tail[..end];
        if link.starts_with("http://") || link.starts_with("https://") {
            out.push(link.to_string());
        }
        rest = &tail[end.max(4)..];
    }
    out
}

/// A case walked from the invitation through a return to the approval, and the reviewers'
/// digest: every link of every message read back from the SMTP sink leads to the case's
/// page in the console (`/console/cases/{id}`), the digest's list to the reviewer's inbox
/// (`/console/inbox`) — never to an API path, which answers only to tokens.
async fn every_link_in_the_mail_opens_the_case_in_the_console(backend: Backend) {
    let Some((app, sink)) = app(backend).await else { return };
    let case = submitted(&app, "S1").await;
    let returned = app
        .fire(
            &case,
            "return",
            &app.reviewer(),
            json!({ "review": { "reason": "请补充试用期工资" } }),
        )
        .await;
    assert_eq!(returned.status, StatusCode::OK, "{}", returned.body);
    let s1 = app.student("S1");
    for step in ["resign", "confirm"] {
        assert_eq!(
            app.fire(&case, step, &s1, json!({})).await.status,
            StatusCode::OK,
            "{step}"
        );
    }
    assert_eq!(app.app.engine.daily_digest().await.unwrap(), 1);
    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    // Everything the case queued, delivered: compare the sink with the mail log.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let expected = loop {
        let log = app.app.engine.list_emails(None, None).await.unwrap();
        let settled = log.iter().all(|m| m.status == "sent");
        if settled && sink.count() >= log.len() {
            break log.len();
        }
        assert!(tokio::time::Instant::now() < deadline, "mail not delivered: {log:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mails = arrived(&sink, expected).await;
    let templates: Vec<_> = app
        .app
        .engine
        .list_emails(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.template)
        .collect();
    for wanted in [
        "invitation_received",
        "agreement_confirmed",
        "review_rejected",
        "daily_digest",
        "review_approved",
    ] {
        assert!(templates.iter().any(|t| t == wanted), "no {wanted}: {templates:?}");
    }
    let case_page = format!("https://jy.example.edu.cn/console/cases/{case}");
    let inbox = "https://jy.example.edu.cn/console/inbox";
    for (to, subject, text, html, _) in &mails {
        let found: Vec<_> = links(text).into_iter().chain(links(html)).collect();
        assert!(!found.is_empty(), "{subject} to {to} links nowhere:\n{text}");
        for link in found {
            assert!(
                link == case_page || link == inbox,
                "{subject} to {to} links {link}, not the console page of the case\n{text}"
            );
        }
    }
}
