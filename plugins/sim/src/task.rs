//! Tasks as coroutines of the one thread: spawn, join, detach, cancel, yield, sleep,
//! and the safepoint switch point.
use std::ffi::{c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

use weft_platform::*;

use crate::sched::{Call, Obj, Sim};
use crate::wait::{self, Wake};
use crate::{clock, on_sim, HOST};

/// The handle the runtime holds: the task's index in its scheduler, and its end (a
/// handle may be joined after the runtime closed). The index is the task's only while
/// `done` is false: an ended task's slot goes to a later spawn.
struct Handle {
    index: usize,
    /// The task's id, by which reports name it (its slot `index` goes to a later task
    /// once it ended).
    id: u64,
    done: Arc<AtomicBool>,
}

unsafe fn handle_of<'a>(task: *mut weft_plat_task_t) -> &'a Handle {
    // SAFETY: the runtime hands back the handle `spawn` made, until `detach`.
    unsafe { &*(task as *const Handle) }
}

/// True when the handle's task has ended: join and cancel need no scheduler then.
unsafe fn ended(task: *mut weft_plat_task_t) -> bool {
    // SAFETY: as above.
    unsafe { handle_of(task) }.done.load(SeqCst)
}

/// The address a task sleeps on: one per task, never a real object's.
fn sleep_key(index: usize) -> usize {
    usize::MAX / 2 - index
}

pub(crate) unsafe extern "C" fn spawn(
    _rt: *mut weft_plat_rt_t,
    ctx: *mut c_void,
    opts: *const weft_plat_spawn_t,
    out: *mut *mut weft_plat_task_t,
) -> weft_status_t {
    on_sim(|sim| {
        // SAFETY: the runtime passes a valid `opts` for the call.
        let opts = unsafe { opts.as_ref() };
        let (mut stack_size, mut name, mut id) = (0, String::from("task"), 0);
        if let Some(o) = opts {
            stack_size = o.stack_size;
            if !o.name.is_null() {
                // SAFETY: a C string borrowed for the call; copied.
                name = unsafe { CStr::from_ptr(o.name) }.to_string_lossy().into_owned();
            }
            if o.struct_size as usize >= std::mem::offset_of!(weft_plat_spawn_t, id) + 8 {
                id = o.id;
            }
        }
        match sim.spawn(ctx, stack_size, name, id) {
            Some((index, done)) => {
                // SAFETY: `out` is the runtime's out-pointer.
                unsafe { *out = Box::into_raw(Box::new(Handle { index, id, done })) as *mut weft_plat_task_t };
                // The switch point comes once the new task can be picked, so that it
                // may run before anything its spawner does next, as a thread may: with
                // the step before the task existed, a task spawned by main's last weft
                // call never ran if main then returned, and a race between the new task
                // and its spawner's plain writes after the spawn was never explored.
                sim.step(Call { name: "weft_spawn", obj: Obj::None });
                WEFT_OK
            }
            None => HOST.fail(WEFT_ENOMEM, &format!("cannot map a task stack of {stack_size} bytes")),
        }
    })
}

pub(crate) unsafe extern "C" fn join(task: *mut weft_plat_task_t, deadline: i64) -> weft_status_t {
    // SAFETY: a live handle.
    if unsafe { ended(task) } && crate::sched::here().is_none() {
        return WEFT_OK;
    }
    on_sim(|sim| {
        // SAFETY: a live handle.
        let Handle { index, id, done } = unsafe { handle_of(task) };
        let index = *index;
        let ended = || done.load(SeqCst);
        let call = Call { name: "weft_join", obj: if ended() { Obj::None } else { Obj::Task(*id) } };
        sim.step(call);
        while !ended() {
            if wait::cancelled() {
                return WEFT_ECANCELED;
            }
            if clock::expired(deadline) {
                return WEFT_ETIMEDOUT;
            }
            let key = Sim::done_key(index);
            match HOST.blocking(|| wait::park_in(sim, call, key, || !ended(), deadline, true)) {
                Wake::Cancelled => return WEFT_ECANCELED,
                Wake::TimedOut | Wake::Woken => {}
            }
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn detach(task: *mut weft_plat_task_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the handle, given back exactly once.
        drop(unsafe { Box::from_raw(task as *mut Handle) });
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cancel(task: *mut weft_plat_task_t) -> weft_status_t {
    // SAFETY: a live handle.
    if unsafe { ended(task) } && crate::sched::here().is_none() {
        return WEFT_OK;
    }
    on_sim(|sim| {
        // SAFETY: a live handle. The runtime set the flag first; making the task
        // runnable makes its wait look at it.
        let handle = unsafe { handle_of(task) };
        if handle.done.load(SeqCst) {
            sim.step(Call { name: "weft_cancel", obj: Obj::None });
        } else {
            sim.poke(handle.index);
            sim.step(Call { name: "weft_cancel", obj: Obj::Task(handle.id) });
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn yield_now(_rt: *mut weft_plat_rt_t) -> weft_status_t {
    on_sim(|sim| {
        sim.yield_step(Call { name: "weft_yield", obj: Obj::None });
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn sleep_until(_rt: *mut weft_plat_rt_t, deadline: i64) -> weft_status_t {
    on_sim(|sim| {
        let call = Call { name: "weft_sleep_until", obj: Obj::Deadline(deadline) };
        // A yield too: with `$WEFT_SIM_STEP_NS` a short sleep may end within its own step
        // and never block, so a loop of them would keep PCT's priority like a spin.
        sim.yield_step(call);
        let key = sleep_key(sim.current());
        loop {
            if wait::cancelled() {
                return WEFT_ECANCELED;
            }
            if clock::expired(deadline) {
                return WEFT_OK;
            }
            if let Wake::Cancelled = HOST.blocking(|| wait::park_in(sim, call, key, || true, deadline, true)) {
                return WEFT_ECANCELED;
            }
        }
    })
}

pub(crate) unsafe extern "C" fn region_enter(_rt: *mut weft_plat_rt_t) -> weft_status_t {
    // One thread runs every task: a host's blocking call blocks them all, and there is
    // no other thread to hand the CPU to.
    WEFT_OK
}

pub(crate) unsafe extern "C" fn region_leave(_rt: *mut weft_plat_rt_t) -> weft_status_t {
    WEFT_OK
}

pub(crate) unsafe extern "C" fn preempt_attach(_rt: *mut weft_plat_rt_t, word: *mut u32) -> weft_status_t {
    HOST.guard(|| {
        // Every safepoint poll is a switch point: the preempt bit stays set, so each
        // poll calls `preempt_point`.
        // SAFETY: the runtime's poll word, valid until `runtime_close`, 4-aligned.
        if let Some(word) = unsafe { (word as *const AtomicU32).as_ref() } {
            word.fetch_or(WEFT_SAFEPOINT_PREEMPT, SeqCst);
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn preempt_point(_rt: *mut weft_plat_rt_t) -> weft_status_t {
    on_sim(|sim| {
        sim.step(Call { name: "weft_safepoint", obj: Obj::None });
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn stack_bounds(
    _rt: *mut weft_plat_rt_t,
    lo: *mut usize,
    hi: *mut usize,
) -> weft_status_t {
    // SAFETY: the runtime's out-parameters.
    unsafe { crate::stack::report_bounds(crate::sched::running_for_fault(), lo, hi) }
}
