//! What a component receives and how its answer becomes the host's: the request as the client sent it plus the host's own `wasmhost-*` headers (route, parameters, user), and the response's status and headers checked like a JSON-ABI guest's.
//!
//! The names are documented in `docs/components.md`. Every client header
//! starting with [`HEADER_PREFIX`] is removed before the host adds its own,
//! so a guest can trust them: only the host sets them.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use super::GuestResponse;
use super::invoke::Incoming;
use crate::sandbox::GuestError;
use crate::sessions::User;

/// The prefix of the headers only the host sets.
pub const HEADER_PREFIX: &str = "wasmhost-";

/// Characters that cannot stand in a header value, percent-encoded in the
/// host's headers: controls (and `%` itself, so the encoding is reversible).
const NOT_IN_VALUE: &AsciiSet = &CONTROLS.add(b'%');

/// What the host tells a component about the route and the user.
pub struct RouteHeaders<'a> {
    /// The app's name.
    pub app: &'a str,
    /// The route pattern that matched, as written in `routes.json`.
    pub pattern: &'a str,
    /// Route parameters by name, decoded.
    pub params: &'a [(String, String)],
    /// What a prefix route's `*` matched, decoded; empty otherwise.
    pub rest: &'a str,
    /// The signed-in user, if the request has a valid session.
    pub user: Option<&'a User>,
    /// The client's address.
    pub client: SocketAddr,
}

impl RouteHeaders<'_> {
    /// The headers, names lower-case, values with controls percent-encoded.
    fn pairs(&self) -> Vec<(String, String)> {
        let enc = |v: &str| utf8_percent_encode(v, NOT_IN_VALUE).to_string();
        let mut out = vec![
            (format!("{HEADER_PREFIX}app"), enc(self.app)),
            (format!("{HEADER_PREFIX}route"), enc(self.pattern)),
            (
                format!("{HEADER_PREFIX}client-addr"),
                self.client.to_string(),
            ),
        ];
        for (name, value) in self.params {
            out.push((
                format!("{HEADER_PREFIX}param-{}", name.to_ascii_lowercase()),
                enc(value),
            ));
        }
        if !self.rest.is_empty() {
            out.push((format!("{HEADER_PREFIX}rest"), enc(self.rest)));
        }
        if let Some(user) = self.user {
            out.push((format!("{HEADER_PREFIX}user-id"), enc(&user.id)));
            out.push((format!("{HEADER_PREFIX}user-name"), enc(&user.name)));
        }
        out
    }
}

/// Whether a header name is one only the host may set.
pub fn is_host_header(name: &str) -> bool {
    name.len() >= HEADER_PREFIX.len()
        && name.as_bytes()[..HEADER_PREFIX.len()].eq_ignore_ascii_case(HEADER_PREFIX.as_bytes())
}

/// The `http` request a component's `incoming-request` is made from.
pub(super) fn build(
    incoming: &Incoming<'_>,
) -> Result<http::Request<http_body_util::Full<Bytes>>, GuestError> {
    let req = incoming.request;
    let bad = |what: String| GuestError::Setup(format!("cannot pass the request on: {what}"));
    let authority = incoming
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .unwrap_or("localhost");
    let target = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let uri = http::Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(target.as_str())
        .build()
        .map_err(|e| bad(format!("target {target:?} with Host {authority:?}: {e}")))?;
    let mut builder = http::Request::builder()
        .method(req.method.as_str())
        .uri(uri);
    let extra = incoming.route.pairs();
    let client = incoming
        .headers
        .iter()
        .filter(|(name, _)| !is_host_header(name));
    for (name, value) in client.chain(extra.iter()) {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| bad(format!("header name {name:?}: {e}")))?;
        let value = HeaderValue::from_bytes(value.as_bytes())
            .map_err(|e| bad(format!("header {name} value: {e}")))?;
        builder = builder.header(name, value);
    }
    builder
        .body(http_body_util::Full::new(Bytes::copy_from_slice(&req.body)))
        .map_err(|e| bad(e.to_string()))
}

/// The host's response from a component's status, headers and body: the
/// framing headers are the host's, as for a JSON-ABI guest.
pub(super) fn response(
    parts: http::response::Parts,
    body: Vec<u8>,
) -> Result<GuestResponse, GuestError> {
    let status = parts.status.as_u16();
    if !(200..=599).contains(&status) {
        return Err(GuestError::Malformed(format!(
            "status {status} is outside 200-599"
        )));
    }
    let headers = fields(&parts.headers, "header")?;
    Ok(GuestResponse {
        status,
        headers,
        body,
    })
}

/// A component's trailer fields as the host sends them: as its headers.
pub(super) fn trailers(map: &http::HeaderMap) -> Result<Vec<(String, String)>, GuestError> {
    fields(map, "trailer")
}

/// Header or trailer fields of a component's response as the host sends
/// them: visible ASCII values, none of the fields the host owns.
fn fields(map: &http::HeaderMap, what: &str) -> Result<Vec<(String, String)>, GuestError> {
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let Ok(value) = value.to_str() else {
            return Err(GuestError::Malformed(format!(
                "{what} {name} is not visible ASCII"
            )));
        };
        if crate::sandbox::abi::is_host_owned(name.as_str()) {
            continue;
        }
        out.push((name.as_str().to_owned(), value.to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_sets_its_headers() {
        let table = [
            ("wasmhost-user-id", true),
            ("WasmHost-Route", true),
            ("wasmhost-", true),
            ("wasmhost", false),
            ("x-wasmhost-user", false),
            ("host", false),
        ];
        for (name, want) in table {
            assert_eq!(is_host_header(name), want, "{name}");
        }
    }

    #[test]
    fn route_headers_encode_what_a_header_cannot_hold() {
        let params = vec![("Id".to_owned(), "a\r\nb%c".to_owned())];
        let user = User::new("7", "ann").expect("a valid user");
        let route = RouteHeaders {
            app: "site",
            pattern: "/items/<id>",
            params: &params,
            rest: "",
            user: Some(&user),
            client: "127.0.0.1:9".parse().expect("an address"),
        };
        let pairs = route.pairs();
        let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("wasmhost-param-id"), Some("a%0D%0Ab%25c"));
        assert_eq!(get("wasmhost-user-name"), Some("ann"));
        assert_eq!(get("wasmhost-route"), Some("/items/<id>"));
        assert_eq!(get("wasmhost-rest"), None);
        assert!(pairs.iter().all(|(k, _)| is_host_header(k)));
    }
}
