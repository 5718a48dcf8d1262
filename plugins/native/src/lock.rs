//! Mutexes and condition variables in the plugin bytes of host memory, over the crate's
//! `wait` parking (keyed by the object's address). Shared as source by the native
//! plugin (where a waiter is a thread) and the green one (where it is a task): each
//! provides `clock`, `HOST` and a `wait` with `park`, `park_lock`, `wake_one`,
//! `wake_one_lock`, `wake_all`, `cancelled`, `lock_backoff` and `Wake` (and uses this
//! file's `LockWake` in `park_lock`).
//!
//! * A mutex is one byte, after parking_lot's `RawMutex`: bit 0 `LOCKED`, bit 1 `PARKED`
//!   (somebody may be parked on it: set by a waiter before it parks, cleared by a
//!   release that wakes one and by the last waiter that gives up, set again by the
//!   woken waiter as it takes the lock or parks again). 0 is free and 1 held with
//!   nobody parked, so its 0 -> 1 and 1 -> 0 transitions are the whole
//!   uncontended path: the plugins claim `WEFT_CAP_MUTEX_BYTE` and libweft makes them
//!   itself; this code runs for the rest (a wait, a release with waiters, a try while
//!   waiters are parked on a free lock). A waiter yields while nobody is parked, then
//!   parks; a release wakes one waiter without handing the lock over (the releaser, or
//!   a yielding waiter, may take it again first: the lock stays busy while the woken
//!   waiter gets going), and wakes no other until that one is back. No handoff for
//!   fairness, as with glibc's and std's mutexes: parking_lot's (every 0.5-1 ms) gave
//!   the runtime's own lock to a woken thread that the overloaded machine did not run
//!   for a while, and stops of the world waited for it (the soak's longest wait, 3-74
//!   ms before, 170-580 ms with the handoff).
//! * A condition is a sequence number: a waiter reads it under the mutex, releases the
//!   mutex and parks while it is unchanged; a signal bumps it and wakes. On an OS thread
//!   with a CPU to spare, the waiter first watches the number for a while
//!   (`parking::watch`): a signaller on another CPU answers a hand-off within
//!   microseconds, and then nobody sleeps or wakes.
//! * The runtime's parking on an address (`park` / `unpark`: `weft_wait_on`,
//!   `weft_park`, the semaphores, barriers and once) is a wait on the same parking,
//!   under keys of their own.
use std::ffi::c_void;
use std::sync::atomic::{
    AtomicU32, AtomicU8, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

use weft_platform::parking::watch;
use weft_platform::*;

use crate::clock;
use crate::wait::{self, Wake};
use crate::HOST;

/// How a lock waiter's park ended (each plugin's `wait::park_lock`).
pub(crate) enum LockWake {
    /// Woken (never with the lock: whoever takes it first has it), or the lock changed
    /// before it slept: try again.
    Retry,
    TimedOut,
}

pub(crate) const MUTEX_SIZE: u32 = 1;
pub(crate) const COND_SIZE: u32 = 8;

const LOCKED: u8 = 1;
const PARKED: u8 = 2;

// How the contended lock's wait backs off before it parks, while nobody is parked on
// the lock: `wait::lock_backoff()`'s `spin_steps` steps of 2, 4, 8... pauses, then
// yields (`wait::backoff_yield`: the thread on native, the task on green), `steps` in
// all. On OS threads it does not spin: with two threads on one lock (2 CPUs), a waiter
// that spins catches the lock between two of its holder's critical sections and the
// two trade it, and its cache line, at every lock (40-50 M lock+unlock pairs/s), where
// one that yields leaves the holder to run on alone meanwhile (100-120 M; parking_lot,
// which spins 14 pauses then yields up to 7 times, 125-145 M: its spinner rarely finds
// its lock free, a weft_mutex_lock + unlock pair leaves it free longer). 20 yields
// beat 10 and 30 there (docs/performance.md, "Fast paths (issue 19)").

/// # Safety
/// `obj` is the plugin's byte of a mutex (`MUTEX_SIZE`: libweft keeps it beside its tag,
/// and changes the word around it atomically), initialised by `mutex_init`.
unsafe fn mutex_byte<'a>(obj: *mut c_void) -> &'a AtomicU8 {
    // SAFETY: see above.
    unsafe { &*(obj as *const AtomicU8) }
}

/// A condition's plugin bytes (`COND_SIZE`): the sequence number that signals bump,
/// and how many of its waiters' watches in a row saw no signal (`parking::watch`).
#[repr(C)]
struct Cond {
    seq: AtomicU32,
    unanswered: AtomicU32,
}

/// # Safety
/// `obj` is the plugin bytes of a condition, 8-aligned, initialised by `cond_init`.
unsafe fn cond_of<'a>(obj: *mut c_void) -> &'a Cond {
    // SAFETY: see above.
    unsafe { &*(obj as *const Cond) }
}

/// Takes the lock if it is free, whether or not waiters are parked on it.
fn try_lock(m: &AtomicU8) -> bool {
    let mut state = m.load(Relaxed);
    loop {
        if state & LOCKED != 0 {
            return false;
        }
        match m.compare_exchange_weak(state, state | LOCKED, Acquire, Relaxed) {
            Ok(_) => return true,
            Err(now) => state = now,
        }
    }
}

/// The contended path (parking_lot's `lock_slow`): while nobody is parked on the lock,
/// or when this waiter was just woken, and `spin` is asked for, a few spins and yields
/// (the holder of a short critical section releases it meanwhile, and the caller takes
/// it without any thread parking or waking); then it sets `PARKED` and parks until
/// woken or the deadline. A woken waiter sets `PARKED` again in the swap that takes the
/// lock (see `unlock`). True if locked.
fn lock_slow(m: &AtomicU8, spin: bool, deadline: i64) -> bool {
    let key = m as *const AtomicU8 as usize;
    let wait::LockBackoff { spin_steps, steps } = wait::lock_backoff();
    let mut step = if spin { 0 } else { steps };
    let mut woken = false;
    let mut state = m.load(Relaxed);
    loop {
        if state & LOCKED == 0 {
            let restore = if woken { PARKED } else { 0 };
            match m.compare_exchange_weak(state, state | LOCKED | restore, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(now) => state = now,
            }
            continue;
        }
        // Nobody parked ahead of us, or we are the one woken: spin or yield, while that
        // is worth it.
        if (state & PARKED == 0 || woken) && step < steps {
            if step < spin_steps {
                (0..2u32 << step).for_each(|_| std::hint::spin_loop());
                step += 1;
            } else if wait::yielding_pays() && wait::lock_yield() {
                step += 1;
            } else {
                // Overloaded (the yield gate is closed, or this yield gave the CPU away
                // for others' slices): park rather than go behind every runnable thread.
                step = steps;
            }
            state = m.load(Relaxed);
            continue;
        }
        if state & PARKED == 0 {
            if let Err(now) = m.compare_exchange_weak(state, state | PARKED, Relaxed, Relaxed) {
                state = now;
                continue;
            }
        }
        let still_locked = || m.load(Relaxed) == LOCKED | PARKED;
        // A waiter that gives up clears `PARKED` if it was the last one parked.
        let timed_out = |last: bool| {
            if last {
                m.fetch_and(!PARKED, Relaxed);
            }
        };
        match wait::park_lock(key, still_locked, timed_out, deadline) {
            LockWake::Retry => woken = true,
            // Look once more: the lock may have been released as the deadline passed.
            LockWake::TimedOut => return try_lock(m),
        }
        step = if spin { 0 } else { steps };
        state = m.load(Relaxed);
    }
}

/// Takes the lock if it is free now or within a few hundred pauses (its holder runs on
/// another CPU and is about to release it); false if it stayed held.
fn take_soon(m: &AtomicU8) -> bool {
    for _ in 0..TAKE_SOON_SPINS {
        if m.load(Relaxed) & LOCKED == 0 && try_lock(m) {
            return true;
        }
        std::hint::spin_loop();
    }
    false
}

const TAKE_SOON_SPINS: u32 = 256;

/// Releases the lock; with waiters parked, wakes one and leaves the byte at 0, free
/// for whoever takes it first (no handoff). The woken waiter sets `PARKED` again when
/// it takes the lock or parks, so until then the others stay parked and the lock's
/// holder keeps libweft's fast paths. parking_lot keeps `PARKED` while others are
/// parked instead: then every release woke one more, and a holder that retakes the
/// lock at once (four green tasks on one lock, two workers) woke the whole queue in
/// turn, each waiter to fail and park again, at 39-72 M lock+unlock pairs/s against
/// 124-153 M now.
fn unlock(m: &AtomicU8) {
    if m.compare_exchange(LOCKED, 0, Release, Relaxed).is_ok() {
        return;
    }
    wait::wake_one_lock(m as *const AtomicU8 as usize, || m.store(0, Release));
}

pub(crate) unsafe extern "C" fn mutex_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    // SAFETY: the object's plugin bytes.
    unsafe { (obj as *mut AtomicU8).write(AtomicU8::new(0)) };
    WEFT_OK
}

pub(crate) unsafe extern "C" fn sync_destroy(_obj: *mut c_void) -> weft_status_t {
    WEFT_OK
}

pub(crate) unsafe extern "C" fn mutex_lock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised mutex.
        let m = unsafe { mutex_byte(obj) };
        if !try_lock(m) {
            HOST.blocking(|| lock_slow(m, true, WEFT_FOREVER));
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn mutex_try_lock(obj: *mut c_void) -> weft_status_t {
    // SAFETY: an initialised mutex.
    if try_lock(unsafe { mutex_byte(obj) }) {
        WEFT_OK
    } else {
        WEFT_EBUSY
    }
}

pub(crate) unsafe extern "C" fn mutex_lock_until(obj: *mut c_void, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised mutex.
        let m = unsafe { mutex_byte(obj) };
        if try_lock(m) {
            return WEFT_OK;
        }
        if clock::expired(deadline) {
            return WEFT_ETIMEDOUT;
        }
        if HOST.blocking(|| lock_slow(m, true, deadline)) {
            WEFT_OK
        } else {
            WEFT_ETIMEDOUT
        }
    })
}

pub(crate) unsafe extern "C" fn mutex_unlock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised mutex the caller holds.
        unlock(unsafe { mutex_byte(obj) });
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    // SAFETY: the object's plugin bytes.
    unsafe { (obj as *mut Cond).write(Cond { seq: AtomicU32::new(0), unanswered: AtomicU32::new(0) }) };
    WEFT_OK
}

pub(crate) unsafe extern "C" fn cond_wait_until(cond: *mut c_void, mutex: *mut c_void, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        if wait::cancelled() {
            return WEFT_ECANCELED;
        }
        if clock::expired(deadline) {
            return WEFT_ETIMEDOUT;
        }
        // SAFETY: an initialised condition and a mutex the caller holds.
        let (c, m) = unsafe { (cond_of(cond), mutex_byte(mutex)) };
        // Read under the mutex: a signal sent after we release it changes `seq`, so the
        // park below either sees the change or is queued when it is woken.
        let seen = c.seq.load(Acquire);
        let woke = HOST.blocking(|| {
            unlock(m);
            // On an OS thread with a CPU to spare, watch for the signal before sleeping:
            // the other side of a hand-off, running on another CPU, often answers
            // within microseconds, and then nobody sleeps or wakes.
            let signalled = || c.seq.load(Acquire) != seen;
            if wait::may_watch() && watch::watch(&c.unanswered, deadline, signalled) {
                // The signaller runs on another CPU and releases the mutex within a
                // fraction of a microsecond: watch for that too before backing off as a
                // contended lock does.
                if !take_soon(m) {
                    lock_slow(m, true, WEFT_FOREVER);
                }
                return Wake::Woken;
            }
            let woke = wait::park(cond as usize, || !signalled(), deadline);
            // The signaller usually still holds the mutex and keeps it for a while (it
            // returns from the signal, then unlocks): park at once rather than spin.
            if !try_lock(m) {
                lock_slow(m, false, WEFT_FOREVER);
            }
            woke
        });
        match woke {
            Wake::Woken => WEFT_OK,
            Wake::TimedOut => WEFT_ETIMEDOUT,
            Wake::Cancelled => WEFT_ECANCELED,
        }
    })
}

pub(crate) unsafe extern "C" fn cond_signal(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised condition.
        unsafe { cond_of(obj) }.seq.fetch_add(1, AcqRel);
        wait::wake_one(obj as usize);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_broadcast(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised condition.
        unsafe { cond_of(obj) }.seq.fetch_add(1, AcqRel);
        wait::wake_all(obj as usize);
        WEFT_OK
    })
}

/// The runtime's parking keys are host addresses with the top bit set: user-space
/// addresses never have it, so they never meet the addresses this plugin parks on
/// itself (a mutex's byte, a condition's sequence).
const RUNTIME_KEY: usize = 1 << (usize::BITS - 1);

pub(crate) unsafe extern "C" fn park(
    _rt: *mut weft_plat_rt_t,
    key: usize,
    validate: unsafe extern "C" fn(ud: *mut c_void) -> bool,
    ud: *mut c_void,
    deadline: i64,
) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's callback with its own `ud`, for the length of this call.
        let still = || unsafe { validate(ud) };
        match HOST.blocking(|| wait::park(key | RUNTIME_KEY, still, deadline)) {
            Wake::Woken => WEFT_OK,
            Wake::TimedOut => WEFT_ETIMEDOUT,
            Wake::Cancelled => WEFT_ECANCELED,
        }
    })
}

pub(crate) unsafe extern "C" fn unpark(_rt: *mut weft_plat_rt_t, key: usize, n: usize) -> usize {
    HOST.guard_or(0, || wait::wake_n(key | RUNTIME_KEY, n))
}
