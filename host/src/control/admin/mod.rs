//! The admin API (a separate, token-protected listener for deploys, rollbacks, reloads, status and metrics) and the small client the CLI uses to call it.
//!
//! Admin traffic is rare and comes from operators' scripts, so the listener is
//! deliberately simple: blocking, one thread per connection (at most
//! `MAX_CONNECTIONS`), one request per connection, every read and write under
//! `IO_TIMEOUT`. It reuses the server's head parser and response writer. It
//! is started only when a token is configured, and guests can never reach it:
//! it is its own socket, and guests have no sockets at all.
//!
//! Every request, whatever its path, must carry `Authorization: Bearer TOKEN`;
//! the token is compared in constant time (as SHA-256 digests), and a request
//! without the right one gets a bare 401 before anything else is looked at.

use std::io::{Read, Write};

use status::AdminError;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod status;

use crate::control::deploy::{Controller, MAX_MODULE_BYTES, SwapError};
use crate::http::parse::{Framing, HeadParse, RequestHead, parse_head};
use crate::http::{Method, Response};

/// The default admin address: loopback only, next to the default 8080.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

/// Connections served at once: operators' scripts, not traffic; more are
/// refused so a flood cannot spawn unbounded threads.
const MAX_CONNECTIONS: usize = 8;

/// Longest wait for any single read or write: a local script never stalls
/// this long, and a stalled peer must not hold a thread.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the CLI waits for an answer: a deploy compiles the module first.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest response the CLI reads: status documents are small.
const MAX_CLIENT_RESPONSE: u64 = 16 * 1024 * 1024;

/// Settings of the admin listener.
#[derive(Clone)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token: String,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// A running admin listener; dropping it stops accepting.
pub struct AdminHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds the admin listener and starts accepting.
pub fn start(config: &AdminConfig, controller: Arc<Controller>) -> anyhow::Result<AdminHandle> {
    anyhow::ensure!(!config.token.is_empty(), "the admin token is empty");
    let listener = TcpListener::bind(config.listen)
        .with_context(|| format!("cannot listen for the admin API on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let token: [u8; 32] = Sha256::digest(config.token.as_bytes()).into();
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("admin".into())
            .spawn(move || accept_loop(listener, stop, token, controller))?
    };
    Ok(AdminHandle {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    token: [u8; 32],
    controller: Arc<Controller>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: closes the connection
        }
        let active = active.clone();
        let controller = controller.clone();
        let spawned = std::thread::Builder::new()
            .name("admin-conn".into())
            .spawn(move || {
                serve_connection(stream, &token, &controller);
                active.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            tracing::warn!("admin: cannot start a connection thread: {e}");
        }
    }
}

fn serve_connection(mut stream: TcpStream, token: &[u8; 32], controller: &Controller) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let resp = match read_request(&mut stream, token) {
        Ok((head, body)) => route(&head, body, controller),
        Err(error) => error.response(),
    };
    let mut out = Vec::new();
    resp.write_head(false, &httpdate::fmt_http_date(SystemTime::now()), &mut out);
    if let crate::http::Body::Bytes(b) = &resp.body {
        out.extend_from_slice(b);
    }
    let _ = stream.write_all(&out);
    let _ = stream.flush();
    // Drain what the client still sends (a refused body) before closing, so
    // that the close does not reset the connection and lose the answer.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(crate::limits::LINGER_TIME));
    let _ = std::io::copy(
        &mut (&mut stream).take(crate::limits::LINGER_BYTES as u64),
        &mut std::io::sink(),
    );
}

/// Reads one request: the head, the token check, then the body.
fn read_request(
    stream: &mut TcpStream,
    token: &[u8; 32],
) -> Result<(RequestHead, Vec<u8>), AdminError> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let (head, len) = loop {
        match parse_head(&buf) {
            Ok(HeadParse::Complete { head, len }) => break (head, len),
            Ok(HeadParse::Partial) => {}
            Err(e) => return Err(AdminError::BadRequest(e.to_string())),
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(AdminError::BadRequest("incomplete request".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let authorization = head
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str());
    if !token_matches(token, authorization) {
        return Err(AdminError::Unauthorized);
    }
    let want = match head.framing {
        Framing::None => 0,
        Framing::Length(n) if n > MAX_MODULE_BYTES => {
            return Err(AdminError::TooLarge(format!(
                "body of {n} bytes exceeds the limit of {MAX_MODULE_BYTES} bytes"
            )));
        }
        Framing::Length(n) => n as usize,
        Framing::Chunked => return Err(AdminError::LengthRequired),
    };
    if head.expect_continue && want > 0 {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut body = buf.split_off(len.min(buf.len()));
    body.truncate(want);
    while body.len() < want {
        let n = (want - body.len()).min(chunk.len());
        match stream.read(&mut chunk[..n]) {
            Ok(0) | Err(_) => return Err(AdminError::BadRequest("incomplete body".into())),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Ok((head, body))
}

/// Whether the `Authorization` header carries the token, compared in
/// constant time as SHA-256 digests (so neither content nor length leaks).
fn token_matches(expected: &[u8; 32], authorization: Option<&str>) -> bool {
    let given = authorization
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, t)| t.trim());
    let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
    let mut diff = 0u8;
    for (a, b) in expected.iter().zip(digest.iter()) {
        diff |= a ^ b;
    }
    std::hint::black_box(diff) == 0 && !given.is_empty()
}

fn route(head: &RequestHead, body: Vec<u8>, controller: &Controller) -> Response {
    let segments: Vec<&str> = head.path.trim_matches('/').split('/').collect();
    match (head.method, segments.as_slice()) {
        (Method::Get, ["healthz"]) => status::ok(&json!({ "status": "ok" })),
        (Method::Get, ["readyz"]) => match controller.ready() {
            Ok(()) => status::ok(&json!({ "ready": true })),
            Err(reason) => AdminError::NotReady(reason).response(),
        },
        (Method::Get, ["metrics"]) => status::text(
            "text/plain; version=0.0.4; charset=utf-8",
            controller.dispatcher().metrics().render().into_bytes(),
        ),
        (Method::Get, ["apps"]) => status::ok(&controller.status()),
        (Method::Get, ["apps", app]) => {
            let status = controller.status();
            let found = status["apps"]
                .as_array()
                .and_then(|apps| apps.iter().find(|a| a["name"] == *app).cloned());
            match found {
                Some(app) => status::ok(&app),
                None => AdminError::NotFound(format!("no app named \"{app}\"")).response(),
            }
        }
        (Method::Put | Method::Post, ["apps", app, "module"]) => {
            answer(controller.deploy(app, body))
        }
        (Method::Post, ["apps", app, "rollback"]) => answer(controller.rollback(app)),
        (Method::Post, ["reload"]) => answer(controller.reload()),
        (_, ["healthz" | "readyz" | "metrics" | "apps" | "reload"])
        | (_, ["apps", _])
        | (_, ["apps", _, "module" | "rollback"]) => AdminError::MethodNotAllowed.response(),
        _ => AdminError::NotFound("no such endpoint".into()).response(),
    }
}

fn answer(result: Result<Value, SwapError>) -> Response {
    match result {
        Ok(v) => status::ok(&v),
        Err(e) => AdminError::from(e).response(),
    }
}

/// What the admin API answered: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The `error` field of a JSON error body, or the body itself.
    pub fn reason(&self) -> String {
        serde_json::from_str::<Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| self.body.trim().to_owned())
    }
}

/// Makes one request to the admin API at `base` (`http://HOST:PORT`).
pub fn call(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<Answer> {
    let authority = base
        .strip_prefix("http://")
        .with_context(|| format!("admin URL {base} must start with http://"))?
        .trim_end_matches('/');
    anyhow::ensure!(
        !authority.is_empty() && !authority.contains('/'),
        "admin URL {base} must be http://HOST:PORT"
    );
    let mut stream = TcpStream::connect(authority)
        .with_context(|| format!("cannot reach the admin API at {base}"))?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(MAX_CLIENT_RESPONSE)
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the answer from {base}"))?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(&raw) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => anyhow::bail!("malformed answer from {base}"),
    };
    Ok(Answer {
        status: resp.code.unwrap_or(0),
        body: String::from_utf8_lossy(&raw[len..]).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked() {
        let expected: [u8; 32] = Sha256::digest(b"s3cret").into();
        assert!(token_matches(&expected, Some("Bearer s3cret")));
        assert!(token_matches(&expected, Some("bearer s3cret")));
        assert!(!token_matches(&expected, Some("Bearer s3cre")));
        assert!(!token_matches(&expected, Some("Basic s3cret")));
        assert!(!token_matches(&expected, Some("s3cret")));
        assert!(!token_matches(&expected, None));
        let empty: [u8; 32] = Sha256::digest(b"").into();
        assert!(!token_matches(&empty, Some("Bearer ")));
    }
}
