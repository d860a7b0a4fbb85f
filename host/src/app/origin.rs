//! Where a request comes from: the cross-site `Origin` check (before any guest runs) and the request's host name.

use crate::http::{Method, Request};

/// For a state-changing request whose `Origin` names another site, that
/// origin. A request without `Origin` (not from a browser page) passes.
pub fn foreign_origin(req: &Request) -> Option<String> {
    if matches!(req.method, Method::Get | Method::Head | Method::Options) {
        return None;
    }
    let origin = req.header("origin")?.trim();
    let host = req.header("host").unwrap_or("");
    let authority = origin
        .split_once("://")
        .map(|(scheme, rest)| (scheme.to_ascii_lowercase(), rest));
    let same = match authority {
        Some((scheme, rest)) if scheme == "http" || scheme == "https" => {
            let default_port = if scheme == "http" { ":80" } else { ":443" };
            let origin_host = rest.trim_end_matches('/');
            let strip = |h: &str| {
                h.strip_suffix(default_port)
                    .unwrap_or(h)
                    .to_ascii_lowercase()
            };
            strip(origin_host) == strip(host.trim())
        }
        // "null" (sandboxed frames, file pages) and anything else.
        _ => false,
    };
    (!same).then(|| origin.to_owned())
}

/// Lower-cased host name without port; IPv6 literals keep their brackets.
pub fn host_without_port(value: &str) -> String {
    let value = value.trim();
    let name = if value.starts_with('[') {
        value.find(']').map_or(value, |end| &value[..=end])
    } else {
        value.rsplit_once(':').map_or(value, |(name, _)| name)
    };
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port() {
        let table = [
            ("example.com", "example.com"),
            ("Example.COM:8080", "example.com"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("127.0.0.1:1", "127.0.0.1"),
        ];
        for (input, expected) in table {
            assert_eq!(host_without_port(input), expected);
        }
    }
}
