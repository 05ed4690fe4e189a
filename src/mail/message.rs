//! Building the MIME message: headers (From, Reply-To, To, Subject, Message-ID, Date) and the
//! multipart/alternative body. Pure: no I/O, so tests can inspect what would be sent.

use lettre::Message;
use lettre::message::{Mailbox, MultiPart};

use super::{MailError, RenderedMail};

/// The longest message id accepted, after escaping: it becomes a file name in the outbox,
/// and file systems stop at 255 bytes.
const MAX_ID_TOKEN: usize = 200;

/// Headers that do not change from one mail to the next, parsed once from `MailConfig`.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
}

impl Sender {
    /// Builds the message. `message_id` is the engine's key for this logical send: the same key
    /// gives the same `Message-ID` so a resent mail can be recognised as a duplicate.
    pub fn build(&self, to: &[(String, String)], mail: &RenderedMail, message_id: &str) -> Result<Message, MailError> {
        if to.is_empty() {
            return Err(MailError::NoRecipients);
        }
        let token = id_token(message_id)?;
        let domain = self.from.email.domain().to_owned();
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{token}@{domain}>")))
            .date_now();
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        for (name, address) in to {
            builder = builder.to(mailbox(name, address)?);
        }
        let body = MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone());
        Ok(builder.multipart(body)?)
    }
}

/// A mailbox from a display name (may be empty) and an address. Lettre encodes a non-ASCII
/// name per RFC 2047 when it writes the header.
pub(crate) fn mailbox(name: &str, address: &str) -> Result<Mailbox, MailError> {
    let email = address
        .trim()
        .parse()
        .map_err(|e: lettre::address::AddressError| MailError::Address {
            address: address.to_owned(),
            detail: e.to_string(),
        })?;
    let name = name.trim();
    Ok(Mailbox::new((!name.is_empty()).then(|| name.to_owned()), email))
}

/// Turns the engine's key into text that is both a valid Message-ID left part (RFC 5322
/// `dot-atom-text`) and a safe file name: ASCII letters, digits, `-` and `_` stay; every other
/// byte becomes `=XX`. The mapping is one-to-one, so two keys never share a file or an id.
pub fn id_token(message_id: &str) -> Result<String, MailError> {
    let bad = |reason| MailError::MessageId {
        message_id: message_id.to_owned(),
        reason,
    };
    if message_id.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut token = String::with_capacity(message_id.len());
    for byte in message_id.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            token.push(byte as char);
        } else {
            token.push_str(&format!("={byte:02X}"));
        }
    }
    if token.len() > MAX_ID_TOKEN {
        return Err(bad("it is too long"));
    }
    Ok(token)
}
