//! `component-membomb`: allocates and fills 1 MiB blocks without end, so that an allocation fails and the guest aborts (for the memory limit).

use std::hint::black_box;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The size of one block.
const MIB: usize = 1 << 20;

struct Component;

wasi::http::proxy::export!(Component);

impl Guest for Component {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        // A failed allocation aborts the guest, as in any Rust program; under
        // a memory limit the loop never ends and the answer is never sent.
        for _ in 0..1 << 16 {
            // A non-zero fill writes every page, so none stays untouched.
            hoard.push(black_box(vec![0xA5; MIB]));
        }
        let blocks = black_box(&hoard).len();
        drop(hoard);
        let text = format!("allocated {blocks} MiB and was not stopped\n");

        let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
            .expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let out = body.write().expect("stream is taken once");
        out.blocking_write_and_flush(text.as_bytes())
            .expect("write the body");
        drop(out);
        OutgoingBody::finish(body, None).expect("finish the body");
    }
}
