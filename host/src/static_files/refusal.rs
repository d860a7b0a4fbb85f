//! The one status table of static serving: every status it answers, and the `Refusal`s behind the 4xx.
//!
//! Every status code this layer produces is written as a number here and
//! nowhere else in `static_files/` outside tests; the other files use the
//! names below.
//!
//!   200 whole file          206 one satisfiable range   301 directory named without `/`
//!   304 not modified        400 malformed path          403 exists but unreadable
//!   404 missing, hidden, outside the root or not a regular file
//!   405 not GET/HEAD        412 If-Match / If-Unmodified-Since failed
//!   414 path too long/deep  416 range wholly beyond the end

use crate::http::Response;
use crate::http::error_page::error_page;

/// The whole file.
pub(super) const OK: u16 = 200;
/// One satisfiable byte range of the file.
pub(super) const PARTIAL_CONTENT: u16 = 206;
/// A directory named without its trailing slash.
pub(super) const MOVED_PERMANENTLY: u16 = 301;
/// The client's cached copy is current (If-None-Match / If-Modified-Since).
pub(super) const NOT_MODIFIED: u16 = 304;

/// Why a request is not answered with (part of) the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 400: the path text itself is unacceptable, whatever is on disk: an invalid
    /// or non-UTF-8 percent-escape, NUL or another control character, `/` or `\`
    /// inside a segment (`%2F`, `%5C`, raw `\`), a `.` or `..` segment, or an
    /// empty segment (`//`).
    BadPath,
    /// 414: the path exceeds `MAX_PATH_LEN` or `MAX_SEGMENTS`.
    TooLong,
    /// 404: missing, hidden (a segment or resolved component starting with `.`),
    /// resolving outside the root, or not a regular file. Deliberately
    /// indistinguishable from one another.
    NotFound,
    /// 403: exists inside the root but the server may not read it.
    Forbidden,
    /// 405: any method but GET and HEAD.
    MethodNotAllowed,
    /// 412: If-Match or If-Unmodified-Since failed.
    PreconditionFailed,
    /// 416: the single byte range lies wholly beyond the file (its length here).
    RangeNotSatisfiable(u64),
}

impl Refusal {
    pub(super) fn status(self) -> u16 {
        match self {
            Refusal::BadPath => 400,
            Refusal::Forbidden => 403,
            Refusal::NotFound => 404,
            Refusal::MethodNotAllowed => 405,
            Refusal::PreconditionFailed => 412,
            Refusal::TooLong => 414,
            Refusal::RangeNotSatisfiable(_) => 416,
        }
    }

    /// The answer: the server's generic error page (HTML, or JSON for a
    /// client that asks for it), with the headers the status calls for.
    pub(super) fn into_response(self, wants_json: bool) -> Response {
        let mut resp = error_page(self.status(), wants_json);
        match self {
            Refusal::MethodNotAllowed => resp = resp.with_header("Allow", "GET, HEAD"),
            Refusal::RangeNotSatisfiable(len) => {
                resp = resp.with_header("Content-Range", format!("bytes */{len}"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_statuses() {
        let statuses: Vec<u16> = [
            Refusal::BadPath,
            Refusal::Forbidden,
            Refusal::NotFound,
            Refusal::MethodNotAllowed,
            Refusal::PreconditionFailed,
            Refusal::TooLong,
            Refusal::RangeNotSatisfiable(0),
        ]
        .iter()
        .map(|r| r.into_response(false).status)
        .collect();
        assert_eq!(statuses, [400, 403, 404, 405, 412, 414, 416]);
    }
}
