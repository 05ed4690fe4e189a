//! Round trips per transition, the regression guard of issue 17: each step of the online,
//! offline and registration paths sends at most its recorded number of statements to the
//! database (`BEGIN` and `COMMIT` included), on SQLite and PostgreSQL. The count is the
//! store's own (`gradsign_transition_statements` in `/metrics`): every query goes through
//! `on_tx!`, `Db::begin` or `Tx::commit`, which count it for the transition's task.
//!
//! A change that makes a step send more fails here; lower a budget when a change makes a
//! step cheaper, so the saving cannot be lost unnoticed.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Backend, TestApp, pdf, spawn_seeded};

on_both_backends!(every_step_stays_within_its_statement_budget);

/// (workflow, transition, most statements), for both backends: what each step sent when
/// the budget was set (PostgreSQL, which sends one more than SQLite where a transition
/// ends a destination record and puts another in force: the new record's insert must see
/// the old one ended, so it starts a second statement of deferred writes — see
/// `store::deferred`). Before issue 17 the online steps sent 32, 26, 26, 44 and 39
/// (PostgreSQL's statement log, as `bench/engine.py` counts them); after its first round
/// 11, 8, 12, 16 and 16, with offline 6, 10, 13 and registration 6, 10, 13.
const BUDGETS: &[(&str, &str, u32)] = &[
    ("online_signing", "start", 7),
    ("online_signing", "view", 5),
    ("online_signing", "accept", 6),
    ("online_signing", "confirm", 6),
    ("online_signing", "approve", 6),
    ("offline_signing", "start", 6),
    ("offline_signing", "preview", 5),
    ("offline_signing", "generate", 7),
    ("destination_registration", "start", 6),
    ("destination_registration", "submit", 6),
    ("destination_registration", "approve", 6),
];

/// The statements recorded for a transition so far (the histogram's sum).
async fn statements(t: &TestApp, workflow: &str, transition: &str) -> f64 {
    let series = format!("gradsign_transition_statements_sum{{workflow=\"{workflow}\",transition=\"{transition}\"}}");
    support::sample(&t.metrics().await, &series)
}

struct Steps<'a> {
    t: &'a TestApp,
    seen: Vec<(String, String, u32)>,
}

impl Steps<'_> {
    /// Runs one step and notes the statements it sent.
    async fn step(
        &mut self,
        workflow: &str,
        transition: &str,
        reply: impl std::future::Future<Output = support::Reply>,
    ) -> Value {
        let before = statements(self.t, workflow, transition).await;
        let r = reply.await;
        assert!(r.status.is_success(), "{workflow} {transition}: {}", r.body);
        let after = statements(self.t, workflow, transition).await;
        self.seen
            .push((workflow.to_string(), transition.to_string(), (after - before) as u32));
        r.body
    }
}

async fn every_step_stays_within_its_statement_budget(backend: Backend) {
    let Some(t) = spawn_seeded(backend).await else { return };
    let mut s = Steps {
        t: &t,
        seen: Vec::new(),
    };

    // Online: invite, view, accept, confirm, approve.
    let invited = s.step("online_signing", "start", t.invite("E1", "S1")).await;
    let case = invited["id"].as_str().unwrap().to_string();
    let student = t.student("S1");
    for step in ["view", "accept", "confirm"] {
        s.step("online_signing", step, t.fire(&case, step, &student, json!({})))
            .await;
    }
    s.step(
        "online_signing",
        "approve",
        t.fire(&case, "approve", &t.reviewer(), json!({})),
    )
    .await;

    // Offline: the student types the agreement in, previews and generates it.
    let s2 = t.student("S2");
    let input = json!({
        "employer": { "name": "冰城机械制造有限公司", "credit_code": "91110000101623741K", "receives_archive": true, "receives_hukou": true },
        "terms": { "position": "机械设计工程师", "work_place": "哈尔滨市平房区" }
    });
    let started = s
        .step(
            "offline_signing",
            "start",
            t.post(
                "/api/v1/cases",
                &s2,
                &json!({ "workflow": "offline_signing", "input": input }),
            ),
        )
        .await;
    let offline = started["id"].as_str().unwrap().to_string();
    s.step(
        "offline_signing",
        "preview",
        t.fire(&offline, "preview", &s2, json!({})),
    )
    .await;
    s.step(
        "offline_signing",
        "generate",
        t.fire(&offline, "generate", &s2, json!({ "confirmed": true })),
    )
    .await;

    // Registration: create, upload the proof, submit, approve.
    let s3 = t.student("S3");
    let destination = json!({ "category": "11", "fields": { "unit_name": "哈尔滨电气集团有限公司", "credit_code": "91110000600037341L",
        "unit_nature": "国有企业", "industry": "C", "location": "230103", "job_category": "13", "contact": "周经理",
        "contact_phone": "0451-82870000" } });
    let body = json!({ "workflow": "destination_registration", "input": { "destination": destination } });
    let created = s
        .step("destination_registration", "start", t.post("/api/v1/cases", &s3, &body))
        .await;
    let registration = created["id"].as_str().unwrap().to_string();
    let up = t.upload(&registration, &s3, "proof", "proof.pdf", pdf("proof")).await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    s.step(
        "destination_registration",
        "submit",
        t.fire(&registration, "submit", &s3, json!({})),
    )
    .await;
    s.step(
        "destination_registration",
        "approve",
        t.fire(&registration, "approve", &t.reviewer(), json!({})),
    )
    .await;

    let shown: Vec<String> = s.seen.iter().map(|(w, tr, n)| format!("{w} {tr}: {n}")).collect();
    println!("statements per transition ({backend:?}):\n  {}", shown.join("\n  "));
    for (workflow, transition, n) in &s.seen {
        let budget = BUDGETS
            .iter()
            .find(|(w, tr, _)| w == workflow && tr == transition)
            .map(|b| b.2)
            .unwrap_or_else(|| panic!("no budget for {workflow} {transition}"));
        assert!(*n > 0, "{workflow} {transition} counted no statements");
        assert!(
            *n <= budget,
            "{workflow} {transition} sent {n} statements, over its budget of {budget}:\n  {}",
            shown.join("\n  ")
        );
    }
}

/// Locks held briefly (issue 17): on PostgreSQL an agreement counter is taken in a
/// transaction of its own, so a second confirm of the same school takes the next number
/// while the first is still open (inside the first's transaction, the counter's row would
/// stay locked until it ended, and the second would wait), and a transaction that rolls
/// back keeps its number used: a gap, never a number issued twice. (SQLite has one writer
/// at a time: the counter is taken inside its transaction.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_taken_on_postgresql_is_not_held_until_the_commit() {
    let Some(pg) = support::PgDatabase::create().await else {
        return;
    };
    let db = gradsign::store::Db::connect(&pg.url()).await.unwrap();
    db.migrate().await.unwrap();
    let name = "agreement:10212:2026";
    let mut first = db.begin().await.unwrap();
    assert_eq!(first.next_counter(name).await.unwrap(), 1);
    let mut second = db.begin().await.unwrap();
    let next = tokio::time::timeout(std::time::Duration::from_secs(30), second.next_counter(name))
        .await
        .expect("the second transaction waited for the first one's counter row");
    assert_eq!(next.unwrap(), 2);
    first.rollback().await.unwrap();
    second.commit().await.unwrap();
    let mut third = db.begin().await.unwrap();
    assert_eq!(
        third.next_counter(name).await.unwrap(),
        3,
        "a rolled-back number is not issued again"
    );
    third.commit().await.unwrap();
    db.close().await;
}

/// No transaction sends `NOTIFY` on PostgreSQL (the commits of all that do are serialised,
/// database-wide): apalis's per-job trigger is gone, and the wake-ups a transition earns —
/// the invitation's timers and mail — are sent by the store's notifier after it commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_on_postgresql_are_sent_after_the_commit_not_in_it() {
    let Some(t) = spawn_seeded(Backend::Postgres).await else {
        return;
    };
    let gradsign::store::Db::Postgres(pool, _) = &t.app.engine.db else {
        unreachable!("PostgreSQL only")
    };
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::TEXT FROM pg_trigger WHERE tgrelid = 'apalis.jobs'::regclass AND NOT tgisinternal",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(triggers.is_empty(), "a trigger on apalis.jobs: {triggers:?}");

    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await.unwrap();
    listener.listen(gradsign::store::WAKE_CHANNEL).await.unwrap();
    let invited = t.invite("E1", "S1").await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let mut heard = std::collections::BTreeSet::new();
    while !(heard.contains("timer") && heard.contains("job:mail")) {
        let wake = tokio::time::timeout(std::time::Duration::from_secs(30), listener.recv())
            .await
            .unwrap_or_else(|_| panic!("no wake-up for the invitation's timers and mail; heard {heard:?}"))
            .unwrap();
        heard.insert(wake.payload().to_string());
    }
}
