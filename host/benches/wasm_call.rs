//! Criterion micro-benchmark of the per-request Wasm cost (issue 6): `Runtime::invoke` for the hello guest, and the native parse path for scale.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use wasmhost::config::Limits;
use wasmhost::http::parse::{HeadParse, parse_head};
use wasmhost::http::{Method, Request, Version};
use wasmhost::sandbox::Runtime;
use wasmhost::sandbox::abi::encode_request_meta;
use wasmhost_abi::RouteMeta;

/// The hello guest, built by `host/build.rs`.
const HELLO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../target/guests/wasm32-wasip1/release/hello.wasm"
);

/// A typical request head, as `wrk` and browsers send it.
const HEAD: &[u8] = b"GET /hello HTTP/1.1\r\n\
Host: 127.0.0.1:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate\r\n\
Connection: keep-alive\r\n\
\r\n";

/// The request a worker hands to `hello` for `GET /hello` (wrk's two headers).
fn hello_request(body: &[u8], method: Method, path: &str) -> Request {
    Request {
        method,
        path: path.to_owned(),
        query: String::new(),
        version: Version::Http11,
        headers: vec![
            ("Host".to_owned(), "127.0.0.1:8080".to_owned()),
            ("Content-Type".to_owned(), "text/plain".to_owned()),
        ],
        body: body.to_vec(),
        client: SocketAddr::from(([127, 0, 0, 1], 40000)),
    }
}

/// Encodes the request meta exactly as `dispatch.rs` does for the exact route.
fn meta_of(req: &Request, pattern: &str) -> Vec<u8> {
    let route = RouteMeta {
        app: "hello".into(),
        pattern: pattern.into(),
        params: Default::default(),
        rest: "".into(),
    };
    encode_request_meta(req, &route)
}

fn benches(c: &mut Criterion) {
    assert!(
        Path::new(HELLO).exists(),
        "{HELLO} is missing: run `cargo build -p wasmhost` first (host/build.rs builds the guests)"
    );
    let runtime = Runtime::new(64).expect("runtime");
    let guest = runtime
        .load("hello", Path::new(HELLO), Limits::default())
        .expect("load hello");

    let get = hello_request(b"", Method::Get, "/hello");
    let get_meta = meta_of(&get, "/hello");
    let (first, _) = runtime.invoke(&guest, &get_meta, &get.body);
    let first = first.expect("hello answers");
    assert_eq!(first.status, 200);
    assert_eq!(first.body, b"Hello, world!");

    // The whole per-request Wasm cost: store, instantiate, write the request,
    // call, read and decode the response, drop the instance.
    c.bench_function("wasm_invoke_hello_get", |b| {
        b.iter(|| {
            let (resp, _) = runtime.invoke(&guest, black_box(&get_meta), black_box(&[]));
            black_box(resp.expect("hello answers"))
        })
    });

    // The same without pre-initialization: the guest builds its router in
    // every request (`"preinit": false`).
    let plain_config = wasmhost::config::AppConfig {
        module: HELLO.into(),
        limits: Limits::default(),
        grants: wasmhost::config::Grants::default(),
        error_pages: Default::default(),
        login_required: false,
        preinit: false,
    };
    let plain = runtime
        .load_app("hello", &plain_config)
        .expect("load hello without preinit");
    c.bench_function("wasm_invoke_hello_get_no_preinit", |b| {
        b.iter(|| {
            let (resp, _) = runtime.invoke(&plain, black_box(&get_meta), black_box(&[]));
            black_box(resp.expect("hello answers"))
        })
    });

    // The same on baseline (Winch) code, what a never-seen version runs on
    // until its optimized code is ready (docs/ARCHITECTURE.md, "Tiers").
    let tiered = Runtime::new(64).expect("runtime");
    tiered.set_tiering(true);
    let _hold = tiered.hold_tier_ups();
    let baseline = tiered
        .load("hello", Path::new(HELLO), Limits::default())
        .expect("load hello on baseline code");
    assert_eq!(baseline.tier(), wasmhost::sandbox::Tier::Baseline);
    c.bench_function("wasm_invoke_hello_get_baseline", |b| {
        b.iter(|| {
            let (resp, _) = tiered.invoke(&baseline, black_box(&get_meta), black_box(&[]));
            black_box(resp.expect("hello answers"))
        })
    });

    // The same with the host-side JSON encoding of the request meta included.
    c.bench_function("wasm_encode_and_invoke_hello_get", |b| {
        b.iter(|| {
            let meta = meta_of(black_box(&get), "/hello");
            let (resp, _) = runtime.invoke(&guest, &meta, &get.body);
            black_box(resp.expect("hello answers"))
        })
    });

    // Echo of a 1 KiB body: the request and response bodies cross guest memory.
    let echo = hello_request(&[b'x'; 1024], Method::Post, "/hello/echo");
    let echo_meta = meta_of(&echo, "/hello/...");
    c.bench_function("wasm_invoke_hello_echo_1k", |b| {
        b.iter(|| {
            let (resp, _) = runtime.invoke(&guest, black_box(&echo_meta), black_box(&echo.body));
            black_box(resp.expect("echo answers"))
        })
    });

    // The native paths, for scale.
    c.bench_function("native_encode_request_meta", |b| {
        b.iter(|| black_box(meta_of(black_box(&get), "/hello")))
    });
    c.bench_function("native_parse_head", |b| {
        b.iter(|| match parse_head(black_box(HEAD)) {
            Ok(HeadParse::Complete { head, len }) => black_box((head, len)),
            other => panic!("typical head did not parse: {other:?}"),
        })
    });
}

fn config() -> Criterion {
    // `BENCH_MEASURE_SECS` shortens the run for bench/run.sh.
    let secs = std::env::var("BENCH_MEASURE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(5.0);
    Criterion::default()
        .measurement_time(Duration::from_secs_f64(secs))
        .warm_up_time(Duration::from_secs_f64((secs / 3.0).clamp(0.5, 3.0)))
}

criterion_group! {
    name = wasm_call;
    config = config();
    targets = benches
}
criterion_main!(wasm_call);
