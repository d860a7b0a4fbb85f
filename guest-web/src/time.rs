//! Wall-clock time as Unix seconds and its UTC formatting (no time zone database needed).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in seconds since the Unix epoch (WASI's realtime clock in a guest).
pub fn now() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The civil UTC date and time of `ts`: (year, month, day, hour, minute, second).
fn civil(ts: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    (year, month, day, h as u32, m as u32, s as u32)
}

/// `ts` for people: `2026-05-09 07:30 UTC`.
pub fn human(ts: i64) -> String {
    stamp(ts, ' ', false, " UTC")
}

/// `ts` as RFC 3339 in UTC: `2026-05-09T07:30:05Z`.
pub fn rfc3339(ts: i64) -> String {
    stamp(ts, 'T', true, "Z")
}

/// `ts` as date, `sep`, `HH:MM`, `:SS` when `seconds`, then `suffix`.
fn stamp(ts: i64, sep: char, seconds: bool, suffix: &str) -> String {
    let (y, mo, d, h, mi, s) = civil(ts);
    let mut out = String::with_capacity(24);
    date(&mut out, y, mo, d);
    out.push(sep);
    two(&mut out, h);
    out.push(':');
    two(&mut out, mi);
    if seconds {
        out.push(':');
        two(&mut out, s);
    }
    out.push_str(suffix);
    out
}

/// `YYYY-MM-DD` onto `out`; a year outside 0..=9999 takes `format!`'s way.
/// Written digit by digit: a page of 50 todos formats 100 dates, and
/// `format!` made that a tenth of the page's time.
fn date(out: &mut String, y: i64, mo: u32, d: u32) {
    match u32::try_from(y) {
        Ok(y) if y <= 9999 => {
            two(out, y / 100);
            two(out, y % 100);
        }
        _ => out.push_str(&format!("{y:04}")),
    }
    out.push('-');
    two(out, mo);
    out.push('-');
    two(out, d);
}

/// `n` (below 100) as two digits onto `out`.
fn two(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let table = [
            (0, "1970-01-01 00:00 UTC", "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29 00:00 UTC", "2000-02-29T00:00:00Z"),
            (
                1_778_311_805,
                "2026-05-09 07:30 UTC",
                "2026-05-09T07:30:05Z",
            ),
            (-1, "1969-12-31 23:59 UTC", "1969-12-31T23:59:59Z"),
            (
                -62_167_219_201,
                "-001-12-31 23:59 UTC",
                "-001-12-31T23:59:59Z",
            ),
            (
                253_402_300_800,
                "10000-01-01 00:00 UTC",
                "10000-01-01T00:00:00Z",
            ),
            (
                4_102_444_799,
                "2099-12-31 23:59 UTC",
                "2099-12-31T23:59:59Z",
            ),
        ];
        for (ts, h, r) in table {
            assert_eq!(human(ts), h, "{ts}");
            assert_eq!(rfc3339(ts), r, "{ts}");
        }
        assert!(now() > 1_700_000_000);
    }
}
