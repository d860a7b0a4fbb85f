//! The SDK's side of the ABI encoding (section 5): a framed request into a [`Request`], a [`Response`] into a frame, on top of `wasmhost_abi`.
//!
//! [`decode_request`] and [`encode_response`] are what a guest needs;
//! [`encode_request`] and [`decode_response`] are the host's side, for tests
//! and tools. The framing and the meta types themselves are defined once, in
//! the `wasmhost-abi` crate, for the host and the SDK alike.

use std::borrow::Cow;
use std::fmt;

use wasmhost_abi::{FrameError, RequestMeta, ResponseMeta, RouteMeta, UserMeta};
use wasmhost_abi::{join_frame, split_frame};

use crate::request::{Request, User};
use crate::response::Response;

pub use wasmhost_abi::{ABI_VERSION, pack, unpack};

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

impl From<FrameError> for AbiError {
    fn from(err: FrameError) -> AbiError {
        match err {
            FrameError::TooShort { len } => AbiError::TooShort { len },
            FrameError::MetaTooLong {
                meta_len,
                available,
            } => AbiError::MetaTooLong {
                meta_len,
                available,
            },
        }
    }
}

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AbiError::TooShort { len } => FrameError::TooShort { len }.fmt(f),
            AbiError::MetaTooLong {
                meta_len,
                available,
            } => FrameError::MetaTooLong {
                meta_len,
                available,
            }
            .fmt(f),
            AbiError::Meta(ref err) => write!(f, "invalid meta JSON: {err}"),
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

/// Decodes a framed request as the host sends it.
pub fn decode_request(bytes: &[u8]) -> Result<Request, AbiError> {
    let (meta, body) = split_frame(bytes)?;
    let meta: RequestMeta<'_> = serde_json::from_slice(meta).map_err(AbiError::Meta)?;
    // Decoded meta owns its strings: `into_owned` moves them out.
    let route = meta.route.into_owned();
    Ok(Request {
        method: meta.method.into_owned(),
        path: meta.path.into_owned(),
        query: meta.query.into_owned(),
        query_params: meta.query_params.into_owned(),
        version: meta.version.into_owned(),
        headers: meta.headers.into_owned(),
        cookies: meta
            .cookies
            .into_iter()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect(),
        params: route
            .params
            .into_iter()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect(),
        rest: route.rest.into_owned(),
        app: route.app.into_owned(),
        pattern: route.pattern.into_owned(),
        client: meta.client.into_owned(),
        user: meta.user.map(|user| User {
            id: user.id.into_owned(),
            name: user.name.into_owned(),
        }),
        body: body.to_vec(),
    })
}

/// Encodes a response for the host.
pub fn encode_response(response: &Response) -> Vec<u8> {
    let meta = serde_json::to_vec(&ResponseMeta {
        status: response.status,
        headers: Cow::Borrowed(&response.headers),
    })
    .expect("response meta is plain strings and integers");
    join_frame(&meta, &response.body)
}

/// Encodes a request the way the host does (for tests and tools).
pub fn encode_request(request: &Request) -> Vec<u8> {
    let route = RouteMeta {
        app: Cow::Borrowed(&request.app),
        pattern: Cow::Borrowed(&request.pattern),
        params: request
            .params
            .iter()
            .map(|(name, value)| (Cow::Borrowed(name.as_str()), Cow::Borrowed(value.as_str())))
            .collect(),
        rest: Cow::Borrowed(&request.rest),
    };
    let meta = RequestMeta {
        method: Cow::Borrowed(&request.method),
        path: Cow::Borrowed(&request.path),
        query: Cow::Borrowed(&request.query),
        query_params: Cow::Borrowed(&request.query_params),
        version: Cow::Borrowed(&request.version),
        headers: Cow::Borrowed(&request.headers),
        cookies: request
            .cookies
            .iter()
            .map(|(name, value)| (Cow::Borrowed(name.as_str()), Cow::Borrowed(value.as_str())))
            .collect(),
        route: Cow::Owned(route),
        client: Cow::Borrowed(&request.client),
        user: request.user.as_ref().map(|user| UserMeta {
            id: Cow::Borrowed(&user.id),
            name: Cow::Borrowed(&user.name),
        }),
    };
    let meta = serde_json::to_vec(&meta).expect("request meta is plain strings");
    join_frame(&meta, &request.body)
}

/// Decodes a framed response the way the host does (for tests and tools);
/// it checks the framing and JSON shape only, not header or status validity.
pub fn decode_response(bytes: &[u8]) -> Result<Response, AbiError> {
    let (meta, body) = split_frame(bytes)?;
    let meta: ResponseMeta<'_> = serde_json::from_slice(meta).map_err(AbiError::Meta)?;
    Ok(Response {
        status: meta.status,
        headers: meta.headers.into_owned(),
        body: body.to_vec(),
    })
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
                    .set_cookie(crate::response::Cookie::new("a", "1"))
                    .set_cookie(crate::response::Cookie::new("b", "2")),
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
}
