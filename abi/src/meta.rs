//! The JSON meta of a request (ABI §5.1) and of a response (§5.2) as serde types, one definition for the side that encodes and the side that decodes.
//!
//! Every string and list is a [`Cow`]: the encoding side fills it with
//! borrowed data (`Cow::Borrowed`), so serializing copies nothing, and
//! deserializing always yields owned data (`Cow::Owned`), which
//! [`Cow::into_owned`] hands over without a copy.
//!
//! Request meta: only `method` and `path` are required and unknown fields
//! are ignored, as guests MUST (§5.1). Response meta: `headers` is optional
//! and anything else makes the response malformed (§5.2).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Name/value pairs in order, repeats kept (headers, query parameters).
pub type Pairs<'a> = Cow<'a, [(String, String)]>;

/// The request meta (§5.1), in the field order the host writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestMeta<'a> {
    /// The request method, e.g. `"POST"`.
    pub method: Cow<'a, str>,
    /// The path as the client sent it, still percent-encoded, no query.
    pub path: Cow<'a, str>,
    /// The raw query string without the `?`; `""` when there is none.
    #[serde(default)]
    pub query: Cow<'a, str>,
    /// The query decoded as `application/x-www-form-urlencoded`, in order.
    #[serde(default)]
    pub query_params: Pairs<'a>,
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    #[serde(default)]
    pub version: Cow<'a, str>,
    /// Every request header in the order received, names as sent.
    #[serde(default)]
    pub headers: Pairs<'a>,
    /// The `Cookie` headers split into name/value pairs, in order.
    #[serde(default)]
    pub cookies: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Where the request was routed.
    #[serde(default)]
    pub route: Cow<'a, RouteMeta<'a>>,
    /// The client's socket address, e.g. `"127.0.0.1:53422"`.
    #[serde(default)]
    pub client: Cow<'a, str>,
    /// The signed-in user (§6.3); missing and `null` both mean none. The
    /// host always writes it, `null` included.
    #[serde(default)]
    pub user: Option<UserMeta<'a>>,
}

/// The `route` object of the request meta.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteMeta<'a> {
    /// The name of the app in `routes.json`.
    #[serde(default)]
    pub app: Cow<'a, str>,
    /// The route pattern that matched.
    #[serde(default)]
    pub pattern: Cow<'a, str>,
    /// The named segments of the pattern, percent-decoded.
    #[serde(default)]
    pub params: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
    /// For a prefix route, the path after the prefix (`""` or from `/`).
    #[serde(default)]
    pub rest: Cow<'a, str>,
}

/// The `user` object of the request meta: who is signed in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMeta<'a> {
    /// The user id the app gave to `session_start`.
    pub id: Cow<'a, str>,
    /// The display name the app gave to `session_start`.
    pub name: Cow<'a, str>,
}

/// The response meta (§5.2). It decodes from a JSON object only: serde's
/// derived structs would also take a sequence of the fields' values
/// (`[200, [["X", "y"]]]`), which §5.2 calls malformed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ResponseMeta<'a> {
    /// The status code; the host accepts 200 to 599.
    pub status: u16,
    /// Headers in order, repeats kept (several `Set-Cookie`).
    pub headers: Pairs<'a>,
}

/// The fields of [`ResponseMeta`] as serde sees them inside the object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResponseFields<'a> {
    status: u16,
    #[serde(default)]
    headers: Pairs<'a>,
}

impl<'de: 'a, 'a> Deserialize<'de> for ResponseMeta<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectOnly<'a>(std::marker::PhantomData<ResponseMeta<'a>>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for ObjectOnly<'a> {
            type Value = ResponseMeta<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the response meta as a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let fields =
                    ResponseFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(ResponseMeta {
                    status: fields.status,
                    headers: fields.headers,
                })
            }
        }
        deserializer.deserialize_map(ObjectOnly(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_meta_is_an_object_only_and_refuses_unknown_fields() {
        let ok: ResponseMeta = serde_json::from_str(r#"{"status":201,"headers":[["X","y"]]}"#)
            .expect("an object decodes");
        assert_eq!(ok.status, 201);
        assert_eq!(ok.headers.len(), 1);
        let bare: ResponseMeta =
            serde_json::from_str(r#"{"status":204}"#).expect("headers optional");
        assert!(bare.headers.is_empty());
        for text in [
            "[200]",
            r#"[200, [["X","y"]]]"#,
            r#"{"status":200,"header":[]}"#,
            "200",
            "null",
            r#""{\"status\":200}""#,
        ] {
            assert!(
                serde_json::from_str::<ResponseMeta>(text).is_err(),
                "{text} decoded"
            );
        }
    }

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
      "client": "127.0.0.1:53422",
      "user": null
    }"#;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_spec_example_round_trips_in_field_order() {
        let meta: RequestMeta<'_> = serde_json::from_str(SPEC_META).unwrap();
        assert_eq!(meta.method, "POST");
        assert_eq!(meta.query_params, pairs(&[("a", "1"), ("b", "x y")]));
        assert_eq!(meta.cookies[1], ("theme".into(), "dark".into()));
        assert_eq!(meta.route.params["id"], "42");
        assert_eq!(meta.user, None);
        let spec: serde_json::Value = serde_json::from_str(SPEC_META).unwrap();
        assert_eq!(serde_json::to_value(&meta).unwrap(), spec);
        let json = serde_json::to_string(&meta).unwrap();
        let fields = [
            "method",
            "path",
            "query",
            "query_params",
            "version",
            "headers",
            "cookies",
            "route",
            "client",
            "user",
        ];
        let at: Vec<usize> = fields
            .iter()
            .map(|f| json.find(&format!("\"{f}\":")).expect(f))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{json}");
    }

    #[test]
    fn borrowed_meta_serializes_like_owned_meta() {
        let headers = pairs(&[("Cookie", "a=1")]);
        let route = RouteMeta {
            app: "app".into(),
            pattern: "/x/{id}".into(),
            params: [("id".into(), "7".into())].into_iter().collect(),
            rest: "".into(),
        };
        let borrowed = RequestMeta {
            method: "GET".into(),
            path: "/x/7".into(),
            headers: Cow::Borrowed(&headers),
            cookies: vec![("a".into(), "1".into())],
            route: Cow::Borrowed(&route),
            user: Some(UserMeta {
                id: "1".into(),
                name: "ann".into(),
            }),
            ..RequestMeta::default()
        };
        let json = serde_json::to_string(&borrowed).unwrap();
        assert_eq!(
            json,
            r#"{"method":"GET","path":"/x/7","query":"","query_params":[],"version":"","headers":[["Cookie","a=1"]],"cookies":[["a","1"]],"route":{"app":"app","pattern":"/x/{id}","params":{"id":"7"},"rest":""},"client":"","user":{"id":"1","name":"ann"}}"#
        );
        let owned: RequestMeta<'_> = serde_json::from_str(&json).unwrap();
        assert_eq!(owned, borrowed);
        assert!(matches!(owned.headers, Cow::Owned(_)));
    }

    #[test]
    fn request_meta_needs_method_and_path_and_ignores_the_rest() {
        let table = [
            (r#"{"method":"GET","path":"/"}"#, true),
            (
                r#"{"method":"GET","path":"/","future":1,"route":{"later":[]},"user":{"id":"1","name":"a","x":0}}"#,
                true,
            ),
            (r#"{"method":"GET"}"#, false),
            (r#"{"path":"/"}"#, false),
            (r#"{"method":"GET","path":"/","user":{"id":1}}"#, false),
        ];
        for (json, ok) in table {
            let got = serde_json::from_str::<RequestMeta<'_>>(json);
            assert_eq!(got.is_ok(), ok, "{json}: {got:?}");
        }
    }

    #[test]
    fn response_meta_is_strict() {
        let table = [
            (r#"{"status":200}"#, Some((200, 0))),
            (r#"{"status":404,"headers":[["X","1"]]}"#, Some((404, 1))),
            (r#"{"status":200,"extra":1}"#, None),
            (r#"{"status":"200"}"#, None),
            (r#"{"headers":[]}"#, None),
        ];
        for (json, want) in table {
            let got = serde_json::from_str::<ResponseMeta<'_>>(json)
                .ok()
                .map(|m| (m.status, m.headers.len()));
            assert_eq!(got, want, "{json}");
        }
        let headers = pairs(&[("Set-Cookie", "a=1")]);
        let meta = ResponseMeta {
            status: 204,
            headers: Cow::Borrowed(&headers),
        };
        assert_eq!(
            serde_json::to_string(&meta).unwrap(),
            r#"{"status":204,"headers":[["Set-Cookie","a=1"]]}"#
        );
    }
}
