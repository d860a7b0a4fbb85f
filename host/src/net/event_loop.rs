//! The event loop: accepts connections, drives each connection's state machine, admits requests, answers short ones itself (`Handler::try_inline`) and hands the rest to workers.

use std::io;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant, SystemTime};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use threadpool::ThreadPool;

use crate::http::conn::{Event, Job, Routed};
use crate::http::date::DateCache;
use crate::http::{Request, Response};
use crate::limits::{IO_CHUNK, MAX_PARKED};

use super::ServerConfig;
use super::admission::{Admission, Admit, Permit};
use super::gate::{Gate, Message, Turn};
use super::handler::{AccessNote, Answer, Handler, Lane, Plan, Refusal};
use super::socket::Conn;
use super::status::{self, NetFailure};

pub(super) const LISTENER: Token = Token(0);
pub(super) const WAKER: Token = Token(1);
/// Connection tokens are slab keys offset past the fixed tokens.
const FIRST_CONN: usize = 2;

/// How often deadlines are checked; timeouts fire at most this late.
const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// Most readiness events handled per poll.
const EVENTS_CAPACITY: usize = 1024;

/// Most connections ready in one poll for the loop to run a short request's
/// guest itself: one loop is one core, so with more connections waiting the
/// guests go to workers on the other cores while the loop reads and writes
/// (docs/BENCHMARKS.md, "Short requests on the event loop": on 2 cores, always
/// running hello on the loop gave 0.69× the throughput of handing it off).
const INLINE_MAX_READY: usize = 1;

/// What a request carries through the loop: the handler's ticket and how it runs.
pub(super) struct Ticket<T> {
    ticket: T,
    lane: Lane,
}

/// A complete request on its way to be answered.
type Request2<H> = Job<Ticket<<H as Handler>::Ticket>>;

/// What a worker tells the event loop about the request it runs.
enum FromWorker {
    /// The request ended.
    Done(Done),
    /// The handler sent its head early; the body follows as a stream.
    Early(Early),
    /// The next pieces of a streamed body are ready on this connection.
    Progress(Owner),
}

/// A head sent before the handler finished (`http::stream`).
struct Early {
    owner: Owner,
    response: Response,
    head_only: bool,
    keep_alive: bool,
}

/// A worker's `http::stream::Early` hook for the request it runs.
struct EarlyHook {
    owner: Owner,
    head_only: bool,
    keep_alive: bool,
    tx: Sender<Message<FromWorker>>,
    waker: Arc<mio::Waker>,
    /// Whether the head went out early: then the handler's own answer is not sent.
    sent: std::cell::Cell<bool>,
}

impl crate::http::stream::Early for EarlyHook {
    fn send(&self, response: Response) -> Option<crate::http::stream::Wake> {
        if self.sent.replace(true) {
            return None;
        }
        let early = Early {
            owner: self.owner,
            response,
            head_only: self.head_only,
            keep_alive: self.keep_alive,
        };
        if self
            .tx
            .send(Message::Done(FromWorker::Early(early)))
            .is_err()
        {
            return None;
        }
        let _ = self.waker.wake();
        let (tx, waker, owner) = (self.tx.clone(), self.waker.clone(), self.owner);
        Some(Arc::new(move || {
            let _ = tx.send(Message::Done(FromWorker::Progress(owner)));
            let _ = waker.wake();
        }))
    }
}

/// Which connection a request belongs to (a slab key and its generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    key: usize,
    generation: u64,
}

/// A request waiting in its app's admission queue.
struct Queued<T> {
    owner: Owner,
    job: Job<Ticket<T>>,
    since: Instant,
}

/// A worker's answer, on its way back to the event loop.
struct Done {
    owner: Owner,
    /// The answer, unless its head went out early.
    response: Option<Response>,
    head_only: bool,
    keep_alive: bool,
    /// The admission permit the request held, to give back.
    permit: Option<Permit>,
    /// Whether it ended with its slot lent (it gave up waiting for one).
    parked: bool,
}

pub(super) struct EventLoop<H: Handler> {
    config: ServerConfig,
    poll: Poll,
    /// `None` once shutdown has begun.
    listener: Option<TcpListener>,
    waker: Arc<mio::Waker>,
    stop: Arc<AtomicBool>,
    handler: Arc<H>,
    conns: Slab<Conn<Ticket<H::Ticket>>>,
    next_generation: u64,
    pool: ThreadPool,
    done_tx: Sender<Message<FromWorker>>,
    done_rx: Receiver<Message<FromWorker>>,
    /// Requests asleep with their slot lent, server-wide (their gates count).
    sleepers: Arc<AtomicUsize>,
    /// Requests at workers whose answer has not come back.
    in_flight: usize,
    /// Per-app admission: the one place it is decided.
    admission: Admission<Queued<H::Ticket>, Arc<Turn>>,
    /// Connections that were ready in the current poll.
    ready: usize,
    /// Read buffer shared by all connections (reads are copied out at once).
    scratch: Vec<u8>,
    date: DateCache,
}

impl<H: Handler> EventLoop<H> {
    pub fn new(
        config: ServerConfig,
        poll: Poll,
        mut listener: TcpListener,
        waker: Arc<mio::Waker>,
        stop: Arc<AtomicBool>,
        handler: Arc<H>,
    ) -> io::Result<EventLoop<H>> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        // A thread per run slot, and one for each request that may sleep
        // with its slot lent (docs/ARCHITECTURE.md, "Execution model").
        let pool = threadpool::Builder::new()
            .num_threads(config.workers.max(1) + MAX_PARKED)
            .thread_name("worker".into())
            .thread_stack_size(config.worker_stack)
            .build();
        let (done_tx, done_rx) = channel();
        Ok(EventLoop {
            admission: Admission::new(config.workers),
            config,
            poll,
            listener: Some(listener),
            waker,
            stop,
            handler,
            conns: Slab::new(),
            next_generation: 0,
            pool,
            done_tx,
            done_rx,
            sleepers: Arc::new(AtomicUsize::new(0)),
            in_flight: 0,
            ready: 0,
            scratch: vec![0; IO_CHUNK],
            date: DateCache::default(),
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
            self.ready = events
                .iter()
                .filter(|e| e.token() != LISTENER && e.token() != WAKER)
                .count();
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
                    .filter(|(_, c)| c.proto.is_idle() || c.proto.linger_until().is_some())
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
            if conn.proto.has_output() {
                match conn.flush(now) {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(_) => return self.close(key),
                }
            }
            let mut filled = false;
            if conn.readable {
                let before = conn.proto.buffered();
                if conn.fill(&mut self.scratch, now).is_err() {
                    return self.close(key);
                }
                filled = conn.proto.buffered() != before || conn.proto.peer_closed();
            }
            let handler = &self.handler;
            let route = |head: &crate::http::parse::RequestHead| {
                let Plan {
                    ticket,
                    body_limit,
                    lane,
                } = handler.plan(head);
                Routed {
                    ticket: Ticket { ticket, lane },
                    body_limit,
                }
            };
            let date = self.date.at(SystemTime::now());
            match conn.proto.process(route, now, date) {
                Event::Request(job) => self.dispatch(key, *job, now),
                Event::Output => continue,
                Event::NeedInput => {
                    let conn = &self.conns[key];
                    // Read again only if the last read moved something; a paused
                    // or drained socket waits for its next readiness event.
                    if conn.readable && filled && !conn.proto.peer_closed() {
                        continue;
                    }
                    return;
                }
                Event::Waiting => return,
                Event::Close => return self.close(key),
            }
        }
    }

    fn owner(&self, key: usize) -> Owner {
        Owner {
            key,
            generation: self.conns[key].generation,
        }
    }

    /// Whether the connection that sent a request still waits for its answer.
    fn waits(&self, owner: Owner) -> bool {
        self.conns
            .get(owner.key)
            .is_some_and(|c| c.generation == owner.generation && c.proto.is_waiting())
    }

    /// Runs a complete request on its lane: inline, on a worker, or through
    /// its app's admission.
    fn dispatch(&mut self, key: usize, job: Request2<H>, now: Instant) {
        let owner = self.owner(key);
        match job.ticket.lane.clone() {
            Lane::Inline => {
                let Job {
                    ticket,
                    request,
                    head_only,
                    keep_alive,
                } = job;
                let started = Instant::now();
                let answer = self.handler.handle(ticket.ticket, &request);
                access_log(&request, &answer, started, None);
                self.answer(owner, answer.response, head_only, keep_alive, now);
            }
            Lane::Worker => self.execute(owner, job, None, Duration::ZERO, now),
            Lane::Admitted(rule) => {
                let queued = Queued {
                    owner,
                    job,
                    since: now,
                };
                match self.admission.admit(&rule, queued, now) {
                    Admit::Run(permit, q) => match self.try_inline(&q) {
                        Some(answer) => {
                            let Job {
                                request,
                                head_only,
                                keep_alive,
                                ..
                            } = q.job;
                            access_log(&request, &answer, now, Some(Duration::ZERO));
                            self.answer(owner, answer.response, head_only, keep_alive, now);
                            self.release(permit, false, now);
                        }
                        None => self.execute(q.owner, q.job, Some(permit), Duration::ZERO, now),
                    },
                    Admit::Queued => {}
                    Admit::Refused(q, refusal) => self.refuse(q, &refusal, now),
                }
            }
        }
    }

    /// Runs an admitted request on the loop if the handler finds it short
    /// (no hand-off to a worker and back); `None`: hand it to a worker.
    fn try_inline(&self, q: &Queued<H::Ticket>) -> Option<Answer> {
        if !self.config.inline || self.ready > INLINE_MAX_READY {
            return None;
        }
        let handler = &self.handler;
        let request = &q.job.request;
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            handler.try_inline(&q.job.ticket.ticket, request)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(path = %request.path, "handler panicked on the event loop");
            let failure = NetFailure::HandlerPanicked;
            Some(Answer {
                response: status::response(&failure, request.wants_json()),
                note: AccessNote {
                    failure: Some(failure.to_string()),
                    ..AccessNote::default()
                },
            })
        })
    }

    /// Queues an answer on its connection, if the connection still waits for it.
    fn answer(
        &mut self,
        owner: Owner,
        response: Response,
        head_only: bool,
        keep_alive: bool,
        now: Instant,
    ) {
        if !self.waits(owner) {
            // The client left while its request ran.
            return;
        }
        let stopping = self.stop.load(Ordering::SeqCst);
        let date = self.date.at(SystemTime::now());
        self.conns[owner.key]
            .proto
            .respond(response, head_only, keep_alive && !stopping, date);
        self.drive(owner.key, now);
    }

    /// Answers 503 (with `Retry-After`) to a request its app cannot take, with
    /// the handler's answer (the app's page and counters).
    fn refuse(&mut self, queued: Queued<H::Ticket>, refusal: &Refusal, now: Instant) {
        let Queued { owner, job, since } = queued;
        let Job {
            ticket,
            request,
            head_only,
            keep_alive,
        } = job;
        let answer = self.handler.refuse(ticket.ticket, &request, refusal);
        access_log(
            &request,
            &answer,
            now,
            Some(now.saturating_duration_since(since)),
        );
        let keep_alive = keep_alive && !matches!(refusal, Refusal::Overloaded { .. });
        self.answer(owner, answer.response, head_only, keep_alive, now);
    }

    /// Gives a permit back and hands the freed slot on.
    fn release(&mut self, permit: Permit, parked: bool, now: Instant) {
        self.admission.release(permit, parked);
        self.fill(now);
    }

    /// Hands free slots out (admission's rules): starts queued requests,
    /// gives woken sleepers their slot back; waiters whose client left are
    /// dropped, expired ones get 503.
    fn fill(&mut self, now: Instant) {
        loop {
            let conns = &self.conns;
            let filled = self.admission.fill(now, |q| {
                conns.get(q.owner.key).is_some_and(|c| {
                    c.generation == q.owner.generation
                        && c.proto.is_waiting()
                        && !c.proto.peer_closed()
                })
            });
            for q in filled.gone {
                // The client left while its request waited: nobody would
                // read the answer, so the guest never runs.
                if self
                    .conns
                    .get(q.owner.key)
                    .is_some_and(|c| c.generation == q.owner.generation)
                {
                    self.close(q.owner.key);
                }
            }
            for (q, refusal) in filled.expired {
                self.refuse(q, &refusal, now);
            }
            for (permit, q) in filled.run {
                let waited = now.saturating_duration_since(q.since);
                self.execute(q.owner, q.job, Some(permit), waited, now);
            }
            let mut lost = false;
            for (key, turn) in filled.resume {
                if !turn.grant() {
                    // It stopped waiting (its deadline passed): parked again.
                    self.admission.ungrant(&key);
                    lost = true;
                }
            }
            if !lost {
                return;
            }
        }
    }

    /// Answers 503 to queued requests that waited their full timeout.
    fn expire_waiting(&mut self, now: Instant) {
        for (q, refusal) in self.admission.expire(now) {
            if self.waits(q.owner) {
                self.refuse(q, &refusal, now);
            }
        }
    }

    /// Hands a request to a worker.
    fn execute(
        &mut self,
        owner: Owner,
        job: Request2<H>,
        permit: Option<Permit>,
        waited: Duration,
        now: Instant,
    ) {
        if self.in_flight >= self.config.max_pending {
            let refusal = Refusal::Overloaded {
                pending: self.in_flight,
            };
            match permit {
                // About an app: its own answer. Free the slot without starting
                // a waiter: under this overload it would be refused too.
                Some(permit) => {
                    self.admission.forfeit(permit);
                    let queued = Queued {
                        owner,
                        job,
                        since: now.checked_sub(waited).unwrap_or(now),
                    };
                    self.refuse(queued, &refusal, now);
                }
                None => {
                    let failure = NetFailure::Overloaded;
                    let answer = Answer {
                        response: status::response(&failure, job.request.wants_json()),
                        note: AccessNote {
                            failure: Some(format!("{failure}: {refusal}")),
                            ..AccessNote::default()
                        },
                    };
                    access_log(&job.request, &answer, now, None);
                    self.answer(owner, answer.response, job.head_only, false, now);
                }
            }
            return;
        }
        self.in_flight += 1;
        let handler = self.handler.clone();
        let tx = self.done_tx.clone();
        let waker = self.waker.clone();
        let sleepers = self.sleepers.clone();
        self.pool.execute(move || {
            let gate = permit.as_ref().map(|p| {
                Rc::new(Gate::new(
                    p.key().clone(),
                    tx.clone(),
                    waker.clone(),
                    sleepers,
                ))
            });
            let started = Instant::now();
            let Job {
                ticket,
                request,
                head_only,
                keep_alive,
            } = job;
            let early = Rc::new(EarlyHook {
                owner,
                head_only,
                keep_alive,
                tx: tx.clone(),
                waker: waker.clone(),
                sent: std::cell::Cell::new(false),
            });
            let hook: Rc<dyn crate::http::stream::Early> = early.clone();
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
                crate::http::stream::during(hook, || match &gate {
                    Some(gate) => crate::pause::during(gate.clone(), || {
                        handler.handle(ticket.ticket, &request)
                    }),
                    None => handler.handle(ticket.ticket, &request),
                })
            }));
            let answer = result.unwrap_or_else(|_| {
                tracing::error!(path = %request.path, "handler panicked");
                let failure = NetFailure::HandlerPanicked;
                Answer {
                    response: status::response(&failure, request.wants_json()),
                    note: AccessNote {
                        failure: Some(failure.to_string()),
                        ..AccessNote::default()
                    },
                }
            });
            access_log(&request, &answer, started, Some(waited));
            let parked = gate.as_ref().is_some_and(|g| g.parked());
            let response = (!early.sent.get()).then_some(answer.response);
            let _ = tx.send(Message::Done(FromWorker::Done(Done {
                owner,
                response,
                head_only,
                keep_alive,
                permit,
                parked,
            })));
            let _ = waker.wake();
        });
    }

    /// Takes in what the workers said: answers, and requests that went to
    /// sleep or woke up.
    fn collect_done(&mut self, now: Instant) {
        while let Ok(message) = self.done_rx.try_recv() {
            match message {
                Message::Done(FromWorker::Done(done)) => {
                    self.in_flight -= 1;
                    if let Some(response) = done.response {
                        self.answer(done.owner, response, done.head_only, done.keep_alive, now);
                    }
                    if let Some(permit) = done.permit {
                        self.release(permit, done.parked, now);
                    }
                }
                Message::Done(FromWorker::Early(early)) => {
                    self.answer(
                        early.owner,
                        early.response,
                        early.head_only,
                        early.keep_alive,
                        now,
                    );
                }
                Message::Done(FromWorker::Progress(owner)) => {
                    if self
                        .conns
                        .get(owner.key)
                        .is_some_and(|c| c.generation == owner.generation)
                    {
                        self.drive(owner.key, now);
                    }
                }
                Message::Park(key) => {
                    self.admission.park(&key);
                    self.fill(now);
                }
                Message::Resume(key, turn) => {
                    self.admission.resume(&key, turn, now);
                    self.fill(now);
                }
            }
        }
    }

    /// Applies deadlines: 408 for a request that stalled, close for the rest.
    fn sweep(&mut self, now: Instant) {
        let timeouts = self.config.timeouts();
        let mut expired = Vec::new();
        for (key, conn) in self.conns.iter() {
            if let Some((deadline, _)) = conn.proto.deadline(&timeouts)
                && now >= deadline
            {
                expired.push(key);
            }
        }
        for key in expired {
            let conn = &mut self.conns[key];
            match conn.proto.deadline(&timeouts) {
                Some((_, Some(error))) if !conn.proto.has_output() => {
                    let date = self.date.at(SystemTime::now());
                    conn.proto.time_out(error, date);
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

/// One access-log line for an answered request.
fn access_log(request: &Request, answer: &Answer, started: Instant, queued: Option<Duration>) {
    let note = &answer.note;
    tracing::info!(
        target: "access",
        client = %request.client,
        method = request.method.as_str(),
        path = %request.path,
        status = answer.response.status,
        bytes = answer.response.body.len(),
        duration_us = started.elapsed().as_micros() as u64,
        app = note.app.as_deref().unwrap_or("-"),
        failure = note.failure.as_deref().unwrap_or(""),
        queued_us = queued.map_or(0, |q| q.as_micros() as u64),
        instantiate_us = note.instantiate_us,
        guest_us = note.guest_us,
        peak_memory = note.peak_memory,
    );
}
