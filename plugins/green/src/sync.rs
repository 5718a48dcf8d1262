//! Mutexes, condition variables and rwlocks in the plugin bytes of host memory; nothing
//! is allocated per object. Their waiters park through `wait` (a green task suspends,
//! a foreign thread blocks in the OS), keyed by the object's address.
//!
//! * A mutex is one byte: 0 free, 1 locked, 2 locked with waiters (the futex mutex, on
//!   a byte so that libweft may take and release it itself: `WEFT_CAP_MUTEX_BYTE`).
//! * A condition is a sequence number, as in the native plugin.
//! * An rwlock is one 64-bit word: readers in the low 32 bits, a writer bit, and the
//!   number of waiting writers above it. Writers are preferred: once one waits, new
//!   readers wait too.
use std::ffi::c_void;
use std::sync::atomic::{
    AtomicU32, AtomicU64, AtomicU8, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

use weft_platform::*;

use crate::clock;
use crate::wait::{self, Wake};
use crate::HOST;

pub(crate) const MUTEX_SIZE: u32 = 1;
pub(crate) const COND_SIZE: u32 = 4;
pub(crate) const RWLOCK_SIZE: u32 = 8;
pub(crate) const SYNC_ALIGN: u32 = 8;

unsafe fn word<'a>(obj: *mut c_void) -> &'a AtomicU32 {
    // SAFETY: the runtime hands 8-aligned plugin bytes, initialised by `*_init`.
    unsafe { &*(obj as *const AtomicU32) }
}

unsafe fn byte<'a>(obj: *mut c_void) -> &'a AtomicU8 {
    // SAFETY: as above.
    unsafe { &*(obj as *const AtomicU8) }
}

unsafe fn word64<'a>(obj: *mut c_void) -> &'a AtomicU64 {
    // SAFETY: as above.
    unsafe { &*(obj as *const AtomicU64) }
}

const UNLOCKED: u8 = 0;
const LOCKED: u8 = 1;
const CONTENDED: u8 = 2;

fn try_lock(m: &AtomicU8) -> bool {
    m.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).is_ok()
}

/// The contended path: spins a little, then parks until the deadline. True if locked.
fn lock_slow(m: &AtomicU8, deadline: i64) -> bool {
    for _ in 0..64 {
        if m.load(Relaxed) == UNLOCKED && try_lock(m) {
            return true;
        }
        std::hint::spin_loop();
    }
    let key = m as *const AtomicU8 as usize;
    loop {
        if m.swap(CONTENDED, Acquire) == UNLOCKED {
            return true;
        }
        if let Wake::TimedOut = wait::park_uncancellable(key, || m.load(Relaxed) == CONTENDED, deadline) {
            // Look once more: the lock may have been handed over as the deadline passed.
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
        let m = unsafe { byte(obj) };
        if !try_lock(m) {
            HOST.blocking(|| lock_slow(m, WEFT_FOREVER));
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn mutex_trylock(obj: *mut c_void) -> weft_status_t {
    // SAFETY: an initialised mutex.
    if try_lock(unsafe { byte(obj) }) {
        WEFT_OK
    } else {
        WEFT_EBUSY
    }
}

pub(crate) unsafe extern "C" fn mutex_lock_until(obj: *mut c_void, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised mutex.
        let m = unsafe { byte(obj) };
        if try_lock(m) {
            return WEFT_OK;
        }
        if clock::expired(deadline) {
            return WEFT_ETIMEDOUT;
        }
        if HOST.blocking(|| lock_slow(m, deadline)) {
            WEFT_OK
        } else {
            WEFT_ETIMEDOUT
        }
    })
}

pub(crate) unsafe extern "C" fn mutex_unlock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised mutex the caller holds.
        unlock(unsafe { byte(obj) });
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
        let (seq, m) = unsafe { (word(cond), byte(mutex)) };
        // Read under the mutex: a signal sent after we release it changes `seq`, so the
        // park below either sees the change or is queued when it is woken.
        let seen = seq.load(Acquire);
        let woke = HOST.blocking(|| {
            unlock(m);
            let woke = wait::park(cond as usize, || seq.load(Acquire) == seen, deadline);
            if !try_lock(m) {
                lock_slow(m, WEFT_FOREVER);
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
        unsafe { word(obj) }.fetch_add(1, AcqRel);
        wait::wake_one(obj as usize);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cond_broadcast(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised condition.
        unsafe { word(obj) }.fetch_add(1, AcqRel);
        wait::wake_all(obj as usize);
        WEFT_OK
    })
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

pub(crate) unsafe extern "C" fn rwlock_read_lock(obj: *mut c_void) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: an initialised rwlock.
        let l = unsafe { word64(obj) };
        if try_read(l) {
            return WEFT_OK;
        }
        HOST.blocking(|| {
            while !try_read(l) {
                wait::park_uncancellable(readers_key(l), || l.load(Relaxed) & !READERS != 0, WEFT_FOREVER);
            }
        });
        WEFT_OK
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
    HOST.guard(|| {
        // SAFETY: an initialised rwlock.
        let l = unsafe { word64(obj) };
        if try_write(l) {
            return WEFT_OK;
        }
        HOST.blocking(|| {
            l.fetch_add(WAITING_WRITER, Relaxed);
            let mut s = l.load(Relaxed);
            loop {
                if s & (READERS | WRITER) == 0 {
                    match l.compare_exchange_weak(s, (s - WAITING_WRITER) | WRITER, Acquire, Relaxed) {
                        Ok(_) => return,
                        Err(now) => {
                            s = now;
                            continue;
                        }
                    }
                }
                wait::park_uncancellable(writers_key(l), || l.load(Relaxed) & (READERS | WRITER) != 0, WEFT_FOREVER);
                s = l.load(Relaxed);
            }
        });
        WEFT_OK
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
