//! Tasks as green coroutines: spawn, join, detach, cancel, yield, sleep.
use std::ffi::{c_void, CStr};
use std::sync::atomic::Ordering::{Acquire, SeqCst};
use std::sync::Arc;

use weft_platform::*;

use crate::clock;
use crate::sched::{self, Sched, Task};
use crate::wait::{self, Wake};
use crate::HOST;

/// The handle the runtime holds: one reference on the task (`Arc::into_raw`), borrowed
/// as an `Arc` that is not dropped.
unsafe fn task_of(task: *mut weft_plat_task_t) -> std::mem::ManuallyDrop<Arc<Task>> {
    // SAFETY: the runtime hands back the handle `spawn` made, until `detach`; the
    // reference it stands for is given back only by `detach`.
    std::mem::ManuallyDrop::new(unsafe { Arc::from_raw(task as *const Task) })
}

pub(crate) unsafe fn sched_of<'a>(rt: *mut weft_plat_rt_t) -> &'a Arc<Sched> {
    // SAFETY: `runtime_open` made `rt` from a boxed `Arc<Sched>`, alive until close.
    unsafe { &*(rt as *const Arc<Sched>) }
}

pub(crate) unsafe extern "C" fn spawn(
    rt: *mut weft_plat_rt_t,
    ctx: *mut c_void,
    opts: *const weft_plat_spawn_t,
    out: *mut *mut weft_plat_task_t,
) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime passes its state, a valid `opts` for the call and `out`.
        let (sched, opts) = unsafe { (sched_of(rt), opts.as_ref()) };
        let (mut stack_size, mut name, mut id) = (0, None, 0);
        if let Some(o) = opts {
            stack_size = o.stack_size;
            if !o.name.is_null() {
                // SAFETY: a C string borrowed for the call; copied.
                name = Some(unsafe { CStr::from_ptr(o.name) }.to_owned());
            }
            if o.struct_size as usize >= std::mem::offset_of!(weft_plat_spawn_t, id) + 8 {
                id = o.id;
            }
        }
        match sched.spawn(ctx, stack_size, name, id) {
            Ok(task) => {
                // SAFETY: `out` is the runtime's out-pointer.
                unsafe { *out = Arc::into_raw(task) as *mut weft_plat_task_t };
                WEFT_OK
            }
            Err(status) => status,
        }
    })
}

pub(crate) unsafe extern "C" fn join(task: *mut weft_plat_task_t, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: a live handle.
        let task = unsafe { task_of(task) };
        while !task.done.load(Acquire) {
            if wait::cancelled() {
                return WEFT_ECANCELED;
            }
            if clock::expired(deadline) {
                return WEFT_ETIMEDOUT;
            }
            // Before the last look at `done` (see the task's end in `Sched::run`).
            task.awaited.store(true, SeqCst);
            match HOST.blocking(|| wait::park(task.done_key(), || !task.done.load(SeqCst), deadline)) {
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
        let task = unsafe { Arc::from_raw(task as *const Task) };
        let sched = Arc::clone(&task.sched);
        sched.release(task);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cancel(task: *mut weft_plat_task_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: a live handle. The runtime set the flag first; a wake-up makes the
        // task's wait look at it.
        let task = unsafe { task_of(task) };
        sched::wake(&task);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn yield_now(_rt: *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        sched::yield_now();
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn sleep_until(_rt: *mut weft_plat_rt_t, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        let Some(me) = sched::current_task() else {
            // A thread the host made: not cancellable, a plain sleep.
            return HOST.blocking(|| {
                clock::sleep_thread_until(deadline);
                WEFT_OK
            });
        };
        let key = me.sleep_key();
        drop(me);
        loop {
            if wait::cancelled() {
                return WEFT_ECANCELED;
            }
            if clock::expired(deadline) {
                return WEFT_OK;
            }
            if let Wake::Cancelled = HOST.blocking(|| wait::park(key, || true, deadline)) {
                return WEFT_ECANCELED;
            }
        }
    })
}

pub(crate) unsafe extern "C" fn region_enter(rt: *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's state.
        unsafe { sched_of(rt) }.region_enter();
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn region_leave(rt: *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's state.
        unsafe { sched_of(rt) }.region_leave();
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn preempt_attach(rt: *mut weft_plat_rt_t, word: *mut u32) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's state; `word` stays valid until `runtime_close`.
        unsafe { sched_of(rt) }.attach_poll_word(word);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn preempt_point(rt: *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's state.
        unsafe { sched_of(rt) }.preempt_point();
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn stack_bounds(
    _rt: *mut weft_plat_rt_t,
    lo: *mut usize,
    hi: *mut usize,
) -> weft_status_t {
    // SAFETY: the runtime's out-parameters.
    unsafe { crate::stack::report_bounds(sched::running_for_fault(), lo, hi) }
}
