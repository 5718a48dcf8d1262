//! Tasks: spawn, join, detach, cancel, identity.
use std::ffi::{c_char, c_void, CStr};
use std::ptr;

use weft_platform::*;

use super::{open_runtime, write_out};
use crate::ffi::error::{fail, ffi, ffi_value, Result};
use crate::ffi::handle;
use crate::ffi::sized::read_sized;
use crate::runtime::task::{self, Joiner, SpawnRequest, Task};
use crate::types::*;

/// The largest stack a spawn may ask for, the same on every platform: 64 PiB, more than
/// any address space, so that an absurd size (SIZE_MAX) gets one answer everywhere.
const STACK_LIMIT: usize = 1 << 56;

/// `WEFT_ENOMEM` for a stack size over `STACK_LIMIT` (`weft_spawn`, `weft_group_spawn`).
pub(crate) fn check_stack_size(stack_size: usize) -> Result<()> {
    if stack_size > STACK_LIMIT {
        fail!(WEFT_ENOMEM, "a stack of {stack_size} bytes cannot be had (at most {STACK_LIMIT})");
    }
    Ok(())
}

fn task_ref(t: *const weft_task_t) -> Result<&'static Task> {
    // Shells are never freed: a checked shell lives as long as the process.
    handle::check::<Task>(t.cast())
}

/// Fills `opts` with the defaults (no name, default stack, joinable). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn weft_spawn_opts_init(opts: *mut weft_spawn_opts_t) {
    if !opts.is_null() {
        // SAFETY: the host's options struct, to be filled.
        unsafe { write_out(opts, weft_spawn_opts_t::default()) };
    }
}

/// Starts a task that runs `func(arg, &result)`. `opts` may be NULL (defaults). On
/// success `*out` receives the handle, which the caller owns and must pass to
/// `weft_join` or `weft_detach` exactly once (with `WEFT_SPAWN_DETACHED`, `out` may be
/// NULL and receives NULL). On failure the task never runs. `arg` stays the caller's.
/// `WEFT_ENOMEM` when the platform cannot start it (a stack it cannot map), or for a
/// stack over 64 PiB.
#[no_mangle]
pub unsafe extern "C" fn weft_spawn(
    rt: *mut weft_runtime_t,
    func: weft_task_fn,
    arg: *mut c_void,
    opts: *const weft_spawn_opts_t,
    out: *mut *mut weft_task_t,
) -> weft_status_t {
    ffi("weft_spawn", || {
        let rt = open_runtime(rt)?;
        let Some(func) = func else { fail!(WEFT_EINVAL, "func is NULL") };
        let opts = if opts.is_null() {
            weft_spawn_opts_t::default()
        } else {
            // SAFETY: options from the host begin with their struct_size.
            unsafe { read_sized(opts, weft_spawn_opts_t::default(), "weft_spawn_opts_t")? }
        };
        if opts.flags & !WEFT_SPAWN_DETACHED != 0 {
            fail!(WEFT_EINVAL, "unknown weft_spawn_opts_t.flags 0x{:x}", opts.flags & !WEFT_SPAWN_DETACHED);
        }
        check_stack_size(opts.stack_size)?;
        let detached = opts.flags & WEFT_SPAWN_DETACHED != 0;
        if out.is_null() && !detached {
            fail!(WEFT_EINVAL, "out is NULL (only a WEFT_SPAWN_DETACHED spawn may omit it)");
        }
        // SAFETY: a non-NULL name is the host's NUL-terminated string, copied here.
        let name = (!opts.name.is_null()).then(|| unsafe { CStr::from_ptr(opts.name) }.to_owned());
        let request = SpawnRequest { func, arg, name, stack_size: opts.stack_size, detached, group: None };
        let spawned = Task::spawn(rt, request)?;
        if !opts.id_out.is_null() {
            // SAFETY: the host's optional out-parameter, checked non-NULL.
            unsafe { write_out(opts.id_out, spawned.id) };
        }
        let handle = spawned.task.map_or(ptr::null_mut(), Task::as_handle);
        if !out.is_null() {
            // SAFETY: checked non-NULL.
            unsafe { write_out(out, handle) };
        }
        Ok(())
    })
}

/// Waits until `t` finishes or `deadline` passes. On `WEFT_OK` writes the task's return
/// code to `*code` and its result pointer to `*result` (either may be NULL) and consumes
/// the handle: `t` must not be used again. On every error the handle stays the
/// caller's, still valid: `WEFT_ETIMEDOUT` (the task still runs), `WEFT_ECANCELED` (the
/// caller was cancelled while it waited), `WEFT_EDEADLK` (a task joining itself),
/// `WEFT_EINVAL` (`t` is not a live handle, another thread is joining it, or it is a
/// task of a group: its group joins it). A cancellation point for the caller; the
/// waiting caller is in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_join(
    t: *mut weft_task_t,
    deadline: i64,
    code: *mut i32,
    result: *mut *mut c_void,
) -> weft_status_t {
    ffi("weft_join", || {
        let (task_code, task_result) = task_ref(t)?.join(deadline, Joiner::Handle)?;
        if !code.is_null() {
            // SAFETY: the host's optional out-parameter, checked non-NULL.
            unsafe { write_out(code, task_code) };
        }
        if !result.is_null() {
            // SAFETY: as above.
            unsafe { write_out(result, task_result) };
        }
        Ok(())
    })
}

/// Gives up the handle: the task runs on, and its resources go when it ends. Consumes
/// the handle (its result is lost); `t` must not be used again. `WEFT_EINVAL` for a
/// handle already given up, and for a task of a group (its group joins it).
#[no_mangle]
pub unsafe extern "C" fn weft_detach(t: *mut weft_task_t) -> weft_status_t {
    ffi("weft_detach", || task_ref(t)?.detach())
}

/// Asks `t` to stop: from now on its cancellation points (sleep, join, condition waits,
/// channel waits) return `WEFT_ECANCELED`, including one it is blocked in (on a runtime
/// of the task's own platform: see the rules on cancellation). The task decides how to
/// end. Lock acquisition is not a cancellation point. Cancelling a task
/// that has finished does nothing. The handle stays the caller's; a handle already given
/// up (joined or detached) is `WEFT_EINVAL`. Safe while another thread joins or detaches
/// `t`: the cancel then happens before the handle is given up, or is `WEFT_EINVAL`.
#[no_mangle]
pub unsafe extern "C" fn weft_cancel(t: *mut weft_task_t) -> weft_status_t {
    ffi("weft_cancel", || task_ref(t)?.cancel())
}

/// Links channel `ch` to task `t`: when `t` ends (however: returning 0, failing, after a
/// cancellation), `ch` is closed with `t`'s return code, so a receiver waiting for a
/// result the task will never send gets `WEFT_ECLOSED` instead of waiting forever, and
/// reads the code with `weft_chan_close_code`. If `t` has ended already, `ch` is closed
/// at once. `t` keeps a reference on `ch` until then (the caller keeps its own). A channel
/// may be linked to several tasks: the first to end closes it. `t`'s handle stays the
/// caller's; a handle already given up, or a channel of another runtime than `t`'s, is
/// `WEFT_EINVAL`.
#[no_mangle]
pub unsafe extern "C" fn weft_task_link_chan(t: *mut weft_task_t, ch: *mut weft_chan_t) -> weft_status_t {
    ffi("weft_task_link_chan", || task_ref(t)?.link_chan(super::chan::chan_ref(ch, false)?))
}

/// The calling task, or NULL on a thread that is not a weft task. Borrowed: valid until
/// the task exits; not a handle to join or detach unless it is the spawner's own (a
/// group's task: `WEFT_EINVAL`, the group joins it).
#[no_mangle]
pub extern "C" fn weft_task_self() -> *mut weft_task_t {
    task::current_handle()
}

/// Names the calling task (or thread): `name` is copied, and shown by
/// `weft_tasks_foreach`, in the checks' reports and, where the caller is an OS thread of
/// its own, by the system (`/proc`, debuggers; the first 15 bytes). `WEFT_EINVAL` for NULL.
#[no_mangle]
pub unsafe extern "C" fn weft_task_set_name(name: *const c_char) -> weft_status_t {
    ffi("weft_task_set_name", || {
        if name.is_null() {
            fail!(WEFT_EINVAL, "name is NULL");
        }
        // SAFETY: the host's NUL-terminated string, copied.
        task::rename_current(unsafe { CStr::from_ptr(name) }.to_owned());
        Ok(())
    })
}

/// The calling task's (or thread's) name, or NULL if it has none. Owned by weft, valid
/// until the caller ends (a later rename does not free it).
#[no_mangle]
pub extern "C" fn weft_task_name() -> *const c_char {
    crate::runtime::context::current().name_ptr()
}

/// The id of task `t`: unique in the process, never 0. 0 for NULL or an invalid task
/// (a handle joined, or detached from a task that has ended). While another thread
/// joins or detaches `t`: its id, or 0 once the join or detach is done with it.
#[no_mangle]
pub unsafe extern "C" fn weft_task_id(t: *const weft_task_t) -> u64 {
    ffi_value("weft_task_id", 0, || task_ref(t)?.id())
}

/// True when the calling task has been cancelled (for tasks that compute without
/// reaching a cancellation point). False on a thread that is not a task.
#[no_mangle]
pub extern "C" fn weft_task_cancelled() -> bool {
    task::current_cancelled()
}
