//! Running guests: one wasmtime engine, modules checked against the ABI at load, a fresh instance per request.

pub mod abi;
pub mod load_message;
pub mod log_sink;
mod poll;
pub mod preinit;
pub mod services;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmhost_abi::exports::{self, Export};
use wasmhost_abi::imports::{
    self, GRANT_SESSIONS, GRANT_STORAGE, HOST_MODULE, WASI_MODULE, log_level,
};
use wasmhost_abi::{ABI_VERSION, HOST_FUNCTIONS};
use wasmtime::{
    Caller, Config, Enabled, Engine, ExternType, FuncType, InstanceAllocationStrategy, InstancePre,
    Linker, Module, PoolingAllocationConfig, ResourceLimiter, Store, Trap, UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::config::{AppConfig, Grants, Limits, MAX_ERROR_PAGE};
use abi::GuestResponse;
use log_sink::LogSink;

/// How often the shared ticker advances the engine's epoch; CPU deadlines are
/// counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Subdirectory of the cache directory holding wasmtime's compiled modules;
/// pre-initialized modules sit beside it (`preinit::cache_path`).
const MODULE_CACHE_DIR: &str = "modules";

/// Time a module's start-up (instantiation and `wasmhost_abi_version`) may
/// take at load, so that a guest looping in its initializer cannot hang a load.
const LOAD_CPU_BUDGET: Duration = Duration::from_secs(2);

/// Largest Wasm stack a guest may use; deep recursion traps with a stack
/// overflow beyond it. Worker threads get `WORKER_STACK` native stack to hold it.
pub const MAX_WASM_STACK: usize = 1024 * 1024;

/// Native stack for threads that run guests: wasmtime requires the native
/// stack to hold the Wasm stack plus host frames.
pub const WORKER_STACK: usize = 8 * 1024 * 1024;

/// The largest linear memory any app can be granted; per-app limits are
/// enforced below it by each store's limiter.
const POOL_MAX_MEMORY: usize = 4 << 30;

/// The grant names of `grants.host` and the default grants, defined with the
/// host functions in `wasmhost-abi`; `config.rs` reads them from here.
pub use wasmhost_abi::{DEFAULT_HOST_GRANTS, HOST_GRANTS};

/// WASI functions no app is granted, by name prefix: p1 sockets work only on
/// preopened sockets, which the host never gives, so importing them can only
/// be a mistake or a probe.
const DENIED_WASI_PREFIXES: &[&str] = &["sock_"];

/// What a store carries for the duration of one request.
pub struct GuestState {
    /// WASI preview 1: clocks, random, stdout/stderr into `log`.
    wasi: WasiP1Ctx,
    /// Memory and table limits for this request.
    budget: Budget,
    /// The request's time budgets and where it stands against them.
    timing: Timing,
    /// The app, to tag log lines.
    app: Arc<str>,
    /// Captured output (stdout, stderr, `wasmhost.log`).
    log: LogSink,
    /// Storage and sessions as granted, and what the guest asked of them.
    services: services::RequestServices,
}

/// The time budgets of one store. Epochs tick in wall time and are only
/// seen while Wasm runs, so the epoch callback (and `poll_oneoff`, the one
/// host call that blocks) compares against these instead of trusting ticks.
struct Timing {
    /// When the store was created: wall time counts from here.
    started: Instant,
    /// Longest the request may take, host calls included.
    wall_limit: Duration,
    /// Longest the guest may run: wall time minus time spent sleeping.
    cpu_limit: Duration,
    /// Time spent blocked in host calls (sleeping), not counted as running.
    waited: Duration,
    /// Why the guest was stopped, if it was stopped for time.
    stop: Option<Stop>,
}

/// A time budget that ran out, and the figure reached.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Guest running time reached.
    Cpu(Duration),
    /// Wall time reached.
    Wall(Duration),
}

impl Timing {
    /// Called when the epoch deadline passes: stop the guest if a budget is
    /// spent, or else sleep until the nearer one could be.
    fn on_epoch(&mut self) -> UpdateDeadline {
        let elapsed = self.started.elapsed();
        let running = elapsed.saturating_sub(self.waited);
        if elapsed >= self.wall_limit {
            self.stop = Some(Stop::Wall(elapsed));
            return UpdateDeadline::Interrupt;
        }
        if running >= self.cpu_limit {
            self.stop = Some(Stop::Cpu(running));
            return UpdateDeadline::Interrupt;
        }
        let left = (self.wall_limit - elapsed).min(self.cpu_limit - running);
        UpdateDeadline::Continue(ticks(left))
    }
}

/// Epoch ticks covering `d`, at least one.
fn ticks(d: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    u64::try_from(d.as_micros().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The resource limiter of one store: the app's memory ceiling, recording
/// whether the guest hit it and how high it went.
struct Budget {
    memory_limit: usize,
    peak_memory: usize,
    memory_denied: bool,
    /// The size the guest asked for when it was refused.
    memory_wanted: usize,
}

impl ResourceLimiter for Budget {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit || maximum.is_some_and(|m| desired > m) {
            self.memory_denied = true;
            self.memory_wanted = self.memory_wanted.max(desired);
            return Ok(false);
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        1
    }
    fn memories(&self) -> usize {
        1
    }
}

/// Most table elements a guest may have: function tables of real programs hold
/// a few thousand entries.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Why a guest failed to produce a response. The application layer's
/// failure table (`app/failure.rs`) maps each to a status; each message
/// names the limit and the figure reached.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("cpu_time limit of {limit:?} reached (guest ran {used:.3?})")]
    CpuTime { limit: Duration, used: Duration },
    #[error("wall_time limit of {limit:?} reached (request took {elapsed:.3?})")]
    WallTime { limit: Duration, elapsed: Duration },
    #[error("fuel limit of {limit} units used up")]
    Fuel { limit: u64 },
    #[error("memory limit of {limit} bytes reached (guest asked for {wanted} bytes)")]
    OutOfMemory { limit: u64, wanted: u64 },
    #[error("stack limit of {limit} bytes reached (Wasm stack overflow)")]
    StackOverflow { limit: usize },
    #[error("trap: {0}")]
    Trap(String),
    #[error("guest exited with status {0}")]
    Exit(i32),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("max_response limit of {limit} bytes exceeded (response of {len} bytes)")]
    ResponseTooLarge { len: u64, limit: u64 },
    #[error("no instance slot free in the engine's pool")]
    Busy,
    #[error("cannot set up the instance: {0}")]
    Setup(String),
}

impl GuestError {
    /// The limit this failure hit, by its name in `routes.json` and metrics.
    pub fn limit_kind(&self) -> Option<&'static str> {
        match self {
            GuestError::CpuTime { .. } => Some("cpu_time"),
            GuestError::WallTime { .. } => Some("wall_time"),
            GuestError::Fuel { .. } => Some("fuel"),
            GuestError::OutOfMemory { .. } => Some("memory"),
            GuestError::StackOverflow { .. } => Some("stack"),
            GuestError::ResponseTooLarge { .. } => Some("max_response"),
            GuestError::Trap(_)
            | GuestError::Exit(_)
            | GuestError::Malformed(_)
            | GuestError::Busy
            | GuestError::Setup(_) => None,
        }
    }

    /// Whether this is a guest trap that no limit explains.
    pub fn is_trap(&self) -> bool {
        matches!(self, GuestError::Trap(_))
    }
}

/// A page an app ships for one of its failure statuses, loaded with its module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub content_type: String,
    pub body: Vec<u8>,
}

/// An app's pages by status (only `config::ERROR_PAGE_STATUSES` are loaded).
pub type ErrorPages = std::collections::BTreeMap<u16, ErrorPage>;

/// Why a module could not be loaded. Every message is one line: reasons
/// from wasmtime, wasmparser or wizer are flattened (`load_message`).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {}", load_message::one_line(&.source.to_string()))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {}", load_message::one_line(.reason))]
    NotWasm { path: PathBuf, reason: String },
    #[error("{path} is not a valid WebAssembly module: {}", load_message::one_line(.reason))]
    Compile { path: PathBuf, reason: String },
    #[error("{path}: {}", load_message::one_line(.reason))]
    Abi { path: PathBuf, reason: String },
    #[error("error page {path}: {}", load_message::one_line(.reason))]
    ErrorPage { path: PathBuf, reason: String },
    #[error("cannot start the fuel-metered engine: {}", load_message::one_line(.0))]
    Engine(String),
}

/// Figures from one guest call, for the access log.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallStats {
    /// Time to create the store and instantiate the module.
    pub instantiate: Duration,
    /// Time in the guest (`_initialize`, `wasmhost_alloc`, `wasmhost_handle`).
    pub run: Duration,
    /// Largest linear memory the instance had.
    pub peak_memory: usize,
}

/// An engine and its linker: modules compiled for one run only on it.
struct Flavor {
    engine: Engine,
    linker: Linker<GuestState>,
}

/// The engines and everything shared by all modules.
pub struct Runtime {
    /// The engine of apps without a fuel budget.
    plain: Flavor,
    /// The engine of apps with a fuel budget, created when the first such app
    /// is loaded: fuel metering slows every guest compiled for it.
    fueled: Arc<OnceLock<Flavor>>,
    /// Instance slots of each engine's pool.
    max_instances: u32,
    /// The stores behind storage and sessions, set once at start.
    services: OnceLock<services::HostServices>,
    /// Where compiled modules are cached, if anywhere.
    cache: Option<PathBuf>,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

/// A module that passed the ABI checks, ready to instantiate per request.
pub struct GuestModule {
    /// The app's name, for logs.
    pub app: Arc<str>,
    /// The file it came from.
    pub path: PathBuf,
    /// Pre-linked instance template: per request only instantiation remains.
    pre: InstancePre<GuestState>,
    /// Whether the module exports `_initialize` (a WASI reactor).
    has_initialize: bool,
    /// The app's limits.
    pub limits: Limits,
    /// What the app's guests may use.
    pub grants: Grants,
    /// The app's own pages for its failures, by status.
    pub error_pages: ErrorPages,
}

/// Builds an engine (pooling allocator, epoch interruption, optionally fuel)
/// and its linker: WASI p1 with the host's own `poll_oneoff`, and `wasmhost`.
fn flavor(max_instances: u32, fuel: bool, cache: Option<&Path>) -> wasmtime::Result<Flavor> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_core_instances(max_instances)
        .total_memories(max_instances)
        .total_tables(max_instances)
        .max_memory_size(POOL_MAX_MEMORY)
        // With pagemap_scan the pool resets only the pages a request dirtied
        // instead of re-faulting the whole memory (docs/BENCHMARKS.md).
        .linear_memory_keep_resident(64 * 1024)
        .table_keep_resident(64 * 1024)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .max_wasm_stack(MAX_WASM_STACK)
        .memory_init_cow(true);
    if let Some(dir) = cache {
        // wasmtime's cache worker deletes every file it does not recognise
        // in its directory: it gets a subdirectory of its own.
        let dir = dir.join(MODULE_CACHE_DIR);
        // Compiled code keyed by module bytes and engine settings: a restart
        // or a redeploy of a known module loads instead of compiling.
        let mut cache_config = wasmtime::CacheConfig::new();
        cache_config.with_directory(&dir);
        config.cache(Some(wasmtime::Cache::new(cache_config)?));
    }
    let engine = Engine::new(&config)?;
    let mut linker: Linker<GuestState> = Linker::new(&engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut GuestState| &mut s.wasi)?;
    linker.allow_shadowing(true);
    linker.func_wrap(WASI_MODULE, "poll_oneoff", poll::poll_oneoff)?;
    linker.allow_shadowing(false);
    linker.func_wrap(HOST_MODULE, imports::LOG.name, host_log)?;
    services::add_to_linker(&mut linker)?;
    Ok(Flavor { engine, linker })
}

impl Runtime {
    /// Builds the engine (pooling allocator, epoch interruption) and the linker,
    /// and starts the shared epoch ticker. `max_instances` bounds concurrent instances.
    pub fn new(max_instances: u32) -> anyhow::Result<Runtime> {
        Runtime::with_cache(max_instances, None)
    }

    /// As [`Runtime::new`], keeping compiled modules in `cache` (an absolute
    /// directory, created if missing) across restarts.
    pub fn with_cache(max_instances: u32, cache: Option<PathBuf>) -> anyhow::Result<Runtime> {
        if let Some(dir) = &cache {
            let modules = dir.join(MODULE_CACHE_DIR);
            std::fs::create_dir_all(&modules).map_err(|e| {
                anyhow::anyhow!("creating the module cache {}: {e}", modules.display())
            })?;
        }
        let plain = flavor(max_instances, false, cache.as_deref()).map_err(anyhow::Error::from)?;
        let fueled: Arc<OnceLock<Flavor>> = Arc::new(OnceLock::new());
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = plain.engine.clone();
            let fueled = fueled.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                        if let Some(f) = fueled.get() {
                            f.engine.increment_epoch();
                        }
                    }
                })?
        };
        Ok(Runtime {
            plain,
            fueled,
            max_instances,
            services: OnceLock::new(),
            cache,
            ticker_stop,
            ticker: Some(ticker),
        })
    }

    /// Gives the runtime its storage and session stores (once; later calls are ignored).
    pub fn set_services(&self, services: services::HostServices) {
        let _ = self.services.set(services);
    }

    /// The host's sessions, if stores were set.
    pub fn sessions(&self) -> Option<&Arc<crate::sessions::Sessions>> {
        self.services.get().map(|s| &s.sessions)
    }

    /// The engine an app runs on: the fuel-metered one if it has a fuel budget.
    fn flavor_for(&self, limits: &Limits) -> Result<&Flavor, LoadError> {
        if limits.fuel.is_none() {
            return Ok(&self.plain);
        }
        if let Some(f) = self.fueled.get() {
            return Ok(f);
        }
        let made = flavor(self.max_instances, true, self.cache.as_deref())
            .map_err(|e| LoadError::Engine(format!("{:#}", anyhow::Error::from(e))))?;
        // Two loads racing both build one; the loser's is dropped unused.
        let _ = self.fueled.set(made);
        self.fueled
            .get()
            .ok_or_else(|| LoadError::Engine("fuel engine vanished".into()))
    }

    /// Loads an app as configured: its module, limits, grants and error pages.
    pub fn load_app(&self, app: &str, config: &AppConfig) -> Result<GuestModule, LoadError> {
        let bytes = std::fs::read(&config.module).map_err(|source| LoadError::Read {
            path: config.module.clone(),
            source,
        })?;
        self.load_app_bytes(app, config, &config.module, &bytes)
    }

    /// As [`Runtime::load_app`], with the module's bytes (read from `path`)
    /// already in hand, e.g. a deployed version of the app.
    pub fn load_app_bytes(
        &self,
        app: &str,
        config: &AppConfig,
        path: &Path,
        bytes: &[u8],
    ) -> Result<GuestModule, LoadError> {
        let mut error_pages = ErrorPages::new();
        for (status, page) in &config.error_pages {
            error_pages.insert(*status, read_error_page(page)?);
        }
        let mut guest = self.load_with(
            app,
            path,
            bytes,
            config.limits.clone(),
            config.grants.clone(),
            config.preinit,
        )?;
        guest.error_pages = error_pages;
        Ok(guest)
    }

    /// Compiles a module, checks its imports and exports against the ABI,
    /// instantiates it once and checks the version it declares. The app gets
    /// the default grants and no error pages; see [`Runtime::load_app`].
    pub fn load(&self, app: &str, path: &Path, limits: Limits) -> Result<GuestModule, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(app, path, &bytes, limits)
    }

    /// As `load`, from bytes already read.
    pub fn load_bytes(
        &self,
        app: &str,
        path: &Path,
        bytes: &[u8],
        limits: Limits,
    ) -> Result<GuestModule, LoadError> {
        self.load_with(app, path, bytes, limits, Grants::default(), true)
    }

    /// Compiles `bytes`, pre-initializing them first if the module exports
    /// `wasmhost_init` and `preinit` is on, then checks the module against
    /// the ABI and the grants, links it and probes its version.
    fn load_with(
        &self,
        app: &str,
        path: &Path,
        bytes: &[u8],
        limits: Limits,
        grants: Grants,
        preinit: bool,
    ) -> Result<GuestModule, LoadError> {
        let abi_err = |reason: String| LoadError::Abi {
            path: path.to_owned(),
            reason,
        };
        let flavor = self.flavor_for(&limits)?;
        let app: Arc<str> = Arc::from(app);
        let snapshot;
        let bytes = if preinit && preinit::exports_init(bytes) {
            let spec = StoreSpec {
                engine: &flavor.engine,
                app: &app,
                limits: &limits,
                grants: &grants,
            };
            snapshot = self.preinitialize(flavor, spec, path, bytes)?;
            &snapshot[..]
        } else {
            bytes
        };
        let module = compile(flavor, path, bytes, &grants)?;
        let has_initialize = match module.get_export(exports::INITIALIZE.name) {
            None => false,
            Some(_) => {
                check_export(&module, &exports::INITIALIZE).map_err(abi_err)?;
                true
            }
        };
        let pre = flavor
            .linker
            .instantiate_pre(&module)
            .map_err(|e| abi_err(format!("cannot link: {:#}", anyhow::Error::from(e))))?;
        let guest = GuestModule {
            app,
            path: path.to_owned(),
            pre,
            has_initialize,
            limits,
            grants,
            error_pages: ErrorPages::new(),
        };
        let version = self.probe_version(&guest).map_err(|(stage, e)| match e {
            GuestError::CpuTime { .. } | GuestError::WallTime { .. } => abi_err(format!(
                "failed at start-up in {stage}: did not finish within the start-up limit of \
                     {LOAD_CPU_BUDGET:?}"
            )),
            e => abi_err(format!("failed at start-up in {stage}: {e}")),
        })?;
        if version != ABI_VERSION {
            return Err(abi_err(format!(
                "declares ABI version {version}, but this host implements version {ABI_VERSION}"
            )));
        }
        Ok(guest)
    }

    /// Runs the module's `_initialize` and `wasmhost_init` once and returns
    /// the module rewritten to start from the state they left (wizer). The
    /// initializers run under the app's memory limit, the load time budget
    /// and its grants, but with no host services: state read from storage or
    /// sessions would be frozen into every request. With a cache directory,
    /// the snapshot is kept there and reused while module and grants match.
    fn preinitialize(
        &self,
        flavor: &Flavor,
        spec: StoreSpec<'_>,
        path: &Path,
        bytes: &[u8],
    ) -> Result<Vec<u8>, LoadError> {
        let abi_err = |reason: String| LoadError::Abi {
            path: path.to_owned(),
            reason,
        };
        let cached = self
            .cache
            .as_deref()
            .map(|dir| preinit::cache_path(dir, &preinit::cache_key(bytes, spec.grants)));
        if let Some(snapshot) = cached.as_deref().and_then(|p| std::fs::read(p).ok()) {
            return Ok(snapshot);
        }
        let started = Instant::now();
        let snapshot = preinit::Preinit::default()
            .run(bytes, |instrumented| {
                let module = compile(flavor, path, instrumented, spec.grants)
                    .map_err(|e| e.to_string())?;
                check_export(&module, &exports::INIT)?;
                let no_services = services::RequestServices {
                    kv: None,
                    sessions: false,
                    had_session: false,
                    action: None,
                };
                let mut store = new_store(spec, LOAD_CPU_BUDGET, LOAD_CPU_BUDGET, no_services)
                    .map_err(|e| e.to_string())?;
                let instance = flavor
                    .linker
                    .instantiate(&mut store, &module)
                    .map_err(|e| format!("cannot instantiate: {}", classify(e, &store, spec.limits)))?;
                let mut call = |name: &str| -> Result<(), String> {
                    let failed = |e, store: &Store<GuestState>| match classify(e, store, spec.limits) {
                        GuestError::CpuTime { .. } | GuestError::WallTime { .. } => format!(
                            "`{name}` did not finish within the start-up limit of {LOAD_CPU_BUDGET:?}"
                        ),
                        other => format!("`{name}` failed: {other}"),
                    };
                    let f = instance
                        .get_typed_func::<(), ()>(&mut store, name)
                        .map_err(|e| failed(e, &store))?;
                    f.call(&mut store, ()).map_err(|e| failed(e, &store))
                };
                if module.get_export(exports::INITIALIZE.name).is_some() {
                    call(exports::INITIALIZE.name)?;
                }
                let result = call(exports::INIT.name);
                flush_log(&store);
                result.map(|()| (store, instance))
            })
            .map_err(abi_err)?;
        tracing::info!(
            app = %spec.app,
            module = %path.display(),
            bytes = snapshot.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "pre-initialized with `{}`",
            exports::INIT.name
        );
        if let Some(cached) = cached
            && let Err(e) = preinit::cache_store(&cached, &snapshot)
        {
            tracing::warn!(path = %cached.display(), "cannot cache the pre-initialized module: {e}");
        }
        Ok(snapshot)
    }

    /// Instantiates the module once and calls `wasmhost_abi_version`; an
    /// error comes with the step that failed, for the load error to name.
    fn probe_version(&self, guest: &GuestModule) -> Result<i32, (&'static str, GuestError)> {
        const INSTANTIATE: &str = "instantiation (memory, data and the start function)";
        const INITIALIZE: &str = "`_initialize`";
        const VERSION: &str = "`wasmhost_abi_version`";
        let mut store = self
            .new_store(guest, LOAD_CPU_BUDGET, LOAD_CPU_BUDGET, false)
            .map_err(|e| (INSTANTIATE, e))?;
        let fail = |stage, e, store: &Store<GuestState>| (stage, classify(e, store, &guest.limits));
        let instance = guest
            .pre
            .instantiate(&mut store)
            .map_err(|e| fail(INSTANTIATE, e, &store))?;
        if guest.has_initialize {
            let init = instance
                .get_typed_func::<(), ()>(&mut store, exports::INITIALIZE.name)
                .map_err(|e| fail(INITIALIZE, e, &store))?;
            init.call(&mut store, ())
                .map_err(|e| fail(INITIALIZE, e, &store))?;
        }
        let f = instance
            .get_typed_func::<(), i32>(&mut store, exports::ABI_VERSION.name)
            .map_err(|e| fail(VERSION, e, &store))?;
        let version = f.call(&mut store, ()).map_err(|e| fail(VERSION, e, &store));
        flush_log(&store);
        version
    }

    /// A store for one request (or the load probe): a WASI context with only
    /// what the app is granted, its memory limiter and its time budgets.
    fn new_store(
        &self,
        guest: &GuestModule,
        cpu: Duration,
        wall: Duration,
        had_session: bool,
    ) -> Result<Store<GuestState>, GuestError> {
        let services = services::RequestServices {
            kv: self
                .services
                .get()
                .filter(|_| guest.grants.host.contains(GRANT_STORAGE))
                .and_then(|s| {
                    crate::storage::Namespace::new(&guest.app)
                        .ok()
                        .map(|ns| (s.kv.clone(), ns))
                }),
            sessions: guest.grants.host.contains(GRANT_SESSIONS),
            had_session,
            action: None,
        };
        let spec = StoreSpec {
            engine: guest.pre.module().engine(),
            app: &guest.app,
            limits: &guest.limits,
            grants: &guest.grants,
        };
        new_store(spec, cpu, wall, services)
    }

    /// Runs one request on a fresh instance. `meta` is the encoded request
    /// meta, `body` the request body.
    pub fn invoke(
        &self,
        guest: &GuestModule,
        meta: &[u8],
        body: &[u8],
    ) -> (Result<GuestResponse, GuestError>, CallStats) {
        let (result, stats, _) = self.invoke_with(guest, meta, body, false);
        (result, stats)
    }

    /// As [`Runtime::invoke`], for a request that did or did not come with a
    /// session; also returns what the guest asked to do with the session.
    pub fn invoke_with(
        &self,
        guest: &GuestModule,
        meta: &[u8],
        body: &[u8],
        had_session: bool,
    ) -> (
        Result<GuestResponse, GuestError>,
        CallStats,
        Option<crate::sessions::SessionAction>,
    ) {
        let mut stats = CallStats::default();
        let limits = &guest.limits;
        let started = Instant::now();
        let mut store = match self.new_store(guest, limits.cpu_time, limits.wall_time, had_session)
        {
            Ok(store) => store,
            Err(e) => return (Err(e), stats, None),
        };
        let result = self.invoke_in(guest, &mut store, meta, body, &mut stats, started);
        stats.peak_memory = stats.peak_memory.max(store.data().budget.peak_memory);
        flush_log(&store);
        // A guest that failed gets no say over the session.
        let action = match result {
            Ok(_) => store.data_mut().services.action.take(),
            Err(_) => None,
        };
        (result, stats, action)
    }

    fn invoke_in(
        &self,
        guest: &GuestModule,
        store: &mut Store<GuestState>,
        meta: &[u8],
        body: &[u8],
        stats: &mut CallStats,
        started: Instant,
    ) -> Result<GuestResponse, GuestError> {
        let fail =
            |e: wasmtime::Error, store: &Store<GuestState>| classify(e, store, &guest.limits);
        let instance = guest
            .pre
            .instantiate(&mut *store)
            .map_err(|e| fail(e, store))?;
        stats.instantiate = started.elapsed();
        let run_started = Instant::now();
        let memory = instance
            .get_memory(&mut *store, exports::MEMORY.name)
            .ok_or_else(|| GuestError::Malformed("no memory export".into()))?;
        stats.peak_memory = memory.data_size(&*store);
        store.data_mut().budget.peak_memory = stats.peak_memory;
        if guest.has_initialize {
            let init = instance
                .get_typed_func::<(), ()>(&mut *store, exports::INITIALIZE.name)
                .map_err(|e| fail(e, store))?;
            init.call(&mut *store, ()).map_err(|e| fail(e, store))?;
        }
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut *store, exports::ALLOC.name)
            .map_err(|e| fail(e, store))?;
        let handle = instance
            .get_typed_func::<(i32, i32), i64>(&mut *store, exports::HANDLE.name)
            .map_err(|e| fail(e, store))?;

        let too_large = || GuestError::Malformed("request too large for a 32-bit guest".into());
        let total = wasmhost_abi::frame_len(meta.len(), body.len()).ok_or_else(too_large)?;
        let total_i32 = i32::try_from(total).map_err(|_| too_large())?;
        let ptr = alloc
            .call(&mut *store, total_i32)
            .map_err(|e| fail(e, store))?;
        if ptr == 0 {
            return Err(oom_or(store, &guest.limits, "wasmhost_alloc returned 0"));
        }
        let start = ptr as u32 as usize;
        {
            let data = memory.data_mut(&mut *store);
            let dest = start
                .checked_add(total)
                .and_then(|end| data.get_mut(start..end))
                .ok_or_else(|| {
                    GuestError::Malformed("wasmhost_alloc returned a buffer outside memory".into())
                })?;
            wasmhost_abi::write_frame(dest, meta, body);
        }
        let packed = handle.call(&mut *store, (ptr, total_i32));
        stats.run = run_started.elapsed();
        let packed = packed.map_err(|e| fail(e, store))?;
        let (resp_ptr, resp_len) = wasmhost_abi::unpack(packed);
        let (resp_ptr, resp_len) = (resp_ptr as usize, resp_len as usize);
        if resp_len as u64 > guest.limits.max_response.saturating_add(64 * 1024) {
            return Err(GuestError::ResponseTooLarge {
                len: resp_len as u64,
                limit: guest.limits.max_response,
            });
        }
        let data = memory.data(&*store);
        let bytes = resp_ptr
            .checked_add(resp_len)
            .and_then(|end| data.get(resp_ptr..end))
            .ok_or_else(|| {
                GuestError::Malformed(format!(
                    "response range {resp_ptr}+{resp_len} is outside memory"
                ))
            })?;
        let response = abi::decode_response(bytes).map_err(GuestError::Malformed)?;
        if response.body.len() as u64 > guest.limits.max_response {
            return Err(GuestError::ResponseTooLarge {
                len: response.body.len() as u64,
                limit: guest.limits.max_response,
            });
        }
        stats.peak_memory = stats.peak_memory.max(memory.data_size(&*store));
        store.data_mut().budget.peak_memory = stats.peak_memory;
        Ok(response)
    }

    /// The engine of apps without fuel, for tools that compile modules.
    pub fn engine(&self) -> &Engine {
        &self.plain.engine
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

/// Compiles a module and checks its imports against the grants and its
/// exports against the ABI.
fn compile(
    flavor: &Flavor,
    path: &Path,
    bytes: &[u8],
    grants: &Grants,
) -> Result<Module, LoadError> {
    let abi_err = |reason: String| LoadError::Abi {
        path: path.to_owned(),
        reason,
    };
    if let Some(reason) = load_message::not_a_core_module(bytes) {
        return Err(LoadError::NotWasm {
            path: path.to_owned(),
            reason,
        });
    }
    let module = Module::from_binary(&flavor.engine, bytes).map_err(|e| LoadError::Compile {
        path: path.to_owned(),
        reason: format!("{:#}", anyhow::Error::from(e)),
    })?;
    for import in module.imports() {
        check_import(import.module(), import.name(), grants).map_err(abi_err)?;
    }
    for export in exports::REQUIRED {
        check_export(&module, export).map_err(abi_err)?;
    }
    Ok(module)
}

/// What a store is made for: the engine, and the app's name, limits and grants.
#[derive(Clone, Copy)]
struct StoreSpec<'a> {
    engine: &'a Engine,
    app: &'a Arc<str>,
    limits: &'a Limits,
    grants: &'a Grants,
}

/// A store: a WASI context with only what the app is granted, its memory
/// limiter, its time budgets and the host services it may reach.
fn new_store(
    spec: StoreSpec<'_>,
    cpu: Duration,
    wall: Duration,
    services: services::RequestServices,
) -> Result<Store<GuestState>, GuestError> {
    let started = Instant::now();
    let log = LogSink::new(usize::try_from(spec.limits.log_output).unwrap_or(usize::MAX));
    let mut builder = WasiCtxBuilder::new();
    // Blocking file reads run on this worker thread: must be set before
    // the preopen, which captures it.
    builder
        .allow_blocking_current_thread(true)
        .stdout(log.clone())
        .stderr(log.clone())
        .monotonic_clock(poll::GuestClock(started));
    if !spec.grants.env.is_empty() {
        let env: Vec<(&str, &str)> = spec
            .grants
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        builder.envs(&env);
    }
    if let Some(dir) = &spec.grants.dir {
        builder
            .preopened_dir(&dir.host, &dir.guest, FsPerms::ReadOnly)
            .map_err(|e| {
                GuestError::Setup(format!(
                    "granted directory {}: {:#}",
                    dir.host.display(),
                    anyhow::Error::from(e)
                ))
            })?;
    }
    let budget = Budget {
        memory_limit: usize::try_from(spec.limits.memory).unwrap_or(usize::MAX),
        peak_memory: 0,
        memory_denied: false,
        memory_wanted: 0,
    };
    let state = GuestState {
        wasi: builder.build_p1(),
        budget,
        timing: Timing {
            started,
            wall_limit: wall,
            cpu_limit: cpu,
            waited: Duration::ZERO,
            stop: None,
        },
        app: spec.app.clone(),
        log,
        services,
    };
    let mut store = Store::new(spec.engine, state);
    store.limiter(|s| &mut s.budget);
    store.epoch_deadline_callback(|mut ctx| Ok(ctx.data_mut().timing.on_epoch()));
    store.set_epoch_deadline(ticks(cpu.min(wall)));
    if let Some(fuel) = spec.limits.fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| GuestError::Setup(format!("{:#}", anyhow::Error::from(e))))?;
    }
    Ok(store)
}

fn oom_or(store: &Store<GuestState>, limits: &Limits, other: &str) -> GuestError {
    if store.data().budget.memory_denied {
        out_of_memory(store, limits)
    } else {
        GuestError::Malformed(other.to_owned())
    }
}

fn out_of_memory(store: &Store<GuestState>, limits: &Limits) -> GuestError {
    GuestError::OutOfMemory {
        limit: limits.memory,
        wanted: store.data().budget.memory_wanted as u64,
    }
}

/// Sorts a wasmtime error into what happened, for the status code and the log.
fn classify(err: wasmtime::Error, store: &Store<GuestState>, limits: &Limits) -> GuestError {
    let timing = &store.data().timing;
    match timing.stop {
        Some(Stop::Cpu(used)) => {
            return GuestError::CpuTime {
                limit: timing.cpu_limit,
                used,
            };
        }
        Some(Stop::Wall(elapsed)) => {
            return GuestError::WallTime {
                limit: timing.wall_limit,
                elapsed,
            };
        }
        None => {}
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => GuestError::CpuTime {
                limit: timing.cpu_limit,
                used: timing.started.elapsed().saturating_sub(timing.waited),
            },
            Trap::OutOfFuel => GuestError::Fuel {
                limit: limits.fuel.unwrap_or(0),
            },
            Trap::StackOverflow => GuestError::StackOverflow {
                limit: MAX_WASM_STACK,
            },
            // A Rust guest aborts (unreachable) when its allocator fails; if
            // the limiter refused growth, that is what happened.
            _ if store.data().budget.memory_denied => out_of_memory(store, limits),
            other => GuestError::Trap(other.to_string()),
        };
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return GuestError::Exit(exit.0);
    }
    let text = format!("{:#}", anyhow::Error::from(err));
    if text.contains("maximum concurrent") {
        return GuestError::Busy;
    }
    if store.data().budget.memory_denied || text.contains("exceeds memory limits") {
        return out_of_memory(store, limits);
    }
    GuestError::Trap(text)
}

/// Whether a module may import `module::name` under these grants; the error
/// names the import and why it is refused.
fn check_import(module: &str, name: &str, grants: &Grants) -> Result<(), String> {
    match module {
        WASI_MODULE => match DENIED_WASI_PREFIXES.iter().find(|p| name.starts_with(*p)) {
            Some(_) => Err(format!(
                "imports `{module}::{name}`, which is never granted: guests get no sockets"
            )),
            // Other WASI names are checked by linking, whose error names them.
            None => Ok(()),
        },
        HOST_MODULE => match imports::host_function(name) {
            None => Err(format!(
                "imports `{module}::{name}`, which this host does not provide (it provides: {})",
                HOST_FUNCTIONS
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(f) if !grants.host.contains(f.grant) => Err(format!(
                "imports `{module}::{name}`, which is not granted to this app \
                 (add \"{}\" to its grants.host)",
                f.grant
            )),
            Some(_) => Ok(()),
        },
        _ => Err(format!(
            "imports `{module}::{name}`, but only `{WASI_MODULE}` and `{HOST_MODULE}` imports are provided"
        )),
    }
}

/// Reads an app's error page, refusing one over `MAX_ERROR_PAGE`.
fn read_error_page(path: &Path) -> Result<ErrorPage, LoadError> {
    let err = |reason: String| LoadError::ErrorPage {
        path: path.to_owned(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut body = Vec::new();
    file.take(MAX_ERROR_PAGE + 1)
        .read_to_end(&mut body)
        .map_err(|e| err(e.to_string()))?;
    if body.len() as u64 > MAX_ERROR_PAGE {
        return Err(err(format!(
            "larger than the limit of {MAX_ERROR_PAGE} bytes"
        )));
    }
    let content_type = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("text/plain")
        .to_owned();
    let content_type = if content_type.starts_with("text/") {
        format!("{content_type}; charset=utf-8")
    } else {
        content_type
    };
    Ok(ErrorPage { content_type, body })
}

/// Writes a request's captured output to the log, one line each, tagged with the app.
fn flush_log(store: &Store<GuestState>) {
    let state = store.data();
    let (kept, dropped) = state.log.take();
    if !kept.is_empty() {
        for line in String::from_utf8_lossy(&kept).lines() {
            tracing::info!(target: "guest", app = %state.app, "{line}");
        }
    }
    if dropped > 0 {
        tracing::warn!(target: "guest", app = %state.app, dropped, "guest output over its per-request limit was dropped");
    }
}

/// `wasmhost.log(level, ptr, len)`: a log line from the guest.
fn host_log(
    mut caller: Caller<'_, GuestState>,
    level: i32,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<()> {
    let Some(memory) = caller
        .get_export(exports::MEMORY.name)
        .and_then(|e| e.into_memory())
    else {
        return Ok(());
    };
    let (data, state) = memory.data_and_store_mut(&mut caller);
    let start = ptr as u32 as usize;
    let Some(bytes) = start
        .checked_add(len as u32 as usize)
        .and_then(|end| data.get(start..end))
    else {
        wasmtime::bail!("wasmhost.log: range {start}+{len} is outside memory");
    };
    let prefix: &[u8] = match level {
        log_level::ERROR => b"ERROR ",
        log_level::WARN => b"WARN ",
        log_level::DEBUG => b"DEBUG ",
        _ => b"",
    };
    state.log.append(prefix);
    state.log.append(bytes);
    state.log.append(b"\n");
    Ok(())
}

/// Checks that `export` is there with the ABI's signature (`None`: a memory).
fn check_export(module: &Module, export: &Export) -> Result<(), String> {
    let Export { name, signature } = *export;
    let Some(ty) = module.get_export(name) else {
        return Err(format!("missing export `{name}`"));
    };
    match (ty, signature) {
        (ExternType::Memory(_), None) => Ok(()),
        (ExternType::Func(f), Some(expected)) => {
            let got = signature_of(&f);
            if got == expected {
                Ok(())
            } else {
                Err(format!(
                    "export `{name}` has type {got}, expected {expected}"
                ))
            }
        }
        (_, None) => Err(format!("export `{name}` is not a memory")),
        (_, Some(expected)) => Err(format!("export `{name}` is not a function {expected}")),
    }
}

fn signature_of(f: &FuncType) -> String {
    let params: Vec<String> = f.params().map(|p| p.to_string()).collect();
    let results: Vec<String> = f.results().map(|r| r.to_string()).collect();
    let results = match results.len() {
        0 => "()".to_owned(),
        1 => results[0].clone(),
        _ => format!("({})", results.join(", ")),
    };
    format!("({}) -> {}", params.join(", "), results)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of `wasmhost-abi` (whose own tests check its grants) is
    /// what the linker provides: every function, with its signature, and
    /// nothing else under `wasmhost`.
    #[test]
    fn the_linker_provides_exactly_the_abi_host_functions() {
        let flavor = flavor(1, false, None).unwrap();
        let app: Arc<str> = Arc::from("t");
        let spec = StoreSpec {
            engine: &flavor.engine,
            app: &app,
            limits: &Limits::default(),
            grants: &Grants::default(),
        };
        let second = Duration::from_secs(1);
        let mut store = new_store(spec, second, second, Default::default()).unwrap();
        for f in HOST_FUNCTIONS {
            let linked = flavor.linker.get(&mut store, HOST_MODULE, f.name);
            let Ok(wasmtime::Extern::Func(func)) = linked else {
                panic!("{} is not linked as a function", f.name);
            };
            assert_eq!(signature_of(&func.ty(&store)), f.signature, "{}", f.name);
        }
        let linked: Vec<String> = flavor
            .linker
            .iter(&mut store)
            .filter(|(module, _, _)| *module == HOST_MODULE)
            .map(|(_, name, _)| name.to_owned())
            .collect();
        assert_eq!(linked.len(), HOST_FUNCTIONS.len(), "{linked:?}");
    }

    #[test]
    fn imports_are_checked_against_the_grants() {
        let default = Grants::default();
        let none = Grants {
            host: Default::default(),
            ..Grants::default()
        };
        // (module, name, grants, Ok or a piece of the error)
        let table: [(&str, &str, &Grants, Result<(), &str>); 6] = [
            (WASI_MODULE, "fd_write", &none, Ok(())),
            (WASI_MODULE, "sock_accept", &default, Err("never granted")),
            (HOST_MODULE, "log", &default, Ok(())),
            (
                HOST_MODULE,
                "log",
                &none,
                Err("add \"log\" to its grants.host"),
            ),
            (HOST_MODULE, "nope", &default, Err("does not provide")),
            ("env", "f", &default, Err("only `wasi_snapshot_preview1`")),
        ];
        for (module, name, grants, want) in table {
            match (check_import(module, name, grants), want) {
                (Ok(()), Ok(())) => {}
                (Err(e), Err(piece)) => {
                    assert!(e.contains(piece), "{module}::{name}: {e}");
                    assert!(e.contains(&format!("`{module}::{name}`")), "{e}");
                }
                (got, _) => panic!("{module}::{name}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_load_error_is_one_line_whatever_its_reason() {
        let path = PathBuf::from("app.wasm");
        let reason = "magic header not detected: expected=[\n    0x0,\n] actual=[\n    0x7f,\n]";
        let errors = [
            LoadError::Compile {
                path: path.clone(),
                reason: reason.to_owned(),
            },
            LoadError::Abi {
                path: path.clone(),
                reason: reason.to_owned(),
            },
            LoadError::NotWasm {
                path,
                reason: load_message::not_a_core_module(b"\x7fELF").unwrap_or_default(),
            },
            LoadError::Engine(reason.to_owned()),
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains(['\n', '\r']), "{text:?}");
        }
    }

    #[test]
    fn the_epoch_callback_stops_at_the_nearer_budget() {
        let mut t = Timing {
            started: Instant::now() - Duration::from_millis(50),
            wall_limit: Duration::from_secs(10),
            cpu_limit: Duration::from_millis(40),
            waited: Duration::ZERO,
            stop: None,
        };
        assert!(matches!(t.on_epoch(), UpdateDeadline::Interrupt));
        assert!(matches!(t.stop, Some(Stop::Cpu(_))));
        // Time asleep is not running time.
        t.stop = None;
        t.waited = Duration::from_millis(45);
        assert!(matches!(t.on_epoch(), UpdateDeadline::Continue(n) if n >= 1));
        assert!(t.stop.is_none());
        // The wall limit counts sleeping too.
        t.wall_limit = Duration::from_millis(45);
        assert!(matches!(t.on_epoch(), UpdateDeadline::Interrupt));
        assert!(matches!(t.stop, Some(Stop::Wall(_))));
    }
}
