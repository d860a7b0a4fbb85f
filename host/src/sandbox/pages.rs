//! The pages an app ships for its own failure statuses, read and bounded at load.

use super::*;

/// A page an app ships for one of its failure statuses, loaded with its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// An app's pages by status (only `config::ERROR_PAGE_STATUSES` are loaded).
pub type ErrorPages = std::collections::BTreeMap<u16, ErrorPage>;

/// Reads an app's error page, refusing one over `MAX_ERROR_PAGE`.
pub(super) fn read_error_page(path: &Path) -> Result<ErrorPage, LoadError> {
    let err = |reason: String| LoadError::ErrorPage {
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut body = Vec::new();
    file.take(MAX_ERROR_PAGE + 1)
        .read_to_end(&mut body)
        .map_err(|e| err(e.to_string()))?;
    if body.len() as u64 > MAX_ERROR_PAGE {
        return Err(err(format!(
            "larger than the limit of {MAX_ERROR_PAGE} bytes"
        )));
    }
    let content_type = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("text/plain")
        .to_owned();
    let content_type = if content_type.starts_with("text/") {
        format!("{content_type}; charset=utf-8")
    } else {
        content_type
    };
    Ok(ErrorPage { content_type, body })
}
