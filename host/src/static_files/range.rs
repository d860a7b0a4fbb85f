//! Range requests (RFC 9110 §14): one `bytes` range, guarded by If-Range (§13.1.5).
//!
//! Multiple ranges are not served: a multi-range `Range` is ignored and the
//! whole file sent, as §14.2 allows.

use super::conditional::{Comparison, entity_tag_matches};
use super::fields::{date_header, header_values, single_header};
use super::validators::Validators;

/// What a GET's `Range` asks for, against the file at hand.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RangeOutcome {
    /// No usable Range: send the whole representation (`OK`).
    Full,
    /// One satisfiable range, both ends inclusive and within the file (`PARTIAL_CONTENT`).
    Partial { first: u64, last: u64 },
    /// A valid single range that lies wholly outside the file (`Refusal::RangeNotSatisfiable`).
    Unsatisfiable,
}

/// Decides between the whole file, one range and an unsatisfiable range for
/// a GET. Absent, repeated, malformed and multi-range `Range` headers, and a
/// failed `If-Range`, all mean the whole file.
pub(super) fn evaluate_range(headers: &[(String, String)], v: &Validators) -> RangeOutcome {
    let Some(range) = single_header(headers, "range") else {
        return RangeOutcome::Full;
    };
    if header_values(headers, "if-range").next().is_some() && !if_range_matches(headers, v) {
        return RangeOutcome::Full;
    }
    parse_range(range, v.len)
}

/// An If-Range entity-tag must match strongly; a date must equal Last-Modified exactly.
fn if_range_matches(headers: &[(String, String)], v: &Validators) -> bool {
    let Some(value) = single_header(headers, "if-range") else {
        return false;
    };
    if value.starts_with('"') || value.starts_with("W/") {
        return entity_tag_matches(value, &v.etag, Comparison::Strong);
    }
    match (date_header(headers, "if-range"), v.last_modified) {
        (Some(date), Some(modified)) => date == modified,
        _ => false,
    }
}

/// Parses a `bytes=` range header holding one range-spec against a file of `len` bytes.
fn parse_range(value: &str, len: u64) -> RangeOutcome {
    let Some((unit, set)) = value.split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let Some(n) = digits(last) else {
            return RangeOutcome::Full;
        };
        if n == 0 || len == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial {
            first: len.saturating_sub(n),
            last: len - 1,
        };
    }
    let Some(first) = digits(first) else {
        return RangeOutcome::Full;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match digits(last) {
            Some(last) if last >= first => last,
            _ => return RangeOutcome::Full,
        }
    };
    if first >= len {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        first,
        last: last.min(len - 1),
    }
}

/// A non-empty run of ASCII digits, saturating at `u64::MAX` (a huge last-pos
/// still means "to the end"; a huge first-pos is still past the end).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use crate::static_files::fixture::{
        ALPHA_DATE, ALPHABET, alpha_etag, body_bytes, fixture, get,
    };

    #[test]
    fn ranges() {
        let f = fixture();
        // (Range, status, Content-Range, body)
        let table: &[(&str, u16, Option<&str>, &[u8])] = &[
            ("bytes=0-4", 206, Some("bytes 0-4/26"), b"abcde"),
            ("bytes=25-25", 206, Some("bytes 25-25/26"), b"z"),
            ("bytes=20-", 206, Some("bytes 20-25/26"), b"uvwxyz"),
            ("bytes=-3", 206, Some("bytes 23-25/26"), b"xyz"),
            ("bytes=24-100", 206, Some("bytes 24-25/26"), b"yz"),
            ("bytes=-100", 206, Some("bytes 0-25/26"), ALPHABET),
            ("BYTES=1-1", 206, Some("bytes 1-1/26"), b"b"),
            ("bytes= 2-3 ", 206, Some("bytes 2-3/26"), b"cd"),
            (
                "bytes=0-99999999999999999999999",
                206,
                Some("bytes 0-25/26"),
                ALPHABET,
            ),
            (
                "bytes=26-",
                416,
                Some("bytes */26"),
                b"Range Not Satisfiable\n",
            ),
            (
                "bytes=26-30",
                416,
                Some("bytes */26"),
                b"Range Not Satisfiable\n",
            ),
            (
                "bytes=99999999999999999999-",
                416,
                Some("bytes */26"),
                b"Range Not Satisfiable\n",
            ),
            (
                "bytes=-0",
                416,
                Some("bytes */26"),
                b"Range Not Satisfiable\n",
            ),
            // Ignored: multiple ranges, malformed, other units.
            ("bytes=0-1,3-4", 200, None, ALPHABET),
            ("bytes=0-1, 30-40", 200, None, ALPHABET),
            ("bytes=5-2", 200, None, ALPHABET),
            ("bytes=abc", 200, None, ALPHABET),
            ("bytes=-", 200, None, ALPHABET),
            ("bytes=1-2-3", 200, None, ALPHABET),
            ("bytes=+1-2", 200, None, ALPHABET),
            ("bytes 0-1", 200, None, ALPHABET),
            ("items=0-1", 200, None, ALPHABET),
            ("", 200, None, ALPHABET),
        ];
        for (range, status, content_range, body) in table {
            let mut resp = get(&f, "/alpha.txt", &[("Range", range)]);
            assert_eq!(resp.status, *status, "{range}");
            assert_eq!(resp.header("Content-Range"), *content_range, "{range}");
            let got = body_bytes(&mut resp);
            if *status == 416 {
                // The server's generic error page.
                let text = String::from_utf8_lossy(&got);
                assert!(
                    text.contains("<h1>416 Range Not Satisfiable</h1>"),
                    "{text}"
                );
            } else {
                assert_eq!(got, *body, "{range}");
            }
            if *status == 206 {
                assert_eq!(
                    resp.header("Content-Type"),
                    Some("text/plain; charset=utf-8")
                );
                assert!(resp.header("ETag").is_some());
            }
        }
        // Repeated Range headers are malformed: full response.
        let resp = get(
            &f,
            "/alpha.txt",
            &[("Range", "bytes=0-1"), ("Range", "bytes=2-3")],
        );
        assert_eq!((resp.status, resp.body.len()), (200, 26));
        // Every range of an empty file is unsatisfiable.
        for range in ["bytes=0-", "bytes=-5", "bytes=0-0"] {
            let resp = get(&f, "/empty.txt", &[("Range", range)]);
            assert_eq!(resp.status, 416, "{range}");
            assert_eq!(resp.header("Content-Range"), Some("bytes */0"));
        }
    }

    #[test]
    fn if_range() {
        let f = fixture();
        let etag = alpha_etag(&f);
        let weak = format!("W/{etag}");
        let table: &[(&str, u16)] = &[
            (&etag, 206),
            ("\"stale\"", 200),
            (&weak, 200),
            (ALPHA_DATE, 206),
            ("Thu, 02 Jan 2020 00:00:00 GMT", 200),
            ("Tue, 31 Dec 2019 23:59:59 GMT", 200),
            ("garbage", 200),
        ];
        for (if_range, status) in table {
            let mut resp = get(
                &f,
                "/alpha.txt",
                &[("Range", "bytes=0-2"), ("If-Range", if_range)],
            );
            assert_eq!(resp.status, *status, "{if_range}");
            let expected: &[u8] = if *status == 206 { b"abc" } else { ALPHABET };
            assert_eq!(body_bytes(&mut resp), expected, "{if_range}");
        }
        // A failed If-Range also overrides an unsatisfiable range.
        let resp = get(
            &f,
            "/alpha.txt",
            &[("Range", "bytes=99-"), ("If-Range", "\"stale\"")],
        );
        assert_eq!(resp.status, 200);
    }
}
