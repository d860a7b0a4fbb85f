//! `wasi:http` components beside JSON-ABI modules: the Rust test components of `guest-components/` served by a live host, with routing, identity, bodies, limits and outbound HTTP.
//!
//! The components are built by `host/build.rs` for `wasm32-wasip2`. Time
//! bounds are generous and only bound the worst case.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Client, TestServer, guests};

/// Routes for one component app `c` at `/c` and `/c/...` (and the JSON-ABI
/// hello app beside it), with `settings` merged into the app.
fn component_routes(module: &str, settings: Value) -> Value {
    let mut app = json!({ "module": module });
    if let (Some(app), Some(extra)) = (app.as_object_mut(), settings.as_object()) {
        for (k, v) in extra {
            app.insert(k.clone(), v.clone());
        }
    }
    json!({
        "apps": { "c": app, "hello": { "module": guests::HELLO } },
        "routes": [
            { "path": "/c", "app": "c" },
            { "path": "/c/...", "app": "c" },
            { "path": "/item/{id}", "app": "c" },
            { "path": "/hello", "app": "hello" }
        ]
    })
}

/// A request with a body, as raw HTTP/1.1.
fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: t.example\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// The `inspect` lines of the echo component: (key, rest of the line).
fn lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn a_component_answers_beside_a_json_abi_module() {
    let server = TestServer::start(component_routes(guests::COMPONENT_HELLO, json!({})));
    let resp = server.get("/c");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), "hello from a component\n");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert!(resp.header("date").is_some(), "the host frames the answer");
    let hello = server.get("/hello");
    assert_eq!(hello.status, 200);
    assert_eq!(hello.text(), "Hello, world!");
}

#[test]
fn a_component_sees_the_request_as_sent_and_the_hosts_headers_only_from_the_host() {
    let server = TestServer::start(component_routes(guests::COMPONENT_ECHO, json!({})));
    let mut client = server.connect();
    client.send(
        b"GET /item/a%20b/inspect?x=1&y=%2F HTTP/1.1\r\nHost: t.example:8080\r\n\
          X-Custom: one\r\nwasmhost-user-id: forged\r\nWasmhost-Route: forged\r\n\
          Cookie: theme=dark; wasmhost_session=not-a-session\r\n\r\n",
    );
    let resp = client.read_response();
    // `/item/{id}` does not match `/item/a%20b/inspect`: the prefix route does not exist, so 404.
    assert_eq!(resp.status, 404);

    let mut client = server.connect();
    client.send(
        b"GET /c/deep/inspect?x=1&y=%2F HTTP/1.1\r\nHost: t.example:8080\r\n\
          X-Custom: one\r\nwasmhost-user-id: forged\r\nWasmhost-Route: forged\r\n\
          Cookie: theme=dark; wasmhost_session=not-a-session\r\n\r\n",
    );
    let resp = client.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = lines(&resp.text());
    let get = |k: &str| -> Vec<&str> {
        got.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("method"), ["GET"]);
    assert_eq!(get("path"), ["/c/deep/inspect?x=1&y=%2F"]);
    assert_eq!(get("authority"), ["t.example:8080"]);
    let headers = get("header");
    assert!(headers.contains(&"x-custom: one"), "{headers:?}");
    assert!(headers.contains(&"wasmhost-app: c"), "{headers:?}");
    assert!(headers.contains(&"wasmhost-route: /c/..."), "{headers:?}");
    assert!(
        headers.contains(&"wasmhost-rest: /deep/inspect"),
        "{headers:?}"
    );
    assert!(headers.contains(&"cookie: theme=dark"), "{headers:?}");
    for h in &headers {
        assert!(
            !h.contains("forged"),
            "a client-sent host header reached the guest: {h}"
        );
        assert!(
            !h.contains("wasmhost_session"),
            "the session cookie reached the guest: {h}"
        );
        assert!(!h.starts_with("wasmhost-user"), "no user is signed in: {h}");
    }
}

#[test]
fn route_parameters_reach_a_component_in_headers() {
    let mut routes = component_routes(guests::COMPONENT_ECHO, json!({}));
    routes["routes"] = json!([{ "path": "/item/{id}/inspect", "app": "c" }]);
    let server = TestServer::start(routes);
    let resp = server.get("/item/a%20b/inspect");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.text();
    assert!(text.contains("header wasmhost-param-id: a b\n"), "{text}");
    assert!(
        text.contains("header wasmhost-route: /item/{id}/inspect\n"),
        "{text}"
    );
}

#[test]
fn a_component_echoes_five_mebibytes_byte_for_byte() {
    let limits = json!({ "limits": { "max_body": "8MiB", "max_response": "8MiB" } });
    let server = TestServer::start(component_routes(guests::COMPONENT_ECHO, limits));
    let body: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut client = server.connect();
    client.send(&post("/c/echo", &body));
    let resp = client.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("5242880"));
    assert!(resp.body == body, "the echoed body differs");
}

#[test]
fn a_streamed_body_of_five_mebibytes_arrives_whole_and_chunked() {
    let limits = json!({ "limits": { "max_response": "8MiB" } });
    let server = TestServer::start(component_routes(guests::COMPONENT_STREAM, limits));
    let resp = server.get("/c?chunks=80&size=65536");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.header("content-length"), None);
    assert!(
        resp.chunks.len() > 1,
        "sent as it was written: {:?}",
        resp.chunks
    );
    assert_eq!(resp.body.len(), 80 * 65536);
    assert!(resp.body[..65536].iter().all(|&b| b == b'a'));
    assert!(resp.body[79 * 65536..].iter().all(|&b| b == b'a' + 79 % 26));
    // The connection serves the next requests after the stream.
    let mut client = server.connect();
    client.send(b"GET /c?chunks=2&size=3 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.read_response().text(), "aaabbb");
    client.send(b"GET /c?chunks=1&size=2 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.read_response().text(), "aa");
}

#[test]
fn a_slow_stream_reaches_the_client_while_the_component_still_writes() {
    let server = TestServer::start(component_routes(guests::COMPONENT_STREAM, json!({})));
    let mut client = server.connect();
    let started = Instant::now();
    client.send(b"GET /c?chunks=3&size=4&delay_ms=1000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut first = None;
    let mut seen = Vec::new();
    let mut stream = client.stream().try_clone().expect("clone");
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut buf = [0u8; 4096];
    while !seen.ends_with(b"0\r\n\r\n") {
        let n = stream.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed before the end: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
        if first.is_none() && seen.windows(7).any(|w| w == b"4\r\naaaa") {
            first = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let text = String::from_utf8_lossy(&seen);
    assert!(text.contains("Transfer-Encoding: chunked"), "{text}");
    assert!(
        text.ends_with("4\r\naaaa\r\n4\r\nbbbb\r\n4\r\ncccc\r\n0\r\n\r\n"),
        "{text}"
    );
    let first = first.expect("the first chunk was seen");
    // The guest slept 2 s after its first chunk: the client had it long before the end.
    assert!(
        first + Duration::from_secs(1) < total,
        "first chunk at {first:?}, end at {total:?}"
    );
}

#[test]
fn an_http_1_0_client_gets_a_streamed_body_whole_with_its_length() {
    let server = TestServer::start(component_routes(guests::COMPONENT_STREAM, json!({})));
    let mut client = server.connect();
    client.send(b"GET /c?chunks=3&size=2&delay_ms=50 HTTP/1.0\r\n\r\n");
    let resp = client.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("6"));
    assert_eq!(resp.text(), "aabbcc");
}
#[test]
fn a_body_over_max_response_never_reaches_the_client_whole() {
    let limits = json!({ "limits": { "max_response": "1MiB", "max_body": "4MiB" } });
    let mut routes = component_routes(guests::COMPONENT_STREAM, limits.clone());
    routes["apps"]["echo"] =
        json!({ "module": guests::COMPONENT_ECHO, "limits": limits["limits"] });
    routes["routes"] = json!([{ "path": "/c", "app": "c" }, { "path": "/echo", "app": "echo" }]);
    let server = TestServer::start(routes);
    // A promised length over the limit: refused before any byte is sent.
    let mut client = server.connect();
    client.send(&post("/echo", &vec![7u8; 2 * 1024 * 1024]));
    assert_eq!(client.read_response().status, 502);
    // A stream that passes the limit after its head went out: cut off, with
    // no final chunk, so the client knows the body is incomplete.
    let mut client = server.connect();
    client.send(b"GET /c?chunks=40&size=65536 HTTP/1.1\r\nHost: t\r\n\r\n");
    let raw = client.read_to_close();
    assert!(raw.len() < 40 * 65536, "{} bytes", raw.len());
    assert!(
        !raw.ends_with(b"0\r\n\r\n"),
        "the cut body must not look complete"
    );
    assert_eq!(
        server.get("/c?chunks=2&size=10").status,
        200,
        "the app still answers"
    );
}
#[test]
fn a_components_headers_and_trailers_reach_the_client() {
    let server = TestServer::start(component_routes(guests::COMPONENT_TRAILERS, json!({})));
    let resp = server.get("/c");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("x-custom"), Some("yes"));
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.text(), "with trailers\n");
    assert_eq!(
        resp.trailers,
        [("x-checksum".to_owned(), "abc123".to_owned())]
    );
}
#[test]
fn trapping_looping_and_memory_hungry_components_get_their_specific_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let routes = json!({
        "apps": {
            "trap": { "module": guests::COMPONENT_TRAP },
            "spin": { "module": guests::COMPONENT_SPIN, "limits": { "cpu_time": "200ms" } },
            "bomb": { "module": guests::COMPONENT_MEMBOMB, "limits": { "memory": "32MiB" } },
            "hello": { "module": guests::COMPONENT_HELLO }
        },
        "routes": [
            { "path": "/trap", "app": "trap" },
            { "path": "/spin", "app": "spin" },
            { "path": "/bomb", "app": "bomb" },
            { "path": "/hello", "app": "hello" }
        ]
    });
    let server = TestServer::start_in(dir, routes, |_| {});
    assert_eq!(server.get("/trap").status, 500);
    let started = Instant::now();
    assert_eq!(server.get("/spin").status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let bomb = server.get("/bomb");
    assert_eq!(bomb.status, 500, "{}", bomb.text());
    assert_eq!(server.get("/hello").status, 200, "others keep answering");
}

#[test]
fn a_component_blocked_past_its_wall_time_is_stopped() {
    // An upstream that accepts and never answers: the guest waits on its
    // response before it has set its own.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr");
    let held = thread::spawn(move || silent.accept().map(|(s, _)| s));
    let limits = json!({ "wall_time": "500ms" });
    let routes = json!({
        "apps": {
            "out": {
                "module": guests::COMPONENT_OUTBOUND,
                "limits": limits,
                "grants": { "outbound": [format!("http://{addr}")] }
            },
            "stream": { "module": guests::COMPONENT_STREAM, "limits": limits }
        },
        "routes": [{ "path": "/out", "app": "out" }, { "path": "/stream", "app": "stream" }]
    });
    let server = TestServer::start(routes);
    let started = Instant::now();
    let resp = server.get(&format!("/out?url=http%3A%2F%2F{addr}%2F"));
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    drop(held);

    // Asleep after its head went out: the stream is cut at the limit, with no
    // final chunk.
    let started = Instant::now();
    let mut client = server.connect();
    client.send(b"GET /stream?chunks=3&size=1&delay_ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n");
    let raw = client.read_to_close();
    let text = String::from_utf8_lossy(&raw);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}: {text:?}",
        started.elapsed()
    );
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "{text}");
}

#[test]
fn a_sleeping_component_does_not_spend_its_cpu_time() {
    let limits = json!({ "limits": { "cpu_time": "300ms", "wall_time": "10s" } });
    let server = TestServer::start(component_routes(guests::COMPONENT_STREAM, limits));
    let resp = server.get("/c?chunks=3&size=1&delay_ms=400");
    assert_eq!(resp.status, 200, "800 ms asleep is not 800 ms of running");
    assert_eq!(resp.text(), "abc");
}

#[test]
fn login_required_guards_a_component_before_it_runs() {
    let settings = json!({ "login_required": true });
    let server = TestServer::start(component_routes(guests::COMPONENT_HELLO, settings));
    let resp = server.get("/c");
    assert_eq!(resp.status, 302);
    assert!(
        resp.header("location")
            .is_some_and(|l| l.contains("next=%2Fc"))
    );
}

/// A one-request-at-a-time HTTP server on loopback answering `hello`,
/// counting the connections it accepted.
fn upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    upstream_with(b"hello".to_vec())
}

/// As [`upstream`], answering `body`.
fn upstream_with(body: Vec<u8>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            count.fetch_add(1, Ordering::SeqCst);
            stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (addr, accepted)
}

#[test]
fn outbound_http_reaches_only_the_granted_origins() {
    let (addr, accepted) = upstream();
    let origin = format!("http://{addr}");
    let routes = json!({
        "apps": {
            "granted": {
                "module": guests::COMPONENT_OUTBOUND,
                "grants": { "outbound": [origin] }
            },
            "denied": { "module": guests::COMPONENT_OUTBOUND }
        },
        "routes": [
            { "path": "/granted", "app": "granted" },
            { "path": "/denied", "app": "denied" }
        ]
    });
    let server = TestServer::start(routes);
    let url = format!("http%3A%2F%2F{addr}%2Fdata");
    let resp = server.get(&format!("/granted?url={url}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.text(), "upstream 200\nhello");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);

    let resp = server.get(&format!("/denied?url={url}"));
    assert_eq!(resp.status, 502);
    assert!(resp.text().contains("HttpRequestDenied"), "{}", resp.text());
    // A granted app may not reach another port of the same host either.
    let other = format!(
        "http%3A%2F%2F127.0.0.1%3A{}%2F",
        addr.port().wrapping_add(1)
    );
    let resp = server.get(&format!("/granted?url={other}"));
    assert_eq!(resp.status, 502);
    assert!(resp.text().contains("HttpRequestDenied"), "{}", resp.text());
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "denied requests never connected"
    );
}

#[test]
fn an_outbound_response_over_its_limit_never_reaches_the_guest_whole() {
    use wasmhost::sandbox::component::MAX_OUTBOUND_RESPONSE;
    for (len, whole) in [
        (MAX_OUTBOUND_RESPONSE, true),
        (MAX_OUTBOUND_RESPONSE + 1, false),
    ] {
        outbound_of(len, whole);
    }
}

/// Fetches an upstream body of `len` bytes through the outbound component:
/// it arrives whole, or the guest's read fails and it answers 502.
fn outbound_of(len: usize, whole: bool) {
    let (addr, accepted) = upstream_with(vec![b'x'; len]);
    let origin = format!("http://{addr}");
    let routes = json!({
        "apps": {
            "granted": {
                "module": guests::COMPONENT_OUTBOUND,
                // Room for a body just under the limit, which then arrives.
                "limits": { "memory": "128MiB", "max_response": "32MiB" },
                "grants": { "outbound": [origin] }
            }
        },
        "routes": [{ "path": "/granted", "app": "granted" }]
    });
    let server = TestServer::start(routes);
    let resp = server.get(&format!("/granted?url=http%3A%2F%2F{addr}%2Fbig"));
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the upstream was asked");
    if whole {
        assert_eq!(resp.status, 200, "{len} bytes");
        assert_eq!(resp.body.len(), "upstream 200\n".len() + len);
        return;
    }
    assert_eq!(
        resp.status,
        502,
        "{}",
        &resp.text()[..resp.text().len().min(200)]
    );
    assert!(
        resp.text().starts_with("outbound failed"),
        "{}",
        &resp.text()[..resp.text().len().min(200)]
    );
}

#[test]
fn a_component_the_host_cannot_serve_is_refused_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty.wasm");
    std::fs::write(&empty, wat::parse_str("(component)").expect("a component")).unwrap();
    let runtime = wasmhost::sandbox::Runtime::new(4).expect("runtime");
    let limits = wasmhost::config::Limits::default();
    let err = runtime
        .load("empty", &empty, limits.clone())
        .err()
        .expect("an empty component is refused");
    let text = err.to_string();
    assert!(text.contains("is not a wasi:http proxy"), "{text}");
    assert!(text.contains("wasi:http/incoming-handler"), "{text}");
    assert!(!text.contains('\n'), "{text}");
    let _ = Client::connect;
}

/// A request with a method and a body, as raw HTTP/1.1.
fn send(server: &TestServer, method: &str, path: &str, body: &[u8]) -> crate::support::Resp {
    let mut client = server.connect();
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    client.send(&raw);
    client.read_response()
}

#[test]
fn a_component_keeps_its_data_in_wasi_keyvalue_within_its_apps_namespace() {
    let granted = json!({ "grants": { "host": ["storage"] } });
    let mut routes = component_routes(guests::COMPONENT_KV, granted);
    routes["apps"]["other"] =
        json!({ "module": guests::COMPONENT_KV, "grants": { "host": ["storage"] } });
    routes["apps"]["denied"] = json!({ "module": guests::COMPONENT_KV });
    routes["routes"] = json!([
        { "path": "/c/...", "app": "c" },
        { "path": "/other/...", "app": "other" },
        { "path": "/denied/...", "app": "denied" }
    ]);
    let server = TestServer::start(routes);
    assert_eq!(send(&server, "POST", "/c/incr", b"").text(), "1");
    assert_eq!(send(&server, "POST", "/c/incr", b"").text(), "2");
    assert_eq!(send(&server, "GET", "/c/hits", b"").text(), "2");
    assert_eq!(send(&server, "PUT", "/c/k1", b"v\x001").status, 200);
    let got = send(&server, "GET", "/c/get/k1", b"");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"v\x001"[..]));
    let many = send(&server, "GET", "/c/many?keys=k1,zz,hits", b"");
    assert_eq!(many.text(), "k1=v\u{0}1\nzz missing\nhits=2\n");
    assert_eq!(send(&server, "DELETE", "/c/k1", b"").status, 200);
    assert_eq!(send(&server, "GET", "/c/get/k1", b"").status, 404);
    // Another app's namespace is its own.
    assert_eq!(send(&server, "GET", "/other/hits", b"").text(), "0");
    // Without the grant, opening the bucket is denied.
    let denied = send(&server, "GET", "/denied/hits", b"");
    assert_eq!(denied.status, 500);
    assert!(denied.text().contains("AccessDenied"), "{}", denied.text());
}

#[test]
fn a_component_sees_the_data_a_json_abi_version_of_its_app_stored() {
    let data = tempfile::tempdir().expect("data dir");
    let probe_dir = tempfile::tempdir().expect("temp dir");
    let probe = crate::support::wat_module(
        probe_dir.path(),
        "kv_probe",
        include_str!("../guests/kv_probe.wat"),
    );
    let app = |module: Value| {
        json!({
            "apps": { "shared": { "module": module, "grants": { "host": ["log", "storage"] } } },
            "routes": [{ "path": "/s/...", "app": "shared" }, { "path": "/s", "app": "shared" }]
        })
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let abi = TestServer::start_full(dir, app(json!(probe)), |_| {}, Some(data.path().to_owned()));
    let set = send(&abi, "POST", "/s", b"sfrom the JSON ABI");
    assert_eq!(set.status, 200);
    assert_eq!(set.body[0], b'0', "the probe stored its value");
    abi.stop();

    let dir = tempfile::tempdir().expect("temp dir");
    let comp = TestServer::start_full(
        dir,
        app(json!(guests::COMPONENT_KV)),
        |_| {},
        Some(data.path().to_owned()),
    );
    let got = send(&comp, "GET", "/s/get/k", b"");
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "from the JSON ABI");
}

#[test]
fn a_components_fuel_body_limit_and_error_pages_are_its_apps() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("pages")).unwrap();
    std::fs::write(dir.path().join("pages/oops.html"), "<p>oops, sorry</p>").unwrap();
    let routes = json!({
        "apps": {
            "spin": { "module": guests::COMPONENT_SPIN, "limits": { "fuel": 5_000_000 } },
            "echo": { "module": guests::COMPONENT_ECHO, "limits": { "max_body": "1KiB" } },
            "trap": { "module": guests::COMPONENT_TRAP, "error_pages": { "500": "pages/oops.html" } }
        },
        "routes": [
            { "path": "/spin", "app": "spin" },
            { "path": "/echo", "app": "echo" },
            { "path": "/trap", "app": "trap" }
        ]
    });
    let server = TestServer::start_in(dir, routes, |_| {});
    assert_eq!(server.get("/spin").status, 504, "fuel runs out");
    let mut client = server.connect();
    client.send(&post("/echo", &[1u8; 2048]));
    assert_eq!(
        client.read_response().status,
        413,
        "refused before the guest runs"
    );
    let mut client = server.connect();
    client.send(&post("/echo", &[1u8; 512]));
    assert_eq!(client.read_response().body, [1u8; 512]);
    let trap = server.get("/trap");
    assert_eq!(trap.status, 500);
    assert_eq!(trap.text(), "<p>oops, sorry</p>");
}

#[test]
fn a_component_gets_only_the_environment_and_directory_it_is_granted() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("files")).unwrap();
    std::fs::write(dir.path().join("files/hello.txt"), "granted file\n").unwrap();
    let routes = json!({
        "apps": {
            "granted": {
                "module": guests::COMPONENT_ECHO,
                "grants": { "env": { "GREETING": "hi" }, "dir": { "host": "files", "guest": "/data" } }
            },
            "bare": { "module": guests::COMPONENT_ECHO }
        },
        "routes": [{ "path": "/granted/...", "app": "granted" }, { "path": "/bare/...", "app": "bare" }]
    });
    let server = TestServer::start_in(dir, routes, |_| {});
    assert_eq!(server.get("/granted/env").text(), "GREETING=hi\n");
    assert_eq!(
        server.get("/granted/file/hello.txt").text(),
        "granted file\n"
    );
    assert_eq!(
        server.get("/bare/env").text(),
        "",
        "no variable without a grant"
    );
    let bare = server.get("/bare/file/hello.txt").text();
    assert!(bare.starts_with("cannot read /data/hello.txt"), "{bare}");
}

#[test]
fn a_signed_in_user_reaches_a_component_and_the_session_cookie_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut routes = crate::apps::apps_routes(dir.path());
    routes["apps"]["c"] = json!({ "module": guests::COMPONENT_ECHO, "login_required": true });
    routes["routes"]
        .as_array_mut()
        .expect("routes")
        .push(json!({ "path": "/c/...", "app": "c" }));
    let server = TestServer::start_in(dir, routes, |_| {});
    let cookie = crate::apps::sign_up(&server, "ann");
    let mut client = server.connect();
    client.send(
        format!("GET /c/me/inspect HTTP/1.1\r\nHost: t\r\nCookie: {cookie}; theme=dark\r\n\r\n")
            .as_bytes(),
    );
    let resp = client.read_response();
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.text();
    assert!(text.contains("header wasmhost-user-name: ann\n"), "{text}");
    assert!(text.contains("header wasmhost-user-id: "), "{text}");
    assert!(text.contains("header cookie: theme=dark\n"), "{text}");
    assert!(!text.contains("wasmhost_session"), "{text}");
}

#[test]
fn a_blocked_component_lends_its_run_slot_to_the_next_request() {
    // Four workers, 16 requests (the app's max_concurrency) that each block
    // for 1.5 s after their first chunk: only lent slots let them all run at
    // once. Holding their slots, three would run and the rest would wait in
    // the app's queue past its queue_timeout of 1 s (503).
    let routes = component_routes(guests::COMPONENT_STREAM, json!({}));
    let server = TestServer::start_with(routes, |s| s.workers = 4);
    let addr = server.addr;
    let clients: Vec<_> = (0..16)
        .map(|_| {
            thread::spawn(move || {
                let mut c = Client::connect(addr);
                c.send(b"GET /c?chunks=2&size=1&delay_ms=1500 HTTP/1.1\r\nHost: t\r\n\r\n");
                let r = c.read_response();
                (r.status, r.text())
            })
        })
        .collect();
    for c in clients {
        let (status, text) = c.join().expect("client");
        assert_eq!((status, text.as_str()), (200, "ab"));
    }
}
