//! The exports of a guest module (ABI §2): their names and signatures, the ones every module must have and the optional ones.
//!
//! Signatures are written as the host checks and reports them: the
//! parameter types in parentheses, `->`, then the result type, or `()` for
//! none (`"(i32, i32) -> i64"`). `None` stands for a memory.

/// The guest's linear memory.
pub const MEMORY: &str = "memory";
/// Returns the ABI version the module implements ([`crate::ABI_VERSION`]).
pub const ABI_VERSION: &str = "wasmhost_abi_version";
/// Allocates `len` bytes in guest memory for the host, or returns 0.
pub const ALLOC: &str = "wasmhost_alloc";
/// Handles the request at `ptr..ptr+len` and returns where its response is.
pub const HANDLE: &str = "wasmhost_handle";
/// Optional: start-up work run once at load and snapshotted (§2.1).
pub const INIT: &str = "wasmhost_init";
/// Optional: the WASI reactor initializer, run before anything else.
pub const INITIALIZE: &str = "_initialize";

/// An export the ABI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Export {
    /// The export's name.
    pub name: &'static str,
    /// The function's signature, or `None` for a memory.
    pub signature: Option<&'static str>,
}

/// The exports every module must have, in the order the host checks them.
pub const REQUIRED: &[Export] = &[
    Export {
        name: MEMORY,
        signature: None,
    },
    Export {
        name: ABI_VERSION,
        signature: Some("() -> i32"),
    },
    Export {
        name: ALLOC,
        signature: Some("(i32) -> i32"),
    },
    Export {
        name: HANDLE,
        signature: Some("(i32, i32) -> i64"),
    },
];

/// The exports a module may have; the host checks the signature of each
/// one present.
pub const OPTIONAL: &[Export] = &[
    Export {
        name: INITIALIZE,
        signature: Some("() -> ()"),
    },
    Export {
        name: INIT,
        signature: Some("() -> ()"),
    },
];

/// The export named `name`, required or optional.
pub fn find(name: &str) -> Option<&'static Export> {
    REQUIRED.iter().chain(OPTIONAL).find(|e| e.name == name)
}

/// The signature the ABI gives the function export `name`; `None` for a
/// memory or a name the ABI does not know.
pub fn signature(name: &str) -> Option<&'static str> {
    find(name).and_then(|e| e.signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_export_is_listed_once() {
        let names = [MEMORY, ABI_VERSION, ALLOC, HANDLE, INIT, INITIALIZE];
        for name in names {
            let count = REQUIRED
                .iter()
                .chain(OPTIONAL)
                .filter(|e| e.name == name)
                .count();
            assert_eq!(count, 1, "{name}");
        }
        assert_eq!(REQUIRED.len() + OPTIONAL.len(), names.len());
        assert_eq!(signature(HANDLE), Some("(i32, i32) -> i64"));
        assert_eq!(signature(MEMORY), None);
        assert_eq!(signature("nope"), None);
    }
}
