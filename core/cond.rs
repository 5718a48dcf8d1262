//! Condition variables in host memory.
use std::ffi::c_void;
use std::sync::atomic::{
    AtomicPtr, AtomicU32, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

use weft_platform::*;

use crate::context;
use crate::error::{check_plugin, fail, ffi, Result};
use crate::loader::plat_call;
use crate::mutex::mutex_ref;
use crate::runtime::{open_runtime, weft_runtime_t};
use crate::safepoint;
use crate::sync_object::{live_object, TAG_DESTROYED};

const TAG_COND: u32 = 0x5743_4e44;

#[repr(C)]
struct CondRepr {
    tag: AtomicU32,
    /// Tasks inside a wait on this condition (so a destroy under them is refused).
    waiters: AtomicU32,
    rt: AtomicPtr<weft_runtime_t>,
    plugin: [u64; WEFT_PLATFORM_COND_BYTES as usize / 8],
}

const _: () = assert!(std::mem::size_of::<CondRepr>() == WEFT_COND_SIZE);

impl CondRepr {
    fn plugin_bytes(&self) -> *mut c_void {
        self.plugin.as_ptr() as *mut c_void
    }
}

fn cond_ref<'a>(c: *mut weft_cond_t, allow_closed: bool) -> Result<(&'a CondRepr, &'static weft_runtime_t)> {
    // SAFETY: a non-NULL pointer from the host addresses WEFT_COND_SIZE bytes.
    let Some(repr) = (unsafe { (c as *const CondRepr).as_ref() }) else { fail!(WEFT_EINVAL, "condition is NULL") };
    let rt = live_object(&repr.tag, repr.rt.load(Relaxed), &[TAG_COND], "cond", c as *const u8, allow_closed)?;
    Ok((repr, rt))
}

/// Initialises the condition variable in host memory at `c`. The host owns the memory;
/// it must stay in place until `weft_cond_destroy`.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_init(rt: *mut weft_runtime_t, c: *mut weft_cond_t) -> weft_status_t {
    ffi("weft_cond_init", || {
        let rt = open_runtime(rt)?;
        if c.is_null() {
            fail!(WEFT_EINVAL, "condition is NULL");
        }
        let repr = c as *mut CondRepr;
        repr.write(CondRepr {
            tag: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            rt: AtomicPtr::new(rt as *const _ as *mut _),
            plugin: [0; WEFT_PLATFORM_COND_BYTES as usize / 8],
        });
        let repr = &*repr;
        check_plugin(plat_call!(rt.table, cond_init(rt.prt, repr.plugin_bytes())), || {
            "the platform could not initialise the condition".into()
        })?;
        repr.tag.store(TAG_COND, Release);
        Ok(())
    })
}

/// Destroys a condition variable nobody waits on (`WEFT_EBUSY` while tasks wait on it).
/// Later calls on it are `WEFT_EINVAL`. Allowed after the runtime closed.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_destroy(c: *mut weft_cond_t) -> weft_status_t {
    ffi("weft_cond_destroy", || {
        let (repr, rt) = cond_ref(c, true)?;
        // Destroying it under a waiter would leave that waiter unable to be signalled
        // (every later call is EINVAL): refuse, as a held mutex is refused.
        let waiters = repr.waiters.load(Acquire);
        if waiters != 0 {
            fail!(WEFT_EBUSY, "condition {c:p} has {waiters} waiter(s)");
        }
        check_plugin(plat_call!(rt.table, cond_destroy(repr.plugin_bytes())), || {
            format!("the platform could not destroy condition {c:p}")
        })?;
        repr.tag.store(TAG_DESTROYED, Release);
        Ok(())
    })
}

fn wait_until(function: &'static str, c: *mut weft_cond_t, m: *mut weft_mutex_t, deadline: i64) -> weft_status_t {
    ffi(function, || {
        let (cond, rt) = cond_ref(c, false)?;
        let (mutex, mutex_rt) = mutex_ref(m, false)?;
        if !std::ptr::eq(rt, mutex_rt) {
            fail!(WEFT_EINVAL, "condition {c:p} and mutex {m:p} belong to different runtimes");
        }
        let me = context::current().id;
        if mutex.owner.load(Relaxed) != me {
            fail!(WEFT_EPERM, "mutex {m:p} is not held by the caller");
        }
        // The wait releases the mutex completely (all levels of a recursive one) and
        // restores them before returning, whatever the outcome.
        let depth = mutex.release_for_wait();
        let m_bytes = mutex.plugin_bytes();
        cond.waiters.fetch_add(1, AcqRel);
        // Never parked for a stop while holding `m` again (see safepoint::wait_outside_stop).
        let status = safepoint::wait_outside_stop(
            rt,
            || plat_call!(rt.table, cond_wait_until(cond.plugin_bytes(), m_bytes, deadline)),
            || plat_call!(rt.table, mutex_lock(m_bytes)),
            || {
                plat_call!(rt.table, mutex_unlock(m_bytes));
            },
        );
        cond.waiters.fetch_sub(1, AcqRel);
        mutex.reacquired_after_wait(me, depth);
        match status {
            WEFT_ETIMEDOUT => fail!(WEFT_ETIMEDOUT, "condition {c:p} was not signalled before the deadline"),
            WEFT_ECANCELED => fail!(WEFT_ECANCELED, "the calling task was cancelled while waiting on condition {c:p}"),
            _ => check_plugin(status, || format!("cannot wait on condition {c:p}")),
        }
    })
}

/// Atomically unlocks `m` (held by the caller) and waits for a signal; `m` is locked
/// again on every return. Spurious wake-ups happen: wait in a loop on your predicate.
/// A cancellation point (`WEFT_ECANCELED`, with `m` locked again). `WEFT_EPERM` if the
/// caller does not hold `m`. The waiting caller is in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_wait(c: *mut weft_cond_t, m: *mut weft_mutex_t) -> weft_status_t {
    wait_until("weft_cond_wait", c, m, WEFT_FOREVER)
}

/// As `weft_cond_wait`, giving up at `deadline` with `WEFT_ETIMEDOUT` (`m` locked again).
#[no_mangle]
pub unsafe extern "C" fn weft_cond_wait_until(
    c: *mut weft_cond_t,
    m: *mut weft_mutex_t,
    deadline: i64,
) -> weft_status_t {
    wait_until("weft_cond_wait_until", c, m, deadline)
}

/// Wakes at least one task waiting on `c`, if any. The caller need not hold the mutex.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_signal(c: *mut weft_cond_t) -> weft_status_t {
    ffi("weft_cond_signal", || {
        let (repr, rt) = cond_ref(c, false)?;
        check_plugin(plat_call!(rt.table, cond_signal(repr.plugin_bytes())), || {
            format!("cannot signal condition {c:p}")
        })
    })
}

/// Wakes every task waiting on `c`.
#[no_mangle]
pub unsafe extern "C" fn weft_cond_broadcast(c: *mut weft_cond_t) -> weft_status_t {
    ffi("weft_cond_broadcast", || {
        let (repr, rt) = cond_ref(c, false)?;
        check_plugin(plat_call!(rt.table, cond_broadcast(repr.plugin_bytes())), || {
            format!("cannot broadcast condition {c:p}")
        })
    })
}
