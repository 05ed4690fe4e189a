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

/// Publishes `toml` as a version of `name` and activates it (both must succeed); its hash.
async fn publish_active(app: &support::TestApp, name: &str, toml: &str) -> String {
    let admin = app.admin();
    let (status, body) = publish(&app.client, &app.base, &admin, name, toml).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let hash = body["hash"].as_str().unwrap().to_string();
    let url = format!("/api/v1/workflows/{name}/versions/{hash}/activate");
    let r = app.post(&url, &admin, &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    hash
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
    let line = line_of(&broken, "!employer.receives_archive > 1");
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
    // The same version drawn for a browser: SVG naming its states.
    let drawn = app
        .client
        .get(format!(
            "{}/api/v1/workflows/online_signing/versions/{v1}/graph",
            app.base
        ))
        .bearer_auth(&admin)
        .header("Accept", "image/svg+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(drawn.status(), StatusCode::OK);
    assert_eq!(drawn.headers()["content-type"], "image/svg+xml; charset=utf-8");
    let svg = drawn.text().await.unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("invited"), "{svg}");
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
                college: None,
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
    let line = line_of(&half, "location = \"terms.work_place\"");
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
    publish_active(&app, "online_signing", &renamed).await;
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

/// The online definition with a college-level review (二级学院审核) before the school's:
/// a declared role scoped to the student's college, a state and two transitions.
fn with_college_review() -> String {
    online()
        .replace(
            "[params]",
            "college_reviewer = { title = \"二级学院审核员 / college reviewer\", identity = \"school_reviewer\", scope = \"college\" }\n\n[params]",
        )
        .replace(
            "from = [\"confirming\"]\nto = \"submitted\"",
            "from = [\"confirming\"]\nto = \"college_review\"",
        )
        .replace(
            "[states.submitted]",
            "[states.college_review]\ntitle = \"待二级学院审核 / awaiting the college's review\"\nreview = true\nclaims = [\"destination\"]\n\
             on_enter = [{ email = \"agreement_confirmed\", to = [\"employer\", \"college_reviewer\"] }]\n\n[states.submitted]",
        )
        + "
[[transitions]]
name = \"college_approve\"
title = \"学院审核通过 / approve for the college\"
from = [\"college_review\"]
to = \"submitted\"
by = \"college_reviewer\"

[[transitions]]
name = \"college_return\"
title = \"学院审核退回 / return for the college\"
from = [\"college_review\"]
to = \"rejected\"
by = \"college_reviewer\"
input = [{ form = \"review_reason\" }]
"
}

/// Item 2 of the issue, roles as data: a copy of the online definition with a college
/// reviewer (a declared role scoped to the student's college) reviewing before the school,
/// end to end through HTTP; a reviewer of another college is refused the case as another
/// school's reviewer is, and neither level acts in the other's place. A transition naming
/// an undeclared role is refused.
async fn a_college_level_review_declared_in_the_definition_works_end_to_end(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    for (id, name, college) in [("S1", "李明", "计算机学院"), ("S2", "王芳", "机械学院")] {
        let r = app
            .put(
                &format!("/api/v1/students/{id}"),
                &admin,
                &json!({ "school": support::SCHOOL, "name": name, "college": college, "email": format!("{id}@example.edu.cn") }),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    let college_reviewer = |college: &str| {
        app.app.keys.mint(
            &Actor {
                role: Role::SchoolReviewer,
                party: None,
                school: Some(support::SCHOOL.into()),
                college: Some(college.into()),
                person: Some(gradsign::engine::Person {
                    sub: format!("cr-{college}"),
                    name: Some("学院老师".into()),
                }),
            },
            chrono::Duration::hours(1),
        )
    };
    let (computing, mechanical) = (college_reviewer("计算机学院"), college_reviewer("机械学院"));

    // Undeclared, the role is refused at its line.
    let undeclared = with_college_review().replace("college_reviewer = { title", "college_staff = { title");
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &undeclared).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let line = line_of(&undeclared, "by = \"college_reviewer\"");
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
            .contains("names undeclared role `college_reviewer`"),
        "{problem}"
    );

    publish_active(&app, "online_signing", &with_college_review()).await;

    let case = app.invite("E1", "S1").await.id();
    let s1 = app.student("S1");
    for step in ["view", "accept", "confirm"] {
        let r = app.fire(&case, step, &s1, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    assert_eq!(app.case(&case, &admin).await.body["state"], "college_review");
    // The college's reviewers have no address on file: their mail is recorded, not sent
    // to the whole school's reviewers.
    let mails = app.mails("agreement_confirmed").await;
    let to_college: Vec<_> = mails.iter().filter(|m| m.to_name == "二级学院审核员").collect();
    assert_eq!(to_college.len(), 1, "{mails:?}");
    assert_eq!(to_college[0].status, "skipped");
    assert!(
        mails
            .iter()
            .all(|m| m.to_address.as_deref() != Some("review@nit.example.edu.cn")),
        "{mails:?}"
    );

    // Another college's reviewer is answered as another school's reviewer is: not theirs.
    let other_school = app.token(Role::SchoolReviewer, None, Some("10001"));
    for token in [&mechanical, &other_school] {
        let seen = app.case(&case, token).await;
        assert_eq!(seen.status, StatusCode::FORBIDDEN, "{}", seen.body);
        assert_eq!(seen.body["detail"], "this case is not yours");
        let r = app.fire(&case, "college_approve", token, json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.body["detail"], "this case is not yours");
    }
    let listed = app.get("/api/v1/cases", &mechanical).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert!(!listed.body.to_string().contains(&case), "{}", listed.body);
    // The school's reviewer does not review in the college's place.
    let r = app.fire(&case, "college_approve", &app.reviewer(), json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.problem(), "wrong-role");
    assert!(r.body["detail"].to_string().contains("college reviewer"), "{}", r.body);

    // The student's college's reviewer sees the step and takes it.
    let seen = app.case(&case, &computing).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let names: Vec<&str> = seen.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["college_approve", "college_return"], "{}", seen.body);
    let listed = app.get("/api/v1/cases", &computing).await;
    assert!(listed.body.to_string().contains(&case), "{}", listed.body);
    let r = app.fire(&case, "college_approve", &computing, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "submitted");

    // The school's level is the school's: the college reviewer cannot approve there.
    let r = app.fire(&case, "approve", &computing, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(r.body["state"], "approved", "{}", r.body);
    let record = app.get("/api/v1/students/S1/destination", &admin).await;
    assert_eq!(record.body["unit_name"], "龙江软件有限公司", "{}", record.body);
    // The student's destination is read by their college's staff, not another college's.
    let r = app.get("/api/v1/students/S1/destination", &computing).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.get("/api/v1/students/S1/destination", &mechanical).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // The school's statistics are not one college's to read.
    let r = app.get("/api/v1/statistics/destinations", &computing).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let history = app.case(&case, &admin).await.body["history"].to_string();
    assert!(history.contains("college_approve"), "{history}");
    assert!(history.contains("学院老师"), "{history}");
    // Shown in the role it acted in (declared), not its identity's title.
    let approval = app.case(&case, &admin).await.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["transition"] == "college_approve")
        .cloned()
        .unwrap();
    assert!(
        approval["by"].as_str().unwrap().ends_with("（二级学院审核员）"),
        "{approval}"
    );
}

on_both_backends!(a_college_level_review_declared_in_the_definition_works_end_to_end);

/// The pending timers of a case: (name, due at in ms), where the name is the transition
/// it fires or its mail template.
async fn pending_timers(app: &support::TestApp, case: &str) -> Vec<(String, i64)> {
    let mut tx = app.app.engine.db.read().await.unwrap();
    let timers = tx.timers_of(case).await.unwrap();
    tx.rollback().await.unwrap();
    let mut out: Vec<(String, i64)> = timers
        .into_iter()
        .filter(|t| t.status == "pending")
        .map(|t| {
            let name = if t.fire.is_empty() {
                serde_json::from_str::<Value>(t.spec.as_deref().unwrap()).unwrap()["template"]
                    .as_str()
                    .unwrap()
                    .to_string()
            } else {
                t.fire.clone()
            };
            (name, t.due_at)
        })
        .collect();
    out.sort();
    out
}

/// Item 4 of the issue, the migration half: ten live cases on version 1, a version 2 that
/// renames `invited` to `sent` and reminds two days ahead instead of one. Moved with the
/// mapping, each case is on version 2 in `sent`, its timers as the policies say (the
/// expiry kept, the reminder recomputed for half of them and cancelled for the others),
/// its history records the move and who made it, and the audit lists it; a moved case
/// still expires on time on its new version.
async fn live_cases_migrate_onto_a_version_that_renames_their_state(backend: Backend) {
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
    let v1 = app.case(&cases[0], &admin).await.body["workflow_version"]
        .as_str()
        .unwrap()
        .to_string();
    let before: Vec<Vec<(String, i64)>> = {
        let mut all = Vec::new();
        for c in &cases {
            all.push(pending_timers(&app, c).await);
        }
        all
    };
    assert_eq!(before[0].len(), 2, "{:?}", before[0]);
    let renamed = online()
        .replace("[states.invited]", "[states.sent]")
        .replace("\"invited\"", "\"sent\"")
        .replace("invitation_remind_before = \"1d\"", "invitation_remind_before = \"2d\"");
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &renamed).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let v2 = body["hash"].as_str().unwrap().to_string();
    let base = format!("/api/v1/workflows/online_signing/versions/{v2}");

    let impact = app
        .post(
            &format!("{base}/impact"),
            &admin,
            &json!({ "states": { "invited": "sent" } }),
        )
        .await;
    assert_eq!(impact.body["movable"], 10, "{}", impact.body);

    // A bad plan is refused whole, and nothing moves.
    let bad = app
        .post(
            &format!("{base}/migrate"),
            &admin,
            &json!({ "cases": cases, "states": { "invited": "sent" }, "timers": { "expiry": "keep" } }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    assert!(bad.body.to_string().contains("timers.expiry"), "{}", bad.body);
    let bad = app
        .post(
            &format!("{base}/migrate"),
            &admin,
            &json!({ "cases": cases, "timers": { "expire": "later" } }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.body);
    let r = app
        .post(
            &format!("{base}/migrate"),
            &app.employer("E1"),
            &json!({ "cases": cases }),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.case(&cases[0], &admin).await.body["workflow_version"], v1.as_str());

    // Without the mapping the state is missing: every case stays, with the reason.
    let unmapped = app
        .post(&format!("{base}/migrate"), &admin, &json!({ "cases": cases[..2] }))
        .await;
    assert_eq!(unmapped.status, StatusCode::OK, "{}", unmapped.body);
    assert_eq!(unmapped.body["moved"], json!([]));
    assert!(
        unmapped.body["unmoved"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("map `invited`"),
        "{}",
        unmapped.body
    );

    let (first, second) = cases.split_at(5);
    let moved = app
        .post(
            &format!("{base}/migrate"),
            &admin,
            &json!({ "cases": first, "states": { "invited": "sent" },
                "timers": { "expire": "keep", "invitation_expiring": "recompute" } }),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["moved"].as_array().unwrap().len(), 5, "{}", moved.body);
    let moved = app
        .post(
            &format!("{base}/migrate"),
            &admin,
            &json!({ "cases": second, "states": { "invited": "sent" },
                "timers": { "invitation_expiring": "cancel" } }),
        )
        .await;
    assert_eq!(moved.body["moved"].as_array().unwrap().len(), 5, "{}", moved.body);
    assert_eq!(moved.body["unmoved"], json!([]));

    let day = 86_400_000;
    for (i, case) in cases.iter().enumerate() {
        let view = app.case(case, &admin).await.body;
        assert_eq!(view["state"], "sent", "{view}");
        assert_eq!(view["workflow_version"], v2.as_str());
        let old = &before[i];
        let expire = old.iter().find(|(n, _)| n == "expire").unwrap().1;
        let reminder = old.iter().find(|(n, _)| n == "invitation_expiring").unwrap().1;
        assert_eq!(reminder, expire - day);
        let expected = if i < 5 {
            // Kept expiry; the reminder recomputed two days ahead of the deadline.
            vec![
                ("expire".to_string(), expire),
                ("invitation_expiring".to_string(), expire - 2 * day),
            ]
        } else {
            // Kept (the default) expiry; the reminder cancelled.
            vec![("expire".to_string(), expire)]
        };
        assert_eq!(pending_timers(&app, case).await, expected, "case {i}");
        let last = view["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["transition"], "migrate", "{last}");
        assert_eq!(last["from"], "invited");
        assert_eq!(last["to"], "sent");
        assert_eq!(last["input"]["from_version"], v1.as_str());
        assert_eq!(last["input"]["to_version"], v2.as_str());
        assert!(last["actor"].as_str().unwrap().starts_with("platform_admin"), "{last}");
        assert!(last["by"].as_str().unwrap().contains("平台管理员"), "{last}");
    }
    // The claims stay with their cases (R5: one invitation per employer and student).
    assert_eq!(app.count("claims WHERE key LIKE 'invitation:%'").await, 10);

    // Moved once only.
    let again = app
        .post(
            &format!("{base}/migrate"),
            &admin,
            &json!({ "cases": [cases[0]], "states": { "invited": "sent" } }),
        )
        .await;
    assert_eq!(
        again.body["unmoved"][0]["reason"],
        "the case already runs on this version"
    );

    let audit = app.get("/api/v1/workflows/audit", &admin).await;
    let migrations: Vec<&Value> = audit
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "migrate")
        .collect();
    assert_eq!(migrations.len(), 10, "{}", audit.body);
    assert!(
        migrations
            .iter()
            .all(|a| a["hash"] == v2.as_str() && a["detail"]["to_state"] == "sent")
    );

    // On its new version the case still expires when its deadline passes.
    let student = app.case(&cases[0], &admin).await.body["parties"]["student"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(chrono::Duration::days(8));
    app.sweep_through_worker().await;
    let expired = app
        .wait_for_case(&cases[0], &app.student(&student), "the expiry", |c| {
            c["state"] == "expired"
        })
        .await;
    assert_eq!(expired["workflow_version"], v2.as_str());
}

on_both_backends!(live_cases_migrate_onto_a_version_that_renames_their_state);

/// The context of the mail of `template` queued for `case`.
async fn mail_context(app: &support::TestApp, case: &str, template: &str) -> Value {
    let mut tx = app.app.engine.db.read().await.unwrap();
    let mails = tx.emails(None, Some(case), 100).await.unwrap();
    tx.rollback().await.unwrap();
    let mail = mails
        .into_iter()
        .find(|m| m.template == template)
        .unwrap_or_else(|| panic!("no {template} mail for {case}"));
    serde_json::from_str(&mail.context).unwrap()
}

/// Item 2 of the issue, for mail: what the templates receive from the case data is mapped
/// in `[mail_context]`. A renamed position field is refused while the mapping names the old
/// path, and followed into the invitation mail once it names the new one.
async fn a_renamed_field_is_followed_into_the_mail_or_refused(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    let half = online()
        .replace(
            "{ name = \"terms.position\", kind = \"text\"",
            "{ name = \"terms.job_title\", kind = \"text\"",
        )
        .replace("position = \"terms.position\"", "position = \"terms.job_title\"");
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &half).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let line = line_of(&half, "position = { from = \"terms.position\"");
    assert_eq!(body["problems"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["problems"][0]["line"], line, "{body}");
    assert!(
        body["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("mail_context.position reads `terms.position`, which no form declares"),
        "{body}"
    );

    let renamed = online().replace("terms.position", "terms.job_title");
    publish_active(&app, "online_signing", &renamed).await;
    let body = json!({ "workflow": "online_signing", "student": "S1",
        "input": { "terms": { "job_title": "嵌入式工程师", "work_place": "哈尔滨市香坊区" } } });
    let invited = app.post("/api/v1/cases", &app.employer("E1"), &body).await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let case = invited.id();
    assert_eq!(
        mail_context(&app, &case, "invitation_received").await["position"],
        "嵌入式工程师"
    );
    // Not given, the position reads as the mapping's default.
    let body = json!({ "workflow": "online_signing", "student": "S2", "input": {} });
    let bare = app.post("/api/v1/cases", &app.employer("E1"), &body).await.id();
    assert_eq!(
        mail_context(&app, &bare, "invitation_received").await["position"],
        "未注明 / not specified"
    );
    // A rejection's reason comes from the second path the mapping names.
    let s2 = app.student("S2");
    let r = app
        .fire(&bare, "reject", &s2, json!({ "decline_reason": "已有其他打算" }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        mail_context(&app, &bare, "invitation_rejected").await["reason"],
        "已有其他打算"
    );
    // The agreement follows the rename too (`[document_context]`): the preview rendered at
    // `confirm` prints the position from the renamed field on page 2.
    let token = app.student("S1");
    for step in ["view", "accept", "confirm"] {
        let r = app.fire(&case, step, &token, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    let list = app.wait_for_render(&case, "agreement_preview", "done").await;
    let doc = support::current_document(&list, "agreement_preview", 0)
        .unwrap()
        .clone();
    let (status, pdf) = app.download(&doc, &admin).await;
    assert_eq!(status, StatusCode::OK);
    if let Some(page2) = support::pdf_page_text(&pdf, 2) {
        assert!(page2.contains("嵌入式工程师"), "{page2}");
    }
}

/// A document's terms are read where `[document_context]` says: renaming a form's field
/// without following it there is refused with the line, naming the table.
async fn a_renamed_term_the_agreement_prints_is_refused_unless_followed(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    let half = online().replace("{ name = \"terms.work_place\"", "{ name = \"terms.location\"");
    assert_ne!(half, online());
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &half).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let line = line_of(&half, "work_place = \"terms.work_place\"");
    let problems = body["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["line"] == line
            && p["message"]
                .as_str()
                .unwrap()
                .contains("document_context.work_place reads `terms.work_place`, which no form declares")),
        "{body}"
    );
}

on_both_backends!(
    a_renamed_field_is_followed_into_the_mail_or_refused,
    a_renamed_term_the_agreement_prints_is_refused_unless_followed
);

/// Item 1 of the issue, what type checking leaves for run time: a condition reading a value
/// a case does not have (an optional field left empty, an attribute a party record lacks)
/// does not hold. It disables the action with the guard's message, refuses it with a 409
/// and leaves the case as it was — never a 500.
async fn a_condition_reading_an_absent_value_does_not_hold_and_never_answers_500(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let guarded = online()
        .replacen(
            "to = \"viewed\"\nby = \"student\"\n",
            "to = \"viewed\"\nby = \"student\"\nguards = [{ when = \"data.terms.salary != ''\", message = { zh = \"请用人单位先填写薪酬\", en = \"the employer has not stated the pay\" } }]\n",
            1,
        )
        .replacen(
            "{ form = \"archive\", when = \"!employer.receives_archive\" }",
            "{ form = \"archive\", when = \"student.college == '计算机学院'\" }",
            1,
        );
    assert_ne!(guarded, online());
    publish_active(&app, "online_signing", &guarded).await;

    // No pay given: `data.terms.salary` is absent.
    let case = app.invite("E1", "S1").await.id();
    let s1 = app.student("S1");
    let seen = app.case(&case, &s1).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let view = support::action(&seen.body, "view");
    assert_eq!(view["enabled"], false, "{view}");
    assert_eq!(view["reason"]["en"], "the employer has not stated the pay");
    let r = app.fire(&case, "view", &s1, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.problem(), "condition-not-met");
    assert_eq!(r.body["detail_zh"], "请用人单位先填写薪酬");
    let after = app.case(&case, &s1).await.body;
    assert_eq!(
        (after["state"].clone(), after["version"].clone()),
        (json!("invited"), seen.body["version"].clone())
    );

    // With the pay, the guard holds; the student's record has no college, so the archive
    // form (asked for one college's students) is not asked for.
    let body = json!({ "workflow": "online_signing", "student": "S2",
        "input": { "terms": { "position": "测试工程师", "salary": "8000 元/月" } } });
    let paid = app.post("/api/v1/cases", &app.employer("E2"), &body).await.id();
    let s2 = app.student("S2");
    let r = app.fire(&paid, "view", &s2, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // E2 takes neither: the hukou form is asked for, the archive form (by college) is not.
    let hukou =
        json!({ "terms": { "hukou_unit": "哈尔滨市公安局南岗分局", "hukou_address": "哈尔滨市南岗区学府路 2 号" } });
    let r = app.fire(&paid, "accept", &s2, hukou).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "confirming");
}

on_both_backends!(a_condition_reading_an_absent_value_does_not_hold_and_never_answers_500);

/// The online definition as it was before definitions declared their roles.
fn before_roles() -> String {
    let source = online();
    let start = source.find("# Who acts in this path.").unwrap();
    let end = source.find("[params]").unwrap();
    format!("{}{}", &source[..start], &source[end..])
}

/// Upgrading: a version stored before definitions declared their roles is refused when
/// published now, but the cases pinned to it (and new cases, while it is active) keep
/// running, its `by` read as the platform's identities over the cases they reach.
async fn a_version_stored_before_roles_were_declared_keeps_running(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    let old = before_roles();
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &old).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("names undeclared role `employer`"), "{body}");

    // Stored as an older release stored it, and active.
    let catalog = app.app.engine.registry.catalog().clone();
    let def = gradsign::definition::Definition::parse_stored("online_signing.toml", &old, &catalog).unwrap();
    let mut tx = app.app.engine.db.begin().await.unwrap();
    tx.insert_version(&def, "workflows/", 0).await.unwrap();
    tx.set_active("online_signing", &def.hash, "workflows/", 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let case = app.invite("E1", "S1").await;
    assert_eq!(case.status, StatusCode::CREATED, "{}", case.body);
    assert_eq!(case.body["workflow_version"], def.hash.as_str());
    let case = case.id();
    let s1 = app.student("S1");
    for step in ["view", "accept", "confirm"] {
        let r = app.fire(&case, step, &s1, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
    }
    let r = app.fire(&case, "approve", &app.employer("E1"), json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = app.fire(&case, "approve", &app.reviewer(), json!({})).await;
    assert_eq!(r.body["state"], "approved", "{}", r.body);
}

on_both_backends!(a_version_stored_before_roles_were_declared_keeps_running);

fn offline() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows/offline_signing.toml")).unwrap()
}

/// The line of the first occurrence of `needle` in `source`.
fn line_of(source: &str, needle: &str) -> usize {
    let at = source
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in the source"));
    source[..at].matches('\n').count() + 1
}

/// Whether a 422's problems hold one at `line` whose message contains `text`.
fn refused_at(body: &Value, line: usize, text: &str) -> bool {
    body["problems"].as_array().is_some_and(|ps| {
        ps.iter()
            .any(|p| p["line"] == line && p["message"].as_str().unwrap_or_default().contains(text))
    })
}

/// Item 2 of the issue, for the parties a case types in: where an offline agreement keeps
/// its employer is the definition's (`[typed_parties]`). A typed field the employer's
/// record and the agreement do not have is refused at its line; moved to another path
/// everywhere, the employer is read from there into the agreement and the case list.
async fn a_typed_in_employer_is_read_where_the_definition_keeps_it(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    // Renamed in the form only: nothing would print it.
    let half = offline().replace("{ name = \"employer.name\"", "{ name = \"employer.unit_name\"");
    let (status, body) = publish(&app.client, &app.base, &admin, "offline_signing", &half).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let line = line_of(&half, "{ name = \"employer.unit_name\"");
    assert!(
        refused_at(
            &body,
            line,
            "`employer.unit_name` is typed in as the employer's `unit_name`"
        ),
        "{body}"
    );
    // Whether a party is typed in is declared, never guessed.
    let start = offline().find("[typed_parties]").unwrap();
    let end = start + offline()[start..].find("[start]").unwrap();
    let undeclared = format!("{}{}", &offline()[..start], &offline()[end..]);
    let (status, body) = publish(&app.client, &app.base, &admin, "offline_signing", &undeclared).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("declare `[typed_parties]`"), "{body}");

    // Moved everywhere: the form, the guards, the record's unit and the table.
    let moved = offline()
        .replace("\"employer.", "\"unit.")
        .replace("data.employer", "data.unit")
        .replace(
            "[typed_parties]\nemployer = \"employer\"",
            "[typed_parties]\nemployer = \"unit\"",
        );
    assert!(moved.contains("employer = \"unit\""));
    publish_active(&app, "offline_signing", &moved).await;

    let token = app.student("S2");
    let input = json!({
        "unit": { "name": "冰城重型机械有限公司", "credit_code": "91110000101623741K", "contact": "钱经理" },
        "terms": { "position": "焊接工艺工程师", "work_place": "哈尔滨市平房区" }
    });
    let r = app
        .post(
            "/api/v1/cases",
            &token,
            &json!({ "workflow": "offline_signing", "input": input }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let case = r.id();
    let r = app.fire(&case, "preview", &token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = app.wait_for_render(&case, "agreement_preview", "done").await;
    let doc = support::current_document(&list, "agreement_preview", 0)
        .unwrap()
        .clone();
    let (status, pdf) = app.download(&doc, &token).await;
    assert_eq!(status, StatusCode::OK);
    if let Some(page1) = support::pdf_page_text(&pdf, 1) {
        assert!(page1.contains("冰城重型机械有限公司"), "{page1}");
        assert!(page1.contains("钱经理"), "{page1}");
    }
    let listed = app.get("/api/v1/cases?workflow=offline_signing", &token).await;
    let row = listed.body["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == case.as_str())
        .cloned()
        .unwrap();
    assert_eq!(row["employer_name"], "冰城重型机械有限公司", "{row}");
}

/// What the document templates print is held to the definition: a case-data path a
/// template prints whole (the termination certificate's reason) must be declared, and a
/// `[document_context]` name no rendered template prints is a mistake named at its line.
async fn what_a_template_prints_is_held_to_the_definition(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    let renamed = online().replace("{ name = \"termination.reason\"", "{ name = \"termination.why\"");
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &renamed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let line = line_of(&renamed, "[documents.termination_certificate]");
    assert!(
        refused_at(
            &body,
            line,
            "document `termination_certificate` prints the case's `termination.reason` (termination_certificate.typ), which no form declares"
        ),
        "{body}"
    );
    let extra = online().replace(
        "[document_context]\n",
        "[document_context]\nnickname = \"terms.position\"\n",
    );
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &extra).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        refused_at(
            &body,
            line_of(&extra, "nickname ="),
            "document_context.nickname is printed by no template this workflow renders"
        ),
        "{body}"
    );
}

/// The deadline mail counts down to is the case's field of kind `deadline`, whatever the
/// definition names it; a second field of that kind is refused.
async fn the_deadline_is_read_by_its_kind_not_its_name(backend: Backend) {
    let Some(app) = spawn_seeded(backend).await else {
        return;
    };
    let admin = app.admin();
    let two = online().replace(
        "{ name = \"deadline\", kind = \"deadline\"",
        "{ name = \"reply_by\", kind = \"deadline\", default_after = \"invitation_valid_for\", max_after = \"invitation_valid_max\" },\n  { name = \"deadline\", kind = \"deadline\"",
    );
    let (status, body) = publish(&app.client, &app.base, &admin, "online_signing", &two).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        refused_at(
            &body,
            line_of(&two, "{ name = \"deadline\", kind = \"deadline\""),
            "`deadline` is a second field of kind `deadline` beside `reply_by`"
        ),
        "{body}"
    );

    let renamed = online()
        .replace(
            "{ name = \"deadline\", kind = \"deadline\"",
            "{ name = \"reply_by\", kind = \"deadline\"",
        )
        .replace("at = \"deadline\"", "at = \"reply_by\"");
    publish_active(&app, "online_signing", &renamed).await;
    let invited = app.invite("E1", "S1").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let case = invited.id();
    assert!(invited.body["data"]["reply_by"].is_string(), "{}", invited.body);
    let context = mail_context(&app, &case, "invitation_received").await;
    assert!(context["deadline"].as_str().is_some_and(|d| !d.is_empty()), "{context}");
    assert!(context["hours_left"].as_f64().is_some_and(|h| h > 100.0), "{context}");
}

on_both_backends!(
    a_typed_in_employer_is_read_where_the_definition_keeps_it,
    what_a_template_prints_is_held_to_the_definition,
    the_deadline_is_read_by_its_kind_not_its_name
);
