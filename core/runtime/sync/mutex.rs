//! Mutexes in host memory: error-checking always, recursive on request.
//!
//! The owner (a context id) and the recursion depth sit beside the plugin's lock, so
//! every platform gets the same checks: a relock by the owner is `WEFT_EDEADLK` (or
//! counted, if recursive), an unlock by anyone else `WEFT_EPERM`.
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

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

    /// The plugin's byte lock, on a platform that lets libweft take and release it
    /// itself (`WEFT_CAP_MUTEX_BYTE`): 0 free, 1 held with nobody waiting, anything
    /// else the plugin's.
    #[inline(always)]
    fn byte_lock(&self) -> &AtomicU8 {
        // SAFETY: the plugin bytes are 8-aligned and live as long as the mutex; on such
        // a platform their first byte is the lock, only ever accessed atomically.
        unsafe { &*(self.plugin_bytes() as *const AtomicU8) }
    }

    /// One try at the plugin's lock: a compare-and-swap of the byte lock where the
    /// platform allows it (`WEFT_EBUSY` if it fails), else the plugin's `mutex_try_lock`.
    #[inline(always)]
    fn plugin_try_lock(&self, rt: &Runtime) -> weft_status_t {
        if rt.table.caps & WEFT_CAP_MUTEX_BYTE != 0 {
            return match self.byte_lock().compare_exchange(0, 1, Acquire, Relaxed) {
                Ok(_) => WEFT_OK,
                Err(_) => WEFT_EBUSY,
            };
        }
        plat_call!(rt.table, mutex_try_lock(self.plugin_bytes()))
    }

    /// `plugin_try_lock`, and where a byte lock's compare-and-swap failed on a value
    /// that is the plugin's (waiters parked on a lock that may be free), the plugin's
    /// `mutex_try_lock`, as `WEFT_CAP_MUTEX_BYTE` says. For the paths after the fast one.
    /// A byte lock is read before it is swapped (a held lock's cache line is not taken
    /// from its holder for a swap bound to fail).
    fn plugin_try_lock_any(&self, rt: &Runtime) -> weft_status_t {
        if rt.table.caps & WEFT_CAP_MUTEX_BYTE == 0 {
            return self.plugin_try_lock(rt);
        }
        match self.byte_lock().load(Relaxed) {
            0 => self.plugin_try_lock(rt),
            1 => WEFT_EBUSY,
            _ => plat_call!(rt.table, mutex_try_lock(self.plugin_bytes())),
        }
    }

    /// Releases the byte lock of a mutex nobody waits for, where the platform lets
    /// libweft do it (`WEFT_CAP_MUTEX_BYTE`). False if that does not apply: `release`.
    #[inline(always)]
    pub(crate) fn release_uncontended(&self, rt: &Runtime) -> bool {
        rt.table.caps & WEFT_CAP_MUTEX_BYTE != 0 && self.byte_lock().compare_exchange(1, 0, Release, Relaxed).is_ok()
    }

    /// Releases the plugin's lock (without libweft's owner bookkeeping, done before):
    /// `release_uncontended` where it applies, else the plugin's `mutex_unlock` (which
    /// wakes a waiter). The plugin's status.
    pub(crate) fn release(&self, rt: &Runtime) -> weft_status_t {
        if self.release_uncontended(rt) {
            return WEFT_OK;
        }
        plat_call!(rt.table, mutex_unlock(self.plugin_bytes()))
    }

    /// The lock fast path for context `me`: true if it took a free mutex with one try
    /// (`plugin_try_lock`). Loads and that try; it cannot fail in any other way.
    #[inline(always)]
    pub(crate) fn lock_fast(&self, rt: &Runtime, me: u64) -> bool {
        if self.owner() != me && self.plugin_try_lock(rt) == WEFT_OK {
            self.extra.store(me, Relaxed);
            return true;
        }
        false
    }

    /// After a failed `lock_fast`, where the byte lock holds a value that is the
    /// plugin's (`WEFT_CAP_MUTEX_BYTE`; waiters are parked, and the lock may be free):
    /// the plugin's `mutex_try_lock`. True if it took the mutex. A held lock (1) is left
    /// alone: the caller goes to wait.
    #[inline(always)]
    pub(crate) fn lock_free_with_waiters(&self, rt: &Runtime, me: u64) -> bool {
        if rt.table.caps & WEFT_CAP_MUTEX_BYTE != 0
            && self.owner() != me
            && self.byte_lock().load(Relaxed) > 1
            && plat_call!(rt.table, mutex_try_lock(self.plugin_bytes())) == WEFT_OK
        {
            self.extra.store(me, Relaxed);
            return true;
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
        let status = match self.plugin_try_lock_any(rt) {
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
        let status = self.plugin_try_lock_any(rt);
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

    /// Whether context `me` holds the mutex at its last level (one unlock releases it).
    #[inline(always)]
    pub(crate) fn is_last_level_of(&self, me: u64) -> bool {
        self.owner() == me && self.count.load(Relaxed) == 0
    }

    /// Clears the owner, before the plugin's lock is released (a new owner writes it
    /// after taking that lock).
    #[inline(always)]
    pub(crate) fn disown(&self) {
        self.extra.store(0, Relaxed);
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
        self.disown();
        self.unlocked(self.release(rt))
    }

    /// The outcome of a plugin unlock.
    pub(crate) fn unlocked(&self, status: weft_status_t) -> Result<()> {
        check_plugin(status, || format!("cannot unlock mutex {:p}", self))
    }
}
