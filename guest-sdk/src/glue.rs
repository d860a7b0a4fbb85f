//! What `wasmhost_handle` does between the raw bytes and the app: decode the request, call the handler, encode its response.
//!
//! [`export_handler!`](crate::export_handler) passes [`handle_encoded`] to
//! `ffi::handle`, which does the memory handling; this part is safe and
//! testable natively.

use crate::abi::{decode_request, encode_response};
use crate::request::Request;
use crate::response::{Response, TEXT_PLAIN};

/// Decodes `request`, runs `handler` and encodes its response; a request
/// that does not decode gets a `400` text response and a warning in the log.
///
/// This is everything `wasmhost_handle` does apart from the memory handling.
pub fn handle_encoded<F>(request: &[u8], handler: F) -> Vec<u8>
where
    F: FnOnce(Request) -> Response,
{
    let response = match decode_request(request) {
        Ok(request) => handler(request),
        Err(err) => {
            let message = format!("bad request from host: {err}");
            crate::log::warn(&message);
            Response::bytes(TEXT_PLAIN, message).with_status(400)
        }
    };
    encode_response(&response)
}

/// Free heap that `wasmhost_init` leaves in the snapshot: a request whose
/// allocations fit in it never grows its memory. Growing costs the host two
/// `mprotect` calls per request (one to grow, one to shrink the slot back),
/// each taking the process's memory-map lock; a page of 50 todos grew
/// memory on every request (docs/BENCHMARKS.md, "Todo index"). Untouched,
/// the reserve costs no memory: it is zero pages of the snapshot.
pub const HEAP_RESERVE: usize = 1 << 20;

/// Grows the heap by [`HEAP_RESERVE`] and frees it again: the allocator
/// keeps the freed space (a Wasm memory never shrinks), so later
/// allocations take it without growing memory. An app whose memory limit
/// has no room for it simply goes without.
pub fn reserve_heap() {
    let mut reserve: Vec<u8> = Vec::new();
    if reserve.try_reserve_exact(HEAP_RESERVE).is_ok() {
        // Kept from being optimised away: the allocation is the point.
        std::hint::black_box(&mut reserve);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{decode_response, encode_request};

    #[test]
    fn handle_encoded_runs_the_handler_or_answers_400() {
        let echo = |req: Request| Response::bytes("application/octet-stream", req.body);
        let good = encode_request(&Request::new("POST", "/").with_body("ping"));
        let table: [(&[u8], u16, &str); 3] = [
            (&good, 200, "ping"),
            (b"", 400, "bad request from host: 0 bytes is too short"),
            (
                b"\x02\0\0\0{",
                400,
                "bad request from host: meta length 2 exceeds",
            ),
        ];
        for (input, status, body) in table {
            let resp = decode_response(&handle_encoded(input, echo)).unwrap();
            assert_eq!(resp.status, status);
            let text = String::from_utf8(resp.body).unwrap();
            assert!(text.starts_with(body), "{text:?}");
        }
    }
}
