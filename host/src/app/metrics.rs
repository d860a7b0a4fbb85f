//! Per-app counters (requests by status class, latency, in-flight, traps, limit hits, swaps) and their Prometheus text form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// The limits whose hits are counted, by the name used in logs and metrics.
pub const LIMIT_KINDS: [&str; 7] = [
    "cpu_time",
    "wall_time",
    "memory",
    "max_response",
    "max_concurrency",
    "fuel",
    "stack",
];

/// Counters of one app. All updates are relaxed atomics: they are statistics.
#[derive(Debug, Default)]
pub struct AppMetrics {
    /// Responses by status class: index 0 = 1xx … 4 = 5xx.
    pub responses: [AtomicU64; 5],
    /// Histogram counts per `LATENCY_BUCKETS` bound, plus one for +Inf.
    pub latency_buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of latencies in microseconds.
    pub latency_sum_us: AtomicU64,
    /// Requests running now.
    pub in_flight: AtomicI64,
    /// Guest traps (any kind).
    pub traps: AtomicU64,
    /// Hits per `LIMIT_KINDS` entry.
    pub limit_hits: [AtomicU64; LIMIT_KINDS.len()],
    /// Module versions swapped in after the first load.
    pub swaps: AtomicU64,
    /// Requests whose guest ran to its end on the event loop.
    pub on_loop: AtomicU64,
    /// Requests given up on the event loop (the guest would sleep or ran
    /// long) and run again on a worker.
    pub moved: AtomicU64,
}

impl AppMetrics {
    /// Records one finished request.
    pub fn observe(&self, status: u16, latency: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        let secs = latency.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records that a request hit a limit; `kind` must be one of `LIMIT_KINDS`.
    pub fn limit_hit(&self, kind: &str) {
        if let Some(i) = LIMIT_KINDS.iter().position(|k| *k == kind) {
            self.limit_hits[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The registry of every app's counters, kept across swaps of the app.
#[derive(Debug, Default)]
pub struct Metrics {
    apps: RwLock<BTreeMap<String, Arc<AppMetrics>>>,
}

impl Metrics {
    /// The counters of an app, created on first use.
    pub fn app(&self, name: &str) -> Arc<AppMetrics> {
        if let Some(m) = self
            .apps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return m.clone();
        }
        self.apps
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Every app's counters in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let apps = self.apps.read().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, body: &mut dyn FnMut(&mut String)| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            body(&mut out);
        };
        family(
            "wasmhost_requests_total",
            "counter",
            "Responses by app and status class.",
            &mut |out| {
                for (app, m) in apps.iter() {
                    for (i, c) in m.responses.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "wasmhost_requests_total{{app=\"{app}\",class=\"{}xx\"}} {}",
                            i + 1,
                            c.load(Ordering::Relaxed)
                        );
                    }
                }
            },
        );
        family(
            "wasmhost_request_duration_seconds",
            "histogram",
            "Time from a complete request to its response.",
            &mut |out| {
                for (app, m) in apps.iter() {
                    let mut cumulative = 0;
                    for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                        cumulative += m.latency_buckets[i].load(Ordering::Relaxed);
                        let _ = writeln!(
                            out,
                            "wasmhost_request_duration_seconds_bucket{{app=\"{app}\",le=\"{bound}\"}} {cumulative}"
                        );
                    }
                    cumulative += m.latency_buckets[LATENCY_BUCKETS.len()].load(Ordering::Relaxed);
                    let _ = writeln!(
                        out,
                        "wasmhost_request_duration_seconds_bucket{{app=\"{app}\",le=\"+Inf\"}} {cumulative}"
                    );
                    let sum = m.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6;
                    let _ = writeln!(
                        out,
                        "wasmhost_request_duration_seconds_sum{{app=\"{app}\"}} {sum}"
                    );
                    let _ = writeln!(
                        out,
                        "wasmhost_request_duration_seconds_count{{app=\"{app}\"}} {cumulative}"
                    );
                }
            },
        );
        family(
            "wasmhost_in_flight",
            "gauge",
            "Requests running now.",
            &mut |out| {
                for (app, m) in apps.iter() {
                    let _ = writeln!(
                        out,
                        "wasmhost_in_flight{{app=\"{app}\"}} {}",
                        m.in_flight.load(Ordering::Relaxed)
                    );
                }
            },
        );
        family(
            "wasmhost_traps_total",
            "counter",
            "Guest traps.",
            &mut |out| {
                for (app, m) in apps.iter() {
                    let _ = writeln!(
                        out,
                        "wasmhost_traps_total{{app=\"{app}\"}} {}",
                        m.traps.load(Ordering::Relaxed)
                    );
                }
            },
        );
        family(
            "wasmhost_limit_hits_total",
            "counter",
            "Requests stopped by a limit.",
            &mut |out| {
                for (app, m) in apps.iter() {
                    for (i, kind) in LIMIT_KINDS.iter().enumerate() {
                        let _ = writeln!(
                            out,
                            "wasmhost_limit_hits_total{{app=\"{app}\",limit=\"{kind}\"}} {}",
                            m.limit_hits[i].load(Ordering::Relaxed)
                        );
                    }
                }
            },
        );
        family(
            "wasmhost_swaps_total",
            "counter",
            "Module versions swapped in.",
            &mut |out| {
                for (app, m) in apps.iter() {
                    let _ = writeln!(
                        out,
                        "wasmhost_swaps_total{{app=\"{app}\"}} {}",
                        m.swaps.load(Ordering::Relaxed)
                    );
                }
            },
        );
        family(
            "wasmhost_requests_on_loop_total",
            "counter",
            "Requests whose guest ran to its end on the event loop.",
            &mut |out| {
                for (app, m) in apps.iter() {
                    let _ = writeln!(
                        out,
                        "wasmhost_requests_on_loop_total{{app=\"{app}\"}} {}",
                        m.on_loop.load(Ordering::Relaxed)
                    );
                }
            },
        );
        family(
            "wasmhost_requests_moved_total",
            "counter",
            "Requests given up on the event loop and run again on a worker.",
            &mut |out| {
                for (app, m) in apps.iter() {
                    let _ = writeln!(
                        out,
                        "wasmhost_requests_moved_total{{app=\"{app}\"}} {}",
                        m.moved.load(Ordering::Relaxed)
                    );
                }
            },
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_series() {
        let metrics = Metrics::default();
        let app = metrics.app("blog");
        app.observe(200, Duration::from_micros(50));
        app.observe(503, Duration::from_secs(3));
        app.limit_hit("cpu_time");
        app.limit_hit("no-such-limit");
        let text = metrics.render();
        let expected = [
            "wasmhost_requests_total{app=\"blog\",class=\"2xx\"} 1",
            "wasmhost_requests_total{app=\"blog\",class=\"5xx\"} 1",
            "wasmhost_request_duration_seconds_bucket{app=\"blog\",le=\"0.0001\"} 1",
            "wasmhost_request_duration_seconds_bucket{app=\"blog\",le=\"1\"} 1",
            "wasmhost_request_duration_seconds_bucket{app=\"blog\",le=\"+Inf\"} 2",
            "wasmhost_request_duration_seconds_count{app=\"blog\"} 2",
            "wasmhost_limit_hits_total{app=\"blog\",limit=\"cpu_time\"} 1",
            "wasmhost_limit_hits_total{app=\"blog\",limit=\"memory\"} 0",
        ];
        for line in expected {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(Arc::ptr_eq(&app, &metrics.app("blog")));
    }
}
