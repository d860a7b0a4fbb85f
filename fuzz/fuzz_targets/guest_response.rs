//! Fuzz target `guest_response`: the host's decoding of a guest's response output (`sandbox::abi::decode_response`: length prefix, JSON meta, body).
//!
//! Properties: it never panics on any bytes; a decoded response has a
//! status in 200–599 (the host's contract for a final response, within the
//! 100–599 of HTTP), header names that are non-empty tokens, header values
//! without CR, LF or NUL (no response splitting), none of the framing headers
//! the host owns, and the body is exactly the bytes after the meta; encoding
//! the decoded response again decodes to the same response.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhost::sandbox::abi::decode_response;

/// Headers the host sets itself (`HOST_OWNED_HEADERS` in sandbox/abi.rs).
const HOST_OWNED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "date",
];

fuzz_target!(|data: &[u8]| {
    check(data);
    // Most inputs have no valid prefix; also try the bytes as the meta alone.
    let mut framed = (data.len() as u32).to_le_bytes().to_vec();
    framed.extend_from_slice(data);
    check(&framed);
});

fn check(bytes: &[u8]) {
    let Ok(response) = decode_response(bytes) else {
        return;
    };
    assert!(
        (200..=599).contains(&response.status),
        "{}",
        response.status
    );
    for (name, value) in &response.headers {
        assert!(!name.is_empty());
        assert!(name.bytes().all(is_token_byte), "{name:?}");
        assert!(
            !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
            "{value:?}"
        );
        assert!(
            !HOST_OWNED.iter().any(|h| name.eq_ignore_ascii_case(h)),
            "{name}"
        );
    }
    assert!(bytes.ends_with(&response.body));

    let meta = serde_json::json!({ "status": response.status, "headers": response.headers });
    let meta = serde_json::to_vec(&meta).expect("serializable");
    let mut again = (meta.len() as u32).to_le_bytes().to_vec();
    again.extend_from_slice(&meta);
    again.extend_from_slice(&response.body);
    assert_eq!(decode_response(&again).as_ref(), Ok(&response));
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
