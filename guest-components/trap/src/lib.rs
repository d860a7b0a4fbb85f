//! `component-trap`: panics on every request, which traps the instance.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

struct Component;

wasi::http::proxy::export!(Component);

impl Guest for Component {
    fn handle(_request: IncomingRequest, _response_out: ResponseOutparam) {
        panic!("component trap on purpose");
    }
}
