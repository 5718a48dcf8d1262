//! Parking on an address (`weft_wait_on` / `weft_wake`, `weft_park` / `weft_unpark`),
//! the primitive VMs build one-byte locks on (WebKit's ParkingLot, CPython's PyMutex),
//! and weft's own semaphores, barriers and once.
//!
//! A platform that has the optional `park` / `unpark` members parks the task itself
//! (native and green: one futex-style wait on their own parking, keyed by the address):
//! the table below is then a pass-through. For the others (sim, pthread, a third party's
//! plugin) the runtime's parking table is a fixed set of buckets hashed by address; each
//! bucket is a weft mutex and condition of the runtime's platform, and a queue of the
//! parked, so parking is whatever the platform makes of a condition wait. Either way a
//! parked green task frees its worker, a parked thread sleeps, and the wait is a
//! cancellation point and a blocking region (a stop-the-world never waits for it).
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use weft_platform::fork_lock::ForkMutex;
use weft_platform::*;

use crate::ffi::error::{fail, Result};
use crate::runtime::context;
use crate::runtime::sync::cond::CondObject;
use crate::runtime::sync::mutex::MutexObject;
use crate::runtime::Runtime;

/// Buckets per runtime: enough that unrelated addresses rarely share one.
const BUCKETS: usize = 256;

struct Parked {
    addr: usize,
    woken: AtomicBool,
}

struct Bucket {
    lock: &'static MutexObject,
    cond: &'static CondObject,
    /// Changed only with `lock` held (the inner lock is never contended).
    queue: ForkMutex<VecDeque<Arc<Parked>>>,
}

pub(crate) struct ParkingTable {
    /// The plugin's `park` and `unpark`, when it has them (then no buckets).
    plugin: Option<(PluginPark, PluginUnpark)>,
    buckets: Vec<Bucket>,
}

type PluginPark = unsafe extern "C" fn(
    *mut weft_plat_rt_t,
    usize,
    unsafe extern "C" fn(*mut std::ffi::c_void) -> bool,
    *mut std::ffi::c_void,
    i64,
) -> weft_status_t;
type PluginUnpark = unsafe extern "C" fn(*mut weft_plat_rt_t, usize, usize) -> usize;

/// The plugin's `validate` callback over the runtime's closure (`ud` points to it).
unsafe extern "C" fn call_validate<F: FnMut() -> bool>(ud: *mut std::ffi::c_void) -> bool {
    // SAFETY: `ud` is the `F` of `park_in_plugin`, alive for the call.
    unsafe { (*(ud as *mut F))() }
}

/// How a park ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Parking {
    /// `validate` said no: the caller never slept.
    Invalid,
    /// Woken by an unpark.
    Woken,
}

impl ParkingTable {
    pub(crate) fn new(rt: &'static Runtime) -> Result<ParkingTable> {
        if let (Some(park), Some(unpark)) = (rt.table.park, rt.table.unpark) {
            return Ok(ParkingTable { plugin: Some((park, unpark)), buckets: Vec::new() });
        }
        let mut buckets = Vec::with_capacity(BUCKETS);
        for _ in 0..BUCKETS {
            buckets.push(Bucket {
                lock: MutexObject::internal_mutex(rt)?,
                cond: CondObject::internal_cond(rt)?,
                queue: ForkMutex::new(VecDeque::new()),
            });
        }
        Ok(ParkingTable { plugin: None, buckets })
    }

    fn bucket(&self, addr: usize) -> &Bucket {
        // Fibonacci hashing of the address without its alignment bits.
        let hash = ((addr >> 2) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56;
        &self.buckets[hash as usize % BUCKETS]
    }

    /// Parks the caller on `addr` if `validate()`, run with the bucket locked (so no
    /// unpark of `addr` can come between the two), says so, until an unpark, the
    /// deadline (`WEFT_ETIMEDOUT`) or a cancellation (`WEFT_ECANCELED`). An unpark that
    /// came first wins over a deadline or cancellation met at the same time.
    pub(crate) fn park(
        &self,
        rt: &Runtime,
        addr: usize,
        validate: impl FnOnce() -> bool,
        deadline: i64,
    ) -> Result<Parking> {
        if let Some((park, _)) = self.plugin {
            return park_in_plugin(rt, park, addr, validate, deadline);
        }
        let b = self.bucket(addr);
        let me = context::current();
        // A cancelled task is refused first, whatever `validate` says, as the plugins'
        // own parking does: a loop that parks until some state changes relies on it.
        if me.is_cancelled() && !me.mutator.cancel_masked() {
            fail!(WEFT_ECANCELED, "the calling task was cancelled");
        }
        b.lock.lock(rt, me, None)?;
        if !validate() {
            b.lock.unlock(rt, me)?;
            return Ok(Parking::Invalid);
        }
        let parked = Arc::new(Parked { addr, woken: AtomicBool::new(false) });
        b.queue.lock().push_back(Arc::clone(&parked));
        let mut outcome = Ok(Parking::Woken);
        while !parked.woken.load(SeqCst) {
            if let Err(e) = b.cond.wait(b.lock, me, deadline) {
                outcome = Err(e);
                break;
            }
        }
        if parked.woken.load(SeqCst) {
            outcome = Ok(Parking::Woken);
        } else {
            b.queue.lock().retain(|p| !Arc::ptr_eq(p, &parked));
        }
        b.lock.unlock(rt, me)?;
        match outcome {
            Err(e) if e.code == WEFT_ETIMEDOUT => fail!(WEFT_ETIMEDOUT, "nobody woke the caller by the deadline"),
            Err(e) if e.code == WEFT_ECANCELED => fail!(WEFT_ECANCELED, "the calling task was cancelled while parked"),
            other => other,
        }
    }

    /// Wakes up to `n` callers parked on `addr`, oldest first; how many it woke.
    pub(crate) fn unpark(&self, rt: &Runtime, addr: usize, n: usize) -> Result<usize> {
        if let Some((_, unpark)) = self.plugin {
            // SAFETY: a member of the accepted table, with this runtime's plugin state.
            return Ok(unsafe { unpark(rt.prt, addr, n) });
        }
        let b = self.bucket(addr);
        let me = context::current();
        b.lock.lock(rt, me, None)?;
        let mut woken = 0;
        b.queue.lock().retain(|p| {
            if woken < n && p.addr == addr {
                p.woken.store(true, SeqCst);
                woken += 1;
                false
            } else {
                true
            }
        });
        if woken > 0 {
            b.cond.broadcast()?;
        }
        b.lock.unlock(rt, me)?;
        Ok(woken)
    }
}

/// `park` through the plugin's member.
fn park_in_plugin(
    rt: &Runtime,
    park: PluginPark,
    addr: usize,
    validate: impl FnOnce() -> bool,
    deadline: i64,
) -> Result<Parking> {
    let mut validate = Some(validate);
    let mut once = || validate.take().is_some_and(|f| f());
    let ud = &mut once as *mut _ as *mut std::ffi::c_void;
    // SAFETY: a member of the accepted table; `call_validate` gets the closure it was
    // made for, alive until `park` returns.
    let status = unsafe { park(rt.prt, addr, call_validate_of(&once), ud, deadline) };
    match status {
        WEFT_OK => Ok(Parking::Woken),
        WEFT_ETIMEDOUT => fail!(WEFT_ETIMEDOUT, "nobody woke the caller by the deadline"),
        WEFT_ECANCELED => fail!(WEFT_ECANCELED, "the calling task was cancelled while parked"),
        status => {
            crate::ffi::error::check_plugin(status, || format!("cannot park on {addr:#x}")).map(|()| Parking::Woken)
        }
    }
}

/// `call_validate` for the type of `_f`.
fn call_validate_of<F: FnMut() -> bool>(_f: &F) -> unsafe extern "C" fn(*mut std::ffi::c_void) -> bool {
    call_validate::<F>
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearby_addresses_spread_over_the_buckets() {
        let hash = |addr: usize| (((addr >> 2) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % BUCKETS;
        let used: std::collections::HashSet<usize> = (0..1024).map(|i| hash(0x7f00_0000 + i * 8)).collect();
        assert!(used.len() > BUCKETS / 2, "{} buckets used", used.len());
    }
}
