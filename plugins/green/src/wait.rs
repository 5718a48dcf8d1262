//! Parking on an address, for green tasks and for OS threads alike.
//!
//! A waiter puts a node on the bucket of the address it waits on (a fixed table of
//! locked queues, as parking_lot does), after checking under the bucket's lock that it
//! still has to wait; a waker takes nodes off under the same lock, marks them woken and
//! only then, outside the lock, wakes their owner. So a wake-up is never lost. A green
//! task waits by suspending its coroutine (its worker runs other tasks meanwhile); a
//! thread that is not a task (the host's `main`, a thread of its own) waits in the OS.
//!
//! A queue entry holds the key and the owner to wake, and where its waiter learns that
//! it was woken: a flag in the task (`Task::park_woken`), which the waker touches anyway
//! to wake it, or for a thread that is not a task a flag on its stack. With many parked
//! tasks their stacks are cold: when the waker read the owner from a node on the
//! waiter's stack, that one cache and TLB miss was 5 % of an echo server's CPU at 10,000
//! connections, and a store there costs about as much. An entry leaves its queue either
//! through a waker (which sets the flag) or through its own waiter, when it gives up
//! (deadline, cancellation): the waiter never returns while its entry is queued.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::sync::Arc;

use weft_platform::fork_lock::ForkMutex;
use weft_platform::once::ForkSafeOnce;
use weft_platform::WEFT_FOREVER;

use crate::clock;
use crate::lock::LockWake;
use crate::sched::{self, Task};
use crate::yields;
use crate::HOST;

/// How a wait ended.
pub(crate) enum Wake {
    /// Woken, or the condition no longer held: look again.
    Woken,
    TimedOut,
    Cancelled,
}

enum Owner {
    Task(Arc<Task>),
    /// A thread that is not a task, and its `woken` flag (on its stack, alive while its
    /// entry is queued).
    Thread(std::thread::Thread, *const AtomicBool),
}

/// A parked waiter: the key it waits on and who to wake.
struct Waiter {
    key: usize,
    owner: Owner,
}

impl Waiter {
    /// Whether this is the entry of the waiter whose flag is `flag`.
    fn is(&self, flag: &AtomicBool) -> bool {
        match &self.owner {
            Owner::Task(t) => std::ptr::eq(&t.park_woken, flag),
            Owner::Thread(_, woken) => std::ptr::eq(*woken, flag),
        }
    }

    /// Taken off its queue by a waker (under the bucket's lock): marks the waiter woken
    /// and gives who to wake.
    fn woken(self) -> Owner {
        match &self.owner {
            Owner::Task(t) => t.park_woken.store(true, Release),
            // SAFETY: a queued entry's flag lives until the entry leaves the queue, and
            // it leaves only under the bucket's lock, which the caller holds (its waiter
            // may return as soon as it sees the flag: nothing touches it after this).
            Owner::Thread(_, woken) => unsafe { &**woken }.store(true, Release),
        }
        self.owner
    }
}

struct Bucket(ForkMutex<Queue>);

struct Queue {
    nodes: VecDeque<Waiter>,
}

impl Queue {
    const fn new() -> Self {
        Queue { nodes: VecDeque::new() }
    }
}

// SAFETY: a thread's flag pointer is only followed under the bucket's lock, while its
// waiter is queued (see the module comment); task and thread handles are handed
// between threads by the scheduler anyway.
unsafe impl Sync for Bucket {}

const BUCKET_BITS: u32 = 14;
static BUCKETS: [Bucket; 1 << BUCKET_BITS] = [const { Bucket(ForkMutex::new(Queue::new())) }; 1 << BUCKET_BITS];

/// Registers (once) the `fork()` handler that empties every bucket in a child.
/// (A `ForkSafeOnce`: a child forked during another thread's registration must not wait
/// for it.)
static REGISTERED: ForkSafeOnce = ForkSafeOnce::new();

pub(crate) fn forget_parent_waiters_in_children() {
    REGISTERED.call_once(|| {
        // SAFETY: a plain function that lives as long as the plugin, which is never
        // unloaded while a runtime uses it.
        unsafe { libc::pthread_atfork(None, None, Some(empty_buckets_in_child)) };
    });
}

/// In a child of fork() every queued node is a waiter of the parent's, which the child
/// does not have, and a bucket may have been locked by one of the parent's threads at
/// the instant of the fork: every bucket is made free and empty (its old queue is
/// forgotten, not dropped, since it may have been half-changed).
extern "C" fn empty_buckets_in_child() {
    REGISTERED.mark_done();
    for bucket in &BUCKETS {
        // SAFETY: the child's only thread (this one) resets a lock no thread of its holds,
        // and replaces the data behind it without reading it.
        unsafe {
            bucket.0.raw().reset_in_child();
            std::ptr::write(bucket.0.data_ptr(), Queue::new());
        }
    }
}

fn bucket(key: usize) -> &'static Bucket {
    let hash = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKET_BITS);
    &BUCKETS[hash as usize]
}

/// How a channel call backs off before it waits (see the native plugin's `wait.rs`). A
/// task does not spin: its partner is usually a task, often queued on the same worker,
/// which a spin or an OS yield only delays (and spinning keeps two partners on two
/// workers, where parking lets them meet on one, through the LIFO slot); it yields
/// once, which lets that partner run (`sched::yield_to_partner`, which keeps the yielder
/// on its worker). A thread that is not a task backs off as on the native platform: its
/// partner runs on another CPU.
pub(crate) struct Backoff {
    pub(crate) spin_steps: u32,
    pub(crate) steps: u32,
    pub(crate) snooze_before_queueing: bool,
}

pub(crate) fn backoff() -> Backoff {
    if sched::on_task() {
        Backoff { spin_steps: 0, steps: 1, snooze_before_queueing: false }
    } else {
        Backoff { spin_steps: 6, steps: 10, snooze_before_queueing: true }
    }
}

/// How a contended mutex's wait backs off before it parks (see the native plugin's
/// lock.rs): `spin_steps` steps of `2 << step` spins, then yields, up to `steps` in
/// all. A task spins a little and yields a few times (its yield runs the worker's other
/// tasks, each of which may be a waiter yielding in turn: with many tasks on one lock,
/// long yield phases only shuffle waiters); a thread that is not a task backs off as on
/// the native platform.
pub(crate) struct LockBackoff {
    pub(crate) spin_steps: u32,
    pub(crate) steps: u32,
}

pub(crate) fn lock_backoff() -> LockBackoff {
    if sched::on_task() {
        LockBackoff { spin_steps: 3, steps: 10 }
    } else {
        LockBackoff { spin_steps: 0, steps: 20 }
    }
}

/// Whether a condition waiter may watch for its signal before it parks (the native
/// plugin's lock.rs, `parking::watch`): a task never (its worker runs other tasks
/// instead, the signaller often among them); a thread as on the native platform.
pub(crate) fn may_watch() -> bool {
    !sched::on_task() && yields::yielding_pays()
}

/// Lets a partner that is about to complete the caller's operation run (a channel
/// waiter backing off before it parks): on a task, the tasks queued on this worker run
/// first (the partner is often one of them), the caller kept off the run queue where
/// one task only waits there; on a thread, another OS thread.
pub(crate) fn backoff_yield() {
    if sched::on_task() {
        sched::yield_to_partner();
    } else {
        yields::timed_yield();
    }
}

/// A contended mutex's back-off yield (see the native plugin's `wait.rs`): true if it
/// was fast; a task's yield always counts as fast.
pub(crate) fn lock_yield() -> bool {
    if sched::on_task() {
        sched::yield_now();
        true
    } else {
        yields::ungated_yield()
    }
}

/// Whether a back-off should yield before it parks: a task always (its yield lets the
/// worker's other tasks run, the partner often among them); a thread not while yields
/// have been slow (more runnable threads than CPUs, `yields.rs` of the native plugin).
pub(crate) fn yielding_pays() -> bool {
    sched::on_task() || yields::yielding_pays()
}

/// True when the calling task has been cancelled (and the runtime does not mask it).
pub(crate) fn cancelled() -> bool {
    HOST.cancel_pending()
}

/// Parks the caller on `key` while `still_waiting()` holds (asked under the bucket's
/// lock), until woken, the deadline, or a cancellation of the calling task. A
/// cancellation point.
pub(crate) fn park(key: usize, still_waiting: impl FnOnce() -> bool, deadline: i64) -> Wake {
    park_on(key, still_waiting, |_| {}, deadline, true)
}

/// As `park`, but not a cancellation point (lock acquisition).
pub(crate) fn park_uncancellable(key: usize, still_waiting: impl FnOnce() -> bool, deadline: i64) -> Wake {
    park_on(key, still_waiting, |_| {}, deadline, false)
}

/// Parks a lock waiter on `key` while `still_waiting()` holds (asked under the bucket's
/// lock), until woken or the deadline; not a cancellation point. On a timeout,
/// `timed_out(last)` runs under the bucket's lock, `last` telling whether no other
/// waiter is left on the key.
pub(crate) fn park_lock(
    key: usize,
    still_waiting: impl FnOnce() -> bool,
    timed_out: impl FnOnce(bool),
    deadline: i64,
) -> LockWake {
    match park_on(key, still_waiting, timed_out, deadline, false) {
        Wake::Woken => LockWake::Retry,
        Wake::TimedOut | Wake::Cancelled => LockWake::TimedOut,
    }
}

/// Wakes the oldest lock waiter parked on `key`, if any; `release` runs under the
/// bucket's lock, so that the lock's state changes atomically with the queue.
pub(crate) fn wake_one_lock(key: usize, release: impl FnOnce()) {
    let owner = {
        let mut queue = bucket(key).0.lock();
        let at = queue.nodes.iter().position(|w| w.key == key);
        let waiter = at.map(|i| queue.nodes.remove(i).expect("a queued waiter"));
        release();
        waiter.map(Waiter::woken)
    };
    match owner {
        Some(Owner::Task(t)) => sched::wake(&t),
        Some(Owner::Thread(t, _)) => t.unpark(),
        None => {}
    }
}

/// Parks on `key`; on giving up (deadline, cancellation), `give_up(last)` runs under
/// the bucket's lock.
fn park_on(
    key: usize,
    still_waiting: impl FnOnce() -> bool,
    give_up: impl FnOnce(bool),
    deadline: i64,
    cancellable: bool,
) -> Wake {
    let task = sched::current_task();
    let is_task = task.is_some();
    let thread_woken = AtomicBool::new(false);
    let woken: &AtomicBool = task.as_ref().map_or(&thread_woken, |t| &t.park_woken);
    let b = bucket(key);
    {
        let mut queue = b.0.lock();
        if cancellable && cancelled() {
            return Wake::Cancelled;
        }
        if !still_waiting() {
            return Wake::Woken;
        }
        woken.store(false, Relaxed);
        let owner = match &task {
            Some(t) => Owner::Task(Arc::clone(t)),
            None => Owner::Thread(std::thread::current(), woken),
        };
        queue.nodes.push_back(Waiter { key, owner });
    }
    let timer = match (&task, deadline) {
        (Some(t), d) if d != WEFT_FOREVER => Some(t.sched.add_timer(d, t)),
        _ => None,
    };
    let mut give_up = Some(give_up);
    let outcome = loop {
        if is_task {
            sched::suspend_park();
        } else {
            // A host thread's timed park sets errno when it times out.
            let _errno = weft_platform::errno::Kept::new();
            match clock::instant(deadline) {
                None => std::thread::park(),
                Some(until) => {
                    let now = std::time::Instant::now();
                    if until > now {
                        std::thread::park_timeout(until - now);
                    }
                }
            }
        }
        // Woken: the waker took the entry off its queue before it set the flag, and
        // touches neither again, so the usual return takes no lock.
        if woken.load(Acquire) {
            break Wake::Woken;
        }
        let mut queue = b.0.lock();
        if woken.load(Relaxed) {
            break Wake::Woken;
        }
        let give_up_now = if cancellable && cancelled() {
            Some(Wake::Cancelled)
        } else if clock::expired(deadline) {
            Some(Wake::TimedOut)
        } else {
            None
        };
        if let Some(outcome) = give_up_now {
            queue.nodes.retain(|w| !w.is(woken));
            let last = !queue.nodes.iter().any(|w| w.key == key);
            if let Some(give_up) = give_up.take() {
                give_up(last);
            }
            break outcome;
        }
    };
    if let (Some(timer), Some(t)) = (timer, &task) {
        t.sched.remove_timer(timer);
    }
    outcome
}

/// Takes up to `max` waiters of `key` off their queue, oldest first, and wakes them;
/// how many it woke.
pub(crate) fn wake_n(key: usize, max: usize) -> usize {
    wake_n_to(key, max, true)
}

/// Wakes every waiter parked on `key`, queued behind the tasks already runnable.
pub(crate) fn wake_all_queued(key: usize) {
    wake_n_to(key, usize::MAX, false);
}

fn wake_n_to(key: usize, max: usize, next: bool) -> usize {
    let mut owners: smallvec::SmallVec<[Owner; 4]> = smallvec::SmallVec::new();
    {
        let mut queue = bucket(key).0.lock();
        let mut i = 0;
        while i < queue.nodes.len() && owners.len() < max {
            if queue.nodes[i].key != key {
                i += 1;
                continue;
            }
            owners.push(queue.nodes.remove(i).expect("a queued waiter").woken());
        }
    }
    let woken = owners.len();
    for owner in owners {
        match owner {
            Owner::Task(t) => sched::wake_to(&t, next),
            Owner::Thread(t, _) => t.unpark(),
        }
    }
    woken
}

/// Wakes every waiter parked on `key`.
pub(crate) fn wake_all(key: usize) {
    wake_n(key, usize::MAX);
}

/// Wakes the oldest waiter parked on `key`.
pub(crate) fn wake_one(key: usize) {
    wake_n(key, 1);
}
