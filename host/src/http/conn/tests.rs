//! Table tests of the connection state machine: byte strings and `Instant`s in, requests and response bytes out, no socket.

use std::time::{Duration, Instant};

use super::*;
use crate::http::parse::RequestHead;

const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

fn timeouts() -> Timeouts {
    Timeouts {
        header: Duration::from_secs(10),
        body: Duration::from_secs(15),
        idle: Duration::from_secs(60),
        write: Duration::from_secs(30),
    }
}

fn peer() -> SocketAddr {
    "127.0.0.1:4000".parse().expect("address")
}

/// Routes every head with this body limit; the ticket is the head's path.
fn route(limit: u64) -> impl FnOnce(&RequestHead) -> Routed<String> {
    move |head| Routed {
        ticket: head.path.clone(),
        body_limit: limit,
    }
}

/// Feeds `input` in pieces of `split` bytes, processing after each piece;
/// collects the requests and answers each at once with 200 and its path as
/// body. Returns the requests and every byte written.
fn run(input: &[u8], split: usize, limit: u64) -> (Vec<Request>, Vec<u8>, Connection<String>) {
    let now = Instant::now();
    let mut conn = Connection::new(peer(), now);
    let mut requests = Vec::new();
    let mut written = Vec::new();
    let mut pieces = input.chunks(split.max(1)).peekable();
    loop {
        loop {
            drain(&mut conn, &mut written, now);
            match conn.process(route(limit), now, DATE) {
                Event::Request(job) => {
                    let body = job.ticket.clone().into_bytes();
                    requests.push(job.request);
                    conn.respond(
                        Response::new(200).with_body("text/plain", body),
                        job.head_only,
                        job.keep_alive,
                        DATE,
                    );
                }
                Event::Output => {}
                Event::NeedInput | Event::Waiting | Event::Close => break,
            }
        }
        match pieces.next() {
            Some(piece) => conn.received(piece, now).expect("not lingering"),
            None => break,
        }
    }
    drain(&mut conn, &mut written, now);
    (requests, written, conn)
}

/// Writes all in-memory output of `conn` into `sink`.
fn drain(conn: &mut Connection<String>, sink: &mut Vec<u8>, now: Instant) {
    while let Some(out) = conn.front_output() {
        let (head, body) = out.unwritten();
        sink.extend_from_slice(head);
        sink.extend_from_slice(body);
        out.written = out.head.len() + out.body.len();
        assert!(out.file.is_none(), "tests use in-memory bodies");
        conn.pop_output();
    }
    conn.output_drained(now);
}

fn statuses(written: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(written);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text[at + 9..at + 12].parse().ok())
        .collect()
}

#[test]
fn a_request_gives_the_same_result_however_its_bytes_are_split() {
    let input: &[u8] = b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    let (whole, whole_out, _) = run(input, input.len(), 1024);
    assert_eq!(whole.len(), 2);
    assert_eq!(whole[0].body, b"hello");
    assert_eq!(whole[0].query, "x=1");
    assert_eq!(whole[1].body, b"abc");
    for split in 1..input.len() {
        let (requests, out, _) = run(input, split, 1024);
        let bodies: Vec<_> = requests.iter().map(|r| r.body.clone()).collect();
        let paths: Vec<_> = requests.iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            bodies,
            [b"hello".to_vec(), b"abc".to_vec()],
            "split {split}"
        );
        assert_eq!(paths, ["/a", "/b"], "split {split}");
        assert_eq!(out, whole_out, "split {split}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_one_at_a_time() {
    let now = Instant::now();
    let mut conn: Connection<String> = Connection::new(peer(), now);
    conn.received(
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
        now,
    )
    .expect("received");
    let Event::Request(first) = conn.process(route(0), now, DATE) else {
        panic!("first request")
    };
    assert_eq!(first.request.path, "/1");
    // The second waits in the buffer until the first is answered.
    assert!(matches!(conn.process(route(0), now, DATE), Event::Waiting));
    assert!(conn.is_waiting());
    conn.respond(Response::new(204), false, true, DATE);
    let Event::Request(second) = conn.process(route(0), now, DATE) else {
        panic!("second request")
    };
    assert_eq!(second.request.path, "/2");
    conn.respond(Response::new(200), false, true, DATE);
    let mut out = Vec::new();
    drain(&mut conn, &mut out, now);
    assert_eq!(statuses(&out), [204, 200]);
}

#[test]
fn each_malformed_head_is_answered_with_its_status_and_closes() {
    let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(9000));
    let table: Vec<(&[u8], u16)> = vec![
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"BREW / HTTP/1.1\r\nHost: h\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost: h\r\nExpect: tea\r\n\r\n", 417),
        (long_target.as_bytes(), 414),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n",
            413,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n",
            413,
        ),
    ];
    for (input, status) in table {
        let (requests, out, conn) = run(input, input.len(), 10);
        assert!(requests.is_empty(), "{}", String::from_utf8_lossy(input));
        assert_eq!(
            statuses(&out),
            [status],
            "{}",
            String::from_utf8_lossy(input)
        );
        assert!(String::from_utf8_lossy(&out).contains("Connection: close"));
        assert!(conn.linger_until().is_some(), "closes after the answer");
    }
}

#[test]
fn a_refused_head_gets_the_same_status_however_its_bytes_are_split() {
    // Found by the `conn` fuzz target: `HTTP/2` arriving before `.0` was
    // answered 400 (garbage) where the whole line is answered 505; a
    // request line whose first bytes are garbage was answered 400 when they
    // arrived alone and 414 when the whole long line came at once.
    let long_after_blank = format!("\r\nGET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(9000));
    let garbage_then_long = [b"G\x02T /".as_slice(), &[b'a'; 9000], b" HTTP/1.1\r\n\r\n"].concat();
    let long_then_garbage = [b"GET /".as_slice(), &[b'a'; 9000], b"\x02 HTTP/1.1\r\n\r\n"].concat();
    let headers_then_garbage = [
        b"GET / HTTP/1.1\r\nHost: h\r\nX: ".as_slice(),
        &[b'b'; 33000],
        b"\r\nBad Name: v\r\n\r\n",
    ]
    .concat();
    let table: Vec<(&[u8], u16)> = vec![
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"\r\nGET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
        (b"GET / HTTP/2.0 \r\n\r\n", 400),
        (b"GET / HTTP/2.0\rX\r\n\r\n", 400),
        (b"GET / HTTX/1.1\r\n\r\n", 400),
        (long_after_blank.as_bytes(), 414),
        // An error within the limits wins over a limit exceeded later, as it
        // does when the bytes within the limit arrive alone.
        (&garbage_then_long, 400),
        (&long_then_garbage, 414),
        (&headers_then_garbage, 431),
    ];
    for (input, status) in table {
        for split in [1, 2, 3, 5, 7, 13, input.len()] {
            let (requests, out, _) = run(input, split, 10);
            assert!(requests.is_empty(), "{}", String::from_utf8_lossy(input));
            assert_eq!(
                statuses(&out),
                [status],
                "{} in pieces of {split}",
                String::from_utf8_lossy(input)
            );
        }
    }
}

#[test]
fn continue_is_sent_only_to_a_client_still_waiting_for_it() {
    let head = b"POST /u HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    // The body has not arrived: the client waits for 100 Continue.
    let (requests, out, _) = run(head, head.len(), 10);
    assert!(requests.is_empty());
    assert!(out.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"), "{out:?}");
    // It sent the body anyway: no interim response.
    let mut with_body = head.to_vec();
    with_body.extend_from_slice(b"ok");
    let (requests, out, _) = run(&with_body, with_body.len(), 10);
    assert_eq!(requests.len(), 1);
    assert_eq!(statuses(&out), [200]);
    // Over the limit: the final status, never 100.
    let (_, out, _) = run(head, head.len(), 1);
    assert_eq!(statuses(&out), [413]);
}

#[test]
fn head_requests_and_bodiless_statuses_send_no_body() {
    let now = Instant::now();
    for (method, status, body_expected) in [
        ("HEAD", 200, false),
        ("GET", 304, false),
        ("GET", 204, false),
        ("GET", 200, true),
    ] {
        let mut conn: Connection<String> = Connection::new(peer(), now);
        let request = format!("{method} / HTTP/1.1\r\nHost: h\r\n\r\n");
        conn.received(request.as_bytes(), now).expect("received");
        let Event::Request(job) = conn.process(route(0), now, DATE) else {
            panic!("request")
        };
        conn.respond(
            Response::new(status).with_body("text/plain", "body!"),
            job.head_only,
            job.keep_alive,
            DATE,
        );
        let mut out = Vec::new();
        drain(&mut conn, &mut out, now);
        let text = String::from_utf8_lossy(&out);
        assert_eq!(
            text.ends_with("body!"),
            body_expected,
            "{method} {status}: {text}"
        );
        assert_eq!(
            text.contains("Content-Length: 5"),
            status != 304 && status != 204,
            "{method} {status}: {text}"
        );
    }
}

#[test]
fn keep_alive_follows_the_request_and_the_peer() {
    let table: [(&[u8], bool); 4] = [
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
            false,
        ),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
    ];
    let now = Instant::now();
    for (input, keep) in table {
        let mut conn: Connection<String> = Connection::new(peer(), now);
        conn.received(input, now).expect("received");
        let Event::Request(job) = conn.process(route(0), now, DATE) else {
            panic!("request")
        };
        assert_eq!(job.keep_alive, keep, "{}", String::from_utf8_lossy(input));
        conn.respond(Response::new(200), false, job.keep_alive, DATE);
        let mut out = Vec::new();
        while let Some(o) = conn.front_output() {
            out.extend_from_slice(&o.head);
            conn.pop_output();
        }
        assert_eq!(
            conn.output_drained(now),
            !keep,
            "half-close after the answer"
        );
        assert_eq!(
            String::from_utf8_lossy(&out).contains("Connection: close"),
            !keep
        );
    }
    // A peer that closed after sending a whole request gets its answer, then the connection ends.
    let mut conn: Connection<String> = Connection::new(peer(), now);
    conn.received(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", now)
        .expect("received");
    conn.read_closed();
    let Event::Request(job) = conn.process(route(0), now, DATE) else {
        panic!("request")
    };
    assert!(!job.keep_alive);
}

#[test]
fn a_peer_that_closes_mid_request_ends_the_connection_without_an_answer() {
    for input in [
        &b"GET / HT"[..],
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\n\r\nab",
    ] {
        let now = Instant::now();
        let mut conn: Connection<String> = Connection::new(peer(), now);
        conn.received(input, now).expect("received");
        assert!(matches!(
            conn.process(route(100), now, DATE),
            Event::NeedInput
        ));
        conn.read_closed();
        assert!(matches!(conn.process(route(100), now, DATE), Event::Close));
        assert!(!conn.has_output());
    }
}

#[test]
fn each_phase_has_its_deadline() {
    let t0 = Instant::now();
    let t = timeouts();
    let mut conn: Connection<String> = Connection::new(peer(), t0);
    // Idle: the idle timeout from the last progress, closing silently.
    assert_eq!(conn.deadline(&t).map(|d| d.0), Some(t0 + t.idle));
    assert!(conn.deadline(&t).is_some_and(|d| d.1.is_none()));
    // A head trickling in: the header timeout from its first byte, answered 408.
    let t1 = t0 + Duration::from_secs(1);
    conn.received(b"GET / HTTP/1.1\r\n", t1).expect("received");
    assert!(matches!(
        conn.process(route(10), t1, DATE),
        Event::NeedInput
    ));
    let t2 = t1 + Duration::from_secs(5);
    conn.received(b"Host: h\r\n", t2).expect("received");
    assert!(matches!(
        conn.process(route(10), t2, DATE),
        Event::NeedInput
    ));
    let (deadline, error) = conn.deadline(&t).expect("deadline");
    assert_eq!(deadline, t1 + t.header);
    assert_eq!(error, Some(ProtocolError::HeaderTimeout));
    // A body: the body timeout from the last byte, answered 408.
    let t3 = t2 + Duration::from_secs(1);
    conn.received(b"Content-Length: 4\r\n\r\nab", t3)
        .expect("received");
    assert!(matches!(
        conn.process(route(10), t3, DATE),
        Event::NeedInput
    ));
    let (deadline, error) = conn.deadline(&t).expect("deadline");
    assert_eq!(deadline, t3 + t.body);
    assert_eq!(error, Some(ProtocolError::BodyTimeout));
    // Timing out answers 408 and closes; the write timeout then applies.
    conn.time_out(ProtocolError::BodyTimeout, DATE);
    assert!(conn.has_output());
    assert_eq!(conn.deadline(&t).map(|d| d.0), Some(t3 + t.write));
    let mut out = Vec::new();
    let t4 = t3 + Duration::from_secs(2);
    drain(&mut conn, &mut out, t4);
    assert_eq!(statuses(&out), [408]);
    // Then lingering, until its own deadline.
    assert_eq!(conn.linger_until(), Some(t4 + LINGER_TIME));
    assert_eq!(conn.deadline(&t).map(|d| d.0), Some(t4 + LINGER_TIME));
    // A request with the layer above has no deadline here.
    let mut waiting: Connection<String> = Connection::new(peer(), t0);
    waiting
        .received(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", t0)
        .expect("received");
    assert!(matches!(
        waiting.process(route(0), t0, DATE),
        Event::Request(_)
    ));
    assert!(waiting.deadline(&t).is_none());
}

#[test]
fn a_lingering_connection_discards_input_up_to_a_bound() {
    let now = Instant::now();
    let input = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    let (_, _, mut conn) = run(input, input.len(), 0);
    assert!(conn.linger_until().is_some());
    assert!(conn.wants_input(), "lingering reads to discard");
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    let overflow = loop {
        match conn.received(&chunk, now) {
            Ok(()) => sent += chunk.len(),
            Err(e) => break e,
        }
        assert!(sent <= LINGER_BYTES, "never stops discarding");
    };
    assert_eq!(overflow, LingerOverflow);
    assert_eq!(conn.buffered(), 0, "discarded bytes are not buffered");
    conn.read_closed();
    assert!(matches!(conn.process(route(0), now, DATE), Event::Close));
}

#[test]
fn reading_pauses_while_a_request_waits_and_enough_is_buffered() {
    let now = Instant::now();
    let mut conn: Connection<String> = Connection::new(peer(), now);
    conn.received(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", now)
        .expect("received");
    assert!(matches!(
        conn.process(route(0), now, DATE),
        Event::Request(_)
    ));
    let ahead = vec![b'G'; MAX_BUFFERED_AHEAD];
    assert!(conn.wants_input());
    conn.received(&ahead, now).expect("received");
    assert!(!conn.wants_input(), "backpressure while the request waits");
    conn.respond(Response::new(200), false, true, DATE);
    assert!(conn.wants_input(), "reading resumes once answered");
    conn.read_closed();
    assert!(!conn.wants_input(), "nothing more once the peer closed");
}

#[test]
fn an_announced_body_length_reserves_no_more_than_a_bounded_buffer() {
    // Found by the `conn` fuzz target: the buffer was reserved for the whole
    // announced length, so `Content-Length` near `u64::MAX` under a route
    // without a limit aborted the process on allocation.
    for length in [u64::MAX, u64::MAX / 2, 1 << 40, 10 * 1024 * 1024] {
        let head = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {length}\r\n\r\nabc");
        let now = Instant::now();
        let mut conn = Connection::new(peer(), now);
        conn.received(head.as_bytes(), now).expect("not lingering");
        assert!(matches!(
            conn.process(route(u64::MAX), now, DATE),
            Event::NeedInput
        ));
        let Phase::Body(state) = &conn.phase else {
            panic!("{length}: not reading the body");
        };
        assert_eq!(state.body, b"abc", "{length}");
        assert!(
            state.body.capacity() <= MAX_BODY_RESERVE,
            "{length}: reserved {} bytes",
            state.body.capacity()
        );
    }
    // A body within the reserve still gets it all at once.
    let (requests, _, _) = run(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        3,
        10,
    );
    assert_eq!(requests[0].body, b"hello");
}

/// Writes what the connection has ready, refilling from its stream, until
/// the stream has nothing more for now; returns what `refill` said last.
fn drain_stream(conn: &mut Connection<String>, sink: &mut Vec<u8>) -> Refill {
    loop {
        let Some(out) = conn.front_output() else {
            return Refill::Done;
        };
        let (head, body) = out.unwritten();
        sink.extend_from_slice(head);
        sink.extend_from_slice(body);
        out.written = out.head.len() + out.body.len();
        if out.stream.is_none() {
            conn.pop_output();
            continue;
        }
        match conn.refill() {
            Refill::More => {}
            Refill::Done => conn.pop_output(),
            other => return other,
        }
    }
}

#[test]
fn a_streamed_answer_is_chunked_and_holds_back_the_next_request_until_it_ends() {
    use crate::http::stream::{Piece, channel};
    let now = Instant::now();
    let mut conn: Connection<String> = Connection::new(peer(), now);
    conn.received(
        b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n",
        now,
    )
    .expect("not lingering");
    let Event::Request(job) = conn.process(route(0), now, DATE) else {
        panic!("the first request")
    };
    let (sink, body) = channel(None, std::sync::Arc::new(|| {}));
    let mut resp = Response::new(200);
    resp.body = Body::Stream(body);
    conn.respond(resp, job.head_only, job.keep_alive, DATE);
    let mut written = Vec::new();
    assert_eq!(drain_stream(&mut conn, &mut written), Refill::Pending);
    let text = String::from_utf8_lossy(&written).into_owned();
    assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
    assert!(!text.contains("Content-Length"), "{text}");
    // The stream is the handler's: the pipelined request waits, and the
    // write deadline does not run while the handler makes the body.
    assert!(matches!(conn.process(route(0), now, DATE), Event::Waiting));
    assert_eq!(conn.deadline(&timeouts()), None);
    sink.send(Piece::Data(b"hi".to_vec()));
    assert_eq!(drain_stream(&mut conn, &mut written), Refill::Pending);
    sink.send(Piece::End(vec![("x-t".into(), "1".into())]));
    assert_eq!(drain_stream(&mut conn, &mut written), Refill::Done);
    assert!(String::from_utf8_lossy(&written).ends_with("\r\n\r\n2\r\nhi\r\n0\r\nx-t: 1\r\n\r\n"));
    let Event::Request(job) = conn.process(route(0), now, DATE) else {
        panic!("the second request, once the stream ended")
    };
    assert_eq!(job.request.path, "/b");
}

#[test]
fn a_broken_stream_closes_the_connection_after_what_was_sent() {
    use crate::http::stream::{Piece, channel};
    let now = Instant::now();
    let mut conn: Connection<String> = Connection::new(peer(), now);
    conn.received(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n", now)
        .expect("not lingering");
    let Event::Request(job) = conn.process(route(0), now, DATE) else {
        panic!("a request")
    };
    let (sink, body) = channel(Some(10), std::sync::Arc::new(|| {}));
    let mut resp = Response::new(200);
    resp.body = Body::Stream(body);
    conn.respond(resp, job.head_only, job.keep_alive, DATE);
    sink.send(Piece::Data(b"abc".to_vec()));
    drop(sink);
    let mut written = Vec::new();
    assert_eq!(drain_stream(&mut conn, &mut written), Refill::Broken);
    let text = String::from_utf8_lossy(&written).into_owned();
    assert!(text.contains("Content-Length: 10\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nabc"), "{text}");
}
