//! Running guests: one wasmtime engine, modules checked against the ABI at load, a fresh instance per request.

pub mod abi;
pub mod log_sink;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::{
    Caller, Config, Enabled, Engine, ExternType, FuncType, InstanceAllocationStrategy, InstancePre,
    Linker, Module, PoolingAllocationConfig, ResourceLimiter, Store, Trap,
};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::config::Limits;
use abi::{ABI_VERSION, GuestResponse, LEN_PREFIX};
use log_sink::LogSink;

/// How often the shared ticker advances the engine's epoch; CPU deadlines are
/// counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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

/// The import modules a guest may use; anything else is refused at load.
const WASI_MODULE: &str = "wasi_snapshot_preview1";
const HOST_MODULE: &str = "wasmhost";

/// What a store carries for the duration of one request.
pub struct GuestState {
    /// WASI preview 1: clocks, random, stdout/stderr into `log`.
    wasi: WasiP1Ctx,
    /// Memory and table limits for this request.
    budget: Budget,
    /// The app, to tag log lines.
    app: Arc<str>,
    /// Captured output (stdout, stderr, `wasmhost.log`).
    log: LogSink,
}

/// The resource limiter of one store: the app's memory ceiling, recording
/// whether the guest hit it and how high it went.
struct Budget {
    memory_limit: usize,
    peak_memory: usize,
    memory_denied: bool,
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

/// Why a guest failed to produce a response. `status.rs` maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("CPU time limit of {0:?} exceeded")]
    Deadline(Duration),
    #[error("memory limit of {limit} bytes reached")]
    OutOfMemory { limit: u64 },
    #[error("trap: {0}")]
    Trap(String),
    #[error("guest exited with status {0}")]
    Exit(i32),
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("response of {len} bytes exceeds the limit of {limit}")]
    ResponseTooLarge { len: u64, limit: u64 },
    #[error("no instance slot free")]
    Busy,
}

/// Why a module could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid WebAssembly module: {reason}")]
    Compile { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Abi { path: PathBuf, reason: String },
}

/// Figures from one guest call, for the access log.
#[derive(Debug, Default, Clone, Copy)]
pub struct CallStats {
    pub instantiate: Duration,
    pub run: Duration,
    pub peak_memory: usize,
}

/// The engine and everything shared by all modules.
pub struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
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
}

impl Runtime {
    /// Builds the engine (pooling allocator, epoch interruption) and the linker,
    /// and starts the shared epoch ticker. `max_instances` bounds concurrent instances.
    pub fn new(max_instances: u32) -> anyhow::Result<Runtime> {
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
            .max_wasm_stack(MAX_WASM_STACK)
            .memory_init_cow(true);
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;

        let mut linker: Linker<GuestState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut GuestState| &mut s.wasi)?;
        linker.func_wrap(HOST_MODULE, "log", host_log)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new()
                .name("epoch-ticker".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })?
        };
        Ok(Runtime {
            engine,
            linker,
            ticker_stop,
            ticker: Some(ticker),
        })
    }

    /// Compiles a module, checks its imports and exports against the ABI,
    /// instantiates it once and checks the version it declares.
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
        let abi_err = |reason: String| LoadError::Abi {
            path: path.to_owned(),
            reason,
        };
        let module = Module::from_binary(&self.engine, bytes).map_err(|e| LoadError::Compile {
            path: path.to_owned(),
            reason: format!("{:#}", anyhow::Error::from(e)),
        })?;
        // Names inside the two allowed modules are checked by linking below,
        // whose error names the missing import.
        if let Some(import) = module
            .imports()
            .find(|i| i.module() != WASI_MODULE && i.module() != HOST_MODULE)
        {
            return Err(abi_err(format!(
                "imports `{}::{}`, but only `{WASI_MODULE}` and `{HOST_MODULE}` imports are provided",
                import.module(),
                import.name()
            )));
        }
        check_export(&module, "memory", None).map_err(abi_err)?;
        check_export(&module, "wasmhost_abi_version", Some("() -> i32")).map_err(abi_err)?;
        check_export(&module, "wasmhost_alloc", Some("(i32) -> i32")).map_err(abi_err)?;
        check_export(&module, "wasmhost_handle", Some("(i32, i32) -> i64")).map_err(abi_err)?;
        let has_initialize = match module.get_export("_initialize") {
            None => false,
            Some(_) => {
                check_export(&module, "_initialize", Some("() -> ()")).map_err(abi_err)?;
                true
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| abi_err(format!("cannot link: {:#}", anyhow::Error::from(e))))?;
        let guest = GuestModule {
            app: Arc::from(app),
            path: path.to_owned(),
            pre,
            has_initialize,
            limits,
        };
        let version = self
            .probe_version(&guest)
            .map_err(|e| abi_err(format!("failed at start-up: {e}")))?;
        if version != ABI_VERSION {
            return Err(abi_err(format!(
                "declares ABI version {version}, but this host implements version {ABI_VERSION}"
            )));
        }
        Ok(guest)
    }

    fn probe_version(&self, guest: &GuestModule) -> Result<i32, GuestError> {
        let mut store = self.new_store(guest, LOAD_CPU_BUDGET);
        let instance = guest
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store, guest))?;
        if guest.has_initialize {
            let init = instance
                .get_typed_func::<(), ()>(&mut store, "_initialize")
                .map_err(|e| classify(e, &store, guest))?;
            init.call(&mut store, ())
                .map_err(|e| classify(e, &store, guest))?;
        }
        let f = instance
            .get_typed_func::<(), i32>(&mut store, "wasmhost_abi_version")
            .map_err(|e| classify(e, &store, guest))?;
        let version = f
            .call(&mut store, ())
            .map_err(|e| classify(e, &store, guest));
        flush_log(&store);
        version
    }

    fn new_store(&self, guest: &GuestModule, cpu: Duration) -> Store<GuestState> {
        let log = LogSink::new(usize::try_from(guest.limits.log_output).unwrap_or(usize::MAX));
        let wasi = WasiCtxBuilder::new()
            .stdout(log.clone())
            .stderr(log.clone())
            .build_p1();
        let budget = Budget {
            memory_limit: usize::try_from(guest.limits.memory).unwrap_or(usize::MAX),
            peak_memory: 0,
            memory_denied: false,
        };
        let state = GuestState {
            wasi,
            budget,
            app: guest.app.clone(),
            log,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.budget);
        let ticks = cpu.as_millis().div_ceil(EPOCH_TICK.as_millis()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store
    }

    /// Runs one request on a fresh instance. `meta` is the encoded request
    /// meta, `body` the request body.
    pub fn invoke(
        &self,
        guest: &GuestModule,
        meta: &[u8],
        body: &[u8],
    ) -> (Result<GuestResponse, GuestError>, CallStats) {
        let mut stats = CallStats::default();
        let started = Instant::now();
        let mut store = self.new_store(guest, guest.limits.cpu_time);
        let result = self.invoke_in(guest, &mut store, meta, body, &mut stats, started);
        stats.peak_memory = store.data().budget.peak_memory;
        flush_log(&store);
        (result, stats)
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
        let fail = |e: wasmtime::Error, store: &Store<GuestState>| classify(e, store, guest);
        let instance = guest
            .pre
            .instantiate(&mut *store)
            .map_err(|e| fail(e, store))?;
        stats.instantiate = started.elapsed();
        let run_started = Instant::now();
        let memory = instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| GuestError::Malformed("no memory export".into()))?;
        stats.peak_memory = memory.data_size(&*store);
        store.data_mut().budget.peak_memory = stats.peak_memory;
        if guest.has_initialize {
            let init = instance
                .get_typed_func::<(), ()>(&mut *store, "_initialize")
                .map_err(|e| fail(e, store))?;
            init.call(&mut *store, ()).map_err(|e| fail(e, store))?;
        }
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut *store, "wasmhost_alloc")
            .map_err(|e| fail(e, store))?;
        let handle = instance
            .get_typed_func::<(i32, i32), i64>(&mut *store, "wasmhost_handle")
            .map_err(|e| fail(e, store))?;

        let total = LEN_PREFIX + meta.len() + body.len();
        let total_i32 = i32::try_from(total)
            .map_err(|_| GuestError::Malformed("request too large for a 32-bit guest".into()))?;
        let ptr = alloc
            .call(&mut *store, total_i32)
            .map_err(|e| fail(e, store))?;
        if ptr == 0 {
            return Err(oom_or(store, guest, "wasmhost_alloc returned 0"));
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
            dest[..LEN_PREFIX].copy_from_slice(&(meta.len() as u32).to_le_bytes());
            dest[LEN_PREFIX..LEN_PREFIX + meta.len()].copy_from_slice(meta);
            dest[LEN_PREFIX + meta.len()..].copy_from_slice(body);
        }
        let packed = handle
            .call(&mut *store, (ptr, total_i32))
            .map_err(|e| fail(e, store))?;
        stats.run = run_started.elapsed();
        let resp_ptr = ((packed as u64) >> 32) as usize;
        let resp_len = (packed as u64 & 0xffff_ffff) as usize;
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

    /// The engine, for tools that compile modules.
    pub fn engine(&self) -> &Engine {
        &self.engine
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

fn oom_or(store: &Store<GuestState>, guest: &GuestModule, other: &str) -> GuestError {
    if store.data().budget.memory_denied {
        GuestError::OutOfMemory {
            limit: guest.limits.memory,
        }
    } else {
        GuestError::Malformed(other.to_owned())
    }
}

/// Sorts a wasmtime error into what happened, for the status code and the log.
fn classify(err: wasmtime::Error, store: &Store<GuestState>, guest: &GuestModule) -> GuestError {
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => GuestError::Deadline(guest.limits.cpu_time),
            // A Rust guest aborts (unreachable) when its allocator fails; if
            // the limiter refused growth, that is what happened.
            _ if store.data().budget.memory_denied => GuestError::OutOfMemory {
                limit: guest.limits.memory,
            },
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
        return GuestError::OutOfMemory {
            limit: guest.limits.memory,
        };
    }
    GuestError::Trap(text)
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
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
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
        0 => b"ERROR ",
        1 => b"WARN ",
        3 => b"DEBUG ",
        _ => b"",
    };
    state.log.append(prefix);
    state.log.append(bytes);
    state.log.append(b"\n");
    Ok(())
}

/// Checks that `name` is exported with this signature (`None`: a memory).
fn check_export(module: &Module, name: &str, signature: Option<&str>) -> Result<(), String> {
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
