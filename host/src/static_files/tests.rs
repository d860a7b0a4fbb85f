//! Tests of the whole served directory: `StaticDir::serve` against real files and symlinks.

use std::fs;
use std::io;

use tempfile::TempDir;

use super::StaticDir;
use super::fixture::{SECRET, body_bytes, contains, fixture, get, request, write};
use super::path::{MAX_PATH_LEN, MAX_SEGMENTS};
use crate::http::Method;

#[test]
fn open_requires_an_existing_directory() {
    let tmp = TempDir::new().unwrap();
    write(&tmp.path().join("file"), b"x");
    assert!(StaticDir::open(&tmp.path().join("missing")).is_err());
    let err = StaticDir::open(&tmp.path().join("file")).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
    let dir = StaticDir::open(&tmp.path().join(".")).unwrap();
    assert_eq!(dir.root(), fs::canonicalize(tmp.path()).unwrap());
}

#[test]
fn head_matches_get() {
    let f = fixture();
    let table: &[(&str, &[(&str, &str)])] = &[
        ("/alpha.txt", &[]),
        ("/sub/", &[]),
        ("/sub", &[]),
        ("/missing", &[]),
        ("/../secret.txt", &[]),
        ("/alpha.txt", &[("If-None-Match", "*")]),
    ];
    for (rest, headers) in table {
        let g = get(&f, rest, headers);
        let h = request(&f, Method::Head, rest, headers);
        assert_eq!(h.status, g.status, "{rest}");
        assert_eq!(h.headers, g.headers, "{rest}");
        assert_eq!(h.body.len(), g.body.len(), "{rest}");
    }
    // Range is defined only for GET (RFC 9110 §14.2): HEAD gets the full 200.
    let h = request(&f, Method::Head, "/alpha.txt", &[("Range", "bytes=0-1")]);
    assert_eq!((h.status, h.body.len()), (200, 26));
    assert_eq!(h.header("Content-Range"), None);
}

#[test]
fn other_methods_are_405() {
    let f = fixture();
    for method in [
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
    ] {
        for rest in ["/alpha.txt", "/missing", "/../x"] {
            let mut resp = request(&f, method, rest, &[]);
            assert_eq!(resp.status, 405, "{method:?} {rest}");
            assert_eq!(resp.header("Allow"), Some("GET, HEAD"));
            assert_eq!(
                resp.header("Content-Type"),
                Some("text/html; charset=utf-8")
            );
            let body = body_bytes(&mut resp);
            assert!(contains(&body, b"<h1>405 Method Not Allowed</h1>"));
        }
    }
}

#[test]
fn directories() {
    let f = fixture();
    // (rest, status, Location, body)
    let table: &[(&str, u16, Option<&str>, &[u8])] = &[
        ("/sub", 301, Some("./sub/"), b""),
        ("/sub/deeper", 301, Some("./deeper/"), b""),
        ("/dir%20name", 301, Some("./dir%20name/"), b""),
        ("/in-dir", 301, Some("./in-dir/"), b""),
        ("", 301, None, b""),
        ("/", 200, None, b"<h1>home</h1>"),
        ("/sub/", 200, None, b"<p>sub</p>"),
        ("/sub/deeper/", 200, None, b"<p>deeper</p>"),
        ("/in-dir/", 200, None, b"<p>sub</p>"),
        ("/dir%20name/", 200, None, b"<p>spaced dir</p>"),
        ("/sub/index.html", 200, None, b"<p>sub</p>"),
        ("/noindex/", 404, None, b"404 Not Found"),
        ("/idxdir/", 404, None, b"404 Not Found"),
        ("/sub/page.html/", 404, None, b"404 Not Found"),
        ("/missing/", 404, None, b"404 Not Found"),
    ];
    for (rest, status, location, body) in table {
        let mut resp = get(&f, rest, &[]);
        assert_eq!(resp.status, *status, "{rest:?}");
        assert_eq!(resp.header("Location"), *location, "{rest:?}");
        let got = body_bytes(&mut resp);
        if *status == 404 {
            // Refusals are the server's generic error page.
            let text = String::from_utf8_lossy(&got);
            assert!(text.contains("<h1>404 Not Found</h1>"), "{rest:?}: {text}");
        } else {
            assert_eq!(got, *body, "{rest:?}");
        }
        if *status == 200 {
            assert_eq!(
                resp.header("Content-Type"),
                Some("text/html; charset=utf-8")
            );
        }
    }
}

#[test]
fn traversal_and_bad_paths_are_refused() {
    let f = fixture();
    let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
    let deep = "/a".repeat(MAX_SEGMENTS + 1);
    let table: &[(&str, u16)] = &[
        ("/../secret.txt", 400),
        ("/..%2fsecret.txt", 400),
        ("/%2e%2e/secret.txt", 400),
        ("/%2E%2E%2Fsecret.txt", 400),
        ("/%2e%2e%2fsecret.txt", 400),
        ("/sub/../../secret.txt", 400),
        ("/sub/%2e%2e/%2e%2e/secret.txt", 400),
        ("/./alpha.txt", 400),
        ("/%2e/alpha.txt", 400),
        ("/a/..\\..\\secret.txt", 400),
        ("/%5c..%5csecret.txt", 400),
        ("/..%5csecret.txt", 400),
        ("/x%00.txt", 400),
        ("/alpha.txt%00.png", 400),
        ("/x%0a.txt", 400),
        ("/%ff", 400),
        ("/%c0%ae%c0%ae/secret.txt", 400),
        ("/bad%", 400),
        ("/bad%2", 400),
        ("/bad%zz", 400),
        ("//etc/passwd", 400),
        ("//secret.txt", 400),
        ("/sub//page.html", 400),
        ("//", 400),
        (long.as_str(), 414),
        (deep.as_str(), 414),
        // Decoded once only: a literal name that does not exist.
        ("/%252e%252e/secret.txt", 404),
        ("/.hidden", 404),
        ("/.env", 404),
        ("/%2eenv", 404),
        ("/...", 404),
        ("/sub/.hidden", 404),
        ("/env-link", 404),
        ("/out-file", 404),
        ("/out-rel", 404),
        ("/out-dir/secret.txt", 404),
        ("/out-dir/", 404),
        ("/out-dir", 404),
        ("/loop-a", 404),
        ("/missing.txt", 404),
        ("secret.txt", 404),
        ("../secret.txt", 404),
    ];
    for (rest, status) in table {
        for method in [Method::Get, Method::Head] {
            let mut resp = request(&f, method, rest, &[]);
            assert_eq!(resp.status, *status, "{method:?} {rest:?}");
            assert_eq!(resp.header("Location"), None, "{rest:?}");
            let body = body_bytes(&mut resp);
            assert!(!contains(&body, SECRET), "{rest:?} leaked the secret");
            assert!(!contains(&body, b"DB_PASSWORD"), "{rest:?} leaked .env");
            // The server's generic error page, the same as every layer's.
            assert_eq!(
                resp.header("Content-Type"),
                Some("text/html; charset=utf-8"),
                "{rest:?}"
            );
        }
    }
    // Decoded exactly once: "%252e%252e" names a literal directory "%2e%2e".
    write(&f.dir.root().join("%2e%2e/secret.txt"), b"literal");
    let mut resp = get(&f, "/%252e%252e/secret.txt", &[]);
    assert_eq!(resp.status, 200);
    assert_eq!(body_bytes(&mut resp), b"literal");
    // Symlinks that stay inside the root are fine.
    for (rest, body) in [
        ("/in-file.html", &b"<p>page</p>"[..]),
        ("/in-dir/page.html", b"<p>page</p>"),
    ] {
        let mut resp = get(&f, rest, &[]);
        assert_eq!(resp.status, 200, "{rest}");
        assert_eq!(body_bytes(&mut resp), body);
    }
}
