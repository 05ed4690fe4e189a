//! The one configuration, loaded once: built-in defaults, then an optional TOML file,
//! then `GRADSIGN_*` environment variables (and `DATABASE_URL`). Nothing else in the
//! crate reads the environment. Secrets are never printed: `Debug` hides them.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

/// Environment variables read by [`Config::load`], with what each sets. `gradsign serve
/// --help` prints this list.
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "GRADSIGN_CONFIG",
        "path of an optional TOML config file (default: ./gradsign.toml if present)",
    ),
    (
        "GRADSIGN_DATA_DIR",
        "data folder: SQLite file, documents, outbox, generated secret (default ./data)",
    ),
    ("GRADSIGN_LISTEN", "HTTP listen address (default 127.0.0.1:8080)"),
    (
        "DATABASE_URL",
        "sqlite://… or postgres://… (default: sqlite file in the data folder)",
    ),
    (
        "GRADSIGN_JWT_SECRET",
        "HS256 secret for bearer tokens (default: generated into the data folder)",
    ),
    ("GRADSIGN_LOG_FORMAT", "pretty (default) or json"),
    (
        "GRADSIGN_WORKERS",
        "run the job workers inside `serve`: true (default) or false",
    ),
    ("GRADSIGN_WORKFLOWS_DIR", "workflow definitions (default ./workflows)"),
    (
        "GRADSIGN_WORKERS_DIR",
        "worker and cron configuration (default ./workers)",
    ),
    (
        "GRADSIGN_TEMPLATES_DIR",
        "e-mail and agreement templates (default ./templates)",
    ),
    (
        "GRADSIGN_BASE_URL",
        "public URL of the platform, for links in mail (default http://LISTEN)",
    ),
    (
        "GRADSIGN_WORKER_POLL_MS",
        "how often an idle worker looks for due jobs, in ms (default 1000)",
    ),
    (
        "GRADSIGN_REQUEST_TIMEOUT_SECS",
        "longest time a request may take, body included, before 408 (default 60)",
    ),
    (
        "GRADSIGN_HEADER_READ_TIMEOUT_SECS",
        "longest time a client may take to send its request headers (default 15)",
    ),
];

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
    /// Whether `serve` also runs the workers (true).
    pub workers: bool,
    pub workflows_dir: PathBuf,
    pub workers_dir: PathBuf,
    pub templates_dir: PathBuf,
    /// Base URL of the platform's pages, for links in mail; `http://{listen}` when unset.
    pub base_url: Option<String>,
    /// How often an idle worker polls its queue, in milliseconds (1000).
    pub worker_poll_ms: u64,
    /// Largest accepted upload, in bytes (10 MB).
    pub max_upload_bytes: usize,
    /// Longest a request may take, reading its body included, before `408` (60 s).
    pub request_timeout_secs: u64,
    /// Longest a client may take to send its request line and headers; the connection
    /// is closed after it (15 s). Also closes idle keep-alive connections.
    pub header_read_timeout_secs: u64,
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
            workers: true,
            workflows_dir: PathBuf::from("workflows"),
            workers_dir: PathBuf::from("workers"),
            templates_dir: PathBuf::from("templates"),
            base_url: None,
            worker_poll_ms: 1000,
            max_upload_bytes: 10 * 1024 * 1024,
            request_timeout_secs: 60,
            header_read_timeout_secs: 15,
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
            .field("workers", &self.workers)
            .field("workflows_dir", &self.workflows_dir)
            .field("workers_dir", &self.workers_dir)
            .field("templates_dir", &self.templates_dir)
            .field("base_url", &self.base_url)
            .field("worker_poll_ms", &self.worker_poll_ms)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .field("header_read_timeout_secs", &self.header_read_timeout_secs)
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
    /// Defaults → file (`GRADSIGN_CONFIG`, or `./gradsign.toml` when it exists) → environment.
    pub fn load() -> Result<Config, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let explicit = env("GRADSIGN_CONFIG").map(PathBuf::from);
        let file = explicit.clone().or_else(|| {
            let default = PathBuf::from("gradsign.toml");
            default.exists().then_some(default)
        });
        let mut config = match file {
            Some(path) => Self::from_file(&path)?,
            None => Config::default(),
        };
        config.apply_env(env)?;
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

    /// Applies `GRADSIGN_*` variables read through `get` (a function, so tests need not
    /// touch the process environment).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("GRADSIGN_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("GRADSIGN_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("GRADSIGN_JWT_SECRET") {
            self.jwt_secret = Some(v);
        }
        if let Some(v) = get("GRADSIGN_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => return Err(env_error("GRADSIGN_LOG_FORMAT", "expected pretty or json")),
            };
        }
        if let Some(v) = get("GRADSIGN_WORKERS") {
            self.workers = parse_bool(&v).ok_or_else(|| env_error("GRADSIGN_WORKERS", "expected true or false"))?;
        }
        if let Some(v) = get("GRADSIGN_WORKFLOWS_DIR") {
            self.workflows_dir = v.into();
        }
        if let Some(v) = get("GRADSIGN_WORKERS_DIR") {
            self.workers_dir = v.into();
        }
        if let Some(v) = get("GRADSIGN_TEMPLATES_DIR") {
            self.templates_dir = v.into();
        }
        if let Some(v) = get("GRADSIGN_BASE_URL") {
            self.base_url = Some(v);
        }
        if let Some(v) = get("GRADSIGN_WORKER_POLL_MS") {
            self.worker_poll_ms = v
                .parse()
                .map_err(|_| env_error("GRADSIGN_WORKER_POLL_MS", "expected a whole number of milliseconds"))?;
        }
        if let Some(v) = get("GRADSIGN_SMTP_HOST") {
            self.smtp_host = Some(v);
        }
        if let Some(v) = get("GRADSIGN_SMTP_PORT") {
            self.smtp_port = v
                .parse()
                .map_err(|_| env_error("GRADSIGN_SMTP_PORT", "expected a port number"))?;
        }
        if let Some(v) = get("GRADSIGN_SMTP_SECURITY") {
            if !["starttls", "tls", "none"].contains(&v.as_str()) {
                return Err(env_error("GRADSIGN_SMTP_SECURITY", "expected starttls, tls or none"));
            }
            self.smtp_security = v;
        }
        if let Some(v) = get("GRADSIGN_SMTP_USERNAME") {
            self.smtp_username = Some(v);
        }
        if let Some(v) = get("GRADSIGN_SMTP_PASSWORD") {
            self.smtp_password = Some(v);
        }
        if let Some(v) = get("GRADSIGN_MAIL_FROM") {
            self.mail_from = v;
        }
        if let Some(v) = get("GRADSIGN_MAIL_REPLY_TO") {
            self.mail_reply_to = Some(v);
        }
        if let Some(v) = get("GRADSIGN_PLATFORM_ADMIN_EMAIL") {
            self.platform_admin_email = Some(v);
        }
        if let Some(v) = get("GRADSIGN_MAX_UPLOAD_BYTES") {
            self.max_upload_bytes = v
                .parse()
                .map_err(|_| env_error("GRADSIGN_MAX_UPLOAD_BYTES", "expected a whole number of bytes"))?;
        }
        if let Some(v) = get("GRADSIGN_REQUEST_TIMEOUT_SECS") {
            self.request_timeout_secs = seconds("GRADSIGN_REQUEST_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = get("GRADSIGN_HEADER_READ_TIMEOUT_SECS") {
            self.header_read_timeout_secs = seconds("GRADSIGN_HEADER_READ_TIMEOUT_SECS", &v)?;
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
            .apply_env(|name| match name {
                "GRADSIGN_LISTEN" => Some("0.0.0.0:9000".into()),
                "DATABASE_URL" => Some("postgres://u:pw@localhost/db".into()),
                "GRADSIGN_WORKERS" => Some("false".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.listen, "0.0.0.0:9000");
        assert!(!config.workers);
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
            .apply_env(|name| (name == "GRADSIGN_WORKERS").then(|| "maybe".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("GRADSIGN_WORKERS"));
    }
}
