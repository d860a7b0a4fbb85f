//! The only filesystem I/O of static serving: a parsed path to an opened regular file beneath the root.
//!
//! Opening the root; one `openat2` beneath it for paths without symlinks,
//! `realpath` plus a same-inode check for the rest; reading small bodies.

use std::fs::{self, File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::StaticDir;
use super::path::{ParsedPath, parse_path};
use super::refusal::Refusal;
use crate::http::Body;

/// Largest file body read into memory on the worker (sent with the head in
/// one `writev`); larger ones are sent from the file with `sendfile`.
const SMALL_FILE: u64 = 16 * 1024;
/// The file served for a directory requested with a trailing slash; there are no listings.
const INDEX_FILE: &str = "index.html";

/// What a path resolved to.
#[derive(Debug)]
pub(super) enum Target {
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
    /// Canonicalizes and opens `root`, and probes whether `openat2` works here.
    pub(super) fn open_root(root: &Path) -> io::Result<StaticDir> {
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

    /// Maps `rest` onto an opened regular file (or a redirect) inside the root.
    pub(super) fn resolve(&self, rest: &str) -> Result<Target, Refusal> {
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
            Some((_, meta)) if meta.is_dir() && index.is_none() => {
                Ok(Target::Redirect(parsed.dir_location()))
            }
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
    pub(super) fn open_beneath(&self, relative: &str) -> Result<Option<(File, Metadata)>, Refusal> {
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
                return Ok(Target::Redirect(parsed.dir_location()));
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
pub(super) fn small_body(file: &File, offset: u64, len: u64) -> Option<Body> {
    use std::os::unix::fs::FileExt;
    if len > SMALL_FILE {
        return None;
    }
    let mut bytes = vec![0; usize::try_from(len).ok()?];
    file.read_exact_at(&mut bytes, offset).ok()?;
    Some(Body::Bytes(bytes))
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

/// How an I/O error met while resolving or opening a path is answered.
fn io_refusal(err: &io::Error) -> Refusal {
    match err.kind() {
        io::ErrorKind::PermissionDenied => Refusal::Forbidden,
        // NotFound, NotADirectory, InvalidFilename (ENAMETOOLONG), symlink loops,
        // and anything unexpected: never reveal more than "not here".
        _ => Refusal::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use crate::static_files::fixture::{body_bytes, fixture, get, write};
    use std::time::Duration;

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
    fn io_errors_map_to_refusals() {
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
            let body = body_bytes(&mut resp);
            assert!(String::from_utf8_lossy(&body).contains("403 Forbidden"));
        }
    }
}
