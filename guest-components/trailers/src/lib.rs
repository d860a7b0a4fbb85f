//! `component-trailers`: answers with a header `x-custom: yes`, a short body and a trailer `x-checksum: abc123`.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Component;

wasi::http::proxy::export!(Component);

impl Guest for Component {
    fn handle(_request: IncomingRequest, response_out: ResponseOutparam) {
        let headers =
            Fields::from_list(&[("x-custom".to_owned(), b"yes".to_vec())]).expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let out = body.write().expect("stream is taken once");
        out.blocking_write_and_flush(b"with trailers\n")
            .expect("write the body");
        drop(out);
        let trailers = Fields::from_list(&[("x-checksum".to_owned(), b"abc123".to_vec())])
            .expect("valid trailer");
        OutgoingBody::finish(body, Some(trailers)).expect("finish the body");
    }
}
