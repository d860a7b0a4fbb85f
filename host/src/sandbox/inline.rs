//! Running a short request on the calling thread (the event loop) and giving it up the moment it would block or run long, so that it can run again, whole, on a worker.
//!
//! Only a guest whose run has no effect outside its instance may try this:
//! a core module with no storage, no sessions and no directory (`may_try`).
//! Such a guest can only compute, read its request, its clocks and its
//! randomness, and sleep; so a run given up half-way left nothing behind,
//! and running the request again from the start on a worker is the same
//! request. An attempt is given up ("moved") when the guest sleeps (any
//! `poll_oneoff` that would wait) or when it has run [`INLINE_BUDGET`]; its
//! captured output is dropped with it. A version whose request moved, or
//! whose last [`INLINE_STRIKES`] runs each took [`INLINE_SLOW`] or more, runs
//! its next [`INLINE_RETRY_AFTER`] requests on workers at once, so that a
//! slow app costs the loop one budget now and then, not on every request
//! (docs/ARCHITECTURE.md, "Execution model").

use super::*;

/// Most CPU time a guest uses on the event loop before its request moves to
/// a worker: a hello answers in about 10 µs, and every other connection of
/// the loop waits while a guest runs there. The epoch callback that checks
/// it fires on the engine's ticks, so the loop waits at most this plus one
/// [`EPOCH_TICK`]. CPU time of the loop's thread, not wall time: a loop
/// preempted by other threads is not the guest's doing.
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// Requests of a version that go straight to workers after one of its
/// requests moved: bounds the loop time a slow or sleeping app can waste to
/// one budget per this many of its requests.
pub const INLINE_RETRY_AFTER: u32 = 1000;

/// A run on the loop that used at least this much of the loop thread's CPU
/// time is slow, though within the budget:
/// requests of an app that each take nearly the budget would keep every
/// other connection of the loop waiting in turn.
pub const INLINE_SLOW: Duration = Duration::from_micros(250);

/// Slow runs in a row after which a version's requests go to workers (for
/// the next `INLINE_RETRY_AFTER`): one slow run is more often the machine
/// (a preempted thread, a first page fault) than the guest.
pub const INLINE_STRIKES: u32 = 3;

/// Whether a version's requests try the event loop first: one per version.
#[derive(Debug, Default)]
pub(super) struct InlineState {
    /// Requests left to send straight to workers (after a move).
    skip: AtomicU32,
    /// Slow runs in a row (`INLINE_SLOW`).
    strikes: AtomicU32,
}

/// What became of a request tried on the calling thread.
pub enum Inline {
    /// It ran to its end there (an answer or a failure).
    Ran(Result<GuestResponse, GuestError>, CallStats),
    /// It was given up before its end, with nothing left behind: run it on a worker.
    Moved,
}

impl InlineState {
    /// Whether the next request may try the loop (and counts it if not).
    fn take(&self) -> bool {
        let mut left = self.skip.load(Ordering::Relaxed);
        while left > 0 {
            match self.skip.compare_exchange_weak(
                left,
                left - 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return false,
                Err(now) => left = now,
            }
        }
        true
    }

    /// A request was given up on the loop.
    fn moved(&self) {
        self.strikes.store(0, Ordering::Relaxed);
        self.skip.store(INLINE_RETRY_AFTER, Ordering::Relaxed);
    }

    /// A run on the loop ended after `took`: the `INLINE_STRIKES`th slow one
    /// in a row sends the next requests to workers.
    fn ran_for(&self, took: Duration) {
        if took < INLINE_SLOW {
            self.strikes.store(0, Ordering::Relaxed);
        } else if self.strikes.fetch_add(1, Ordering::Relaxed) + 1 >= INLINE_STRIKES {
            self.strikes.store(0, Ordering::Relaxed);
            self.skip.store(INLINE_RETRY_AFTER, Ordering::Relaxed);
        }
    }
}

impl GuestModule {
    /// Whether this version's requests may try the calling thread: a core
    /// module that reaches nothing outside its instance, and not within
    /// [`INLINE_RETRY_AFTER`] requests of a move or of slow runs.
    pub fn may_try_inline(&self) -> bool {
        self.inline_capable() && self.inline.take()
    }

    /// A core module with no storage, no sessions and no directory: its run
    /// leaves nothing outside its instance.
    fn inline_capable(&self) -> bool {
        matches!(self.kind, Kind::Core { .. })
            && self.grants.dir.is_none()
            && !self.grants.host.contains(GRANT_STORAGE)
            && !self.grants.host.contains(GRANT_SESSIONS)
    }
}

impl Runtime {
    /// Runs one request on a fresh instance on the calling thread, or gives
    /// it up ([`Inline::Moved`]) as soon as the guest would sleep or has run
    /// [`INLINE_BUDGET`]. The caller checked [`GuestModule::may_try_inline`].
    pub fn invoke_inline(&self, guest: &GuestModule, meta: &[u8], body: &[u8]) -> Inline {
        debug_assert!(guest.inline_capable());
        let mut stats = CallStats::default();
        let limits = &guest.limits;
        let started = Instant::now();
        let cpu_from = thread_cpu();
        let mut store = match self.new_store(guest, limits.cpu_time, limits.wall_time, false) {
            Ok(store) => store,
            Err(e) => return Inline::Ran(Err(e), stats),
        };
        store.data_mut().timing.inline = Some(cpu_from);
        // The callback then checks the budget on every tick.
        store.set_epoch_deadline(1);
        let result = self.invoke_in(guest, &mut store, meta, body, &mut stats, started);
        if matches!(store.data().timing.stop, Some(Stop::Moved)) {
            // Its output goes with it: the run on the worker writes its own.
            guest.inline.moved();
            return Inline::Moved;
        }
        guest.inline.ran_for(thread_cpu().saturating_sub(cpu_from));
        stats.peak_memory = stats.peak_memory.max(store.data().budget.peak_memory);
        flush_log(&store);
        Inline::Ran(result, stats)
    }
}

/// CPU time the calling thread has used.
pub(super) fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_store_moves_once_it_has_used_its_budget_of_cpu_and_not_before() {
        let mut timing = Timing::new(Duration::from_secs(5), Duration::from_secs(5));
        timing.inline = Some(thread_cpu());
        assert!(matches!(timing.on_epoch(), UpdateDeadline::Continue(1)));
        assert!(timing.stop.is_none());
        // Asleep, the thread uses no CPU: wall time alone never moves it.
        std::thread::sleep(INLINE_BUDGET * 3);
        assert!(matches!(timing.on_epoch(), UpdateDeadline::Continue(1)));
        let from = thread_cpu();
        while thread_cpu().saturating_sub(from) < INLINE_BUDGET {
            std::hint::black_box(0u64);
        }
        assert!(matches!(timing.on_epoch(), UpdateDeadline::Interrupt));
        assert!(matches!(timing.stop, Some(Stop::Moved)));
    }

    #[test]
    fn a_store_that_is_not_inline_never_moves() {
        let mut timing = Timing::new(Duration::from_secs(5), Duration::from_secs(5));
        let from = thread_cpu();
        while thread_cpu().saturating_sub(from) < INLINE_BUDGET * 2 {
            std::hint::black_box(0u64);
        }
        assert!(matches!(timing.on_epoch(), UpdateDeadline::Continue(_)));
        assert!(timing.stop.is_none());
    }

    #[test]
    fn a_move_sends_the_next_requests_of_its_version_to_workers_then_they_try_again() {
        let state = InlineState::default();
        assert!(state.take());
        state.moved();
        let tried = (0..INLINE_RETRY_AFTER + 1).filter(|_| state.take()).count();
        assert_eq!(tried, 1, "only the request after the retry window tries");
    }

    #[test]
    fn only_slow_runs_in_a_row_send_a_version_to_workers() {
        let state = InlineState::default();
        let slow = INLINE_SLOW * 2;
        for _ in 0..10 {
            for _ in 1..INLINE_STRIKES {
                state.ran_for(slow);
            }
            state.ran_for(INLINE_SLOW / 10);
        }
        assert!(state.take(), "a fast run between slow ones resets them");
        for _ in 0..INLINE_STRIKES {
            state.ran_for(slow);
        }
        assert!(!state.take(), "slow runs in a row send it to workers");
    }
}
