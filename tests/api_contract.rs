//! The API keeps the contract it publishes, on SQLite and PostgreSQL: schemathesis
//! generates requests from `/openapi.json` — valid ones, invalid ones, and sequences
//! that follow the document's links — and checks every answer against it (no 5xx,
//! statuses, content types, schemas, refusals of invalid data, authentication). A
//! fixed seed and a bounded number of examples keep the run repeatable. Outside CI the
//! test prints `skipped: …` when schemathesis is not installed; `.ci/run` installs it.

mod support;

use std::process::Command;

use support::{Backend, TestApp, current_document};

on_both_backends!(schemathesis_finds_no_failure);

/// Examples per operation and phase: enough to reach every field, few enough for the suite.
const EXAMPLES: &str = "12";

fn schemathesis_installed() -> bool {
    let found = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "schemathesis is required in CI; .ci/run installs it"
        );
        eprintln!("skipped: schemathesis is not installed (pip install schemathesis); CI runs this test");
    }
    found
}

/// Real ids for schemathesis to draw on, beside the values it makes up: cases (an
/// invitation, a generated offline agreement), a document, a mail, students, employers.
async fn known_ids(app: &TestApp) -> String {
    let invitation = app.invite("E1", "S1").await.body["id"].as_str().unwrap().to_string();
    let offline = app.offline_generated("S2").await;
    let list = app.wait_for_render(&offline, "agreement", "done").await;
    let document = current_document(&list, "agreement", 0).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let email = app.mails("invitation_received").await[0].id.clone();
    let quoted = |v: &[&str]| v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", ");
    format!(
        r#"
[dictionaries]
cases = {{ values = [{cases}] }}
documents = {{ values = [{document:?}] }}
emails = {{ values = [{email:?}] }}
students = {{ values = ["S1", "S2", "S3", "S4"] }}
employers = {{ values = ["E1", "E2", "E3"] }}

[[operations]]
include-operation-id = ["get_case", "list_documents", "upload_document", "fire_transition"]
parameters = {{ "path.id" = {{ dictionary = "cases", probability = 0.7 }} }}

[[operations]]
include-operation-id = "get_document"
parameters = {{ "path.id" = {{ dictionary = "documents", probability = 0.7 }} }}

[[operations]]
include-operation-id = "resend_email"
parameters = {{ "path.id" = {{ dictionary = "emails", probability = 0.7 }} }}

[[operations]]
include-operation-id = ["get_destination", "put_student"]
parameters = {{ "path.id" = {{ dictionary = "students", probability = 0.7 }} }}

[[operations]]
include-operation-id = "start_case"
parameters = {{ "body.student" = {{ dictionary = "students", probability = 0.7 }}, "body.employer" = {{ dictionary = "employers", probability = 0.7 }} }}
"#,
        cases = quoted(&[&invitation, &offline]),
    )
}

async fn schemathesis_finds_no_failure(backend: Backend) {
    if !schemathesis_installed() {
        return;
    }
    // The verify operations' per-address limit is tested in tests/verification.rs; here it
    // would only turn generated requests into 429s, more or fewer by the minute they fall in.
    let Some(app) = support::spawn_app_with(backend, |c| c.verify_per_minute = 100_000).await else {
        return;
    };
    app.seed().await;
    let report = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml")).unwrap();
    let config = report.path().join("schemathesis.toml");
    std::fs::write(&config, base + &known_ids(&app).await).unwrap();
    let args = vec![
        "--config-file".to_string(),
        config.display().to_string(),
        "run".into(),
        format!("{}/openapi.json", app.base),
        "--checks".into(),
        "all".into(),
        "--max-examples".into(),
        EXAMPLES.into(),
        "--seed".into(),
        "16".into(),
        "--workers".into(),
        "1".into(),
        "--no-color".into(),
        "--header".into(),
        format!("Authorization: Bearer {}", app.admin()),
        "--report-dir".into(),
        report.path().display().to_string(),
    ];
    let dir = report.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || Command::new("schemathesis").args(&args).current_dir(dir).output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures on {backend:?}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");
}
