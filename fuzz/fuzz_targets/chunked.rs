//! Fuzz target `chunked`: `http::chunked::ChunkedDecoder` on arbitrary bytes split at arbitrary points, and on bodies encoded from the input.
//!
//! Input: byte 0 picks the body limit, byte 1 the number `n` of split bytes,
//! the next `n` bytes the sizes of the pieces the input arrives in; the rest
//! is the body.
//!
//! Properties: it never panics; decoding in pieces gives the same decoded
//! bytes, the same bytes consumed, the same completion and the same error as
//! decoding in one piece; the decoded length never exceeds the limit; a
//! complete body is the prefix of the input it consumed and decodes the same
//! from that prefix alone. Then the rest of the input is read as a list of
//! chunks, encoded (upper/lower-case hex, leading zeros, extensions,
//! trailers, all chosen by the input) and decoded in pieces: the data comes
//! back exactly, all of the encoding is consumed, or the body is refused as
//! too large exactly when the data exceeds the limit.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmhost::http::chunked::{ChunkedDecoder, ChunkedError};

/// Body limits to choose from: tiny ones reach `TooLarge`, the last never does.
const LIMITS: [u64; 6] = [0, 1, 7, 64, 4096, u64::MAX];

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    data: Vec<u8>,
    /// Input bytes used (0 after an error: the decoder does not say where it stopped).
    consumed: usize,
    done: bool,
    error: Option<ChunkedError>,
}

fuzz_target!(|input: &[u8]| {
    let Some((&limit_byte, rest)) = input.split_first() else {
        return;
    };
    let limit = LIMITS[usize::from(limit_byte) % LIMITS.len()];
    let (splits, body) = match rest.split_first() {
        Some((&n, rest)) => rest.split_at(usize::from(n % 16).min(rest.len())),
        None => (&[][..], &[][..]),
    };

    let whole = decode(body, &[], limit);
    let split = decode(body, splits, limit);
    assert_eq!(split, whole, "splits {splits:?}");
    assert!(whole.data.len() as u64 <= limit);
    assert!(whole.consumed <= body.len());
    if whole.done {
        assert!(whole.error.is_none());
        let again = decode(&body[..whole.consumed], splits, limit);
        assert_eq!(again, whole, "the consumed prefix alone");
    }

    // Encode the body bytes as chunks and decode them back.
    let (encoded, data) = encode(body);
    let decoded = decode(&encoded, splits, limit);
    if data.len() as u64 > limit {
        assert_eq!(decoded.error, Some(ChunkedError::TooLarge), "{encoded:?}");
    } else {
        assert_eq!(
            decoded.error,
            None,
            "{:?}",
            String::from_utf8_lossy(&encoded)
        );
        assert!(decoded.done);
        assert_eq!(decoded.consumed, encoded.len());
        assert_eq!(decoded.data, data);
    }
});

/// Decodes `input` arriving in pieces of the sizes in `splits` (cycled; one
/// piece if empty), the way the connection feeds its read buffer: each call
/// sees everything received and not yet consumed.
fn decode(input: &[u8], splits: &[u8], limit: u64) -> Outcome {
    let mut decoder = ChunkedDecoder::new(limit);
    let mut data = Vec::new();
    let mut consumed = 0;
    let mut received = 0;
    let mut sizes = splits.iter().cycle();
    while received < input.len() && !decoder.is_done() {
        let piece = sizes.next().map_or(input.len(), |&s| usize::from(s) + 1);
        received = (received + piece).min(input.len());
        match decoder.decode(&input[consumed..received], &mut data) {
            Ok(used) => {
                assert!(consumed + used <= received);
                consumed += used;
            }
            Err(error) => {
                return Outcome {
                    data,
                    consumed: 0,
                    done: false,
                    error: Some(error),
                };
            }
        }
    }
    Outcome {
        data,
        consumed,
        done: decoder.is_done(),
        error: None,
    }
}

/// Reads `bytes` as chunks and encodes them; returns the encoding and the data.
///
/// Each chunk is a control byte then data: its low 6 bits are the data length,
/// bit 6 asks for upper-case hex with a leading zero, bit 7 for an extension.
/// A zero length ends the chunks; the rest, if any, is one trailer field value.
fn encode(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut encoded = Vec::new();
    let mut data = Vec::new();
    let mut rest = bytes;
    while let Some((&control, after)) = rest.split_first() {
        let len = usize::from(control & 0x3f).min(after.len());
        if len == 0 {
            rest = after;
            break;
        }
        let (chunk, after) = after.split_at(len);
        let size = if control & 0x40 != 0 {
            format!("0{len:X}")
        } else {
            format!("{len:x}")
        };
        encoded.extend_from_slice(size.as_bytes());
        if control & 0x80 != 0 {
            encoded.extend_from_slice(b" ; name=\"value\";flag");
        }
        encoded.extend_from_slice(b"\r\n");
        encoded.extend_from_slice(chunk);
        encoded.extend_from_slice(b"\r\n");
        data.extend_from_slice(chunk);
        rest = after;
    }
    encoded.extend_from_slice(b"0\r\n");
    // A trailer value: visible ASCII only, as a sender would write it.
    let trailer: Vec<u8> = rest
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b } else { b'_' })
        .take(256)
        .collect();
    if !trailer.is_empty() {
        encoded.extend_from_slice(b"X-Trailer: ");
        encoded.extend_from_slice(&trailer);
        encoded.extend_from_slice(b"\r\n");
    }
    encoded.extend_from_slice(b"\r\n");
    (encoded, data)
}
