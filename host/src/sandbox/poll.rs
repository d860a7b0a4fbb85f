//! The host's own WASI `poll_oneoff`: sleeping that counts against the request's wall-clock deadline.
//!
//! wasmtime-wasi's version sleeps for as long as the guest asks, and epoch
//! interruption cannot stop a thread blocked in a host call, so a guest could
//! hold a worker forever with one sleep. This one replaces it in the linker:
//! clock subscriptions sleep at most until the request's wall deadline, which
//! then stops the guest; subscriptions on file descriptors are not supported
//! (`ENOTSUP`): a guest's descriptors are its log, a closed stdin and files,
//! none of which is worth waiting for.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Trap};

use super::{GuestState, Stop};

/// Shortest sleep for which a guest lends its run slot to another request
/// (`crate::pause`): lending and taking it back cost two trips through the
/// event loop, tens of microseconds, not worth it for a shorter nap.
pub(super) const PARK_AFTER: Duration = Duration::from_millis(1);

/// Most subscriptions in one call: wasi-libc polls a handful at once, and
/// reading each costs host time that no epoch can interrupt.
const MAX_SUBSCRIPTIONS: usize = 1024;

/// Size of a WASI p1 `subscription` and of an `event`, in bytes.
const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;

/// WASI p1 error numbers.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOTSUP: i32 = 58;

/// `subscription_u` tag of a clock subscription, and the absolute-time flag.
const EVENTTYPE_CLOCK: u8 = 0;
const SUBCLOCK_ABSTIME: u16 = 1;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;

/// The guest's monotonic clock: nanoseconds since the request's instance was
/// created, so that absolute monotonic deadlines here agree with what the
/// guest read from `clock_time_get`.
pub(super) struct GuestClock(pub(super) Instant);

impl wasmtime_wasi::HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// `poll_oneoff(in, out, nsubscriptions, nevents_out) -> errno`.
pub(super) fn poll_oneoff(
    mut caller: Caller<'_, GuestState>,
    subs: i32,
    events: i32,
    count: i32,
    nevents: i32,
) -> wasmtime::Result<i32> {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return Ok(ERRNO_FAULT);
    };
    let count = count as u32 as usize;
    if count == 0 || count > MAX_SUBSCRIPTIONS {
        return Ok(ERRNO_INVAL);
    }
    let origin = caller.data().timing.started;
    // (userdata, how long until it fires)
    let mut waits = Vec::with_capacity(count);
    let mut buf = [0u8; SUBSCRIPTION_SIZE];
    for i in 0..count {
        let at = subs as u32 as usize + i * SUBSCRIPTION_SIZE;
        if memory.read(&caller, at, &mut buf).is_err() {
            return Ok(ERRNO_FAULT);
        }
        if buf[8] != EVENTTYPE_CLOCK {
            return Ok(ERRNO_NOTSUP);
        }
        let clock = u32::from_le_bytes([buf[16], buf[17], buf[18], buf[19]]);
        let timeout = Duration::from_nanos(u64_at(&buf, 24));
        let absolute = u16::from_le_bytes([buf[40], buf[41]]) & SUBCLOCK_ABSTIME != 0;
        let wait = match (clock, absolute) {
            (CLOCK_REALTIME | CLOCK_MONOTONIC, false) => timeout,
            (CLOCK_REALTIME, true) => (UNIX_EPOCH + timeout)
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
            (CLOCK_MONOTONIC, true) => timeout.saturating_sub(origin.elapsed()),
            _ => return Ok(ERRNO_INVAL),
        };
        waits.push((u64_at(&buf, 0), wait));
    }
    let shortest = waits.iter().map(|w| w.1).min().unwrap_or(Duration::ZERO);
    if caller.data().timing.inline.is_some() && shortest > Duration::ZERO {
        // On the event loop a guest never sleeps: the request is given up
        // there and runs again, whole, on a worker (`inline`).
        caller.data_mut().timing.stop = Some(Stop::Moved);
        return Err(Trap::Interrupt.into());
    }
    let timing = &caller.data().timing;
    let left = timing.wall_limit.saturating_sub(timing.started.elapsed());
    let slept_from = Instant::now();
    let deadline = slept_from + left;
    // While it sleeps, its run slot serves another request (docs/ARCHITECTURE.md,
    // "Execution model"); it needs one again to go on.
    let lent = shortest.min(left) >= PARK_AFTER && crate::pause::park();
    if shortest >= left {
        // Sleeping that long would outlive the request: sleep to the deadline
        // (the client gets its answer then, not earlier) and stop the guest.
        // Its slot stays lent: what is left is the host's error answer.
        std::thread::sleep(left);
        let timing = &mut caller.data_mut().timing;
        timing.waited += slept_from.elapsed();
        timing.stop = Some(Stop::Wall(timing.started.elapsed()));
        return Err(Trap::Interrupt.into());
    }
    std::thread::sleep(shortest);
    if lent && !crate::pause::resume(deadline) {
        // No slot came back before the wall deadline: stop the guest.
        let timing = &mut caller.data_mut().timing;
        timing.waited += slept_from.elapsed();
        timing.stop = Some(Stop::Wall(timing.started.elapsed()));
        return Err(Trap::Interrupt.into());
    }
    caller.data_mut().timing.waited += slept_from.elapsed();
    let mut written = 0u32;
    for (userdata, wait) in waits {
        if wait > shortest {
            continue;
        }
        let mut event = [0u8; EVENT_SIZE];
        event[..8].copy_from_slice(&userdata.to_le_bytes());
        event[10] = EVENTTYPE_CLOCK;
        let at = events as u32 as usize + written as usize * EVENT_SIZE;
        if memory.write(&mut caller, at, &event).is_err() {
            return Ok(ERRNO_FAULT);
        }
        written += 1;
    }
    if memory
        .write(&mut caller, nevents as u32 as usize, &written.to_le_bytes())
        .is_err()
    {
        return Ok(ERRNO_FAULT);
    }
    Ok(ERRNO_SUCCESS)
}
