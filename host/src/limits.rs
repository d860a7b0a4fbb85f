//! Every limit a client controls, as a named constant with the reason for its value.
//!
//! Limits a guest controls live with the app settings in `config/limits.rs`; the ones
//! here bound what any client can make the connection layer hold or wait for.

use std::time::Duration;

/// Longest request line (method, target, version). Longer is answered 414:
/// 8 KiB is what common proxies and browsers accept for URLs.
pub const MAX_REQUEST_LINE: usize = 8 * 1024;

/// Largest header section (request line included). Larger is answered 431:
/// 32 KiB fits many large cookies while bounding per-connection memory.
pub const MAX_HEADER_SECTION: usize = 32 * 1024;

/// Most header fields in one request. More is answered 431: real clients send
/// a few dozen, and httparse needs a fixed-size slot array.
pub const MAX_HEADERS: usize = 100;

/// Default largest request body; larger is answered 413. Overridable with
/// `--max-body` and per app in `routes.json`.
pub const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;

/// Longest chunk-size line including extensions: extensions are ignored, so
/// there is no reason to buffer more than a few of them.
pub const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Largest trailer section of a chunked body: trailers are discarded, so only
/// enough to skip well-formed ones is accepted.
pub const MAX_TRAILER_SECTION: usize = 8 * 1024;

/// Time allowed from the first byte of a request to the end of its header
/// section: stops slowloris clients that trickle headers forever.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a request body may go without a single new byte arriving: stops
/// clients that announce a body and never send it.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest a keep-alive connection may sit idle between requests: idle
/// connections cost a socket and a buffer each.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest the host waits for a client to read a response: a client that stops
/// reading must not pin a connection and its buffered response forever.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most concurrent connections; beyond it new connections are closed at once.
/// Each costs a file descriptor and a small buffer; 10,000 idle keep-alive
/// connections must fit with room to spare.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16 * 1024;

/// Most requests waiting for or running on a worker at once; beyond it the host
/// answers 503 rather than queue without bound (the thread pool's own queue
/// is unbounded).
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// Most requests asleep at once with their run slot lent (guests sleeping in
/// `poll_oneoff`): each still holds a thread and an instance, so this bounds
/// the threads and pooled instances sleeping guests can take, beyond `workers`.
pub const MAX_PARKED: usize = 256;

/// How long shutdown waits for in-flight requests before exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// After answering an error and deciding to close, how long the host keeps
/// reading (and discarding) what the client still sends, so that the client
/// sees the response instead of a reset.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// How many bytes the host discards while lingering before it closes anyway.
pub const LINGER_BYTES: usize = 1024 * 1024;

/// Size of each read from a socket and of each chunk read from a static file.
pub const IO_CHUNK: usize = 64 * 1024;
