//! Time to the sub-second, and recovery in seconds, measured on the product's defaults
//! (system clock, the default poll interval, real workers):
//!
//! - timer lag (due time → fired) of 100 invitation expiries due 20 ms apart, with 0,
//!   10,000 and 100,000 other timers pending, on SQLite and PostgreSQL: p50, p99, max;
//! - render latency: `approve` committed → agreement stored, on both backends;
//! - recovery after `kill -9` of a `gradsign worker` process (PostgreSQL): from the kill,
//!   with a new worker started at once, to every job, mail and render finished.
//!
//! `cargo bench --bench timers`. PostgreSQL at `GRADSIGN_BENCH_PG` (default
//! `postgres://postgres@127.0.0.1:5432/test`); its parts are skipped when it is down.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use gradsign::{
    app::App,
    clock::SystemClock,
    config::Config,
    definition::Role,
    engine::{Actor, service::Start},
    store::{Db, PartyRow},
};
use serde_json::json;

const PROBES: usize = 100;
const SECRET: &str = "bench-secret-bench-secret-bench-secret";

#[tokio::main]
async fn main() {
    let admin = std::env::var("GRADSIGN_BENCH_PG").unwrap_or("postgres://postgres@127.0.0.1:5432/test".into());
    let pg = sqlx::PgPool::connect(&admin).await.ok();
    if pg.is_none() {
        eprintln!("PostgreSQL at {admin} is down: its parts are skipped");
    }
    let loads = [0usize, 10_000, 100_000];
    println!("timer lag, due → fired (ms), {PROBES} expiries due 20 ms apart:");
    for backend in ["sqlite", "postgres"] {
        for pending in loads {
            let Some(bench) = Bench::new(backend, pg.as_ref()).await else {
                continue;
            };
            let lags = bench.timer_lags(pending).await;
            println!("  {backend:8} {pending:>7} pending: {}", summary(&lags));
            bench.drop_db(pg.as_ref()).await;
        }
    }
    println!("render latency, approve committed → agreement stored (ms), 10 agreements:");
    for backend in ["sqlite", "postgres"] {
        let Some(bench) = Bench::new(backend, pg.as_ref()).await else {
            continue;
        };
        let latencies = bench.render_latencies(10).await;
        println!("  {backend:8}: {}", summary(&latencies));
        bench.drop_db(pg.as_ref()).await;
    }
    if let Some(pool) = pg.as_ref() {
        println!("recovery after kill -9 of the worker, new worker started at once (s), PostgreSQL:");
        let mut times = Vec::new();
        for _ in 0..3 {
            let bench = Bench::new("postgres", Some(pool)).await.unwrap();
            if let Some(t) = bench.recovery().await {
                times.push(t);
            }
            bench.drop_db(Some(pool)).await;
        }
        let secs: Vec<String> = times.iter().map(|t| format!("{:.1}", t.as_secs_f64())).collect();
        println!("  rounds: {}", secs.join(", "));
    }
}

/// p50, p99 and max of a sample in milliseconds.
fn summary(sample: &[i64]) -> String {
    if sample.is_empty() {
        return "no sample".into();
    }
    let mut s = sample.to_vec();
    s.sort();
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    format!(
        "p50 {:>4}  p99 {:>4}  max {:>4}  (n = {})",
        at(0.5),
        at(0.99),
        s[s.len() - 1],
        s.len()
    )
}

struct Bench {
    app: App,
    dir: tempfile::TempDir,
    pg_name: Option<String>,
    _stop: tokio::sync::watch::Sender<bool>,
    stop_rx: tokio::sync::watch::Receiver<bool>,
}

impl Bench {
    async fn new(backend: &str, pg: Option<&sqlx::PgPool>) -> Option<Bench> {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut config = Config {
            data_dir: dir.path().join("data"),
            jwt_secret: Some(SECRET.into()),
            workflows_dir: root.join("workflows"),
            workers_dir: root.join("workers"),
            templates_dir: root.join("templates"),
            ..Config::default()
        };
        let mut pg_name = None;
        if backend == "postgres" {
            let name = format!("gradsign_bench_{}", rand::random::<u32>());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(pg?)
                .await
                .unwrap();
            config.database_url = Some(format!("postgres://postgres@127.0.0.1:5432/{name}?sslmode=disable"));
            pg_name = Some(name);
        }
        let app = App::build(config, Arc::new(SystemClock)).await.unwrap();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let bench = Bench {
            app,
            dir,
            pg_name,
            _stop: stop,
            stop_rx,
        };
        bench.parties(PROBES + 20).await;
        Some(bench)
    }

    async fn drop_db(self, pg: Option<&sqlx::PgPool>) {
        let _ = self._stop.send(true);
        self.app.engine.db.close().await;
        if let (Some(name), Some(pool)) = (&self.pg_name, pg) {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(pool)
            .await;
        }
    }

    async fn parties(&self, students: usize) {
        let engine = &self.app.engine;
        let now = engine.now().timestamp_millis();
        let party = |kind: &str, id: &str, school: Option<&str>, name: &str, data: serde_json::Value| PartyRow {
            kind: kind.into(),
            id: id.into(),
            school_id: school.map(str::to_string),
            name: name.into(),
            data: data.to_string(),
            updated_at: now,
        };
        let school = json!({ "office": "就业指导中心", "phone": "0451-86412114",
            "reviewer_email": "review@nit.example.edu.cn", "admin_email": "dean@nit.example.edu.cn" });
        engine
            .put_party(&party("school", "10212", None, "北方理工大学", school))
            .await
            .unwrap();
        let employer = json!({ "credit_code": "91110000600037341L", "receives_archive": true, "receives_hukou": true,
            "contact": "赵主任", "phone": "0451-88886666", "email": "hr@e.example.com" });
        engine
            .put_party(&party("employer", "E", None, "龙江软件有限公司", employer))
            .await
            .unwrap();
        for i in 0..students {
            let student = json!({ "major": "计算机科学与技术", "phone": "13800138000", "email": format!("s{i}@students.example.edu.cn") });
            engine
                .put_party(&party("student", &format!("S{i}"), Some("10212"), "李明", student))
                .await
                .unwrap();
        }
    }

    fn start_workers(&self) {
        self.app.spawn_workers(self.stop_rx.clone());
    }

    async fn invite(&self, student: usize, input: serde_json::Value) -> String {
        let employer = Actor {
            role: Role::Employer,
            party: Some("E".into()),
            school: None,
            college: None,
            person: None,
        };
        let start = Start {
            workflow: "online_signing".into(),
            student: Some(format!("S{student}")),
            employer: None,
            input,
        };
        let answer = self.app.engine.start(&employer, start, None).await.unwrap();
        answer.body["id"].as_str().unwrap().to_string()
    }

    async fn rows<T>(&self, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        match &self.app.engine.db {
            Db::Sqlite(p) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(p).await.unwrap(),
            Db::Postgres(p, _) => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(p).await.unwrap(),
        }
    }

    async fn execute(&self, sql: &str) {
        match &self.app.engine.db {
            Db::Sqlite(p) => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(|_| ()),
            Db::Postgres(p, _) => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(|_| ()),
        }
        .unwrap();
    }

    /// `pending` timers a month ahead (rows of one case: the timer loop reads only the
    /// next due time and the due rows), then [`PROBES`] invitations whose expiries fall
    /// due 3 s on, 20 ms apart.
    async fn timer_lags(&self, pending: usize) -> Vec<i64> {
        let anchor = self.invite(PROBES, json!({})).await;
        let now = self.app.engine.now().timestamp_millis();
        let later = now + 30 * 86_400_000;
        let series = match &self.app.engine.db {
            Db::Sqlite(_) => format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {pending})
                 INSERT INTO timers (id, case_id, state, fire, due_at, status, created_at)
                 SELECT 'load-' || i, '{anchor}', 'invited', 'expire', {later} + i, 'pending', {now} FROM n"
            ),
            Db::Postgres(..) => format!(
                "INSERT INTO timers (id, case_id, state, fire, due_at, status, created_at)
                 SELECT 'load-' || i, '{anchor}', 'invited', 'expire', {later} + i, 'pending', {now}
                 FROM generate_series(1, {pending}) AS i"
            ),
        };
        if pending > 0 {
            self.execute(&series).await;
        }
        self.start_workers();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let first = self.app.engine.now() + chrono::Duration::seconds(3);
        futures::stream::iter(0..PROBES)
            .map(|i| {
                let deadline = first + chrono::Duration::milliseconds(20 * i as i64);
                async move { self.invite(i, json!({ "deadline": deadline.to_rfc3339() })).await }
            })
            .buffer_unordered(4)
            .collect::<Vec<_>>()
            .await;
        let sql = format!(
            "SELECT due_at, done_at FROM timers WHERE fire <> '' AND status = 'fired' AND case_id <> '{anchor}'"
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let rows: Vec<(i64, i64)> = self.rows(&sql).await;
            if rows.len() >= PROBES || Instant::now() > deadline {
                return rows.into_iter().map(|(due, done)| done - due).collect();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs `n` agreements one after the other; each: `approve` → agreement stored.
    async fn render_latencies(&self, n: usize) -> Vec<i64> {
        self.start_workers();
        let mut latencies = Vec::new();
        for i in 0..n {
            let case = self.signed(i).await;
            let approved = self.app.engine.now().timestamp_millis();
            let sql = format!(
                "SELECT updated_at FROM renders WHERE case_id = '{case}' AND slot = 'agreement' AND status = 'done'"
            );
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let done: Vec<(i64,)> = self.rows(&sql).await;
                if let Some((at,)) = done.first() {
                    latencies.push(at - approved);
                    break;
                }
                if Instant::now() > deadline {
                    eprintln!("render of {case} not stored within 60 s");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        latencies
    }

    /// One agreement through `approve` (the render is asked for at the approval).
    async fn signed(&self, i: usize) -> String {
        let engine = &self.app.engine;
        let case = self.invite(i, json!({})).await;
        let student = Actor {
            role: Role::Student,
            party: Some(format!("S{i}")),
            school: Some("10212".into()),
            college: None,
            person: None,
        };
        for step in ["view", "accept", "confirm"] {
            engine
                .fire(&student, &case, step, &json!({}), None, None)
                .await
                .unwrap();
        }
        let reviewer = Actor {
            role: Role::SchoolReviewer,
            party: None,
            school: Some("10212".into()),
            college: None,
            person: None,
        };
        engine
            .fire(&reviewer, &case, "approve", &json!({}), None, None)
            .await
            .unwrap();
        case
    }

    /// Kills a `gradsign worker` process mid-render, starts another at once, and times
    /// from the kill to every job, mail and render finished.
    async fn recovery(&self) -> Option<Duration> {
        let url = self.app.config.database_url.clone().unwrap();
        let mut worker = spawn_worker(&url, &self.dir.path().join("w1"));
        let mut killed = None;
        for i in 0..20 {
            self.signed(i).await;
            let running: Vec<(String,)> = self
                .rows("SELECT job_type FROM apalis.jobs WHERE job_type = 'render' AND status IN ('Running', 'Queued')")
                .await;
            if !running.is_empty() {
                let _ = worker.kill();
                let _ = worker.wait();
                killed = Some(Instant::now());
                break;
            }
        }
        let Some(killed) = killed else {
            let _ = worker.kill();
            let _ = worker.wait();
            eprintln!("the worker was never caught mid-render");
            return None;
        };
        let mut again = spawn_worker(&url, &self.dir.path().join("w2"));
        let deadline = killed + Duration::from_secs(120);
        let took = loop {
            let mails: Vec<(String,)> = self
                .rows("SELECT id FROM emails WHERE status NOT IN ('sent', 'skipped', 'failed')")
                .await;
            let renders: Vec<(String,)> = self.rows("SELECT case_id FROM renders WHERE status <> 'done'").await;
            let jobs: Vec<(String,)> = self
                .rows("SELECT job_type FROM apalis.jobs WHERE status NOT IN ('Done', 'Failed', 'Killed')")
                .await;
            if mails.is_empty() && renders.is_empty() && jobs.is_empty() {
                break Some(killed.elapsed());
            }
            if Instant::now() > deadline {
                eprintln!("not recovered in 120 s: mails {mails:?} renders {renders:?} jobs {jobs:?}");
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let _ = again.kill();
        let _ = again.wait();
        took
    }
}

fn spawn_worker(url: &str, data: &Path) -> Child {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new(env!("CARGO_BIN_EXE_gradsign"))
        .arg("worker")
        .env_remove("GRADSIGN_CONFIG")
        .env("DATABASE_URL", url)
        .env("GRADSIGN_DATA_DIR", data)
        .env("GRADSIGN_JWT_SECRET", SECRET)
        .env("GRADSIGN_WORKFLOWS_DIR", root.join("workflows"))
        .env("GRADSIGN_WORKERS_DIR", root.join("workers"))
        .env("GRADSIGN_TEMPLATES_DIR", root.join("templates"))
        .env("GRADSIGN_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the worker starts")
}
