//! wasmhost: an HTTP/1.1 server that runs web handlers as sandboxed WebAssembly guests.
//!
//! See `docs/ARCHITECTURE.md` for the map of this crate.

pub mod admin;
pub mod config;
pub mod deploy;
pub mod dispatch;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod router;
pub mod server;
pub mod sessions;
pub mod static_files;
pub mod status;
pub mod storage;
pub mod supervisor;
pub mod wasm;
pub mod watcher;

pub use supervisor::{Host, HotSwap, start_host};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

/// Everything needed to start serving.
#[derive(Debug, Clone)]
pub struct Options {
    /// The routes file.
    pub routes: PathBuf,
    /// Connection-layer settings.
    pub server: server::ServerConfig,
    /// Body limit for requests not routed to an app.
    pub max_body: u64,
    /// Where apps' storage and the host's sessions live (SQLite files under
    /// `apps/` and `host/`); `None` keeps them in memory, gone at exit.
    pub data_dir: Option<PathBuf>,
}

/// Loads the routes and every module they name, then starts the server.
pub fn start(options: Options) -> anyhow::Result<server::ServerHandle> {
    let runtime = new_runtime(&options)?;
    let site = dispatch::load_site(&options.routes, &runtime)?;
    let dispatcher = Arc::new(dispatch::Dispatcher::new(runtime, site, options.max_body));
    server::start(options.server, dispatcher)
}

/// The WebAssembly runtime sized for the server's workers (shared by `start`
/// and `start_host`).
pub fn new_runtime(options: &Options) -> anyhow::Result<Arc<wasm::Runtime>> {
    let slots = u32::try_from(options.server.workers * 2 + 16).unwrap_or(u32::MAX);
    // Compiled modules are cached next to the data, as an absolute path
    // (wasmtime's cache requires one).
    let cache = match &options.data_dir {
        Some(dir) => {
            Some(std::path::absolute(dir.join("cache")).context("resolving the data directory")?)
        }
        None => None,
    };
    let runtime = Arc::new(
        wasm::Runtime::with_cache(slots, cache).context("starting the WebAssembly engine")?,
    );
    runtime.set_workers(options.server.workers);
    runtime.set_services(open_services(options.data_dir.as_deref())?);
    Ok(runtime)
}

/// Opens the apps' key-value store and the host's session store.
fn open_services(
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<wasm::services::HostServices> {
    let (kv, host): (Arc<dyn storage::KvStore>, Arc<dyn storage::KvStore>) = match data_dir {
        Some(dir) => {
            let open = |sub: &str| {
                let path = dir.join(sub);
                storage::sqlite::SqliteStore::open(&path)
                    .map(|s| Arc::new(s) as Arc<dyn storage::KvStore>)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot open the data store in {}: {e}", path.display())
                    })
            };
            (open("apps")?, open("host")?)
        }
        None => (
            Arc::new(storage::MemoryStore::new()),
            Arc::new(storage::MemoryStore::new()),
        ),
    };
    Ok(wasm::services::HostServices {
        kv,
        sessions: Arc::new(sessions::Sessions::new(host)),
    })
}
