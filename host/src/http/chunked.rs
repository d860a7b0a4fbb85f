//! An incremental decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112 §7.1).
//!
//! It consumes whatever bytes have arrived, appends the decoded data to the
//! caller's buffer, and reports how much input it used, so the connection can
//! feed it straight from its read buffer. Extensions and trailers are read and
//! discarded within fixed bounds.

use crate::limits::{MAX_CHUNK_LINE, MAX_TRAILER_SECTION};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the chunk size.
    Size,
    /// After the size: optional whitespace and extensions up to CR.
    Ext,
    /// Expecting LF after the size line's CR.
    SizeLf,
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// Expecting CR after chunk data.
    DataCr,
    /// Expecting LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line, up to CR.
    TrailerLine,
    /// Expecting LF after a trailer line's CR.
    TrailerLf,
    /// Expecting LF after the final empty line's CR.
    FinalLf,
    /// The body is complete.
    Done,
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
    #[error("request body larger than the limit")]
    TooLarge,
}

/// Decoder state for one chunked body.
#[derive(Debug)]
pub struct ChunkedDecoder {
    /// Where in the grammar the decoder is.
    state: State,
    /// The chunk size being accumulated.
    size: u64,
    /// Whether at least one hex digit was read for the current size.
    size_digits: bool,
    /// Bytes of the current size line (for the line limit).
    line_len: usize,
    /// Bytes of trailer section so far (for the trailer limit).
    trailer_len: usize,
    /// Decoded bytes so far.
    total: u64,
    /// Most decoded bytes allowed.
    limit: u64,
}

impl ChunkedDecoder {
    pub fn new(limit: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            size_digits: false,
            line_len: 0,
            trailer_len: 0,
            total: 0,
            limit,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending data to `out`. Returns how many input
    /// bytes were consumed; stops right after the final CRLF so that any
    /// pipelined request behind it stays in the caller's buffer.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            let b = input[i];
            match self.state {
                State::Size => {
                    if let Some(d) = hex_value(b) {
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .ok_or(ChunkedError::Malformed("chunk size overflows"))?;
                        self.size_digits = true;
                    } else if !self.size_digits {
                        return Err(ChunkedError::Malformed("chunk size missing"));
                    } else if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b';' || b == b' ' || b == b'\t' {
                        self.state = State::Ext;
                    } else {
                        return Err(ChunkedError::Malformed("invalid chunk size"));
                    }
                    self.bump_line()?;
                    i += 1;
                }
                State::Ext => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f {
                        return Err(ChunkedError::Malformed("control byte in chunk extension"));
                    }
                    self.bump_line()?;
                    i += 1;
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Malformed("chunk size line not ended by CRLF"));
                    }
                    i += 1;
                    self.line_len = 0;
                    self.size_digits = false;
                    if self.size == 0 {
                        self.state = State::TrailerStart;
                    } else {
                        self.total = self
                            .total
                            .checked_add(self.size)
                            .ok_or(ChunkedError::TooLarge)?;
                        if self.total > self.limit {
                            return Err(ChunkedError::TooLarge);
                        }
                        self.state = State::Data(self.size);
                        self.size = 0;
                    }
                }
                State::Data(left) => {
                    let available = (input.len() - i) as u64;
                    let take = left.min(available) as usize;
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkedError::Malformed("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Malformed("chunk data not followed by CRLF"));
                    }
                    self.state = State::Size;
                    i += 1;
                }
                State::TrailerStart => {
                    self.bump_trailer()?;
                    self.state = if b == b'\r' {
                        State::FinalLf
                    } else if b == b'\n' {
                        return Err(ChunkedError::Malformed("bare LF in trailer section"));
                    } else if b == b' ' || b == b'\t' {
                        return Err(ChunkedError::Malformed("obs-fold in trailer section"));
                    } else {
                        State::TrailerLine
                    };
                    i += 1;
                }
                State::TrailerLine => {
                    self.bump_trailer()?;
                    if b == b'\r' {
                        self.state = State::TrailerLf;
                    } else if b == b'\n' || b == 0 {
                        return Err(ChunkedError::Malformed("invalid byte in trailer"));
                    }
                    i += 1;
                }
                State::TrailerLf => {
                    self.bump_trailer()?;
                    if b != b'\n' {
                        return Err(ChunkedError::Malformed("trailer line not ended by CRLF"));
                    }
                    self.state = State::TrailerStart;
                    i += 1;
                }
                State::FinalLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Malformed("chunked body not ended by CRLF"));
                    }
                    self.state = State::Done;
                    i += 1;
                }
                State::Done => unreachable!("loop condition excludes Done"),
            }
        }
        Ok(i)
    }

    fn bump_line(&mut self) -> Result<(), ChunkedError> {
        self.line_len += 1;
        if self.line_len > MAX_CHUNK_LINE {
            return Err(ChunkedError::Malformed("chunk size line too long"));
        }
        Ok(())
    }

    fn bump_trailer(&mut self) -> Result<(), ChunkedError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER_SECTION {
            return Err(ChunkedError::Malformed("trailer section too large"));
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns (data, consumed).
    fn decode_in_steps(
        input: &[u8],
        step: usize,
        limit: u64,
    ) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut dec = ChunkedDecoder::new(limit);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() && !dec.is_done() {
            let end = (pos + step).min(input.len());
            // Feed everything from pos that has "arrived" so far.
            let used = dec.decode(&input[pos..end], &mut out)?;
            pos += used;
            if used == 0 && end == input.len() {
                break;
            }
        }
        assert!(dec.is_done(), "decoder not done after {pos} bytes");
        Ok((out, pos))
    }

    #[test]
    fn valid_bodies_decode_whatever_the_split() {
        let table: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5 ; a=\"q\"\r\nhello\r\n0;x\r\n\r\n", b"hello"),
            (
                b"5\r\nhello\r\n0\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n",
                b"hello",
            ),
            (b"000005\r\nhello\r\n0\r\n\r\n", b"hello"),
        ];
        for (input, expected) in table {
            for step in [1, 2, 3, 7, input.len()] {
                let (out, used) = decode_in_steps(input, step, 1 << 20).unwrap();
                assert_eq!(&out, expected, "{input:?} step {step}");
                assert_eq!(used, input.len(), "{input:?} step {step}");
            }
        }
    }

    #[test]
    fn pipelined_bytes_after_the_body_are_not_consumed() {
        let input = b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let mut dec = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        let used = dec.decode(input, &mut out).unwrap();
        assert!(dec.is_done());
        assert_eq!(&input[used..], b"GET / HTTP/1.1\r\n");
        assert_eq!(out, b"abc");
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let table: &[&[u8]] = &[
            b"\r\n",                         // no size
            b"g\r\n",                        // not hex
            b"-5\r\n",                       // sign
            b"5\nhello\r\n0\r\n\r\n",        // bare LF after size
            b"5\r\nhelloX\r\n",              // data not followed by CRLF
            b"5\r\nhello\n0\r\n\r\n",        // bare LF after data
            b"ffffffffffffffffff\r\n",       // overflow
            b"5;a\x01b\r\n",                 // control byte in extension
            b"0\r\nX: y\n\r\n",              // bare LF in trailer
            b"0\r\nX: y\r\n folded\r\n\r\n", // obs-fold in trailer
            b"0\r\n\rx",                     // bad final line
        ];
        for input in table {
            let mut dec = ChunkedDecoder::new(1 << 20);
            let mut out = Vec::new();
            match dec.decode(input, &mut out) {
                Err(ChunkedError::Malformed(_)) => {}
                other => panic!("{input:?}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn limits_are_enforced() {
        let long_ext = format!("1;{}\r\n", "e".repeat(MAX_CHUNK_LINE));
        let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(MAX_TRAILER_SECTION));
        let table: &[(&[u8], u64, ChunkedError)] = &[
            (b"6\r\nhello!\r\n0\r\n\r\n", 5, ChunkedError::TooLarge),
            (
                b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n",
                5,
                ChunkedError::TooLarge,
            ),
            (
                long_ext.as_bytes(),
                100,
                ChunkedError::Malformed("chunk size line too long"),
            ),
            (
                long_trailer.as_bytes(),
                100,
                ChunkedError::Malformed("trailer section too large"),
            ),
        ];
        for (input, limit, err) in table {
            let mut dec = ChunkedDecoder::new(*limit);
            let mut out = Vec::new();
            assert_eq!(dec.decode(input, &mut out), Err(err.clone()));
        }
    }
}
