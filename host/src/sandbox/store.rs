//! One request's store: the WASI context with only what the app is granted, its budgets and host services, and the guest's log.

use super::*;

/// What a store carries for the duration of one request.
pub struct GuestState {
    /// WASI preview 1: clocks, random, stdout/stderr into `log`.
    pub(super) wasi: WasiP1Ctx,
    /// Memory and table limits for this request.
    pub(super) budget: Budget,
    /// The request's time budgets and where it stands against them.
    pub(super) timing: Timing,
    /// The app, to tag log lines.
    pub(super) app: Arc<str>,
    /// Captured output (stdout, stderr, `wasmhost.log`).
    pub(super) log: LogSink,
    /// Storage and sessions as granted, and what the guest asked of them.
    pub(super) services: services::RequestServices,
}

/// What a store is made for: the engine, and the app's name, limits and grants.
#[derive(Clone, Copy)]
pub(super) struct StoreSpec<'a> {
    pub(super) engine: &'a Engine,
    pub(super) app: &'a Arc<str>,
    pub(super) limits: &'a Limits,
    pub(super) grants: &'a Grants,
}

/// A store: a WASI context with only what the app is granted, its memory
/// limiter, its time budgets and the host services it may reach.
pub(super) fn new_store(
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
    grant_context(&mut builder, spec.grants)?;
    let budget = Budget::new(
        usize::try_from(spec.limits.memory).unwrap_or(usize::MAX),
        CORE_COUNTS,
    );
    let state = GuestState {
        wasi: builder.build_p1(),
        budget,
        timing: Timing {
            started,
            wall_limit: wall,
            cpu_limit: cpu,
            waited: Duration::ZERO,
            idle: Arc::default(),
            stop: None,
            inline: None,
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

/// Adds what the grants give a guest's WASI context (core module or
/// component): its environment variables and its read-only directory.
pub(super) fn grant_context(
    builder: &mut WasiCtxBuilder,
    grants: &Grants,
) -> Result<(), GuestError> {
    if !grants.env.is_empty() {
        let env: Vec<(&str, &str)> = grants
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        builder.envs(&env);
    }
    if let Some(dir) = &grants.dir {
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
    Ok(())
}

/// Writes a request's captured output to the log, one line each, tagged with the app.
pub(super) fn flush_log(store: &Store<GuestState>) {
    let state = store.data();
    flush_sink(&state.log, &state.app);
}

/// Writes what a sink captured to the log, one line each, tagged with `app`.
pub(super) fn flush_sink(log: &LogSink, app: &str) {
    let (kept, dropped) = log.take();
    if !kept.is_empty() {
        for line in String::from_utf8_lossy(&kept).lines() {
            tracing::info!(target: "guest", app = %app, "{line}");
        }
    }
    if dropped > 0 {
        tracing::warn!(target: "guest", app = %app, dropped, "guest output over its per-request limit was dropped");
    }
}

/// `wasmhost.log(level, ptr, len)`: a log line from the guest.
pub(super) fn host_log(
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
