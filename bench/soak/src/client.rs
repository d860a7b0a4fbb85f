//! A small HTTP/1.1 client over `TcpStream`, with every wait and size bounded: enough to drive the server and read its answers.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Longest wait to connect: loopback connects at once unless the server is
/// gone or its accept queue is full, both worth reporting.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for any single read or write: the slowest route answers
/// within a second (the loop guest's CPU budget); a busy shared machine gets
/// thirty times that before an answer counts as lost.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest response header section read: the server's own heads are well
/// under 2 KiB; a larger one is a bug, not something to buffer.
const MAX_HEAD: usize = 64 * 1024;

/// Largest response body read: the largest page here (a weibo index of a few
/// dozen posts) is tens of KiB.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Bytes asked of each read: a whole small answer in one call.
const READ_CHUNK: usize = 8192;

/// A parsed response.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable header (`Set-Cookie`).
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the server said it will close the connection after this answer.
    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Builds a request: `Host` and, when there is a body or the method is POST
/// or PUT, `Content-Length` are added; `close` adds `Connection: close`.
pub fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Opens a connection with the timeouts above.
pub fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads one response from `stream`, framed by `Content-Length` (none for
/// 1xx, 204 and 304). `buf` holds bytes read past the previous response.
/// An EOF before the first byte is `ErrorKind::UnexpectedEof` with `buf`
/// still empty, which a caller may take as "the server closed first".
fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Answer> {
    let mut chunk = [0u8; READ_CHUNK];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::other("response head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                if buf.is_empty() {
                    "closed before answering"
                } else {
                    "closed in the response head"
                },
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| io::Error::other("response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    buf.drain(..head_end + 4);
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    let length = match answer.header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| io::Error::other(format!("bad Content-Length {v:?}")))?,
        None if status < 200 || status == 204 || status == 304 => 0,
        None => return Err(io::Error::other(format!("{status} without Content-Length"))),
    };
    if length > MAX_BODY {
        return Err(io::Error::other(format!("body of {length} bytes")));
    }
    while buf.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed in the body",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    answer.body = buf.drain(..length).collect();
    Ok(answer)
}

/// Reads one response from a connection on which one request was sent.
pub fn read_one(stream: &mut TcpStream) -> io::Result<Answer> {
    read_answer(stream, &mut Vec::new())
}

/// One request on a new connection, closed after it.
pub fn once(addr: SocketAddr, raw: &[u8]) -> io::Result<Answer> {
    let mut stream = connect(addr)?;
    stream.write_all(raw)?;
    let mut buf = Vec::new();
    read_answer(&mut stream, &mut buf)
}

/// A keep-alive connection that reopens itself when the server closed it.
pub struct KeepAlive {
    addr: SocketAddr,
    conn: Option<(TcpStream, Vec<u8>)>,
    /// Requests sent on the current connection.
    used: u32,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive {
            addr,
            conn: None,
            used: 0,
        }
    }

    /// Sends `raw` and reads its answer. If a reused connection turns out to
    /// have been closed by the server before it answered (an idle timeout
    /// racing the request), the request is sent once more on a new one.
    pub fn call(&mut self, raw: &[u8]) -> io::Result<Answer> {
        let reused = self.conn.is_some();
        match self.try_call(raw) {
            Err(e) if reused && is_closed_first(&e) => {
                self.conn = None;
                self.try_call(raw)
            }
            other => other,
        }
    }

    /// Requests sent on the current connection (0 when none is open).
    pub fn used(&self) -> u32 {
        if self.conn.is_some() { self.used } else { 0 }
    }

    fn try_call(&mut self, raw: &[u8]) -> io::Result<Answer> {
        if self.conn.is_none() {
            self.conn = Some((connect(self.addr)?, Vec::new()));
            self.used = 0;
        }
        let Some((stream, buf)) = self.conn.as_mut() else {
            unreachable!("opened above");
        };
        self.used += 1;
        let result = stream
            .write_all(raw)
            .and_then(|()| read_answer(stream, buf));
        match &result {
            Ok(answer) if !answer.closes() => {}
            _ => self.conn = None,
        }
        result
    }
}

/// Whether an error means the server closed the connection before any of
/// the answer arrived (so the request may be sent again).
fn is_closed_first(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    ) || (e.kind() == io::ErrorKind::UnexpectedEof && e.to_string() == "closed before answering")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves `replies` in order, one per request read, on one connection.
    fn serve(replies: Vec<&'static str>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for reply in replies {
                let mut got = Vec::new();
                let mut b = [0u8; 1024];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut b).unwrap();
                    got.extend_from_slice(&b[..n]);
                }
                s.write_all(reply.as_bytes()).unwrap();
            }
        });
        addr
    }

    #[test]
    fn answers_are_framed_by_content_length_on_one_connection() {
        let addr = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 204 No Content\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno",
        ]);
        let mut c = KeepAlive::new(addr);
        let get = request("GET", "/", &[], b"", false);
        let a = c.call(&get).unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
        let a = c.call(&get).unwrap();
        assert_eq!((a.status, a.body.len()), (204, 0));
        let a = c.call(&get).unwrap();
        assert_eq!((a.status, a.body.as_slice()), (404, &b"no"[..]));
        assert_eq!(c.used(), 0, "closed after Connection: close");
    }

    #[test]
    fn requests_carry_host_length_and_close() {
        let raw = request("POST", "/x", &[("Cookie", "a=b")], b"k=v", true);
        assert_eq!(
            String::from_utf8(raw).unwrap(),
            "POST /x HTTP/1.1\r\nHost: localhost\r\nCookie: a=b\r\nContent-Length: 3\r\nConnection: close\r\n\r\nk=v"
        );
    }
}
