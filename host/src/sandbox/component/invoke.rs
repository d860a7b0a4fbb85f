//! Running one request on a fresh instance of a component: the guest and the reading of its response body run together on the worker's own single-threaded runtime, within the app's budgets.
//!
//! wasmtime-wasi-http hands the response body over a small bounded channel,
//! so a guest writing more than the channel holds blocks until somebody
//! reads: the reader here is polled in the same future as the guest, never
//! after it. The wall-clock limit is a timer around both, because a guest
//! blocked on a pollable (a sleep, an outbound call) runs no Wasm and so
//! never meets its epoch deadline.

use std::cell::RefCell;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;

use bytes::Bytes;
use http_body::Body as _;
use http_body_util::BodyExt as _;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::request::{self, RouteHeaders};
use super::*;
use crate::http::Request;
use crate::http::stream::{Piece, StreamSink};
use crate::sandbox::poll::PARK_AFTER;

/// The head of a component's response, offered to the caller to stream the
/// body; `len` is the length the component promised (`Content-Length`).
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub len: Option<u64>,
}

/// Starts streaming a response from its head, or declines (`None`): the
/// body is then read whole.
pub type StartStream<'a> = &'a (dyn Fn(Head) -> Option<StreamSink> + Sync);

/// A request as a component receives it.
pub struct Incoming<'a> {
    /// The request, body included.
    pub request: &'a Request,
    /// Its headers as the guest may see them (the host's session cookie
    /// already removed).
    pub headers: &'a [(String, String)],
    /// What the host adds about the route and the user.
    pub route: RouteHeaders<'a>,
    /// How to stream a body the component is still writing when its head
    /// is set; `None` reads every body whole.
    pub stream: Option<StartStream<'a>>,
}

/// A component's answer, within `max_response`.
pub enum ComponentReply {
    /// Read whole: status, headers and body.
    Whole(GuestResponse),
    /// Streamed as it was written: the head went out early and the body
    /// through the stream (here the head only, for the caller's records).
    Streamed(GuestResponse),
}

thread_local! {
    /// Each worker's own runtime: a component request runs start to finish
    /// on the thread that took it, with no hand-off.
    static LOCAL: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `fut` to completion on this thread's runtime, made on first use.
/// On a thread that is already inside a runtime (where blocking on another
/// would panic), it runs on a scoped thread of its own instead.
pub(super) fn block_on<F: Future + Send>(fut: F) -> Result<F::Output, GuestError>
where
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        return std::thread::scope(|s| {
            s.spawn(|| block_on_here(fut))
                .join()
                .unwrap_or_else(|_| Err(GuestError::Setup("the runtime thread panicked".into())))
        });
    }
    block_on_here(fut)
}

fn block_on_here<F: Future>(fut: F) -> Result<F::Output, GuestError> {
    LOCAL.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let made = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    GuestError::Setup(format!("cannot start the worker's runtime: {e}"))
                })?;
            *slot = Some(made);
        }
        let runtime = slot
            .as_ref()
            .ok_or_else(|| GuestError::Setup("no runtime".into()))?;
        Ok(runtime.block_on(fut))
    })
}

/// How a request's guest future and body reader ended.
enum Ended {
    /// Both finished: the guest returned and the body was read.
    Both(Result<ComponentReply, GuestError>),
    /// The guest failed (trap, limit), whatever the reader had.
    Guest(wasmtime::Error),
    /// The reader failed (response too large, an error the guest set): the
    /// guest is abandoned.
    Reader(GuestError),
    /// The guest returned but its response is not complete, and cannot be.
    Unfinished(&'static str),
    /// The wall-clock limit passed.
    Wall,
}

impl Runtime {
    /// Runs one request on a fresh instance of a component.
    pub fn invoke_component(
        &self,
        guest: &GuestModule,
        incoming: Incoming<'_>,
    ) -> (Result<ComponentReply, GuestError>, CallStats) {
        let mut stats = CallStats::default();
        let Kind::Component(tiers) = &guest.kind else {
            let e = GuestError::Setup("a JSON-ABI module is not called as a component".into());
            return (Err(e), stats);
        };
        // One tier's code for the whole request.
        let pre = tiers.current();
        let limits = &guest.limits;
        let started = Instant::now();
        let request = match request::build(&incoming) {
            Ok(r) => r,
            Err(e) => return (Err(e), stats),
        };
        let mut store = match new_store(
            pre.engine(),
            &guest.app,
            limits,
            &guest.grants,
            self.storage_for(guest),
            limits.cpu_time,
            limits.wall_time,
        ) {
            Ok(s) => s,
            Err(e) => return (Err(e), stats),
        };
        let ended = run(
            pre,
            &mut store,
            request,
            limits,
            incoming.stream,
            &mut stats,
            started,
        );
        let state = store.data();
        stats.peak_memory = state.budget.peak_memory;
        let result = match ended {
            Ok(Ended::Both(r)) => r,
            Ok(Ended::Guest(e)) => Err(classify_parts(e, &state.timing, &state.budget, limits)),
            Ok(Ended::Reader(e)) => Err(e),
            Ok(Ended::Unfinished(what)) => Err(GuestError::Malformed(what.to_owned())),
            Ok(Ended::Wall) => Err(GuestError::WallTime {
                limit: limits.wall_time,
                elapsed: started.elapsed(),
            }),
            Err(e) => Err(e),
        };
        flush_log(state);
        (result, stats)
    }
}

/// Instantiates the component, calls its handler and reads its response,
/// all within the wall-clock limit.
fn run(
    pre: &Pre,
    store: &mut Store<ComponentState>,
    request: http::Request<http_body_util::Full<Bytes>>,
    limits: &Limits,
    stream: Option<StartStream<'_>>,
    stats: &mut CallStats,
    started: Instant,
) -> Result<Ended, GuestError> {
    let setup = |e: wasmtime::Error| GuestError::Setup(format!("{:#}", anyhow::Error::from(e)));
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let req = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)
        .map_err(setup)?;
    let out = store
        .data_mut()
        .http()
        .new_response_outparam(sender)
        .map_err(setup)?;
    let idle = store.data().timing.idle.clone();
    let max_response = limits.max_response;
    let wall = limits.wall_time.saturating_sub(started.elapsed());
    let instantiated = std::sync::Mutex::new(None);
    let guest = async {
        let proxy = pre.instantiate_async(&mut *store).await?;
        if let Ok(mut at) = instantiated.lock() {
            *at = Some(Instant::now());
        }
        proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut *store, req, out)
            .await
    };
    let reader = read_response(receiver, max_response, stream);
    let wall_deadline = started + limits.wall_time;
    let both = async {
        let mut guest = pin!(guest);
        let mut reader = pin!(reader);
        let mut guest_done: Option<wasmtime::Result<()>> = None;
        let mut read: Option<Result<ComponentReply, GuestError>> = None;
        let mut pending_since: Option<Instant> = None;
        // Blocked for `PARK_AFTER`, the guest lends its run slot (as a
        // sleeping JSON-ABI guest does, `poll.rs`) and needs one back to go on.
        let mut park_timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
        let mut parked = false;
        let add_idle = move |since: Instant| {
            let nanos = u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX);
            idle.fetch_add(nanos, Ordering::Relaxed);
        };
        std::future::poll_fn(move |cx| {
            // Time between a Pending and the next poll is time the guest
            // spent blocked, which `cpu_time` does not count.
            if let Some(since) = pending_since.take() {
                add_idle(since);
            }
            if parked {
                parked = false;
                let from = Instant::now();
                let back = crate::pause::resume(wall_deadline);
                add_idle(from);
                if !back {
                    return Poll::Ready(Ended::Wall);
                }
            }
            if guest_done.is_none()
                && let Poll::Ready(r) = guest.as_mut().poll(cx)
            {
                guest_done = Some(r);
            }
            if let Some(Err(_)) = guest_done {
                let Some(Err(e)) = guest_done.take() else {
                    unreachable!("checked just above")
                };
                return Poll::Ready(Ended::Guest(e));
            }
            if read.is_none()
                && let Poll::Ready(r) = reader.as_mut().poll(cx)
            {
                read = Some(r);
            }
            match (&guest_done, read.take()) {
                (_, Some(Err(e))) => Poll::Ready(Ended::Reader(e)),
                (Some(_), Some(r)) => Poll::Ready(Ended::Both(r)),
                (None, r) => {
                    read = r;
                    if park_timer.as_ref().is_some_and(|t| t.is_elapsed()) {
                        park_timer = None;
                        parked = crate::pause::park();
                    } else if !parked {
                        let mut timer = Box::pin(tokio::time::sleep(PARK_AFTER));
                        // Registers the wake-up; it cannot be due yet.
                        let _ = timer.as_mut().poll(cx);
                        park_timer = Some(timer);
                    }
                    pending_since = Some(Instant::now());
                    Poll::Pending
                }
                // The guest returned and everything it sent has been read:
                // the rest can never come.
                (Some(_), None) => Poll::Ready(Ended::Unfinished(
                    "the component returned without setting a response or finishing its body",
                )),
            }
        })
        .await
    };
    let ended = block_on(async {
        match tokio::time::timeout(wall, both).await {
            Ok(ended) => ended,
            Err(_) => Ended::Wall,
        }
    })?;
    if let Ok(Some(at)) = instantiated.into_inner() {
        stats.instantiate = at.duration_since(started);
        stats.run = at.elapsed();
    } else {
        stats.instantiate = started.elapsed();
    }
    Ok(ended)
}

/// Waits for the response the guest sets and reads its body, refusing more
/// than `max_response` bytes. A body the guest is still writing once what it
/// has written is read goes to the client as a stream, if `stream` agrees;
/// trailers go only with a stream of unknown length (chunked framing).
async fn read_response(
    receiver: tokio::sync::oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, ErrorCode>>,
    max_response: u64,
    stream: Option<StartStream<'_>>,
) -> Result<ComponentReply, GuestError> {
    let response = match receiver.await {
        Ok(Ok(r)) => r,
        Ok(Err(code)) => {
            return Err(GuestError::Malformed(format!(
                "the component answered with an error instead of a response: {code:?}"
            )));
        }
        // The outparam was dropped unset; the guest's own result says why.
        Err(_) => std::future::pending().await,
    };
    let (parts, mut body) = response.into_parts();
    let promised = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |len: u64| GuestError::ResponseTooLarge {
        len,
        limit: max_response,
    };
    if let Some(len) = promised.filter(|len| *len > max_response) {
        return Err(too_large(len));
    }
    let head = request::response(parts, Vec::new())?;
    let start = |head: &GuestResponse| {
        stream.and_then(|start| {
            start(Head {
                status: head.status,
                headers: head.headers.clone(),
                len: promised,
            })
        })
    };
    let mut bytes: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let mut sink: Option<StreamSink> = None;
    let mut offered = false;
    let mut trailers = Vec::new();
    loop {
        let ready =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await;
        let frame = match ready {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                // The guest is still writing: stream from here on.
                if !offered {
                    offered = true;
                    sink = start(&head);
                    if let Some(s) = &sink
                        && !bytes.is_empty()
                    {
                        s.send(Piece::Data(std::mem::take(&mut bytes)));
                    }
                }
                body.frame().await
            }
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| {
            GuestError::Malformed(format!("the component's response body failed: {e}"))
        })?;
        match frame.into_data() {
            Ok(data) => {
                total += data.len() as u64;
                if total > max_response {
                    return Err(too_large(total));
                }
                match &sink {
                    Some(s) => {
                        // A client that left takes nothing more; the guest is
                        // still read to its end, within max_response.
                        s.send(Piece::Data(data.to_vec()));
                    }
                    None => bytes.extend_from_slice(&data),
                }
            }
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers = request::trailers(&map)?;
                }
            }
        }
    }
    // Trailers need chunked framing: a whole body that has them goes as a
    // stream too.
    if sink.is_none() && !offered && !trailers.is_empty() && promised.is_none() {
        sink = start(&head);
        if let Some(s) = &sink {
            s.send(Piece::Data(std::mem::take(&mut bytes)));
        }
    }
    match sink {
        Some(s) => {
            s.send(Piece::End(trailers));
            Ok(ComponentReply::Streamed(head))
        }
        None => Ok(ComponentReply::Whole(GuestResponse {
            body: bytes,
            ..head
        })),
    }
}
