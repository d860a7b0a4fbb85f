//! Loading and validating `routes.json`: the apps, their limits and the routes.
//!
//! The format is documented in `docs/routes.md`. [`parse_config`] is pure and
//! checks everything that can be checked from the text; [`load_config`] also
//! reads the file and checks that the modules and static directories exist.
//! Path patterns and hosts are validated by [`crate::router`], so that the
//! rules live in one place.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::io;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::Value;

use crate::router::{self, Pattern, RouteError, Router, one_line};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Default guest memory: enough for typical handlers, small enough that many
/// instances fit in RAM at once.
pub const DEFAULT_MEMORY: u64 = 64 * MIB;
/// Default CPU time per request: a handler that computes for a second is
/// almost certainly stuck.
pub const DEFAULT_CPU_TIME: Duration = Duration::from_secs(1);
/// Default wall time per request: room for slow host calls without letting a
/// request hold a worker indefinitely.
pub const DEFAULT_WALL_TIME: Duration = Duration::from_secs(10);
/// Default largest request body: forms and small uploads fit; larger is
/// answered 413 (same as the server-wide default).
pub const DEFAULT_MAX_BODY: u64 = 10 * MIB;
/// Default largest response: pages and small downloads fit, and a runaway
/// guest cannot make the host buffer much.
pub const DEFAULT_MAX_RESPONSE: u64 = 16 * MIB;
/// Default concurrent instances per app: one busy app cannot take every
/// worker, and 16 × 64 MiB bounds its memory at 1 GiB.
pub const DEFAULT_MAX_CONCURRENCY: u32 = 16;
/// Default captured stdout/stderr per request: enough for diagnostics, too
/// little to flood the log.
pub const DEFAULT_LOG_OUTPUT: u64 = 64 * KIB;

/// Smallest memory limit: below 1 MiB not even a minimal Rust guest starts.
pub const MIN_MEMORY: u64 = MIB;
/// Largest memory limit: a wasm32 linear memory cannot exceed 4 GiB.
pub const MAX_MEMORY: u64 = 4 * GIB;
/// Shortest time limit: time limits are enforced with millisecond granularity.
pub const MIN_TIME: Duration = Duration::from_millis(1);
/// Longest time limit: a request running for ten minutes is hung, not slow.
pub const MAX_TIME: Duration = Duration::from_secs(10 * 60);
/// Largest body limit: bodies are buffered in the host and copied into the
/// guest's memory, which is itself at most 4 GiB.
pub const MAX_MAX_BODY: u64 = GIB;
/// Smallest response limit: a response needs room for its meta and headers.
pub const MIN_MAX_RESPONSE: u64 = KIB;
/// Largest response limit: responses are buffered in the host before sending.
pub const MAX_MAX_RESPONSE: u64 = GIB;
/// Most concurrent instances per app: beyond this, memory and scheduling
/// overhead dominate any gain.
pub const MAX_MAX_CONCURRENCY: u32 = 10_000;
/// Largest log-output limit: guest output is buffered per request.
pub const MAX_LOG_OUTPUT: u64 = 16 * MIB;
/// Default requests that may wait for one of an app's instance slots: absorbs
/// a burst as large as the default concurrency; more waiting only adds latency.
pub const DEFAULT_MAX_QUEUE: u32 = 16;
/// Most requests that may wait per app: each waiter holds a worker thread.
pub const MAX_MAX_QUEUE: u32 = 10_000;
/// Default longest wait for an instance slot: a request that cannot start
/// within a second is better told to retry (`Retry-After: 1`).
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
/// Smallest fuel budget: a guest's start-up alone needs thousands of units.
pub const MIN_FUEL: u64 = 10_000;
/// Largest fuel budget: about four minutes of straight-line Wasm here (5 M
/// units lasted 1.3 ms), far past any time limit.
pub const MAX_FUEL: u64 = 1_000_000_000_000;
/// Largest error page an app may ship: pages are kept in memory per app.
pub const MAX_ERROR_PAGE: u64 = 64 * KIB;
/// Statuses an app may ship its own page for: the answers to its own failures.
pub const ERROR_PAGE_STATUSES: [u16; 4] = [500, 502, 503, 504];
/// Most bytes of granted environment (names and values): copied into every
/// instance of the app.
pub const MAX_ENV_BYTES: usize = 64 * 1024;
/// Longest app name: app names tag log lines and must stay short.
pub const MAX_APP_NAME_LEN: usize = 63;

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

/// Capabilities granted to an app; everything not listed is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// A host directory the guest may read (never write), and its guest path.
    pub dir: Option<DirGrant>,
    /// Environment variables the guest sees.
    pub env: BTreeMap<String, String>,
    /// Functions of the `wasmhost` import module the guest may import.
    pub host: BTreeSet<String>,
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            dir: None,
            env: BTreeMap::new(),
            host: crate::wasm::DEFAULT_HOST_GRANTS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
        }
    }
}

/// A read-only preopened directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The host directory, joined to the config file's directory if relative.
    pub host: PathBuf,
    /// Where the guest finds it, e.g. `/data`.
    pub guest: String,
}

/// The limits an app's requests run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub memory: u64,
    /// CPU time per request.
    pub cpu_time: Duration,
    /// Wall-clock time per request.
    pub wall_time: Duration,
    /// Largest request body, in bytes.
    pub max_body: u64,
    /// Largest response (meta and body), in bytes.
    pub max_response: u64,
    /// Most instances running at once.
    pub max_concurrency: u32,
    /// Most captured stdout/stderr per request, in bytes.
    pub log_output: u64,
    /// Fuel per request (a deterministic instruction budget); `None`: no fuel.
    pub fuel: Option<u64>,
    /// Most requests waiting for an instance slot; more are answered 503.
    pub max_queue: u32,
    /// Longest a request waits for an instance slot before it is answered 503.
    pub queue_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: DEFAULT_MEMORY,
            cpu_time: DEFAULT_CPU_TIME,
            wall_time: DEFAULT_WALL_TIME,
            max_body: DEFAULT_MAX_BODY,
            max_response: DEFAULT_MAX_RESPONSE,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            log_output: DEFAULT_LOG_OUTPUT,
            fuel: None,
            max_queue: DEFAULT_MAX_QUEUE,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }
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

/// Why a config cannot be used. Every message is one line that starts with
/// the config file's path. Route numbers count from 1 (the first route is
/// route 1), as do the `route` fields.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", show(.path))]
    Read { path: PathBuf, source: io::Error },
    /// The text is not JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", show(.path))]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The JSON does not have the expected shape: an unknown or missing key,
    /// a value of the wrong type, a duplicate key.
    #[error("{}:{line}:{column}: {message}", show(.path))]
    Schema {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// An app's name or module is invalid.
    #[error("{}: app \"{}\": {message}", show(.path), one_line(.app))]
    App {
        path: PathBuf,
        app: String,
        message: String,
    },
    /// A limit is not a valid value; `field` is like `apps.blog.limits.memory`.
    #[error("{}: {field}: {message}", show(.path))]
    Limit {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// A route is invalid: its pattern, host or target.
    #[error("{}: route {route} ({}): {message}", show(.path), one_line(.pattern))]
    Route {
        path: PathBuf,
        route: usize,
        pattern: String,
        message: String,
    },
    /// A route names an app that is not defined.
    #[error(
        "{}: route {route} ({}): unknown app \"{}\"",
        show(.path),
        one_line(.pattern),
        one_line(.app)
    )]
    UnknownApp {
        path: PathBuf,
        route: usize,
        pattern: String,
        app: String,
    },
    /// Two routes for the same host have patterns of the same shape.
    #[error(
        "{}: route {route} ({}) conflicts with route {other_route} ({})",
        show(.path),
        one_line(.pattern),
        one_line(.other_pattern)
    )]
    Conflict {
        path: PathBuf,
        route: usize,
        pattern: String,
        other_route: usize,
        other_pattern: String,
    },
    /// An app's module is missing or not a file ([`load_config`] only).
    #[error(
        "{}: app \"{}\": module {} {problem}",
        show(.path),
        one_line(.app),
        show(.module)
    )]
    ModuleMissing {
        path: PathBuf,
        app: String,
        module: PathBuf,
        problem: String,
    },
    /// A static route's directory is missing or not a directory
    /// ([`load_config`] only).
    #[error(
        "{}: route {route} ({}): static directory {} {problem}",
        show(.path),
        one_line(.pattern),
        show(.dir)
    )]
    StaticMissing {
        path: PathBuf,
        route: usize,
        pattern: String,
        dir: PathBuf,
        problem: String,
    },
}

/// A path for a one-line message.
fn show(path: &Path) -> String {
    one_line(&path.to_string_lossy()).into_owned()
}

// The file's shape. Every struct denies unknown keys; new settings are new
// optional fields. Each object goes through `Object`, because serde's derived
// structs also accept arrays, which would make `["a.wasm"]` a valid app.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    apps: RawApps,
    routes: Vec<Object<RawRoute>>,
    login_page: Option<String>,
}

/// The apps, refusing a name defined twice (a plain map would keep the last).
#[derive(Default)]
struct RawApps(BTreeMap<String, RawApp>);

impl<'de> Deserialize<'de> for RawApps {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AppsVisitor;
        impl<'de> Visitor<'de> for AppsVisitor {
            type Value = RawApps;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of apps by name")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawApps, A::Error> {
                let mut apps = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    if apps.contains_key(&name) {
                        return Err(de::Error::custom(format!(
                            "app \"{}\" is defined twice",
                            one_line(&name)
                        )));
                    }
                    let Object(app) = map.next_value()?;
                    apps.insert(name, app);
                }
                Ok(RawApps(apps))
            }
        }
        deserializer.deserialize_map(AppsVisitor)
    }
}

/// Serde's default for flags that are on unless turned off.
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    module: String,
    #[serde(default)]
    login_required: bool,
    #[serde(default = "yes")]
    preinit: bool,
    limits: Option<Object<RawLimits>>,
    grants: Option<Object<RawGrants>>,
    error_pages: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrants {
    dir: Option<Object<RawDirGrant>>,
    env: Option<BTreeMap<String, String>>,
    host: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirGrant {
    host: String,
    guest: String,
}

/// Limits stay JSON values here so that a bad one is reported with its full
/// key path and the rules for its kind of value.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory: Option<Value>,
    cpu_time: Option<Value>,
    wall_time: Option<Value>,
    max_body: Option<Value>,
    max_response: Option<Value>,
    max_concurrency: Option<Value>,
    log_output: Option<Value>,
    fuel: Option<Value>,
    max_queue: Option<Value>,
    queue_timeout: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    host: Option<String>,
    path: String,
    app: Option<String>,
    #[serde(rename = "static")]
    static_dir: Option<String>,
    login_required: Option<bool>,
}

/// What an object of the file is, for "expected ..." messages.
trait Expecting {
    const EXPECTING: &'static str;
}

impl Expecting for RawConfig {
    const EXPECTING: &'static str = "an object with \"apps\" and \"routes\"";
}

impl Expecting for RawApp {
    const EXPECTING: &'static str = "an app object like {\"module\": \"app.wasm\"}";
}

impl Expecting for RawLimits {
    const EXPECTING: &'static str = "an object of limits";
}

impl Expecting for RawGrants {
    const EXPECTING: &'static str = "an object of grants like {\"env\": {\"K\": \"V\"}}";
}

impl Expecting for RawDirGrant {
    const EXPECTING: &'static str =
        "a directory grant like {\"host\": \"data\", \"guest\": \"/data\"}";
}

impl Expecting for RawRoute {
    const EXPECTING: &'static str = "a route object like {\"path\": \"/x\", \"app\": \"name\"}";
}

/// A `T` that must be written as a JSON object.
struct Object<T>(T);

impl<'de, T: Deserialize<'de> + Expecting> Deserialize<'de> for Object<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Expecting> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
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

/// Reads, parses and validates the config file at `path`, then checks that
/// every module is a file and every static directory is a directory.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let config = parse_config(&text, path)?;
    for (name, app) in &config.apps {
        if let Some(problem) = check_kind(&app.module, false) {
            return Err(ConfigError::ModuleMissing {
                path: config.path.clone(),
                app: name.clone(),
                module: app.module.clone(),
                problem,
            });
        }
        let grant_dir = app
            .grants
            .dir
            .iter()
            .map(|d| (d.host.as_path(), true, "grants.dir.host".to_owned()));
        let pages = app
            .error_pages
            .iter()
            .map(|(code, file)| (file.as_path(), false, format!("error_pages.{code}")));
        for (file, dir, field) in grant_dir.chain(pages) {
            let problem = check_kind(file, dir).or_else(|| {
                let len = fs::metadata(file).map_or(0, |m| m.len());
                (!dir && len > MAX_ERROR_PAGE).then(|| {
                    format!(
                        "is {len} bytes, more than the limit of {}",
                        fmt_size(MAX_ERROR_PAGE)
                    )
                })
            });
            if let Some(problem) = problem {
                return Err(ConfigError::Limit {
                    path: config.path.clone(),
                    field: format!("apps.{name}.{field}"),
                    message: format!("{} {problem}", show(file)),
                });
            }
        }
    }
    for (index, route) in config.routes.iter().enumerate() {
        if let RouteTarget::Static(dir) = &route.target
            && let Some(problem) = check_kind(dir, true)
        {
            return Err(ConfigError::StaticMissing {
                path: config.path.clone(),
                route: index + 1,
                pattern: route.path.clone(),
                dir: dir.clone(),
                problem,
            });
        }
    }
    Ok(config)
}

/// What is wrong with `path` as a file (or directory), if anything.
fn check_kind(path: &Path, dir: bool) -> Option<String> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some("does not exist".to_owned()),
        Err(e) => Some(format!("cannot be accessed: {e}")),
        Ok(meta) if dir && !meta.is_dir() => Some("is not a directory".to_owned()),
        Ok(meta) if !dir && !meta.is_file() => Some("is not a file".to_owned()),
        Ok(_) => None,
    }
}

/// Turns a serde_json error into a one-line error with the position.
fn json_error(path: &Path, e: &serde_json::Error) -> ConfigError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; the position goes in front.
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = one_line(full.strip_suffix(&suffix).unwrap_or(&full)).into_owned();
    // Column 0 means "before the first character of the line"; editors count from 1.
    let (path, line, column) = (path.to_path_buf(), e.line(), e.column().max(1));
    match e.classify() {
        serde_json::error::Category::Data => ConfigError::Schema {
            path,
            line,
            column,
            message,
        },
        _ => ConfigError::Syntax {
            path,
            line,
            column,
            message,
        },
    }
}

/// Reports route conflicts, using the router's own rules.
fn check_conflicts(path: &Path, routes: &[RouteConfig]) -> Result<(), ConfigError> {
    let table = routes
        .iter()
        .map(|r| (r.host.clone(), r.path.clone(), ()))
        .collect();
    match Router::new(table) {
        Ok(_) => Ok(()),
        Err(RouteError::Conflict {
            index,
            pattern,
            other_index,
            other_pattern,
        }) => Err(ConfigError::Conflict {
            path: path.to_path_buf(),
            route: index + 1,
            pattern,
            other_route: other_index + 1,
            other_pattern,
        }),
        // Patterns and hosts were validated above, so these do not happen.
        Err(RouteError::Pattern {
            index,
            pattern,
            reason,
        }) => Err(ConfigError::Route {
            path: path.to_path_buf(),
            route: index + 1,
            pattern,
            message: format!("invalid path pattern: {reason}"),
        }),
        Err(RouteError::Host {
            index,
            pattern,
            host,
            reason,
        }) => Err(ConfigError::Route {
            path: path.to_path_buf(),
            route: index + 1,
            pattern,
            message: format!("invalid host \"{}\": {reason}", one_line(&host)),
        }),
        // Only routing a request produces these.
        Err(e @ (RouteError::Param { .. } | RouteError::DotSegment)) => Err(ConfigError::Route {
            path: path.to_path_buf(),
            route: 0,
            pattern: String::new(),
            message: e.to_string(),
        }),
    }
}

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

/// Validates an app's limits, filling in defaults.
fn parse_limits(path: &Path, app: &str, raw: &RawLimits) -> Result<Limits, ConfigError> {
    let error = |field: &str, message: String| ConfigError::Limit {
        path: path.to_path_buf(),
        field: format!("apps.{app}.limits.{field}"),
        message,
    };
    let size = |field: &str, value: &Option<Value>, default: u64, min: u64, max: u64| {
        let Some(value) = value else {
            return Ok(default);
        };
        let bytes = parse_size(value).map_err(|m| error(field, m))?;
        if bytes < min || bytes > max {
            return Err(error(
                field,
                format!(
                    "{value} is out of range ({} to {})",
                    fmt_size(min),
                    fmt_size(max)
                ),
            ));
        }
        Ok(bytes)
    };
    let time = |field: &str, value: &Option<Value>, default: Duration| {
        let Some(value) = value else {
            return Ok(default);
        };
        let duration = parse_duration(value).map_err(|m| error(field, m))?;
        if duration < MIN_TIME || duration > MAX_TIME {
            return Err(error(
                field,
                format!(
                    "{value} is out of range ({} to {})",
                    fmt_duration(MIN_TIME),
                    fmt_duration(MAX_TIME)
                ),
            ));
        }
        Ok(duration)
    };
    let max_concurrency = match &raw.max_concurrency {
        None => DEFAULT_MAX_CONCURRENCY,
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=MAX_MAX_CONCURRENCY).contains(n))
            .ok_or_else(|| {
                error(
                    "max_concurrency",
                    format!("{value} is not a whole number from 1 to {MAX_MAX_CONCURRENCY}"),
                )
            })?,
    };
    let max_queue = match &raw.max_queue {
        None => DEFAULT_MAX_QUEUE,
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n <= MAX_MAX_QUEUE)
            .ok_or_else(|| {
                error(
                    "max_queue",
                    format!("{value} is not a whole number from 0 to {MAX_MAX_QUEUE}"),
                )
            })?,
    };
    let fuel = match &raw.fuel {
        None => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|n| (MIN_FUEL..=MAX_FUEL).contains(n))
                .ok_or_else(|| {
                    error(
                        "fuel",
                        format!("{value} is not a whole number from {MIN_FUEL} to {MAX_FUEL}"),
                    )
                })?,
        ),
    };
    Ok(Limits {
        memory: size(
            "memory",
            &raw.memory,
            DEFAULT_MEMORY,
            MIN_MEMORY,
            MAX_MEMORY,
        )?,
        cpu_time: time("cpu_time", &raw.cpu_time, DEFAULT_CPU_TIME)?,
        wall_time: time("wall_time", &raw.wall_time, DEFAULT_WALL_TIME)?,
        max_body: size("max_body", &raw.max_body, DEFAULT_MAX_BODY, 0, MAX_MAX_BODY)?,
        max_response: size(
            "max_response",
            &raw.max_response,
            DEFAULT_MAX_RESPONSE,
            MIN_MAX_RESPONSE,
            MAX_MAX_RESPONSE,
        )?,
        max_concurrency,
        log_output: size(
            "log_output",
            &raw.log_output,
            DEFAULT_LOG_OUTPUT,
            0,
            MAX_LOG_OUTPUT,
        )?,
        fuel,
        max_queue,
        queue_timeout: time("queue_timeout", &raw.queue_timeout, DEFAULT_QUEUE_TIMEOUT)?,
    })
}

/// Validates an app's grants; relative directories are joined to `base`.
fn parse_grants(
    path: &Path,
    app: &str,
    base: &Path,
    raw: &RawGrants,
) -> Result<Grants, ConfigError> {
    let error = |field: &str, message: String| ConfigError::Limit {
        path: path.to_path_buf(),
        field: format!("apps.{app}.grants.{field}"),
        message,
    };
    let dir = match &raw.dir {
        None => None,
        Some(Object(dir)) => {
            if dir.host.is_empty() {
                return Err(error("dir.host", "the directory is empty".to_owned()));
            }
            let guest_ok = dir.guest.starts_with('/')
                && !dir.guest.contains('\0')
                && dir.guest.split('/').all(|seg| seg != "." && seg != "..");
            if !guest_ok {
                return Err(error(
                    "dir.guest",
                    format!(
                        "\"{}\" is not an absolute guest path like \"/data\"",
                        one_line(&dir.guest)
                    ),
                ));
            }
            Some(DirGrant {
                host: base.join(&dir.host),
                guest: dir.guest.clone(),
            })
        }
    };
    let env = raw.env.clone().unwrap_or_default();
    let mut env_bytes = 0;
    for (name, value) in &env {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(error(
                "env",
                format!(
                    "\"{}\" is not a valid variable (a name without `=` or NUL, a value without NUL)",
                    one_line(name)
                ),
            ));
        }
        env_bytes += name.len() + value.len() + 2;
    }
    if env_bytes > MAX_ENV_BYTES {
        return Err(error(
            "env",
            format!("{env_bytes} bytes of variables, more than the limit of {MAX_ENV_BYTES}"),
        ));
    }
    let host = match &raw.host {
        None => Grants::default().host,
        Some(names) => {
            let mut set = BTreeSet::new();
            for name in names {
                if !crate::wasm::HOST_GRANTS.contains(&name.as_str()) {
                    return Err(error(
                        "host",
                        format!(
                            "unknown host grant \"{}\" (known: {})",
                            one_line(name),
                            crate::wasm::HOST_GRANTS.join(", ")
                        ),
                    ));
                }
                set.insert(name.clone());
            }
            set
        }
    };
    Ok(Grants { dir, env, host })
}

/// Splits `"64 MiB"` into `(64, "MiB")`; `None` unless it is digits, optional
/// spaces and a unit.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    if number.is_empty() {
        return None;
    }
    Some((number.parse().ok()?, unit.trim_start()))
}

/// A size: an integer number of bytes, or a string like `"64 MiB"`.
fn parse_size(value: &Value) -> Result<u64, String> {
    let invalid = || format!("{value} is not a size (expected bytes or e.g. \"64 MiB\")");
    if let Value::Number(n) = value {
        return n.as_u64().ok_or_else(invalid);
    }
    let (number, unit) = value.as_str().and_then(split_number).ok_or_else(invalid)?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        _ => {
            return Err(format!(
                "{value} is not a size (units are B, KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{value} is too large"))
}

/// A duration: an integer number of milliseconds, or a string like `"1s"`.
fn parse_duration(value: &Value) -> Result<Duration, String> {
    let invalid = || format!("{value} is not a duration (expected milliseconds or e.g. \"1s\")");
    if let Value::Number(n) = value {
        return n.as_u64().map(Duration::from_millis).ok_or_else(invalid);
    }
    let (number, unit) = value.as_str().and_then(split_number).ok_or_else(invalid)?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1000),
        "m" => number.checked_mul(60 * 1000),
        _ => {
            return Err(format!("{value} is not a duration (units are ms, s, m)"));
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{value} is too large"))
}

/// Formats a size in the largest binary unit that divides it.
fn fmt_size(bytes: u64) -> String {
    match bytes {
        0 => "0 B".to_owned(),
        b if b % GIB == 0 => format!("{} GiB", b / GIB),
        b if b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b % KIB == 0 => format!("{} KiB", b / KIB),
        b => format!("{b} B"),
    }
}

/// Formats a duration in the largest unit of the config syntax that divides it.
fn fmt_duration(duration: Duration) -> String {
    match duration.as_millis() {
        ms if ms != 0 && ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms != 0 && ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "conf/routes.json";

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_config(text, Path::new(PATH))
    }

    /// The error message for `text`, which must not parse.
    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    /// A config with one app whose limits are `limits`, routed at `/`.
    fn with_limits(limits: &str) -> String {
        format!(
            r#"{{"apps": {{"a": {{"module": "a.wasm", "limits": {limits}}}}},
                "routes": [{{"path": "/", "app": "a"}}]}}"#
        )
    }

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
    fn defaults() {
        let want = Limits {
            memory: 64 * MIB,
            cpu_time: Duration::from_secs(1),
            wall_time: Duration::from_secs(10),
            max_body: 10 * MIB,
            max_response: 16 * MIB,
            max_concurrency: 16,
            log_output: 64 * KIB,
            fuel: None,
            max_queue: 16,
            queue_timeout: Duration::from_secs(1),
        };
        assert_eq!(Limits::default(), want);
        // (limits object, expected limits): absent and empty mean all defaults,
        // and one field leaves the others at their defaults.
        let table = [
            (None, want.clone()),
            (Some("{}"), want.clone()),
            (
                Some(r#"{"memory": "128 MiB"}"#),
                Limits {
                    memory: 128 * MIB,
                    ..want.clone()
                },
            ),
        ];
        for (limits, want) in table {
            let text = match limits {
                None => r#"{"apps": {"a": {"module": "a.wasm"}}, "routes": [{"path": "/", "app": "a"}]}"#
                    .to_owned(),
                Some(limits) => with_limits(limits),
            };
            match parse(&text) {
                Ok(c) => assert_eq!(c.apps["a"].limits, want, "{limits:?}"),
                Err(e) => panic!("{limits:?}: {e}"),
            }
        }
        // Without apps there are no defaults to fill, and that is fine.
        let config = parse(r#"{"routes": [{"path": "/s/...", "static": "s"}]}"#);
        assert!(config.is_ok_and(|c| c.apps.is_empty() && c.warnings.is_empty()));
    }

    #[test]
    fn sizes() {
        // (JSON value, bytes or the end of the error message)
        let table: [(&str, Result<u64, &str>); 20] = [
            ("1048576", Ok(MIB)),
            (r#""64 MiB""#, Ok(64 * MIB)),
            (r#""64MiB""#, Ok(64 * MIB)),
            (r#""2048KiB""#, Ok(2 * MIB)),
            (r#""10 MB""#, Ok(10_000_000)),
            (r#""2 GB""#, Ok(2_000_000_000)),
            (r#""4 GiB""#, Ok(4 * GIB)),
            (r#""3000000 B""#, Ok(3_000_000)),
            (r#""5000 kb""#, Ok(5_000_000)),
            (r#"" 2 mib ""#, Ok(2 * MIB)),
            (
                r#""64 MB!""#,
                Err(
                    r#"apps.a.limits.memory: "64 MB!" is not a size (units are B, KB, MB, GB, KiB, MiB, GiB)"#,
                ),
            ),
            (
                r#""64""#,
                Err(
                    r#"apps.a.limits.memory: "64" is not a size (units are B, KB, MB, GB, KiB, MiB, GiB)"#,
                ),
            ),
            (
                r#""MiB""#,
                Err(
                    r#"apps.a.limits.memory: "MiB" is not a size (expected bytes or e.g. "64 MiB")"#,
                ),
            ),
            (
                r#""1.5 GiB""#,
                Err(
                    r#"apps.a.limits.memory: "1.5 GiB" is not a size (units are B, KB, MB, GB, KiB, MiB, GiB)"#,
                ),
            ),
            (
                "-1",
                Err(r#"apps.a.limits.memory: -1 is not a size (expected bytes or e.g. "64 MiB")"#),
            ),
            (
                "1.5",
                Err(r#"apps.a.limits.memory: 1.5 is not a size (expected bytes or e.g. "64 MiB")"#),
            ),
            (
                "true",
                Err(
                    r#"apps.a.limits.memory: true is not a size (expected bytes or e.g. "64 MiB")"#,
                ),
            ),
            (
                r#""99999999999999999999 GiB""#,
                Err(
                    r#"apps.a.limits.memory: "99999999999999999999 GiB" is not a size (expected bytes or e.g. "64 MiB")"#,
                ),
            ),
            (
                r#""9999999999999 GiB""#,
                Err(r#"apps.a.limits.memory: "9999999999999 GiB" is too large"#),
            ),
            (
                r#""512 KiB""#,
                Err(r#"apps.a.limits.memory: "512 KiB" is out of range (1 MiB to 4 GiB)"#),
            ),
        ];
        for (value, want) in table {
            let got = parse(&with_limits(&format!(r#"{{"memory": {value}}}"#)));
            match (got, want) {
                (Ok(c), Ok(want)) => assert_eq!(c.apps["a"].limits.memory, want, "{value}"),
                (Err(e), Err(want)) => {
                    assert_eq!(e.to_string(), format!("{PATH}: {want}"), "{value}");
                    assert!(matches!(e, ConfigError::Limit { .. }), "{value}");
                }
                (got, _) => panic!("{value}: {got:?}"),
            }
        }
    }

    #[test]
    fn durations() {
        // (JSON value, duration or the end of the error message)
        let table: [(&str, Result<Duration, &str>); 12] = [
            ("1500", Ok(Duration::from_millis(1500))),
            (r#""1s""#, Ok(Duration::from_secs(1))),
            (r#""500ms""#, Ok(Duration::from_millis(500))),
            (r#""2m""#, Ok(Duration::from_secs(120))),
            (r#""3 s""#, Ok(Duration::from_secs(3))),
            (r#""10m""#, Ok(Duration::from_secs(600))),
            ("1", Ok(Duration::from_millis(1))),
            (
                r#""1h""#,
                Err(r#"apps.a.limits.wall_time: "1h" is not a duration (units are ms, s, m)"#),
            ),
            (
                r#""5""#,
                Err(r#"apps.a.limits.wall_time: "5" is not a duration (units are ms, s, m)"#),
            ),
            (
                "0",
                Err("apps.a.limits.wall_time: 0 is out of range (1ms to 10m)"),
            ),
            (
                r#""601s""#,
                Err(r#"apps.a.limits.wall_time: "601s" is out of range (1ms to 10m)"#),
            ),
            (
                r#""fast""#,
                Err(
                    r#"apps.a.limits.wall_time: "fast" is not a duration (expected milliseconds or e.g. "1s")"#,
                ),
            ),
        ];
        for (value, want) in table {
            let got = parse(&with_limits(&format!(r#"{{"wall_time": {value}}}"#)));
            match (got, want) {
                (Ok(c), Ok(want)) => assert_eq!(c.apps["a"].limits.wall_time, want, "{value}"),
                (Err(e), Err(want)) => {
                    assert_eq!(e.to_string(), format!("{PATH}: {want}"), "{value}")
                }
                (got, _) => panic!("{value}: {got:?}"),
            }
        }
    }

    #[test]
    fn sandbox_limits() {
        let c = match parse(&with_limits(
            r#"{"fuel": 5000000, "max_queue": 0, "queue_timeout": "250ms"}"#,
        )) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let limits = &c.apps["a"].limits;
        assert_eq!(limits.fuel, Some(5_000_000));
        assert_eq!(limits.max_queue, 0);
        assert_eq!(limits.queue_timeout, Duration::from_millis(250));
        // (limits object, the end of the error message)
        let table = [
            (
                r#"{"fuel": 10}"#,
                "apps.a.limits.fuel: 10 is not a whole number from 10000 to 1000000000000",
            ),
            (
                r#"{"fuel": "1 MiB"}"#,
                r#"apps.a.limits.fuel: "1 MiB" is not a whole number from 10000 to 1000000000000"#,
            ),
            (
                r#"{"max_queue": -1}"#,
                "apps.a.limits.max_queue: -1 is not a whole number from 0 to 10000",
            ),
            (
                r#"{"queue_timeout": "11m"}"#,
                r#"apps.a.limits.queue_timeout: "11m" is out of range (1ms to 10m)"#,
            ),
        ];
        for (limits, want) in table {
            assert_eq!(error(&with_limits(limits)), format!("{PATH}: {want}"));
        }
    }

    #[test]
    fn grants_and_error_pages() {
        let app = |settings: &str| {
            format!(
                r#"{{"apps": {{"a": {{"module": "a.wasm", {settings}}}}},
                    "routes": [{{"path": "/", "app": "a"}}]}}"#
            )
        };
        let c = match parse(&app(
            r#""grants": {"dir": {"host": "data", "guest": "/data"}, "env": {"K": "V"}, "host": []},
               "error_pages": {"504": "pages/slow.html"}"#,
        )) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let a = &c.apps["a"];
        assert_eq!(
            a.grants,
            Grants {
                dir: Some(DirGrant {
                    host: PathBuf::from("conf/data"),
                    guest: "/data".to_owned(),
                }),
                env: BTreeMap::from([("K".to_owned(), "V".to_owned())]),
                host: BTreeSet::new(),
            }
        );
        assert_eq!(
            a.error_pages,
            BTreeMap::from([(504, PathBuf::from("conf/pages/slow.html"))])
        );
        // No grants: nothing but the default host functions.
        let c = match parse(&app(r#""grants": {}"#)) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.apps["a"].grants, Grants::default());
        assert_eq!(Grants::default().host, BTreeSet::from(["log".to_owned()]));
        // (settings, the end of the error message)
        let table = [
            (
                r#""grants": {"dir": {"host": "data", "guest": "data"}}"#,
                r#"apps.a.grants.dir.guest: "data" is not an absolute guest path like "/data""#,
            ),
            (
                r#""grants": {"dir": {"host": "data", "guest": "/x/../y"}}"#,
                r#"apps.a.grants.dir.guest: "/x/../y" is not an absolute guest path like "/data""#,
            ),
            (
                r#""grants": {"env": {"A=B": "1"}}"#,
                r#"apps.a.grants.env: "A=B" is not a valid variable (a name without `=` or NUL, a value without NUL)"#,
            ),
            (
                r#""grants": {"host": ["log", "sockets"]}"#,
                r#"apps.a.grants.host: unknown host grant "sockets" (known: log, storage, sessions)"#,
            ),
            (
                r#""error_pages": {"404": "x.html"}"#,
                "apps.a.error_pages.404: pages can be given for statuses [500, 502, 503, 504] only",
            ),
        ];
        for (settings, want) in table {
            assert_eq!(error(&app(settings)), format!("{PATH}: {want}"));
        }
    }

    #[test]
    fn limit_ranges() {
        // (limits object, the end of the error message, or None if valid)
        let table = [
            (r#"{"memory": "4 GiB"}"#, None),
            (
                r#"{"memory": "5 GB"}"#,
                Some(r#"apps.a.limits.memory: "5 GB" is out of range (1 MiB to 4 GiB)"#),
            ),
            (
                r#"{"cpu_time": "11m"}"#,
                Some(r#"apps.a.limits.cpu_time: "11m" is out of range (1ms to 10m)"#),
            ),
            (
                r#"{"cpu_time": "0s"}"#,
                Some(r#"apps.a.limits.cpu_time: "0s" is out of range (1ms to 10m)"#),
            ),
            (r#"{"max_body": 0}"#, None),
            (
                r#"{"max_body": "2 GiB"}"#,
                Some(r#"apps.a.limits.max_body: "2 GiB" is out of range (0 B to 1 GiB)"#),
            ),
            (
                r#"{"max_response": 100}"#,
                Some("apps.a.limits.max_response: 100 is out of range (1 KiB to 1 GiB)"),
            ),
            (r#"{"max_concurrency": 1}"#, None),
            (r#"{"max_concurrency": 10000}"#, None),
            (
                r#"{"max_concurrency": 0}"#,
                Some("apps.a.limits.max_concurrency: 0 is not a whole number from 1 to 10000"),
            ),
            (
                r#"{"max_concurrency": 10001}"#,
                Some("apps.a.limits.max_concurrency: 10001 is not a whole number from 1 to 10000"),
            ),
            (
                r#"{"max_concurrency": "16"}"#,
                Some(
                    r#"apps.a.limits.max_concurrency: "16" is not a whole number from 1 to 10000"#,
                ),
            ),
            (
                r#"{"max_concurrency": 99999999999}"#,
                Some(
                    "apps.a.limits.max_concurrency: 99999999999 is not a whole number from 1 to 10000",
                ),
            ),
            (r#"{"log_output": 0}"#, None),
            (
                r#"{"log_output": "17 MiB"}"#,
                Some(r#"apps.a.limits.log_output: "17 MiB" is out of range (0 B to 16 MiB)"#),
            ),
        ];
        for (limits, want) in table {
            let got = parse(&with_limits(limits)).err().map(|e| e.to_string());
            assert_eq!(got, want.map(|w| format!("{PATH}: {w}")), "{limits}");
        }
    }

    #[test]
    fn json_errors() {
        // (text, line, column, message after the position)
        let table = [
            (
                "{\n  \"apps\": {}\n  \"routes\": []\n}",
                3,
                3,
                "invalid JSON: expected `,` or `}`",
            ),
            ("", 1, 1, "invalid JSON: EOF while parsing a value"),
            (
                "{\"routes\": [",
                1,
                12,
                "invalid JSON: EOF while parsing a list",
            ),
            (
                "{\"routes\": []} x",
                1,
                16,
                "invalid JSON: trailing characters",
            ),
            (
                "[]",
                1,
                1,
                "invalid type: sequence, expected an object with \"apps\" and \"routes\"",
            ),
            ("{}", 1, 2, "missing field `routes`"),
            (
                "{\"routes\": [{\"app\": \"a\"}]}",
                1,
                24,
                "missing field `path`",
            ),
            (
                "{\"routes\": [{\"path\": 5, \"app\": \"a\"}]}",
                1,
                22,
                "invalid type: integer `5`, expected a string",
            ),
            (
                "{\"apps\": {\"a\": {\"module\": \"a.wasm\"}, \"a\": {\"module\": \"b.wasm\"}}, \"routes\": []}",
                1,
                40,
                "app \"a\" is defined twice",
            ),
            (
                "{\"routes\": [{\"path\": \"/\", \"path\": \"/x\"}]}",
                1,
                32,
                "duplicate field `path`",
            ),
        ];
        for (text, line, column, message) in table {
            match parse(text) {
                Err(e @ (ConfigError::Syntax { .. } | ConfigError::Schema { .. })) => {
                    assert_eq!(
                        e.to_string(),
                        format!("{PATH}:{line}:{column}: {message}"),
                        "{text}"
                    );
                    let is_syntax = matches!(e, ConfigError::Syntax { .. });
                    assert_eq!(is_syntax, message.starts_with("invalid JSON"), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_keys() {
        // (text, line, column, the unknown key)
        let table = [
            ("{\"routes\": [], \"extra\": 1}", 1, 22, "extra"),
            (
                "{\"apps\": {\"a\": {\"module\": \"a.wasm\", \"modul\": 1}}, \"routes\": []}",
                1,
                43,
                "modul",
            ),
            (
                "{\"apps\": {\"a\": {\"module\": \"a.wasm\",\n  \"limits\": {\"memroy\": 1}}},\n \"routes\": []}",
                2,
                21,
                "memroy",
            ),
            (
                "{\"routes\": [\n  {\"path\": \"/\", \"app\": \"a\", \"hosts\": \"x\"}\n]}",
                2,
                35,
                "hosts",
            ),
        ];
        for (text, line, column, key) in table {
            match parse(text) {
                Err(e @ ConfigError::Schema { .. }) => {
                    let prefix =
                        format!("{PATH}:{line}:{column}: unknown field `{key}`, expected ");
                    let msg = e.to_string();
                    assert!(msg.starts_with(&prefix), "{text}: {msg}");
                }
                other => panic!("{text}: {other:?}"),
            }
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
    fn conflicts() {
        // (routes array, the message after the config path, or None if valid)
        let table = [
            (
                r#"[{"path": "/post/{id}", "app": "a"}, {"path": "/post/{slug}", "app": "a"}]"#,
                Some("route 2 (/post/{slug}) conflicts with route 1 (/post/{id})"),
            ),
            (
                r#"[{"path": "/hello", "app": "a"}, {"path": "/x/...", "static": "x"}, {"path": "/hello", "app": "a"}]"#,
                Some("route 3 (/hello) conflicts with route 1 (/hello)"),
            ),
            (
                r#"[{"path": "/x/...", "app": "a"}, {"path": "/x/...", "static": "x"}]"#,
                Some("route 2 (/x/...) conflicts with route 1 (/x/...)"),
            ),
            (
                r#"[{"host": "a.com", "path": "/", "app": "a"}, {"host": "A.COM", "path": "/", "app": "a"}]"#,
                Some("route 2 (/) conflicts with route 1 (/)"),
            ),
            (
                r#"[{"host": "a.com", "path": "/", "app": "a"}, {"path": "/", "app": "a"}]"#,
                None,
            ),
            (
                r#"[{"path": "/hello", "app": "a"}, {"path": "/hello/...", "app": "a"}, {"path": "/hello/", "app": "a"}]"#,
                None,
            ),
        ];
        for (routes, want) in table {
            let got = parse(&format!(
                r#"{{"apps": {{"a": {{"module": "a.wasm"}}}}, "routes": {routes}}}"#
            ));
            match (got, want) {
                (Ok(_), None) => {}
                (Err(e @ ConfigError::Conflict { .. }), Some(want)) => {
                    assert_eq!(e.to_string(), format!("{PATH}: {want}"), "{routes}");
                }
                (got, _) => panic!("{routes}: {got:?}"),
            }
        }
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
    fn load_checks_files() {
        let tmp = match tempfile::tempdir() {
            Ok(tmp) => tmp,
            Err(e) => panic!("tempdir: {e}"),
        };
        let dir = tmp.path();
        let write = |name: &str, text: &str| {
            if let Err(e) = fs::write(dir.join(name), text) {
                panic!("write {name}: {e}");
            }
        };
        write("a.wasm", "");
        write("file", "");
        if let Err(e) = fs::create_dir_all(dir.join("www").join("d.wasm")) {
            panic!("mkdir: {e}");
        }
        let d = dir.display();
        // (routes.json text, the message after the config path, or None if valid)
        let table = [
            (
                r#"{"apps": {"a": {"module": "a.wasm"}}, "routes": [{"path": "/", "app": "a"}, {"path": "/s/...", "static": "www"}]}"#.to_owned(),
                None,
            ),
            (
                r#"{"apps": {"b": {"module": "b.wasm"}}, "routes": [{"path": "/", "app": "b"}]}"#.to_owned(),
                Some(format!("app \"b\": module {d}/b.wasm does not exist")),
            ),
            (
                r#"{"apps": {"d": {"module": "www/d.wasm"}}, "routes": [{"path": "/", "app": "d"}]}"#.to_owned(),
                Some(format!("app \"d\": module {d}/www/d.wasm is not a file")),
            ),
            (
                r#"{"routes": [{"path": "/s/...", "static": "nope"}]}"#.to_owned(),
                Some(format!("route 1 (/s/...): static directory {d}/nope does not exist")),
            ),
            (
                r#"{"routes": [{"path": "/", "static": "www"}, {"path": "/f/...", "static": "file"}]}"#.to_owned(),
                Some("route 1 (/): a static route must be a prefix pattern ending in `/...`".to_owned()),
            ),
            (
                r#"{"routes": [{"path": "/...", "static": "www"}, {"path": "/f/...", "static": "file"}]}"#.to_owned(),
                Some(format!("route 2 (/f/...): static directory {d}/file is not a directory")),
            ),
        ];
        let config_path = dir.join("routes.json");
        for (text, want) in table {
            write("routes.json", &text);
            let got = load_config(&config_path);
            match (&got, &want) {
                (Ok(config), None) => assert_eq!(config.path, config_path),
                (Err(e), Some(want)) => {
                    assert_eq!(e.to_string(), format!("{}: {want}", config_path.display()));
                }
                _ => panic!("{text}: {got:?}"),
            }
        }
        let missing = dir.join("missing.json");
        let got = load_config(&missing);
        assert!(matches!(got, Err(ConfigError::Read { .. })), "{got:?}");
        let msg = got.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with(&format!("{}: cannot read: ", missing.display())),
            "{msg}"
        );
        let msg = load_config(dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.starts_with(&format!("{d}: cannot read: ")), "{msg}");
    }

    #[test]
    fn messages_are_one_line() {
        let texts = [
            "{\n\n  \"routes\": [\n\n",
            "{\"routes\": [{\"path\": \"/\",\n \"app\": \"a\", \"x\": 1}]}",
            "{\"apps\": {\"a\": {\"module\": \"a.wasm\", \"limits\": {\"memory\": \"a\\nb\"}}}, \"routes\": []}",
            "{\"routes\": [{\"path\": \"/a\\nb\", \"app\": \"a\"}]}",
        ];
        for text in texts {
            let msg = error(text);
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.starts_with(PATH), "{msg}");
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
