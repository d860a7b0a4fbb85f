//! The executor of `wasi:http` components: their store, their linker (all of WASI 0.2 and `wasi:http`), loading one, and running one request on a fresh instance.
//!
//! A component gets the same budgets as a core module (`Budget`, `Timing`,
//! fuel, the log sink) and the same grants, enforced at run time: the
//! linker provides every WASI 0.2 interface because real toolchains import
//! far more than they use (`docs/components.md`), and what is not granted
//! is simply absent from the context (no directory, no environment, no
//! sockets, outbound HTTP only to the granted origins).

mod invoke;
mod keyvalue;
mod load;
mod outbound;
mod request;

pub use invoke::{ComponentReply, Head, Incoming, StartStream};
pub use outbound::MAX_OUTBOUND_RESPONSE;
pub use request::{HEADER_PREFIX, RouteHeaders};

use super::*;

use wasmtime::component::{Linker as ComponentLinker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// A component pre-linked against the host's WASI and `wasi:http`; built
/// once per loaded version.
pub(super) type Pre = ProxyPre<ComponentState>;

/// The linker of components: every WASI 0.2 interface and `wasi:http`.
pub(super) type Linker = ComponentLinker<ComponentState>;

/// What a component's store carries for one request.
pub struct ComponentState {
    /// WASI 0.2 with only what the app is granted.
    wasi: WasiCtx,
    /// `wasi:http`'s own state (header size limits).
    http: WasiHttpCtx,
    /// The component's resources (requests, bodies, streams, pollables).
    table: ResourceTable,
    /// The outbound policy and the host's header rules.
    hooks: outbound::Hooks,
    /// Memory, table and instance limits for this request.
    budget: Budget,
    /// The request's time budgets.
    timing: Timing,
    /// The app, to tag log lines.
    app: Arc<str>,
    /// Captured stdout and stderr.
    log: LogSink,
    /// The app's storage, if granted (`wasi:keyvalue`).
    kv: keyvalue::Granted,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The component linker of an engine: WASI 0.2 (async bindings: requests
/// run on the worker's own single-threaded runtime) and `wasi:http`.
pub(super) fn linker(engine: &Engine) -> wasmtime::Result<Linker> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    keyvalue::add_to_linker(&mut linker, |s: &mut ComponentState| keyvalue::Kv {
        granted: &s.kv,
        table: &mut s.table,
    })?;
    Ok(linker)
}

/// A store for one component request (or the load probe): WASI with only
/// what the app is granted, its limiter, time budgets and fuel.
fn new_store(
    engine: &Engine,
    app: &Arc<str>,
    limits: &Limits,
    grants: &Grants,
    kv: keyvalue::Granted,
    cpu: Duration,
    wall: Duration,
) -> Result<Store<ComponentState>, GuestError> {
    let timing = Timing::new(wall, cpu);
    let log = LogSink::new(usize::try_from(limits.log_output).unwrap_or(usize::MAX));
    let mut builder = WasiCtxBuilder::new();
    // Sockets are refused by the builder's defaults (no address is allowed,
    // no name lookup); only granted directories and variables are added.
    // File reads run inline on the worker (not on a blocking pool of the
    // runtime's): set before the preopen, which captures it.
    builder
        .allow_blocking_current_thread(true)
        .stdout(log.clone())
        .stderr(log.clone())
        .monotonic_clock(poll::GuestClock(timing.started));
    store::grant_context(&mut builder, grants)?;
    let state = ComponentState {
        wasi: builder.build(),
        http: WasiHttpCtx::new(),
        table: ResourceTable::new(),
        hooks: outbound::Hooks::new(grants, limits),
        budget: Budget::new(
            usize::try_from(limits.memory).unwrap_or(usize::MAX),
            COMPONENT_COUNTS,
        ),
        timing,
        app: app.clone(),
        log,
        kv,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.budget);
    store.epoch_deadline_callback(|mut ctx| Ok(ctx.data_mut().timing.on_epoch()));
    store.set_epoch_deadline(ticks(cpu.min(wall)));
    if let Some(fuel) = limits.fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| GuestError::Setup(format!("{:#}", anyhow::Error::from(e))))?;
    }
    Ok(store)
}

/// Writes a component request's captured output to the log.
fn flush_log(state: &ComponentState) {
    store::flush_sink(&state.log, &state.app);
}
