//! Bad input meets precise refusals, on SQLite and PostgreSQL: control characters in
//! any text field (workflow forms, synced records, registrations), a start that leaves
//! out a party its workflow needs, tokens outside their validity, uploads that are not
//! what they claim, probing for student ids; and reading a document records a download
//! only for the reader the workflow names.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, TEST_SECRET, TestApp, current_document, pdf, spawn_app, spawn_app_with};

on_both_backends!(
    control_characters_are_refused_in_every_text_field_with_the_field_named,
    a_start_that_leaves_out_a_party_the_workflow_needs_is_refused,
    a_platform_admin_does_not_invite_for_an_employer,
    a_student_id_cannot_be_probed_through_its_destination,
    tokens_outside_their_validity_are_refused_in_plain_words,
    uploads_that_are_not_what_they_claim_are_refused,
    a_stranger_is_refused_before_the_upload_is_read,
    only_the_students_own_read_records_the_download,
);

async fn app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.seed().await;
    Some(app)
}

fn fields(r: &support::Reply) -> Vec<String> {
    r.body["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|x| x["field"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn control_characters_are_refused_in_every_text_field_with_the_field_named(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let admin = app.admin();
    // A workflow's one-line text field: a bell, a line break.
    for position in ["软件\u{7}工程师", "软件\n工程师", "软件\u{202E}工程师"] {
        let body =
            json!({ "workflow": "online_signing", "student": "S1", "input": { "terms": { "position": position } } });
        let r = app.post("/api/v1/cases", &app.employer("E1"), &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{position:?}: {}", r.body);
        assert_eq!(fields(&r), ["input.terms.position"], "{}", r.body);
        assert_eq!(r.body["errors"][0]["code"], "text.control_char");
    }
    // A multi-line field takes line breaks and tabs, not other controls.
    let body = json!({ "workflow": "online_signing", "student": "S1",
        "input": { "terms": { "position": "软件工程师", "supplementary": "一、五险一金\r\n二、\t餐补" } } });
    let r = app.post("/api/v1/cases", &app.employer("E1"), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["data"]["terms"]["supplementary"], "一、五险一金\n二、\t餐补");
    let body = json!({ "workflow": "online_signing", "student": "S2", "input": { "terms": { "supplementary": "a\u{1b}[2J" } } });
    let r = app.post("/api/v1/cases", &app.employer("E1"), &body).await;
    assert_eq!(fields(&r), ["input.terms.supplementary"], "{}", r.body);
    // The offline path's typed employer.
    let body = json!({ "workflow": "offline_signing", "input": { "employer": { "name": "冰城\u{7}机械" } } });
    let r = app.post("/api/v1/cases", &app.student("S3"), &body).await;
    assert_eq!(fields(&r), ["input.employer.name"], "{}", r.body);
    // A registration checked against the reference data.
    let body = json!({ "workflow": "destination_registration",
        "input": { "destination": { "category": "80", "fields": { "admitting_school": "哈尔滨\u{8}工业大学", "degree_level": "硕士研究生" } } } });
    let r = app.post("/api/v1/cases", &app.student("S4"), &body).await;
    assert_eq!(fields(&r), ["input.destination.fields.admitting_school"], "{}", r.body);
    // The parties' records the platform syncs.
    let r = app
        .put(
            "/api/v1/employers/E9",
            &admin,
            &json!({ "name": "龙江\u{1}软件", "credit_code": "91110000600037341L",
            "receives_archive": true, "receives_hukou": true, "address": "哈尔滨\n南岗" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(fields(&r), ["name", "address"], "{}", r.body);
    assert_eq!(app.count("cases").await, 1, "only the valid invitation is stored");
}

async fn a_start_that_leaves_out_a_party_the_workflow_needs_is_refused(backend: Backend) {
    // A copy of the definitions in which the platform may send invitations too: then
    // the employer must be named in the request.
    let workflows = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        if path.file_name().unwrap() == "online_signing.toml" {
            text = text.replacen(
                "name = \"invite\"\ntitle = \"发送签约邀请 / send an invitation\"\nby = \"employer\"",
                "name = \"invite\"\ntitle = \"发送签约邀请 / send an invitation\"\nby = [\"employer\", \"platform_admin\"]",
                1,
            );
            assert!(
                text.contains("platform_admin\"]\nto = \"invited\""),
                "the copy lets the platform invite"
            );
        }
        std::fs::write(workflows.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let dir = workflows.path().to_path_buf();
    let Some(app) = spawn_app_with(backend, move |c| c.workflows_dir = dir).await else {
        return;
    };
    app.seed().await;
    let admin = app.admin();
    let invite = |employer: Option<&str>| {
        let mut body = json!({ "workflow": "online_signing", "student": "S1", "input": { "terms": { "position": "软件工程师" } } });
        if let Some(e) = employer {
            body["employer"] = json!(e);
        }
        body
    };
    // Not named, or naming no employer: refused, nothing stored.
    for employer in [None, Some("E404")] {
        let r = app.post("/api/v1/cases", &admin, &invite(employer)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(fields(&r), ["employer"]);
    }
    assert_eq!(app.count("cases").await, 0);
    // Named, the case has its employer, and the student's accept evaluates its conditions.
    let r = app.post("/api/v1/cases", &admin, &invite(Some("E1"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["parties"]["employer"]["id"], "E1");
    let case = r.body["id"].as_str().unwrap().to_string();
    let s1 = app.student("S1");
    assert_eq!(app.fire(&case, "view", &s1, json!({})).await.status, StatusCode::OK);
    let r = app.fire(&case, "accept", &s1, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A workflow without an employer party takes none; an employer starts as itself.
    let r = app
        .post(
            "/api/v1/cases",
            &app.student("S2"),
            &json!({ "workflow": "offline_signing", "employer": "E1", "input": {} }),
        )
        .await;
    assert_eq!(fields(&r), ["employer"], "{}", r.body);
    let mut body = invite(Some("E2"));
    body["student"] = json!("S2");
    let r = app.post("/api/v1/cases", &app.employer("E1"), &body).await;
    assert_eq!(fields(&r), ["employer"], "{}", r.body);
}

/// With the definitions as shipped, a platform admin does not invite in an employer's
/// place at all (no proxy signing, issue 10).
async fn a_platform_admin_does_not_invite_for_an_employer(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let body = json!({ "workflow": "online_signing", "student": "S1", "employer": "E1", "input": { "terms": { "position": "软件工程师" } } });
    let r = app.post("/api/v1/cases", &app.admin(), &body).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(app.count("cases").await, 0);
}

async fn a_student_id_cannot_be_probed_through_its_destination(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let stranger = app.student("S2");
    let known = app.get("/api/v1/students/S1/destination", &stranger).await;
    let unknown = app.get("/api/v1/students/NOBODY/destination", &stranger).await;
    assert_eq!(known.status, StatusCode::NOT_FOUND, "{}", known.body);
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let strip = |v: &Value| v.to_string().replace("S1", "X").replace("NOBODY", "X");
    assert_eq!(strip(&known.body), strip(&unknown.body), "the same answer either way");
    let employer = app.get("/api/v1/students/S1/destination", &app.employer("E1")).await;
    assert_eq!(employer.status, StatusCode::NOT_FOUND);
}

fn token(claims: Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

async fn tokens_outside_their_validity_are_refused_in_plain_words(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let now = chrono::Utc::now().timestamp();
    let claims = |extra: Value| {
        let mut c = json!({ "role": "platform_admin", "iat": now, "exp": now + 600 });
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let cases = [
        (
            "not valid for a minute yet",
            token(claims(json!({ "nbf": now + 60 })), TEST_SECRET),
            "not valid yet",
        ),
        (
            "expired 10 s ago",
            token(claims(json!({ "exp": now - 10 })), TEST_SECRET),
            "expired",
        ),
        (
            "another secret",
            token(claims(json!({})), "another-secret-another-secret-another"),
            "signature",
        ),
        ("garbage", "abc.def.ghi".to_string(), "malformed"),
    ];
    for (what, token, says) in cases {
        let r = app.get("/api/v1/cases", &token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{what}: {detail}");
        assert!(
            !detail.contains("Error") && !detail.contains("Json"),
            "{what}: {detail}"
        );
    }
    let fine = token(claims(json!({ "nbf": now - 1 })), TEST_SECRET);
    assert_eq!(app.get("/api/v1/cases", &fine).await.status, StatusCode::OK);
}

/// An offline case of S1, generated and downloaded: ready for the stamped scan.
async fn downloaded_case(app: &TestApp) -> String {
    let case = app.offline_generated("S1").await;
    // The preview's render too: a render stores its documents whenever its job runs, and
    // the tests count the documents an upload adds.
    app.wait_for_render(&case, "agreement_preview", "done").await;
    let list = app.wait_for_render(&case, "agreement", "done").await;
    let doc = current_document(&list, "agreement", 0).unwrap().clone();
    assert_eq!(app.download(&doc, &app.student("S1")).await.0, StatusCode::OK);
    case
}

/// Uploads with the part's own declared type.
async fn upload_as(
    app: &TestApp,
    case: &str,
    token: &str,
    name: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    let part = reqwest::multipart::Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(mime)
        .unwrap();
    // The name as browsers send it: UTF-8 in the quoted `filename`.
    let form = reqwest::multipart::Form::new()
        .percent_encode_noop()
        .text("slot", "stamped_agreement")
        .part("file", part);
    let resp = app
        .client
        .post(format!("{}/api/v1/cases/{case}/documents", app.base))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn uploads_that_are_not_what_they_claim_are_refused(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let case = downloaded_case(&app).await;
    let s1 = app.student("S1");
    let polyglot = b"%PDF-1.4\n<html><script>alert(document.cookie)</script></html>\n%%EOF\n".to_vec();
    let (status, body) = upload_as(&app, &case, &s1, "a.pdf", "application/pdf", polyglot).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["errors"][0]["code"], "file.active_content");
    let (status, body) = upload_as(&app, &case, &s1, "a.png", "image/png", pdf("declared png")).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["errors"][0]["code"], "file.type_mismatch");
    let before = app.count("documents").await;
    // The name keeps its Chinese but loses the characters that would reverse it.
    let (status, body) = upload_as(
        &app,
        &case,
        &s1,
        "盖章协议\u{202E}fdp.exe",
        "application/pdf",
        pdf("stamped"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.count("documents").await, before + 1);
    let list = app.get(&format!("/api/v1/cases/{case}/documents"), &s1).await.body;
    let stored = current_document(&list, "stamped_agreement", 0).unwrap();
    assert_eq!(stored["file_name"], "盖章协议fdp.pdf");
    // The agreement downloads with a readable ASCII name beside the Chinese one.
    let agreement = current_document(&list, "agreement", 0).unwrap();
    let resp = app
        .client
        .get(format!("{}{}", app.base, agreement["url"].as_str().unwrap()))
        .bearer_auth(&s1)
        .send()
        .await
        .unwrap();
    let disposition = resp.headers()["content-disposition"].to_str().unwrap().to_string();
    let number = app.case(&case, &s1).await.body["data"]["agreement"]["number"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.contains(&format!("filename=\"agreement-{number}.pdf\"")),
        "{disposition}"
    );
}

async fn a_stranger_is_refused_before_the_upload_is_read(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.max_upload_bytes = 100 * 1024).await else {
        return;
    };
    app.seed().await;
    let case = downloaded_case(&app).await;
    // Not the student's case: refused as such (not as too large), so nothing was read.
    let oversized = vec![b'x'; 300 * 1024];
    let (status, body) = upload_as(&app, &case, &app.student("S2"), "a.pdf", "application/pdf", oversized).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The student's own file over the limit is refused with the limit in a unit people read.
    let over = vec![b'x'; 130 * 1024];
    let (status, body) = upload_as(&app, &case, &app.student("S1"), "a.pdf", "application/pdf", over).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("100 KB"), "{detail}");
}

async fn only_the_students_own_read_records_the_download(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let s1 = app.student("S1");
    let case = app.offline_generated("S1").await;
    // The preview's render too: a render stores its documents whenever its job runs, and
    // the tests count the documents an upload adds.
    app.wait_for_render(&case, "agreement_preview", "done").await;
    let list = app.wait_for_render(&case, "agreement", "done").await;
    let doc = current_document(&list, "agreement", 0).unwrap().clone();
    for reader in [app.admin(), app.reviewer()] {
        assert_eq!(app.download(&doc, &reader).await.0, StatusCode::OK);
        assert_eq!(
            app.case(&case, &s1).await.body["state"],
            "generated",
            "a staff read records nothing"
        );
    }
    assert_eq!(app.download(&doc, &s1).await.0, StatusCode::OK);
    assert_eq!(app.case(&case, &s1).await.body["state"], "downloaded");
}
