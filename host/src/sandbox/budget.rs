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
    /// Why the guest was stopped, if it was stopped for time.
    pub(super) stop: Option<Stop>,
}

/// A time budget that ran out, and the figure reached.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stop {
    /// Guest running time reached.
    Cpu(Duration),
    /// Wall time reached.
    Wall(Duration),
}

impl Timing {
    /// Called when the epoch deadline passes: stop the guest if a budget is
    /// spent, or else sleep until the nearer one could be.
    pub(super) fn on_epoch(&mut self) -> UpdateDeadline {
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
pub(super) fn ticks(d: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    u64::try_from(d.as_micros().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// The resource limiter of one store: the app's memory ceiling, recording
/// whether the guest hit it and how high it went.
pub(super) struct Budget {
    pub(super) memory_limit: usize,
    pub(super) peak_memory: usize,
    pub(super) memory_denied: bool,
    /// The size the guest asked for when it was refused.
    pub(super) memory_wanted: usize,
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
pub(super) const MAX_TABLE_ELEMENTS: usize = 100_000;
