//! The exported VM-integration functions: attach and detach, safepoints, stop-the-world,
//! blocking regions and the mutator registry. The protocol they rely on is in `mod.rs`.
use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;

use weft_platform::*;

use super::*;
use crate::context::{self, Context};
use crate::error::{fail, ffi, ffi_value, Result};
use crate::runtime::{any_runtime, open_runtime, weft_runtime_t};
use crate::task::weft_task_t;

/// What `weft_tasks_foreach` tells about one mutator. Borrowed: valid during the
/// callback only.
#[repr(C)]
pub struct weft_task_info_t {
    /// `sizeof(weft_task_info_t)` of the library that filled it.
    pub struct_size: u32,
    /// `WEFT_TASK_RUNNING`, `WEFT_TASK_AT_SAFEPOINT` or `WEFT_TASK_BLOCKING`. While the
    /// caller holds the stopped world, every mutator but the caller is AT_SAFEPOINT or
    /// BLOCKING.
    pub state: u32,
    /// The task's id (as `weft_task_id`), or the attached thread's id (unique in the
    /// process too, never 0).
    pub id: u64,
    /// The task's name, or NULL.
    pub name: *const c_char,
    /// The task, or NULL for an attached host thread.
    pub task: *mut weft_task_t,
    /// The mutator's task-local values: `locals[k - 1]` is its value for key `k` when
    /// `k <= nlocals` (NULL if it never set one), NULL otherwise. Given only where they
    /// cannot change under the reader: for the caller's own entry, and for every entry
    /// while the caller holds the stopped world; otherwise `locals` is NULL and
    /// `nlocals` 0.
    pub locals: *const *mut c_void,
    /// Number of entries in `locals`.
    pub nlocals: usize,
}

/// Called once per live mutator; return non-zero to stop the enumeration.
pub type weft_task_visit_fn = Option<unsafe extern "C" fn(ud: *mut c_void, info: *const weft_task_info_t) -> c_int>;

/// The calling context, which must be a mutator of `rt`.
fn mutator_of(rt: &weft_runtime_t) -> Result<&'static Context> {
    match current_mutator_of(rt) {
        Some(ctx) => Ok(ctx),
        None => {
            fail!(WEFT_EPERM, "the calling thread is not a mutator of this runtime (not a weft task, not attached)")
        }
    }
}

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
    ffi("weft_thread_attach", || {
        let rt = open_runtime(rt)?;
        let ctx = context::current();
        let current = ctx.mutator.runtime();
        if std::ptr::eq(current, rt) {
            ctx.mutator.attach_depth.fetch_add(1, SeqCst);
            return Ok(());
        }
        if !current.is_null() {
            fail!(WEFT_EBUSY, "the calling thread is already a mutator of another runtime");
        }
        if rt.table.caps & WEFT_CAP_DETERMINISTIC != 0 {
            // A deterministic platform runs only threads it controls; its yield refuses others.
            let status = crate::loader::plat_call!(rt.table, yield_now(rt.prt));
            crate::error::check_plugin(status, || "the platform cannot run this thread".into())?;
        }
        let arc = match context::thread_context_arc() {
            Some(arc) if arc.id == ctx.id => arc,
            _ => fail!(WEFT_EINTERNAL, "the calling context is neither a task of this runtime nor a host thread's"),
        };
        ctx.mutator.attach_depth.store(1, SeqCst);
        register(rt, &arc);
        // A close that ran between the check above and the registration could not see
        // this thread: back out (see `World::close_registry`).
        if !rt.is_open() {
            unregister(rt, ctx);
            fail!(WEFT_EINVAL, "runtime {:p} was closed", rt as *const weft_runtime_t);
        }
        Ok(())
    })
}

/// Ends one `weft_thread_attach` of the calling thread; the last one makes it stop being
/// a mutator. `WEFT_EINVAL` if the thread is not attached to `rt` (never attached, or
/// detached as often as attached; a task's own membership cannot be detached);
/// `WEFT_EBUSY` inside a blocking region. A stop the thread holds stays in force.
#[no_mangle]
pub unsafe extern "C" fn weft_thread_detach(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_thread_detach", || {
        let rt = any_runtime(rt)?;
        let ctx = match current_mutator_of(rt) {
            Some(ctx) if ctx.mutator.attach_depth.load(SeqCst) > 0 => ctx,
            _ => fail!(WEFT_EINVAL, "the calling thread is not attached to this runtime"),
        };
        if ctx.mutator.blocking_depth.load(SeqCst) > 0 {
            fail!(WEFT_EBUSY, "the calling thread is inside a blocking region (call weft_blocking_end first)");
        }
        if ctx.mutator.attach_depth.fetch_sub(1, SeqCst) == 1 && ctx.task.is_null() {
            unregister(rt, ctx);
        }
        Ok(())
    })
}

/// A safepoint: if a stop-the-world by another thread is requested or in force, parks
/// the calling mutator until it ends; otherwise returns at once. Inside a blocking
/// region it returns at once (the stop does not wait for the caller, and leaving the
/// region will wait if needed). `WEFT_EPERM` if the caller is not a mutator of `rt`.
/// The inline `WEFT_SAFEPOINT_POLL` calls it only when the flag is set.
#[no_mangle]
pub unsafe extern "C" fn weft_safepoint(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_safepoint", || {
        let rt = open_runtime(rt)?;
        let ctx = mutator_of(rt)?;
        if ctx.mutator.blocking_depth.load(SeqCst) == 0
            && rt.world.flag.load(SeqCst) & STOP != 0
            && rt.world.owner.load(SeqCst) != ctx.id
        {
            park(rt, ctx);
        }
        // An M:N platform asks a task that overran its time slice to yield here.
        if rt.world.flag.load(Relaxed) & WEFT_SAFEPOINT_PREEMPT != 0 && ctx.mutator.blocking_depth.load(SeqCst) == 0 {
            if let Some(point) = rt.table.preempt_point {
                // SAFETY: a member of an accepted table, present for its version.
                unsafe { point(rt.prt) };
            }
        }
        Ok(())
    })
}

/// The address of `rt`'s safepoint word, for `WEFT_SAFEPOINT_POLL`: a `uint32_t`,
/// non-zero while a stop-the-world is requested or in force, or while the platform asks
/// a task to yield (`WEFT_SAFEPOINT_PREEMPT`, set by M:N platforms such as green). Read it only with an
/// atomic load. Owned by weft; valid for the life of the process (also after close).
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
    ffi("weft_stw_begin", || {
        let rt = open_runtime(rt)?;
        let me = context::current();
        let world = &rt.world;
        if world.owner.load(SeqCst) == me.id {
            fail!(WEFT_EDEADLK, "the calling thread already holds the stopped world");
        }
        let is_mutator = std::ptr::eq(me.mutator.runtime(), rt);
        world.locked(|l| {
            if world.owner.load(SeqCst) != 0 {
                if is_mutator {
                    // A mutator inside a blocking region is stopped already (the other
                    // stop may even hold it there); a running one parks.
                    let was_running = me.mutator.state.load(SeqCst) == WEFT_TASK_RUNNING;
                    if was_running {
                        me.mutator.state.store(WEFT_TASK_AT_SAFEPOINT, SeqCst);
                        l.broadcast(Cond::Progress);
                    }
                    while world.owner.load(SeqCst) != 0 {
                        l.wait_until(Cond::Resumed, WEFT_FOREVER);
                    }
                    if was_running {
                        me.mutator.state.store(WEFT_TASK_RUNNING, SeqCst);
                    }
                } else {
                    while world.owner.load(SeqCst) != 0 {
                        if l.wait_until(Cond::Resumed, deadline) == WEFT_ETIMEDOUT && world.owner.load(SeqCst) != 0 {
                            fail!(WEFT_ETIMEDOUT, "another thread held the stopped world until the deadline");
                        }
                    }
                }
            }
            world.owner.store(me.id, SeqCst);
            world.flag.fetch_or(STOP, SeqCst);
            me.mutator.holds.store(rt as *const _ as *mut _, SeqCst);
            loop {
                if world.hold_blocked_count_running(me.id) == 0 {
                    world.stopped.store(true, SeqCst);
                    return Ok(());
                }
                if l.wait_until(Cond::Progress, deadline) == WEFT_ETIMEDOUT
                    && world.hold_blocked_count_running(me.id) != 0
                {
                    let running = world.running_names(me.id);
                    world.resume_locked(l);
                    me.mutator.holds.store(ptr::null_mut(), SeqCst);
                    fail!(
                        WEFT_ETIMEDOUT,
                        "{} mutator(s) did not reach a safepoint by the deadline: {}",
                        running.len(),
                        running.join(", ")
                    );
                }
            }
        })
    })
}

/// Resumes the world stopped by the caller's `weft_stw_begin`. `WEFT_EPERM` if the
/// caller does not hold it.
#[no_mangle]
pub unsafe extern "C" fn weft_stw_end(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_stw_end", || {
        let rt = open_runtime(rt)?;
        let me = context::current();
        if rt.world.owner.load(SeqCst) != me.id {
            fail!(WEFT_EPERM, "the calling thread does not hold the stopped world");
        }
        rt.world.locked(|l| rt.world.resume_locked(l));
        me.mutator.holds.store(ptr::null_mut(), SeqCst);
        Ok(())
    })
}

/// Enters a blocking region: until the matching `weft_blocking_end`, the calling
/// mutator promises not to touch managed memory (nor to call `weft_local_set`), and a
/// stop-the-world does not wait for it. Nestable. Every weft call that can block does
/// this by itself while it waits. `WEFT_EPERM` if the caller is not a mutator of `rt`.
#[no_mangle]
pub unsafe extern "C" fn weft_blocking_begin(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_blocking_begin", || {
        let rt = open_runtime(rt)?;
        blocking_begin(rt, mutator_of(rt)?);
        // An M:N platform hands the thread's other tasks on (ABI 2 and later).
        if let Some(enter) = rt.table.region_enter {
            // SAFETY: a member of an accepted table, present for its version.
            unsafe { enter(rt.prt) };
        }
        Ok(())
    })
}

/// Leaves the blocking region of the matching `weft_blocking_begin`. Leaving the
/// outermost one while another thread holds the world stopped waits until it resumes.
/// `WEFT_EPERM` if the caller is not a mutator of `rt` or not in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_blocking_end(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_blocking_end", || {
        let rt = open_runtime(rt)?;
        let ctx = mutator_of(rt)?;
        if ctx.mutator.blocking_depth.load(SeqCst) == 0 {
            fail!(WEFT_EPERM, "the calling thread is not in a blocking region");
        }
        if let Some(leave) = rt.table.region_leave {
            // SAFETY: a member of an accepted table, present for its version.
            unsafe { leave(rt.prt) };
        }
        blocking_end(rt, ctx);
        Ok(())
    })
}

/// Calls `fn(ud, info)` for every live mutator of `rt` (tasks that have started and not
/// exited, and attached threads), until it returns non-zero. Meant for a collector that
/// holds the stopped world: then the list, the states and the task-local values it sees
/// cannot change under it. Otherwise states may change as they are read and `locals` is
/// given only for the caller itself. The callback may call weft. `WEFT_EINVAL` if `fn`
/// is NULL.
#[no_mangle]
pub unsafe extern "C" fn weft_tasks_foreach(
    rt: *mut weft_runtime_t,
    visit: weft_task_visit_fn,
    ud: *mut c_void,
) -> weft_status_t {
    ffi("weft_tasks_foreach", || {
        let rt = open_runtime(rt)?;
        let Some(visit) = visit else { fail!(WEFT_EINVAL, "fn is NULL") };
        let me = context::current_if_any().map_or(0, |c| c.id);
        // Another context's slots are read only when it cannot be running: the caller
        // holds the stopped world (a Vec read while its owner resizes it is a data race).
        // Asked per entry: the callback may end the stop.
        let holds_stop = || me != 0 && rt.world.owner.load(SeqCst) == me && rt.world.stopped.load(SeqCst);
        let snapshot: Vec<Arc<Context>> = rt.world.registry.lock().clone();
        for ctx in snapshot {
            let (locals, nlocals) = if ctx.id == me || holds_stop() { ctx.slots_view() } else { (ptr::null(), 0) };
            let info = weft_task_info_t {
                struct_size: std::mem::size_of::<weft_task_info_t>() as u32,
                state: ctx.mutator.public_state(),
                id: ctx.id,
                name: ctx.name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
                task: ctx.task as *mut weft_task_t,
                locals,
                nlocals,
            };
            if visit(ud, &info) != 0 {
                break;
            }
        }
        Ok(())
    })
}
