//! Readers-writer locks in host memory. Writers are not starved (the platform queues
//! new readers behind a waiting writer). `count` holds the number of readers, `extra`
//! the writer, so a relock by the writer is `WEFT_EDEADLK`; each context lists the
//! rwlocks it holds read locks of, so an unlock by a task that holds neither the write
//! lock nor a read lock of this rwlock is `WEFT_EPERM`.
use std::sync::atomic::{
    AtomicU64,
    Ordering::{AcqRel, Relaxed},
};

use weft_platform::*;

use super::{SyncKind, SyncObject};
use crate::ffi::error::{check_plugin, fail, Result};
use crate::plugin::plat_call;
use crate::runtime::checks::Holders;
use crate::runtime::context::Context;
use crate::runtime::safepoint;
use crate::runtime::Runtime;

pub(crate) struct RwLockKind;

const TAG_RWLOCK: u32 = 0x5752_574c;

impl SyncKind for RwLockKind {
    const KIND: &'static str = "rwlock";
    const INIT_FN: &'static str = "weft_rwlock_init";
    const STATIC: u32 = 0x5752_5453;
    const STATIC_LIVE: u32 = TAG_RWLOCK;
    const LIVE: &'static [u32] = &[TAG_RWLOCK];
    /// The writer's context id; 0 when none.
    type Extra = AtomicU64;
    type Bytes = [u64; WEFT_PLATFORM_RWLOCK_BYTES as usize / 8];
    fn new_extra() -> AtomicU64 {
        AtomicU64::new(0)
    }
    fn new_bytes() -> Self::Bytes {
        [0; WEFT_PLATFORM_RWLOCK_BYTES as usize / 8]
    }
    fn plugin_init(table: &weft_platform_t) -> weft_plat_init_fn {
        table.rwlock_init
    }
    fn plugin_destroy(table: &weft_platform_t) -> weft_plat_obj_fn {
        table.rwlock_destroy
    }
}

pub(crate) type RwLockObject = SyncObject<RwLockKind>;

/// Shared (read) or exclusive (write) access.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// How long a lock call waits for its access.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Patience {
    /// One try: `WEFT_EBUSY` if it fails.
    Try,
    /// Until the access is granted.
    Forever,
    /// Until the deadline: `WEFT_ETIMEDOUT` after it.
    Until(i64),
}

impl RwLockObject {
    pub(crate) fn init_rwlock(&self, rt: &Runtime) -> Result<()> {
        self.init(rt, TAG_RWLOCK)
    }

    /// The writer's context id; 0 when none.
    pub(crate) fn writer(&self) -> u64 {
        self.extra.load(Relaxed)
    }

    pub(crate) fn destroy_rwlock(&self) -> Result<()> {
        let (readers, writer) = (self.count.load(Relaxed), self.writer());
        self.destroy((writer != 0 || readers != 0).then(|| format!("is held ({readers} reader(s), writer {writer})")))
    }

    /// Takes `access`, waiting as `patience` says.
    pub(crate) fn acquire(&self, ctx: &Context, access: Access, patience: Patience) -> Result<()> {
        let rt = self.open_runtime()?;
        if self.writer() == ctx.id {
            fail!(WEFT_EDEADLK, "rwlock {:p} is write-locked by the caller", self);
        }
        // No upgrade: the write lock would wait for the caller's own read lock.
        if access == Access::Write && patience != Patience::Try && ctx.holds_read(self.addr()) {
            fail!(
                WEFT_EDEADLK,
                "rwlock {:p} is read-locked by the caller, whose write lock would wait for itself (no upgrade: \
                 release the read lock first)",
                self
            );
        }
        let timed = match (access, patience) {
            (Access::Read, Patience::Until(_)) => rt.table.rwlock_read_lock_until,
            (Access::Write, Patience::Until(_)) => rt.table.rwlock_write_lock_until,
            _ => None,
        };
        if let (Patience::Until(_), None) = (patience, timed) {
            fail!(
                WEFT_ENOTSUP,
                "the {} has no timed rwlock locks (table members rwlock_read_lock_until and rwlock_write_lock_until)",
                rt.platform_label()
            );
        }
        let try_only = patience == Patience::Try;
        let bytes = self.plugin_bytes();
        // A try first, so that an uncontended lock costs no blocking region; then a wait
        // that never ends holding the lock while the world is stopped (see
        // safepoint::lock_outside_stop). A waiting lock makes no try on a deterministic
        // platform, where each plugin call is a switch point its trace names after it.
        let tried = match access {
            _ if !try_only && rt.table.caps & WEFT_CAP_DETERMINISTIC != 0 => WEFT_EBUSY,
            Access::Read => plat_call!(rt.table, rwlock_try_read_lock(bytes)),
            Access::Write => plat_call!(rt.table, rwlock_try_write_lock(bytes)),
        };
        // Only a wait without deadline can deadlock: a timed one ends (`WEFT_FOREVER` is
        // none: it was never checked).
        let forever = matches!(patience, Patience::Forever | Patience::Until(WEFT_FOREVER));
        let watched = rt.checks.on() && tried == WEFT_EBUSY && forever;
        if watched {
            rt.checks.wait_for_lock(ctx, self.addr(), access == Access::Read)?;
        }
        let unlock = || match access {
            Access::Read => plat_call!(rt.table, rwlock_read_unlock(bytes)),
            Access::Write => plat_call!(rt.table, rwlock_write_unlock(bytes)),
        };
        let status = match (patience, timed) {
            _ if tried != WEFT_EBUSY || try_only => tried,
            (Patience::Until(deadline), Some(lock_until)) => safepoint::lock_outside_stop(
                rt,
                // SAFETY: a member of the accepted table, on this rwlock's plugin bytes.
                || unsafe { lock_until(bytes, deadline) },
                || {
                    unlock();
                },
            ),
            _ => safepoint::lock_outside_stop(
                rt,
                || match access {
                    Access::Read => plat_call!(rt.table, rwlock_read_lock(bytes)),
                    Access::Write => plat_call!(rt.table, rwlock_write_lock(bytes)),
                },
                || {
                    unlock();
                },
            ),
        };
        if watched {
            rt.checks.done_waiting(ctx);
        }
        if status == WEFT_EBUSY {
            let why = if access == Access::Write { "" } else { " or wanted by a writer" };
            fail!(WEFT_EBUSY, "rwlock {:p} is held{why}", self);
        }
        if status == WEFT_ETIMEDOUT {
            let why = if access == Access::Write { "" } else { " or wanted by a writer" };
            fail!(WEFT_ETIMEDOUT, "rwlock {:p} was still held{why} at the deadline", self);
        }
        check_plugin(status, || format!("cannot lock rwlock {:p}", self))?;
        // A second read lock of a reader waits only for a writer of this same rwlock
        // (the deadlock check's business), never for the caller's other locks: no
        // order edge, as for a recursive mutex's relock.
        let again = access == Access::Read && ctx.holds_read(self.addr());
        match access {
            Access::Write => self.extra.store(ctx.id, Relaxed),
            Access::Read => {
                self.count.fetch_add(1, Relaxed);
                ctx.read_locked(self.addr());
            }
        }
        if rt.checks.on() {
            rt.checks.acquired(ctx, self.addr(), !try_only && !again, Holders::Tracked);
        }
        Ok(())
    }

    /// Releases the caller's write lock, or one of its read locks.
    pub(crate) fn release(&self, ctx: &Context) -> Result<()> {
        // The runtime may be closed: a lock held at the close can still be released
        // (and then destroyed), as a mutex can.
        let rt = self.runtime();
        let unlocked = |status| check_plugin(status, || format!("cannot unlock rwlock {:p}", self));
        if self.writer() == ctx.id {
            if rt.checks.on() {
                rt.checks.released(ctx, self.addr(), Holders::Tracked);
            }
            self.extra.store(0, Relaxed);
            return unlocked(plat_call!(rt.table, rwlock_write_unlock(self.plugin_bytes())));
        }
        if !ctx.holds_read(self.addr()) {
            fail!(WEFT_EPERM, "rwlock {:p} is not held by the caller", self);
        }
        if self.count.fetch_update(AcqRel, Relaxed, |r| r.checked_sub(1)).is_err() {
            fail!(WEFT_EPERM, "rwlock {:p} is not read-locked", self);
        }
        ctx.read_unlocked(self.addr());
        if rt.checks.on() {
            rt.checks.released(ctx, self.addr(), Holders::Tracked);
        }
        unlocked(plat_call!(rt.table, rwlock_read_unlock(self.plugin_bytes())))
    }
}
