//! The temp-dir fixture and request helpers that every file's tests share.
//!
//! A served `root/` with files, directories and symlinks, and secrets beside it.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use tempfile::TempDir;

use super::StaticDir;
use crate::http::{Body, Method, Response};

pub(super) const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-ROOT";
pub(super) const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
/// 2020-01-01T00:00:00Z, the mtime given to `/alpha.txt`.
pub(super) const ALPHA_MTIME: u64 = 1_577_836_800;
pub(super) const ALPHA_DATE: &str = "Wed, 01 Jan 2020 00:00:00 GMT";

/// A temp dir holding `secret.txt` and `outside/secret.txt` next to `root/`,
/// which is served.
pub(super) struct Fixture {
    _tmp: TempDir,
    pub(super) dir: StaticDir,
}

pub(super) fn write(path: &Path, contents: &[u8]) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, contents).unwrap();
}

pub(super) fn fixture() -> Fixture {
    let tmp = TempDir::new().unwrap();
    let base = tmp.path();
    write(&base.join("secret.txt"), SECRET);
    write(&base.join("outside/secret.txt"), SECRET);
    let root = base.join("root");
    for (name, contents) in [
        ("index.html", &b"<h1>home</h1>"[..]),
        ("site.css", b"body{}"),
        ("app.js", b"let a;"),
        ("mod.mjs", b"export {};"),
        ("data.json", b"{}"),
        ("notes.txt", b"notes"),
        ("pic.png", b"\x89PNG"),
        ("logo.svg", b"<svg/>"),
        ("blob.unknownext", b"??"),
        ("noext", b"raw"),
        ("alpha.txt", ALPHABET),
        ("empty.txt", b""),
        ("with space.txt", b"spaced"),
        (".hidden", b"hidden"),
        (".env", b"DB_PASSWORD=x"),
        ("sub/index.html", b"<p>sub</p>"),
        ("sub/page.html", b"<p>page</p>"),
        ("sub/deeper/index.html", b"<p>deeper</p>"),
        ("noindex/file.txt", b"x"),
        ("dir name/index.html", b"<p>spaced dir</p>"),
        (
            "idxdir/index.html/inner.txt",
            b"index.html is a directory here",
        ),
    ] {
        write(&root.join(name), contents);
    }
    let alpha = File::options()
        .write(true)
        .open(root.join("alpha.txt"))
        .unwrap();
    alpha
        .set_modified(UNIX_EPOCH + Duration::from_secs(ALPHA_MTIME))
        .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(base.join("secret.txt"), root.join("out-file")).unwrap();
        symlink("../secret.txt", root.join("out-rel")).unwrap();
        symlink(base.join("outside"), root.join("out-dir")).unwrap();
        symlink(root.join("sub/page.html"), root.join("in-file.html")).unwrap();
        symlink("sub", root.join("in-dir")).unwrap();
        symlink(".env", root.join("env-link")).unwrap();
        symlink("loop-b", root.join("loop-a")).unwrap();
        symlink("loop-a", root.join("loop-b")).unwrap();
    }
    let dir = StaticDir::open(&root).unwrap();
    Fixture { _tmp: tmp, dir }
}

fn hdrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn request(
    f: &Fixture,
    method: Method,
    rest: &str,
    headers: &[(&str, &str)],
) -> Response {
    f.dir.serve(method, rest, &hdrs(headers))
}

pub(super) fn get(f: &Fixture, rest: &str, headers: &[(&str, &str)]) -> Response {
    request(f, Method::Get, rest, headers)
}

/// Reads the bytes the connection layer would send.
pub(super) fn body_bytes(resp: &mut Response) -> Vec<u8> {
    match &mut resp.body {
        Body::Empty => Vec::new(),
        Body::Bytes(b) => b.clone(),
        Body::File { file, offset, len } => {
            file.seek(SeekFrom::Start(*offset)).unwrap();
            let mut out = Vec::new();
            file.take(*len).read_to_end(&mut out).unwrap();
            assert_eq!(out.len() as u64, *len, "file shorter than Body::File len");
            out
        }
        Body::Stream(_) => panic!("static files never stream a body"),
    }
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub(super) fn alpha_etag(f: &Fixture) -> String {
    get(f, "/alpha.txt", &[]).header("ETag").unwrap().to_owned()
}
