//! `component-outbound`: fetches the URL in the query parameter `url` with an outgoing GET and answers with its status and body.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

struct Component;

wasi::http::proxy::export!(Component);

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let query = path_with_query.split_once('?').map_or("", |(_, q)| q);
        let url = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == "url")
            .map(|(_, value)| percent_decode(value));
        let Some(url) = url else {
            return respond(response_out, 400, b"missing query parameter url\n");
        };
        let Some(outgoing) = build_request(&url) else {
            return respond(response_out, 400, b"unsupported url\n");
        };
        match fetch(outgoing) {
            Ok((status, body)) => {
                let mut text = format!("upstream {status}\n").into_bytes();
                text.extend_from_slice(&body);
                respond(response_out, 200, &text);
            }
            Err(code) => {
                respond(
                    response_out,
                    502,
                    format!("outbound failed: {code:?}\n").as_bytes(),
                );
            }
        }
    }
}

/// A GET for an `http://` or `https://` URL, or `None` for any other.
fn build_request(url: &str) -> Option<OutgoingRequest> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else {
        return None;
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).ok()?;
    request.set_scheme(Some(&scheme)).ok()?;
    request.set_authority(Some(authority)).ok()?;
    request.set_path_with_query(Some(&path)).ok()?;
    Some(request)
}

/// Sends `request` and reads the whole response: its status and body.
fn fetch(request: OutgoingRequest) -> Result<(u16, Vec<u8>), ErrorCode> {
    let future = outgoing_handler::handle(request, None)?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(result)) => result?,
        Some(Err(())) => {
            return Err(ErrorCode::InternalError(Some(
                "response taken twice".into(),
            )));
        }
        None => return Err(ErrorCode::InternalError(Some("response not ready".into()))),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|()| ErrorCode::InternalError(Some("body consumed twice".into())))?;
    let stream = body
        .stream()
        .map_err(|()| ErrorCode::InternalError(Some("stream taken twice".into())))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(wasi::http::types::http_error_code(&e)
                    .unwrap_or_else(|| ErrorCode::InternalError(Some(e.to_debug_string()))));
            }
        }
    }
    drop(stream);
    drop(IncomingBody::finish(body));
    Ok((status, bytes))
}

/// Decodes `%XX` escapes (an invalid escape is kept as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends a `text/plain` answer with `status` and `body`.
fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_owned(), b"text/plain".to_vec())])
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
