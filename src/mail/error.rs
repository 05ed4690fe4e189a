//! `MailError`: everything that can go wrong loading templates, rendering or sending, split into
//! what a job worker should retry and what it should not.

use std::path::PathBuf;

/// Errors of the mail module. Messages are lower-case without a trailing period (STYLE.md).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot read mail template directory {}: {source}", dir.display())]
    TemplateDir { dir: PathBuf, source: std::io::Error },

    #[error("cannot read mail template {}: {source}", path.display())]
    TemplateFile { path: PathBuf, source: std::io::Error },

    /// A `.tera` file whose name is not `NAME.subject.tera`, `NAME.html.tera`, `NAME.txt.tera`
    /// or a partial starting with `_`: almost always a typo that would otherwise hide a part.
    #[error("mail template {} is not named NAME.subject.tera, NAME.html.tera or NAME.txt.tera", path.display())]
    UnexpectedTemplateFile { path: PathBuf },

    #[error("mail template {} does not parse: {detail}", path.display())]
    TemplateSyntax { path: PathBuf, detail: String },

    /// A mail has some of its three parts but not this one.
    #[error("mail `{mail}` has no {part} part: expected {}", expected.display())]
    MissingPart {
        mail: String,
        part: &'static str,
        expected: PathBuf,
    },

    #[error("no mail template named `{0}`")]
    UnknownMail(String),

    #[error("mail context must be a JSON object, got {0}")]
    ContextNotObject(&'static str),

    /// The context lacks a key that the template prints.
    #[error("variable `{variable}` is missing from the context of mail template {template}")]
    MissingVariable { template: String, variable: String },

    #[error("cannot render mail template {template}: {detail}")]
    Render { template: String, detail: String },

    #[error("mail configuration: {0}")]
    Config(String),

    #[error("bad e-mail address `{address}`: {detail}")]
    Address { address: String, detail: String },

    #[error("a mail needs at least one recipient")]
    NoRecipients,

    #[error("bad message id `{message_id}`: {reason}")]
    MessageId { message_id: String, reason: &'static str },

    #[error("cannot build the message: {0}")]
    Build(#[from] lettre::error::Error),

    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),

    #[error("cannot write {}: {source}", path.display())]
    Outbox { path: PathBuf, source: std::io::Error },
}

impl MailError {
    /// Whether sending the same mail again later may succeed: refused or dropped connections,
    /// timeouts and 4xx SMTP replies are; 5xx replies, bad addresses, bad templates and bad
    /// configuration are not, since retrying them only delays the report.
    pub fn is_transient(&self) -> bool {
        match self {
            MailError::Smtp(e) => smtp_is_transient(e),
            // A full or briefly unavailable disk clears up; the write is idempotent.
            MailError::Outbox { .. } => true,
            _ => false,
        }
    }

    /// The SMTP reply code, when the server answered with an error.
    pub fn smtp_code(&self) -> Option<u16> {
        match self {
            MailError::Smtp(e) => e.status().map(u16::from),
            _ => None,
        }
    }
}

fn smtp_is_transient(e: &lettre::transport::smtp::Error) -> bool {
    if e.is_permanent() {
        return false;
    }
    // TLS failures are almost always a configuration mismatch (wrong port or security mode);
    // a client error is a bug on our side. Neither heals by waiting.
    if e.is_tls() || e.is_client() {
        return false;
    }
    // 4xx replies, network/connection errors, timeouts, malformed responses from a server
    // that is going away, and a pool that was shut down are all worth another attempt.
    true
}
