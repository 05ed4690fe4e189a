//! The `gradsign` binary keeps its secrets: started under a umask that would leave every
//! file readable by anyone, its data folder is still `0700` and every file in it `0600`
//! (the JWT secret, the SQLite database and its `-wal`/`-shm`, documents, mail); a JWT
//! secret shorter than 32 bytes stops the start; and nothing it logs holds a secret.

use std::{
    io::{BufRead, BufReader},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use gradsign::{auth::Keys, definition::Role, engine::Actor};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_gradsign");

/// A `gradsign serve` process on a fresh data folder, with everything it prints kept.
struct Server {
    child: Child,
    base: String,
    output: Arc<Mutex<String>>,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(dir: &Path, umask: &str, env: &[(&str, &str)]) -> Command {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" serve"))
        .arg(BIN)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GRADSIGN_DATA_DIR", dir.join("data"))
        .env("GRADSIGN_LISTEN", "127.0.0.1:0")
        .env("GRADSIGN_WORKFLOWS_DIR", root.join("workflows"))
        .env("GRADSIGN_WORKERS_DIR", root.join("workers"))
        .env("GRADSIGN_TEMPLATES_DIR", root.join("templates"))
        .env("GRADSIGN_WORKER_POLL_MS", "50")
        .env("GRADSIGN_LOG", "debug")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Starts the binary and waits for its "serving" line.
fn start(umask: &str, env: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path(), umask, env).spawn().expect("the binary starts");
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let (output, tx) = (output.clone(), tx.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("serving ").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or_default().to_string());
                }
                output.lock().unwrap().push_str(&line);
                output.lock().unwrap().push('\n');
            }
        });
    }
    let base = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("the server did not start:\n{}", output.lock().unwrap()));
    Server {
        child,
        base,
        output,
        data: dir.path().join("data"),
        _dir: dir,
    }
}

fn token(secret: &str, role: Role, party: Option<&str>, school: Option<&str>) -> String {
    let actor = Actor {
        role,
        party: party.map(str::to_string),
        school: school.map(str::to_string),
        college: None,
        person: None,
    };
    Keys::new(secret).mint(&actor, chrono::Duration::hours(1))
}

/// Syncs parties, invites S1 (a mail) and takes the case to `submitted` (a rendered
/// preview), as a user would.
async fn exercise(server: &Server, secret: &str) {
    let client = reqwest::Client::new();
    let api = format!("{}/api/v1", server.base);
    let admin = token(secret, Role::PlatformAdmin, None, None);
    let put = |path: &str, body: Value| {
        client
            .put(format!("{api}{path}"))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    assert!(
        put(
            "/schools/10212",
            json!({ "name": "北方理工大学", "reviewer_email": "r@nit.example.edu.cn" })
        )
        .await
        .unwrap()
        .status()
        .is_success()
    );
    assert!(
        put(
            "/students/S1",
            json!({ "school": "10212", "name": "李明", "email": "s1@nit.example.edu.cn" })
        )
        .await
        .unwrap()
        .status()
        .is_success()
    );
    let employer = json!({ "name": "龙江软件有限公司", "credit_code": "91110000600037341L", "receives_archive": true, "receives_hukou": true });
    assert!(put("/employers/E1", employer).await.unwrap().status().is_success());
    let invite =
        json!({ "workflow": "online_signing", "student": "S1", "input": { "terms": { "position": "软件工程师" } } });
    let e1 = token(secret, Role::Employer, Some("E1"), None);
    let case: Value = read_json(client.post(format!("{api}/cases")).bearer_auth(&e1).json(&invite)).await;
    let case = case["id"].as_str().unwrap().to_string();
    let s1 = token(secret, Role::Student, Some("S1"), Some("10212"));
    for step in ["view", "accept", "confirm"] {
        let r = client
            .post(format!("{api}/cases/{case}/transitions/{step}"))
            .bearer_auth(&s1)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{step}: {}", r.text().await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let list = get_json(&client, &format!("{api}/cases/{case}/documents"), &admin).await;
        let outbox = std::fs::read_dir(server.data.join("outbox"))
            .map(|d| d.count())
            .unwrap_or(0);
        if list["documents"].as_array().is_some_and(|d| !d.is_empty()) && outbox > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no render or mail yet: {list}\n{}",
            server.output.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends a request and reads its JSON answer.
async fn read_json(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    read_json(client.get(url).bearer_auth(token)).await
}

/// Every folder and file under `root` with its mode.
fn modes(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let meta = std::fs::symlink_metadata(root).unwrap();
    out.push((root.to_path_buf(), meta.is_dir(), meta.permissions().mode() & 0o777));
    if meta.is_dir() {
        for entry in std::fs::read_dir(root).unwrap() {
            out.extend(modes(&entry.unwrap().path()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_and_every_file_in_it_are_private_whatever_the_umask() {
    let server = start("000", &[]);
    let secret = std::fs::read_to_string(server.data.join("jwt-secret")).unwrap();
    exercise(&server, secret.trim()).await;
    let all = modes(&server.data);
    for name in [
        "jwt-secret",
        "gradsign.db",
        "gradsign.db-wal",
        "gradsign.db-shm",
        "outbox",
        "blobs",
    ] {
        assert!(all.iter().any(|(p, _, _)| p.ends_with(name)), "{name} exists: {all:?}");
    }
    assert!(all.iter().any(|(p, _, _)| p.extension().is_some_and(|e| e == "eml")));
    for (path, is_dir, mode) in &all {
        let wanted = if *is_dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, wanted, "{} is {mode:o}", path.display());
    }
    assert!(
        !server.output.lock().unwrap().contains(secret.trim()),
        "the generated secret is never printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_logged_holds_a_secret() {
    let secret = "a-secret-nobody-should-ever-read-0123456789";
    let password = "smtp-password-nobody-should-read";
    let server = start(
        "022",
        &[
            ("GRADSIGN_JWT_SECRET", secret),
            // No server listens there: every send fails, and failures are logged.
            ("GRADSIGN_SMTP_HOST", "127.0.0.1"),
            ("GRADSIGN_SMTP_PORT", "9"),
            ("GRADSIGN_SMTP_SECURITY", "none"),
            ("GRADSIGN_SMTP_USERNAME", "gradsign"),
            ("GRADSIGN_SMTP_PASSWORD", password),
        ],
    );
    let client = reqwest::Client::new();
    let admin = token(secret, Role::PlatformAdmin, None, None);
    let forged = token(
        "another-secret-another-secret-another-secret",
        Role::PlatformAdmin,
        None,
        None,
    );
    for bearer in [&admin, &forged] {
        client
            .get(format!("{}/api/v1/cases", server.base))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
    }
    // A mail that cannot be sent, retried and logged.
    let put = |path: &str, body: Value| {
        client
            .put(format!("{}/api/v1{path}", server.base))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    put("/schools/10212", json!({ "name": "北方理工大学" })).await.unwrap();
    put(
        "/students/S1",
        json!({ "school": "10212", "name": "李明", "email": "s1@nit.example.edu.cn" }),
    )
    .await
    .unwrap();
    put("/employers/E1", json!({ "name": "龙江软件有限公司", "credit_code": "91110000600037341L", "receives_archive": true, "receives_hukou": true })).await.unwrap();
    let invite = json!({ "workflow": "online_signing", "student": "S1", "input": {} });
    let e1 = token(secret, Role::Employer, Some("E1"), None);
    client
        .post(format!("{}/api/v1/cases", server.base))
        .bearer_auth(&e1)
        .json(&invite)
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let emails = get_json(&client, &format!("{}/api/v1/emails", server.base), &admin).await;
        if emails
            .as_array()
            .is_some_and(|e| e.iter().any(|m| !m["last_error"].is_null()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no failed send yet: {emails}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let output = server.output.lock().unwrap().clone();
    assert!(output.contains("serving"), "{output}");
    for (what, secret) in [
        ("JWT secret", secret),
        ("SMTP password", password),
        ("token", admin.as_str()),
    ] {
        assert!(!output.contains(secret), "the {what} was logged:\n{output}");
    }
}

#[test]
fn a_secret_shorter_than_32_bytes_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), "022", &[("GRADSIGN_JWT_SECRET", "x")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing is created");

    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("jwt-secret"), "short\n").unwrap();
    let out = command(dir.path(), "022", &[]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("jwt-secret") && stderr.contains("at least 32"),
        "{stderr}"
    );
    assert!(!stderr.contains("short"), "the secret itself is not repeated: {stderr}");
}
