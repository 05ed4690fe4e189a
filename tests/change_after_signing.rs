//! Change after signing (issue 10, R15–R18) through HTTP, on SQLite and PostgreSQL: an
//! amendment during the review, termination (解约) online and offline with its 解约证明,
//! corrections (纠错) and the withdrawal of a registration, and the destination history
//! that keeps every record.

mod support;

use std::time::Duration;

use gradsign::mail::test_support::SmtpSink;
use mail_parser::MessageParser;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, Reply, TestApp, action, current_document, pdf, pdf_page_text, spawn_app_with, spawn_seeded};

on_both_backends!(
    an_amendment_during_the_review_goes_back_to_the_student_with_both_term_sets,
    an_online_termination_frees_the_student_to_sign_with_another_employer,
    an_offline_termination_needs_the_employers_letter,
    a_registration_is_corrected_once_returned_and_once_approved,
    a_withdrawn_registration_frees_the_student_to_sign_online,
);

fn ok(reply: Reply, state: &str) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["state"], state, "{}", reply.body);
    reply.body
}

fn last_step(case: &Value) -> Value {
    case["history"].as_array().unwrap().last().unwrap().clone()
}

/// The student's destination history, current first.
async fn history_of(app: &TestApp, student: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/v1/students/{student}/destinations"), &app.admin())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["records"].as_array().unwrap().clone()
}

/// The text of a case's rendered document of `slot`, read back from its PDF as `token`
/// (`None` outside CI when poppler-utils is missing).
async fn document_text(app: &TestApp, case: &str, slot: &str, token: &str) -> Option<String> {
    let list = app.wait_for_render(case, slot, "done").await;
    let doc = current_document(&list, slot, 0).expect("the rendered PDF").clone();
    let (status, bytes) = app.download(&doc, token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes.starts_with(b"%PDF"));
    pdf_page_text(&bytes, 1)
}

async fn an_amendment_during_the_review_goes_back_to_the_student_with_both_term_sets(backend: Backend) {
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
    let case = app.invite("E1", "S1").await.id();
    let s1 = app.student("S1");
    for step in ["view", "accept"] {
        assert_eq!(app.fire(&case, step, &s1, json!({})).await.status, StatusCode::OK);
    }
    let first = ok(app.fire(&case, "confirm", &s1, json!({})).await, "submitted");
    assert!(
        first["timers"].as_array().unwrap().len() >= 3,
        "the review is reminded and escalated: {}",
        first["timers"]
    );

    let terms = json!({ "terms": { "position": "后端开发工程师", "salary": "每月 9,000 元" } });
    let amended = ok(
        app.fire(&case, "amend_before_review", &app.employer("E1"), terms).await,
        "confirming",
    );
    let timers: Vec<_> = amended["timers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["fire"])
        .collect();
    assert_eq!(timers, ["lapse"], "the pending review is withdrawn with its reminders");
    let step = last_step(&amended);
    assert_eq!(step["input"]["terms"]["position"], "后端开发工程师");
    let change = |field: &str| {
        step["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["field"] == field)
            .unwrap_or_else(|| panic!("no change of {field}: {step}"))
            .clone()
    };
    assert_eq!(change("terms.position")["old"], "软件工程师");
    assert_eq!(change("terms.position")["new"], "后端开发工程师");
    assert_eq!(change("terms.position")["label"], "工作岗位 / position");
    assert_eq!(change("terms.salary")["old"], Value::Null);

    // The student confirms the new terms; the preview is rendered from them.
    let again = ok(app.fire(&case, "confirm", &s1, json!({})).await, "submitted");
    let renders = app.get(&format!("/api/v1/cases/{case}/documents"), &s1).await.body;
    let preview = renders["renders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slot"] == "agreement_preview")
        .unwrap();
    assert_eq!(
        preview["case_version"], again["version"],
        "rendered again on re-confirming"
    );
    let approved = ok(app.fire(&case, "approve", &app.reviewer(), json!({})).await, "approved");
    assert_eq!(approved["data"]["terms"]["position"], "后端开发工程师");
    // Both term sets are in the history: the invitation's, and the amendment old beside new.
    assert_eq!(approved["history"][0]["input"]["terms"]["position"], "软件工程师");
    let steps: Vec<_> = approved["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["transition"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "invite",
            "view",
            "accept",
            "confirm",
            "amend_before_review",
            "confirm",
            "approve"
        ]
    );

    // The student was mailed what changed, old and new side by side.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let text = loop {
        let found = sink.received().into_iter().find_map(|m| {
            let parsed = MessageParser::default().parse(&m.data)?;
            let to_student = m.rcpt_to.iter().any(|r| r == "s1@students.example.edu.cn");
            (to_student && parsed.subject()?.contains("修改"))
                .then(|| parsed.body_text(0).unwrap_or_default().to_string())
        });
        if let Some(text) = found {
            break text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no amendment mail: {:?}",
            app.mails("agreement_amended").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.contains("工作岗位：软件工程师 → 后端开发工程师"), "{text}");
    assert!(text.contains("position: 软件工程师 → 后端开发工程师"), "{text}");
}

async fn an_online_termination_frees_the_student_to_sign_with_another_employer(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = app.sign_online("E1", "S1").await;
    let (s1, e1, reviewer) = (app.student("S1"), app.employer("E1"), app.reviewer());
    let reason = "单位业务调整，岗位取消";
    let requested = ok(
        app.fire(
            &case,
            "request_termination",
            &e1,
            json!({ "termination": { "reason": reason } }),
        )
        .await,
        "termination_requested",
    );
    assert_eq!(requested["data"]["termination"]["requested_by"], "employer");
    let view = app.case(&case, &s1).await.body;
    assert_eq!(action(&view, "consent_termination")["enabled"], true);
    assert_eq!(action(&view, "withdraw_termination")["enabled"], false);
    ok(
        app.fire(&case, "consent_termination", &s1, json!({})).await,
        "termination_consented",
    );
    assert_eq!(
        app.count("claims WHERE key = 'destination:S1'").await,
        1,
        "in force until approved"
    );
    let terminated = ok(
        app.fire(&case, "approve_termination", &reviewer, json!({})).await,
        "terminated",
    );
    assert_eq!(terminated["terminal"], true);

    // One transaction: the claim is free, the record withdrawn and kept with the case.
    assert_eq!(app.count("claims WHERE key = 'destination:S1'").await, 0);
    assert_eq!(
        app.get("/api/v1/students/S1/destination", &s1).await.status,
        StatusCode::NOT_FOUND
    );
    let records = history_of(&app, "S1").await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], "withdrawn");
    assert_eq!(records[0]["case_id"], case.as_str());
    assert_eq!(records[0]["ended_by_case"], case.as_str());
    assert_eq!(records[0]["ended_by"], "approve_termination");
    let told: Vec<_> = app
        .mails("destination_withdrawn")
        .await
        .into_iter()
        .map(|m| m.to_role)
        .collect();
    for role in ["student", "employer", "school_reviewer"] {
        assert!(told.iter().any(|t| t == role), "{role} is told: {told:?}");
    }

    // Verification says terminated, and since when; never in force.
    let number = terminated["data"]["agreement"]["number"].as_str().unwrap();
    let code = terminated["data"]["agreement"]["verification_code"].as_str().unwrap();
    let verified = app
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/verify/{number}?code={code}"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(verified.body["agreement"], "terminated", "{}", verified.body);
    assert_eq!(verified.body["in_force"], false);
    assert!(
        verified.body["terminated_on"].as_str().is_some_and(|d| d.len() == 10),
        "{}",
        verified.body
    );
    assert_eq!(verified.body["state"], "已解约 / terminated");

    // The 解约证明 reads back in Chinese, with both parties and the reason.
    if let Some(text) = document_text(&app, &case, "termination_certificate", &s1).await {
        for fact in [
            "解除就业协议证明",
            "李明",
            "龙江软件有限公司",
            "单位业务调整，岗位取消",
            "甲方（用人单位）",
            number,
        ] {
            assert!(text.contains(fact), "the certificate lacks {fact}: {text}");
        }
    }

    // Free again: another employer's invitation is accepted and approved.
    let second = app.sign_online("E2", "S1").await;
    let record = app.get("/api/v1/students/S1/destination", &s1).await.body;
    assert_eq!(record["category_code"], "10");
    assert_eq!(record["unit_name"], "松花江数据科技有限公司");
    assert_eq!(record["case_id"], second.as_str());
    let records = history_of(&app, "S1").await;
    let made: Vec<_> = records
        .iter()
        .map(|r| (r["case_id"].clone(), r["status"].clone()))
        .collect();
    assert_eq!(
        made,
        [(json!(second), json!("in_force")), (json!(case), json!("withdrawn"))]
    );
}

fn offline_agreement() -> Value {
    json!({
        "employer": { "name": "冰城机械制造有限公司", "credit_code": "91110000101623741K", "receives_archive": true, "receives_hukou": true },
        "terms": { "position": "机械设计工程师", "work_place": "哈尔滨市平房区" }
    })
}

/// An offline agreement of `student` generated, downloaded, stamped, submitted and approved.
async fn approved_offline(app: &TestApp, student: &str) -> String {
    let token = app.student(student);
    let body = json!({ "workflow": "offline_signing", "input": offline_agreement() });
    let case = app.post("/api/v1/cases", &token, &body).await.id();
    ok(app.fire(&case, "preview", &token, json!({})).await, "previewed");
    ok(
        app.fire(&case, "generate", &token, json!({ "confirmed": true })).await,
        "generated",
    );
    let list = app.wait_for_render(&case, "agreement", "done").await;
    let (status, _) = app
        .download(current_document(&list, "agreement", 0).unwrap(), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = app
        .upload(&case, &token, "stamped_agreement", "stamped.pdf", pdf("stamped"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    ok(app.fire(&case, "submit", &token, json!({})).await, "submitted");
    ok(app.fire(&case, "approve", &app.reviewer(), json!({})).await, "approved");
    case
}

async fn an_offline_termination_needs_the_employers_letter(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = approved_offline(&app, "S2").await;
    let s2 = app.student("S2");
    let reason = json!({ "termination": { "reason": "双方协商一致解除协议" } });
    let before = app.case(&case, &s2).await.body;
    let refused = app.fire(&case, "request_termination", &s2, reason.clone()).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    assert!(
        refused.body["detail"].as_str().unwrap().contains("termination letter"),
        "{}",
        refused.body
    );
    assert!(
        refused.body["detail_zh"].as_str().unwrap().contains("解约函"),
        "{}",
        refused.body
    );
    assert_eq!(app.case(&case, &s2).await.body, before, "nothing changed");
    assert_eq!(action(&before, "request_termination")["enabled"], false);

    let letter = app
        .upload(&case, &s2, "termination_letter", "letter.pdf", pdf("解约函"))
        .await;
    assert_eq!(letter.status, StatusCode::OK, "{}", letter.body);
    assert_eq!(letter.body["state"], "approved");
    let requested = ok(
        app.fire(&case, "request_termination", &s2, reason).await,
        "termination_requested",
    );
    assert_eq!(requested["data"]["termination"]["requested_by"], "student");
    ok(
        app.fire(&case, "approve_termination", &app.reviewer(), json!({})).await,
        "terminated",
    );
    assert_eq!(app.count("claims WHERE key = 'destination:S2'").await, 0);
    let records = history_of(&app, "S2").await;
    assert_eq!(records[0]["status"], "withdrawn");
    assert_eq!(records[0]["unit_name"], "冰城机械制造有限公司");
    if let Some(text) = document_text(&app, &case, "termination_certificate", &s2).await {
        for fact in ["王芳", "冰城机械制造有限公司", "双方协商一致解除协议", "乙方（毕业生）"]
        {
            assert!(text.contains(fact), "the certificate lacks {fact}: {text}");
        }
    }
    // Free again: the student may register another destination.
    let body = json!({ "workflow": "destination_registration", "input": { "destination": { "category": "70", "fields": { "sub_status": "seeking" } } } });
    let registration = app.post("/api/v1/cases", &s2, &body).await.id();
    ok(app.fire(&registration, "submit", &s2, json!({})).await, "submitted");
}

/// A registration of `student` under `destination` with one proof, approved.
async fn approved_registration(app: &TestApp, student: &str, destination: Value) -> String {
    let token = app.student(student);
    let body = json!({ "workflow": "destination_registration", "input": { "destination": destination } });
    let case = app.post("/api/v1/cases", &token, &body).await.id();
    let r = app.upload(&case, &token, "proof", "proof.pdf", pdf("proof")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    ok(app.fire(&case, "submit", &token, json!({})).await, "submitted");
    ok(app.fire(&case, "approve", &app.reviewer(), json!({})).await, "approved");
    case
}

fn further_study(school: &str) -> Value {
    json!({ "category": "80", "fields": { "admitting_school": school, "degree_level": "硕士研究生" } })
}

/// The unit of the student's destination record in force, as every reader sees it.
async fn unit_of(app: &TestApp, student: &str) -> Value {
    let r = app
        .get(
            &format!("/api/v1/students/{student}/destination"),
            &app.student(student),
        )
        .await;
    r.body["unit_name"].clone()
}

async fn a_registration_is_corrected_once_returned_and_once_approved(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let case = approved_registration(&app, "S1", further_study("哈尔滨工业大学")).await;
    let (s1, reviewer) = (app.student("S1"), app.reviewer());
    assert_eq!(unit_of(&app, "S1").await, "哈尔滨工业大学");

    let no_reason = app
        .fire(
            &case,
            "correct",
            &s1,
            json!({ "correction": { "destination": further_study("哈尔滨工程大学") } }),
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_reason.body["errors"][0]["field"], "input.correction.reason");
    let correction =
        json!({ "correction": { "destination": further_study("哈尔滨工程大学"), "reason": "录取学校填写错误" } });
    let asked = ok(
        app.fire(&case, "correct", &s1, correction.clone()).await,
        "correction_requested",
    );
    assert_eq!(
        asked["data"]["destination"]["fields"]["admitting_school"],
        "哈尔滨工业大学"
    );
    assert_eq!(
        unit_of(&app, "S1").await,
        "哈尔滨工业大学",
        "until approved the old record stands"
    );

    let returned = app
        .fire(
            &case,
            "return_correction",
            &reviewer,
            json!({ "review": { "reason": "请上传新的录取通知书" } }),
        )
        .await;
    let returned = ok(returned, "approved");
    assert_eq!(
        returned["data"]["destination"]["fields"]["admitting_school"],
        "哈尔滨工业大学"
    );
    assert_eq!(
        unit_of(&app, "S1").await,
        "哈尔滨工业大学",
        "a returned correction changes nothing"
    );
    assert_eq!(history_of(&app, "S1").await.len(), 1);

    ok(
        app.fire(&case, "correct", &s1, correction).await,
        "correction_requested",
    );
    let approved = ok(
        app.fire(&case, "approve_correction", &reviewer, json!({})).await,
        "approved",
    );
    assert_eq!(
        approved["data"]["destination"]["fields"]["admitting_school"],
        "哈尔滨工程大学"
    );
    assert!(
        approved["data"]["correction"].get("destination").is_none(),
        "moved, not copied"
    );
    let step = last_step(&approved);
    assert_eq!(step["changes"][0]["field"], "destination");
    assert_eq!(
        step["changes"][0]["old"]["fields"]["admitting_school"],
        "哈尔滨工业大学"
    );
    assert_eq!(
        step["changes"][0]["new"]["fields"]["admitting_school"],
        "哈尔滨工程大学"
    );
    assert_eq!(unit_of(&app, "S1").await, "哈尔滨工程大学", "the record is replaced");
    let records = history_of(&app, "S1").await;
    let shown: Vec<_> = records
        .iter()
        .map(|r| (r["status"].clone(), r["unit_name"].clone()))
        .collect();
    assert_eq!(
        shown,
        [
            (json!("in_force"), json!("哈尔滨工程大学")),
            (json!("replaced"), json!("哈尔滨工业大学"))
        ]
    );
    assert_eq!(records[1]["ended_by_case"], case.as_str());
    assert_eq!(records[1]["ended_by"], "approve_correction");
}

async fn a_withdrawn_registration_frees_the_student_to_sign_online(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else { return };
    let awaiting = json!({ "category": "70", "fields": { "sub_status": "seeking" } });
    let case = approved_registration(&app, "S2", awaiting).await;
    let s2 = app.student("S2");
    let invitation = app.invite("E1", "S2").await.id();
    app.fire(&invitation, "view", &s2, json!({})).await;
    let blocked = app.fire(&invitation, "accept", &s2, json!({})).await;
    assert_eq!(blocked.status, StatusCode::CONFLICT);
    assert_eq!(blocked.problem(), "claim-held");

    let reason = json!({ "withdrawal": { "reason": "已找到工作，准备签约" } });
    ok(
        app.fire(&case, "request_withdrawal", &s2, reason).await,
        "withdrawal_requested",
    );
    assert_eq!(
        app.count("claims WHERE key = 'destination:S2'").await,
        1,
        "held until approved"
    );
    ok(
        app.fire(&case, "approve_withdrawal", &app.reviewer(), json!({})).await,
        "withdrawn",
    );
    assert_eq!(app.count("claims WHERE key = 'destination:S2'").await, 0);
    let records = history_of(&app, "S2").await;
    assert_eq!(records[0]["status"], "withdrawn");
    assert_eq!(records[0]["category_code"], "70");
    ok(app.fire(&invitation, "accept", &s2, json!({})).await, "confirming");
}
