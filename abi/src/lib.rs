//! The wasmhost guest ABI (`docs/abi.md`) defined once: what the host and every guest must agree on, shared by `wasmhost` and `guest-sdk`.
//!
//! Plain data and pure functions on bytes, with no I/O and no `unsafe`, so
//! that it builds both for the host and for `wasm32-wasip1` guests:
//!
//! - [`ABI_VERSION`], the version `wasmhost_abi_version` returns (§2);
//! - [`exports`]: the names and signatures of the exports a module has (§2);
//! - [`imports`]: the import modules, the `wasmhost` host functions with
//!   their signatures and grants ([`HOST_FUNCTIONS`], [`HOST_GRANTS`],
//!   [`DEFAULT_HOST_GRANTS`]), the log levels and the `out` buffer slot (§3, §6);
//! - [`status`]: the statuses host functions return (§6.1 and "Storage");
//! - [`limits`]: the storage and session limits ("Storage", §6.2);
//! - [`frame`]: the request and response framing and the packed `(ptr, len)`
//!   result of `wasmhost_handle` (§4, §5);
//! - [`meta`]: the request and response meta as serde types (§5.1, §5.2);
//! - [`page`]: the encoding of a `kv_list` result (§6.2).
//!
//! The meta types borrow with [`Cow`](std::borrow::Cow), so that the host
//! serializes a request from data it already holds, and a guest deserializes
//! the same type into owned strings.

pub mod exports;
pub mod frame;
pub mod imports;
pub mod limits;
pub mod meta;
pub mod page;
pub mod status;

pub use frame::{
    FrameError, LEN_PREFIX, frame_len, join_frame, pack, split_frame, unpack, write_frame,
};
pub use imports::{DEFAULT_HOST_GRANTS, HOST_FUNCTIONS, HOST_GRANTS, HostFunction};
pub use meta::{RequestMeta, ResponseMeta, RouteMeta, UserMeta};
pub use page::{
    KeyPage, decode_key_list, decode_key_page, decode_value_list, encode_key_list, encode_key_page,
    encode_value_list,
};

/// The version of the ABI described by `docs/abi.md`: what a module's
/// `wasmhost_abi_version` returns, and the only one the host accepts.
pub const ABI_VERSION: i32 = 1;
