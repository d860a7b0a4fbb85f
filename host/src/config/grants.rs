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
    Ok(Grants { dir, env, host })
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
        ];
        for (settings, want) in table {
            assert_eq!(error(&app(settings)), format!("{PATH}: {want}"));
        }
    }
}
