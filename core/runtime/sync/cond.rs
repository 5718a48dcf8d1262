//! Condition variables in host memory; `count` holds the tasks inside a wait (so a
//! destroy under them is refused).
use std::sync::atomic::Ordering::{AcqRel, Acquire};

use weft_platform::*;

use super::mutex::MutexObject;
use super::{SyncKind, SyncObject};
use crate::ffi::error::{check_plugin, fail, Result};
use crate::plugin::plat_call;
use crate::runtime::context::Context;
use crate::runtime::safepoint;

pub(crate) struct CondKind;

const TAG_COND: u32 = 0x5743_4e44;

impl SyncKind for CondKind {
    const KIND: &'static str = "condition";
    const INIT_FN: &'static str = "weft_cond_init";
    const STATIC: u32 = 0x5743_5453;
    const STATIC_LIVE: u32 = TAG_COND;
    const LIVE: &'static [u32] = &[TAG_COND];
    type Extra = ();
    type Bytes = [u64; WEFT_PLATFORM_COND_BYTES as usize / 8];
    fn new_extra() {}
    fn new_bytes() -> Self::Bytes {
        [0; WEFT_PLATFORM_COND_BYTES as usize / 8]
    }
    fn plugin_init(table: &weft_platform_t) -> weft_plat_init_fn {
        table.cond_init
    }
    fn plugin_destroy(table: &weft_platform_t) -> weft_plat_obj_fn {
        table.cond_destroy
    }
}

pub(crate) type CondObject = SyncObject<CondKind>;

impl CondObject {
    pub(crate) fn init_cond(&self, rt: &crate::runtime::Runtime) -> Result<()> {
        self.init(rt, TAG_COND)
    }

    /// A condition of weft's own (see `SyncObject::internal`).
    pub(crate) fn internal_cond(rt: &'static crate::runtime::Runtime) -> Result<&'static CondObject> {
        SyncObject::internal(rt, TAG_COND)
    }

    pub(crate) fn destroy_cond(&self) -> Result<()> {
        // Destroying it under a waiter would leave that waiter unable to be signalled
        // (every later call is EINVAL): refuse, as a held mutex is refused.
        let waiters = self.count.load(Acquire);
        self.destroy((waiters != 0).then(|| format!("has {waiters} waiter(s)")))
    }

    /// Releases `mutex` (all levels), waits for a signal, the deadline or a
    /// cancellation, and takes `mutex` back (all levels) whatever the outcome.
    pub(crate) fn wait(&self, mutex: &MutexObject, ctx: &Context, deadline: i64) -> Result<()> {
        let rt = self.open_runtime()?;
        if !std::ptr::eq(rt, mutex.runtime()) {
            fail!(WEFT_EINVAL, "condition {:p} and mutex {:p} belong to different runtimes", self, mutex);
        }
        if !mutex.held_by(ctx) {
            fail!(WEFT_EPERM, "mutex {:p} is not held by the caller", mutex);
        }
        // Before the mutex is free: a lock of it that closes a cycle through this
        // waiter sees the waiter's need of it (`Checks::waiting_in_cond`).
        let watched = rt.checks.on();
        if watched {
            rt.checks.waiting_in_cond(ctx, mutex.addr());
        }
        let depth = mutex.release_for_wait(rt, ctx);
        let m_bytes = mutex.plugin_bytes();
        self.count.fetch_add(1, AcqRel);
        // Never parked for a stop while holding the mutex again (see
        // safepoint::wait_outside_stop).
        let status = safepoint::wait_outside_stop(
            rt,
            || plat_call!(rt.table, cond_wait_until(self.plugin_bytes(), m_bytes, deadline)),
            || plat_call!(rt.table, mutex_lock(m_bytes)),
            || {
                plat_call!(rt.table, mutex_unlock(m_bytes));
            },
        );
        self.count.fetch_sub(1, AcqRel);
        mutex.reacquired_after_wait(rt, ctx, depth);
        if watched {
            rt.checks.done_waiting(ctx);
        }
        match status {
            WEFT_ETIMEDOUT => fail!(WEFT_ETIMEDOUT, "condition {:p} was not signalled before the deadline", self),
            WEFT_ECANCELED => {
                fail!(WEFT_ECANCELED, "the calling task was cancelled while waiting on condition {:p}", self)
            }
            _ => check_plugin(status, || format!("cannot wait on condition {:p}", self)),
        }
    }

    /// Whether a signal or broadcast may end here, with nobody to wake: no task is
    /// inside a wait, on a platform where the call need not be a switch point. A waiter
    /// counts itself before the plugin releases its mutex, so a signaller that changed
    /// the predicate under that mutex sees it (the rule pthread has too: a signal sent
    /// without the mutex, to a waiter about to wait, can be lost).
    #[inline(always)]
    pub(crate) fn nobody_to_wake(&self, rt: &crate::runtime::Runtime) -> bool {
        self.count.load(Acquire) == 0 && rt.table.caps & WEFT_CAP_DETERMINISTIC == 0
    }

    pub(crate) fn signal(&self) -> Result<()> {
        let rt = self.open_runtime()?;
        if self.nobody_to_wake(rt) {
            return Ok(());
        }
        check_plugin(plat_call!(rt.table, cond_signal(self.plugin_bytes())), || {
            format!("cannot signal condition {:p}", self)
        })
    }

    pub(crate) fn broadcast(&self) -> Result<()> {
        let rt = self.open_runtime()?;
        if self.nobody_to_wake(rt) {
            return Ok(());
        }
        check_plugin(plat_call!(rt.table, cond_broadcast(self.plugin_bytes())), || {
            format!("cannot broadcast condition {:p}", self)
        })
    }
}
