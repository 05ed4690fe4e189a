//! Other destination registration (其他去向登记, R14) through HTTP, on SQLite and
//! PostgreSQL: categories with their own fields and proofs, editing before review,
//! rejection and resubmission, field validation, and the record approval writes (R2).

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, TestApp, action, pdf, spawn_app};

on_both_backends!(
    six_categories_register_with_their_own_fields_and_proofs,
    a_registration_is_edited_before_review_and_resubmitted_after_rejection,
    invalid_registrations_name_every_field_at_fault,
    the_wizard_reads_the_categories,
);

async fn app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.seed().await;
    Some(app)
}

/// Starts a registration for `student`; returns the reply.
async fn register(app: &TestApp, student: &str, destination: Value) -> support::Reply {
    let body = json!({ "workflow": "destination_registration", "input": { "destination": destination } });
    app.post("/api/v1/cases", &app.student(student), &body).await
}

fn id(reply: &support::Reply) -> String {
    reply.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no case id in {}", reply.body))
        .to_string()
}

fn fields_at_fault(reply: &support::Reply) -> Vec<String> {
    reply.body["errors"]
        .as_array()
        .map(|a| a.iter().map(|e| e["field"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

async fn six_categories_register_with_their_own_fields_and_proofs(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    app.seed().await;
    let admin = app.admin();
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "11",
            json!({ "unit_name": "哈尔滨电气集团有限公司", "credit_code": "91110000600037341L", "unit_nature": "国有企业",
                "industry": "C", "location": "230103", "job_category": "13", "contact": "周经理", "contact_phone": "0451-82870000" }),
            Some("哈尔滨电气集团有限公司"),
        ),
        (
            "12",
            json!({ "unit_name": "道里区小微设计工作室", "unit_nature": "39", "industry": "37", "location": "230102",
                "job_category": "90", "contact": "吴女士", "contact_phone": "13912345678" }),
            Some("道里区小微设计工作室"),
        ),
        (
            "46",
            json!({ "recruiting_office": "南岗区人民武装部" }),
            Some("南岗区人民武装部"),
        ),
        (
            "75",
            json!({ "enterprise_name": "雪城文创网店", "location": "230104", "shop_url": "https://shop.example.cn/xuecheng" }),
            Some("雪城文创网店"),
        ),
        (
            "80",
            json!({ "admitting_school": "哈尔滨工业大学", "degree_level": "硕士研究生" }),
            Some("哈尔滨工业大学"),
        ),
        (
            "85",
            json!({ "country_region": "新加坡", "school": "新加坡国立大学" }),
            Some("新加坡国立大学"),
        ),
    ];
    let students = ["R11", "R12", "R46", "R75", "R80", "R85"];
    for ((code, fields, unit), student) in cases.into_iter().zip(students) {
        let r = app
            .put(
                &format!("/api/v1/students/{student}"),
                &admin,
                &json!({ "school": support::SCHOOL, "name": "赵敏" }),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
        let token = app.student(student);
        let started = register(&app, student, json!({ "category": code, "fields": fields })).await;
        assert_eq!(started.status, StatusCode::CREATED, "{code}: {}", started.body);
        let case = id(&started);
        let destination = &started.body["data"]["destination"];
        assert_eq!(destination["category"], code);
        assert_eq!(destination["min_proofs"], 1, "{code}");
        // Proof first: sending without it is refused with the reason.
        let early = app.fire(&case, "submit", &token, json!({})).await;
        assert_eq!(early.status, StatusCode::CONFLICT, "{code}: {}", early.body);
        assert!(early.body["detail"].as_str().unwrap().contains("proof"));
        let up = app.upload(&case, &token, "proof", "proof.pdf", pdf(code)).await;
        assert_eq!(up.status, StatusCode::OK, "{code}: {}", up.body);
        let sent = app.fire(&case, "submit", &token, json!({})).await;
        assert_eq!(sent.body["state"], "submitted", "{code}: {}", sent.body);
        let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
        assert_eq!(approved.body["state"], "approved", "{code}: {}", approved.body);
        let record = app
            .get(&format!("/api/v1/students/{student}/destination"), &token)
            .await;
        assert_eq!(record.status, StatusCode::OK, "{code}: {}", record.body);
        assert_eq!(record.body["category_code"], code);
        assert_eq!(record.body["unit_name"].as_str(), unit, "{code}");
        assert_eq!(record.body["case_id"], case.as_str());
    }
    // Codes from code lists are stored as codes, whichever spelling was typed.
    let r = register(&app, "S1", json!({ "category": "11", "fields": { "unit_name": "甲", "credit_code": "91110000600037341L",
        "unit_nature": "国有企业", "industry": "C", "location": "230103", "job_category": "13", "contact": "周", "contact_phone": "13800138000" } })).await;
    assert_eq!(r.body["data"]["destination"]["fields"]["unit_nature"], "31");
    assert_eq!(r.body["data"]["destination"]["fields"]["industry"], "22");
    // A category without proofs (70 待就业) goes straight to review.
    let r = register(
        &app,
        "S2",
        json!({ "category": "70", "fields": { "sub_status": "求职中" } }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["data"]["destination"]["min_proofs"], 0);
    let sent = app.fire(&id(&r), "submit", &app.student("S2"), json!({})).await;
    assert_eq!(sent.body["state"], "submitted", "{}", sent.body);
}

async fn a_registration_is_edited_before_review_and_resubmitted_after_rejection(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let s1 = app.student("S1");
    // Started without a destination: saving it later, then sending.
    let r = app
        .post(
            "/api/v1/cases",
            &s1,
            &json!({ "workflow": "destination_registration", "input": {} }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let case = id(&r);
    let empty = app.fire(&case, "submit", &s1, json!({})).await;
    assert_eq!(empty.status, StatusCode::CONFLICT);
    assert!(empty.body["detail"].as_str().unwrap().contains("choose a destination"));
    let saved = app
        .fire(
            &case,
            "save",
            &s1,
            json!({ "destination": { "category": "80", "fields": { "admitting_school": "东北林业大学", "degree_level": "硕士研究生" } } }),
        )
        .await;
    assert_eq!(saved.body["state"], "draft", "{}", saved.body);
    app.upload(&case, &s1, "proof", "admission.pdf", pdf("admission")).await;
    assert_eq!(
        app.fire(&case, "submit", &s1, json!({})).await.body["state"],
        "submitted"
    );
    // Before the school acts, the student edits (still under review, still holding the claim).
    let edited = app
        .fire(
            &case,
            "edit",
            &s1,
            json!({ "destination": { "category": "80", "fields": { "admitting_school": "哈尔滨工程大学", "degree_level": "硕士研究生" } } }),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["state"], "submitted");
    assert_eq!(
        edited.body["data"]["destination"]["fields"]["admitting_school"],
        "哈尔滨工程大学"
    );
    // Rejected with a reason: the claim is released, the student edits and resubmits.
    let rejected = app
        .fire(
            &case,
            "return",
            &app.reviewer(),
            json!({ "review": { "reason": "录取通知书不清晰" } }),
        )
        .await;
    assert_eq!(rejected.body["state"], "rejected", "{}", rejected.body);
    assert_eq!(rejected.body["terminal"], false);
    let view = app.case(&case, &s1).await.body;
    assert_eq!(action(&view, "submit")["enabled"], true);
    assert_eq!(
        app.count("claims WHERE key LIKE 'destination:%'").await,
        0,
        "no claim while rejected"
    );
    app.upload(&case, &s1, "proof", "admission-2.pdf", pdf("clearer")).await;
    let again = app.fire(&case, "submit", &s1, json!({})).await;
    assert_eq!(again.body["state"], "submitted", "{}", again.body);
    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.body["state"], "approved", "{}", approved.body);
    let record = app.get("/api/v1/students/S1/destination", &s1).await;
    assert_eq!(record.body["category_code"], "80");
    assert_eq!(record.body["category_name"], "升学");
    assert_eq!(record.body["unit_name"], "哈尔滨工程大学");
    let steps: Vec<_> = approved.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["transition"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "create",
            "save",
            "upload_proof",
            "submit",
            "edit",
            "return",
            "upload_proof",
            "submit",
            "approve"
        ]
    );
}

async fn invalid_registrations_name_every_field_at_fault(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    // Every problem at once, each named input.destination.fields.X.
    let r = register(
        &app,
        "S1",
        json!({ "category": "11", "fields": { "unit_name": "某".repeat(101), "credit_code": "91350211M0000XUF46",
            "unit_nature": "不存在的性质", "location": "990000", "job_category": "13", "contact": "周",
            "contact_phone": "12345", "hobby": "chess" } }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.problem(), "invalid-input");
    let mut named = fields_at_fault(&r);
    named.sort();
    assert_eq!(
        named,
        [
            "input.destination.fields.contact_phone",
            "input.destination.fields.credit_code",
            "input.destination.fields.hobby",
            "input.destination.fields.industry",
            "input.destination.fields.location",
            "input.destination.fields.unit_name",
            "input.destination.fields.unit_nature",
        ],
        "{}",
        r.body
    );
    let codes: Vec<_> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"credit_code.checksum"), "{codes:?}");
    assert!(codes.contains(&"field.too_long"), "{codes:?}");
    // Required fields differ per category.
    let r = register(
        &app,
        "S1",
        json!({ "category": "85", "fields": { "school": "新加坡国立大学" } }),
    )
    .await;
    assert_eq!(fields_at_fault(&r), ["input.destination.fields.country_region"]);
    let r = register(&app, "S1", json!({ "category": "75", "fields": {} })).await;
    let mut named = fields_at_fault(&r);
    named.sort();
    assert_eq!(
        named,
        [
            "input.destination.fields.enterprise_name",
            "input.destination.fields.location"
        ]
    );
    // Unknown categories and 10 (only an agreement writes it) are refused.
    let r = register(&app, "S1", json!({ "category": "99", "fields": {} })).await;
    assert_eq!(fields_at_fault(&r), ["input.destination.category"]);
    let r = register(&app, "S1", json!({ "category": "10", "fields": {} })).await;
    assert_eq!(fields_at_fault(&r), ["input.destination.category"]);
    assert_eq!(r.body["errors"][0]["code"], "destination.by_agreement");
    let r = register(&app, "S1", json!("11")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count("cases").await, 0, "nothing was stored");
    // A three-digit sub-code is kept under its parent's rules.
    let r = register(
        &app,
        "S1",
        json!({ "category": "801", "fields": { "admitting_school": "东北农业大学", "degree_level": "硕士研究生" } }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["data"]["destination"]["category"], "801");
    assert_eq!(r.body["data"]["destination"]["category_name"], "升学");
}

async fn the_wizard_reads_the_categories(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let r = app
        .get("/api/v1/reference/destination-categories", &app.student("S1"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let categories = r.body["categories"].as_array().unwrap();
    assert_eq!(categories.len(), 14);
    let c75 = categories.iter().find(|c| c["code"] == "75").unwrap();
    assert!(
        c75["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "enterprise_name")
    );
    assert_eq!(c75["proofs"][0]["min_count"], 1);
    let c10 = categories.iter().find(|c| c["code"] == "10").unwrap();
    assert_eq!(c10["written_by_agreement"], true);
    assert!(
        r.body["code_lists"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "unit_nature")
    );
    let anonymous = app
        .request(
            reqwest::Method::GET,
            "/api/v1/reference/destination-categories",
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let openapi = app
        .request(reqwest::Method::GET, "/openapi.json", None, None, &[])
        .await;
    assert!(openapi.body["paths"]["/api/v1/reference/destination-categories"].is_object());
}
