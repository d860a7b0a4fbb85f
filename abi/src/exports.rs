//! The exports of a guest module (ABI §2): their names and signatures, the ones every module must have and the optional ones.
//!
//! Signatures are written as the host checks and reports them: the
//! parameter types in parentheses, `->`, then the result type, or `()` for
//! none (`"(i32, i32) -> i64"`). `None` stands for a memory.

/// An export the ABI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Export {
    /// The export's name.
    pub name: &'static str,
    /// The function's signature, or `None` for a memory.
    pub signature: Option<&'static str>,
}

/// The guest's linear memory.
pub const MEMORY: Export = Export {
    name: "memory",
    signature: None,
};

/// Returns the ABI version the module implements ([`crate::ABI_VERSION`]).
pub const ABI_VERSION: Export = Export {
    name: "wasmhost_abi_version",
    signature: Some("() -> i32"),
};

/// Allocates `len` bytes in guest memory for the host, or returns 0.
pub const ALLOC: Export = Export {
    name: "wasmhost_alloc",
    signature: Some("(i32) -> i32"),
};

/// Handles the request at `ptr..ptr+len` and returns where its response is.
pub const HANDLE: Export = Export {
    name: "wasmhost_handle",
    signature: Some("(i32, i32) -> i64"),
};

/// Optional: start-up work run once at load and snapshotted (§2.1).
pub const INIT: Export = Export {
    name: "wasmhost_init",
    signature: Some("() -> ()"),
};

/// Optional: the WASI reactor initializer, run before anything else.
pub const INITIALIZE: Export = Export {
    name: "_initialize",
    signature: Some("() -> ()"),
};

/// The exports every module must have, in the order the host checks them.
pub const REQUIRED: &[Export] = &[MEMORY, ABI_VERSION, ALLOC, HANDLE];

/// The exports a module may have; the host checks the signature of each
/// one present.
pub const OPTIONAL: &[Export] = &[INITIALIZE, INIT];

/// The export named `name`, required or optional.
pub fn find(name: &str) -> Option<&'static Export> {
    REQUIRED.iter().chain(OPTIONAL).find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_export_is_listed_once() {
        let all = [MEMORY, ABI_VERSION, ALLOC, HANDLE, INIT, INITIALIZE];
        for export in all {
            let count = REQUIRED
                .iter()
                .chain(OPTIONAL)
                .filter(|e| e.name == export.name)
                .count();
            assert_eq!(count, 1, "{}", export.name);
            assert_eq!(find(export.name), Some(&export));
        }
        assert_eq!(REQUIRED.len() + OPTIONAL.len(), all.len());
        assert_eq!(find("wasmhost_handle"), Some(&HANDLE));
        assert_eq!(find("nope"), None);
    }
}
