//! [`ConfigError`]: the one-line errors a config can fail with, and how they are shown.
//!
//! `show` puts a path in a message; `json_error` turns serde_json's errors into
//! errors with a line and column.

use std::io;
use std::path::{Path, PathBuf};

use crate::router::one_line;

/// Why a config cannot be used. Every message is one line that starts with
/// the config file's path. Route numbers count from 1 (the first route is
/// route 1), as do the `route` fields.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("{}: cannot read: {source}", show(.path))]
    Read { path: PathBuf, source: io::Error },
    /// The text is not JSON.
    #[error("{}:{line}:{column}: invalid JSON: {message}", show(.path))]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The JSON does not have the expected shape: an unknown or missing key,
    /// a value of the wrong type, a duplicate key.
    #[error("{}:{line}:{column}: {message}", show(.path))]
    Schema {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// An app's name or module is invalid.
    #[error("{}: app \"{}\": {}", show(.path), one_line(.app), one_line(.message))]
    App {
        path: PathBuf,
        app: String,
        message: String,
    },
    /// A limit is not a valid value; `field` is like `apps.blog.limits.memory`.
    #[error("{}: {}: {}", show(.path), one_line(.field), one_line(.message))]
    Limit {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// A route is invalid: its pattern, host or target.
    #[error(
        "{}: route {route} ({}): {}",
        show(.path),
        one_line(.pattern),
        one_line(.message)
    )]
    Route {
        path: PathBuf,
        route: usize,
        pattern: String,
        message: String,
    },
    /// A route names an app that is not defined.
    #[error(
        "{}: route {route} ({}): unknown app \"{}\"",
        show(.path),
        one_line(.pattern),
        one_line(.app)
    )]
    UnknownApp {
        path: PathBuf,
        route: usize,
        pattern: String,
        app: String,
    },
    /// Two routes for the same host have patterns of the same shape.
    #[error(
        "{}: route {route} ({}) conflicts with route {other_route} ({})",
        show(.path),
        one_line(.pattern),
        one_line(.other_pattern)
    )]
    Conflict {
        path: PathBuf,
        route: usize,
        pattern: String,
        other_route: usize,
        other_pattern: String,
    },
    /// An app's module is missing or not a file ([`load_config`](super::load_config) only).
    #[error(
        "{}: app \"{}\": module {} {problem}",
        show(.path),
        one_line(.app),
        show(.module)
    )]
    ModuleMissing {
        path: PathBuf,
        app: String,
        module: PathBuf,
        problem: String,
    },
    /// A static route's directory is missing or not a directory
    /// ([`load_config`](super::load_config) only).
    #[error(
        "{}: route {route} ({}): static directory {} {problem}",
        show(.path),
        one_line(.pattern),
        show(.dir)
    )]
    StaticMissing {
        path: PathBuf,
        route: usize,
        pattern: String,
        dir: PathBuf,
        problem: String,
    },
}

/// A path for a one-line message.
pub(super) fn show(path: &Path) -> String {
    one_line(&path.to_string_lossy()).into_owned()
}

/// Turns a serde_json error into a one-line error with the position.
pub(super) fn json_error(path: &Path, e: &serde_json::Error) -> ConfigError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; the position goes in front.
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = one_line(full.strip_suffix(&suffix).unwrap_or(&full)).into_owned();
    // Column 0 means "before the first character of the line"; editors count from 1.
    let (path, line, column) = (path.to_path_buf(), e.line(), e.column().max(1));
    match e.classify() {
        serde_json::error::Category::Data => ConfigError::Schema {
            path,
            line,
            column,
            message,
        },
        _ => ConfigError::Syntax {
            path,
            line,
            column,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{PATH, error, parse};
    use super::*;

    #[test]
    fn json_errors() {
        // (text, line, column, message after the position)
        let table = [
            (
                "{\n  \"apps\": {}\n  \"routes\": []\n}",
                3,
                3,
                "invalid JSON: expected `,` or `}`",
            ),
            ("", 1, 1, "invalid JSON: EOF while parsing a value"),
            (
                "{\"routes\": [",
                1,
                12,
                "invalid JSON: EOF while parsing a list",
            ),
            (
                "{\"routes\": []} x",
                1,
                16,
                "invalid JSON: trailing characters",
            ),
            (
                "[]",
                1,
                1,
                "invalid type: sequence, expected an object with \"apps\" and \"routes\"",
            ),
            ("{}", 1, 2, "missing field `routes`"),
            (
                "{\"routes\": [{\"app\": \"a\"}]}",
                1,
                24,
                "missing field `path`",
            ),
            (
                "{\"routes\": [{\"path\": 5, \"app\": \"a\"}]}",
                1,
                22,
                "invalid type: integer `5`, expected a string",
            ),
            (
                "{\"apps\": {\"a\": {\"module\": \"a.wasm\"}, \"a\": {\"module\": \"b.wasm\"}}, \"routes\": []}",
                1,
                40,
                "app \"a\" is defined twice",
            ),
            (
                "{\"routes\": [{\"path\": \"/\", \"path\": \"/x\"}]}",
                1,
                32,
                "duplicate field `path`",
            ),
        ];
        for (text, line, column, message) in table {
            match parse(text) {
                Err(e @ (ConfigError::Syntax { .. } | ConfigError::Schema { .. })) => {
                    assert_eq!(
                        e.to_string(),
                        format!("{PATH}:{line}:{column}: {message}"),
                        "{text}"
                    );
                    let is_syntax = matches!(e, ConfigError::Syntax { .. });
                    assert_eq!(is_syntax, message.starts_with("invalid JSON"), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn messages_are_one_line() {
        let texts = [
            "{\n\n  \"routes\": [\n\n",
            "{\"routes\": [{\"path\": \"/\",\n \"app\": \"a\", \"x\": 1}]}",
            "{\"apps\": {\"a\": {\"module\": \"a.wasm\", \"limits\": {\"memory\": \"a\\nb\"}}}, \"routes\": []}",
            "{\"routes\": [{\"path\": \"/a\\nb\", \"app\": \"a\"}]}",
            // JSON need not escape DEL or the C1 controls (U+0085 is a line
            // break to some readers): a limit's value is quoted as JSON
            // (found by the `routes` fuzz target).
            "{\"apps\": {\"a\": {\"module\": \"a.wasm\", \"limits\": {\"memory\": \"a\u{7f}\u{85}b\"}}}, \"routes\": []}",
        ];
        for text in texts {
            let msg = error(text);
            assert!(!msg.chars().any(char::is_control), "{msg:?}");
            assert!(msg.starts_with(PATH), "{msg}");
        }
    }
}
