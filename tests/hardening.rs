//! The HTTP edge under abuse, on SQLite and PostgreSQL: every error status is
//! `problem+json` with the security headers, including the answers hyper writes itself;
//! a NUL anywhere is refused without a server error; slow clients are cut off; a panic
//! is a logged `500`; the OpenAPI document says where parameters are and what errors
//! look like.

mod support;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Backend, TestApp, spawn_app, spawn_app_with};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

on_both_backends!(
    every_error_status_is_problem_json_with_the_security_headers,
    a_nul_anywhere_in_a_request_is_refused_without_a_server_error,
    requests_hyper_cannot_parse_get_problem_json_too,
);

async fn app(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend).await?;
    app.seed().await;
    Some(app)
}

fn assert_problem(what: &str, status: StatusCode, headers: &reqwest::header::HeaderMap, body: &Value) {
    assert_eq!(
        headers.get("content-type").map(|v| v.to_str().unwrap()),
        Some("application/problem+json"),
        "{what}: {status} {body}"
    );
    assert_eq!(body["status"], status.as_u16(), "{what}: {body}");
    assert!(
        body["type"].as_str().unwrap_or_default().starts_with("urn:gradsign:"),
        "{what}: {body}"
    );
    assert!(
        !body["detail_zh"].as_str().unwrap_or_default().is_empty(),
        "{what}: {body}"
    );
    assert_secure(what, headers);
}

fn assert_secure(what: &str, headers: &reqwest::header::HeaderMap) {
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{what}: {csp}"
    );
    assert!(headers.contains_key("x-request-id"), "{what}");
}

/// One request of [`every_error_status_is_problem_json_with_the_security_headers`].
struct Probe<'a> {
    what: &'static str,
    method: Method,
    path: String,
    body: Option<&'a Value>,
    headers: Vec<(&'static str, String)>,
    expected: StatusCode,
}

async fn every_error_status_is_problem_json_with_the_security_headers(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let admin = app.admin();
    let ok = app.get("/api/v1/cases", &admin).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_secure("a 200", &ok.headers);

    let long_path = format!("/api/v1/cases?workflow={}", "a".repeat(9 * 1024));
    let big_body = json!({ "workflow": "x".repeat(2 * 1024 * 1024) });
    let probe = |what, method, path: &str, expected| Probe {
        what,
        method,
        path: path.to_string(),
        body: None,
        headers: vec![],
        expected,
    };
    let cases = vec![
        probe("405", Method::DELETE, "/api/v1/cases", StatusCode::METHOD_NOT_ALLOWED),
        probe("404 route", Method::GET, "/api/v1/nowhere", StatusCode::NOT_FOUND),
        Probe {
            body: Some(&big_body),
            ..probe("413", Method::POST, "/api/v1/cases", StatusCode::PAYLOAD_TOO_LARGE)
        },
        probe("414", Method::GET, &long_path, StatusCode::URI_TOO_LONG),
        Probe {
            headers: vec![("x-padding", "p".repeat(70 * 1024))],
            ..probe(
                "431",
                Method::GET,
                "/api/v1/cases",
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            )
        },
        probe(
            "400 query",
            Method::GET,
            "/api/v1/cases?limit=abc",
            StatusCode::BAD_REQUEST,
        ),
        Probe {
            headers: vec![("authorization", "Bearer x.y.z".into())],
            ..probe("401", Method::GET, "/api/v1/cases", StatusCode::UNAUTHORIZED)
        },
    ];
    for Probe {
        what,
        method,
        path,
        body,
        headers,
        expected,
    } in cases
    {
        let mut req = app.client.request(method, format!("{}{path}", app.base));
        if !headers.iter().any(|(k, _)| *k == "authorization") {
            req = req.bearer_auth(&admin);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        for (k, v) in &headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.expect("answered");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap_or(Value::Null);
        assert_eq!(status, expected, "{what}: {body}");
        assert_problem(what, status, &headers, &body);
        if what == "405" {
            assert!(headers.contains_key("allow"), "405 keeps Allow");
        }
        if what == "401" {
            let detail = body["detail"].as_str().unwrap();
            assert!(
                !detail.contains("Error") && !detail.contains("Base64"),
                "no library internals: {detail}"
            );
        }
    }
    let resp = app
        .client
        .post(format!("{}/api/v1/cases", app.base))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("workflow=online_signing")
        .send()
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_problem("415", status, &headers, &body);

    // `If-Match: *` matches whatever version the case is at.
    let case = app.invite("E1", "S1").await.body["id"].as_str().unwrap().to_string();
    let r = app
        .request(
            Method::POST,
            &format!("/api/v1/cases/{case}/transitions/view"),
            Some(&app.student("S1")),
            None,
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn a_nul_anywhere_in_a_request_is_refused_without_a_server_error(backend: Backend) {
    let Some(app) = app(backend).await else { return };
    let admin = app.admin();
    let case = app.invite("E1", "S1").await.body["id"].as_str().unwrap().to_string();
    let paths = [
        "/api/v1/verify/%00?code=x".to_string(),
        "/api/v1/verify/2026-10212-000001-A?code=%00".to_string(),
        "/api/v1/cases/%00".to_string(),
        "/api/v1/cases/%00/documents".to_string(),
        "/api/v1/documents/%00".to_string(),
        "/api/v1/students/S%001/destination".to_string(),
        "/api/v1/cases?state=%00".to_string(),
        "/api/v1/cases?cursor=a%00b".to_string(),
        "/api/v1/emails?case=%00".to_string(),
        format!("/api/v1/cases/{case}/transitions/vi%00ew"),
    ];
    for path in &paths {
        let r = app.request(Method::GET, path, Some(&admin), None, &[]).await;
        assert!(
            matches!(r.status.as_u16(), 400 | 404 | 405 | 422),
            "{path}: {} {}",
            r.status,
            r.body
        );
        assert_problem(path, r.status, &r.headers, &r.body);
    }
    let bodies: Vec<(String, Value)> = vec![
        (
            "/api/v1/cases".into(),
            json!({ "workflow": "online\u{0}signing", "student": "S1" }),
        ),
        (
            "/api/v1/cases".into(),
            json!({ "workflow": "online_signing", "student": "S\u{0}1", "employer": "E1" }),
        ),
        (
            "/api/v1/cases".into(),
            json!({ "workflow": "online_signing", "student": "S1", "employer": "E2", "input": { "terms": { "position\u{0}": "x" } } }),
        ),
        (
            format!("/api/v1/cases/{case}/transitions/view"),
            json!({ "input": { "x": ["a\u{0}"] } }),
        ),
    ];
    for (path, body) in &bodies {
        let r = app.post(path, &admin, body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}: {}", r.body);
        assert_problem(path, r.status, &r.headers, &r.body);
    }
    let r = app
        .put("/api/v1/schools/10212", &admin, &json!({ "name": "北方\u{0}理工大学" }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["errors"][0]["field"], "name");
    // Multipart: a NUL in the slot's value and in the file's name.
    let s1 = app.student("S1");
    let offline = app
        .post(
            "/api/v1/cases",
            &s1,
            &json!({ "workflow": "offline_signing", "input": {} }),
        )
        .await;
    let offline = offline.body["id"].as_str().unwrap();
    let r = app
        .upload(offline, &s1, "stamped\u{0}agreement", "a.pdf", support::pdf("a"))
        .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.body);
    let r = app
        .upload(offline, &s1, "stamped_agreement", "a\u{0}.pdf", support::pdf("b"))
        .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.body);
    assert_eq!(app.count("documents").await, 0, "nothing stored");
}

/// Sends `request` on a fresh connection and reads until the server closes it.
async fn raw(app: &TestApp, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn requests_hyper_cannot_parse_get_problem_json_too(backend: Backend) {
    let Some(app) = spawn_app(backend).await else { return };
    let many_headers: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    let huge_header = format!("x-big: {}\r\n", "b".repeat(80 * 1024));
    let requests: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "NUL in the path",
            b"GET /api/v1/cases/\0 HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "NUL in a header",
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-a: a\0b\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "control char in a header name",
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nx\x07a: b\r\n\r\n".to_vec(),
            "400",
        ),
        (
            "too many headers",
            format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many_headers}\r\n").into_bytes(),
            "431",
        ),
        (
            "a huge header",
            format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{huge_header}\r\n").into_bytes(),
            "431",
        ),
    ];
    for (what, request, status) in requests {
        let answer = raw(&app, &request).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{what}: {answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/problem+json"),
            "{what}: {answer}"
        );
        assert!(lower.contains("x-content-type-options: nosniff"), "{what}: {answer}");
        let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
        let problem: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
        assert_eq!(problem["status"].to_string(), status, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.header_read_timeout_secs = 1).await else {
        return;
    };
    // Without the timeout the connection would stay open and `raw` give up after 30 s.
    let answer = raw(&app, b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: ").await;
    assert!(answer.is_empty(), "closed without an answer: {answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_never_comes_is_answered_408() {
    let Some(app) = spawn_app_with(Backend::Sqlite, |c| c.request_timeout_secs = 1).await else {
        return;
    };
    app.seed().await;
    let request = format!(
        "POST /api/v1/cases HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\n\
         content-length: 100\r\nconnection: close\r\n\r\n{{\"workflow\":",
        app.admin()
    );
    let mut stream = TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut answer))
        .await
        .expect("answered before the client gives up")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_puts_parameters_where_they_are_and_documents_problems() {
    let Some(app) = spawn_app(Backend::Sqlite).await else {
        return;
    };
    let doc: Value = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let params = |path: &str, method: &str| -> Vec<(String, String)> {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["name"].as_str().unwrap().to_string(),
                            p["in"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let list = params("/api/v1/cases", "get");
    assert_eq!(list.len(), 11, "{list:?}");
    assert!(list.iter().all(|(_, at)| at == "query"), "{list:?}");
    let emails = params("/api/v1/emails", "get");
    assert_eq!(emails.len(), 2);
    assert!(emails.iter().all(|(_, at)| at == "query"), "{emails:?}");
    let verify = params("/api/v1/verify/{number}", "get");
    assert!(verify.contains(&("code".into(), "query".into())), "{verify:?}");
    assert!(verify.contains(&("number".into(), "path".into())), "{verify:?}");

    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                ids.insert(op["operationId"].to_string()),
                "operationId of {method} {path} is unique"
            );
            if path.contains('{') {
                for name in path.split('{').skip(1).map(|p| p.split('}').next().unwrap()) {
                    assert!(
                        params(path, method).contains(&(name.to_string(), "path".into())),
                        "{method} {path} declares {name}"
                    );
                }
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("default"), "{method} {path}");
            for (status, response) in responses {
                if status == "default" || status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}
