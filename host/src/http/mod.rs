//! HTTP/1.1 without a socket: message types, head parsing and framing, chunked bodies, streamed response bodies, the connection state machine, dates, and this layer's error table.

pub mod chunked;
pub mod conn;
pub mod date;
pub mod error;
pub mod error_page;
pub mod parse;
pub mod request;
pub mod response;
pub mod stream;

pub use request::{Method, Request, Version};
pub use response::{Body, Response};
