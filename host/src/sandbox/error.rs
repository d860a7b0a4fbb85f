//! Why a guest call or a module load failed, the figures of a call, and how a wasmtime error is classified into a limit or a trap.

use super::*;

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
    /// Linear memory the instance started with (a snapshot's size for a
    /// pre-initialized module; 0 for a component): above it, `peak_memory`
    /// is what the request grew, which costs the pool two `mprotect` calls.
    pub initial_memory: usize,
}

pub(super) fn oom_or(store: &Store<GuestState>, limits: &Limits, other: &str) -> GuestError {
    if store.data().budget.memory_denied {
        out_of_memory(&store.data().budget, limits)
    } else {
        GuestError::Malformed(other.to_owned())
    }
}

pub(super) fn out_of_memory(budget: &Budget, limits: &Limits) -> GuestError {
    GuestError::OutOfMemory {
        limit: limits.memory,
        wanted: budget.memory_wanted as u64,
    }
}

/// Sorts a wasmtime error into what happened, for the status code and the log.
pub(super) fn classify(
    err: wasmtime::Error,
    store: &Store<GuestState>,
    limits: &Limits,
) -> GuestError {
    let state = store.data();
    classify_parts(err, &state.timing, &state.budget, limits)
}

/// As [`classify`], from a store's budgets, whatever kind of guest it runs.
pub(super) fn classify_parts(
    err: wasmtime::Error,
    timing: &Timing,
    budget: &Budget,
    limits: &Limits,
) -> GuestError {
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
        // The caller (`inline`) looks at the stop itself and drops this error.
        Some(Stop::Moved) | None => {}
    }
    if let Some(trap) = err.downcast_ref::<Trap>() {
        return match trap {
            Trap::Interrupt => GuestError::CpuTime {
                limit: timing.cpu_limit,
                used: timing.started.elapsed().saturating_sub(timing.waited()),
            },
            Trap::OutOfFuel => GuestError::Fuel {
                limit: limits.fuel.unwrap_or(0),
            },
            Trap::StackOverflow => GuestError::StackOverflow {
                limit: MAX_WASM_STACK,
            },
            // A Rust guest aborts (unreachable) when its allocator fails; if
            // the limiter refused growth, that is what happened.
            _ if budget.memory_denied => out_of_memory(budget, limits),
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
    if budget.memory_denied || text.contains("exceeds memory limits") {
        return out_of_memory(budget, limits);
    }
    GuestError::Trap(text)
}
