//! `Mailer`: hands a rendered mail to SMTP, or, with no SMTP configured, writes it as an `.eml`
//! file into the outbox directory so a developer can open what would have been sent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::message::{Sender, id_token, mailbox};
use super::{MailError, RenderedMail};

/// How long one SMTP exchange may take before it counts as a (transient) failure.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Mail settings, part of the application configuration.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `None`: write `.eml` files to `outbox_dir` instead of sending (development, tests).
    pub smtp: Option<SmtpConfig>,
    /// `From`, either `addr@host` or `Name <addr@host>`; its domain is also the right-hand side
    /// of every `Message-ID`.
    pub from: String,
    pub reply_to: Option<String>,
    pub outbox_dir: PathBuf,
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Written by hand so that the password never reaches a log line.
impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain text: only for a relay on the same host or a test sink.
    None,
    /// Connect in plain text, then upgrade with STARTTLS (refused if the server cannot); port 587.
    StartTls,
    /// TLS from the first byte ("implicit TLS", SMTPS); port 465.
    Tls,
}

/// Sends mails. Cheap to share behind an `Arc`; the SMTP transport keeps a connection pool.
pub struct Mailer {
    sender: Sender,
    transport: Transport,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

impl Mailer {
    /// Checks the addresses and builds the transport. Does not connect: a mail server that is
    /// down at start-up only delays the mails, it does not stop the process.
    pub fn new(cfg: &MailConfig) -> Result<Mailer, MailError> {
        let sender = Sender {
            from: parse_mailbox("from", &cfg.from)?,
            reply_to: cfg
                .reply_to
                .as_deref()
                .map(|r| parse_mailbox("reply_to", r))
                .transpose()?,
        };
        let transport = match &cfg.smtp {
            Some(smtp) => Transport::Smtp(smtp_transport(smtp)?),
            None => {
                crate::private_files::create_dir(&cfg.outbox_dir).map_err(|source| MailError::Outbox {
                    path: cfg.outbox_dir.clone(),
                    source,
                })?;
                Transport::Outbox(cfg.outbox_dir.clone())
            }
        };
        Ok(Mailer { sender, transport })
    }

    /// Sends one message to all of `to` (display name, address). `message_id` is the engine's
    /// key for this logical send; resending with the same key yields the same `Message-ID` (and
    /// overwrites the same outbox file).
    /// The sender's display name (the deployment's platform name, from `GRADSIGN_MAIL_FROM`),
    /// or its address when the setting gives none; every mail's footer names it.
    pub fn sender_name(&self) -> String {
        let from = &self.sender.from;
        from.name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| from.email.to_string())
    }

    pub async fn send(&self, to: &[(String, String)], mail: &RenderedMail, message_id: &str) -> Result<(), MailError> {
        let message = self.sender.build(to, mail, message_id)?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(MailError::from),
            Transport::Outbox(dir) => write_eml(dir, &id_token(message_id)?, &message).await,
        }
    }

    /// Builds the message without sending it, for previews and tests.
    pub fn build_message(
        &self,
        to: &[(String, String)],
        mail: &RenderedMail,
        message_id: &str,
    ) -> Result<Message, MailError> {
        self.sender.build(to, mail, message_id)
    }

    /// Where `send` writes a mail when no SMTP server is configured: `{outbox_dir}/{id}.eml`.
    pub fn outbox_path(&self, message_id: &str) -> Option<PathBuf> {
        match &self.transport {
            Transport::Outbox(dir) => id_token(message_id).ok().map(|t| dir.join(format!("{t}.eml"))),
            Transport::Smtp(_) => None,
        }
    }
}

fn parse_mailbox(field: &str, value: &str) -> Result<lettre::message::Mailbox, MailError> {
    value
        .parse::<lettre::message::Mailbox>()
        .or_else(|_| mailbox("", value))
        .map_err(|e| MailError::Config(format!("{field}: {e}")))
}

fn smtp_transport(cfg: &SmtpConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailError> {
    let tls_parameters =
        || TlsParameters::new(cfg.host.clone()).map_err(|e| MailError::Config(format!("smtp tls: {e}")));
    let tls = match cfg.security {
        Security::None => Tls::None,
        Security::StartTls => Tls::Required(tls_parameters()?),
        Security::Tls => Tls::Wrapper(tls_parameters()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(SMTP_TIMEOUT))
        .pool_config(PoolConfig::new());
    if let Some(username) = &cfg.username {
        let password = cfg.password.clone().unwrap_or_default();
        builder = builder.credentials(Credentials::new(username.clone(), password));
    }
    Ok(builder.build())
}

/// Writes the message next to its final name and renames it, so a reader of the outbox never
/// sees half a file. The file is `0600`: mail holds people's names and addresses.
async fn write_eml(dir: &Path, token: &str, message: &Message) -> Result<(), MailError> {
    let path = dir.join(format!("{token}.eml"));
    let partial = dir.join(format!("{token}.eml.partial"));
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| MailError::Outbox { path, source }
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::private_files::FILE_MODE)
        .open(&partial)
        .await
        .map_err(io_error(&partial))?;
    tokio::io::AsyncWriteExt::write_all(&mut file, &message.formatted())
        .await
        .map_err(io_error(&partial))?;
    drop(file);
    tokio::fs::rename(&partial, &path).await.map_err(io_error(&path))
}
