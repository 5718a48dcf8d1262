//! VM integration: attach and detach, safepoints, stop-the-world, blocking regions and
//! the mutator registry. The protocol is in `runtime/safepoint.rs`.
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::AtomicU32;

use weft_platform::*;

use super::{any_runtime, open_runtime};
use crate::ffi::callback::{host_call, may_unwind};
use crate::ffi::error::{fail, ffi, ffi_value};
use crate::runtime::{parked, safepoint};
use crate::types::*;

/// Makes the calling host thread a mutator of `rt` until `weft_thread_detach`: a
/// stop-the-world then waits for it to reach a safepoint or a blocking region. Attaching
/// again is counted, not refused: each attach needs its detach, and the thread stays a
/// mutator until the last one (so nested libraries can attach independently). From a
/// weft task of `rt`, which is a mutator already, it is counted the same way. A thread is
/// a mutator of one runtime at a time (`WEFT_EBUSY` for a second). If another thread
/// holds the world stopped, returns once it resumes. A thread that exits while attached
/// stops being a mutator then (after its task-local destructors ran).
#[no_mangle]
pub unsafe extern "C" fn weft_thread_attach(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_thread_attach", || safepoint::attach(open_runtime(rt)?))
}

/// Ends one `weft_thread_attach` of the calling thread; the last one makes it stop being
/// a mutator. `WEFT_EINVAL` if the thread is not attached to `rt` (never attached, or
/// detached as often as attached; a task's own membership cannot be detached);
/// `WEFT_EBUSY` inside a blocking region. A stop the thread holds stays in force.
#[no_mangle]
pub unsafe extern "C" fn weft_thread_detach(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_thread_detach", || safepoint::detach(any_runtime(rt)?))
}

/// A safepoint: if a stop-the-world by another thread is requested or in force, parks
/// the calling mutator until it ends; otherwise returns at once. Inside a blocking
/// region it returns at once (the stop does not wait for the caller, and leaving the
/// region will wait if needed). `WEFT_EPERM` if the caller is not a mutator of `rt`.
/// The inline `WEFT_SAFEPOINT_POLL` calls it only when the flag is set.
#[no_mangle]
pub unsafe extern "C" fn weft_safepoint(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_safepoint", || safepoint::safepoint(open_runtime(rt)?))
}

/// The address of `rt`'s safepoint word, for `WEFT_SAFEPOINT_POLL`: a `uint32_t`,
/// non-zero while a stop-the-world is requested or in force, or while the platform asks
/// a task to yield (`WEFT_SAFEPOINT_PREEMPT`, set by M:N platforms such as green). Read
/// it only with an atomic load. Owned by weft; valid for the life of the process (also after close).
/// NULL for an invalid runtime.
#[no_mangle]
pub unsafe extern "C" fn weft_safepoint_flag(rt: *mut weft_runtime_t) -> *const c_void {
    ffi_value("weft_safepoint_flag", ptr::null(), || {
        Ok(&any_runtime(rt)?.world.flag as *const AtomicU32 as *const c_void)
    })
}

/// Stops the world: returns `WEFT_OK` once every other mutator of `rt` is parked at a
/// safepoint or inside a blocking region; they stay so until the caller's
/// `weft_stw_end` (a mutator leaving its region waits; a thread that attaches or a task
/// that starts meanwhile starts parked). The caller, a mutator or not, keeps running and
/// may call any weft function, blocking ones included.
///
/// If another thread requests or holds a stop, the caller waits for its turn: a caller
/// that is a mutator parks there as at a safepoint (the other stop counts it as
/// stopped, so two requesters never deadlock) and, since it must not run while another
/// holds the world, returns no earlier than that stop's end whatever its deadline; a
/// caller that is not a mutator gives up at `deadline` with `WEFT_ETIMEDOUT`.
///
/// `WEFT_ETIMEDOUT` at `deadline` if some mutators did not stop: the world is resumed
/// and `weft_last_error()` names them. `WEFT_EDEADLK` if the caller already holds the
/// world. If the caller exits (task or thread) without `weft_stw_end`, the world resumes.
#[no_mangle]
pub unsafe extern "C" fn weft_stw_begin(rt: *mut weft_runtime_t, deadline: i64) -> weft_status_t {
    ffi("weft_stw_begin", || safepoint::stop_world(open_runtime(rt)?, deadline))
}

/// Resumes the world stopped by the caller's `weft_stw_begin`. `WEFT_EPERM` if the
/// caller does not hold it.
#[no_mangle]
pub unsafe extern "C" fn weft_stw_end(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_stw_end", || safepoint::resume_world(open_runtime(rt)?))
}

/// Enters a blocking region: until the matching `weft_blocking_end`, the calling
/// mutator promises not to touch managed memory (nor to call `weft_local_set`), and a
/// stop-the-world does not wait for it. Nestable. Every weft call that can block does
/// this by itself while it waits. `WEFT_EPERM` if the caller is not a mutator of `rt`.
///
/// The outermost begin records, for `weft_tasks_foreach`, the caller's callee-saved
/// registers as they were at the call and its stack pointer as it is once the call has
/// returned: a collector scanning from there finds what the caller's frames hold, as
/// long as the caller's function does not return before `weft_blocking_end`. (Prefer
/// `weft_blocking_call`, which keeps that frame alive itself.)
#[unsafe(naked)]
#[no_mangle]
pub unsafe extern "C" fn weft_blocking_begin(rt: *mut weft_runtime_t) -> weft_status_t {
    // Records the registers before any prologue could change them (runtime/parked.rs).
    parked::recording_entry!(blocking_begin_recorded)
}

/// The body of `weft_blocking_begin`, given the words its entry recorded.
///
/// # Safety
/// `words` points to what the entry stored (`parked::ENTRY_REGS` + 1 words).
unsafe extern "C" fn blocking_begin_recorded(words: *const usize, rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_blocking_begin", || {
        // SAFETY: see above.
        let entry = unsafe { parked::EntryWords::new(words) };
        safepoint::host_blocking_begin(open_runtime(rt)?, entry)
    })
}

/// Leaves the blocking region of the matching `weft_blocking_begin`. Leaving the
/// outermost one while another thread holds the world stopped waits until it resumes.
/// `WEFT_EPERM` if the caller is not a mutator of `rt` or not in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_blocking_end(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_blocking_end", || safepoint::host_blocking_end(open_runtime(rt)?))
}

/// Runs `func(arg)` inside a blocking region of the calling mutator, as
/// `weft_blocking_begin(rt); func(arg); weft_blocking_end(rt);` would, but with the
/// caller's registers and stack pointer recorded in a frame of weft's that stays alive
/// until `func` returns (Boehm GC's `GC_do_blocking`): a conservative collector scanning
/// the caller during a stop finds everything its frames hold. Nests with
/// `weft_blocking_begin/_end` and with itself. `func` must not touch managed memory
/// (nor call `weft_local_set`); returning from it while another thread holds the world
/// stopped waits until the world resumes. `WEFT_EINVAL` if `func` is NULL, `WEFT_EPERM`
/// if the caller is not a mutator of `rt`; on these errors `func` is not called.
/// `WEFT_EPERM` after `func` if it ended the region the call opened (a
/// `weft_blocking_end` without its `weft_blocking_begin`): the caller is then in no
/// region.
#[no_mangle]
pub unsafe extern "C" fn weft_blocking_call(
    rt: *mut weft_runtime_t,
    func: weft_blocking_fn,
    arg: *mut c_void,
) -> weft_status_t {
    ffi("weft_blocking_call", || {
        let rt = open_runtime(rt)?;
        let Some(func) = func else { fail!(WEFT_EINVAL, "func is NULL") };
        let func = may_unwind!(func, fn(*mut c_void));
        // SAFETY: the host's function with the host's argument.
        safepoint::blocking_call(rt, || host_call("a weft_blocking_call function", || unsafe { func(arg) }))
    })
}

/// The calling mutator's stack (a task's, or an attached thread's): writes its lowest
/// address to `*lo` and one past its highest to `*hi` (a green or sim task's own stack
/// without its guard; an OS thread's as `pthread_getattr_np` reports it). The same
/// bounds `weft_tasks_foreach` reports. `WEFT_EINVAL` if `lo` or `hi` is NULL,
/// `WEFT_EPERM` if the caller is not a mutator (not a weft task, not attached).
#[no_mangle]
pub unsafe extern "C" fn weft_task_stack(lo: *mut *mut c_void, hi: *mut *mut c_void) -> weft_status_t {
    ffi("weft_task_stack", || {
        if lo.is_null() || hi.is_null() {
            fail!(WEFT_EINVAL, "{} is NULL", if lo.is_null() { "lo" } else { "hi" });
        }
        let (low, high) = safepoint::caller_stack()?;
        // SAFETY: checked non-NULL; the caller's out-parameters.
        unsafe {
            *lo = low as *mut c_void;
            *hi = high as *mut c_void;
        }
        Ok(())
    })
}

/// Calls `visit(info, ud)` for every live mutator of `rt` (tasks that have started and
/// not exited, and attached threads), then for every task spawned and not started yet
/// (`WEFT_TASK_STARTING`, with its spawn argument in `arg`), until it returns true.
/// Meant for a collector that holds the stopped world: then the list, the states, the
/// task-local values and the parked stack pointers and registers it sees cannot change
/// under it (a task that starts during the stop moves from STARTING to AT_SAFEPOINT at
/// once, never missed). Otherwise states may change as they are read, and `locals`,
/// `sp` and `regs` are given only for the caller itself. The callback may call weft.
/// `WEFT_EINVAL` if `visit` is NULL.
#[no_mangle]
pub unsafe extern "C" fn weft_tasks_foreach(
    rt: *mut weft_runtime_t,
    visit: weft_task_visit_fn,
    ud: *mut c_void,
) -> weft_status_t {
    ffi("weft_tasks_foreach", || {
        let rt = open_runtime(rt)?;
        let Some(visit) = visit else { fail!(WEFT_EINVAL, "visit is NULL") };
        safepoint::for_each_mutator(rt, |m| {
            // Held while the visitor runs: the handle names this task throughout.
            let hold = crate::runtime::task::hold_for_registry(&m.ctx);
            let info = weft_task_info_t {
                struct_size: std::mem::size_of::<weft_task_info_t>() as u32,
                state: m.state,
                id: m.ctx.id,
                name: m.ctx.name_ptr(),
                task: if hold.is_some() { m.ctx.task_handle() } else { std::ptr::null_mut() },
                locals: m.locals.0,
                nlocals: m.locals.1,
                stack_lo: m.stack.0 as *mut c_void,
                stack_hi: m.stack.1 as *mut c_void,
                sp: m.frame.sp as *mut c_void,
                regs: m.frame.regs,
                arg: m.arg as *mut c_void,
            };
            let visit = may_unwind!(visit, fn(*const weft_task_info_t, *mut c_void) -> bool);
            // SAFETY: the host's callback, called with a pointer valid for the call.
            host_call("a weft_tasks_foreach visitor", || unsafe { visit(&info, ud) })
        });
        Ok(())
    })
}
