//! Mutexes and condition variables in the plugin bytes of host memory, over the crate's
//! `wait` parking (keyed by the object's address). Shared as source by the native
//! plugin (where a waiter is a thread) and the green one (where it is a task): each
//! provides `clock`, `HOST` and a `wait` with `park`, `park_uncancellable`, `wake_one`,
//! `wake_all`, `cancelled` and `Wake`.
//!
//! * A mutex is one byte: 0 free, 1 locked, 2 locked with waiters (the futex mutex, on a
//!   byte). Its 0 -> 1 and 1 -> 0 transitions are the whole uncontended path, so the
//!   plugins claim `WEFT_CAP_MUTEX_BYTE` and libweft makes them itself; this code runs
//!   for the rest (a wait, a release with waiters).
//! * A condition is a sequence number: a waiter reads it under the mutex, releases the
//!   mutex and parks while it is unchanged; a signal bumps it and wakes.
//! * The runtime's parking on an address (`park` / `unpark`: `weft_wait_on`,
//!   `weft_park`, the semaphores, barriers and once) is a wait on the same parking,
//!   under keys of their own.
use std::ffi::c_void;
use std::sync::atomic::{
    AtomicU32, AtomicU8, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

use weft_platform::*;

use crate::clock;
use crate::wait::{self, Wake};
use crate::HOST;

pub(crate) const MUTEX_SIZE: u32 = 1;
pub(crate) const COND_SIZE: u32 = 4;

const UNLOCKED: u8 = 0;
const LOCKED: u8 = 1;
const CONTENDED: u8 = 2;

/// Steps of the contended lock's wait before it parks: `SPIN_ONLY_STEPS` of 2, 4, 8
/// pauses, then yields (`wait::backoff_yield`: the thread on native, the task on green).
const SPIN_STEPS: u32 = 10;
const SPIN_ONLY_STEPS: u32 = 3;

/// # Safety
/// `obj` is the plugin bytes of a mutex, 8-aligned, initialised by `mutex_init`.
unsafe fn mutex_byte<'a>(obj: *mut c_void) -> &'a AtomicU8 {
    // SAFETY: see above.
    unsafe { &*(obj as *const AtomicU8) }
}

/// # Safety
/// `obj` is the plugin bytes of a condition, 8-aligned, initialised by `cond_init`.
unsafe fn cond_seq<'a>(obj: *mut c_void) -> &'a AtomicU32 {
    // SAFETY: see above.
    unsafe { &*(obj as *const AtomicU32) }
}

fn try_lock(m: &AtomicU8) -> bool {
    m.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).is_ok()
}

/// The contended path: first, while nobody is parked on the lock and `spin` is asked
/// for, a short spin and then a few yields (the holder of a short critical section
/// releases it meanwhile, and the caller takes it without any thread parking or
/// waking: parking_lot's way, which keeps a contended lock's throughput up); then it
/// parks until the deadline. True if locked.
fn lock_slow(m: &AtomicU8, spin: bool, deadline: i64) -> bool {
    if spin {
        for step in 0..SPIN_STEPS {
            let state = m.load(Relaxed);
            if state == UNLOCKED && try_lock(m) {
                return true;
            }
            if state == CONTENDED {
                break; // others are parked already: queue behind them
            }
            if step < SPIN_ONLY_STEPS {
                (0..2u32 << step).for_each(|_| std::hint::spin_loop());
            } else if wait::yielding_pays() {
                wait::backoff_yield();
            } else {
                break; // overloaded: park rather than go behind every runnable thread
            }
        }
    }
    let key = m as *const AtomicU8 as usize;
    loop {
        if m.swap(CONTENDED, Acquire) == UNLOCKED {
            return true;
        }
        if let Wake::TimedOut = wait::park_uncancellable(key, || m.load(Relaxed) == CONTENDED, deadline) {
            // Look once more: the lock may have been released as the deadline passed.
            return m.swap(CONTENDED, Acquire) == UNLOCKED;
        }
    }
}

fn unlock(m: &AtomicU8) {
    if m.swap(UNLOCKED, Release) == CONTENDED {
        wait::wake_one(m as *const AtomicU8 as usize);
    }
}

pub(crate) unsafe extern "C" fn mutex_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    // SAFETY: the object's plugin bytes.
    unsafe { (obj as *mut AtomicU8).write(AtomicU8::new(UNLOCKED)) };
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
    unsafe { (obj as *mut AtomicU32).write(AtomicU32::new(0)) };
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
        let (seq, m) = unsafe { (cond_seq(cond), mutex_byte(mutex)) };
        // Read under the mutex: a signal sent after we release it changes `seq`, so the
        // park below either sees the change or is queued when it is woken.
        let seen = seq.load(Acquire);
        let woke = HOST.blocking(|| {
            unlock(m);
            let woke = wait::park(cond as usize, || seq.load(Acquire) == seen, deadline);
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
        unsafe { cond_seq(obj) }.fetch_add(1, AcqRel);
        wait::wake_one(obj as usize);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_broadcast(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised condition.
        unsafe { cond_seq(obj) }.fetch_add(1, AcqRel);
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
