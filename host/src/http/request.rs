//! The request a handler sees: a fully read, validated HTTP/1.x request.

use std::net::SocketAddr;

/// The methods the host implements; anything else is answered with 501 before
/// a handler runs (RFC 9110 §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
}

impl Method {
    /// Parses a method token; `None` means "not implemented" (501).
    pub fn from_token(token: &str) -> Option<Method> {
        Some(match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
        }
    }
}

/// The protocol versions the host speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// A complete request, body included, as handed to a handler.
#[derive(Debug, Clone)]
pub struct Request {
    /// What the client asked to do.
    pub method: Method,
    /// The path of the request target as sent (still percent-encoded, no query).
    pub path: String,
    /// The raw query after `?` (without it); empty when absent.
    pub query: String,
    /// Decides keep-alive defaults and what the guest is told.
    pub version: Version,
    /// Every header in arrival order, names as sent, values valid UTF-8.
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunked framing already removed).
    pub body: Vec<u8>,
    /// The peer, for logs and for guests.
    pub client: SocketAddr,
}

impl Request {
    /// The first header with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of headers with this name, in order.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client prefers a JSON answer (an `Accept` naming JSON).
    pub fn wants_json(&self) -> bool {
        wants_json(&self.headers)
    }
}

/// Whether headers carry an `Accept` naming JSON.
pub fn wants_json(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("accept") && v.to_ascii_lowercase().contains("application/json")
    })
}
