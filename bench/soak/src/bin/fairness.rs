//! Fairness benchmark: several apps keep every request asleep in `poll_oneoff` while a well-behaved app is probed every 100 ms; prints the probes' latency figures (docs/BENCHMARKS.md, "Tenants under attack").
//!
//! Runs the real `wasmhost` binary on 127.0.0.1 with its default workers and
//! default per-app limits; everything it sends goes to that one socket, and
//! every loop is bounded by the run's duration.

#[allow(dead_code, reason = "the soak's other guests are not used here")]
#[path = "../guests.rs"]
mod guests;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;

/// Longest wait for any one answer: far beyond any sleep of the attack.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause of an attacking client after a refusal (503), so that refusals do
/// not turn the attack into a CPU flood of the event loop.
const REFUSED_PAUSE: Duration = Duration::from_millis(20);
/// Time the attack runs before the first probe, so that every attacking app
/// holds what it can.
const RAMP_UP: Duration = Duration::from_millis(1500);
/// Time the server gets to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Parser)]
#[command(about = "Probe one app while others keep every request asleep")]
struct Args {
    /// The wasmhost binary.
    #[arg(long)]
    wasmhost: PathBuf,
    /// The well-behaved app's module (the hello guest).
    #[arg(long)]
    hello: PathBuf,
    /// Attacking apps.
    #[arg(long, default_value_t = 3)]
    attackers: usize,
    /// Concurrent clients per attacking app.
    #[arg(long, default_value_t = 40)]
    clients: usize,
    /// How long each attacking request sleeps, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    sleep_ms: u64,
    /// Probes of the well-behaved app, one every `--probe-every-ms`.
    #[arg(long, default_value_t = 100)]
    probes: usize,
    #[arg(long, default_value_t = 100)]
    probe_every_ms: u64,
}

/// One request on a new connection: its status, or `None`.
fn status_of(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, ANSWER_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).ok()?;
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

/// The value at quantile `q` of sorted `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn run(args: &Args) -> Result<bool, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let sleeper = wat::parse_str(guests::sleeper(args.sleep_ms)).map_err(|e| e.to_string())?;
    let hello = std::path::absolute(&args.hello).map_err(|e| e.to_string())?;
    let mut apps = serde_json::Map::new();
    apps.insert("hello".into(), serde_json::json!({ "module": hello }));
    let mut routes = vec![serde_json::json!({ "path": "/hello", "app": "hello" })];
    for i in 0..args.attackers {
        let name = format!("sleepy{i}");
        let file = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&file, &sleeper).map_err(|e| e.to_string())?;
        apps.insert(name.clone(), serde_json::json!({ "module": file }));
        routes.push(serde_json::json!({ "path": format!("/{name}"), "app": name }));
    }
    let config = serde_json::json!({ "apps": apps, "routes": routes });
    std::fs::write(dir.path().join("routes.json"), config.to_string())
        .map_err(|e| e.to_string())?;

    let wasmhost = std::path::absolute(&args.wasmhost).map_err(|e| e.to_string())?;
    let mut child = Command::new(&wasmhost)
        .args([
            "serve",
            "--routes",
            "routes.json",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", args.wasmhost.display()))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
        for _ in lines.map_while(Result::ok) {}
    });
    let line = rx
        .recv_timeout(START_TIMEOUT)
        .ok()
        .flatten()
        .ok_or("the server printed no address")?;
    let addr: SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("no address in {line:?}"))?;
    if !addr.ip().is_loopback() {
        let _ = child.kill();
        return Err(format!("not a loopback address: {addr}"));
    }

    let probe_time = Duration::from_millis(args.probe_every_ms) * args.probes as u32;
    let attack_ends = Instant::now() + RAMP_UP + probe_time;
    let attackers: Vec<_> = (0..args.attackers * args.clients)
        .map(|n| {
            let path = format!("/sleepy{}", n % args.attackers);
            thread::spawn(move || {
                let (mut slept, mut refused) = (0u64, 0u64);
                while Instant::now() < attack_ends {
                    if status_of(addr, &path) == Some(200) {
                        slept += 1;
                    } else {
                        refused += 1;
                        thread::sleep(REFUSED_PAUSE);
                    }
                }
                (slept, refused)
            })
        })
        .collect();
    thread::sleep(RAMP_UP);
    let every = Duration::from_millis(args.probe_every_ms);
    let mut latencies = Vec::with_capacity(args.probes);
    let mut failed = 0;
    for _ in 0..args.probes {
        let started = Instant::now();
        let ok = status_of(addr, "/hello") == Some(200);
        let took = started.elapsed();
        latencies.push(took);
        failed += usize::from(!ok);
        thread::sleep(every.saturating_sub(took));
    }
    let (mut slept, mut refused) = (0, 0);
    for a in attackers {
        let (s, r) = a.join().map_err(|_| "an attacking client panicked")?;
        slept += s;
        refused += r;
    }
    let _ = child.kill();
    let _ = child.wait();
    latencies.sort();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "attackers {} x {} clients, sleep {} ms: probes {}, failed {}, p50 {:.1} ms, p99 {:.1} ms, worst {:.1} ms; attacking requests answered 200: {slept}, refused: {refused}; load {}",
        args.attackers,
        args.clients,
        args.sleep_ms,
        latencies.len(),
        failed,
        quantile(&latencies, 0.5).as_secs_f64() * 1e3,
        quantile(&latencies, 0.99).as_secs_f64() * 1e3,
        quantile(&latencies, 1.0).as_secs_f64() * 1e3,
        load.split(' ').take(3).collect::<Vec<_>>().join(" "),
    );
    Ok(failed == 0)
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.attackers == 0 || args.clients == 0 || args.probes == 0 {
        eprintln!("fairness: --attackers, --clients and --probes must be at least 1");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fairness: {e}");
            ExitCode::from(2)
        }
    }
}
