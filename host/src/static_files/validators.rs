//! Representation metadata (RFC 9110 §8): ETag and Last-Modified validators, length, media type.

use std::fs::Metadata;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// First second an HTTP-date cannot express (year 10000); `httpdate` panics at or after it.
const HTTP_DATE_END_SECS: u64 = 253_402_300_800;

/// The validators and length of the file being served.
#[derive(Debug)]
pub(super) struct Validators {
    /// Strong entity-tag, quotes included: `"<mtime-nanos-hex>-<len-hex>"`.
    pub(super) etag: String,
    /// Modification time in whole seconds since the epoch, when an HTTP-date can express it.
    pub(super) last_modified: Option<u64>,
    pub(super) len: u64,
}

impl Validators {
    /// The validators of a file with metadata `meta`, at time `now`.
    pub(super) fn of(meta: &Metadata, now: SystemTime) -> Validators {
        Validators::from_parts(meta.len(), meta.modified().ok(), now)
    }

    /// The validators of a file of `len` bytes modified at `mtime` (`None`:
    /// unknown), at time `now`.
    pub(super) fn from_parts(len: u64, mtime: Option<SystemTime>, now: SystemTime) -> Validators {
        // A Last-Modified in the future must be replaced by the current time (RFC 9110 §8.8.2.1).
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (mtime_tag, last_modified) = match mtime {
            Some(mtime) => match mtime.duration_since(UNIX_EPOCH) {
                Ok(since) => (
                    format!("{:x}", since.as_nanos()),
                    Some(since.as_secs().min(now)).filter(|&s| s < HTTP_DATE_END_SECS),
                ),
                Err(before) => (format!("-{:x}", before.duration().as_nanos()), None),
            },
            None => ("0".to_owned(), None),
        };
        Validators {
            etag: format!("\"{mtime_tag}-{len:x}\""),
            last_modified,
            len,
        }
    }

    pub(super) fn last_modified_header(&self) -> Option<String> {
        self.last_modified
            .map(|secs| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)))
    }
}

/// The media type for a path's extension; textual types are declared UTF-8.
pub(super) fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.essence_str(),
            "application/javascript" | "application/xml" | "image/svg+xml"
        );
    if textual {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::static_files::fixture::{
        ALPHA_DATE, ALPHA_MTIME, alpha_etag, body_bytes, fixture, get,
    };
    use std::fs::{self, File};

    #[test]
    fn content_types() {
        let f = fixture();
        let table = [
            (
                "/index.html",
                "text/html; charset=utf-8",
                &b"<h1>home</h1>"[..],
            ),
            ("/site.css", "text/css; charset=utf-8", b"body{}"),
            ("/app.js", "text/javascript; charset=utf-8", b"let a;"),
            (
                "/mod.mjs",
                "application/javascript; charset=utf-8",
                b"export {};",
            ),
            ("/data.json", "application/json", b"{}"),
            ("/notes.txt", "text/plain; charset=utf-8", b"notes"),
            ("/pic.png", "image/png", b"\x89PNG"),
            ("/logo.svg", "image/svg+xml; charset=utf-8", b"<svg/>"),
            ("/blob.unknownext", "application/octet-stream", b"??"),
            ("/noext", "application/octet-stream", b"raw"),
            ("/with%20space.txt", "text/plain; charset=utf-8", b"spaced"),
            ("/in-file.html", "text/html; charset=utf-8", b"<p>page</p>"),
        ];
        for (rest, ctype, body) in table {
            let mut resp = get(&f, rest, &[]);
            assert_eq!(resp.status, 200, "{rest}");
            assert_eq!(resp.header("Content-Type"), Some(ctype), "{rest}");
            assert_eq!(resp.header("Accept-Ranges"), Some("bytes"), "{rest}");
            assert_eq!(resp.header("Content-Length"), None, "{rest}");
            assert_eq!(body_bytes(&mut resp), body, "{rest}");
        }
    }

    #[test]
    fn validators_are_sent() {
        let f = fixture();
        let meta = fs::metadata(f.dir.root().join("alpha.txt")).unwrap();
        let nanos = meta
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let table = [
            ("/alpha.txt", format!("\"{nanos:x}-1a\""), Some(ALPHA_DATE)),
            ("/empty.txt", String::new(), None),
        ];
        for (rest, etag, last_modified) in table {
            let resp = get(&f, rest, &[]);
            assert_eq!(resp.status, 200);
            let got = resp.header("ETag").unwrap();
            assert!(got.starts_with('"') && got.ends_with('"'), "{got}");
            if !etag.is_empty() {
                assert_eq!(got, etag);
            }
            let lm = resp.header("Last-Modified").unwrap();
            assert!(httpdate::parse_http_date(lm).is_ok(), "{lm}");
            if let Some(expected) = last_modified {
                assert_eq!(lm, expected);
            }
        }
        // A changed file gets a different tag.
        let before = alpha_etag(&f);
        fs::write(f.dir.root().join("alpha.txt"), b"changed").unwrap();
        assert_ne!(alpha_etag(&f), before);
    }

    #[test]
    fn unrepresentable_mtime_omits_last_modified() {
        let f = fixture();
        let path = f.dir.root().join("notes.txt");
        let file = File::options().write(true).open(&path).unwrap();
        let before_epoch = UNIX_EPOCH - Duration::from_secs(86_400);
        if file.set_modified(before_epoch).is_err() {
            return; // the filesystem cannot store it; nothing to test
        }
        let resp = get(&f, "/notes.txt", &[("If-Modified-Since", ALPHA_DATE)]);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("Last-Modified"), None);
        let etag = resp.header("ETag").unwrap();
        assert!(etag.starts_with("\"-"), "{etag}");
    }

    #[test]
    fn future_mtime_is_clamped_to_now() {
        let f = fixture();
        let path = f.dir.root().join("notes.txt");
        let file = File::options().write(true).open(&path).unwrap();
        let tomorrow = SystemTime::now() + Duration::from_secs(86_400);
        file.set_modified(tomorrow).unwrap();
        let resp = get(&f, "/notes.txt", &[]);
        let lm = httpdate::parse_http_date(resp.header("Last-Modified").unwrap()).unwrap();
        assert!(lm <= SystemTime::now(), "Last-Modified in the future");
        assert!(lm + Duration::from_secs(60) > SystemTime::now());
    }

    #[test]
    fn last_modified_is_clamped_to_the_given_now() {
        let f = fixture();
        let meta = fs::metadata(f.dir.root().join("alpha.txt")).unwrap();
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        // (now, Last-Modified in seconds): the mtime is ALPHA_MTIME.
        let table = [
            (at(ALPHA_MTIME + 86_400), ALPHA_MTIME),
            (at(ALPHA_MTIME), ALPHA_MTIME),
            (at(ALPHA_MTIME - 60), ALPHA_MTIME - 60),
        ];
        for (now, last_modified) in table {
            let v = Validators::of(&meta, now);
            assert_eq!(v.last_modified, Some(last_modified), "{now:?}");
            assert_eq!(v.len, 26);
        }
    }
}
