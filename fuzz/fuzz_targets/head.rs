//! Fuzz target `head`: `http::parse::parse_head` on arbitrary bytes.
//!
//! Properties: it never panics; a complete head's `len` lies within the
//! input, the input cut at `len` parses to the same head, and every shorter
//! prefix is `Partial` (so however the bytes arrive, the connection sees the
//! same head); its request line (after the empty lines httparse skips) is
//! within `MAX_REQUEST_LINE`; re-encoding a complete head (method, target in
//! origin or absolute form, version, headers) and parsing it again gives the
//! same head, framing included.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhost::http::parse::{HeadParse, RequestHead, parse_head};
use wasmhost::limits::{MAX_HEADERS, MAX_REQUEST_LINE};

fuzz_target!(|data: &[u8]| {
    let Ok(HeadParse::Complete { head, len }) = parse_head(data) else {
        return;
    };
    assert!(len > 0 && len <= data.len(), "len {len} of {}", data.len());

    // The head alone parses the same; the bytes after it are not looked at.
    let cut = parse_head(&data[..len]);
    assert_eq!(
        cut,
        Ok(HeadParse::Complete {
            head: head.clone(),
            len
        })
    );
    // A prefix is not complete yet and not refused either: the connection
    // parses whatever has arrived, so a refusal here would depend on the split.
    for at in [len - 1, len / 2, len / 3] {
        assert_eq!(
            parse_head(&data[..at]),
            Ok(HeadParse::Partial),
            "prefix {at} of {len}"
        );
    }

    // The request line, after the empty lines httparse skips, is within its limit.
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let line = data[start..]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    assert!(
        line.len() <= MAX_REQUEST_LINE + 1,
        "request line of {}",
        line.len()
    );

    // Round trip through a canonical encoding: the absolute form when the
    // first header is a Host (as the absolute form's authority becomes) and
    // the input's length is odd, or when the origin form would need one
    // header line more than the limit; else the origin form.
    let absolute = matches!(head.headers.first(), Some((name, _)) if name == "Host")
        && head.path != "*"
        && (data.len() % 2 == 1 || head.headers.len() > MAX_HEADERS);
    let encoded = encode(&head, absolute);
    match parse_head(&encoded) {
        Ok(HeadParse::Complete {
            head: again,
            len: again_len,
        }) => {
            assert_eq!(
                again,
                head,
                "re-encoded: {:?}",
                String::from_utf8_lossy(&encoded)
            );
            assert_eq!(again_len, encoded.len());
        }
        other => panic!(
            "re-encoded head {:?} parses as {other:?}",
            String::from_utf8_lossy(&encoded)
        ),
    }
});

/// The head in origin form (or `*`), or in absolute form with the first
/// header (a Host) as its authority; the headers in order.
fn encode(head: &RequestHead, absolute: bool) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    let mut headers = &head.headers[..];
    if absolute {
        out.extend_from_slice(b"http://");
        out.extend_from_slice(headers[0].1.as_bytes());
        headers = &headers[1..];
    }
    out.extend_from_slice(head.path.as_bytes());
    if !head.query.is_empty() {
        out.push(b'?');
        out.extend_from_slice(head.query.as_bytes());
    }
    out.push(b' ');
    out.extend_from_slice(head.version.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
