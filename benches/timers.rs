//! How late a timer fires: the delay from a timer's due time to the moment its job ran,
//! with 10,000 other timers pending, against a baseline with none pending, in one run.
//! `cargo bench --bench timers` (SQLite in a temporary folder, real workers, wall clock).

use std::{sync::Arc, time::Instant};

use gradsign::{
    app::App,
    clock::SystemClock,
    config::Config,
    definition::Role,
    engine::{Actor, service::Start},
    store::{Db, PartyRow},
};
use serde_json::json;

const PENDING: usize = 10_000;
const PROBES: usize = 20;

#[tokio::main]
async fn main() {
    let baseline = measure(0).await;
    let loaded = measure(PENDING).await;
    println!("timer delay, due → fired (ms), {PROBES} probes each:");
    println!(
        "  baseline, no other timers pending: mean {:.0}  max {:.0}",
        baseline.0, baseline.1
    );
    println!(
        "  with {PENDING} invitations pending:   mean {:.0}  max {:.0}",
        loaded.0, loaded.1
    );
    println!("  ratio of means: {:.2}", loaded.0 / baseline.0.max(1.0));
}

/// Mean and max delay of `PROBES` timers due 3 s after creation, with `pending` invitations
/// (each with its expiry and reminder timers) waiting weeks ahead.
async fn measure(pending: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = Config {
        data_dir: dir.path().join("data"),
        jwt_secret: Some("bench-secret-bench-secret-bench-secret".into()),
        workflows_dir: root.join("workflows"),
        workers_dir: root.join("workers"),
        templates_dir: root.join("templates"),
        worker_poll_ms: 200,
        ..Config::default()
    };
    let app = App::build(config, Arc::new(SystemClock)).await.unwrap();
    let engine = &app.engine;
    let now = engine.now().timestamp_millis();
    let party = |kind: &str, id: &str, school: Option<&str>, data: serde_json::Value| PartyRow {
        kind: kind.into(),
        id: id.into(),
        school_id: school.map(str::to_string),
        name: format!("{kind} {id}"),
        data: data.to_string(),
        updated_at: now,
    };
    engine
        .put_party(&party("school", "10212", None, json!({})))
        .await
        .unwrap();
    engine
        .put_party(&party(
            "employer",
            "E",
            None,
            json!({ "receives_archive": true, "receives_hukou": true }),
        ))
        .await
        .unwrap();
    let employer = Actor {
        role: Role::Employer,
        party: Some("E".into()),
        school: None,
        person: None,
    };
    let started = Instant::now();
    for i in 0..pending + PROBES {
        engine
            .put_party(&party("student", &format!("S{i}"), Some("10212"), json!({})))
            .await
            .unwrap();
    }
    for i in 0..pending {
        let start = Start {
            workflow: "online_signing".into(),
            student: Some(format!("S{i}")),
            employer: None,
            input: json!({}),
        };
        engine.start(&employer, start, None).await.unwrap();
    }
    eprintln!(
        "{pending} invitations created in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (stop, rx) = tokio::sync::watch::channel(false);
    app.spawn_workers(rx);
    let deadline = (engine.now() + chrono::Duration::seconds(3)).to_rfc3339();
    for i in pending..pending + PROBES {
        let start = Start {
            workflow: "online_signing".into(),
            student: Some(format!("S{i}")),
            employer: None,
            input: json!({ "deadline": deadline }),
        };
        engine.start(&employer, start, None).await.unwrap();
    }
    let delays = loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let rows: Vec<(i64, i64)> = match &engine.db {
            Db::Sqlite(p) => sqlx::query_as("SELECT due_at, done_at FROM timers WHERE status = 'fired'")
                .fetch_all(p)
                .await
                .unwrap(),
            Db::Postgres(p) => sqlx::query_as("SELECT due_at, done_at FROM timers WHERE status = 'fired'")
                .fetch_all(p)
                .await
                .unwrap(),
        };
        if rows.len() >= PROBES {
            break rows
                .into_iter()
                .map(|(due, done)| (done - due) as f64)
                .collect::<Vec<_>>();
        }
    };
    let _ = stop.send(true);
    let mean = delays.iter().sum::<f64>() / delays.len() as f64;
    let max = delays.iter().cloned().fold(0.0, f64::max);
    (mean, max)
}
