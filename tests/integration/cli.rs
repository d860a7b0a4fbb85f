//! The `wasmhost` binary itself: one clear stderr line for every start-up failure, clean exit on SIGTERM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{guests, wat_module};

const BIN: &str = env!("CARGO_BIN_EXE_wasmhost");

/// Runs the binary in `dir`; returns (exit code, stderr).
fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .output()
        .expect("run wasmhost");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn every_start_up_failure_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(guests::HELLO, d.join("hello.wasm")).unwrap();
    std::fs::write(d.join("junk.wasm"), b"\0asm\x01\0\0\0garbage").unwrap();
    std::fs::write(d.join("text.wasm"), b"hello, not wasm\n").unwrap();
    wat_module(
        d,
        "noversion",
        r#"(module (memory (export "memory") 1)
        (func (export "wasmhost_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "wasmhost_handle") (param i32 i32) (result i64) (i64.const 0)))"#,
    );
    wat_module(
        d,
        "wrongsig",
        r#"(module (memory (export "memory") 1)
        (func (export "wasmhost_abi_version") (result i32) (i32.const 1))
        (func (export "wasmhost_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "wasmhost_handle") (param i32) (result i64) (i64.const 0)))"#,
    );
    wat_module(
        d,
        "v2",
        r#"(module (memory (export "memory") 1)
        (func (export "wasmhost_abi_version") (result i32) (i32.const 2))
        (func (export "wasmhost_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "wasmhost_handle") (param i32 i32) (result i64) (i64.const 0)))"#,
    );
    wat_module(
        d,
        "badimport",
        r#"(module (import "env" "system" (func (param i32)))
        (memory (export "memory") 1)
        (func (export "wasmhost_abi_version") (result i32) (i32.const 1))
        (func (export "wasmhost_alloc") (param i32) (result i32) (i32.const 0))
        (func (export "wasmhost_handle") (param i32 i32) (result i64) (i64.const 0)))"#,
    );
    let app = |module: &str| {
        format!(
            r#"{{"apps":{{"a":{{"module":"{module}"}}}},"routes":[{{"path":"/a","app":"a"}}]}}"#
        )
    };
    write(
        d,
        "invalid.json",
        "{\n  \"apps\": {},\n  \"routes\": [,]\n}",
    );
    write(d, "unknown.json", r#"{"apps":{},"routes":[],"extra":1}"#);
    write(
        d,
        "dup.json",
        r#"{"apps":{"a":{"module":"hello.wasm"}},"routes":[{"path":"/a","app":"a"},{"path":"/a","app":"a"}]}"#,
    );
    write(
        d,
        "conflict.json",
        r#"{"apps":{"a":{"module":"hello.wasm"}},"routes":[{"path":"/p/{id}","app":"a"},{"path":"/p/{slug}","app":"a"}]}"#,
    );
    write(d, "missing.json", &app("nothere.wasm"));
    write(d, "junk.json", &app("junk.wasm"));
    write(d, "text.json", &app("text.wasm"));
    write(d, "noversion.json", &app("noversion.wasm"));
    write(d, "wrongsig.json", &app("wrongsig.wasm"));
    write(d, "v2.json", &app("v2.wasm"));
    write(d, "badimport.json", &app("badimport.wasm"));
    write(d, "good.json", &app("hello.wasm"));

    // Hold a port so that binding it fails.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();

    let table: Vec<(Vec<&str>, &[&str])> = vec![
        (vec!["serve", "--bogus"], &["--bogus"]),
        (
            vec!["serve", "--listen", "not-an-address"],
            &["not-an-address"],
        ),
        (
            vec!["serve", "--routes", "absent.json"],
            &["absent.json", "cannot read"],
        ),
        (
            vec!["serve", "--routes", "invalid.json"],
            &["invalid.json:3:"],
        ),
        (
            vec!["serve", "--routes", "unknown.json"],
            &["unknown.json", "extra"],
        ),
        (vec!["serve", "--routes", "dup.json"], &["dup.json", "/a"]),
        (
            vec!["serve", "--routes", "conflict.json"],
            &["conflict.json", "/p/{slug}", "/p/{id}"],
        ),
        (vec!["serve", "--routes", "missing.json"], &["nothere.wasm"]),
        (vec!["serve", "--routes", "junk.json"], &["junk.wasm"]),
        (
            vec!["check", "--routes", "text.json"],
            &["text.wasm", "starts with 68 65 6c 6c, expected 00 61 73 6d"],
        ),
        (
            vec!["serve", "--routes", "text.json"],
            &["text.wasm", "not a WebAssembly module"],
        ),
        (
            vec!["serve", "--routes", "noversion.json"],
            &["wasmhost_abi_version"],
        ),
        (
            vec!["serve", "--routes", "wrongsig.json"],
            &["wasmhost_handle", "(i32) -> i64", "(i32, i32) -> i64"],
        ),
        (vec!["serve", "--routes", "v2.json"], &["ABI version 2"]),
        (
            vec!["serve", "--routes", "badimport.json"],
            &["env::system"],
        ),
        (
            vec!["serve", "--routes", "good.json", "--listen", &taken_addr],
            &["address already in use"],
        ),
        (
            vec![
                "serve",
                "--routes",
                "good.json",
                "--storage",
                "postgres://db",
            ],
            &["--storage", "expected `sqlite` or a Redis URL"],
        ),
        (
            vec![
                "serve",
                "--routes",
                "good.json",
                "--storage",
                "rediss://:secret@db:6380/0",
            ],
            &["--storage", "TLS to Redis"],
        ),
        (
            vec![
                "serve",
                "--routes",
                "good.json",
                "--storage",
                "redis://:secret@db:notaport/0",
            ],
            &["invalid Redis URL", "redis://:***@db"],
        ),
        (
            vec![
                "serve",
                "--routes",
                "good.json",
                "--storage",
                "redis://127.0.0.1:1/0",
                "--redis-prefix",
                "a{b",
            ],
            &["invalid Redis key prefix"],
        ),
    ];
    for (args, needles) in table {
        let (code, stderr) = run(d, &args);
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(!stderr.contains("stack backtrace"), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?}: expected one line, got:\n{stderr}"
        );
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{args:?}: {needle:?} missing in {stderr:?}"
            );
        }
        // A Redis password never reaches the log.
        assert!(!stderr.contains("secret"), "{args:?}: {stderr}");
    }
    drop(taken);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    write(
        dir.path(),
        "routes.json",
        r#"{"apps":{"hello":{"module":"hello.wasm"}},"routes":[{"path":"/hello","app":"hello"}]}"#,
    );
    let mut server = crate::support::ChildServer::spawn(dir.path(), &[]);
    let mut c = crate::support::Client::connect(server.addr);
    c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.read_response().status, 200);

    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0), "exit status {exit:?}");
}

#[test]
fn sighup_reloads_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guests::HELLO, dir.path().join("hello.wasm")).unwrap();
    let routes = |path: &str| {
        format!(
            r#"{{"apps":{{"hello":{{"module":"hello.wasm"}}}},"routes":[{{"path":"{path}","app":"hello"}}]}}"#
        )
    };
    write(dir.path(), "routes.json", &routes("/hello"));
    // The watcher is off, so only the signal can bring the change in.
    let server = crate::support::ChildServer::spawn(dir.path(), &["--no-watch", "--data", "data"]);
    let get = |path: &str| {
        let mut c = crate::support::Client::connect(server.addr);
        c.send(format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").as_bytes());
        c.read_response().status
    };
    assert_eq!(get("/hello"), 200);
    assert_eq!(get("/hello/greet/x"), 404);
    write(dir.path(), "routes.json", &routes("/hello/..."));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get("/hello/greet/x"), 404, "reloaded without a signal");
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    while get("/hello/greet/x") != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "SIGHUP did not reload the routes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A broken file on SIGHUP keeps the running routes.
    write(dir.path(), "routes.json", "{ not json");
    Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get("/hello/greet/x"), 200);
}

#[test]
fn a_loop_count_outside_one_to_1024_is_refused_before_start_up() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "1025", "many"] {
        let (code, err) = run(
            dir.path(),
            &["serve", "--loops", bad, "--listen", "127.0.0.1:0"],
        );
        assert_eq!(code, 2, "--loops {bad}: {err}");
        assert!(err.contains("--loops"), "--loops {bad}: {err}");
    }
}
