//! Publishing definitions without a restart (issue 11): a platform admin publishes a
//! version (its problems answered with file and line), activates it, and new cases start
//! on it — in every process sharing the database — while running cases keep theirs.
//! Versions, sources, diagrams, diffs and the audit are listed.

mod support;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use chrono::{DateTime, Utc};
use gradsign::{auth::Keys, definition::Role, engine::Actor};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, spawn_seeded};

fn online() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/online_signing.toml")).unwrap()
}

/// The online definition with a 5-day default validity.
fn five_days() -> String {
    online().replace("invitation_valid_for = \"7d\"", "invitation_valid_for = \"5d\"")
}

async fn publish(client: &reqwest::Client, base: &str, token: &str, name: &str, toml: &str) -> (StatusCode, Value) {
    let r = client
        .post(format!("{base}/api/v1/workflows/{name}/versions"))
        .bearer_auth(token)
        .header("content-type", "application/toml")
        .body(toml.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn send(client: &reqwest::Client, method: reqwest::Method, url: String, token: &str) -> (StatusCode, String) {
    let r = client.request(method, url).bearer_auth(token).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Days (rounded) from the case's creation to its deadline.
fn validity_days(case: &Value) -> i64 {
    let deadline: DateTime<Utc> = case["data"]["deadline"].as_str().unwrap().parse().unwrap();
    let created: DateTime<Utc> = case["created_at"].as_str().unwrap().parse().unwrap();
    ((deadline - created).num_minutes() as f64 / 1440.0).round() as i64
}

async fn publishing_and_activating_changes_new_cases_only(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    let before = app.invite("E1", "S1").await;
    assert_eq!(before.status, StatusCode::CREATED, "{}", before.body);
    assert_eq!(validity_days(&before.body), 7);
    let v1 = before.body["workflow_version"].as_str().unwrap().to_string();

    // A broken version is refused with file, line and message, and nothing is stored.
    let broken = five_days().replacen(
        "when = \"!employer.receives_archive\"",
        "when = \"!employer.receives_archive > 1\"",
        1,
    );
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &broken).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let line = broken[..broken.find("!employer.receives_archive > 1").unwrap()]
        .matches('\n')
        .count()
        + 1;
    let problem = &body["problems"][0];
    assert_eq!(problem["file"], "online_signing.toml");
    assert_eq!(problem["line"], line);
    assert!(problem["message"].as_str().unwrap().contains("orders a bool"), "{body}");

    // Only a platform admin publishes.
    let (status, _) = publish(
        &app.client,
        &app.base,
        &app.employer("E1"),
        "online_signing",
        &five_days(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &five_days()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let v2 = body["hash"].as_str().unwrap().to_string();
    // Published, not yet active.
    assert_eq!(validity_days(&app.invite("E2", "S2").await.body), 7);

    let (status, text) = send(
        &app.client,
        reqwest::Method::POST,
        format!("{}/api/v1/workflows/online_signing/versions/{v2}/activate", app.base),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let after = app.invite("E3", "S3").await;
    assert_eq!(after.status, StatusCode::CREATED, "{}", after.body);
    assert_eq!(after.body["workflow_version"], v2.as_str());
    assert_eq!(validity_days(&after.body), 5);
    // The case started before keeps its version and deadline.
    let kept = app.case(before.id().as_str(), &app.student("S1")).await;
    assert_eq!(kept.body["workflow_version"], v1.as_str());
    assert_eq!(validity_days(&kept.body), 7);

    // The versions: who, the diff against the one before, live cases by state.
    let versions = app.get("/api/v1/workflows/online_signing/versions", &admin).await;
    assert_eq!(versions.status, StatusCode::OK);
    let list = versions.body.as_array().unwrap();
    assert_eq!(list.len(), 2, "{}", versions.body);
    assert_eq!(list[0]["hash"], v1.as_str());
    assert_eq!(list[0]["published_by"], "workflows/");
    assert_eq!(list[0]["live_cases"]["invited"], 2);
    assert_eq!(list[1]["hash"], v2.as_str());
    assert_eq!(list[1]["published_by"], "platform_admin");
    assert_eq!(list[1]["active"], true);
    assert_eq!(list[1]["live_cases"]["invited"], 1);
    assert_eq!(
        list[1]["diff"],
        json!([
            "- invitation_valid_for = \"7d\"       # 应约有效期 default (R5)",
            "+ invitation_valid_for = \"5d\"       # 应约有效期 default (R5)"
        ])
    );
    // The source and the diagram of a stored version.
    let source = app
        .get(&format!("/api/v1/workflows/online_signing/versions/{v2}"), &admin)
        .await;
    assert_eq!(source.body["source"], five_days().as_str());
    let (status, graph) = send(
        &app.client,
        reqwest::Method::GET,
        format!("{}/api/v1/workflows/online_signing/versions/{v1}/graph", app.base),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(graph.starts_with("stateDiagram-v2"), "{graph}");
    // An unknown version is a 404, not a 5xx.
    let missing = app
        .get("/api/v1/workflows/online_signing/versions/0000/graph", &admin)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let workflows = app.get("/api/v1/workflows", &admin).await;
    let online = workflows
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "online_signing")
        .unwrap()
        .clone();
    assert_eq!(online["active"], v2.as_str());

    // The audit: the seed's publish and activation, then the admin's.
    let audit = app.get("/api/v1/workflows/audit", &admin).await;
    let mine: Vec<(String, String, String)> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["workflow"] == "online_signing")
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["actor"].as_str().unwrap().to_string(),
                a["hash"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        mine,
        vec![
            ("activate".into(), "platform_admin".into(), v2.clone()),
            ("publish".into(), "platform_admin".into(), v2.clone()),
            ("activate".into(), "workflows/".into(), v1.clone()),
            ("publish".into(), "workflows/".into(), v1.clone()),
        ]
    );
}

on_both_backends!(publishing_and_activating_changes_new_cases_only);

/// One `gradsign serve` process on a shared database.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(database_url: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_gradsign"))
        .arg("serve")
        .current_dir(root)
        .env("DATABASE_URL", database_url)
        .env("GRADSIGN_DATA_DIR", dir.path().join("data"))
        .env("GRADSIGN_LISTEN", "127.0.0.1:0")
        .env("GRADSIGN_JWT_SECRET", support::TEST_SECRET)
        .env("GRADSIGN_LOG", "warn")
        .env("GRADSIGN_WORKERS", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The first line says where it serves.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Server { child, base, _dir: dir }
}

/// The acceptance test of the issue, with the real binary twice on one PostgreSQL database:
/// activated through A, the version reaches B at once, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_through_one_server_reaches_another_at_once() {
    let Some(db) = support::PgDatabase::create().await else {
        return;
    };
    let a = serve(&db.url());
    let b = serve(&db.url());
    let keys = Keys::new(support::TEST_SECRET);
    let token = |role: Role, party: Option<&str>| {
        keys.mint(
            &Actor {
                role,
                party: party.map(str::to_string),
                school: None,
                person: None,
            },
            chrono::Duration::hours(1),
        )
    };
    let admin = token(Role::PlatformAdmin, None);
    let client = reqwest::Client::new();
    let put = |base: &str, path: &str, body: Value| {
        client
            .put(format!("{base}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    assert!(
        put(&a.base, "/api/v1/schools/10212", json!({ "name": "北方理工大学" }))
            .await
            .unwrap()
            .status()
            .is_success()
    );
    for s in ["S1", "S2"] {
        let r = put(
            &a.base,
            &format!("/api/v1/students/{s}"),
            json!({ "school": "10212", "name": "李明" }),
        )
        .await
        .unwrap();
        assert!(r.status().is_success());
    }
    let r = put(
        &a.base,
        "/api/v1/employers/E1",
        json!({ "name": "龙江软件有限公司", "credit_code": "91110000600037341L", "receives_archive": true, "receives_hukou": true }),
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    let invite = |base: String, student: &'static str| {
        let employer = token(Role::Employer, Some("E1"));
        let client = client.clone();
        async move {
            let r = client
                .post(format!("{base}/api/v1/cases"))
                .bearer_auth(employer)
                .json(&json!({ "workflow": "online_signing", "student": student, "input": {} }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::CREATED);
            r.json::<Value>().await.unwrap()
        }
    };
    let earlier = invite(b.base.clone(), "S1").await;
    assert_eq!(validity_days(&earlier), 7);

    let (status, body) = publish(&client, &a.base, &admin, "online_signing", &five_days()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hash = body["hash"].as_str().unwrap();
    let (status, text) = send(
        &client,
        reqwest::Method::POST,
        format!("{}/api/v1/workflows/online_signing/versions/{hash}/activate", a.base),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");

    // Through B, right after: the 5-day version.
    let later = invite(b.base.clone(), "S2").await;
    assert_eq!(later["workflow_version"], hash);
    assert_eq!(validity_days(&later), 5);
    // The earlier case, read through B, keeps its 7 days.
    let employer = token(Role::Employer, Some("E1"));
    let (_, text) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/api/v1/cases/{}", b.base, earlier["id"].as_str().unwrap()),
        &employer,
    )
    .await;
    let kept: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(validity_days(&kept), 7);
    drop((a, b));
}

/// Item 2 of the issue, for the destination record: Rust reads no data path of a
/// workflow. A renamed place-of-work field is refused while the mapping still names the old
/// path, and followed into the destination record once the mapping says the new one.
async fn a_renamed_field_is_followed_into_the_destination_record_or_refused(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    // The form's field renamed, the mapping not: refused at the mapping's line.
    let half = online().replace(
        "{ name = \"terms.work_place\", kind = \"text\"",
        "{ name = \"terms.place_of_work\", kind = \"text\"",
    );
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &half).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let line = half[..half.find("location = \"terms.work_place\"").unwrap()]
        .matches('\n')
        .count()
        + 1;
    let problem = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["line"] == line)
        .unwrap_or_else(|| panic!("nothing at line {line}: {body}"));
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("destination_record.location names `terms.work_place`, which no form declares"),
        "{problem}"
    );

    // Renamed everywhere: published, activated, and the record follows.
    let renamed = online().replace("terms.work_place", "terms.place_of_work");
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &renamed).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hash = body["hash"].as_str().unwrap();
    let activated = app
        .post(
            &format!("/api/v1/workflows/online_signing/versions/{hash}/activate"),
            &admin,
            &json!({}),
        )
        .await;
    assert_eq!(activated.status, StatusCode::OK, "{}", activated.body);
    let body = json!({ "workflow": "online_signing", "student": "S1",
        "input": { "terms": { "position": "软件工程师", "place_of_work": "哈尔滨市道里区" } } });
    let invited = app.post("/api/v1/cases", &app.employer("E1"), &body).await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let case = invited.id();
    let s1 = app.student("S1");
    for step in ["view", "accept", "confirm"] {
        let r = app.fire(&case, step, &s1, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    let approved = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(approved.body["state"], "approved", "{}", approved.body);
    let record = app.get("/api/v1/students/S1/destination", &admin).await;
    assert_eq!(record.body["location"], "哈尔滨市道里区", "{}", record.body);
    assert_eq!(record.body["unit_name"], "龙江软件有限公司");
}

on_both_backends!(a_renamed_field_is_followed_into_the_destination_record_or_refused);

/// Item 4 of the issue, the impact half: ten live cases on version 1, a version 2 that
/// renames a state; the impact lists them as blocked, and as movable with the mapping.
async fn the_impact_of_a_renamed_state_lists_the_live_cases(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    let mut cases = Vec::new();
    for employer in ["E1", "E2", "E3"] {
        for student in ["S1", "S2", "S3", "S4"] {
            if cases.len() < 10 {
                let r = app.invite(employer, student).await;
                assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
                cases.push(r.id());
            }
        }
    }
    cases.sort();
    let renamed = online()
        .replace("[states.invited]", "[states.sent]")
        .replace("\"invited\"", "\"sent\"");
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &renamed).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hash = body["hash"].as_str().unwrap();
    let path = format!("/api/v1/workflows/online_signing/versions/{hash}/impact");

    let blocked = app.post(&path, &admin, &json!({})).await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);
    assert_eq!(blocked.body["blocked"], 10, "{}", blocked.body);
    assert_eq!(blocked.body["movable"], 0);
    let group = &blocked.body["groups"][0];
    assert_eq!(group["state"], "invited");
    assert_eq!(group["maps_to"], Value::Null);
    assert_eq!(group["notes"][0], "state `invited` does not exist in the new version");
    let listed: Vec<String> = group["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, cases);

    let mapped = app
        .post(&path, &admin, &json!({ "states": { "invited": "sent" } }))
        .await;
    assert_eq!(mapped.body["movable"], 10, "{}", mapped.body);
    assert_eq!(mapped.body["blocked"], 0);
    assert_eq!(mapped.body["groups"][0]["maps_to"], "sent");
    assert_eq!(mapped.body["groups"][0]["notes"], json!([]));

    // Only a platform admin asks.
    let r = app.post(&path, &app.employer("E1"), &json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

on_both_backends!(the_impact_of_a_renamed_state_lists_the_live_cases);
