//! Rwlocks in the plugin bytes of host memory; nothing is allocated per object. Their
//! waiters park through the crate's `wait` (`park_uncancellable`, `wake_one`,
//! `wake_all`), keyed by the object's address: a thread sleeps on native, a green task
//! suspends. Shared as source by the native and green plugins, as `lock.rs` (mutexes and
//! conditions).
//!
//! * An rwlock is one 64-bit word: readers in the low 32 bits, a writer bit, and the
//!   number of waiting writers above it. Writers are preferred: once one waits, new
//!   readers wait too, until it gets the lock or gives up (a timed wait).
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use weft_platform::*;

use crate::wait;
use crate::HOST;

pub(crate) const RWLOCK_SIZE: u32 = 8;
pub(crate) const SYNC_ALIGN: u32 = 8;

unsafe fn word64<'a>(obj: *mut c_void) -> &'a AtomicU64 {
    // SAFETY: the runtime hands 8-aligned plugin bytes, initialised by `*_init`.
    unsafe { &*(obj as *const AtomicU64) }
}

const READERS: u64 = 0xffff_ffff;
const WRITER: u64 = 1 << 32;
const WAITING_WRITER: u64 = 1 << 33;

fn readers_key(l: &AtomicU64) -> usize {
    l as *const AtomicU64 as usize
}

fn writers_key(l: &AtomicU64) -> usize {
    l as *const AtomicU64 as usize + 4
}

fn try_read(l: &AtomicU64) -> bool {
    let mut s = l.load(Relaxed);
    loop {
        if s & !READERS != 0 || s & READERS == READERS {
            return false;
        }
        match l.compare_exchange_weak(s, s + 1, Acquire, Relaxed) {
            Ok(_) => return true,
            Err(now) => s = now,
        }
    }
}

fn try_write(l: &AtomicU64) -> bool {
    let mut s = l.load(Relaxed);
    loop {
        if s & (READERS | WRITER) != 0 {
            return false;
        }
        match l.compare_exchange_weak(s, s | WRITER, Acquire, Relaxed) {
            Ok(_) => return true,
            Err(now) => s = now,
        }
    }
}

pub(crate) unsafe extern "C" fn rwlock_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    // SAFETY: the object's plugin bytes.
    unsafe { (obj as *mut AtomicU64).write(AtomicU64::new(0)) };
    WEFT_OK
}

/// Takes shared access, waiting until `deadline`; false if it passed first.
fn read_until(l: &AtomicU64, deadline: i64) -> bool {
    if try_read(l) {
        return true;
    }
    HOST.blocking(|| loop {
        let woke = wait::park_uncancellable(readers_key(l), || l.load(Relaxed) & !READERS != 0, deadline);
        if try_read(l) {
            return true;
        }
        if let wait::Wake::TimedOut = woke {
            return false;
        }
    })
}

/// Takes exclusive access, waiting (counted among the waiting writers, which holds new
/// readers back) until `deadline`; false if it passed first.
fn write_until(l: &AtomicU64, deadline: i64) -> bool {
    if try_write(l) {
        return true;
    }
    HOST.blocking(|| {
        l.fetch_add(WAITING_WRITER, Relaxed);
        let mut s = l.load(Relaxed);
        loop {
            if s & (READERS | WRITER) == 0 {
                match l.compare_exchange_weak(s, (s - WAITING_WRITER) | WRITER, Acquire, Relaxed) {
                    Ok(_) => return true,
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }
            let woke = wait::park_uncancellable(writers_key(l), || l.load(Relaxed) & (READERS | WRITER) != 0, deadline);
            s = l.load(Relaxed);
            if let wait::Wake::TimedOut = woke {
                if s & (READERS | WRITER) != 0 {
                    stop_waiting_to_write(l);
                    return false;
                }
            }
        }
    })
}

/// A waiting writer gives up. If it was the last and no writer holds the lock, the
/// readers it held back go on (no unlock will wake them: the unlocks since it began to
/// wait woke writers). A writer's timeout never swallows a wake-up meant for another
/// writer: a wait that times out was not the one an unpark chose.
fn stop_waiting_to_write(l: &AtomicU64) {
    let after = l.fetch_sub(WAITING_WRITER, Relaxed) - WAITING_WRITER;
    if after & !READERS == 0 {
        wait::wake_all(readers_key(l));
    }
}

pub(crate) unsafe extern "C" fn rwlock_read_lock(obj: *mut c_void) -> weft_status_t {
    // SAFETY: as this function's.
    unsafe { rwlock_read_lock_until(obj, WEFT_FOREVER) }
}

pub(crate) unsafe extern "C" fn rwlock_read_lock_until(obj: *mut c_void, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised rwlock.
        if read_until(unsafe { word64(obj) }, deadline) {
            WEFT_OK
        } else {
            WEFT_ETIMEDOUT
        }
    })
}

pub(crate) unsafe extern "C" fn rwlock_try_read_lock(obj: *mut c_void) -> weft_status_t {
    // SAFETY: an initialised rwlock.
    if try_read(unsafe { word64(obj) }) {
        WEFT_OK
    } else {
        WEFT_EBUSY
    }
}

pub(crate) unsafe extern "C" fn rwlock_write_lock(obj: *mut c_void) -> weft_status_t {
    // SAFETY: as this function's.
    unsafe { rwlock_write_lock_until(obj, WEFT_FOREVER) }
}

pub(crate) unsafe extern "C" fn rwlock_write_lock_until(obj: *mut c_void, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised rwlock.
        if write_until(unsafe { word64(obj) }, deadline) {
            WEFT_OK
        } else {
            WEFT_ETIMEDOUT
        }
    })
}

pub(crate) unsafe extern "C" fn rwlock_try_write_lock(obj: *mut c_void) -> weft_status_t {
    // SAFETY: an initialised rwlock.
    if try_write(unsafe { word64(obj) }) {
        WEFT_OK
    } else {
        WEFT_EBUSY
    }
}

pub(crate) unsafe extern "C" fn rwlock_read_unlock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised rwlock the caller reads.
        let l = unsafe { word64(obj) };
        let before = l.fetch_sub(1, Release);
        if before & READERS == 1 && before & !(READERS | WRITER) != 0 {
            wait::wake_one(writers_key(l));
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn rwlock_write_unlock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised rwlock the caller writes.
        let l = unsafe { word64(obj) };
        let before = l.fetch_and(!WRITER, Release);
        if before & !(READERS | WRITER) != 0 {
            wait::wake_one(writers_key(l));
        } else {
            wait::wake_all(readers_key(l));
        }
        WEFT_OK
    })
}
