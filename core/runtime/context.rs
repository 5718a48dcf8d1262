//! Execution contexts: every weft task, and every host thread that calls weft, has one.
//!
//! A context gives the caller an identity (mutex owners are context ids, so a green task
//! that moves between workers keeps owning its locks), task-local slots, and the
//! mutator state used by stop-the-world. `current.rs` names the running context; a plugin
//! that runs tasks on its own threads points it at the task while the task runs.
use std::cell::{RefCell, UnsafeCell};
use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;

use weft_platform::once::ForkSafeOnce;

use crate::ffi::error::{LastErrorBuf, TaskError};
use crate::runtime::current;
use crate::runtime::keys;
use crate::runtime::owner_token;
use crate::runtime::safepoint::Mutator;
use crate::runtime::sync::mutex;
use crate::types::{weft_key_t, weft_task_t};

pub(crate) struct Context {
    /// Unique for the life of the process; never 0.
    pub(crate) id: u64,
    /// Unique among the live contexts; 0 if there were too many (runtime/owner_token.rs).
    /// The mutexes this context holds carry it in their first word.
    pub(crate) owner_token: u32,
    /// Every name the context has had, the current one last (empty: unnamed). Old names
    /// are kept so that a pointer handed out stays valid until the context ends.
    names: weft_platform::fork_lock::ForkMutex<Vec<CString>>,
    /// The handle of the task this context runs (as the host sees it), or NULL for a
    /// host thread. Valid while the task runs.
    pub(crate) task: *const weft_task_t,
    /// Set by `weft_cancel`; read by the plugin through `host->cancel_pending`.
    pub(crate) cancelled: AtomicBool,
    pub(crate) mutator: Mutator,
    /// The addresses of the rwlocks the context holds read locks of, once per lock
    /// taken: an unlock by a context that holds no read lock of that rwlock is refused.
    read_held: UnsafeCell<Vec<usize>>,
    /// The host's state pointer (`weft_task_set_state`), copied into the thread's slot
    /// whenever the context becomes the running one, for weft.h's inline read.
    state: AtomicPtr<c_void>,
    /// A task's spawn argument until its function is called (0 after, and for a host
    /// thread): until then it is held only by weft, so `weft_tasks_foreach` reports it
    /// as the task's root.
    pub(crate) start_arg: AtomicUsize,
    slots: UnsafeCell<Slots>,
    /// The addresses of the locks the context holds, when a runtime's checks are on.
    held: UnsafeCell<Vec<usize>>,
    /// The order edges this context has already put in a runtime's graph (the checks'
    /// cache: a lock taken again in an order seen before skips the graph).
    known_edges: UnsafeCell<crate::runtime::checks::KnownEdges>,
    /// A task's own `weft_last_error()` text, made at its first failure (a host thread
    /// uses the thread's buffer in ffi/error.rs instead).
    last_error: UnsafeCell<Option<Box<LastErrorBuf>>>,
}

// SAFETY: `slots` is only touched by the context's own thread of execution (and read by
// `weft_tasks_foreach`, documented as valid only while the world is stopped); every
// other field is immutable or atomic.
unsafe impl Send for Context {}
// SAFETY: as for Send.
unsafe impl Sync for Context {}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A context's task-local values, by slot, each with the key that set it (a value set
/// under a key since deleted is not the value of the slot's next key).
type Slots = Vec<Slot>;

#[derive(Clone, Copy)]
struct Slot {
    value: *mut c_void,
    key: weft_key_t,
}

impl Drop for Context {
    fn drop(&mut self) {
        owner_token::give_back(self.owner_token);
    }
}

impl Context {
    pub(crate) fn new(name: Option<CString>, task: *const weft_task_t) -> Context {
        let id = NEXT_ID.fetch_add(1, Relaxed);
        Context {
            id,
            owner_token: owner_token::take(id),
            names: weft_platform::fork_lock::ForkMutex::new(name.into_iter().collect()),
            task,
            cancelled: AtomicBool::new(false),
            mutator: Mutator::default(),
            read_held: UnsafeCell::new(Vec::new()),
            state: AtomicPtr::new(ptr::null_mut()),
            start_arg: AtomicUsize::new(0),
            slots: UnsafeCell::new(Vec::new()),
            held: UnsafeCell::new(Vec::new()),
            known_edges: UnsafeCell::new(Default::default()),
            last_error: UnsafeCell::new(None),
        }
    }

    /// The value of `key` (live, in slot `index`), NULL if never set. Only from the
    /// context's own thread.
    #[inline(always)]
    pub(crate) fn slot(&self, index: usize, key: weft_key_t) -> *mut c_void {
        // SAFETY: see the Sync impl.
        match unsafe { &*self.slots.get() }.get(index) {
            Some(slot) if slot.key == key => slot.value,
            _ => ptr::null_mut(),
        }
    }

    /// Sets the value of `key` (live, in slot `index`). Only from the context's own
    /// thread.
    pub(crate) fn set_slot(&self, index: usize, key: weft_key_t, value: *mut c_void) {
        // SAFETY: see the Sync impl.
        let slots = unsafe { &mut *self.slots.get() };
        if slots.len() <= index {
            slots.resize(index + 1, Slot { value: ptr::null_mut(), key: 0 });
        }
        slots[index] = Slot { value, key };
    }

    /// The values of the live keys as they are now, slot by slot (NULL where the key
    /// that set a value was deleted since), into `into`: for `weft_tasks_foreach`, where
    /// the context cannot run (the world is stopped) or is the caller.
    pub(crate) fn live_slots(&self, into: &mut Vec<*mut c_void>) {
        // SAFETY: see the Sync impl.
        let slots = unsafe { &*self.slots.get() };
        into.clear();
        into.extend(slots.iter().map(|s| if keys::is_live(s.key) { s.value } else { ptr::null_mut() }));
    }

    /// Runs the destructors of every non-NULL value of a live key, as pthread does: each
    /// value is taken out of its slot (set to NULL) just before its destructor runs, the
    /// others stay where they are (a destructor may read another key's value, as under
    /// pthread: all were taken out at once before, and it read NULL), and a destructor
    /// may set values again, so up to four rounds.
    pub(crate) fn run_slot_destructors(&self) {
        for _round in 0..4 {
            let mut ran = false;
            let mut index = 0;
            // The slots are looked at one by one, each borrow ending before a destructor
            // runs: a destructor may set values, and grow the slots.
            while let Some((value, dtor)) = self.take_for_destructor(index) {
                index += 1;
                let Some(dtor) = dtor else { continue };
                ran = true;
                let dtor = crate::ffi::callback::may_unwind!(dtor, fn(*mut c_void));
                // SAFETY: the host registered `dtor` for values of this key.
                let run = || unsafe { dtor(value) };
                crate::ffi::callback::host_call("a task-local slot destructor", run);
            }
            if !ran {
                break;
            }
        }
        // SAFETY: see the Sync impl; no destructor runs any more.
        drop(std::mem::take(unsafe { &mut *self.slots.get() }));
    }

    /// Slot `index`, if there is one: its value and its key's destructor, the value
    /// taken out of the slot when it has one to run (None for the destructor
    /// otherwise: NULL, no destructor, or a deleted key).
    fn take_for_destructor(&self, index: usize) -> Option<(*mut c_void, crate::types::weft_key_dtor_fn)> {
        // SAFETY: see the Sync impl; the borrow ends before the caller runs anything.
        let slots = unsafe { &mut *self.slots.get() };
        let slot = slots.get_mut(index)?;
        if slot.value.is_null() {
            return Some((ptr::null_mut(), None));
        }
        match keys::destructor(slot.key) {
            Some(dtor) => Some((std::mem::replace(&mut slot.value, ptr::null_mut()), Some(dtor))),
            None => Some((ptr::null_mut(), None)),
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

    /// Records a read lock of the rwlock at `addr`, taken by this context.
    pub(crate) fn read_locked(&self, addr: usize) {
        self.read_held_mut().push(addr);
    }

    /// Forgets one read lock of the rwlock at `addr`: false if the context holds none.
    /// The last taken is looked at first (locks are mostly released in reverse order).
    pub(crate) fn read_unlocked(&self, addr: usize) -> bool {
        let held = self.read_held_mut();
        match held.iter().rposition(|&a| a == addr) {
            Some(at) => {
                held.remove(at);
                true
            }
            None => false,
        }
    }

    /// Whether the context holds a read lock of the rwlock at `addr`.
    pub(crate) fn holds_read(&self, addr: usize) -> bool {
        self.read_held_mut().contains(&addr)
    }

    /// The same rule as `held_locks`: only the context's own thread of execution calls
    /// it, and no caller keeps the reference.
    #[allow(clippy::mut_from_ref)]
    fn read_held_mut(&self) -> &mut Vec<usize> {
        // SAFETY: see above.
        unsafe { &mut *self.read_held.get() }
    }

    /// The order edges this context knows are in a graph, for the checks: the same rule
    /// as `held_locks`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn known_edges(&self) -> &mut crate::runtime::checks::KnownEdges {
        // SAFETY: as for `held_locks`.
        unsafe { &mut *self.known_edges.get() }
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

    /// Sets the host's state pointer. Only on the running context (its thread's slot
    /// holds the copy weft.h reads).
    pub(crate) fn set_state(&self, state: *mut c_void) {
        self.state.store(state, Relaxed);
        current::set_state(state);
    }
}

/// The context of a host thread, made the first time the thread needs one. Two things
/// hold it, and each ends it when the thread exits (ending twice is harmless, see
/// `end_thread_context`):
/// * `THREAD`, a Rust thread-local: its destructor is the usual end, among the thread's
///   other thread-local destructors (the main thread's only one, when the process
///   exits);
/// * the pthread key `thread_key()`, whose destructor glibc runs after every
///   thread-local destructor. A host's own pthread key destructor may call weft then,
///   and needs a context: the key's reference keeps the thread's context usable for
///   such calls, and its destructor frees it afterwards. (Before the key, each such
///   thread leaked a fresh context, valgrind's "definitely lost".) It also ends and
///   frees a context first made from such a destructor, whose thread-local destructor
///   glibc registers then but never runs.
struct ThreadContext(Arc<Context>);

impl Drop for ThreadContext {
    fn drop(&mut self) {
        end_thread_context(&self.0);
    }
}

/// Ends a host thread's context at the thread's exit. It may run twice (see
/// `ThreadContext`), and each step only undoes what is still there: the destructors of
/// the values still set, a blocking region or a stop the context is still in.
fn end_thread_context(ctx: &Arc<Context>) {
    // The destructors run while the thread is still a mutator and still current, as
    // a task's do: a VM that frees per-thread state in one is not racing a
    // collector, and may call weft from it (lock a mutex, set a slot again).
    // The running-context slot has no destructor, so it stays usable during thread exit.
    make_current(Arc::as_ptr(ctx));
    if crate::runtime::safepoint::keeps_world_at_exit(ctx) {
        // The process is ending with the world held (docs/vm.md, "Ending the
        // process"): the stop stays in force, and this context stays the running
        // one, still its holder, for the atexit handlers that run after this.
        std::mem::forget(Arc::clone(ctx));
        return;
    }
    crate::runtime::safepoint::leave_open_regions(ctx);
    ctx.run_slot_destructors();
    crate::runtime::safepoint::context_ending(ctx);
    make_current(ptr::null());
}

thread_local! {
    static THREAD: RefCell<Option<ThreadContext>> = const { RefCell::new(None) };
}

/// The pthread key that holds one more reference to each host thread's context (an
/// `Arc::into_raw`), made once; None if the process has no key left (then a thread
/// that calls weft after its thread-locals are gone gets a context never freed).
fn thread_key() -> Option<libc::pthread_key_t> {
    // A `ForkSafeOnce`: a child forked while another thread made the key makes its own.
    static MADE: ForkSafeOnce = ForkSafeOnce::new();
    static KEY: AtomicU64 = AtomicU64::new(NO_KEY);
    const NO_KEY: u64 = u64::MAX;
    MADE.call_once(|| {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is writable. The destructor is libweft code, as are the
        // thread-local destructors registered with each context; libweft stays loaded
        // under its plugins, which are never unloaded and call back into it.
        if unsafe { libc::pthread_key_create(&mut key, Some(thread_key_destructor)) } == 0 {
            KEY.store(u64::from(key), Relaxed);
        }
    });
    // The once's end orders the store before this load.
    libc::pthread_key_t::try_from(KEY.load(Relaxed)).ok()
}

/// Gives this thread's key one more reference to `ctx`; false if there is no key or it
/// could not take the value.
fn hold_in_key(ctx: &Arc<Context>) -> bool {
    let Some(key) = thread_key() else { return false };
    let raw = Arc::into_raw(Arc::clone(ctx));
    // SAFETY: a key of this process; its values are read back only in this file.
    if unsafe { libc::pthread_setspecific(key, raw as *const c_void) } == 0 {
        return true;
    }
    // SAFETY: the reference just made, which the key did not take.
    drop(unsafe { Arc::from_raw(raw) });
    false
}

unsafe extern "C" fn thread_key_destructor(value: *mut c_void) {
    // SAFETY: the key's values are references made by `hold_in_key`.
    let ctx = unsafe { Arc::from_raw(value as *const Context) };
    // A context first made from a pthread key destructor is still in `THREAD`, whose
    // destructor glibc will not run: take it out, which ends it and drops that
    // reference. (Every other context's `THREAD` is gone by now: `try_with` fails.)
    drop(THREAD.try_with(|t| t.borrow_mut().take()).ok().flatten());
    end_thread_context(&ctx);
}

/// Makes `ctx` (NULL: none) the running context of this thread, with its state pointer.
fn make_current(ctx: *const Context) {
    // SAFETY: a non-NULL `ctx` is alive while it is current (see `current`).
    let (state, owner) = unsafe { ctx.as_ref() }
        .map_or((ptr::null_mut(), 0), |c| (c.state.load(Relaxed), mutex::owner_bits(c.owner_token)));
    current::set(ctx as *mut c_void, state, owner);
}

/// The running context: the current task's, or this host thread's (made on first use).
/// The slot read (`current::context`) is never cached across a call that may move a
/// green task to another thread.
#[inline]
pub(crate) fn current() -> &'static Context {
    let running = current::context() as *const Context;
    if !running.is_null() {
        // SAFETY: the slot points at a context kept alive by its task or thread for as
        // long as it is current.
        return unsafe { &*running };
    }
    thread_context()
}

/// The running context if there is one already (no context is made for the caller).
#[inline(always)]
pub(crate) fn current_if_any() -> Option<&'static Context> {
    // SAFETY: as in `current`.
    unsafe { (current::context() as *const Context).as_ref() }
}

#[cold]
fn thread_context() -> &'static Context {
    let ctx = THREAD
        .try_with(|t| {
            let mut t = t.borrow_mut();
            let made = t.get_or_insert_with(|| {
                let ctx = Arc::new(Context::new(None, ptr::null()));
                let _ = hold_in_key(&ctx);
                ThreadContext(ctx)
            });
            Arc::as_ptr(&made.0)
        })
        // The thread is exiting and its thread-locals are gone (pthread key destructors
        // run after every Rust thread-local): `with` would panic and abort the host.
        .unwrap_or_else(|_| late_thread_context());
    make_current(ctx);
    // SAFETY: the ThreadContext or the key keeps the Arc until the thread exits.
    unsafe { &*ctx }
}

/// The context of a thread whose thread-locals are gone: the one the key holds (the
/// thread's own, ended once and usable again), or, once the key's destructor has run,
/// a new one that the key alone holds (glibc runs the key's destructors again while a
/// destructor sets values, up to four rounds).
fn late_thread_context() -> *const Context {
    if let Some(key) = thread_key() {
        // SAFETY: a key of this process.
        let held = unsafe { libc::pthread_getspecific(key) } as *const Context;
        if !held.is_null() {
            return held;
        }
    }
    let ctx = Arc::new(Context::new(None, ptr::null()));
    let raw = Arc::as_ptr(&ctx);
    if !hold_in_key(&ctx) {
        // Without a key the context is never freed: a few words for the thread.
        std::mem::forget(ctx);
    }
    raw
}

/// The running task's last-error buffer, for ffi/error.rs (installed by `Task::spawn`):
/// `NotATask` for a host thread, else the task's buffer, made when `make` asks for it.
pub(crate) fn task_last_error(make: bool) -> TaskError {
    let Some(ctx) = current_if_any() else { return TaskError::NotATask };
    if ctx.task.is_null() {
        return TaskError::NotATask;
    }
    // SAFETY: only the context's own thread of execution calls this (see the Sync impl).
    let slot = unsafe { &mut *ctx.last_error.get() };
    match slot {
        Some(buf) => TaskError::Buffer(&mut **buf),
        None if make => TaskError::Buffer(&mut **slot.insert(Box::new([0; std::mem::size_of::<LastErrorBuf>()]))),
        None => TaskError::NoneYet,
    }
}

/// The Arc of this host thread's context (for registration as a mutator).
pub(crate) fn thread_context_arc() -> Option<Arc<Context>> {
    THREAD.try_with(|t| t.borrow().as_ref().map(|c| Arc::clone(&c.0))).ok().flatten()
}

/// Makes `ctx` the running context; returns the previous one, to restore.
/// `task::run` enters the task's context at its start and restores the previous one at
/// its end, and a green task may end on another thread than it started on: the restore
/// must write the *ending* thread's slot. With a Rust thread-local inlined there, the
/// slot's address was computed once and the restore wrote the starting thread's, under
/// whatever task that thread ran by then (which then found itself no mutator; test
/// `vm_region_tasks_keep_their_identity`). `current.rs`'s reads and writes compute the
/// address at each access; `#[inline(never)]` keeps this call a call all the same.
#[inline(never)]
pub(crate) fn enter(ctx: *const Context) -> *const Context {
    let previous = current::context() as *const Context;
    make_current(ctx);
    previous
}
