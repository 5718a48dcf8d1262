//! Mutexes in host memory: error-checking always, recursive on request.
//!
//! The owner (a context id) and the recursion depth sit beside the plugin's lock, so
//! every platform gets the same checks: a relock by the owner is `WEFT_EDEADLK` (or
//! counted, if recursive), an unlock by anyone else `WEFT_EPERM`.
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use weft_platform::*;

use super::{SyncKind, SyncObject};
use crate::ffi::error::{check_plugin, fail, Result};
use crate::plugin::plat_call;
use crate::runtime::safepoint;
use crate::runtime::Runtime;
use crate::types::WEFT_MUTEX_RECURSIVE;

pub(crate) struct MutexKind;

const TAG_PLAIN: u32 = 0x574d_5458;
const TAG_RECURSIVE: u32 = 0x574d_5452;

impl SyncKind for MutexKind {
    const KIND: &'static str = "mutex";
    const LIVE: &'static [u32] = &[TAG_PLAIN, TAG_RECURSIVE];
    /// The owner's context id; 0 when free.
    type Extra = AtomicU64;
    type Bytes = [u64; WEFT_PLATFORM_MUTEX_BYTES as usize / 8];
    fn new_extra() -> AtomicU64 {
        AtomicU64::new(0)
    }
    fn new_bytes() -> Self::Bytes {
        [0; WEFT_PLATFORM_MUTEX_BYTES as usize / 8]
    }
    fn plugin_init(table: &weft_platform_t) -> weft_plat_init_fn {
        table.mutex_init
    }
    fn plugin_destroy(table: &weft_platform_t) -> weft_plat_obj_fn {
        table.mutex_destroy
    }
}

/// A mutex; `count` holds the owner's extra levels (recursive mutexes, touched only by
/// the owner), `extra` the owner.
pub(crate) type MutexObject = SyncObject<MutexKind>;

/// Doubling spins before a contended lock gives up on the fast path (1 + 2 + ... + 32
/// pause instructions, about a microsecond): a critical section is usually shorter than
/// the way through a blocking region to the plugin's wait.
const SPIN_STEPS: u32 = 6;

impl MutexObject {
    pub(crate) fn init_mutex(&self, rt: &Runtime, flags: u32) -> Result<()> {
        if flags & !WEFT_MUTEX_RECURSIVE != 0 {
            fail!(WEFT_EINVAL, "unknown flags 0x{:x}", flags & !WEFT_MUTEX_RECURSIVE);
        }
        self.init(rt, if flags & WEFT_MUTEX_RECURSIVE != 0 { TAG_RECURSIVE } else { TAG_PLAIN })
    }

    pub(crate) fn destroy_mutex(&self) -> Result<()> {
        let owner = self.owner();
        self.destroy((owner != 0).then(|| format!("is held (by context {owner})")))
    }

    pub(crate) fn owner(&self) -> u64 {
        self.extra.load(Relaxed)
    }

    fn is_recursive(&self) -> bool {
        self.tag_now() == TAG_RECURSIVE
    }

    /// Hands ownership over around a condition wait: returns the depth to restore.
    pub(crate) fn release_for_wait(&self) -> u32 {
        let depth = self.count.swap(0, Relaxed);
        self.extra.store(0, Relaxed);
        depth
    }

    pub(crate) fn reacquired_after_wait(&self, me: u64, depth: u32) {
        self.extra.store(me, Relaxed);
        self.count.store(depth, Relaxed);
    }

    /// The lock fast path for context `me`: true if it took a free mutex. Loads, one
    /// plugin trylock and a short spin; it cannot fail in any other way.
    #[inline(always)]
    pub(crate) fn lock_fast(&self, rt: &Runtime, me: u64) -> bool {
        if self.owner() != me && self.try_lock_spinning(rt) {
            self.extra.store(me, Relaxed);
            return true;
        }
        false
    }

    /// One trylock, then, on a platform whose tasks are OS threads (where the holder runs
    /// meanwhile on another CPU), a few more while the owner field says the mutex was
    /// released: the wait reads a shared line instead of hammering it with atomic writes.
    #[inline(always)]
    fn try_lock_spinning(&self, rt: &Runtime) -> bool {
        let bytes = self.plugin_bytes();
        if plat_call!(rt.table, mutex_try_lock(bytes)) == WEFT_OK {
            return true;
        }
        if rt.table.caps & WEFT_CAP_OS_THREADS == 0 {
            return false;
        }
        for step in 0..SPIN_STEPS {
            for _ in 0..1u32 << step {
                std::hint::spin_loop();
            }
            if self.owner() == 0 && plat_call!(rt.table, mutex_try_lock(bytes)) == WEFT_OK {
                return true;
            }
        }
        false
    }

    /// Relock by the owner: counted if recursive, `WEFT_EDEADLK` otherwise.
    fn relock(&self) -> Result<()> {
        if self.is_recursive() {
            self.count.fetch_add(1, Relaxed);
            return Ok(());
        }
        fail!(WEFT_EDEADLK, "mutex {:p} is already held by the caller (not recursive)", self)
    }

    /// Locks, waiting as long as it takes (`deadline` None) or until the deadline.
    pub(crate) fn lock(&self, rt: &Runtime, me: u64, deadline: Option<i64>) -> Result<()> {
        if self.owner() == me {
            return self.relock();
        }
        let bytes = self.plugin_bytes();
        let status = lock_slow_path(rt, bytes, || match deadline {
            None => plat_call!(rt.table, mutex_lock(bytes)),
            Some(deadline) => plat_call!(rt.table, mutex_lock_until(bytes, deadline)),
        });
        if status == WEFT_ETIMEDOUT {
            fail!(WEFT_ETIMEDOUT, "mutex {:p} was still held at the deadline", self);
        }
        check_plugin(status, || format!("cannot lock mutex {:p}", self))?;
        self.extra.store(me, Relaxed);
        Ok(())
    }

    pub(crate) fn try_lock(&self, rt: &Runtime, me: u64) -> Result<()> {
        if self.owner() == me {
            return self.relock();
        }
        let status = plat_call!(rt.table, mutex_try_lock(self.plugin_bytes()));
        if status == WEFT_EBUSY {
            fail!(WEFT_EBUSY, "mutex {:p} is held by another task", self);
        }
        check_plugin(status, || format!("cannot lock mutex {:p}", self))?;
        self.extra.store(me, Relaxed);
        Ok(())
    }

    /// The unlock fast path: the owner's last level. None if it does not apply (the
    /// checked path then decides); otherwise the plugin's status.
    #[inline(always)]
    pub(crate) fn unlock_fast(&self, rt: &Runtime, me: u64) -> Option<weft_status_t> {
        if self.owner() != me || self.count.load(Relaxed) != 0 {
            return None;
        }
        self.extra.store(0, Relaxed);
        Some(plat_call!(rt.table, mutex_unlock(self.plugin_bytes())))
    }

    pub(crate) fn unlock(&self, rt: &Runtime, me: u64) -> Result<()> {
        let owner = self.owner();
        if owner != me {
            if owner == 0 {
                fail!(WEFT_EPERM, "mutex {:p} is not locked", self);
            }
            fail!(WEFT_EPERM, "mutex {:p} is held by context {owner}, not by the caller", self);
        }
        if self.count.load(Relaxed) > 0 {
            self.count.fetch_sub(1, Relaxed);
            return Ok(());
        }
        self.extra.store(0, Relaxed);
        self.unlocked(plat_call!(rt.table, mutex_unlock(self.plugin_bytes())))
    }

    /// The outcome of a plugin unlock.
    pub(crate) fn unlocked(&self, status: weft_status_t) -> Result<()> {
        check_plugin(status, || format!("cannot unlock mutex {:p}", self))
    }
}

/// A try first, so that an uncontended lock costs no blocking region; then `lock` in
/// one that never ends holding the mutex while the world is stopped (see
/// `safepoint::lock_outside_stop`).
fn lock_slow_path(rt: &Runtime, bytes: *mut c_void, lock: impl FnMut() -> weft_status_t) -> weft_status_t {
    match plat_call!(rt.table, mutex_try_lock(bytes)) {
        WEFT_EBUSY => safepoint::lock_outside_stop(rt, lock, || {
            plat_call!(rt.table, mutex_unlock(bytes));
        }),
        status => status,
    }
}
