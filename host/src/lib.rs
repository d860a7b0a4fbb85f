//! wasmhost: an HTTP/1.1 server that runs web handlers as sandboxed WebAssembly guests.
//!
//! See `docs/ARCHITECTURE.md` for the map of this crate.

// Layers, lowest first; each imports only layers below it (docs/ARCHITECTURE.md,
// enforced by the integration test `tidy`).
pub mod fsutil;
pub mod http;
pub mod limits;
pub mod pause;
pub mod router;

pub mod config;
pub mod sessions;
pub mod storage;

pub mod sandbox;
pub mod static_files;

pub mod net;

pub mod app;

pub mod control;

pub use control::supervisor::{
    Host, HotSwap, Options, RedisSettings, new_runtime, start, start_host,
};
