//! `component-stream`: streams `chunks` chunks of `size` bytes, `delay_ms` apart, with no content-length.

use wasi::clocks::monotonic_clock::subscribe_duration;
use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::OutputStream;

struct Component;

wasi::http::proxy::export!(Component);

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let query = path_with_query.split_once('?').map_or("", |(_, q)| q);
        let chunks = param(query, "chunks").unwrap_or(5);
        let size = param(query, "size").unwrap_or(1024);
        let delay_ms = param(query, "delay_ms").unwrap_or(0);

        let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
            .expect("valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("body is taken once");
        ResponseOutparam::set(response_out, Ok(response));
        let stream = body.write().expect("stream is taken once");
        for i in 0..chunks {
            if i > 0 && delay_ms > 0 {
                subscribe_duration(delay_ms * 1_000_000).block();
            }
            let chunk = vec![b'a' + (i % 26) as u8; size as usize];
            write_all(&stream, &chunk);
        }
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish the body");
    }
}

/// The query parameter `name` as a number, if present and valid.
fn param(query: &str, name: &str) -> Option<u64> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.parse().ok())
}

/// Writes all of `bytes`, never more at a time than `check_write` allows, then flushes.
fn write_all(stream: &OutputStream, mut bytes: &[u8]) {
    let ready = stream.subscribe();
    while !bytes.is_empty() {
        ready.block();
        let allowed = stream.check_write().expect("the client went away");
        let n = usize::try_from(allowed)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let (now, rest) = bytes.split_at(n);
        stream.write(now).expect("the client went away");
        bytes = rest;
    }
    stream.flush().expect("the client went away");
    ready.block();
    stream.check_write().expect("the client went away");
}
