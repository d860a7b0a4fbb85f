//! Reading request header fields: every value of a field, a field that must occur once, an HTTP-date.

use std::time::UNIX_EPOCH;

/// Every value of the header `name` (matched case-insensitively), in order.
pub(super) fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The value of a header that must occur once; `None` if absent or repeated.
pub(super) fn single_header<'a>(headers: &'a [(String, String)], name: &'a str) -> Option<&'a str> {
    let mut values = header_values(headers, name);
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value.trim()),
        _ => None,
    }
}

/// Parses a single HTTP-date header into whole seconds since the epoch;
/// absent, repeated, unparsable or pre-epoch values give `None` (ignored).
pub(super) fn date_header(headers: &[(String, String)], name: &str) -> Option<u64> {
    let date = httpdate::parse_http_date(single_header(headers, name)?).ok()?;
    date.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}
