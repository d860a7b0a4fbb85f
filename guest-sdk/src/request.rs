//! The request a guest handles, as decoded from the ABI request meta and body, with lookup helpers.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::method::Method;

/// An HTTP request as the host passes it to the guest (ABI section 5.1).
///
/// Fields are public and mirror the request meta; the methods are shortcuts
/// for common lookups. [`Request::new`] builds one for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `"GET"`; see also [`Request::method_is`].
    pub method: String,
    /// The path exactly as the client sent it: still percent-encoded, no query.
    pub path: String,
    /// The raw query string after `?`, without the `?`; `""` when there is none.
    pub query: String,
    /// The query decoded as `application/x-www-form-urlencoded`, in order.
    pub query_params: Vec<(String, String)>,
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub version: String,
    /// Every header in the order received, names as sent, repeats kept.
    pub headers: Vec<(String, String)>,
    /// The `Cookie` headers split into name/value pairs, in order.
    pub cookies: Vec<(String, String)>,
    /// Route parameters, percent-decoded: those of the host route, plus those
    /// of the [`Router`](crate::Router) pattern that matched (which win).
    pub params: BTreeMap<String, String>,
    /// For a prefix route the part of the path after the prefix, starting
    /// with `/` or empty. A [`Router`](crate::Router) pattern ending in `...`
    /// replaces it with the part after its own prefix.
    pub rest: String,
    /// The name of the app in `routes.json`.
    pub app: String,
    /// The host route pattern that matched, e.g. `"/hello/..."`.
    pub pattern: String,
    /// The client's socket address, e.g. `"127.0.0.1:53422"`.
    pub client: String,
    /// The signed-in user as the host reports it (ABI section 6.3), `None`
    /// for an anonymous request. The host writes this field; a guest cannot
    /// forge it.
    pub user: Option<User>,
    /// The raw request body.
    pub body: Vec<u8>,
}

/// The signed-in user of a request: the `user` field of the request meta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user id the app gave to `session_start`.
    pub id: String,
    /// The display name the app gave to `session_start`.
    pub name: String,
}

impl Request {
    /// Builds a request for tests: `target` is a path with an optional
    /// `?query`, which fills `path`, `query` and `query_params`. The version
    /// is `HTTP/1.1`; everything else is empty.
    pub fn new(method: &str, target: &str) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            query_params: parse_urlencoded(query.as_bytes()),
            version: "HTTP/1.1".to_owned(),
            ..Request::default()
        }
    }

    /// Appends a header; a `Cookie` header also appends its pairs to
    /// `cookies`, as the host does.
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        if name.eq_ignore_ascii_case("cookie") {
            self.cookies.extend(parse_cookie_header(value));
        }
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Sets a route parameter.
    pub fn with_param(mut self, name: &str, value: &str) -> Request {
        self.params.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Sets the signed-in user, as the host would for a request with a session.
    pub fn with_user(mut self, id: &str, name: &str) -> Request {
        self.user = Some(User {
            id: id.to_owned(),
            name: name.to_owned(),
        });
        self
    }

    /// The method as a [`Method`], `None` for a method the SDK does not know.
    pub fn method(&self) -> Option<Method> {
        Method::parse(&self.method)
    }

    /// Whether the request's method is `method`.
    pub fn method_is(&self, method: Method) -> bool {
        self.method == method.as_str()
    }

    /// Whether this is a `GET` request.
    pub fn is_get(&self) -> bool {
        self.method_is(Method::Get)
    }

    /// Whether this is a `HEAD` request.
    pub fn is_head(&self) -> bool {
        self.method_is(Method::Head)
    }

    /// Whether this is a `POST` request.
    pub fn is_post(&self) -> bool {
        self.method_is(Method::Post)
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

    /// The `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// The first decoded value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        first(&self.query_params, name)
    }

    /// Every decoded value of query parameter `name`, in order.
    pub fn query_all(&self, name: &str) -> Vec<&str> {
        all(&self.query_params, name)
    }

    /// The value of the first cookie called `name` (names are case-sensitive).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        first(&self.cookies, name)
    }

    /// The route parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The body as UTF-8, `None` if it is not valid UTF-8.
    pub fn body_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// Whether the `Content-Type` is `application/x-www-form-urlencoded`.
    pub fn is_form(&self) -> bool {
        self.content_type().is_some_and(|ct| {
            mime_type(ct).eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    }

    /// The body parsed as `application/x-www-form-urlencoded` (`+` is a
    /// space), pairs in order, repeats kept. The `Content-Type` is not
    /// checked (see [`Request::is_form`]); invalid UTF-8 is replaced by U+FFFD.
    pub fn form(&self) -> Vec<(String, String)> {
        parse_urlencoded(&self.body)
    }

    /// The first value of field `name` in the [`form`](Request::form) body.
    pub fn form_value(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(&self.body)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The body parsed as JSON into `T`; unknown fields follow `T`'s serde rules.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// Whether an `Accept` header mentions `application/json`.
    pub fn wants_json(&self) -> bool {
        self.headers_all("accept")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("application/json"))
    }
}

/// The first value for `name` in ordered pairs.
fn first<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Every value for `name` in ordered pairs.
fn all<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The `type/subtype` part of a media type, without parameters or spaces.
fn mime_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Parses `application/x-www-form-urlencoded` bytes into owned pairs.
pub(crate) fn parse_urlencoded(input: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(input)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

/// Splits one `Cookie` header value into name/value pairs.
fn parse_cookie_header(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (n, v) = part.split_once('=').unwrap_or(("", part));
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Request {
        Request::new("POST", "/post/42?a=1&b=x%20y&a=2&c=d+e")
            .with_header("Host", "example.com")
            .with_header("Accept", "text/html")
            .with_header("X-Multi", "one")
            .with_header("x-multi", "two")
            .with_header("Cookie", "sid=abc; theme=dark")
            .with_header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .with_body("name=J%C3%BCrg+Smith&tag=a&tag=b&empty=&bare")
            .with_param("id", "42")
    }

    #[test]
    fn new_splits_target() {
        let table = [
            ("/", "/", "", vec![]),
            ("/a/b", "/a/b", "", vec![]),
            ("/a?", "/a", "", vec![]),
            ("/a?x=1", "/a", "x=1", vec![("x", "1")]),
            (
                "/a?x=%2F&x=+&y",
                "/a",
                "x=%2F&x=+&y",
                vec![("x", "/"), ("x", " "), ("y", "")],
            ),
            ("/a?q=1?2", "/a", "q=1?2", vec![("q", "1?2")]),
        ];
        for (target, path, query, params) in table {
            let req = Request::new("GET", target);
            assert_eq!(req.path, path, "{target}");
            assert_eq!(req.query, query, "{target}");
            let params: Vec<(String, String)> = params
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(req.query_params, params, "{target}");
            assert_eq!(req.version, "HTTP/1.1");
        }
    }

    #[test]
    fn header_lookups() {
        let req = sample();
        let table = [
            ("host", Some("example.com"), vec!["example.com"]),
            ("HOST", Some("example.com"), vec!["example.com"]),
            ("x-multi", Some("one"), vec!["one", "two"]),
            ("X-MULTI", Some("one"), vec!["one", "two"]),
            ("missing", None, vec![]),
        ];
        for (name, first, all) in table {
            assert_eq!(req.header(name), first, "{name}");
            assert_eq!(req.headers_all(name), all, "{name}");
        }
        assert_eq!(
            req.content_type(),
            Some("application/x-www-form-urlencoded; charset=utf-8")
        );
    }

    #[test]
    fn query_lookups() {
        let req = sample();
        let table = [
            ("a", Some("1"), vec!["1", "2"]),
            ("b", Some("x y"), vec!["x y"]),
            ("c", Some("d e"), vec!["d e"]),
            ("A", None, vec![]),
            ("z", None, vec![]),
        ];
        for (name, first, all) in table {
            assert_eq!(req.query(name), first, "{name}");
            assert_eq!(req.query_all(name), all, "{name}");
        }
    }

    #[test]
    fn cookie_lookups() {
        let req = sample().with_header("cookie", "sid=later; flag");
        let table = [
            ("sid", Some("abc")),
            ("theme", Some("dark")),
            ("", Some("flag")),
            ("SID", None),
            ("missing", None),
        ];
        for (name, want) in table {
            assert_eq!(req.cookie(name), want, "{name}");
        }
        assert_eq!(req.cookies.len(), 4);
    }

    #[test]
    fn param_lookups() {
        let req = sample();
        let table = [("id", Some("42")), ("ID", None), ("other", None)];
        for (name, want) in table {
            assert_eq!(req.param(name), want, "{name}");
        }
    }

    #[test]
    fn form_parsing() {
        let req = sample();
        assert!(req.is_form());
        let form = req.form();
        let want = [
            ("name", "Jürg Smith"),
            ("tag", "a"),
            ("tag", "b"),
            ("empty", ""),
            ("bare", ""),
        ];
        assert_eq!(form.len(), want.len());
        for ((n, v), (wn, wv)) in form.iter().zip(want) {
            assert_eq!((n.as_str(), v.as_str()), (wn, wv));
        }
        let table = [
            ("name", Some("Jürg Smith")),
            ("tag", Some("a")),
            ("empty", Some("")),
            ("bare", Some("")),
            ("missing", None),
        ];
        for (name, want) in table {
            assert_eq!(req.form_value(name).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn is_form_by_content_type() {
        let table = [
            (Some("application/x-www-form-urlencoded"), true),
            (
                Some("Application/X-WWW-Form-Urlencoded ; charset=utf-8"),
                true,
            ),
            (Some("multipart/form-data; boundary=x"), false),
            (Some("application/json"), false),
            (None, false),
        ];
        for (ct, want) in table {
            let mut req = Request::new("POST", "/");
            if let Some(ct) = ct {
                req = req.with_header("Content-Type", ct);
            }
            assert_eq!(req.is_form(), want, "{ct:?}");
        }
    }

    #[test]
    fn json_body() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct Post {
            title: String,
            n: u32,
        }
        let req = Request::new("POST", "/").with_body(r#"{"title":"t","n":3,"extra":true}"#);
        assert_eq!(
            req.json::<Post>().unwrap(),
            Post {
                title: "t".into(),
                n: 3
            }
        );
        assert!(
            Request::new("POST", "/")
                .with_body("nope")
                .json::<Post>()
                .is_err()
        );
    }

    #[test]
    fn wants_json_by_accept() {
        let table: [(&[&str], bool); 6] = [
            (&[], false),
            (&["text/html"], false),
            (&["application/json"], true),
            (&["text/html, Application/JSON;q=0.9"], true),
            (&["text/html", "application/json"], true),
            (&["application/jsonx"], true),
        ];
        for (accepts, want) in table {
            let mut req = Request::new("GET", "/");
            for a in accepts {
                req = req.with_header("Accept", a);
            }
            assert_eq!(req.wants_json(), want, "{accepts:?}");
        }
    }

    #[test]
    fn method_checks() {
        let table = [
            ("GET", Some(Method::Get), true, false, false),
            ("HEAD", Some(Method::Head), false, true, false),
            ("POST", Some(Method::Post), false, false, true),
            ("BREW", None, false, false, false),
        ];
        for (name, method, get, head, post) in table {
            let req = Request::new(name, "/");
            assert_eq!(req.method(), method, "{name}");
            assert_eq!(req.is_get(), get, "{name}");
            assert_eq!(req.is_head(), head, "{name}");
            assert_eq!(req.is_post(), post, "{name}");
            if let Some(m) = method {
                assert!(req.method_is(m));
            }
        }
    }

    #[test]
    fn body_str_checks_utf8() {
        assert_eq!(
            Request::new("POST", "/").with_body("hé").body_str(),
            Some("hé")
        );
        assert_eq!(
            Request::new("POST", "/").with_body(vec![0xff]).body_str(),
            None
        );
    }
}
