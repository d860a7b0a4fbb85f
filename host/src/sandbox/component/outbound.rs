//! Outbound HTTP (`wasi:http/outgoing-handler`): denied unless the app's `grants.outbound` lists the request's origin, and then bounded in time and in the size of the response.
//!
//! wasmtime-wasi-http's default sender would let a guest reach any address;
//! every outgoing request passes [`Hooks::send_request`] first, which checks
//! scheme, host and port against the grant before anything is resolved or
//! connected.

use std::future::Future;
use std::time::Duration;

use http_body_util::{BodyExt as _, Limited};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::config::{Grants, Limits, OutboundOrigin};

/// Longest an outbound connection may take to open: a granted origin that
/// does not answer must not hold the request for its whole `wall_time`.
pub const OUTBOUND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest an outbound request may wait for the first byte of its response,
/// and between two frames of it.
pub const OUTBOUND_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Most bytes one outbound response body may bring into the guest: a guest
/// reads it into its own memory, but the host buffers what it has not read.
pub const MAX_OUTBOUND_RESPONSE: usize = 16 * 1024 * 1024;

/// The per-request hooks of a component's `wasi:http`: the outbound policy.
pub(super) struct Hooks {
    /// The origins the app may call.
    allowed: Vec<OutboundOrigin>,
    /// The app's `wall_time`, a ceiling for every outbound timeout.
    wall: Duration,
}

impl Hooks {
    pub(super) fn new(grants: &Grants, limits: &Limits) -> Hooks {
        Hooks {
            allowed: grants.outbound.clone(),
            wall: limits.wall_time,
        }
    }

    /// Whether the request's URI names a granted origin.
    fn allows(&self, uri: &http::Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else {
            return false;
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri.port_u16().or(match scheme {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        });
        let Some(port) = port else { return false };
        self.allowed.iter().any(|o| {
            o.scheme.eq_ignore_ascii_case(scheme)
                && o.host.eq_ignore_ascii_case(host)
                && o.port == port
        })
    }
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        if !self.allows(request.uri()) {
            tracing::warn!(
                uri = %request.uri(),
                "outbound request refused: its origin is not in the app's grants.outbound"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let cap = |asked: Option<Duration>, most: Duration| {
            Some(asked.unwrap_or(most).min(most).min(self.wall))
        };
        let options = RequestOptions {
            connect_timeout: cap(
                options.and_then(|o| o.connect_timeout),
                OUTBOUND_CONNECT_TIMEOUT,
            ),
            first_byte_timeout: cap(
                options.and_then(|o| o.first_byte_timeout),
                OUTBOUND_READ_TIMEOUT,
            ),
            between_bytes_timeout: cap(
                options.and_then(|o| o.between_bytes_timeout),
                OUTBOUND_READ_TIMEOUT,
            ),
        };
        Box::new(async move {
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let response = response.map(|body| {
                Limited::new(body, MAX_OUTBOUND_RESPONSE)
                    .map_err(|e| match e.downcast::<Error>() {
                        Ok(inner) => *inner,
                        Err(_) => Error::HttpResponseBodySize(None),
                    })
                    .boxed_unsync()
            });
            Ok((
                response,
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_origins_are_allowed() {
        let origin = |scheme: &str, host: &str, port| OutboundOrigin {
            scheme: scheme.to_owned(),
            host: host.to_owned(),
            port,
        };
        let hooks = Hooks {
            allowed: vec![
                origin("http", "127.0.0.1", 8080),
                origin("https", "api.example", 443),
            ],
            wall: Duration::from_secs(1),
        };
        let table = [
            ("http://127.0.0.1:8080/x", true),
            ("http://127.0.0.1:8081/x", false),
            ("https://127.0.0.1:8080/x", false),
            ("https://api.example/v1", true),
            ("https://API.example:443/v1", true),
            ("http://api.example/v1", false),
            ("http://localhost:8080/", false),
            ("/relative", false),
        ];
        for (uri, want) in table {
            let uri: http::Uri = uri.parse().expect("a URI");
            assert_eq!(hooks.allows(&uri), want, "{uri}");
        }
    }
}
