//! Fuzz target `static_path`: the static file server's request path parser (`static_files/path.rs`) on arbitrary text.
//!
//! Properties: it never panics; a refusal is 400, 404 or 414; an accepted
//! path has at most 64 segments, each non-empty, not `.` or `..`, without NUL,
//! other control characters, `/` or `\`; its trailing slash is the input's;
//! percent-encoding the decoded segments again and parsing that gives the same
//! segments (they were decoded exactly once); a directory redirect's
//! `Location` is `./<one segment>/` with no CR, LF or other control character.

#![no_main]

use libfuzzer_sys::fuzz_target;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use wasmhost::static_files::fuzzing::fuzz_parse_path;

/// What is escaped to put a decoded segment back into a path.
const ESCAPES: &AsciiSet = &CONTROLS.add(b'%').add(b'/').add(b'?').add(b'#').add(b' ');

fuzz_target!(|data: &[u8]| {
    let rest = String::from_utf8_lossy(data);
    let path = match fuzz_parse_path(&rest) {
        Ok(path) => path,
        Err(status) => {
            assert!(matches!(status, 400 | 404 | 414), "{status}");
            return;
        }
    };
    assert!(path.segments.len() <= 64);
    for seg in &path.segments {
        assert!(!seg.is_empty(), "{rest:?}");
        assert!(seg != "." && seg != "..", "{rest:?}");
        assert!(!seg.contains(['/', '\\', '\0']), "{rest:?}: {seg:?}");
        assert!(!seg.chars().any(char::is_control), "{rest:?}: {seg:?}");
    }
    if !rest.is_empty() {
        assert_eq!(path.trailing_slash, rest.ends_with('/'), "{rest:?}");
    }

    let mut encoded = String::new();
    for seg in &path.segments {
        encoded.push('/');
        encoded.extend(utf8_percent_encode(seg, ESCAPES));
    }
    if path.trailing_slash || encoded.is_empty() {
        encoded.push('/');
    }
    if encoded.len() <= 4096 {
        let again = fuzz_parse_path(&encoded).expect("re-encoded path");
        assert_eq!(again.segments, path.segments, "{encoded:?}");
    }

    match (&path.dir_location, path.segments.last()) {
        (None, None) => {}
        (Some(location), Some(_)) => {
            let inner = location
                .strip_prefix("./")
                .and_then(|l| l.strip_suffix('/'))
                .unwrap_or_else(|| panic!("{location:?}"));
            assert!(!inner.is_empty() && !inner.contains('/'), "{location:?}");
            assert!(!location.chars().any(char::is_control), "{location:?}");
        }
        other => panic!("{rest:?}: {other:?}"),
    }
});
