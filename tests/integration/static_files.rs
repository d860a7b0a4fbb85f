//! Static files through the real server: conditional and range requests, directories, and traversal attempts.

use serde_json::json;

use crate::support::TestServer;

/// A server with `public/` mounted at `/static/`, and a secret next to it.
fn static_server() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(public.join("docs")).unwrap();
    std::fs::write(public.join("hello.txt"), "hello, static\n").unwrap();
    std::fs::write(public.join("style.css"), "body{}").unwrap();
    std::fs::write(public.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(public.join("big.bin"), &big).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), public.join("leak.txt")).unwrap();
    std::os::unix::fs::symlink(dir.path(), public.join("up")).unwrap();
    std::os::unix::fs::symlink(public.join("hello.txt"), public.join("alias.txt")).unwrap();
    TestServer::start_in(
        dir,
        json!({ "apps": {}, "routes": [{ "path": "/static/...", "static": "public" }] }),
        |_| {},
    )
}

#[test]
fn files_have_type_length_and_validators() {
    let server = static_server();
    let table = [
        (
            "/static/hello.txt",
            "text/plain; charset=utf-8",
            "hello, static\n",
        ),
        ("/static/style.css", "text/css; charset=utf-8", "body{}"),
        ("/static/docs/", "text/html; charset=utf-8", "<h1>docs</h1>"),
        (
            "/static/alias.txt",
            "text/plain; charset=utf-8",
            "hello, static\n",
        ),
    ];
    for (path, ctype, body) in table {
        let resp = server.get(path);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.header("content-type"), Some(ctype), "{path}");
        assert_eq!(resp.text(), body, "{path}");
        assert!(resp.header("etag").is_some(), "{path}");
        assert!(resp.header("last-modified").is_some(), "{path}");
    }
}

#[test]
fn directories_redirect_to_their_slash() {
    let server = static_server();
    let resp = server.get("/static/docs");
    assert_eq!(resp.status, 301);
    assert_eq!(resp.header("location"), Some("./docs/"));
    let resp = server.get("/static");
    assert_eq!(resp.status, 301);
    assert_eq!(resp.header("location"), Some("/static/"));
}

#[test]
fn conditional_requests_get_304() {
    let server = static_server();
    let first = server.get("/static/hello.txt");
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();
    let table = [
        (format!("If-None-Match: {etag}"), 304),
        (format!("If-None-Match: \"nope\", {etag}"), 304),
        (format!("If-None-Match: W/{etag}"), 304),
        ("If-None-Match: *".to_owned(), 304),
        ("If-None-Match: \"other\"".to_owned(), 200),
        (format!("If-Modified-Since: {modified}"), 304),
        (
            "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT".to_owned(),
            200,
        ),
    ];
    for (header, status) in table {
        let resp = server.request(&format!(
            "GET /static/hello.txt HTTP/1.1\r\nHost: h\r\n{header}\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(resp.status, status, "{header}");
        if status == 304 {
            assert!(resp.body.is_empty());
            assert_eq!(resp.header("etag"), Some(etag.as_str()));
        }
    }
}

#[test]
fn byte_ranges_get_206_or_416() {
    let server = static_server();
    let full = b"hello, static\n";
    let table: &[(&str, u16, &str, &[u8])] = &[
        ("bytes=0-4", 206, "bytes 0-4/14", b"hello"),
        ("bytes=7-", 206, "bytes 7-13/14", b"static\n"),
        ("bytes=-7", 206, "bytes 7-13/14", b"static\n"),
        ("bytes=5-100", 206, "bytes 5-13/14", b", static\n"),
        ("bytes=14-", 416, "bytes */14", b""),
        ("bytes=0-1,3-4", 200, "", full),
        ("lines=1-2", 200, "", full),
    ];
    for (range, status, content_range, body) in table {
        let resp = server.request(&format!(
            "GET /static/hello.txt HTTP/1.1\r\nHost: h\r\nRange: {range}\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(resp.status, *status, "{range}");
        if !content_range.is_empty() {
            assert_eq!(
                resp.header("content-range"),
                Some(*content_range),
                "{range}"
            );
        }
        if *status != 416 {
            assert_eq!(resp.body, *body, "{range}");
        }
    }
}

#[test]
fn large_files_stream_whole_and_in_ranges() {
    let server = static_server();
    let big: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let resp = server.get("/static/big.bin");
    assert_eq!(resp.status, 200);
    assert!(resp.body == big, "big file differs");
    let resp = server.request(
        "GET /static/big.bin HTTP/1.1\r\nHost: h\r\nRange: bytes=1000000-2500000\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(resp.status, 206);
    assert!(resp.body == big[1_000_000..=2_500_000], "range differs");
    // HEAD: headers only.
    let mut c = server.connect();
    c.send(b"HEAD /static/big.bin HTTP/1.1\r\nHost: h\r\n\r\n");
    let resp = c.read_head_response();
    assert_eq!(resp.header("content-length"), Some("3145728"));
    c.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(c.read_response().text(), "hello, static\n");
}

#[test]
fn a_file_that_shrinks_while_being_sent_ends_the_connection() {
    // Content-Length promised the whole file; once it shrinks the server can
    // only end the connection, and it must do so instead of hanging.
    const SIZE: u64 = 64 * 1024 * 1024;
    let server = static_server();
    let path = server.dir.path().join("public/shrinking.bin");
    // Sparse: 64 MiB, far more than loopback socket buffers hold.
    std::fs::File::create(&path).unwrap().set_len(SIZE).unwrap();
    let mut c = server.connect();
    c.send(b"GET /static/shrinking.bin HTTP/1.1\r\nHost: h\r\n\r\n");
    // Let the server fill the socket buffers, then cut the file.
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1024 * 1024)
        .unwrap();
    let started = std::time::Instant::now();
    let got = c.read_to_close();
    assert!(
        started.elapsed() < crate::support::READ_TIMEOUT,
        "the server neither finished nor closed"
    );
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    let head = String::from_utf8_lossy(&got[..head_end]);
    assert!(head.contains(&format!("Content-Length: {SIZE}")), "{head}");
    let body = (got.len() - head_end) as u64;
    assert!(
        body < SIZE,
        "got the whole promised body from a shrunk file"
    );
}

#[test]
fn nothing_outside_the_root_is_ever_served() {
    let server = static_server();
    let table = [
        "/static/../secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/%252e%252e/secret.txt",
        "/static/..\\secret.txt",
        "/static/%5c..%5csecret.txt",
        "/static/hello.txt%00.css",
        "/static/.%2e/secret.txt",
        "/static//../secret.txt",
        "/static/leak.txt",
        "/static/up/secret.txt",
        "/static/docs/../../secret.txt",
        "/static/%ff",
        "/static/.hidden",
    ];
    for path in table {
        let resp = server.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        ));
        assert!(
            resp.status == 400 || resp.status == 404,
            "{path}: got {} {}",
            resp.status,
            resp.text()
        );
        assert!(
            !resp.text().contains("TOP SECRET"),
            "{path} leaked the secret"
        );
    }
    // Methods other than GET and HEAD.
    let resp = server.request("POST /static/hello.txt HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!(resp.status, 405);
    assert_eq!(resp.header("allow"), Some("GET, HEAD"));
}
