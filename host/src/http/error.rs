//! The HTTP layer's own failures and its status table: what a malformed, oversized or stalled request is answered with.
//!
//! Like hyper's `role.rs`, this layer maps only its own errors; failures
//! about an app are the application layer's (`app/failure.rs`).

use crate::http::Response;
use crate::http::chunked::ChunkedError;
use crate::http::error_page::error_page;
use crate::http::parse::ParseError;

/// Why the connection layer answers a request itself. After any of these the
/// connection is closed: the rest of its bytes can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Chunked(#[from] ChunkedError),
    #[error("request body of {len} bytes is larger than the limit of {limit}")]
    BodyTooLarge { len: u64, limit: u64 },
    #[error("request header not received in time")]
    HeaderTimeout,
    #[error("request body not received in time")]
    BodyTimeout,
}

impl ProtocolError {
    /// The status code answering this error: this layer's status table.
    pub fn status(&self) -> u16 {
        match self {
            ProtocolError::Parse(e) => match e {
                ParseError::RequestLineTooLong => 414,
                ParseError::HeaderSectionTooLarge | ParseError::TooManyHeaders => 431,
                ParseError::Malformed(_) | ParseError::Framing(_) => 400,
                ParseError::UnsupportedVersion => 505,
                ParseError::MethodNotImplemented => 501,
                ParseError::ExpectationFailed => 417,
            },
            ProtocolError::Chunked(ChunkedError::Malformed(_)) => 400,
            ProtocolError::Chunked(ChunkedError::TooLarge) | ProtocolError::BodyTooLarge { .. } => {
                413
            }
            ProtocolError::HeaderTimeout | ProtocolError::BodyTimeout => 408,
        }
    }

    /// The generic page for this error (the details go to the log only).
    pub fn response(&self, wants_json: bool) -> Response {
        error_page(self.status(), wants_json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_error_has_one_status() {
        let table: Vec<(ProtocolError, u16)> = vec![
            (ParseError::RequestLineTooLong.into(), 414),
            (ParseError::HeaderSectionTooLarge.into(), 431),
            (ParseError::TooManyHeaders.into(), 431),
            (ParseError::Malformed("x").into(), 400),
            (ParseError::Framing("x").into(), 400),
            (ParseError::UnsupportedVersion.into(), 505),
            (ParseError::MethodNotImplemented.into(), 501),
            (ParseError::ExpectationFailed.into(), 417),
            (ChunkedError::Malformed("x").into(), 400),
            (ChunkedError::TooLarge.into(), 413),
            (ProtocolError::BodyTooLarge { len: 2, limit: 1 }, 413),
            (ProtocolError::HeaderTimeout, 408),
            (ProtocolError::BodyTimeout, 408),
        ];
        for (error, status) in table {
            assert_eq!(error.status(), status, "{error:?}");
            assert_eq!(error.response(false).status, status, "{error:?}");
        }
    }
}
