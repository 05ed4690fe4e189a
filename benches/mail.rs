//! Throughput of the mail path against the loopback SMTP sink: render only (the baseline),
//! render + send sequentially, and render + send from several tasks sharing one pooled
//! transport. `cargo bench --bench mail`; bounded in count, loopback only.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gradsign::mail::test_support::SmtpSink;
use gradsign::mail::{MailConfig, Mailer, Templates};
use serde_json::json;

const RENDERS: usize = 5_000;
const SENDS: usize = 2_000;
const CONCURRENT_SENDERS: usize = 4;

fn context(i: usize) -> serde_json::Value {
    json!({
        "recipient_name": format!("学生{i}"), "student_name": format!("学生{i}"),
        "case_url": format!("https://jy.example.edu.cn/cases/{i}"), "case_id": i.to_string(),
        "workflow_title": "线上签约", "employer_name": "华为技术有限公司", "school_name": "北京大学",
        "position": "软件开发工程师", "deadline": "2025-06-30 17:00",
    })
}

fn report(label: &str, n: usize, elapsed: Duration) {
    let rate = n as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<44} {n:>6} mails in {:>8.1} ms = {rate:>8.0} mails/s",
        elapsed.as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let templates = Arc::new(Templates::load(Path::new("templates/email")).expect("templates"));
    let to = vec![("学生".to_owned(), "student@stu.example.edu.cn".to_owned())];

    let start = Instant::now();
    for i in 0..RENDERS {
        std::hint::black_box(templates.render("invitation_received", &context(i)).unwrap());
    }
    report("render only", RENDERS, start.elapsed());

    let sink = SmtpSink::start().await.unwrap();
    let mailer = Arc::new(
        Mailer::new(&MailConfig {
            smtp: Some(sink.smtp_config()),
            from: "就业指导中心 <jobs@example.edu.cn>".into(),
            reply_to: None,
            outbox_dir: std::env::temp_dir(),
        })
        .unwrap(),
    );
    // Warm the pool so connection set-up is not counted against the first run.
    let mail = templates.render("invitation_received", &context(0)).unwrap();
    mailer.send(&to, &mail, "warm-up").await.unwrap();

    let start = Instant::now();
    for i in 0..SENDS {
        let mail = templates.render("invitation_received", &context(i)).unwrap();
        mailer.send(&to, &mail, &format!("seq-{i}")).await.unwrap();
    }
    sink.wait_for(1 + SENDS, Duration::from_secs(60)).await.unwrap();
    report("render + send, sequential", SENDS, start.elapsed());

    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..CONCURRENT_SENDERS {
        let (templates, mailer, to) = (Arc::clone(&templates), Arc::clone(&mailer), to.clone());
        tasks.push(tokio::spawn(async move {
            for i in (t..SENDS).step_by(CONCURRENT_SENDERS) {
                let mail = templates.render("invitation_received", &context(i)).unwrap();
                mailer.send(&to, &mail, &format!("par-{i}")).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    sink.wait_for(1 + 2 * SENDS, Duration::from_secs(60)).await.unwrap();
    report(
        &format!("render + send, {CONCURRENT_SENDERS} senders, one pool"),
        SENDS,
        start.elapsed(),
    );
}
