//! HTTP/1.1 conformance of the connection layer over raw TCP: framing, pipelining, rejections, limits, timeouts.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{ChildServer, Client, TestServer, guests};

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = TestServer::hello();
    let mut c = server.connect();
    for _ in 0..5 {
        c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
        let resp = c.read_response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "Hello, world!");
        assert!(resp.header("connection").is_none());
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::hello();
    let mut c = server.connect();
    c.send(
        b"GET /hello/greet/one HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\ntwo!!\
          GET /hello/greet/three HTTP/1.1\r\nHost: h\r\n\r\n\
          POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfour\r\n0\r\n\r\n\
          GET /hello/greet/five HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    let bodies: Vec<String> = (0..5).map(|_| c.read_response().text()).collect();
    assert_eq!(
        bodies,
        [
            "Hello, one!",
            "two!!",
            "Hello, three!",
            "four",
            "Hello, five!"
        ]
    );
    assert!(
        c.is_closed(),
        "Connection: close must close after the last response"
    );
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let server = TestServer::hello();
    let mut c = server.connect();
    c.send(b"GET /hello HTTP/1.0\r\n\r\n");
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c.is_closed());

    let mut c = server.connect();
    c.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    c.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response().text(), "Hello, world!");
}

#[test]
fn connection_close_is_honoured() {
    let server = TestServer::hello();
    let mut c = server.connect();
    c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let resp = c.read_response();
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c.is_closed());
}

#[test]
fn head_has_the_get_headers_and_no_body() {
    let server = TestServer::hello();
    let mut c = server.connect();
    c.send(b"HEAD /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    let resp = c.read_head_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("13"));
    // The next response must start right after the head: no body was sent.
    c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.read_response().text(), "Hello, world!");
}

#[test]
fn chunked_bodies_with_extensions_and_trailers() {
    let server = TestServer::hello();
    let table: &[(&str, &str)] = &[
        ("5\r\nhello\r\n0\r\n\r\n", "hello"),
        ("5;ext=1\r\nhello\r\n1 ; x\r\n!\r\n0\r\n\r\n", "hello!"),
        ("3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", "abc"),
        ("0\r\n\r\n", ""),
    ];
    let mut c = server.connect();
    for (chunked, expected) in table {
        c.send(format!("POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}").as_bytes());
        let resp = c.read_response();
        assert_eq!(resp.status, 200, "{chunked:?}");
        assert_eq!(resp.text(), *expected, "{chunked:?}");
    }
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    let server = TestServer::hello();
    let mut c = server.connect();
    c.send(b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    let interim = c.read_response();
    assert_eq!(interim.status, 100);
    c.send(b"body");
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "body");

    // Too large: a final 413 instead of 100, without waiting for the body.
    let server = TestServer::start(json!({
        "apps": { "hello": { "module": guests::HELLO, "limits": { "max_body": 1024 } } },
        "routes": [{ "path": "/hello/...", "app": "hello" }]
    }));
    let mut c = server.connect();
    c.send(b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
    let resp = c.read_response();
    assert_eq!(resp.status, 413);
}

/// Sends `raw` and expects `status` followed by the connection closing.
fn assert_rejected(server: &TestServer, raw: &[u8], status: u16) {
    let mut c = server.connect();
    let _ = c.try_send(raw);
    let resp = c.read_response();
    assert_eq!(
        resp.status,
        status,
        "{:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(120)])
    );
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(c.is_closed(), "connection left open after {status}");
}

#[test]
fn request_smuggling_attempts_are_rejected_and_closed() {
    let server = TestServer::hello();
    let table: &[&[u8]] = &[
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3,3\r\n\r\nabc",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1e3\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length : 3\r\n\r\nabc",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nX-Fold: a\r\n b\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
        b"POST /hello/echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /hello HTTP/1.1\r\n\r\n",
        b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
        b"GET /hello HTTP/1.1\nHost: h\n\n\x00",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"GET /he llo HTTP/1.1\r\nHost: h\r\n\r\n",
    ];
    for raw in table {
        assert_rejected(&server, raw, 400);
    }
    // The server is unharmed.
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn status_specific_rejections() {
    let server = TestServer::start(json!({
        "apps": { "hello": { "module": guests::HELLO, "limits": { "max_body": 1024 } } },
        "routes": [{ "path": "/hello/...", "app": "hello" }]
    }));
    let long_target = format!(
        "GET /hello/{} HTTP/1.1\r\nHost: h\r\n\r\n",
        "a".repeat(9000)
    );
    let huge_header = format!(
        "GET /hello HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n",
        "b".repeat(40_000)
    );
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    let many_headers = format!("GET /hello HTTP/1.1\r\nHost: h\r\n{many}\r\n");
    let big_chunked = format!(
        "POST /hello/echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
        "c".repeat(0x800)
    );
    let table: Vec<(Vec<u8>, u16)> = vec![
        (long_target.into_bytes(), 414),
        (huge_header.into_bytes(), 431),
        (many_headers.into_bytes(), 431),
        (
            b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 2048\r\n\r\n".to_vec(),
            413,
        ),
        (big_chunked.into_bytes(), 413),
        (b"BREW /hello HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(), 501),
        (b"TRACE /hello HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(), 501),
        (b"GET /hello HTTP/2.0\r\nHost: h\r\n\r\n".to_vec(), 505),
        (
            b"GET /hello HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n".to_vec(),
            417,
        ),
    ];
    for (raw, status) in table {
        assert_rejected(&server, &raw, status);
    }
    // Exactly at the limit is fine.
    let mut c = server.connect();
    c.send(b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1024\r\n\r\n");
    c.send(&[b'x'; 1024]);
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), 1024);
}

#[test]
fn every_response_carries_a_date() {
    let server = TestServer::hello();
    for path in ["/hello", "/nope"] {
        let resp = server.get(path);
        let date = resp.header("date").expect("Date header");
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    }
}

/// Waits until the server closes `c`, returning what it sent before closing.
fn read_until_closed(c: &mut Client) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let out = c.read_to_close();
    (out, started.elapsed())
}

#[test]
fn slow_headers_time_out_with_408() {
    let server = TestServer::start_with(crate::support::hello_routes(), |s| {
        s.header_timeout = Duration::from_secs(1);
    });
    let mut c = server.connect();
    c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\nX-Slow: ");
    let (out, elapsed) = read_until_closed(&mut c);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[test]
fn slow_bodies_time_out_with_408() {
    let server = TestServer::start_with(crate::support::hello_routes(), |s| {
        s.body_timeout = Duration::from_secs(1);
    });
    let mut c = server.connect();
    c.send(b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nonly a part");
    let (out, elapsed) = read_until_closed(&mut c);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let server = TestServer::start_with(crate::support::hello_routes(), |s| {
        s.idle_timeout = Duration::from_secs(1);
    });
    let mut c = server.connect();
    c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
    let (out, elapsed) = read_until_closed(&mut c);
    assert!(
        out.is_empty(),
        "idle close must be silent: {:?}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        elapsed >= Duration::from_millis(500),
        "closed too early: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

/// Idle and slow connections never hold a worker: with two workers and
/// 10,000 idle keep-alive connections plus slowloris clients open, a new
/// client is still served. The server runs as its own process so that each
/// side holds 10,000 descriptors under the usual 20,000 limit.
#[test]
fn ten_thousand_idle_connections_do_not_block_a_new_client() {
    const IDLE: usize = 10_000;
    let needed = (IDLE + 1000) as u64;
    let raised = rlimit::increase_nofile_limit(needed).unwrap_or(0);
    assert!(
        raised >= needed,
        "this test needs {needed} open files; the limit is {raised}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("routes.json"),
        serde_json::to_vec(&crate::support::hello_routes()).unwrap(),
    )
    .unwrap();
    let server = ChildServer::spawn(dir.path(), &["--workers", "2"]);
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut c = Client::connect(server.addr);
        if i % 100 == 0 {
            // Some have served a request and are now idle keep-alive...
            c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
            assert_eq!(c.read_response().status, 200);
        } else if i % 100 == 1 {
            // ...and some are slowloris clients stuck mid-head.
            c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\nX-Slow: ");
        }
        idle.push(c);
    }
    let started = Instant::now();
    let mut c = Client::connect(server.addr);
    c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), "Hello, world!");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "new client waited {:?}",
        started.elapsed()
    );
    // The idle ones are still usable afterwards.
    let c = &mut idle[0];
    c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn a_client_that_disconnects_mid_request_leaks_nothing() {
    let server = TestServer::start_with(crate::support::hello_routes(), |s| s.workers = 1);
    for _ in 0..50 {
        let mut c = server.connect();
        c.send(b"POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\npartial");
        drop(c);
        let mut c = server.connect();
        c.send(b"GET /hello HTTP/1.1\r\nHost: h\r\n\r\n");
        drop(c);
    }
    // Once the abandoned requests are dropped or done, the one worker serves again.
    let started = Instant::now();
    while server.get("/hello").status != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server never recovered"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn garbage_never_panics_or_hangs_the_server() {
    let server = TestServer::hello();
    // Deterministic pseudo-random bytes, sometimes after a valid prefix.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..200 {
        let mut bytes = if i % 2 == 0 {
            b"GET /hello HTTP/1.1\r\n".to_vec()
        } else {
            Vec::new()
        };
        for _ in 0..(i * 7 % 300) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            bytes.push(seed as u8);
        }
        bytes.extend_from_slice(b"\r\n\r\n");
        let mut c = server.connect();
        let _ = c.try_send(&bytes);
        c.stream()
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = Vec::new();
        let _ = c.stream().take(1 << 20).read_to_end(&mut buf);
    }
    assert_eq!(server.get("/hello").text(), "Hello, world!");
}

#[test]
fn shutdown_finishes_in_flight_requests() {
    let server = TestServer::hello();
    let mut c = server.connect();
    // A large body keeps the request in flight while shutdown begins.
    let body = vec![b'z'; 2 * 1024 * 1024];
    c.send(
        format!(
            "POST /hello/echo HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    c.send(&body[..1024]);
    let addr = server.addr;
    let stopper = std::thread::spawn(move || server.stop());
    std::thread::sleep(Duration::from_millis(300));
    c.send(&body[1024..]);
    let resp = c.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body.len(), body.len());
    assert_eq!(resp.header("connection"), Some("close"));
    stopper.join().unwrap();
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}
