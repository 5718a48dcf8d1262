//! Mutexes in host memory: error-checking always, recursive on request.
//!
//! The owner (a context id) and the recursion depth sit beside the plugin's lock, so
//! every platform gets the same checks: a relock by the owner is `WEFT_EDEADLK` (or
//! counted, if recursive), an unlock by anyone else `WEFT_EPERM`.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use weft_platform::*;

use super::{SyncKind, SyncObject};
use crate::ffi::error::{check_plugin, fail, Result};
use crate::plugin::plat_call;
use crate::runtime::checks::Holders;
use crate::runtime::context::Context;
use crate::runtime::safepoint;
use crate::runtime::Runtime;
use crate::types::WEFT_MUTEX_RECURSIVE;

pub(crate) struct MutexKind;

const TAG_PLAIN: u32 = 0x574d_5458;
const TAG_RECURSIVE: u32 = 0x574d_5452;

impl SyncKind for MutexKind {
    const KIND: &'static str = "mutex";
    const INIT_FN: &'static str = "weft_mutex_init";
    const STATIC: u32 = 0x574d_5453;
    const STATIC_LIVE: u32 = TAG_PLAIN;
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

    /// A plain mutex of weft's own (see `SyncObject::internal`).
    pub(crate) fn internal_mutex(rt: &'static Runtime) -> Result<&'static MutexObject> {
        SyncObject::internal(rt, TAG_PLAIN)
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
    pub(crate) fn release_for_wait(&self, rt: &Runtime, ctx: &Context) -> u32 {
        let depth = self.count.swap(0, Relaxed);
        if rt.checks.on() {
            for _ in 0..=depth {
                rt.checks.released(ctx, self.addr(), Holders::OwnerField);
            }
        }
        self.extra.store(0, Relaxed);
        depth
    }

    pub(crate) fn reacquired_after_wait(&self, rt: &Runtime, ctx: &Context, depth: u32) {
        self.extra.store(ctx.id, Relaxed);
        self.count.store(depth, Relaxed);
        if rt.checks.on() {
            for _ in 0..=depth {
                rt.checks.acquired(ctx, self.addr(), false, Holders::OwnerField);
            }
        }
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
    fn relock(&self, rt: &Runtime, ctx: &Context) -> Result<()> {
        if self.is_recursive() {
            self.count.fetch_add(1, Relaxed);
            if rt.checks.on() {
                rt.checks.acquired(ctx, self.addr(), false, Holders::OwnerField);
            }
            return Ok(());
        }
        fail!(WEFT_EDEADLK, "mutex {:p} is already held by the caller (not recursive)", self)
    }

    /// Locks, waiting as long as it takes (`deadline` None) or until the deadline. A
    /// try first, so that an uncontended lock costs no blocking region; then a wait in
    /// one that never ends holding the mutex while the world is stopped (see
    /// `safepoint::lock_outside_stop`).
    pub(crate) fn lock(&self, rt: &Runtime, ctx: &Context, deadline: Option<i64>) -> Result<()> {
        if self.owner() == ctx.id {
            return self.relock(rt, ctx);
        }
        let bytes = self.plugin_bytes();
        let status = match plat_call!(rt.table, mutex_try_lock(bytes)) {
            WEFT_EBUSY => {
                // Only a wait without deadline can deadlock: a timed one ends.
                let watched = rt.checks.on() && deadline.is_none();
                if watched {
                    rt.checks.wait_for_lock(ctx, self.addr())?;
                }
                let status = safepoint::lock_outside_stop(
                    rt,
                    || match deadline {
                        None => plat_call!(rt.table, mutex_lock(bytes)),
                        Some(deadline) => plat_call!(rt.table, mutex_lock_until(bytes, deadline)),
                    },
                    || {
                        plat_call!(rt.table, mutex_unlock(bytes));
                    },
                );
                if watched {
                    rt.checks.done_waiting(ctx);
                }
                status
            }
            status => status,
        };
        if status == WEFT_ETIMEDOUT {
            fail!(WEFT_ETIMEDOUT, "mutex {:p} was still held at the deadline", self);
        }
        check_plugin(status, || format!("cannot lock mutex {:p}", self))?;
        self.extra.store(ctx.id, Relaxed);
        if rt.checks.on() {
            rt.checks.acquired(ctx, self.addr(), true, Holders::OwnerField);
        }
        Ok(())
    }

    pub(crate) fn try_lock(&self, rt: &Runtime, ctx: &Context) -> Result<()> {
        if self.owner() == ctx.id {
            return self.relock(rt, ctx);
        }
        let status = plat_call!(rt.table, mutex_try_lock(self.plugin_bytes()));
        if status == WEFT_EBUSY {
            fail!(WEFT_EBUSY, "mutex {:p} is held by another task", self);
        }
        check_plugin(status, || format!("cannot lock mutex {:p}", self))?;
        self.extra.store(ctx.id, Relaxed);
        if rt.checks.on() {
            // A try-lock never waits, so it cannot deadlock: no order edge into it.
            rt.checks.acquired(ctx, self.addr(), false, Holders::OwnerField);
        }
        Ok(())
    }

    /// The unlock fast path: the owner's last level. None if it does not apply (the
    /// checked path then decides); otherwise the plugin's status.
    #[inline(always)]
    pub(crate) fn unlock_fast(&self, rt: &Runtime, ctx: &Context) -> Option<weft_status_t> {
        if self.owner() != ctx.id || self.count.load(Relaxed) != 0 {
            return None;
        }
        if rt.checks.on() {
            // A mutex's holder is its owner field: no trip to the checks' graph.
            rt.checks.released(ctx, self.addr(), Holders::OwnerField);
        }
        self.extra.store(0, Relaxed);
        Some(plat_call!(rt.table, mutex_unlock(self.plugin_bytes())))
    }

    pub(crate) fn unlock(&self, rt: &Runtime, ctx: &Context) -> Result<()> {
        let owner = self.owner();
        if owner != ctx.id {
            if owner == 0 {
                fail!(WEFT_EPERM, "mutex {:p} is not locked", self);
            }
            fail!(WEFT_EPERM, "mutex {:p} is held by context {owner}, not by the caller", self);
        }
        if rt.checks.on() {
            rt.checks.released(ctx, self.addr(), Holders::OwnerField);
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
