//! The framing of requests and responses (ABI §5) and the packed `(ptr, len)` that `wasmhost_handle` returns (§4).
//!
//! A frame is `[meta_len: u32 LE][meta: meta_len bytes][body: the rest]`.

use std::fmt;

/// Bytes of the little-endian `meta_len` prefix.
pub const LEN_PREFIX: usize = 4;

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer than the [`LEN_PREFIX`] bytes of `meta_len`.
    TooShort {
        /// The number of bytes there are.
        len: usize,
    },
    /// `meta_len` exceeds the bytes that follow it.
    MetaTooLong {
        /// The declared meta length.
        meta_len: u32,
        /// The bytes actually following the length.
        available: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooShort { len } => {
                write!(f, "{len} bytes is too short for the 4-byte meta length")
            }
            FrameError::MetaTooLong {
                meta_len,
                available,
            } => write!(
                f,
                "meta length {meta_len} exceeds the {available} bytes that follow it"
            ),
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits a frame into its meta and its body.
pub fn split_frame(bytes: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    let Some((len_bytes, rest)) = bytes.split_first_chunk::<LEN_PREFIX>() else {
        return Err(FrameError::TooShort { len: bytes.len() });
    };
    let meta_len = u32::from_le_bytes(*len_bytes);
    match usize::try_from(meta_len) {
        Ok(n) if n <= rest.len() => Ok(rest.split_at(n)),
        _ => Err(FrameError::MetaTooLong {
            meta_len,
            available: rest.len(),
        }),
    }
}

/// The size of the frame of `meta_len` bytes of meta and `body_len` of
/// body; `None` if the meta does not fit a `u32` or the size a `usize`.
pub fn frame_len(meta_len: usize, body_len: usize) -> Option<usize> {
    u32::try_from(meta_len).ok()?;
    LEN_PREFIX.checked_add(meta_len)?.checked_add(body_len)
}

/// Writes the frame of `meta` and `body` into `out`, which must be exactly
/// [`frame_len`] bytes (the host writes straight into guest memory).
///
/// # Panics
///
/// If `out` is not exactly the frame's size, or `meta` is 4 GiB or more.
pub fn write_frame(out: &mut [u8], meta: &[u8], body: &[u8]) {
    let meta_len = u32::try_from(meta.len()).expect("meta is smaller than 4 GiB");
    assert_eq!(
        Some(out.len()),
        frame_len(meta.len(), body.len()),
        "the buffer is not the frame's size"
    );
    let (prefix, rest) = out.split_at_mut(LEN_PREFIX);
    prefix.copy_from_slice(&meta_len.to_le_bytes());
    let (meta_out, body_out) = rest.split_at_mut(meta.len());
    meta_out.copy_from_slice(meta);
    body_out.copy_from_slice(body);
}

/// The frame of `meta` and `body`, as a new buffer.
///
/// # Panics
///
/// If `meta` is 4 GiB or more.
pub fn join_frame(meta: &[u8], body: &[u8]) -> Vec<u8> {
    let meta_len = u32::try_from(meta.len()).expect("meta is smaller than 4 GiB");
    let mut out = Vec::with_capacity(LEN_PREFIX + meta.len() + body.len());
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(meta);
    out.extend_from_slice(body);
    out
}

/// Packs a response location as `wasmhost_handle` returns it: address in
/// the high 32 bits, length in the low 32 bits.
pub fn pack(addr: u32, len: u32) -> i64 {
    ((u64::from(addr) << 32) | u64::from(len)) as i64
}

/// Unpacks the result of `wasmhost_handle` into `(address, length)`.
pub fn unpack(packed: i64) -> (u32, u32) {
    let packed = packed as u64;
    ((packed >> 32) as u32, packed as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_into_meta_and_body() {
        let all_bytes: Vec<u8> = (0..=255).collect();
        let table: [(&[u8], &[u8]); 4] = [
            (b"", b""),
            (b"{}", b""),
            (br#"{"status":200}"#, b"hello"),
            (b"{}", &all_bytes),
        ];
        for (meta, body) in table {
            let frame = join_frame(meta, body);
            assert_eq!(frame.len(), frame_len(meta.len(), body.len()).unwrap());
            assert_eq!(frame[..4], (meta.len() as u32).to_le_bytes());
            assert_eq!(split_frame(&frame), Ok((meta, body)));
            let mut written = vec![0xaa; frame.len()];
            write_frame(&mut written, meta, body);
            assert_eq!(written, frame);
        }
    }

    #[test]
    fn a_frame_is_prefix_meta_body() {
        assert_eq!(join_frame(b"ab", b"c"), b"\x02\0\0\0abc");
        assert_eq!(split_frame(b"\x01\0\0\0{}x"), Ok((&b"{"[..], &b"}x"[..])));
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        let table: [(&[u8], FrameError, &str); 5] = [
            (b"", FrameError::TooShort { len: 0 }, "0 bytes is too short"),
            (
                b"\x01\0\0",
                FrameError::TooShort { len: 3 },
                "3 bytes is too short",
            ),
            (
                b"\x01\0\0\0",
                FrameError::MetaTooLong {
                    meta_len: 1,
                    available: 0,
                },
                "meta length 1 exceeds the 0 bytes",
            ),
            (
                b"\x64\0\0\0{}",
                FrameError::MetaTooLong {
                    meta_len: 100,
                    available: 2,
                },
                "meta length 100 exceeds the 2 bytes",
            ),
            (
                &huge,
                FrameError::MetaTooLong {
                    meta_len: u32::MAX,
                    available: 2,
                },
                "meta length 4294967295 exceeds the 2 bytes",
            ),
        ];
        for (bytes, want, text) in table {
            let err = split_frame(bytes).expect_err(text);
            assert_eq!(err, want);
            assert!(err.to_string().contains(text), "{err}");
        }
    }

    #[test]
    fn frame_len_checks_the_sizes() {
        assert_eq!(frame_len(0, 0), Some(4));
        assert_eq!(frame_len(10, 5), Some(19));
        assert_eq!(frame_len(usize::MAX - 4, 1), None);
        if let Ok(too_big) = usize::try_from(u64::from(u32::MAX) + 1) {
            assert_eq!(frame_len(too_big, 0), None);
        }
    }

    #[test]
    #[should_panic(expected = "the buffer is not the frame's size")]
    fn write_frame_needs_the_exact_size() {
        write_frame(&mut [0; 5], b"ab", b"c");
    }

    #[test]
    fn pack_and_unpack() {
        let table = [
            (0u32, 0u32, 0i64),
            (1, 2, (1 << 32) | 2),
            (0x0001_0000, 0x10, 0x0001_0000_0000_0010),
            (u32::MAX, u32::MAX, -1),
            (0x8000_0000, 5, i64::MIN | 5),
        ];
        for (addr, len, packed) in table {
            assert_eq!(pack(addr, len), packed, "{addr:#x} {len:#x}");
            assert_eq!(unpack(packed), (addr, len));
        }
    }
}
