//! Turning a request into a response: route it, then run its app's guest or serve its static file.
//!
//! Everything here works without a socket: tests can build a `Dispatcher` and
//! call `prepare` and `handle` directly.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use anyhow::Context;
use wasmhost_abi::RouteMeta;

use crate::config::{AppConfig, Config, RouteTarget};
use crate::http::parse::RequestHead;
use crate::http::{Body, Method, Request, Response};
use crate::metrics::Metrics;
use crate::router::Router;
use crate::sessions::{self, SessionAction, User};
use crate::static_files::StaticDir;
use crate::status::{self, Failure};
use crate::wasm::abi;
use crate::wasm::{GuestModule, Runtime};

/// What a route points at, as indices into the site's tables.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// An app, and whether the route needs a signed-in user.
    App {
        app: usize,
        login: bool,
    },
    Static(usize),
}

/// One consistent configuration: routes, loaded modules, static roots.
/// Replaced as a whole, never changed in place, so a request sees one version.
pub struct Site {
    router: Router<Target>,
    /// Where anonymous requests to login-required routes are sent.
    login_page: String,
    apps: Vec<Arc<GuestModule>>,
    statics: Vec<StaticDir>,
}

impl Site {
    /// Loads every module and opens every static directory of a config.
    /// Modules load in parallel, one thread per core: compiling and
    /// pre-initializing new modules is CPU-bound. The error reported is that
    /// of the first failing app in the config's order.
    pub fn load(config: &Config, runtime: &Runtime) -> anyhow::Result<Site> {
        let apps: Vec<(&String, &AppConfig)> = config.apps.iter().collect();
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, apps.len().max(1));
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<anyhow::Result<GuestModule>>>> =
            Mutex::new((0..apps.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((name, app)) = apps.get(i) else {
                            break;
                        };
                        let result = runtime
                            .load_app(name, app)
                            .with_context(|| format!("{}: app \"{name}\"", config.path.display()));
                        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
                    }
                });
            }
        });
        let loaded = results.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut modules = HashMap::new();
        for ((name, _), result) in apps.iter().zip(loaded) {
            let module = result.context("a module load did not finish")??;
            modules.insert((*name).clone(), Arc::new(module));
        }
        Site::assemble(config, &modules)
    }

    /// Builds a site from modules already loaded (one per app of `config`),
    /// opening the static directories; hot swaps use it to reuse unchanged modules.
    pub fn assemble(
        config: &Config,
        modules: &HashMap<String, Arc<GuestModule>>,
    ) -> anyhow::Result<Site> {
        let mut app_index = HashMap::new();
        let mut apps = Vec::new();
        for name in config.apps.keys() {
            let module = modules.get(name).with_context(|| {
                format!("{}: app \"{name}\" is not loaded", config.path.display())
            })?;
            app_index.insert(name.clone(), apps.len());
            apps.push(module.clone());
        }
        let mut statics: Vec<StaticDir> = Vec::new();
        let mut routes = Vec::new();
        for route in &config.routes {
            let target = match &route.target {
                RouteTarget::App(name) => Target::App {
                    login: route.login_required,
                    app: *app_index
                        .get(name)
                        .with_context(|| format!("route {}: unknown app \"{name}\"", route.path))?,
                },
                RouteTarget::Static(dir) => {
                    let open = StaticDir::open(dir).with_context(|| {
                        format!(
                            "{}: static directory {}",
                            config.path.display(),
                            dir.display()
                        )
                    })?;
                    statics.push(open);
                    Target::Static(statics.len() - 1)
                }
            };
            routes.push((route.host.clone(), route.path.clone(), target));
        }
        let router =
            Router::new(routes).map_err(|e| anyhow::anyhow!("{}: {e}", config.path.display()))?;
        Ok(Site {
            router,
            login_page: config.login_page.clone(),
            apps,
            statics,
        })
    }
}

/// A request head matched to its target, before the body is read.
pub struct Prepared {
    /// The site version this request runs against, start to finish.
    site: Arc<Site>,
    /// The matched route, or the failure to answer with.
    route: Result<Matched, Failure>,
    /// Most body bytes this request may carry.
    pub body_limit: u64,
}

/// What the event loop needs to admit a request to an app: which app, and
/// how many of its requests may run and wait.
pub struct Admission {
    pub app: Arc<str>,
    pub max_concurrency: u32,
    pub max_queue: u32,
    pub queue_timeout: std::time::Duration,
}

impl Prepared {
    /// The admission rules of the app this request goes to; `None` for static
    /// files and failures, which need no app slot.
    pub fn admission(&self) -> Option<Admission> {
        match &self.route {
            Ok(Matched {
                target: Target::App { app, .. },
                ..
            }) => {
                let guest = &self.site.apps[*app];
                Some(Admission {
                    app: guest.app.clone(),
                    max_concurrency: guest.limits.max_concurrency,
                    max_queue: guest.limits.max_queue,
                    queue_timeout: guest.limits.queue_timeout,
                })
            }
            _ => None,
        }
    }
}

struct Matched {
    target: Target,
    pattern: String,
    params: Vec<(String, String)>,
    rest: String,
}

/// Per-request figures for the access log.
#[derive(Debug, Default)]
pub struct Outcome {
    pub app: Option<Arc<str>>,
    pub failure: Option<String>,
    /// Figures of the guest call (instantiation, guest time, peak memory).
    pub guest: Option<crate::wasm::CallStats>,
}

/// Routes requests and produces responses; shared by all workers.
pub struct Dispatcher {
    runtime: Arc<Runtime>,
    site: RwLock<Arc<Site>>,
    /// Body limit for routes without an app (static files, 404s).
    default_max_body: u64,
    /// Per-app counters, kept across site swaps.
    metrics: Arc<Metrics>,
}

impl Dispatcher {
    pub fn new(runtime: Arc<Runtime>, site: Site, default_max_body: u64) -> Dispatcher {
        Dispatcher {
            runtime,
            site: RwLock::new(Arc::new(site)),
            default_max_body,
            metrics: Arc::new(Metrics::default()),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The site requests are served from now.
    pub fn site(&self) -> Arc<Site> {
        self.site.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the site atomically; requests already prepared keep the old one.
    pub fn swap_site(&self, site: Site) {
        *self.site.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(site);
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Routes a head; decides the body limit before any body byte is read.
    pub fn prepare(&self, head: &RequestHead) -> Prepared {
        let site = self.site();
        let host = head
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
            .map(|(_, v)| host_without_port(v));
        let route = match site.router.route(host.as_deref(), &head.path) {
            Ok(Some(m)) => Ok(Matched {
                target: *m.target,
                pattern: m.pattern.to_owned(),
                params: m.params,
                rest: m.rest,
            }),
            Ok(None) => Err(Failure::NoRoute),
            Err(e) => Err(Failure::BadRouteParam(e.to_string())),
        };
        let body_limit = match &route {
            Ok(Matched {
                target: Target::App { app, .. },
                ..
            }) => site.apps[*app].limits.max_body,
            _ => self.default_max_body,
        };
        Prepared {
            site,
            route,
            body_limit,
        }
    }

    /// Produces the response for a complete request.
    pub fn handle(&self, prepared: Prepared, req: &Request) -> (Response, Outcome) {
        let mut outcome = Outcome::default();
        let matched = match prepared.route {
            Ok(m) => m,
            Err(failure) => {
                outcome.failure = Some(failure.to_string());
                return (
                    status::failure_response(&failure, req.wants_json()),
                    outcome,
                );
            }
        };
        let resp = match matched.target {
            Target::Static(i) => {
                let resp = prepared.site.statics[i].serve(req.method, &matched.rest, &req.headers);
                // The mount point itself ("/static") names a directory; only
                // here is the mount path known to build its redirect.
                if resp.status == 301 && resp.header("location").is_none() {
                    resp.with_header("Location", format!("{}/", req.path))
                } else {
                    resp
                }
            }
            Target::App { app, login } => {
                let guest = &prepared.site.apps[app];
                outcome.app = Some(guest.app.clone());
                let token = sessions::token_in(&req.headers);
                let user = match (token, self.runtime.sessions()) {
                    (Some(token), Some(sessions)) => sessions.lookup(token),
                    _ => None,
                };
                if let Some(origin) = foreign_origin(req) {
                    let failure = Failure::ForeignOrigin(origin);
                    tracing::warn!(app = %guest.app, "refused: {failure}");
                    outcome.failure = Some(failure.to_string());
                    return (
                        status::failure_response(&failure, req.wants_json()),
                        outcome,
                    );
                }
                if login && user.is_none() {
                    outcome.failure = Some("login required".to_owned());
                    let resp = status::login_required(
                        req.wants_json(),
                        &prepared.site.login_page,
                        &req.path,
                        &req.query,
                    );
                    return (resp, outcome);
                }
                let identity = Identity {
                    token,
                    user: user.as_ref(),
                };
                self.run_guest(guest, &matched, req, &identity, &mut outcome)
            }
        };
        (resp, outcome)
    }

    fn run_guest(
        &self,
        guest: &GuestModule,
        matched: &Matched,
        req: &Request,
        identity: &Identity<'_>,
        outcome: &mut Outcome,
    ) -> Response {
        let metrics = self.metrics.app(&guest.app);
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let resp = self.call_guest(guest, matched, req, identity, outcome, &metrics);
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics.observe(resp.status, started.elapsed());
        resp
    }

    fn call_guest(
        &self,
        guest: &GuestModule,
        matched: &Matched,
        req: &Request,
        identity: &Identity<'_>,
        outcome: &mut Outcome,
        metrics: &crate::metrics::AppMetrics,
    ) -> Response {
        let route = RouteMeta {
            app: Cow::Borrowed(&guest.app),
            pattern: Cow::Borrowed(&matched.pattern),
            params: matched
                .params
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
                .collect(),
            rest: Cow::Borrowed(&matched.rest),
        };
        // The guest never sees the host's session token.
        let meta = if identity.token.is_some() {
            let mut headers = req.headers.clone();
            sessions::strip_cookie(&mut headers);
            abi::encode_guest_request(req, &headers, identity.user, &route)
        } else {
            abi::encode_guest_request(req, &req.headers, identity.user, &route)
        };
        let started = Instant::now();
        let (result, stats, action) =
            self.runtime
                .invoke_with(guest, &meta, &req.body, identity.user.is_some());
        outcome.guest = Some(stats);
        match result {
            Ok(g) => {
                tracing::debug!(
                    app = %guest.app,
                    instantiate_us = stats.instantiate.as_micros() as u64,
                    run_us = stats.run.as_micros() as u64,
                    peak_memory = stats.peak_memory,
                    "guest call"
                );
                let mut resp = Response {
                    status: g.status,
                    headers: g.headers,
                    body: if g.body.is_empty() {
                        Body::Empty
                    } else {
                        Body::Bytes(g.body)
                    },
                };
                if let Some(action) = action
                    && let Err(failure) = self.apply_session(action, identity, &mut resp)
                {
                    tracing::error!(app = %guest.app, "{failure}");
                    outcome.failure = Some(failure.to_string());
                    return status::failure_response(&failure, req.wants_json());
                }
                resp
            }
            Err(e) => {
                if let Some(kind) = e.limit_kind() {
                    metrics.limit_hit(kind);
                } else if e.is_trap() {
                    metrics.traps.fetch_add(1, Ordering::Relaxed);
                }
                // The one log line of this event: app, route, limit, figure.
                tracing::warn!(
                    app = %guest.app,
                    route = %matched.pattern,
                    limit = e.limit_kind().unwrap_or("-"),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    peak_memory = stats.peak_memory,
                    "guest failed: {e}"
                );
                let failure = Failure::Guest(e);
                outcome.failure = Some(failure.to_string());
                status::failure_response_for_app(&failure, req.wants_json(), &guest.error_pages)
            }
        }
    }
}

impl Dispatcher {
    /// Carries out what a guest asked of the session: a new session replaces
    /// the request's own (no fixation); ending one also clears the cookie.
    fn apply_session(
        &self,
        action: SessionAction,
        identity: &Identity<'_>,
        resp: &mut Response,
    ) -> Result<(), Failure> {
        let Some(sessions) = self.runtime.sessions() else {
            return Err(Failure::Sessions("no session store".to_owned()));
        };
        let fail = |e: crate::storage::StorageError| Failure::Sessions(e.to_string());
        if let Some(old) = identity.token {
            sessions.end(old).map_err(fail)?;
        }
        let cookie = match action {
            SessionAction::Start(user) => {
                sessions::set_cookie(&sessions.start(&user).map_err(fail)?)
            }
            SessionAction::End => sessions::clear_cookie(),
        };
        resp.headers.push(("Set-Cookie".to_owned(), cookie));
        Ok(())
    }
}

/// Who a request comes from, as far as the host knows.
struct Identity<'a> {
    /// The session token the request carried, if any.
    token: Option<&'a str>,
    /// The user of a valid session.
    user: Option<&'a User>,
}

/// For a state-changing request whose `Origin` names another site, that
/// origin. A request without `Origin` (not from a browser page) passes.
fn foreign_origin(req: &Request) -> Option<String> {
    if matches!(req.method, Method::Get | Method::Head | Method::Options) {
        return None;
    }
    let origin = req.header("origin")?.trim();
    let host = req.header("host").unwrap_or("");
    let authority = origin
        .split_once("://")
        .map(|(scheme, rest)| (scheme.to_ascii_lowercase(), rest));
    let same = match authority {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => {
            let default_port = if scheme == "http" { ":80" } else { ":443" };
            let origin_host = rest.trim_end_matches('/');
            let strip = |h: &str| {
                h.strip_suffix(default_port)
                    .unwrap_or(h)
                    .to_ascii_lowercase()
            };
            strip(origin_host) == strip(host.trim())
        }
        // "null" (sandboxed frames, file pages) and anything else.
        _ => false,
    };
    (!same).then(|| origin.to_owned())
}

/// Lower-cased host name without port; IPv6 literals keep their brackets.
fn host_without_port(value: &str) -> String {
    let value = value.trim();
    let name = if value.starts_with('[') {
        value.find(']').map_or(value, |end| &value[..=end])
    } else {
        value.rsplit_once(':').map_or(value, |(name, _)| name)
    };
    name.to_ascii_lowercase()
}

/// Loads a config file and everything it names into a `Site`.
pub fn load_site(routes: &Path, runtime: &Runtime) -> anyhow::Result<Site> {
    let config = crate::config::load_config(routes)?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    Site::load(&config, runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port() {
        let table = [
            ("example.com", "example.com"),
            ("Example.COM:8080", "example.com"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("127.0.0.1:1", "127.0.0.1"),
        ];
        for (input, expected) in table {
            assert_eq!(host_without_port(input), expected);
        }
    }
}
