//! Structured parallelism: task groups and `weft_parallel_for`.
use std::ffi::{c_void, CStr};

use weft_platform::*;

use super::{non_null, open_runtime, write_out};
use crate::ffi::error::{fail, ffi, Result};
use crate::ffi::handle;
use crate::ffi::sized::read_sized;
use crate::runtime::group::Group;
use crate::runtime::pool;
use crate::types::*;

fn group_ref(g: *const weft_group_t) -> Result<&'static Group> {
    // Shells are never freed: a checked shell lives as long as the process.
    handle::check::<Group>(g.cast())
}

/// Creates an empty group of tasks on `rt`. On success `*out` receives the group, owned
/// by the caller, who gives it back with `weft_group_free`.
#[no_mangle]
pub unsafe extern "C" fn weft_group_new(rt: *mut weft_runtime_t, out: *mut *mut weft_group_t) -> weft_status_t {
    ffi("weft_group_new", || {
        let rt = open_runtime(rt)?;
        non_null(out, "out")?;
        let group = Group::new(rt);
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, group as *const Group as *mut weft_group_t) };
        Ok(())
    })
}

/// Starts `func(arg, &result)` as a task of group `g` (`opts` as for `weft_spawn`, NULL
/// for the defaults; `WEFT_SPAWN_DETACHED` is refused: the group joins its tasks, and
/// their results are dropped). A task may spawn into its own group, also while someone
/// waits on it. `WEFT_ECANCELED` once a task of the group has failed (a failed group takes
/// no new task), and while `weft_group_free` runs on it.
#[no_mangle]
pub unsafe extern "C" fn weft_group_spawn(
    g: *mut weft_group_t,
    func: weft_task_fn,
    arg: *mut c_void,
    opts: *const weft_spawn_opts_t,
) -> weft_status_t {
    ffi("weft_group_spawn", || {
        let group = group_ref(g)?;
        let opts = if opts.is_null() {
            weft_spawn_opts_t::default()
        } else {
            // SAFETY: options from the host begin with their struct_size.
            unsafe { read_sized(opts, weft_spawn_opts_t::default(), "weft_spawn_opts_t")? }
        };
        if opts.flags & WEFT_SPAWN_DETACHED != 0 {
            fail!(WEFT_EINVAL, "a group's task cannot be WEFT_SPAWN_DETACHED (the group joins it)");
        }
        if opts.flags != 0 {
            fail!(WEFT_EINVAL, "unknown weft_spawn_opts_t.flags 0x{:x}", opts.flags);
        }
        super::task::check_stack_size(opts.stack_size)?;
        // SAFETY: a non-NULL name is the host's NUL-terminated string, copied here.
        let name = (!opts.name.is_null()).then(|| unsafe { CStr::from_ptr(opts.name) }.to_owned());
        group.spawn(func, arg, name, opts.stack_size)
    })
}

/// Waits until every task of the group has finished (tasks spawned into it meanwhile
/// too), then writes 0 to `*code` (may be NULL) if they all succeeded, or the code of
/// the first task that failed, and returns `WEFT_OK`; the group is then empty and may
/// take new tasks unless one failed. `WEFT_ETIMEDOUT` at `deadline`: the tasks left run
/// on and stay in the group. A cancellation point; the waiting caller is in a blocking
/// region. From a task of the group itself it would wait for itself: `WEFT_EDEADLK`.
#[no_mangle]
pub unsafe extern "C" fn weft_group_wait(g: *mut weft_group_t, deadline: i64, code: *mut i32) -> weft_status_t {
    ffi("weft_group_wait", || {
        let result = group_ref(g)?.wait(deadline)?;
        if !code.is_null() {
            // SAFETY: the host's optional out-parameter, checked non-NULL.
            unsafe { write_out(code, result) };
        }
        Ok(())
    })
}

/// Cancels the group's tasks that still run, waits for them, and frees the group; `g`
/// must not be used again. A task of the group that spawns into it meanwhile gets
/// `WEFT_ECANCELED` (or its new task is cancelled too), so the free never waits for a
/// task nobody cancelled. Allowed from a foreign thread or another task; not from a task
/// of the group (`WEFT_EDEADLK`).
#[no_mangle]
pub unsafe extern "C" fn weft_group_free(g: *mut weft_group_t) -> weft_status_t {
    ffi("weft_group_free", || group_ref(g)?.free())
}

/// Calls `body(b, e, ud)` on disjoint sub-ranges `[b, e)` that together cover
/// `[begin, end)`, in parallel on the runtime's pool of worker tasks (started on first
/// use, one per CPU but one; the caller takes part), and returns once every call
/// returned. No sub-range is shorter than `grain` unless the whole range is; `grain` 0
/// lets weft choose (a few sub-ranges per CPU). A body that returns non-zero stops the
/// sub-ranges not started yet, and the first such code is written to `*code` (0 when all
/// succeeded; `code` may be NULL); the call still returns `WEFT_OK`. Bodies may call
/// `weft_parallel_for` again (nesting), and several tasks may call it at once: neither
/// deadlocks. While a `weft_runtime_drain` waits, a call runs all its sub-ranges on the
/// caller (the drain stopped the pool). Not a cancellation point: a cancelled caller's
/// call runs to its end too. An empty range calls nothing. `begin > end` or a NULL `body` is
/// `WEFT_EINVAL`.
#[no_mangle]
pub unsafe extern "C" fn weft_parallel_for(
    rt: *mut weft_runtime_t,
    begin: usize,
    end: usize,
    grain: usize,
    body: weft_range_fn,
    ud: *mut c_void,
    code: *mut i32,
) -> weft_status_t {
    ffi("weft_parallel_for", || {
        let rt = open_runtime(rt)?;
        let Some(body) = body else { fail!(WEFT_EINVAL, "body is NULL") };
        let result = pool::parallel_for(rt, begin, end, grain, body, ud)?;
        if !code.is_null() {
            // SAFETY: the host's optional out-parameter, checked non-NULL.
            unsafe { write_out(code, result) };
        }
        Ok(())
    })
}
