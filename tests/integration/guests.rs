//! Dispatch to Wasm guests: the hello app, the SDK-free WAT guest, and guests that fail.

use serde_json::json;

use crate::support::{TestServer, guests, wat_module};

/// The hand-written ABI guest (docs/abi.md points here).
pub const RAW_WAT: &str = include_str!("../guests/raw.wat");

/// A module with the ABI's exports whose `wasmhost_handle` body is `handle`
/// (locals: params $ptr, $len). `extra` goes at module level.
pub fn abi_module(handle: &str, extra: &str) -> String {
    format!(
        r#"(module
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 1024))
  {extra}
  (func (export "wasmhost_abi_version") (result i32) (i32.const 1))
  (func $alloc (export "wasmhost_alloc") (param $len i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (local.get $p) (local.get $len)))
    (drop (memory.grow (i32.add (i32.shr_u (local.get $len) (i32.const 16)) (i32.const 1))))
    (local.get $p))
  (func (export "wasmhost_handle") (param $ptr i32) (param $len i32) (result i64)
    {handle})
)"#
    )
}

/// A guest whose every request traps.
pub const TRAP_HANDLE: &str = "unreachable";

/// A route table with one app named `app` at `/app` and `/app/...`, plus hello.
pub fn one_app(module: &std::path::Path) -> serde_json::Value {
    json!({
        "apps": {
            "app": { "module": module },
            "hello": { "module": guests::HELLO }
        },
        "routes": [
            { "path": "/app", "app": "app" },
            { "path": "/app/...", "app": "app" },
            { "path": "/hello", "app": "hello" },
            { "path": "/hello/...", "app": "hello" }
        ]
    })
}

#[test]
fn hello_answers_plain_text() {
    let server = TestServer::hello();
    let resp = server.get("/hello");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(resp.text(), "Hello, world!");
    assert!(resp.header("date").is_some());
}

#[test]
fn route_params_and_unknown_paths() {
    let server = TestServer::hello();
    let table = [
        ("/hello/greet/W%C3%B6rld", 200, "Hello, Wörld!"),
        ("/hello/greet/a%20b", 200, "Hello, a b!"),
        ("/hello/nothing-here", 404, ""),
        ("/nowhere", 404, ""),
    ];
    for (path, status, body) in table {
        let resp = server.get(path);
        assert_eq!(resp.status, status, "{path}");
        if !body.is_empty() {
            assert_eq!(resp.text(), body, "{path}");
        }
    }
}

#[test]
fn inspect_shows_the_request_as_the_guest_saw_it() {
    let server = TestServer::hello();
    let resp = server.request(
        "POST /hello/inspect?a=1&b=x+y&a=2 HTTP/1.1\r\nHost: localhost\r\nCookie: s=1; t=2\r\nX-Twice: one\r\n\
         X-Twice: two\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    );
    assert_eq!(resp.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/hello/inspect");
    assert_eq!(v["query"], "a=1&b=x+y&a=2");
    assert_eq!(
        v["query_params"],
        json!([["a", "1"], ["b", "x y"], ["a", "2"]])
    );
    assert_eq!(v["cookies"], json!([["s", "1"], ["t", "2"]]));
    assert_eq!(v["pattern"], "/hello/...");
    assert_eq!(v["rest"], "/inspect");
    assert_eq!(v["app"], "hello");
    assert_eq!(v["body_len"], 3);
    assert_eq!(v["version"], "HTTP/1.1");
    let twice: Vec<&str> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == "X-Twice")
        .map(|h| h[1].as_str().unwrap())
        .collect();
    assert_eq!(twice, ["one", "two"]);
    assert!(v["client"].as_str().unwrap().starts_with("127.0.0.1:"));
}

#[test]
fn binary_body_of_5_mib_is_echoed_exactly() {
    let server = TestServer::hello();
    let body: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 256) as u8).collect();
    let mut c = server.connect();
    c.send(
        format!(
            "POST /hello/echo HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-bytes\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/x-bytes"));
    assert_eq!(resp.body.len(), body.len());
    assert!(resp.body == body, "echoed body differs");
}

#[test]
fn two_set_cookie_headers_survive() {
    let server = TestServer::hello();
    let resp = server.get("/hello/cookies");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers_all("set-cookie"),
        ["a=1; Path=/", "b=2; Path=/"]
    );
}

#[test]
fn guest_written_without_the_sdk_works() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat_module(dir.path(), "raw", RAW_WAT);
    let server = TestServer::start_in(dir, one_app(&module), |_| {});
    let body: Vec<u8> = (0..=255u8).collect();
    let mut c = server.connect();
    c.send(
        format!(
            "PUT /app/x HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body);
    let resp = c.read_response();
    assert_eq!(resp.status, 201);
    assert_eq!(resp.header("x-raw"), Some("yes"));
    assert_eq!(resp.body, body);
}

#[test]
fn a_trapping_guest_gets_500_and_the_worker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat_module(dir.path(), "trap", &abi_module(TRAP_HANDLE, ""));
    // One worker: if the trap had killed it, nothing would answer afterwards.
    let server = TestServer::start_in(dir, one_app(&module), |s| s.workers = 1);
    let mut c = server.connect();
    for _ in 0..3 {
        c.send(b"GET /app HTTP/1.1\r\nHost: h\r\n\r\n");
        let resp = c.read_response();
        assert_eq!(resp.status, 500);
        assert!(
            !resp.text().contains("unreachable"),
            "details leaked: {}",
            resp.text()
        );
        c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
        let resp = c.read_response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "Hello, world!");
    }
}

#[test]
fn failures_answer_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat_module(dir.path(), "trap", &abi_module(TRAP_HANDLE, ""));
    let server = TestServer::start_in(dir, one_app(&module), |_| {});
    let resp = server.request(
        "GET /app HTTP/1.1\r\nHost: h\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 500);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v["status"], 500);
}

/// Returns a fixed encoded response stored at address 16 (`[len][meta][body]`).
fn fixed_response(meta: &str, body: &str) -> String {
    let bytes = wasmhost_abi::join_frame(meta.as_bytes(), body.as_bytes());
    let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
    let handle = format!(
        "(i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const {}))",
        bytes.len()
    );
    abi_module(&handle, &format!("(data (i32.const 16) \"{escaped}\")"))
}

#[test]
fn malformed_guest_output_gets_500() {
    let table = [
        // (meta, body, expected status)
        (r#"{"status":200,"headers":[["X-Ok","1"]]}"#, "fine", 200),
        ("not json", "", 500),
        (r#"{"status":99}"#, "", 500),
        (r#"{"status":1000}"#, "", 500),
        (
            r#"{"status":200,"headers":[["X","a\r\nSet-Cookie: evil=1"]]}"#,
            "",
            500,
        ),
        (r#"{"status":200,"headers":[["Bad Name","v"]]}"#, "", 500),
        // The meta is an object: the same values as an array are malformed.
        ("[200]", "fine", 500),
        (r#"[200,[["X-Ok","1"]]]"#, "fine", 500),
        // Unknown fields are refused, so a misspelt one is not silently lost.
        (r#"{"status":200,"header":[["X-Ok","1"]]}"#, "fine", 500),
    ];
    for (meta, body, status) in table {
        let dir = tempfile::tempdir().unwrap();
        let module = wat_module(dir.path(), "fixed", &fixed_response(meta, body));
        let server = TestServer::start_in(dir, one_app(&module), |_| {});
        let resp = server.get("/app");
        assert_eq!(resp.status, status, "{meta}");
        assert!(
            resp.header("set-cookie").is_none(),
            "{meta}: header injected"
        );
        if status == 200 {
            assert_eq!(resp.text(), body);
            assert_eq!(resp.header("x-ok"), Some("1"));
        }
        assert_eq!(server.get("/hello").status, 200);
    }
}

#[test]
fn response_range_outside_memory_gets_500() {
    let dir = tempfile::tempdir().unwrap();
    let handle = "(i64.or (i64.shl (i64.const 65000) (i64.const 32)) (i64.const 100000))";
    let module = wat_module(dir.path(), "oob", &abi_module(handle, ""));
    let server = TestServer::start_in(dir, one_app(&module), |_| {});
    assert_eq!(server.get("/app").status, 500);
    assert_eq!(server.get("/hello").status, 200);
}
