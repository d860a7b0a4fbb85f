//! The response a guest returns (status, ordered headers, raw body), its builders, and a `Set-Cookie` builder.

use std::fmt;

use serde::Serialize;

/// An HTTP response as the guest hands it to the host (ABI section 5.2).
///
/// The host sets `Content-Length` and `Date` itself and drops framing headers
/// (`Content-Length`, `Transfer-Encoding`, `Connection`, ...). It answers 500
/// instead if the status is outside 200–599, a header name is not an HTTP
/// token, or a header value contains CR, LF or NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, 200–599.
    pub status: u16,
    /// Headers in order; repeated names are kept (e.g. several `Set-Cookie`).
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

/// `Content-Type` of [`Response::text`] and the SDK's own error responses.
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

impl Response {
    /// A response with `code`, no headers and an empty body.
    pub fn status(code: u16) -> Response {
        Response {
            status: code,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `200` with `Content-Type: content_type` and `body`.
    pub fn bytes(content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response::status(200)
            .with_header("Content-Type", content_type)
            .with_body(body)
    }

    /// `200` `text/plain; charset=utf-8`.
    pub fn text(body: impl Into<String>) -> Response {
        Response::bytes(TEXT_PLAIN, body.into())
    }

    /// `200` `text/html; charset=utf-8`.
    pub fn html(body: impl Into<String>) -> Response {
        Response::bytes("text/html; charset=utf-8", body.into())
    }

    /// `200` `application/json` with `value` serialised; if serialisation
    /// fails (e.g. a map with non-string keys) a `500` text response instead.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::bytes("application/json", body),
            Err(err) => {
                let message = format!("cannot serialise the response as JSON: {err}");
                crate::log::error(&message);
                Response::text(message).with_status(500)
            }
        }
    }

    /// `302 Found` to `location`.
    pub fn redirect(location: &str) -> Response {
        Response::status(302).with_header("Location", location)
    }

    /// `303 See Other` to `location` (the usual answer to a form POST).
    pub fn see_other(location: &str) -> Response {
        Response::status(303).with_header("Location", location)
    }

    /// `404 Not Found` with a short text body.
    pub fn not_found() -> Response {
        Response::text("Not Found").with_status(404)
    }

    /// `400 Bad Request` with `message` as a text body.
    pub fn bad_request(message: &str) -> Response {
        Response::text(message).with_status(400)
    }

    /// `405 Method Not Allowed` with an `Allow` header listing `allowed`.
    pub fn method_not_allowed(allowed: &[crate::method::Method]) -> Response {
        let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
        Response::text("Method Not Allowed")
            .with_status(405)
            .with_header("Allow", &allow.join(", "))
    }

    /// Replaces the status code.
    pub fn with_status(mut self, code: u16) -> Response {
        self.status = code;
        self
    }

    /// Appends a header; earlier headers of the same name are kept.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// Appends a `Set-Cookie` header for `cookie`.
    pub fn set_cookie(self, cookie: Cookie) -> Response {
        self.with_header("Set-Cookie", &cookie.to_string())
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`
    Strict,
    /// `SameSite=Lax`
    Lax,
    /// `SameSite=None`; browsers only accept it together with `Secure`.
    None,
}

/// A `Set-Cookie` value builder; its `Display` is the header value.
///
/// ```
/// use guest_sdk::{Cookie, SameSite};
/// let c = Cookie::new("sid", "abc").path("/").max_age(3600).http_only().same_site(SameSite::Lax);
/// assert_eq!(c.to_string(), "sid=abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax");
/// assert_eq!(Cookie::delete("sid").to_string(),
///            "sid=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
/// ```
///
/// Name and value are written as given: the name must be an HTTP token and
/// the value cookie-octets (no space, `"`, `,`, `;`, `\` or control
/// characters); percent-encode anything else yourself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    name: String,
    value: String,
    path: Option<String>,
    domain: Option<String>,
    max_age: Option<i64>,
    expired: bool,
    http_only: bool,
    secure: bool,
    same_site: Option<SameSite>,
}

impl Cookie {
    /// A session cookie `name=value` without attributes.
    pub fn new(name: &str, value: &str) -> Cookie {
        Cookie {
            name: name.to_owned(),
            value: value.to_owned(),
            path: None,
            domain: None,
            max_age: None,
            expired: false,
            http_only: false,
            secure: false,
            same_site: None,
        }
    }

    /// A cookie that deletes `name` at `Path=/`: empty value, `Max-Age=0`
    /// and an `Expires` in 1970. Change the path with [`Cookie::path`] if
    /// the cookie was set elsewhere.
    pub fn delete(name: &str) -> Cookie {
        Cookie::new(name, "").path("/").expire()
    }

    /// Makes this cookie delete itself in the browser (`Max-Age=0` and an
    /// `Expires` in 1970).
    pub fn expire(mut self) -> Cookie {
        self.max_age = Some(0);
        self.expired = true;
        self
    }

    /// Sets `Path`.
    pub fn path(mut self, path: &str) -> Cookie {
        self.path = Some(path.to_owned());
        self
    }

    /// Sets `Domain`.
    pub fn domain(mut self, domain: &str) -> Cookie {
        self.domain = Some(domain.to_owned());
        self
    }

    /// Sets `Max-Age` in seconds (0 or less deletes the cookie).
    pub fn max_age(mut self, seconds: i64) -> Cookie {
        self.max_age = Some(seconds);
        self
    }

    /// Adds `HttpOnly`: scripts cannot read the cookie.
    pub fn http_only(mut self) -> Cookie {
        self.http_only = true;
        self
    }

    /// Adds `Secure`: the cookie is only sent over HTTPS.
    pub fn secure(mut self) -> Cookie {
        self.secure = true;
        self
    }

    /// Sets `SameSite`.
    pub fn same_site(mut self, same_site: SameSite) -> Cookie {
        self.same_site = Some(same_site);
        self
    }
}

impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)?;
        if let Some(path) = &self.path {
            write!(f, "; Path={path}")?;
        }
        if let Some(domain) = &self.domain {
            write!(f, "; Domain={domain}")?;
        }
        if let Some(max_age) = self.max_age {
            write!(f, "; Max-Age={max_age}")?;
        }
        if self.expired {
            f.write_str("; Expires=Thu, 01 Jan 1970 00:00:00 GMT")?;
        }
        if self.http_only {
            f.write_str("; HttpOnly")?;
        }
        if self.secure {
            f.write_str("; Secure")?;
        }
        if let Some(same_site) = self.same_site {
            let value = match same_site {
                SameSite::Strict => "Strict",
                SameSite::Lax => "Lax",
                SameSite::None => "None",
            };
            write!(f, "; SameSite={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method::Method;

    #[test]
    fn builders() {
        let table = [
            (
                Response::text("hi"),
                200,
                vec![("Content-Type", TEXT_PLAIN)],
                "hi",
            ),
            (
                Response::html("<p>"),
                200,
                vec![("Content-Type", "text/html; charset=utf-8")],
                "<p>",
            ),
            (
                Response::json(&serde_json::json!({"a": [1, "x"]})),
                200,
                vec![("Content-Type", "application/json")],
                r#"{"a":[1,"x"]}"#,
            ),
            (
                Response::bytes("image/png", b"\x89PNG".to_vec()),
                200,
                vec![("Content-Type", "image/png")],
                "\u{fffd}PNG",
            ),
            (Response::redirect("/x"), 302, vec![("Location", "/x")], ""),
            (
                Response::see_other("/y?z=1"),
                303,
                vec![("Location", "/y?z=1")],
                "",
            ),
            (Response::status(204), 204, vec![], ""),
            (
                Response::not_found(),
                404,
                vec![("Content-Type", TEXT_PLAIN)],
                "Not Found",
            ),
            (
                Response::bad_request("no title"),
                400,
                vec![("Content-Type", TEXT_PLAIN)],
                "no title",
            ),
            (
                Response::method_not_allowed(&[Method::Get, Method::Head]),
                405,
                vec![("Content-Type", TEXT_PLAIN), ("Allow", "GET, HEAD")],
                "Method Not Allowed",
            ),
            (
                Response::text("x").with_status(201).with_body("y"),
                201,
                vec![("Content-Type", TEXT_PLAIN)],
                "y",
            ),
        ];
        for (resp, status, headers, body) in table {
            assert_eq!(resp.status, status, "{resp:?}");
            let got: Vec<(&str, &str)> = resp
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            assert_eq!(got, headers, "{resp:?}");
            assert_eq!(String::from_utf8_lossy(&resp.body), body, "{resp:?}");
        }
    }

    #[test]
    fn json_serialisation_failure_is_500() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), 3);
        let resp = Response::json(&map);
        assert_eq!(resp.status, 500);
        assert_eq!(resp.header("content-type"), Some(TEXT_PLAIN));
    }

    #[test]
    fn headers_are_multi_valued_and_ordered() {
        let resp = Response::text("x")
            .with_header("X-A", "1")
            .set_cookie(Cookie::new("a", "1").path("/"))
            .with_header("x-a", "2")
            .set_cookie(Cookie::new("b", "2").path("/"));
        let names: Vec<&str> = resp.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["Content-Type", "X-A", "Set-Cookie", "x-a", "Set-Cookie"]
        );
        assert_eq!(resp.header("X-a"), Some("1"));
        assert_eq!(resp.headers_all("x-A"), ["1", "2"]);
        assert_eq!(
            resp.headers_all("set-cookie"),
            ["a=1; Path=/", "b=2; Path=/"]
        );
        assert_eq!(resp.header("missing"), None);
    }

    #[test]
    fn cookie_values() {
        let table = [
            (Cookie::new("a", "1"), "a=1"),
            (Cookie::new("a", "1").path("/"), "a=1; Path=/"),
            (
                Cookie::new("sid", "abc")
                    .path("/app")
                    .domain("example.com")
                    .max_age(3600)
                    .http_only()
                    .secure()
                    .same_site(SameSite::Strict),
                "sid=abc; Path=/app; Domain=example.com; Max-Age=3600; HttpOnly; Secure; SameSite=Strict",
            ),
            (
                Cookie::new("t", "x").same_site(SameSite::None).secure(),
                "t=x; Secure; SameSite=None",
            ),
            (
                Cookie::new("t", "x").same_site(SameSite::Lax),
                "t=x; SameSite=Lax",
            ),
            (
                Cookie::delete("sid"),
                "sid=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ),
            (
                Cookie::delete("sid").path("/app"),
                "sid=; Path=/app; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ),
            (
                Cookie::new("sid", "abc").http_only().expire(),
                "sid=abc; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly",
            ),
        ];
        for (cookie, want) in table {
            assert_eq!(cookie.to_string(), want);
        }
    }
}
