//! The response a handler returns, and its serialization into a framed HTTP/1.1 head.

use std::fs::File;

use super::stream::StreamBody;

/// What follows the head. Every variant but a stream of unknown length has
/// a known length and is framed with `Content-Length`; such a stream is
/// framed with chunked transfer coding; none by closing the connection.
#[derive(Debug)]
pub enum Body {
    /// No body at all.
    Empty,
    /// An in-memory body.
    Bytes(Vec<u8>),
    /// A byte range of an open file, streamed by the connection in chunks so
    /// that large files are never read whole into memory.
    File { file: File, offset: u64, len: u64 },
    /// A body made while it is sent (`http::stream`), from a handler that
    /// answered early.
    Stream(StreamBody),
}

impl Body {
    /// The number of body bytes a GET would carry.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
            Body::Stream(s) => s.len.unwrap_or(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response: status, headers in order (repeats kept) and a body.
#[derive(Debug)]
pub struct Response {
    /// The status code, 200–599 for final responses.
    pub status: u16,
    /// Headers in the order they are sent; the framing headers
    /// (`Content-Length`, `Connection`, `Date`) are added by `write_head`.
    pub headers: Vec<(String, String)>,
    /// The payload.
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        self.headers
            .push(("Content-Type".to_owned(), content_type.to_owned()));
        self.body = Body::Bytes(body.into());
        self
    }

    /// The first header with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this status never carries a body (RFC 9110 §6.4.1).
    pub fn status_forbids_body(status: u16) -> bool {
        status < 200 || status == 204 || status == 304
    }

    /// Serializes the status line and headers, adding `Content-Length`
    /// (except where the status forbids a body), `Date` and, when the
    /// connection will close, `Connection: close`.
    pub fn write_head(&self, keep_alive: bool, date: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason_phrase(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        match &self.body {
            _ if Response::status_forbids_body(self.status) => {}
            Body::Stream(StreamBody { len: None, .. }) => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
            }
            body => {
                out.extend_from_slice(b"Content-Length: ");
                out.extend_from_slice(body.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\n");
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The reason phrase for a status code (informational only; clients ignore it).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(resp: &Response, keep_alive: bool) -> String {
        let mut out = Vec::new();
        resp.write_head(keep_alive, "Thu, 01 Jan 1970 00:00:00 GMT", &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn framing_headers_by_status() {
        // (status, body, keep_alive, must contain, must not contain)
        let table: &[(u16, &[u8], bool, &[&str], &[&str])] = &[
            (
                200,
                b"hi",
                true,
                &["HTTP/1.1 200 OK\r\n", "Content-Length: 2\r\n"],
                &["Connection"],
            ),
            (
                200,
                b"",
                false,
                &["Content-Length: 0\r\n", "Connection: close\r\n"],
                &[],
            ),
            (
                204,
                b"",
                true,
                &["HTTP/1.1 204 No Content\r\n"],
                &["Content-Length"],
            ),
            (
                304,
                b"",
                true,
                &["HTTP/1.1 304 Not Modified\r\n"],
                &["Content-Length"],
            ),
            (
                404,
                b"nope",
                true,
                &["Content-Length: 4\r\n", "Date: Thu"],
                &[],
            ),
        ];
        for (status, body, keep_alive, yes, no) in table {
            let resp = Response::new(*status).with_body("text/plain", body.to_vec());
            let text = head(&resp, *keep_alive);
            assert!(text.ends_with("\r\n\r\n"), "{text}");
            for needle in *yes {
                assert!(
                    text.contains(needle),
                    "status {status}: {needle:?} missing in {text:?}"
                );
            }
            for needle in *no {
                assert!(
                    !text.contains(needle),
                    "status {status}: {needle:?} present in {text:?}"
                );
            }
        }
    }

    #[test]
    fn repeated_headers_are_kept_in_order() {
        let resp = Response::new(200)
            .with_header("Set-Cookie", "a=1")
            .with_header("Set-Cookie", "b=2");
        let text = head(&resp, true);
        let a = text.find("Set-Cookie: a=1").unwrap();
        let b = text.find("Set-Cookie: b=2").unwrap();
        assert!(a < b);
    }
}
