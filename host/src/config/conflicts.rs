//! Route conflicts: routes for one host whose patterns have the same shape.
//!
//! They are found with the router's own rules, so that the rules live in one place.

use std::path::Path;

use crate::router::{RouteError, Router, one_line};

use super::{ConfigError, RouteConfig};

/// Reports route conflicts, using the router's own rules.
pub(super) fn check_conflicts(path: &Path, routes: &[RouteConfig]) -> Result<(), ConfigError> {
    let table = routes
        .iter()
        .map(|r| (r.host.clone(), r.path.clone(), ()))
        .collect();
    match Router::new(table) {
        Ok(_) => Ok(()),
        Err(RouteError::Conflict {
            index,
            pattern,
            other_index,
            other_pattern,
        }) => Err(ConfigError::Conflict {
            path: path.to_path_buf(),
            route: index + 1,
            pattern,
            other_route: other_index + 1,
            other_pattern,
        }),
        // Patterns and hosts were validated above, so these do not happen.
        Err(RouteError::Pattern {
            index,
            pattern,
            reason,
        }) => Err(ConfigError::Route {
            path: path.to_path_buf(),
            route: index + 1,
            pattern,
            message: format!("invalid path pattern: {reason}"),
        }),
        Err(RouteError::Host {
            index,
            pattern,
            host,
            reason,
        }) => Err(ConfigError::Route {
            path: path.to_path_buf(),
            route: index + 1,
            pattern,
            message: format!("invalid host \"{}\": {reason}", one_line(&host)),
        }),
        // Only routing a request produces these.
        Err(e @ (RouteError::Param { .. } | RouteError::DotSegment)) => Err(ConfigError::Route {
            path: path.to_path_buf(),
            route: 0,
            pattern: String::new(),
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PATH, parse};
    use super::*;

    #[test]
    fn conflicts() {
        // (routes array, the message after the config path, or None if valid)
        let table = [
            (
                r#"[{"path": "/post/{id}", "app": "a"}, {"path": "/post/{slug}", "app": "a"}]"#,
                Some("route 2 (/post/{slug}) conflicts with route 1 (/post/{id})"),
            ),
            (
                r#"[{"path": "/hello", "app": "a"}, {"path": "/x/...", "static": "x"}, {"path": "/hello", "app": "a"}]"#,
                Some("route 3 (/hello) conflicts with route 1 (/hello)"),
            ),
            (
                r#"[{"path": "/x/...", "app": "a"}, {"path": "/x/...", "static": "x"}]"#,
                Some("route 2 (/x/...) conflicts with route 1 (/x/...)"),
            ),
            (
                r#"[{"host": "a.com", "path": "/", "app": "a"}, {"host": "A.COM", "path": "/", "app": "a"}]"#,
                Some("route 2 (/) conflicts with route 1 (/)"),
            ),
            (
                r#"[{"host": "a.com", "path": "/", "app": "a"}, {"path": "/", "app": "a"}]"#,
                None,
            ),
            (
                r#"[{"path": "/hello", "app": "a"}, {"path": "/hello/...", "app": "a"}, {"path": "/hello/", "app": "a"}]"#,
                None,
            ),
        ];
        for (routes, want) in table {
            let got = parse(&format!(
                r#"{{"apps": {{"a": {{"module": "a.wasm"}}}}, "routes": {routes}}}"#
            ));
            match (got, want) {
                (Ok(_), None) => {}
                (Err(e @ ConfigError::Conflict { .. }), Some(want)) => {
                    assert_eq!(e.to_string(), format!("{PATH}: {want}"), "{routes}");
                }
                (got, _) => panic!("{routes}: {got:?}"),
            }
        }
    }
}
