//! JavaScript and Python `wasi:http` components (componentize-js from npm, componentize-py from PyPI), served unchanged and hot-swapped under load with no failed request.
//!
//! `guest-components/build-dynamic.sh` builds them (node ≥ 20 with npm,
//! python3 with venv) into `target/components/dynamic`, cached by their
//! inputs; the host's compiled-module cache lives beside them, so later runs
//! neither rebuild nor recompile. Without the toolchains the test fails
//! under `CI=true` and says loudly that it skipped otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Client, exclusive};

const TOKEN: &str = "dynamic-admin-token";

/// Client threads per app during the swap.
const LOAD_THREADS: usize = 2;

/// Most requests one load thread sends: bounds the test even if a swap stalls.
const MAX_REQUESTS_PER_THREAD: u64 = 20_000;

/// Where the built components and the host's caches live.
fn out_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/components/dynamic")
}

/// Builds version `version` of both components; `None` (after saying so)
/// when a toolchain is missing and this is not CI.
fn build(version: &str) -> Option<(PathBuf, PathBuf)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-components/build-dynamic.sh");
    let out = out_dir();
    // At the lowest priority: the toolchains take a minute of both cores on
    // a fresh machine, which the tests running beside this one need more.
    let result = Command::new("nice")
        .args(["-n", "19", "bash"])
        .arg(&script)
        .arg(&out)
        .arg(version)
        .output();
    let failure = match result {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Some(format!("cannot run nice and bash: {e}")),
    };
    if let Some(why) = failure {
        let message = format!(
            "the JavaScript and Python component test needs node >= 20 with npm and python3 \
             with venv (build-dynamic.sh said: {})",
            why.trim()
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}: missing under CI");
        }
        eprintln!("\n*** SKIPPED: {message} ***\n");
        return None;
    }
    Some((
        out.join(format!("js-hello-v{version}.wasm")),
        out.join(format!("py-hello-v{version}.wasm")),
    ))
}

/// GET `path` on a fresh connection.
fn get(addr: SocketAddr, path: &str) -> crate::support::Resp {
    let mut c = Client::connect(addr);
    c.send(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    c.read_response()
}

/// The JSON answer of `path`, checked to be a 200.
fn json_at(addr: SocketAddr, path: &str) -> Value {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "GET {path}"
    );
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", r.text()))
}

/// Keep-alive clients on `path` until stopped; each answer must be a
/// complete 200 JSON from version 1 or 2.
fn load(
    addr: SocketAddr,
    path: &'static str,
    stop: &Arc<AtomicBool>,
    ok: &Arc<AtomicU64>,
) -> Vec<std::thread::JoinHandle<Result<(), String>>> {
    (0..LOAD_THREADS)
        .map(|_| {
            let (stop, ok) = (stop.clone(), ok.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for _ in 0..MAX_REQUESTS_PER_THREAD {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    c.try_send(
                        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
                    )
                    .map_err(|e| format!("send failed: {e}"))?;
                    let r = c.read_response();
                    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                    let version = v["version"].as_str().unwrap_or("");
                    if r.status != 200 || !(version == "1" || version == "2") {
                        return Err(format!("GET {path}: {} {:?}", r.status, r.text()));
                    }
                    ok.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(())
            })
        })
        .collect()
}

#[test]
fn javascript_and_python_components_serve_and_swap_under_load_with_no_failed_request() {
    // Building and compiling these takes a minute of both cores: not beside
    // the fairness test.
    let _alone = exclusive();
    let Some((js1, py1)) = build("1") else { return };
    let Some((js2, py2)) = build("2") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let routes = json!({
        "apps": {
            "js": { "module": js1 },
            "py": { "module": py1 }
        },
        "routes": [
            { "path": "/js/...", "app": "js" },
            { "path": "/py/...", "app": "py" }
        ]
    });
    std::fs::write(dir.path().join("routes.json"), routes.to_string()).unwrap();
    let mut server = wasmhost::net::ServerConfig::new("127.0.0.1:0".parse().unwrap());
    server.workers = 2 * LOAD_THREADS + 4;
    let started = Instant::now();
    let host = wasmhost::start_host(
        wasmhost::Options {
            routes: dir.path().join("routes.json"),
            server,
            max_body: wasmhost::limits::DEFAULT_MAX_BODY,
            // The compiled-module cache: later runs load instead of compiling.
            data_dir: Some(out_dir().join("host-data")),
            redis: None,
        },
        wasmhost::HotSwap {
            watch: false,
            admin: Some(wasmhost::control::admin::AdminConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                token: TOKEN.to_owned(),
            }),
            data_dir: Some(dir.path().join("deploys")),
            baseline_tier: true,
        },
    )
    .unwrap_or_else(|e| panic!("host failed to start: {e:#}"));
    println!(
        "JavaScript and Python components loaded in {:?}",
        started.elapsed()
    );
    let addr = host.local_addr();
    let admin = format!("http://{}", host.admin_addr().expect("admin listener"));

    for (app, lang, title) in [
        ("js", "js", "Hello from JavaScript"),
        ("py", "py", "Hello from Python"),
    ] {
        let page = get(addr, &format!("/{app}/page?q=1"));
        assert_eq!(page.status, 200, "{}", page.text());
        assert!(
            page.header("content-type")
                .is_some_and(|t| t.starts_with("text/html"))
        );
        let text = page.text();
        assert!(text.contains(&format!("<h1>{title}</h1>")), "{text}");
        assert!(text.contains(&format!("/{app}/page?q=1")), "{text}");
        let v = json_at(addr, &format!("/{app}/json?x=%2F"));
        assert_eq!(v["lang"], lang);
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], format!("/{app}/json?x=%2F"));
        assert_eq!(v["version"], "1");
    }

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let mut clients = load(addr, "/js/json", &stop, &ok);
    clients.extend(load(addr, "/py/json", &stop, &ok));
    for (app, v2) in [("js", &js2), ("py", &py2)] {
        let bytes = std::fs::read(v2).expect("version 2");
        let since = Instant::now();
        let answer = wasmhost::control::admin::call(
            &admin,
            TOKEN,
            "PUT",
            &format!("/apps/{app}/module"),
            &bytes,
        )
        .expect("deploy call");
        assert_eq!(answer.status, 200, "deploy {app}: {}", answer.body);
        println!("{app} version 2 deployed in {:?}", since.elapsed());
        // The deploy returns after the swap: the next request is version 2.
        assert_eq!(
            json_at(addr, &format!("/{app}/json"))["version"],
            "2",
            "{app}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        match c.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("a request failed during the swap: {e}"),
            Err(_) => panic!("a load client panicked (reset or malformed response)"),
        }
    }
    let served = ok.load(Ordering::Relaxed);
    assert!(served > 0, "the load clients got no answer");
    println!("{served} answers under load while both apps were swapped, none failed");
    host.shutdown().expect("clean shutdown");
}
