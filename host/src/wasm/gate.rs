//! Per-app admission: a counting semaphore with a bounded, timed queue, so that one app's burst waits its turn without taking every worker.
//!
//! Waiting happens on the worker thread that carries the request, so a waiter
//! holds a worker. Each app may therefore hold at most `worker_share` workers
//! (running plus waiting); a request beyond that, or beyond the app's
//! `max_queue`, is refused at once instead of waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How many requests of one app run and wait now.
#[derive(Debug, Default)]
struct Counts {
    running: u32,
    waiting: u32,
}

/// The admission state of one app, shared by every version of it (a swapped
/// module keeps counting against the same gate).
#[derive(Debug, Default)]
pub struct Gate {
    counts: Mutex<Counts>,
    freed: Condvar,
}

/// The bounds one admission is checked against (they come from the app's
/// current limits, so a new version's limits apply at once).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Most instances running at once.
    pub running: u32,
    /// Most requests waiting for a slot.
    pub waiting: u32,
    /// Most workers the app may hold, running plus waiting.
    pub held: u32,
    /// Longest wait for a slot.
    pub timeout: Duration,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue (or the app's share of workers) was full: refused at once.
    QueueFull,
    /// No slot came free within the timeout.
    TimedOut(Duration),
}

/// A running slot; dropping it frees the slot and wakes one waiter.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<Gate>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.gate.lock();
        counts.running = counts.running.saturating_sub(1);
        drop(counts);
        self.gate.freed.notify_one();
    }
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        // Counts stay consistent under a panic (plain integer updates).
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a running slot, waiting up to `bounds.timeout` for one.
    pub fn acquire(self: &Arc<Self>, bounds: Bounds) -> Result<Permit, Refused> {
        let held = bounds.held.max(1);
        let running_cap = bounds.running.min(held).max(1);
        let mut counts = self.lock();
        if counts.running < running_cap {
            counts.running += 1;
            return Ok(Permit { gate: self.clone() });
        }
        if counts.waiting >= bounds.waiting || counts.running + counts.waiting >= held {
            return Err(Refused::QueueFull);
        }
        counts.waiting += 1;
        let started = Instant::now();
        let deadline = started + bounds.timeout;
        loop {
            if counts.running < running_cap {
                counts.waiting -= 1;
                counts.running += 1;
                return Ok(Permit { gate: self.clone() });
            }
            let now = Instant::now();
            if now >= deadline {
                counts.waiting -= 1;
                return Err(Refused::TimedOut(now - started));
            }
            counts = self
                .freed
                .wait_timeout(counts, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Requests running and waiting now.
    pub fn counts(&self) -> (u32, u32) {
        let counts = self.lock();
        (counts.running, counts.waiting)
    }
}

/// Every app's gate, by app name, and the share of workers one app may hold.
#[derive(Debug)]
pub struct Gates {
    apps: Mutex<HashMap<Arc<str>, Arc<Gate>>>,
    worker_share: AtomicU32,
}

impl Default for Gates {
    /// Gates for the default worker count, until `set_workers` says otherwise.
    fn default() -> Self {
        let gates = Gates {
            apps: Mutex::new(HashMap::new()),
            worker_share: AtomicU32::new(u32::MAX),
        };
        gates.set_workers(crate::server::default_workers());
        gates
    }
}

impl Gates {
    /// The gate of an app, created on first use.
    pub fn of(&self, app: &Arc<str>) -> Arc<Gate> {
        self.apps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(app.clone())
            .or_default()
            .clone()
    }

    /// Tells the gates how many workers run requests: one app may then hold
    /// all but one of them, so another app always finds a worker.
    pub fn set_workers(&self, workers: usize) {
        let share = u32::try_from(workers.saturating_sub(1).max(1)).unwrap_or(u32::MAX);
        self.worker_share.store(share, Ordering::Relaxed);
    }

    /// Most workers one app may hold.
    pub fn worker_share(&self) -> u32 {
        self.worker_share.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(running: u32, waiting: u32, held: u32, timeout_ms: u64) -> Bounds {
        Bounds {
            running,
            waiting,
            held,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn admits_up_to_the_cap_then_refuses_or_times_out() {
        let gate = Arc::new(Gate::default());
        let b = bounds(2, 0, 10, 10);
        let p1 = gate.acquire(b).ok();
        let p2 = gate.acquire(b).ok();
        assert!(p1.is_some() && p2.is_some());
        // No queue: refused at once.
        assert_eq!(gate.acquire(b).err(), Some(Refused::QueueFull));
        // A queue of one: waits, then times out.
        let b = bounds(2, 1, 10, 20);
        assert!(matches!(gate.acquire(b), Err(Refused::TimedOut(_))));
        assert_eq!(gate.counts(), (2, 0));
        drop(p1);
        assert!(gate.acquire(b).is_ok());
        assert_eq!(gate.counts(), (1, 0));
    }

    #[test]
    fn a_waiter_gets_a_freed_slot() {
        let gate = Arc::new(Gate::default());
        let b = bounds(1, 1, 10, 10_000);
        let first = gate.acquire(b).ok();
        let waiter = {
            let gate = gate.clone();
            std::thread::spawn(move || gate.acquire(b).is_ok())
        };
        while gate.counts().1 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The queue is full now.
        assert_eq!(gate.acquire(b).err(), Some(Refused::QueueFull));
        drop(first);
        assert!(waiter.join().unwrap_or(false));
    }

    #[test]
    fn the_worker_share_bounds_running_plus_waiting() {
        let gate = Arc::new(Gate::default());
        // Cap 16, queue 16, but only 3 workers may be held.
        let b = bounds(16, 16, 3, 10);
        let permits: Vec<_> = (0..3).filter_map(|_| gate.acquire(b).ok()).collect();
        assert_eq!(permits.len(), 3);
        assert_eq!(gate.acquire(b).err(), Some(Refused::QueueFull));
        let gates = Gates::default();
        gates.set_workers(4);
        assert_eq!(gates.worker_share(), 3);
        gates.set_workers(1);
        assert_eq!(gates.worker_share(), 1);
    }
}
