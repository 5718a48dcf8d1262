//! Parking on an address, as `chan.rs` and `sync.rs` expect it, on the one thread: a
//! waiter is queued on its key in the scheduler and blocked; a waker takes it off and
//! makes it runnable. Nothing runs between a waiter's check of its condition and its
//! block (one task runs at a time, and neither switches), so no wake-up is lost.
use crate::clock;
use crate::sched::{self, Call, Sim};
use crate::HOST;

/// How a wait ended.
pub(crate) enum Wake {
    /// Woken, or the condition no longer held: look again.
    Woken,
    TimedOut,
    Cancelled,
}

/// How a channel call backs off before it waits (see the native plugin's `wait.rs`):
/// no spinning (the partner is a task of this thread), one switch point.
pub(crate) struct Backoff {
    pub(crate) spin_steps: u32,
    pub(crate) steps: u32,
    pub(crate) snooze_before_queueing: bool,
}

pub(crate) fn backoff() -> Backoff {
    Backoff { spin_steps: 0, steps: 1, snooze_before_queueing: false }
}

/// A switch point inside a channel call about to wait.
pub(crate) fn backoff_yield() {
    if let Some(sim) = sched::here() {
        sim.step(sim.call());
    }
}

/// A channel waiter never watches for its partner before it parks: a watch spins on
/// real time, which the simulation neither has nor may let a schedule depend on.
pub(crate) fn may_watch() -> bool {
    false
}

/// Back-offs always take their switch points: virtual time has no overload, and the
/// schedule must not depend on how long a real yield took.
pub(crate) fn yielding_pays() -> bool {
    true
}

/// True when the calling task has been cancelled (and the runtime does not mask it).
pub(crate) fn cancelled() -> bool {
    HOST.cancel_pending()
}

fn sim() -> &'static Sim {
    sched::here().expect("the sim platform refuses calls from threads it does not run")
}

/// Parks the caller on `key` while `still_waiting()` holds, until woken, the deadline,
/// or a cancellation of the calling task. A cancellation point. The call it is in is
/// the one the task entered last.
pub(crate) fn park(key: usize, still_waiting: impl FnOnce() -> bool, deadline: i64) -> Wake {
    let sim = sim();
    park_in(sim, sim.call(), key, still_waiting, deadline, true)
}

/// As `park`, in `call`; `cancellable` false for lock acquisition.
pub(crate) fn park_in(
    sim: &Sim,
    call: Call,
    key: usize,
    still_waiting: impl FnOnce() -> bool,
    deadline: i64,
    cancellable: bool,
) -> Wake {
    if cancellable && cancelled() {
        return Wake::Cancelled;
    }
    if !still_waiting() {
        return Wake::Woken;
    }
    let mut queue = true;
    loop {
        if sim.block(call, key, deadline, queue) {
            return Wake::Woken;
        }
        queue = false;
        if cancellable && cancelled() {
            sim.unqueue(key);
            return Wake::Cancelled;
        }
        if clock::expired(deadline) {
            sim.unqueue(key);
            return Wake::TimedOut;
        }
        // Made runnable by a cancellation during a wait that ignores it: wait on.
    }
}

/// Wakes every waiter parked on `key`.
pub(crate) fn wake_all(key: usize) {
    if let Some(sim) = sched::here() {
        sim.wake(key, usize::MAX);
    }
}

/// Wakes one waiter parked on `key` (the scheduler's choice).
pub(crate) fn wake_one(key: usize) {
    if let Some(sim) = sched::here() {
        sim.wake(key, 1);
    }
}
