//! Per-app limits: their named bounds and defaults, [`Limits`], and their validation.
//!
//! Every bound a config (and so its apps) may ask for is a named constant here,
//! with its reason; `parse_limits` checks an app's `"limits"` against them.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::error::ConfigError;
use super::raw::RawLimits;
use super::units::{GIB, KIB, MIB, fmt_duration, fmt_size, parse_duration, parse_size};

/// Default guest memory: enough for typical handlers, small enough that many
/// instances fit in RAM at once.
pub const DEFAULT_MEMORY: u64 = 64 * MIB;
/// Default CPU time per request: a handler that computes for a second is
/// almost certainly stuck.
pub const DEFAULT_CPU_TIME: Duration = Duration::from_secs(1);
/// Default wall time per request: room for slow host calls without letting a
/// request hold a worker indefinitely.
pub const DEFAULT_WALL_TIME: Duration = Duration::from_secs(10);
/// Default largest request body: forms and small uploads fit; larger is
/// answered 413 (same as the server-wide default).
pub const DEFAULT_MAX_BODY: u64 = 10 * MIB;
/// Default largest response: pages and small downloads fit, and a runaway
/// guest cannot make the host buffer much.
pub const DEFAULT_MAX_RESPONSE: u64 = 16 * MIB;
/// Default concurrent instances per app: one busy app cannot take every
/// worker, and 16 × 64 MiB bounds its memory at 1 GiB.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 16;
/// Default captured stdout/stderr per request: enough for diagnostics, too
/// little to flood the log.
pub const DEFAULT_LOG_OUTPUT: u64 = 64 * KIB;

/// Smallest memory limit: below 1 MiB not even a minimal Rust guest starts.
pub const MIN_MEMORY: u64 = MIB;
/// Largest memory limit: a wasm32 linear memory cannot exceed 4 GiB.
pub const MAX_MEMORY: u64 = 4 * GIB;
/// Shortest time limit: time limits are enforced with millisecond granularity.
pub const MIN_TIME: Duration = Duration::from_millis(1);
/// Longest time limit: a request running for ten minutes is hung, not slow.
pub const MAX_TIME: Duration = Duration::from_secs(10 * 60);
/// Largest body limit: bodies are buffered in the host and copied into the
/// guest's memory, which is itself at most 4 GiB.
pub const MAX_MAX_BODY: u64 = GIB;
/// Smallest response limit: a response needs room for its meta and headers.
pub const MIN_MAX_RESPONSE: u64 = KIB;
/// Largest response limit: responses are buffered in the host before sending.
pub const MAX_MAX_RESPONSE: u64 = GIB;
/// Most concurrent instances per app: beyond this, memory and scheduling
/// overhead dominate any gain.
pub const MAX_MAX_CONCURRENCY: u32 = 10_000;
/// Largest log-output limit: guest output is buffered per request.
pub const MAX_LOG_OUTPUT: u64 = 16 * MIB;
/// Default requests that may wait for one of an app's instance slots: absorbs
/// a burst as large as the default concurrency; more waiting only adds latency.
pub const DEFAULT_MAX_QUEUE: u32 = 16;
/// Most requests that may wait per app: each waiter holds a worker thread.
pub const MAX_MAX_QUEUE: u32 = 10_000;
/// Default longest wait for an instance slot: a request that cannot start
/// within a second is better told to retry (`Retry-After: 1`).
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
/// Smallest fuel budget: a guest's start-up alone needs thousands of units.
pub const MIN_FUEL: u64 = 10_000;
/// Largest fuel budget: about four minutes of straight-line Wasm here (5 M
/// units lasted 1.3 ms), far past any time limit.
pub const MAX_FUEL: u64 = 1_000_000_000_000;
/// Largest error page an app may ship: pages are kept in memory per app.
pub const MAX_ERROR_PAGE: u64 = 64 * KIB;
/// Statuses an app may ship its own page for: the answers to its own failures.
pub const ERROR_PAGE_STATUSES: [u16; 4] = [500, 502, 503, 504];
/// Most bytes of granted environment (names and values): copied into every
/// instance of the app.
pub const MAX_ENV_BYTES: usize = 64 * 1024;
/// Longest app name: app names tag log lines and must stay short.
pub const MAX_APP_NAME_LEN: usize = 63;

/// The limits an app's requests run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub memory: u64,
    /// CPU time per request.
    pub cpu_time: Duration,
    /// Wall-clock time per request.
    pub wall_time: Duration,
    /// Largest request body, in bytes.
    pub max_body: u64,
    /// Largest response (meta and body), in bytes.
    pub max_response: u64,
    /// Most instances running at once.
    pub max_concurrency: u32,
    /// Most captured stdout/stderr per request, in bytes.
    pub log_output: u64,
    /// Fuel per request (a deterministic instruction budget); `None`: no fuel.
    pub fuel: Option<u64>,
    /// Most requests waiting for an instance slot; more are answered 503.
    pub max_queue: u32,
    /// Longest a request waits for an instance slot before it is answered 503.
    pub queue_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY,
            cpu_time: DEFAULT_CPU_TIME,
            wall_time: DEFAULT_WALL_TIME,
            max_body: DEFAULT_MAX_BODY,
            max_response: DEFAULT_MAX_RESPONSE,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            log_output: DEFAULT_LOG_OUTPUT,
            fuel: None,
            max_queue: DEFAULT_MAX_QUEUE,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }
}

/// Validates an app's limits, filling in defaults.
pub(super) fn parse_limits(path: &Path, app: &str, raw: &RawLimits) -> Result<Limits, ConfigError> {
    let error = |field: &str, message: String| ConfigError::Limit {
        path: path.to_path_buf(),
        field: format!("apps.{app}.limits.{field}"),
        message,
    };
    let size = |field: &str, value: &Option<Value>, default: u64, min: u64, max: u64| {
        let Some(value) = value else {
            return Ok(default);
        };
        let bytes = parse_size(value).map_err(|m| error(field, m))?;
        if bytes < min || bytes > max {
            return Err(error(
                field,
                format!(
                    "{value} is out of range ({} to {})",
                    fmt_size(min),
                    fmt_size(max)
                ),
            ));
        }
        Ok(bytes)
    };
    let time = |field: &str, value: &Option<Value>, default: Duration| {
        let Some(value) = value else {
            return Ok(default);
        };
        let duration = parse_duration(value).map_err(|m| error(field, m))?;
        if duration < MIN_TIME || duration > MAX_TIME {
            return Err(error(
                field,
                format!(
                    "{value} is out of range ({} to {})",
                    fmt_duration(MIN_TIME),
                    fmt_duration(MAX_TIME)
                ),
            ));
        }
        Ok(duration)
    };
    let max_concurrency = match &raw.max_concurrency {
        None => DEFAULT_MAX_CONCURRENCY,
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=MAX_MAX_CONCURRENCY).contains(n))
            .ok_or_else(|| {
                error(
                    "max_concurrency",
                    format!("{value} is not a whole number from 1 to {MAX_MAX_CONCURRENCY}"),
                )
            })?,
    };
    let max_queue = match &raw.max_queue {
        None => DEFAULT_MAX_QUEUE,
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= MAX_MAX_QUEUE)
            .ok_or_else(|| {
                error(
                    "max_queue",
                    format!("{value} is not a whole number from 0 to {MAX_MAX_QUEUE}"),
                )
            })?,
    };
    let fuel = match &raw.fuel {
        None => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|n| (MIN_FUEL..=MAX_FUEL).contains(n))
                .ok_or_else(|| {
                    error(
                        "fuel",
                        format!("{value} is not a whole number from {MIN_FUEL} to {MAX_FUEL}"),
                    )
                })?,
        ),
    };
    Ok(Limits {
        memory: size(
            "memory",
            &raw.memory,
            DEFAULT_MEMORY,
            MIN_MEMORY,
            MAX_MEMORY,
        )?,
        cpu_time: time("cpu_time", &raw.cpu_time, DEFAULT_CPU_TIME)?,
        wall_time: time("wall_time", &raw.wall_time, DEFAULT_WALL_TIME)?,
        max_body: size("max_body", &raw.max_body, DEFAULT_MAX_BODY, 0, MAX_MAX_BODY)?,
        max_response: size(
            "max_response",
            &raw.max_response,
            DEFAULT_MAX_RESPONSE,
            MIN_MAX_RESPONSE,
            MAX_MAX_RESPONSE,
        )?,
        max_concurrency,
        log_output: size(
            "log_output",
            &raw.log_output,
            DEFAULT_LOG_OUTPUT,
            0,
            MAX_LOG_OUTPUT,
        )?,
        fuel,
        max_queue,
        queue_timeout: time("queue_timeout", &raw.queue_timeout, DEFAULT_QUEUE_TIMEOUT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PATH, error, parse, with_limits};
    use super::*;

    #[test]
    fn defaults() {
        let want = Limits {
            memory: 64 * MIB,
            cpu_time: Duration::from_secs(1),
            wall_time: Duration::from_secs(10),
            max_body: 10 * MIB,
            max_response: 16 * MIB,
            max_concurrency: 16,
            log_output: 64 * KIB,
            fuel: None,
            max_queue: 16,
            queue_timeout: Duration::from_secs(1),
        };
        assert_eq!(Limits::default(), want);
        // (limits object, expected limits): absent and empty mean all defaults,
        // and one field leaves the others at their defaults.
        let table = [
            (None, want.clone()),
            (Some("{}"), want.clone()),
            (
                Some(r#"{"memory": "128 MiB"}"#),
                Limits {
                    memory: 128 * MIB,
                    ..want.clone()
                },
            ),
        ];
        for (limits, want) in table {
            let text = match limits {
                None => r#"{"apps": {"a": {"module": "a.wasm"}}, "routes": [{"path": "/", "app": "a"}]}"#
                    .to_owned(),
                Some(limits) => with_limits(limits),
            };
            match parse(&text) {
                Ok(c) => assert_eq!(c.apps["a"].limits, want, "{limits:?}"),
                Err(e) => panic!("{limits:?}: {e}"),
            }
        }
        // Without apps there are no defaults to fill, and that is fine.
        let config = parse(r#"{"routes": [{"path": "/s/...", "static": "s"}]}"#);
        assert!(config.is_ok_and(|c| c.apps.is_empty() && c.warnings.is_empty()));
    }

    #[test]
    fn sandbox_limits() {
        let c = match parse(&with_limits(
            r#"{"fuel": 5000000, "max_queue": 0, "queue_timeout": "250ms"}"#,
        )) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let limits = &c.apps["a"].limits;
        assert_eq!(limits.fuel, Some(5_000_000));
        assert_eq!(limits.max_queue, 0);
        assert_eq!(limits.queue_timeout, Duration::from_millis(250));
        // (limits object, the end of the error message)
        let table = [
            (
                r#"{"fuel": 10}"#,
                "apps.a.limits.fuel: 10 is not a whole number from 10000 to 1000000000000",
            ),
            (
                r#"{"fuel": "1 MiB"}"#,
                r#"apps.a.limits.fuel: "1 MiB" is not a whole number from 10000 to 1000000000000"#,
            ),
            (
                r#"{"max_queue": -1}"#,
                "apps.a.limits.max_queue: -1 is not a whole number from 0 to 10000",
            ),
            (
                r#"{"queue_timeout": "11m"}"#,
                r#"apps.a.limits.queue_timeout: "11m" is out of range (1ms to 10m)"#,
            ),
        ];
        for (limits, want) in table {
            assert_eq!(error(&with_limits(limits)), format!("{PATH}: {want}"));
        }
    }

    #[test]
    fn limit_ranges() {
        // (limits object, the end of the error message, or None if valid)
        let table = [
            (r#"{"memory": "4 GiB"}"#, None),
            (
                r#"{"memory": "5 GB"}"#,
                Some(r#"apps.a.limits.memory: "5 GB" is out of range (1 MiB to 4 GiB)"#),
            ),
            (
                r#"{"cpu_time": "11m"}"#,
                Some(r#"apps.a.limits.cpu_time: "11m" is out of range (1ms to 10m)"#),
            ),
            (
                r#"{"cpu_time": "0s"}"#,
                Some(r#"apps.a.limits.cpu_time: "0s" is out of range (1ms to 10m)"#),
            ),
            (r#"{"max_body": 0}"#, None),
            (
                r#"{"max_body": "2 GiB"}"#,
                Some(r#"apps.a.limits.max_body: "2 GiB" is out of range (0 B to 1 GiB)"#),
            ),
            (
                r#"{"max_response": 100}"#,
                Some("apps.a.limits.max_response: 100 is out of range (1 KiB to 1 GiB)"),
            ),
            (r#"{"max_concurrency": 1}"#, None),
            (r#"{"max_concurrency": 10000}"#, None),
            (
                r#"{"max_concurrency": 0}"#,
                Some("apps.a.limits.max_concurrency: 0 is not a whole number from 1 to 10000"),
            ),
            (
                r#"{"max_concurrency": 10001}"#,
                Some("apps.a.limits.max_concurrency: 10001 is not a whole number from 1 to 10000"),
            ),
            (
                r#"{"max_concurrency": "16"}"#,
                Some(
                    r#"apps.a.limits.max_concurrency: "16" is not a whole number from 1 to 10000"#,
                ),
            ),
            (
                r#"{"max_concurrency": 99999999999}"#,
                Some(
                    "apps.a.limits.max_concurrency: 99999999999 is not a whole number from 1 to 10000",
                ),
            ),
            (r#"{"log_output": 0}"#, None),
            (
                r#"{"log_output": "17 MiB"}"#,
                Some(r#"apps.a.limits.log_output: "17 MiB" is out of range (0 B to 16 MiB)"#),
            ),
        ];
        for (limits, want) in table {
            let got = parse(&with_limits(limits)).err().map(|e| e.to_string());
            assert_eq!(got, want.map(|w| format!("{PATH}: {w}")), "{limits}");
        }
    }
}
