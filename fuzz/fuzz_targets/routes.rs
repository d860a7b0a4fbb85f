//! Fuzz target `routes`: `config::parse_config` on arbitrary text, and `router::Router` built from parsed configs and from raw route lines, routing arbitrary paths.
//!
//! Input: the config text, then optionally a NUL byte and lines: a line
//! `=PATTERN [HOST]` is a route of the raw router, any other line
//! `[HOST ]PATH` a request to route.
//!
//! Properties: nothing panics; every config error and every warning is one
//! line (no control character at all, so no CR or LF) that starts with the
//! config's path; a config that parses builds a `Router` (its validation and
//! the router's agree); every route is found by a path made from its own
//! pattern; a match names one of the router's patterns, its `rest` is empty or
//! starts with `/` (and is empty for an exact pattern), its parameters are
//! the pattern's, in order, with no NUL; router errors are one line too.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wasmhost::config::parse_config;
use wasmhost::router::Router;

const CONFIG_PATH: &str = "/srv/site/routes.json";

fuzz_target!(|input: &[u8]| {
    let (text, tail) = match input.iter().position(|&b| b == 0) {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &[][..]),
    };
    let text = String::from_utf8_lossy(text);
    let tail = String::from_utf8_lossy(tail);
    let mut raw_routes = Vec::new();
    let mut requests = Vec::new();
    for line in tail.split('\n') {
        if let Some(route) = line.strip_prefix('=') {
            let (pattern, host) = match route.split_once(' ') {
                Some((pattern, host)) => (pattern, Some(host.to_owned())),
                None => (route, None),
            };
            raw_routes.push((host, pattern.to_owned()));
        } else {
            requests.push(match line.split_once(' ') {
                Some((host, path)) => (Some(host), path),
                None => (None, line),
            });
        }
    }

    match parse_config(&text, Path::new(CONFIG_PATH)) {
        Err(e) => one_line(&e.to_string(), true),
        Ok(config) => {
            for warning in &config.warnings {
                one_line(warning, true);
            }
            let routes: Vec<(Option<String>, String)> = config
                .routes
                .iter()
                .map(|r| (r.host.clone(), r.path.clone()))
                .collect();
            match build(&routes) {
                Ok(router) => check_router(&router, &routes, &requests),
                Err(e) => panic!("a parsed config does not build a router: {e}"),
            }
        }
    }

    match build(&raw_routes) {
        Ok(router) => check_router(&router, &raw_routes, &requests),
        Err(e) => one_line(&e, false),
    }
});

/// A router whose targets are the routes' positions.
fn build(routes: &[(Option<String>, String)]) -> Result<Router<usize>, String> {
    let table = routes
        .iter()
        .enumerate()
        .map(|(i, (host, pattern))| (host.clone(), pattern.clone(), i))
        .collect();
    Router::new(table).map_err(|e| {
        let message = e.to_string();
        one_line(&message, false);
        message
    })
}

fn one_line(message: &str, with_path: bool) {
    assert!(!message.chars().any(char::is_control), "{message:?}");
    if with_path {
        assert!(message.starts_with(CONFIG_PATH), "{message:?}");
    }
}

fn check_router(
    router: &Router<usize>,
    routes: &[(Option<String>, String)],
    requests: &[(Option<&str>, &str)],
) {
    // Each route's own shape routes somewhere: `{name}` filled in, `...` dropped.
    for (host, pattern) in routes {
        let path: Vec<&str> = pattern
            .split('/')
            .map(|seg| if seg.starts_with('{') { "v" } else { seg })
            .collect();
        let mut path = path.join("/");
        if let Some(stripped) = path.strip_suffix("/...") {
            path = stripped.to_owned();
        }
        if path.is_empty() {
            path.push('/');
        }
        let host = host.as_deref().map(|h| h.to_owned());
        match router.route(host.as_deref(), &path) {
            Ok(Some(m)) => check_match(routes, &path, &m),
            other => panic!("route {pattern:?} (host {host:?}): {path:?} gives {other:?}"),
        }
        // An exact literal pattern is the most specific match of its own text.
        if !pattern.contains('{') && !pattern.ends_with("/...") {
            let m = router.route(host.as_deref(), pattern);
            assert!(
                matches!(&m, Ok(Some(m)) if m.pattern == pattern),
                "{pattern:?}: {m:?}"
            );
        }
    }
    for (host, path) in requests {
        match router.route(*host, path) {
            Ok(Some(m)) => check_match(routes, path, &m),
            Ok(None) => {}
            Err(e) => one_line(&e.to_string(), false),
        }
    }
}

fn check_match(
    routes: &[(Option<String>, String)],
    path: &str,
    m: &wasmhost::router::RouteMatch<'_, usize>,
) {
    let (_, pattern) = &routes[*m.target];
    assert_eq!(m.pattern, pattern, "{path:?}");
    let prefix = pattern.ends_with("/...");
    assert!(
        m.rest.is_empty() || m.rest.starts_with('/'),
        "{path:?}: rest {:?}",
        m.rest
    );
    assert!(prefix || m.rest.is_empty(), "{path:?}: rest {:?}", m.rest);
    assert!(path.ends_with(&m.rest), "{path:?}: rest {:?}", m.rest);
    let names: Vec<&str> = pattern
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    let got: Vec<&str> = m.params.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(got, names, "{path:?}");
    for (name, value) in &m.params {
        assert!(!value.contains('\0'), "{name} = {value:?}");
    }
}
