//! Parsing a request head with httparse and deciding its body framing (RFC 9112), as pure functions.

use crate::http::{Method, Version};
use crate::limits::{MAX_HEADER_SECTION, MAX_HEADERS, MAX_REQUEST_LINE};

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes follow the head.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed and validated request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// Path of the target, still percent-encoded, without the query.
    pub path: String,
    /// Raw query without `?`; empty when absent.
    pub query: String,
    pub version: Version,
    /// Headers in order as sent; values are valid UTF-8.
    pub headers: Vec<(String, String)>,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` and waits before sending the body.
    pub expect_continue: bool,
}

/// The outcome of a parse attempt on the bytes received so far.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadParse {
    /// The head is not complete yet; read more.
    Partial,
    /// A complete head occupying the first `len` bytes.
    Complete { head: RequestHead, len: usize },
}

/// Why a head was refused. Each variant maps to exactly one status code in
/// `status.rs`; after any of them the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("request line longer than {MAX_REQUEST_LINE} bytes")]
    RequestLineTooLong,
    #[error("header section larger than {MAX_HEADER_SECTION} bytes")]
    HeaderSectionTooLarge,
    #[error("more than {MAX_HEADERS} header fields")]
    TooManyHeaders,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("ambiguous or invalid body framing: {0}")]
    Framing(&'static str),
    #[error("HTTP version not supported")]
    UnsupportedVersion,
    #[error("method not implemented")]
    MethodNotImplemented,
    #[error("unsupported expectation")]
    ExpectationFailed,
}

/// Parses the head at the start of `buf`.
///
/// The outcome depends on the bytes within the limits only, and an outcome
/// other than `Partial` never changes as more bytes arrive: the connection
/// parses whatever has arrived so far, so a refusal must not depend on how
/// the bytes were split (the `conn` fuzz target checks this). So only the
/// first `MAX_HEADER_SECTION` bytes are parsed, and a limit is exceeded only
/// when the bytes within it hold no error of their own.
pub fn parse_head(buf: &[u8]) -> Result<HeadParse, ParseError> {
    let within = &buf[..buf.len().min(MAX_HEADER_SECTION)];
    // The request line limit is checked before the header section's, so
    // that a long URL is answered 414 and not 431. httparse skips empty
    // lines before the request line (RFC 9112 §2.2), so the line is found
    // after them too.
    let line = request_line(within);
    let line_end = line.iter().position(|&b| b == b'\n');
    if line_end.unwrap_or(line.len()) > MAX_REQUEST_LINE {
        let line_start = within.len() - line.len();
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        let limited = &within[..line_start + MAX_REQUEST_LINE];
        return Err(match req.parse(limited) {
            Err(e) if !version_may_follow(&e, request_line(limited)) => {
                map_httparse_error(e, request_line(limited))
            }
            _ => ParseError::RequestLineTooLong,
        });
    }
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let status = match req.parse(within) {
        Ok(status) => status,
        Err(e) if version_may_follow(&e, line) => httparse::Status::Partial,
        Err(e) => return Err(map_httparse_error(e, line)),
    };
    let len = match status {
        httparse::Status::Partial => {
            if buf.len() > MAX_HEADER_SECTION {
                return Err(ParseError::HeaderSectionTooLarge);
            }
            return Ok(HeadParse::Partial);
        }
        httparse::Status::Complete(len) => len,
    };
    // httparse accepts a bare LF as a line end; RFC 9112 allows refusing it,
    // and a server stricter than the proxies in front of it cannot be smuggled past.
    if buf[..len]
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || buf[i - 1] != b'\r'))
    {
        return Err(ParseError::Malformed("line not ended by CRLF"));
    }
    let head = validate(&req)?;
    Ok(HeadParse::Complete { head, len })
}

/// Whether `e` may yet turn out not to be an error: httparse refuses a
/// version other than 1.x as soon as one byte differs, but until the request
/// line (`line`, incomplete) ends, it may still become `HTTP/2.0` (505) as
/// well as garbage (400).
fn version_may_follow(e: &httparse::Error, line: &[u8]) -> bool {
    matches!(e, httparse::Error::Version) && !line.contains(&b'\n') && may_become_version(line)
}

/// `buf` from its request line on: without the empty lines httparse skips.
fn request_line(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    &buf[start..]
}

/// Whether an incomplete request line ends in what may still become
/// `SP HTTP/d.d CR`: its third word is a prefix of that form.
fn may_become_version(line: &[u8]) -> bool {
    const FORM: &[u8] = b"HTTP/0.0\r";
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    parts.len() == 3
        && parts[2].len() <= FORM.len()
        && parts[2].iter().zip(FORM).all(|(&b, &f)| match f {
            b'0' => b.is_ascii_digit(),
            f => b == f,
        })
}

/// Maps an httparse error; `line` is the input from the request line on.
fn map_httparse_error(e: httparse::Error, line: &[u8]) -> ParseError {
    match e {
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::Version => {
            // "GET / HTTP/2.0" is a version we do not speak; anything else is garbage.
            let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let is_version = |v: &[u8]| {
                v.len() == 8
                    && v.starts_with(b"HTTP/")
                    && v[5].is_ascii_digit()
                    && v[6] == b'.'
                    && v[7].is_ascii_digit()
            };
            if parts.len() == 3 && is_version(parts[2]) {
                ParseError::UnsupportedVersion
            } else {
                ParseError::Malformed("invalid HTTP version")
            }
        }
        httparse::Error::HeaderName => ParseError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => ParseError::Malformed("invalid header value"),
        httparse::Error::NewLine => ParseError::Malformed("invalid line ending"),
        httparse::Error::Status => ParseError::Malformed("invalid status"),
        httparse::Error::Token => ParseError::Malformed("invalid token in request line"),
    }
}

fn validate(req: &httparse::Request<'_, '_>) -> Result<RequestHead, ParseError> {
    let method_token = req.method.ok_or(ParseError::Malformed("missing method"))?;
    let method = Method::from_token(method_token).ok_or(ParseError::MethodNotImplemented)?;
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(ParseError::UnsupportedVersion),
    };
    let target = req.path.ok_or(ParseError::Malformed("missing target"))?;

    let mut headers = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| ParseError::Malformed("header value is not UTF-8"))?;
        headers.push((h.name.to_owned(), value.to_owned()));
    }

    let (path, query, authority) = split_target(method, target)?;

    let mut host_count = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer_codings: Vec<String> = Vec::new();
    let mut saw_te = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case("host") {
            host_count += 1;
            if !valid_host(value) {
                return Err(ParseError::Malformed("invalid Host header"));
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(ParseError::Framing("several Content-Length headers"));
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            saw_te = true;
            for coding in value.split(',') {
                let coding = coding.trim();
                if !coding.is_empty() {
                    transfer_codings.push(coding.to_ascii_lowercase());
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',') {
                let token = token.trim();
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if value.trim().eq_ignore_ascii_case("100-continue") {
                expect_continue = version == Version::Http11;
            } else {
                return Err(ParseError::ExpectationFailed);
            }
        }
    }

    if version == Version::Http11 && host_count == 0 && authority.is_none() {
        return Err(ParseError::Malformed("missing Host header"));
    }
    if host_count > 1 {
        return Err(ParseError::Malformed("several Host headers"));
    }

    let framing = if saw_te {
        if content_length.is_some() {
            return Err(ParseError::Framing(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        if version == Version::Http10 {
            return Err(ParseError::Framing(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if transfer_codings != ["chunked"] {
            return Err(ParseError::Framing(
                "transfer coding other than a single, final chunked",
            ));
        }
        Framing::Chunked
    } else {
        match content_length {
            Some(0) | None => Framing::None,
            Some(n) => Framing::Length(n),
        }
    };

    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };

    // The absolute form's authority replaces the Host header (RFC 9112 §3.2.2).
    if let Some(authority) = authority {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("host"));
        headers.insert(0, ("Host".to_owned(), authority));
    }

    Ok(RequestHead {
        method,
        path,
        query,
        version,
        headers,
        framing,
        keep_alive,
        expect_continue: expect_continue && framing != Framing::None,
    })
}

/// Splits a request target into (path, query, authority of the absolute form).
fn split_target(
    method: Method,
    target: &str,
) -> Result<(String, String, Option<String>), ParseError> {
    if target == "*" {
        if method == Method::Options {
            return Ok(("*".to_owned(), String::new(), None));
        }
        return Err(ParseError::Malformed("asterisk target outside OPTIONS"));
    }
    let (origin, authority) = if target.starts_with('/') {
        (target, None)
    } else {
        let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &target[7..]
        } else if lower.starts_with("https://") {
            &target[8..]
        } else {
            return Err(ParseError::Malformed("request target is not a path"));
        };
        let slash = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..slash];
        if authority.is_empty() || authority.contains('@') || !valid_host(authority) {
            return Err(ParseError::Malformed("invalid authority in request target"));
        }
        let origin = &rest[slash..];
        (origin, Some(authority.to_owned()))
    };
    let (path, query) = match origin.split_once('?') {
        Some((p, q)) => (p, q),
        None => (origin, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    if query.contains('#') || path.contains('#') {
        return Err(ParseError::Malformed("fragment in request target"));
    }
    Ok((path.to_owned(), query.to_owned(), authority))
}

/// `Content-Length = 1*DIGIT`, nothing else, no overflow.
fn parse_content_length(value: &str) -> Result<u64, ParseError> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Framing("malformed Content-Length"));
    }
    value
        .parse::<u64>()
        .map_err(|_| ParseError::Framing("Content-Length out of range"))
}

/// A Host value: reg-name or IP literal with an optional port, no user info.
fn valid_host(value: &str) -> bool {
    let value = value.trim();
    !value.is_empty()
        && value.len() <= 255
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']' | b'~')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<HeadParse, ParseError> {
        parse_head(raw.as_bytes())
    }

    fn head(raw: &str) -> RequestHead {
        match parse(raw) {
            Ok(HeadParse::Complete { head, .. }) => head,
            other => panic!("expected a complete head for {raw:?}, got {other:?}"),
        }
    }

    #[test]
    fn partial_heads_are_not_errors() {
        let table = [
            "",
            "GET",
            "GET / HTTP/1.1",
            "GET / HTTP/1.1\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n\r",
            // A version httparse refuses may still be `HTTP/2.0` (505) or
            // garbage (400): wait for the end of the line (found by fuzzing).
            "GET / HTTP/2",
            "GET / HTTP/2.0",
            "GET / HTTP/2.0\r",
            "\r\nGET / HTTP/3.",
        ];
        for raw in table {
            assert_eq!(parse(raw), Ok(HeadParse::Partial), "{raw:?}");
        }
    }

    #[test]
    fn framing_decisions() {
        let table: &[(&str, Framing)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Framing::None),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                Framing::None,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n",
                Framing::Length(12),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                Framing::Chunked,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
                Framing::Chunked,
            ),
            (
                "POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n",
                Framing::Length(3),
            ),
        ];
        for (raw, framing) in table {
            assert_eq!(head(raw).framing, *framing, "{raw:?}");
        }
    }

    #[test]
    fn smuggling_and_framing_rejections() {
        let table: &[(&str, ParseError)] = &[
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::Framing("both Transfer-Encoding and Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                ParseError::Framing("several Content-Length headers"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n",
                ParseError::Framing("malformed Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
                ParseError::Framing("malformed Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
                ParseError::Framing("malformed Content-Length"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                ParseError::Framing("Content-Length out of range"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                ParseError::Framing("transfer coding other than a single, final chunked"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                ParseError::Framing("transfer coding other than a single, final chunked"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::Framing("transfer coding other than a single, final chunked"),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                ParseError::Framing("transfer coding other than a single, final chunked"),
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                ParseError::Framing("Transfer-Encoding in an HTTP/1.0 request"),
            ),
        ];
        for (raw, err) in table {
            assert_eq!(parse(raw), Err(err.clone()), "{raw:?}");
        }
    }

    #[test]
    fn malformed_heads_are_rejected() {
        let table: &[&str] = &[
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n", // whitespace before colon
            "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  c\r\n\r\n", // obs-fold
            "GET / HTTP/1.1\r\n\r\n",             // missing Host on 1.1
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", // two Hosts
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", // invalid Host
            "GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", // not origin-form
            "GET / HTTX/1.1\r\nHost: a\r\n\r\n",  // garbage version
            "GET / HTTX",                         // garbage already
            "GET / HTTP/2.0 \r\nHost: a\r\n\r\n", // not a version word
            "GET / HTTP/2.0\rX",                  // nor is this
            "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", // fragment
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",  // asterisk outside OPTIONS
            "G@T / HTTP/1.1\r\nHost: a\r\n\r\n",  // bad method token
            "GET / HTTP/1.1\nHost: a\n\n",        // bare LF line ends
            "GET / HTTP/1.1\r\nHost: a\n\r\n",    // one bare LF
            "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", // space in target
        ];
        for raw in table {
            match parse(raw) {
                Err(ParseError::Malformed(_)) => {}
                other => panic!("{raw:?}: expected Malformed, got {other:?}"),
            }
        }
        // A header value that is not UTF-8.
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost: a\r\nX: \xff\r\n\r\n"),
            Err(ParseError::Malformed("header value is not UTF-8"))
        );
    }

    #[test]
    fn status_specific_rejections() {
        let long_target = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "a".repeat(MAX_REQUEST_LINE)
        );
        let long_partial = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE));
        // Empty lines before the request line do not hide its length.
        let long_after_blank = format!(
            "\r\n\r\nGET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "a".repeat(MAX_REQUEST_LINE)
        );
        let long_partial_after_blank = format!("\r\nGET /{}", "a".repeat(MAX_REQUEST_LINE));
        let big_header = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "b".repeat(MAX_HEADER_SECTION)
        );
        let big_partial = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}",
            "b".repeat(MAX_HEADER_SECTION)
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many_headers = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        let table: &[(&str, ParseError)] = &[
            (&long_target, ParseError::RequestLineTooLong),
            (&long_partial, ParseError::RequestLineTooLong),
            (&long_after_blank, ParseError::RequestLineTooLong),
            (&long_partial_after_blank, ParseError::RequestLineTooLong),
            (&big_header, ParseError::HeaderSectionTooLarge),
            (&big_partial, ParseError::HeaderSectionTooLarge),
            (&many_headers, ParseError::TooManyHeaders),
            (
                "BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
                ParseError::MethodNotImplemented,
            ),
            (
                "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
                ParseError::MethodNotImplemented,
            ),
            (
                "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
                ParseError::UnsupportedVersion,
            ),
            (
                "\r\nGET / HTTP/2.0\r\nHost: a\r\n\r\n",
                ParseError::UnsupportedVersion,
            ),
            ("GET / HTTP/2.0\r\n", ParseError::UnsupportedVersion),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\n\r\n",
                ParseError::ExpectationFailed,
            ),
        ];
        for (raw, err) in table {
            assert_eq!(
                parse(raw),
                Err(err.clone()),
                "{:?}",
                &raw[..raw.len().min(60)]
            );
        }
    }

    #[test]
    fn connection_persistence() {
        let table: &[(&str, bool)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
        ];
        for (raw, keep) in table {
            assert_eq!(head(raw).keep_alive, *keep, "{raw:?}");
        }
    }

    #[test]
    fn targets_are_split() {
        let table: &[(&str, &str, &str, Option<&str>)] = &[
            (
                "GET /a/b?x=1&y HTTP/1.1\r\nHost: h\r\n\r\n",
                "/a/b",
                "x=1&y",
                Some("h"),
            ),
            (
                "GET /a%20b HTTP/1.1\r\nHost: h\r\n\r\n",
                "/a%20b",
                "",
                Some("h"),
            ),
            (
                "GET http://other:81/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
                "/p",
                "q",
                Some("other:81"),
            ),
            ("GET http://other HTTP/1.1\r\n\r\n", "/", "", Some("other")),
            ("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "*", "", Some("h")),
        ];
        for (raw, path, query, host) in table {
            let h = head(raw);
            assert_eq!(h.path, *path, "{raw:?}");
            assert_eq!(h.query, *query, "{raw:?}");
            let got_host = h
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("host"))
                .map(|(_, v)| v.as_str());
            assert_eq!(got_host, *host, "{raw:?}");
        }
    }

    #[test]
    fn expect_continue_only_with_a_body() {
        let table: &[(&str, bool)] = &[
            (
                "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                true,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
                true,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
                false,
            ),
            (
                "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
                false,
            ),
        ];
        for (raw, expect) in table {
            assert_eq!(head(raw).expect_continue, *expect, "{raw:?}");
        }
    }

    #[test]
    fn head_length_and_order() {
        let raw =
            "\r\nPOST /x HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 2\r\n\r\nhi";
        match parse(raw).unwrap() {
            HeadParse::Complete { head, len } => {
                assert_eq!(&raw[len..], "hi");
                let xs: Vec<_> = head
                    .headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("x-a"))
                    .map(|(_, v)| v.clone())
                    .collect();
                assert_eq!(xs, ["1", "2"]);
            }
            HeadParse::Partial => panic!("partial"),
        }
    }
}
