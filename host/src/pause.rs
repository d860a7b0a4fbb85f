//! Lending a run slot while a request sleeps: the hook the network layer installs on a worker thread for the request it runs, and the sandbox calls around a guest's sleep.
//!
//! A leaf, so that `net` (which owns admission and the slots) and `sandbox`
//! (which knows when a guest sleeps) meet here without importing each other.
//! The hook is per thread and per request: [`during`] installs it for one
//! call and removes it afterwards, panics included.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// What a request running on this thread can do about its run slot.
pub trait Pause {
    /// The request is about to sleep: lend its slot to another request.
    /// False when it keeps the slot (no slot to lend, or the budget of
    /// sleeping requests is spent); then it must not call [`Pause::resume`].
    fn park(&self) -> bool;
    /// The sleep is over: blocks until the request holds a slot again. False
    /// if `until` came first; the request then runs on without a slot and
    /// must stop at once.
    fn resume(&self, until: Instant) -> bool;
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<dyn Pause>>> = const { RefCell::new(None) };
}

/// Removes the hook when the call it was installed for ends.
struct Installed(Option<Rc<dyn Pause>>);

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.0.take();
        CURRENT.with(|c| *c.borrow_mut() = previous);
    }
}

/// Runs `f` with `pause` as this thread's hook.
pub fn during<R>(pause: Rc<dyn Pause>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|c| c.borrow_mut().replace(pause));
    let _installed = Installed(previous);
    f()
}

/// Lends the current request's slot, if a hook is installed and it agrees.
pub fn park() -> bool {
    let hook = CURRENT.with(|c| c.borrow().clone());
    hook.is_some_and(|h| h.park())
}

/// Takes a slot back after [`park`] said true.
pub fn resume(until: Instant) -> bool {
    let hook = CURRENT.with(|c| c.borrow().clone());
    hook.is_none_or(|h| h.resume(until))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Counting {
        parks: Cell<u32>,
        resumes: Cell<u32>,
    }

    impl Pause for Counting {
        fn park(&self) -> bool {
            self.parks.set(self.parks.get() + 1);
            true
        }
        fn resume(&self, _until: Instant) -> bool {
            self.resumes.set(self.resumes.get() + 1);
            false
        }
    }

    #[test]
    fn the_hook_is_there_only_during_its_call_even_when_it_panics() {
        assert!(!park(), "no hook: nothing is lent");
        assert!(resume(Instant::now()), "no hook: nothing to wait for");
        let hook = Rc::new(Counting {
            parks: Cell::new(0),
            resumes: Cell::new(0),
        });
        let seen = during(hook.clone(), || (park(), resume(Instant::now())));
        assert_eq!(seen, (true, false));
        assert_eq!((hook.parks.get(), hook.resumes.get()), (1, 1));
        let hook2: Rc<dyn Pause> = hook.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            during(hook2, || panic!("guest host call panicked"))
        }));
        assert!(result.is_err());
        assert!(!park(), "the hook outlived a panicking call");
        assert_eq!(hook.parks.get(), 1);
    }
}
