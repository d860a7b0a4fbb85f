//! One HTTP/1.1 connection's protocol state machine, without a socket: bytes and `Instant`s in, requests and response bytes out.
//!
//! The network layer owns the socket: it hands received bytes to
//! [`Connection::received`], asks [`Connection::process`] what to do next,
//! answers each [`Job`] with [`Connection::respond`], and writes what
//! [`Connection::front_output`] holds. Everything this file decides (framing,
//! pipelining, `100-continue`, body limits, deadlines, lingering close) is
//! therefore testable with plain byte strings, as its tests do, in the manner
//! of hyper's `proto/h1`.
//!
//! The type parameter `T` is what the layer above attaches to a request when
//! its head is routed (its "ticket"); this layer only carries it along.

use std::collections::VecDeque;
use std::fs::File;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::http::chunked::ChunkedDecoder;
use crate::http::error::ProtocolError;
use crate::http::parse::{self, Framing, HeadParse, RequestHead};
use crate::http::request::wants_json;
use crate::http::stream::{Next, StreamBody};
use crate::http::{Body, Method, Request, Response};
use crate::limits::{IO_CHUNK, LINGER_BYTES, LINGER_TIME, MAX_HEADER_SECTION};

/// Most unprocessed bytes buffered while a request is being handled: enough
/// for a pipelined head or two; beyond it the host stops reading (backpressure).
pub const MAX_BUFFERED_AHEAD: usize = MAX_HEADER_SECTION + IO_CHUNK;

/// The interim response sent to a client that asked for `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Most bytes reserved for a body before any of it arrives: the announced
/// `Content-Length` is the client's word, so a larger body grows its buffer
/// as its bytes come instead of reserving the whole (found by fuzzing: an
/// announced length near `u64::MAX` with no limit aborted on allocation).
const MAX_BODY_RESERVE: usize = 64 * 1024;

/// The connection's deadlines (defaults in `limits.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Time from a request's first byte to the end of its head.
    pub header: Duration,
    /// Longest wait for the next byte of a body.
    pub body: Duration,
    /// Longest idle time between requests on a keep-alive connection.
    pub idle: Duration,
    /// Longest wait for a client to accept more response bytes.
    pub write: Duration,
}

/// What the layer above decides when a head arrives: its ticket for the
/// request and the most body bytes the request may carry.
pub struct Routed<T> {
    pub ticket: T,
    pub body_limit: u64,
}

/// Where a connection is in its request/response cycle.
enum Phase<T> {
    /// Waiting for, or reading, a request head.
    Head,
    /// Reading the body of a routed request.
    Body(Box<BodyState<T>>),
    /// The layer above is producing the response.
    Waiting,
    /// The response is written; reading and discarding until the client closes.
    Linger { until: Instant, discarded: usize },
}

/// A request whose body is being read.
struct BodyState<T> {
    head: RequestHead,
    ticket: T,
    body: Vec<u8>,
    progress: BodyProgress,
}

enum BodyProgress {
    /// Bytes still to read of a `Content-Length` body.
    Remaining(u64),
    /// A chunked body.
    Chunked(ChunkedDecoder),
}

/// A complete request for the layer above.
pub struct Job<T> {
    pub ticket: T,
    pub request: Request,
    /// HEAD: send the head of the response only.
    pub head_only: bool,
    /// Whether the connection may continue after this response.
    pub keep_alive: bool,
}

/// What [`Connection::process`] decided.
pub enum Event<T> {
    /// A complete request: answer it with [`Connection::respond`].
    Request(Box<Job<T>>),
    /// Output was queued (an interim or error response); write it.
    Output,
    /// More input is needed.
    NeedInput,
    /// Nothing to do until the request in progress is answered.
    Waiting,
    /// Close the connection now.
    Close,
}

/// A file body sent after the head: the file, the next offset, bytes left.
#[derive(Debug)]
pub struct FileBody {
    pub file: File,
    pub offset: u64,
    pub left: u64,
}

/// One response (or interim response) being written, in order.
#[derive(Debug)]
pub struct Outgoing {
    /// The serialized head.
    pub head: Vec<u8>,
    /// An in-memory body.
    pub body: Vec<u8>,
    /// Bytes of head+body already written.
    pub written: usize,
    /// A file body, written after `head` and `body`.
    pub file: Option<FileBody>,
    /// A body still being made by the handler (`http::stream`), written
    /// after `head` and `body` as its pieces arrive ([`Connection::refill`]).
    pub stream: Option<StreamBody>,
}

/// What [`Connection::refill`] found for the front output.
#[derive(Debug, PartialEq, Eq)]
pub enum Refill {
    /// Bytes are queued in the front output: write them.
    More,
    /// The handler has not made the next piece yet: wait for its wake.
    Pending,
    /// The front output has no stream (any more).
    Done,
    /// The stream ended before the body did: close the connection.
    Broken,
}

impl Outgoing {
    /// The unwritten parts of the head and the in-memory body.
    pub fn unwritten(&self) -> (&[u8], &[u8]) {
        if self.written < self.head.len() {
            (&self.head[self.written..], &self.body[..])
        } else {
            let at = (self.written - self.head.len()).min(self.body.len());
            (&[][..], &self.body[at..])
        }
    }

    /// Whether the head and in-memory body are written.
    pub fn fixed_done(&self) -> bool {
        self.written >= self.head.len() + self.body.len()
    }
}

/// Why lingering ends early.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("lingering client kept sending")]
pub struct LingerOverflow;

/// One connection's protocol state.
pub struct Connection<T> {
    /// The peer, for logs and for the request handed up.
    peer: SocketAddr,
    /// Received bytes not yet consumed.
    rbuf: Vec<u8>,
    /// How far `rbuf` is consumed.
    rpos: usize,
    phase: Phase<T>,
    /// Queued output, written in order.
    out: VecDeque<Outgoing>,
    /// Close (after lingering) once `out` is written.
    close_after_write: bool,
    /// The peer has shut down its side.
    peer_closed: bool,
    /// When the head now being read began to arrive.
    head_started: Option<Instant>,
    /// Last time bytes moved in either direction.
    last_progress: Instant,
    /// Responses queued on this connection.
    served: u64,
}

impl<T> Connection<T> {
    pub fn new(peer: SocketAddr, now: Instant) -> Connection<T> {
        Connection {
            peer,
            rbuf: Vec::new(),
            rpos: 0,
            phase: Phase::Head,
            out: VecDeque::new(),
            close_after_write: false,
            peer_closed: false,
            head_started: None,
            last_progress: now,
            served: 0,
        }
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn unread(&self) -> &[u8] {
        &self.rbuf[self.rpos..]
    }

    /// Responses queued so far.
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Whether the connection holds no request in progress and no output, so
    /// it may be closed at shutdown or on idle timeout without losing anything.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head) && self.out.is_empty() && self.unread().is_empty()
    }

    /// Bytes received and not yet consumed (a progress measure).
    pub fn buffered(&self) -> usize {
        self.rbuf.len() - self.rpos
    }

    /// Whether a request is with the layer above, unanswered.
    pub fn is_waiting(&self) -> bool {
        matches!(self.phase, Phase::Waiting)
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Whether the peer has shut down its side.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Whether the connection takes more input now: false once enough is
    /// buffered (backpressure) or the peer has closed.
    pub fn wants_input(&self) -> bool {
        let limit = match self.phase {
            Phase::Linger { .. } => usize::MAX,
            Phase::Head | Phase::Body(_) => MAX_BUFFERED_AHEAD + IO_CHUNK,
            Phase::Waiting => MAX_BUFFERED_AHEAD,
        };
        !self.peer_closed && self.unread().len() < limit
    }

    /// Takes bytes the peer sent. While lingering they are discarded, and a
    /// client that keeps sending is refused.
    pub fn received(&mut self, bytes: &[u8], now: Instant) -> Result<(), LingerOverflow> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.last_progress = now;
        if let Phase::Linger { discarded, .. } = &mut self.phase {
            *discarded += bytes.len();
            return if *discarded > LINGER_BYTES {
                Err(LingerOverflow)
            } else {
                Ok(())
            };
        }
        if self.rpos > 0 && self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        }
        self.rbuf.extend_from_slice(bytes);
        Ok(())
    }

    /// The peer shut down its sending side (a read returned 0).
    pub fn read_closed(&mut self) {
        self.peer_closed = true;
    }

    /// Advances the request state machine over the buffered input. `route`
    /// is called once per request head, before any body byte is read; `date`
    /// is the current HTTP date, for error answers.
    pub fn process(
        &mut self,
        route: impl FnOnce(&RequestHead) -> Routed<T>,
        now: Instant,
        date: &str,
    ) -> Event<T> {
        // Compact the buffer once its consumed prefix dominates.
        if self.rpos > 0 && self.rpos >= self.rbuf.len() / 2 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        match &mut self.phase {
            Phase::Waiting => Event::Waiting,
            Phase::Linger { .. } => {
                if self.peer_closed {
                    Event::Close
                } else {
                    Event::NeedInput
                }
            }
            Phase::Head => self.process_head(route, now, date),
            Phase::Body(_) => self.process_body(date),
        }
    }

    fn more_or_close(&self) -> Event<T> {
        if self.peer_closed {
            Event::Close
        } else {
            Event::NeedInput
        }
    }

    fn process_head(
        &mut self,
        route: impl FnOnce(&RequestHead) -> Routed<T>,
        now: Instant,
        date: &str,
    ) -> Event<T> {
        if self.close_after_write {
            // A response that closes the connection is queued: read no further.
            return Event::Waiting;
        }
        if self.unread().is_empty() {
            self.head_started = None;
            return self.more_or_close();
        }
        self.head_started.get_or_insert(now);
        let (head, len) = match parse::parse_head(self.unread()) {
            Ok(HeadParse::Partial) => return self.more_or_close(),
            Ok(HeadParse::Complete { head, len }) => (head, len),
            Err(e) => return self.fail(ProtocolError::Parse(e), false, date),
        };
        self.rpos += len;
        self.head_started = None;
        let Routed { ticket, body_limit } = route(&head);
        let progress = match head.framing {
            Framing::None => None,
            Framing::Length(n) if n > body_limit => {
                let json = wants_json(&head.headers);
                let error = ProtocolError::BodyTooLarge {
                    len: n,
                    limit: body_limit,
                };
                return self.fail(error, json, date);
            }
            Framing::Length(n) => Some(BodyProgress::Remaining(n)),
            Framing::Chunked => Some(BodyProgress::Chunked(ChunkedDecoder::new(body_limit))),
        };
        let Some(progress) = progress else {
            return self.complete(head, ticket, Vec::new());
        };
        if head.expect_continue && self.unread().is_empty() {
            self.queue_raw(CONTINUE.to_vec());
        }
        let capacity = match &progress {
            BodyProgress::Remaining(n) => usize::try_from(*n)
                .unwrap_or(usize::MAX)
                .min(MAX_BODY_RESERVE),
            BodyProgress::Chunked(_) => 0,
        };
        self.phase = Phase::Body(Box::new(BodyState {
            head,
            ticket,
            body: Vec::with_capacity(capacity),
            progress,
        }));
        match self.process_body(date) {
            Event::NeedInput if self.has_output() => Event::Output,
            other => other,
        }
    }

    fn process_body(&mut self, date: &str) -> Event<T> {
        let Phase::Body(state) = &mut self.phase else {
            return Event::Waiting;
        };
        let input = &self.rbuf[self.rpos..];
        let done = match &mut state.progress {
            BodyProgress::Remaining(left) => {
                let take = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
                state.body.extend_from_slice(&input[..take]);
                self.rpos += take;
                *left -= take as u64;
                *left == 0
            }
            BodyProgress::Chunked(decoder) => match decoder.decode(input, &mut state.body) {
                Ok(used) => {
                    self.rpos += used;
                    decoder.is_done()
                }
                Err(e) => {
                    let json = wants_json(&state.head.headers);
                    return self.fail(ProtocolError::Chunked(e), json, date);
                }
            },
        };
        if !done {
            return self.more_or_close();
        }
        let Phase::Body(state) = std::mem::replace(&mut self.phase, Phase::Head) else {
            return Event::Close;
        };
        let BodyState {
            head, ticket, body, ..
        } = *state;
        self.complete(head, ticket, body)
    }

    fn complete(&mut self, head: RequestHead, ticket: T, body: Vec<u8>) -> Event<T> {
        self.phase = Phase::Waiting;
        let head_only = head.method == Method::Head;
        let keep_alive = head.keep_alive && !self.peer_closed;
        let request = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            version: head.version,
            headers: head.headers,
            body,
            client: self.peer,
        };
        Event::Request(Box::new(Job {
            ticket,
            request,
            head_only,
            keep_alive,
        }))
    }

    /// Queues the answer to a protocol error and closes after it.
    fn fail(&mut self, error: ProtocolError, wants_json: bool, date: &str) -> Event<T> {
        tracing::info!(target: "access", client = %self.peer, status = error.status(), "rejected: {error}");
        let resp = error.response(wants_json);
        self.phase = Phase::Waiting;
        self.respond(resp, false, false, date);
        Event::Output
    }

    /// Queues a timeout answer (408) for the request in progress.
    pub fn time_out(&mut self, error: ProtocolError, date: &str) {
        self.fail(error, false, date);
    }

    /// Queues the answer to the request in progress; `keep_alive` false
    /// closes the connection after it.
    pub fn respond(&mut self, resp: Response, head_only: bool, keep_alive: bool, date: &str) {
        let keep_alive = keep_alive && !self.peer_closed;
        let mut head = Vec::with_capacity(256);
        resp.write_head(keep_alive, date, &mut head);
        let forbids_body = Response::status_forbids_body(resp.status);
        let (body, file, stream) = match resp.body {
            _ if head_only || forbids_body => (Vec::new(), None, None),
            Body::Empty => (Vec::new(), None, None),
            Body::Bytes(b) => (b, None, None),
            Body::File { file, offset, len } => (
                Vec::new(),
                Some(FileBody {
                    file,
                    offset,
                    left: len,
                }),
                None,
            ),
            Body::Stream(s) => (Vec::new(), None, Some(s)),
        };
        // The request stays with the handler until its stream ends: the
        // next pipelined request waits (one request at a worker at a time).
        let streaming = stream.is_some();
        self.out.push_back(Outgoing {
            head,
            body,
            written: 0,
            file,
            stream,
        });
        self.served += 1;
        if !keep_alive {
            self.close_after_write = true;
        }
        if matches!(self.phase, Phase::Waiting) && !streaming {
            self.phase = Phase::Head;
        }
    }

    /// Takes the next pieces of the front output's stream, once its queued
    /// bytes are written; the end of the stream ends the request.
    pub fn refill(&mut self) -> Refill {
        let Some(o) = self.out.front_mut() else {
            return Refill::Done;
        };
        if !o.fixed_done() {
            return Refill::More;
        }
        let Some(stream) = &mut o.stream else {
            return Refill::Done;
        };
        let (bytes, ended) = match stream.take_ready() {
            Next::Bytes(b) => (b, false),
            Next::Done(b) => (b, true),
            Next::Pending => return Refill::Pending,
            Next::Broken => {
                o.stream = None;
                self.close_after_write = true;
                return Refill::Broken;
            }
        };
        o.head = Vec::new();
        o.body = bytes;
        o.written = 0;
        if ended {
            o.stream = None;
            if matches!(self.phase, Phase::Waiting) {
                self.phase = Phase::Head;
            }
        }
        Refill::More
    }

    /// Whether all that is queued is written and the rest waits on the
    /// handler's stream, which the app's `wall_time` bounds, not the client.
    fn waits_on_stream(&self) -> bool {
        self.out.len() == 1
            && self
                .out
                .front()
                .is_some_and(|o| o.stream.is_some() && o.fixed_done() && o.file.is_none())
    }

    fn queue_raw(&mut self, bytes: Vec<u8>) {
        self.out.push_back(Outgoing {
            head: bytes,
            body: Vec::new(),
            written: 0,
            file: None,
            stream: None,
        });
    }

    /// The output to write next, if any.
    pub fn front_output(&mut self) -> Option<&mut Outgoing> {
        self.out.front_mut()
    }

    /// Records that output bytes moved (for the write deadline).
    pub fn wrote(&mut self, now: Instant) {
        self.last_progress = now;
    }

    /// Drops the front output once it is completely written.
    pub fn pop_output(&mut self) {
        self.out.pop_front();
    }

    /// Called when all queued output is written. Returns true when the
    /// connection is to close: the caller shuts down its writing side, and
    /// the connection lingers, discarding input, so that the client reads the
    /// response instead of a reset.
    pub fn output_drained(&mut self, now: Instant) -> bool {
        if self.close_after_write && !matches!(self.phase, Phase::Linger { .. }) {
            self.phase = Phase::Linger {
                until: now + LINGER_TIME,
                discarded: 0,
            };
            self.rbuf = Vec::new();
            self.rpos = 0;
            return true;
        }
        false
    }

    /// Whether the connection is lingering after its last response.
    pub fn linger_until(&self) -> Option<Instant> {
        match self.phase {
            Phase::Linger { until, .. } => Some(until),
            _ => None,
        }
    }

    /// The deadline for the current phase, and the error to answer with when
    /// it passes while a request was under way (`None`: just close).
    pub fn deadline(&self, timeouts: &Timeouts) -> Option<(Instant, Option<ProtocolError>)> {
        if let Some(until) = self.linger_until() {
            return Some((until, None));
        }
        if self.has_output() && !self.waits_on_stream() {
            return Some((self.last_progress + timeouts.write, None));
        }
        match &self.phase {
            Phase::Waiting | Phase::Linger { .. } => None,
            Phase::Body(_) => Some((
                self.last_progress + timeouts.body,
                Some(ProtocolError::BodyTimeout),
            )),
            Phase::Head => match self.head_started {
                Some(start) if !self.unread().is_empty() => {
                    Some((start + timeouts.header, Some(ProtocolError::HeaderTimeout)))
                }
                _ => Some((self.last_progress + timeouts.idle, None)),
            },
        }
    }
}

#[cfg(test)]
mod tests;
