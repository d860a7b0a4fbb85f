//! The generic error answer every layer uses: a small HTML page, or JSON for clients that ask for it, and never the details.

use crate::http::Response;
use crate::http::response::reason_phrase;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

/// A generic page for a status: HTML by default, JSON when asked for. A 503
/// also says when to retry.
pub fn error_page(status: u16, wants_json: bool) -> Response {
    let reason = reason_phrase(status);
    let resp = if wants_json {
        let body = serde_json::json!({ "error": reason, "status": status }).to_string();
        Response::new(status).with_body("application/json", body)
    } else {
        let body = format!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status} {reason}</title></head>\
             <body><h1>{status} {reason}</h1><p>wasmhost</p></body></html>\n"
        );
        Response::new(status).with_body("text/html; charset=utf-8", body)
    };
    with_retry_after(resp)
}

/// Adds `Retry-After` to a 503 (RFC 9110 §10.2.3), whoever made its body.
pub fn with_retry_after(resp: Response) -> Response {
    if resp.status == 503 && resp.header("retry-after").is_none() {
        resp.with_header("Retry-After", RETRY_AFTER_SECS.to_string())
    } else {
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Body;

    #[test]
    fn a_generic_page_names_the_status_in_html_or_json() {
        for (status, json) in [(404, false), (404, true), (500, false), (503, true)] {
            let resp = error_page(status, json);
            assert_eq!(resp.status, status);
            let Body::Bytes(body) = &resp.body else {
                panic!("no body")
            };
            let text = String::from_utf8_lossy(body);
            assert!(text.contains(&status.to_string()), "{text}");
            let ct = resp.header("content-type").unwrap_or("");
            assert_eq!(ct.contains("json"), json, "{ct}");
        }
    }

    #[test]
    fn only_a_503_says_when_to_retry() {
        assert_eq!(error_page(503, false).header("retry-after"), Some("1"));
        assert_eq!(error_page(500, false).header("retry-after"), None);
    }
}
