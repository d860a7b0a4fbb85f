//! What a guest may import (ABI §3, §6): the import modules, the `wasmhost` host functions with their signatures and grants, and their argument conventions.
//!
//! Signatures are written as in [`crate::exports`]: `"(i32, i32) -> i32"`.
//! Pointers and lengths are `i32` (wasm32 addresses and byte counts).

/// The host's own import module.
pub const HOST_MODULE: &str = "wasmhost";
/// The WASI preview 1 import module, the only other one a guest may use.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// The grant of [`LOG`].
pub const GRANT_LOG: &str = "log";
/// The grant of every `kv_*` function.
pub const GRANT_STORAGE: &str = "storage";
/// The grant of every `session_*` function.
pub const GRANT_SESSIONS: &str = "sessions";

/// The grant names an app's `grants.host` may list: every grant in
/// [`HOST_FUNCTIONS`].
pub const HOST_GRANTS: &[&str] = &[GRANT_LOG, GRANT_STORAGE, GRANT_SESSIONS];

/// The grants of an app whose `grants.host` is not given: logging reveals
/// nothing and reaches nothing outside the app.
pub const DEFAULT_HOST_GRANTS: &[&str] = &[GRANT_LOG];

/// One function of the [`HOST_MODULE`] import module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostFunction {
    /// The import name.
    pub name: &'static str,
    /// Its type, as the host links it.
    pub signature: &'static str,
    /// The grant (a name in an app's `grants.host`) that allows importing it.
    pub grant: &'static str,
}

/// `log(level, ptr, len)`: a line of UTF-8 text for the host log.
pub const LOG: HostFunction = HostFunction {
    name: "log",
    signature: "(i32, i32, i32) -> ()",
    grant: GRANT_LOG,
};

/// `kv_get(key_ptr, key_len, out) -> status`.
pub const KV_GET: HostFunction = HostFunction {
    name: "kv_get",
    signature: "(i32, i32, i32) -> i32",
    grant: GRANT_STORAGE,
};

/// `kv_set(key_ptr, key_len, val_ptr, val_len) -> status`.
pub const KV_SET: HostFunction = HostFunction {
    name: "kv_set",
    signature: "(i32, i32, i32, i32) -> i32",
    grant: GRANT_STORAGE,
};

/// `kv_delete(key_ptr, key_len) -> status`.
pub const KV_DELETE: HostFunction = HostFunction {
    name: "kv_delete",
    signature: "(i32, i32) -> i32",
    grant: GRANT_STORAGE,
};

/// `kv_list(prefix_ptr, prefix_len, after_ptr, after_len, limit, out) -> status`.
pub const KV_LIST: HostFunction = HostFunction {
    name: "kv_list",
    signature: "(i32, i32, i32, i32, i32, i32) -> i32",
    grant: GRANT_STORAGE,
};

/// `kv_get_many(keys_ptr, keys_len, out) -> status`: the values of several
/// keys in one call and one read (§6.2, [`crate::page`]).
pub const KV_GET_MANY: HostFunction = HostFunction {
    name: "kv_get_many",
    signature: "(i32, i32, i32) -> i32",
    grant: GRANT_STORAGE,
};

/// `kv_increment(key_ptr, key_len, delta: i64, out) -> status`.
pub const KV_INCREMENT: HostFunction = HostFunction {
    name: "kv_increment",
    signature: "(i32, i32, i64, i32) -> i32",
    grant: GRANT_STORAGE,
};

/// `kv_cas(key_ptr, key_len, expected_ptr, expected_len, new_ptr, new_len) -> status`.
pub const KV_CAS: HostFunction = HostFunction {
    name: "kv_cas",
    signature: "(i32, i32, i32, i32, i32, i32) -> i32",
    grant: GRANT_STORAGE,
};

/// `session_start(id_ptr, id_len, name_ptr, name_len) -> status`.
pub const SESSION_START: HostFunction = HostFunction {
    name: "session_start",
    signature: "(i32, i32, i32, i32) -> i32",
    grant: GRANT_SESSIONS,
};

/// `session_end() -> status`.
pub const SESSION_END: HostFunction = HostFunction {
    name: "session_end",
    signature: "() -> i32",
    grant: GRANT_SESSIONS,
};

/// Every function of the [`HOST_MODULE`] import module. A module importing
/// one its app is not granted, or a name not listed, is refused at load. A
/// service with several functions puts them all under one grant.
pub const HOST_FUNCTIONS: &[HostFunction] = &[
    LOG,
    KV_GET,
    KV_SET,
    KV_DELETE,
    KV_LIST,
    KV_GET_MANY,
    KV_INCREMENT,
    KV_CAS,
    SESSION_START,
    SESSION_END,
];

/// The host function named `name`.
pub fn host_function(name: &str) -> Option<&'static HostFunction> {
    HOST_FUNCTIONS.iter().find(|f| f.name == name)
}

/// The length that passes an optional byte string as absent (§6.1).
pub const ABSENT_LEN: i32 = -1;

/// The `level` values of [`LOG`] (§6.2).
pub mod log_level {
    /// Something failed.
    pub const ERROR: i32 = 0;
    /// Something looks wrong.
    pub const WARN: i32 = 1;
    /// Normal operation.
    pub const INFO: i32 = 2;
    /// Detail for debugging.
    pub const DEBUG: i32 = 3;
}

/// Bytes at a function's `out` pointer when it returns a buffer (§6.1).
pub const OUT_SLOT_LEN: usize = 8;

/// The `out` slot describing a buffer the host allocated in guest memory:
/// `[ptr: u32 LE][len: u32 LE]`.
pub fn encode_out_slot(ptr: u32, len: u32) -> [u8; OUT_SLOT_LEN] {
    let mut slot = [0u8; OUT_SLOT_LEN];
    slot[..4].copy_from_slice(&ptr.to_le_bytes());
    slot[4..].copy_from_slice(&len.to_le_bytes());
    slot
}

/// The `(ptr, len)` of an `out` slot.
pub fn decode_out_slot(slot: [u8; OUT_SLOT_LEN]) -> (u32, u32) {
    let [p0, p1, p2, p3, l0, l1, l2, l3] = slot;
    (
        u32::from_le_bytes([p0, p1, p2, p3]),
        u32::from_le_bytes([l0, l1, l2, l3]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_host_function_has_a_known_grant_and_every_grant_a_function() {
        for f in HOST_FUNCTIONS {
            assert!(HOST_GRANTS.contains(&f.grant), "{}: {}", f.name, f.grant);
        }
        for grant in HOST_GRANTS.iter().chain(DEFAULT_HOST_GRANTS) {
            assert!(
                HOST_FUNCTIONS.iter().any(|f| f.grant == *grant),
                "{grant} allows nothing"
            );
        }
    }

    #[test]
    fn host_functions_are_listed_once_with_a_wasm_signature() {
        for f in HOST_FUNCTIONS {
            assert_eq!(host_function(f.name), Some(f));
            let (params, result) = f.signature.split_once(" -> ").expect(f.name);
            let params = params
                .strip_prefix('(')
                .and_then(|p| p.strip_suffix(')'))
                .expect(f.name);
            assert!(
                params.is_empty() || params.split(", ").all(|t| t == "i32" || t == "i64"),
                "{}",
                f.signature
            );
            assert!(["()", "i32"].contains(&result), "{}", f.signature);
        }
        assert_eq!(host_function("nope"), None);
    }

    #[test]
    fn out_slots_are_little_endian() {
        let table = [
            (0u32, 0u32, [0u8; 8]),
            (1, 2, [1, 0, 0, 0, 2, 0, 0, 0]),
            (0x0403_0201, 0x0807_0605, [1, 2, 3, 4, 5, 6, 7, 8]),
            (u32::MAX, 0, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
        ];
        for (ptr, len, bytes) in table {
            assert_eq!(encode_out_slot(ptr, len), bytes);
            assert_eq!(decode_out_slot(bytes), (ptr, len));
        }
    }
}
