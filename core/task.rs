//! Tasks: spawn, join, detach, cancel, identity.
//!
//! A `weft_task_t` is shared by two owners: the handle the host holds (released by
//! `weft_join` or `weft_detach`) and the running task itself (released when it exits).
//! So the handle stays valid while the task runs even after a detach, which makes
//! `weft_task_self` safe, and the host never frees a task that still runs.
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{
    AtomicI32, AtomicPtr, AtomicU32, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, Ordering::SeqCst,
};
use std::sync::Arc;

use parking_lot::Mutex;
use weft_platform::*;

use crate::context::{self, Context};
use crate::error::{check_plugin, clear_plugin_detail, fail, ffi, ffi_value, Result};
use crate::loader::plat_call;
use crate::runtime::{open_runtime, weft_runtime_t};
use crate::safepoint;
use crate::sized::read_sized;

/// A task's function. It runs on the task; `arg` is what was given to `weft_spawn`.
/// It may store a pointer in `*result` for the joiner. A non-zero return means the task
/// failed with that code; `weft_join` reports it.
pub type weft_task_fn = Option<unsafe extern "C" fn(arg: *mut c_void, result: *mut *mut c_void) -> i32>;

/// `weft_spawn_opts_t.flags`: the task is detached from the start; `weft_spawn` returns
/// no handle (its `out` may be NULL and is set to NULL).
pub const WEFT_SPAWN_DETACHED: u32 = 1;

/// Options for `weft_spawn`. Initialise with `weft_spawn_opts_init`. Borrowed for the
/// call only (the name is copied).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct weft_spawn_opts_t {
    /// `sizeof(weft_spawn_opts_t)`; set by `weft_spawn_opts_init`.
    pub struct_size: u32,
    /// The task's name (copied), shown by `weft_tasks_foreach` and, where the platform
    /// can, by debuggers. NULL: unnamed.
    pub name: *const c_char,
    /// Stack size in bytes; 0 = the platform's default.
    pub stack_size: usize,
    /// `WEFT_SPAWN_*` bits.
    pub flags: u32,
}

impl Default for weft_spawn_opts_t {
    fn default() -> Self {
        weft_spawn_opts_t {
            struct_size: std::mem::size_of::<weft_spawn_opts_t>() as u32,
            name: ptr::null(),
            stack_size: 0,
            flags: 0,
        }
    }
}

/// A spawned task. Opaque. Returned by `weft_spawn`; the caller owns the handle and
/// must give it back with `weft_join` or `weft_detach`.
pub struct weft_task_t {
    magic: AtomicU32,
    pub(crate) ctx: Arc<Context>,
    rt: &'static weft_runtime_t,
    func: unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> i32,
    arg: *mut c_void,
    code: AtomicI32,
    result: AtomicPtr<c_void>,
    /// The plugin's handle; NULL once released. Guarded so that a cancel never uses a
    /// handle a concurrent join is releasing.
    plat: Mutex<*mut weft_plat_task_t>,
    handle: AtomicU32,
}

impl Drop for weft_task_t {
    fn drop(&mut self) {
        // Makes a stale pointer recognisable for as long as the memory is not reused.
        // SAFETY: a plain write to our own field; volatile so it is not elided.
        unsafe { ptr::write_volatile(self.magic.as_ptr(), TASK_FREED) };
    }
}

// SAFETY: `arg` is the host's, handed to the task by design; the rest is synchronised.
unsafe impl Send for weft_task_t {}
unsafe impl Sync for weft_task_t {}

const TASK_MAGIC: u32 = 0x5754_534b;
const TASK_FREED: u32 = 0x5754_5846;
const HANDLE_LIVE: u32 = 0;
const HANDLE_JOINING: u32 = 1;
const HANDLE_GONE: u32 = 2;

fn task_ref<'a>(t: *const weft_task_t) -> Result<&'a weft_task_t> {
    // SAFETY: a non-NULL task pointer from the host is a handle from weft_spawn.
    let Some(task) = (unsafe { t.as_ref() }) else { fail!(WEFT_EINVAL, "task is NULL") };
    match task.magic.load(Relaxed) {
        TASK_MAGIC => Ok(task),
        TASK_FREED => fail!(WEFT_EINVAL, "task {t:p} was already joined or detached"),
        _ => fail!(WEFT_EINVAL, "{t:p} is not a weft task"),
    }
}

/// Takes the host's handle for a join or a detach; only one may have it.
fn claim_handle(task: &weft_task_t, to: u32) -> Result<()> {
    match task.handle.compare_exchange(HANDLE_LIVE, to, SeqCst, SeqCst) {
        Ok(_) => Ok(()),
        Err(HANDLE_JOINING) => fail!(WEFT_EINVAL, "task {} is being joined by another thread", task.ctx.id),
        Err(_) => fail!(WEFT_EINVAL, "task {} was already joined or detached", task.ctx.id),
    }
}

/// Releases the plugin's handle and the host's reference.
///
/// # Safety
/// `t` is the host's handle, claimed by the caller.
unsafe fn release_handle(t: *const weft_task_t) {
    let task = &*t;
    let plat = std::mem::replace(&mut *task.plat.lock(), ptr::null_mut());
    if !plat.is_null() {
        plat_call!(task.rt.table, detach(plat));
        clear_plugin_detail();
    }
    task.handle.store(HANDLE_GONE, SeqCst);
    drop(Arc::from_raw(t));
}

/// Fills `opts` with the defaults (no name, default stack, joinable). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn weft_spawn_opts_init(opts: *mut weft_spawn_opts_t) {
    if !opts.is_null() {
        opts.write(weft_spawn_opts_t::default());
    }
}

/// Starts a task that runs `fn(arg, &result)`. `opts` may be NULL (defaults). On
/// success `*out` receives the handle, which the caller owns and must pass to
/// `weft_join` or `weft_detach` exactly once (with `WEFT_SPAWN_DETACHED`, `out` may be
/// NULL and receives NULL). On failure the task never runs. `arg` stays the caller's.
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
        let Some(func) = func else { fail!(WEFT_EINVAL, "fn is NULL") };
        let opts = if opts.is_null() {
            weft_spawn_opts_t::default()
        } else {
            read_sized(opts, weft_spawn_opts_t::default(), "weft_spawn_opts_t")?
        };
        if opts.flags & !WEFT_SPAWN_DETACHED != 0 {
            fail!(WEFT_EINVAL, "unknown weft_spawn_opts_t.flags 0x{:x}", opts.flags & !WEFT_SPAWN_DETACHED);
        }
        let detached = opts.flags & WEFT_SPAWN_DETACHED != 0;
        if out.is_null() && !detached {
            fail!(WEFT_EINVAL, "out is NULL (only a WEFT_SPAWN_DETACHED spawn may omit it)");
        }
        let name: Option<CString> = (!opts.name.is_null()).then(|| CStr::from_ptr(opts.name).to_owned());
        rt.begin_task()?;
        let task = Arc::new_cyclic(|me| weft_task_t {
            magic: AtomicU32::new(TASK_MAGIC),
            ctx: Arc::new(Context::new(name.clone(), me.as_ptr())),
            rt,
            func,
            arg,
            code: AtomicI32::new(0),
            result: AtomicPtr::new(ptr::null_mut()),
            plat: Mutex::new(ptr::null_mut()),
            handle: AtomicU32::new(HANDLE_LIVE),
        });
        let plat_opts = weft_plat_spawn_t {
            struct_size: std::mem::size_of::<weft_plat_spawn_t>() as u32,
            stack_size: opts.stack_size,
            name: name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            id: task.ctx.id,
        };
        let running_ref = Arc::into_raw(Arc::clone(&task)) as *mut c_void;
        let mut plat = ptr::null_mut();
        // No lock is held across the plugin's spawn: a platform may run the new task
        // before spawn returns (on this very thread, for a coroutine platform). Until the
        // handle is stored only the task itself can reach it (weft_task_self), and a
        // task cancelling itself needs no wake-up.
        let status = plat_call!(rt.table, spawn(rt.prt, running_ref, &plat_opts, &mut plat));
        if status != WEFT_OK {
            drop(Arc::from_raw(running_ref as *const weft_task_t));
            rt.end_task();
            return check_plugin(status, || "the platform could not start the task".into());
        }
        *task.plat.lock() = plat;
        let handle = Arc::into_raw(task) as *mut weft_task_t;
        if detached {
            (*handle).handle.store(HANDLE_GONE, SeqCst);
            release_handle(handle);
            if !out.is_null() {
                *out = ptr::null_mut();
            }
        } else {
            *out = handle;
        }
        Ok(())
    })
}

/// The host service `task_run`: runs one task to its end on the calling context.
///
/// # Safety
/// `ctx` is the reference `weft_spawn` handed to the plugin, used once.
pub(crate) unsafe fn run(ctx: *mut c_void) {
    let task: Arc<weft_task_t> = Arc::from_raw(ctx as *const weft_task_t);
    let rt = task.rt;
    let previous = context::enter(Arc::as_ptr(&task.ctx));
    let handle = Arc::as_ptr(&task) as *mut weft_task_t;
    // Nothing here may unwind into the plugin; a panic in weft's own bookkeeping still
    // ends the task and releases the runtime.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        safepoint::register(rt, &task.ctx);
        if let Some(hook) = rt.on_task_start {
            hook(rt.hook_ud, handle);
        }
        let mut result = ptr::null_mut();
        let code = (task.func)(task.arg, &mut result);
        task.result.store(result, Relaxed);
        task.code.store(code, Release);
        safepoint::leave_open_regions(&task.ctx);
        if let Some(hook) = rt.on_task_exit {
            hook(rt.hook_ud, handle);
        }
        task.ctx.run_slot_destructors();
    }));
    safepoint::context_ending(&task.ctx);
    context::enter(previous);
    drop(task);
    rt.end_task();
}

/// Waits until `t` finishes or `deadline` passes. On `WEFT_OK` writes the task's return
/// code to `*code` and its result pointer to `*result` (either may be NULL) and consumes
/// the handle. `WEFT_ETIMEDOUT`: the task still runs and the handle stays valid.
/// `WEFT_EDEADLK` for a task joining itself. A cancellation point for the caller.
/// The waiting caller is in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_join(
    t: *mut weft_task_t,
    deadline: i64,
    code: *mut i32,
    result: *mut *mut c_void,
) -> weft_status_t {
    ffi("weft_join", || {
        let task = task_ref(t)?;
        if context::current_if_any().is_some_and(|c| c.id == task.ctx.id) {
            fail!(WEFT_EDEADLK, "task {} cannot join itself", task.ctx.id);
        }
        claim_handle(task, HANDLE_JOINING)?;
        let plat = *task.plat.lock();
        let status = plat_call!(task.rt.table, join(plat, deadline));
        if status != WEFT_OK {
            task.handle.store(HANDLE_LIVE, SeqCst);
            let id = task.ctx.id;
            return check_plugin(status, || match status {
                WEFT_ETIMEDOUT => format!("task {id} did not finish before the deadline"),
                WEFT_ECANCELED => format!("the caller was cancelled while joining task {id}"),
                _ => format!("cannot join task {id}"),
            });
        }
        if !code.is_null() {
            *code = task.code.load(Acquire);
        }
        if !result.is_null() {
            *result = task.result.load(Relaxed);
        }
        release_handle(t);
        Ok(())
    })
}

/// Gives up the handle: the task runs on, and its resources go when it ends. Consumes
/// the handle (its result is lost).
#[no_mangle]
pub unsafe extern "C" fn weft_detach(t: *mut weft_task_t) -> weft_status_t {
    ffi("weft_detach", || {
        claim_handle(task_ref(t)?, HANDLE_GONE)?;
        release_handle(t);
        Ok(())
    })
}

/// Asks `t` to stop: from now on its cancellation points (sleep, join, condition waits,
/// channel waits) return `WEFT_ECANCELED`, including one it is blocked in. The task
/// decides how to end. Lock acquisition is not a cancellation point. Cancelling a task
/// that has finished does nothing. The handle stays the caller's.
#[no_mangle]
pub unsafe extern "C" fn weft_cancel(t: *mut weft_task_t) -> weft_status_t {
    ffi("weft_cancel", || {
        let task = task_ref(t)?;
        task.ctx.cancelled.store(true, SeqCst);
        let plat = task.plat.lock();
        if !plat.is_null() {
            let status = plat_call!(task.rt.table, cancel(*plat));
            check_plugin(status, || format!("cannot wake task {}", task.ctx.id))?;
        }
        Ok(())
    })
}

/// The calling task, or NULL on a thread that is not a weft task. Borrowed: valid until
/// the task exits; not a handle to join or detach unless it is the spawner's own.
#[no_mangle]
pub extern "C" fn weft_task_self() -> *mut weft_task_t {
    context::current_if_any().map_or(ptr::null_mut(), |c| c.task as *mut weft_task_t)
}

/// The id of task `t`: unique in the process, never 0. 0 for NULL or an invalid task.
#[no_mangle]
pub unsafe extern "C" fn weft_task_id(t: *const weft_task_t) -> u64 {
    ffi_value("weft_task_id", 0, || Ok(task_ref(t)?.ctx.id))
}

/// Non-zero when the calling task has been cancelled (for tasks that compute without
/// reaching a cancellation point). 0 on a thread that is not a task.
#[no_mangle]
pub extern "C" fn weft_task_cancelled() -> i32 {
    context::current_if_any().is_some_and(|c| c.is_cancelled()) as i32
}
