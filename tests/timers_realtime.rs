//! Timers in real time: the one test on the system clock, with the product's own poll
//! interval. 200 invitation expiries due within the next seconds all fire, none before
//! its due time and each within a second of it (the bound; the 250 ms goal is
//! the benchmark's, `benches/timers.rs`). The wait for them is bounded; nothing sleeps
//! to synchronise.

mod support;

use std::time::Duration;

use futures::StreamExt;
use gradsign::{
    definition::Role,
    engine::{Actor, service::Start},
    store::{Db, PartyRow},
};
use serde_json::json;
use support::{Backend, spawn_app_real_clock};

const TIMERS: usize = 200;

async fn two_hundred_timers_fire_on_time(backend: Backend) {
    let Some(t) = spawn_app_real_clock(backend).await else {
        return;
    };
    let engine = &t.app.engine;
    let now = engine.now().timestamp_millis();
    let party = |kind: &str, id: &str, school: Option<&str>| PartyRow {
        kind: kind.into(),
        id: id.into(),
        school_id: school.map(str::to_string),
        name: format!("{kind} {id}"),
        data: json!({ "receives_archive": true, "receives_hukou": true }).to_string(),
        updated_at: now,
    };
    engine.put_party(&party("school", "10212", None)).await.unwrap();
    engine.put_party(&party("employer", "E", None)).await.unwrap();
    for i in 0..TIMERS {
        engine
            .put_party(&party("student", &format!("S{i}"), Some("10212")))
            .await
            .unwrap();
    }
    let employer = Actor {
        role: Role::Employer,
        party: Some("E".into()),
        school: None,
        college: None,
        person: None,
    };
    // Due from 8 s on, 20 ms apart: created well before they are due on any machine.
    let first = engine.now() + chrono::Duration::seconds(8);
    futures::stream::iter(0..TIMERS)
        .map(|i| {
            let deadline = first + chrono::Duration::milliseconds(20 * i as i64);
            let start = Start {
                workflow: "online_signing".into(),
                student: Some(format!("S{i}")),
                employer: None,
                input: json!({ "deadline": deadline.to_rfc3339() }),
            };
            let employer = employer.clone();
            async move { engine.start(&employer, start, None).await.unwrap() }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;

    // The expiry timers (a transition to fire; the reminders before them are mail).
    let sql = "SELECT due_at, done_at, created_at, status FROM timers WHERE fire <> ''";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let rows: Vec<(i64, Option<i64>, i64, String)> = loop {
        let rows: Vec<(i64, Option<i64>, i64, String)> = match &engine.db {
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            Db::Postgres(p, _) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
        };
        if rows.iter().all(|r| r.3 != "pending") || tokio::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rows.len(), TIMERS);
    let mut lags = Vec::new();
    for (due, done, created, status) in &rows {
        assert_eq!(status, "fired", "a timer did not fire: {rows:?}");
        let done = done.expect("a fired timer has its time");
        assert!(done >= *due, "a timer fired {} ms early", due - done);
        // Measured from when it could first fire: its due time, or its creation if later.
        lags.push(done - due.max(created));
    }
    lags.sort();
    let worst = *lags.last().unwrap();
    eprintln!(
        "timer lag ({backend:?}, ms): p50 {} p99 {} max {worst}",
        lags[lags.len() / 2],
        lags[lags.len() * 99 / 100]
    );
    assert!(worst <= 1000, "a timer fired {worst} ms after its due time");
}

on_both_backends!(two_hundred_timers_fire_on_time);
