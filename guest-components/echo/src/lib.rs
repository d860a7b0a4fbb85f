//! `component-echo`: answers with the request body, or with a description of the request on a path ending in `/inspect`, its environment on `/env`, or the file `/data/<name>` on `/file/<name>`.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

struct Component;

wasi::http::proxy::export!(Component);

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query();
        let path = path_with_query
            .as_deref()
            .unwrap_or("")
            .split('?')
            .next()
            .unwrap_or("");
        if path.ends_with("/inspect") {
            let text = describe(&request, path_with_query.as_deref());
            respond(response_out, "text/plain", text.as_bytes(), false);
        } else if path.ends_with("/env") {
            let text: String = std::env::vars()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect();
            respond(response_out, "text/plain", text.as_bytes(), false);
        } else if let Some((_, name)) = path.split_once("/file/") {
            // A granted directory, read with std (wasi:filesystem underneath).
            let text = match std::fs::read(format!("/data/{name}")) {
                Ok(bytes) => bytes,
                Err(e) => format!("cannot read /data/{name}: {e}\n").into_bytes(),
            };
            respond(response_out, "text/plain", &text, false);
        } else {
            let body = read_body(request);
            respond(response_out, "application/octet-stream", &body, true);
        }
    }
}

/// The `/inspect` text: method, path, authority, scheme, then every header in order.
fn describe(request: &IncomingRequest, path_with_query: Option<&str>) -> String {
    let method = match request.method() {
        Method::Get => "GET".to_owned(),
        Method::Head => "HEAD".to_owned(),
        Method::Post => "POST".to_owned(),
        Method::Put => "PUT".to_owned(),
        Method::Delete => "DELETE".to_owned(),
        Method::Connect => "CONNECT".to_owned(),
        Method::Options => "OPTIONS".to_owned(),
        Method::Trace => "TRACE".to_owned(),
        Method::Patch => "PATCH".to_owned(),
        Method::Other(other) => other,
    };
    let scheme = match request.scheme() {
        Some(Scheme::Http) => "http",
        Some(Scheme::Https) => "https",
        Some(Scheme::Other(_)) => "other",
        None => "-",
    };
    let authority = request.authority().unwrap_or_else(|| "-".to_owned());
    let mut text = format!(
        "method {method}\npath {}\nauthority {authority}\nscheme {scheme}\n",
        path_with_query.unwrap_or("-")
    );
    for (name, value) in request.headers().entries() {
        text.push_str(&format!(
            "header {name}: {}\n",
            String::from_utf8_lossy(&value)
        ));
    }
    text
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

/// Sends a 200 with `body`, and a `content-length` when `sized`.
fn respond(out: ResponseOutparam, content_type: &str, body: &[u8], sized: bool) {
    let mut fields = vec![("content-type".to_owned(), content_type.as_bytes().to_vec())];
    if sized {
        fields.push((
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ));
    }
    let headers = Fields::from_list(&fields).expect("valid headers");
    let response = OutgoingResponse::new(headers);
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
