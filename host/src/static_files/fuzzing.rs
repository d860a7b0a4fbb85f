//! Entry points for the fuzz targets in `fuzz/`: this layer's pure parsing and RFC logic behind plain public types. Not an API.
//!
//! The functions here only convert between the layer's private types and
//! plain ones; the logic is the very code [`super::StaticDir::serve`] runs.

use std::time::SystemTime;

use super::conditional::{Precondition, evaluate_preconditions};
use super::path::parse_path;
use super::range::{RangeOutcome, evaluate_range};
use super::validators::Validators;

/// A request path accepted by the path parser.
#[derive(Debug, PartialEq, Eq)]
pub struct FuzzPath {
    /// The decoded segments.
    pub segments: Vec<String>,
    pub trailing_slash: bool,
    /// The `Location` of the redirect a directory named without its trailing
    /// slash gets (`None` for the mount point itself).
    pub dir_location: Option<String>,
}

/// Parses `rest` as `StaticDir::serve` does; the error is the refusal's status.
pub fn fuzz_parse_path(rest: &str) -> Result<FuzzPath, u16> {
    let parsed = parse_path(rest).map_err(|refusal| refusal.status())?;
    let dir_location = parsed.dir_location();
    Ok(FuzzPath {
        segments: parsed.segments,
        trailing_slash: parsed.trailing_slash,
        dir_location,
    })
}

/// What the preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuzzPrecondition {
    Proceed,
    NotModified,
    Failed,
}

/// What a GET's `Range` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuzzRange {
    Full,
    /// Both ends inclusive.
    Partial {
        first: u64,
        last: u64,
    },
    Unsatisfiable,
}

/// The validators of a file (as `serve` computes them) and what the
/// preconditions and the `Range` of a GET with `headers` decide, at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuzzEvaluation {
    /// The strong entity-tag, quotes included.
    pub etag: String,
    /// The `Last-Modified` header value, if any.
    pub last_modified: Option<String>,
    pub precondition: FuzzPrecondition,
    pub range: FuzzRange,
}

/// Evaluates a GET for a file of `len` bytes modified at `mtime` (`None`:
/// unknown) with `headers`, at `now`.
pub fn fuzz_evaluate(
    headers: &[(String, String)],
    len: u64,
    mtime: Option<SystemTime>,
    now: SystemTime,
) -> FuzzEvaluation {
    let v = Validators::from_parts(len, mtime, now);
    let precondition = match evaluate_preconditions(headers, &v, now) {
        Precondition::Proceed => FuzzPrecondition::Proceed,
        Precondition::NotModified => FuzzPrecondition::NotModified,
        Precondition::Failed => FuzzPrecondition::Failed,
    };
    let range = match evaluate_range(headers, &v) {
        RangeOutcome::Full => FuzzRange::Full,
        RangeOutcome::Partial { first, last } => FuzzRange::Partial { first, last },
        RangeOutcome::Unsatisfiable => FuzzRange::Unsatisfiable,
    };
    FuzzEvaluation {
        last_modified: v.last_modified_header(),
        etag: v.etag,
        precondition,
        range,
    }
}
