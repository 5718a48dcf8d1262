//! Parking a task on an address, with deadlines and cancellation.
//!
//! Every wait that is a cancellation point goes through [`park`]: the waiter records the
//! address it parks on, and [`cancel`] wakes exactly that waiter with a distinct token.
//! The cancellation flag is the runtime's (asked through `host->cancel_pending`, which
//! also knows when the runtime masks cancellation for its own waits). The runtime sets
//! the flag before it calls `cancel`, and the waiter records its address before it
//! validates, both SeqCst: either the canceller sees the address or the validation sees
//! the flag, so a cancel is never lost.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use weft_platform::parking::{self, FilterOp, ParkResult};

use crate::io::WakeFd;
use crate::lock::LockWake;
use crate::yields;
use crate::HOST;

/// What the native plugin knows of one of its tasks, shared by the task's thread and
/// the handle held by the runtime.
#[derive(Default)]
pub(crate) struct TaskState {
    pub(crate) done: AtomicBool,
    /// Joins parked on `done` (counted before they park, SeqCst, as `done` is stored):
    /// a task nobody waits for ends without a wake-up call.
    pub(crate) joiners: AtomicUsize,
    parked_on: AtomicUsize,
    /// The wake-up eventfd of the IO wait the task is in, if any (see `io.rs`).
    io_wake: weft_platform::fork_lock::ForkMutex<Option<Arc<WakeFd>>>,
}

impl TaskState {
    /// Records (or clears) the eventfd that `cancel` writes to while the task waits on
    /// an fd.
    pub(crate) fn set_io_wake(&self, wake: Option<Arc<WakeFd>>) {
        *self.io_wake.lock() = wake;
    }

    /// The address the task parks on while it sleeps: its own, nobody else's.
    pub(crate) fn sleep_key(&self) -> usize {
        &self.parked_on as *const AtomicUsize as usize
    }
}

weft_platform::tls_slot!(
    /// The task running on each thread: a pointer to its state, 0 on a thread that is
    /// not a task. Neither a `thread_local!` nor a pthread key: the plugin is
    /// `dlopen`ed, so its thread-locals are dynamic TLS, which glibc allocates with
    /// `malloc` on each thread's first touch (that first `malloc` set up the thread's
    /// allocator cache, and the thread's end handed it back, in every task); and a
    /// thread that set a key's value pays, as it ends, glibc's scan of every key for
    /// destructors (about 740 instructions of an empty task's spawn and join).
    mod current_slot: 1 words in weft_native_current_task
);

/// Marks the calling thread as running `task` (until `set_current(null)`).
pub(crate) fn set_current(task: *const TaskState) {
    current_slot::write::<0>(task as usize);
}

/// The native task running on this thread, if the thread is one.
pub(crate) fn current<'a>() -> Option<&'a TaskState> {
    // SAFETY: the pointer is set by the task's own thread for the duration of the task,
    // and the thread holds a reference on the state for that long.
    unsafe { (current_slot::read::<0>() as *const TaskState).as_ref() }
}

/// True when the calling task has been cancelled (and the runtime does not mask it).
pub(crate) fn cancelled() -> bool {
    HOST.cancel_pending()
}

/// How a channel call backs off before it waits: `spin_steps` steps of `1 << step`
/// spins, then `backoff_yield`s, up to `steps` in all; and whether a buffered call that
/// finds the buffer full (empty) snoozes, trying again, before it queues itself.
pub(crate) struct Backoff {
    pub(crate) spin_steps: u32,
    pub(crate) steps: u32,
    pub(crate) snooze_before_queueing: bool,
}

/// Threads: the partner runs on another CPU and often completes within a few spins.
pub(crate) fn backoff() -> Backoff {
    Backoff { spin_steps: 6, steps: 10, snooze_before_queueing: true }
}

/// How a contended mutex's wait backs off before it parks (see lock.rs): `spin_steps`
/// steps of `2 << step` spins, then yields, up to `steps` in all.
pub(crate) struct LockBackoff {
    pub(crate) spin_steps: u32,
    pub(crate) steps: u32,
}

/// Threads: no spin (it keeps the lock's cache line moving between the holder's CPU
/// and the waiter's), 20 yields.
pub(crate) fn lock_backoff() -> LockBackoff {
    LockBackoff { spin_steps: 0, steps: 20 }
}

/// Whether a condition waiter may watch for its signal before it parks (lock.rs,
/// `parking::watch`): not while yields have been slow (more runnable threads than
/// CPUs: the signaller may be waiting for this one).
pub(crate) fn may_watch() -> bool {
    yielding_pays()
}

/// Lets a partner that is about to complete the caller's operation run (a channel
/// waiter backing off before it parks): here, another OS thread. Timed (`yields.rs`).
pub(crate) fn backoff_yield() {
    yields::timed_yield();
}

/// A contended mutex's back-off yield (lock.rs): true if it was fast. A slow one
/// (other threads ran their slices meanwhile) ends this wait's yields but does not
/// close the gate: a lock that two threads trade on two CPUs with others runnable would
/// otherwise close it for everybody, and its waiters would then park at every wait.
pub(crate) fn lock_yield() -> bool {
    yields::ungated_yield()
}

/// Whether a back-off should yield before it parks: not while yields have been slow
/// (more runnable threads than CPUs, `yields.rs`).
pub(crate) fn yielding_pays() -> bool {
    yields::yielding_pays()
}

/// What an unpark tells its waiter: a wake-up, or a cancellation (see `cancel`).
const WAKE_TOKEN: usize = 0;
const CANCEL_TOKEN: usize = 1;

pub(crate) enum Wake {
    /// Woken, or the condition no longer held: look again.
    Woken,
    TimedOut,
    Cancelled,
}

/// Parks the calling thread on `key` while `still_waiting()` holds, until woken, the
/// deadline, or (for a task) a cancellation.
pub(crate) fn park(key: usize, still_waiting: impl FnOnce() -> bool, deadline: i64) -> Wake {
    let me = current();
    if let Some(me) = me {
        me.parked_on.store(key, SeqCst);
    }
    let token = me.map_or(0, |m| m as *const TaskState as usize);
    let validate = || !cancelled() && still_waiting();
    let result = parking::park(key, validate, |_| {}, token, deadline);
    if let Some(me) = me {
        me.parked_on.store(0, SeqCst);
    }
    match result {
        // A masked wait woken by a cancel just looks again.
        ParkResult::Unparked(CANCEL_TOKEN) if cancelled() => Wake::Cancelled,
        ParkResult::Unparked(_) => Wake::Woken,
        ParkResult::TimedOut => Wake::TimedOut,
        // Validation failed: prefer "look again" so a wake-up that raced with the
        // cancellation is not swallowed; the cancellation is seen by the next wait.
        ParkResult::Invalid if cancelled() => Wake::Cancelled,
        ParkResult::Invalid => Wake::Woken,
    }
}

/// As `park`, but not a cancellation point (an rwlock's wait): its token is no task's,
/// so `cancel` never wakes it.
pub(crate) fn park_uncancellable(key: usize, still_waiting: impl FnOnce() -> bool, deadline: i64) -> Wake {
    match parking::park(key, still_waiting, |_| {}, 0, deadline) {
        ParkResult::TimedOut => Wake::TimedOut,
        ParkResult::Unparked(_) | ParkResult::Invalid => Wake::Woken,
    }
}

/// Parks a lock waiter on `key` while `still_waiting()` holds (asked under the
/// parking's lock), until woken or the deadline; not a cancellation point. On a
/// timeout, `timed_out(last)` runs under the parking's lock, `last` telling whether no
/// other waiter is left on the key.
pub(crate) fn park_lock(
    key: usize,
    still_waiting: impl FnOnce() -> bool,
    timed_out: impl FnOnce(bool),
    deadline: i64,
) -> LockWake {
    match parking::park(key, still_waiting, timed_out, 0, deadline) {
        ParkResult::TimedOut => LockWake::TimedOut,
        ParkResult::Unparked(_) | ParkResult::Invalid => LockWake::Retry,
    }
}

/// Wakes the oldest lock waiter parked on `key`, if any; `release` runs under the
/// parking's lock, so that the lock's state changes atomically with the queue.
pub(crate) fn wake_one_lock(key: usize, release: impl FnOnce()) {
    parking::unpark_one(key, WAKE_TOKEN, |_| release());
}

/// Wakes every thread parked on `key`.
pub(crate) fn wake_all(key: usize) {
    parking::unpark_all(key, WAKE_TOKEN);
}

/// Wakes up to `n` threads parked on `key`, oldest first; how many it woke.
pub(crate) fn wake_n(key: usize, n: usize) -> usize {
    let mut left = n;
    let filter = |_| {
        if left == 0 {
            return FilterOp::Stop;
        }
        left -= 1;
        FilterOp::Unpark
    };
    parking::unpark_filter(key, filter, WAKE_TOKEN)
}

/// Wakes one thread parked on `key`.
pub(crate) fn wake_one(key: usize) {
    parking::unpark_one(key, WAKE_TOKEN, |_| {});
}

/// Wakes `task` if it is parked in a cancellation point (the runtime has already set
/// its cancellation flag).
pub(crate) fn cancel(task: &TaskState) {
    if let Some(wake) = task.io_wake.lock().as_ref() {
        wake.signal();
    }
    let key = task.parked_on.load(SeqCst);
    if key == 0 {
        return;
    }
    let target = task as *const TaskState as usize;
    parking::unpark_filter(key, |token| if token == target { FilterOp::Unpark } else { FilterOp::Skip }, CANCEL_TOKEN);
}
