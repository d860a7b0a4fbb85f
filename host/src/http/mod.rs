//! HTTP/1.1 message types and the pure parsing and framing logic, apart from any socket.

pub mod chunked;
pub mod parse;
pub mod request;
pub mod response;

pub use request::{Method, Request, Version};
pub use response::{Body, Response};
