//! What `/verify/{number}` says of an agreement as it moves (awaiting review, returned,
//! superseded by an amendment, in force), in both languages; that an unknown number and a
//! wrong code cannot be told apart; and the per-address limit, counted in the database.

mod support;

use chrono::Duration as Days;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Backend, TestApp, current_document, spawn_app_with};

on_both_backends!(
    verification_says_what_the_agreement_is_now,
    an_unknown_number_and_a_wrong_code_answer_alike,
    verification_is_limited_per_address_and_per_minute,
    a_pdf_is_checked_against_the_history_chain_and_a_foreign_one_refused,
);

async fn app(backend: Backend, per_minute: u32) -> Option<TestApp> {
    let app = spawn_app_with(backend, |c| c.verify_per_minute = per_minute).await?;
    app.seed().await;
    Some(app)
}

async fn verify(app: &TestApp, number: &str, code: &str, copy: Option<i64>) -> support::Reply {
    let v = copy.map(|v| format!("&v={v}")).unwrap_or_default();
    app.request(
        Method::GET,
        &format!("/api/v1/verify/{number}?code={code}{v}"),
        None,
        None,
        &[],
    )
    .await
}

/// The version of the current PDF rendered in `slot`, once its render is done.
async fn rendered_version(app: &TestApp, case: &str, slot: &str) -> i64 {
    let list = app.wait_for_render(case, slot, "done").await;
    current_document(&list, slot, 0).unwrap()["case_version"]
        .as_i64()
        .unwrap()
}

fn assert_status(reply: &support::Reply, status: &str, zh: &str, en: &str) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let b = &reply.body;
    assert_eq!(b["genuine"], true, "{b}");
    assert_eq!(b["status"], status, "{b}");
    let since = b["since"].as_str().unwrap_or_else(|| panic!("{b}"));
    assert_eq!(since.len(), 10, "{b}");
    assert!(b["message"]["zh"].as_str().unwrap().contains(zh), "{b}");
    assert!(b["message"]["en"].as_str().unwrap().contains(en), "{b}");
    assert_eq!(b["in_force"], status == "in_force", "{b}");
    // Nothing beyond the parties' names and dates.
    for private in ["data", "id_number", "phone", "terms", "history"] {
        assert!(b.get(private).is_none(), "{private} leaks: {b}");
    }
}

async fn verification_says_what_the_agreement_is_now(backend: Backend) {
    let Some(app) = app(backend, 1000).await else { return };
    let case = support_submitted(&app).await;
    let s1 = app.student("S1");
    let data = app.case(&case, &s1).await.body["data"].clone();
    let number = data["agreement"]["number"].as_str().unwrap().to_string();
    let code = data["agreement"]["verification_code"].as_str().unwrap().to_string();
    let first_copy = rendered_version(&app, &case, "agreement_preview").await;

    let r = verify(&app, &number, &code, Some(first_copy)).await;
    assert_status(&r, "awaiting_review", "提交学校审核", "awaits its review");
    assert_eq!(r.body["student_name"], "李明");

    // The school returns it: genuine, but returned, and not in force.
    let returned = app
        .fire(
            &case,
            "return",
            &app.reviewer(),
            json!({ "review": { "reason": "岗位名称与人事处登记不一致" } }),
        )
        .await;
    assert_eq!(returned.status, StatusCode::OK, "{}", returned.body);
    let r = verify(&app, &number, &code, Some(first_copy)).await;
    assert_status(&r, "returned", "被学校退回", "returned");
    assert_eq!(r.body["agreement"], "returned");

    // Amended and signed again: the first copy is superseded; the case awaits review again.
    let amended = app
        .fire(
            &case,
            "amend",
            &app.employer("E1"),
            json!({ "terms": { "position": "后端开发工程师" } }),
        )
        .await;
    assert_eq!(amended.status, StatusCode::OK, "{}", amended.body);
    for step in ["resign", "confirm"] {
        let r = app.fire(&case, step, &s1, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    let second_copy = rendered_version(&app, &case, "agreement_preview").await;
    assert!(second_copy > first_copy);
    let r = verify(&app, &number, &code, Some(first_copy)).await;
    assert_status(&r, "superseded", "被修改后的版本取代", "superseded");
    let r = verify(&app, &number, &code, Some(second_copy)).await;
    assert_status(&r, "awaiting_review", "提交学校审核", "awaits its review");

    // Approved: the final agreement is in force; the amended-away copy stays superseded.
    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    let final_copy = rendered_version(&app, &case, "agreement").await;
    let r = verify(&app, &number, &code, Some(final_copy)).await;
    assert_status(&r, "in_force", "审核通过", "in force since");
    let r = verify(&app, &number, &code, None).await;
    assert_status(&r, "in_force", "审核通过", "in force since");
    let r = verify(&app, &number, &code, Some(first_copy)).await;
    assert_status(&r, "superseded", "取代", "superseded");
}

/// S1's invitation from E1 with full terms, brought to `submitted`.
async fn support_submitted(app: &TestApp) -> String {
    let body = json!({ "workflow": "online_signing", "student": "S1", "input": { "terms": {
        "position": "嵌入式软件工程师", "work_place": "哈尔滨市松北区", "salary": "转正后每月 9,000 元",
        "probation": "3 个月", "reporting_date": "2027-07-10", "liquidated_damages": "5,000 元" } } });
    let r = app.post("/api/v1/cases", &app.employer("E1"), &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let case = r.body["id"].as_str().unwrap().to_string();
    for step in ["view", "accept", "confirm"] {
        let r = app.fire(&case, step, &app.student("S1"), json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    case
}

async fn an_unknown_number_and_a_wrong_code_answer_alike(backend: Backend) {
    let Some(app) = app(backend, 1000).await else { return };
    let case = support_submitted(&app).await;
    let data = app.case(&case, &app.student("S1")).await.body["data"].clone();
    let number = data["agreement"]["number"].as_str().unwrap();
    let without_number = |mut v: Value| {
        v.as_object_mut().unwrap().remove("number");
        v
    };
    let wrong_code = verify(&app, number, "AAAAAAAA", None).await;
    let unknown = verify(&app, "2026-99999-999999-Z", "AAAAAAAA", None).await;
    assert_eq!(wrong_code.status, StatusCode::OK);
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(wrong_code.body["genuine"], false);
    assert!(wrong_code.body["message"]["zh"].as_str().unwrap().contains("未找到"));
    assert_eq!(without_number(wrong_code.body), without_number(unknown.body));
}

async fn verification_is_limited_per_address_and_per_minute(backend: Backend) {
    let Some(app) = app(backend, 3).await else { return };
    for _ in 0..3 {
        assert_eq!(
            verify(&app, "2026-10212-000001-A", "X", None).await.status,
            StatusCode::OK
        );
    }
    let limited = verify(&app, "2026-10212-000001-A", "X", None).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert_eq!(limited.headers["content-type"], "application/problem+json");
    assert_eq!(limited.body["type"], "urn:gradsign:rate-limited");
    assert!(limited.body["detail_zh"].as_str().unwrap().contains("秒后再试"));
    let wait: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(limited.body["retry_after"], wait);
    // The next minute, the address may verify again.
    app.clock.advance(Days::seconds(wait as i64));
    assert_eq!(
        verify(&app, "2026-10212-000001-A", "X", None).await.status,
        StatusCode::OK
    );
}

/// POSTs a file to `/api/v1/verify` as `application/pdf`.
async fn check_pdf(app: &TestApp, pdf: &[u8]) -> support::Reply {
    let resp = app
        .client
        .post(format!("{}/api/v1/verify", app.base))
        .header("content-type", "application/pdf")
        .body(pdf.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    support::Reply { status, headers, body }
}

/// `gradsign verify FILE` against the test app's database: exit status and output.
fn cli_verify(app: &TestApp, pdf: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("协议书.pdf");
    std::fs::write(&file, pdf).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gradsign"));
    command
        .arg("verify")
        .arg(&file)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GRADSIGN_DATA_DIR", &app.app.config.data_dir)
        .env("GRADSIGN_JWT_SECRET", support::TEST_SECRET)
        .env("GRADSIGN_WORKERS", "false")
        .env("GRADSIGN_LOG", "warn");
    if let Some(url) = &app.app.config.database_url {
        command.env("DATABASE_URL", url);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Changes one stored history row behind the platform's back.
async fn alter_history(app: &TestApp, case: &str, seq: i64) {
    let sql = "UPDATE history SET actor_name = '另一个人' WHERE case_id = $1 AND seq = $2";
    let done = match &app.app.engine.db {
        gradsign::store::Db::Sqlite(p) => sqlx::query(sql)
            .bind(case)
            .bind(seq)
            .execute(p)
            .await
            .unwrap()
            .rows_affected(),
        gradsign::store::Db::Postgres(p, _) => sqlx::query(sql)
            .bind(case)
            .bind(seq)
            .execute(p)
            .await
            .unwrap()
            .rows_affected(),
    };
    assert_eq!(done, 1);
}

/// The final agreement carries its case's history chain head (metadata and small print);
/// the CLI and `POST /api/v1/verify` recompute the chain from the database and tell an
/// untouched case from one whose history row was altered; a file the platform did not
/// produce, or changed after, is refused.
async fn a_pdf_is_checked_against_the_history_chain_and_a_foreign_one_refused(backend: Backend) {
    let Some(app) = app(backend, 1000).await else { return };
    let case = app.sign_online("E1", "S1").await;
    let version = rendered_version(&app, &case, "agreement").await;
    let list = app.wait_for_render(&case, "agreement", "done").await;
    let (status, pdf) = app
        .download(current_document(&list, "agreement", 0).unwrap(), &app.admin())
        .await;
    assert_eq!(status, StatusCode::OK);
    let evidence = gradsign::render::read_evidence(&pdf).expect("the agreement carries its evidence");
    assert_eq!(evidence.case_version, version);
    if let Some(page2) = support::pdf_page_text(&pdf, 2) {
        assert!(page2.contains(&evidence.history_sha256), "small print: {page2}");
    }

    // Untouched: the platform's own file, the history intact.
    let checked = check_pdf(&app, &pdf).await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    let b = &checked.body;
    assert_eq!(
        (b["history_intact"].as_bool(), b["slot"].as_str()),
        (Some(true), Some("agreement")),
        "{b}"
    );
    assert_eq!(b["agreement"]["status"], "in_force", "{b}");
    assert!(b["message"]["zh"].as_str().unwrap().contains("未被改动"), "{b}");
    let number = b["number"].as_str().unwrap().to_string();
    let code = app.case(&case, &app.admin()).await.body["data"]["agreement"]["verification_code"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(verify(&app, &number, &code, None).await.body["history_intact"], true);
    let (ok, out) = cli_verify(&app, &pdf);
    assert!(ok && out.contains("未被改动") && out.contains("unaltered"), "{out}");

    // A file the platform did not produce, or its file changed by one byte: refused.
    let mut changed = pdf.clone();
    changed.extend_from_slice(b"% changed\n");
    for foreign in [support::pdf("别处的文件"), changed] {
        let refused = check_pdf(&app, &foreign).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
        assert_eq!(refused.headers["content-type"], "application/problem+json");
        assert_eq!(refused.body["errors"][0]["field"], "file", "{}", refused.body);
        assert!(refused.body["detail_zh"].as_str().is_some(), "{}", refused.body);
        let (ok, out) = cli_verify(&app, &foreign);
        assert!(!ok && out.contains("不是本平台生成"), "{out}");
    }

    // One history row altered in the database: the chain no longer holds.
    alter_history(&app, &case, 2).await;
    let checked = check_pdf(&app, &pdf).await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.body);
    let b = &checked.body;
    assert_eq!(
        (b["history_intact"].as_bool(), b["altered_at"].as_i64()),
        (Some(false), Some(2)),
        "{b}"
    );
    assert!(b["message"]["en"].as_str().unwrap().contains("altered"), "{b}");
    assert_eq!(verify(&app, &number, &code, None).await.body["history_intact"], false);
    let (ok, out) = cli_verify(&app, &pdf);
    assert!(!ok && out.contains("已被改动"), "{out}");
}
