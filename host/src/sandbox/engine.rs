//! The engines: two compilers (Winch's fast first tier, Cranelift's optimized code), pooling allocator, epoch interruption, optional fuel, the compiled-module cache, and compiling a module on them.

use super::*;

/// Subdirectory of the cache directory holding wasmtime's compiled modules;
/// pre-initialized modules sit beside it (`preinit::cache_path`).
pub(super) const MODULE_CACHE_DIR: &str = "modules";

/// Largest Wasm stack a guest may use; deep recursion traps with a stack
/// overflow beyond it. Worker threads get `WORKER_STACK` native stack to hold it.
pub const MAX_WASM_STACK: usize = 1024 * 1024;

/// Native stack for threads that run guests: wasmtime requires the native
/// stack to hold the Wasm stack plus host frames.
pub const WORKER_STACK: usize = 8 * 1024 * 1024;

/// The largest linear memory any app can be granted; per-app limits are
/// enforced below it by each store's limiter.
pub(super) const POOL_MAX_MEMORY: usize = 4 << 30;

/// Which compiler an engine uses. A version the host has never compiled
/// runs on `Baseline` code first, which compiles several times faster, while
/// `Optimized` code for it compiles in the background (`sandbox/tier.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Winch: a single-pass compiler, for the first seconds of a new version.
    Baseline,
    /// Cranelift: what every request runs on once it is ready.
    Optimized,
}

impl Tier {
    /// The name status reports and logs use.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Baseline => "baseline",
            Tier::Optimized => "optimized",
        }
    }
}

/// Bytes of each linear memory a pool slot keeps resident between
/// requests when the kernel has `PAGEMAP_SCAN` (Linux 6.7): only the pages a
/// request dirtied are reset, so a guest that touches a few hundred KiB per
/// request (the todo index) finds them mapped instead of faulting them in
/// again; +14% on the todo index, no change on hello (docs/BENCHMARKS.md).
/// It costs up to this much resident memory per warm slot.
const KEEP_RESIDENT_SCANNED: usize = 1 << 20;

/// The same without `PAGEMAP_SCAN`, where the whole resident part is reset
/// on every request: larger would cost every request that much `memset`.
const KEEP_RESIDENT_WIPED: usize = 64 * 1024;

/// An engine and its linker: modules compiled for one run only on it.
pub(super) struct Flavor {
    pub(super) engine: Engine,
    pub(super) linker: Linker<GuestState>,
    /// The linker of `wasi:http` components on the same engine.
    pub(super) components: component::Linker,
}

/// Core instances and tables the pool keeps per instance slot: a component
/// is several core modules; a core-module guest uses one of each.
const CORE_PER_SLOT: u32 = 4;

/// Linear memories per instance slot: most components have one, an
/// interpreter's two; each slot reserves `POOL_MAX_MEMORY` of address space.
const MEMORIES_PER_SLOT: u32 = 2;

/// Builds an engine (pooling allocator, epoch interruption, optionally fuel)
/// and its linker: WASI p1 with the host's own `poll_oneoff`, and `wasmhost`.
/// A `Baseline` engine compiles with Winch, allocates instances on demand
/// (its code serves only until the optimized code is ready, so it reserves
/// no pool of its own) and caches nothing.
pub(super) fn flavor(
    max_instances: u32,
    fuel: bool,
    cache: Option<&Path>,
    tier: Tier,
) -> wasmtime::Result<Flavor> {
    let mut pool = PoolingAllocationConfig::new();
    let cores = max_instances.saturating_mul(CORE_PER_SLOT);
    pool.total_component_instances(max_instances)
        .total_core_instances(cores)
        .total_memories(max_instances.saturating_mul(MEMORIES_PER_SLOT))
        .total_tables(cores)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(POOL_MAX_MEMORY)
        // With pagemap_scan the pool resets only the pages a request dirtied
        // instead of re-faulting the whole memory (docs/BENCHMARKS.md).
        .linear_memory_keep_resident(if PoolingAllocationConfig::is_pagemap_scan_available() {
            KEEP_RESIDENT_SCANNED
        } else {
            KEEP_RESIDENT_WIPED
        })
        .table_keep_resident(64 * 1024)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .consume_fuel(fuel)
        .max_wasm_stack(MAX_WASM_STACK)
        .memory_init_cow(true);
    match tier {
        Tier::Optimized => {
            config
                .strategy(Strategy::Cranelift)
                .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        Tier::Baseline => {
            config
                .strategy(Strategy::Winch)
                .allocation_strategy(InstanceAllocationStrategy::OnDemand);
        }
    }
    if let Some(dir) = cache.filter(|_| tier == Tier::Optimized) {
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
    let components = component::linker(&engine)?;
    Ok(Flavor {
        engine,
        linker,
        components,
    })
}

/// Compiles a module and checks its imports against the grants and its
/// exports against the ABI.
pub(super) fn compile(
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
