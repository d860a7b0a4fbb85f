//! Admission, the one place that owns it: the server's run slots shared fairly among the apps with work, each app's running limit and its FIFO queue that holds no thread, and a permit that travels with each admitted request.
//!
//! Pure state: requests are opaque items, time is an argument, so every rule
//! is tested below without a socket or a clock. The server's event loops
//! share one `Admission` (behind a mutex); a request admitted carries its
//! [`Permit`] until its answer comes back, and giving the permit back is the only way to free its place
//! (as a tower `ConcurrencyLimit` permit rides with its request).
//!
//! The rules (docs/ARCHITECTURE.md, "Execution model"):
//! 1. A request runs only in a free **run slot**; there are `slots` of them
//!    (the server's `workers`).
//! 2. The last free slot goes only to an app with nothing running, so that
//!    an app that is not busy always finds one.
//! 3. When a slot frees, it goes to the app with the fewest running among
//!    those with work that may take it (max-min fair shares); ties go to the
//!    longest-waiting. Within an app, a sleeping request that woke up comes
//!    before new ones, and new ones are first in, first out.
//! 4. An app's requests in flight (running or asleep) never exceed its
//!    `max_concurrency`; beyond it they wait, up to `max_queue` of them and
//!    for `queue_timeout`, and then are refused (503).
//! 5. A request that sleeps lends its slot ([`Admission::park`]) and needs one
//!    again to go on ([`Admission::resume`]), by rule 3.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::handler::{Refusal, Rule};

/// Proof that a request holds a place in its app's admission. Not `Clone`:
/// each admitted request holds exactly one, and only [`Admission::release`]
/// or [`Admission::forfeit`] consumes it.
#[derive(Debug)]
#[must_use = "a permit must go back to its Admission, or the app's slot is lost"]
pub struct Permit {
    key: Arc<str>,
}

impl Permit {
    /// The app whose place this is.
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

/// A sleeping request that woke up and waits for a slot to go on.
struct Resumer<R> {
    item: R,
    since: Instant,
}

struct AppState<W, R> {
    /// Requests holding a run slot.
    running: u32,
    /// Requests in flight that lent their slot (asleep, or waking up).
    parked: u32,
    /// The app's `max_concurrency`, from the newest rule seen.
    max_concurrency: u32,
    waiting: VecDeque<Waiter<W>>,
    resuming: VecDeque<Resumer<R>>,
}

impl<W, R> AppState<W, R> {
    fn in_flight(&self) -> u32 {
        self.running + self.parked
    }
}

/// What filling the free slots led to.
#[derive(Debug)]
pub struct Filled<W, R> {
    /// Queued requests admitted into free slots: run them.
    pub run: Vec<(Permit, W)>,
    /// Woken requests given a slot back: tell them (an app's name, the item).
    pub resume: Vec<(Arc<str>, R)>,
    /// Waiters found past their deadline: answer them 503.
    pub expired: Vec<(W, Refusal)>,
    /// Waiters the caller said are gone (their client left): drop them.
    pub gone: Vec<W>,
}

impl<W, R> Default for Filled<W, R> {
    fn default() -> Self {
        Filled {
            run: Vec::new(),
            resume: Vec::new(),
            expired: Vec::new(),
            gone: Vec::new(),
        }
    }
}

/// Admission state of one server (every event loop's).
pub struct Admission<W, R> {
    /// Run slots in all.
    slots: u32,
    /// Run slots held.
    active: u32,
    apps: HashMap<Arc<str>, AppState<W, R>>,
}

impl<W, R> Admission<W, R> {
    /// Admission for `slots` run slots (the server's workers).
    pub fn new(slots: usize) -> Admission<W, R> {
        Admission {
            slots: u32::try_from(slots.max(1)).unwrap_or(u32::MAX),
            active: 0,
            apps: HashMap::new(),
        }
    }

    /// Whether an app running `running` requests may take a free slot now
    /// (rules 1 and 2).
    fn slot_for(&self, running: u32) -> bool {
        let free = self.slots.saturating_sub(self.active);
        free > 1 || (free == 1 && running == 0)
    }

    fn state(&mut self, rule: &Rule) -> &mut AppState<W, R> {
        let state = self
            .apps
            .entry(rule.key.clone())
            .or_insert_with(|| AppState {
                running: 0,
                parked: 0,
                max_concurrency: rule.max_concurrency,
                waiting: VecDeque::new(),
                resuming: VecDeque::new(),
            });
        state.max_concurrency = rule.max_concurrency;
        state
    }

    /// Admits `item` under `rule`: runs it if a slot is free for its app and
    /// the app is within its limit, queues it if the queue has room, refuses
    /// it otherwise.
    pub fn admit(&mut self, rule: &Rule, item: W, now: Instant) -> Admit<W> {
        let (running, in_flight, queued) = {
            let state = self.state(rule);
            (state.running, state.in_flight(), state.waiting.len())
        };
        if queued == 0 && in_flight < rule.max_concurrency && self.slot_for(running) {
            self.active += 1;
            self.state(rule).running += 1;
            return Admit::Run(
                Permit {
                    key: rule.key.clone(),
                },
                item,
            );
        }
        let state = self.state(rule);
        if state.waiting.len() < rule.max_queue as usize {
            state.waiting.push_back(Waiter {
                item,
                since: now,
                until: now + rule.queue_timeout,
            });
            return Admit::Queued;
        }
        let refusal = Refusal::QueueFull {
            running: state.in_flight(),
            queue: rule.max_queue,
        };
        Admit::Refused(item, refusal)
    }

    /// A running request of `key` goes to sleep: its slot is free for others
    /// until [`Admission::resume`] gives it one back. Call [`Admission::fill`]
    /// after.
    pub fn park(&mut self, key: &str) {
        if let Some(state) = self.apps.get_mut(key)
            && state.running > 0
        {
            state.running -= 1;
            state.parked += 1;
            self.active = self.active.saturating_sub(1);
        }
    }

    /// A parked request of `key` woke up and waits for a slot. Call
    /// [`Admission::fill`] after.
    pub fn resume(&mut self, key: &str, item: R, now: Instant) {
        if let Some(state) = self.apps.get_mut(key) {
            state.resuming.push_back(Resumer { item, since: now });
        }
    }

    /// A slot [`Admission::fill`] gave to a woken request could not be
    /// handed over (it stopped waiting): the request is parked again. Call
    /// [`Admission::fill`] after.
    pub fn ungrant(&mut self, key: &str) {
        self.park(key);
    }

    /// Gives a request's place back: its slot, or if it was parked when it
    /// ended, its parked place. Call [`Admission::fill`] after.
    pub fn release(&mut self, permit: Permit, parked: bool) {
        let Some(state) = self.apps.get_mut(&permit.key) else {
            return;
        };
        if parked {
            state.parked = state.parked.saturating_sub(1);
        } else if state.running > 0 {
            state.running -= 1;
            self.active = self.active.saturating_sub(1);
        }
        if state.in_flight() == 0 && state.waiting.is_empty() && state.resuming.is_empty() {
            self.apps.remove(&permit.key);
        }
    }

    /// Gives a running request's place back without [`Admission::fill`]: for
    /// a request refused after admission (server overload), when a waiter
    /// would be refused too.
    pub fn forfeit(&mut self, permit: Permit) {
        self.release(permit, false);
    }

    /// The app that gets the next free slot (rule 3): with work it may take
    /// a slot for, the fewest running, then the longest-waiting.
    fn next_app(&self) -> Option<Arc<str>> {
        let mut best: Option<(u32, Instant, &Arc<str>)> = None;
        for (key, state) in &self.apps {
            if !self.slot_for(state.running) {
                continue;
            }
            let head = match (state.resuming.front(), state.waiting.front()) {
                (Some(r), _) => r.since,
                (None, Some(w)) if state.in_flight() < state.max_concurrency => w.since,
                _ => continue,
            };
            let better =
                best.is_none_or(|(running, since, _)| (state.running, head) < (running, since));
            if better {
                best = Some((state.running, head, key));
            }
        }
        best.map(|(_, _, key)| key.clone())
    }

    /// Hands free slots out by the rules above until none is free or nobody
    /// may take one; waiters past their deadline or not `alive` are taken out
    /// on the way.
    pub fn fill(&mut self, now: Instant, mut alive: impl FnMut(&W) -> bool) -> Filled<W, R> {
        let mut filled = Filled::default();
        while let Some(key) = self.next_app() {
            let Some(state) = self.apps.get_mut(&key) else {
                break;
            };
            if let Some(resumer) = state.resuming.pop_front() {
                state.parked = state.parked.saturating_sub(1);
                state.running += 1;
                self.active += 1;
                filled.resume.push((key, resumer.item));
                continue;
            }
            while let Some(waiter) = state.waiting.pop_front() {
                if !alive(&waiter.item) {
                    filled.gone.push(waiter.item);
                } else if now >= waiter.until {
                    let waited = now.duration_since(waiter.since);
                    filled
                        .expired
                        .push((waiter.item, Refusal::TimedOut { waited }));
                } else {
                    state.running += 1;
                    self.active += 1;
                    filled.run.push((Permit { key: key.clone() }, waiter.item));
                    break;
                }
            }
        }
        self.prune();
        filled
    }

    /// Forgets apps with nothing in flight and nothing waiting, so that the
    /// map (which [`Admission::fill`] walks) holds only apps with work.
    fn prune(&mut self) {
        self.apps
            .retain(|_, s| s.in_flight() > 0 || !s.waiting.is_empty() || !s.resuming.is_empty());
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
        self.prune();
        expired
    }

    /// Requests of `key` in flight (running or asleep) and waiting now.
    pub fn counts(&self, key: &str) -> (u32, usize) {
        self.apps
            .get(key)
            .map_or((0, 0), |s| (s.in_flight(), s.waiting.len()))
    }

    /// Run slots held now, in all.
    pub fn active(&self) -> u32 {
        self.active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    type Adm = Admission<u32, &'static str>;

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

    fn queued<W: std::fmt::Debug>(admit: Admit<W>) {
        assert!(
            matches!(admit, Admit::Queued),
            "expected to wait, got {admit:?}"
        );
    }

    #[test]
    fn requests_beyond_the_running_limit_wait_in_order_then_are_refused() {
        let t = Instant::now();
        let mut adm = Adm::new(16);
        let r = rule("a", 2, 2);
        let (p1, _) = run(adm.admit(&r, 1, t));
        let (_p2, _) = run(adm.admit(&r, 2, t));
        queued(adm.admit(&r, 3, t));
        queued(adm.admit(&r, 4, t));
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
        adm.release(p1, false);
        let mut filled = adm.fill(t, |_| true);
        assert_eq!(filled.run.len(), 1);
        let (p3, item) = filled.run.remove(0);
        assert_eq!(item, 3);
        assert_eq!(p3.key().as_ref(), "a");
        assert_eq!(adm.counts("a"), (2, 1));
    }

    #[test]
    fn apps_are_admitted_independently() {
        let t = Instant::now();
        let mut adm = Adm::new(16);
        let _a = run(adm.admit(&rule("a", 1, 0), 1, t));
        assert!(matches!(
            adm.admit(&rule("a", 1, 0), 2, t),
            Admit::Refused(2, _)
        ));
        let _b = run(adm.admit(&rule("b", 1, 0), 3, t));
    }

    #[test]
    fn the_last_free_slot_goes_only_to_an_app_with_nothing_running() {
        let t = Instant::now();
        let mut adm = Adm::new(4);
        let r = rule("a", 100, 100);
        let permits: Vec<_> = (0..3).map(|i| run(adm.admit(&r, i, t))).collect();
        queued(adm.admit(&r, 3, t));
        assert_eq!(permits.len(), 3);
        // Another app takes it; then every slot is held and it waits too.
        let _b = run(adm.admit(&rule("b", 100, 100), 10, t));
        queued(adm.admit(&rule("b", 100, 100), 11, t));
        queued(adm.admit(&rule("c", 100, 100), 20, t));
        assert_eq!(adm.active(), 4);
        // With one slot, one app may still run one.
        let mut single = Adm::new(1);
        let _only = run(single.admit(&r, 0, t));
    }

    #[test]
    fn a_freed_slot_goes_to_the_app_with_the_fewest_running_then_the_longest_waiting() {
        let t = Instant::now();
        let later = t + Duration::from_millis(1);
        let mut adm = Adm::new(6);
        let a = rule("a", 100, 100);
        let b = rule("b", 100, 100);
        let mut held: Vec<_> = (0..4).map(|i| run(adm.admit(&a, i, t)).0).collect();
        let _b = run(adm.admit(&b, 10, t));
        // One slot is free, kept for an app with nothing running: a and b wait.
        queued(adm.admit(&a, 4, t));
        queued(adm.admit(&b, 11, later));
        let mut order = Vec::new();
        for _ in 0..2 {
            adm.release(held.remove(0), false);
            let filled = adm.fill(later, |_| true);
            assert_eq!(filled.run.len(), 1, "one slot, one request");
            order.extend(filled.run.into_iter().map(|(_, item)| item));
        }
        // b (1 running) before a (3) although a waited longer; then a.
        assert_eq!(order, [11, 4]);
        assert_eq!(adm.active(), 5);

        // An app with nothing running gets the next slot before both.
        let mut adm = Adm::new(4);
        let mut held: Vec<_> = (0..3).map(|i| run(adm.admit(&a, i, t)).0).collect();
        let _b = run(adm.admit(&b, 10, t));
        queued(adm.admit(&a, 3, t));
        queued(adm.admit(&b, 11, t));
        queued(adm.admit(&rule("c", 100, 100), 20, later));
        adm.release(held.remove(0), false);
        let filled = adm.fill(later, |_| true);
        assert_eq!(
            filled.run.into_iter().map(|(_, w)| w).collect::<Vec<_>>(),
            [20]
        );
    }

    #[test]
    fn a_sleeping_request_lends_its_slot_and_gets_one_back_before_new_requests() {
        let t = Instant::now();
        let mut adm = Adm::new(2);
        let a = rule("a", 3, 10);
        let (pa, _) = run(adm.admit(&a, 1, t));
        let (_pb, _) = run(adm.admit(&rule("b", 3, 10), 2, t));
        queued(adm.admit(&a, 3, t));
        adm.park("a");
        assert_eq!(adm.active(), 1);
        let filled = adm.fill(t, |_| true);
        let (pa2, item) = filled
            .run
            .into_iter()
            .next()
            .expect("the lent slot is used");
        assert_eq!(item, 3);
        // Both of a's are in flight: the parked one still counts.
        assert_eq!(adm.counts("a"), (2, 0));
        queued(adm.admit(&a, 4, t));
        // It wakes while every slot is held: it waits, and comes before 4.
        adm.resume("a", "woken", t);
        let filled = adm.fill(t, |_| true);
        assert!(filled.resume.is_empty() && filled.run.is_empty());
        adm.release(pa2, false);
        let filled = adm.fill(t, |_| true);
        assert_eq!(filled.resume.len(), 1);
        assert_eq!(filled.resume[0].1, "woken");
        assert!(filled.run.is_empty());
        // It could not be told (it gave up): parked again, the slot goes on.
        adm.ungrant("a");
        let filled = adm.fill(t, |_| true);
        let (p4, item) = filled.run.into_iter().next().expect("4 runs");
        assert_eq!(item, 4);
        // It ends parked; then 4 ends: a has nothing left.
        adm.release(pa, true);
        adm.release(p4, false);
        assert_eq!(adm.counts("a"), (0, 0));
        assert_eq!(adm.active(), 1);
    }

    #[test]
    fn sleeping_requests_count_against_max_concurrency() {
        let t = Instant::now();
        let mut adm = Adm::new(16);
        let a = rule("a", 2, 5);
        let (_p1, _) = run(adm.admit(&a, 1, t));
        let (_p2, _) = run(adm.admit(&a, 2, t));
        adm.park("a");
        adm.park("a");
        assert_eq!(adm.active(), 0);
        queued(adm.admit(&a, 3, t));
        assert!(adm.fill(t, |_| true).run.is_empty());
    }

    #[test]
    fn waiters_past_their_deadline_are_refused_and_gone_ones_dropped() {
        let t = Instant::now();
        let mut adm = Adm::new(16);
        let r = rule("a", 1, 10);
        let (p, _) = run(adm.admit(&r, 0, t));
        for i in 1..=3 {
            queued(adm.admit(&r, i, t + Duration::from_millis(100 * u64::from(i))));
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
        adm.release(p, false);
        let filled = adm.fill(t + Duration::from_millis(1250), |&w| w != 3);
        assert!(filled.run.is_empty());
        assert_eq!(filled.expired.len(), 1);
        assert_eq!(filled.expired[0].0, 2);
        assert_eq!(filled.gone, [3]);
        assert_eq!(adm.counts("a"), (0, 0));
        assert!(adm.apps.is_empty(), "an app with no work is forgotten");
    }

    #[test]
    fn a_forfeited_permit_frees_its_slot_without_admitting_a_waiter() {
        let t = Instant::now();
        let mut adm = Adm::new(16);
        let r = rule("a", 1, 2);
        let (p, _) = run(adm.admit(&r, 0, t));
        queued(adm.admit(&r, 1, t));
        adm.forfeit(p);
        assert_eq!(adm.counts("a"), (0, 1));
        // The waiter runs at the next fill, before any new request.
        queued(adm.admit(&r, 2, t));
        let filled = adm.fill(t, |_| true);
        assert_eq!(
            filled.run.into_iter().map(|(_, w)| w).collect::<Vec<_>>(),
            [1]
        );
    }
}
