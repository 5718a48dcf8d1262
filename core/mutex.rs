//! Mutexes in host memory: error-checking always, recursive on request.
//!
//! The runtime keeps the owner (a context id) and the recursion depth beside the
//! plugin's lock, so every platform gets the same checks: a relock by the owner is
//! `WEFT_EDEADLK` (or counted, if recursive), an unlock by anyone else `WEFT_EPERM`.
use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use weft_platform::*;

use crate::context;
use crate::error::{check_plugin, fail, ffi, Result};
use crate::loader::plat_call;
use crate::runtime::{open_runtime, weft_runtime_t};
use crate::safepoint;
use crate::sync_object::{live_object, TAG_DESTROYED};

/// `weft_mutex_init` flag: the owner may lock again; each lock needs its unlock.
pub const WEFT_MUTEX_RECURSIVE: u32 = 1;

const TAG_PLAIN: u32 = 0x574d_5458;
const TAG_RECURSIVE: u32 = 0x574d_5452;

#[repr(C)]
pub(crate) struct MutexRepr {
    tag: AtomicU32,
    /// Extra locks by the owner (recursive mutexes); touched only by the owner.
    depth: AtomicU32,
    /// Context id of the owner; 0 when free.
    pub(crate) owner: AtomicU64,
    rt: AtomicPtr<weft_runtime_t>,
    plugin: [u64; WEFT_PLATFORM_MUTEX_BYTES as usize / 8],
}

const _: () = assert!(std::mem::size_of::<MutexRepr>() == WEFT_MUTEX_SIZE);

impl MutexRepr {
    pub(crate) fn plugin_bytes(&self) -> *mut c_void {
        self.plugin.as_ptr() as *mut c_void
    }

    pub(crate) fn is_recursive(&self) -> bool {
        self.tag.load(Relaxed) == TAG_RECURSIVE
    }

    /// Hands ownership over around a condition wait: returns the depth to restore.
    pub(crate) fn release_for_wait(&self) -> u32 {
        let depth = self.depth.swap(0, Relaxed);
        self.owner.store(0, Relaxed);
        depth
    }

    pub(crate) fn reacquired_after_wait(&self, me: u64, depth: u32) {
        self.owner.store(me, Relaxed);
        self.depth.store(depth, Relaxed);
    }
}

/// The fast paths' check: a live mutex of an open runtime, or None (and the checked
/// path then says what is wrong). Only loads: it cannot fail in any other way.
#[inline(always)]
fn live_fast<'a>(m: *mut weft_mutex_t) -> Option<(&'a MutexRepr, &'static weft_runtime_t)> {
    // SAFETY: a non-NULL pointer from the host addresses WEFT_MUTEX_SIZE bytes; a live
    // tag is stored (Release) only after `rt` was, and runtimes are never freed.
    unsafe {
        let repr = (m as *const MutexRepr).as_ref()?;
        let tag = repr.tag.load(Acquire);
        if tag != TAG_PLAIN && tag != TAG_RECURSIVE {
            return None;
        }
        let rt = &*repr.rt.load(Relaxed);
        rt.is_open().then_some((repr, rt))
    }
}

/// Checks a mutex pointer from the host and returns it with its runtime.
pub(crate) fn mutex_ref<'a>(
    m: *mut weft_mutex_t,
    allow_closed: bool,
) -> Result<(&'a MutexRepr, &'static weft_runtime_t)> {
    // SAFETY: a non-NULL pointer from the host addresses WEFT_MUTEX_SIZE bytes.
    let Some(repr) = (unsafe { (m as *const MutexRepr).as_ref() }) else { fail!(WEFT_EINVAL, "mutex is NULL") };
    let rt = live_object(
        &repr.tag,
        repr.rt.load(Relaxed),
        &[TAG_PLAIN, TAG_RECURSIVE],
        "mutex",
        m as *const u8,
        allow_closed,
    )?;
    Ok((repr, rt))
}

/// Initialises the mutex in host memory at `m` (`WEFT_MUTEX_RECURSIVE` or 0). The host
/// owns the memory; it must stay in place until `weft_mutex_destroy`. Initialising a
/// mutex that is in use is undefined.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_init(rt: *mut weft_runtime_t, m: *mut weft_mutex_t, flags: u32) -> weft_status_t {
    ffi("weft_mutex_init", || {
        let rt = open_runtime(rt)?;
        if m.is_null() {
            fail!(WEFT_EINVAL, "mutex is NULL");
        }
        if flags & !WEFT_MUTEX_RECURSIVE != 0 {
            fail!(WEFT_EINVAL, "unknown flags 0x{:x}", flags & !WEFT_MUTEX_RECURSIVE);
        }
        let repr = m as *mut MutexRepr;
        repr.write(MutexRepr {
            tag: AtomicU32::new(0),
            depth: AtomicU32::new(0),
            owner: AtomicU64::new(0),
            rt: AtomicPtr::new(rt as *const _ as *mut _),
            plugin: [0; WEFT_PLATFORM_MUTEX_BYTES as usize / 8],
        });
        let repr = &*repr;
        check_plugin(plat_call!(rt.table, mutex_init(rt.prt, repr.plugin_bytes())), || {
            "the platform could not initialise the mutex".into()
        })?;
        let tag = if flags & WEFT_MUTEX_RECURSIVE != 0 { TAG_RECURSIVE } else { TAG_PLAIN };
        repr.tag.store(tag, Release);
        Ok(())
    })
}

/// Destroys an unlocked mutex; its memory is the host's again. `WEFT_EBUSY` while it is
/// held. Later calls on it are `WEFT_EINVAL`. Allowed after the runtime closed.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_destroy(m: *mut weft_mutex_t) -> weft_status_t {
    ffi("weft_mutex_destroy", || {
        let (repr, rt) = mutex_ref(m, true)?;
        let owner = repr.owner.load(Relaxed);
        if owner != 0 {
            fail!(WEFT_EBUSY, "mutex {m:p} is held (by context {owner})");
        }
        check_plugin(plat_call!(rt.table, mutex_destroy(repr.plugin_bytes())), || {
            format!("the platform could not destroy mutex {m:p}")
        })?;
        repr.tag.store(TAG_DESTROYED, Release);
        Ok(())
    })
}

/// Relock by the owner: counted if recursive, `WEFT_EDEADLK` otherwise.
fn relock(repr: &MutexRepr, m: *mut weft_mutex_t) -> Result<()> {
    if repr.is_recursive() {
        repr.depth.fetch_add(1, Relaxed);
        return Ok(());
    }
    fail!(WEFT_EDEADLK, "mutex {m:p} is already held by the caller (not recursive)")
}

/// Locks the mutex, waiting as long as it takes (inside a blocking region while it
/// waits). Not a cancellation point. `WEFT_EDEADLK` if the caller already holds a
/// non-recursive mutex.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_lock(m: *mut weft_mutex_t) -> weft_status_t {
    // The fast path, for a free mutex: loads, a thread-local read and one plugin trylock
    // (an extern "C" call, which cannot unwind). Nothing in it can panic, so it needs no
    // boundary; everything else, errors included, goes through the checked path below.
    if let (Some((repr, rt)), Some(ctx)) = (live_fast(m), context::current_if_any_fast()) {
        if repr.owner.load(Relaxed) != ctx.id && try_lock_spinning(repr, rt) {
            repr.owner.store(ctx.id, Relaxed);
            return WEFT_OK;
        }
    }
    lock_checked(m)
}

/// Doubling spins before a contended lock gives up on the fast path (1 + 2 + ... + 32
/// pause instructions, about a microsecond): a critical section is usually shorter than
/// the way through a blocking region to the plugin's wait.
const SPIN_STEPS: u32 = 6;

/// One trylock, then, on a platform whose tasks are OS threads (where the holder runs
/// meanwhile on another CPU), a few more while the owner field says the mutex was
/// released: the wait reads a shared line instead of hammering it with atomic writes.
#[inline(always)]
fn try_lock_spinning(repr: &MutexRepr, rt: &weft_runtime_t) -> bool {
    let bytes = repr.plugin_bytes();
    if plat_call!(rt.table, mutex_trylock(bytes)) == WEFT_OK {
        return true;
    }
    if rt.table.caps & WEFT_CAP_OS_THREADS == 0 {
        return false;
    }
    for step in 0..SPIN_STEPS {
        for _ in 0..1u32 << step {
            std::hint::spin_loop();
        }
        if repr.owner.load(Relaxed) == 0 && plat_call!(rt.table, mutex_trylock(bytes)) == WEFT_OK {
            return true;
        }
    }
    false
}

#[cold]
#[inline(never)]
fn lock_checked(m: *mut weft_mutex_t) -> weft_status_t {
    ffi("weft_mutex_lock", || {
        let (repr, rt) = mutex_ref(m, false)?;
        let me = context::current().id;
        if repr.owner.load(Relaxed) == me {
            return relock(repr, m);
        }
        let bytes = repr.plugin_bytes();
        let status = lock_slow_path(rt, bytes, || plat_call!(rt.table, mutex_lock(bytes)));
        check_plugin(status, || format!("cannot lock mutex {m:p}"))?;
        repr.owner.store(me, Relaxed);
        Ok(())
    })
}

/// A try first, so that an uncontended lock costs no blocking region; then `lock` in
/// one that never ends holding the mutex while the world is stopped (see
/// `safepoint::lock_outside_stop`).
fn lock_slow_path(rt: &weft_runtime_t, bytes: *mut c_void, lock: impl FnMut() -> weft_status_t) -> weft_status_t {
    match plat_call!(rt.table, mutex_trylock(bytes)) {
        WEFT_EBUSY => safepoint::lock_outside_stop(rt, lock, || {
            plat_call!(rt.table, mutex_unlock(bytes));
        }),
        status => status,
    }
}

/// Locks the mutex if it is free; `WEFT_EBUSY` if another task holds it. A relock by the
/// owner is counted (recursive) or `WEFT_EDEADLK`.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_trylock(m: *mut weft_mutex_t) -> weft_status_t {
    ffi("weft_mutex_trylock", || {
        let (repr, rt) = mutex_ref(m, false)?;
        let me = context::current().id;
        if repr.owner.load(Relaxed) == me {
            return relock(repr, m);
        }
        let status = plat_call!(rt.table, mutex_trylock(repr.plugin_bytes()));
        if status == WEFT_EBUSY {
            fail!(WEFT_EBUSY, "mutex {m:p} is held by another task");
        }
        check_plugin(status, || format!("cannot lock mutex {m:p}"))?;
        repr.owner.store(me, Relaxed);
        Ok(())
    })
}

/// Locks the mutex, or gives up at `deadline` with `WEFT_ETIMEDOUT` (a deadline already
/// past: one try). A relock by the owner is counted (recursive) or `WEFT_EDEADLK`.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_lock_until(m: *mut weft_mutex_t, deadline: i64) -> weft_status_t {
    ffi("weft_mutex_lock_until", || {
        let (repr, rt) = mutex_ref(m, false)?;
        let me = context::current().id;
        if repr.owner.load(Relaxed) == me {
            return relock(repr, m);
        }
        let bytes = repr.plugin_bytes();
        let status = lock_slow_path(rt, bytes, || plat_call!(rt.table, mutex_lock_until(bytes, deadline)));
        if status == WEFT_ETIMEDOUT {
            fail!(WEFT_ETIMEDOUT, "mutex {m:p} was still held at the deadline");
        }
        check_plugin(status, || format!("cannot lock mutex {m:p}"))?;
        repr.owner.store(me, Relaxed);
        Ok(())
    })
}

/// Unlocks the mutex (one level, if recursive). `WEFT_EPERM` if the caller does not
/// hold it.
#[no_mangle]
pub unsafe extern "C" fn weft_mutex_unlock(m: *mut weft_mutex_t) -> weft_status_t {
    // The fast path, for the owner's last level (see weft_mutex_lock).
    if let (Some((repr, rt)), Some(ctx)) = (live_fast(m), context::current_if_any_fast()) {
        if repr.owner.load(Relaxed) == ctx.id && repr.depth.load(Relaxed) == 0 {
            repr.owner.store(0, Relaxed);
            let status = plat_call!(rt.table, mutex_unlock(repr.plugin_bytes()));
            if status == WEFT_OK {
                return WEFT_OK;
            }
            return unlock_failed(m, status);
        }
    }
    unlock_checked(m)
}

#[cold]
#[inline(never)]
fn unlock_failed(m: *mut weft_mutex_t, status: weft_status_t) -> weft_status_t {
    ffi("weft_mutex_unlock", || check_plugin(status, || format!("cannot unlock mutex {m:p}")))
}

#[cold]
#[inline(never)]
fn unlock_checked(m: *mut weft_mutex_t) -> weft_status_t {
    ffi("weft_mutex_unlock", || {
        let (repr, rt) = mutex_ref(m, false)?;
        let me = context::current().id;
        let owner = repr.owner.load(Relaxed);
        if owner != me {
            if owner == 0 {
                fail!(WEFT_EPERM, "mutex {m:p} is not locked");
            }
            fail!(WEFT_EPERM, "mutex {m:p} is held by context {owner}, not by the caller");
        }
        if repr.depth.load(Relaxed) > 0 {
            repr.depth.fetch_sub(1, Relaxed);
            return Ok(());
        }
        repr.owner.store(0, Relaxed);
        check_plugin(plat_call!(rt.table, mutex_unlock(repr.plugin_bytes())), || format!("cannot unlock mutex {m:p}"))
    })
}
