//! Streamed response bodies: a head sent before the handler has finished, its body pieces passed from the worker to the connection as they are made, framed with chunked transfer coding (with trailers) when the length is not known up front.
//!
//! A handler that streams calls [`start`] on its worker thread: the hook the
//! network layer installed for the request ([`during`]) sends the head to the
//! connection at once and hands back a way to wake the event loop; the
//! handler then feeds pieces to the returned [`StreamSink`]. The connection
//! pulls them from the [`StreamBody`] as it writes (`Outgoing::refill`).
//! Without a hook (a test calling the handler directly, a thread of its own)
//! [`start`] returns `None` and the handler answers whole instead.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};

use super::response::{Body, Response};

/// One piece of a streamed body.
#[derive(Debug)]
pub enum Piece {
    /// Body bytes.
    Data(Vec<u8>),
    /// The end, with trailer fields (sent only with chunked framing).
    End(Vec<(String, String)>),
}

/// The connection's end: pieces in the order they were made.
#[derive(Debug)]
pub struct StreamBody {
    rx: Receiver<Piece>,
    /// The length promised up front (`Content-Length`), if any; otherwise
    /// the body is sent chunked.
    pub len: Option<u64>,
    /// Bytes taken so far, to check a promised length.
    taken: u64,
}

/// What [`StreamBody::take_ready`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Framed bytes to write.
    Bytes(Vec<u8>),
    /// Nothing yet: the handler is still making the body.
    Pending,
    /// The body is complete; the bytes are its last framing (possibly empty).
    Done(Vec<u8>),
    /// The handler stopped before the end (it failed, or broke the promised
    /// length): the response cannot be completed and the connection must close.
    Broken,
}

impl StreamBody {
    /// Takes every piece that is ready, framed for the wire.
    pub fn take_ready(&mut self) -> Next {
        let chunked = self.len.is_none();
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(Piece::Data(data)) => {
                    if data.is_empty() {
                        continue;
                    }
                    self.taken += data.len() as u64;
                    if self.len.is_some_and(|len| self.taken > len) {
                        return Next::Broken;
                    }
                    if chunked {
                        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                        out.extend_from_slice(&data);
                        out.extend_from_slice(b"\r\n");
                    } else {
                        out.extend_from_slice(&data);
                    }
                }
                Ok(Piece::End(trailers)) => {
                    if let Some(len) = self.len {
                        if self.taken != len {
                            return Next::Broken;
                        }
                    } else {
                        out.extend_from_slice(b"0\r\n");
                        for (name, value) in trailers {
                            out.extend_from_slice(name.as_bytes());
                            out.extend_from_slice(b": ");
                            out.extend_from_slice(value.as_bytes());
                            out.extend_from_slice(b"\r\n");
                        }
                        out.extend_from_slice(b"\r\n");
                    }
                    return Next::Done(out);
                }
                Err(TryRecvError::Empty) if out.is_empty() => return Next::Pending,
                Err(TryRecvError::Empty) => return Next::Bytes(out),
                // The sink went away without an end: what came before it
                // is written first.
                Err(TryRecvError::Disconnected) if out.is_empty() => return Next::Broken,
                Err(TryRecvError::Disconnected) => return Next::Bytes(out),
            }
        }
    }
}

/// Wakes the event loop for the request's connection.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The handler's end.
pub struct StreamSink {
    /// `None` only while being dropped.
    tx: Option<Sender<Piece>>,
    wake: Wake,
}

impl StreamSink {
    /// Sends a piece; false once the connection is gone (the rest is for
    /// nobody, and the caller may stop making it).
    pub fn send(&self, piece: Piece) -> bool {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(piece).is_ok());
        (self.wake)();
        sent
    }
}

impl Drop for StreamSink {
    fn drop(&mut self) {
        // A sink dropped without `End` breaks the body: the connection must
        // see it now rather than when it next happens to write. The sender
        // goes first, so that the woken connection finds the channel closed.
        drop(self.tx.take());
        (self.wake)();
    }
}

/// A body stream not yet attached to a response: the two ends.
pub fn channel(len: Option<u64>, wake: Wake) -> (StreamSink, StreamBody) {
    let (tx, rx) = mpsc::channel();
    (
        StreamSink { tx: Some(tx), wake },
        StreamBody { rx, len, taken: 0 },
    )
}

/// What the network layer does with a head sent early.
pub trait Early {
    /// Sends `response` (its body a [`Body::Stream`]) to the connection now;
    /// returns how to wake the event loop when pieces follow, or `None` if
    /// the request cannot be answered early.
    fn send(&self, response: Response) -> Option<Wake>;
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<dyn Early>>> = const { RefCell::new(None) };
}

/// Removes the hook when the call it was installed for ends.
struct Installed(Option<Rc<dyn Early>>);

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Runs `f` with `early` as this thread's hook.
pub fn during<R>(early: Rc<dyn Early>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(early));
    let _installed = Installed(previous);
    f()
}

/// Sends `response`'s head now, with a body to follow through the returned
/// sink (`len` promised, or chunked); `None` when no hook is installed or it
/// refused, and the handler is to answer whole.
pub fn start(mut response: Response, len: Option<u64>) -> Option<StreamSink> {
    let hook = CURRENT.with(|c| c.borrow().clone())?;
    // The wake is only known once the hook has the response; the sink
    // reaches it through this cell.
    let cell: Arc<std::sync::OnceLock<Wake>> = Arc::new(std::sync::OnceLock::new());
    let relay = cell.clone();
    let wake: Wake = Arc::new(move || {
        if let Some(w) = relay.get() {
            w();
        }
    });
    let (sink, body) = channel(len, wake);
    response.body = Body::Stream(body);
    let real = hook.send(response)?;
    let _ = cell.set(real);
    Some(sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(len: Option<u64>) -> (StreamSink, StreamBody) {
        channel(len, Arc::new(|| {}))
    }

    #[test]
    fn chunked_pieces_are_framed_and_end_with_trailers() {
        let (sink, mut body) = pair(None);
        assert_eq!(body.take_ready(), Next::Pending);
        assert!(sink.send(Piece::Data(b"hello".to_vec())));
        assert!(sink.send(Piece::Data(Vec::new())));
        assert!(sink.send(Piece::Data(vec![b'x'; 16])));
        let mut want = b"5\r\nhello\r\n10\r\n".to_vec();
        want.extend_from_slice(&[b'x'; 16]);
        want.extend_from_slice(b"\r\n");
        assert_eq!(body.take_ready(), Next::Bytes(want));
        assert!(sink.send(Piece::End(vec![("x-sum".into(), "1".into())])));
        assert_eq!(
            body.take_ready(),
            Next::Done(b"0\r\nx-sum: 1\r\n\r\n".to_vec())
        );
    }

    #[test]
    fn a_promised_length_is_sent_raw_and_must_be_met() {
        let (sink, mut body) = pair(Some(3));
        sink.send(Piece::Data(b"abc".to_vec()));
        sink.send(Piece::End(vec![("ignored".into(), "x".into())]));
        assert_eq!(body.take_ready(), Next::Done(b"abc".to_vec()));

        let (sink, mut body) = pair(Some(3));
        sink.send(Piece::Data(b"ab".to_vec()));
        sink.send(Piece::End(Vec::new()));
        assert_eq!(body.take_ready(), Next::Broken, "short of the promise");

        let (sink, mut body) = pair(Some(1));
        sink.send(Piece::Data(b"ab".to_vec()));
        assert_eq!(body.take_ready(), Next::Broken, "past the promise");
    }

    #[test]
    fn a_sink_dropped_before_the_end_breaks_the_body() {
        let (sink, mut body) = pair(None);
        sink.send(Piece::Data(b"a".to_vec()));
        drop(sink);
        assert_eq!(body.take_ready(), Next::Bytes(b"1\r\na\r\n".to_vec()));
        assert_eq!(body.take_ready(), Next::Broken);
    }

    #[test]
    fn the_wake_of_a_dropped_sink_finds_the_channel_closed() {
        use std::sync::Mutex;
        let seen: Arc<Mutex<Vec<Next>>> = Arc::default();
        let body: Arc<Mutex<Option<StreamBody>>> = Arc::default();
        let (b, s) = (body.clone(), seen.clone());
        let (sink, stream) = channel(
            None,
            Arc::new(move || {
                if let Some(stream) = b.lock().unwrap().as_mut() {
                    s.lock().unwrap().push(stream.take_ready());
                }
            }),
        );
        *body.lock().unwrap() = Some(stream);
        drop(sink);
        assert_eq!(
            *seen.lock().unwrap(),
            [Next::Broken],
            "woken after the sender went"
        );
    }

    #[test]
    fn without_a_hook_a_handler_answers_whole() {
        assert!(start(Response::new(200), None).is_none());
    }

    #[test]
    fn the_hook_gets_the_head_and_its_wake_reaches_the_sink() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Hook(Arc<AtomicUsize>, RefCell<Option<Response>>);
        impl Early for Hook {
            fn send(&self, response: Response) -> Option<Wake> {
                *self.1.borrow_mut() = Some(response);
                let woken = self.0.clone();
                Some(Arc::new(move || {
                    woken.fetch_add(1, Ordering::SeqCst);
                }))
            }
        }
        let woken = Arc::new(AtomicUsize::new(0));
        let hook = Rc::new(Hook(woken.clone(), RefCell::new(None)));
        let sink = during(hook.clone(), || start(Response::new(201), None)).expect("a sink");
        sink.send(Piece::Data(b"x".to_vec()));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        let sent = hook.1.borrow_mut().take().expect("the head was sent");
        assert_eq!(sent.status, 201);
        let Body::Stream(mut body) = sent.body else {
            panic!("a streamed body")
        };
        assert_eq!(body.take_ready(), Next::Bytes(b"1\r\nx\r\n".to_vec()));
        assert!(
            start(Response::new(200), None).is_none(),
            "the hook is gone after its call"
        );
    }
}
