//! Static file serving from one directory: confined paths, validators, conditionals, ranges.

use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};

use crate::http::{Body, Method, Response};

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

/// Longest raw `rest` accepted (414 beyond): Linux `PATH_MAX`; a longer path names no file.
const MAX_PATH_LEN: usize = 4096;
/// Most path segments accepted (414 beyond): bounds per-request work; no real site nests deeper.
const MAX_SEGMENTS: usize = 64;
/// First second an HTTP-date cannot express (year 10000); `httpdate` panics at or after it.
const HTTP_DATE_END_SECS: u64 = 253_402_300_800;
/// Largest file body read into memory on the worker (sent with the head in
/// one `writev`); larger ones are sent from the file with `sendfile`.
const SMALL_FILE: u64 = 16 * 1024;
/// The file served for a directory requested with a trailing slash; there are no listings.
const INDEX_FILE: &str = "index.html";
/// Characters escaped when a decoded segment is put back into a `Location` path segment.
const SEGMENT_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

// ---------------------------------------------------------------------------
// Status table: every status this module produces.
//
//   200 whole file          206 one satisfiable range   301 directory named without `/`
//   304 not modified        400 malformed path          403 exists but unreadable
//   404 missing, hidden, outside the root or not a regular file
//   405 not GET/HEAD        412 If-Match / If-Unmodified-Since failed
//   414 path too long/deep  416 range wholly beyond the end
//
// The 4xx answers are the `Refusal`s below, mapped in `Refusal::status`.
// ---------------------------------------------------------------------------

/// Why a request is not answered with (part of) the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 400: the path text itself is unacceptable, whatever is on disk: an invalid
    /// or non-UTF-8 percent-escape, NUL or another control character, `/` or `\`
    /// inside a segment (`%2F`, `%5C`, raw `\`), a `.` or `..` segment, or an
    /// empty segment (`//`).
    BadPath,
    /// 414: the path exceeds `MAX_PATH_LEN` or `MAX_SEGMENTS`.
    TooLong,
    /// 404: missing, hidden (a segment or resolved component starting with `.`),
    /// resolving outside the root, or not a regular file. Deliberately
    /// indistinguishable from one another.
    NotFound,
    /// 403: exists inside the root but the server may not read it.
    Forbidden,
    /// 405: any method but GET and HEAD.
    MethodNotAllowed,
    /// 412: If-Match or If-Unmodified-Since failed.
    PreconditionFailed,
    /// 416: the single byte range lies wholly beyond the file (its length here).
    RangeNotSatisfiable(u64),
}

impl Refusal {
    fn status(self) -> u16 {
        match self {
            Refusal::BadPath => 400,
            Refusal::Forbidden => 403,
            Refusal::NotFound => 404,
            Refusal::MethodNotAllowed => 405,
            Refusal::PreconditionFailed => 412,
            Refusal::TooLong => 414,
            Refusal::RangeNotSatisfiable(_) => 416,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::BadPath => "Bad Request: invalid path\n",
            Refusal::Forbidden => "Forbidden\n",
            Refusal::NotFound => "Not Found\n",
            Refusal::MethodNotAllowed => "Method Not Allowed\n",
            Refusal::PreconditionFailed => "Precondition Failed\n",
            Refusal::TooLong => "URI Too Long\n",
            Refusal::RangeNotSatisfiable(_) => "Range Not Satisfiable\n",
        }
    }

    fn into_response(self) -> Response {
        let mut resp = Response::new(self.status());
        match self {
            Refusal::MethodNotAllowed => resp = resp.with_header("Allow", "GET, HEAD"),
            Refusal::RangeNotSatisfiable(len) => {
                resp = resp.with_header("Content-Range", format!("bytes */{len}"));
            }
            _ => {}
        }
        resp.with_body("text/plain; charset=utf-8", self.message())
    }
}

/// How an I/O error met while resolving or opening a path is answered.
fn io_refusal(err: &io::Error) -> Refusal {
    match err.kind() {
        io::ErrorKind::PermissionDenied => Refusal::Forbidden,
        // NotFound, NotADirectory, InvalidFilename (ENAMETOOLONG), symlink loops,
        // and anything unexpected: never reveal more than "not here".
        _ => Refusal::NotFound,
    }
}

// ---------------------------------------------------------------------------
// The served directory
// ---------------------------------------------------------------------------

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

/// What a path resolved to.
#[derive(Debug)]
enum Target {
    /// A regular file, opened: the logical (requested) path, whose extension
    /// picks the media type, and its metadata.
    File {
        file: File,
        logical: PathBuf,
        meta: Metadata,
    },
    /// A directory named without a trailing slash; the relative `Location`
    /// that adds it, or `None` for the mount point itself (`rest == ""`).
    Redirect(Option<String>),
}

impl StaticDir {
    /// Fails if root does not exist or is not a directory.
    ///
    /// # Errors
    /// The `canonicalize`/`metadata` error, or `NotADirectory`.
    pub fn open(root: &Path) -> io::Result<StaticDir> {
        let root = fs::canonicalize(root)?;
        if !fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("static root {} is not a directory", root.display()),
            ));
        }
        let root_fd = rustix::fs::open(
            &root,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        let beneath = rustix::fs::openat2(
            &root_fd,
            ".",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
            rustix::fs::ResolveFlags::BENEATH,
        )
        .is_ok();
        Ok(StaticDir {
            root,
            root_fd: Arc::new(root_fd),
            beneath,
        })
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
    /// without its trailing slash gets a 301 with a *relative* `Location`
    /// (`./name/`); for `rest == ""` (the mount point itself) no relative form
    /// exists, so that 301 has no `Location` and the caller must add
    /// `Location: <mount path>/`.
    #[must_use]
    pub fn serve(&self, method: Method, rest: &str, headers: &[(String, String)]) -> Response {
        let result = match method {
            Method::Get | Method::Head => self.serve_file(method, rest, headers),
            _ => Err(Refusal::MethodNotAllowed),
        };
        result.unwrap_or_else(|refusal| {
            tracing::debug!(
                path = rest,
                status = refusal.status(),
                "static request refused"
            );
            refusal.into_response()
        })
    }

    fn serve_file(
        &self,
        method: Method,
        rest: &str,
        headers: &[(String, String)],
    ) -> Result<Response, Refusal> {
        let (file, logical, meta) = match self.resolve(rest)? {
            Target::File {
                file,
                logical,
                meta,
            } => (file, logical, meta),
            Target::Redirect(location) => {
                let resp = Response::new(301);
                return Ok(match location {
                    Some(location) => resp.with_header("Location", location),
                    None => resp,
                });
            }
        };
        let v = Validators::of(&meta);

        match evaluate_preconditions(headers, &v) {
            Precondition::Proceed => {}
            Precondition::NotModified => {
                let mut resp = Response::new(304).with_header("ETag", v.etag.clone());
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
            RangeOutcome::Full => (200, 0, v.len),
            RangeOutcome::Partial { first, last } => (206, first, last - first + 1),
            RangeOutcome::Unsatisfiable => return Err(Refusal::RangeNotSatisfiable(v.len)),
        };

        let mut resp = Response::new(status).with_header("Content-Type", content_type(&logical));
        if let Some(lm) = v.last_modified_header() {
            resp = resp.with_header("Last-Modified", lm);
        }
        resp = resp
            .with_header("ETag", v.etag.clone())
            .with_header("Accept-Ranges", "bytes");
        if status == 206 {
            let last = offset + len - 1;
            resp = resp.with_header("Content-Range", format!("bytes {offset}-{last}/{}", v.len));
        }
        resp.body = small_body(&file, offset, len).unwrap_or(Body::File { file, offset, len });
        Ok(resp)
    }

    /// Maps `rest` onto an opened regular file (or a redirect) inside the root.
    fn resolve(&self, rest: &str) -> Result<Target, Refusal> {
        let parsed = parse_path(rest)?;
        if parsed.segments.iter().any(|s| s.starts_with('.')) {
            return Err(Refusal::NotFound);
        }
        let mut logical = self.root.clone();
        logical.extend(&parsed.segments);
        // A trailing slash names a directory's index: open that directly.
        let index = parsed.trailing_slash.then_some(INDEX_FILE);
        let names: Vec<&str> = parsed
            .segments
            .iter()
            .map(String::as_str)
            .chain(index)
            .collect();
        let relative = if names.is_empty() {
            ".".to_owned()
        } else {
            names.join("/")
        };
        match self.open_beneath(&relative)? {
            Some((_, meta)) if meta.is_dir() && index.is_none() => Ok(redirect_to_dir(&parsed)),
            Some((file, meta)) if meta.is_file() => Ok(Target::File {
                file,
                logical: match index {
                    Some(index) => logical.join(index),
                    None => logical,
                },
                meta,
            }),
            // A FIFO, socket, device, or a directory named `index.html`.
            Some(_) => Err(Refusal::NotFound),
            None => self.resolve_by_path(&parsed, logical),
        }
    }

    /// Opens `relative` (segments joined by `/`, none of them hidden) below
    /// the root in one `openat2` call that follows no symlink and cannot
    /// leave the root, then `fstat`s it: two syscalls instead of `realpath`'s
    /// one per component. `O_NONBLOCK` keeps a FIFO from blocking the open
    /// (it is refused after the `fstat`). `Ok(None)` means this route cannot
    /// decide: a symlink is on the way, or the kernel has no `openat2`; the
    /// caller then resolves by path.
    fn open_beneath(&self, relative: &str) -> Result<Option<(File, Metadata)>, Refusal> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        use rustix::io::Errno;
        if !self.beneath {
            return Ok(None);
        }
        let opened = rustix::fs::openat2(
            &*self.root_fd,
            relative,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        );
        let fd = match opened {
            Ok(fd) => fd,
            // A symlink on the way (ELOOP), a path the kernel would not keep
            // beneath the root (EXDEV), or no read permission on something
            // the portable route may still answer without reading it (a
            // directory's redirect): decided by the portable route.
            Err(Errno::LOOP | Errno::XDEV | Errno::AGAIN | Errno::ACCESS | Errno::PERM) => {
                return Ok(None);
            }
            Err(e) => return Err(io_refusal(&io::Error::from(e))),
        };
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| io_refusal(&e))?;
        Ok(Some((file, meta)))
    }

    /// The portable route: canonicalize, confine, check, then open and
    /// verify that the file opened is the one checked.
    fn resolve_by_path(&self, parsed: &ParsedPath, logical: PathBuf) -> Result<Target, Refusal> {
        let (real, meta) = self.confine(&logical)?;

        if meta.is_dir() {
            if !parsed.trailing_slash {
                return Ok(redirect_to_dir(parsed));
            }
            let logical = logical.join(INDEX_FILE);
            let (real, meta) = self.confine(&real.join(INDEX_FILE))?;
            if !meta.is_file() {
                return Err(Refusal::NotFound);
            }
            let (file, meta) = open_regular(&real, &meta)?;
            return Ok(Target::File {
                file,
                logical,
                meta,
            });
        }
        // A trailing slash after a file name names nothing (ENOTDIR), as does
        // anything that is not a regular file (FIFO, socket, device).
        if parsed.trailing_slash || !meta.is_file() {
            return Err(Refusal::NotFound);
        }
        let (file, meta) = open_regular(&real, &meta)?;
        Ok(Target::File {
            file,
            logical,
            meta,
        })
    }

    /// Canonicalizes `path` and checks that it lies inside the root and that no
    /// component below the root is hidden (a symlink may not expose a dotfile).
    fn confine(&self, path: &Path) -> Result<(PathBuf, Metadata), Refusal> {
        let real = fs::canonicalize(path).map_err(|e| io_refusal(&e))?;
        let Ok(below) = real.strip_prefix(&self.root) else {
            tracing::debug!(path = %path.display(), "static path resolves outside the root");
            return Err(Refusal::NotFound);
        };
        if below
            .components()
            .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."))
        {
            return Err(Refusal::NotFound);
        }
        let meta = fs::metadata(&real).map_err(|e| io_refusal(&e))?;
        Ok((real, meta))
    }
}

/// A body of at most [`SMALL_FILE`] bytes read now, on the worker, so that
/// the event loop sends head and body in one `writev`; `None` for larger
/// bodies, or if the read comes up short (the file shrank: the streaming
/// path then ends the connection rather than send a wrong length).
fn small_body(file: &File, offset: u64, len: u64) -> Option<Body> {
    use std::os::unix::fs::FileExt;
    if len > SMALL_FILE {
        return None;
    }
    let mut bytes = vec![0; usize::try_from(len).ok()?];
    file.read_exact_at(&mut bytes, offset).ok()?;
    Some(Body::Bytes(bytes))
}

/// The redirect for a directory named without its trailing slash.
fn redirect_to_dir(parsed: &ParsedPath) -> Target {
    let location = parsed
        .segments
        .last()
        .map(|last| format!("./{}/", utf8_percent_encode(last, SEGMENT_ESCAPES)));
    Target::Redirect(location)
}

/// Opens a path already checked to be a regular file and verifies (by device
/// and inode) that what was opened is that same file, so a swap between the
/// check and the open cannot substitute another file. Only regular files
/// reach `File::open`, so a FIFO is never opened (which could block).
fn open_regular(real: &Path, checked: &Metadata) -> Result<(File, Metadata), Refusal> {
    let file = File::open(real).map_err(|e| io_refusal(&e))?;
    let meta = file.metadata().map_err(|e| io_refusal(&e))?;
    if !meta.is_file() || !same_file(&meta, checked) {
        tracing::debug!(path = %real.display(), "static file changed between check and open");
        return Err(Refusal::NotFound);
    }
    Ok((file, meta))
}

#[cfg(unix)]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &Metadata, _: &Metadata) -> bool {
    true
}

// ---------------------------------------------------------------------------
// Path parsing
// ---------------------------------------------------------------------------

/// A request path split into decoded, validated segments.
#[derive(Debug, PartialEq, Eq)]
struct ParsedPath {
    segments: Vec<String>,
    trailing_slash: bool,
}

/// Splits `rest` at `/` and decodes each segment exactly once.
/// `""` is the mount point itself; a non-empty `rest` not starting with `/`
/// is not below the mount point at all (404).
fn parse_path(rest: &str) -> Result<ParsedPath, Refusal> {
    if rest.len() > MAX_PATH_LEN {
        return Err(Refusal::TooLong);
    }
    let Some(inner) = rest.strip_prefix('/') else {
        return if rest.is_empty() {
            Ok(ParsedPath {
                segments: Vec::new(),
                trailing_slash: false,
            })
        } else {
            Err(Refusal::NotFound)
        };
    };
    if inner.is_empty() {
        return Ok(ParsedPath {
            segments: Vec::new(),
            trailing_slash: true,
        });
    }
    let (inner, trailing_slash) = match inner.strip_suffix('/') {
        Some(stripped) => (stripped, true),
        None => (inner, false),
    };
    let mut segments = Vec::new();
    for raw in inner.split('/') {
        if segments.len() == MAX_SEGMENTS {
            return Err(Refusal::TooLong);
        }
        segments.push(decode_segment(raw)?);
    }
    Ok(ParsedPath {
        segments,
        trailing_slash,
    })
}

/// Percent-decodes one segment (once) and refuses anything that could step
/// out of its directory or confuse the filesystem.
fn decode_segment(raw: &str) -> Result<String, Refusal> {
    if raw.is_empty() {
        return Err(Refusal::BadPath);
    }
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(Refusal::BadPath);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let decoded =
        String::from_utf8(percent_decode(bytes).collect()).map_err(|_| Refusal::BadPath)?;
    if decoded == "." || decoded == ".." {
        return Err(Refusal::BadPath);
    }
    if decoded
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(Refusal::BadPath);
    }
    Ok(decoded)
}

// ---------------------------------------------------------------------------
// Representation metadata
// ---------------------------------------------------------------------------

/// The validators and length of the file being served.
#[derive(Debug)]
struct Validators {
    /// Strong entity-tag, quotes included: `"<mtime-nanos-hex>-<len-hex>"`.
    etag: String,
    /// Modification time in whole seconds since the epoch, when an HTTP-date can express it.
    last_modified: Option<u64>,
    len: u64,
}

impl Validators {
    fn of(meta: &Metadata) -> Validators {
        let len = meta.len();
        // A Last-Modified in the future must be replaced by the current time (RFC 9110 §8.8.2.1).
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (mtime_tag, last_modified) = match meta.modified() {
            Ok(mtime) => match mtime.duration_since(UNIX_EPOCH) {
                Ok(since) => (
                    format!("{:x}", since.as_nanos()),
                    Some(since.as_secs().min(now)).filter(|&s| s < HTTP_DATE_END_SECS),
                ),
                Err(before) => (format!("-{:x}", before.duration().as_nanos()), None),
            },
            Err(_) => ("0".to_owned(), None),
        };
        Validators {
            etag: format!("\"{mtime_tag}-{len:x}\""),
            last_modified,
            len,
        }
    }

    fn last_modified_header(&self) -> Option<String> {
        self.last_modified
            .map(|secs| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)))
    }
}

/// The media type for a path's extension; textual types are declared UTF-8.
fn content_type(path: &Path) -> String {
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

// ---------------------------------------------------------------------------
// Conditional requests (RFC 9110 §13)
// ---------------------------------------------------------------------------

fn header_values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The value of a header that must occur once; `None` if absent or repeated.
fn single_header<'a>(headers: &'a [(String, String)], name: &'a str) -> Option<&'a str> {
    let mut values = header_values(headers, name);
    match (values.next(), values.next()) {
        (Some(value), None) => Some(value.trim()),
        _ => None,
    }
}

/// Parses a single HTTP-date header into whole seconds since the epoch;
/// absent, repeated, unparsable or pre-epoch values give `None` (ignored).
fn date_header(headers: &[(String, String)], name: &str) -> Option<u64> {
    let date = httpdate::parse_http_date(single_header(headers, name)?).ok()?;
    date.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// How entity-tags are compared (RFC 9110 §8.8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Both tags strong and identical (If-Match, If-Range).
    Strong,
    /// Opaque tags identical, `W/` ignored (If-None-Match).
    Weak,
}

/// Whether any value of a list header (`*` or `#entity-tag`) matches `etag`
/// (our strong tag, quotes included). A malformed list matches only as far
/// as it parsed.
fn etag_list_matches(
    headers: &[(String, String)],
    name: &str,
    etag: &str,
    cmp: Comparison,
) -> bool {
    header_values(headers, name).any(|value| {
        if value.trim() == "*" {
            return true;
        }
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return false;
            }
            let Some((tag, after)) = split_entity_tag(rest) else {
                return false;
            };
            if entity_tag_matches(tag, etag, cmp) {
                return true;
            }
            rest = after;
        }
    })
}

/// Splits one entity-tag (`W/"x"` or `"x"`) off the front of `s`.
fn split_entity_tag(s: &str) -> Option<(&str, &str)> {
    let start = if s.starts_with("W/") { 2 } else { 0 };
    let opaque = s.get(start..)?.strip_prefix('"')?;
    let close = opaque.find('"')?;
    let end = start + 1 + close + 1;
    Some((s.get(..end)?, s.get(end..)?))
}

fn entity_tag_matches(tag: &str, etag: &str, cmp: Comparison) -> bool {
    match (tag.strip_prefix("W/"), cmp) {
        (Some(_), Comparison::Strong) => false,
        (Some(opaque), Comparison::Weak) => opaque == etag,
        (None, _) => tag == etag,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Precondition {
    Proceed,
    NotModified,
    Failed,
}

/// Evaluates the preconditions in the order of RFC 9110 §13.2.2 for GET/HEAD.
fn evaluate_preconditions(headers: &[(String, String)], v: &Validators) -> Precondition {
    if header_values(headers, "if-match").next().is_some() {
        if !etag_list_matches(headers, "if-match", &v.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let (Some(limit), Some(modified)) =
        (date_header(headers, "if-unmodified-since"), v.last_modified)
        && modified > limit
    {
        return Precondition::Failed;
    }

    if header_values(headers, "if-none-match").next().is_some() {
        if etag_list_matches(headers, "if-none-match", &v.etag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let (Some(since), Some(modified)) =
        (date_header(headers, "if-modified-since"), v.last_modified)
        && modified <= since
        && !is_future(since)
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// A date later than now is invalid as If-Modified-Since (it would pin a cache forever).
fn is_future(secs: u64) -> bool {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .is_ok_and(|now| secs > now.as_secs())
}

// ---------------------------------------------------------------------------
// Range requests (RFC 9110 §14)
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
enum RangeOutcome {
    /// No usable Range: send the whole representation (200).
    Full,
    /// One satisfiable range, both ends inclusive and within the file (206).
    Partial { first: u64, last: u64 },
    /// A valid single range that lies wholly outside the file (416).
    Unsatisfiable,
}

/// Decides between 200, 206 and 416 for a GET. Absent, repeated, malformed
/// and multi-range `Range` headers, and a failed `If-Range`, all mean 200.
fn evaluate_range(headers: &[(String, String)], v: &Validators) -> RangeOutcome {
    let Some(range) = single_header(headers, "range") else {
        return RangeOutcome::Full;
    };
    if header_values(headers, "if-range").next().is_some() && !if_range_matches(headers, v) {
        return RangeOutcome::Full;
    }
    parse_range(range, v.len)
}

/// An If-Range entity-tag must match strongly; a date must equal Last-Modified exactly.
fn if_range_matches(headers: &[(String, String)], v: &Validators) -> bool {
    let Some(value) = single_header(headers, "if-range") else {
        return false;
    };
    if value.starts_with('"') || value.starts_with("W/") {
        return entity_tag_matches(value, &v.etag, Comparison::Strong);
    }
    match (date_header(headers, "if-range"), v.last_modified) {
        (Some(date), Some(modified)) => date == modified,
        _ => false,
    }
}

/// Parses a `bytes=` range header holding one range-spec against a file of `len` bytes.
fn parse_range(value: &str, len: u64) -> RangeOutcome {
    let Some((unit, set)) = value.split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((first, last)) = set.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let Some(n) = digits(last) else {
            return RangeOutcome::Full;
        };
        if n == 0 || len == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial {
            first: len.saturating_sub(n),
            last: len - 1,
        };
    }
    let Some(first) = digits(first) else {
        return RangeOutcome::Full;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match digits(last) {
            Some(last) if last >= first => last,
            _ => return RangeOutcome::Full,
        }
    };
    if first >= len {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        first,
        last: last.min(len - 1),
    }
}

/// A non-empty run of ASCII digits, saturating at `u64::MAX` (a huge last-pos
/// still means "to the end"; a huge first-pos is still past the end).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};
    use tempfile::TempDir;

    const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-ROOT";
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    /// 2020-01-01T00:00:00Z, the mtime given to `/alpha.txt`.
    const ALPHA_MTIME: u64 = 1_577_836_800;
    const ALPHA_DATE: &str = "Wed, 01 Jan 2020 00:00:00 GMT";

    /// A temp dir holding `secret.txt` and `outside/secret.txt` next to `root/`,
    /// which is served.
    struct Fixture {
        _tmp: TempDir,
        dir: StaticDir,
    }

    fn write(path: &Path, contents: &[u8]) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, contents).unwrap();
    }

    fn fixture() -> Fixture {
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

    fn request(f: &Fixture, method: Method, rest: &str, headers: &[(&str, &str)]) -> Response {
        f.dir.serve(method, rest, &hdrs(headers))
    }

    fn get(f: &Fixture, rest: &str, headers: &[(&str, &str)]) -> Response {
        request(f, Method::Get, rest, headers)
    }

    /// Reads the bytes the connection layer would send.
    fn body_bytes(resp: &mut Response) -> Vec<u8> {
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
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    fn alpha_etag(f: &Fixture) -> String {
        get(f, "/alpha.txt", &[]).header("ETag").unwrap().to_owned()
    }

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
    fn not_modified() {
        let f = fixture();
        let etag = alpha_etag(&f);
        let weak = format!("W/{etag}");
        let list = format!("\"nope\", W/\"x,y\" , {etag}");
        let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(86_400));
        let table: Vec<(Vec<(&str, &str)>, u16)> = vec![
            (vec![("If-None-Match", &etag)], 304),
            (vec![("if-none-match", &list)], 304),
            (vec![("If-None-Match", "*")], 304),
            (vec![("If-None-Match", &weak)], 304),
            (
                vec![("If-None-Match", "\"a\""), ("If-None-Match", &etag)],
                304,
            ),
            (vec![("If-None-Match", "\"other\"")], 200),
            (vec![("If-None-Match", "garbage")], 200),
            (vec![("If-None-Match", &etag[1..])], 200),
            // If-None-Match present: If-Modified-Since is ignored.
            (
                vec![
                    ("If-None-Match", "\"other\""),
                    ("If-Modified-Since", ALPHA_DATE),
                ],
                200,
            ),
            (vec![("If-Modified-Since", ALPHA_DATE)], 304),
            (
                vec![("If-Modified-Since", "Thu, 02 Jan 2020 00:00:00 GMT")],
                304,
            ),
            (
                vec![("If-Modified-Since", "Tue, 31 Dec 2019 23:59:59 GMT")],
                200,
            ),
            (vec![("If-Modified-Since", "not a date")], 200),
            (vec![("If-Modified-Since", future.as_str())], 200),
            (
                vec![
                    ("If-Modified-Since", ALPHA_DATE),
                    ("If-Modified-Since", ALPHA_DATE),
                ],
                200,
            ),
        ];
        for (headers, status) in &table {
            for method in [Method::Get, Method::Head] {
                let mut resp = request(&f, method, "/alpha.txt", headers);
                assert_eq!(resp.status, *status, "{method:?} {headers:?}");
                if *status == 304 {
                    assert_eq!(resp.header("ETag"), Some(etag.as_str()));
                    assert_eq!(resp.header("Last-Modified"), Some(ALPHA_DATE));
                    assert!(body_bytes(&mut resp).is_empty());
                } else {
                    assert_eq!(body_bytes(&mut resp), ALPHABET);
                }
            }
        }
    }

    #[test]
    fn preconditions_fail_with_412() {
        let f = fixture();
        let etag = alpha_etag(&f);
        let weak = format!("W/{etag}");
        let list = format!("\"a\", {etag}");
        let table: Vec<(Vec<(&str, &str)>, u16)> = vec![
            (vec![("If-Match", &etag)], 200),
            (vec![("If-Match", &list)], 200),
            (vec![("If-Match", "*")], 200),
            (vec![("If-Match", "\"other\"")], 412),
            (vec![("If-Match", &weak)], 412),
            (vec![("If-Unmodified-Since", ALPHA_DATE)], 200),
            (
                vec![("If-Unmodified-Since", "Tue, 31 Dec 2019 23:59:59 GMT")],
                412,
            ),
            (vec![("If-Unmodified-Since", "bogus")], 200),
            // If-Match present: If-Unmodified-Since is ignored.
            (
                vec![
                    ("If-Match", &etag),
                    ("If-Unmodified-Since", "Tue, 31 Dec 2019 23:59:59 GMT"),
                ],
                200,
            ),
        ];
        for (headers, status) in &table {
            let resp = get(&f, "/alpha.txt", headers);
            assert_eq!(resp.status, *status, "{headers:?}");
        }
    }

    #[test]
    fn ranges() {
        let f = fixture();
        // (Range, status, Content-Range, body)
        let table: &[(&str, u16, Option<&str>, &[u8])] = &[
            ("bytes=0-4", 206, Some("bytes 0-4/26"), b"abcde"),
            ("bytes=25-25", 206, Some("bytes 25-25/26"), b"z"),
            ("bytes=20-", 206, Some("bytes 20-25/26"), b"uvwxyz"),
            ("bytes=-3", 206, Some("bytes 23-25/26"), b"xyz"),
            ("bytes=24-100", 206, Some("bytes 24-25/26"), b"yz"),
            ("bytes=-100", 206, Some("bytes 0-25/26"), ALPHABET),
            ("BYTES=1-1", 206, Some("bytes 1-1/26"), b"b"),
            ("bytes= 2-3 ", 206, Some("bytes 2-3/26"), b"cd"),
            (
                "bytes=0-99999999999999999999999",
                206,
                Some("bytes 0-25/26"),
                ALPHABET,
            ),
            (
                "bytes=26-",
                416,
                Some("bytes */26"),
                b"Range Not Satisfiable\n",
            ),
            (
                "bytes=26-30",
                416,
                Some("bytes */26"),
                b"Range Not Satisfiable\n",
            ),
            (
                "bytes=99999999999999999999-",
                416,
                Some("bytes */26"),
                b"Range Not Satisfiable\n",
            ),
            (
                "bytes=-0",
                416,
                Some("bytes */26"),
                b"Range Not Satisfiable\n",
            ),
            // Ignored: multiple ranges, malformed, other units.
            ("bytes=0-1,3-4", 200, None, ALPHABET),
            ("bytes=0-1, 30-40", 200, None, ALPHABET),
            ("bytes=5-2", 200, None, ALPHABET),
            ("bytes=abc", 200, None, ALPHABET),
            ("bytes=-", 200, None, ALPHABET),
            ("bytes=1-2-3", 200, None, ALPHABET),
            ("bytes=+1-2", 200, None, ALPHABET),
            ("bytes 0-1", 200, None, ALPHABET),
            ("items=0-1", 200, None, ALPHABET),
            ("", 200, None, ALPHABET),
        ];
        for (range, status, content_range, body) in table {
            let mut resp = get(&f, "/alpha.txt", &[("Range", range)]);
            assert_eq!(resp.status, *status, "{range}");
            assert_eq!(resp.header("Content-Range"), *content_range, "{range}");
            assert_eq!(body_bytes(&mut resp), *body, "{range}");
            if *status == 206 {
                assert_eq!(
                    resp.header("Content-Type"),
                    Some("text/plain; charset=utf-8")
                );
                assert!(resp.header("ETag").is_some());
            }
        }
        // Repeated Range headers are malformed: full response.
        let resp = get(
            &f,
            "/alpha.txt",
            &[("Range", "bytes=0-1"), ("Range", "bytes=2-3")],
        );
        assert_eq!((resp.status, resp.body.len()), (200, 26));
        // Every range of an empty file is unsatisfiable.
        for range in ["bytes=0-", "bytes=-5", "bytes=0-0"] {
            let resp = get(&f, "/empty.txt", &[("Range", range)]);
            assert_eq!(resp.status, 416, "{range}");
            assert_eq!(resp.header("Content-Range"), Some("bytes */0"));
        }
    }

    #[test]
    fn if_range() {
        let f = fixture();
        let etag = alpha_etag(&f);
        let weak = format!("W/{etag}");
        let table: &[(&str, u16)] = &[
            (&etag, 206),
            ("\"stale\"", 200),
            (&weak, 200),
            (ALPHA_DATE, 206),
            ("Thu, 02 Jan 2020 00:00:00 GMT", 200),
            ("Tue, 31 Dec 2019 23:59:59 GMT", 200),
            ("garbage", 200),
        ];
        for (if_range, status) in table {
            let mut resp = get(
                &f,
                "/alpha.txt",
                &[("Range", "bytes=0-2"), ("If-Range", if_range)],
            );
            assert_eq!(resp.status, *status, "{if_range}");
            let expected: &[u8] = if *status == 206 { b"abc" } else { ALPHABET };
            assert_eq!(body_bytes(&mut resp), expected, "{if_range}");
        }
        // A failed If-Range also overrides an unsatisfiable range.
        let resp = get(
            &f,
            "/alpha.txt",
            &[("Range", "bytes=99-"), ("If-Range", "\"stale\"")],
        );
        assert_eq!(resp.status, 200);
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
                    Some("text/plain; charset=utf-8")
                );
                assert_eq!(body_bytes(&mut resp), b"Method Not Allowed\n");
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
            ("/noindex/", 404, None, b"Not Found\n"),
            ("/idxdir/", 404, None, b"Not Found\n"),
            ("/sub/page.html/", 404, None, b"Not Found\n"),
            ("/missing/", 404, None, b"Not Found\n"),
        ];
        for (rest, status, location, body) in table {
            let mut resp = get(&f, rest, &[]);
            assert_eq!(resp.status, *status, "{rest:?}");
            assert_eq!(resp.header("Location"), *location, "{rest:?}");
            assert_eq!(body_bytes(&mut resp), *body, "{rest:?}");
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
                assert_eq!(
                    resp.header("Content-Type"),
                    Some("text/plain; charset=utf-8"),
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

    #[test]
    fn small_bodies_are_read_now_and_large_ones_sent_from_the_file() {
        let f = fixture();
        let big: Vec<u8> = (0..SMALL_FILE + 1).map(|i| (i % 251) as u8).collect();
        write(&f.dir.root().join("big.bin"), &big);
        let small = &big[..SMALL_FILE as usize];
        write(&f.dir.root().join("small.bin"), small);
        let last = SMALL_FILE.to_string();
        // (path, Range, expected body, read into memory?)
        let table: [(&str, &str, &[u8], bool); 5] = [
            ("/small.bin", "", small, true),
            ("/big.bin", "", &big, false),
            ("/big.bin", "bytes=1-", &big[1..], true),
            ("/big.bin", "bytes=0-", &big, false),
            (
                "/big.bin",
                &format!("bytes={last}-"),
                &big[SMALL_FILE as usize..],
                true,
            ),
        ];
        for (rest, range, want, in_memory) in table {
            let headers: &[(&str, &str)] = if range.is_empty() {
                &[]
            } else {
                &[("Range", range)]
            };
            let mut resp = get(&f, rest, headers);
            assert!(resp.status == 200 || resp.status == 206, "{rest} {range}");
            assert_eq!(
                matches!(resp.body, Body::Bytes(_)),
                in_memory,
                "{rest} {range}"
            );
            assert_eq!(body_bytes(&mut resp), want, "{rest} {range}");
        }
    }

    #[test]
    fn both_routes_answer_alike_and_plain_paths_take_the_fast_one() {
        let f = fixture();
        assert!(f.dir.beneath, "openat2 should work on this kernel");
        assert!(f.dir.open_beneath("alpha.txt").unwrap().is_some());
        assert!(f.dir.open_beneath("sub/page.html").unwrap().is_some());
        // Symlinks, even inside the root, are left to the portable route.
        assert!(f.dir.open_beneath("in-file.html").unwrap().is_none());
        assert!(f.dir.open_beneath("in-dir/page.html").unwrap().is_none());
        let portable = StaticDir {
            beneath: false,
            ..f.dir.clone()
        };
        let paths = [
            "",
            "/",
            "/alpha.txt",
            "/alpha.txt/",
            "/sub",
            "/sub/",
            "/sub/page.html",
            "/in-file.html",
            "/in-dir",
            "/in-dir/",
            "/in-dir/page.html",
            "/env-link",
            "/out-file",
            "/out-rel",
            "/out-dir/secret.txt",
            "/out-dir/",
            "/loop-a",
            "/missing.txt",
            "/missing/",
            "/.env",
            "/index.html",
            "/index.html/",
        ];
        for rest in paths {
            let mut fast = f.dir.serve(Method::Get, rest, &[]);
            let mut slow = portable.serve(Method::Get, rest, &[]);
            assert_eq!(fast.status, slow.status, "{rest:?}");
            for name in ["Location", "Content-Type", "ETag", "Content-Length"] {
                assert_eq!(fast.header(name), slow.header(name), "{rest:?} {name}");
            }
            assert_eq!(body_bytes(&mut fast), body_bytes(&mut slow), "{rest:?}");
        }
    }

    #[test]
    fn segment_decoding() {
        let table: &[(&str, Result<&str, Refusal>)] = &[
            ("plain.txt", Ok("plain.txt")),
            ("with%20space", Ok("with space")),
            ("%E2%82%AC", Ok("\u{20ac}")),
            ("%252e", Ok("%2e")),
            ("..", Err(Refusal::BadPath)),
            ("%2e", Err(Refusal::BadPath)),
            ("%2E%2e", Err(Refusal::BadPath)),
            ("a%2Fb", Err(Refusal::BadPath)),
            ("a%5Cb", Err(Refusal::BadPath)),
            ("a\\b", Err(Refusal::BadPath)),
            ("a%00", Err(Refusal::BadPath)),
            ("a%7f", Err(Refusal::BadPath)),
            ("%ff", Err(Refusal::BadPath)),
            ("%", Err(Refusal::BadPath)),
            ("%g0", Err(Refusal::BadPath)),
            ("", Err(Refusal::BadPath)),
        ];
        for (raw, expected) in table {
            assert_eq!(
                decode_segment(raw).as_deref().map_err(|e| *e),
                *expected,
                "{raw:?}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_not_served() {
        let f = fixture();
        let root = f.dir.root().to_path_buf();
        let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap();
        assert!(status.success());
        std::os::unix::fs::symlink("/dev/null", root.join("dev-null")).unwrap();
        // Opening a FIFO with no writer blocks: run on a thread so that a
        // regression fails here instead of hanging the test run.
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = f.dir.clone();
        std::thread::spawn(move || {
            for rest in ["/sock", "/fifo", "/fifo/", "/dev-null"] {
                let status = dir.serve(Method::Get, rest, &[]).status;
                let _ = tx.send((rest, status));
            }
        });
        for expected in ["/sock", "/fifo", "/fifo/", "/dev-null"] {
            let (rest, status) = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("serving a special file blocked");
            assert_eq!((rest, status), (expected, 404));
        }
    }

    #[test]
    fn swapped_file_is_not_opened() {
        let f = fixture();
        let alpha = f.dir.root().join("alpha.txt");
        let other = fs::metadata(f.dir.root().join("notes.txt")).unwrap();
        assert_eq!(
            open_regular(&alpha, &other).err(),
            Some(Refusal::NotFound),
            "a different inode than the one checked must be refused"
        );
        let same = fs::metadata(&alpha).unwrap();
        let (_, meta) = open_regular(&alpha, &same).unwrap();
        assert_eq!(meta.len(), 26);
    }

    #[test]
    fn io_errors_map_to_statuses() {
        let table = [
            (io::ErrorKind::PermissionDenied, Refusal::Forbidden),
            (io::ErrorKind::NotFound, Refusal::NotFound),
            (io::ErrorKind::NotADirectory, Refusal::NotFound),
            (io::ErrorKind::InvalidFilename, Refusal::NotFound),
            (io::ErrorKind::Other, Refusal::NotFound),
        ];
        for (kind, refusal) in table {
            assert_eq!(io_refusal(&io::Error::from(kind)), refusal, "{kind:?}");
        }
        let statuses: Vec<u16> = [
            Refusal::BadPath,
            Refusal::Forbidden,
            Refusal::NotFound,
            Refusal::MethodNotAllowed,
            Refusal::PreconditionFailed,
            Refusal::TooLong,
            Refusal::RangeNotSatisfiable(0),
        ]
        .iter()
        .map(|r| r.into_response().status)
        .collect();
        assert_eq!(statuses, [400, 403, 404, 405, 412, 414, 416]);
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_file_is_403() {
        use std::os::unix::fs::PermissionsExt;
        let f = fixture();
        let path = f.dir.root().join("notes.txt");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
        let readable = File::open(&path).is_ok(); // true when running as root
        let mut resp = get(&f, "/notes.txt", &[]);
        if readable {
            assert_eq!(resp.status, 200);
            assert_eq!(body_bytes(&mut resp), b"notes");
        } else {
            assert_eq!(resp.status, 403);
            assert_eq!(body_bytes(&mut resp), b"Forbidden\n");
        }
    }
}
