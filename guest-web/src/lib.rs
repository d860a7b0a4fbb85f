//! The shared web layer of the bundled guest apps (user, todo, weibo): the base layout with its nav bar, minijinja pages with HTML auto-escaping, HTML-or-JSON error answers and UTC time formatting.
//!
//! Templates are compiled into each module (`include_str!`); an app passes
//! its own to [`Pages::new`], each extending `base.html`, which shows who is
//! signed in (`current_user`, taken from the request) and an optional
//! `error` message.

use guest_sdk::{Request, Response, Router};
use minijinja::value::{Serde, merge_maps};
use minijinja::{AutoEscape, Environment, Value, context};
use serde::Serialize;
use serde_json::json;

pub mod time;

#[doc(hidden)]
pub use guest_sdk;

/// The base layout every page extends: head, nav bar, `error`, `content`.
pub const BASE_TEMPLATE: &str = include_str!("../templates/base.html");
/// The error page.
const ERROR_TEMPLATE: &str = include_str!("../templates/error.html");

/// What a handler returns: `Err` for an early answer (a denial, a bad
/// input), which [`Pages::finish`] treats like `Ok`.
pub type Answer = Result<Response, Response>;

/// An app's templates, ready to render.
pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    /// The shared templates plus the app's `templates` (name, source).
    /// Every template is HTML-escaped, whatever its name.
    ///
    /// # Panics
    ///
    /// If a template does not parse: a bug caught by the app's tests.
    pub fn new(templates: &[(&'static str, &'static str)]) -> Pages {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_filter("datetime", |ts: i64| time::human(ts));
        let shared = [("base.html", BASE_TEMPLATE), ("error.html", ERROR_TEMPLATE)];
        for (name, source) in shared.iter().chain(templates) {
            if let Err(err) = env.add_template(name, source) {
                panic!("template {name} does not parse: {err:#}");
            }
        }
        Pages { env }
    }

    /// Renders template `name` with `ctx` (anything that serializes as a
    /// map: a `json!` object or a struct) plus `current_user` from `req`, as
    /// a `200` HTML response; a template failure is logged and answered
    /// with `500`. A struct goes into the template as it is, without a
    /// `serde_json::Value` in between.
    pub fn render(&self, req: &Request, name: &str, ctx: impl Serialize) -> Response {
        // Later maps win: `current_user` is always the request's.
        let ctx = merge_maps([
            Value::from(Serde(&ctx)),
            context! { current_user => Value::from(Serde(&req.user)) },
        ]);
        let result = self.env.get_template(name).and_then(|t| t.render(ctx));
        match result {
            Ok(html) => Response::html(html),
            Err(err) => {
                guest_sdk::log::error(&format!("rendering {name}: {err:#}"));
                Response::text("Internal Server Error: a page failed to render").with_status(500)
            }
        }
    }

    /// An error answer: JSON `{"error": message}` with `status` for a
    /// request that accepts JSON, else the error page in the layout.
    pub fn error(&self, req: &Request, status: u16, message: &str) -> Response {
        if req.wants_json() {
            return Response::json(&json!({ "error": message })).with_status(status);
        }
        self.render(
            req,
            "error.html",
            json!({ "status": status, "reason": reason(status), "message": message }),
        )
        .with_status(status)
    }

    /// Puts a plain-text error answer (for example from
    /// [`guest_sdk::guard`]) into the layout; other responses (redirects,
    /// JSON, HTML) are returned unchanged.
    pub fn dress(&self, req: &Request, resp: Response) -> Response {
        let is_text = resp
            .header("content-type")
            .is_some_and(|ct| ct.starts_with("text/plain"));
        if resp.status < 400 || !is_text || req.wants_json() {
            return resp;
        }
        let message = String::from_utf8_lossy(&resp.body).into_owned();
        self.error(req, resp.status, &message)
    }
}

impl Pages {
    /// The answer for a failed storage operation: logged with `what`, `500`
    /// for the client.
    pub fn storage_error(
        &self,
        req: &Request,
        what: &str,
        err: impl std::fmt::Display,
    ) -> Response {
        guest_sdk::log::error(&format!("{what}: {err}"));
        self.error(req, 500, "storage failed; please try again later")
    }

    /// The response of a handler's [`Answer`], plain-text errors
    /// [dressed](Pages::dress) in the layout.
    pub fn finish(&self, req: &Request, answer: Answer) -> Response {
        match answer {
            Ok(resp) | Err(resp) => self.dress(req, resp),
        }
    }
}

/// Serves one request of an app: routes it, then dresses plain-text errors
/// (the router's 404 and 405, a guard's 403) in the app's layout.
pub fn serve(pages: &Pages, router: &Router, mut req: Request) -> Response {
    // The layout needs the request's metadata only: keep the body out of the copy.
    let body = std::mem::take(&mut req.body);
    let meta = req.clone();
    req.body = body;
    pages.dress(&meta, router.handle(req))
}

/// Emits a web app's shared parts: `fn pages()`, its templates (`Pages`,
/// built once); `fn wrap(f)`, which turns a handler returning an [`Answer`]
/// into a router handler finished with those pages; `pub fn handle`, which
/// serves the routes built by `$router` (once per instance) dressed in the
/// pages; and the ABI exports, with `wasmhost_init` building the routes and
/// the templates so that, pre-initialized, the host does it once at load.
///
/// ```text
/// guest_web::export_app! {
///     router: router,
///     templates: [("index.html", include_str!("../templates/index.html"))],
/// }
/// ```
#[macro_export]
macro_rules! export_app {
    (router: $router:path, templates: [$(($name:expr, $source:expr)),* $(,)?] $(,)?) => {
        /// The app's templates, parsed once (at load, when pre-initialized).
        fn pages() -> &'static $crate::Pages {
            static PAGES: ::std::sync::OnceLock<$crate::Pages> = ::std::sync::OnceLock::new();
            PAGES.get_or_init(|| $crate::Pages::new(&[$(($name, $source)),*]))
        }

        /// Turns a handler returning an [`Answer`](guest_web::Answer) into a
        /// router handler finished with the app's pages.
        fn wrap(
            f: fn(&$crate::guest_sdk::Request) -> $crate::Answer,
        ) -> impl Fn(&$crate::guest_sdk::Request) -> $crate::guest_sdk::Response {
            $crate::wrap(pages, f)
        }

        ::std::thread_local! {
            /// The app's routes, built once per instance (at load, when the
            /// host pre-initializes the module).
            static ROUTES: $crate::guest_sdk::Router = $router();
        }

        /// The handler exported to the host.
        pub fn handle(req: $crate::guest_sdk::Request) -> $crate::guest_sdk::Response {
            ROUTES.with(|routes| $crate::serve(pages(), routes, req))
        }

        /// Start-up work for `wasmhost_init`: routes built, templates parsed.
        fn init() {
            ROUTES.with(|_| ());
            pages();
        }

        $crate::guest_sdk::export_handler!(handle, init = init);
    };
}

/// Turns a handler returning an [`Answer`] into a router handler that
/// finishes it with the app's pages.
pub fn wrap(
    pages: fn() -> &'static Pages,
    f: fn(&Request) -> Answer,
) -> impl Fn(&Request) -> Response {
    move |req: &Request| pages().finish(req, f(req))
}

/// The reason phrase of the statuses the apps answer with.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"{% extends "base.html" %}{% block title %}T{% endblock %}{% block content %}<p id="x">{{ text }}</p>{% endblock %}"#;

    fn pages() -> Pages {
        Pages::new(&[("page.html", PAGE)])
    }

    fn body(resp: &Response) -> String {
        String::from_utf8_lossy(&resp.body).into_owned()
    }

    #[test]
    fn renders_escaped_with_the_nav() {
        let req = Request::new("GET", "/").with_user("1", "<b>ann</b>");
        let resp = pages().render(
            &req,
            "page.html",
            json!({"text": "<script>alert(1)</script>"}),
        );
        assert_eq!(resp.status, 200);
        let html = body(&resp);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;b&gt;ann&lt;&#x2f;b&gt;"), "{html}");
        assert!(html.contains("action=\"/user/logout\""));
        assert!(!html.contains("nav-login"));

        let anon = pages().render(&Request::new("GET", "/"), "page.html", json!({}));
        assert!(body(&anon).contains("nav-login"));
        assert!(!body(&anon).contains("nav-logout"));
        // The request says who is signed in, whatever the context says.
        let forged = json!({"current_user": {"id": "9", "name": "mallory"}});
        let page = body(&pages().render(&Request::new("GET", "/"), "page.html", forged));
        assert!(
            page.contains("nav-login") && !page.contains("mallory"),
            "{page}"
        );
        let page = body(&pages().render(&req, "page.html", json!({"current_user": null})));
        assert!(page.contains("&lt;b&gt;ann"), "{page}");
    }

    #[test]
    fn errors_are_pages_or_json() {
        let req = Request::new("GET", "/");
        let resp = pages().error(&req, 404, "no such <thing>");
        assert_eq!(resp.status, 404);
        assert!(body(&resp).contains("no such &lt;thing&gt;"));
        let json_req = req.with_header("Accept", "application/json");
        let resp = pages().error(&json_req, 400, "bad");
        assert_eq!(resp.status, 400);
        assert_eq!(body(&resp), r#"{"error":"bad"}"#);
    }

    #[test]
    fn dress_wraps_plain_errors_only() {
        let req = Request::new("GET", "/");
        let dressed = pages().dress(&req, Response::text("nope").with_status(403));
        assert_eq!(dressed.status, 403);
        assert!(body(&dressed).contains("nav-weibo"));
        let redirect = Response::redirect("/x");
        assert_eq!(pages().dress(&req, redirect.clone()), redirect);
    }

    #[test]
    fn missing_template_is_500() {
        let resp = pages().render(&Request::new("GET", "/"), "nope.html", json!({}));
        assert_eq!(resp.status, 500);
    }
}
