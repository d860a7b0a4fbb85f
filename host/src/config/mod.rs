//! Loading and validating `routes.json`: the apps, their limits and the routes.
//!
//! The format is documented in `docs/routes.md`. [`parse_config`] is pure and
//! checks everything that can be checked from the text; [`load_config`] also
//! reads the file and checks that the modules and static directories exist.
//! Path patterns and hosts are validated by [`crate::router`], so that the
//! rules live in one place.
//!
//! The schema's types and [`parse_config`] are here; the errors, the serde
//! shape of the file, limits, grants, units, route conflicts and
//! [`load_config`]'s file checks each have their own file.

mod conflicts;
mod error;
mod grants;
mod limits;
mod load;
mod raw;
#[cfg(test)]
mod testing;
mod units;

pub use error::ConfigError;
pub use grants::{DirGrant, Grants, MAX_OUTBOUND_ORIGINS, OutboundOrigin};
pub use limits::{
    DEFAULT_CPU_TIME, DEFAULT_LOG_OUTPUT, DEFAULT_MAX_BODY, DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_QUEUE, DEFAULT_MAX_RESPONSE, DEFAULT_MEMORY, DEFAULT_QUEUE_TIMEOUT,
    DEFAULT_WALL_TIME, ERROR_PAGE_STATUSES, Limits, MAX_APP_NAME_LEN, MAX_ENV_BYTES,
    MAX_ERROR_PAGE, MAX_FUEL, MAX_LOG_OUTPUT, MAX_MAX_BODY, MAX_MAX_CONCURRENCY, MAX_MAX_QUEUE,
    MAX_MAX_RESPONSE, MAX_MEMORY, MAX_TIME, MIN_FUEL, MIN_MAX_RESPONSE, MIN_MEMORY, MIN_TIME,
};
pub use load::load_config;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::router::{self, Pattern, one_line};

use conflicts::check_conflicts;
use error::{json_error, show};
use grants::parse_grants;
use limits::parse_limits;
use raw::{Object, RawConfig};

/// A loaded, validated `routes.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub apps: BTreeMap<String, AppConfig>,
    /// The routes in file order.
    pub routes: Vec<RouteConfig>,
    /// Things that are allowed but probably mistakes, one line each.
    pub warnings: Vec<String>,
    /// The config file.
    pub path: PathBuf,
    /// Where anonymous requests to login-required routes are sent.
    pub login_page: String,
}

/// One app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConfig {
    /// The module, joined to the config file's directory if it was relative.
    pub module: PathBuf,
    pub limits: Limits,
    /// What the app's guests may use beyond clocks and random numbers.
    pub grants: Grants,
    /// The app's own pages for its failures, by status, joined to the config
    /// file's directory if relative (read when the app is loaded).
    pub error_pages: BTreeMap<u16, PathBuf>,
    /// Anonymous requests to the app's routes are sent to the login page
    /// (unless a route says otherwise).
    pub login_required: bool,
    /// Whether a module exporting `wasmhost_init` is pre-initialized at load
    /// (on by default; off to compare, or to debug an initializer).
    pub preinit: bool,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// The host, normalized by [`router::normalize_host`] (lower case).
    pub host: Option<String>,
    /// The path pattern as written.
    pub path: String,
    pub target: RouteTarget,
    /// Anonymous requests get the login page instead of the app: the route's
    /// own `login_required`, else its app's.
    pub login_required: bool,
}

/// What a route serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// The app of this name (a key of [`Config::apps`]).
    App(String),
    /// Files under this directory, joined to the config file's directory if
    /// it was relative.
    Static(PathBuf),
}

/// Parses and validates the text of a config file found at `config_path`,
/// without touching the file system; relative paths are joined to
/// `config_path`'s directory.
pub fn parse_config(text: &str, config_path: &Path) -> Result<Config, ConfigError> {
    let path = config_path.to_path_buf();
    let Object(raw): Object<RawConfig> =
        serde_json::from_str(text).map_err(|e| json_error(&path, &e))?;
    let base = config_path.parent().unwrap_or(Path::new(""));

    let mut apps = BTreeMap::new();
    for (name, app) in raw.apps.0 {
        let app_error = |message: String| ConfigError::App {
            path: path.clone(),
            app: name.clone(),
            message,
        };
        if !is_valid_app_name(&name) {
            return Err(app_error(format!(
                "invalid app name (expected 1 to {MAX_APP_NAME_LEN} of a-z, 0-9, `_`, `-`, \
                 starting with a letter or digit)"
            )));
        }
        if app.module.is_empty() {
            return Err(app_error("module is empty".to_owned()));
        }
        let module = base.join(&app.module);
        if module.extension().is_none_or(|ext| ext != "wasm") {
            return Err(app_error(format!(
                "module {} is not a .wasm file",
                show(&module)
            )));
        }
        let limits = match &app.limits {
            Some(Object(limits)) => parse_limits(&path, &name, limits)?,
            None => Limits::default(),
        };
        let grants = match &app.grants {
            Some(Object(grants)) => parse_grants(&path, &name, base, grants)?,
            None => Grants::default(),
        };
        let mut error_pages = BTreeMap::new();
        for (status, file) in app.error_pages.iter().flatten() {
            let field = format!("apps.{name}.error_pages.{}", one_line(status));
            let code = status
                .parse::<u16>()
                .ok()
                .filter(|code| ERROR_PAGE_STATUSES.contains(code))
                .ok_or_else(|| ConfigError::Limit {
                    path: path.clone(),
                    field: field.clone(),
                    message: format!(
                        "pages can be given for statuses {ERROR_PAGE_STATUSES:?} only"
                    ),
                })?;
            if file.is_empty() {
                return Err(ConfigError::Limit {
                    path: path.clone(),
                    field,
                    message: "the file name is empty".to_owned(),
                });
            }
            error_pages.insert(code, base.join(file));
        }
        apps.insert(
            name,
            AppConfig {
                module,
                limits,
                grants,
                error_pages,
                login_required: app.login_required,
                preinit: app.preinit,
            },
        );
    }

    let mut routes = Vec::with_capacity(raw.routes.len());
    for (index, Object(route)) in raw.routes.into_iter().enumerate() {
        let route_error = |message: String| ConfigError::Route {
            path: path.clone(),
            route: index + 1,
            pattern: route.path.clone(),
            message,
        };
        let pattern = Pattern::parse(&route.path)
            .map_err(|reason| route_error(format!("invalid path pattern: {reason}")))?;
        let host = match &route.host {
            None => None,
            Some(host) => Some(router::normalize_host(host).map_err(|reason| {
                route_error(format!("invalid host \"{}\": {reason}", one_line(host)))
            })?),
        };
        let mut login_required = false;
        let target = match (&route.app, &route.static_dir) {
            (Some(app), None) => {
                if !apps.contains_key(app) {
                    return Err(ConfigError::UnknownApp {
                        path: path.clone(),
                        route: index + 1,
                        pattern: route.path,
                        app: app.clone(),
                    });
                }
                login_required = route
                    .login_required
                    .unwrap_or_else(|| apps.get(app).is_some_and(|a| a.login_required));
                RouteTarget::App(app.clone())
            }
            (None, Some(dir)) => {
                if !pattern.is_prefix() {
                    return Err(route_error(
                        "a static route must be a prefix pattern ending in `/...`".to_owned(),
                    ));
                }
                if dir.is_empty() {
                    return Err(route_error("static directory is empty".to_owned()));
                }
                if route.login_required.is_some() {
                    return Err(route_error(
                        "\"login_required\" applies to app routes only".to_owned(),
                    ));
                }
                RouteTarget::Static(base.join(dir))
            }
            (Some(_), Some(_)) => {
                return Err(route_error(
                    "has both \"app\" and \"static\"; give exactly one".to_owned(),
                ));
            }
            (None, None) => {
                return Err(route_error(
                    "needs \"app\" (an app name) or \"static\" (a directory)".to_owned(),
                ));
            }
        };
        routes.push(RouteConfig {
            host,
            path: route.path,
            target,
            login_required,
        });
    }

    check_conflicts(&path, &routes)?;

    let mut warnings = Vec::new();
    let used: BTreeSet<&str> = routes
        .iter()
        .filter_map(|r| match &r.target {
            RouteTarget::App(app) => Some(app.as_str()),
            RouteTarget::Static(_) => None,
        })
        .collect();
    for name in apps.keys().filter(|name| !used.contains(name.as_str())) {
        warnings.push(format!(
            "{}: app \"{name}\" is not used by any route",
            show(&path)
        ));
    }
    if routes.is_empty() {
        warnings.push(format!(
            "{}: there are no routes; every request will get 404",
            show(&path)
        ));
    }

    let login_page = raw
        .login_page
        .unwrap_or_else(|| DEFAULT_LOGIN_PAGE.to_owned());
    if !login_page.starts_with('/')
        || login_page.starts_with("//")
        || login_page.contains(['?', '#'])
    {
        return Err(ConfigError::Limit {
            path,
            field: "login_page".to_owned(),
            message: format!(
                "\"{}\" must be a local path like \"/user/login\"",
                one_line(&login_page)
            ),
        });
    }
    Ok(Config {
        apps,
        routes,
        warnings,
        path,
        login_page,
    })
}

/// Where anonymous requests to login-required routes go unless `login_page` says otherwise.
pub const DEFAULT_LOGIN_PAGE: &str = "/user/login";

/// Whether `name` matches `[a-z0-9][a-z0-9_-]{0,62}`.
fn is_valid_app_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() <= MAX_APP_NAME_LEN
        && bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::testing::{PATH, error, parse};
    use super::units::{KIB, MIB};
    use super::*;
    use crate::router::Router;

    #[test]
    fn full_example() {
        let text = r#"{
  "apps": {
    "hello": { "module": "target/guests/wasm32-wasip1/release/hello.wasm" },
    "blog":  { "module": "/srv/apps/blog.wasm", "preinit": false, "limits": { "memory": "32 MiB", "cpu_time": "2s", "wall_time": "5s", "max_body": "1 MB", "max_response": 1048576, "max_concurrency": 4, "log_output": "8KiB" } }
  },
  "routes": [
    { "path": "/hello", "app": "hello" },
    { "path": "/hello/...", "app": "hello" },
    { "path": "/post/{id}", "app": "blog" },
    { "path": "/static/...", "static": "static" },
    { "host": "Tenant.Example.com", "path": "/...", "app": "blog" }
  ]
}"#;
        let config = match parse(text) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(config.path, Path::new(PATH));
        assert_eq!(
            config.apps["hello"],
            AppConfig {
                module: PathBuf::from("conf/target/guests/wasm32-wasip1/release/hello.wasm"),
                limits: Limits::default(),
                grants: Grants::default(),
                error_pages: BTreeMap::new(),
                login_required: false,
                preinit: true,
            }
        );
        assert_eq!(
            config.apps["blog"],
            AppConfig {
                module: PathBuf::from("/srv/apps/blog.wasm"),
                limits: Limits {
                    memory: 32 * MIB,
                    cpu_time: Duration::from_secs(2),
                    wall_time: Duration::from_secs(5),
                    max_body: 1_000_000,
                    max_response: MIB,
                    max_concurrency: 4,
                    log_output: 8 * KIB,
                    ..Limits::default()
                },
                grants: Grants::default(),
                error_pages: BTreeMap::new(),
                login_required: false,
                preinit: false,
            }
        );
        assert_eq!(config.routes.len(), 5);
        assert_eq!(
            config.routes[3],
            RouteConfig {
                host: None,
                path: "/static/...".to_owned(),
                target: RouteTarget::Static(PathBuf::from("conf/static")),
                login_required: false,
            }
        );
        assert_eq!(
            config.routes[4],
            RouteConfig {
                host: Some("tenant.example.com".to_owned()),
                path: "/...".to_owned(),
                target: RouteTarget::App("blog".to_owned()),
                login_required: false,
            }
        );
        assert_eq!(config.login_page, DEFAULT_LOGIN_PAGE);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn docs_example() {
        // The example in docs/routes.md parses and routes as its table says.
        let doc = include_str!("../../../docs/routes.md");
        let json = doc
            .split("```json\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap_or_default();
        let config = match parse_config(json, Path::new("routes.json")) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        };
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(
            config.apps["blog"].limits,
            Limits {
                wall_time: Duration::from_secs(5),
                ..Limits::default()
            }
        );
        let table = config
            .routes
            .iter()
            .map(|r| (r.host.clone(), r.path.clone(), r.target.clone()))
            .collect();
        let router = match Router::new(table) {
            Ok(router) => router,
            Err(e) => panic!("{e}"),
        };
        // (host, path, pattern, rest)
        let rows = [
            (None, "/hello", Some("/hello"), ""),
            (None, "/hello/world", Some("/hello/..."), "/world"),
            (None, "/post/42", Some("/post/{id}"), ""),
            (None, "/post/new", Some("/post/new"), ""),
            (None, "/post/a%20b", Some("/post/{id}"), ""),
            (
                None,
                "/static/css/site.css",
                Some("/static/..."),
                "/css/site.css",
            ),
            (None, "/other", None, ""),
            (Some("tenant.example.com"), "/other", Some("/..."), "/other"),
            (Some("tenant.example.com"), "/hello", Some("/..."), "/hello"),
        ];
        for (host, path, pattern, rest) in rows {
            let got = router.route(host, path).ok().flatten();
            assert_eq!(got.as_ref().map(|m| m.pattern), pattern, "{path}");
            assert_eq!(got.map(|m| m.rest).unwrap_or_default(), rest, "{path}");
        }
    }

    #[test]
    fn app_errors() {
        // (apps object, the message after the config path)
        let table = [
            (
                r#"{"Hello": {"module": "h.wasm"}}"#,
                "app \"Hello\": invalid app name",
            ),
            (
                r#"{"-a": {"module": "h.wasm"}}"#,
                "app \"-a\": invalid app name",
            ),
            (
                r#"{"": {"module": "h.wasm"}}"#,
                "app \"\": invalid app name",
            ),
            (
                r#"{"a.b": {"module": "h.wasm"}}"#,
                "app \"a.b\": invalid app name",
            ),
            (r#"{"a": {"module": ""}}"#, "app \"a\": module is empty"),
            (
                r#"{"a": {"module": "a.wat"}}"#,
                "app \"a\": module conf/a.wat is not a .wasm file",
            ),
            (
                r#"{"a": {"module": "dir/"}}"#,
                "app \"a\": module conf/dir/ is not a .wasm file",
            ),
        ];
        for (apps, want) in table {
            let msg = error(&format!(r#"{{"apps": {apps}, "routes": []}}"#));
            assert!(msg.starts_with(&format!("{PATH}: {want}")), "{apps}: {msg}");
        }
        let long = "a".repeat(MAX_APP_NAME_LEN);
        let ok = parse(&format!(
            r#"{{"apps": {{"{long}": {{"module": "x.wasm"}}, "0_a-9": {{"module": "x.wasm"}}}}, "routes": []}}"#
        ));
        assert!(ok.is_ok(), "{ok:?}");
        let too_long = format!("{long}a");
        let msg = error(&format!(
            r#"{{"apps": {{"{too_long}": {{"module": "x.wasm"}}}}, "routes": []}}"#
        ));
        assert!(msg.contains("invalid app name"), "{msg}");
    }

    #[test]
    fn route_errors() {
        // (routes array, the message after the config path)
        let table = [
            (
                r#"[{"path": "/x", "app": "blgo"}]"#,
                r#"route 1 (/x): unknown app "blgo""#,
            ),
            (
                r#"[{"path": "/a//b", "app": "a"}]"#,
                "route 1 (/a//b): invalid path pattern: empty segment (`//`)",
            ),
            (
                r#"[{"path": "/", "app": "a"}, {"path": "x", "app": "a"}]"#,
                "route 2 (x): invalid path pattern: must start with `/`",
            ),
            (
                r#"[{"path": "/", "app": "a", "host": "a.com:80"}]"#,
                r#"route 1 (/): invalid host "a.com:80": must not include a port (an IPv6 address goes in brackets, like [::1])"#,
            ),
            (
                r#"[{"path": "/s", "static": "s"}]"#,
                "route 1 (/s): a static route must be a prefix pattern ending in `/...`",
            ),
            (
                r#"[{"path": "/s/...", "static": ""}]"#,
                "route 1 (/s/...): static directory is empty",
            ),
            (
                r#"[{"path": "/s/...", "static": "s", "app": "a"}]"#,
                r#"route 1 (/s/...): has both "app" and "static"; give exactly one"#,
            ),
            (
                r#"[{"path": "/s/..."}]"#,
                r#"route 1 (/s/...): needs "app" (an app name) or "static" (a directory)"#,
            ),
        ];
        for (routes, want) in table {
            let msg = error(&format!(
                r#"{{"apps": {{"a": {{"module": "a.wasm"}}}}, "routes": {routes}}}"#
            ));
            assert_eq!(msg, format!("{PATH}: {want}"), "{routes}");
        }
        let e = parse(r#"{"routes": [{"path": "/x", "app": "blgo"}]}"#);
        assert!(
            matches!(e, Err(ConfigError::UnknownApp { route: 1, ref app, .. }) if app == "blgo")
        );
    }

    #[test]
    fn warnings() {
        // (config text, warnings)
        let table: [(&str, &[&str]); 3] = [
            (
                r#"{"apps": {"a": {"module": "a.wasm"}, "b": {"module": "b.wasm"}}, "routes": [{"path": "/", "app": "a"}]}"#,
                &["conf/routes.json: app \"b\" is not used by any route"],
            ),
            (
                r#"{"routes": []}"#,
                &["conf/routes.json: there are no routes; every request will get 404"],
            ),
            (
                r#"{"apps": {"a": {"module": "a.wasm"}}, "routes": [{"path": "/", "app": "a"}]}"#,
                &[],
            ),
        ];
        for (text, want) in table {
            match parse(text) {
                Ok(c) => assert_eq!(c.warnings, want, "{text}"),
                Err(e) => panic!("{text}: {e}"),
            }
        }
    }

    #[test]
    fn relative_paths() {
        let text = r#"{"apps": {"a": {"module": "m/a.wasm"}, "b": {"module": "/abs/b.wasm"}, "c": {"module": "../c.wasm"}},
            "routes": [{"path": "/a", "app": "a"}, {"path": "/b", "app": "b"}, {"path": "/c", "app": "c"},
                       {"path": "/s/...", "static": "pub"}, {"path": "/t/...", "static": "/var/www"}]}"#;
        // (config file path, module of "a", module of "c", directory of "/s/...")
        let table = [
            ("routes.json", "m/a.wasm", "../c.wasm", "pub"),
            (
                "conf/routes.json",
                "conf/m/a.wasm",
                "conf/../c.wasm",
                "conf/pub",
            ),
            (
                "/etc/wasmhost/routes.json",
                "/etc/wasmhost/m/a.wasm",
                "/etc/wasmhost/../c.wasm",
                "/etc/wasmhost/pub",
            ),
        ];
        for (config_path, a, c, dir) in table {
            let config = match parse_config(text, Path::new(config_path)) {
                Ok(config) => config,
                Err(e) => panic!("{config_path}: {e}"),
            };
            assert_eq!(config.apps["a"].module, Path::new(a), "{config_path}");
            assert_eq!(
                config.apps["b"].module,
                Path::new("/abs/b.wasm"),
                "{config_path}"
            );
            assert_eq!(config.apps["c"].module, Path::new(c), "{config_path}");
            assert_eq!(
                config.routes[3].target,
                RouteTarget::Static(PathBuf::from(dir))
            );
            assert_eq!(
                config.routes[4].target,
                RouteTarget::Static(PathBuf::from("/var/www"))
            );
        }
    }

    #[test]
    fn login_required_and_login_page() {
        let base = r#""apps": {"a": {"module": "a.wasm", "login_required": true}, "b": {"module": "b.wasm"}}"#;
        // (extra top-level JSON, routes JSON, expected login flags or error substring)
        let table: &[(&str, &str, Result<&[bool], &str>)] = &[
            (
                "",
                r#"[{"path": "/a", "app": "a"}, {"path": "/b", "app": "b"}]"#,
                Ok(&[true, false]),
            ),
            (
                "",
                r#"[{"path": "/a", "app": "a", "login_required": false}]"#,
                Ok(&[false]),
            ),
            (
                "",
                r#"[{"path": "/b", "app": "b", "login_required": true}]"#,
                Ok(&[true]),
            ),
            (
                "",
                r#"[{"path": "/s/...", "static": "s", "login_required": true}]"#,
                Err("app routes only"),
            ),
            (
                r#""login_page": "//evil.example","#,
                "[]",
                Err("login_page"),
            ),
            (r#""login_page": "/in?x=1","#, "[]", Err("login_page")),
        ];
        for (extra, routes, expected) in table {
            let text = format!("{{{extra} {base}, \"routes\": {routes}}}");
            match (parse_config(&text, Path::new("routes.json")), expected) {
                (Ok(config), Ok(flags)) => {
                    let got: Vec<bool> = config.routes.iter().map(|r| r.login_required).collect();
                    assert_eq!(got, *flags, "{text}");
                }
                (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{text}: {e}"),
                (other, _) => panic!("{text}: unexpected {other:?}"),
            }
        }
        let custom = parse_config(
            r#"{"login_page": "/account/signin", "routes": []}"#,
            Path::new("routes.json"),
        )
        .unwrap();
        assert_eq!(custom.login_page, "/account/signin");
    }
}
