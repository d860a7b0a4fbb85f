//! Starting a host: the options, the engine and data stores, the server alone (`start`) or with hot swap (`start_host`: the file watcher and the admin listener around one deploy controller).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::control::admin::{self, AdminConfig, AdminHandle};
use crate::control::deploy::Controller;
use crate::control::watcher::{Reloader, Watcher};
use crate::net::{self, ServerHandle, Stopper};

/// Hot-swap settings, beside the serving `Options`.
#[derive(Debug, Clone, Default)]
pub struct HotSwap {
    /// Watch `routes.json` and the module files, and swap on change.
    pub watch: bool,
    /// The admin listener; `None` leaves it off.
    pub admin: Option<AdminConfig>,
    /// Where deployed modules are stored; `None` keeps deploys in memory only.
    pub data_dir: Option<PathBuf>,
}

/// A running host: server, watcher and admin listener. Dropping it stops all three.
pub struct Host {
    server: Option<ServerHandle>,
    watcher: Option<Watcher>,
    admin: Option<AdminHandle>,
    controller: Arc<Controller>,
}

/// Forces a reload of everything (SIGHUP).
#[derive(Clone)]
pub enum ReloadTrigger {
    Watcher(Reloader),
    Direct(Arc<Controller>),
}

impl ReloadTrigger {
    pub fn reload(&self) {
        match self {
            ReloadTrigger::Watcher(r) => r.reload(),
            ReloadTrigger::Direct(c) => {
                if let Err(e) = c.reload() {
                    tracing::warn!("{e}");
                }
            }
        }
    }
}

impl Host {
    /// The address the server bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.server
            .as_ref()
            .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |s| s.local_addr())
    }

    /// The address the admin listener bound, if it runs.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminHandle::local_addr)
    }

    pub fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// A handle that stops the server from another thread.
    pub fn stopper(&self) -> Option<Stopper> {
        self.server.as_ref().map(ServerHandle::stopper)
    }

    pub fn reload_trigger(&self) -> ReloadTrigger {
        match &self.watcher {
            Some(w) => ReloadTrigger::Watcher(w.reloader()),
            None => ReloadTrigger::Direct(self.controller.clone()),
        }
    }

    /// Waits until the server stops, then stops the rest.
    pub fn join(mut self) -> anyhow::Result<()> {
        match self.server.take() {
            Some(s) => s.join(),
            None => Ok(()),
        }
    }

    /// Stops everything and waits.
    pub fn shutdown(mut self) -> anyhow::Result<()> {
        self.admin.take();
        self.watcher.take();
        match self.server.take() {
            Some(s) => s.shutdown(),
            None => Ok(()),
        }
    }
}

/// Loads the routes (and deployed versions), then starts the server, the
/// watcher and the admin listener as `hot` asks.
pub fn start_host(mut options: Options, hot: HotSwap) -> anyhow::Result<Host> {
    let runtime = new_runtime(&options)?;
    let controller = Arc::new(Controller::new(
        runtime,
        options.routes.clone(),
        hot.data_dir.clone(),
        options.max_body,
    )?);
    options.server.worker_stack = options
        .server
        .worker_stack
        .max(crate::sandbox::WORKER_STACK);
    let server = net::start(options.server, controller.dispatcher().clone())?;
    let watcher = if hot.watch {
        Some(Watcher::start(controller.clone())?)
    } else {
        None
    };
    let admin = match &hot.admin {
        Some(cfg) => Some(admin::start(cfg, controller.clone())?),
        None => None,
    };
    Ok(Host {
        server: Some(server),
        watcher,
        admin,
        controller,
    })
}

/// Everything needed to start serving.
#[derive(Debug, Clone)]
pub struct Options {
    /// The routes file.
    pub routes: PathBuf,
    /// Connection-layer settings.
    pub server: net::ServerConfig,
    /// Body limit for requests not routed to an app.
    pub max_body: u64,
    /// Where apps' storage and the host's sessions live (SQLite files under
    /// `apps/` and `host/`); `None` keeps them in memory, gone at exit.
    pub data_dir: Option<PathBuf>,
}

/// Loads the routes and every module they name, then starts the server.
pub fn start(mut options: Options) -> anyhow::Result<net::ServerHandle> {
    let runtime = new_runtime(&options)?;
    let site = crate::app::load_site(&options.routes, &runtime)?;
    let dispatcher = Arc::new(crate::app::Dispatcher::new(runtime, site, options.max_body));
    options.server.worker_stack = options
        .server
        .worker_stack
        .max(crate::sandbox::WORKER_STACK);
    net::start(options.server, dispatcher)
}

/// The WebAssembly runtime sized for the server's workers (shared by `start`
/// and `start_host`).
pub fn new_runtime(options: &Options) -> anyhow::Result<Arc<crate::sandbox::Runtime>> {
    // Instances in flight: one per run slot and one per sleeping request
    // (`limits::MAX_PARKED`), with room for load probes and the swap.
    let slots = u32::try_from(options.server.workers * 2 + crate::limits::MAX_PARKED + 16)
        .unwrap_or(u32::MAX);
    // Compiled modules are cached next to the data, as an absolute path
    // (wasmtime's cache requires one).
    let cache = match &options.data_dir {
        Some(dir) => {
            Some(std::path::absolute(dir.join("cache")).context("resolving the data directory")?)
        }
        None => None,
    };
    let runtime = Arc::new(
        crate::sandbox::Runtime::with_cache(slots, cache)
            .context("starting the WebAssembly engine")?,
    );
    runtime.set_services(open_services(options.data_dir.as_deref())?);
    Ok(runtime)
}

/// Opens the apps' key-value store and the host's session store.
fn open_services(
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<crate::sandbox::services::HostServices> {
    let (kv, host): (
        Arc<dyn crate::storage::KvStore>,
        Arc<dyn crate::storage::KvStore>,
    ) = match data_dir {
        Some(dir) => {
            let open = |sub: &str| {
                let path = dir.join(sub);
                crate::storage::sqlite::SqliteStore::open(&path)
                    .map(|s| Arc::new(s) as Arc<dyn crate::storage::KvStore>)
                    .map_err(|e| {
                        anyhow::anyhow!("cannot open the data store in {}: {e}", path.display())
                    })
            };
            (open("apps")?, open("host")?)
        }
        None => (
            Arc::new(crate::storage::MemoryStore::new()),
            Arc::new(crate::storage::MemoryStore::new()),
        ),
    };
    Ok(crate::sandbox::services::HostServices {
        kv,
        sessions: Arc::new(crate::sessions::Sessions::new(host)),
    })
}
