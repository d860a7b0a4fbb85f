//! The event loop: accepts connections, drives each connection's state machine, hands complete requests to workers.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use threadpool::ThreadPool;

use crate::dispatch::Dispatcher;
use crate::http::Response;
use crate::limits::IO_CHUNK;
use crate::status::{self, Failure};
use crate::wasm::WORKER_STACK;

use super::ServerConfig;
use super::conn::{Conn, Job, Progress};

pub(super) const LISTENER: Token = Token(0);
pub(super) const WAKER: Token = Token(1);
/// Connection tokens are slab keys offset past the fixed tokens.
const FIRST_CONN: usize = 2;

/// How often deadlines are checked; timeouts fire at most this late.
const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// Most readiness events handled per poll.
const EVENTS_CAPACITY: usize = 1024;

/// A worker's answer, on its way back to the event loop.
struct Done {
    key: usize,
    generation: u64,
    response: Response,
    head_only: bool,
    keep_alive: bool,
    /// The app whose slot the request held, to release it.
    app: Option<Arc<str>>,
}

/// One app's admission state: requests running on workers, and requests
/// waiting their turn here, on the event loop, where waiting costs no thread.
#[derive(Default)]
struct AppQueue {
    running: u32,
    waiting: VecDeque<Waiting>,
}

/// A complete request waiting for a slot of its app.
struct Waiting {
    key: usize,
    generation: u64,
    job: Job,
    /// When it stops waiting and gets 503.
    until: Instant,
}

pub(super) struct EventLoop {
    config: ServerConfig,
    poll: Poll,
    /// `None` once shutdown has begun.
    listener: Option<TcpListener>,
    waker: Arc<mio::Waker>,
    stop: Arc<AtomicBool>,
    dispatcher: Arc<Dispatcher>,
    conns: Slab<Conn>,
    next_generation: u64,
    pool: ThreadPool,
    done_tx: Sender<Done>,
    done_rx: Receiver<Done>,
    /// Requests dispatched whose answer has not come back.
    in_flight: usize,
    /// Per-app admission: `max_concurrency` running, `max_queue` waiting.
    queues: HashMap<Arc<str>, AppQueue>,
    /// Read buffer shared by all connections (reads are copied out at once).
    scratch: Vec<u8>,
}

impl EventLoop {
    pub fn new(
        config: ServerConfig,
        poll: Poll,
        mut listener: TcpListener,
        waker: Arc<mio::Waker>,
        stop: Arc<AtomicBool>,
        dispatcher: Arc<Dispatcher>,
    ) -> io::Result<EventLoop> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let pool = threadpool::Builder::new()
            .num_threads(config.workers.max(1))
            .thread_name("worker".into())
            .thread_stack_size(WORKER_STACK)
            .build();
        let (done_tx, done_rx) = channel();
        Ok(EventLoop {
            config,
            poll,
            listener: Some(listener),
            waker,
            stop,
            dispatcher,
            conns: Slab::new(),
            next_generation: 0,
            pool,
            done_tx,
            done_rx,
            in_flight: 0,
            queues: HashMap::new(),
            scratch: vec![0; IO_CHUNK],
        })
    }

    pub fn run(&mut self) -> anyhow::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut last_sweep = Instant::now();
        let mut shutdown_started: Option<Instant> = None;
        loop {
            match self.poll.poll(&mut events, Some(SWEEP_EVERY)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(anyhow::Error::from(e).context("polling")),
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    Token(t) => {
                        let key = t - FIRST_CONN;
                        if let Some(conn) = self.conns.get_mut(key) {
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                conn.readable = true;
                            }
                            self.drive(key, now);
                        }
                    }
                }
            }
            self.collect_done(now);
            if now.duration_since(last_sweep) >= SWEEP_EVERY {
                self.sweep(now);
                self.expire_waiting(now);
                last_sweep = now;
            }
            if self.stop.load(Ordering::SeqCst) {
                let started = *shutdown_started.get_or_insert_with(|| {
                    tracing::info!(
                        "shutting down: no new connections; finishing requests in progress"
                    );
                    now
                });
                if let Some(mut listener) = self.listener.take() {
                    let _ = self.poll.registry().deregister(&mut listener);
                }
                let idle: Vec<usize> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.is_idle() || c.linger_until().is_some())
                    .map(|(k, _)| k)
                    .collect();
                for key in idle {
                    self.close(key);
                }
                if self.conns.is_empty() && self.in_flight == 0 {
                    break;
                }
                if now.duration_since(started) > self.config.shutdown_grace {
                    tracing::warn!(
                        connections = self.conns.len(),
                        in_flight = self.in_flight,
                        "grace period over; closing the remaining connections"
                    );
                    break;
                }
            }
        }
        Ok(())
    }

    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= self.config.max_connections {
                        tracing::warn!(%peer, "connection limit reached; closing new connection");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) = self.poll.registry().register(
                        &mut stream,
                        Token(key + FIRST_CONN),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        tracing::warn!(%peer, "cannot register connection: {e}");
                        continue;
                    }
                    self.next_generation += 1;
                    entry.insert(Conn::new(stream, peer, self.next_generation, now));
                    self.drive(key, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of file descriptors and the like: log and retry on the next event.
                    tracing::warn!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Moves one connection forward as far as it can go without blocking.
    fn drive(&mut self, key: usize, now: Instant) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.has_output() {
                match conn.flush(now) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(_) => return self.close(key),
                }
            }
            let mut filled = false;
            if conn.readable {
                let before = conn.buffered();
                if conn.fill(&mut self.scratch, now).is_err() {
                    return self.close(key);
                }
                filled = conn.buffered() != before || conn.peer_closed();
            }
            match conn.process(&self.dispatcher, &self.config, now) {
                Progress::Dispatch(job) => self.dispatch(key, *job),
                Progress::Output => continue,
                Progress::NeedInput => {
                    let conn = &self.conns[key];
                    // Read again only if the last read moved something; a paused
                    // or drained socket waits for its next readiness event.
                    if conn.readable && filled && !conn.peer_closed() {
                        continue;
                    }
                    return;
                }
                Progress::Waiting => return,
                Progress::Close => return self.close(key),
            }
        }
    }

    /// Most workers one app may hold, so that another app always finds one.
    fn worker_share(&self) -> u32 {
        u32::try_from(self.config.workers.saturating_sub(1).max(1)).unwrap_or(u32::MAX)
    }

    /// Admits a complete request: runs it now, queues it behind its app's
    /// running requests, or refuses it with 503 when the queue is full.
    fn dispatch(&mut self, key: usize, job: Job) {
        let Some(admission) = job.prepared.admission() else {
            return self.execute(key, job, None);
        };
        let share = self.worker_share();
        let queue = self.queues.entry(admission.app.clone()).or_default();
        if queue.running < admission.max_concurrency.min(share) {
            queue.running += 1;
            return self.execute(key, job, Some(admission.app));
        }
        if queue.waiting.len() < admission.max_queue as usize {
            let generation = self.conns[key].generation;
            queue.waiting.push_back(Waiting {
                key,
                generation,
                job,
                until: Instant::now() + admission.queue_timeout,
            });
            return;
        }
        let reason = format!(
            "{} running, queue of {} full",
            queue.running, admission.max_queue
        );
        self.refuse(key, job, &admission.app, admission.max_concurrency, reason);
    }

    /// Answers 503 (with `Retry-After`) to a request its app cannot take.
    fn refuse(&mut self, key: usize, job: Job, app: &Arc<str>, limit: u32, reason: String) {
        self.dispatcher
            .metrics()
            .app(app)
            .limit_hit("max_concurrency");
        let failure = Failure::Guest(crate::wasm::GuestError::Concurrency { limit, reason });
        if let Some(conn) = self.conns.get_mut(key) {
            tracing::warn!(target: "access", client = %conn.peer, app = %app, path = %job.request.path, "rejected: {failure}");
            let resp = status::failure_response(&failure, job.request.wants_json());
            conn.queue_response(resp, job.head_only, job.keep_alive, &http_date());
        }
        self.drive(key, Instant::now());
    }

    /// Frees a slot of `app` and starts its longest-waiting request, if any;
    /// waiters whose client left are dropped, expired ones get 503.
    fn release(&mut self, app: &Arc<str>, now: Instant) {
        if let Some(queue) = self.queues.get_mut(app) {
            queue.running = queue.running.saturating_sub(1);
        }
        loop {
            let Some(waiting) = self.queues.get_mut(app).and_then(|q| q.waiting.pop_front()) else {
                return;
            };
            let Some(conn) = self.conns.get(waiting.key) else {
                continue;
            };
            if conn.generation != waiting.generation || !conn.is_waiting() {
                continue;
            }
            if conn.peer_closed() {
                // The client left while its request waited: nobody would read
                // the answer, so the guest never runs.
                self.close(waiting.key);
                continue;
            }
            if now >= waiting.until {
                let limit = waiting
                    .job
                    .prepared
                    .admission()
                    .map_or(0, |a| a.max_concurrency);
                self.refuse(
                    waiting.key,
                    waiting.job,
                    app,
                    limit,
                    "no slot free in time".into(),
                );
                continue;
            }
            if let Some(queue) = self.queues.get_mut(app) {
                queue.running += 1;
            }
            return self.execute(waiting.key, waiting.job, Some(app.clone()));
        }
    }

    /// Answers 503 to queued requests that waited their full timeout.
    fn expire_waiting(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for (app, queue) in self.queues.iter_mut() {
            while queue.waiting.front().is_some_and(|w| now >= w.until) {
                if let Some(w) = queue.waiting.pop_front() {
                    expired.push((app.clone(), w));
                }
            }
        }
        for (app, w) in expired {
            let alive = self
                .conns
                .get(w.key)
                .is_some_and(|c| c.generation == w.generation && c.is_waiting());
            if alive {
                let limit = w.job.prepared.admission().map_or(0, |a| a.max_concurrency);
                self.refuse(w.key, w.job, &app, limit, "no slot free in time".into());
            }
        }
    }

    /// Hands a request to a worker.
    fn execute(&mut self, key: usize, job: Job, app: Option<Arc<str>>) {
        let conn = &mut self.conns[key];
        if self.in_flight >= self.config.max_pending {
            let failure = Failure::Overloaded;
            tracing::warn!(target: "access", client = %conn.peer, "rejected: {failure}");
            let resp = status::failure_response(&failure, job.request.wants_json());
            conn.queue_response(resp, job.head_only, false, &http_date());
            // Free the slot without starting a waiter: under this overload it
            // would be refused too (and recurse); waiters time out with 503.
            if let Some(queue) = app.and_then(|app| self.queues.get_mut(&app)) {
                queue.running = queue.running.saturating_sub(1);
            }
            return;
        }
        self.in_flight += 1;
        let generation = conn.generation;
        let dispatcher = self.dispatcher.clone();
        let tx = self.done_tx.clone();
        let waker = self.waker.clone();
        self.pool.execute(move || {
            let started = Instant::now();
            let Job {
                prepared,
                request,
                head_only,
                keep_alive,
            } = job;
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                dispatcher.handle(prepared, &request)
            }));
            let (response, outcome) = match result {
                Ok(r) => r,
                Err(_) => {
                    tracing::error!(path = %request.path, "handler panicked");
                    (
                        status::error_page(500, request.wants_json()),
                        Default::default(),
                    )
                }
            };
            tracing::info!(
                target: "access",
                client = %request.client,
                method = request.method.as_str(),
                path = %request.path,
                status = response.status,
                bytes = response.body.len(),
                duration_us = started.elapsed().as_micros() as u64,
                app = outcome.app.as_deref().unwrap_or("-"),
                failure = outcome.failure.as_deref().unwrap_or(""),
                queued_us = outcome.guest.map_or(0, |g| g.queued.as_micros() as u64),
                instantiate_us = outcome.guest.map_or(0, |g| g.instantiate.as_micros() as u64),
                guest_us = outcome.guest.map_or(0, |g| g.run.as_micros() as u64),
                peak_memory = outcome.guest.map_or(0, |g| g.peak_memory),
            );
            let _ = tx.send(Done {
                key,
                generation,
                response,
                head_only,
                keep_alive,
                app,
            });
            let _ = waker.wake();
        });
    }

    fn collect_done(&mut self, now: Instant) {
        while let Ok(done) = self.done_rx.try_recv() {
            self.in_flight -= 1;
            let stopping = self.stop.load(Ordering::SeqCst);
            match self.conns.get_mut(done.key) {
                Some(conn) if conn.generation == done.generation && conn.is_waiting() => {
                    conn.queue_response(
                        done.response,
                        done.head_only,
                        done.keep_alive && !stopping,
                        &http_date(),
                    );
                    self.drive(done.key, now);
                }
                // The client left while its request ran.
                _ => {}
            }
            if let Some(app) = done.app {
                self.release(&app, now);
            }
        }
    }

    /// Applies deadlines: 408 for a request that stalled, close for the rest.
    fn sweep(&mut self, now: Instant) {
        let mut expired = Vec::new();
        for (key, conn) in self.conns.iter() {
            if let Some((deadline, _)) = conn.deadline(&self.config)
                && now >= deadline
            {
                expired.push(key);
            }
        }
        for key in expired {
            let conn = &mut self.conns[key];
            match conn.deadline(&self.config) {
                Some((_, Some(failure))) if !conn.has_output() => {
                    conn.time_out(failure);
                    self.drive(key, now);
                }
                _ => self.close(key),
            }
        }
    }

    fn close(&mut self, key: usize) {
        if self.conns.contains(key) {
            let mut conn = self.conns.remove(key);
            let _ = self.poll.registry().deregister(&mut conn.stream);
        }
    }
}

thread_local! {
    /// The formatted `Date` and the second it was made for: formatting once a second is enough.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The current time as an HTTP date, cached per second.
pub(crate) fn http_date() -> String {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.0 != secs {
            *cell = (secs, httpdate::fmt_http_date(now));
        }
        cell.1.clone()
    })
}
