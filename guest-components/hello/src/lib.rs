//! `component-hello`: answers every request with 200 and `hello from a component`.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Component;

wasi::http::proxy::export!(Component);

impl Guest for Component {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
            .expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let out = body.write().expect("stream is taken once");
        out.blocking_write_and_flush(b"hello from a component\n")
            .expect("write the body");
        drop(out);
        OutgoingBody::finish(body, None).expect("finish the body");
    }
}
