//! The admin API's answers and its status table: every status the admin listener sends is chosen here.

use serde_json::{Value, json};

use crate::control::deploy::SwapError;
use crate::http::Response;

/// Why an admin request is not carried out.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadRequest(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0}")]
    TooLarge(String),
    #[error("send the body with Content-Length")]
    LengthRequired,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Swap(#[from] SwapError),
    /// `/readyz` while a backend the host needs (its shared Redis) is down.
    #[error("not ready: {0}")]
    NotReady(String),
}

impl AdminError {
    /// The admin API's status table.
    pub fn status(&self) -> u16 {
        match self {
            AdminError::BadRequest(_) => 400,
            AdminError::Unauthorized => 401,
            AdminError::NotFound(_) => 404,
            AdminError::MethodNotAllowed => 405,
            AdminError::LengthRequired => 411,
            AdminError::TooLarge(_) => 413,
            AdminError::NotReady(_) => 503,
            AdminError::Swap(e) => match e {
                SwapError::UnknownApp(_) => 404,
                SwapError::TooLarge { .. } => 413,
                SwapError::NoPrevious(_) => 409,
                SwapError::Refused(_) | SwapError::Config(_) | SwapError::Unstable(_) => 422,
                SwapError::Storage(_) => 500,
                SwapError::Cluster(_) => 503,
            },
        }
    }

    /// The JSON answer: `{"error": message, "status": code}`, the shape of
    /// the server's generic JSON error page, with the message an operator needs.
    pub fn response(&self) -> Response {
        let status = self.status();
        let mut body = serde_json::to_vec(&json!({ "error": self.to_string(), "status": status }))
            .unwrap_or_default();
        body.push(b'\n');
        let resp = Response::new(status).with_body("application/json", body);
        match self {
            AdminError::Unauthorized => resp.with_header("WWW-Authenticate", "Bearer"),
            _ => resp,
        }
    }
}

/// A successful answer carrying a JSON document.
pub fn ok(value: &Value) -> Response {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    Response::new(200).with_body("application/json", body)
}

/// A successful answer carrying text (the Prometheus metrics).
pub fn text(content_type: &str, body: Vec<u8>) -> Response {
    Response::new(200).with_body(content_type, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_admin_error_has_one_status_and_a_json_body() {
        let table: Vec<(AdminError, u16)> = vec![
            (AdminError::BadRequest("x".into()), 400),
            (AdminError::Unauthorized, 401),
            (AdminError::NotFound("x".into()), 404),
            (AdminError::MethodNotAllowed, 405),
            (AdminError::LengthRequired, 411),
            (AdminError::TooLarge("x".into()), 413),
            (SwapError::UnknownApp("a".into()).into(), 404),
            (SwapError::NoPrevious("a".into()).into(), 409),
            (SwapError::Cluster("down".into()).into(), 503),
            (AdminError::NotReady("redis down".into()), 503),
            (SwapError::Refused("bad".into()).into(), 422),
        ];
        for (error, status) in table {
            let resp = error.response();
            assert_eq!(resp.status, status, "{error:?}");
            let crate::http::Body::Bytes(body) = &resp.body else {
                panic!("no body")
            };
            let v: Value = serde_json::from_slice(body).expect("json");
            assert_eq!(v["status"], status);
            assert_eq!(v["error"], error.to_string());
        }
        assert_eq!(
            AdminError::Unauthorized
                .response()
                .header("www-authenticate"),
            Some("Bearer")
        );
    }
}
