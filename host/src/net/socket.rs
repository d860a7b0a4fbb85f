//! One client socket: reads into and writes out of its connection's protocol state machine (`http::conn`), with `sendfile` for file bodies and streamed bodies as their pieces arrive.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use mio::net::TcpStream;

use crate::http::conn::{Connection, Refill};

/// Most bytes asked of one `sendfile` call: bounds the `usize` conversion;
/// the socket buffer takes far less, and the call returns what fit.
const SENDFILE_CHUNK: u64 = 1024 * 1024;

/// A socket and the protocol state of the connection on it.
pub(super) struct Conn<T> {
    pub stream: TcpStream,
    /// Distinguishes this connection from a later one reusing its slab slot,
    /// so that a late worker result is never delivered to the wrong client.
    pub generation: u64,
    /// The socket may have unread bytes (edge-triggered readiness).
    pub readable: bool,
    pub proto: Connection<T>,
}

impl<T> Conn<T> {
    pub fn new(stream: TcpStream, peer: SocketAddr, generation: u64, now: Instant) -> Conn<T> {
        Conn {
            stream,
            generation,
            readable: true,
            proto: Connection::new(peer, now),
        }
    }

    /// Reads what the socket has into the connection, while it wants input.
    pub fn fill(&mut self, scratch: &mut [u8], now: Instant) -> io::Result<()> {
        loop {
            if !self.proto.wants_input() {
                return Ok(());
            }
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.proto.read_closed();
                    self.readable = false;
                    return Ok(());
                }
                Ok(n) => {
                    self.proto
                        .received(&scratch[..n], now)
                        .map_err(io::Error::other)?;
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

    /// Writes queued output. Ok(true): all written; Ok(false): the socket is full.
    pub fn flush(&mut self, now: Instant) -> io::Result<bool> {
        let result = self.write_out();
        let (Ok((moved, _)) | Err((moved, _))) = &result;
        if *moved {
            self.proto.wrote(now);
        }
        let (_, all) = result.map_err(|(_, e)| e)?;
        if all && self.proto.output_drained(now) {
            // Half-close and drain, so the client reads the response instead of a reset.
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        Ok(all)
    }

    /// Writes what the socket takes; returns whether any byte moved and
    /// whether everything was written.
    fn write_out(&mut self) -> Result<(bool, bool), (bool, io::Error)> {
        let mut moved = false;
        while let Some(o) = self.proto.front_output() {
            // Head and in-memory body, in as few syscalls as possible.
            while !o.fixed_done() {
                let (h, b) = o.unwritten();
                match self
                    .stream
                    .write_vectored(&[IoSlice::new(h), IoSlice::new(b)])
                {
                    Ok(0) => return Err((moved, io::ErrorKind::WriteZero.into())),
                    Ok(n) => {
                        o.written += n;
                        moved = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((moved, false)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err((moved, e)),
                }
            }
            // A file body, straight from the page cache to the socket.
            while let Some(f) = &mut o.file {
                if f.left == 0 {
                    o.file = None;
                    break;
                }
                let want = usize::try_from(f.left.min(SENDFILE_CHUNK)).unwrap_or(usize::MAX);
                match rustix::fs::sendfile(&self.stream, &f.file, Some(&mut f.offset), want) {
                    // The file shrank under us: the promised length can no
                    // longer be met, so the connection must end here.
                    Ok(0) => {
                        let e = io::Error::other("static file shrank while being sent");
                        return Err((moved, e));
                    }
                    Ok(n) => {
                        f.left -= n as u64;
                        moved = true;
                    }
                    Err(rustix::io::Errno::AGAIN) => return Ok((moved, false)),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err((moved, e.into())),
                }
            }
            // A body the handler is still making: its next pieces, if any.
            if o.stream.is_some() {
                match self.proto.refill() {
                    Refill::More | Refill::Done => continue,
                    // Not "socket full": the handler's wake drives this
                    // connection again when its next piece is ready.
                    Refill::Pending => return Ok((moved, false)),
                    Refill::Broken => {
                        let e = io::Error::other("the streamed body ended before its end");
                        return Err((moved, e));
                    }
                }
            }
            self.proto.pop_output();
        }
        Ok((moved, true))
    }
}
