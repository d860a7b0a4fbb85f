//! Fuzz target `cookies`: cookie parsing for guests (`sandbox::abi::parse_cookies`) and for the host's session (`sessions::token_in`, `sessions::strip_cookie`).
//!
//! Input: header lines; a line `Name: value` is that header, any other line
//! is the value of a `Cookie` header.
//!
//! Properties: nothing panics; every parsed cookie name is non-empty, has no
//! `;` or `=` and no surrounding whitespace, and no value has a `;`; a session
//! token has no `;` and is found only when some `Cookie` header names the
//! session cookie; after `strip_cookie` no token is found, no `Cookie`
//! header is empty, and the guest sees exactly the cookies it saw before
//! except the session cookie, in the same order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhost::sandbox::abi::parse_cookies;
use wasmhost::sessions::{COOKIE_NAME, strip_cookie, token_in};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let headers: Vec<(String, String)> = text
        .split('\n')
        .map(|line| match line.split_once(": ") {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => ("Cookie".to_owned(), line.to_owned()),
        })
        .collect();

    let cookies = parse_cookies(&headers);
    for (name, value) in &cookies {
        assert!(!name.is_empty());
        assert!(!name.contains([';', '=']), "{name:?}");
        assert_eq!(*name, name.trim(), "{name:?}");
        assert!(!value.contains(';'), "{value:?}");
    }

    let token = token_in(&headers);
    if let Some(token) = token {
        assert!(!token.contains(';'), "{token:?}");
        assert!(
            cookies.iter().any(|(name, _)| *name == COOKIE_NAME),
            "token {token:?} without a session cookie in {cookies:?}"
        );
    }

    let mut stripped = headers.clone();
    strip_cookie(&mut stripped);
    assert_eq!(token_in(&stripped), None);
    assert!(
        stripped
            .iter()
            .all(|(n, v)| !(n.eq_ignore_ascii_case("cookie") && v.is_empty()))
    );
    let expected: Vec<(&str, &str)> = cookies
        .iter()
        .copied()
        .filter(|(name, _)| *name != COOKIE_NAME)
        .collect();
    assert_eq!(parse_cookies(&stripped), expected);
    // Headers other than `Cookie` are untouched.
    let others = |h: &[(String, String)]| -> Vec<(String, String)> {
        h.iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("cookie"))
            .cloned()
            .collect()
    };
    assert_eq!(others(&stripped), others(&headers));
});
