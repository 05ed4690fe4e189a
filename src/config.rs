//! The one configuration, loaded once: built-in defaults, then an optional TOML file,
//! then the flags and `GRADSIGN_*` environment variables (and `DATABASE_URL`), all
//! declared in [`Overrides`]. Nothing else in the crate reads the environment. Secrets
//! are never printed: `Debug` hides them.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// Every setting a flag or an environment variable can give, in one place. clap reads
/// each from its flag or its variable, and `gradsign serve --help` lists them all with
/// their defaults; nothing else in the crate reads the environment. The values stay
/// text here and are parsed by [`Config::apply`], so a bad one is refused naming its
/// variable. A test keeps this list, the variables named anywhere in `src/` and the
/// README's configuration section in step.
#[derive(clap::Args, Debug, Default, Clone)]
#[command(next_help_heading = "Configuration (each flag also reads the environment variable shown)")]
pub struct Overrides {
    /// Optional TOML config file, applied before the variables [default: ./gradsign.toml if present]
    #[arg(long = "config", env = "GRADSIGN_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<String>,
    /// Data folder: SQLite file, documents, outbox, generated secret [default: ./data]
    #[arg(long, env = "GRADSIGN_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// HTTP listen address [default: 127.0.0.1:8080]
    #[arg(long, env = "GRADSIGN_LISTEN", global = true, value_name = "ADDR")]
    pub listen: Option<String>,
    /// sqlite://… or postgres://… [default: the SQLite file gradsign.db in the data folder]
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// HS256 secret of bearer tokens and verification codes [default: generated into DATA_DIR/jwt-secret]
    #[arg(
        long,
        env = "GRADSIGN_JWT_SECRET",
        global = true,
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// Public URL of the platform, for links in mail and on agreements [default: http://LISTEN]
    #[arg(long, env = "GRADSIGN_BASE_URL", global = true, value_name = "URL")]
    pub base_url: Option<String>,
    /// Log lines as `pretty` text or `json` [default: pretty]
    #[arg(long, env = "GRADSIGN_LOG_FORMAT", global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Which log lines to print, as a tracing filter [default: info,sqlx=warn,apalis=warn]
    #[arg(long = "log", env = "GRADSIGN_LOG", global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// Run the job workers inside `serve`: true or false [default: true]
    #[arg(long, env = "GRADSIGN_WORKERS", global = true, value_name = "BOOL")]
    pub workers: Option<String>,
    /// How often an idle worker looks for due jobs, in milliseconds [default: 1000]
    #[arg(long, env = "GRADSIGN_WORKER_POLL_MS", global = true, value_name = "MS")]
    pub worker_poll_ms: Option<String>,
    /// Workflow definitions [default: ./workflows]
    #[arg(long, env = "GRADSIGN_WORKFLOWS_DIR", global = true, value_name = "DIR")]
    pub workflows_dir: Option<String>,
    /// Queue and cron configuration of the workers [default: ./workers]
    #[arg(long, env = "GRADSIGN_WORKERS_DIR", global = true, value_name = "DIR")]
    pub workers_dir: Option<String>,
    /// Mail and agreement templates [default: ./templates]
    #[arg(long, env = "GRADSIGN_TEMPLATES_DIR", global = true, value_name = "DIR")]
    pub templates_dir: Option<String>,
    /// Largest accepted upload, in bytes [default: 10485760]
    #[arg(long, env = "GRADSIGN_MAX_UPLOAD_BYTES", global = true, value_name = "BYTES")]
    pub max_upload_bytes: Option<String>,
    /// SMTP server for outgoing mail [default: none; mail is written as .eml files to DATA_DIR/outbox]
    #[arg(long, env = "GRADSIGN_SMTP_HOST", global = true, value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port [default: 587]
    #[arg(long, env = "GRADSIGN_SMTP_PORT", global = true, value_name = "PORT")]
    pub smtp_port: Option<String>,
    /// SMTP transport security: starttls, tls or none [default: starttls]
    #[arg(long, env = "GRADSIGN_SMTP_SECURITY", global = true, value_name = "MODE")]
    pub smtp_security: Option<String>,
    /// SMTP user name [default: none, no authentication]
    #[arg(long, env = "GRADSIGN_SMTP_USERNAME", global = true, value_name = "USER")]
    pub smtp_username: Option<String>,
    /// SMTP password [default: none]
    #[arg(
        long,
        env = "GRADSIGN_SMTP_PASSWORD",
        global = true,
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub smtp_password: Option<String>,
    /// Sender of every mail, with its display name [default: 就业签约平台 <no-reply@gradsign.local>]
    #[arg(long, env = "GRADSIGN_MAIL_FROM", global = true, value_name = "ADDRESS")]
    pub mail_from: Option<String>,
    /// Reply-To of every mail [default: none]
    #[arg(long, env = "GRADSIGN_MAIL_REPLY_TO", global = true, value_name = "ADDRESS")]
    pub mail_reply_to: Option<String>,
    /// Where level-2 review escalations go (the platform administrators) [default: none; such mails are skipped]
    #[arg(long, env = "GRADSIGN_PLATFORM_ADMIN_EMAIL", global = true, value_name = "ADDRESS")]
    pub platform_admin_email: Option<String>,
    /// Longest a request may take, its body included, before 408 [default: 60]
    #[arg(long, env = "GRADSIGN_REQUEST_TIMEOUT_SECS", global = true, value_name = "SECONDS")]
    pub request_timeout_secs: Option<String>,
    /// Longest a client may take to send its request headers; also closes idle connections [default: 15]
    #[arg(
        long,
        env = "GRADSIGN_HEADER_READ_TIMEOUT_SECS",
        global = true,
        value_name = "SECONDS"
    )]
    pub header_read_timeout_secs: Option<String>,
    /// Where a `worker` process serves /metrics, /healthz and /readyz (a serve process has them on its own address) [default: none]
    #[arg(long, env = "GRADSIGN_METRICS_LISTEN", global = true, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Agreement verifications one client address may ask for per minute; more get 429 [default: 30]
    #[arg(long, env = "GRADSIGN_VERIFY_PER_MINUTE", global = true, value_name = "COUNT")]
    pub verify_per_minute: Option<String>,
}

/// The shortest JWT secret accepted: HS256 keys shorter than the hash (32 bytes) are
/// guessable offline from one token.
pub const MIN_SECRET_BYTES: usize = 32;

/// Everything the process can be told. Field docs say the default.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `./data`; created on first start.
    pub data_dir: PathBuf,
    /// `127.0.0.1:8080`.
    pub listen: String,
    /// `sqlite://{data_dir}/gradsign.db` when unset.
    pub database_url: Option<String>,
    /// Generated into `{data_dir}/jwt-secret` on first start when unset.
    pub jwt_secret: Option<String>,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter (`info,sqlx=warn,apalis=warn`).
    pub log: String,
    /// Whether `serve` also runs the workers (true).
    pub workers: bool,
    pub workflows_dir: PathBuf,
    pub workers_dir: PathBuf,
    pub templates_dir: PathBuf,
    /// Base URL of the platform's pages, for links in mail; `http://{listen}` when unset.
    pub base_url: Option<String>,
    /// How often an idle worker polls its queue, in milliseconds (1000).
    pub worker_poll_ms: u64,
    /// Whether the workers run the timer loop (true). Not a flag: the tests that move a
    /// manual clock by hand turn it off and fire timers by sweeping.
    pub timer_loop: bool,
    /// Largest accepted upload, in bytes (10 MB).
    pub max_upload_bytes: usize,
    /// Longest a request may take, reading its body included, before `408` (60 s).
    pub request_timeout_secs: u64,
    /// Longest a client may take to send its request line and headers; the connection
    /// is closed after it (15 s). Also closes idle keep-alive connections.
    pub header_read_timeout_secs: u64,
    /// Agreement verifications one client address may ask for per minute (30).
    pub verify_per_minute: u32,
    /// Where a `worker` process serves its metrics and health (none).
    pub metrics_listen: Option<String>,
    /// SMTP server; `None`: `.eml` files under `{data_dir}/outbox`.
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    /// `starttls`, `tls` or `none`.
    pub smtp_security: String,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub mail_from: String,
    pub mail_reply_to: Option<String>,
    pub platform_admin_email: Option<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            listen: "127.0.0.1:8080".into(),
            database_url: None,
            jwt_secret: None,
            log_format: LogFormat::Pretty,
            log: "info,sqlx=warn,apalis=warn".into(),
            workers: true,
            workflows_dir: PathBuf::from("workflows"),
            workers_dir: PathBuf::from("workers"),
            templates_dir: PathBuf::from("templates"),
            base_url: None,
            worker_poll_ms: 1000,
            timer_loop: true,
            max_upload_bytes: 10 * 1024 * 1024,
            request_timeout_secs: 60,
            header_read_timeout_secs: 15,
            verify_per_minute: 30,
            metrics_listen: None,
            smtp_host: None,
            smtp_port: 587,
            smtp_security: "starttls".into(),
            smtp_username: None,
            smtp_password: None,
            mail_from: "就业签约平台 <no-reply@gradsign.local>".into(),
            mail_reply_to: None,
            platform_admin_email: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<hidden>"))
            .field("log_format", &self.log_format)
            .field("log", &self.log)
            .field("workers", &self.workers)
            .field("workflows_dir", &self.workflows_dir)
            .field("workers_dir", &self.workers_dir)
            .field("templates_dir", &self.templates_dir)
            .field("base_url", &self.base_url)
            .field("worker_poll_ms", &self.worker_poll_ms)
            .field("timer_loop", &self.timer_loop)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
            .field("verify_per_minute", &self.verify_per_minute)
            .field("metrics_listen", &self.metrics_listen)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_security", &self.smtp_security)
            .field("smtp_username", &self.smtp_username)
            .field("smtp_password", &self.smtp_password.as_ref().map(|_| "<hidden>"))
            .field("mail_from", &self.mail_from)
            .finish()
    }
}

/// Hides a password in a database URL (`postgres://u:secret@h/db` → `postgres://u:***@h/db`).
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &userinfo[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error(
        "the JWT secret ({source_name}) is {length} bytes long; it must be at least {MIN_SECRET_BYTES} \
         (generate one with `openssl rand -hex 32`)"
    )]
    WeakSecret { source_name: String, length: usize },
    #[error("cannot read or create the JWT secret {path}: {source}")]
    SecretFile { path: PathBuf, source: std::io::Error },
}

impl Config {
    /// Defaults → file (`GRADSIGN_CONFIG`, or `./gradsign.toml` when it exists) → the
    /// flags and environment variables clap read into `overrides`.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let explicit = given(&overrides.config).map(PathBuf::from);
        let file = explicit.or_else(|| {
            let default = PathBuf::from("gradsign.toml");
            default.exists().then_some(default)
        });
        let mut config = match file {
            Some(path) => Self::from_file(&path)?,
            None => Config::default(),
        };
        config.apply(overrides)?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Applies the flags and variables that were given (an empty value counts as not
    /// given), parsing each and naming its variable when it is wrong.
    pub fn apply(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        let text = |v: &Option<String>| given(v).map(str::to_string);
        if let Some(v) = text(&o.data_dir) {
            self.data_dir = v.into();
        }
        if let Some(v) = text(&o.listen) {
            self.listen = v;
        }
        if let Some(v) = text(&o.database_url) {
            self.database_url = Some(v);
        }
        if let Some(v) = text(&o.jwt_secret) {
            self.jwt_secret = Some(v);
        }
        if let Some(v) = text(&o.base_url) {
            self.base_url = Some(v);
        }
        if let Some(v) = text(&o.log_format) {
            self.log_format = match v.as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => return Err(env_error("GRADSIGN_LOG_FORMAT", "expected pretty or json")),
            };
        }
        if let Some(v) = text(&o.log) {
            tracing_subscriber::EnvFilter::try_new(&v)
                .map_err(|e| env_error("GRADSIGN_LOG", &format!("not a log filter such as info,sqlx=warn: {e}")))?;
            self.log = v;
        }
        if let Some(v) = text(&o.workers) {
            self.workers = parse_bool(&v).ok_or_else(|| env_error("GRADSIGN_WORKERS", "expected true or false"))?;
        }
        if let Some(v) = text(&o.worker_poll_ms) {
            self.worker_poll_ms = v
                .parse()
                .map_err(|_| env_error("GRADSIGN_WORKER_POLL_MS", "expected a whole number of milliseconds"))?;
        }
        if let Some(v) = text(&o.workflows_dir) {
            self.workflows_dir = v.into();
        }
        if let Some(v) = text(&o.workers_dir) {
            self.workers_dir = v.into();
        }
        if let Some(v) = text(&o.templates_dir) {
            self.templates_dir = v.into();
        }
        if let Some(v) = text(&o.max_upload_bytes) {
            self.max_upload_bytes = v
                .parse()
                .map_err(|_| env_error("GRADSIGN_MAX_UPLOAD_BYTES", "expected a whole number of bytes"))?;
        }
        if let Some(v) = text(&o.smtp_host) {
            self.smtp_host = Some(v);
        }
        if let Some(v) = text(&o.smtp_port) {
            self.smtp_port = v
                .parse()
                .map_err(|_| env_error("GRADSIGN_SMTP_PORT", "expected a port number"))?;
        }
        if let Some(v) = text(&o.smtp_security) {
            if !["starttls", "tls", "none"].contains(&v.as_str()) {
                return Err(env_error("GRADSIGN_SMTP_SECURITY", "expected starttls, tls or none"));
            }
            self.smtp_security = v;
        }
        if let Some(v) = text(&o.smtp_username) {
            self.smtp_username = Some(v);
        }
        if let Some(v) = text(&o.smtp_password) {
            self.smtp_password = Some(v);
        }
        if let Some(v) = text(&o.mail_from) {
            self.mail_from = v;
        }
        if let Some(v) = text(&o.mail_reply_to) {
            self.mail_reply_to = Some(v);
        }
        if let Some(v) = text(&o.platform_admin_email) {
            self.platform_admin_email = Some(v);
        }
        if let Some(v) = text(&o.request_timeout_secs) {
            self.request_timeout_secs = seconds("GRADSIGN_REQUEST_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = text(&o.header_read_timeout_secs) {
            self.header_read_timeout_secs = seconds("GRADSIGN_HEADER_READ_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = text(&o.metrics_listen) {
            self.metrics_listen = Some(v);
        }
        if let Some(v) = text(&o.verify_per_minute) {
            self.verify_per_minute = v
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| env_error("GRADSIGN_VERIFY_PER_MINUTE", "expected a whole number, at least 1"))?;
        }
        Ok(())
    }

    /// The database URL in force: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("gradsign.db").display()),
        }
    }

    pub fn base_url(&self) -> String {
        self.base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_string()
    }

    /// The mail settings in the mail module's terms.
    pub fn mail_config(&self) -> crate::mail::MailConfig {
        use crate::mail::{Security, SmtpConfig};
        crate::mail::MailConfig {
            smtp: self.smtp_host.as_ref().map(|host| SmtpConfig {
                host: host.clone(),
                port: self.smtp_port,
                security: match self.smtp_security.as_str() {
                    "tls" => Security::Tls,
                    "none" => Security::None,
                    _ => Security::StartTls,
                },
                username: self.smtp_username.clone(),
                password: self.smtp_password.clone(),
            }),
            from: self.mail_from.clone(),
            reply_to: self.mail_reply_to.clone(),
            outbox_dir: self.data_dir.join("outbox"),
        }
    }

    pub fn worker_poll(&self) -> Duration {
        Duration::from_millis(self.worker_poll_ms.max(10))
    }

    /// The HS256 secret: configured, or read from (and on first start generated into,
    /// mode `0600`) `{data_dir}/jwt-secret`. One shorter than [`MIN_SECRET_BYTES`] is
    /// refused, wherever it came from.
    pub fn jwt_secret(&self) -> Result<String, ConfigError> {
        if let Some(secret) = &self.jwt_secret {
            return strong("GRADSIGN_JWT_SECRET / jwt_secret", secret.clone());
        }
        let path = self.data_dir.join("jwt-secret");
        let file_error = |source| ConfigError::SecretFile {
            path: path.clone(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(secret) if !secret.trim().is_empty() => strong(&path.display().to_string(), secret.trim().to_string()),
            _ => {
                crate::private_files::create_dir(&self.data_dir).map_err(file_error)?;
                let secret = hex::encode(rand::random::<[u8; 32]>());
                crate::private_files::write(&path, secret.as_bytes()).map_err(file_error)?;
                Ok(secret)
            }
        }
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }
}

/// A flag or variable that was given a non-empty value.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|v| !v.is_empty())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn strong(source_name: &str, secret: String) -> Result<String, ConfigError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(ConfigError::WeakSecret {
            source_name: source_name.to_string(),
            length: secret.len(),
        });
    }
    Ok(secret)
}

fn seconds(name: &'static str, v: &str) -> Result<u64, ConfigError> {
    v.parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| env_error(name, "expected a whole number of seconds, at least 1"))
}

fn env_error(name: &'static str, message: &str) -> ConfigError {
    ConfigError::Env {
        name,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_the_defaults() {
        let mut config = Config::default();
        config
            .apply(&Overrides {
                listen: Some("0.0.0.0:9000".into()),
                database_url: Some("postgres://u:pw@localhost/db".into()),
                workers: Some("false".into()),
                data_dir: Some(String::new()),
                ..Overrides::default()
            })
            .unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert!(!config.workers);
        assert_eq!(
            config.data_dir,
            PathBuf::from("data"),
            "an empty value counts as not given"
        );
        assert!(
            !format!("{config:?}").contains("pw"),
            "the password must not be printed"
        );
    }

    #[test]
    fn a_short_secret_is_refused_and_not_repeated() {
        let config = Config {
            jwt_secret: Some("x".into()),
            ..Config::default()
        };
        let err = config.jwt_secret().unwrap_err().to_string();
        assert!(err.contains("at least 32"), "{err}");
        assert!(!err.contains("\"x\""), "{err}");
        let ok = Config {
            jwt_secret: Some("k".repeat(32)),
            ..Config::default()
        };
        assert_eq!(ok.jwt_secret().unwrap().len(), 32);
    }

    #[test]
    fn a_bad_boolean_is_refused_with_the_variable_named() {
        let err = Config::default()
            .apply(&Overrides {
                workers: Some("maybe".into()),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("GRADSIGN_WORKERS"));
    }
}
