//! `component-kv`: a counter and a small key-value API on the standard `wasi:keyvalue` interfaces.
//!
//! It opens the bucket `""` (the app's default bucket) and answers:
//!
//! - `POST .../incr`: `atomics::increment(bucket, "hits", 1)`, 200 with the new value in decimal;
//! - `GET .../many?keys=a,b,c`: `batch::get-many`, one line `key=value` or `key missing` per key;
//! - `GET .../get/<key>`: 200 with the raw value, or 404;
//! - any other `GET`: 200 with the value of `hits` in decimal (`0` when missing);
//! - `PUT .../<key>`: sets `<key>` to the request body, 200 `ok`;
//! - `DELETE .../<key>`: deletes `<key>`, 200 `ok`.
//!
//! A keyvalue error is a 500 with `keyvalue error: <error:?>`.
//!
//! How `increment` stores its value is up to the host: the WIT only says it
//! returns the new value as a `u64` and creates the key with `delta` when it
//! is missing. Wasmtime's own implementation stores it as decimal ASCII text
//! (`"42"`), so `get` of `hits` is read as decimal text when it is all ASCII
//! digits, else as an 8-byte little-endian `u64`.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::{OutputStream, StreamError};

use bindings::wasi::keyvalue::{atomics, batch, store};

/// The generated keyvalue bindings, in a module so their `wasi` does not clash with the crate.
mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit/keyvalue", "wit"],
        world: "wasmhost:component-kv/kv",
        // The wasi:keyvalue package comes from the first path, not from wit/deps.
        generate_all,
    });
}

/// The counter's key.
const HITS: &str = "hits";

struct Component;

wasi::http::proxy::export!(Component);

/// A response: status, content type, body.
type Answer = (u16, &'static str, Vec<u8>);

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let (status, content_type, body) = match serve(request) {
            Ok(answer) => answer,
            Err(e) => (
                500,
                "text/plain",
                format!("keyvalue error: {e:?}").into_bytes(),
            ),
        };
        respond(response_out, status, content_type, &body);
    }
}

/// Routes `request` to the keyvalue operation it names.
fn serve(request: IncomingRequest) -> Result<Answer, store::Error> {
    let path_with_query = request.path_with_query().unwrap_or_default();
    let (path, query) = path_with_query
        .split_once('?')
        .unwrap_or((&path_with_query, ""));
    let (parent, key) = path.rsplit_once('/').unwrap_or(("", path));
    let method = request.method();
    let bucket = store::open("")?;
    let text = |status, text: String| Ok((status, "text/plain", text.into_bytes()));
    match method {
        Method::Post if key == "incr" => {
            text(200, atomics::increment(&bucket, HITS, 1)?.to_string())
        }
        Method::Get if key == "many" => {
            let keys: Vec<String> = query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(name, _)| *name == "keys")
                .map_or("", |(_, value)| value)
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect();
            let values = batch::get_many(&bucket, &keys)?;
            let mut lines = String::new();
            for (key, value) in keys.iter().zip(values) {
                match value {
                    Some((_, value)) => {
                        lines.push_str(&format!("{key}={}\n", String::from_utf8_lossy(&value)));
                    }
                    None => lines.push_str(&format!("{key} missing\n")),
                }
            }
            text(200, lines)
        }
        Method::Get if parent.ends_with("/get") || parent == "get" => match bucket.get(key)? {
            Some(value) => Ok((200, "application/octet-stream", value)),
            None => text(404, format!("no key {key}\n")),
        },
        Method::Get => match bucket.get(HITS)? {
            None => text(200, "0".to_owned()),
            Some(value) => match decode_counter(&value) {
                Some(n) => text(200, n.to_string()),
                None => Err(store::Error::Other(format!(
                    "{HITS} holds neither decimal text nor 8 bytes: {value:?}"
                ))),
            },
        },
        Method::Put | Method::Delete if key.is_empty() => text(400, "missing key\n".to_owned()),
        Method::Put => {
            let value = read_body(request);
            bucket.set(key, &value)?;
            text(200, "ok\n".to_owned())
        }
        Method::Delete => {
            bucket.delete(key)?;
            text(200, "ok\n".to_owned())
        }
        _ => text(405, "method not allowed\n".to_owned()),
    }
}

/// A counter's value: decimal ASCII text, else an 8-byte little-endian `u64`.
fn decode_counter(value: &[u8]) -> Option<u64> {
    if !value.is_empty() && value.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(value).ok()?.parse().ok();
    }
    Some(u64::from_le_bytes(value.try_into().ok()?))
}

/// Reads the whole request body, until its stream is closed.
fn read_body(request: IncomingRequest) -> Vec<u8> {
    let body = request.consume().expect("body is consumed once");
    let stream = body.stream().expect("stream is taken once");
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                panic!("reading the request body failed: {}", e.to_debug_string())
            }
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    bytes
}

/// Sends an answer with `status`, `content_type` and `body`.
fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers =
        Fields::from_list(&[("content-type".to_owned(), content_type.as_bytes().to_vec())])
            .expect("valid header");
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).expect("valid status");
    let outgoing = response.body().expect("body is taken once");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("stream is taken once");
    write_all(&stream, body);
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish the body");
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
