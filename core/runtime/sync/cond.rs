//! Condition variables in host memory; `count` holds the tasks inside a wait (so a
//! destroy under them is refused), and whether each of them was woken.
//!
//! POSIX allows a destroy, and the memory's reuse, as soon as no waiter is blocked on
//! the condition, including right after a broadcast whose woken waiters have yet to
//! take their mutex back (the example in `pthread_cond_destroy`'s rationale frees the
//! element that holds it). Here a woken waiter still reads the plugin's bytes and
//! `count` until its wait returns, which happens after it took the mutex back: the
//! platform's wait relocks. So a destroy waits for such waiters to leave. It must not
//! wait for a waiter nobody woke (a destroy under a blocked waiter is refused, as
//! before), so `count` says whether every waiter it holds was woken: `ALL_WOKEN`, set
//! by a broadcast or by a signal to the only waiter, cleared by each new waiter.
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::time::Duration;

use weft_platform::*;

use super::mutex::MutexObject;
use super::{SyncKind, SyncObject};
use crate::ffi::error::{check_plugin, fail, Result};
use crate::plugin::plat_call;
use crate::runtime::context::Context;
use crate::runtime::safepoint;

pub(crate) struct CondKind;

const TAG_COND: u32 = 0x5743_4e44;

/// `count`'s top bit: every waiter it holds was woken, and is only leaving its wait.
const ALL_WOKEN: u32 = 1 << 31;
/// `count`'s other bits: the tasks inside a wait.
const WAITERS: u32 = ALL_WOKEN - 1;

/// How long a destroy waits for woken waiters that do not leave (none left in that
/// time): they need their mutex back, and the caller may hold it.
const LEAVE_PATIENCE: Duration = Duration::from_millis(200);

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
        // (every later call is EINVAL): refuse, as a held mutex is refused. Woken
        // waiters are waited for (see the module's comment).
        let mut count = self.count.load(Acquire);
        if count & ALL_WOKEN != 0 && count & WAITERS != 0 {
            count = self.woken_waiters_leave();
        }
        let waiters = count & WAITERS;
        let busy = match (waiters, count & ALL_WOKEN != 0) {
            (0, _) => None,
            (_, false) => Some(format!("has {waiters} waiter(s)")),
            (_, true) => Some(format!(
                "has {waiters} waiter(s) that were woken but did not leave their wait within {} ms: a wait \
                 returns once it took its mutex back (does the caller hold that mutex?)",
                LEAVE_PATIENCE.as_millis()
            )),
        };
        self.destroy(busy)
    }

    /// Waits while the woken waiters leave, until none is left, a new waiter comes, or
    /// none left for `LEAVE_PATIENCE` (on the runtime's clock: a virtual-time platform
    /// runs the waiters meanwhile). Returns `count` as it was last seen.
    fn woken_waiters_leave(&self) -> u32 {
        let Ok(rt) = self.open_runtime() else { return self.count.load(Acquire) };
        let patience = LEAVE_PATIENCE.as_nanos() as i64;
        safepoint::in_blocking_region_of_caller(rt, || {
            let mut seen = self.count.load(Acquire);
            let mut since = rt.now();
            let mut round = 0u32;
            loop {
                round = round.saturating_add(1);
                let count = self.count.load(Acquire);
                if count & WAITERS == 0 || count & ALL_WOKEN == 0 {
                    return count;
                }
                let now = rt.now();
                if count != seen {
                    (seen, since) = (count, now);
                } else if now - since >= patience {
                    return count;
                }
                // A few yields let waiters on this CPU run; then sleep, so that a
                // wait for a mutex the caller holds does not spin for the whole time.
                if round <= 64 {
                    let _ = rt.plugin_yield();
                } else {
                    let _ = rt.sleep_until(now + 100_000);
                }
            }
        })
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
        // A new waiter, which nobody woke yet.
        let _ = self.count.fetch_update(AcqRel, Acquire, |c| Some((c + 1) & WAITERS));
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
        // The last touch of this memory: a destroy may free it once `count` is 0.
        let _ = self.count.fetch_update(AcqRel, Acquire, |c| Some(if c & WAITERS == 1 { 0 } else { c - 1 }));
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
        self.count.load(Acquire) & WAITERS == 0 && rt.table.caps & WEFT_CAP_DETERMINISTIC == 0
    }

    pub(crate) fn signal(&self) -> Result<()> {
        let rt = self.open_runtime()?;
        if self.nobody_to_wake(rt) {
            return Ok(());
        }
        // The only waiter is woken (before it is: a waiter that comes after the signal
        // clears the bit again).
        let _ = self.count.compare_exchange(1, 1 | ALL_WOKEN, AcqRel, Acquire);
        check_plugin(plat_call!(rt.table, cond_signal(self.plugin_bytes())), || {
            format!("cannot signal condition {:p}", self)
        })
    }

    pub(crate) fn broadcast(&self) -> Result<()> {
        let rt = self.open_runtime()?;
        if self.nobody_to_wake(rt) {
            return Ok(());
        }
        // Every waiter so far is woken (before it is, as for a signal).
        self.count.fetch_or(ALL_WOKEN, AcqRel);
        check_plugin(plat_call!(rt.table, cond_broadcast(self.plugin_bytes())), || {
            format!("cannot broadcast condition {:p}", self)
        })
    }
}
