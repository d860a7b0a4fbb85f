//! Sizes and durations in config syntax (`"64 MiB"`, `"1s"`): parsing and formatting.
//!
//! Values are parsed from JSON and formatted back for messages.

use std::time::Duration;

use serde_json::Value;

/// Bytes in a kibibyte.
pub(super) const KIB: u64 = 1024;
/// Bytes in a mebibyte.
pub(super) const MIB: u64 = 1024 * KIB;
/// Bytes in a gibibyte.
pub(super) const GIB: u64 = 1024 * MIB;

/// Splits `"64 MiB"` into `(64, "MiB")`; `None` unless it is digits, optional
/// spaces and a unit.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return None;
    }
    Some((number.parse().ok()?, unit.trim_start()))
}

/// A size: an integer number of bytes, or a string like `"64 MiB"`.
pub(super) fn parse_size(value: &Value) -> Result<u64, String> {
    let invalid = || format!("{value} is not a size (expected bytes or e.g. \"64 MiB\")");
    if let Value::Number(n) = value {
        return n.as_u64().ok_or_else(invalid);
    }
    let (number, unit) = value.as_str().and_then(split_number).ok_or_else(invalid)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        _ => {
            return Err(format!(
                "{value} is not a size (units are B, KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{value} is too large"))
}

/// A duration: an integer number of milliseconds, or a string like `"1s"`.
pub(super) fn parse_duration(value: &Value) -> Result<Duration, String> {
    let invalid = || format!("{value} is not a duration (expected milliseconds or e.g. \"1s\")");
    if let Value::Number(n) = value {
        return n.as_u64().map(Duration::from_millis).ok_or_else(invalid);
    }
    let (number, unit) = value.as_str().and_then(split_number).ok_or_else(invalid)?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1000),
        "m" => number.checked_mul(60 * 1000),
        _ => {
            return Err(format!("{value} is not a duration (units are ms, s, m)"));
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{value} is too large"))
}

/// Formats a size in the largest binary unit that divides it.
pub(super) fn fmt_size(bytes: u64) -> String {
    match bytes {
        0 => "0 B".to_owned(),
        b if b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} B"),
    }
}

/// Formats a duration in the largest unit of the config syntax that divides it.
pub(super) fn fmt_duration(duration: Duration) -> String {
    match duration.as_millis() {
        ms if ms != 0 && ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms != 0 && ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ConfigError;
    use super::super::testing::{PATH, parse, with_limits};
    use super::*;

    #[test]
    fn sizes() {
        // (JSON value, bytes or the end of the error message)
        let table: [(&str, Result<u64, &str>); 20] = [
            ("1048576", Ok(MIB)),
            (r#""64 MiB""#, Ok(64 * MIB)),
            (r#""64MiB""#, Ok(64 * MIB)),
            (r#""2048KiB""#, Ok(2 * MIB)),
            (r#""10 MB""#, Ok(10_000_000)),
            (r#""2 GB""#, Ok(2_000_000_000)),
            (r#""4 GiB""#, Ok(4 * GIB)),
            (r#""3000000 B""#, Ok(3_000_000)),
            (r#""5000 kb""#, Ok(5_000_000)),
            (r#"" 2 mib ""#, Ok(2 * MIB)),
            (
                r#""64 MB!""#,
                Err(
                    r#"apps.a.limits.memory: "64 MB!" is not a size (units are B, KB, MB, GB, KiB, MiB, GiB)"#,
                ),
            ),
            (
                r#""64""#,
                Err(
                    r#"apps.a.limits.memory: "64" is not a size (units are B, KB, MB, GB, KiB, MiB, GiB)"#,
                ),
            ),
            (
                r#""MiB""#,
                Err(
                    r#"apps.a.limits.memory: "MiB" is not a size (expected bytes or e.g. "64 MiB")"#,
                ),
            ),
            (
                r#""1.5 GiB""#,
                Err(
                    r#"apps.a.limits.memory: "1.5 GiB" is not a size (units are B, KB, MB, GB, KiB, MiB, GiB)"#,
                ),
            ),
            (
                "-1",
                Err(r#"apps.a.limits.memory: -1 is not a size (expected bytes or e.g. "64 MiB")"#),
            ),
            (
                "1.5",
                Err(r#"apps.a.limits.memory: 1.5 is not a size (expected bytes or e.g. "64 MiB")"#),
            ),
            (
                "true",
                Err(
                    r#"apps.a.limits.memory: true is not a size (expected bytes or e.g. "64 MiB")"#,
                ),
            ),
            (
                r#""99999999999999999999 GiB""#,
                Err(
                    r#"apps.a.limits.memory: "99999999999999999999 GiB" is not a size (expected bytes or e.g. "64 MiB")"#,
                ),
            ),
            (
                r#""9999999999999 GiB""#,
                Err(r#"apps.a.limits.memory: "9999999999999 GiB" is too large"#),
            ),
            (
                r#""512 KiB""#,
                Err(r#"apps.a.limits.memory: "512 KiB" is out of range (1 MiB to 4 GiB)"#),
            ),
        ];
        for (value, want) in table {
            let got = parse(&with_limits(&format!(r#"{{"memory": {value}}}"#)));
            match (got, want) {
                (Ok(c), Ok(want)) => assert_eq!(c.apps["a"].limits.memory, want, "{value}"),
                (Err(e), Err(want)) => {
                    assert_eq!(e.to_string(), format!("{PATH}: {want}"), "{value}");
                    assert!(matches!(e, ConfigError::Limit { .. }), "{value}");
                }
                (got, _) => panic!("{value}: {got:?}"),
            }
        }
    }

    #[test]
    fn durations() {
        // (JSON value, duration or the end of the error message)
        let table: [(&str, Result<Duration, &str>); 12] = [
            ("1500", Ok(Duration::from_millis(1500))),
            (r#""1s""#, Ok(Duration::from_secs(1))),
            (r#""500ms""#, Ok(Duration::from_millis(500))),
            (r#""2m""#, Ok(Duration::from_secs(120))),
            (r#""3 s""#, Ok(Duration::from_secs(3))),
            (r#""10m""#, Ok(Duration::from_secs(600))),
            ("1", Ok(Duration::from_millis(1))),
            (
                r#""1h""#,
                Err(r#"apps.a.limits.wall_time: "1h" is not a duration (units are ms, s, m)"#),
            ),
            (
                r#""5""#,
                Err(r#"apps.a.limits.wall_time: "5" is not a duration (units are ms, s, m)"#),
            ),
            (
                "0",
                Err("apps.a.limits.wall_time: 0 is out of range (1ms to 10m)"),
            ),
            (
                r#""601s""#,
                Err(r#"apps.a.limits.wall_time: "601s" is out of range (1ms to 10m)"#),
            ),
            (
                r#""fast""#,
                Err(
                    r#"apps.a.limits.wall_time: "fast" is not a duration (expected milliseconds or e.g. "1s")"#,
                ),
            ),
        ];
        for (value, want) in table {
            let got = parse(&with_limits(&format!(r#"{{"wall_time": {value}}}"#)));
            match (got, want) {
                (Ok(c), Ok(want)) => assert_eq!(c.apps["a"].limits.wall_time, want, "{value}"),
                (Err(e), Err(want)) => {
                    assert_eq!(e.to_string(), format!("{PATH}: {want}"), "{value}")
                }
                (got, _) => panic!("{value}: {got:?}"),
            }
        }
    }
}
