//! Short requests run on the event loop with no hand-off to a worker; a guest that would sleep or runs long there is given up at once and runs again, whole, on a worker, while the loop goes on serving.
//!
//! What ran where is read from the app's metrics
//! (`wasmhost_requests_on_loop_total`, `wasmhost_requests_moved_total`).
//! Time bounds are generous: nothing here asserts a latency.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::sandbox::{module, sleeper};
use crate::support::{Client, guests, wat_module};

const TOKEN: &str = "inline-test-token";

/// How long the spinning guest computes (it reads the clock until then):
/// far longer than the loop's budget, within its `cpu_time` of 5 s.
const SPIN_MS: u64 = 2_000;

/// The generous bound on a hello answered while the spinner runs: if the
/// spinner kept the loop, hello would wait for all of its `SPIN_MS`.
const HELLO_BOUND: Duration = Duration::from_millis(1_000);

/// A guest that computes for `millis` (reading the monotonic clock until
/// then) and answers 200 `spun`.
fn spinner(millis: u64) -> String {
    let nanos = millis * 1_000_000;
    module(
        r#"(import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))"#,
        &format!(
            r#"(drop (call $clock (i32.const 1) (i64.const 1) (i32.const 256)))
    (block $done
      (loop $spin
        (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 264)))
        (br_if $done (i64.ge_u
          (i64.sub (i64.load (i32.const 264)) (i64.load (i32.const 256)))
          (i64.const {nanos})))
        (br $spin)))
    (call $ok (i32.const 600) (i32.const 4))"#
        ),
        r#"(data (i32.const 600) "spun")"#,
    )
}

/// A host serving `apps` (name → app settings, routed at `/<name>`) with
/// its admin API; returns it and the admin API's address.
fn serve(apps: Value) -> (wasmhost::Host, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut table = serde_json::Map::new();
    let mut routes = Vec::new();
    for (name, app) in apps.as_object().expect("apps") {
        let mut app = app.as_object().expect("app settings").clone();
        if let Some(Value::String(wat)) = app.remove("wat") {
            app.insert("module".into(), json!(wat_module(dir.path(), name, &wat)));
        }
        table.insert(name.clone(), Value::Object(app));
        routes.push(json!({ "path": format!("/{name}"), "app": name }));
    }
    let routes = json!({ "apps": table, "routes": routes });
    let (host, admin) = crate::support::host_with_admin(dir.path(), &routes, TOKEN);
    (host, admin, dir)
}

/// An app's counter of `family` in the metrics.
fn counter(admin: &str, family: &str, app: &str) -> u64 {
    series(admin, &format!("{family}{{app=\"{app}\"}}"))
}

/// One series' value in the metrics.
fn series(admin: &str, prefix: &str) -> u64 {
    let metrics =
        wasmhost::control::admin::call(admin, TOKEN, "GET", "/metrics", b"").expect("metrics");
    assert_eq!(metrics.status, 200);
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in\n{}", metrics.body))
}

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut c = Client::connect(addr);
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let r = c.read_response();
    (r.status, r.text())
}

#[test]
fn a_guest_that_reaches_nothing_outside_its_instance_answers_on_the_event_loop() {
    const REQUESTS: u64 = 20;
    let ok_wat = module("", "(call $ok (i32.const 16) (i32.const 0))", "");
    let (host, admin, _dir) = serve(json!({
        "hello": { "module": guests::HELLO },
        "stored": { "wat": ok_wat, "grants": { "host": ["storage"] } },
    }));
    let addr = host.local_addr();
    // Keep-alive, as a load generator sends them.
    let mut c = Client::connect(addr);
    for _ in 0..REQUESTS {
        c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let r = c.read_response();
        assert_eq!((r.status, r.text().as_str()), (200, "Hello, world!"));
        c.send(b"GET /stored HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert_eq!(c.read_response().status, 200);
    }
    let on_loop = |app| counter(&admin, "wasmhost_requests_on_loop_total", app);
    let moved = |app| counter(&admin, "wasmhost_requests_moved_total", app);
    // Every request tries the loop and none moves; only slow runs in a row
    // (a machine busy with other work) would send later ones to workers,
    // and not before INLINE_STRIKES of them ran there.
    let ran = on_loop("hello");
    assert!(
        (u64::from(wasmhost::sandbox::INLINE_STRIKES)..=REQUESTS).contains(&ran),
        "hello answered {ran} of {REQUESTS} requests on the loop"
    );
    assert_eq!(moved("hello"), 0);
    // Granted storage, its run could reach the store: always on a worker.
    assert_eq!(
        on_loop("stored"),
        0,
        "a guest granted storage runs on workers"
    );
    assert_eq!(moved("stored"), 0);
    // A request with a session cookie looks its session up in the store.
    c.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nCookie: wasmhost_session=0123\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    assert_eq!(
        on_loop("hello"),
        ran,
        "a session cookie sends it to a worker"
    );
    host.shutdown().expect("clean shutdown");
}

#[test]
fn a_guest_that_sleeps_is_given_up_on_the_loop_and_answers_whole_from_a_worker() {
    const LATER: u64 = 5;
    let (host, admin, _dir) = serve(json!({ "sleepy": { "wat": sleeper(50) } }));
    let addr = host.local_addr();
    // The sleeper answers poll_oneoff's errno (0) and one event written.
    let mut c = Client::connect(addr);
    c.send(b"GET /sleepy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200, "{}", r.text());
    // One event written (u32 LE), then poll_oneoff's errno: 0.
    assert_eq!(r.body, [1, 0, 0, 0, 0, 0, 0, 0], "the sleep ended well");
    assert_eq!(
        counter(&admin, "wasmhost_requests_moved_total", "sleepy"),
        1
    );
    assert_eq!(
        counter(&admin, "wasmhost_requests_on_loop_total", "sleepy"),
        0
    );
    // Its next requests go straight to workers: no second move.
    for _ in 0..LATER {
        assert_eq!(get(addr, "/sleepy").0, 200);
    }
    assert_eq!(
        counter(&admin, "wasmhost_requests_moved_total", "sleepy"),
        1
    );
    assert_eq!(
        series(
            &admin,
            "wasmhost_requests_total{app=\"sleepy\",class=\"2xx\"}"
        ),
        LATER + 1,
        "each request counted once"
    );
    host.shutdown().expect("clean shutdown");
}

#[test]
fn a_guest_that_runs_long_on_the_loop_moves_to_a_worker_while_the_loop_keeps_serving() {
    let (host, admin, _dir) = serve(json!({
        "hello": { "module": guests::HELLO },
        "spin": { "wat": spinner(SPIN_MS), "limits": { "cpu_time": "5s" } },
    }));
    let addr = host.local_addr();
    // Warm hello up (its first request may compile nothing, but pays for
    // the first instance).
    assert_eq!(get(addr, "/hello").0, 200);
    let spin = thread::spawn(move || {
        let started = Instant::now();
        let answer = get(addr, "/spin");
        (answer, started.elapsed())
    });
    // Probe hello on its own connections while the spinner computes.
    let mut probes = Vec::new();
    let until = Instant::now() + Duration::from_millis(SPIN_MS / 2);
    thread::sleep(Duration::from_millis(20));
    while Instant::now() < until {
        let started = Instant::now();
        let (status, _) = get(addr, "/hello");
        probes.push((status, started.elapsed()));
        thread::sleep(Duration::from_millis(10));
    }
    let ((status, body), took) = spin.join().expect("spin client");
    assert_eq!(
        (status, body.as_str()),
        (200, "spun"),
        "the spinner ran whole"
    );
    assert!(
        took >= Duration::from_millis(SPIN_MS),
        "it computed its {SPIN_MS} ms: {took:?}"
    );
    assert!(!probes.is_empty());
    for (status, took) in &probes {
        assert_eq!(*status, 200);
        assert!(
            *took < HELLO_BOUND,
            "hello waited {took:?} while the spinner ran: {probes:?}"
        );
    }
    assert_eq!(counter(&admin, "wasmhost_requests_moved_total", "spin"), 1);
    assert_eq!(
        counter(&admin, "wasmhost_requests_on_loop_total", "spin"),
        0
    );
    host.shutdown().expect("clean shutdown");
}
