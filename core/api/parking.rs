//! Parking on an address, semaphores, barriers, once, and the caller's identity.
use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

use weft_platform::*;

use super::{non_null, open_runtime, write_out};
use crate::ffi::callback::{host_call, may_unwind};
use crate::ffi::error::{fail, ffi, ffi_value, Result};
use crate::ffi::handle;
use crate::runtime::context;
use crate::runtime::parking::Parking;
use crate::runtime::sem::{Barrier, Once, Semaphore};
use crate::types::*;

const _: () = assert!(std::mem::size_of::<Semaphore>() <= std::mem::size_of::<weft_sem_t>());
const _: () = assert!(std::mem::size_of::<Barrier>() <= std::mem::size_of::<weft_barrier_t>());
const _: () = assert!(std::mem::size_of::<Once>() == std::mem::size_of::<weft_once_t>());

fn parked_address<T>(addr: *const T) -> Result<usize> {
    non_null(addr, "addr")?;
    Ok(addr as usize)
}

/// Parks the caller while `*addr == expected` (futex-style): returns `WEFT_OK` when
/// woken by `weft_wake` on `addr`, and at once, also `WEFT_OK`, if `*addr` already
/// differs from `expected` (there is no "try again" status: re-check your word after
/// every return). Spurious wake-ups do not happen, but a wake meant for an earlier value
/// may arrive: loop on your condition. `WEFT_ETIMEDOUT` at `deadline`, `WEFT_ECANCELED`
/// if the calling task is cancelled (a cancellation point, checked first: also when
/// `*addr` already differs). The comparison and the
/// parking are atomic with respect to `weft_wake`: change the word, then wake. `addr`
/// is read atomically; it must stay valid while anyone is parked on it. Parks the task,
/// not the thread, where the platform can; the parked caller is in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_wait_on(
    rt: *mut weft_runtime_t,
    addr: *const u32,
    expected: u32,
    deadline: i64,
) -> weft_status_t {
    ffi("weft_wait_on", || {
        let rt = open_runtime(rt)?;
        let at = parked_address(addr)?;
        // SAFETY: a non-NULL, aligned word of the host's, read atomically as documented.
        let word = unsafe { &*(addr as *const AtomicU32) };
        rt.parking()?.park(rt, at, || word.load(SeqCst) == expected, deadline)?;
        Ok(())
    })
}

/// Wakes up to `n` callers parked on `addr` (by `weft_wait_on` or `weft_park`), oldest
/// first, and returns how many it woke. `SIZE_MAX` wakes them all. 0 on bad input, with
/// `weft_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn weft_wake(rt: *mut weft_runtime_t, addr: *const c_void, n: usize) -> usize {
    ffi_value("weft_wake", 0, || {
        let rt = open_runtime(rt)?;
        rt.check_runs_caller()?;
        rt.parking()?.unpark(rt, parked_address(addr)?, n)
    })
}

/// Parks the caller on `addr` if `validate(ud)` returns true, evaluated atomically with
/// respect to `weft_unpark` on the same address (ParkingLot-style: a lock builder checks
/// its state word and parks in one step). `WEFT_OK` once unparked, or at once if
/// `validate` said false (the caller tells the two apart from its own state);
/// `WEFT_ETIMEDOUT`, `WEFT_ECANCELED` as `weft_wait_on`. `validate` runs on the caller,
/// with the address's bucket locked: it must be short and must not park or wake.
#[no_mangle]
pub unsafe extern "C" fn weft_park(
    rt: *mut weft_runtime_t,
    addr: *const c_void,
    validate: weft_park_validate_fn,
    ud: *mut c_void,
    deadline: i64,
) -> weft_status_t {
    ffi("weft_park", || {
        let rt = open_runtime(rt)?;
        let at = parked_address(addr)?;
        let Some(validate) = validate else { fail!(WEFT_EINVAL, "validate is NULL") };
        let validate = may_unwind!(validate, fn(*mut c_void) -> bool);
        // SAFETY: the host's callback with its own `ud`.
        let valid = || host_call("a weft_park validate function", || unsafe { validate(ud) });
        let parked = rt.parking()?.park(rt, at, valid, deadline)?;
        debug_assert!(matches!(parked, Parking::Woken | Parking::Invalid));
        Ok(())
    })
}

/// Wakes up to `n` callers parked on `addr`; how many it woke (as `weft_wake`).
#[no_mangle]
pub unsafe extern "C" fn weft_unpark(rt: *mut weft_runtime_t, addr: *const c_void, n: usize) -> usize {
    ffi_value("weft_unpark", 0, || {
        let rt = open_runtime(rt)?;
        rt.check_runs_caller()?;
        rt.parking()?.unpark(rt, parked_address(addr)?, n)
    })
}

// ---- semaphores ----

fn sem_ref<'a>(s: *mut weft_sem_t) -> Result<&'a Semaphore> {
    handle::check::<Semaphore>(s.cast())
}

/// Initialises the semaphore in host memory at `s` with `value` units. The host owns the
/// memory; it must stay in place, and not be copied, until `weft_sem_destroy`.
#[no_mangle]
pub unsafe extern "C" fn weft_sem_init(rt: *mut weft_runtime_t, s: *mut weft_sem_t, value: u32) -> weft_status_t {
    ffi("weft_sem_init", || {
        let rt = open_runtime(rt)?;
        non_null(s, "semaphore")?;
        // SAFETY: the host's semaphore memory, of the public type's size and alignment.
        unsafe { Semaphore::init(s.cast(), rt, value) };
        Ok(())
    })
}

/// Destroys a semaphore nobody waits on (`WEFT_EBUSY` otherwise). Allowed after the
/// runtime closed.
#[no_mangle]
pub unsafe extern "C" fn weft_sem_destroy(s: *mut weft_sem_t) -> weft_status_t {
    ffi("weft_sem_destroy", || sem_ref(s)?.destroy())
}

/// Adds one unit, waking one waiter if any. Any task or thread may post (the poster need
/// not be a waiter). `WEFT_EINVAL` at the maximum value, `UINT32_MAX`.
#[no_mangle]
pub unsafe extern "C" fn weft_sem_post(s: *mut weft_sem_t) -> weft_status_t {
    ffi("weft_sem_post", || sem_ref(s)?.post())
}

/// Takes one unit, waiting while there is none. A cancellation point where it waits (a
/// unit there is taken by a cancelled caller too, as a channel's ready element is
/// received); the waiting caller is in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_sem_wait(s: *mut weft_sem_t) -> weft_status_t {
    ffi("weft_sem_wait", || sem_ref(s)?.wait(WEFT_FOREVER))
}

/// As `weft_sem_wait`, giving up at `deadline` with `WEFT_ETIMEDOUT`.
#[no_mangle]
pub unsafe extern "C" fn weft_sem_wait_until(s: *mut weft_sem_t, deadline: i64) -> weft_status_t {
    ffi("weft_sem_wait_until", || sem_ref(s)?.wait(deadline))
}

/// Takes one unit if there is one; `WEFT_EBUSY` otherwise.
#[no_mangle]
pub unsafe extern "C" fn weft_sem_try_wait(s: *mut weft_sem_t) -> weft_status_t {
    ffi("weft_sem_try_wait", || {
        let sem = sem_ref(s)?;
        // As every call but a destroy, refused once the runtime closed.
        sem.runtime()?;
        if !sem.try_take() {
            fail!(WEFT_EBUSY, "semaphore {s:p} has no unit");
        }
        Ok(())
    })
}

/// The number of units now (a snapshot); 0 for an invalid semaphore.
#[no_mangle]
pub unsafe extern "C" fn weft_sem_value(s: *mut weft_sem_t) -> u32 {
    ffi_value("weft_sem_value", 0, || Ok(sem_ref(s)?.value()))
}

// ---- barriers ----

fn barrier_ref<'a>(b: *mut weft_barrier_t) -> Result<&'a Barrier> {
    handle::check::<Barrier>(b.cast())
}

/// Initialises a barrier for `count` tasks (at least 1) in host memory at `b`.
#[no_mangle]
pub unsafe extern "C" fn weft_barrier_init(
    rt: *mut weft_runtime_t,
    b: *mut weft_barrier_t,
    count: u32,
) -> weft_status_t {
    ffi("weft_barrier_init", || {
        let rt = open_runtime(rt)?;
        non_null(b, "barrier")?;
        if count == 0 {
            fail!(WEFT_EINVAL, "count is 0 (a barrier is for at least one task)");
        }
        // SAFETY: the host's barrier memory, of the public type's size and alignment.
        unsafe { Barrier::init(b.cast(), rt, count) };
        Ok(())
    })
}

/// Destroys a barrier; `WEFT_EBUSY` while tasks wait in a round that has not
/// completed. A task whose wait returned (the serial one, typically) may destroy the
/// barrier at once, and then free its memory: the tasks the round released leave their
/// waits before the destroy returns, and none touches the barrier after.
#[no_mangle]
pub unsafe extern "C" fn weft_barrier_destroy(b: *mut weft_barrier_t) -> weft_status_t {
    ffi("weft_barrier_destroy", || barrier_ref(b)?.destroy())
}

/// Waits until `count` tasks have called it, then lets them all go and starts a new
/// round. `*serial` (may be NULL) is true for exactly one task of each round, false for
/// the others. A cancellation point: a task cancelled while it waits leaves the round
/// (`WEFT_ECANCELED`, its arrival taken back) unless the round completed first.
#[no_mangle]
pub unsafe extern "C" fn weft_barrier_wait(b: *mut weft_barrier_t, serial: *mut bool) -> weft_status_t {
    ffi("weft_barrier_wait", || {
        let is_serial = barrier_ref(b)?.wait()?;
        if !serial.is_null() {
            // SAFETY: the host's optional out-parameter, checked non-NULL.
            unsafe { write_out(serial, is_serial) };
        }
        Ok(())
    })
}

// ---- once ----

/// Runs `func(ud)` if no call on `once` has run it yet; if another task is running it,
/// waits until it has returned. After any call returns `WEFT_OK`, the function has run
/// exactly once and its effects are visible. `WEFT_EDEADLK` if `func` itself calls
/// `weft_once` on the same `once`. Works before any runtime is open (a waiter then
/// yields its thread instead of parking). In a child of `fork()`, a once whose
/// function a thread of the parent was running at the fork (that thread is not in the
/// child) is run again by the child's first call, as `pthread_once` does.
#[no_mangle]
pub unsafe extern "C" fn weft_once(once: *mut weft_once_t, func: weft_once_fn, ud: *mut c_void) -> weft_status_t {
    ffi("weft_once", || {
        non_null(once, "once")?;
        let Some(func) = func else { fail!(WEFT_EINVAL, "func is NULL") };
        // SAFETY: the host's weft_once_t, statically initialised with WEFT_ONCE_INIT.
        let once = unsafe { &*(once as *const Once) };
        let func = may_unwind!(func, fn(*mut c_void));
        // SAFETY: the host's function with its own `ud`.
        once.call(|| host_call("a weft_once function", || unsafe { func(ud) }))
    })
}

/// The caller's identity: the task's id (as `weft_task_id`) on a weft task, and a
/// process-unique id, never 0, on any other thread, attached or not. "Is this the same
/// thread of execution" needs no table of the host's.
#[no_mangle]
pub extern "C" fn weft_self_id() -> u64 {
    context::current().id
}
