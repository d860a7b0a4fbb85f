//! Per-app admission, the one place that owns it: a running limit per app and a FIFO queue that holds no thread, with a permit that travels with each admitted request.
//!
//! Pure state: requests are opaque items, time is an argument, so every rule
//! is tested below without a socket or a clock. The event loop holds one
//! `Admission`; a request it admits carries its [`Permit`] until its answer
//! comes back, and giving the permit back is the only way to free the slot
//! (as a tower `ConcurrencyLimit` permit rides with its request).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::handler::{Refusal, Rule};

/// Proof that a request holds a running slot of its app. Not `Clone`: each
/// admitted request holds exactly one, and only [`Admission::release`] or
/// [`Admission::forfeit`] consumes it.
#[derive(Debug)]
#[must_use = "a permit must go back to its Admission, or the app's slot is lost"]
pub struct Permit {
    key: Arc<str>,
}

impl Permit {
    /// The app whose slot this is.
    pub fn key(&self) -> &Arc<str> {
        &self.key
    }
}

/// What became of a request offered for admission.
#[derive(Debug)]
pub enum Admit<W> {
    /// Run it now.
    Run(Permit, W),
    /// It waits in its app's queue.
    Queued,
    /// Answer it with 503.
    Refused(W, Refusal),
}

/// A request waiting for a slot.
struct Waiter<W> {
    item: W,
    since: Instant,
    until: Instant,
}

#[derive(Default)]
struct AppState<W> {
    running: u32,
    waiting: VecDeque<Waiter<W>>,
}

/// What releasing a slot led to.
#[derive(Debug)]
pub struct Released<W> {
    /// The longest-waiting live request, admitted into the freed slot.
    pub run: Option<(Permit, W)>,
    /// Waiters found past their deadline: answer them 503.
    pub expired: Vec<(W, Refusal)>,
    /// Waiters the caller said are gone (their client left): drop them.
    pub gone: Vec<W>,
}

/// Per-app admission state of one event loop.
pub struct Admission<W> {
    /// Most slots one app may hold, so that another app always finds a worker.
    share: u32,
    apps: HashMap<Arc<str>, AppState<W>>,
}

impl<W> Admission<W> {
    /// Admission for `workers` worker threads: one app may hold all but one.
    pub fn new(workers: usize) -> Admission<W> {
        Admission {
            share: u32::try_from(workers.saturating_sub(1).max(1)).unwrap_or(u32::MAX),
            apps: HashMap::new(),
        }
    }

    /// Admits `item` under `rule`: runs it if its app has a free slot, queues
    /// it if the queue has room, refuses it otherwise.
    pub fn admit(&mut self, rule: &Rule, item: W, now: Instant) -> Admit<W> {
        let state = self
            .apps
            .entry(rule.key.clone())
            .or_insert_with(|| AppState {
                running: 0,
                waiting: VecDeque::new(),
            });
        if state.running < rule.max_concurrency.min(self.share) {
            state.running += 1;
            return Admit::Run(
                Permit {
                    key: rule.key.clone(),
                },
                item,
            );
        }
        if state.waiting.len() < rule.max_queue as usize {
            state.waiting.push_back(Waiter {
                item,
                since: now,
                until: now + rule.queue_timeout,
            });
            return Admit::Queued;
        }
        let refusal = Refusal::QueueFull {
            running: state.running,
            queue: rule.max_queue,
        };
        Admit::Refused(item, refusal)
    }

    /// Gives a slot back and admits the longest-waiting request still
    /// `alive`; waiters past their deadline are handed back for a 503.
    pub fn release(
        &mut self,
        permit: Permit,
        now: Instant,
        mut alive: impl FnMut(&W) -> bool,
    ) -> Released<W> {
        let mut released = Released {
            run: None,
            expired: Vec::new(),
            gone: Vec::new(),
        };
        let Some(state) = self.apps.get_mut(&permit.key) else {
            return released;
        };
        state.running = state.running.saturating_sub(1);
        while let Some(waiter) = state.waiting.pop_front() {
            if !alive(&waiter.item) {
                released.gone.push(waiter.item);
            } else if now >= waiter.until {
                let waited = now.duration_since(waiter.since);
                released
                    .expired
                    .push((waiter.item, Refusal::TimedOut { waited }));
            } else {
                state.running += 1;
                released.run = Some((
                    Permit {
                        key: permit.key.clone(),
                    },
                    waiter.item,
                ));
                break;
            }
        }
        released
    }

    /// Gives a slot back without admitting a waiter: for a request refused
    /// after admission (server overload), when a waiter would be refused too.
    pub fn forfeit(&mut self, permit: Permit) {
        if let Some(state) = self.apps.get_mut(&permit.key) {
            state.running = state.running.saturating_sub(1);
        }
    }

    /// Takes every waiter whose deadline has passed, for a 503.
    pub fn expire(&mut self, now: Instant) -> Vec<(W, Refusal)> {
        let mut expired = Vec::new();
        for state in self.apps.values_mut() {
            while state.waiting.front().is_some_and(|w| now >= w.until) {
                if let Some(w) = state.waiting.pop_front() {
                    let waited = now.duration_since(w.since);
                    expired.push((w.item, Refusal::TimedOut { waited }));
                }
            }
        }
        expired
    }

    /// Requests of `key` running and waiting now.
    pub fn counts(&self, key: &str) -> (u32, usize) {
        self.apps
            .get(key)
            .map_or((0, 0), |s| (s.running, s.waiting.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(key: &str, running: u32, queue: u32) -> Rule {
        Rule {
            key: Arc::from(key),
            max_concurrency: running,
            max_queue: queue,
            queue_timeout: Duration::from_secs(1),
        }
    }

    fn run<W: std::fmt::Debug>(admit: Admit<W>) -> (Permit, W) {
        match admit {
            Admit::Run(p, w) => (p, w),
            other => panic!("expected to run, got {other:?}"),
        }
    }

    #[test]
    fn requests_beyond_the_running_limit_wait_in_order_then_are_refused() {
        let t = Instant::now();
        let mut adm = Admission::new(16);
        let r = rule("a", 2, 2);
        let (p1, _) = run(adm.admit(&r, 1, t));
        let (_p2, _) = run(adm.admit(&r, 2, t));
        assert!(matches!(adm.admit(&r, 3, t), Admit::Queued));
        assert!(matches!(adm.admit(&r, 4, t), Admit::Queued));
        match adm.admit(&r, 5, t) {
            Admit::Refused(
                5,
                Refusal::QueueFull {
                    running: 2,
                    queue: 2,
                },
            ) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(adm.counts("a"), (2, 2));
        // Releasing admits the longest waiter, keeping the count.
        let released = adm.release(p1, t, |_| true);
        let (p3, item) = released.run.expect("a waiter runs");
        assert_eq!(item, 3);
        assert_eq!(p3.key().as_ref(), "a");
        assert_eq!(adm.counts("a"), (2, 1));
    }

    #[test]
    fn apps_are_admitted_independently() {
        let t = Instant::now();
        let mut adm = Admission::new(16);
        let _a = run(adm.admit(&rule("a", 1, 0), 1, t));
        assert!(matches!(
            adm.admit(&rule("a", 1, 0), 2, t),
            Admit::Refused(2, _)
        ));
        let _b = run(adm.admit(&rule("b", 1, 0), 3, t));
    }

    #[test]
    fn one_app_never_holds_every_worker() {
        let t = Instant::now();
        let mut adm = Admission::new(4);
        let r = rule("a", 100, 100);
        let permits: Vec<_> = (0..3).map(|i| run(adm.admit(&r, i, t))).collect();
        assert!(matches!(adm.admit(&r, 3, t), Admit::Queued));
        assert_eq!(permits.len(), 3);
        // With one worker, the app may still run one.
        let mut single = Admission::new(1);
        let _only = run(single.admit(&r, 0, t));
    }

    #[test]
    fn waiters_past_their_deadline_are_refused_and_gone_ones_dropped() {
        let t = Instant::now();
        let mut adm = Admission::new(16);
        let r = rule("a", 1, 10);
        let (p, _) = run(adm.admit(&r, 0, t));
        for i in 1..=3 {
            assert!(matches!(
                adm.admit(&r, i, t + Duration::from_millis(100 * i)),
                Admit::Queued
            ));
        }
        // Nothing expires early.
        assert!(adm.expire(t + Duration::from_millis(500)).is_empty());
        // At 1.15 s the first waiter (queued at 0.1 s) expired.
        let expired = adm.expire(t + Duration::from_millis(1150));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].0, 1);
        assert_eq!(
            expired[0].1,
            Refusal::TimedOut {
                waited: Duration::from_millis(1050)
            }
        );
        // Releasing at 1.25 s: waiter 2 (deadline 1.2 s) expired, so 3 runs
        // unless its client left.
        let released = adm.release(p, t + Duration::from_millis(1250), |&w| w != 3);
        assert!(released.run.is_none());
        assert_eq!(released.expired.len(), 1);
        assert_eq!(released.expired[0].0, 2);
        assert_eq!(released.gone, [3]);
        assert_eq!(adm.counts("a"), (0, 0));
    }

    #[test]
    fn a_forfeited_permit_frees_its_slot_without_admitting_a_waiter() {
        let t = Instant::now();
        let mut adm = Admission::new(16);
        let r = rule("a", 1, 1);
        let (p, _) = run(adm.admit(&r, 0, t));
        assert!(matches!(adm.admit(&r, 1, t), Admit::Queued));
        adm.forfeit(p);
        assert_eq!(adm.counts("a"), (0, 1));
        // The next request runs at once; the waiter still waits its turn.
        let _next = run(adm.admit(&r, 2, t));
    }
}
