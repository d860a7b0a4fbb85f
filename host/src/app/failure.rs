//! The application layer's failures and its status table: what a request about an app is answered with when it gets no guest answer, with the app's own pages.

use crate::http::Response;
use crate::http::error_page::{error_page, with_retry_after};
use crate::net::Refusal;
use crate::sandbox::{ErrorPages, GuestError};

/// Everything that can stop a routed request from getting its guest's answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("no route for this path")]
    NoRoute,
    #[error("bad route parameter: {0}")]
    BadRouteParam(String),
    #[error("guest failed: {0}")]
    Guest(#[from] GuestError),
    #[error("max_concurrency limit of {limit} reached ({refusal})")]
    Refused { limit: u32, refusal: Refusal },
    #[error("cross-site request: Origin {0:?} does not match the host")]
    ForeignOrigin(String),
    #[error("the session service failed: {0}")]
    Sessions(String),
}

impl Failure {
    /// The status code for a failure: this layer's status table.
    pub fn status(&self) -> u16 {
        match self {
            Failure::NoRoute => 404,
            Failure::BadRouteParam(_) => 400,
            Failure::ForeignOrigin(_) => 403,
            Failure::Sessions(_) => 500,
            Failure::Refused { .. } => 503,
            Failure::Guest(g) => match g {
                GuestError::CpuTime { .. }
                | GuestError::WallTime { .. }
                | GuestError::Fuel { .. } => 504,
                GuestError::ResponseTooLarge { .. } => 502,
                GuestError::Busy => 503,
                GuestError::OutOfMemory { .. }
                | GuestError::StackOverflow { .. }
                | GuestError::Trap(_)
                | GuestError::Exit(_)
                | GuestError::Malformed(_)
                | GuestError::Setup(_) => 500,
            },
        }
    }

    /// The limit this failure hit, by its name in `routes.json` and metrics.
    pub fn limit_kind(&self) -> Option<&'static str> {
        match self {
            Failure::Guest(g) => g.limit_kind(),
            Failure::Refused { .. } => Some("max_concurrency"),
            _ => None,
        }
    }
}

/// The answer to a failure with no app's pages: a small generic page (or
/// JSON), never the details, which go to the log only.
pub fn failure_response(failure: &Failure, wants_json: bool) -> Response {
    error_page(failure.status(), wants_json)
}

/// As [`failure_response`], but with the app's own page for the status if it
/// has one. A client asking for JSON gets the generic JSON unless the app's
/// page is JSON itself.
pub fn failure_response_for_app(
    failure: &Failure,
    wants_json: bool,
    pages: &ErrorPages,
) -> Response {
    let status = failure.status();
    let page = pages
        .get(&status)
        .filter(|p| !wants_json || p.content_type.contains("json"));
    let Some(page) = page else {
        return failure_response(failure, wants_json);
    };
    with_retry_after(Response::new(status).with_body(&page.content_type, page.body.clone()))
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
    use crate::sandbox::ErrorPage;
    use std::time::Duration;

    fn refused() -> Failure {
        Failure::Refused {
            limit: 1,
            refusal: Refusal::QueueFull {
                running: 1,
                queue: 0,
            },
        }
    }

    #[test]
    fn statuses_by_failure() {
        let table: Vec<(Failure, u16)> = vec![
            (Failure::NoRoute, 404),
            (Failure::BadRouteParam("x".into()), 400),
            (Failure::ForeignOrigin("x".into()), 403),
            (Failure::Sessions("x".into()), 500),
            (refused(), 503),
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
            assert_eq!(failure.status(), status, "{failure:?}");
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
        let busy = failure_response(&refused(), false);
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
        let busy = refused();
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

    #[test]
    fn anonymous_users_are_sent_to_the_login_page_and_back() {
        let resp = login_required(false, "/user/login", "/todo/index", "a=1");
        assert_eq!(resp.status, 302);
        assert_eq!(
            resp.header("location"),
            Some("/user/login?next=%2Ftodo%2Findex%3Fa%3D1")
        );
        assert_eq!(login_required(true, "/user/login", "/x", "").status, 401);
    }
}
