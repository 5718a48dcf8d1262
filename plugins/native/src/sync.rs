//! Mutexes, condition variables and rwlocks in the plugin bytes of host memory.
//! Nothing is allocated per object: a mutex is a `parking_lot::RawMutex` (one byte), an
//! rwlock a `parking_lot::RawRwLock` (one word), a condition a sequence number whose
//! address is the parking key. Only slow paths enter a blocking region.
use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering::AcqRel, Ordering::Acquire};

use lock_api::{RawMutex as _, RawMutexTimed as _, RawRwLock as _};
use parking_lot::{RawMutex, RawRwLock};
use weft_platform::*;

use crate::clock;
use crate::wait::{self, Wake};
use crate::HOST;

// What the table declares; checked against the room the runtime leaves.
pub(crate) const MUTEX_SIZE: u32 = std::mem::size_of::<RawMutex>() as u32;
pub(crate) const COND_SIZE: u32 = std::mem::size_of::<AtomicU32>() as u32;
pub(crate) const RWLOCK_SIZE: u32 = std::mem::size_of::<RawRwLock>() as u32;
pub(crate) const SYNC_ALIGN: u32 = {
    let a = std::mem::align_of::<RawRwLock>();
    let b = std::mem::align_of::<AtomicU32>();
    (if a > b { a } else { b }) as u32
};

// The runtime hands every member the plugin bytes of an object of the member's kind,
// initialised by our `_init` (or, for `_init`, zeroed), aligned to SYNC_ALIGN and not
// destroyed while the call runs: the table's contract, which the accessors rely on.

/// # Safety
/// `obj` is the plugin bytes of a mutex (see above).
unsafe fn raw_mutex<'a>(obj: *mut c_void) -> &'a RawMutex {
    // SAFETY: see above.
    unsafe { &*(obj as *const RawMutex) }
}

/// # Safety
/// `obj` is the plugin bytes of an rwlock (see above).
unsafe fn raw_rwlock<'a>(obj: *mut c_void) -> &'a RawRwLock {
    // SAFETY: see above.
    unsafe { &*(obj as *const RawRwLock) }
}

/// # Safety
/// `obj` is the plugin bytes of a condition (see above).
unsafe fn cond_seq<'a>(obj: *mut c_void) -> &'a AtomicU32 {
    // SAFETY: see above.
    unsafe { &*(obj as *const AtomicU32) }
}

pub(crate) unsafe extern "C" fn mutex_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        unsafe { (obj as *mut RawMutex).write(RawMutex::INIT) };
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn mutex_destroy(_obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| WEFT_OK)
}

pub(crate) unsafe extern "C" fn mutex_lock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        let m = unsafe { raw_mutex(obj) };
        if !m.try_lock() {
            HOST.blocking(|| m.lock());
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn mutex_try_lock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        if unsafe { raw_mutex(obj) }.try_lock() {
            WEFT_OK
        } else {
            WEFT_EBUSY
        }
    })
}

pub(crate) unsafe extern "C" fn mutex_lock_until(obj: *mut c_void, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        let m = unsafe { raw_mutex(obj) };
        if m.try_lock() {
            return WEFT_OK;
        }
        if clock::expired(deadline) {
            return WEFT_ETIMEDOUT;
        }
        let acquired = HOST.blocking(|| match clock::instant(deadline) {
            Some(until) => m.try_lock_until(until),
            None => {
                m.lock();
                true
            }
        });
        if acquired {
            WEFT_OK
        } else {
            WEFT_ETIMEDOUT
        }
    })
}

pub(crate) unsafe extern "C" fn mutex_unlock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live mutex, which the caller holds (the runtime
        // checked its ownership).
        unsafe { raw_mutex(obj).unlock() };
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        unsafe { (obj as *mut AtomicU32).write(AtomicU32::new(0)) };
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_destroy(_obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| WEFT_OK)
}

pub(crate) unsafe extern "C" fn cond_wait_until(cond: *mut c_void, mutex: *mut c_void, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        if wait::cancelled() {
            return WEFT_ECANCELED;
        }
        if clock::expired(deadline) {
            return WEFT_ETIMEDOUT;
        }
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        let seq = unsafe { cond_seq(cond) };
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        let m = unsafe { raw_mutex(mutex) };
        // Read under the mutex: a signal sent after we release it changes `seq`, so
        // the park below either sees the change or is in the queue when it is woken.
        let seen = seq.load(Acquire);
        let woke = HOST.blocking(|| {
            // SAFETY: the caller holds the mutex (the runtime checked it).
            unsafe { m.unlock() };
            let woke = wait::park(cond as usize, || seq.load(Acquire) == seen, deadline);
            m.lock();
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
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        unsafe { cond_seq(obj) }.fetch_add(1, AcqRel);
        wait::wake_one(obj as usize);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_broadcast(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        unsafe { cond_seq(obj) }.fetch_add(1, AcqRel);
        wait::wake_all(obj as usize);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn rwlock_init(_rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        unsafe { (obj as *mut RawRwLock).write(RawRwLock::INIT) };
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn rwlock_destroy(_obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| WEFT_OK)
}

// parking_lot's rwlock is task-fair: once a writer waits, new readers queue behind it,
// so writers are not starved.
pub(crate) unsafe extern "C" fn rwlock_read_lock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        let l = unsafe { raw_rwlock(obj) };
        if !l.try_lock_shared() {
            HOST.blocking(|| l.lock_shared());
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn rwlock_try_read_lock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        if unsafe { raw_rwlock(obj) }.try_lock_shared() {
            WEFT_OK
        } else {
            WEFT_EBUSY
        }
    })
}

pub(crate) unsafe extern "C" fn rwlock_write_lock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        let l = unsafe { raw_rwlock(obj) };
        if !l.try_lock_exclusive() {
            HOST.blocking(|| l.lock_exclusive());
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn rwlock_try_write_lock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live object of this kind (the table contract above).
        if unsafe { raw_rwlock(obj) }.try_lock_exclusive() {
            WEFT_OK
        } else {
            WEFT_EBUSY
        }
    })
}

pub(crate) unsafe extern "C" fn rwlock_read_unlock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live rwlock the caller holds shared (the runtime
        // checked it holds a read lock).
        unsafe { raw_rwlock(obj).unlock_shared() };
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn rwlock_write_unlock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the plugin bytes of a live rwlock the caller holds exclusively (the
        // runtime checked it is the writer).
        unsafe { raw_rwlock(obj).unlock_exclusive() };
        WEFT_OK
    })
}
