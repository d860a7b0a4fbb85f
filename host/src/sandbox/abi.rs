//! The host side of the guest ABI's encoding (docs/abi.md §5), as pure functions, on the framing and meta types of `wasmhost-abi`.

use std::borrow::Cow;

use wasmhost_abi::{FrameError, RequestMeta, ResponseMeta, RouteMeta, UserMeta, split_frame};

use crate::http::Request;
use crate::sessions::User;

/// Serializes the structured part of a request (no prefix, no body), for a
/// request with nobody signed in.
pub fn encode_request_meta(req: &Request, route: &RouteMeta<'_>) -> Vec<u8> {
    encode_guest_request(req, &req.headers, None, route)
}

/// Serializes the structured part of a request with the headers the guest
/// may see (the host's session cookie removed) and the signed-in user.
///
/// The meta borrows from `req`, `headers`, `user` and `route`; only the
/// decoded query, the cookie list and the client address are built here.
pub fn encode_guest_request(
    req: &Request,
    headers: &[(String, String)],
    user: Option<&User>,
    route: &RouteMeta<'_>,
) -> Vec<u8> {
    let meta = RequestMeta {
        method: Cow::Borrowed(req.method.as_str()),
        path: Cow::Borrowed(&req.path),
        query: Cow::Borrowed(&req.query),
        query_params: Cow::Owned(
            form_urlencoded::parse(req.query.as_bytes())
                .into_owned()
                .collect(),
        ),
        version: Cow::Borrowed(req.version.as_str()),
        headers: Cow::Borrowed(headers),
        cookies: cookie_pairs(headers)
            .map(|(name, value)| (Cow::Borrowed(name), Cow::Borrowed(value)))
            .collect(),
        route: Cow::Borrowed(route),
        client: Cow::Owned(req.client.to_string()),
        user: user.map(|u| UserMeta {
            id: Cow::Borrowed(&u.id),
            name: Cow::Borrowed(&u.name),
        }),
    };
    // Serializing plain strings and numbers into a Vec cannot fail.
    serde_json::to_vec(&meta).unwrap_or_default()
}

/// The name/value pairs of every `Cookie` header, in order.
pub fn parse_cookies(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    cookie_pairs(headers).collect()
}

/// The name/value pairs of every `Cookie` header, in order, as they are
/// found.
fn cookie_pairs(headers: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|pair| {
            let pair = pair.trim();
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            (!name.is_empty()).then(|| (name, value.trim().trim_matches('"')))
        })
}

/// A response as decoded from guest memory, already validated.
#[derive(Debug, PartialEq, Eq)]
pub struct GuestResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Headers the host sets itself; a guest's copies are dropped so that the
/// response framing is always the host's.
const HOST_OWNED_HEADERS: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "date",
];

/// Decodes and validates an encoded response. The error says what is wrong,
/// for the log only.
pub fn decode_response(bytes: &[u8]) -> Result<GuestResponse, String> {
    let (meta, body) = split_frame(bytes).map_err(|e| match e {
        FrameError::TooShort { .. } => "response shorter than its length prefix".to_owned(),
        FrameError::MetaTooLong { meta_len, .. } => {
            format!("meta length {meta_len} exceeds the response")
        }
    })?;
    let meta: ResponseMeta<'_> =
        serde_json::from_slice(meta).map_err(|e| format!("response meta is not valid: {e}"))?;
    if !(200..=599).contains(&meta.status) {
        return Err(format!("status {} is outside 200-599", meta.status));
    }
    let mut headers = Vec::with_capacity(meta.headers.len());
    for (name, value) in meta.headers.into_owned() {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("header name {name:?} is not a token"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("header {name} has CR, LF or NUL in its value"));
        }
        if is_host_owned(&name) {
            continue;
        }
        headers.push((name, value));
    }
    Ok(GuestResponse {
        status: meta.status,
        headers,
        body: body.to_vec(),
    })
}

/// Whether a guest's response header is one the host sets itself.
pub fn is_host_owned(name: &str) -> bool {
    HOST_OWNED_HEADERS
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(meta: &str, body: &[u8]) -> Vec<u8> {
        wasmhost_abi::join_frame(meta.as_bytes(), body)
    }

    #[test]
    fn valid_responses_decode() {
        let all_bytes: Vec<u8> = (0..=255).collect();
        let table: &[(&str, &[u8], u16, usize)] = &[
            (r#"{"status":200}"#, b"", 200, 0),
            (r#"{"status":404,"headers":[["X-A","1"]]}"#, b"nope", 404, 1),
            (
                r#"{"status":200,"headers":[["Set-Cookie","a=1"],["Set-Cookie","b=2"]]}"#,
                &all_bytes,
                200,
                2,
            ),
            // Framing headers are dropped, the rest kept.
            (
                r#"{"status":200,"headers":[["Content-Length","99"],["Transfer-Encoding","chunked"],["X","y"]]}"#,
                b"",
                200,
                1,
            ),
        ];
        for (meta, body, status, nheaders) in table {
            let r = decode_response(&encode(meta, body)).unwrap();
            assert_eq!(r.status, *status, "{meta}");
            assert_eq!(r.headers.len(), *nheaders, "{meta}");
            assert_eq!(r.body, *body, "{meta}");
        }
    }

    #[test]
    fn malformed_responses_are_refused() {
        let mut too_long = encode(r#"{"status":200}"#, b"");
        too_long[0] = 200;
        let table: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 0],
            too_long,
            encode("not json", b""),
            encode(r#"{"status":99}"#, b""),
            encode(r#"{"status":600}"#, b""),
            encode(r#"{"status":"200"}"#, b""),
            encode(r#"{"status":200,"extra":1}"#, b""),
            encode(
                r#"{"status":200,"headers":[["X","a\r\nSet-Cookie: evil=1"]]}"#,
                b"",
            ),
            encode(r#"{"status":200,"headers":[["X","a\nb"]]}"#, b""),
            encode(r#"{"status":200,"headers":[["Bad Name","v"]]}"#, b""),
            encode(r#"{"status":200,"headers":[["","v"]]}"#, b""),
            encode(r#"{"status":200,"headers":[["X:Y","v"]]}"#, b""),
        ];
        for bytes in table {
            assert!(
                decode_response(&bytes).is_err(),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn cookies_are_split_in_order() {
        let req = Request {
            method: crate::http::Method::Get,
            path: "/".into(),
            query: String::new(),
            version: crate::http::Version::Http11,
            headers: vec![
                ("Cookie".into(), "a=1; b=\"2\"".into()),
                ("Other".into(), "x=9".into()),
                ("cookie".into(), "c=3;bad; d=".into()),
            ],
            body: vec![],
            client: "127.0.0.1:1".parse().unwrap(),
        };
        assert_eq!(
            parse_cookies(&req.headers),
            [("a", "1"), ("b", "2"), ("c", "3"), ("d", "")]
        );
    }
}
