//! Rwlocks in the plugin bytes of host memory: a `parking_lot::RawRwLock` (one word),
//! nothing allocated per object; only slow paths enter a blocking region. Mutexes and
//! conditions are in `lock.rs`.
use std::ffi::c_void;

use lock_api::RawRwLock as _;
use parking_lot::RawRwLock;
use weft_platform::*;

use crate::HOST;

// What the table declares; checked against the room the runtime leaves.
pub(crate) const RWLOCK_SIZE: u32 = std::mem::size_of::<RawRwLock>() as u32;
pub(crate) const SYNC_ALIGN: u32 = std::mem::align_of::<RawRwLock>() as u32;

// The runtime hands every member the plugin bytes of an rwlock, initialised by our
// `rwlock_init` (or, for it, zeroed), aligned to SYNC_ALIGN and not destroyed while the
// call runs: the table's contract, which the accessor relies on.

/// # Safety
/// `obj` is the plugin bytes of an rwlock (see above).
unsafe fn raw_rwlock<'a>(obj: *mut c_void) -> &'a RawRwLock {
    // SAFETY: see above.
    unsafe { &*(obj as *const RawRwLock) }
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
