//! Static file serving from one directory: confined paths, validators, conditionals, ranges.
//!
//! One RFC concept per file; this one holds the public API and ties them together:
//!
//! - `path.rs`: the request path as text (limits, decoding, directory redirects);
//! - `resolve.rs`: the only filesystem I/O (opening beneath the root, `realpath`, small bodies);
//! - `validators.rs`: ETag, Last-Modified and the media type (RFC 9110 §8);
//! - `fields.rs`: reading the request header fields the rest depends on;
//! - `conditional.rs`: preconditions and entity-tag comparison (RFC 9110 §13);
//! - `range.rs`: one byte range and If-Range (RFC 9110 §14);
//! - `refusal.rs`: the one status table of this layer and the `Refusal`s;
//! - `fuzzing.rs`: plain-typed entry points for the fuzz targets (`fuzz/`), not an API.
//!
//! The RFC logic is pure: `StaticDir::serve` reads the clock once per
//! request and passes the time down.

mod conditional;
mod fields;
mod path;
mod range;
mod refusal;
mod resolve;
mod validators;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::http::request::wants_json;
use crate::http::{Body, Method, Response};

use conditional::{Precondition, evaluate_preconditions};
use range::{RangeOutcome, evaluate_range};
use refusal::{MOVED_PERMANENTLY, NOT_MODIFIED, OK, PARTIAL_CONTENT, Refusal};
use resolve::{Target, small_body};
use validators::{Validators, content_type};

/// A directory whose regular files are served read-only; nothing outside it ever is.
#[derive(Debug, Clone)]
pub struct StaticDir {
    /// Canonical (absolute, symlink-free) root; every served file resolves below it.
    root: PathBuf,
    /// The root, opened: paths without symlinks are opened relative to it,
    /// confined by the kernel (see [`StaticDir::open_beneath`]).
    root_fd: Arc<std::os::fd::OwnedFd>,
    /// Whether `openat2` works here (Linux 5.6 or later, not filtered by a
    /// sandbox); without it every path takes the portable route.
    beneath: bool,
}

impl StaticDir {
    /// Fails if root does not exist or is not a directory.
    ///
    /// # Errors
    /// The `canonicalize`/`metadata` error, or `NotADirectory`.
    pub fn open(root: &Path) -> io::Result<StaticDir> {
        StaticDir::open_root(root)
    }

    /// The canonical root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Answers a request for `rest`, the raw (still percent-encoded) request
    /// path below the mount point, e.g. "/css/site.css", "" or "/".
    /// `headers` are the request headers (name, value) in order.
    ///
    /// HEAD gets exactly the response GET would get except that `Range` is
    /// ignored (RFC 9110 §14.2); the caller drops the body. A directory named
    /// without its trailing slash gets a `MOVED_PERMANENTLY` with a *relative*
    /// `Location` (`./name/`); for `rest == ""` (the mount point itself) no
    /// relative form exists, so that redirect has no `Location` and the caller
    /// must add `Location: <mount path>/`.
    #[must_use]
    pub fn serve(&self, method: Method, rest: &str, headers: &[(String, String)]) -> Response {
        let result = match method {
            // The one clock read of a request; everything below is given `now`.
            Method::Get | Method::Head => self.serve_file(method, rest, headers, SystemTime::now()),
            _ => Err(Refusal::MethodNotAllowed),
        };
        result.unwrap_or_else(|refusal| {
            tracing::debug!(
                path = rest,
                status = refusal.status(),
                "static request refused"
            );
            refusal.into_response(wants_json(headers))
        })
    }

    /// As [`StaticDir::serve`], for a request whose whole path is `path`
    /// (mount point included): the mount point's own redirect gets
    /// `Location: <path>/`.
    #[must_use]
    pub fn serve_at(
        &self,
        method: Method,
        path: &str,
        rest: &str,
        headers: &[(String, String)],
    ) -> Response {
        let resp = self.serve(method, rest, headers);
        if rest.is_empty() && resp.status == MOVED_PERMANENTLY && resp.header("location").is_none()
        {
            resp.with_header("Location", format!("{path}/"))
        } else {
            resp
        }
    }

    fn serve_file(
        &self,
        method: Method,
        rest: &str,
        headers: &[(String, String)],
        now: SystemTime,
    ) -> Result<Response, Refusal> {
        let (file, logical, meta) = match self.resolve(rest)? {
            Target::File {
                file,
                logical,
                meta,
            } => (file, logical, meta),
            Target::Redirect(location) => {
                let resp = Response::new(MOVED_PERMANENTLY);
                return Ok(match location {
                    Some(location) => resp.with_header("Location", location),
                    None => resp,
                });
            }
        };
        let v = Validators::of(&meta, now);

        match evaluate_preconditions(headers, &v, now) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                let mut resp = Response::new(NOT_MODIFIED).with_header("ETag", v.etag.clone());
                if let Some(lm) = v.last_modified_header() {
                    resp = resp.with_header("Last-Modified", lm);
                }
                return Ok(resp);
            }
            Precondition::Failed => return Err(Refusal::PreconditionFailed),
        }

        let range = match method {
            Method::Get => evaluate_range(headers, &v),
            _ => RangeOutcome::Full,
        };
        let (status, offset, len) = match range {
            RangeOutcome::Full => (OK, 0, v.len),
            RangeOutcome::Partial { first, last } => (PARTIAL_CONTENT, first, last - first + 1),
            RangeOutcome::Unsatisfiable => return Err(Refusal::RangeNotSatisfiable(v.len)),
        };

        let mut resp = Response::new(status).with_header("Content-Type", content_type(&logical));
        if let Some(lm) = v.last_modified_header() {
            resp = resp.with_header("Last-Modified", lm);
        }
        resp = resp
            .with_header("ETag", v.etag.clone())
            .with_header("Accept-Ranges", "bytes");
        if status == PARTIAL_CONTENT {
            let last = offset + len - 1;
            resp = resp.with_header("Content-Range", format!("bytes {offset}-{last}/{}", v.len));
        }
        resp.body = small_body(&file, offset, len).unwrap_or(Body::File { file, offset, len });
        Ok(resp)
    }
}
