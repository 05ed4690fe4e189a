//! Outgoing e-mail: templates (`Templates`), message building and sending (`Mailer`), and the
//! error split between retry and give-up (`MailError::is_transient`). Knows nothing of cases,
//! workflows or the database: callers pass a JSON context, recipients and a message key.
//!
//! # Layout
//! - `templates`: loads `templates/email/NAME.{subject,html,txt}.tera`, renders a `RenderedMail`.
//! - `message`: builds the MIME message (headers, multipart/alternative), no I/O.
//! - `mailer`: `MailConfig`, SMTP through lettre's pooled async transport, or `.eml` files.
//! - `test_support` (feature `test-support`): a loopback SMTP sink for tests.

mod error;
mod mailer;
mod message;
mod templates;

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

pub use error::MailError;
pub use mailer::{MailConfig, Mailer, Security, SmtpConfig};
pub use message::id_token;
pub use templates::{RenderedMail, Templates};
