//! Agreements and documents through HTTP: the online path renders a preview on
//! confirmation and the final agreement on approval; both read back as PDF text with
//! the case's facts; access follows R9; verification tells genuine from fake; a name
//! the fonts cannot print fails visibly.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Backend, TestApp, current_document, pdf_page_text, spawn_app};

on_both_backends!(
    confirming_renders_a_preview_and_approval_the_final_agreement,
    a_name_the_fonts_cannot_print_fails_the_render_visibly,
    the_school_date_appears_when_the_school_approves_not_when_it_returns,
    amended_terms_give_a_new_document_and_keep_the_old,
    a_late_render_of_an_older_version_marks_nothing_and_stores_nothing,
    a_late_render_prints_the_same_bytes_as_an_on_time_one,
    the_graduates_record_and_the_archive_recipient_print_by_name_on_their_pages,
);

async fn app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.seed().await;
    Some(app)
}

/// Invites S1 from E1 with full terms and brings the case to `submitted`.
async fn submitted_case(app: &TestApp, student: &str) -> String {
    let body = json!({ "workflow": "online_signing", "student": student, "input": { "terms": {
        "position": "嵌入式软件工程师", "work_place": "哈尔滨市松北区", "salary": "转正后每月 9,000 元",
        "probation": "3 个月", "reporting_date": "2027-07-10", "liquidated_damages": "5,000 元" } } });
    let r = app.post("/api/v1/cases", &app.employer("E1"), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let case = r.body["id"].as_str().unwrap().to_string();
    let token = app.student(student);
    for step in ["view", "accept", "confirm"] {
        let r = app.fire(&case, step, &token, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    case
}

async fn download(app: &TestApp, doc: &Value, token: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{}", app.base, doc["url"].as_str().unwrap()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn confirming_renders_a_preview_and_approval_the_final_agreement(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let case = submitted_case(&app, "S1").await;
    let s1 = app.student("S1");
    let number = app.case(&case, &s1).await.body["data"]["agreement"]["number"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(number.starts_with("20") && number.contains("-10212-"), "{number}");

    let list = app.wait_for_render(&case, "agreement_preview", "done").await;
    let preview = current_document(&list, "agreement_preview", 0).expect("a preview PDF");
    assert_eq!(preview["content_type"], "application/pdf");
    assert!(
        current_document(&list, "agreement_preview", 1).is_some()
            && current_document(&list, "agreement_preview", 2).is_some(),
        "two page images"
    );
    let students_view = app.get(&format!("/api/v1/cases/{case}/documents"), &s1).await;
    assert!(
        current_document(&students_view.body, "agreement", 0).is_none(),
        "no final agreement before approval"
    );
    let resp = download(&app, preview, &s1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let pdf = resp.bytes().await.unwrap();
    // The rotated watermark comes out of pdftotext as scattered characters.
    if let Some(page1) = pdf_page_text(&pdf, 1) {
        assert!(
            page1.contains('预') && page1.contains('览'),
            "the preview is marked: {page1}"
        );
    }

    let png = current_document(&list, "agreement_preview", 1).unwrap();
    let resp = download(&app, png, &s1).await;
    assert_eq!(resp.headers()["content-type"], "image/png");
    let bytes = resp.bytes().await.unwrap();
    let (w, h) = (
        u32::from_be_bytes(bytes[16..20].try_into().unwrap()),
        u32::from_be_bytes(bytes[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), gradsign::render::PAGE_PNG_SIZE);

    assert_eq!(
        app.fire(&case, "approve", &app.reviewer(), json!({})).await.status,
        StatusCode::OK
    );
    let list = app.wait_for_render(&case, "agreement", "done").await;
    let final_pdf = current_document(&list, "agreement", 0)
        .expect("the final agreement")
        .clone();
    let resp = download(&app, &final_pdf, &s1).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let disposition = resp.headers()["content-disposition"].to_str().unwrap().to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"")
            && disposition.contains("filename*=UTF-8''%E5%B0%B1%E4%B8%9A"),
        "{disposition}"
    );
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    let pdf = resp.bytes().await.unwrap();
    let (page1, page2) = (
        pdf_page_text(&pdf, 1).unwrap_or_default(),
        pdf_page_text(&pdf, 2).unwrap_or_default(),
    );
    let read_back = !page1.is_empty();
    for fact in [
        "李明",
        "龙江软件有限公司",
        "91110000600037341L",
        "北方理工大学",
        "计算机科学与技术",
        &number,
    ] {
        assert!(!read_back || page1.contains(fact), "page 1 lacks {fact}: {page1}");
    }
    for fact in [
        "嵌入式软件工程师",
        "哈尔滨市松北区",
        "转正后每月9,000元",
        "3个月",
        "2027-07-10",
        "5,000元",
        // The signing record names the person beside the party (the test tokens' reviewer).
        "丙方北方理工大学学校审核员10212审核通过",
        &number,
    ] {
        assert!(!read_back || page2.contains(fact), "page 2 lacks {fact}: {page2}");
    }
    assert!(!page1.contains("null") && !page2.contains("null"));
    let again = app
        .client
        .get(format!("{}{}", app.base, final_pdf["url"].as_str().unwrap()))
        .bearer_auth(&s1)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // Strangers get 403; verification needs the right code and says little.
    assert_eq!(
        download(&app, &final_pdf, &app.student("S2")).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        download(&app, &final_pdf, &app.employer("E2")).await.status(),
        StatusCode::FORBIDDEN
    );
    let code = app.case(&case, &s1).await.body["data"]["agreement"]["verification_code"]
        .as_str()
        .unwrap()
        .to_string();
    let genuine = app
        .request(
            Method::GET,
            &format!("/api/v1/verify/{number}?code={code}"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(genuine.status, StatusCode::OK);
    assert_eq!(genuine.body["genuine"], true);
    assert_eq!(genuine.body["student_name"], "李明");
    assert_eq!(genuine.body["employer_name"], "龙江软件有限公司");
    assert!(genuine.body.get("data").is_none() && genuine.body.get("id_number").is_none());
    let fake = app
        .request(
            Method::GET,
            &format!("/api/v1/verify/{number}?code=AAAAAAAA"),
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(fake.body["genuine"], false);
    assert!(fake.body.get("student_name").is_none());
}

async fn a_name_the_fonts_cannot_print_fails_the_render_visibly(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let r = app
        .put(
            "/api/v1/students/S9",
            &app.admin(),
            &json!({ "school": support::SCHOOL, "name": "王𠇔" }),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let case = submitted_case(&app, "S9").await;
    let list = app.wait_for_render(&case, "agreement_preview", "failed").await;
    let render = list["renders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slot"] == "agreement_preview")
        .unwrap();
    let error = render["error"].as_str().unwrap();
    assert!(error.contains('𠇔') && error.contains("student.name"), "{error}");
    assert_eq!(render["attempts"], 1, "a missing glyph is not retried");
    assert!(
        current_document(&list, "agreement_preview", 0).is_none(),
        "no blank-box PDF is stored"
    );
}

async fn amended_terms_give_a_new_document_and_keep_the_old(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let case = submitted_case(&app, "S2").await;
    let s2 = app.student("S2");
    let number = app.case(&case, &s2).await.body["data"]["agreement"]["number"].clone();
    let first = app.wait_for_render(&case, "agreement_preview", "done").await;
    let old = current_document(&first, "agreement_preview", 0).unwrap().clone();
    let reason = json!({ "review": { "reason": "薪酬写法不规范" } });
    assert_eq!(
        app.fire(&case, "return", &app.reviewer(), reason).await.status,
        StatusCode::OK
    );
    let amended = app
        .fire(
            &case,
            "amend",
            &app.employer("E1"),
            json!({ "terms": { "salary": "转正后每月 9,500 元" } }),
        )
        .await;
    assert_eq!(amended.status, StatusCode::OK, "{}", amended.body);
    app.fire(&case, "resign", &s2, json!({})).await;
    let confirmed = app.fire(&case, "confirm", &s2, json!({})).await;
    let version = confirmed.body["version"].as_i64().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let list = loop {
        let list = app.wait_for_render(&case, "agreement_preview", "done").await;
        let fresh = current_document(&list, "agreement_preview", 0).is_some_and(|d| d["case_version"] == version);
        if fresh {
            break list;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no render of version {version}: {list}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let new = current_document(&list, "agreement_preview", 0).unwrap();
    assert_ne!(new["sha256"], old["sha256"], "changed data, new document");
    let kept = list["documents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == old["id"])
        .expect("the old document is kept");
    assert!(!kept["replaced_at"].is_null());
    let pdf = download(&app, new, &s2).await.bytes().await.unwrap();
    if let Some(page2) = pdf_page_text(&pdf, 2) {
        assert!(page2.contains("9,500元"), "{page2}");
    }
    assert_eq!(
        app.case(&case, &s2).await.body["data"]["agreement"]["number"],
        number,
        "an amendment keeps the number"
    );
}

/// Page 2 of the current PDF in `slot`, once rendered; `None` without pdftotext outside CI.
async fn page_two(app: &TestApp, case: &str, slot: &str) -> Option<String> {
    let list = app.wait_for_render(case, slot, "done").await;
    let doc = current_document(&list, slot, 0).unwrap().clone();
    let (status, pdf) = app.download(&doc, &app.admin()).await;
    assert_eq!(status, StatusCode::OK);
    pdf_page_text(&pdf, 2)
}

async fn the_school_date_appears_when_the_school_approves_not_when_it_returns(backend: Backend) {
    use gradsign::clock::Clock;
    let Some(app) = app(backend).await else { return };
    let case = submitted_case(&app, "S1").await;
    let s1 = app.student("S1");
    app.wait_for_render(&case, "agreement_preview", "done").await;
    let returned = app
        .fire(
            &case,
            "return",
            &app.reviewer(),
            json!({ "review": { "reason": "请补充试用期工资" } }),
        )
        .await;
    assert_eq!(returned.status, StatusCode::OK, "{}", returned.body);
    for step in ["resign", "confirm"] {
        let r = app.fire(&case, step, &s1, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    // Every step happened today: the employer's and the student's blocks carry today's
    // date; the school only returned the agreement, so its block has none.
    let today = app
        .clock
        .now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y年%-m月%-d日")
        .to_string();
    let Some(preview) = page_two(&app, &case, "agreement_preview").await else {
        return;
    };
    assert_eq!(preview.matches(&today).count(), 2, "{preview}");
    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    let Some(final_copy) = page_two(&app, &case, "agreement").await else {
        return;
    };
    assert_eq!(final_copy.matches(&today).count(), 3, "{final_copy}");
}

/// Renders are guarded by the case version they were asked for: once the case has moved
/// on, a late job (or its result) for an earlier version neither marks the newer request
/// done nor stores a document; the newer one does both, and nothing after marks it undone.
async fn a_late_render_of_an_older_version_marks_nothing_and_stores_nothing(backend: Backend) {
    let Some(app) = support::spawn_app_with(backend, |c| c.workers = false).await else {
        return;
    };
    app.seed().await;
    let engine = app.app.engine.clone();
    let case = submitted_case(&app, "S3").await;
    let render = |list: &Value| {
        list["renders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["slot"] == "agreement_preview")
            .cloned()
            .unwrap()
    };
    let documents = || async {
        app.get(&format!("/api/v1/cases/{case}/documents"), &app.admin())
            .await
            .body
    };
    let older = render(&documents().await)["case_version"].as_i64().unwrap();
    let reason = json!({ "review": { "reason": "薪酬写法不规范" } });
    assert_eq!(
        app.fire(&case, "return", &app.reviewer(), reason).await.status,
        StatusCode::OK
    );
    let terms = json!({ "terms": { "salary": "转正后每月 9,500 元" } });
    assert_eq!(
        app.fire(&case, "amend", &app.employer("E1"), terms).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.fire(&case, "resign", &app.student("S3"), json!({})).await.status,
        StatusCode::OK
    );
    let confirmed = app.fire(&case, "confirm", &app.student("S3"), json!({})).await;
    let newer = confirmed.body["version"].as_i64().unwrap();
    let pending = render(&documents().await);
    assert_eq!(
        (pending["case_version"].as_i64(), pending["status"].as_str()),
        (Some(newer), Some("pending"))
    );

    // The late result of the older request: refused by the guard.
    let late = gradsign::store::RenderRow {
        case_id: case.clone(),
        slot: "agreement_preview".into(),
        case_version: older,
        status: "done".into(),
        attempts: 1,
        error: None,
        updated_at: 0,
    };
    let mut tx = engine.db.begin().await.unwrap();
    assert!(
        !tx.set_render(&late).await.unwrap(),
        "an older version's result changes nothing"
    );
    tx.commit().await.unwrap();
    // The late job of the older request: renders nothing, stores nothing.
    engine.render_job(&case, "agreement_preview", older, 3).await.unwrap();
    let list = documents().await;
    assert_eq!(render(&list)["status"], "pending", "{list}");
    assert!(current_document(&list, "agreement_preview", 0).is_none(), "{list}");

    // The newer request's job stores its document and marks it done, for good.
    engine.render_job(&case, "agreement_preview", newer, 3).await.unwrap();
    let list = documents().await;
    assert_eq!(
        (render(&list)["case_version"].as_i64(), render(&list)["status"].as_str()),
        (Some(newer), Some("done"))
    );
    assert_eq!(
        current_document(&list, "agreement_preview", 0).unwrap()["case_version"],
        newer
    );
    let mut tx = engine.db.begin().await.unwrap();
    let failed = gradsign::store::RenderRow {
        case_version: newer,
        status: "failed".into(),
        ..late
    };
    assert!(!tx.set_render(&failed).await.unwrap(), "a done render stays done");
    tx.commit().await.unwrap();
}

/// The stored PDF of a slot's current render.
async fn current_pdf(app: &TestApp, case: &str, slot: &str) -> Vec<u8> {
    let list = app
        .get(&format!("/api/v1/cases/{case}/documents"), &app.admin())
        .await
        .body;
    let doc = current_document(&list, slot, 0)
        .unwrap_or_else(|| panic!("no {slot}: {list}"))
        .clone();
    let (status, pdf) = app.download(&doc, &app.admin()).await;
    assert_eq!(status, StatusCode::OK);
    pdf
}

/// A render is of a case version: the preview asked for at confirmation and the final
/// agreement asked for at approval come out byte for byte the same whether their jobs run
/// at once or days later, after the case moved on (a termination was asked for, with a
/// reason in the case data) — no later data, history, version or date gets in.
async fn a_late_render_prints_the_same_bytes_as_an_on_time_one(backend: Backend) {
    let Some(app) = support::spawn_app_with(backend, |c| c.workers = false).await else {
        return;
    };
    app.seed().await;
    let engine = app.app.engine.clone();
    let case = submitted_case(&app, "S2").await;
    let version = |r: &support::Reply| r.body["version"].as_i64().unwrap();
    let confirmed = version(&app.case(&case, &app.admin()).await);

    // The preview's job runs on time; what a render of that version gives is kept.
    engine
        .render_job(&case, "agreement_preview", confirmed, 3)
        .await
        .unwrap();
    let preview_on_time = current_pdf(&app, &case, "agreement_preview").await;
    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    let approved = version(&approved);
    let final_on_time = engine
        .render_version(&case, "agreement", approved)
        .await
        .unwrap()
        .expect("the final agreement renders")
        .pdf;

    // Days later the case has moved on, and only now does the final agreement's job run.
    app.clock.advance(chrono::Duration::days(3));
    let asked = app
        .fire(
            &case,
            "request_termination",
            &app.employer("E1"),
            json!({ "termination": { "reason": "单位岗位调整" } }),
        )
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert!(version(&asked) > approved);
    engine.render_job(&case, "agreement", approved, 3).await.unwrap();
    let final_late = current_pdf(&app, &case, "agreement").await;
    assert!(
        final_late == final_on_time,
        "the late final agreement differs from the on-time one"
    );
    let preview_late = engine
        .render_version(&case, "agreement_preview", confirmed)
        .await
        .unwrap()
        .expect("the preview renders")
        .pdf;
    assert!(
        preview_late == preview_on_time,
        "a late preview differs from the on-time one"
    );
    // And a render of the case now is another document (the versions differ).
    let now = engine
        .render_version(&case, "agreement", version(&asked))
        .await
        .unwrap()
        .unwrap()
        .pdf;
    assert!(now != final_on_time);
}

/// The fields a school expects (REFERENCE.md §2): 院系, 学历, 学制, 培养方式, 政治面貌 and
/// 毕业时间 on page 1, coded fields by name; the archive recipient's postcode, contact and
/// phone on page 2 — read back from the rendered preview with pdftotext.
async fn the_graduates_record_and_the_archive_recipient_print_by_name_on_their_pages(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let record = json!({ "school": support::SCHOOL, "name": "刘洋", "major": "计算机科学与技术",
        "college": "计算机科学与技术学院", "education_level": "11", "study_years": "2.5",
        "training_mode": "2", "political_status": "03", "graduation_date": "2027-06-30",
        "email": "s4@students.example.edu.cn" });
    let r = app.put("/api/v1/students/S4", &app.admin(), &record).await;
    assert!(r.status.is_success(), "{}", r.body);
    let invited = app.invite("E2", "S4").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let case = invited.id();
    let s4 = app.student("S4");
    let files = json!({ "terms": { "archive_unit": "黑龙江省人才服务中心", "archive_address": "哈尔滨市南岗区中山路 1 号",
        "archive_postcode": "150001", "archive_contact": "档案室 孙老师", "archive_phone": "0451-82600000",
        "hukou_unit": "哈尔滨市公安局南岗分局", "hukou_address": "哈尔滨市南岗区学府路 2 号" } });
    for (step, input) in [("view", json!({})), ("accept", files), ("confirm", json!({}))] {
        let r = app.fire(&case, step, &s4, input).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    let list = app.wait_for_render(&case, "agreement_preview", "done").await;
    let doc = current_document(&list, "agreement_preview", 0).unwrap().clone();
    let (status, pdf) = app.download(&doc, &app.admin()).await;
    assert_eq!(status, StatusCode::OK);
    let (Some(one), Some(two)) = (pdf_page_text(&pdf, 1), pdf_page_text(&pdf, 2)) else {
        return;
    };
    for name in [
        "计算机科学与技术学院",
        "硕士生毕业",
        "2.5年",
        "培养方式定向",
        "共青团员",
        "2027-06-30",
    ] {
        assert!(one.contains(name), "page 1 lacks {name}: {one}");
        assert!(!two.contains(name), "{name} on page 2");
    }
    // Names, not codes, beside their labels.
    for coded in ["学历11", "培养方式2", "政治面貌03"] {
        assert!(!one.contains(coded), "page 1 prints a code: {coded}");
    }
    for value in ["150001", "档案室孙老师", "0451-82600000"] {
        assert!(two.contains(value), "page 2 lacks {value}: {two}");
    }
}
