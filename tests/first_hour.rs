//! The first hour of a newcomer: the README kept true by running it, the demo, the
//! settings, and a clean start.
//!
//! The shell blocks of the README's walk (between
//! `<!-- walk -->` and `<!-- /walk -->`) run in order, in one bash, against the
//! `gradsign` binary serving a fresh data folder — on SQLite, and on PostgreSQL with
//! `DATABASE_URL` set. A `text` block right after a shell block is what that block must
//! print (`…` stands for any text within a line). Then every mail the walk caused must
//! have been sent into `data/outbox/`, the server must have printed no warning, and
//! `serve --help` and the README's configuration section must name every variable the
//! code reads.

mod support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;
use support::{Backend, PgDatabase};

const BIN: &str = env!("CARGO_BIN_EXE_gradsign");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// One shell block of the walk and, when the README gives it, what it prints.
#[derive(Debug)]
struct Step {
    script: String,
    expected: Option<String>,
    line: usize,
}

/// The fenced blocks of the walk regions, in order.
fn walk_steps(text: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_walk = false;
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        match line.trim() {
            "<!-- walk -->" => in_walk = true,
            "<!-- /walk -->" => in_walk = false,
            fence if in_walk && fence.starts_with("```") && fence.len() > 3 => {
                let lang = fence.trim_start_matches('`').to_string();
                let mut body = String::new();
                for (_, l) in lines.by_ref() {
                    if l.trim() == "```" {
                        break;
                    }
                    body.push_str(l);
                    body.push('\n');
                }
                match lang.as_str() {
                    "sh" => steps.push(Step {
                        script: body,
                        expected: None,
                        line: n + 1,
                    }),
                    "text" => {
                        let step = steps.last_mut().expect("a text block follows a shell block");
                        assert!(step.expected.is_none(), "two text blocks after README.md:{}", step.line);
                        step.expected = Some(body);
                    }
                    other => panic!("README.md:{}: unexpected ```{other} block in the walk", n + 1),
                }
            }
            _ => {}
        }
    }
    steps
}

/// Whether `actual` matches `pattern`, where `…` matches any text within the line.
fn line_matches(pattern: &str, actual: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == actual;
    }
    let Some(mut rest) = actual.strip_prefix(parts[0]) else {
        return false;
    };
    for (i, part) in parts.iter().enumerate().skip(1) {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

fn output_matches(expected: &str, actual: &str) -> bool {
    let expected: Vec<_> = expected.lines().map(str::trim_end).collect();
    let actual: Vec<_> = actual.lines().map(str::trim_end).collect();
    expected.len() == actual.len() && expected.iter().zip(&actual).all(|(e, a)| line_matches(e, a))
}

/// A folder laid out like a fresh clone for the walk: the definitions, workers,
/// templates and sample files beside an empty `data/`.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["workflows", "workers", "templates", "examples", "reference"] {
        std::os::unix::fs::symlink(root().join(name), dir.path().join(name)).unwrap();
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

/// The server process, killed when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(dir: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_remove("GRADSIGN_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

async fn start_server(dir: &Path, env: &[(String, String)], base: &str) -> Server {
    let log = dir.join("server.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = command(dir, env)
        .arg("serve")
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("gradsign starts");
    let server = Server { child, log };
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return server;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server did not get ready: {}",
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs every step in one bash; returns each step's output.
fn run_walk(steps: &[Step], dir: &Path, env: &[(String, String)]) -> Vec<String> {
    const MARK: &str = "@@gradsign-walk-step@@";
    let mut script = String::from("set -euo pipefail\ngs() { \"$GRADSIGN_BIN\" \"$@\"; }\n");
    for step in steps {
        script.push_str(&format!("echo {MARK}\n"));
        for line in step.script.lines() {
            // The README's own `gs` runs cargo; here it is the binary under test.
            if !line.trim_start().starts_with("gs() {") {
                script.push_str(line);
                script.push('\n');
            }
        }
    }
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).current_dir(dir).env("GRADSIGN_BIN", BIN);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let outputs: Vec<String> = stdout.split(&format!("{MARK}\n")).skip(1).map(str::to_string).collect();
    assert!(
        out.status.success(),
        "the walk stopped at README.md:{} (exit {:?})\nstderr:\n{}\nits output:\n{}",
        steps.get(outputs.len().saturating_sub(1)).map(|s| s.line).unwrap_or(0),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr),
        outputs.last().cloned().unwrap_or_default()
    );
    outputs
}

/// The platform admin's token, minted with the secret the walk's first start created.
fn admin_token(dir: &Path) -> String {
    let secret = std::fs::read_to_string(dir.join("data/jwt-secret")).unwrap();
    let keys = gradsign::auth::Keys::new(secret.trim());
    let actor = gradsign::engine::Actor {
        role: gradsign::definition::Role::PlatformAdmin,
        party: None,
        school: None,
        college: None,
        person: None,
    };
    keys.mint(&actor, chrono::Duration::hours(1))
}

/// Waits until no mail is waiting to be sent; returns the mail log.
async fn settled_mail(base: &str, token: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mails: Vec<Value> = client
            .get(format!("{base}/api/v1/emails"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if mails
            .iter()
            .all(|m| m["status"] != "pending" && m["status"] != "sending")
        {
            return mails;
        }
        assert!(tokio::time::Instant::now() < deadline, "mail still pending: {mails:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn the_walk_works_as_written(backend: Backend) {
    let pg = match backend {
        Backend::Postgres => match PgDatabase::create().await {
            Some(db) => Some(db),
            None => return,
        },
        Backend::Sqlite => None,
    };
    let dir = workdir();
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut env = vec![("GRADSIGN_LISTEN".to_string(), listen)];
    if let Some(db) = &pg {
        env.push(("DATABASE_URL".into(), db.url()));
    }
    let steps = walk_steps(&readme());
    assert!(steps.len() >= 10, "the walk has its steps, found {}", steps.len());
    let server = start_server(dir.path(), &env, &base).await;

    let walk = {
        let (steps_dir, env) = (dir.path().to_path_buf(), env.clone());
        tokio::task::spawn_blocking(move || run_walk(&steps, &steps_dir, &env))
    };
    let outputs = walk.await.unwrap();
    for (step, output) in walk_steps(&readme()).iter().zip(&outputs) {
        if let Some(expected) = &step.expected {
            assert!(
                output_matches(expected, output),
                "README.md:{}: the block printed\n{output}\nbut the README says\n{expected}",
                step.line
            );
        }
    }

    let mails = settled_mail(&base, &admin_token(dir.path())).await;
    let not_sent: Vec<_> = mails.iter().filter(|m| m["status"] != "sent").collect();
    assert!(not_sent.is_empty(), "every mail of the walk is sent: {not_sent:?}");
    let outbox = std::fs::read_dir(dir.path().join("data/outbox")).unwrap().count();
    assert_eq!(outbox, mails.len(), "one .eml file per sent mail");
    let templates: BTreeSet<_> = mails.iter().filter_map(|m| m["template"].as_str()).collect();
    for wanted in ["invitation_received", "agreement_confirmed", "review_approved"] {
        assert!(templates.contains(wanted), "the walk mailed {wanted}: {templates:?}");
    }

    let log = std::fs::read_to_string(&server.log).unwrap();
    let warnings: Vec<_> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(
        warnings.is_empty(),
        "a start on the default configuration warns of nothing: {warnings:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_works_as_written_on_sqlite() {
    the_walk_works_as_written(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_works_as_written_on_postgres() {
    the_walk_works_as_written(Backend::Postgres).await;
}

/// Every `GRADSIGN_*` name (and `DATABASE_URL`) written as a string in `src/`.
fn variables_in_source() -> BTreeSet<String> {
    fn walk(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    let is_name = piece
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                    if is_name && (piece.starts_with("GRADSIGN_") || piece == "DATABASE_URL") {
                        found.insert(piece.to_string());
                    }
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(&root().join("src"), &mut found);
    found
}

#[test]
fn serve_help_and_the_readme_name_every_variable_the_code_reads() {
    let read = variables_in_source();
    assert!(read.len() >= 20, "the scan finds the variables: {read:?}");
    let help = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    let readme = readme();
    let section = readme
        .split("## Configuration")
        .nth(1)
        .expect("the README has a configuration section");
    for name in &read {
        assert!(
            help.contains(&format!("[env: {name}")),
            "`serve --help` names {name}:\n{help}"
        );
        assert!(
            section.contains(&format!("`{name}`")),
            "the README's configuration section names {name}"
        );
    }
    let documented = help.matches("[env: ").count();
    assert_eq!(
        documented,
        read.len(),
        "`serve --help` names only variables the code reads"
    );
    for entry in help.split("[env: ").skip(1) {
        let name = entry.split([']', '=']).next().unwrap();
        assert!(read.contains(name), "{name} is in the help but not read by the code");
    }
}

/// The parties' rows with their update times, straight from the demo's SQLite file.
async fn party_rows(db: &Path) -> Vec<(String, String, i64)> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query_as("SELECT kind, id, updated_at FROM parties ORDER BY kind, id")
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_demo_seeds_once_and_prints_a_token_for_each_person() {
    let dir = workdir();
    let run = || {
        let out = command(dir.path(), &[]).arg("demo").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    for var in [
        "BASE",
        "API",
        "ADMIN",
        "REVIEWER",
        "EMPLOYER",
        "STUDENT",
        "OFFLINE_STUDENT",
        "REG_STUDENT",
    ] {
        assert!(first.contains(&format!("\nexport {var}=")), "{var} in\n{first}");
    }
    assert!(first.contains("stored 10212, S100"), "{first}");
    let db = dir.path().join("data/gradsign.db");
    let before = party_rows(&db).await;
    assert_eq!(before.len(), 6, "a school, three students, two employers: {before:?}");
    let second = run();
    assert!(second.contains("nothing changed"), "{second}");
    assert_eq!(party_rows(&db).await, before, "a second run rewrites no record");
}

#[test]
fn a_wrong_setting_fails_in_one_line_naming_it() {
    let dir = workdir();
    let out = command(dir.path(), &[("GRADSIGN_WORKERS".into(), "maybe".into())])
        .arg("serve")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("GRADSIGN_WORKERS"), "{stderr}");
}

#[test]
fn the_matcher_treats_the_ellipsis_as_any_text() {
    assert!(line_matches("case …", "case 0190-abc"));
    assert!(line_matches("… and …!", "this and that!"));
    assert!(!line_matches("case …", "cases 1"));
    assert!(line_matches("done", "done"));
    assert!(!output_matches("a\nb", "a"));
}

/// Twenty processes' worth of pools starting together on a fresh PostgreSQL database
/// all migrate it (they take turns under the migration lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_processes_starting_at_once_on_a_fresh_database_all_come_up() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    // Twenty futures on one runtime: their statements interleave on twenty connections
    // as twenty processes' would.
    let starts = (0..20).map(|_| {
        let url = db.url();
        async move {
            let pool = gradsign::store::Db::connect(&url).await?;
            let migrated = pool.migrate().await;
            pool.close().await;
            migrated
        }
    });
    for (i, start) in futures::future::join_all(starts).await.into_iter().enumerate() {
        start.unwrap_or_else(|e| panic!("start {i} failed: {e}"));
    }
}
