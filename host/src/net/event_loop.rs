//! The event loops: each owns its connections, drives their state machines, admits requests through the admission all loops share, answers short ones itself (`Handler::try_inline`) and hands the rest to the shared workers; the first also accepts and deals new connections out.

use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SendError, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
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

/// Most connections ready in one poll for a loop to run a short request's
/// guest itself when the server has fewer loops than cores: one loop is one
/// core, so with more connections waiting the guests go to workers on the
/// other cores while the loop reads and writes (docs/BENCHMARKS.md, "Short
/// requests on the event loop": on 2 cores, always running hello on one loop
/// gave 0.69× the throughput of handing it off). With a loop per core, every
/// core has a loop of its own and the limit does not apply.
const INLINE_MAX_READY: usize = 1;

/// What a request carries through the loop: the handler's ticket and how it runs.
pub(super) struct Ticket<T> {
    ticket: T,
    lane: Lane,
}

/// A complete request on its way to be answered.
type Request2<H> = Job<Ticket<<H as Handler>::Ticket>>;

/// What a worker or another loop tells an event loop.
enum FromWorker<T> {
    /// The request ended.
    Done(Done),
    /// The handler sent its head early; the body follows as a stream.
    Early(Early),
    /// The next pieces of a streamed body are ready on this connection.
    Progress(Owner),
    /// Another loop gave a slot to this loop's queued request: run it.
    Start(Permit, Queued<T>, Duration),
    /// Another loop found this loop's queued request past its deadline: 503.
    Refuse(Queued<T>, Refusal),
    /// A new connection the accepting loop dealt to this one.
    Adopt(mio::net::TcpStream, SocketAddr),
}

/// An event loop's mailbox, as the other loops and the workers see it.
struct Peer<T> {
    tx: Sender<Message<FromWorker<T>>>,
    waker: Arc<mio::Waker>,
    /// Connections dealt to this loop and not yet closed.
    conns: AtomicUsize,
}

/// What the event loops of one server share.
struct Shared<T> {
    /// Per-app admission, server-wide: the one place it is decided.
    admission: Mutex<Admission<Queued<T>, Arc<Turn>>>,
    pool: ThreadPool,
    /// Requests asleep with their slot lent, server-wide (their gates count).
    sleepers: Arc<AtomicUsize>,
    /// Requests at workers whose answer has not come back, server-wide
    /// (`max_pending`).
    at_workers: AtomicUsize,
    /// Every loop's mailbox, by loop number.
    peers: Vec<Peer<T>>,
    /// Whether there is a loop for each core ([`INLINE_MAX_READY`]).
    loop_per_core: bool,
}

/// A head sent before the handler finished (`http::stream`).
struct Early {
    owner: Owner,
    response: Response,
    head_only: bool,
    keep_alive: bool,
}

/// A worker's `http::stream::Early` hook for the request it runs.
struct EarlyHook<T> {
    owner: Owner,
    head_only: bool,
    keep_alive: bool,
    tx: Sender<Message<FromWorker<T>>>,
    waker: Arc<mio::Waker>,
    /// Whether the head went out early: then the handler's own answer is not sent.
    sent: std::cell::Cell<bool>,
}

impl<T: Send + 'static> crate::http::stream::Early for EarlyHook<T> {
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

/// Which connection a request belongs to (its loop, a slab key and its
/// generation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    /// The loop that owns the connection.
    lp: usize,
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

/// The running loops of a server: their threads and their wakers.
pub(super) struct Loops {
    pub threads: Vec<JoinHandle<anyhow::Result<()>>>,
    pub wakers: Vec<Arc<mio::Waker>>,
}

/// Starts `config.loops` event loops sharing one admission and one worker
/// pool; the first accepts on `listener` and deals connections out.
pub(super) fn spawn<H: Handler>(
    config: ServerConfig,
    mut listener: TcpListener,
    stop: Arc<AtomicBool>,
    handler: Arc<H>,
) -> io::Result<Loops> {
    let count = config.loops.max(1);
    let mut polls = Vec::with_capacity(count);
    let mut inboxes = Vec::with_capacity(count);
    let mut peers = Vec::with_capacity(count);
    for _ in 0..count {
        let poll = Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = channel();
        peers.push(Peer {
            tx,
            waker,
            conns: AtomicUsize::new(0),
        });
        polls.push(poll);
        inboxes.push(rx);
    }
    polls[0]
        .registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A thread per run slot, and one for each request that may sleep
    // with its slot lent (docs/ARCHITECTURE.md, "Execution model").
    let pool = threadpool::Builder::new()
        .num_threads(config.workers.max(1) + MAX_PARKED)
        .thread_name("worker".into())
        .thread_stack_size(config.worker_stack)
        .build();
    let shared = Arc::new(Shared {
        admission: Mutex::new(Admission::new(config.workers)),
        pool,
        sleepers: Arc::new(AtomicUsize::new(0)),
        at_workers: AtomicUsize::new(0),
        loop_per_core: count >= cores,
        peers,
    });
    let wakers = shared.peers.iter().map(|p| p.waker.clone()).collect();
    let mut listener = Some(listener);
    let mut threads = Vec::with_capacity(count);
    for (id, (poll, inbox)) in polls.into_iter().zip(inboxes).enumerate() {
        let mut el = EventLoop {
            id,
            config: config.clone(),
            poll,
            listener: listener.take(),
            stop: stop.clone(),
            handler: handler.clone(),
            conns: Slab::new(),
            next_generation: 0,
            shared: shared.clone(),
            inbox,
            in_flight: 0,
            ready: 0,
            scratch: vec![0; IO_CHUNK],
            date: DateCache::default(),
        };
        // Short requests' guests run on the loop (`Handler::try_inline`): it
        // needs a worker's stack.
        let thread = std::thread::Builder::new()
            .name(format!("event-loop-{id}"))
            .stack_size(config.worker_stack)
            .spawn(move || el.run());
        match thread {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                // Stop the loops already running before reporting.
                stop.store(true, Ordering::SeqCst);
                for peer in &shared.peers {
                    let _ = peer.waker.wake();
                }
                for thread in threads {
                    let _ = thread.join();
                }
                return Err(e);
            }
        }
    }
    Ok(Loops { threads, wakers })
}

struct EventLoop<H: Handler> {
    /// This loop's number: its place in `shared.peers`.
    id: usize,
    config: ServerConfig,
    poll: Poll,
    /// The listener, on the first loop only; `None` once shutdown has begun.
    listener: Option<TcpListener>,
    stop: Arc<AtomicBool>,
    handler: Arc<H>,
    conns: Slab<Conn<Ticket<H::Ticket>>>,
    next_generation: u64,
    shared: Arc<Shared<H::Ticket>>,
    /// What workers and the other loops sent this loop.
    inbox: Receiver<Message<FromWorker<H::Ticket>>>,
    /// This loop's requests at workers whose answer has not come back.
    in_flight: usize,
    /// Connections that were ready in the current poll.
    ready: usize,
    /// Read buffer shared by all connections (reads are copied out at once).
    scratch: Vec<u8>,
    date: DateCache,
}

impl<H: Handler> EventLoop<H> {
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
                Ok((stream, peer)) => {
                    let peers = &self.shared.peers;
                    let open: usize = peers.iter().map(|p| p.conns.load(Ordering::SeqCst)).sum();
                    if open >= self.config.max_connections {
                        tracing::warn!(%peer, "connection limit reached; closing new connection");
                        continue;
                    }
                    // To the loop with the fewest connections, this one on a tie.
                    let to = (0..peers.len())
                        .min_by_key(|&i| (peers[i].conns.load(Ordering::SeqCst), i != self.id))
                        .unwrap_or(self.id);
                    peers[to].conns.fetch_add(1, Ordering::SeqCst);
                    if to == self.id {
                        self.adopt(stream, peer, now);
                    } else {
                        self.post(to, FromWorker::Adopt(stream, peer));
                    }
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

    /// Takes a new connection in (counted in this loop's `conns` already).
    fn adopt(&mut self, mut stream: mio::net::TcpStream, peer: SocketAddr, now: Instant) {
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            Token(key + FIRST_CONN),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            tracing::warn!(%peer, "cannot register connection: {e}");
            self.shared.peers[self.id]
                .conns
                .fetch_sub(1, Ordering::SeqCst);
            return;
        }
        self.next_generation += 1;
        entry.insert(Conn::new(stream, peer, self.next_generation, now));
        self.drive(key, now);
    }

    /// Sends a message to another loop. If that loop has stopped (shutdown
    /// past its grace period), a slot it would have used is given back.
    fn post(&mut self, to: usize, message: FromWorker<H::Ticket>) {
        let peer = &self.shared.peers[to];
        match peer.tx.send(Message::Done(message)) {
            Ok(()) => {
                let _ = peer.waker.wake();
            }
            Err(SendError(Message::Done(FromWorker::Start(permit, _, _)))) => {
                self.admission().forfeit(permit);
            }
            Err(SendError(Message::Done(FromWorker::Adopt(..)))) => {
                peer.conns.fetch_sub(1, Ordering::SeqCst);
            }
            Err(_) => {}
        }
    }

    /// The shared admission (a panic elsewhere while holding it leaves its
    /// counts whole: every method finishes its update before it returns).
    fn admission(&self) -> MutexGuard<'_, Admission<Queued<H::Ticket>, Arc<Turn>>> {
        self.shared
            .admission
            .lock()
            .unwrap_or_else(|e| e.into_inner())
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
            lp: self.id,
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
            Lane::Worker => match self.try_inline(&job.ticket.ticket, &job.request) {
                Some(answer) => {
                    access_log(&job.request, &answer, now, None);
                    self.answer(owner, answer.response, job.head_only, job.keep_alive, now);
                }
                None => self.execute(owner, job, None, Duration::ZERO, now),
            },
            Lane::Admitted(rule) => {
                let queued = Queued {
                    owner,
                    job,
                    since: now,
                };
                let admitted = self.admission().admit(&rule, queued, now);
                match admitted {
                    Admit::Run(permit, q) => {
                        match self.try_inline(&q.job.ticket.ticket, &q.job.request) {
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
                        }
                    }
                    Admit::Queued => {}
                    Admit::Refused(q, refusal) => self.refuse(q, &refusal, now),
                }
            }
        }
    }

    /// Runs a request of the worker lane, or an admitted one, on the loop if
    /// the handler finds it short (no hand-off to a worker and back);
    /// `None`: hand it to a worker.
    fn try_inline(&self, ticket: &H::Ticket, request: &Request) -> Option<Answer> {
        if !self.config.inline || (self.ready > INLINE_MAX_READY && !self.shared.loop_per_core) {
            return None;
        }
        let handler = &self.handler;
        std::panic::catch_unwind(AssertUnwindSafe(|| handler.try_inline(ticket, request)))
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
        self.admission().release(permit, parked);
        self.fill(now);
    }

    /// Hands free slots out (admission's rules): starts queued requests
    /// (another loop's through its mailbox), gives woken sleepers their slot
    /// back; waiters whose client left are dropped, expired ones get 503.
    fn fill(&mut self, now: Instant) {
        loop {
            let filled = {
                let conns = &self.conns;
                let id = self.id;
                // Another loop's waiters count as alive here; their loop
                // checks when the slot arrives (`FromWorker::Start`).
                self.admission()
                    .fill(now, |q| q.owner.lp != id || alive(conns, q.owner))
            };
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
                if q.owner.lp == self.id {
                    self.refuse(q, &refusal, now);
                } else {
                    self.post(q.owner.lp, FromWorker::Refuse(q, refusal));
                }
            }
            for (permit, q) in filled.run {
                let waited = now.saturating_duration_since(q.since);
                if q.owner.lp == self.id {
                    self.execute(q.owner, q.job, Some(permit), waited, now);
                } else {
                    self.post(q.owner.lp, FromWorker::Start(permit, q, waited));
                }
            }
            let mut lost = false;
            for (key, turn) in filled.resume {
                if !turn.grant() {
                    // It stopped waiting (its deadline passed): parked again.
                    self.admission().ungrant(&key);
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
        let expired = self.admission().expire(now);
        for (q, refusal) in expired {
            if q.owner.lp != self.id {
                self.post(q.owner.lp, FromWorker::Refuse(q, refusal));
            } else if self.waits(q.owner) {
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
        let max_pending = self.config.max_pending;
        let taken = self
            .shared
            .at_workers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max_pending).then_some(n + 1)
            });
        if let Err(pending) = taken {
            let refusal = Refusal::Overloaded { pending };
            match permit {
                // About an app: its own answer. Free the slot without starting
                // a waiter: under this overload it would be refused too.
                Some(permit) => {
                    self.admission().forfeit(permit);
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
        let me = &self.shared.peers[self.id];
        let tx = me.tx.clone();
        let waker = me.waker.clone();
        let sleepers = self.shared.sleepers.clone();
        self.shared.pool.execute(move || {
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
        while let Ok(message) = self.inbox.try_recv() {
            match message {
                Message::Done(FromWorker::Done(done)) => {
                    self.in_flight -= 1;
                    self.shared.at_workers.fetch_sub(1, Ordering::SeqCst);
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
                Message::Done(FromWorker::Start(permit, q, waited)) => {
                    if alive(&self.conns, q.owner) {
                        self.execute(q.owner, q.job, Some(permit), waited, now);
                    } else {
                        // The client left while its request waited (see
                        // `fill`): the guest never runs.
                        if self
                            .conns
                            .get(q.owner.key)
                            .is_some_and(|c| c.generation == q.owner.generation)
                        {
                            self.close(q.owner.key);
                        }
                        self.release(permit, false, now);
                    }
                }
                Message::Done(FromWorker::Refuse(q, refusal)) => {
                    if self.waits(q.owner) {
                        self.refuse(q, &refusal, now);
                    }
                }
                Message::Done(FromWorker::Adopt(stream, peer)) => {
                    self.adopt(stream, peer, now);
                }
                Message::Park(key) => {
                    self.admission().park(&key);
                    self.fill(now);
                }
                Message::Resume(key, turn) => {
                    self.admission().resume(&key, turn, now);
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
            self.shared.peers[self.id]
                .conns
                .fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Whether a connection of this loop still waits for the answer to the
/// request it sent, and its client has not left.
fn alive<T>(conns: &Slab<Conn<T>>, owner: Owner) -> bool {
    conns.get(owner.key).is_some_and(|c| {
        c.generation == owner.generation && c.proto.is_waiting() && !c.proto.peer_closed()
    })
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
