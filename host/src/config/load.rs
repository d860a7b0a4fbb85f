//! [`load_config`]: reads `routes.json` and checks that the files it names exist.
//!
//! It checks the modules, granted directories, error pages and static directories;
//! this is the only part of `config` that touches the file system.

use std::fs;
use std::io;
use std::path::Path;

use super::error::show;
use super::units::fmt_size;
use super::{Config, ConfigError, MAX_ERROR_PAGE, RouteTarget, parse_config};

/// Reads, parses and validates the config file at `path`, then checks that
/// every module is a file and every static directory is a directory.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let config = parse_config(&text, path)?;
    for (name, app) in &config.apps {
        if let Some(problem) = check_kind(&app.module, false) {
            return Err(ConfigError::ModuleMissing {
                path: config.path.clone(),
                app: name.clone(),
                module: app.module.clone(),
                problem,
            });
        }
        let grant_dir = app
            .grants
            .dir
            .iter()
            .map(|d| (d.host.as_path(), true, "grants.dir.host".to_owned()));
        let pages = app
            .error_pages
            .iter()
            .map(|(code, file)| (file.as_path(), false, format!("error_pages.{code}")));
        for (file, dir, field) in grant_dir.chain(pages) {
            let problem = check_kind(file, dir).or_else(|| {
                let len = fs::metadata(file).map_or(0, |m| m.len());
                (!dir && len > MAX_ERROR_PAGE).then(|| {
                    format!(
                        "is {len} bytes, more than the limit of {}",
                        fmt_size(MAX_ERROR_PAGE)
                    )
                })
            });
            if let Some(problem) = problem {
                return Err(ConfigError::Limit {
                    path: config.path.clone(),
                    field: format!("apps.{name}.{field}"),
                    message: format!("{} {problem}", show(file)),
                });
            }
        }
    }
    for (index, route) in config.routes.iter().enumerate() {
        if let RouteTarget::Static(dir) = &route.target
            && let Some(problem) = check_kind(dir, true)
        {
            return Err(ConfigError::StaticMissing {
                path: config.path.clone(),
                route: index + 1,
                pattern: route.path.clone(),
                dir: dir.clone(),
                problem,
            });
        }
    }
    Ok(config)
}

/// What is wrong with `path` as a file (or directory), if anything.
fn check_kind(path: &Path, dir: bool) -> Option<String> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some("does not exist".to_owned()),
        Err(e) => Some(format!("cannot be accessed: {e}")),
        Ok(meta) if dir && !meta.is_dir() => Some("is not a directory".to_owned()),
        Ok(meta) if !dir && !meta.is_file() => Some("is not a file".to_owned()),
        Ok(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_checks_files() {
        let tmp = match tempfile::tempdir() {
            Ok(tmp) => tmp,
            Err(e) => panic!("tempdir: {e}"),
        };
        let dir = tmp.path();
        let write = |name: &str, text: &str| {
            if let Err(e) = fs::write(dir.join(name), text) {
                panic!("write {name}: {e}");
            }
        };
        write("a.wasm", "");
        write("file", "");
        if let Err(e) = fs::create_dir_all(dir.join("www").join("d.wasm")) {
            panic!("mkdir: {e}");
        }
        let d = dir.display();
        // (routes.json text, the message after the config path, or None if valid)
        let table = [
            (
                r#"{"apps": {"a": {"module": "a.wasm"}}, "routes": [{"path": "/", "app": "a"}, {"path": "/s/...", "static": "www"}]}"#.to_owned(),
                None,
            ),
            (
                r#"{"apps": {"b": {"module": "b.wasm"}}, "routes": [{"path": "/", "app": "b"}]}"#.to_owned(),
                Some(format!("app \"b\": module {d}/b.wasm does not exist")),
            ),
            (
                r#"{"apps": {"d": {"module": "www/d.wasm"}}, "routes": [{"path": "/", "app": "d"}]}"#.to_owned(),
                Some(format!("app \"d\": module {d}/www/d.wasm is not a file")),
            ),
            (
                r#"{"routes": [{"path": "/s/...", "static": "nope"}]}"#.to_owned(),
                Some(format!("route 1 (/s/...): static directory {d}/nope does not exist")),
            ),
            (
                r#"{"routes": [{"path": "/", "static": "www"}, {"path": "/f/...", "static": "file"}]}"#.to_owned(),
                Some("route 1 (/): a static route must be a prefix pattern ending in `/...`".to_owned()),
            ),
            (
                r#"{"routes": [{"path": "/...", "static": "www"}, {"path": "/f/...", "static": "file"}]}"#.to_owned(),
                Some(format!("route 2 (/f/...): static directory {d}/file is not a directory")),
            ),
        ];
        let config_path = dir.join("routes.json");
        for (text, want) in table {
            write("routes.json", &text);
            let got = load_config(&config_path);
            match (&got, &want) {
                (Ok(config), None) => assert_eq!(config.path, config_path),
                (Err(e), Some(want)) => {
                    assert_eq!(e.to_string(), format!("{}: {want}", config_path.display()));
                }
                _ => panic!("{text}: {got:?}"),
            }
        }
        let missing = dir.join("missing.json");
        let got = load_config(&missing);
        assert!(matches!(got, Err(ConfigError::Read { .. })), "{got:?}");
        let msg = got.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.starts_with(&format!("{}: cannot read: ", missing.display())),
            "{msg}"
        );
        let msg = load_config(dir)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.starts_with(&format!("{d}: cannot read: ")), "{msg}");
    }
}
