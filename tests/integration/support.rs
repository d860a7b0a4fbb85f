//! Shared test harness: start a real server on 127.0.0.1:0 from a routes file in a temp dir, and speak raw HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmhost::net::{ServerConfig, ServerHandle};

/// Paths of the guest modules built by host/build.rs.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// How long a test client waits for any single read before failing: generous,
/// since CI machines are shared and noisy.
/// Serialises the tests that load both cores for seconds (compiling large
/// components) with the one whose bounds assume a quiet machine (fairness).
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// A server running for one test, with its own temp dir.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    handle: Option<ServerHandle>,
}

impl TestServer {
    /// Starts a server for `routes` (a routes.json value, paths relative to the temp dir).
    pub fn start(routes: serde_json::Value) -> TestServer {
        Self::start_with(routes, |_| {})
    }

    /// As `start`, after letting the test adjust the connection settings.
    pub fn start_with(
        routes: serde_json::Value,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, routes, tweak)
    }

    /// As `start_with`, in a temp dir the test has already filled.
    pub fn start_in(
        dir: tempfile::TempDir,
        routes: serde_json::Value,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> TestServer {
        Self::start_full(dir, routes, tweak, None)
    }

    /// As `start_in`, keeping storage and sessions in SQLite under `data`
    /// (so that they outlive the server), or in memory for `None`.
    pub fn start_full(
        dir: tempfile::TempDir,
        routes: serde_json::Value,
        tweak: impl FnOnce(&mut ServerConfig),
        data: Option<PathBuf>,
    ) -> TestServer {
        let routes_path = dir.path().join("routes.json");
        std::fs::write(&routes_path, serde_json::to_vec_pretty(&routes).unwrap()).unwrap();
        let mut server = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        server.workers = 4;
        tweak(&mut server);
        let handle = wasmhost::start(wasmhost::Options {
            routes: routes_path,
            server,
            max_body: wasmhost::limits::DEFAULT_MAX_BODY,
            data_dir: data,
            redis: None,
        })
        .unwrap_or_else(|e| panic!("server failed to start: {e:#}"));
        TestServer {
            addr: handle.local_addr(),
            dir,
            handle: Some(handle),
        }
    }

    /// A routes file serving the hello app at /hello and /hello/... .
    pub fn hello() -> TestServer {
        TestServer::start(hello_routes())
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// One request on a fresh connection.
    pub fn request(&self, raw: &str) -> Resp {
        let mut c = self.connect();
        c.send(raw.as_bytes());
        c.read_response()
    }

    /// A GET on a fresh connection.
    pub fn get(&self, path: &str) -> Resp {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ))
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().expect("clean shutdown");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.shutdown();
        }
    }
}

pub fn hello_routes() -> serde_json::Value {
    serde_json::json!({
        "apps": { "hello": { "module": guests::HELLO } },
        "routes": [
            { "path": "/hello", "app": "hello" },
            { "path": "/hello/...", "app": "hello" }
        ]
    })
}

/// A host serving `routes` (written to `dir/routes.json`) with 4 workers
/// and its admin API on 127.0.0.1:0 under `token`; returns it and the
/// admin API's base URL.
pub fn host_with_admin(
    dir: &Path,
    routes: &serde_json::Value,
    token: &str,
) -> (wasmhost::Host, String) {
    std::fs::write(
        dir.join("routes.json"),
        serde_json::to_vec(routes).expect("json"),
    )
    .expect("routes");
    let mut server = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    server.workers = 4;
    let host = wasmhost::start_host(
        wasmhost::Options {
            routes: dir.join("routes.json"),
            server,
            max_body: wasmhost::limits::DEFAULT_MAX_BODY,
            data_dir: None,
            redis: None,
        },
        wasmhost::HotSwap {
            watch: false,
            admin: Some(wasmhost::control::admin::AdminConfig {
                listen: "127.0.0.1:0".parse().expect("addr"),
                token: token.to_owned(),
            }),
            data_dir: None,
            baseline_tier: true,
        },
    )
    .unwrap_or_else(|e| panic!("host failed to start: {e:#}"));
    let admin = format!("http://{}", host.admin_addr().expect("admin listener"));
    (host, admin)
}

/// Compiles WAT text into `dir/name.wasm` and returns its path.
pub fn wat_module(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let bytes = wat::parse_str(wat).unwrap_or_else(|e| panic!("{name}: bad WAT: {e}"));
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A response as the fallible client [`try_request`] reads it.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` on a new connection (the request should say
/// `Connection: close`) and reads the answer, which must have a
/// `Content-Length`; `None` when the server is gone or answers nothing whole.
pub fn try_request(addr: SocketAddr, request: &[u8], timeout: Duration) -> Option<Answer> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.write_all(request).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = raw[end + 4..].to_vec();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())?;
    (body.len() == length).then_some(Answer {
        status,
        headers,
        body,
    })
}

/// A parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// The sizes of the chunks of a chunked body, in order.
    pub chunks: Vec<usize>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw HTTP/1.1 client over one TCP connection.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// Sends, tolerating a server that already closed (for rejection tests).
    pub fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Reads one response (framed by Content-Length; none for HEAD-less 204/304).
    pub fn read_response(&mut self) -> Resp {
        self.read_response_to(false)
    }

    /// Reads one response to a HEAD request (no body follows).
    pub fn read_head_response(&mut self) -> Resp {
        self.read_response_to(true)
    }

    fn read_response_to(&mut self, head: bool) -> Resp {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        assert!(line.starts_with("HTTP/1.1 "), "bad status line {line:?}");
        let status: u16 = line[9..12].parse().expect("status code");
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).expect("header line");
            assert!(h.ends_with("\r\n"), "header line not ended by CRLF: {h:?}");
            let h = h.trim_end_matches("\r\n");
            if h.is_empty() {
                break;
            }
            let (n, v) = h
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad header {h:?}"));
            headers.push((n.to_owned(), v.to_owned()));
        }
        let resp = Resp {
            status,
            headers,
            body: Vec::new(),
            trailers: Vec::new(),
            chunks: Vec::new(),
        };
        if status == 100 {
            // An interim response: the final one follows.
            return resp;
        }
        if !head && resp.header("transfer-encoding") == Some("chunked") {
            return self.read_chunked(resp);
        }
        let len: usize = match resp.header("content-length") {
            Some(v) => v.parse().expect("content-length"),
            None => {
                assert!(
                    status == 204 || status == 304,
                    "response {status} without Content-Length: {:?}",
                    resp.headers
                );
                0
            }
        };
        let mut body = vec![0; if head { 0 } else { len }];
        self.reader.read_exact(&mut body).expect("body");
        Resp { body, ..resp }
    }

    /// Reads a chunked body (RFC 9112 §7.1) and its trailer section.
    fn read_chunked(&mut self, mut resp: Resp) -> Resp {
        loop {
            let mut size = String::new();
            self.reader.read_line(&mut size).expect("chunk size line");
            assert!(
                size.ends_with("\r\n"),
                "chunk size line not ended by CRLF: {size:?}"
            );
            let n = usize::from_str_radix(size.trim_end(), 16)
                .unwrap_or_else(|e| panic!("bad chunk size {size:?}: {e}"));
            if n == 0 {
                break;
            }
            let start = resp.body.len();
            resp.body.resize(start + n, 0);
            self.reader
                .read_exact(&mut resp.body[start..])
                .expect("chunk data");
            let mut crlf = [0u8; 2];
            self.reader.read_exact(&mut crlf).expect("chunk end");
            assert_eq!(&crlf, b"\r\n", "chunk not ended by CRLF");
            resp.chunks.push(n);
        }
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("trailer line");
            let line = line.trim_end_matches("\r\n");
            if line.is_empty() {
                return resp;
            }
            let (n, v) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad trailer {line:?}"));
            resp.trailers.push((n.to_owned(), v.to_owned()));
        }
    }

    /// Reads until the server closes; returns everything read.
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.reader.read_to_end(&mut out);
        out
    }

    /// Whether the server has closed the connection (EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }
}

/// The real `wasmhost` binary running as a child process; killed on drop.
pub struct ChildServer {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl ChildServer {
    /// Runs `wasmhost serve --listen 127.0.0.1:0 <args>` in `dir` and waits
    /// for the address it prints.
    pub fn spawn(dir: &Path, args: &[&str]) -> ChildServer {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wasmhost"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn wasmhost");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the listen line");
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        ChildServer { child, addr }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
