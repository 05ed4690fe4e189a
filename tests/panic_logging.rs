//! A panic in a handler is answered with a 500 problem and logged with the request's id.
//!
//! In a test binary of its own: the log is read through a subscriber set for this test's
//! thread (`set_default`), and tracing caches per call site whether anyone listens. A test
//! of another server running beside it in the same process could cache "no one" for the
//! request span's call site while this test's subscriber was being set, and the span (with
//! the id) went missing from the log: the test failed once in CI that way.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_panic_is_answered_500_and_logged_with_the_request_id() {
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;

    #[derive(Clone, Default)]
    struct Log(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Log {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    async fn broken() -> String {
        // An index out of bounds: a bug, not a refusal.
        let empty: Vec<u8> = Vec::new();
        empty[std::hint::black_box(3)].to_string()
    }
    let routes = axum::Router::new().route("/boom", axum::routing::get(broken));
    let limits = gradsign::http::edge::Limits {
        request_timeout: Duration::from_secs(5),
    };
    let request = axum::http::Request::get("/boom")
        .header("x-request-id", "req-4242")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = gradsign::http::edge::harden(routes, limits)
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    assert_eq!(response.headers()["x-request-id"], "req-4242");
    let body = axum::body::to_bytes(response.into_body(), 10_000).await.unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["type"], "urn:gradsign:internal");
    assert!(
        !body.to_string().contains("index out of bounds"),
        "the cause stays in the log"
    );
    let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("index out of bounds"))
        .unwrap_or_else(|| panic!("the panic is logged: {log}"));
    assert!(line.contains("req-4242"), "with the request id: {line}");
}
