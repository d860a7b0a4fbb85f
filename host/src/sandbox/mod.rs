//! Running guests: one wasmtime engine, modules checked against the ABI at load, a fresh instance per request.

pub mod abi;
pub mod component;
pub mod load_message;
pub mod log_sink;
mod poll;
pub mod preinit;
pub mod services;

mod budget;
mod checks;
mod engine;
mod error;
mod inline;
mod invoke;
mod load;
mod pages;
mod store;
mod tier;

pub use engine::{MAX_WASM_STACK, Tier, WORKER_STACK};
pub use error::{CallStats, GuestError, LoadError};
pub use inline::{INLINE_BUDGET, INLINE_RETRY_AFTER, INLINE_SLOW, INLINE_STRIKES, Inline};
pub use pages::{ErrorPage, ErrorPages};
pub use store::GuestState;
pub use tier::TierHold;

// What the files below share; each of them imports `super::*`.
use budget::{
    Budget, COMPONENT_COUNTS, CORE_COUNTS, EPOCH_TICK, MAX_TABLE_ELEMENTS, Stop, Timing, ticks,
};
use checks::{check_export, check_import};
use engine::{Flavor, MODULE_CACHE_DIR, compile, flavor};
use error::{classify, classify_parts, oom_or};
use load::LOAD_CPU_BUDGET;
use pages::read_error_page;
use store::{StoreSpec, flush_log, host_log, new_store};
use tier::Tiered;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
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
    Linker, Module, PoolingAllocationConfig, ResourceLimiter, Store, Strategy, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::config::{AppConfig, Grants, Limits, MAX_ERROR_PAGE};
use abi::GuestResponse;
use log_sink::LogSink;

/// How often the shared ticker advances the engine's epoch; CPU deadlines are
/// counted in these ticks.
/// The grant names of `grants.host` and the default grants, defined with the
/// host functions in `wasmhost-abi`; `config.rs` reads them from here.
pub use wasmhost_abi::{DEFAULT_HOST_GRANTS, HOST_GRANTS};

/// The engines and everything shared by all modules.
pub struct Runtime {
    flavors: Arc<Flavors>,
    /// Instance slots of each engine's pool.
    max_instances: u32,
    /// The stores behind storage and sessions, set once at start.
    services: OnceLock<services::HostServices>,
    /// Where compiled modules are cached, if anywhere.
    cache: Option<PathBuf>,
    /// Whether a load of code not compiled before starts on the baseline
    /// tier (`sandbox/tier.rs`); off until [`Runtime::set_tiering`].
    tiering: AtomicBool,
    /// Code compiled optimized in this process.
    seen: Arc<tier::Seen>,
    /// The background compiles to the optimized tier.
    tier_up: tier::TierUp,
    ticker_stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

/// The engines: Cranelift without fuel, made at start, and the others
/// (fuel metering slows every guest compiled for it; Winch serves only new
/// versions) made when first needed.
struct Flavors {
    plain: Arc<Flavor>,
    /// Cranelift with fuel, Winch without, Winch with fuel.
    lazy: [OnceLock<Arc<Flavor>>; 3],
}

impl Flavors {
    /// Every engine made so far, for the epoch ticker.
    fn each(&self) -> impl Iterator<Item = &Flavor> {
        std::iter::once(&*self.plain).chain(self.lazy.iter().filter_map(|f| f.get().map(|f| &**f)))
    }
}

/// A module that passed the ABI checks, ready to instantiate per request.
pub struct GuestModule {
    /// The app's name, for logs.
    pub app: Arc<str>,
    /// The file it came from.
    pub path: PathBuf,
    /// What kind of guest it is, pre-linked on one tier or two: per request
    /// only instantiation remains.
    kind: Kind,
    /// The app's limits.
    pub limits: Limits,
    /// What the app's guests may use.
    pub grants: Grants,
    /// The app's own pages for its failures, by status.
    pub error_pages: ErrorPages,
    /// Whether its requests try the event loop first (`inline`).
    inline: inline::InlineState,
}

/// The two kinds of guest, each with its own executor.
enum Kind {
    /// A core module speaking the JSON ABI (`docs/abi.md`), run by `invoke`.
    Core {
        pre: Tiered<InstancePre<GuestState>>,
        /// Whether the module exports `_initialize` (a WASI reactor).
        has_initialize: bool,
    },
    /// A `wasi:http` component (`docs/components.md`), run by `component`.
    Component(Tiered<component::Pre>),
}

impl GuestModule {
    /// Whether this guest is a `wasi:http` component rather than a JSON-ABI module.
    pub fn is_component(&self) -> bool {
        matches!(self.kind, Kind::Component(_))
    }

    /// The compiler of the code new requests run on: `Baseline` for a new
    /// version until its optimized code is ready.
    pub fn tier(&self) -> Tier {
        match &self.kind {
            Kind::Core { pre, .. } => pre.tier(),
            Kind::Component(pre) => pre.tier(),
        }
    }

    /// The pre-linked module new requests run on and whether it exports
    /// `_initialize`, for a core module; a component is refused with the
    /// reason, for the caller's error.
    fn core(&self) -> Result<(&InstancePre<GuestState>, bool), GuestError> {
        self.core_where(|_| true)
    }

    /// As [`GuestModule::core`], the code compiled for `engine`: a request
    /// instantiates on the engine its store was made on, whichever tier is
    /// current by then.
    fn core_on(&self, engine: &Engine) -> Result<(&InstancePre<GuestState>, bool), GuestError> {
        self.core_where(|pre| Engine::same(pre.module().engine(), engine))
    }

    fn core_where(
        &self,
        matches: impl Fn(&InstancePre<GuestState>) -> bool,
    ) -> Result<(&InstancePre<GuestState>, bool), GuestError> {
        match &self.kind {
            Kind::Core {
                pre,
                has_initialize,
            } => match pre.find(matches) {
                Some(pre) => Ok((pre, *has_initialize)),
                None => Err(GuestError::Setup(
                    "no code of this module for the request's engine".to_owned(),
                )),
            },
            Kind::Component(_) => Err(GuestError::Setup(
                "a component is not called through the JSON ABI".to_owned(),
            )),
        }
    }
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
        let plain = flavor(max_instances, false, cache.as_deref(), Tier::Optimized)
            .map_err(anyhow::Error::from)?;
        let flavors = Arc::new(Flavors {
            plain: Arc::new(plain),
            lazy: Default::default(),
        });
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let flavors = flavors.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        for f in flavors.each() {
                            f.engine.increment_epoch();
                        }
                    }
                })?
        };
        Ok(Runtime {
            flavors,
            max_instances,
            services: OnceLock::new(),
            cache,
            tiering: AtomicBool::new(false),
            seen: Arc::default(),
            tier_up: tier::TierUp::start()?,
            ticker_stop,
            ticker: Some(ticker),
        })
    }

    /// Turns the baseline tier on or off for later loads: on, a load of code
    /// this process has not compiled before serves on Winch's code at once
    /// and moves to Cranelift's when the background compile is done. The
    /// supervisor turns it on once the start-up load is done (start-up
    /// compiles everything optimized, as before).
    pub fn set_tiering(&self, on: bool) {
        self.tiering.store(on, Ordering::Relaxed);
    }

    /// Background compiles to the optimized tier queued or running.
    pub fn tier_ups_pending(&self) -> u64 {
        self.tier_up.pending()
    }

    /// Gives the runtime its storage and session stores (once; later calls are ignored).
    pub fn set_services(&self, services: services::HostServices) {
        let _ = self.services.set(services);
    }

    /// The stores, if they were set.
    pub fn services(&self) -> Option<&services::HostServices> {
        self.services.get()
    }

    /// The host's sessions, if stores were set.
    pub fn sessions(&self) -> Option<&Arc<crate::sessions::Sessions>> {
        self.services.get().map(|s| &s.sessions)
    }

    /// The engine an app's code of `tier` runs on: a fuel-metered one if it
    /// has a fuel budget.
    fn flavor_for(&self, limits: &Limits, tier: Tier) -> Result<Arc<Flavor>, LoadError> {
        let fuel = limits.fuel.is_some();
        let slot = match (fuel, tier) {
            (false, Tier::Optimized) => return Ok(self.flavors.plain.clone()),
            (true, Tier::Optimized) => &self.flavors.lazy[0],
            (false, Tier::Baseline) => &self.flavors.lazy[1],
            (true, Tier::Baseline) => &self.flavors.lazy[2],
        };
        if let Some(f) = slot.get() {
            return Ok(f.clone());
        }
        let made = flavor(self.max_instances, fuel, self.cache.as_deref(), tier)
            .map_err(|e| LoadError::Engine(format!("{:#}", anyhow::Error::from(e))))?;
        // Two loads racing both build one; the loser's is dropped unused.
        let _ = slot.set(Arc::new(made));
        slot.get()
            .cloned()
            .ok_or_else(|| LoadError::Engine("engine vanished".into()))
    }

    /// The engine of apps without fuel, for tools that compile modules.
    pub fn engine(&self) -> &Engine {
        &self.flavors.plain.engine
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.tier_up.close();
        self.ticker_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::checks::signature_of;
    use super::*;

    /// The table of `wasmhost-abi` (whose own tests check its grants) is
    /// what the linker provides: every function, with its signature, and
    /// nothing else under `wasmhost`.
    #[test]
    fn the_linker_provides_exactly_the_abi_host_functions() {
        let flavor = flavor(1, false, None, Tier::Optimized).unwrap();
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
            idle: Arc::default(),
            stop: None,
            inline: None,
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
