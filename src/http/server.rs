//! The HTTP/1.1 server loop (hyper under axum's router): a limit on the time a client
//! may take to send its headers (which also ends idle keep-alive connections), a bound
//! on the header block, graceful shutdown with a deadline — and `problem+json` even for
//! the answers hyper writes by itself when a request cannot be parsed (a NUL or a space
//! in the request line, a header block or an address too large), which never reach
//! the router.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use axum::{Router, http::StatusCode};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tower::ServiceExt;

use super::edge::CONTENT_SECURITY_POLICY;

/// The address of the client at the other end of a request's connection (the peer: behind a
/// reverse proxy, the proxy's address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What hyper buffers of a request head before it answers `431` itself. Loose (a head
/// that arrives in one read may exceed it); `edge::MAX_HEADER_BYTES` is the exact limit.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long shutdown waits for requests in flight before it stops anyway.
const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` until `shutdown` resolves, then lets requests in
/// flight finish (up to [`DRAIN_DEADLINE`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait for some to close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Every request knows the address it came from (per-client rate limits).
        let client = ClientAddr(peer.ip());
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(client);
                request
            },
        ));
        let connection = builder.serve_connection(TokioIo::new(ProblemIo::new(stream)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_DEADLINE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN_DEADLINE:?}; stopping anyway");
    }
    Ok(())
}

/// A connection's stream that rewrites the bare error answers hyper sends on a request
/// it cannot parse (status 4xx, no body, no content type) into `problem+json`. Every
/// answer of the router carries a content type, so only hyper's own match.
///
/// Closing, it lingers: it reads and drops what the client still sends (up to
/// [`LINGER_BYTES`] or [`LINGER_TIME`]) before the socket closes. A socket closed with
/// unread input sends a reset, and a client still sending an oversized header or body
/// would see the reset instead of the `413` or `431` written just before it.
struct ProblemIo {
    /// Always `Some` until dropped.
    inner: Option<TcpStream>,
    /// A rewritten answer still to be written, and how much of it is out.
    pending: Vec<u8>,
    sent: usize,
}

/// What a closing connection reads and drops at most, and for how long.
const LINGER_BYTES: usize = 4 * 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);

impl ProblemIo {
    fn new(inner: TcpStream) -> Self {
        ProblemIo {
            inner: Some(inner),
            pending: Vec::new(),
            sent: 0,
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.inner.as_mut().expect("the stream is there until dropped"))
    }

    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let ProblemIo { inner, pending, sent } = self;
        let stream = inner.as_mut().expect("the stream is there until dropped");
        while *sent < pending.len() {
            let n = ready!(Pin::new(&mut *stream).poll_write(cx, &pending[*sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *sent += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for ProblemIo {
    fn drop(&mut self) {
        let (Some(mut stream), Ok(runtime)) = (self.inner.take(), tokio::runtime::Handle::try_current()) else {
            return;
        };
        runtime.spawn(async move {
            let _ = stream.shutdown().await;
            let mut sink = vec![0; 64 * 1024];
            let mut dropped = 0;
            let linger = async {
                while dropped < LINGER_BYTES {
                    match stream.read(&mut sink).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => dropped += n,
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER_TIME, linger).await;
        });
    }
}

impl AsyncRead for ProblemIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for ProblemIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(answer) = problem_for_bare_head(buf) {
            self.pending = answer;
            self.sent = 0;
            // What is not out yet goes out on the flush that follows.
            if let Poll::Ready(Err(e)) = self.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        self.stream().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        self.stream().poll_shutdown(cx)
    }

    /// Hyper then writes each answer's head as one buffer, which is what the rewrite reads.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// The `problem+json` answer replacing a bare head hyper wrote for a request it could
/// not parse, or `None` when `buf` is anything else.
fn problem_for_bare_head(buf: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(buf).ok()?;
    if !head.starts_with("HTTP/1.1 4") || !head.ends_with("\r\n\r\n") {
        return None;
    }
    let lower = head.to_ascii_lowercase();
    if lower.contains("\r\ncontent-type:") || !lower.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let code: u16 = head.get(9..12)?.parse().ok()?;
    let status = StatusCode::from_u16(code).ok()?;
    let (slug, en, zh) = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
            "header-fields-too-large",
            format!("the request head is larger than {MAX_HEAD_BYTES} bytes or has more than 100 headers"),
            "请求头过大或过多".to_string(),
        ),
        StatusCode::URI_TOO_LONG => (
            "uri-too-long",
            "the address is too long".to_string(),
            "请求地址过长".to_string(),
        ),
        _ => (
            "malformed-request",
            "the request cannot be parsed as HTTP/1.1 (a control character or space in the request line or a header?)"
                .to_string(),
            "请求无法解析（请求行或请求头中含有控制字符或空格？）".to_string(),
        ),
    };
    let body = serde_json::json!({
        "type": format!("urn:gradsign:{slug}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": code,
        "detail": en,
        "detail_zh": zh,
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 {code} {}\r\ncontent-type: application/problem+json\r\ncontent-length: {}\r\n\
         connection: close\r\nx-content-type-options: nosniff\r\ncontent-security-policy: {CONTENT_SECURITY_POLICY}\r\n\r\n{body}",
        status.canonical_reason().unwrap_or("Error"),
        body.len()
    );
    Some(answer.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bare_error_heads_are_rewritten() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let answer = String::from_utf8(problem_for_bare_head(bare).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "));
        assert!(answer.contains("application/problem+json"));
        assert!(answer.contains("urn:gradsign:header-fields-too-large"));
        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 0\r\n\r\n";
        assert!(problem_for_bare_head(ours).is_none());
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(problem_for_bare_head(ok).is_none());
    }
}
