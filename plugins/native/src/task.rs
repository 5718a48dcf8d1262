//! Tasks as OS threads.
use std::ffi::{c_void, CStr, CString};
use std::sync::atomic::Ordering::{Acquire, SeqCst};
use std::sync::Arc;

use weft_platform::fork_lock::ForkMutex;
use weft_platform::os_thread::{self, OsThread, ThreadMain};
use weft_platform::*;

use crate::clock;
use crate::wait::{self, TaskState, Wake};
use crate::HOST;

/// A task: the handle the runtime holds and the record its thread runs, in one
/// allocation that the thread only reads (`os_thread::ThreadMain`): the task's thread
/// mallocs and frees nothing of the plugin's.
struct NativeTask {
    state: TaskState,
    /// The runtime's context for the task, run once by the thread.
    ctx: *mut c_void,
    name: Option<CString>,
    /// The OS thread to reap; None once a join has taken it.
    thread: ForkMutex<Option<OsThread>>,
}

// SAFETY: `ctx` is the runtime's task context, made to be handed to the new thread and
// used there only; the rest is Sync.
unsafe impl Send for NativeTask {}
// SAFETY: as for Send.
unsafe impl Sync for NativeTask {}

impl ThreadMain for NativeTask {
    fn run(&self) {
        wait::set_current(&self.state);
        // SAFETY: `ctx` is the runtime's context for this spawn, run exactly once (the
        // thread runs `run` once).
        unsafe { HOST.task_run(self.ctx) };
        wait::set_current(std::ptr::null());
        // Dekker with `join`: done stored, then joiners read; a joiner counts itself,
        // then reads done (as it parks). Either this sees the joiner or it sees done.
        self.state.done.store(true, SeqCst);
        if self.state.joiners.load(SeqCst) != 0 {
            wait::wake_all(done_key(&self.state));
        }
    }
    fn name(&self) -> Option<&CStr> {
        self.name.as_deref()
    }
}

/// The smallest stack a task gets (a request for less is rounded up).
const MIN_STACK: usize = 64 * 1024;

/// # Safety
/// `task` is a handle from `spawn` that `detach` has not released yet.
unsafe fn task_ref<'a>(task: *mut weft_plat_task_t) -> &'a NativeTask {
    // SAFETY: see above: an `Arc<NativeTask>`'s pointer, one reference of which the
    // runtime holds.
    unsafe { &*(task as *const NativeTask) }
}

pub(crate) unsafe extern "C" fn spawn(
    _rt: *mut weft_plat_rt_t,
    ctx: *mut c_void,
    opts: *const weft_plat_spawn_t,
    out: *mut *mut weft_plat_task_t,
) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's spawn options, NULL or valid for the call.
        let opts = unsafe { opts.as_ref() };
        let name = opts.filter(|o| !o.name.is_null()).and_then(|o| {
            // SAFETY: a non-NULL name is a C string valid for the call.
            os_thread::thread_name(Some(unsafe { CStr::from_ptr(o.name) }.to_string_lossy().as_ref()))
        });
        let stack_size = opts.map_or(0, |o| if o.stack_size == 0 { 0 } else { o.stack_size.max(MIN_STACK) });
        let task = Arc::new(NativeTask { state: TaskState::default(), ctx, name, thread: ForkMutex::new(None) });
        match os_thread::spawn_shared(stack_size, Arc::clone(&task)) {
            Ok(thread) => {
                *task.thread.lock() = Some(thread);
                // SAFETY: the runtime's out-parameter.
                unsafe { *out = Arc::into_raw(task) as *mut weft_plat_task_t };
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
        let handle = unsafe { task_ref(task) };
        let state = &handle.state;
        // A thread that is not a task cannot be cancelled: waiting for ever, it reaps
        // the thread at once, woken by the kernel as the thread exits (the task then
        // ends with no joiner to wake: one futex call a spawn+join, as pthread_create +
        // pthread_join make, not three).
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
            state.joiners.fetch_add(1, SeqCst);
            let woke = HOST.blocking(|| wait::park(done_key(state), || !state.done.load(SeqCst), deadline));
            state.joiners.fetch_sub(1, SeqCst);
            match woke {
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
        // Dropping an OsThread not taken by a join detaches it; the thread keeps its
        // own reference on the task.
        // SAFETY: a handle from `spawn`, released exactly once.
        drop(unsafe { Arc::from_raw(task as *const NativeTask) });
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn cancel(task: *mut weft_plat_task_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: a handle from `spawn` that `detach` has not released yet.
        wait::cancel(&unsafe { task_ref(task) }.state);
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn yield_now(_rt: *mut weft_plat_rt_t) -> weft_status_t {
    // No guard: a bare system call cannot panic. weft_yield's fast path makes the same
    // call itself (this plugin claims WEFT_CAP_SCHED_YIELD): keep the two the same.
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
