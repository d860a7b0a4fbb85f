//! Grants: what an app's guests may use beyond clocks and random numbers.
//!
//! A read-only directory, environment variables and host functions; `parse_grants`
//! validates an app's `"grants"`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::router::one_line;

use wasmhost_abi::DEFAULT_HOST_GRANTS;
use wasmhost_abi::HOST_GRANTS;

use super::error::ConfigError;
use super::limits::MAX_ENV_BYTES;
use super::raw::{Object, RawGrants};

/// Capabilities granted to an app; everything not listed is denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// A host directory the guest may read (never write), and its guest path.
    pub dir: Option<DirGrant>,
    /// Environment variables the guest sees.
    pub env: BTreeMap<String, String>,
    /// Functions of the `wasmhost` import module the guest may import.
    pub host: BTreeSet<String>,
    /// Origins a component may send HTTP requests to (`wasi:http/outgoing-handler`).
    pub outbound: Vec<OutboundOrigin>,
}

/// An origin outbound HTTP may reach: scheme, host and port, all exact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundOrigin {
    /// `http` or `https`.
    pub scheme: String,
    /// A host name or an IP address, lower-case (IPv6 in brackets).
    pub host: String,
    pub port: u16,
}

/// Most origins one app may list in `grants.outbound`: each outgoing request
/// is checked against all of them.
pub const MAX_OUTBOUND_ORIGINS: usize = 256;

impl OutboundOrigin {
    /// Parses `scheme://host[:port]` (no path, user or wildcard); the port
    /// defaults to the scheme's.
    pub fn parse(text: &str) -> Result<OutboundOrigin, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| "is not an origin like \"https://api.example.com\"".to_owned())?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => {
                return Err(format!(
                    "has scheme \"{scheme}\"; only http and https are supported"
                ));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty()
            || rest.contains(['/', '?', '#', '@', '*'])
            || rest.contains(char::is_whitespace)
        {
            return Err(
                "must be scheme://host[:port] only (no path, user, query or wildcard)".to_owned(),
            );
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("has port \"{port}\", not a number from 1 to 65535"))?;
                (host, port)
            }
            _ => (rest, default_port),
        };
        let ok_host = !host.is_empty()
            && (host.starts_with('[') && host.ends_with(']')
                || host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)));
        if !ok_host {
            return Err(format!(
                "has host \"{host}\", not a host name or an IP address"
            ));
        }
        Ok(OutboundOrigin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl Default for Grants {
    fn default() -> Self {
        Grants {
            dir: None,
            env: BTreeMap::new(),
            host: DEFAULT_HOST_GRANTS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            outbound: Vec::new(),
        }
    }
}

/// A read-only preopened directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// The host directory, joined to the config file's directory if relative.
    pub host: PathBuf,
    /// Where the guest finds it, e.g. `/data`.
    pub guest: String,
}

/// Validates an app's grants; relative directories are joined to `base`.
pub(super) fn parse_grants(
    path: &Path,
    app: &str,
    base: &Path,
    raw: &RawGrants,
) -> Result<Grants, ConfigError> {
    let error = |field: &str, message: String| ConfigError::Limit {
        path: path.to_path_buf(),
        field: format!("apps.{app}.grants.{field}"),
        message,
    };
    let dir = match &raw.dir {
        None => None,
        Some(Object(dir)) => {
            if dir.host.is_empty() {
                return Err(error("dir.host", "the directory is empty".to_owned()));
            }
            let guest_ok = dir.guest.starts_with('/')
                && !dir.guest.contains('\0')
                && dir.guest.split('/').all(|seg| seg != "." && seg != "..");
            if !guest_ok {
                return Err(error(
                    "dir.guest",
                    format!(
                        "\"{}\" is not an absolute guest path like \"/data\"",
                        one_line(&dir.guest)
                    ),
                ));
            }
            Some(DirGrant {
                host: base.join(&dir.host),
                guest: dir.guest.clone(),
            })
        }
    };
    let env = raw.env.clone().unwrap_or_default();
    let mut env_bytes = 0;
    for (name, value) in &env {
        if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
            return Err(error(
                "env",
                format!(
                    "\"{}\" is not a valid variable (a name without `=` or NUL, a value without NUL)",
                    one_line(name)
                ),
            ));
        }
        env_bytes += name.len() + value.len() + 2;
    }
    if env_bytes > MAX_ENV_BYTES {
        return Err(error(
            "env",
            format!("{env_bytes} bytes of variables, more than the limit of {MAX_ENV_BYTES}"),
        ));
    }
    let host = match &raw.host {
        None => Grants::default().host,
        Some(names) => {
            let mut set = BTreeSet::new();
            for name in names {
                if !HOST_GRANTS.contains(&name.as_str()) {
                    return Err(error(
                        "host",
                        format!(
                            "unknown host grant \"{}\" (known: {})",
                            one_line(name),
                            HOST_GRANTS.join(", ")
                        ),
                    ));
                }
                set.insert(name.clone());
            }
            set
        }
    };
    let raw_outbound = raw.outbound.clone().unwrap_or_default();
    if raw_outbound.len() > MAX_OUTBOUND_ORIGINS {
        return Err(error(
            "outbound",
            format!(
                "{} origins, more than the limit of {MAX_OUTBOUND_ORIGINS}",
                raw_outbound.len()
            ),
        ));
    }
    let mut outbound = Vec::with_capacity(raw_outbound.len());
    for text in &raw_outbound {
        let origin = OutboundOrigin::parse(text)
            .map_err(|why| error("outbound", format!("\"{}\" {why}", one_line(text))))?;
        outbound.push(origin);
    }
    Ok(Grants {
        dir,
        env,
        host,
        outbound,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PATH, error, parse};
    use super::*;

    #[test]
    fn grants_and_error_pages() {
        let app = |settings: &str| {
            format!(
                r#"{{"apps": {{"a": {{"module": "a.wasm", {settings}}}}},
                    "routes": [{{"path": "/", "app": "a"}}]}}"#
            )
        };
        let c = match parse(&app(
            r#""grants": {"dir": {"host": "data", "guest": "/data"}, "env": {"K": "V"}, "host": []},
               "error_pages": {"504": "pages/slow.html"}"#,
        )) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let a = &c.apps["a"];
        assert_eq!(
            a.grants,
            Grants {
                dir: Some(DirGrant {
                    host: PathBuf::from("conf/data"),
                    guest: "/data".to_owned(),
                }),
                env: BTreeMap::from([("K".to_owned(), "V".to_owned())]),
                host: BTreeSet::new(),
                outbound: Vec::new(),
            }
        );
        assert_eq!(
            a.error_pages,
            BTreeMap::from([(504, PathBuf::from("conf/pages/slow.html"))])
        );
        // No grants: nothing but the default host functions.
        let c = match parse(&app(r#""grants": {}"#)) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(c.apps["a"].grants, Grants::default());
        assert_eq!(Grants::default().host, BTreeSet::from(["log".to_owned()]));
        let c = match parse(&app(
            r#""grants": {"outbound": ["http://127.0.0.1:8080", "HTTPS://Api.Example/", "http://[::1]:9"]}"#,
        )) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let got: Vec<(String, String, u16)> = c.apps["a"]
            .grants
            .outbound
            .iter()
            .map(|o| (o.scheme.clone(), o.host.clone(), o.port))
            .collect();
        let want = [
            ("http", "127.0.0.1", 8080),
            ("https", "api.example", 443),
            ("http", "[::1]", 9),
        ]
        .map(|(s, h, p)| (s.to_owned(), h.to_owned(), p));
        assert_eq!(got, want);
        // (settings, the end of the error message)
        let table = [
            (
                r#""grants": {"dir": {"host": "data", "guest": "data"}}"#,
                r#"apps.a.grants.dir.guest: "data" is not an absolute guest path like "/data""#,
            ),
            (
                r#""grants": {"dir": {"host": "data", "guest": "/x/../y"}}"#,
                r#"apps.a.grants.dir.guest: "/x/../y" is not an absolute guest path like "/data""#,
            ),
            (
                r#""grants": {"env": {"A=B": "1"}}"#,
                r#"apps.a.grants.env: "A=B" is not a valid variable (a name without `=` or NUL, a value without NUL)"#,
            ),
            (
                r#""grants": {"host": ["log", "sockets"]}"#,
                r#"apps.a.grants.host: unknown host grant "sockets" (known: log, storage, sessions)"#,
            ),
            (
                r#""error_pages": {"404": "x.html"}"#,
                "apps.a.error_pages.404: pages can be given for statuses [500, 502, 503, 504] only",
            ),
            (
                r#""grants": {"outbound": ["api.example.com"]}"#,
                r#"apps.a.grants.outbound: "api.example.com" is not an origin like "https://api.example.com""#,
            ),
            (
                r#""grants": {"outbound": ["ftp://x"]}"#,
                r#"apps.a.grants.outbound: "ftp://x" has scheme "ftp"; only http and https are supported"#,
            ),
            (
                r#""grants": {"outbound": ["https://x/path"]}"#,
                r#"apps.a.grants.outbound: "https://x/path" must be scheme://host[:port] only (no path, user, query or wildcard)"#,
            ),
            (
                r#""grants": {"outbound": ["http://*.example"]}"#,
                r#"apps.a.grants.outbound: "http://*.example" must be scheme://host[:port] only (no path, user, query or wildcard)"#,
            ),
            (
                r#""grants": {"outbound": ["http://x:99999"]}"#,
                r#"apps.a.grants.outbound: "http://x:99999" has port "99999", not a number from 1 to 65535"#,
            ),
        ];
        for (settings, want) in table {
            assert_eq!(error(&app(settings)), format!("{PATH}: {want}"));
        }
    }
}
