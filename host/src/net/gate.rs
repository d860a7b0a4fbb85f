//! A running request's side of admission: the [`Pause`] hook that lends its run slot to the event loop while its guest sleeps, and waits for one to come back.
//!
//! The worker talks to the event loop through the same channel as its answer
//! (so the loop sees park, resume and done in that order) and waits for a
//! slot on a [`Turn`]: a one-shot cell the loop grants and the worker may
//! abandon, with no race between the two (a grant to an abandoned turn
//! fails, and the loop gives the slot to someone else).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::limits::MAX_PARKED;
use crate::pause::Pause;

/// What a worker tells the event loop.
pub(super) enum Message<D> {
    /// A request ended: its answer.
    Done(D),
    /// A request of this app went to sleep and lent its slot.
    Park(Arc<str>),
    /// A request of this app woke up and waits on the turn for a slot.
    Resume(Arc<str>, Arc<Turn>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Granted,
    Abandoned,
}

/// A woken request's wait for a slot.
pub(super) struct Turn {
    state: Mutex<State>,
    ready: Condvar,
}

impl Turn {
    fn new() -> Turn {
        Turn {
            state: Mutex::new(State::Waiting),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the slot over; false if the request stopped waiting.
    pub(super) fn grant(&self) -> bool {
        let mut state = self.lock();
        if *state != State::Waiting {
            return false;
        }
        *state = State::Granted;
        self.ready.notify_one();
        true
    }

    /// Waits for the grant until `until`; false (and abandoned) if it did not come.
    fn wait(&self, until: Instant) -> bool {
        let mut state = self.lock();
        loop {
            match *state {
                State::Granted => return true,
                State::Abandoned => return false,
                State::Waiting => {}
            }
            let now = Instant::now();
            if now >= until {
                *state = State::Abandoned;
                return false;
            }
            state = self
                .ready
                .wait_timeout(state, until - now)
                .map_or_else(|e| e.into_inner().0, |(s, _)| s);
        }
    }
}

/// The hook of one admitted request, on its worker.
pub(super) struct Gate<D> {
    key: Arc<str>,
    tx: Sender<Message<D>>,
    waker: Arc<mio::Waker>,
    /// Requests parked now, server-wide (at most [`MAX_PARKED`]).
    sleepers: Arc<AtomicUsize>,
    /// Whether this request has lent its slot and not got one back.
    parked: Cell<bool>,
}

impl<D> Gate<D> {
    pub(super) fn new(
        key: Arc<str>,
        tx: Sender<Message<D>>,
        waker: Arc<mio::Waker>,
        sleepers: Arc<AtomicUsize>,
    ) -> Gate<D> {
        Gate {
            key,
            tx,
            waker,
            sleepers,
            parked: Cell::new(false),
        }
    }

    /// Whether the request ended without its slot (it gave up waiting for one).
    pub(super) fn parked(&self) -> bool {
        self.parked.get()
    }

    fn tell(&self, message: Message<D>) -> bool {
        let sent = self.tx.send(message).is_ok();
        let _ = self.waker.wake();
        sent
    }
}

impl<D> Pause for Gate<D> {
    fn park(&self) -> bool {
        if self.parked.get() {
            return false;
        }
        let room = self
            .sleepers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_PARKED).then_some(n + 1)
            })
            .is_ok();
        if !room {
            return false;
        }
        if !self.tell(Message::Park(self.key.clone())) {
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        self.parked.set(true);
        true
    }

    fn resume(&self, until: Instant) -> bool {
        if !self.parked.get() {
            return true;
        }
        let turn = Arc::new(Turn::new());
        let granted =
            self.tell(Message::Resume(self.key.clone(), turn.clone())) && turn.wait(until);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        if granted {
            self.parked.set(false);
        }
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_request_keeps_its_slot_when_the_sleepers_budget_is_spent() {
        let poll = mio::Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).expect("waker"));
        let (tx, rx) = std::sync::mpsc::channel::<Message<()>>();
        let sleepers = Arc::new(AtomicUsize::new(MAX_PARKED));
        let gate = Gate::new(Arc::from("a"), tx.clone(), waker.clone(), sleepers.clone());
        assert!(!gate.park(), "parked beyond MAX_PARKED");
        assert!(!gate.parked());
        assert!(
            rx.try_recv().is_err(),
            "told the event loop of a park that did not happen"
        );
        // With room, it parks, says so, and counts itself.
        sleepers.store(MAX_PARKED - 1, Ordering::SeqCst);
        let gate = Gate::new(Arc::from("a"), tx, waker, sleepers.clone());
        assert!(gate.park());
        assert!(gate.parked());
        assert!(matches!(rx.try_recv(), Ok(Message::Park(key)) if &*key == "a"));
        assert_eq!(sleepers.load(Ordering::SeqCst), MAX_PARKED);
        // Nobody grants: it gives up at its deadline, still parked, uncounted.
        assert!(!gate.resume(Instant::now() + Duration::from_millis(20)));
        assert!(gate.parked());
        assert_eq!(sleepers.load(Ordering::SeqCst), MAX_PARKED - 1);
    }

    #[test]
    fn a_turn_is_granted_once_and_a_grant_after_giving_up_fails() {
        let turn = Arc::new(Turn::new());
        let t2 = turn.clone();
        let granter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            t2.grant()
        });
        assert!(turn.wait(Instant::now() + Duration::from_secs(30)));
        assert!(granter.join().unwrap());
        assert!(!turn.grant(), "granted twice");

        let late = Turn::new();
        assert!(!late.wait(Instant::now() + Duration::from_millis(10)));
        assert!(!late.grant(), "a grant after giving up must fail");
    }
}
