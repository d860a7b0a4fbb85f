//! The request path as text: its limits, its segments decoded exactly once, a directory's redirect.
//!
//! Nothing here touches the filesystem; a path refused here is refused
//! whatever is on disk.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};

use super::refusal::Refusal;

/// Longest raw `rest` accepted (`Refusal::TooLong` beyond): Linux `PATH_MAX`; a longer path names no file.
pub(super) const MAX_PATH_LEN: usize = 4096;
/// Most path segments accepted (`Refusal::TooLong` beyond): bounds per-request work; no real site nests deeper.
pub(super) const MAX_SEGMENTS: usize = 64;
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

/// A request path split into decoded, validated segments.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct ParsedPath {
    pub(super) segments: Vec<String>,
    pub(super) trailing_slash: bool,
}

impl ParsedPath {
    /// The relative `Location` of the redirect for a directory named without
    /// its trailing slash (`./name/`); `None` for the mount point itself,
    /// which has no relative form.
    pub(super) fn dir_location(&self) -> Option<String> {
        self.segments
            .last()
            .map(|last| format!("./{}/", utf8_percent_encode(last, SEGMENT_ESCAPES)))
    }
}

/// Splits `rest` at `/` and decodes each segment exactly once.
/// `""` is the mount point itself; a non-empty `rest` not starting with `/`
/// is not below the mount point at all (`Refusal::NotFound`).
pub(super) fn parse_path(rest: &str) -> Result<ParsedPath, Refusal> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
