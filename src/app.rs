//! Wiring: builds the engine from the configuration (definitions, workers' files,
//! database, secret) and runs the HTTP server and the workers — for `serve`, `worker`
//! and the tests alike.

use std::{future::Future, sync::Arc};

use anyhow::Context;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    auth::Keys,
    clock::SharedClock,
    config::Config,
    definition::{Catalog, Registry, TemplateReads},
    engine::{
        documents::LazyRenderer,
        notify::MailService,
        service::{Engine, Settings},
    },
    http::{AppState, router},
    jobs::{
        WorkersConfig, runner,
        wake::{Topic, Wake},
    },
    mail::{Mailer, Templates},
    store::{Db, InsertHook, Inserted},
};

/// What definitions are checked against: the mail templates and Typst templates of the
/// templates folder as they are (the mail templates are loaded, so a broken one is
/// reported here).
pub fn catalog(config: &Config) -> anyhow::Result<(Catalog, Templates)> {
    catalog_in(&config.templates_dir)
}

/// The catalog of a templates folder (`email/`, `agreement/`), with what each Typst
/// template prints.
pub fn catalog_in(templates_dir: &std::path::Path) -> anyhow::Result<(Catalog, Templates)> {
    let templates = Templates::load(&templates_dir.join("email")).context("invalid mail templates")?;
    let dir = templates_dir.join("agreement");
    let document_templates = crate::render::template_names(&dir)
        .with_context(|| format!("cannot list the document templates in {}", dir.display()))?;
    let mut document_reads = std::collections::BTreeMap::new();
    for name in &document_templates {
        let path = dir.join(format!("{name}.typ"));
        let source =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read the template {}", path.display()))?;
        document_reads.insert(name.clone(), TemplateReads::of_source(&source));
    }
    let catalog = Catalog {
        mail_templates: templates.names().into_iter().collect(),
        document_templates,
        document_reads,
    };
    Ok((catalog, templates))
}

/// A built application: everything but the running tasks.
#[derive(Clone)]
pub struct App {
    pub config: Config,
    pub engine: Engine,
    pub keys: Arc<Keys>,
    /// This process's wake-ups for its workers (fed by the database: `jobs::wake`).
    pub wake: Wake,
}

impl App {
    /// Loads and checks definitions and workers' files first, so a broken file stops
    /// startup before anything touches the database.
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<App> {
        let (catalog, templates) = catalog(&config)?;
        let registry = Registry::load_dir(&config.workflows_dir, catalog)
            .map_err(|e| anyhow::anyhow!("invalid workflow definitions:\n{e}"))?;
        let workers = WorkersConfig::load_dir(&config.workers_dir)
            .map_err(|e| anyhow::anyhow!("invalid worker configuration:\n{e}"))?;
        // The secret first: a weak one stops the start before anything is created.
        let secret = config.jwt_secret()?;
        crate::private_files::lock_down(&config.data_dir)
            .with_context(|| format!("cannot create or protect the data folder {}", config.data_dir.display()))?;
        let wake = Wake::default();
        let hook: InsertHook = {
            let wake = wake.clone();
            Arc::new(move |inserted| match inserted {
                Inserted::Job => wake.send(&Topic::AnyQueue),
                Inserted::Timer => wake.send(&Topic::Timers),
            })
        };
        let db = Db::connect_with(&config.database_url(), Some(hook))
            .await
            .context("cannot open the database")?;
        db.migrate().await.context("cannot migrate the database")?;
        let keys = Arc::new(Keys::new(&secret));
        let settings = Settings {
            base_url: config.base_url(),
            agreement_key: format!("agreement-verification:{secret}").into_bytes(),
            data_dir: config.data_dir.clone(),
        };
        let renderer = Arc::new(LazyRenderer::new(config.templates_dir.join("agreement")));
        let mailer = Mailer::new(&config.mail_config()).context("invalid mail settings")?;
        let mail = MailService {
            templates,
            mailer,
            platform_admin: config.platform_admin_email.clone(),
        };
        let engine = Engine {
            db,
            registry: Arc::new(registry),
            clock,
            workers: Arc::new(workers),
            settings: Arc::new(settings),
            renderer,
            mail: Some(Arc::new(mail)),
            metrics: Arc::default(),
            foreground: Arc::default(),
        };
        engine
            .publish_definitions()
            .await
            .context("cannot store the workflow definitions")?;
        Ok(App {
            config,
            engine,
            keys,
            wake,
        })
    }

    pub fn state(&self) -> AppState {
        AppState {
            engine: self.engine.clone(),
            keys: self.keys.clone(),
            max_upload_bytes: self.config.max_upload_bytes,
            verify_per_minute: self.config.verify_per_minute,
            limits: crate::http::edge::Limits {
                request_timeout: self.config.request_timeout(),
            },
        }
    }

    /// Serves HTTP on `listener` until `shutdown` resolves, then drains connections.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %listener.local_addr()?, backend = self.engine.db.backend(), "serving HTTP");
        crate::http::server::serve(
            listener,
            router(self.state()),
            self.config.header_read_timeout(),
            shutdown,
        )
        .await?;
        Ok(())
    }

    /// Serves a worker process's metrics and health on `listener` until `shutdown`.
    pub async fn serve_operations(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        crate::http::server::serve(
            listener,
            crate::http::operations_router(self.state()),
            self.config.header_read_timeout(),
            shutdown,
        )
        .await?;
        Ok(())
    }

    /// Starts the workers in the background; they stop when `stop` turns true.
    pub fn spawn_workers(&self, mut stop: watch::Receiver<bool>) -> JoinHandle<anyhow::Result<()>> {
        let engine = self.engine.clone();
        let poll = self.config.worker_poll();
        let wake = self.wake.clone();
        let timer_loop = self.config.timer_loop;
        tokio::spawn(async move {
            runner::run(engine, wake, poll, timer_loop, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
        })
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
