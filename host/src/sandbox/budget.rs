//! A request's budgets: the epoch deadlines of `cpu_time` and `wall_time`, and the memory and table limiter.

use super::*;

/// How often the shared ticker advances the engine's epoch; CPU deadlines are
/// counted in these ticks.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The time budgets of one store. Epochs tick in wall time and are only
/// seen while Wasm runs, so the epoch callback (and `poll_oneoff`, the one
/// host call that blocks) compares against these instead of trusting ticks.
pub(super) struct Timing {
    /// When the store was created: wall time counts from here.
    pub(super) started: Instant,
    /// Longest the request may take, host calls included.
    pub(super) wall_limit: Duration,
    /// Longest the guest may run: wall time minus time spent sleeping.
    pub(super) cpu_limit: Duration,
    /// Time spent blocked in host calls (sleeping), not counted as running.
    pub(super) waited: Duration,
    /// Nanoseconds a component's request spent with its future pending (the
    /// guest blocked on a pollable), counted outside the store
    /// (`component::invoke`); always zero for core modules.
    pub(super) idle: Arc<AtomicU64>,
    /// Why the guest was stopped, if it was stopped for time.
    pub(super) stop: Option<Stop>,
    /// For a request on the event loop (`inline`), the thread's CPU time
    /// when it started: it is given up once it has used `INLINE_BUDGET` of
    /// it, or would sleep.
    pub(super) inline: Option<Duration>,
}

/// A time budget that ran out, and the figure reached.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stop {
    /// Guest running time reached.
    Cpu(Duration),
    /// Wall time reached.
    Wall(Duration),
    /// An attempt on the event loop was given up, to run again on a worker
    /// (`inline`): not a failure of the request.
    Moved,
}

impl Timing {
    /// Fresh budgets starting now.
    pub(super) fn new(wall_limit: Duration, cpu_limit: Duration) -> Timing {
        Timing {
            started: Instant::now(),
            wall_limit,
            cpu_limit,
            waited: Duration::ZERO,
            idle: Arc::default(),
            stop: None,
            inline: None,
        }
    }

    /// All time not spent running: sleeping in host calls and pending.
    pub(super) fn waited(&self) -> Duration {
        self.waited + Duration::from_nanos(self.idle.load(Ordering::Relaxed))
    }

    /// Called when the epoch deadline passes: stop the guest if a budget is
    /// spent, or else sleep until the nearer one could be.
    pub(super) fn on_epoch(&mut self) -> UpdateDeadline {
        let elapsed = self.started.elapsed();
        let running = elapsed.saturating_sub(self.waited());
        if let Some(from) = self.inline {
            if super::inline::thread_cpu().saturating_sub(from) >= super::inline::INLINE_BUDGET {
                self.stop = Some(Stop::Moved);
                return UpdateDeadline::Interrupt;
            }
            return UpdateDeadline::Continue(1);
        }
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
pub(super) fn ticks(d: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    u64::try_from(d.as_micros().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The resource limiter of one store: the app's memory ceiling over all of
/// the store's linear memories together, recording whether the guest hit it
/// and how high it went.
pub(super) struct Budget {
    pub(super) memory_limit: usize,
    pub(super) peak_memory: usize,
    pub(super) memory_denied: bool,
    /// The size the guest asked for when it was refused.
    pub(super) memory_wanted: usize,
    /// Bytes of all the store's memories now.
    memory_total: usize,
    /// Most instances, tables and memories the store may hold.
    counts: Counts,
}

/// Most instances, tables and memories of one store.
#[derive(Clone, Copy)]
pub(super) struct Counts {
    pub(super) instances: usize,
    pub(super) tables: usize,
    pub(super) memories: usize,
}

/// A core module: one instance, one table, one memory.
pub(super) const CORE_COUNTS: Counts = Counts {
    instances: 1,
    tables: 1,
    memories: 1,
};

/// A component: toolchains split one into several core modules (a
/// JavaScript or Python component has a dozen or more), each with a table
/// and perhaps a memory; these bound what one request can make.
pub(super) const COMPONENT_COUNTS: Counts = Counts {
    instances: 64,
    tables: 64,
    memories: 16,
};

impl Budget {
    pub(super) fn new(memory_limit: usize, counts: Counts) -> Budget {
        Budget {
            memory_limit,
            peak_memory: 0,
            memory_denied: false,
            memory_wanted: 0,
            memory_total: 0,
            counts,
        }
    }
}

impl ResourceLimiter for Budget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_total
            .saturating_sub(current)
            .saturating_add(desired);
        if total > self.memory_limit || maximum.is_some_and(|m| desired > m) {
            self.memory_denied = true;
            self.memory_wanted = self.memory_wanted.max(total);
            return Ok(false);
        }
        self.memory_total = total;
        self.peak_memory = self.peak_memory.max(total);
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
        self.counts.instances
    }
    fn tables(&self) -> usize {
        self.counts.tables
    }
    fn memories(&self) -> usize {
        self.counts.memories
    }
}

/// Most table elements a guest may have: function tables of real programs hold
/// a few thousand entries, an interpreter compiled to Wasm (a JavaScript or
/// Python component) tens of thousands.
pub(super) const MAX_TABLE_ELEMENTS: usize = 100_000;
