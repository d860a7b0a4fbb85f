//! The `hello` guest app: a greeting, an echo, a request inspector, two cookies and a route parameter, behind the SDK router.

use guest_sdk::{Cookie, Request, Response, Router};
use serde_json::json;

/// The app's routes.
pub fn router() -> Router {
    Router::new()
        .get("/hello", |_req: &Request| Response::text("Hello, world!"))
        .any("/hello/echo", echo)
        .any("/hello/inspect", inspect)
        .get("/hello/cookies", cookies)
        .get("/hello/greet/{name}", greet)
}

thread_local! {
    /// The routes, built once per instance; with pre-initialization, once
    /// when the host loads the module.
    static ROUTES: Router = router();
}

/// The handler exported to the host: routes every request.
pub fn handle(req: Request) -> Response {
    ROUTES.with(|routes| routes.handle(req))
}

/// Start-up work the host runs once at load (`wasmhost_init`): the routes.
fn init() {
    ROUTES.with(|_| ());
}

guest_sdk::export_handler!(handle, init = init);

/// Sends the body back byte for byte with the request's `Content-Type`.
fn echo(req: &Request) -> Response {
    let content_type = req.content_type().unwrap_or("application/octet-stream");
    Response::bytes(content_type, req.body.clone())
}

/// Describes the request as the guest saw it, as JSON.
fn inspect(req: &Request) -> Response {
    Response::json(&json!({
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "query_params": req.query_params,
        "version": req.version,
        "headers": req.headers,
        "cookies": req.cookies,
        "params": req.params,
        "rest": req.rest,
        "app": req.app,
        "pattern": req.pattern,
        "client": req.client,
        "body_len": req.body.len(),
    }))
}

/// Sets two cookies in two `Set-Cookie` headers.
fn cookies(_req: &Request) -> Response {
    Response::text("two cookies")
        .set_cookie(Cookie::new("a", "1").path("/"))
        .set_cookie(Cookie::new("b", "2").path("/"))
}

/// Greets the `{name}` route parameter.
fn greet(req: &Request) -> Response {
    let name = req.param("name").unwrap_or_default();
    Response::text(format!("Hello, {name}!"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_sdk::abi::{decode_response, encode_request};
    use guest_sdk::glue::handle_encoded;

    const TEXT: &str = "text/plain; charset=utf-8";

    #[test]
    fn routes() {
        // (method, target, status, content type, body)
        let table = [
            ("GET", "/hello", 200, Some(TEXT), "Hello, world!"),
            ("HEAD", "/hello", 200, Some(TEXT), "Hello, world!"),
            ("GET", "/hello?x=1", 200, Some(TEXT), "Hello, world!"),
            ("GET", "/hello/greet/bob", 200, Some(TEXT), "Hello, bob!"),
            (
                "GET",
                "/hello/greet/J%C3%BCrg%20M",
                200,
                Some(TEXT),
                "Hello, Jürg M!",
            ),
            ("GET", "/hello/cookies", 200, Some(TEXT), "two cookies"),
            ("GET", "/hello/", 404, Some(TEXT), "Not Found"),
            ("GET", "/hello/nope", 404, Some(TEXT), "Not Found"),
            ("GET", "/hello/greet", 404, Some(TEXT), "Not Found"),
            ("GET", "/hello/greet/", 404, Some(TEXT), "Not Found"),
            ("GET", "/hello/greet/a/b", 404, Some(TEXT), "Not Found"),
            ("GET", "/elsewhere", 404, Some(TEXT), "Not Found"),
            ("POST", "/hello", 405, Some(TEXT), "Method Not Allowed"),
            (
                "POST",
                "/hello/cookies",
                405,
                Some(TEXT),
                "Method Not Allowed",
            ),
            (
                "DELETE",
                "/hello/greet/bob",
                405,
                Some(TEXT),
                "Method Not Allowed",
            ),
        ];
        for (method, target, status, content_type, body) in table {
            let resp = handle(Request::new(method, target));
            assert_eq!(resp.status, status, "{method} {target}");
            assert_eq!(
                resp.header("Content-Type"),
                content_type,
                "{method} {target}"
            );
            assert_eq!(
                String::from_utf8_lossy(&resp.body),
                body,
                "{method} {target}"
            );
        }
    }

    #[test]
    fn method_not_allowed_lists_methods() {
        let table = [
            ("POST", "/hello", "GET, HEAD"),
            ("PUT", "/hello/cookies", "GET, HEAD"),
            ("PATCH", "/hello/greet/x", "GET, HEAD"),
        ];
        for (method, target, allow) in table {
            let resp = handle(Request::new(method, target));
            assert_eq!(resp.header("Allow"), Some(allow), "{method} {target}");
        }
    }

    #[test]
    fn cookies_sets_two_headers() {
        let resp = handle(Request::new("GET", "/hello/cookies"));
        assert_eq!(
            resp.headers_all("set-cookie"),
            ["a=1; Path=/", "b=2; Path=/"]
        );
    }

    #[test]
    fn echo_returns_body_and_content_type() {
        let all_bytes: Vec<u8> = (0..=255u8).collect();
        // (method, content type sent, body, content type expected)
        let table: [(&str, Option<&str>, &[u8], &str); 5] = [
            ("POST", Some("text/plain"), b"ping", "text/plain"),
            ("PUT", Some("image/png"), &all_bytes, "image/png"),
            ("POST", None, &all_bytes, "application/octet-stream"),
            ("GET", None, b"", "application/octet-stream"),
            (
                "DELETE",
                Some("application/json"),
                b"{}",
                "application/json",
            ),
        ];
        for (method, sent, body, want) in table {
            let mut req = Request::new(method, "/hello/echo").with_body(body);
            if let Some(ct) = sent {
                req = req.with_header("content-type", ct);
            }
            let resp = handle(req);
            assert_eq!(resp.status, 200, "{method} {sent:?}");
            assert_eq!(resp.header("Content-Type"), Some(want));
            assert_eq!(resp.body, body);
        }
    }

    #[test]
    fn inspect_shows_the_request() {
        let mut req = Request::new("POST", "/hello/inspect?a=1&b=x%20y&a=2")
            .with_header("Host", "example.com")
            .with_header("Cookie", "sid=abc; theme=dark")
            .with_header("X-Two", "1")
            .with_header("X-Two", "2")
            .with_param("host_param", "v")
            .with_body(vec![0, 1, 2, 255]);
        req.app = "hello".into();
        req.pattern = "/hello/...".into();
        req.rest = "/inspect".into();
        req.client = "127.0.0.1:5000".into();
        let resp = handle(req);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("Content-Type"), Some("application/json"));
        let got: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(
            got,
            json!({
                "method": "POST",
                "path": "/hello/inspect",
                "query": "a=1&b=x%20y&a=2",
                "query_params": [["a", "1"], ["b", "x y"], ["a", "2"]],
                "version": "HTTP/1.1",
                "headers": [
                    ["Host", "example.com"],
                    ["Cookie", "sid=abc; theme=dark"],
                    ["X-Two", "1"],
                    ["X-Two", "2"]
                ],
                "cookies": [["sid", "abc"], ["theme", "dark"]],
                "params": {"host_param": "v"},
                "rest": "/inspect",
                "app": "hello",
                "pattern": "/hello/...",
                "client": "127.0.0.1:5000",
                "body_len": 4
            })
        );
    }

    #[test]
    fn whole_abi_round_trip() {
        let all_bytes: Vec<u8> = (0..=255u8).collect();
        let req = Request::new("POST", "/hello/echo")
            .with_header("Content-Type", "application/x-binary")
            .with_body(all_bytes.clone());
        let resp = decode_response(&handle_encoded(&encode_request(&req), handle)).unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("content-type"), Some("application/x-binary"));
        assert_eq!(resp.body, all_bytes);

        let resp = decode_response(&handle_encoded(b"\0\0\0\0", handle)).unwrap();
        assert_eq!(resp.status, 400);
    }
}
