//! Starting a host: the options, the engine and data stores, the server alone (`start`) or with hot swap (`start_host`: the file watcher and the admin listener around one deploy controller).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::control::admin::{self, AdminConfig, AdminHandle};
use crate::control::cluster::{self, Cluster, SyncHandle};
use crate::control::deploy::Controller;
use crate::control::watcher::{Reloader, Watcher};
use crate::net::{self, ServerHandle, Stopper};
use crate::storage::redis_store::{RedisPool, RedisStore};

/// Hot-swap settings, beside the serving `Options`.
#[derive(Debug, Clone, Default)]
pub struct HotSwap {
    /// Watch `routes.json` and the module files, and swap on change.
    pub watch: bool,
    /// The admin listener; `None` leaves it off.
    pub admin: Option<AdminConfig>,
    /// Where deployed modules are stored; `None` keeps deploys in memory only.
    pub data_dir: Option<PathBuf>,
    /// Whether a version never compiled before serves on baseline code
    /// until its optimized code is ready (docs/ARCHITECTURE.md, "Tiers");
    /// off, it is compiled optimized before it serves.
    pub baseline_tier: bool,
}

/// A running host: server, watcher and admin listener. Dropping it stops all three.
pub struct Host {
    server: Option<ServerHandle>,
    watcher: Option<Watcher>,
    admin: Option<AdminHandle>,
    sync: Option<SyncHandle>,
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
        self.sync.take();
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
    let pool = open_pool(&options)?;
    let runtime = new_runtime_on(&options, pool.as_ref())?;
    let tiers = runtime.clone();
    let mut controller = Controller::new(
        runtime,
        options.routes.clone(),
        hot.data_dir.clone(),
        options.max_body,
    )?;
    let cluster = match (&pool, &options.redis) {
        (Some(pool), Some(settings)) => {
            let cluster = Arc::new(Cluster::new(pool.clone(), &settings.node));
            controller.join_cluster(cluster.clone());
            Some(cluster)
        }
        _ => None,
    };
    let controller = Arc::new(controller);
    // Catch up with the cluster's versions before serving; a Redis that is
    // down only delays this to the sync thread's next round.
    let sync = cluster.map(|cluster| cluster::start_sync(cluster, controller.clone()));
    options.server.worker_stack = options
        .server
        .worker_stack
        .max(crate::sandbox::WORKER_STACK);
    let server = net::start(options.server, controller.dispatcher().clone())?;
    // Start-up compiled every app optimized; from now on a version never
    // compiled before serves on baseline code within its first second
    // (docs/ARCHITECTURE.md, "Tiers").
    tiers.set_tiering(hot.baseline_tier);
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
        sync,
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
    /// A Redis server shared by several hosts (docs/scale-out.md): apps'
    /// storage and sessions live there instead of under `data_dir`, and
    /// deploys and rollbacks reach every host that shares it. `None` keeps
    /// the host on its own.
    pub redis: Option<RedisSettings>,
}

/// How a host reaches the Redis server it shares with the rest of its cluster.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db` or `redis+unix:///path`.
    pub url: String,
    /// Prefix of every key the host writes (one Redis may serve several
    /// clusters, each under its own prefix).
    pub prefix: String,
    /// This host's name in the cluster, unique among its nodes.
    pub node: String,
}

/// Loads the routes and every module they name, then starts the server.
pub fn start(mut options: Options) -> anyhow::Result<net::ServerHandle> {
    let pool = open_pool(&options)?;
    let runtime = new_runtime_on(&options, pool.as_ref())?;
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
    let pool = open_pool(options)?;
    new_runtime_on(options, pool.as_ref())
}

/// The pool for `options.redis`, if set (it connects on first use).
fn open_pool(options: &Options) -> anyhow::Result<Option<RedisPool>> {
    match &options.redis {
        Some(settings) => {
            let pool = RedisPool::open(&settings.url, &settings.prefix)?;
            tracing::info!(redis = pool.url(), node = %settings.node, "storage, sessions and deploys shared through Redis");
            Ok(Some(pool))
        }
        None => Ok(None),
    }
}

fn new_runtime_on(
    options: &Options,
    pool: Option<&RedisPool>,
) -> anyhow::Result<Arc<crate::sandbox::Runtime>> {
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
    runtime.set_services(open_services(options.data_dir.as_deref(), pool)?);
    Ok(runtime)
}

/// Opens the apps' key-value store and the host's session store.
fn open_services(
    data_dir: Option<&std::path::Path>,
    pool: Option<&RedisPool>,
) -> anyhow::Result<crate::sandbox::services::HostServices> {
    let (kv, host): (
        Arc<dyn crate::storage::KvStore>,
        Arc<dyn crate::storage::KvStore>,
    ) = match (pool, data_dir) {
        (Some(pool), _) => (
            Arc::new(RedisStore::new(pool.clone(), "apps")),
            Arc::new(RedisStore::new(pool.clone(), "host")),
        ),
        (None, Some(dir)) => {
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
        (None, None) => (
            Arc::new(crate::storage::MemoryStore::new()),
            Arc::new(crate::storage::MemoryStore::new()),
        ),
    };
    Ok(crate::sandbox::services::HostServices {
        kv,
        sessions: Arc::new(crate::sessions::Sessions::new(host)),
    })
}
