//! How a refused module is described: always on one line (a log line, the CLI's error line, the admin API's answer), and plainly for a file that is not a WebAssembly core module at all.
//!
//! wasmparser's own errors can span lines (a bad magic number is printed as
//! two debug-formatted arrays), so every reason a load error carries goes
//! through [`one_line`], and the commonest mistake, a file that is not Wasm,
//! gets its own message from [`not_a_core_module`] before parsing.

/// The first four bytes of every WebAssembly binary: `\0asm`.
const WASM_MAGIC: [u8; 4] = *b"\0asm";

/// Bytes 4..8 of a core module: version 1.
const CORE_VERSION: [u8; 4] = [0x01, 0x00, 0x00, 0x00];

/// Bytes 4..8 of a component (component model layer 1); what building for
/// `wasm32-wasip2` gives, which this host does not run (ABI §1).
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];

/// Why `bytes` cannot be a WebAssembly core module, judged from its first
/// eight bytes alone; `None` if they are those of one (its contents are
/// then for the compiler to judge).
pub fn not_a_core_module(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return Some("not a WebAssembly module (the file is empty)".to_owned());
    }
    let head = &bytes[..bytes.len().min(WASM_MAGIC.len())];
    if head != WASM_MAGIC {
        return Some(format!(
            "not a WebAssembly module (starts with {}, expected {})",
            hex(head),
            hex(&WASM_MAGIC)
        ));
    }
    match bytes.get(4..8) {
        Some(v) if v == COMPONENT_VERSION => Some(
            "a WebAssembly component, not a core module: build the guest for wasm32-wasip1 \
             (docs/abi.md §1)"
                .to_owned(),
        ),
        Some(v) if v != CORE_VERSION => Some(format!(
            "not a WebAssembly core module (version bytes {}, expected {})",
            hex(v),
            hex(&CORE_VERSION)
        )),
        // Shorter than a header, or a core module's: the compiler says more.
        _ => None,
    }
}

/// `text` on one line: every line break or other control character ends a
/// piece, pieces are trimmed, and the non-empty ones are joined by a space.
pub fn one_line(text: &str) -> String {
    text.split(char::is_control)
        .map(str::trim)
        .filter(|piece| !piece.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Bytes as lower-case hex pairs separated by spaces: `7f 45 4c 46`.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_core_modules_are_named_by_their_first_bytes() {
        let table: [(&[u8], Option<&str>); 9] = [
            (
                b"\x7fELF\x02\x01\x01\0",
                Some("not a WebAssembly module (starts with 7f 45 4c 46, expected 00 61 73 6d)"),
            ),
            (
                b"<html>",
                Some("not a WebAssembly module (starts with 3c 68 74 6d, expected 00 61 73 6d)"),
            ),
            (
                b"\0as",
                Some("not a WebAssembly module (starts with 00 61 73, expected 00 61 73 6d)"),
            ),
            (b"", Some("not a WebAssembly module (the file is empty)")),
            (
                b"\0asm\x0d\0\x01\0",
                Some(
                    "a WebAssembly component, not a core module: build the guest for \
                     wasm32-wasip1 (docs/abi.md §1)",
                ),
            ),
            (
                b"\0asm\x02\0\0\0",
                Some(
                    "not a WebAssembly core module (version bytes 02 00 00 00, expected 01 00 00 00)",
                ),
            ),
            (b"\0asm\x01\0\0\0", None),
            (b"\0asm\x01\0\0\0 then garbage", None),
            // A truncated header is for the compiler to describe.
            (b"\0asm\x01", None),
        ];
        for (bytes, want) in table {
            let got = not_a_core_module(bytes);
            assert_eq!(got.as_deref(), want, "{bytes:?}");
            if let Some(message) = got {
                assert_eq!(one_line(&message), message, "already one line");
            }
        }
    }

    #[test]
    fn a_message_over_several_lines_becomes_one() {
        let table = [
            (
                "bad magic number - expected=[\n    0x0,\n    0x61,\n] actual=[\n    0x7f,\n]",
                "bad magic number - expected=[ 0x0, 0x61, ] actual=[ 0x7f, ]",
            ),
            ("one line already", "one line already"),
            ("a\r\nb\tc\0d", "a b c d"),
            ("\n\ntrailing and leading\n\n", "trailing and leading"),
            ("", ""),
        ];
        for (text, want) in table {
            let got = one_line(text);
            assert_eq!(got, want, "{text:?}");
            assert!(!got.contains(['\n', '\r']), "{got:?}");
        }
    }
}
