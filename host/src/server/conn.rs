//! One client connection: its buffers, where it is in the request/response cycle, and the transitions between.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;

use crate::dispatch::{Dispatcher, Prepared};
use crate::http::chunked::ChunkedDecoder;
use crate::http::parse::{self, Framing, HeadParse, RequestHead};
use crate::http::request::wants_json;
use crate::http::{Body, Method, Request, Response};
use crate::limits::{IO_CHUNK, LINGER_BYTES, LINGER_TIME, MAX_HEADER_SECTION};
use crate::status::{self, Failure};

use super::ServerConfig;

/// Most unprocessed bytes buffered while a request is being handled: enough
/// for a pipelined head or two; beyond it the host stops reading (backpressure).
const MAX_BUFFERED_AHEAD: usize = MAX_HEADER_SECTION + IO_CHUNK;

/// The interim response sent to a client that asked for `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Most bytes asked of one `sendfile` call: bounds the `usize` conversion;
/// the socket buffer takes far less, and the call returns what fit.
const SENDFILE_CHUNK: u64 = 1024 * 1024;

/// Where a connection is in its request/response cycle.
enum Phase {
    /// Waiting for, or reading, a request head.
    Head,
    /// Reading the body of a routed request.
    Body(Box<BodyState>),
    /// A worker is producing the response.
    Waiting,
    /// The response is written; reading and discarding until the client closes.
    Linger { until: Instant, discarded: usize },
}

/// A request whose body is being read.
struct BodyState {
    head: RequestHead,
    prepared: Prepared,
    body: Vec<u8>,
    progress: BodyProgress,
}

enum BodyProgress {
    /// Bytes still to read of a `Content-Length` body.
    Remaining(u64),
    /// A chunked body.
    Chunked(ChunkedDecoder),
}

/// A request ready for a worker.
pub(super) struct Job {
    pub prepared: Prepared,
    pub request: Request,
    /// HEAD: send the head of the response only.
    pub head_only: bool,
    /// Whether the connection may continue after this response.
    pub keep_alive: bool,
}

/// What `process` decided.
pub(super) enum Progress {
    /// A complete request for a worker.
    Dispatch(Box<Job>),
    /// Output was queued (an interim or error response); flush it.
    Output,
    /// More input is needed.
    NeedInput,
    /// Nothing to do until the worker answers.
    Waiting,
    /// Close the connection now.
    Close,
}

/// The response being written.
struct Outgoing {
    /// The serialized head (and, for small bodies, nothing else).
    head: Vec<u8>,
    /// An in-memory body.
    body: Vec<u8>,
    /// Bytes of head+body already written.
    written: usize,
    /// A file body sent after `head`/`body`: (file, next offset, bytes left).
    file: Option<(File, u64, u64)>,
}

pub(super) struct Conn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Distinguishes this connection from a later one reusing its slab slot,
    /// so that a late worker result is never delivered to the wrong client.
    pub generation: u64,
    /// Received bytes not yet consumed.
    rbuf: Vec<u8>,
    /// How far `rbuf` is consumed.
    rpos: usize,
    phase: Phase,
    /// Queued output, written in order.
    out: Vec<Outgoing>,
    /// Close (after lingering) once `out` is written.
    close_after_write: bool,
    /// The socket may have unread bytes (edge-triggered readiness).
    pub readable: bool,
    /// The peer has shut down its side.
    peer_closed: bool,
    /// When the head now being read began to arrive.
    head_started: Option<Instant>,
    /// Last time bytes moved in either direction.
    pub last_progress: Instant,
    /// Requests served on this connection.
    pub served: u64,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr, generation: u64, now: Instant) -> Conn {
        Conn {
            stream,
            peer,
            generation,
            rbuf: Vec::new(),
            rpos: 0,
            phase: Phase::Head,
            out: Vec::new(),
            close_after_write: false,
            readable: true,
            peer_closed: false,
            head_started: None,
            last_progress: now,
            served: 0,
        }
    }

    fn unread(&self) -> &[u8] {
        &self.rbuf[self.rpos..]
    }

    /// Whether the connection holds no request in progress and no output, so
    /// it may be closed at shutdown or on idle timeout without losing anything.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head) && self.out.is_empty() && self.unread().is_empty()
    }

    /// Bytes received and not yet consumed (a progress measure for the loop).
    pub fn buffered(&self) -> usize {
        self.rbuf.len() - self.rpos
    }

    pub fn is_waiting(&self) -> bool {
        matches!(self.phase, Phase::Waiting)
    }

    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Reads what the socket has into the buffer, unless enough is buffered.
    /// Returns Ok(false) if reading is paused for backpressure.
    pub fn fill(&mut self, scratch: &mut [u8], now: Instant) -> io::Result<()> {
        loop {
            let limit = match self.phase {
                Phase::Linger { .. } => usize::MAX,
                Phase::Head | Phase::Body(_) => MAX_BUFFERED_AHEAD + IO_CHUNK,
                Phase::Waiting => MAX_BUFFERED_AHEAD,
            };
            if self.unread().len() >= limit || self.peer_closed {
                return Ok(());
            }
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.peer_closed = true;
                    self.readable = false;
                    return Ok(());
                }
                Ok(n) => {
                    self.last_progress = now;
                    if let Phase::Linger { discarded, .. } = &mut self.phase {
                        *discarded += n;
                        if *discarded > LINGER_BYTES {
                            return Err(io::Error::other("lingering client kept sending"));
                        }
                        continue;
                    }
                    if self.rpos > 0 && self.rpos == self.rbuf.len() {
                        self.rbuf.clear();
                        self.rpos = 0;
                    }
                    self.rbuf.extend_from_slice(&scratch[..n]);
                    if n < scratch.len() {
                        // A short read drained the socket: skip the read that
                        // would only say EAGAIN. Readiness is edge-triggered,
                        // so bytes arriving later raise a new event.
                        self.readable = false;
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Advances the request state machine over the buffered input.
    pub fn process(
        &mut self,
        dispatcher: &Dispatcher,
        config: &ServerConfig,
        now: Instant,
    ) -> Progress {
        // Compact the buffer once its consumed prefix dominates.
        if self.rpos > 0 && self.rpos >= self.rbuf.len() / 2 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        match &mut self.phase {
            Phase::Waiting => Progress::Waiting,
            Phase::Linger { .. } => {
                if self.peer_closed {
                    Progress::Close
                } else {
                    Progress::NeedInput
                }
            }
            Phase::Head => self.process_head(dispatcher, config, now),
            Phase::Body(_) => self.process_body(),
        }
    }

    fn process_head(
        &mut self,
        dispatcher: &Dispatcher,
        _config: &ServerConfig,
        now: Instant,
    ) -> Progress {
        if self.close_after_write {
            // A response that closes the connection is queued: read no further.
            return Progress::Waiting;
        }
        if self.unread().is_empty() {
            self.head_started = None;
            return if self.peer_closed {
                Progress::Close
            } else {
                Progress::NeedInput
            };
        }
        self.head_started.get_or_insert(now);
        let (head, len) = match parse::parse_head(self.unread()) {
            Ok(HeadParse::Partial) => {
                return if self.peer_closed {
                    Progress::Close
                } else {
                    Progress::NeedInput
                };
            }
            Ok(HeadParse::Complete { head, len }) => (head, len),
            Err(e) => return self.fail(Failure::Parse(e), false),
        };
        self.rpos += len;
        self.head_started = None;
        let prepared = dispatcher.prepare(&head);
        let limit = prepared.body_limit;
        let progress = match head.framing {
            Framing::None => None,
            Framing::Length(n) if n > limit => {
                let wants_json = wants_json(&head.headers);
                return self.fail(Failure::BodyTooLarge { len: n, limit }, wants_json);
            }
            Framing::Length(n) => Some(BodyProgress::Remaining(n)),
            Framing::Chunked => Some(BodyProgress::Chunked(ChunkedDecoder::new(limit))),
        };
        let Some(progress) = progress else {
            return self.complete(head, prepared, Vec::new());
        };
        if head.expect_continue && self.unread().is_empty() {
            self.queue_raw(CONTINUE.to_vec());
        }
        let capacity = match &progress {
            BodyProgress::Remaining(n) => (*n).min(limit) as usize,
            BodyProgress::Chunked(_) => 0,
        };
        self.phase = Phase::Body(Box::new(BodyState {
            head,
            prepared,
            body: Vec::with_capacity(capacity),
            progress,
        }));
        match self.process_body() {
            Progress::NeedInput if self.has_output() => Progress::Output,
            other => other,
        }
    }

    fn process_body(&mut self) -> Progress {
        let Phase::Body(state) = &mut self.phase else {
            return Progress::Waiting;
        };
        let input = &self.rbuf[self.rpos..];
        let done = match &mut state.progress {
            BodyProgress::Remaining(left) => {
                let take = (*left).min(input.len() as u64) as usize;
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
                    let wants_json = wants_json(&state.head.headers);
                    return self.fail(Failure::Chunked(e), wants_json);
                }
            },
        };
        if !done {
            return if self.peer_closed {
                Progress::Close
            } else {
                Progress::NeedInput
            };
        }
        let Phase::Body(state) = std::mem::replace(&mut self.phase, Phase::Head) else {
            return Progress::Close;
        };
        let BodyState {
            head,
            prepared,
            body,
            ..
        } = *state;
        self.complete(head, prepared, body)
    }

    fn complete(&mut self, head: RequestHead, prepared: Prepared, body: Vec<u8>) -> Progress {
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
        Progress::Dispatch(Box::new(Job {
            prepared,
            request,
            head_only,
            keep_alive,
        }))
    }

    /// Queues the response for a failure and closes after it.
    fn fail(&mut self, failure: Failure, wants_json: bool) -> Progress {
        tracing::info!(target: "access", client = %self.peer, status = status::status_of(&failure), "rejected: {failure}");
        let resp = status::failure_response(&failure, wants_json);
        self.phase = Phase::Waiting;
        self.queue_response(resp, false, false, &crate::server::event_loop::http_date());
        Progress::Output
    }

    /// Queues a timeout answer (408) if a request was in progress.
    pub fn time_out(&mut self, failure: Failure) {
        self.fail(failure, false);
    }

    /// Queues a response; `keep_alive` false closes the connection after it.
    pub fn queue_response(
        &mut self,
        resp: Response,
        head_only: bool,
        keep_alive: bool,
        date: &str,
    ) {
        let keep_alive = keep_alive && !self.peer_closed;
        let mut head = Vec::with_capacity(256);
        resp.write_head(keep_alive, date, &mut head);
        let forbids_body = Response::status_forbids_body(resp.status);
        let (body, file) = match resp.body {
            _ if head_only || forbids_body => (Vec::new(), None),
            Body::Empty => (Vec::new(), None),
            Body::Bytes(b) => (b, None),
            Body::File { file, offset, len } => (Vec::new(), Some((file, offset, len))),
        };
        self.out.push(Outgoing {
            head,
            body,
            written: 0,
            file,
        });
        self.served += 1;
        if !keep_alive {
            self.close_after_write = true;
        }
        if matches!(self.phase, Phase::Waiting) {
            self.phase = Phase::Head;
        }
    }

    fn queue_raw(&mut self, bytes: Vec<u8>) {
        self.out.push(Outgoing {
            head: bytes,
            body: Vec::new(),
            written: 0,
            file: None,
        });
    }

    /// Writes queued output. Ok(true): all written; Ok(false): the socket is full.
    pub fn flush(&mut self, now: Instant) -> io::Result<bool> {
        while let Some(o) = self.out.first_mut() {
            // Head and in-memory body, in as few syscalls as possible.
            let fixed = o.head.len() + o.body.len();
            while o.written < fixed {
                let (h, b) = if o.written < o.head.len() {
                    (&o.head[o.written..], &o.body[..])
                } else {
                    (&[][..], &o.body[o.written - o.head.len()..])
                };
                match self
                    .stream
                    .write_vectored(&[IoSlice::new(h), IoSlice::new(b)])
                {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        o.written += n;
                        self.last_progress = now;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            // A file body, straight from the page cache to the socket.
            while let Some((file, offset, left)) = &mut o.file {
                if *left == 0 {
                    o.file = None;
                    break;
                }
                let want = usize::try_from((*left).min(SENDFILE_CHUNK)).unwrap_or(usize::MAX);
                match rustix::fs::sendfile(&self.stream, &*file, Some(offset), want) {
                    // The file shrank under us: the promised length can no
                    // longer be met, so the connection must end here.
                    Ok(0) => return Err(io::Error::other("static file shrank while being sent")),
                    Ok(n) => {
                        *left -= n as u64;
                        self.last_progress = now;
                    }
                    Err(rustix::io::Errno::AGAIN) => return Ok(false),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.out.remove(0);
        }
        if self.close_after_write && !matches!(self.phase, Phase::Linger { .. }) {
            // Half-close and drain, so the client reads the response instead of a reset.
            let _ = self.stream.shutdown(Shutdown::Write);
            self.phase = Phase::Linger {
                until: now + LINGER_TIME,
                discarded: 0,
            };
            self.rbuf = Vec::new();
            self.rpos = 0;
        }
        Ok(true)
    }

    /// Whether the connection is lingering after its last response.
    pub fn linger_until(&self) -> Option<Instant> {
        match self.phase {
            Phase::Linger { until, .. } => Some(until),
            _ => None,
        }
    }

    /// The deadline for the current phase, and whether a request was under way.
    pub fn deadline(&self, config: &ServerConfig) -> Option<(Instant, Option<Failure>)> {
        if let Some(until) = self.linger_until() {
            return Some((until, None));
        }
        if self.has_output() {
            return Some((self.last_progress + config.write_timeout, None));
        }
        match &self.phase {
            Phase::Waiting | Phase::Linger { .. } => None,
            Phase::Body(_) => Some((
                self.last_progress + config.body_timeout,
                Some(Failure::BodyTimeout),
            )),
            Phase::Head => match self.head_started {
                Some(start) if !self.unread().is_empty() => {
                    Some((start + config.header_timeout, Some(Failure::HeaderTimeout)))
                }
                _ => Some((self.last_progress + config.idle_timeout, None)),
            },
        }
    }

    /// Whether the peer is gone and nothing remains to write.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }
}
