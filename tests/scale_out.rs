//! Scale-out on PostgreSQL: processes that share the database and nothing else. The
//! `gradsign` binary runs as separate `serve` and `worker` processes, each in its own
//! folder with its own data folder, as they would on separate machines; and concurrent
//! writers of one case (a timer firing while a transition races it) never deadlock.

mod support;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use gradsign::{auth::Keys, definition::Role, engine::Actor, store::blobs::Blobs};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, PgDatabase, SCHOOL, TEST_SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_gradsign");

/// A folder laid out like a deployment: the definitions, workers and templates beside
/// its own empty `data/`.
fn machine() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for name in ["workflows", "workers", "templates", "reference"] {
        std::os::unix::fs::symlink(root.join(name), dir.path().join(name)).unwrap();
    }
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `gradsign` process, killed when dropped.
struct Process {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn gradsign(dir: &Path, database_url: &str, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("GRADSIGN_CONFIG")
        .env_remove("GRADSIGN_DATA_DIR")
        .env("DATABASE_URL", database_url)
        .env("GRADSIGN_JWT_SECRET", TEST_SECRET)
        .env("GRADSIGN_LOG", "warn")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn spawn(dir: &Path, database_url: &str, args: &[&str], env: &[(&str, String)]) -> Process {
    let log = dir.join("process.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = gradsign(dir, database_url, args, env)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("gradsign starts");
    Process { child, log }
}

/// An HTTP-only `serve` process and its address.
struct Http {
    process: Process,
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn start(dir: &Path, database_url: &str) -> Http {
        let listen = format!("127.0.0.1:{}", free_port());
        let process = spawn(
            dir,
            database_url,
            &["serve", "--no-workers"],
            &[("GRADSIGN_LISTEN", listen.clone())],
        );
        let http = Http {
            process,
            base: format!("http://{listen}"),
            client: reqwest::Client::new(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            // Alive is enough here: `/readyz` also waits for a live worker, which this test
            // starts after the HTTP processes.
            if let Ok(r) = http.client.get(format!("{}/healthz", http.base)).send().await
                && r.status().is_success()
            {
                return http;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "serve did not get ready: {}",
                http.process.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn put(&self, path: &str, token: &str, body: Value) {
        let (status, body) = self.send(reqwest::Method::PUT, path, token, Some(body)).await;
        assert!(status.is_success(), "PUT {path}: {status} {body}");
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, body) = self.send(reqwest::Method::POST, path, token, Some(body)).await;
        assert!(
            status.is_success(),
            "POST {path}: {status} {body}\n{}",
            self.process.log()
        );
        body
    }

    async fn get(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, token, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}\n{}", self.process.log());
        body
    }

    async fn bytes(&self, url: &str, token: &str) -> (StatusCode, Vec<u8>) {
        let resp = self
            .client
            .get(format!("{}{url}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.bytes().await.unwrap().to_vec())
    }
}

fn token(role: Role, party: Option<&str>, school: Option<&str>) -> String {
    let actor = Actor {
        role,
        party: party.map(str::to_string),
        school: school.map(str::to_string),
        college: None,
        person: None,
    };
    Keys::new(TEST_SECRET).mint(&actor, chrono::Duration::hours(1))
}

/// Files under a folder, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Two HTTP-only `serve` processes and one `worker`, each with its own data folder, on
/// one database: every agreement the worker renders downloads through both HTTP
/// processes, byte for byte the same, as does a file uploaded through one of them; and
/// no process keeps a document on its own disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_rendered_by_a_worker_download_through_every_http_process() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let url = db.url();
    let (dir_a, dir_b, dir_w) = (machine(), machine(), machine());
    // The HTTP processes first: the first migrates, the others wait on its lock.
    let (a, b) = tokio::join!(Http::start(dir_a.path(), &url), Http::start(dir_b.path(), &url));
    let worker_metrics = format!("127.0.0.1:{}", free_port());
    let worker = spawn(
        dir_w.path(),
        &url,
        &["worker"],
        &[
            ("GRADSIGN_WORKER_POLL_MS", "100".into()),
            ("GRADSIGN_METRICS_LISTEN", worker_metrics.clone()),
        ],
    );

    let admin = token(Role::PlatformAdmin, None, None);
    a.put(
        &format!("/api/v1/schools/{SCHOOL}"),
        &admin,
        json!({ "name": "北方理工大学", "office": "就业指导中心", "phone": "0451-86412114" }),
    )
    .await;
    let students = [("S1", "李明"), ("S2", "王芳"), ("S3", "张伟")];
    for (id, name) in students {
        b.put(
            &format!("/api/v1/students/{id}"),
            &admin,
            json!({ "school": SCHOOL, "name": name, "major": "计算机科学与技术", "phone": "13800138000" }),
        )
        .await;
    }
    a.put(
        "/api/v1/employers/E1",
        &admin,
        json!({ "name": "龙江软件有限公司", "credit_code": "91110000600037341L", "receives_archive": true,
            "receives_hukou": true, "contact": "赵主任", "phone": "0451-88886666" }),
    )
    .await;

    // Each step through whichever process, as a load balancer would send them.
    let reviewer = token(Role::SchoolReviewer, None, Some(SCHOOL));
    let mut cases = Vec::new();
    for (i, (student, _)) in students.iter().enumerate() {
        let (first, second) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let invited = first
            .post(
                "/api/v1/cases",
                &token(Role::Employer, Some("E1"), None),
                json!({ "workflow": "online_signing", "student": student,
                    "input": { "terms": { "position": "软件工程师", "work_place": "哈尔滨市南岗区" } } }),
            )
            .await;
        let case = invited["id"].as_str().unwrap().to_string();
        let s = token(Role::Student, Some(student), Some(SCHOOL));
        for (n, step) in ["view", "accept", "confirm"].into_iter().enumerate() {
            let via = if n % 2 == 0 { second } else { first };
            via.post(
                &format!("/api/v1/cases/{case}/transitions/{step}"),
                &s,
                json!({ "input": {} }),
            )
            .await;
        }
        let approved = first
            .post(
                &format!("/api/v1/cases/{case}/transitions/approve"),
                &reviewer,
                json!({ "input": {} }),
            )
            .await;
        assert_eq!(approved["state"], "approved", "{approved}");
        cases.push(case);
    }

    for case in &cases {
        // The worker renders; either HTTP process sees the render done.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        let list = loop {
            let list = b.get(&format!("/api/v1/cases/{case}/documents"), &admin).await;
            let done = list["renders"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["slot"] == "agreement" && r["status"] == "done");
            if done {
                break list;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the agreement of {case} was not rendered: {list}\nworker log:\n{}",
                worker.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let documents: Vec<&Value> = list["documents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["slot"] == "agreement" && d["replaced_at"].is_null())
            .collect();
        assert!(documents.len() >= 2, "the PDF and its page images: {list}");
        for doc in documents {
            let url = doc["url"].as_str().unwrap();
            let (status_a, bytes_a) = a.bytes(url, &admin).await;
            let (status_b, bytes_b) = b.bytes(url, &admin).await;
            assert_eq!(status_a, StatusCode::OK, "{url} through the first HTTP process");
            assert_eq!(status_b, StatusCode::OK, "{url} through the second HTTP process");
            assert_eq!(bytes_a, bytes_b, "{url}: the same bytes through either process");
            assert_eq!(
                Blobs::hash(&bytes_a),
                doc["sha256"],
                "{url}: the content it was listed with"
            );
            assert_eq!(bytes_a.len() as i64, doc["size"].as_i64().unwrap());
        }
    }

    // An upload through one HTTP process reads back through the other.
    let s3 = token(Role::Student, Some("S3"), Some(SCHOOL));
    let registration = a
        .post(
            "/api/v1/cases",
            &s3,
            json!({ "workflow": "destination_registration", "input": {} }),
        )
        .await;
    let case = registration["id"].as_str().unwrap();
    let proof = support::pdf("admission letter, uploaded through the first process");
    let form = reqwest::multipart::Form::new().text("slot", "proof").part(
        "file",
        reqwest::multipart::Part::bytes(proof.clone()).file_name("admission.pdf"),
    );
    let uploaded = a
        .client
        .post(format!("{}/api/v1/cases/{case}/documents", a.base))
        .bearer_auth(&s3)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::OK, "{}", uploaded.text().await.unwrap());
    let list = b.get(&format!("/api/v1/cases/{case}/documents"), &admin).await;
    let doc = support::current_document(&list, "proof", 0).expect("the upload is listed");
    for via in [&b, &a] {
        let (status, bytes) = via.bytes(doc["url"].as_str().unwrap(), &admin).await;
        assert_eq!((status, &bytes), (StatusCode::OK, &proof), "{doc}");
    }

    // The worker's own counters are scraped from the worker: it rendered the agreements.
    let scraped = a
        .client
        .get(format!("http://{worker_metrics}/metrics"))
        .send()
        .await
        .expect("the worker serves its metrics")
        .text()
        .await
        .unwrap();
    let rendered: f64 = scraped
        .lines()
        .filter(|l| l.starts_with("gradsign_renders_total{") && l.contains("result=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(rendered >= 3.0, "the worker counts its renders:\n{scraped}");

    // The documents are in the database; no machine kept one in its own folder.
    for dir in [&dir_a, &dir_b, &dir_w] {
        let kept = files_under(&dir.path().join("data/blobs"));
        assert!(kept.is_empty(), "a process kept documents on its own disk: {kept:?}");
    }
    drop(worker);
}

/// `gradsign migrate-blobs` moves the files of a data folder's `blobs/` into the
/// database and reports what it did; a second run moves nothing; the content is then
/// served by the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_blobs_moves_a_data_folders_documents_into_the_database_once() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let url = db.url();
    let dir = machine();
    let folder = Blobs::new(dir.path().join("data/blobs"));
    let old_pdf = b"%PDF-1.7 an agreement rendered before documents moved".to_vec();
    let old_upload = b"%PDF-1.7 a stamped agreement uploaded before".to_vec();
    let shas = [folder.put(&old_pdf).unwrap(), folder.put(&old_upload).unwrap()];
    // Another machine already moved the same upload.
    let pool = gradsign::store::Db::connect(&url).await.unwrap();
    pool.migrate().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    tx.put_blob(&folder, &old_upload, 0).await.unwrap(); // on PostgreSQL: a row, no file
    tx.commit().await.unwrap();

    let run = || {
        let out = gradsign(dir.path(), &url, &["migrate-blobs"], &[]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    assert!(
        first.starts_with("moved 1 documents into the database (1 were there already); 0 files left"),
        "{first}"
    );
    assert!(
        files_under(folder.root()).is_empty(),
        "the files were moved, not copied"
    );
    let second = run();
    assert!(
        second.starts_with("moved 0 documents into the database (0 were there already); 0 files left"),
        "{second}"
    );

    let mut tx = pool.read().await.unwrap();
    assert_eq!(tx.blob(&folder, &shas[0]).await.unwrap(), Some(old_pdf));
    assert_eq!(tx.blob(&folder, &shas[1]).await.unwrap(), Some(old_upload));
    tx.rollback().await.unwrap();
    pool.close().await;
}

/// On SQLite the documents stay in the data folder: `migrate-blobs` says so and moves
/// nothing.
#[test]
fn migrate_blobs_on_sqlite_leaves_the_folder_alone() {
    let dir = machine();
    let folder = Blobs::new(dir.path().join("data/blobs"));
    let sha = folder.put(b"a document").unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("GRADSIGN_CONFIG")
        .env_remove("GRADSIGN_DATA_DIR")
        .env_remove("DATABASE_URL")
        .env("GRADSIGN_JWT_SECRET", TEST_SECRET)
        .arg("migrate-blobs")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.starts_with("SQLite keeps documents in"), "{said}");
    assert_eq!(folder.get(&sha).unwrap(), b"a document");
}

/// A case's timers firing while a reviewer's transition races them, 100 times: one lock
/// order (the case, then its timers) on both paths, so no round deadlocks or fails; and
/// an escalation changes no version, so the reviewer's `If-Match` read before the race
/// holds whichever comes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timer_firing_while_a_transition_races_it_never_deadlocks() {
    let Some(app) = support::spawn_app_with(Backend::Postgres, |c| c.workers = false).await else {
        return;
    };
    app.seed().await;
    const ROUNDS: usize = 100;
    let admin = app.admin();
    let mut cases = Vec::new();
    for i in 0..ROUNDS {
        let student = format!("R{i:03}");
        let r = app
            .put(
                &format!("/api/v1/students/{student}"),
                &admin,
                &json!({ "school": SCHOOL, "name": "赵磊", "major": "计算机科学与技术", "phone": "13800138000" }),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
        let invited = app.invite("E1", &student).await;
        assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
        let case = invited.id();
        let s = app.student(&student);
        for step in ["view", "accept", "confirm"] {
            let r = app.fire(&case, step, &s, json!({})).await;
            assert_eq!(r.status, StatusCode::OK, "{step}: {}", r.body);
        }
        cases.push(case);
    }
    // Past the reminder and the first escalation of every review.
    app.clock
        .advance(chrono::Duration::days(5) + chrono::Duration::hours(1));

    let engine = app.app.engine.clone();
    let reviewer = app.reviewer();
    for case in cases {
        let version = app.case(&case, &admin).await.body["version"].as_i64().unwrap();
        let mut tx = engine.db.read().await.unwrap();
        let timers: Vec<String> = tx
            .timers_of(&case)
            .await
            .unwrap()
            .into_iter()
            .filter(|t| t.status == "pending")
            .map(|t| t.id)
            .collect();
        tx.rollback().await.unwrap();
        assert_eq!(timers.len(), 3, "reminder and two escalations pending on {case}");
        let firing = timers.into_iter().map(|id| {
            let engine = engine.clone();
            tokio::spawn(async move { engine.fire_timer(&id).await.map(|_| ()) })
        });
        let approving = {
            let path = format!("/api/v1/cases/{case}/transitions/approve");
            let if_match = format!("\"{version}\"");
            let (client, base, reviewer) = (app.client.clone(), app.base.clone(), reviewer.clone());
            tokio::spawn(async move {
                let r = client
                    .post(format!("{base}{path}"))
                    .bearer_auth(reviewer)
                    .header("If-Match", if_match)
                    .json(&json!({ "input": {} }))
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.text().await.unwrap_or_default())
            })
        };
        for fired in futures::future::join_all(firing).await {
            fired
                .unwrap()
                .unwrap_or_else(|e| panic!("a timer of {case} failed to fire: {e}"));
        }
        let (status, body) = approving.await.unwrap();
        assert_eq!(status, StatusCode::OK, "approve of {case} raced by its timers: {body}");
        let view = app.case(&case, &admin).await.body;
        assert_eq!(view["state"], "approved");
        assert_eq!(view["version"], version + 1, "only the approval moved the case: {view}");
        assert!(
            view["history"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["actor"] != "system"),
            "no timer wrote the history: {}",
            view["history"]
        );
    }
}
