//! The `i32` statuses the `wasmhost` host functions return (ABI §6.1, and "Storage", "Errors" for 1–7).
//!
//! Codes are stable: a later version may add codes but never changes the
//! meaning of one.

/// Success.
pub const OK: i32 = 0;
/// The key, prefix or `after` is longer than [`crate::limits::MAX_KEY_LEN`].
pub const KEY_TOO_LARGE: i32 = 1;
/// The value is longer than [`crate::limits::MAX_VALUE_LEN`].
pub const VALUE_TOO_LARGE: i32 = 2;
/// The operation would add a key to an app holding
/// [`crate::limits::MAX_KEYS_PER_APP`].
pub const TOO_MANY_KEYS: i32 = 3;
/// `kv_increment` found a value that is not a decimal 64-bit integer.
pub const NOT_AN_INTEGER: i32 = 4;
/// `kv_increment` would leave the 64-bit range; nothing is stored.
pub const OVERFLOW: i32 = 5;
/// The app name is not a valid namespace (a host configuration error).
pub const INVALID_NAMESPACE: i32 = 6;
/// The host's storage failed; details are in the host log.
pub const BACKEND: i32 = 7;
/// No such key (`kv_get`, `kv_delete`), or no session (`session_end`).
pub const ABSENT: i32 = 8;
/// `kv_cas`: the current value was not the expected one; nothing changed.
pub const MISMATCH: i32 = 9;
/// The app is not granted this service.
pub const NOT_GRANTED: i32 = 10;
/// A pointer or length outside memory, or text that is not UTF-8.
pub const BAD_ARGUMENT: i32 = 11;
/// The host needed to return bytes but `wasmhost_alloc` returned 0.
pub const NO_MEMORY: i32 = 12;

/// The storage errors, [`KEY_TOO_LARGE`] to [`BACKEND`].
pub const STORAGE_ERRORS: std::ops::RangeInclusive<i32> = KEY_TOO_LARGE..=BACKEND;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let table = [
            (OK, 0),
            (KEY_TOO_LARGE, 1),
            (VALUE_TOO_LARGE, 2),
            (TOO_MANY_KEYS, 3),
            (NOT_AN_INTEGER, 4),
            (OVERFLOW, 5),
            (INVALID_NAMESPACE, 6),
            (BACKEND, 7),
            (ABSENT, 8),
            (MISMATCH, 9),
            (NOT_GRANTED, 10),
            (BAD_ARGUMENT, 11),
            (NO_MEMORY, 12),
        ];
        for (code, want) in table {
            assert_eq!(code, want);
        }
        assert_eq!(STORAGE_ERRORS, 1..=7);
    }
}
