//! Fuzz target `conn`: the connection state machine (`http::conn::Connection`) fed arbitrary bytes in arbitrary reads.
//!
//! Input: byte 0 picks the body limit, byte 1 the number `n` of split bytes,
//! the next `n` bytes the reads (cycled; see `run`: their sizes, and whether
//! each comes before the request in progress is answered); the rest is what
//! the client sends, where `FF FE c x` stands for the byte `x` repeated
//! `(c + 1) * 1024` times (so that long lines, large bodies and backpressure
//! are reachable from small inputs).
//!
//! The stream is run twice: as one read with each request answered at once,
//! and in the reads the input asks for, some arriving while a request waits
//! for its answer. Every answer is the same fixed response; after the last
//! byte the client closes its side.
//!
//! Properties: it never panics; both runs see the same requests (method,
//! target, version, headers, body, keep-alive) and write the same response
//! bytes (apart from `100 Continue`, which is sent only when the body has not
//! arrived with the head); no request body exceeds the limit; in the split
//! run the connection never stalls (it wants input whenever no request waits
//! for its answer and it has nothing else to do), and never buffers more than
//! `MAX_BUFFERED_AHEAD + IO_CHUNK` (its read-ahead limit) plus one read.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use wasmhost::http::conn::{Connection, Event, MAX_BUFFERED_AHEAD, Routed, Timeouts};
use wasmhost::http::parse::RequestHead;
use wasmhost::http::{Method, Response, Version};
use wasmhost::limits::IO_CHUNK;

const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// Body limits to choose from.
const LIMITS: [u64; 5] = [0, 5, 1024, 1 << 20, u64::MAX];
/// Most bytes the `FF FE` expansion may produce in one input.
const MAX_EXPANDED: usize = 2 << 20;

/// What the layer above saw of a request.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    version: Version,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    head_only: bool,
    keep_alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Run {
    requests: Vec<Seen>,
    /// Every response byte written, interim `100 Continue`s left out.
    written: Vec<u8>,
    served: u64,
}

fuzz_target!(|input: &[u8]| {
    let Some((&limit_byte, rest)) = input.split_first() else {
        return;
    };
    let limit = LIMITS[usize::from(limit_byte) % LIMITS.len()];
    let (splits, stream) = match rest.split_first() {
        Some((&n, rest)) => rest.split_at(usize::from(n % 16).min(rest.len())),
        None => (&[][..], &[][..]),
    };
    let stream = expand(stream);

    let whole = run(&stream, None, limit);
    for seen in &whole.requests {
        assert!(seen.body.len() as u64 <= limit);
    }
    if !splits.is_empty() {
        let split = run(&stream, Some(splits), limit);
        if split != whole {
            panic!(
                "split {splits:?} differs:\nwhole: {:?}\nsplit: {:?}",
                String::from_utf8_lossy(&whole.written),
                String::from_utf8_lossy(&split.written)
            );
        }
    }
});

/// Expands each `FF FE c x` into `(c + 1) * 1024` copies of `x`.
fn expand(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len());
    let mut i = 0;
    while i < stream.len() {
        match stream[i..] {
            [0xff, 0xfe, c, x, ..] if out.len() < MAX_EXPANDED => {
                out.resize(out.len() + (usize::from(c) + 1) * 1024, x);
                i += 4;
            }
            _ => {
                out.push(stream[i]);
                i += 1;
            }
        }
    }
    out
}

/// Feeds `stream` to a connection in one read (`splits` `None`, each request
/// answered at once) or in reads as the split bytes say: bits 1-7 the size
/// (0-99: 1 to 100 bytes, 100-126: 1 to 27 KiB, 127: a full `IO_CHUNK`; at
/// least 1/512 of the stream, so that runs stay fast), bit 0 whether to read
/// it before answering the request in progress, as a worker still busy with
/// it would let happen.
fn run(stream: &[u8], splits: Option<&[u8]>, limit: u64) -> Run {
    let now = Instant::now();
    let peer: SocketAddr = "127.0.0.1:4000".parse().expect("address");
    let timeouts = Timeouts {
        header: Duration::from_secs(10),
        body: Duration::from_secs(15),
        idle: Duration::from_secs(60),
        write: Duration::from_secs(30),
    };
    let mut conn: Connection<()> = Connection::new(peer, now);
    let mut requests = Vec::new();
    let mut written = Vec::new();
    // The request in progress, not answered yet: (head only, keep-alive).
    let mut pending: Option<(bool, bool)> = None;
    let mut reads = 0;
    let mut pos = 0;
    'connection: loop {
        while pending.is_none() {
            drain(&mut conn, &mut written, now);
            let _ = conn.deadline(&timeouts);
            let route = |_: &RequestHead| Routed {
                ticket: (),
                body_limit: limit,
            };
            match conn.process(route, now, DATE) {
                Event::Request(job) => {
                    let request = &job.request;
                    requests.push(Seen {
                        method: request.method,
                        path: request.path.clone(),
                        query: request.query.clone(),
                        version: request.version,
                        headers: request.headers.clone(),
                        body: request.body.clone(),
                        head_only: job.head_only,
                        keep_alive: job.keep_alive,
                    });
                    pending = Some((job.head_only, job.keep_alive));
                }
                Event::Output => {}
                Event::NeedInput | Event::Waiting => break,
                Event::Close => break 'connection,
            }
        }
        let byte = splits.map(|s| s[reads % s.len()]);
        let hold = byte.is_some_and(|b| b & 1 == 1);
        if let Some((head_only, keep_alive)) = pending
            && (!hold || pos == stream.len() || !conn.wants_input())
        {
            assert!(conn.is_waiting());
            let response = Response::new(200).with_body("text/plain", b"ok".to_vec());
            conn.respond(response, head_only, keep_alive, DATE);
            pending = None;
            continue;
        }
        if pos == stream.len() {
            if conn.peer_closed() {
                // Nothing more arrives and nothing more happens.
                break;
            }
            conn.read_closed();
            continue;
        }
        let piece = match byte {
            None => stream.len() - pos,
            Some(b) => {
                assert!(
                    conn.wants_input(),
                    "stalled: buffering {} bytes, waiting {}, output {}",
                    conn.buffered(),
                    conn.is_waiting(),
                    conn.has_output()
                );
                let size = match b >> 1 {
                    v @ 0..100 => usize::from(v) + 1,
                    v @ 100..127 => usize::from(v - 99) * 1024,
                    _ => IO_CHUNK,
                };
                size.max(stream.len() / 512).min(IO_CHUNK)
            }
        };
        let piece = piece.min(stream.len() - pos);
        reads += 1;
        let refused = conn.received(&stream[pos..pos + piece], now).is_err();
        pos += piece;
        if splits.is_some() {
            assert!(
                conn.buffered() <= MAX_BUFFERED_AHEAD + IO_CHUNK + piece,
                "buffering {} bytes after a read of {piece}",
                conn.buffered()
            );
        }
        if refused {
            // A lingering client kept sending: the connection closes. Its
            // responses are all written already.
            break;
        }
    }
    drain(&mut conn, &mut written, now);
    Run {
        requests,
        written,
        served: conn.served(),
    }
}

/// Writes all queued output into `sink`, leaving out interim responses.
fn drain(conn: &mut Connection<()>, sink: &mut Vec<u8>, now: Instant) {
    while let Some(out) = conn.front_output() {
        assert!(out.file.is_none(), "only in-memory bodies here");
        let (head, body) = out.unwritten();
        if !(head == CONTINUE && body.is_empty()) {
            sink.extend_from_slice(head);
            sink.extend_from_slice(body);
        }
        out.written = out.head.len() + out.body.len();
        conn.wrote(now);
        conn.pop_output();
    }
    conn.output_drained(now);
}
