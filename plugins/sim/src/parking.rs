//! The runtime's parking on an address (`park` / `unpark`: `weft_wait_on`, `weft_park`,
//! the semaphores, barriers and `weft_once`), in the scheduler's own wait queues.
//! Without these members libweft parks with a table of buckets hashed by address, each
//! a mutex and condition of the platform. On sim that made a run depend on its
//! addresses, which change from run to run: which bucket an address falls in decides
//! which waiters share a lock and a condition (and so who blocks, and who is woken
//! for nothing), and which objects the trace names. The same seed must give the same
//! run.
use std::ffi::c_void;

use weft_platform::*;

use crate::sched::{self, Call, Obj};
use crate::wait::{self, Wake};
use crate::{on_sim, refuse_foreign_thread, HOST};

/// Set in the runtime's keys. No address has it, nor any key the plugin waits on
/// itself (the objects' addresses; the task keys at the top of the range).
const RUNTIME_KEY: usize = 1 << 62;

/// Parks the calling task on `key` if `validate(ud)` still says so; no other task runs
/// between the check and the park.
pub(crate) unsafe extern "C" fn park(
    _rt: *mut weft_plat_rt_t,
    key: usize,
    validate: unsafe extern "C" fn(ud: *mut c_void) -> bool,
    ud: *mut c_void,
    deadline: i64,
) -> weft_status_t {
    on_sim(|sim| {
        let call = Call { name: "weft_park", obj: Obj::Key(key) };
        sim.step(call);
        // SAFETY: the runtime's callback with its own `ud`, for the length of this call.
        let still = || unsafe { validate(ud) };
        match HOST.blocking(|| wait::park_in(sim, call, key | RUNTIME_KEY, still, deadline, true)) {
            Wake::Woken => WEFT_OK,
            Wake::TimedOut => WEFT_ETIMEDOUT,
            Wake::Cancelled => WEFT_ECANCELED,
        }
    })
}

/// Wakes up to `n` tasks parked on `key`, oldest first (as on every platform: a lock
/// or a fair queue built on parking relies on it); how many it woke.
pub(crate) unsafe extern "C" fn unpark(_rt: *mut weft_plat_rt_t, key: usize, n: usize) -> usize {
    HOST.guard_or(0, || match sched::here() {
        Some(sim) => {
            let woken = sim.wake_oldest(key | RUNTIME_KEY, n);
            sim.step(Call { name: "weft_unpark", obj: Obj::Key(key) });
            woken
        }
        None => {
            refuse_foreign_thread();
            0
        }
    })
}
