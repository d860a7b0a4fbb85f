//! The ABI framing as pure functions: `u32` LE meta length, JSON meta, raw body (ABI section 5).
//!
//! [`decode_request`] and [`encode_response`] are what a guest needs;
//! [`encode_request`] and [`decode_response`] are the host's side, for tests
//! and tools.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::response::TEXT_PLAIN;
use crate::{Request, Response, User};

/// The ABI version this SDK implements, returned by `wasmhost_abi_version`.
pub const ABI_VERSION: i32 = 1;

/// Why bytes could not be decoded as a framed request or response.
#[derive(Debug)]
pub enum AbiError {
    /// Fewer than the 4 bytes of `meta_len`.
    TooShort {
        /// The number of bytes received.
        len: usize,
    },
    /// `meta_len` exceeds the bytes that follow it.
    MetaTooLong {
        /// The declared meta length.
        meta_len: u32,
        /// The bytes actually following the length.
        available: usize,
    },
    /// The meta is not the expected JSON.
    Meta(serde_json::Error),
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbiError::TooShort { len } => {
                write!(f, "{len} bytes is too short for the 4-byte meta length")
            }
            AbiError::MetaTooLong {
                meta_len,
                available,
            } => write!(
                f,
                "meta length {meta_len} exceeds the {available} bytes that follow it"
            ),
            AbiError::Meta(err) => write!(f, "invalid meta JSON: {err}"),
        }
    }
}

impl std::error::Error for AbiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AbiError::Meta(err) => Some(err),
            _ => None,
        }
    }
}

/// Request meta on the wire. Only `method` and `path` are required; unknown
/// fields are ignored (ABI section 5.1).
#[derive(Serialize, Deserialize)]
struct RequestMeta {
    method: String,
    path: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    query_params: Vec<(String, String)>,
    #[serde(default)]
    version: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    cookies: Vec<(String, String)>,
    #[serde(default)]
    route: RouteMeta,
    #[serde(default)]
    client: String,
    /// The signed-in user (ABI section 6.3); missing and `null` both mean none.
    #[serde(default)]
    user: Option<User>,
}

/// The `route` object of the request meta.
#[derive(Serialize, Deserialize, Default)]
struct RouteMeta {
    #[serde(default)]
    app: String,
    #[serde(default)]
    pattern: String,
    #[serde(default)]
    params: BTreeMap<String, String>,
    #[serde(default)]
    rest: String,
}

/// Response meta on the wire (ABI section 5.2), borrowed for encoding.
#[derive(Serialize)]
struct ResponseMetaOut<'a> {
    status: u16,
    headers: &'a [(String, String)],
}

/// Response meta on the wire, owned for decoding.
#[derive(Deserialize)]
struct ResponseMetaIn {
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
}

/// Splits framed bytes into meta and body.
fn split_frame(bytes: &[u8]) -> Result<(&[u8], &[u8]), AbiError> {
    let Some((len_bytes, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(AbiError::TooShort { len: bytes.len() });
    };
    let meta_len = u32::from_le_bytes(*len_bytes);
    match usize::try_from(meta_len) {
        Ok(n) if n <= rest.len() => Ok(rest.split_at(n)),
        _ => Err(AbiError::MetaTooLong {
            meta_len,
            available: rest.len(),
        }),
    }
}

/// Frames `meta` and `body`.
fn join_frame(meta: &[u8], body: &[u8]) -> Vec<u8> {
    let meta_len = u32::try_from(meta.len()).expect("meta is smaller than 4 GiB");
    let mut out = Vec::with_capacity(4 + meta.len() + body.len());
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(body);
    out
}

/// Decodes a framed request as the host sends it.
pub fn decode_request(bytes: &[u8]) -> Result<Request, AbiError> {
    let (meta, body) = split_frame(bytes)?;
    let meta: RequestMeta = serde_json::from_slice(meta).map_err(AbiError::Meta)?;
    Ok(Request {
        method: meta.method,
        path: meta.path,
        query: meta.query,
        query_params: meta.query_params,
        version: meta.version,
        headers: meta.headers,
        cookies: meta.cookies,
        params: meta.route.params,
        rest: meta.route.rest,
        app: meta.route.app,
        pattern: meta.route.pattern,
        client: meta.client,
        user: meta.user,
        body: body.to_vec(),
    })
}

/// Encodes a response for the host.
pub fn encode_response(response: &Response) -> Vec<u8> {
    let meta = serde_json::to_vec(&ResponseMetaOut {
        status: response.status,
        headers: &response.headers,
    })
    .expect("response meta is plain strings and integers");
    join_frame(&meta, &response.body)
}

/// Encodes a request the way the host does (for tests and tools).
pub fn encode_request(request: &Request) -> Vec<u8> {
    let meta = RequestMeta {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        query_params: request.query_params.clone(),
        version: request.version.clone(),
        headers: request.headers.clone(),
        cookies: request.cookies.clone(),
        route: RouteMeta {
            app: request.app.clone(),
            pattern: request.pattern.clone(),
            params: request.params.clone(),
            rest: request.rest.clone(),
        },
        client: request.client.clone(),
        user: request.user.clone(),
    };
    let meta = serde_json::to_vec(&meta).expect("request meta is plain strings");
    join_frame(&meta, &request.body)
}

/// Decodes a framed response the way the host does (for tests and tools);
/// it checks the framing and JSON shape only, not header or status validity.
pub fn decode_response(bytes: &[u8]) -> Result<Response, AbiError> {
    let (meta, body) = split_frame(bytes)?;
    let meta: ResponseMetaIn = serde_json::from_slice(meta).map_err(AbiError::Meta)?;
    Ok(Response {
        status: meta.status,
        headers: meta.headers,
        body: body.to_vec(),
    })
}

/// Decodes `request`, runs `handler` and encodes its response; a request
/// that does not decode gets a `400` text response and a warning in the log.
///
/// This is everything `wasmhost_handle` does apart from the memory handling.
pub fn handle_encoded<F>(request: &[u8], handler: F) -> Vec<u8>
where
    F: FnOnce(Request) -> Response,
{
    let response = match decode_request(request) {
        Ok(request) => handler(request),
        Err(err) => {
            let message = format!("bad request from host: {err}");
            crate::log::warn(&message);
            Response::bytes(TEXT_PLAIN, message).with_status(400)
        }
    };
    encode_response(&response)
}

/// Packs a response location as `wasmhost_handle` returns it: address in
/// the high 32 bits, length in the low 32 bits.
pub fn pack(addr: u32, len: u32) -> i64 {
    ((u64::from(addr) << 32) | u64::from(len)) as i64
}

/// Unpacks the result of `wasmhost_handle` into `(address, length)`.
pub fn unpack(packed: i64) -> (u32, u32) {
    let packed = packed as u64;
    ((packed >> 32) as u32, packed as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of ABI section 5.1, verbatim.
    const SPEC_META: &str = r#"{
      "method": "POST",
      "path": "/post/42",
      "query": "a=1&b=x%20y",
      "query_params": [["a", "1"], ["b", "x y"]],
      "version": "HTTP/1.1",
      "headers": [["Host", "example.com"], ["Cookie", "sid=abc; theme=dark"]],
      "cookies": [["sid", "abc"], ["theme", "dark"]],
      "route": {
        "app": "blog",
        "pattern": "/post/{id}",
        "params": {"id": "42"},
        "rest": ""
      },
      "client": "127.0.0.1:53422"
    }"#;

    fn frame(meta: &str, body: &[u8]) -> Vec<u8> {
        join_frame(meta.as_bytes(), body)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decodes_the_spec_example() {
        let req = decode_request(&frame(SPEC_META, b"title=x")).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/post/42");
        assert_eq!(req.query, "a=1&b=x%20y");
        assert_eq!(req.query_params, pairs(&[("a", "1"), ("b", "x y")]));
        assert_eq!(req.version, "HTTP/1.1");
        assert_eq!(
            req.headers,
            pairs(&[("Host", "example.com"), ("Cookie", "sid=abc; theme=dark")])
        );
        assert_eq!(req.cookies, pairs(&[("sid", "abc"), ("theme", "dark")]));
        assert_eq!(req.app, "blog");
        assert_eq!(req.pattern, "/post/{id}");
        assert_eq!(req.param("id"), Some("42"));
        assert_eq!(req.rest, "");
        assert_eq!(req.client, "127.0.0.1:53422");
        assert_eq!(req.body, b"title=x");
    }

    #[test]
    fn decode_accepts_minimal_and_extended_meta() {
        let table = [
            (r#"{"method":"GET","path":"/"}"#, "GET", "/"),
            (
                r#"{"method":"GET","path":"/x","future":{"a":[1]},"route":{"app":"a","later":1}}"#,
                "GET",
                "/x",
            ),
            (
                r#"{"path":"/%41","method":"DELETE","query":"","headers":[]}"#,
                "DELETE",
                "/%41",
            ),
        ];
        for (meta, method, path) in table {
            let req = decode_request(&frame(meta, b"")).unwrap_or_else(|e| panic!("{meta}: {e}"));
            assert_eq!((req.method.as_str(), req.path.as_str()), (method, path));
        }
    }

    #[test]
    fn decodes_the_user_field() {
        let alice = Some(User {
            id: "42".into(),
            name: "alice".into(),
        });
        let table = [
            (r#"{"method":"GET","path":"/"}"#, None),
            (r#"{"method":"GET","path":"/","user":null}"#, None),
            (
                r#"{"method":"GET","path":"/","user":{"id":"42","name":"alice","extra":1}}"#,
                alice,
            ),
        ];
        for (meta, want) in table {
            let req = decode_request(&frame(meta, b"")).unwrap_or_else(|e| panic!("{meta}: {e}"));
            assert_eq!(req.user, want, "{meta}");
        }
        let err = decode_request(&frame(
            r#"{"method":"GET","path":"/","user":{"id":1}}"#,
            b"",
        ));
        assert!(err.is_err(), "a malformed user is refused");
    }

    #[test]
    fn decode_errors() {
        let mut too_long = 100u32.to_le_bytes().to_vec();
        too_long.extend_from_slice(b"{}");
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let table: [(Vec<u8>, &str); 9] = [
            (vec![], "0 bytes is too short"),
            (vec![1, 0, 0], "3 bytes is too short"),
            (too_long, "meta length 100 exceeds the 2 bytes"),
            (huge, "meta length 4294967295 exceeds the 2 bytes"),
            (frame("", b""), "invalid meta JSON"),
            (frame("[]", b""), "invalid meta JSON"),
            (frame(r#"{"method":"GET"}"#, b""), "missing field `path`"),
            (
                frame(r#"{"method":1,"path":"/"}"#, b""),
                "invalid meta JSON",
            ),
            (
                frame(r#"{"method":"GET","path":"/"}x"#, b""),
                "invalid meta JSON",
            ),
        ];
        for (bytes, want) in table {
            let err = decode_request(&bytes).expect_err(want);
            assert!(
                err.to_string().contains(want),
                "{err} does not contain {want}"
            );
        }
    }

    #[test]
    fn binary_bodies_are_byte_exact() {
        let all_bytes: Vec<u8> = (0..=255u8).collect();
        let mut req = Request::new("POST", "/echo?x=1")
            .with_header("Content-Type", "application/octet-stream");
        req.body = all_bytes.clone();
        let encoded = encode_request(&req);
        assert_eq!(&encoded[encoded.len() - 256..], &all_bytes[..]);
        assert_eq!(decode_request(&encoded).unwrap(), req);

        let resp = Response::bytes("application/octet-stream", all_bytes.clone());
        let encoded = encode_response(&resp);
        assert_eq!(&encoded[encoded.len() - 256..], &all_bytes[..]);
        assert_eq!(decode_response(&encoded).unwrap(), resp);
    }

    #[test]
    fn request_round_trips() {
        let table = [
            Request::new("GET", "/"),
            Request::new("HEAD", "/a%20b?x=1&x=2&y=%2B"),
            Request {
                app: "blog".into(),
                pattern: "/post/{id}".into(),
                rest: "/tail".into(),
                client: "[::1]:80".into(),
                ..Request::new("PUT", "/post/é")
                    .with_header("Cookie", "a=1; b=\"q\"")
                    .with_param("id", "é")
                    .with_user("42", "Jürg <admin>")
                    .with_body(vec![0, 1, 2])
            },
        ];
        for req in table {
            assert_eq!(decode_request(&encode_request(&req)).unwrap(), req);
        }
    }

    #[test]
    fn response_encoding() {
        let table = [
            (
                Response::status(204),
                r#"{"status":204,"headers":[]}"#,
                &b""[..],
            ),
            (
                Response::text("hi")
                    .set_cookie(crate::Cookie::new("a", "1"))
                    .set_cookie(crate::Cookie::new("b", "2")),
                r#"{"status":200,"headers":[["Content-Type","text/plain; charset=utf-8"],["Set-Cookie","a=1"],["Set-Cookie","b=2"]]}"#,
                &b"hi"[..],
            ),
            (
                Response::text("\"quoted\"\n").with_header("X-Ü", "ü"),
                r#"{"status":200,"headers":[["Content-Type","text/plain; charset=utf-8"],["X-Ü","ü"]]}"#,
                &b"\"quoted\"\n"[..],
            ),
        ];
        for (resp, meta, body) in table {
            let encoded = encode_response(&resp);
            let meta_len = u32::from_le_bytes(encoded[..4].try_into().unwrap()) as usize;
            assert_eq!(meta_len, meta.len());
            assert_eq!(&encoded[4..4 + meta_len], meta.as_bytes());
            assert_eq!(&encoded[4 + meta_len..], body);
            assert_eq!(decode_response(&encoded).unwrap(), resp);
        }
    }

    #[test]
    fn response_decoding_defaults_headers() {
        let resp = decode_response(&frame(r#"{"status":201}"#, b"x")).unwrap();
        assert_eq!(resp, Response::status(201).with_body("x"));
    }

    #[test]
    fn handle_encoded_runs_the_handler_or_answers_400() {
        let echo = |req: Request| Response::bytes("application/octet-stream", req.body);
        let good = encode_request(&Request::new("POST", "/").with_body("ping"));
        let table: [(&[u8], u16, &str); 3] = [
            (&good, 200, "ping"),
            (b"", 400, "bad request from host: 0 bytes is too short"),
            (
                b"\x02\0\0\0{",
                400,
                "bad request from host: meta length 2 exceeds",
            ),
        ];
        for (input, status, body) in table {
            let resp = decode_response(&handle_encoded(input, echo)).unwrap();
            assert_eq!(resp.status, status);
            let text = String::from_utf8(resp.body).unwrap();
            assert!(text.starts_with(body), "{text:?}");
        }
    }

    #[test]
    fn pack_and_unpack() {
        let table = [
            (0u32, 0u32, 0i64),
            (1, 2, (1 << 32) | 2),
            (0x0001_0000, 0x10, 0x0001_0000_0000_0010),
            (u32::MAX, u32::MAX, -1),
            (0x8000_0000, 5, i64::MIN | 5),
        ];
        for (addr, len, packed) in table {
            assert_eq!(pack(addr, len), packed, "{addr:#x} {len:#x}");
            assert_eq!(unpack(packed), (addr, len));
        }
    }
}
