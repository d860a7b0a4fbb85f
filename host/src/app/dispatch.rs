//! Turning a request into a response: route its head, check who it is from, then run its app's guest or serve its static file; the network layer's [`Handler`].
//!
//! Everything here works without a socket: tests can build a `Dispatcher` and
//! call `prepare` and `handle` directly.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::http::parse::RequestHead;
use crate::http::{Body, Request, Response, Version};
use crate::net::{AccessNote, Answer, Handler, Lane, Plan, Refusal, Rule};
use wasmhost_abi::RouteMeta;

use crate::sandbox::{GuestModule, Inline, Runtime};
use crate::sandbox::{abi, component};
use crate::sessions::{self, SessionAction, User};

use super::cookies;
use super::failure::{self, Failure};
use super::metrics::Metrics;
use super::origin::{foreign_origin, host_without_port};
use super::site::{Site, Target};

/// A request head matched to its target, before the body is read.
pub struct Prepared {
    /// The site version this request runs against, start to finish.
    site: Arc<Site>,
    /// The matched route, or the failure to answer with.
    route: Result<Matched, Failure>,
    /// Most body bytes this request may carry.
    pub body_limit: u64,
}

impl Prepared {
    /// How the network layer is to run this request: failures at once on
    /// the event loop, static files on a worker, apps through their admission.
    fn lane(&self) -> Lane {
        match &self.route {
            Err(_) => Lane::Inline,
            Ok(Matched {
                target: Target::Static(_),
                ..
            }) => Lane::Worker,
            Ok(Matched {
                target: Target::App { app, .. },
                ..
            }) => {
                let guest = &self.site.apps[*app];
                Lane::Admitted(Rule {
                    key: guest.app.clone(),
                    max_concurrency: guest.limits.max_concurrency,
                    max_queue: guest.limits.max_queue,
                    queue_timeout: guest.limits.queue_timeout,
                })
            }
        }
    }

    /// The app this request goes to, if any.
    fn app(&self) -> Option<&Arc<GuestModule>> {
        match &self.route {
            Ok(Matched {
                target: Target::App { app, .. },
                ..
            }) => self.site.apps.get(*app),
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
    pub guest: Option<crate::sandbox::CallStats>,
}

impl Outcome {
    fn into_note(self) -> AccessNote {
        AccessNote {
            app: self.app,
            failure: self.failure,
            instantiate_us: self.guest.map_or(0, |g| g.instantiate.as_micros() as u64),
            guest_us: self.guest.map_or(0, |g| g.run.as_micros() as u64),
            peak_memory: self.guest.map_or(0, |g| g.peak_memory as u64),
        }
    }
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
        match self.respond(&prepared, req, Where::Worker) {
            Some(answer) => answer,
            // Only a run on the calling thread is ever given up.
            None => {
                let failure = Failure::Guest(crate::sandbox::GuestError::Setup(
                    "a request on a worker was given up".to_owned(),
                ));
                (
                    failure::failure_response(&failure, req.wants_json()),
                    Outcome {
                        failure: Some(failure.to_string()),
                        ..Outcome::default()
                    },
                )
            }
        }
    }

    /// Answers a complete request on the calling thread (the event loop), if
    /// it is one that may try and it ends there: a static file (metadata and
    /// a read of at most `SMALL_FILE`; the event loop sends larger bodies
    /// from the file itself anyway), or a request to a guest that reaches
    /// nothing outside its instance (`sandbox::inline`), without a session
    /// cookie (looking a session up reads the store). `None`: run it on a
    /// worker with [`Dispatcher::handle`]; nothing of it is left.
    pub fn try_inline(&self, prepared: &Prepared, req: &Request) -> Option<(Response, Outcome)> {
        if let Ok(Matched {
            target: Target::Static(_),
            ..
        }) = &prepared.route
        {
            return self.respond(prepared, req, Where::Inline);
        }
        let guest = prepared.app()?;
        // The cookie first: a request that cannot try must not use up the
        // version's count of requests sent straight to workers.
        if sessions::token_in(&req.headers).is_some() || !guest.may_try_inline() {
            return None;
        }
        self.respond(prepared, req, Where::Inline)
    }

    /// The answer to a complete request, run where `at` says; `None` if a
    /// run on the calling thread was given up.
    fn respond(
        &self,
        prepared: &Prepared,
        req: &Request,
        at: Where,
    ) -> Option<(Response, Outcome)> {
        let mut outcome = Outcome::default();
        let matched = match &prepared.route {
            Ok(m) => m,
            Err(failure) => {
                outcome.failure = Some(failure.to_string());
                return Some((
                    failure::failure_response(failure, req.wants_json()),
                    outcome,
                ));
            }
        };
        let resp = match matched.target {
            Target::Static(i) => prepared.site.statics[i].serve_at(
                req.method,
                &req.path,
                &matched.rest,
                &req.headers,
            ),
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
                    return Some((
                        failure::failure_response(&failure, req.wants_json()),
                        outcome,
                    ));
                }
                if login && user.is_none() {
                    outcome.failure = Some("login required".to_owned());
                    let resp = failure::login_required(
                        req.wants_json(),
                        &prepared.site.login_page,
                        &req.path,
                        &req.query,
                    );
                    return Some((resp, outcome));
                }
                let identity = Identity {
                    token,
                    user: user.as_ref(),
                };
                self.run_guest(guest, matched, req, &identity, &mut outcome, at)?
            }
        };
        Some((resp, outcome))
    }

    fn run_guest(
        &self,
        guest: &GuestModule,
        matched: &Matched,
        req: &Request,
        identity: &Identity<'_>,
        outcome: &mut Outcome,
        at: Where,
    ) -> Option<Response> {
        let metrics = self.metrics.app(&guest.app);
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let resp = self.call_guest(guest, matched, req, identity, outcome, at);
        metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        match &resp {
            Some(resp) => {
                metrics.observe(resp.status, started.elapsed());
                if at == Where::Inline {
                    metrics.on_loop.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Counted when it answers, on its worker.
            None => {
                metrics.moved.fetch_add(1, Ordering::Relaxed);
            }
        }
        resp
    }

    fn call_guest(
        &self,
        guest: &GuestModule,
        matched: &Matched,
        req: &Request,
        identity: &Identity<'_>,
        outcome: &mut Outcome,
        at: Where,
    ) -> Option<Response> {
        let started = Instant::now();
        let (result, stats, action) = if guest.is_component() {
            self.call_component(guest, matched, req, identity)
        } else {
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
            match at {
                Where::Worker => {
                    self.runtime
                        .invoke_with(guest, &meta, &req.body, identity.user.is_some())
                }
                Where::Inline => match self.runtime.invoke_inline(guest, &meta, &req.body) {
                    Inline::Ran(result, stats) => (result, stats, None),
                    Inline::Moved => return None,
                },
            }
        };
        outcome.guest = Some(stats);
        match result {
            Ok(g) => {
                tracing::debug!(
                    app = %guest.app,
                    instantiate_us = stats.instantiate.as_micros() as u64,
                    run_us = stats.run.as_micros() as u64,
                    peak_memory = stats.peak_memory,
                    grew_memory = stats.peak_memory.saturating_sub(stats.initial_memory),
                    "guest call"
                );
                let mut headers = g.headers;
                drop_session_cookies_logged(&guest.app, &matched.pattern, &mut headers);
                let mut resp = Response {
                    status: g.status,
                    headers,
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
                    return Some(failure::failure_response(&failure, req.wants_json()));
                }
                Some(resp)
            }
            Err(e) => {
                // Failures are rare: the app's counters are looked up again.
                let metrics = self.metrics.app(&guest.app);
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
                Some(failure::failure_response_for_app(
                    &failure,
                    req.wants_json(),
                    &guest.error_pages,
                ))
            }
        }
    }
}

impl Dispatcher {
    /// Runs a `wasi:http` component: the request as sent, without the host's
    /// session cookie, plus the host's `wasmhost-*` headers. A component has
    /// no say over the session.
    fn call_component(
        &self,
        guest: &GuestModule,
        matched: &Matched,
        req: &Request,
        identity: &Identity<'_>,
    ) -> (
        Result<abi::GuestResponse, crate::sandbox::GuestError>,
        crate::sandbox::CallStats,
        Option<SessionAction>,
    ) {
        let stripped;
        let headers = if identity.token.is_some() {
            let mut headers = req.headers.clone();
            sessions::strip_cookie(&mut headers);
            stripped = headers;
            &stripped[..]
        } else {
            &req.headers[..]
        };
        // A body the component is still writing goes out as it is written:
        // the head now, the pieces after it (chunked without a length, which
        // an HTTP/1.0 client cannot take: it gets the body whole).
        let start = |head: component::Head| {
            if req.version != Version::Http11 && head.len.is_none() {
                return None;
            }
            let mut headers = head.headers;
            drop_session_cookies_logged(&guest.app, &matched.pattern, &mut headers);
            crate::http::stream::start(
                Response {
                    status: head.status,
                    headers,
                    body: Body::Empty,
                },
                head.len,
            )
        };
        let incoming = component::Incoming {
            request: req,
            headers,
            route: component::RouteHeaders {
                app: &guest.app,
                pattern: &matched.pattern,
                params: &matched.params,
                rest: &matched.rest,
                user: identity.user,
                client: req.client,
            },
            stream: Some(&start),
        };
        let (result, stats) = self.runtime.invoke_component(guest, incoming);
        let result = result.map(|reply| match reply {
            component::ComponentReply::Whole(r) | component::ComponentReply::Streamed(r) => r,
        });
        (result, stats, None)
    }

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

/// Drops a guest's `Set-Cookie` for the host's session cookie, which is the
/// host's alone (app/cookies.rs), and logs it.
fn drop_session_cookies_logged(app: &str, route: &str, headers: &mut Vec<(String, String)>) {
    let dropped = cookies::drop_session_cookies(headers);
    if dropped > 0 {
        tracing::warn!(
            app = %app,
            route = %route,
            dropped,
            "dropped the guest's Set-Cookie for the host's session cookie `{}`",
            sessions::COOKIE_NAME
        );
    }
}

/// Where a guest runs: on a worker, or on the event loop until it would
/// block or run long (`sandbox::inline`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Worker,
    Inline,
}

/// Who a request comes from, as far as the host knows.
struct Identity<'a> {
    /// The session token the request carried, if any.
    token: Option<&'a str>,
    /// The user of a valid session.
    user: Option<&'a User>,
}

impl Handler for Dispatcher {
    type Ticket = Prepared;

    fn plan(&self, head: &RequestHead) -> Plan<Prepared> {
        let prepared = self.prepare(head);
        Plan {
            body_limit: prepared.body_limit,
            lane: prepared.lane(),
            ticket: prepared,
        }
    }

    fn handle(&self, ticket: Prepared, request: &Request) -> Answer {
        let (response, outcome) = Dispatcher::handle(self, ticket, request);
        Answer {
            response,
            note: outcome.into_note(),
        }
    }

    fn try_inline(&self, ticket: &Prepared, request: &Request) -> Option<Answer> {
        let (response, outcome) = Dispatcher::try_inline(self, ticket, request)?;
        Some(Answer {
            response,
            note: outcome.into_note(),
        })
    }

    /// The app's own 503, counted in its metrics like any answer of the app.
    fn refuse(&self, ticket: Prepared, request: &Request, refusal: &Refusal) -> Answer {
        let Some(guest) = ticket.app() else {
            // Only app requests go through admission; answer generically anyway.
            let failure = Failure::Refused {
                limit: 0,
                refusal: refusal.clone(),
            };
            return Answer::plain(failure::failure_response(&failure, request.wants_json()));
        };
        let failure = Failure::Refused {
            limit: guest.limits.max_concurrency,
            refusal: refusal.clone(),
        };
        tracing::warn!(app = %guest.app, path = %request.path, "rejected: {failure}");
        let metrics = self.metrics.app(&guest.app);
        if let Some(kind) = failure.limit_kind() {
            metrics.limit_hit(kind);
        }
        let response =
            failure::failure_response_for_app(&failure, request.wants_json(), &guest.error_pages);
        let waited = match refusal {
            Refusal::TimedOut { waited } => *waited,
            _ => Duration::ZERO,
        };
        metrics.observe(response.status, waited);
        Answer {
            response,
            note: AccessNote {
                app: Some(guest.app.clone()),
                failure: Some(failure.to_string()),
                ..AccessNote::default()
            },
        }
    }
}
