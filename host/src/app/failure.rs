//! The one place that decides which HTTP status answers each failure, and the generic error pages.

use std::collections::BTreeMap;

use crate::http::Response;
use crate::http::chunked::ChunkedError;
use crate::http::parse::ParseError;
use crate::http::response::reason_phrase;
use crate::wasm::GuestError;

/// Everything that can stop a request from getting a handler's answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Chunked(#[from] ChunkedError),
    #[error("request body of {len} bytes is larger than the limit of {limit}")]
    BodyTooLarge { len: u64, limit: u64 },
    #[error("request header not received in time")]
    HeaderTimeout,
    #[error("request body not received in time")]
    BodyTimeout,
    #[error("too many requests in progress")]
    Overloaded,
    #[error("no route for this path")]
    NoRoute,
    #[error("bad route parameter: {0}")]
    BadRouteParam(String),
    #[error("guest failed: {0}")]
    Guest(#[from] GuestError),
    #[error("server is shutting down")]
    ShuttingDown,
    #[error("cross-site request: Origin {0:?} does not match the host")]
    ForeignOrigin(String),
    #[error("the session service failed: {0}")]
    Sessions(String),
}

/// The status code for a failure. Every failure-to-status decision is here.
pub fn status_of(failure: &Failure) -> u16 {
    match failure {
        Failure::Parse(e) => match e {
            ParseError::RequestLineTooLong => 414,
            ParseError::HeaderSectionTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::Malformed(_) | ParseError::Framing(_) => 400,
            ParseError::UnsupportedVersion => 505,
            ParseError::MethodNotImplemented => 501,
            ParseError::ExpectationFailed => 417,
        },
        Failure::Chunked(ChunkedError::Malformed(_)) => 400,
        Failure::Chunked(ChunkedError::TooLarge) | Failure::BodyTooLarge { .. } => 413,
        Failure::HeaderTimeout | Failure::BodyTimeout => 408,
        Failure::Overloaded | Failure::ShuttingDown => 503,
        Failure::NoRoute => 404,
        Failure::ForeignOrigin(_) => 403,
        Failure::Sessions(_) => 500,
        Failure::BadRouteParam(_) => 400,
        Failure::Guest(g) => match g {
            GuestError::CpuTime { .. } | GuestError::WallTime { .. } | GuestError::Fuel { .. } => {
                504
            }
            GuestError::ResponseTooLarge { .. } => 502,
            GuestError::Busy | GuestError::Concurrency { .. } => 503,
            GuestError::OutOfMemory { .. }
            | GuestError::StackOverflow { .. }
            | GuestError::Trap(_)
            | GuestError::Exit(_)
            | GuestError::Malformed(_)
            | GuestError::Setup(_) => 500,
        },
    }
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The response for a failure: a small generic page (or JSON), never the
/// details, which go to the log only.
pub fn failure_response(failure: &Failure, wants_json: bool) -> Response {
    let status = status_of(failure);
    let resp = error_page(status, wants_json);
    if status == 503 {
        resp.with_header("Retry-After", RETRY_AFTER_SECS.to_string())
    } else {
        resp
    }
}

/// A page an app ships for one of its failure statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// An app's pages by status (only `config::ERROR_PAGE_STATUSES` are loaded).
pub type ErrorPages = BTreeMap<u16, ErrorPage>;

/// As [`failure_response`], but with the app's own page for the status if it
/// has one. A client asking for JSON gets the generic JSON unless the app's
/// page is JSON itself.
pub fn failure_response_for_app(
    failure: &Failure,
    wants_json: bool,
    pages: &ErrorPages,
) -> Response {
    let status = status_of(failure);
    let page = pages
        .get(&status)
        .filter(|p| !wants_json || p.content_type.contains("json"));
    let Some(page) = page else {
        return failure_response(failure, wants_json);
    };
    let resp = Response::new(status).with_body(&page.content_type, page.body.clone());
    if status == 503 {
        resp.with_header("Retry-After", RETRY_AFTER_SECS.to_string())
    } else {
        resp
    }
}

/// A generic page for a status: HTML by default, JSON when asked for.
pub fn error_page(status: u16, wants_json: bool) -> Response {
    let reason = reason_phrase(status);
    if wants_json {
        let body = serde_json::json!({ "error": reason, "status": status }).to_string();
        Response::new(status).with_body("application/json", body)
    } else {
        let body = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status} {reason}</title></head>\
             <body><h1>{status} {reason}</h1><p>wasmhost</p></body></html>\n"
        );
        Response::new(status).with_body("text/html; charset=utf-8", body)
    }
}

/// The answer to an anonymous request for a login-required route: a redirect
/// to the login page that comes back here afterwards, or 401 for JSON clients.
pub fn login_required(wants_json: bool, login_page: &str, path: &str, query: &str) -> Response {
    if wants_json {
        let body = serde_json::json!({ "error": "login required", "status": 401 }).to_string();
        return Response::new(401).with_body("application/json", body);
    }
    let back = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let next: String = form_urlencoded::byte_serialize(back.as_bytes()).collect();
    Response::new(302)
        .with_header("Location", format!("{login_page}?next={next}"))
        .with_body("text/plain; charset=utf-8", "login required\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn statuses_by_failure() {
        let table: Vec<(Failure, u16)> = vec![
            (ParseError::RequestLineTooLong.into(), 414),
            (ParseError::HeaderSectionTooLarge.into(), 431),
            (ParseError::TooManyHeaders.into(), 431),
            (ParseError::Malformed("x").into(), 400),
            (ParseError::Framing("x").into(), 400),
            (ParseError::UnsupportedVersion.into(), 505),
            (ParseError::MethodNotImplemented.into(), 501),
            (ParseError::ExpectationFailed.into(), 417),
            (ChunkedError::Malformed("x").into(), 400),
            (ChunkedError::TooLarge.into(), 413),
            (Failure::BodyTooLarge { len: 2, limit: 1 }, 413),
            (Failure::HeaderTimeout, 408),
            (Failure::Overloaded, 503),
            (Failure::NoRoute, 404),
            (
                GuestError::CpuTime {
                    limit: Duration::from_secs(1),
                    used: Duration::from_secs(1),
                }
                .into(),
                504,
            ),
            (
                GuestError::WallTime {
                    limit: Duration::from_secs(1),
                    elapsed: Duration::from_secs(1),
                }
                .into(),
                504,
            ),
            (GuestError::Fuel { limit: 1 }.into(), 504),
            (GuestError::StackOverflow { limit: 1 }.into(), 500),
            (GuestError::Exit(1).into(), 500),
            (
                GuestError::Concurrency {
                    limit: 1,
                    reason: "x".into(),
                }
                .into(),
                503,
            ),
            (GuestError::Trap("x".into()).into(), 500),
            (
                GuestError::OutOfMemory {
                    limit: 1,
                    wanted: 2,
                }
                .into(),
                500,
            ),
            (GuestError::Malformed("x".into()).into(), 500),
            (
                GuestError::ResponseTooLarge { len: 2, limit: 1 }.into(),
                502,
            ),
            (GuestError::Busy.into(), 503),
        ];
        for (failure, status) in table {
            assert_eq!(status_of(&failure), status, "{failure:?}");
        }
    }

    #[test]
    fn pages_never_carry_details() {
        let failure: Failure = GuestError::Trap("secret detail at 0x1234".into()).into();
        for json in [false, true] {
            let resp = failure_response(&failure, json);
            let crate::http::Body::Bytes(body) = &resp.body else {
                panic!("no body")
            };
            let text = String::from_utf8_lossy(body);
            assert!(!text.contains("secret"), "{text}");
            assert!(text.contains("500"), "{text}");
        }
        let busy = failure_response(&Failure::Overloaded, false);
        assert_eq!(busy.header("retry-after"), Some("1"));
    }

    #[test]
    fn apps_may_ship_their_own_pages() {
        let mut pages = ErrorPages::new();
        pages.insert(
            503,
            ErrorPage {
                content_type: "text/html; charset=utf-8".into(),
                body: b"<p>busy, sorry</p>".to_vec(),
            },
        );
        let busy: Failure = GuestError::Concurrency {
            limit: 1,
            reason: "x".into(),
        }
        .into();
        let resp = failure_response_for_app(&busy, false, &pages);
        assert_eq!(resp.status, 503);
        assert_eq!(resp.header("retry-after"), Some("1"));
        assert!(matches!(&resp.body, crate::http::Body::Bytes(b) if b == b"<p>busy, sorry</p>"));
        // JSON clients get the generic JSON; other statuses the generic page.
        let json = failure_response_for_app(&busy, true, &pages);
        assert_eq!(json.header("content-type"), Some("application/json"));
        let trap: Failure = GuestError::Trap("x".into()).into();
        let resp = failure_response_for_app(&trap, false, &pages);
        assert_eq!(resp.status, 500);
        assert!(matches!(&resp.body, crate::http::Body::Bytes(b) if b.starts_with(b"<!doctype")));
    }
}
