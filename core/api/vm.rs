//! VM integration: attach and detach, safepoints, stop-the-world, blocking regions and
//! the mutator registry. The protocol is in `runtime/safepoint.rs`.
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::AtomicU32;

use weft_platform::*;

use super::{any_runtime, open_runtime};
use crate::ffi::callback::{host_call, may_unwind};
use crate::ffi::error::{fail, ffi, ffi_value};
use crate::runtime::safepoint;
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
#[no_mangle]
pub unsafe extern "C" fn weft_blocking_begin(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_blocking_begin", || safepoint::host_blocking_begin(open_runtime(rt)?))
}

/// Leaves the blocking region of the matching `weft_blocking_begin`. Leaving the
/// outermost one while another thread holds the world stopped waits until it resumes.
/// `WEFT_EPERM` if the caller is not a mutator of `rt` or not in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_blocking_end(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_blocking_end", || safepoint::host_blocking_end(open_runtime(rt)?))
}

/// Calls `visit(info, ud)` for every live mutator of `rt` (tasks that have started and
/// not exited, and attached threads), until it returns true. Meant for a collector that
/// holds the stopped world: then the list, the states and the task-local values it sees
/// cannot change under it. Otherwise states may change as they are read and `locals` is
/// given only for the caller itself. The callback may call weft. `WEFT_EINVAL` if
/// `visit` is NULL.
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
            let info = weft_task_info_t {
                struct_size: std::mem::size_of::<weft_task_info_t>() as u32,
                state: m.state,
                id: m.ctx.id,
                name: m.ctx.name_ptr(),
                task: m.ctx.task_handle(),
                locals: m.locals.0,
                nlocals: m.locals.1,
            };
            let visit = may_unwind!(visit, fn(*const weft_task_info_t, *mut c_void) -> bool);
            // SAFETY: the host's callback, called with a pointer valid for the call.
            host_call("a weft_tasks_foreach visitor", || unsafe { visit(&info, ud) })
        });
        Ok(())
    })
}
