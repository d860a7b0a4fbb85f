//! Access guards for handlers: `require_login` (the old `login_required`) and `same_user` (the old `same_user_required`).
//!
//! The host can enforce login itself (`login_required` in `routes.json`);
//! these are the guest's own check, defence in depth, and the only check for
//! ownership. Denials answer JSON `{"error": ...}` to a request that accepts
//! `application/json`, and otherwise a redirect to the login page (anonymous)
//! or a `text/plain` message (forbidden), which an app may dress up.

use serde_json::json;

use crate::request::{Request, User};
use crate::response::Response;

/// The login page that anonymous browsers are sent to.
pub const LOGIN_PATH: &str = "/user/login";

/// The signed-in user, or the answer for an anonymous request: `302` to
/// [`LOGIN_PATH`] with `next` set to this page (for `GET`/`HEAD`), or `401`
/// JSON for `Accept: application/json`.
pub fn require_login(req: &Request) -> Result<&User, Response> {
    req.user.as_ref().ok_or_else(|| login_required(req))
}

/// The signed-in user if they are `owner_id`; otherwise the answer: as
/// [`require_login`] for an anonymous request, `403` for another user.
pub fn same_user<'a>(req: &'a Request, owner_id: &str) -> Result<&'a User, Response> {
    let user = require_login(req)?;
    if user.id == owner_id {
        Ok(user)
    } else {
        Err(error(req, 403, "this belongs to another user"))
    }
}

/// The answer to an anonymous request for a page that needs a login.
pub fn login_required(req: &Request) -> Response {
    if req.wants_json() {
        return error(req, 401, "login required");
    }
    let mut location = LOGIN_PATH.to_owned();
    if req.is_get() || req.is_head() {
        let mut here = req.path.clone();
        if !req.query.is_empty() {
            here.push('?');
            here.push_str(&req.query);
        }
        location.push_str("?next=");
        location.extend(form_urlencoded::byte_serialize(here.as_bytes()));
    }
    Response::redirect(&location)
}

/// An error answer with `status`: JSON `{"error": message}` for a request
/// that accepts JSON, `text/plain` otherwise.
pub fn error(req: &Request, status: u16, message: &str) -> Response {
    if req.wants_json() {
        Response::json(&json!({ "error": message })).with_status(status)
    } else {
        Response::text(message).with_status(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_login_lets_users_through() {
        let req = Request::new("GET", "/todo/index").with_user("1", "ann");
        assert_eq!(require_login(&req).map(|u| u.name.as_str()), Ok("ann"));
    }

    #[test]
    fn anonymous_requests_are_sent_to_log_in() {
        // (method, target, accept json, status, location)
        let table = [
            (
                "GET",
                "/todo/index",
                false,
                302,
                Some("/user/login?next=%2Ftodo%2Findex"),
            ),
            (
                "GET",
                "/todo/edit?id=3&x=a b",
                false,
                302,
                Some("/user/login?next=%2Ftodo%2Fedit%3Fid%3D3%26x%3Da+b"),
            ),
            ("POST", "/todo/add", false, 302, Some("/user/login")),
            ("GET", "/todo/index", true, 401, None),
            ("POST", "/todo/add", true, 401, None),
        ];
        for (method, target, json, status, location) in table {
            let mut req = Request::new(method, target);
            if json {
                req = req.with_header("Accept", "application/json");
            }
            let resp = require_login(&req).unwrap_err();
            assert_eq!(resp.status, status, "{method} {target}");
            assert_eq!(resp.header("location"), location, "{method} {target}");
            if json {
                assert_eq!(resp.body, br#"{"error":"login required"}"#);
            }
        }
    }

    #[test]
    fn same_user_forbids_others() {
        let ann = Request::new("POST", "/todo/delete").with_user("1", "ann");
        assert!(same_user(&ann, "1").is_ok());
        let resp = same_user(&ann, "2").unwrap_err();
        assert_eq!(resp.status, 403);
        assert_eq!(
            resp.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        let json = ann.clone().with_header("Accept", "application/json");
        let resp = same_user(&json, "2").unwrap_err();
        assert_eq!(
            (resp.status, resp.header("content-type")),
            (403, Some("application/json"))
        );
        let anon = Request::new("GET", "/todo/edit?id=1");
        assert_eq!(same_user(&anon, "1").unwrap_err().status, 302);
    }
}
