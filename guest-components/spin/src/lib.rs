//! `component-spin`: computes forever and never answers (for the CPU time limit).

use std::hint::black_box;

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Component;

wasi::http::proxy::export!(Component);

impl Guest for Component {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        let mut x: u64 = black_box(1);
        loop {
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
}
