//! Helpers shared by the config tests, which parse texts as `conf/routes.json`.

use std::path::Path;

use super::{Config, ConfigError, parse_config};

pub(super) const PATH: &str = "conf/routes.json";

pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
    parse_config(text, Path::new(PATH))
}

/// The error message for `text`, which must not parse.
pub(super) fn error(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

/// A config with one app whose limits are `limits`, routed at `/`.
pub(super) fn with_limits(limits: &str) -> String {
    format!(
        r#"{{"apps": {{"a": {{"module": "a.wasm", "limits": {limits}}}}},
                "routes": [{{"path": "/", "app": "a"}}]}}"#
    )
}
