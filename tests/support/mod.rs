//! The black-box harness: `spawn_app(backend)` starts the whole application — HTTP on
//! port 0 and the apalis workers — on a fresh database (a SQLite file in a temporary
//! folder, or a new PostgreSQL database), with a clock the test moves by hand (timers
//! fire when the test sweeps), or on the system clock for the few tests of real time.
#![allow(dead_code)]

use std::{sync::Arc, time::Duration};

use gradsign::{
    app::App,
    clock::{ManualClock, SystemClock},
    config::Config,
    definition::Role,
    engine::{Actor, Person},
    jobs::Job,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The JWT secret of every test app (32 bytes or more: shorter ones are refused).
pub const TEST_SECRET: &str = "test-secret-for-the-black-box-suite";

/// Where PostgreSQL tests create their databases.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates, for each async test function taking a [`Backend`], one test per backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::support::Backend::Postgres).await
            }
        }
    )*};
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub app: App,
    pub backend: Backend,
    stop: watch::Sender<bool>,
    /// Dropped after `stop` is sent (fields drop in order), so the app lets go first.
    _pg_database: Option<PgDatabase>,
    _dir: tempfile::TempDir,
}

/// Starts the application on a fresh database. `None` (with a message) when the
/// backend is PostgreSQL and no server answers outside CI; in CI that is a failure.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// [`spawn_app`] with the reference data of [`TestApp::seed`] synced.
pub async fn spawn_seeded(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.seed().await;
    Some(app)
}

/// [`spawn_app`] with the configuration adjusted first (an SMTP sink, a small upload limit…).
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    spawn_clocked(backend, adjust, None).await
}

/// [`spawn_app`] on the system clock, with the product's poll interval: for the few tests
/// of timing that must run in real time (`clock` is then not the app's clock).
pub async fn spawn_app_real_clock(backend: Backend) -> Option<TestApp> {
    spawn_app_real_clock_with(backend, |_| {}).await
}

/// [`spawn_app_real_clock`] with the configuration adjusted (`workers = false`: HTTP
/// only, the workers run in another process).
pub async fn spawn_app_real_clock_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
    spawn_clocked(
        backend,
        |c| {
            c.worker_poll_ms = Config::default().worker_poll_ms;
            adjust(c)
        },
        Some(Arc::new(SystemClock)),
    )
    .await
}

async fn spawn_clocked(
    backend: Backend,
    adjust: impl FnOnce(&mut Config),
    real: Option<gradsign::clock::SharedClock>,
) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = Config {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".into(),
        jwt_secret: Some(TEST_SECRET.into()),
        workflows_dir: root.join("workflows"),
        workers_dir: root.join("workers"),
        templates_dir: root.join("templates"),
        worker_poll_ms: 50,
        ..Config::default()
    };
    // On the manual clock, timers fire when a test sweeps; the timer loop runs on the
    // real clock (`spawn_app_real_clock`, tests/timers_realtime.rs).
    config.timer_loop = real.is_some();
    adjust(&mut config);
    let mut pg_database = None;
    if backend == Backend::Postgres {
        let db = PgDatabase::create().await?;
        config.database_url = Some(db.url());
        pg_database = Some(db);
    }
    let clock = ManualClock::new();
    let app = App::build(config, real.unwrap_or_else(|| Arc::new(clock.clone())))
        .await
        .expect("the app builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stop_rx) = watch::channel(false);
    let server = app.clone();
    let mut http_stop = stop_rx.clone();
    tokio::spawn(async move {
        let _ = server
            .serve(listener, async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    // A test that runs jobs by hand turns the workers off (`workers = false`).
    if app.config.workers {
        app.spawn_workers(stop_rx);
    }
    Some(TestApp {
        base,
        client: reqwest::Client::new(),
        clock,
        app,
        backend,
        stop,
        _pg_database: pg_database,
        _dir: dir,
    })
}

fn uuid_like() -> String {
    format!("{}_{}", std::process::id(), rand::random::<u64>())
}

/// A fresh PostgreSQL database for one test, dropped with this guard.
pub struct PgDatabase {
    pub name: String,
}

impl PgDatabase {
    /// Creates one. `None` (with a `skipped:` line) when no server answers outside CI;
    /// in CI that is a failure.
    pub async fn create() -> Option<PgDatabase> {
        let name = format!("gradsign_t_{}", uuid_like());
        match create_pg_database(&name).await {
            Ok(()) => Some(PgDatabase { name }),
            Err(e) if std::env::var("CI").is_err() => {
                eprintln!("skipped: PostgreSQL is not reachable at {PG_ADMIN_URL} ({e}); CI runs this test");
                None
            }
            Err(e) => panic!("PostgreSQL is required in CI but {PG_ADMIN_URL} failed: {e}"),
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

async fn create_pg_database(name: &str) -> Result<(), String> {
    use sqlx::Connection;
    let mut conn = tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(PG_ADMIN_URL))
        .await
        .map_err(|_| "connection timed out".to_string())?
        .map_err(|e| e.to_string())?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // A fresh runtime on another thread: Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A response: status and JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    /// The id of the case in the body (a panic naming the body when there is none).
    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no case id in {}", self.body))
            .to_string()
    }

    /// The problem `type` without its `urn:gradsign:` prefix.
    pub fn problem(&self) -> &str {
        self.body["type"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("urn:gradsign:")
    }
}

impl TestApp {
    /// A token naming a person: `sub` is made from the role and party or school (one
    /// person per role and party), the name is the role's person in the tests.
    pub fn token(&self, role: Role, party: Option<&str>, school: Option<&str>) -> String {
        let sub = format!("{}-{}", role, party.or(school).unwrap_or("platform"));
        let name = format!("{}{}", role.title().zh, party.or(school).unwrap_or_default());
        self.token_as(role, party, school, Some((&sub, Some(&name))))
    }

    /// A token for `person` (`sub`, name), or for none, as tokens were before they named people.
    pub fn token_as(
        &self,
        role: Role,
        party: Option<&str>,
        school: Option<&str>,
        person: Option<(&str, Option<&str>)>,
    ) -> String {
        let actor = Actor {
            role,
            party: party.map(str::to_string),
            school: school.map(str::to_string),
            college: None,
            person: person.map(|(sub, name)| Person {
                sub: sub.to_string(),
                name: name.map(str::to_string),
            }),
        };
        self.app.keys.mint(&actor, chrono::Duration::hours(1))
    }

    pub fn admin(&self) -> String {
        self.token(Role::PlatformAdmin, None, None)
    }

    pub fn student(&self, id: &str) -> String {
        self.token(Role::Student, Some(id), Some(SCHOOL))
    }

    pub fn employer(&self, id: &str) -> String {
        self.token(Role::Employer, Some(id), None)
    }

    pub fn reviewer(&self) -> String {
        self.token(Role::SchoolReviewer, None, Some(SCHOOL))
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("the request is answered");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.request(Method::GET, path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, Some(token), Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, token: &str, body: &Value) -> Reply {
        self.request(Method::PUT, path, Some(token), Some(body), &[]).await
    }

    /// The body of a GET that answers text (a CSV export, a page), asserting 200.
    pub async fn text(&self, path: &str, token: &str) -> String {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("the request is answered");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "GET {path}: {text}");
        text
    }

    /// The Prometheus exposition of `GET /metrics`, asserting its status and content type.
    pub async fn metrics(&self) -> String {
        let r = self.client.get(format!("{}/metrics", self.base)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let kind = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        r.text().await.unwrap()
    }

    pub async fn case(&self, id: &str, token: &str) -> Reply {
        self.get(&format!("/api/v1/cases/{id}"), token).await
    }

    pub async fn fire(&self, case: &str, transition: &str, token: &str, input: Value) -> Reply {
        self.post(
            &format!("/api/v1/cases/{case}/transitions/{transition}"),
            token,
            &json!({ "input": input }),
        )
        .await
    }

    /// Uploads a file into a case's slot (multipart `slot` + `file`), as the platform does.
    pub async fn upload(&self, case: &str, token: &str, slot: &str, file_name: &str, bytes: Vec<u8>) -> Reply {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_string());
        let form = reqwest::multipart::Form::new()
            .text("slot", slot.to_string())
            .part("file", part);
        let resp = self
            .client
            .post(format!("{}/api/v1/cases/{case}/documents", self.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("the upload is answered");
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        }
    }

    /// Waits until the render of `slot` for the case is `status` (done, failed); returns
    /// the case's document list.
    pub async fn wait_for_render(&self, case: &str, slot: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let admin = self.admin();
        loop {
            let r = self.get(&format!("/api/v1/cases/{case}/documents"), &admin).await;
            let render = r.body["renders"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["slot"] == slot))
                .cloned();
            let has_doc = current_document(&r.body, slot, 0).is_some();
            if render.as_ref().is_some_and(|x| x["status"] == status) && (status != "done" || has_doc) {
                return r.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {status} render of {slot}: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Downloads a document (by its `url`) and returns status and bytes.
    pub async fn download(&self, doc: &Value, token: &str) -> (StatusCode, Vec<u8>) {
        let resp = self
            .client
            .get(format!("{}{}", self.base, doc["url"].as_str().unwrap()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.bytes().await.unwrap().to_vec())
    }

    /// An employer invites a student; returns the reply (201 with the case on success).
    pub async fn invite(&self, employer: &str, student: &str) -> Reply {
        let body = json!({ "workflow": "online_signing", "student": student, "input": { "terms": { "position": "软件工程师", "work_place": "哈尔滨市南岗区" } } });
        self.post("/api/v1/cases", &self.employer(employer), &body).await
    }

    /// An invitation from `employer` to `student` taken to the school's approval (the
    /// student says where the 档案 and 户口 go when the employer does not take them, R7);
    /// returns the case id.
    pub async fn sign_online(&self, employer: &str, student: &str) -> String {
        let invited = self.invite(employer, student).await;
        assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
        let case = invited.body["id"].as_str().unwrap().to_string();
        let token = self.student(student);
        let files = json!({ "terms": { "archive_unit": "黑龙江省人才服务中心", "archive_address": "哈尔滨市南岗区中山路 1 号",
            "hukou_unit": "哈尔滨市公安局南岗分局", "hukou_address": "哈尔滨市南岗区学府路 2 号" } });
        let accept = if employer == "E1" { json!({}) } else { files };
        for (step, input) in [("view", json!({})), ("accept", accept), ("confirm", json!({}))] {
            let r = self.fire(&case, step, &token, input).await;
            assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
        }
        let approved = self.fire(&case, "approve", &self.reviewer(), json!({})).await;
        assert_eq!(approved.body["state"], "approved", "{}", approved.body);
        case
    }

    /// Starts an offline case for `student` with a complete agreement, previews and
    /// generates it (the agreement renders in the background); returns its id.
    pub async fn offline_generated(&self, student: &str) -> String {
        let token = self.student(student);
        let input = json!({
            "employer": { "name": "冰城机械制造有限公司", "credit_code": "91110000101623741K", "receives_archive": true, "receives_hukou": true },
            "terms": { "position": "机械设计工程师", "work_place": "哈尔滨市平房区" }
        });
        let r = self
            .post(
                "/api/v1/cases",
                &token,
                &json!({ "workflow": "offline_signing", "input": input }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let case = r.body["id"].as_str().unwrap().to_string();
        for (step, input) in [("preview", json!({})), ("generate", json!({ "confirmed": true }))] {
            let r = self.fire(&case, step, &token, input).await;
            assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
        }
        case
    }

    /// Syncs one school, four students and three employers (E1 takes archive and
    /// hukou; E2 and E3 do not).
    pub async fn seed(&self) {
        let admin = self.admin();
        let r = self
            .put(
                &format!("/api/v1/schools/{SCHOOL}"),
                &admin,
                &json!({ "name": "北方理工大学", "office": "就业指导中心", "phone": "0451-86412114",
                    "reviewer_email": "review@nit.example.edu.cn", "admin_email": "dean@nit.example.edu.cn" }),
            )
            .await;
        assert!(r.status.is_success(), "{:?}", r.body);
        for (id, name) in [("S1", "李明"), ("S2", "王芳"), ("S3", "张伟"), ("S4", "刘洋")] {
            let r = self
                .put(
                    &format!("/api/v1/students/{id}"),
                    &admin,
                    &json!({ "school": SCHOOL, "name": name, "major": "计算机科学与技术", "phone": "13800138000",
                        "email": format!("{}@students.example.edu.cn", id.to_lowercase()) }),
                )
                .await;
            assert!(r.status.is_success(), "{:?}", r.body);
        }
        for (id, name, code, receives) in [
            ("E1", "龙江软件有限公司", "91110000600037341L", true),
            ("E2", "松花江数据科技有限公司", "91110000101623741K", false),
            ("E3", "北疆电力设计院", "911101066976941872", false),
        ] {
            let body = json!({ "name": name, "credit_code": code, "receives_archive": receives, "receives_hukou": receives,
                "contact": "赵主任", "phone": "0451-88886666", "email": format!("hr@{}.example.com", id.to_lowercase()) });
            let r = self.put(&format!("/api/v1/employers/{id}"), &admin, &body).await;
            assert!(r.status.is_success(), "{:?}", r.body);
        }
    }

    /// Runs the timer sweep through the real queue, as the cron job does.
    pub async fn sweep_through_worker(&self) {
        let engine = &self.app.engine;
        let mut tx = engine.db.begin().await.unwrap();
        engine.push(&mut tx, &Job::SweepTimers, engine.now()).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// Polls a case until `pred` holds or the deadline passes (then panics).
    pub async fn wait_for_case(&self, id: &str, token: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        // Generous: CI machines are busy, and a loaded worker is still a correct one.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let r = self.case(id, token).await;
            if pred(&r.body) {
                return r.body;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; case is {}; jobs: {:?}",
                    r.body,
                    self.jobs().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The apalis jobs (queue, status, attempts, last result), for diagnosing a timeout.
    pub async fn jobs(&self) -> Vec<(String, String, i64, Option<String>)> {
        match &self.app.engine.db {
            gradsign::store::Db::Sqlite(p) => {
                sqlx::query_as("SELECT job_type, status, attempts, last_result FROM Jobs")
                    .fetch_all(p)
                    .await
                    .unwrap_or_default()
            }
            gradsign::store::Db::Postgres(p, _) => {
                sqlx::query_as("SELECT job_type, status, attempts::BIGINT, last_result::TEXT FROM apalis.jobs")
                    .fetch_all(p)
                    .await
                    .unwrap_or_default()
            }
        }
    }

    /// Queued mails of a template (any status), from the engine's record.
    pub async fn mails(&self, template: &str) -> Vec<gradsign::engine::notify::EmailView> {
        let all = self.app.engine.list_emails(None, None).await.unwrap();
        all.into_iter().filter(|e| e.template == template).collect()
    }

    /// The number of rows in a table, straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.app.engine.db {
            gradsign::store::Db::Sqlite(p) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap(),
            gradsign::store::Db::Postgres(p, _) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await.unwrap()
            }
        }
    }
}

pub const SCHOOL: &str = "10212";

/// The value of the metrics sample with exactly this name and these labels (0 when absent).
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// The named action of a case view.
pub fn action<'a>(case: &'a Value, name: &str) -> &'a Value {
    case["actions"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .unwrap_or(&Value::Null)
}

/// The current (not replaced) document of a slot and page in a document list.
pub fn current_document<'a>(list: &'a Value, slot: &str, page: i64) -> Option<&'a Value> {
    list["documents"]
        .as_array()?
        .iter()
        .find(|d| d["slot"] == slot && d["page"] == page && d["replaced_at"].is_null())
}

/// A small well-formed PDF whose bytes differ by `tag` (uploads of equal bytes are refused).
pub fn pdf(tag: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {tag}\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n").into_bytes()
}

/// The text of one page of a PDF, whitespace removed, via poppler's pdftotext. `None`
/// (with a `skipped:` line) when poppler-utils is not installed outside CI; in CI its
/// absence fails the test, since `.ci/run` installs it.
pub fn pdf_page_text(pdf: &[u8], page: u32) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = match std::process::Command::new("pdftotext")
        .args(["-layout", "-f", &page.to_string(), "-l", &page.to_string()])
        .arg(&path)
        .arg("-")
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var("CI").is_err() => {
            eprintln!("skipped: reading the PDF back needs pdftotext (poppler-utils): {e}; CI runs this check");
            return None;
        }
        Err(e) => panic!("pdftotext (poppler-utils) is required in CI; .ci/run installs it: {e}"),
    };
    assert!(
        out.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect(),
    )
}
