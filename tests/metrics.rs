//! `GET /metrics` after a known sequence: one agreement signed online (a start and four
//! transitions, each `ok`), one approval refused, the agreement rendered by the render
//! queue. `/readyz` answers while the workers live.

mod support;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use support::{Backend, sample, spawn_seeded};

on_both_backends!(metrics_reflect_a_known_sequence_of_transitions_and_jobs);

async fn metrics_reflect_a_known_sequence_of_transitions_and_jobs(backend: Backend) {
    let Some(t) = spawn_seeded(backend).await else { return };
    let case = t.sign_online("E1", "S1").await;
    let again = t.fire(&case, "approve", &t.reviewer(), json!({})).await;
    assert!(again.status.is_client_error(), "{}", again.body);
    t.wait_for_render(&case, "agreement", "done").await;

    // The render job reports after it stored the render: wait (bounded) for its count.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = t.metrics().await;
        let rendered = sample(&text, "gradsign_renders_total{result=\"ok\"}");
        let busy = sample(&text, "gradsign_jobs_running{queue=\"render\"}")
            + sample(&text, "gradsign_jobs_waiting{queue=\"render\"}");
        if (rendered >= 1.0 && busy == 0.0) || tokio::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    let transition = |name: &str, outcome: &str| {
        sample(
            &text,
            &format!(
                "gradsign_transitions_total{{workflow=\"online_signing\",transition=\"{name}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    assert_eq!(transition("start", "ok"), 1.0, "{text}");
    for step in ["view", "accept", "confirm", "approve"] {
        assert_eq!(transition(step, "ok"), 1.0, "{step}: {text}");
    }
    assert_eq!(transition("approve", "refused"), 1.0, "{text}");
    let approve_timed =
        "gradsign_transition_seconds_count{workflow=\"online_signing\",transition=\"approve\",outcome=\"ok\"}";
    assert_eq!(sample(&text, approve_timed), 1.0, "{text}");

    assert!(sample(&text, "gradsign_renders_total{result=\"ok\"}") >= 1.0, "{text}");
    assert_eq!(sample(&text, "gradsign_renders_total{result=\"error\"}"), 0.0, "{text}");
    assert_eq!(sample(&text, "gradsign_jobs_failed{queue=\"render\"}"), 0.0, "{text}");
    for queue in ["mail", "render", "timers"] {
        assert!(
            text.contains(&format!("gradsign_jobs_oldest_waiting_seconds{{queue=\"{queue}\"}}")),
            "{queue}: {text}"
        );
    }

    let fired = "gradsign_http_requests_total{route=\"/api/v1/cases/{id}/transitions/{name}\",status=\"200\"}";
    assert_eq!(sample(&text, fired), 4.0, "{text}");
    let started = "gradsign_http_requests_total{route=\"/api/v1/cases\",status=\"201\"}";
    assert_eq!(sample(&text, started), 1.0, "{text}");

    let ready = t.client.get(format!("{}/readyz", t.base)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}
