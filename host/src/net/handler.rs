//! What the network layer asks of the layer above: route a head, answer a request, answer a refusal. The network layer never names an app.

use std::sync::Arc;
use std::time::Duration;

use crate::http::parse::RequestHead;
use crate::http::{Request, Response};

/// How a request is to be run once its body is in.
#[derive(Debug, Clone)]
pub enum Lane {
    /// Cheap and never blocking (a 404, a refused parameter): answered on the
    /// event loop, with no trip through the worker pool.
    Inline,
    /// On a worker, with no per-app admission (static files), unless the
    /// loop answers it first ([`Handler::try_inline`]).
    Worker,
    /// On a worker, once admitted under its app's concurrency rule.
    Admitted(Rule),
}

/// One app's admission rule: how many of its requests may run at once, how
/// many may wait, and for how long.
#[derive(Debug, Clone)]
pub struct Rule {
    /// What requests share the rule: the app's name.
    pub key: Arc<str>,
    pub max_concurrency: u32,
    pub max_queue: u32,
    pub queue_timeout: Duration,
}

/// The layer above's decision about a head, taken before any body byte is read.
pub struct Plan<T> {
    /// Travels with the request to [`Handler::handle`] or [`Handler::refuse`].
    pub ticket: T,
    /// Most body bytes the request may carry (413 beyond).
    pub body_limit: u64,
    pub lane: Lane,
}

/// Why the network layer did not run an admitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its app has `running` requests running and a full queue of `queue`.
    QueueFull { running: u32, queue: u32 },
    /// It waited its app's whole `queue_timeout` without a slot freeing.
    TimedOut { waited: Duration },
    /// The server holds `max_pending` requests for workers already.
    Overloaded { pending: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::QueueFull { running, queue } => {
                write!(f, "{running} running, queue of {queue} full")
            }
            Refusal::TimedOut { waited } => write!(f, "no slot free after waiting {waited:?}"),
            Refusal::Overloaded { pending } => {
                write!(f, "too many requests in progress ({pending} at workers)")
            }
        }
    }
}

/// A response and what the access log should say about it.
pub struct Answer {
    pub response: Response,
    pub note: AccessNote,
}

/// The layer above's part of an access-log line.
#[derive(Debug, Default, Clone)]
pub struct AccessNote {
    /// The app that answered, if any.
    pub app: Option<Arc<str>>,
    /// Why the request did not get a handler's answer, if it did not.
    pub failure: Option<String>,
    /// Microseconds to instantiate the guest.
    pub instantiate_us: u64,
    /// Microseconds the guest ran.
    pub guest_us: u64,
    /// Peak guest memory in bytes.
    pub peak_memory: u64,
}

impl Answer {
    pub fn plain(response: Response) -> Answer {
        Answer {
            response,
            note: AccessNote::default(),
        }
    }
}

/// The application, as the network layer sees it.
pub trait Handler: Send + Sync + 'static {
    /// What the handler attaches to a request when its head is routed.
    type Ticket: Send + 'static;

    /// Routes a head, on the event loop: must not block.
    fn plan(&self, head: &RequestHead) -> Plan<Self::Ticket>;

    /// Answers a complete request: on a worker, or on the event loop for
    /// [`Lane::Inline`].
    fn handle(&self, ticket: Self::Ticket, request: &Request) -> Answer;

    /// Answers a request of [`Lane::Worker`] or an admitted one on the event
    /// loop, if it is short: the handler gives it up (`None`, leaving
    /// nothing behind) as soon as it would block or run long, and the
    /// request then goes to a worker and [`Handler::handle`]. Bounded: the loop waits at most the handler's
    /// inline budget (`sandbox::INLINE_BUDGET` plus one epoch tick).
    fn try_inline(&self, ticket: &Self::Ticket, request: &Request) -> Option<Answer> {
        let _ = (ticket, request);
        None
    }

    /// Answers a request its app's admission refused, on the event loop
    /// (cheap: the app's own 503 page, its counters).
    fn refuse(&self, ticket: Self::Ticket, request: &Request, refusal: &Refusal) -> Answer;
}
