//! The network layer: event-loop threads (one per core) each own their sockets, drive each connection's protocol state machine, admit requests through one shared admission and answer short ones themselves; a bounded worker pool runs the rest of the handler's work.
//!
//! It knows the application only as a [`Handler`]: it never names an app.

pub mod admission;
mod event_loop;
mod gate;
pub mod handler;
mod socket;
pub mod status;

pub use handler::{AccessNote, Answer, Handler, Lane, Plan, Refusal, Rule};

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;

use crate::http::conn::Timeouts;
use crate::limits;

/// Settings of the connection layer. Defaults come from `limits.rs`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Threads that run handlers.
    pub workers: usize,
    /// Event-loop threads (connections are dealt out among them).
    pub loops: usize,
    /// Most open connections.
    pub max_connections: usize,
    /// Most requests queued for or running on workers.
    pub max_pending: usize,
    /// Time from a request's first byte to the end of its head.
    pub header_timeout: Duration,
    /// Longest wait for the next byte of a body.
    pub body_timeout: Duration,
    /// Longest idle time between requests on a keep-alive connection.
    pub idle_timeout: Duration,
    /// Longest wait for a client to accept more response bytes.
    pub write_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Stack size of each worker thread (the handler's needs: Wasm guests
    /// run on the worker's stack), and of the event loop's.
    pub worker_stack: usize,
    /// Whether admitted requests may run on the event loop first
    /// ([`Handler::try_inline`]).
    pub inline: bool,
}

impl ServerConfig {
    pub fn new(listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            listen,
            workers: default_workers(),
            loops: default_loops(),
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            max_pending: limits::DEFAULT_MAX_PENDING,
            header_timeout: limits::DEFAULT_HEADER_TIMEOUT,
            body_timeout: limits::DEFAULT_BODY_TIMEOUT,
            idle_timeout: limits::DEFAULT_IDLE_TIMEOUT,
            write_timeout: limits::DEFAULT_WRITE_TIMEOUT,
            shutdown_grace: limits::SHUTDOWN_GRACE,
            worker_stack: DEFAULT_WORKER_STACK,
            inline: true,
        }
    }

    /// The connection deadlines.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header: self.header_timeout,
            body: self.body_timeout,
            idle: self.idle_timeout,
            write: self.write_timeout,
        }
    }
}

/// Default stack of a worker thread: room for a guest's Wasm stack (1 MiB
/// at most) plus the host frames below it.
pub const DEFAULT_WORKER_STACK: usize = 8 * 1024 * 1024;

/// Eight workers per core, at least 16. A request holds its worker for its
/// whole run, storage waits included, and the hand-off between the event
/// loop and the workers only stays busy with many requests in flight: on 2
/// cores, hello served 30k req/s with 4 workers and 50k with 16
/// (docs/BENCHMARKS.md). An idle worker costs a parked thread.
pub fn default_workers() -> usize {
    (std::thread::available_parallelism().map_or(2, |n| n.get()) * 8).max(16)
}

/// One event loop per core: each runs short guests itself, so that a core
/// serves HTTP without handing requests to another thread
/// (docs/ARCHITECTURE.md, "Event loops").
pub fn default_loops() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    wakers: Arc<[Arc<mio::Waker>]>,
    threads: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl ServerHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks the server to stop: it stops accepting, finishes in-flight requests
    /// (bounded by the grace period) and returns.
    pub fn begin_shutdown(&self) {
        self.stopper().stop();
    }

    /// Stops the server and waits for it.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.begin_shutdown();
        self.join_inner()
    }

    /// Waits until the server stops (after `begin_shutdown` from elsewhere).
    pub fn join(mut self) -> anyhow::Result<()> {
        self.join_inner()
    }

    /// A handle that can request shutdown from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            stop: self.stop.clone(),
            wakers: self.wakers.clone(),
        }
    }

    /// Waits for every loop; the first failure is the result.
    fn join_inner(&mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        for t in self.threads.drain(..) {
            let ended = t
                .join()
                .map_err(|_| anyhow::anyhow!("an event loop panicked"))
                .and_then(|r| r);
            if result.is_ok() {
                result = ended;
            }
        }
        result
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.begin_shutdown();
            let _ = self.join_inner();
        }
    }
}

/// Requests shutdown of a server from any thread (a signal handler thread, say).
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    wakers: Arc<[Arc<mio::Waker>]>,
}

impl Stopper {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for waker in self.wakers.iter() {
            let _ = waker.wake();
        }
    }
}

/// Binds the listener and starts the event loops and workers.
pub fn start<H: Handler>(config: ServerConfig, handler: Arc<H>) -> anyhow::Result<ServerHandle> {
    let listener = std::net::TcpListener::bind(config.listen).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            anyhow::anyhow!("cannot listen on {}: address already in use", config.listen)
        } else {
            anyhow::anyhow!("cannot listen on {}: {e}", config.listen)
        }
    })?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let loops = event_loop::spawn(
        config,
        mio::net::TcpListener::from_std(listener),
        stop.clone(),
        handler,
    )
    .context("starting the event loops")?;
    Ok(ServerHandle {
        addr,
        stop,
        wakers: loops.wakers.into(),
        threads: loops.threads,
    })
}
