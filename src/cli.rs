//! The command line: `serve` (the default), `worker`, `workflows
//! check|graph|publish|activate|versions|diff|migrate`, `demo`, `dev-token`, `render` and
//! `migrate-blobs`.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use tokio::sync::watch;

use crate::{
    app::{App, shutdown_signal},
    auth::Keys,
    clock::SystemClock,
    config::{Config, LogFormat, Overrides},
    definition::{Definition, Registry, Role, graph},
    engine::Actor,
};

#[derive(Parser)]
#[command(
    name = "gradsign",
    version,
    about = "Graduate employment signing: workflow engine, HTTP API and job workers"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and (unless --no-workers) run the job workers [default].
    Serve {
        /// Do not run the workers in this process.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run the job workers alone (scale-out on PostgreSQL).
    Worker,
    /// Check or draw workflow definitions.
    Workflows {
        #[command(subcommand)]
        command: WorkflowsCommand,
    },
    /// Render an agreement to OUT.pdf (and OUT-1.png, OUT-2.png beside it).
    Render {
        /// Built-in sample data (for template authors).
        #[arg(long, conflicts_with = "case")]
        sample: bool,
        /// A stored case, as it is now.
        #[arg(long)]
        case: Option<String>,
        /// Add the 预览 / PREVIEW watermark.
        #[arg(long)]
        preview: bool,
        out: PathBuf,
    },
    /// Check a PDF: whether it is a document the platform produced (its bytes are a stored
    /// rendering of the case its evidence names) and whether that case's history was altered
    /// since (the history chain recomputed from the database). Exits 0 when it is the
    /// platform's and the history intact, 1 otherwise.
    Verify {
        /// The PDF to check (e.g. a downloaded 就业协议书).
        file: PathBuf,
    },
    /// Seed a demo school, students and employers, and print shell lines with a token for
    /// each person (`eval "$(gradsign demo)"`); running it again changes nothing.
    Demo,
    /// Move the documents in the data folder's `blobs/` into the PostgreSQL database,
    /// where every process reads them (run once on each machine that kept documents;
    /// running it again moves nothing).
    MigrateBlobs,
    /// Print a bearer token for local use, signed with the configured secret.
    DevToken {
        /// student, employer, school_reviewer, school_admin or platform_admin
        #[arg(long)]
        role: String,
        /// The party id (student or employer).
        #[arg(long)]
        party: Option<String>,
        /// The school id (school staff; optional for students).
        #[arg(long)]
        school: Option<String>,
        /// The college (院系) of staff serving one college of the school (二级学院).
        #[arg(long)]
        college: Option<String>,
        /// The person acting (the platform's user id); history shows who did what.
        #[arg(long)]
        sub: Option<String>,
        /// The person's name, as history and the signing record show it (needs --sub).
        #[arg(long)]
        name: Option<String>,
        /// Days the token stays valid.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
}

#[derive(Subcommand)]
enum WorkflowsCommand {
    /// Check definition files (default: every file in the workflows folder); exits 1 on any problem.
    Check { files: Vec<PathBuf> },
    /// Print a workflow as a Mermaid state diagram: NAME draws the file in the workflows
    /// folder, NAME@HASH a stored version (a unique prefix of the hash will do).
    Graph { name: String },
    /// Check FILE and store it as a version of its workflow (not yet active).
    Publish {
        file: PathBuf,
        /// Make it the version new cases start on, too.
        #[arg(long)]
        activate: bool,
    },
    /// Make a stored version the one new cases start on, in every process.
    Activate { name: String, hash: String },
    /// List a workflow's versions: who published each, when, and its live cases by state.
    Versions { name: String },
    /// The lines changed between two stored versions of a workflow.
    Diff { name: String, a: String, b: String },
    /// Move live cases onto a stored version (one transaction per case, recorded in each
    /// case's history and in the audit); prints what moved and what could not.
    Migrate {
        name: String,
        hash: String,
        /// A case to move (repeat the option for more).
        #[arg(long = "case", required = true)]
        cases: Vec<String>,
        /// OLD=NEW: a state the new version names differently.
        #[arg(long = "state")]
        states: Vec<String>,
        /// NAME=keep|recompute|cancel: what to do with a timer of the new version
        /// (named by the transition it fires or its mail template, `#level` for an escalation).
        #[arg(long = "timer")]
        timers: Vec<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gradsign: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve { no_workers: false }) {
        Command::Workflows {
            command: WorkflowsCommand::Check { files },
        } => check(&config, files),
        Command::Workflows {
            command: WorkflowsCommand::Graph { name },
        } => match name.split_once('@') {
            Some((name, hash)) => versions(config, VersionsCommand::Graph(name.into(), hash.into())),
            None => draw(&config, &name),
        },
        Command::Workflows {
            command: WorkflowsCommand::Publish { file, activate },
        } => versions(config, VersionsCommand::Publish(file, activate)),
        Command::Workflows {
            command: WorkflowsCommand::Activate { name, hash },
        } => versions(config, VersionsCommand::Activate(name, hash)),
        Command::Workflows {
            command: WorkflowsCommand::Versions { name },
        } => versions(config, VersionsCommand::List(name)),
        Command::Workflows {
            command:
                WorkflowsCommand::Migrate {
                    name,
                    hash,
                    cases,
                    states,
                    timers,
                },
        } => match migration_plan(cases, &states, &timers) {
            Ok(plan) => versions(config, VersionsCommand::Migrate(name, hash, plan)),
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Workflows {
            command: WorkflowsCommand::Diff { name, a, b },
        } => versions(config, VersionsCommand::Diff(name, a, b)),
        Command::DevToken {
            role,
            party,
            school,
            college,
            sub,
            name,
            days,
        } => dev_token(&config, &role, party, (school, college), (sub, name), days),
        Command::Render {
            sample,
            case,
            preview,
            out,
        } => render(config, sample, case, preview, &out),
        Command::Verify { file } => verify(config, &file),
        Command::Demo => demo(config),
        Command::MigrateBlobs => migrate_blobs(config),
        Command::Serve { no_workers } => run(config, true, !no_workers),
        Command::Worker => run(config, false, true),
    }
}

fn init_logs(config: &Config) {
    // Checked when the configuration loaded.
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match config.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

fn run(config: Config, http: bool, workers: bool) -> ExitCode {
    init_logs(&config);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async move {
        let workers = workers && config.workers;
        let app = App::build(config, Arc::new(SystemClock)).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker_task = workers.then(|| app.spawn_workers(stop_rx));
        if http {
            let listener = tokio::net::TcpListener::bind(&app.config.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", app.config.listen))?;
            println!(
                "gradsign is serving http://{} (data in {}, {} database)",
                listener.local_addr()?,
                app.config.data_dir.display(),
                app.engine.db.backend()
            );
            app.serve(listener, shutdown_signal()).await?;
        } else if let Some(addr) = app.config.metrics_listen.clone() {
            // A worker's own counters (renders, mails, timer lag) are scraped here.
            let listener = tokio::net::TcpListener::bind(&addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
            println!("gradsign worker: metrics on http://{}/metrics", listener.local_addr()?);
            app.serve_operations(listener, shutdown_signal()).await?;
        } else {
            tracing::info!("running workers only");
            shutdown_signal().await;
        }
        let _ = stop_tx.send(true);
        if let Some(task) = worker_task {
            task.await??;
        }
        app.engine.db.close().await;
        anyhow::Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gradsign: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn demo(config: Config) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async move {
        let app = App::build(config, Arc::new(SystemClock)).await?;
        let script = crate::demo::run(&app).await?;
        app.engine.db.close().await;
        anyhow::Ok(script)
    });
    match result {
        Ok(script) => {
            print!("{script}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gradsign demo: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn verify(config: Config, file: &std::path::Path) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async {
        let app = App::build(config, Arc::new(SystemClock)).await?;
        let checked = app.engine.verify_document(&bytes).await;
        app.engine.db.close().await;
        anyhow::Ok(checked)
    });
    match result {
        Ok(Ok(check)) => {
            println!("{} / {}", check.number, check.slot);
            println!("{}", check.message.zh);
            println!("{}", check.message.en);
            println!("{}", check.agreement.message.zh);
            println!("{}", check.agreement.message.en);
            if check.history_intact {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Ok(Err(crate::engine::service::EngineError::Refused(crate::engine::Refusal::Invalid(errors)))) => {
            for e in errors {
                println!("{}", e.zh);
                println!("{}", e.en);
            }
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn migrate_blobs(config: Config) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let folder = crate::store::blobs::Blobs::new(config.data_dir.join("blobs"));
    let result = runtime.block_on(async {
        let app = App::build(config, Arc::new(SystemClock)).await?;
        let db = &app.engine.db;
        let done = db.migrate_blobs(&folder, crate::store::millis(app.engine.now())).await;
        db.close().await;
        anyhow::Ok(done?)
    });
    match result {
        Ok(None) => {
            println!(
                "SQLite keeps documents in {}; nothing to move (documents move into the database on PostgreSQL)",
                folder.root().display()
            );
            ExitCode::SUCCESS
        }
        Ok(Some(done)) => {
            println!(
                "moved {} documents into the database ({} were there already); {} files left in {} (their content does not match their name)",
                done.moved,
                done.already,
                done.left,
                folder.root().display()
            );
            if done.left > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("gradsign migrate-blobs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(config: &Config, files: Vec<PathBuf>) -> ExitCode {
    let files = if files.is_empty() {
        match Registry::toml_files_in(&config.workflows_dir) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{}: cannot list the folder: {e}", config.workflows_dir.display());
                return ExitCode::FAILURE;
            }
        }
    } else {
        files
    };
    let catalog = match crate::app::catalog(config) {
        Ok((catalog, _)) => catalog,
        Err(e) => {
            eprintln!("gradsign: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for file in &files {
        match Definition::load(file, &catalog) {
            Ok(def) => println!(
                "{}: ok ({} states, {} transitions, version {})",
                file.display(),
                def.states.len(),
                def.transitions.len() + 1,
                &def.hash[..12]
            ),
            Err(e) => {
                failed = true;
                for p in e.problems {
                    eprintln!("{p}");
                }
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

enum VersionsCommand {
    Publish(PathBuf, bool),
    Activate(String, String),
    List(String),
    Graph(String, String),
    Diff(String, String, String),
    Migrate(String, String, crate::engine::versions::MigrationPlan),
}

/// The plan of `workflows migrate` from its options.
fn migration_plan(
    cases: Vec<String>,
    states: &[String],
    timers: &[String],
) -> Result<crate::engine::versions::MigrationPlan, String> {
    let pair = |text: &String, what: &str| {
        text.split_once('=')
            .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
            .ok_or_else(|| format!("--{what} {text}: write it as NAME=VALUE"))
    };
    let mut plan = crate::engine::versions::MigrationPlan {
        cases,
        states: Default::default(),
        timers: Default::default(),
    };
    for s in states {
        let (old, new) = pair(s, "state")?;
        plan.states.insert(old, new);
    }
    for t in timers {
        let (name, policy) = pair(t, "timer")?;
        let policy = serde_json::from_value(serde_json::Value::String(policy.clone()))
            .map_err(|_| format!("--timer {t}: the policy is keep, recompute or cancel, not {policy}"))?;
        plan.timers.insert(name, policy);
    }
    Ok(plan)
}

/// The version commands, run against the configured database as the platform admin
/// `cli` (so the audit says who).
fn versions(config: Config, command: VersionsCommand) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = runtime.block_on(async move {
        let app = App::build(config, Arc::new(SystemClock)).await?;
        let engine = &app.engine;
        let actor = Actor {
            role: Role::PlatformAdmin,
            party: Some("cli".into()),
            school: None,
            college: None,
            person: None,
        };
        // A full hash, or a unique prefix of one, among the versions of `name`.
        let resolve = |list: &[crate::engine::versions::VersionView], prefix: &str| -> anyhow::Result<String> {
            let found: Vec<&str> = list
                .iter()
                .map(|v| v.hash.as_str())
                .filter(|h| h.starts_with(prefix))
                .collect();
            match found.as_slice() {
                [one] => Ok(one.to_string()),
                [] => Err(anyhow::anyhow!("no version {prefix}")),
                _ => Err(anyhow::anyhow!(
                    "{prefix} names several versions; give more of the hash"
                )),
            }
        };
        let out = match command {
            VersionsCommand::Publish(file, activate) => {
                let name = file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                let source = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
                let published = match engine.publish(&actor, &name, &source).await {
                    Err(crate::engine::service::EngineError::InvalidDefinition(e)) => {
                        // Problems name the file as given.
                        let problems: Vec<String> = e
                            .problems
                            .iter()
                            .map(|p| format!("{}:{}: {}", file.display(), p.line, p.message))
                            .collect();
                        return Err(anyhow::anyhow!("{}", problems.join("\n")));
                    }
                    other => other?,
                };
                let mut out = format!(
                    "{name}: version {} {}\n",
                    published.hash,
                    if published.new {
                        "published"
                    } else {
                        "was published before"
                    }
                );
                if activate {
                    engine.activate(&actor, &name, &published.hash).await?;
                    out.push_str(&format!("{name}: version {} is active\n", published.hash));
                }
                out
            }
            VersionsCommand::Activate(name, hash) => {
                let hash = resolve(&engine.versions(&name).await?, &hash)?;
                engine.activate(&actor, &name, &hash).await?;
                format!("{name}: version {hash} is active\n")
            }
            VersionsCommand::List(name) => {
                let mut out = String::new();
                for v in engine.versions(&name).await? {
                    let live: Vec<String> = v.live_cases.iter().map(|(s, n)| format!("{s}={n}")).collect();
                    out.push_str(&format!(
                        "{} {} {} by {}{} live: {}\n",
                        &v.hash[..12],
                        if v.active { "*" } else { " " },
                        v.published_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        v.published_by,
                        if v.diff.is_empty() {
                            String::new()
                        } else {
                            format!(" ({} lines changed)", v.diff.len())
                        },
                        if live.is_empty() {
                            "none".into()
                        } else {
                            live.join(", ")
                        }
                    ));
                }
                out
            }
            VersionsCommand::Graph(name, hash) => {
                let hash = resolve(&engine.versions(&name).await?, &hash)?;
                engine.version_graph(&name, &hash).await?
            }
            VersionsCommand::Diff(name, a, b) => {
                let list = engine.versions(&name).await?;
                let (a, b) = (resolve(&list, &a)?, resolve(&list, &b)?);
                let old = engine.version_source(&name, &a).await?;
                let new = engine.version_source(&name, &b).await?;
                let mut out = String::new();
                for line in crate::engine::versions::line_diff(&old, &new) {
                    out.push_str(&line);
                    out.push('\n');
                }
                out
            }
            VersionsCommand::Migrate(name, hash, plan) => {
                let hash = resolve(&engine.versions(&name).await?, &hash)?;
                let done = match engine.migrate(&actor, &name, &hash, &plan).await {
                    Err(crate::engine::service::EngineError::Refused(crate::engine::Refusal::Invalid(errors))) => {
                        let lines: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.en)).collect();
                        return Err(anyhow::anyhow!("{}", lines.join("\n")));
                    }
                    other => other?,
                };
                let mut out = String::new();
                for m in &done.moved {
                    let timers: Vec<String> = m
                        .timers
                        .iter()
                        .map(|t| format!("{} {} ({})", t.name, t.due.to_rfc3339(), t.policy.as_str()))
                        .collect();
                    out.push_str(&format!(
                        "moved {} {}@{} -> {}@{}{}\n",
                        m.id,
                        m.from_state,
                        &m.from_version[..12],
                        m.to_state,
                        &hash[..12],
                        if timers.is_empty() {
                            String::new()
                        } else {
                            format!("; timers: {}", timers.join(", "))
                        }
                    ));
                }
                for u in &done.unmoved {
                    out.push_str(&format!("not moved {}: {}\n", u.id, u.reason));
                }
                out
            }
        };
        app.engine.db.close().await;
        anyhow::Ok(out)
    });
    match result {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn draw(config: &Config, name: &str) -> ExitCode {
    let path = config.workflows_dir.join(format!("{name}.toml"));
    let catalog = match crate::app::catalog(config) {
        Ok((catalog, _)) => catalog,
        Err(e) => {
            eprintln!("gradsign: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match Definition::load(&path, &catalog) {
        Ok(def) => {
            print!("{}", graph::mermaid(&def));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn dev_token(
    config: &Config,
    role: &str,
    party: Option<String>,
    (school, college): (Option<String>, Option<String>),
    (sub, name): (Option<String>, Option<String>),
    days: i64,
) -> ExitCode {
    let Some(role) = Role::parse(role).filter(|r| *r != Role::System) else {
        eprintln!("unknown role {role}; use student, employer, school_reviewer, school_admin or platform_admin");
        return ExitCode::from(2);
    };
    let claims = crate::auth::Claims {
        role,
        party,
        school,
        college,
        sub,
        name,
        iat: 0,
        exp: 0,
        nbf: None,
    };
    let actor: Actor = match crate::auth::actor_from(claims) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let secret = match config.jwt_secret() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gradsign: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(valid_for) = (1..=3660).contains(&days).then(|| chrono::Duration::days(days)) else {
        eprintln!("--days must be 1 to 3660");
        return ExitCode::from(2);
    };
    println!("{}", Keys::new(&secret).mint(&actor, valid_for));
    ExitCode::SUCCESS
}

fn render(config: Config, sample: bool, case: Option<String>, preview: bool, out: &std::path::Path) -> ExitCode {
    let result = if sample {
        crate::render::Renderer::load(&config.templates_dir.join("agreement"))
            .map_err(|e| e.to_string())
            .and_then(|r| {
                let doc = crate::render::AgreementDoc {
                    number: crate::render::agreement_number(2026, "10212", 1),
                    verification_code: "SAMPLE00".into(),
                    verify_url: format!("{}/api/v1/verify/sample", config.base_url()),
                    preview,
                    data: crate::render::sample_data(),
                    evidence: None,
                };
                r.render(&doc, true).map_err(|e| format!("{e}\n{}", e.message_zh()))
            })
    } else if let Some(case) = case {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        runtime.block_on(async {
            let app = App::build(config, Arc::new(SystemClock))
                .await
                .map_err(|e| format!("{e:#}"))?;
            let rendered = app.engine.render_now(&case, preview).await.map_err(|e| e.to_string())?;
            rendered.map_err(|e| format!("{e}\n{}", e.message_zh()))
        })
    } else {
        Err("say --sample or --case ID".into())
    };
    let rendered = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gradsign render: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stem = out.with_extension("");
    let mut written = vec![out.to_path_buf()];
    let mut files = vec![(out.to_path_buf(), rendered.pdf)];
    for (i, png) in rendered.pages.into_iter().enumerate() {
        let path = std::path::PathBuf::from(format!("{}-{}.png", stem.display(), i + 1));
        written.push(path.clone());
        files.push((path, png));
    }
    for (path, bytes) in files {
        if let Err(e) = std::fs::write(&path, bytes) {
            eprintln!("gradsign render: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    for path in written {
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}
