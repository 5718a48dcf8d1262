//! A mutex and two conditions of the loaded platform in memory the runtime owns, for the
//! runtime's own waiting (stop-the-world). Going through the plugin keeps the rule that
//! everything that blocks or schedules is the platform's, so a green task parks instead
//! of blocking its worker. The caller masks the host hooks around these waits (see
//! `safepoint::World::locked`): the runtime's own waits are accounted for explicitly.
use std::cell::UnsafeCell;

use weft_platform::*;

use crate::ffi::error::{check_plugin, Result};
use crate::plugin::plat_call;

type MutexBytes = UnsafeCell<[u64; WEFT_PLATFORM_MUTEX_BYTES as usize / 8]>;
type CondBytes = UnsafeCell<[u64; WEFT_PLATFORM_COND_BYTES as usize / 8]>;

/// Which condition to wait on or wake. Several, so that the many mutators parked
/// for the whole of a stop are not woken each time one more mutator stops (only the
/// requester cares about that).
#[derive(Clone, Copy)]
pub(crate) enum Cond {
    /// A mutator stopped, entered a blocking region or left: the requester re-counts.
    Progress = 0,
    /// The stop is over (or a stop request gave up): parked mutators and waiting
    /// requesters look again.
    Resumed = 1,
    /// The last task of a runtime exited: `weft_runtime_drain` looks again.
    Idle = 2,
}

pub(crate) struct InternalLock {
    table: &'static weft_platform_t,
    mutex: Box<MutexBytes>,
    conds: [Box<CondBytes>; 3],
}

// SAFETY: the storage is only ever touched through the plugin's thread-safe functions.
unsafe impl Send for InternalLock {}
// SAFETY: as for Send.
unsafe impl Sync for InternalLock {}

impl InternalLock {
    pub(crate) fn new(table: &'static weft_platform_t, prt: *mut weft_plat_rt_t) -> Result<InternalLock> {
        let lock = InternalLock {
            table,
            mutex: Box::new(UnsafeCell::new([0; WEFT_PLATFORM_MUTEX_BYTES as usize / 8])),
            conds: [(); 3].map(|_| Box::new(UnsafeCell::new([0; WEFT_PLATFORM_COND_BYTES as usize / 8]))),
        };
        // The storage is ours, zeroed and 8-aligned.
        check_plugin(plat_call!(table, mutex_init(prt, lock.mutex.get().cast())), || {
            "cannot initialise the runtime's internal mutex".into()
        })?;
        for (i, cond) in lock.conds.iter().enumerate() {
            if let Err(e) = check_plugin(plat_call!(table, cond_init(prt, cond.get().cast())), || {
                "cannot initialise the runtime's internal condition".into()
            }) {
                // Give back what the plugin did initialise; the rest is only our memory.
                for done in &lock.conds[..i] {
                    plat_call!(table, cond_destroy(done.get().cast()));
                }
                plat_call!(table, mutex_destroy(lock.mutex.get().cast()));
                return Err(e);
            }
        }
        Ok(lock)
    }

    pub(crate) fn lock(&self) {
        plat_call!(self.table, mutex_lock(self.mutex.get().cast()));
    }

    pub(crate) fn unlock(&self) {
        plat_call!(self.table, mutex_unlock(self.mutex.get().cast()));
    }

    /// Waits (mutex held) on `cond` for a broadcast or the deadline; returns the plugin
    /// status.
    pub(crate) fn wait_until(&self, cond: Cond, deadline: i64) -> weft_status_t {
        plat_call!(
            self.table,
            cond_wait_until(self.conds[cond as usize].get().cast(), self.mutex.get().cast(), deadline)
        )
    }

    pub(crate) fn broadcast(&self, cond: Cond) {
        plat_call!(self.table, cond_broadcast(self.conds[cond as usize].get().cast()));
    }

    /// For close, once nobody can wait any more: hands the plugin objects back. The
    /// memory stays (the runtime's shell is never freed).
    pub(crate) fn destroy(&self) {
        for cond in &self.conds {
            plat_call!(self.table, cond_destroy(cond.get().cast()));
        }
        plat_call!(self.table, mutex_destroy(self.mutex.get().cast()));
    }
}
