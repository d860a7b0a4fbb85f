//! Tiers: a version the host has never compiled serves on Winch's code as soon as that is ready, and its requests move to Cranelift's code when a background compile finishes; a version compiled before loads optimized at once.
//!
//! Which tier a request runs on never changes what it does: both are the
//! same module bytes (the snapshot, for a pre-initialized module), the same
//! linker and the same limits. A request takes the code of one tier when its
//! store is made and keeps it to the end.

use super::*;
use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::{Mutex, Weak};

use sha2::{Digest, Sha256};

/// A guest's pre-linked code: the code it was loaded with, and the optimized
/// code once the background compile has set it.
pub(super) struct Tiered<P> {
    first: P,
    first_tier: Tier,
    optimized: Arc<OnceLock<P>>,
}

impl<P> Tiered<P> {
    /// Code that is optimized already: nothing to wait for.
    pub(super) fn optimized(pre: P) -> Self {
        Tiered {
            first: pre,
            first_tier: Tier::Optimized,
            optimized: Arc::new(OnceLock::new()),
        }
    }

    /// Baseline code, and the cell the background compile sets; the cell
    /// is weak so that a version replaced before then is not compiled.
    pub(super) fn baseline(pre: P) -> (Self, Weak<OnceLock<P>>) {
        let optimized = Arc::new(OnceLock::new());
        let cell = Arc::downgrade(&optimized);
        let tiered = Tiered {
            first: pre,
            first_tier: Tier::Baseline,
            optimized,
        };
        (tiered, cell)
    }

    /// The code a new request runs on: the best that is ready.
    pub(super) fn current(&self) -> &P {
        self.optimized.get().unwrap_or(&self.first)
    }

    /// The tier of [`Tiered::current`].
    pub(super) fn tier(&self) -> Tier {
        match self.optimized.get() {
            Some(_) => Tier::Optimized,
            None => self.first_tier,
        }
    }

    /// The code of whichever tier `matches` accepts (a request's store is
    /// tied to one engine), the current one first.
    pub(super) fn find(&self, matches: impl Fn(&P) -> bool) -> Option<&P> {
        [self.optimized.get(), Some(&self.first)]
            .into_iter()
            .flatten()
            .find(|p| matches(p))
    }
}

/// The identity of the code a compile produces: the bytes and whether the
/// engine meters fuel (the two engines' code differs).
pub(super) fn code_key(bytes: &[u8], fuel: bool) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update([u8::from(fuel)]);
    hash.update(bytes);
    hash.finalize().into()
}

/// The code this process has compiled optimized (and so wasmtime's cache
/// holds, when there is one): loading such code again takes milliseconds,
/// so it skips the baseline tier.
#[derive(Default)]
pub(super) struct Seen(Mutex<HashSet<[u8; 32]>>);

impl Seen {
    pub(super) fn contains(&self, key: &[u8; 32]) -> bool {
        self.0.lock().is_ok_and(|s| s.contains(key))
    }

    pub(super) fn insert(&self, key: [u8; 32]) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(key);
        }
    }
}

/// A background compile to the optimized tier.
pub(super) type Job = Box<dyn FnOnce() + Send>;

/// The thread that compiles optimized code, one module at a time (each
/// compile is itself parallel over the cores), in the order versions came.
pub(super) struct TierUp {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Jobs submitted and not yet finished, for status and tests.
    pending: Arc<AtomicU64>,
}

impl TierUp {
    /// Starts the thread; it ends when the runtime drops its sender.
    pub(super) fn start() -> std::io::Result<TierUp> {
        let (tx, rx) = mpsc::channel::<Job>();
        let pending = Arc::new(AtomicU64::new(0));
        let left = pending.clone();
        std::thread::Builder::new()
            .name("tier-up".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                for job in rx {
                    // A job reports its own failures; a panic in the
                    // compiler must not end the thread for the others.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    left.fetch_sub(1, Ordering::Relaxed);
                }
            })?;
        Ok(TierUp {
            jobs: Mutex::new(Some(tx)),
            pending,
        })
    }

    /// Queues a job; false if the thread is gone (the caller then stays on
    /// its baseline code, which is correct, only slower).
    pub(super) fn submit(&self, job: Job) -> bool {
        let Ok(jobs) = self.jobs.lock() else {
            return false;
        };
        let Some(tx) = jobs.as_ref() else {
            return false;
        };
        self.pending.fetch_add(1, Ordering::Relaxed);
        if tx.send(job).is_ok() {
            true
        } else {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            false
        }
    }

    /// Jobs queued or running.
    pub(super) fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Stops taking jobs; the thread ends after the one it runs.
    pub(super) fn close(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
    }
}

/// Holds the background compiles while it lives ([`Runtime::hold_tier_ups`]).
pub struct TierHold {
    _release: mpsc::Sender<()>,
}

impl Runtime {
    /// The baseline engine for a load, if tiering is on and the engine can
    /// be made (if not, the load compiles optimized, as without tiering).
    pub(super) fn baseline_for(&self, limits: &Limits) -> Option<Arc<Flavor>> {
        if !self.tiering.load(Ordering::Relaxed) {
            return None;
        }
        self.flavor_for(limits, Tier::Baseline)
            .inspect_err(|e| tracing::warn!("no baseline tier, compiling optimized: {e}"))
            .ok()
    }

    /// Whether Cranelift compiled this code in this process and wasmtime's
    /// cache holds it, so that compiling it again only loads it. Without a
    /// cache it would compile again in full: then the baseline tier serves
    /// first, as for new code.
    pub(super) fn compiled_before(&self, key: &[u8; 32]) -> bool {
        self.cache.is_some() && self.seen.contains(key)
    }

    /// Compiles a load's code for its first tier: on `baseline` if there
    /// is one, on `optimized` if not or if Winch refuses the code (then the
    /// optimized compiler's error, if any, is the load's). Returns what was
    /// compiled, the flavor it is for and its tier.
    pub(super) fn compile_first<M>(
        &self,
        app: &str,
        baseline: Option<Arc<Flavor>>,
        optimized: &Arc<Flavor>,
        compile: impl Fn(&Flavor) -> Result<M, LoadError>,
    ) -> Result<(M, Arc<Flavor>, Tier), LoadError> {
        if let Some(b) = baseline {
            match compile(&b) {
                Ok(m) => return Ok((m, b, Tier::Baseline)),
                Err(LoadError::Compile { reason, .. }) => tracing::info!(
                    app,
                    "the baseline compiler refused the code ({reason}); compiling optimized"
                ),
                Err(e) => return Err(e),
            }
        }
        Ok((compile(optimized)?, optimized.clone(), Tier::Optimized))
    }

    /// The load's linked code as tiers: optimized code is recorded as
    /// compiled; baseline code comes with the cell [`Runtime::tier_up`] fills.
    pub(super) fn tiers<P>(
        &self,
        pre: P,
        first: Tier,
        key: [u8; 32],
    ) -> (Tiered<P>, Option<Weak<OnceLock<P>>>) {
        match first {
            Tier::Optimized => {
                self.seen.insert(key);
                (Tiered::optimized(pre), None)
            }
            Tier::Baseline => {
                let (pre, cell) = Tiered::baseline(pre);
                (pre, Some(cell))
            }
        }
    }

    /// Queues the optimized compile of a version that passed its load on
    /// baseline code (`started` is when its load began, for the log):
    /// `compile` builds the optimized code, which goes into `cell` unless
    /// the version is gone by then.
    pub(super) fn tier_up<P: Send + Sync + 'static>(
        &self,
        app: Arc<str>,
        key: [u8; 32],
        cell: Weak<OnceLock<P>>,
        started: Instant,
        compile: impl FnOnce() -> Result<P, String> + Send + 'static,
    ) {
        tracing::info!(
            %app,
            took_ms = started.elapsed().as_millis() as u64,
            "serving on baseline code; optimized code compiles in the background"
        );
        let seen = self.seen.clone();
        let job_app = app.clone();
        let job = move || {
            if cell.strong_count() == 0 {
                return;
            }
            let started = Instant::now();
            match compile() {
                Ok(pre) => {
                    seen.insert(key);
                    if let Some(cell) = cell.upgrade() {
                        let _ = cell.set(pre);
                        tracing::info!(
                            app = %job_app,
                            took_ms = started.elapsed().as_millis() as u64,
                            "optimized code ready; new requests run on it"
                        );
                    }
                }
                Err(e) => tracing::warn!(
                    app = %job_app,
                    "optimized compile failed; staying on baseline code: {e}"
                ),
            }
        };
        self.submit(app, Box::new(job));
    }

    /// Holds every background compile until the returned guard drops, so
    /// that versions loaded meanwhile stay on baseline code: for tests and
    /// benchmarks of that code.
    pub fn hold_tier_ups(&self) -> TierHold {
        let (release, held) = mpsc::channel::<()>();
        self.submit(
            Arc::from("(hold)"),
            Box::new(move || {
                // Returns when the guard's sender drops.
                let _ = held.recv();
            }),
        );
        TierHold { _release: release }
    }

    fn submit(&self, app: Arc<str>, job: Job) {
        if !self.tier_up.submit(job) {
            tracing::warn!(%app, "the background compiler has stopped; staying on baseline code");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_runs_on_the_best_code_that_is_ready() {
        let (tiered, cell) = Tiered::baseline("winch");
        assert_eq!(
            (*tiered.current(), tiered.tier()),
            ("winch", Tier::Baseline)
        );
        assert_eq!(tiered.find(|p| *p == "cranelift"), None);
        cell.upgrade().unwrap().set("cranelift").unwrap();
        assert_eq!(
            (*tiered.current(), tiered.tier()),
            ("cranelift", Tier::Optimized)
        );
        // A request that began on the baseline code still finds it.
        assert_eq!(tiered.find(|p| *p == "winch"), Some(&"winch"));
        let optimized = Tiered::optimized("cranelift");
        assert_eq!(optimized.tier(), Tier::Optimized);
    }

    #[test]
    fn a_replaced_version_leaves_nothing_to_compile() {
        let (tiered, cell) = Tiered::baseline(1);
        drop(tiered);
        assert!(cell.upgrade().is_none());
    }

    #[test]
    fn the_code_key_follows_bytes_and_fuel() {
        assert_eq!(code_key(b"a", false), code_key(b"a", false));
        assert_ne!(code_key(b"a", false), code_key(b"b", false));
        assert_ne!(code_key(b"a", false), code_key(b"a", true));
        let seen = Seen::default();
        assert!(!seen.contains(&code_key(b"a", false)));
        seen.insert(code_key(b"a", false));
        assert!(seen.contains(&code_key(b"a", false)));
    }

    #[test]
    fn jobs_run_in_order_and_a_panicking_one_stops_none_after_it() {
        let tier_up = TierUp::start().unwrap();
        let (tx, rx) = mpsc::channel();
        let first = tx.clone();
        assert!(tier_up.submit(Box::new(move || first.send(1).unwrap())));
        assert!(tier_up.submit(Box::new(|| panic!("a compiler bug"))));
        assert!(tier_up.submit(Box::new(move || tx.send(2).unwrap())));
        let got: Vec<i32> = rx.iter().take(2).collect();
        assert_eq!(got, [1, 2]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tier_up.pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(tier_up.pending(), 0);
        tier_up.close();
        assert!(!tier_up.submit(Box::new(|| {})));
    }
}
