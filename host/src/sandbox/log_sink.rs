//! A bounded sink for a guest's stdout, stderr and `wasmhost.log` output: keeps up to a budget, counts the rest as dropped.
//!
//! The guest never sees a write fail (a full pipe would make a Rust guest's
//! `println!` panic), and the host never buffers more than the budget.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// What the guest may write in one go, as reported to WASI's `check-write`.
/// Any figure works since writes never block; this matches wasmtime's pipes.
const WRITE_PERMIT: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Inner {
    /// Bytes kept so far, at most `budget`.
    kept: Vec<u8>,
    /// Bytes written beyond the budget and dropped.
    dropped: u64,
    /// Most bytes kept; shared by every stream of one request.
    budget: usize,
}

/// One request's log output. Clones share the same buffer and budget.
#[derive(Debug, Clone)]
pub struct LogSink(Arc<Mutex<Inner>>);

impl LogSink {
    pub fn new(budget: usize) -> LogSink {
        LogSink(Arc::new(Mutex::new(Inner {
            kept: Vec::new(),
            dropped: 0,
            budget,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a writer panicked mid-append; the bytes are still bytes.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends what fits in the budget and counts the rest as dropped.
    pub fn append(&self, bytes: &[u8]) {
        let mut inner = self.lock();
        let room = inner.budget.saturating_sub(inner.kept.len());
        let take = room.min(bytes.len());
        inner.kept.extend_from_slice(&bytes[..take]);
        inner.dropped += (bytes.len() - take) as u64;
    }

    /// Takes what was kept and how many bytes were dropped.
    pub fn take(&self) -> (Vec<u8>, u64) {
        let mut inner = self.lock();
        let dropped = std::mem::take(&mut inner.dropped);
        (std::mem::take(&mut inner.kept), dropped)
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl OutputStream for LogSink {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for LogSink {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_budget_and_counts_the_rest() {
        // (budget, writes, kept, dropped)
        let table: &[(usize, &[&[u8]], &[u8], u64)] = &[
            (10, &[b"hello"], b"hello", 0),
            (4, &[b"hello"], b"hell", 1),
            (6, &[b"abc", b"defgh"], b"abcdef", 2),
            (0, &[b"x"], b"", 1),
        ];
        for (budget, writes, kept, dropped) in table {
            let sink = LogSink::new(*budget);
            let clone = sink.clone();
            for w in *writes {
                clone.append(w);
            }
            assert_eq!(sink.take(), (kept.to_vec(), *dropped));
        }
    }
}
