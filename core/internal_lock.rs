//! A mutex and condition of the loaded platform in memory the runtime owns, for the
//! runtime's own waiting (stop-the-world). Going through the plugin keeps the rule that
//! everything that blocks or schedules is the platform's, so a green task parks instead
//! of blocking its worker. The caller masks the host hooks around these waits (see
//! `Mutator::internal_wait`): the runtime's own waits are accounted for explicitly.
use std::cell::UnsafeCell;

use weft_platform::*;

use crate::error::{check_plugin, Result};
use crate::loader::plat_call;

pub(crate) struct InternalLock {
    table: &'static weft_platform_t,
    mutex: Box<UnsafeCell<[u64; WEFT_PLATFORM_MUTEX_BYTES as usize / 8]>>,
    cond: Box<UnsafeCell<[u64; WEFT_PLATFORM_COND_BYTES as usize / 8]>>,
}

// SAFETY: the storage is only ever touched through the plugin's thread-safe functions.
unsafe impl Send for InternalLock {}
unsafe impl Sync for InternalLock {}

impl InternalLock {
    pub(crate) fn new(table: &'static weft_platform_t, prt: *mut weft_plat_rt_t) -> Result<InternalLock> {
        let lock = InternalLock {
            table,
            mutex: Box::new(UnsafeCell::new([0; WEFT_PLATFORM_MUTEX_BYTES as usize / 8])),
            cond: Box::new(UnsafeCell::new([0; WEFT_PLATFORM_COND_BYTES as usize / 8])),
        };
        // The storage is ours, zeroed and 8-aligned.
        check_plugin(plat_call!(table, mutex_init(prt, lock.mutex.get().cast())), || {
            "cannot initialise the runtime's internal mutex".into()
        })?;
        check_plugin(plat_call!(table, cond_init(prt, lock.cond.get().cast())), || {
            "cannot initialise the runtime's internal condition".into()
        })?;
        Ok(lock)
    }

    pub(crate) fn lock(&self) {
        plat_call!(self.table, mutex_lock(self.mutex.get().cast()));
    }

    pub(crate) fn unlock(&self) {
        plat_call!(self.table, mutex_unlock(self.mutex.get().cast()));
    }

    /// Waits (mutex held) for a broadcast or the deadline; returns the plugin status.
    pub(crate) fn wait_until(&self, deadline: i64) -> weft_status_t {
        plat_call!(self.table, cond_wait_until(self.cond.get().cast(), self.mutex.get().cast(), deadline))
    }

    pub(crate) fn broadcast(&self) {
        plat_call!(self.table, cond_broadcast(self.cond.get().cast()));
    }
}

impl Drop for InternalLock {
    fn drop(&mut self) {
        // Nobody waits any more when the runtime closes.
        plat_call!(self.table, cond_destroy(self.cond.get().cast()));
        plat_call!(self.table, mutex_destroy(self.mutex.get().cast()));
    }
}
