//! Pre-initialization (`wasmhost_init`, ABI §2): run once at load and snapshotted, its state in every fresh instance; failures refused at load; snapshots cached.

use serde_json::{Value, json};

use crate::sandbox::{load_error, module};
use crate::support::{TestServer, wat_module};

/// A guest whose answer shows what ran: `wasmhost_init` adds 1 to `$count`
/// and writes "ready" at 1024, `_initialize` bumps the byte at 1029 (from
/// 'a'), and each request adds 1 to `$count` and answers with the digit of
/// `$count` followed by memory 1024..1030.
/// So: "2readyb" when pre-initialized (init once at load, nothing carried
/// between requests), "1\0\0\0\0\0b" when not.
fn counting_guest(imports: &str, init_extra: &str) -> String {
    module(
        imports,
        r#"(global.set $count (i32.add (global.get $count) (i32.const 1)))
           (i32.store8 (i32.const 1023) (i32.add (i32.const 48) (global.get $count)))
           (call $ok (i32.const 1023) (i32.const 7))"#,
        &format!(
            r#"(global $count (mut i32) (i32.const 0))
               (data (i32.const 1029) "a")
               (func (export "_initialize")
                 (i32.store8 (i32.const 1029) (i32.add (i32.load8_u (i32.const 1029)) (i32.const 1))))
               (func (export "wasmhost_init")
                 (global.set $count (i32.add (global.get $count) (i32.const 1)))
                 (i32.store (i32.const 1024) (i32.const 0x64616572)) ;; "read"
                 (i32.store8 (i32.const 1028) (i32.const 121))        ;; "y"
                 {init_extra})"#
        ),
    )
}

/// Serves `wat` as app `app` at `/app` with these app settings.
fn serve(wat: &str, settings: Value, data: bool) -> TestServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = wat_module(dir.path(), "app", wat);
    let data_dir = data.then(|| dir.path().join("data"));
    TestServer::start_full(dir, routes(&path, settings), |_| {}, data_dir)
}

fn routes(module: &std::path::Path, settings: Value) -> Value {
    let mut app = json!({ "module": module });
    if let (Some(app), Some(settings)) = (app.as_object_mut(), settings.as_object()) {
        app.extend(settings.clone());
    }
    json!({ "apps": { "app": app }, "routes": [ { "path": "/app", "app": "app" } ] })
}

#[test]
fn the_initializer_runs_once_at_load_and_every_request_starts_from_its_state() {
    // (settings, expected body of every request)
    let table: [(Value, &[u8]); 2] = [
        (json!({}), b"2readyb"),
        (json!({ "preinit": false }), b"1\0\0\0\0\0b"),
    ];
    for (settings, want) in table {
        let server = serve(&counting_guest("", ""), settings.clone(), false);
        for _ in 0..3 {
            let resp = server.get("/app");
            assert_eq!(resp.status, 200, "{settings}");
            assert_eq!(resp.body, want, "{settings}: {:?}", resp.text());
        }
    }
}

#[test]
fn host_services_are_not_available_to_the_initializer() {
    // The initializer stores the status of a kv_set at 1024 instead of
    // "read"; 10 is NOT_GRANTED, so the request shows '0' + 10 = ':'.
    let imports =
        r#"(import "wasmhost" "kv_set" (func $kv_set (param i32 i32 i32 i32) (result i32)))"#;
    let wat = counting_guest(
        imports,
        r#"(i32.store8 (i32.const 1024)
             (i32.add (i32.const 48)
               (call $kv_set (i32.const 1024) (i32.const 1) (i32.const 1024) (i32.const 1))))"#,
    );
    let server = serve(&wat, json!({ "grants": { "host": ["storage"] } }), false);
    let resp = server.get("/app");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, b"2:eadyb", "{:?}", resp.text());
}

#[test]
fn initializers_that_fail_are_refused_at_load_naming_why() {
    let spin = "(loop $l (br $l))";
    let table_set = module(
        "",
        "(call $ok (i32.const 0) (i32.const 0))",
        r#"(table 1 funcref) (func $f) (elem declare func $f)
           (func (export "wasmhost_init") (table.set (i32.const 0) (ref.func $f)))"#,
    );
    let wrong_type = module(
        "",
        "(call $ok (i32.const 0) (i32.const 0))",
        r#"(func (export "wasmhost_init") (param i32))"#,
    );
    // (WAT, what the error must say)
    let table = [
        (counting_guest("", "unreachable"), "`wasmhost_init` failed"),
        (
            counting_guest("", spin),
            "`wasmhost_init` did not finish within the start-up limit",
        ),
        (
            table_set,
            "`wasmhost_init` cannot be pre-initialized: unsupported `table.set` instruction",
        ),
        (
            wrong_type,
            "export `wasmhost_init` has type (i32) -> (), expected () -> ()",
        ),
    ];
    for (wat, want) in table {
        let err = load_error(&wat, json!({}));
        assert!(err.contains(want), "want {want:?} in: {err}");
        assert!(err.contains("app \"bad\""), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}

#[test]
fn snapshots_are_cached_under_the_data_dir_and_reused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = wat_module(dir.path(), "app", &counting_guest("", ""));
    let data = dir.path().join("data");
    let routes = routes(&path, json!({}));
    let routes_path = dir.path().join("routes.json");
    let start = |data: &std::path::Path| {
        std::fs::write(&routes_path, routes.to_string()).expect("routes");
        let mut server = wasmhost::net::ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        server.workers = 2;
        wasmhost::start(wasmhost::Options {
            routes: routes_path.clone(),
            server,
            max_body: wasmhost::limits::DEFAULT_MAX_BODY,
            data_dir: Some(data.to_owned()),
            redis: None,
        })
        .unwrap_or_else(|e| panic!("server failed to start: {e:#}"))
    };
    let get = |addr| {
        let mut c = crate::support::Client::connect(addr);
        c.send(b"GET /app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        c.read_response()
    };

    let first = start(&data);
    assert_eq!(get(first.local_addr()).body, b"2readyb");
    first.shutdown().expect("shutdown");
    let cached: Vec<_> = std::fs::read_dir(data.join("cache/preinit"))
        .expect("a preinit cache")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");

    // Replace the cached snapshot with a module that answers otherwise: a
    // restart that serves it did not pre-initialize again.
    let other = module(
        "",
        "(call $ok (i32.const 1024) (i32.const 6))",
        r#"(data (i32.const 1024) "cached")"#,
    );
    std::fs::write(&cached[0], wat::parse_str(&other).expect("wat")).expect("write");
    let second = start(&data);
    assert_eq!(get(second.local_addr()).body, b"cached");
    second.shutdown().expect("shutdown");
}

/// Body the echo test sends: the request's frame, the body the app copies
/// into its answer and the encoded answer take about three times this,
/// which fits the SDK's `HEAP_RESERVE` (1 MiB) and not the heap a fresh,
/// unreserved instance starts with.
const ECHO_BODY: usize = 256 * 1024;

#[test]
fn a_pre_initialized_sdk_app_answers_a_large_echo_without_growing_its_memory() {
    use std::net::SocketAddr;
    use wasmhost::config::{AppConfig, Limits};
    use wasmhost::http::{Method, Request, Version};
    use wasmhost::sandbox::Runtime;
    use wasmhost::sandbox::abi::encode_request_meta;
    use wasmhost_abi::RouteMeta;

    let req = Request {
        method: Method::Post,
        path: "/hello/echo".to_owned(),
        query: String::new(),
        version: Version::Http11,
        headers: vec![(
            "Content-Type".to_owned(),
            "application/octet-stream".to_owned(),
        )],
        body: vec![b'x'; ECHO_BODY],
        client: SocketAddr::from(([127, 0, 0, 1], 40000)),
    };
    let route = RouteMeta {
        app: "hello".into(),
        pattern: "/hello/echo".into(),
        params: Default::default(),
        rest: "".into(),
    };
    let meta = encode_request_meta(&req, &route);
    let runtime = Runtime::new(4).expect("runtime");
    // (pre-initialized, whether the request may grow memory)
    for (preinit, grows) in [(true, false), (false, true)] {
        let config = AppConfig {
            module: crate::support::guests::HELLO.into(),
            limits: Limits::default(),
            grants: Default::default(),
            error_pages: Default::default(),
            login_required: false,
            preinit,
        };
        let guest = runtime.load_app("hello", &config).expect("hello loads");
        let (result, stats) = runtime.invoke(&guest, &meta, &req.body);
        let answer = result.expect("the echo answers");
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body.len(), ECHO_BODY);
        assert!(stats.initial_memory > 0, "{stats:?}");
        assert_eq!(
            stats.peak_memory > stats.initial_memory,
            grows,
            "preinit {preinit}: started with {} bytes, peaked at {}",
            stats.initial_memory,
            stats.peak_memory
        );
    }
}
