//! Tiers: a never-seen version serves on baseline (Winch) code at once and moves to optimized (Cranelift) code in the background, with every limit holding on both and no request failing in between.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use wasmhost::config::Limits;
use wasmhost::http::{Method, Request, Version};
use wasmhost::sandbox::abi::encode_request_meta;
use wasmhost::sandbox::{GuestError, GuestModule, Runtime, Tier};
use wasmhost_abi::RouteMeta;

use crate::sandbox::module;
use crate::support::guests;

/// How long the background compile of a small module may take: generous,
/// for a loaded CI machine (it takes well under a second here).
const TIER_UP_BOUND: Duration = Duration::from_secs(120);

fn runtime_without_cache() -> Runtime {
    let runtime = Runtime::new(16).expect("runtime");
    runtime.set_tiering(true);
    runtime
}

fn get(path: &str) -> (Vec<u8>, Vec<u8>) {
    let req = Request {
        method: Method::Get,
        path: path.to_owned(),
        query: String::new(),
        version: Version::Http11,
        headers: vec![("Host".to_owned(), "localhost".to_owned())],
        body: Vec::new(),
        client: SocketAddr::from(([127, 0, 0, 1], 40000)),
    };
    let route = RouteMeta {
        app: "t".into(),
        pattern: path.into(),
        params: Default::default(),
        rest: "".into(),
    };
    (encode_request_meta(&req, &route), req.body)
}

/// Waits until the guest's new requests run on optimized code.
fn wait_for_optimized(runtime: &Runtime, guest: &GuestModule) {
    let started = Instant::now();
    while guest.tier() != Tier::Optimized {
        assert!(
            started.elapsed() < TIER_UP_BOUND,
            "still on {:?} after {TIER_UP_BOUND:?} ({} compiles pending)",
            guest.tier(),
            runtime.tier_ups_pending()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("test WAT")
}

#[test]
fn a_new_version_serves_on_baseline_code_then_on_optimized_code_with_the_same_answers() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::with_cache(16, Some(cache.path().to_owned())).expect("runtime");
    runtime.set_tiering(true);
    let bytes = std::fs::read(guests::HELLO).expect("hello guest");
    let (meta, body) = get("/hello");
    let hold = runtime.hold_tier_ups();
    let guest = runtime
        .load_bytes("hello", Path::new(guests::HELLO), &bytes, Limits::default())
        .expect("hello loads");
    assert_eq!(guest.tier(), Tier::Baseline, "a never-seen module");
    let (first, _) = runtime.invoke(&guest, &meta, &body);
    let first = first.expect("hello answers on baseline code");
    assert_eq!(
        (first.status, &first.body[..]),
        (200, &b"Hello, world!"[..])
    );
    drop(hold);
    wait_for_optimized(&runtime, &guest);
    let (later, _) = runtime.invoke(&guest, &meta, &body);
    let later = later.expect("hello answers on optimized code");
    assert_eq!(
        (later.status, later.headers, later.body),
        (first.status, first.headers, first.body)
    );
    // Code compiled optimized once loads optimized again (a rollback):
    // wasmtime's cache has it.
    let again = runtime
        .load_bytes("hello", Path::new(guests::HELLO), &bytes, Limits::default())
        .expect("hello loads again");
    assert_eq!(again.tier(), Tier::Optimized);
    // Without a cache it would be compiled in full again: baseline first.
    let uncached = runtime_without_cache();
    for round in ["first", "second"] {
        let guest = uncached
            .load_bytes("hello", Path::new(guests::HELLO), &bytes, Limits::default())
            .expect("hello loads");
        assert_eq!(guest.tier(), Tier::Baseline, "{round} load without a cache");
        wait_for_optimized(&uncached, &guest);
    }
}

#[test]
fn without_tiering_a_load_compiles_optimized_at_once() {
    let runtime = Runtime::new(4).expect("runtime");
    let guest = runtime
        .load_bytes(
            "t",
            Path::new("t.wasm"),
            &wasm(&module("", "(call $ok (i32.const 0) (i32.const 0))", "")),
            Limits::default(),
        )
        .expect("loads");
    assert_eq!(guest.tier(), Tier::Optimized);
    assert_eq!(runtime.tier_ups_pending(), 0);
}

#[test]
fn every_limit_holds_on_baseline_code() {
    let runtime = runtime_without_cache();
    let _hold = runtime.hold_tier_ups();
    let ms = Duration::from_millis;
    let spin = module("", "(loop $l (br $l)) (i64.const 0)", "");
    let deep = module(
        "",
        "(call $down (i32.const 0)) (i64.const 0)",
        "(func $down (param i32) (call $down (i32.add (local.get 0) (i32.const 1))))",
    );
    let greedy = module(
        "",
        "(if (i32.eq (memory.grow (i32.const 4096)) (i32.const -1)) (then unreachable)) (i64.const 0)",
        "",
    );
    let cases: [(&str, String, Limits, fn(&GuestError) -> bool); 4] = [
        (
            "a spinning guest is stopped at its CPU time",
            spin.clone(),
            Limits {
                cpu_time: ms(200),
                ..Limits::default()
            },
            |e| matches!(e, GuestError::CpuTime { .. }),
        ),
        (
            "a spinning guest is stopped at its fuel budget",
            spin,
            Limits {
                fuel: Some(5_000_000),
                ..Limits::default()
            },
            |e| matches!(e, GuestError::Fuel { .. }),
        ),
        (
            "unbounded recursion overflows the Wasm stack",
            deep,
            Limits::default(),
            |e| matches!(e, GuestError::StackOverflow { .. }),
        ),
        (
            "memory beyond the app's limit is refused",
            greedy,
            Limits {
                memory: 16 << 20,
                ..Limits::default()
            },
            |e| matches!(e, GuestError::OutOfMemory { .. }),
        ),
    ];
    let (meta, body) = get("/");
    for (what, text, limits, expected) in cases {
        let guest = runtime
            .load_bytes("t", Path::new("t.wasm"), &wasm(&text), limits)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(guest.tier(), Tier::Baseline, "{what}");
        let started = Instant::now();
        let (result, _) = runtime.invoke(&guest, &meta, &body);
        match result {
            Err(e) => assert!(expected(&e), "{what}: got {e:?}"),
            Ok(r) => panic!("{what}: answered {}", r.status),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_module_the_baseline_compiler_refuses_is_refused_with_the_optimized_compilers_reason() {
    let runtime = runtime_without_cache();
    let err = runtime
        .load_bytes(
            "t",
            Path::new("bad.wasm"),
            b"\0asm\x01\0\0\0\x01\xff",
            Limits::default(),
        )
        .err()
        .expect("a truncated module is refused");
    let text = err.to_string();
    assert!(text.contains("bad.wasm"), "{text}");
    assert_eq!(runtime.tier_ups_pending(), 0, "nothing is queued for it");
}
