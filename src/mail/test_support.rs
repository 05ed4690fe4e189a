//! A loopback SMTP sink for tests: a tiny SMTP server on 127.0.0.1 (port chosen by the system)
//! that records every message it accepts and lets a test wait for "N messages" without sleeping.
//! Speaks EHLO/HELO, MAIL FROM, RCPT TO, DATA (with dot-unstuffing), RSET, NOOP and QUIT; no
//! authentication, no TLS. Compiled for this crate's tests and under the `test-support` feature.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::{Security, SmtpConfig};

/// One message as the sink received it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The envelope sender, without angle brackets.
    pub mail_from: String,
    /// The envelope recipients, without angle brackets, in RCPT order.
    pub rcpt_to: Vec<String>,
    /// The message as sent after DATA, dot-unstuffed, CRLF line ends, without the final `.` line.
    pub data: Vec<u8>,
}

/// `wait_for` gave up: fewer messages than wanted arrived before the deadline.
#[derive(Debug, thiserror::Error)]
#[error("smtp sink: waited {within:?} for {wanted} messages, got {got}")]
pub struct WaitTimeout {
    pub wanted: usize,
    pub got: usize,
    pub within: Duration,
}

/// The running sink. Dropping it stops the server and closes its connections.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    received: Mutex<Vec<ReceivedMail>>,
    /// Number of messages received so far; waiters watch it.
    count: watch::Sender<usize>,
    /// Replies to give to the next DATA commands instead of `250`, oldest first.
    failures: Mutex<VecDeque<u16>>,
    /// How many of the next messages get no answer at all after DATA (a cut exchange).
    stalls: Mutex<usize>,
    /// The messages left unanswered; waiters watch their number.
    stalled: Mutex<Vec<ReceivedMail>>,
    stalled_count: watch::Sender<usize>,
}

impl SmtpSink {
    /// Binds 127.0.0.1:0 and starts serving.
    pub async fn start() -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            failures: Mutex::new(VecDeque::new()),
            stalls: Mutex::new(0),
            stalled: Mutex::new(Vec::new()),
            stalled_count: watch::Sender::new(0),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(SmtpSink { addr, shared, server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An `SmtpConfig` pointing at this sink (plain text, no credentials).
    pub fn smtp_config(&self) -> SmtpConfig {
        SmtpConfig {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            security: Security::None,
            username: None,
            password: None,
        }
    }

    /// Answers the next `n` messages with `code` (e.g. 451 transient, 550 permanent) at the end
    /// of DATA instead of accepting them. Failed messages are not recorded.
    pub fn fail_next_data(&self, n: usize, code: u16) {
        self.shared
            .failures
            .lock()
            .unwrap()
            .extend(std::iter::repeat_n(code, n));
    }

    /// Leaves the next `n` messages unanswered after their DATA, as a server that hangs
    /// (or a network cut) would; the sender never learns whether they arrived. They are
    /// kept apart from the accepted ones ([`SmtpSink::stalled`]).
    pub fn stall_next_data(&self, n: usize) {
        *self.shared.stalls.lock().unwrap() += n;
    }

    /// The messages left unanswered so far.
    pub fn stalled(&self) -> Vec<ReceivedMail> {
        self.shared.stalled.lock().unwrap().clone()
    }

    /// Waits until `n` messages have been left unanswered; gives up after `within`.
    pub async fn wait_for_stalled(&self, n: usize, within: Duration) -> Result<Vec<ReceivedMail>, WaitTimeout> {
        let mut count = self.shared.stalled_count.subscribe();
        match tokio::time::timeout(within, count.wait_for(|c| *c >= n)).await {
            Ok(Ok(_)) => Ok(self.stalled()),
            _ => Err(WaitTimeout {
                wanted: n,
                got: *self.shared.stalled_count.borrow(),
                within,
            }),
        }
    }

    /// All messages accepted so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        *self.shared.count.borrow()
    }

    /// Waits until at least `n` messages have arrived, then returns all of them; gives up after
    /// `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Result<Vec<ReceivedMail>, WaitTimeout> {
        let mut count = self.shared.count.subscribe();
        match tokio::time::timeout(within, count.wait_for(|c| *c >= n)).await {
            Ok(Ok(_)) => Ok(self.received()),
            _ => Err(WaitTimeout {
                wanted: n,
                got: self.count(),
                within,
            }),
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Aborting the server drops its JoinSet, which aborts every open connection.
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { connections.spawn(session(stream, Arc::clone(&shared))); }
                Err(_) => continue,
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

/// The envelope being collected between MAIL FROM and the end of DATA.
#[derive(Default)]
struct Envelope {
    mail_from: Option<String>,
    rcpt_to: Vec<String>,
}

/// One SMTP conversation. I/O errors end it quietly: the client went away.
async fn session(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    // Replies go out at once instead of waiting on Nagle's algorithm for an ACK.
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut envelope = Envelope::default();
    write.write_all(b"220 gradsign-sink ESMTP ready\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let reply: std::borrow::Cow<'static, str> = match verb.as_str() {
            "EHLO" => "250-gradsign-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 OK\r\n".into(),
            "HELO" => "250 gradsign-sink\r\n".into(),
            "MAIL" => match path_argument(&command, "FROM:") {
                Some(from) => {
                    envelope = Envelope {
                        mail_from: Some(from),
                        rcpt_to: Vec::new(),
                    };
                    "250 OK\r\n".into()
                }
                None => "501 syntax: MAIL FROM:<address>\r\n".into(),
            },
            "RCPT" => match (&envelope.mail_from, path_argument(&command, "TO:")) {
                (None, _) => "503 MAIL first\r\n".into(),
                (Some(_), Some(to)) => {
                    envelope.rcpt_to.push(to);
                    "250 OK\r\n".into()
                }
                (Some(_), None) => "501 syntax: RCPT TO:<address>\r\n".into(),
            },
            "DATA" if envelope.rcpt_to.is_empty() => "503 RCPT first\r\n".into(),
            "DATA" => {
                write.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n").await?;
                let data = read_data(&mut lines).await?;
                let envelope = std::mem::take(&mut envelope);
                if take_stall(&shared) {
                    let count = {
                        let mut stalled = shared.stalled.lock().unwrap();
                        stalled.push(ReceivedMail {
                            mail_from: envelope.mail_from.unwrap_or_default(),
                            rcpt_to: envelope.rcpt_to,
                            data,
                        });
                        stalled.len()
                    };
                    shared.stalled_count.send_replace(count);
                    // No answer, ever: wait for the client to go away.
                    let mut rest = Vec::new();
                    while lines.read_until(b'\n', &mut rest).await? > 0 {
                        rest.clear();
                    }
                    return Ok(());
                }
                accept_data(&shared, envelope, data).into()
            }
            "RSET" => {
                envelope = Envelope::default();
                "250 OK\r\n".into()
            }
            "NOOP" => "250 OK\r\n".into(),
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => "502 command not implemented\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
}

/// `MAIL FROM:<a@b> BODY=8BITMIME` → `a@b` (keyword matched case-insensitively).
fn path_argument(command: &str, keyword: &str) -> Option<String> {
    let (_, rest) = command.split_once(' ')?;
    let rest = rest.trim_start();
    if !rest.get(..keyword.len())?.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let path = rest.strip_prefix('<')?.split_once('>')?.0;
    Some(path.to_owned())
}

/// Reads the message up to the line holding a single `.`, undoing dot-stuffing (RFC 5321 4.5.2).
async fn read_data<R: AsyncBufReadExt + Unpin>(lines: &mut R) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let unstuffed = if line.starts_with(b".") { &line[1..] } else { &line[..] };
        data.extend_from_slice(unstuffed);
    }
}

fn take_stall(shared: &Shared) -> bool {
    let mut stalls = shared.stalls.lock().unwrap();
    let stall = *stalls > 0;
    *stalls = stalls.saturating_sub(1);
    stall
}

/// Records the message, or answers with the next queued failure code.
fn accept_data(shared: &Shared, envelope: Envelope, data: Vec<u8>) -> String {
    if let Some(code) = shared.failures.lock().unwrap().pop_front() {
        return format!("{code} sink told to refuse this message\r\n");
    }
    let mail = ReceivedMail {
        mail_from: envelope.mail_from.unwrap_or_default(),
        rcpt_to: envelope.rcpt_to,
        data,
    };
    let count = {
        let mut received = shared.received.lock().unwrap();
        received.push(mail);
        received.len()
    };
    shared.count.send_replace(count);
    "250 OK queued\r\n".to_owned()
}
