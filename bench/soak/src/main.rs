//! `soak`: runs mixed traffic against the real `wasmhost` binary for a chosen time, samples its RSS, descriptors, threads and error rate once a second, writes them as CSV and SVG, and fails if a resource keeps growing or a request fails.
//!
//! See docs/reliability.md ("Soak") for what it sends and the rule it applies;
//! `bench/soak.sh MINUTES` builds what it needs and runs it.

#![forbid(unsafe_code)]

mod client;
mod guests;
mod plot;
mod sample;
mod server;
mod traffic;
mod verdict;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

use sample::Sample;
use verdict::Growth;

/// Shortest run: the rule needs ten samples per quarter.
const MIN_SECONDS: u64 = verdict::MIN_SAMPLES as u64;
/// Longest run: a day is far beyond any soak this is meant for, and bounds
/// every loop in it.
const MAX_SECONDS: u64 = 24 * 60 * 60;
/// Seconds between progress lines: a CI log shows the run is alive without
/// a line per sample.
const PROGRESS_EVERY: u64 = 10;

#[derive(Parser)]
#[command(
    name = "soak",
    about = "Soak-test the wasmhost binary: mixed traffic, resource samples, a plot, a verdict"
)]
struct Args {
    /// How long to run the traffic, in seconds.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// The wasmhost binary (default: $CARGO_TARGET_DIR/debug/wasmhost, else REPO/target/debug/wasmhost).
    #[arg(long)]
    wasmhost: Option<PathBuf>,
    /// The repository root: guests are read from REPO/target/guests, static files from REPO/static.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Where to write soak.csv, soak.svg, summary.txt and the server's log
    /// (default: a new temp dir, kept and printed).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The kinds of traffic to send, comma-separated (default: all): browse,
    /// users, hostile, swap, idle, slowloris. Fewer kinds narrow down what
    /// makes a resource grow.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(traffic::KINDS), default_values_t = traffic::KINDS.map(String::from))]
    traffic: Vec<String>,
    /// Keep the server's working dir (routes, modules, data) even when the run passes.
    #[arg(long)]
    keep: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

/// The binary to test, from the flag or the target dir.
fn binary(args: &Args) -> PathBuf {
    if let Some(path) = &args.wasmhost {
        return path.clone();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| args.repo.join("target"));
    target.join("debug").join("wasmhost")
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the soak; whether it passed.
fn run(args: &Args) -> Result<bool, String> {
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&args.seconds) {
        return Err(format!(
            "--seconds must be {MIN_SECONDS} to {MAX_SECONDS}, not {}",
            args.seconds
        ));
    }
    let binary = absolute(&binary(args))?;
    if !binary.is_file() {
        return Err(format!(
            "{} is missing: build it (`cargo build -p wasmhost`) or pass --wasmhost",
            binary.display()
        ));
    }
    let repo = absolute(&args.repo)?;
    let out = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            absolute(dir)?
        }
        None => tempfile::Builder::new()
            .prefix("wasmhost-soak-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?
            .keep(),
    };
    let work = tempfile::Builder::new()
        .prefix("wasmhost-soak-run-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let setup = server::prepare(work.path(), &repo)?;
    let token = server::random_token()?;
    let log = out.join("wasmhost.log");
    let mut server = server::Server::start(&binary, &setup, &token, &log)?;
    let pid = server.pid();
    println!(
        "soak: {} (pid {pid}) on http://{}, admin on http://{}; {} s of traffic ({}); output in {}",
        binary.display(),
        server.addr,
        server.admin,
        args.seconds,
        args.traffic.join(", "),
        out.display()
    );

    let stats = Arc::new(traffic::Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let ctx = traffic::Ctx {
        addr: server.addr,
        admin: server.admin,
        token: token.into(),
        stats: stats.clone(),
        stop: stop.clone(),
        deadline: started + Duration::from_secs(args.seconds),
    };
    let material = Arc::new(traffic::Material {
        static_files: setup.static_files.clone(),
        versions: setup.versions.clone(),
        swapfile: setup.swapfile.clone(),
    });
    let threads = traffic::start(&ctx, material, &args.traffic);

    let (samples, died) = sample_run(&mut server, pid, &stats, started, args.seconds);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        if t.join().is_err() {
            stats.error("a traffic thread panicked".into());
        }
    }
    let stopped = if died.is_none() {
        server.stop()
    } else {
        drop(server);
        Ok(())
    };

    sample::write_csv(&out.join("soak.csv"), &samples).map_err(|e| format!("soak.csv: {e}"))?;
    let judged = judge(&samples);
    let loads: Vec<f64> = samples.iter().map(|s| s.load1).collect();
    let title = format!(
        "wasmhost soak: {} s, {} requests, {} errors (load average {:.1})",
        samples.len(),
        stats.answered.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
        verdict::median(&loads)
    );
    if let Some(judged) = &judged {
        plot::draw(&out.join("soak.svg"), &title, &samples, judged)?;
    }
    let (report, passed) = report(&samples, judged.as_ref(), &stats, died, stopped);
    print!("{report}");
    std::fs::write(out.join("summary.txt"), &report).map_err(|e| format!("summary.txt: {e}"))?;
    println!(
        "soak: CSV, SVG, summary and server log in {}",
        out.display()
    );
    if !passed || args.keep {
        println!(
            "soak: the server's working dir is kept in {}",
            work.keep().display()
        );
    }
    Ok(passed)
}

/// Samples the server once a second for `seconds`; stops early (with the
/// reason) if it exits or cannot be read.
fn sample_run(
    server: &mut server::Server,
    pid: u32,
    stats: &traffic::Stats,
    started: Instant,
    seconds: u64,
) -> (Vec<Sample>, Option<String>) {
    let mut samples = Vec::new();
    let mut last = (0, 0, 0);
    for second in 1..=seconds {
        let due = started + Duration::from_secs(second);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if let Some(status) = server.exited() {
            return (
                samples,
                Some(format!("the server exited ({status}) at {second} s")),
            );
        }
        let (rss_kib, threads, fds) = match sample::process(pid) {
            Ok(v) => v,
            Err(e) => {
                return (
                    samples,
                    Some(format!("sampling the server at {second} s: {e}")),
                );
            }
        };
        let now = (
            stats.answered.load(Ordering::Relaxed),
            stats.errors.load(Ordering::Relaxed),
            stats.throttled.load(Ordering::Relaxed),
        );
        let s = Sample {
            second,
            rss_kib,
            fds,
            threads,
            answered: now.0 - last.0,
            errors: now.1 - last.1,
            throttled: now.2 - last.2,
            load1: sample::load1(),
        };
        last = now;
        if second % PROGRESS_EVERY == 0 {
            println!(
                "soak: {second:>5} s  RSS {:>7.1} MiB  fds {:>4}  threads {:>3}  {:>4} req/s  errors {}  load {:.2}",
                s.rss_kib as f64 / 1024.0,
                s.fds,
                s.threads,
                s.answered,
                now.1,
                s.load1
            );
        }
        samples.push(s);
    }
    (samples, None)
}

/// RSS, descriptors and threads judged (none if too few samples).
fn judge(samples: &[Sample]) -> Option<[Growth; 3]> {
    if samples.len() < verdict::MIN_SAMPLES {
        return None;
    }
    let col = |f: fn(&Sample) -> u64| samples.iter().map(|s| f(s) as f64).collect::<Vec<_>>();
    let rss_mib: Vec<f64> = col(|s| s.rss_kib).iter().map(|k| k / 1024.0).collect();
    Some([
        verdict::growth(
            "RSS (MiB)",
            &rss_mib,
            verdict::RSS_SLACK_MIB,
            verdict::RSS_SLACK_FRACTION,
        ),
        verdict::growth("open descriptors", &col(|s| s.fds), verdict::FD_SLACK, 0.0),
        verdict::growth("threads", &col(|s| s.threads), verdict::THREAD_SLACK, 0.0),
    ])
}

/// The summary text and whether the run passed.
fn report(
    samples: &[Sample],
    judged: Option<&[Growth; 3]>,
    stats: &traffic::Stats,
    died: Option<String>,
    stopped: Result<(), String>,
) -> (String, bool) {
    use std::fmt::Write as _;
    let load = |o: &std::sync::atomic::AtomicU64| o.load(Ordering::Relaxed);
    let mut r = String::new();
    let mut passed = true;
    let _ = writeln!(r, "== soak summary ==");
    let _ = writeln!(r, "samples: {} (one a second)", samples.len());
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let _ = writeln!(
            r,
            "start: RSS {:.1} MiB, {} fds, {} threads",
            first.rss_kib as f64 / 1024.0,
            first.fds,
            first.threads
        );
        let _ = writeln!(
            r,
            "end:   RSS {:.1} MiB, {} fds, {} threads",
            last.rss_kib as f64 / 1024.0,
            last.fds,
            last.threads
        );
        let max_rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
        let max_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
        let max_threads = samples.iter().map(|s| s.threads).max().unwrap_or(0);
        let _ = writeln!(
            r,
            "max:   RSS {:.1} MiB, {max_fds} fds, {max_threads} threads",
            max_rss as f64 / 1024.0
        );
        let loads: Vec<f64> = samples.iter().map(|s| s.load1).collect();
        let _ = writeln!(
            r,
            "load average (1 min): median {:.2}, max {:.2}",
            verdict::median(&loads),
            loads.iter().copied().fold(0.0, f64::max)
        );
    }
    let answered = load(&stats.answered);
    let errors = load(&stats.errors);
    let _ = writeln!(
        r,
        "requests answered: {answered} ({:.0}/s); throttled (503): {}; errors: {errors} (allowed {})",
        answered as f64 / samples.len().max(1) as f64,
        load(&stats.throttled),
        verdict::MAX_ERRORS
    );
    let _ = writeln!(
        r,
        "hot swaps: {}; idle connections closed by the server and reopened: {}; slowloris connections cut: {}",
        load(&stats.swaps),
        load(&stats.idle_closed),
        load(&stats.slowloris_cut)
    );
    match judged {
        Some(judged) => {
            let _ = writeln!(
                r,
                "growth rule: median of the last quarter <= median of the 2nd quarter x (1 + fraction) + slack (1st quarter is warm-up)"
            );
            for g in judged {
                let _ = writeln!(
                    r,
                    "  {:<17} 2nd quarter {:>7.1}  last quarter {:>7.1}  allowed {:>7.1}  slope {:>+6.2}/min  {}",
                    g.name,
                    g.q2,
                    g.q4,
                    g.allowed,
                    g.slope_per_min,
                    if g.ok() { "ok" } else { "KEEPS GROWING" }
                );
                passed &= g.ok();
            }
        }
        None => {
            let _ = writeln!(r, "too few samples to judge growth");
            passed = false;
        }
    }
    if errors > verdict::MAX_ERRORS {
        let _ = writeln!(r, "FAIL: {errors} errors; the first ones:");
        for line in stats.error_lines() {
            let _ = writeln!(r, "  {line}");
        }
        passed = false;
    }
    match (died, stopped) {
        (Some(why), _) | (None, Err(why)) => {
            let _ = writeln!(r, "FAIL: {why}");
            passed = false;
        }
        (None, Ok(())) => {
            let _ = writeln!(r, "the server exited cleanly on SIGTERM");
        }
    }
    let _ = writeln!(r, "verdict: {}", if passed { "PASS" } else { "FAIL" });
    (r, passed)
}
