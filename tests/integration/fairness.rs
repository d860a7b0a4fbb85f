//! Tenants cannot starve each other: while several apps keep every one of their requests asleep, a well-behaved app on the same server is answered every time, and promptly.
//!
//! The bound asserted is generous (docs/BENCHMARKS.md has the latency
//! figures): before fair admission and lent slots, the probe here waited
//! for an attacker's sleep to end (2 s) or was refused 503.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{TestServer, guests, wat_module};

/// Apps attacking at once, and the concurrent clients each (as in the attack
/// of docs/security.md, "Tenants").
const ATTACKERS: usize = 3;
const CLIENTS_PER_ATTACKER: usize = 40;
/// How long each attacking request sleeps in `poll_oneoff`.
const ATTACK_SLEEP_MS: u64 = 2_000;
/// Probes of the well-behaved app, one every `PROBE_EVERY`.
const PROBES: usize = 30;
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// The generous bound on each probe's answer; an attacker's sleep is twice it.
const PROBE_BOUND: Duration = Duration::from_secs(1);

/// One request on a new connection; the status, or `None` if the server
/// answered nothing whole within the timeout.
fn status_of(addr: SocketAddr, path: &str, timeout: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let line = raw.split(|&b| b == b'\r').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn apps_that_keep_every_request_asleep_cannot_starve_another_app() {
    // Its bound assumes no test is compiling large components meanwhile.
    let _alone = crate::support::exclusive();
    let dir = tempfile::tempdir().expect("temp dir");
    let sleeper = crate::sandbox::sleeper(ATTACK_SLEEP_MS);
    let mut apps = serde_json::Map::new();
    apps.insert("hello".into(), json!({ "module": guests::HELLO }));
    let mut routes = vec![json!({ "path": "/hello", "app": "hello" })];
    for i in 0..ATTACKERS {
        let name = format!("sleepy{i}");
        let module = wat_module(dir.path(), &name, &sleeper);
        // Default limits: the attack stays within what any app may do.
        apps.insert(name.clone(), json!({ "module": module }));
        routes.push(json!({ "path": format!("/{name}"), "app": name }));
    }
    let paths = (0..ATTACKERS).map(|i| format!("/sleepy{i}")).collect();
    attack_and_probe(dir, json!({ "apps": apps, "routes": routes }), paths);
}

#[test]
fn components_that_keep_every_request_blocked_cannot_starve_another_app() {
    let _alone = crate::support::exclusive();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut apps = serde_json::Map::new();
    apps.insert("hello".into(), json!({ "module": guests::HELLO }));
    let mut routes = vec![json!({ "path": "/hello", "app": "hello" })];
    for i in 0..ATTACKERS {
        let name = format!("blocked{i}");
        apps.insert(name.clone(), json!({ "module": guests::COMPONENT_STREAM }));
        routes.push(json!({ "path": format!("/{name}"), "app": name }));
    }
    // Each attacking request blocks on a monotonic-clock pollable after its
    // first chunk, for the whole attack sleep.
    let paths = (0..ATTACKERS)
        .map(|i| format!("/blocked{i}?chunks=2&size=1&delay_ms={ATTACK_SLEEP_MS}"))
        .collect();
    attack_and_probe(dir, json!({ "apps": apps, "routes": routes }), paths);
}

/// Serves `routes`, sends `CLIENTS_PER_ATTACKER` clients at each of `paths`
/// for six seconds, and probes `/hello` meanwhile: every probe must be
/// answered 200 within `PROBE_BOUND`.
fn attack_and_probe(dir: tempfile::TempDir, routes: serde_json::Value, paths: Vec<String>) {
    // The default worker count of a 2-core machine.
    let server = TestServer::start_in(dir, routes, |s| s.workers = 16);
    let addr = server.addr;

    let attack_ends = Instant::now() + Duration::from_secs(6);
    let attackers: Vec<_> = (0..paths.len() * CLIENTS_PER_ATTACKER)
        .map(|n| {
            let path = paths[n % paths.len()].clone();
            thread::spawn(move || {
                let (mut answered, mut slept) = (0u32, 0u32);
                while Instant::now() < attack_ends {
                    let status = status_of(addr, &path, Duration::from_secs(20));
                    answered += 1;
                    if status == Some(200) {
                        slept += 1;
                    } else {
                        // Refused by its own app's limits (503): try again soon.
                        thread::sleep(Duration::from_millis(20));
                    }
                }
                (answered, slept)
            })
        })
        .collect();

    // Let every attacking app fill its share first.
    thread::sleep(Duration::from_millis(700));
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for i in 0..PROBES {
        let started = Instant::now();
        let status = status_of(addr, "/hello", Duration::from_secs(20));
        let took = started.elapsed();
        latencies.push(took);
        if status != Some(200) || took > PROBE_BOUND {
            failures.push(format!("probe {i}: {status:?} after {took:?}"));
        }
        thread::sleep(PROBE_EVERY.saturating_sub(took));
    }

    let mut slept = 0;
    for attacker in attackers {
        slept += attacker.join().expect("attacker").1;
    }
    latencies.sort();
    println!(
        "probes: median {:?}, worst {:?}; attacking requests that slept to the end: {slept}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
    );
    assert!(
        slept > 0,
        "the attack never ran (no attacking request slept to its end)"
    );
    assert!(
        failures.is_empty(),
        "the well-behaved app was starved: {failures:?}"
    );
}
