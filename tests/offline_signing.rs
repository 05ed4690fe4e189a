//! Offline signing (线下签约, R10–R13) end to end through HTTP, on SQLite and PostgreSQL:
//! the student types the agreement in, previews, generates, downloads, uploads the
//! stamped scan and submits; the school approves (destination 10, R2) or rejects.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, TestApp, action, current_document, pdf, pdf_page_text, spawn_app, spawn_app_with};

on_both_backends!(
    the_whole_offline_path_ends_with_a_destination_record,
    a_rejected_application_is_followed_by_a_new_one,
    bad_uploads_are_refused_and_store_nothing,
    typed_values_are_validated_with_every_fault_named,
);

async fn app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.seed().await;
    Some(app)
}

fn agreement() -> Value {
    json!({
        "employer": { "name": "冰城机械制造有限公司", "credit_code": "91110000101623741K", "nature": "39",
            "phone": "0451-86660000", "email": "hr@bingcheng.example.cn", "receives_archive": true, "receives_hukou": false },
        "terms": { "position": "机械设计工程师", "work_place": "哈尔滨市平房区", "salary": "每月 7,500 元",
            "reporting_date": "2027-07-15", "hukou_unit": "平房公安分局", "hukou_address": "哈尔滨市平房区友协大街3号" }
    })
}

/// Starts an offline case for `student`, previews and generates it; returns its id.
async fn generated_case(app: &TestApp, student: &str) -> String {
    let token = app.student(student);
    let r = app
        .post(
            "/api/v1/cases",
            &token,
            &json!({ "workflow": "offline_signing", "input": agreement() }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let case = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.fire(&case, "preview", &token, json!({})).await.status,
        StatusCode::OK
    );
    let r = app.fire(&case, "generate", &token, json!({ "confirmed": true })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    case
}

/// Downloads the generated agreement as `student` (recording the download); returns the PDF.
async fn download_agreement(app: &TestApp, case: &str, student: &str) -> Vec<u8> {
    let list = app.wait_for_render(case, "agreement", "done").await;
    let doc = current_document(&list, "agreement", 0)
        .expect("the agreement PDF")
        .clone();
    let (status, bytes) = app.download(&doc, &app.student(student)).await;
    assert_eq!(status, StatusCode::OK);
    bytes
}

async fn the_whole_offline_path_ends_with_a_destination_record(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let s1 = app.student("S1");
    // A draft saved over several saves; every field is optional until generation.
    let r = app
        .post(
            "/api/v1/cases",
            &s1,
            &json!({ "workflow": "offline_signing", "input": { "employer": { "name": "冰城机械制造有限公司" } } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["state"], "draft");
    assert!(
        r.body["parties"]["employer"].is_null(),
        "an offline case has no employer party"
    );
    let case = r.body["id"].as_str().unwrap().to_string();
    let saved = app
        .fire(&case, "save", &s1, json!({ "terms": agreement()["terms"] }))
        .await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.body["state"], "draft");
    assert_eq!(saved.body["data"]["employer"]["name"], "冰城机械制造有限公司");

    // Generating needs a preview first, a confirmation, and the mandatory fields.
    let early = app.fire(&case, "generate", &s1, json!({ "confirmed": true })).await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert_eq!(early.problem(), "not-allowed-in-state");
    assert_eq!(app.fire(&case, "preview", &s1, json!({})).await.status, StatusCode::OK);
    let unconfirmed = app.fire(&case, "generate", &s1, json!({ "confirmed": false })).await;
    assert_eq!(unconfirmed.status, StatusCode::CONFLICT, "{}", unconfirmed.body);
    assert!(unconfirmed.body["detail"].as_str().unwrap().contains("confirm"));
    let missing = app.fire(&case, "generate", &s1, json!({ "confirmed": true })).await;
    assert_eq!(missing.status, StatusCode::CONFLICT, "{}", missing.body);
    assert!(
        missing.body["detail"].as_str().unwrap().contains("credit code"),
        "{}",
        missing.body
    );
    let view = app.case(&case, &s1).await.body;
    assert_eq!(action(&view, "generate")["enabled"], false);
    // A bad credit code is refused with its field named.
    let bad = app
        .fire(
            &case,
            "edit",
            &s1,
            json!({ "employer": { "credit_code": "91110000101623741X" } }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["errors"][0]["field"], "input.employer.credit_code");
    let edited = app.fire(&case, "edit", &s1, agreement()).await;
    assert_eq!(edited.body["state"], "draft", "{}", edited.body);
    let previewed = app.fire(&case, "preview", &s1, json!({})).await;
    assert_eq!(previewed.body["state"], "previewed");
    let generated = app.fire(&case, "generate", &s1, json!({ "confirmed": true })).await;
    assert_eq!(generated.status, StatusCode::OK, "{}", generated.body);
    assert_eq!(generated.body["state"], "generated");
    let number = generated.body["data"]["agreement"]["number"]
        .as_str()
        .unwrap()
        .to_string();

    // R11: the download comes before the upload.
    let refused = app
        .upload(&case, &s1, "stamped_agreement", "stamped.pdf", pdf("early"))
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("download the agreement first"),
        "{}",
        refused.body
    );

    // The preview and the final agreement are different documents, both with the typed data.
    let list = app.wait_for_render(&case, "agreement_preview", "done").await;
    let preview = current_document(&list, "agreement_preview", 0).unwrap().clone();
    let (_, preview_pdf) = app.download(&preview, &s1).await;
    let final_pdf = download_agreement(&app, &case, "S1").await;
    assert_ne!(preview_pdf, final_pdf);
    if let (Some(preview_text), Some(page1), Some(page2)) = (
        pdf_page_text(&preview_pdf, 1),
        pdf_page_text(&final_pdf, 1),
        pdf_page_text(&final_pdf, 2),
    ) {
        assert!(
            preview_text.contains('预') && preview_text.contains('览'),
            "{preview_text}"
        );
        assert!(preview_text.contains("冰城机械制造有限公司"), "{preview_text}");
        for fact in ["冰城机械制造有限公司", "91110000101623741K", "李明", &number] {
            assert!(page1.contains(fact), "page 1 lacks {fact}: {page1}");
        }
        for fact in ["机械设计工程师", "哈尔滨市平房区", "2027-07-15"] {
            assert!(page2.contains(fact), "page 2 lacks {fact}: {page2}");
        }
    }
    let downloaded = app.case(&case, &s1).await.body;
    assert_eq!(
        downloaded["state"], "downloaded",
        "reading the agreement records the download"
    );

    // R12: the stamped scan, in two files; then submit and approve.
    assert_eq!(action(&downloaded, "submit")["enabled"], false, "nothing uploaded yet");
    for page in ["p1", "p2"] {
        let r = app
            .upload(&case, &s1, "stamped_agreement", &format!("{page}.pdf"), pdf(page))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["state"], "downloaded");
    }
    let submitted = app.fire(&case, "submit", &s1, json!({})).await;
    assert_eq!(submitted.body["state"], "submitted", "{}", submitted.body);
    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.body["state"], "approved", "{}", approved.body);
    let destination = app.get("/api/v1/students/S1/destination", &s1).await;
    assert_eq!(destination.status, StatusCode::OK, "{}", destination.body);
    assert_eq!(destination.body["category_code"], "10");
    assert_eq!(destination.body["unit_name"], "冰城机械制造有限公司");
    assert_eq!(destination.body["location"], "哈尔滨市平房区");
    assert_eq!(destination.body["case_id"], case.as_str());
    // The Ministry's export takes the unit's codes from the employer typed into the case
    // (where `[typed_parties]` keeps it), not from a synced record it does not have.
    let csv = app.text("/api/v1/exports/destinations.csv", &app.reviewer()).await;
    let line = csv
        .lines()
        .find(|l| l.contains("冰城机械制造有限公司"))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(line.contains(",91110000101623741K,"), "{line}");
    // A student who left can still come back and download it.
    let again = download_agreement(&app, &case, "S1").await;
    assert_eq!(again, final_pdf);
}

async fn a_rejected_application_is_followed_by_a_new_one(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let s2 = app.student("S2");
    let case = generated_case(&app, "S2").await;
    download_agreement(&app, &case, "S2").await;
    let r = app
        .upload(&case, &s2, "stamped_agreement", "stamped.pdf", pdf("stamped"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.fire(&case, "submit", &s2, json!({})).await;
    let no_reason = app.fire(&case, "return", &app.reviewer(), json!({})).await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_reason.body["errors"][0]["field"], "input.review.reason");
    let rejected = app
        .fire(
            &case,
            "return",
            &app.reviewer(),
            json!({ "review": { "reason": "盖章不清晰" } }),
        )
        .await;
    assert_eq!(rejected.body["state"], "rejected", "{}", rejected.body);
    assert_eq!(rejected.body["terminal"], true);
    // The rejected case stays readable, with the reason and the agreement.
    let seen = app.case(&case, &s2).await;
    assert_eq!(seen.body["data"]["review"]["reason"], "盖章不清晰");
    let docs = app.get(&format!("/api/v1/cases/{case}/documents"), &s2).await;
    assert!(current_document(&docs.body, "agreement", 0).is_some());
    assert_eq!(
        app.get("/api/v1/students/S2/destination", &s2).await.status,
        StatusCode::NOT_FOUND
    );
    // The claim was released: a new application goes through to approval.
    let second = generated_case(&app, "S2").await;
    assert_ne!(second, case);
    let n1 = seen.body["data"]["agreement"]["number"].clone();
    let n2 = app.case(&second, &s2).await.body["data"]["agreement"]["number"].clone();
    assert_ne!(n1, n2, "a new application has a new agreement number");
    download_agreement(&app, &second, "S2").await;
    app.upload(&second, &s2, "stamped_agreement", "stamped.pdf", pdf("second"))
        .await;
    app.fire(&second, "submit", &s2, json!({})).await;
    let approved = app.fire(&second, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.body["state"], "approved", "{}", approved.body);
    let destination = app.get("/api/v1/students/S2/destination", &s2).await;
    assert_eq!(destination.body["category_code"], "10");
    assert_eq!(destination.body["case_id"], second.as_str());
}

async fn bad_uploads_are_refused_and_store_nothing(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.max_upload_bytes = 4096).await else {
        return;
    };
    app.seed().await;
    let s3 = app.student("S3");
    let case = generated_case(&app, "S3").await;
    download_agreement(&app, &case, "S3").await;
    let version = app.case(&case, &s3).await.body["version"].clone();
    // Uploads only: the agreement render of `generate` may still be landing its files.
    let documents = app.count("documents WHERE slot = 'stamped_agreement'").await;
    let mut truncated = pdf("cut");
    truncated.truncate(30);
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode)> = vec![
        ("empty", "empty.pdf", Vec::new(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "oversized",
            "big.pdf",
            [pdf("big"), vec![b' '; 5000]].concat(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "a GIF",
            "scan.gif",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "text named .pdf",
            "scan.pdf",
            b"this is not a pdf".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "a truncated PDF",
            "cut.pdf",
            truncated,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (what, name, bytes, status) in cases {
        let r = app.upload(&case, &s3, "stamped_agreement", name, bytes).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert_eq!(r.headers["content-type"], "application/problem+json", "{what}");
        assert_eq!(
            app.count("documents WHERE slot = 'stamped_agreement'").await,
            documents,
            "{what}: nothing stored"
        );
        assert_eq!(
            app.case(&case, &s3).await.body["version"],
            version,
            "{what}: version unchanged"
        );
    }
    let wrong_slot = app.upload(&case, &s3, "proof", "p.pdf", pdf("slot")).await;
    assert_eq!(wrong_slot.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Five stamped files at most; the same file twice is refused.
    for i in 0..5 {
        let r = app
            .upload(&case, &s3, "stamped_agreement", "s.pdf", pdf(&format!("page {i}")))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let sixth = app
        .upload(&case, &s3, "stamped_agreement", "s.pdf", pdf("page 6"))
        .await;
    assert_eq!(sixth.status, StatusCode::CONFLICT, "{}", sixth.body);
}

async fn typed_values_are_validated_with_every_fault_named(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let admin = app.admin();
    // ID numbers (GB 11643) in the synced student record: checksum, and the sex digit.
    let bad = app
        .put(
            "/api/v1/students/S5",
            &admin,
            &json!({ "school": support::SCHOOL, "name": "陈静", "id_number": "110105194912310021" }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert_eq!(bad.body["errors"][0]["field"], "id_number");
    let mismatch = app
        .put(
            "/api/v1/students/S5",
            &admin,
            &json!({ "school": support::SCHOOL, "name": "陈静", "gender": "男", "id_number": "11010519491231002X" }),
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", mismatch.body);
    let good = app
        .put(
            "/api/v1/students/S5",
            &admin,
            &json!({ "school": support::SCHOOL, "name": "陈静", "gender": "女", "id_number": "11010519491231002x" }),
        )
        .await;
    assert!(good.status.is_success(), "{}", good.body);

    // The offline agreement's typed fields: all faults at once, nothing stored.
    let s5 = app.student("S5");
    let bad = app
        .post(
            "/api/v1/cases",
            &s5,
            &json!({ "workflow": "offline_signing", "input": {
                "employer": { "name": "某".repeat(101), "credit_code": "91350211M0000XUF46", "phone": "12345",
                    "email": "hr@", "receives_archive": "yes", "postcode": "15000" },
                "terms": { "reporting_date": "2027-02-30", "position": "" } } }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let mut named: Vec<_> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            "input.employer.credit_code",
            "input.employer.email",
            "input.employer.name",
            "input.employer.phone",
            "input.employer.postcode",
            "input.employer.receives_archive",
            "input.terms.reporting_date",
        ],
        "{}",
        bad.body
    );
    assert_eq!(app.count("cases").await, 0);
    let good = app
        .post(
            "/api/v1/cases",
            &s5,
            &json!({ "workflow": "offline_signing", "input": {
                "employer": { "name": "冰城机械制造有限公司", "credit_code": "911101066976941872", "phone": "0451-86660000",
                    "email": "HR@Bingcheng.example.cn", "postcode": "150000", "receives_archive": false },
                "terms": { "reporting_date": "2027-07-01" } } }),
        )
        .await;
    assert_eq!(good.status, StatusCode::CREATED, "{}", good.body);
    assert_eq!(good.body["data"]["terms"]["reporting_date"], "2027-07-01");
    // Without the archive's destination (the employer does not take it), generation says so.
    let case = good.body["id"].as_str().unwrap().to_string();
    app.fire(
        &case,
        "save",
        &s5,
        json!({ "terms": { "position": "设计", "work_place": "哈尔滨" } }),
    )
    .await;
    app.fire(&case, "preview", &s5, json!({})).await;
    let r = app.fire(&case, "generate", &s5, json!({ "confirmed": true })).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        r.body["detail"].as_str().unwrap().contains("personnel file"),
        "{}",
        r.body
    );
}
