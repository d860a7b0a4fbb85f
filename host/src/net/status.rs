//! The network layer's own failures and its status table: what the server answers when it, not an app, cannot serve.

use crate::http::Response;
use crate::http::error_page::error_page;

/// Failures of the network layer itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NetFailure {
    #[error("too many requests in progress")]
    Overloaded,
    #[error("handler panicked")]
    HandlerPanicked,
}

impl NetFailure {
    /// This layer's status table.
    pub fn status(self) -> u16 {
        match self {
            NetFailure::Overloaded => 503,
            NetFailure::HandlerPanicked => 500,
        }
    }
}

/// The generic answer to a failure of this layer (503s say when to retry).
pub fn response(failure: &NetFailure, wants_json: bool) -> Response {
    error_page(failure.status(), wants_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_network_failure_has_one_status() {
        for (failure, status, retry) in [
            (NetFailure::Overloaded, 503, Some("1")),
            (NetFailure::HandlerPanicked, 500, None),
        ] {
            let resp = response(&failure, false);
            assert_eq!(resp.status, status);
            assert_eq!(resp.header("retry-after"), retry);
        }
    }
}
