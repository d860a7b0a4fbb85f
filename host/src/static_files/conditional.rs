//! Conditional requests (RFC 9110 §13): the preconditions of a GET/HEAD, and entity-tag comparison.
//!
//! If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since,
//! evaluated in the order of §13.2.2; tags compared as in §8.8.3.2.
//!
//! Pure: the current time is an argument, never read here.

use std::time::{SystemTime, UNIX_EPOCH};

use super::fields::{date_header, header_values};
use super::validators::Validators;

/// How entity-tags are compared (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Comparison {
    /// Both tags strong and identical (If-Match, If-Range).
    Strong,
    /// Opaque tags identical, `W/` ignored (If-None-Match).
    Weak,
}

/// Whether any value of a list header (`*` or `#entity-tag`) matches `etag`
/// (our strong tag, quotes included). A malformed list matches only as far
/// as it parsed.
fn etag_list_matches(
    headers: &[(String, String)],
    name: &str,
    etag: &str,
    cmp: Comparison,
) -> bool {
    header_values(headers, name).any(|value| {
        if value.trim() == "*" {
            return true;
        }
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return false;
            }
            let Some((tag, after)) = split_entity_tag(rest) else {
                return false;
            };
            if entity_tag_matches(tag, etag, cmp) {
                return true;
            }
            rest = after;
        }
    })
}

/// Splits one entity-tag (`W/"x"` or `"x"`) off the front of `s`.
fn split_entity_tag(s: &str) -> Option<(&str, &str)> {
    let start = if s.starts_with("W/") { 2 } else { 0 };
    let opaque = s.get(start..)?.strip_prefix('"')?;
    let close = opaque.find('"')?;
    let end = start + 1 + close + 1;
    Some((s.get(..end)?, s.get(end..)?))
}

/// Whether the entity-tag `tag` a client sent matches our strong `etag` under `cmp`.
pub(super) fn entity_tag_matches(tag: &str, etag: &str, cmp: Comparison) -> bool {
    match (tag.strip_prefix("W/"), cmp) {
        (Some(_), Comparison::Strong) => false,
        (Some(opaque), Comparison::Weak) => opaque == etag,
        (None, _) => tag == etag,
    }
}

/// The outcome of the preconditions of a GET or HEAD.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Precondition {
    /// None failed: answer with the file (or a range of it).
    Proceed,
    /// The client's copy is current: not modified.
    NotModified,
    /// If-Match or If-Unmodified-Since failed: `Refusal::PreconditionFailed`.
    Failed,
}

/// Evaluates the preconditions in the order of RFC 9110 §13.2.2 for GET/HEAD,
/// at time `now`.
pub(super) fn evaluate_preconditions(
    headers: &[(String, String)],
    v: &Validators,
    now: SystemTime,
) -> Precondition {
    if header_values(headers, "if-match").next().is_some() {
        if !etag_list_matches(headers, "if-match", &v.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let (Some(limit), Some(modified)) =
        (date_header(headers, "if-unmodified-since"), v.last_modified)
        && modified > limit
    {
        return Precondition::Failed;
    }

    if header_values(headers, "if-none-match").next().is_some() {
        if etag_list_matches(headers, "if-none-match", &v.etag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (date_header(headers, "if-modified-since"), v.last_modified)
        && modified <= since
        && !is_future(since, now)
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// A date later than `now` is invalid as If-Modified-Since (it would pin a cache forever).
fn is_future(secs: u64, now: SystemTime) -> bool {
    now.duration_since(UNIX_EPOCH)
        .is_ok_and(|now| secs > now.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use crate::static_files::fixture::{
        ALPHA_DATE, ALPHA_MTIME, ALPHABET, alpha_etag, body_bytes, fixture, get, request,
    };
    use std::time::Duration;

    #[test]
    fn not_modified() {
        let f = fixture();
        let etag = alpha_etag(&f);
        let weak = format!("W/{etag}");
        let list = format!("\"nope\", W/\"x,y\" , {etag}");
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(86_400));
        let table: Vec<(Vec<(&str, &str)>, u16)> = vec![
            (vec![("If-None-Match", &etag)], 304),
            (vec![("if-none-match", &list)], 304),
            (vec![("If-None-Match", "*")], 304),
            (vec![("If-None-Match", &weak)], 304),
            (
                vec![("If-None-Match", "\"a\""), ("If-None-Match", &etag)],
                304,
            ),
            (vec![("If-None-Match", "\"other\"")], 200),
            (vec![("If-None-Match", "garbage")], 200),
            (vec![("If-None-Match", &etag[1..])], 200),
            // If-None-Match present: If-Modified-Since is ignored.
            (
                vec![
                    ("If-None-Match", "\"other\""),
                    ("If-Modified-Since", ALPHA_DATE),
                ],
                200,
            ),
            (vec![("If-Modified-Since", ALPHA_DATE)], 304),
            (
                vec![("If-Modified-Since", "Thu, 02 Jan 2020 00:00:00 GMT")],
                304,
            ),
            (
                vec![("If-Modified-Since", "Tue, 31 Dec 2019 23:59:59 GMT")],
                200,
            ),
            (vec![("If-Modified-Since", "not a date")], 200),
            (vec![("If-Modified-Since", future.as_str())], 200),
            (
                vec![
                    ("If-Modified-Since", ALPHA_DATE),
                    ("If-Modified-Since", ALPHA_DATE),
                ],
                200,
            ),
        ];
        for (headers, status) in &table {
            for method in [Method::Get, Method::Head] {
                let mut resp = request(&f, method, "/alpha.txt", headers);
                assert_eq!(resp.status, *status, "{method:?} {headers:?}");
                if *status == 304 {
                    assert_eq!(resp.header("ETag"), Some(etag.as_str()));
                    assert_eq!(resp.header("Last-Modified"), Some(ALPHA_DATE));
                    assert!(body_bytes(&mut resp).is_empty());
                } else {
                    assert_eq!(body_bytes(&mut resp), ALPHABET);
                }
            }
        }
    }

    #[test]
    fn preconditions_fail_with_412() {
        let f = fixture();
        let etag = alpha_etag(&f);
        let weak = format!("W/{etag}");
        let list = format!("\"a\", {etag}");
        let table: Vec<(Vec<(&str, &str)>, u16)> = vec![
            (vec![("If-Match", &etag)], 200),
            (vec![("If-Match", &list)], 200),
            (vec![("If-Match", "*")], 200),
            (vec![("If-Match", "\"other\"")], 412),
            (vec![("If-Match", &weak)], 412),
            (vec![("If-Unmodified-Since", ALPHA_DATE)], 200),
            (
                vec![("If-Unmodified-Since", "Tue, 31 Dec 2019 23:59:59 GMT")],
                412,
            ),
            (vec![("If-Unmodified-Since", "bogus")], 200),
            // If-Match present: If-Unmodified-Since is ignored.
            (
                vec![
                    ("If-Match", &etag),
                    ("If-Unmodified-Since", "Tue, 31 Dec 2019 23:59:59 GMT"),
                ],
                200,
            ),
        ];
        for (headers, status) in &table {
            let resp = get(&f, "/alpha.txt", headers);
            assert_eq!(resp.status, *status, "{headers:?}");
        }
    }

    #[test]
    fn if_modified_since_later_than_the_given_now_is_ignored() {
        const DAY: u64 = 86_400;
        let v = Validators {
            etag: "\"tag\"".to_owned(),
            last_modified: Some(ALPHA_MTIME),
            len: 26,
        };
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        // The file was last modified at ALPHA_MTIME; the client says "since a day later".
        let since = httpdate::fmt_http_date(at(ALPHA_MTIME + DAY));
        let headers = vec![("If-Modified-Since".to_owned(), since)];
        // (now, outcome): the same header, judged at different times.
        let table = [
            (at(ALPHA_MTIME + 2 * DAY), Precondition::NotModified),
            (at(ALPHA_MTIME + DAY), Precondition::NotModified),
            (at(ALPHA_MTIME + DAY - 1), Precondition::Proceed),
            (at(ALPHA_MTIME), Precondition::Proceed),
        ];
        for (now, outcome) in table {
            assert_eq!(
                evaluate_preconditions(&headers, &v, now),
                outcome,
                "{now:?}"
            );
        }
    }
}
