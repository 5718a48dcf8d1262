//! Tasks as OS threads.
use std::ffi::{c_void, CStr};
use std::sync::atomic::Ordering::Acquire;
use std::sync::atomic::Ordering::Release;
use std::sync::Arc;

use parking_lot::Mutex;
use weft_platform::os_thread::{self, OsThread};
use weft_platform::*;

use crate::clock;
use crate::wait::{self, TaskState, Wake};
use crate::HOST;

/// The handle the runtime holds: the shared state plus the OS thread to reap.
struct NativeTask {
    state: Arc<TaskState>,
    thread: Mutex<Option<OsThread>>,
}

/// The smallest stack a task gets (a request for less is rounded up).
const MIN_STACK: usize = 64 * 1024;

struct SendPtr(*mut c_void);
// SAFETY: the runtime's task context is made to be handed to the new thread.
unsafe impl Send for SendPtr {}

pub(crate) unsafe extern "C" fn spawn(
    _rt: *mut weft_plat_rt_t,
    ctx: *mut c_void,
    opts: *const weft_plat_spawn_t,
    out: *mut *mut weft_plat_task_t,
) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's spawn options, NULL or valid for the call.
        let opts = unsafe { opts.as_ref() };
        let name = opts.filter(|o| !o.name.is_null()).map(|o| {
            // SAFETY: a non-NULL name is a C string valid for the call.
            unsafe { CStr::from_ptr(o.name) }.to_string_lossy()
        });
        let stack_size = opts.map_or(0, |o| if o.stack_size == 0 { 0 } else { o.stack_size.max(MIN_STACK) });
        let options = os_thread::Options { stack_size, name: name.as_deref() };
        let state = Arc::new(TaskState::default());
        let thread_state = Arc::clone(&state);
        let ctx = SendPtr(ctx);
        let spawned = os_thread::spawn(&options, move || {
            let ctx = ctx;
            wait::set_current(Arc::as_ptr(&thread_state));
            // SAFETY: `ctx` is the runtime's context for this spawn, run exactly once.
            unsafe { HOST.task_run(ctx.0) };
            wait::set_current(std::ptr::null());
            thread_state.done.store(true, Release);
            wait::wake_all(done_key(&thread_state));
        });
        match spawned {
            Ok(handle) => {
                let task = NativeTask { state, thread: Mutex::new(Some(handle)) };
                // SAFETY: the runtime's out-parameter.
                unsafe { *out = Box::into_raw(Box::new(task)) as *mut weft_plat_task_t };
                WEFT_OK
            }
            Err(errno) => HOST.fail(
                WEFT_ENOMEM,
                &format!("cannot start an OS thread: pthread_create: {}", std::io::Error::from_raw_os_error(errno)),
            ),
        }
    })
}

fn done_key(state: &TaskState) -> usize {
    &state.done as *const _ as usize
}

pub(crate) unsafe extern "C" fn join(task: *mut weft_plat_task_t, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: a handle from `spawn` that `detach` has not released yet.
        let handle = unsafe { &*(task as *const NativeTask) };
        let state = &handle.state;
        // A thread that is not a task cannot be cancelled: waiting for ever, it reaps
        // the thread at once, woken by the kernel as the thread exits (the task's
        // wake-up then finds nobody parked: one futex call a spawn+join, as
        // pthread_create + pthread_join make, not three).
        if deadline == WEFT_FOREVER && wait::current().is_none() && !state.done.load(Acquire) {
            let thread = handle.thread.lock().take();
            if let Some(thread) = thread {
                HOST.blocking(|| thread.join());
                return WEFT_OK;
            }
        }
        while !state.done.load(Acquire) {
            if wait::cancelled() {
                return WEFT_ECANCELED;
            }
            if clock::expired(deadline) {
                return WEFT_ETIMEDOUT;
            }
            match HOST.blocking(|| wait::park(done_key(state), || !state.done.load(Acquire), deadline)) {
                Wake::Cancelled => return WEFT_ECANCELED,
                Wake::TimedOut | Wake::Woken => {}
            }
        }
        let thread = handle.thread.lock().take();
        if let Some(thread) = thread {
            // The thread has finished its task; this only reaps it.
            HOST.blocking(|| thread.join());
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn detach(task: *mut weft_plat_task_t) -> weft_status_t {
    HOST.guard(|| {
        // Dropping an OsThread not taken by a join detaches it; the thread
        // keeps its own reference on the shared state.
        // SAFETY: a handle from `spawn`, released exactly once.
        drop(unsafe { Box::from_raw(task as *mut NativeTask) });
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cancel(task: *mut weft_plat_task_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: a handle from `spawn` that `detach` has not released yet.
        let handle = unsafe { &*(task as *const NativeTask) };
        wait::cancel(&handle.state);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn yield_now(_rt: *mut weft_plat_rt_t) -> weft_status_t {
    // No guard: a bare system call cannot panic, and weft_yield's fast path is this call.
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
    WEFT_OK
}

pub(crate) unsafe extern "C" fn sleep_until(_rt: *mut weft_plat_rt_t, deadline: i64) -> weft_status_t {
    HOST.guard(|| {
        let Some(me) = wait::current() else {
            // A thread the host made: not cancellable, a plain sleep.
            return HOST.blocking(|| {
                clock::sleep_thread_until(deadline);
                WEFT_OK
            });
        };
        let key = me.sleep_key();
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
