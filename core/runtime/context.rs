//! Execution contexts: every weft task, and every host thread that calls weft, has one.
//!
//! A context gives the caller an identity (mutex owners are context ids, so a green task
//! that moves between workers keeps owning its locks), task-local slots, and the
//! mutator state used by stop-the-world. `CURRENT` names the running context; a plugin
//! that runs tasks on its own threads points it at the task while the task runs.
use std::cell::{Cell, UnsafeCell};
use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;

use crate::runtime::keys;
use crate::runtime::safepoint::Mutator;
use crate::types::weft_task_t;

pub(crate) struct Context {
    /// Unique for the life of the process; never 0.
    pub(crate) id: u64,
    /// Every name the context has had, the current one last (empty: unnamed). Old names
    /// are kept so that a pointer handed out stays valid until the context ends.
    names: parking_lot::Mutex<Vec<CString>>,
    /// The handle of the task this context runs (as the host sees it), or NULL for a
    /// host thread. Valid while the task runs.
    pub(crate) task: *const weft_task_t,
    /// Set by `weft_cancel`; read by the plugin through `host->cancel_pending`.
    pub(crate) cancelled: AtomicBool,
    pub(crate) mutator: Mutator,
    /// Read locks of any rwlock the context holds (to refuse unlocks by non-holders).
    pub(crate) read_locks_held: AtomicU32,
    /// A task's spawn argument until its function is called (0 after, and for a host
    /// thread): until then it is held only by weft, so `weft_tasks_foreach` reports it
    /// as the task's root.
    pub(crate) start_arg: AtomicUsize,
    slots: UnsafeCell<Vec<*mut c_void>>,
    /// The addresses of the locks the context holds, when a runtime's checks are on.
    held: UnsafeCell<Vec<usize>>,
}

// SAFETY: `slots` is only touched by the context's own thread of execution (and read by
// `weft_tasks_foreach`, documented as valid only while the world is stopped); every
// other field is immutable or atomic.
unsafe impl Send for Context {}
// SAFETY: as for Send.
unsafe impl Sync for Context {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Context {
    pub(crate) fn new(name: Option<CString>, task: *const weft_task_t) -> Context {
        Context {
            id: NEXT_ID.fetch_add(1, Relaxed),
            names: parking_lot::Mutex::new(name.into_iter().collect()),
            task,
            cancelled: AtomicBool::new(false),
            mutator: Mutator::default(),
            read_locks_held: AtomicU32::new(0),
            start_arg: AtomicUsize::new(0),
            slots: UnsafeCell::new(Vec::new()),
            held: UnsafeCell::new(Vec::new()),
        }
    }

    /// Slot `index`, NULL if never set. Only from the context's own thread.
    pub(crate) fn slot(&self, index: usize) -> *mut c_void {
        // SAFETY: see the Sync impl.
        unsafe { (&*self.slots.get()).get(index).copied().unwrap_or(ptr::null_mut()) }
    }

    /// Sets slot `index`. Only from the context's own thread.
    pub(crate) fn set_slot(&self, index: usize, value: *mut c_void) {
        // SAFETY: see the Sync impl.
        let slots = unsafe { &mut *self.slots.get() };
        if slots.len() <= index {
            slots.resize(index + 1, ptr::null_mut());
        }
        slots[index] = value;
    }

    /// The slots as they are now, for `weft_tasks_foreach` (world stopped).
    pub(crate) fn slots_view(&self) -> (*const *mut c_void, usize) {
        // SAFETY: see the Sync impl.
        let slots = unsafe { &*self.slots.get() };
        (slots.as_ptr(), slots.len())
    }

    /// Runs the destructors of every non-NULL slot, as pthread does: a destructor may
    /// set slots again, so up to four rounds.
    pub(crate) fn run_slot_destructors(&self) {
        for _round in 0..4 {
            // SAFETY: see the Sync impl; the slots are moved out before any destructor
            // runs, so a destructor that sets a slot does not alias this borrow.
            let taken = std::mem::take(unsafe { &mut *self.slots.get() });
            if taken.iter().all(|v| v.is_null()) {
                return;
            }
            for (index, value) in taken.into_iter().enumerate() {
                if value.is_null() {
                    continue;
                }
                if let Some(dtor) = keys::destructor(index) {
                    let dtor = crate::ffi::callback::may_unwind!(dtor, fn(*mut c_void));
                    // SAFETY: the host registered `dtor` for values of this key.
                    let run = || unsafe { dtor(value) };
                    crate::ffi::callback::host_call("a task-local slot destructor", run);
                }
            }
        }
    }

    /// The locks held, for the checks: only the context's own thread of execution calls
    /// it, and no caller keeps the reference across another call, so no two references
    /// are alive at once.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn held_locks(&self) -> &mut Vec<usize> {
        // SAFETY: see above.
        unsafe { &mut *self.held.get() }
    }

    /// The current name, if any.
    pub(crate) fn name(&self) -> Option<String> {
        self.names.lock().last().map(|n| n.to_string_lossy().into_owned())
    }

    /// The current name as a C string valid until the context ends; NULL if unnamed.
    pub(crate) fn name_ptr(&self) -> *const std::ffi::c_char {
        self.names.lock().last().map_or(ptr::null(), |n| n.as_ptr())
    }

    /// Renames the context (the old names stay valid until it ends).
    pub(crate) fn set_name(&self, name: CString) {
        self.names.lock().push(name);
    }

    /// The task handle, for the host.
    pub(crate) fn task_handle(&self) -> *mut weft_task_t {
        self.task as *mut weft_task_t
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(SeqCst)
    }
}

/// The context of a host thread, made the first time the thread needs one and dropped
/// when the thread exits (running slot destructors and leaving any runtime it joined).
struct ThreadContext(Arc<Context>);

impl Drop for ThreadContext {
    fn drop(&mut self) {
        // The destructors run while the thread is still a mutator and still current, as
        // a task's do: a VM that frees per-thread state in one is not racing a
        // collector, and may call weft from it (lock a mutex, set a slot again).
        // CURRENT has no destructor, so it stays usable during thread exit.
        CURRENT.with(|c| c.set(Arc::as_ptr(&self.0)));
        if crate::runtime::safepoint::keeps_world_at_exit(&self.0) {
            // The process is ending with the world held (docs/vm.md, "Ending the
            // process"): the stop stays in force, and this context stays the running
            // one, still its holder, for the atexit handlers that run after this.
            std::mem::forget(Arc::clone(&self.0));
            return;
        }
        crate::runtime::safepoint::leave_open_regions(&self.0);
        self.0.run_slot_destructors();
        crate::runtime::safepoint::context_ending(&self.0);
        CURRENT.with(|c| c.set(ptr::null()));
    }
}

thread_local! {
    static CURRENT: Cell<*const Context> = const { Cell::new(ptr::null()) };
    static THREAD: std::cell::OnceCell<ThreadContext> = const { std::cell::OnceCell::new() };
}

/// The running context: the current task's, or this host thread's (made on first use).
/// `#[inline(never)]` so that the thread-local address is not cached across a call that
/// may move a green task to another thread.
#[inline(never)]
pub(crate) fn current() -> &'static Context {
    let running = CURRENT.with(|c| c.get());
    if !running.is_null() {
        // SAFETY: CURRENT points at a context kept alive by its task or thread for as
        // long as it is current.
        return unsafe { &*running };
    }
    thread_context()
}

/// The running context if there is one already (no context is made for the caller).
#[inline(never)]
pub(crate) fn current_if_any() -> Option<&'static Context> {
    // SAFETY: as in `current`.
    CURRENT.with(|c| unsafe { c.get().as_ref() })
}

/// `current_if_any`, inlined, for the lock fast paths: they read it once, before their
/// only plugin call (a trylock or an unlock, which never switches tasks), so no cached
/// thread-local address can outlive a switch.
#[inline(always)]
pub(crate) fn current_if_any_fast() -> Option<&'static Context> {
    // SAFETY: as in `current`.
    CURRENT.with(|c| unsafe { c.get().as_ref() })
}

#[cold]
fn thread_context() -> &'static Context {
    let ctx = THREAD
        .try_with(|t| Arc::as_ptr(&t.get_or_init(|| ThreadContext(Arc::new(Context::new(None, ptr::null())))).0))
        // The thread is exiting and its context is already gone (pthread key destructors
        // run after every Rust thread-local): `with` would panic and abort the host.
        // Give the thread a context for the rest of its exit instead. It is leaked, a
        // few words per such thread, because nothing runs on the thread later to free it.
        .unwrap_or_else(|_| Box::into_raw(Box::new(Context::new(None, ptr::null()))) as *const Context);
    CURRENT.with(|c| c.set(ctx));
    // SAFETY: the ThreadContext keeps the Arc until the thread exits.
    unsafe { &*ctx }
}

/// The Arc of this host thread's context (for registration as a mutator).
pub(crate) fn thread_context_arc() -> Option<Arc<Context>> {
    THREAD.try_with(|t| t.get().map(|c| Arc::clone(&c.0))).ok().flatten()
}

/// Makes `ctx` the running context; returns the previous one, to restore.
/// `#[inline(never)]` for the reason `current` is: `task::run` enters the task's context
/// at its start and restores the previous one at its end, and a green task may end on
/// another thread than it started on. Inlined there, the thread-local's address was
/// computed once, and the restore wrote the *starting* thread's running context, under
/// whatever task that thread ran by then (which then found itself no mutator).
#[inline(never)]
pub(crate) fn enter(ctx: *const Context) -> *const Context {
    CURRENT.with(|c| c.replace(ctx))
}
