//! A small in-app router: method + path pattern to handler, with `{name}` segments, a trailing `...` wildcard, 404 and 405.

use percent_encoding::percent_decode_str;

use crate::method::Method;
use crate::request::Request;
use crate::response::Response;

/// A route handler.
type Handler = Box<dyn Fn(&Request) -> Response>;

/// Routes requests to handlers by method and path pattern.
///
/// Patterns are matched against the request's full path, segment by segment
/// (segments are split on `/` and percent-decoded before comparing):
///
/// - a literal segment matches itself, e.g. `/hello/echo`;
/// - `{name}` matches one non-empty segment and stores it, decoded, in
///   [`Request::params`] under `name`;
/// - a final `...` matches zero or more remaining segments and stores the
///   raw remainder (`""` or starting with `/`) in [`Request::rest`].
///
/// When several patterns match, the most specific wins: comparing segment by
/// segment from the left, a literal beats `{name}`, which beats `...`; a
/// pattern that ends beats one that continues with `...`; between equally
/// specific patterns the first registered wins. Only routes
/// accepting the request's method compete (a `HEAD` request also accepts
/// `GET` routes, preferring a `HEAD` route of equal specificity); if none
/// accepts it but some pattern matches the path, the answer is `405` with an
/// `Allow` header, and if no pattern matches, `404`.
///
/// ```
/// use guest_sdk::{Method, Request, Response, Router};
///
/// fn show(req: &Request) -> Response {
///     Response::text(format!("post {}", req.param("id").unwrap()))
/// }
///
/// let router = Router::new()
///     .get("/post/{id}", show)
///     .post("/post/{id}", |_req: &Request| Response::see_other("/"))
///     .route(Method::Delete, "/post/{id}", |_req: &Request| Response::status(204))
///     .any("/files/...", |req: &Request| Response::text(req.rest.clone()));
///
/// let resp = router.handle(Request::new("GET", "/post/7"));
/// assert_eq!(resp.body, b"post 7");
/// let resp = router.handle(Request::new("PUT", "/post/7"));
/// assert_eq!(resp.status, 405);
/// assert_eq!(resp.header("Allow"), Some("GET, HEAD, POST, DELETE"));
/// ```
#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

/// One registered route.
struct Route {
    /// Bits of [`Method::bit`].
    methods: u8,
    pattern: Pattern,
    handler: Handler,
}

/// A parsed path pattern.
#[derive(Debug)]
struct Pattern {
    segments: Vec<Segment>,
    wildcard: bool,
    /// Ranks for comparing specificity: 2 literal, 1 parameter per segment,
    /// then 0 for a wildcard or 3 for the end.
    rank: Vec<u8>,
}

/// One segment of a pattern.
#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// What a successful pattern match extracts.
#[derive(Debug, PartialEq)]
struct Match {
    params: Vec<(String, String)>,
    rest: Option<String>,
}

impl Pattern {
    /// Parses a pattern.
    ///
    /// # Panics
    ///
    /// If the pattern does not start with `/`, has `...` anywhere but as the
    /// whole last segment, has an empty or unbalanced `{}` parameter, or
    /// repeats a parameter name.
    fn parse(pattern: &str) -> Pattern {
        let Some(body) = pattern.strip_prefix('/') else {
            panic!("route pattern {pattern:?} must start with '/'");
        };
        let raw: Vec<&str> = body.split('/').collect();
        let mut segments = Vec::new();
        let mut wildcard = false;
        let mut rank = Vec::new();
        for (i, seg) in raw.iter().enumerate() {
            if *seg == "..." {
                assert!(
                    i == raw.len() - 1,
                    "route pattern {pattern:?}: `...` must be the last segment"
                );
                wildcard = true;
            } else if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                assert!(
                    !name.is_empty() && !name.contains(['{', '}']),
                    "route pattern {pattern:?}: bad parameter {seg:?}"
                );
                assert!(
                    !segments.contains(&Segment::Param(name.to_owned())),
                    "route pattern {pattern:?}: parameter {name:?} appears twice"
                );
                segments.push(Segment::Param(name.to_owned()));
                rank.push(1);
            } else {
                assert!(
                    !seg.contains(['{', '}']) && !seg.contains("..."),
                    "route pattern {pattern:?}: bad segment {seg:?}"
                );
                segments.push(Segment::Literal((*seg).to_owned()));
                rank.push(2);
            }
        }
        rank.push(if wildcard { 0 } else { 3 });
        Pattern {
            segments,
            wildcard,
            rank,
        }
    }

    /// Matches a raw (percent-encoded) request path.
    fn matches(&self, path: &str) -> Option<Match> {
        let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let n = self.segments.len();
        if segs.len() < n || (!self.wildcard && segs.len() != n) {
            return None;
        }
        let mut params = Vec::new();
        for (pattern_seg, seg) in self.segments.iter().zip(&segs) {
            let decoded = percent_decode_str(seg).decode_utf8_lossy();
            match pattern_seg {
                Segment::Literal(lit) if *lit == decoded => {}
                Segment::Param(name) if !decoded.is_empty() => {
                    params.push((name.clone(), decoded.into_owned()));
                }
                _ => return None,
            }
        }
        let rest = self.wildcard.then(|| {
            segs[n..]
                .iter()
                .map(|seg| format!("/{seg}"))
                .collect::<String>()
        });
        Some(Match { params, rest })
    }
}

impl Router {
    /// An empty router (answers 404 to everything).
    pub fn new() -> Router {
        Router::default()
    }

    /// Adds a route for `method` and `pattern`.
    ///
    /// # Panics
    ///
    /// If `pattern` does not start with `/`, has `...` anywhere but as the
    /// whole last segment, has an empty or unbalanced `{}` parameter, or
    /// repeats a parameter name.
    pub fn route<F>(self, method: Method, pattern: &str, handler: F) -> Router
    where
        F: Fn(&Request) -> Response + 'static,
    {
        self.add(method.bit(), pattern, Box::new(handler))
    }

    /// Adds a route for every method in `methods`.
    ///
    /// # Panics
    ///
    /// If `pattern` is malformed.
    pub fn methods<F>(self, methods: &[Method], pattern: &str, handler: F) -> Router
    where
        F: Fn(&Request) -> Response + 'static,
    {
        let bits = methods.iter().fold(0, |acc, m| acc | m.bit());
        self.add(bits, pattern, Box::new(handler))
    }

    /// Adds a `GET` route (which `HEAD` requests also reach).
    pub fn get<F>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(&Request) -> Response + 'static,
    {
        self.route(Method::Get, pattern, handler)
    }

    /// Adds a `POST` route.
    pub fn post<F>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(&Request) -> Response + 'static,
    {
        self.route(Method::Post, pattern, handler)
    }

    /// Adds a `PUT` route.
    pub fn put<F>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(&Request) -> Response + 'static,
    {
        self.route(Method::Put, pattern, handler)
    }

    /// Adds a `DELETE` route.
    pub fn delete<F>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(&Request) -> Response + 'static,
    {
        self.route(Method::Delete, pattern, handler)
    }

    /// Adds a `PATCH` route.
    pub fn patch<F>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(&Request) -> Response + 'static,
    {
        self.route(Method::Patch, pattern, handler)
    }

    /// Adds a route for every method.
    pub fn any<F>(self, pattern: &str, handler: F) -> Router
    where
        F: Fn(&Request) -> Response + 'static,
    {
        self.methods(&Method::ALL, pattern, handler)
    }

    fn add(mut self, methods: u8, pattern: &str, handler: Handler) -> Router {
        self.routes.push(Route {
            methods,
            pattern: Pattern::parse(pattern),
            handler,
        });
        self
    }

    /// Routes `req`: fills in [`Request::params`] (and [`Request::rest`] for
    /// a `...` pattern) and calls the best route's handler, or answers 404 or
    /// 405.
    pub fn handle(&self, mut req: Request) -> Response {
        let method = req.method();
        let mut allowed = 0u8;
        let mut best: Option<(&Route, bool, Match)> = None;
        for route in &self.routes {
            let Some(found) = route.pattern.matches(&req.path) else {
                continue;
            };
            allowed |= route.methods;
            let Some(method) = method else { continue };
            let explicit = route.methods & method.bit() != 0;
            let via_get = method == Method::Head && route.methods & Method::Get.bit() != 0;
            if !explicit && !via_get {
                continue;
            }
            let better = match &best {
                None => true,
                Some((b, b_explicit, _)) => {
                    (&route.pattern.rank, explicit) > (&b.pattern.rank, *b_explicit)
                }
            };
            if better {
                best = Some((route, explicit, found));
            }
        }
        if let Some((route, _, found)) = best {
            req.params.extend(found.params);
            if let Some(rest) = found.rest {
                req.rest = rest;
            }
            return (route.handler)(&req);
        }
        if allowed == 0 {
            return Response::not_found();
        }
        if allowed & Method::Get.bit() != 0 {
            allowed |= Method::Head.bit();
        }
        let allowed: Vec<Method> = Method::ALL
            .into_iter()
            .filter(|m| allowed & m.bit() != 0)
            .collect();
        Response::method_not_allowed(&allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler that answers with `tag` and what the router extracted.
    fn tagged(tag: &'static str) -> impl Fn(&Request) -> Response {
        move |req: &Request| {
            let params: Vec<String> = req.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Response::text(format!("{tag} [{}] rest={:?}", params.join(","), req.rest))
        }
    }

    fn body(resp: &Response) -> String {
        String::from_utf8(resp.body.clone()).unwrap()
    }

    #[test]
    fn pattern_matching() {
        // (pattern, path, Some((params, rest)) or None)
        type Want = Option<(
            &'static [(&'static str, &'static str)],
            Option<&'static str>,
        )>;
        let table: &[(&str, &str, Want)] = &[
            ("/", "/", Some((&[], None))),
            ("/", "/x", None),
            ("/hello", "/hello", Some((&[], None))),
            ("/hello", "/hello/", None),
            ("/hello", "/Hello", None),
            ("/hello", "/hell", None),
            ("/hello", "hello", None),
            ("/hello", "", None),
            ("/hello", "*", None),
            ("/hello/", "/hello/", Some((&[], None))),
            ("/hello/echo", "/hello/%65cho", Some((&[], None))),
            ("/a b", "/a%20b", Some((&[], None))),
            (
                "/greet/{name}",
                "/greet/bob",
                Some((&[("name", "bob")], None)),
            ),
            (
                "/greet/{name}",
                "/greet/J%C3%BCrg%20%2F",
                Some((&[("name", "Jürg /")], None)),
            ),
            (
                "/greet/{name}",
                "/greet/a+b",
                Some((&[("name", "a+b")], None)),
            ),
            ("/greet/{name}", "/greet/", None),
            ("/greet/{name}", "/greet", None),
            ("/greet/{name}", "/greet/a/b", None),
            (
                "/{a}/x/{b}",
                "/1/x/2",
                Some((&[("a", "1"), ("b", "2")], None)),
            ),
            ("/{a}/x/{b}", "/1/y/2", None),
            ("/files/...", "/files", Some((&[], Some("")))),
            ("/files/...", "/files/", Some((&[], Some("/")))),
            ("/files/...", "/files/a", Some((&[], Some("/a")))),
            (
                "/files/...",
                "/files/a%20b/c/",
                Some((&[], Some("/a%20b/c/"))),
            ),
            ("/files/...", "/filesx", None),
            ("/files/...", "/", None),
            ("/...", "/", Some((&[], Some("/")))),
            ("/...", "/a/b", Some((&[], Some("/a/b")))),
            ("/u/{id}/...", "/u/7/x", Some((&[("id", "7")], Some("/x")))),
        ];
        for (pattern, path, want) in table {
            let got = Pattern::parse(pattern).matches(path);
            let want = want.map(|(params, rest)| Match {
                params: params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                rest: rest.map(str::to_owned),
            });
            assert_eq!(got, want, "{pattern} vs {path}");
        }
    }

    #[test]
    fn malformed_patterns_panic() {
        let table = [
            "", "hello", "/.../x", "/a/...x", "/{}", "/{a", "/a}", "/{a}{b}", "/{a}/{a}",
        ];
        for pattern in table {
            let result = std::panic::catch_unwind(|| Pattern::parse(pattern));
            assert!(result.is_err(), "{pattern:?} should be refused");
        }
    }

    #[test]
    fn most_specific_match_wins() {
        let router = Router::new()
            .get("/a/...", tagged("a-wild"))
            .get("/a/{x}", tagged("a-param"))
            .get("/a/b", tagged("a-b"))
            .get("/a/b/...", tagged("a-b-wild"))
            .get("/a/{x}/c", tagged("a-x-c"))
            .get("/{x}/{y}", tagged("x-y"))
            .get("/{x}/b", tagged("x-b"))
            .get("/...", tagged("root-wild"))
            .get("/dup/{first}", tagged("dup-first"))
            .get("/dup/{second}", tagged("dup-second"));
        let table = [
            ("/a/b", "a-b [] rest=\"\""),
            ("/a/z", "a-param [x=z] rest=\"\""),
            ("/a", "a-wild [] rest=\"\""),
            ("/a/z/y/x", "a-wild [] rest=\"/z/y/x\""),
            ("/a/b/c", "a-b-wild [] rest=\"/c\""),
            ("/a/z/c", "a-x-c [x=z] rest=\"\""),
            ("/q/b", "x-b [x=q] rest=\"\""),
            ("/q/r", "x-y [x=q,y=r] rest=\"\""),
            ("/q", "root-wild [] rest=\"/q\""),
            ("/", "root-wild [] rest=\"/\""),
            ("/dup/1", "dup-first [first=1] rest=\"\""),
        ];
        for (path, want) in table {
            let resp = router.handle(Request::new("GET", path));
            assert_eq!(resp.status, 200, "{path}");
            assert_eq!(body(&resp), want, "{path}");
        }
    }

    #[test]
    fn router_params_join_host_params() {
        let router = Router::new().get("/p/{id}", tagged("p"));
        let req = Request::new("GET", "/p/new")
            .with_param("id", "old")
            .with_param("host", "h");
        assert_eq!(body(&router.handle(req)), "p [host=h,id=new] rest=\"\"");
    }

    #[test]
    fn methods_select_routes_or_405() {
        let router = Router::new()
            .get("/r", tagged("get"))
            .post("/r", tagged("post"))
            .route(Method::Delete, "/r", tagged("delete"))
            .put("/only-put", tagged("put"))
            .patch("/only-put", tagged("patch"))
            .any("/any", tagged("any"))
            .methods(&[Method::Options, Method::Post], "/opts", tagged("opts"))
            .get("/m/{x}", tagged("m-param"))
            .post("/m/lit", tagged("m-lit"));
        // (method, path, status, body prefix or Allow header)
        let table = [
            ("GET", "/r", 200, "get"),
            ("POST", "/r", 200, "post"),
            ("DELETE", "/r", 200, "delete"),
            ("PUT", "/r", 405, "GET, HEAD, POST, DELETE"),
            ("OPTIONS", "/r", 405, "GET, HEAD, POST, DELETE"),
            ("BREW", "/r", 405, "GET, HEAD, POST, DELETE"),
            ("PUT", "/only-put", 200, "put"),
            ("PATCH", "/only-put", 200, "patch"),
            ("GET", "/only-put", 405, "PUT, PATCH"),
            ("HEAD", "/only-put", 405, "PUT, PATCH"),
            ("GET", "/any", 200, "any"),
            ("PATCH", "/any", 200, "any"),
            ("OPTIONS", "/any", 200, "any"),
            (
                "BREW",
                "/any",
                405,
                "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS",
            ),
            ("OPTIONS", "/opts", 200, "opts"),
            ("GET", "/opts", 405, "POST, OPTIONS"),
            // A less specific pattern serves a method the best one lacks.
            ("GET", "/m/lit", 200, "m-param"),
            ("POST", "/m/lit", 200, "m-lit"),
            ("POST", "/m/other", 405, "GET, HEAD"),
            ("GET", "/nothing", 404, "Not Found"),
            ("BREW", "/nothing", 404, "Not Found"),
        ];
        for (method, path, status, want) in table {
            let resp = router.handle(Request::new(method, path));
            assert_eq!(resp.status, status, "{method} {path}");
            if status == 405 {
                assert_eq!(resp.header("Allow"), Some(want), "{method} {path}");
                assert_eq!(body(&resp), "Method Not Allowed");
            } else {
                assert!(
                    body(&resp).starts_with(want),
                    "{method} {path}: {}",
                    body(&resp)
                );
            }
        }
    }

    #[test]
    fn head_falls_back_to_get() {
        let router = Router::new()
            .get("/g", tagged("get"))
            .get("/both", tagged("get"))
            .route(Method::Head, "/both", tagged("head"))
            .route(Method::Head, "/h/{x}", tagged("head-param"))
            .get("/h/lit", tagged("get-lit"))
            .any("/any", tagged("any"));
        let table = [
            ("/g", 200, "get"),
            ("/both", 200, "head"),
            ("/h/lit", 200, "get-lit"),
            ("/h/other", 200, "head-param"),
            ("/any", 200, "any"),
            ("/missing", 404, "Not Found"),
        ];
        for (path, status, want) in table {
            let resp = router.handle(Request::new("HEAD", path));
            assert_eq!(resp.status, status, "HEAD {path}");
            assert!(
                body(&resp).starts_with(want),
                "HEAD {path}: {}",
                body(&resp)
            );
        }
    }

    #[test]
    fn empty_router_is_404() {
        let resp = Router::new().handle(Request::new("GET", "/"));
        assert_eq!(resp, Response::not_found());
    }
}
