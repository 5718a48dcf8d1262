//! Tasks: spawn, join, detach, cancel, identity.
//!
//! A task handle is a shell (`ffi::shell`) that is never given back to the allocator,
//! so a handle used after its join or detach reads a dead tag and is refused. The shell
//! has two owners: the host, until it joins or detaches, and the running task, until it
//! exits (so `weft_task_self` and the hooks can hand the handle out while it runs, even
//! detached). A call through the handle (cancel, id, link, join, detach) adds an owner
//! for its duration (`Task::pin`), since another thread may give the handle up meanwhile.
//! The last owner to let go drops the task's state and retires the shell.
//! The state lives in the shell itself, and the shell keeps its last task's context for
//! the next one when nobody else holds it (up to `MAX_SPARE_CONTEXTS` shells): a spawn
//! on a shell used before allocates nothing.
use std::cell::UnsafeCell;
use std::ffi::{c_void, CString};
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{
    AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
    Ordering::Release, Ordering::SeqCst,
};
use std::sync::Arc;

use weft_platform::fork_lock::ForkMutex;
use weft_platform::*;

use crate::ffi::callback::{host_call, may_unwind};
use crate::ffi::error::{check_plugin, clear_plugin_detail, fail, Result};
use crate::ffi::handle::{Handle, Lifetime};
use crate::ffi::refs;
use crate::ffi::shell::ShellPool;
use crate::plugin::plat_call;
use crate::runtime::chan::Channel;
use crate::runtime::context::{self, Context};
use crate::runtime::group::Group;
use crate::runtime::safepoint;
use crate::runtime::Runtime;
use crate::types::weft_task_t;

/// The shell behind a `weft_task_t *`.
#[repr(C)]
pub(crate) struct Task {
    tag: AtomicU32,
    /// Who has the host's handle: HANDLE_LIVE, _JOINING (a join waits) or _GONE.
    handle: AtomicU32,
    /// The host, the running task, and the calls through the handle in flight (see the
    /// module comment).
    owners: AtomicUsize,
    /// `storage` while the shell is live; NULL once its last owner let go.
    state: AtomicPtr<TaskState>,
    storage: UnsafeCell<MaybeUninit<TaskState>>,
    /// The context of the shell's last task, unshared, kept for its next one.
    spare_context: UnsafeCell<Option<Arc<Context>>>,
}

// SAFETY: `storage` is written only by `spawn`, on a shell nobody else holds (taken from
// the pool, or new), and dropped only by the last owner; in between it is read through
// `state`, and everything in it that changes is atomic or locked. `spare_context` is
// touched only by `spawn` and by the last owner, in that same hand-over.
unsafe impl Sync for Task {}
// SAFETY: as for Sync.
unsafe impl Send for Task {}

/// A task's state while its shell is live.
struct TaskState {
    /// Taken out, not dropped, when the state is (`Task::drop_state`).
    ctx: ManuallyDrop<Arc<Context>>,
    rt: &'static Runtime,
    func: unsafe extern "C-unwind" fn(*mut c_void, *mut *mut c_void) -> i32,
    arg: *mut c_void,
    code: AtomicI32,
    result: AtomicPtr<c_void>,
    /// The plugin's handle; NULL once released (`release_handle`).
    plat: ForkMutex<*mut weft_plat_task_t>,
    /// Cancels using the plugin's handle now. The plugin's cancel runs outside the
    /// `plat` lock (on a platform that switches tasks inside it, sim, another task may
    /// join meanwhile), so `release_handle` waits for them before it gives the handle
    /// back to the plugin.
    cancels: AtomicU32,
    /// Channels to close with the task's code when it ends (`weft_task_link_chan`), each
    /// with a reference the task holds; None once the task has ended.
    linked: ForkMutex<Option<Vec<&'static Channel>>>,
    /// The group the task belongs to, told when the task fails.
    group: Option<&'static Group>,
}

// SAFETY: `arg` is the host's, handed to the task by design; the rest is synchronised.
unsafe impl Send for TaskState {}
// SAFETY: as for Send.
unsafe impl Sync for TaskState {}

const TASK_TAG: u32 = 0x5754_534b;
const TASK_GONE: u32 = 0x5754_5846;
const HANDLE_LIVE: u32 = 0;
const HANDLE_JOINING: u32 = 1;
const HANDLE_GONE: u32 = 2;

impl Handle for Task {
    const KIND: &'static str = "task";
    const LIVE: &'static [u32] = &[TASK_TAG];
    const DEAD: u32 = TASK_GONE;
    const DEAD_REASON: &'static str = "was already joined or detached";
    const LIFETIME: Lifetime = Lifetime::Shell;
    fn tag(&self) -> &AtomicU32 {
        &self.tag
    }
}

static SHELLS: ShellPool<Task> = ShellPool::new();

/// Contexts kept by pooled shells for their next task: at most this many (the shells
/// themselves are never freed, and a burst of a million tasks would otherwise keep a
/// million contexts too).
const MAX_SPARE_CONTEXTS: usize = 16384;
static SPARE_CONTEXTS: AtomicUsize = AtomicUsize::new(0);

/// The shell pool's lock (see `fork`).
pub(crate) fn shells_lock() -> &'static weft_platform::fork_lock::RawForkLock {
    SHELLS.raw_lock()
}

/// What `weft_spawn` asks for, checked.
pub(crate) struct SpawnRequest {
    pub(crate) func: unsafe extern "C" fn(*mut c_void, *mut *mut c_void) -> i32,
    pub(crate) arg: *mut c_void,
    pub(crate) name: Option<CString>,
    pub(crate) stack_size: usize,
    pub(crate) detached: bool,
    /// The group the task is spawned into (`weft_group_spawn`).
    pub(crate) group: Option<&'static Group>,
}

/// What `Task::spawn` started.
pub(crate) struct Spawned {
    /// The handle; None for a detached task.
    pub(crate) task: Option<&'static Task>,
    pub(crate) id: u64,
}

impl Task {
    fn state(&self) -> &TaskState {
        // SAFETY: a live shell's state lives until its last owner lets go, and the
        // caller is one of the owners (the host through its handle, or the task).
        unsafe { &*self.state.load(Acquire) }
    }

    /// Drops the state of a shell whose last owner let go, keeping its context for the
    /// shell's next task if nobody else holds it (a collector's view of the registry
    /// may, for a while).
    fn drop_state(&self) {
        let state = self.state.swap(ptr::null_mut(), AcqRel);
        // SAFETY: written by `spawn`; the last owner is the only user left, and the
        // pointer, now NULL, is not read again until the next spawn writes a new state.
        // The context is taken out once, before the rest is dropped.
        let mut ctx = unsafe {
            let ctx = ManuallyDrop::take(&mut (*state).ctx);
            ptr::drop_in_place(state);
            ctx
        };
        if Arc::get_mut(&mut ctx).is_none() {
            return;
        }
        if SPARE_CONTEXTS.fetch_add(1, Relaxed) < MAX_SPARE_CONTEXTS {
            // SAFETY: see the Sync impl: the last owner, before the shell goes back.
            unsafe { *self.spare_context.get() = Some(ctx) };
        } else {
            SPARE_CONTEXTS.fetch_sub(1, Relaxed);
        }
    }

    /// A context for a new task of this shell: the spare one, made new, or a new one.
    fn new_context(&self, name: Option<CString>) -> Arc<Context> {
        let fresh = Context::new(name, self.as_handle());
        // SAFETY: see the Sync impl: `spawn`, on a shell nobody else holds.
        match unsafe { (*self.spare_context.get()).take() } {
            Some(mut ctx) => {
                SPARE_CONTEXTS.fetch_sub(1, Relaxed);
                // Nobody else can have got hold of it since it was checked unshared.
                *Arc::get_mut(&mut ctx).expect("a spare context is unshared") = fresh;
                ctx
            }
            None => Arc::new(fresh),
        }
    }

    pub(crate) fn as_handle(&self) -> *mut weft_task_t {
        self as *const Task as *mut weft_task_t
    }

    /// The task's id, for a caller that owns the shell or has pinned it.
    fn owned_id(&self) -> u64 {
        self.state().ctx.id
    }

    /// The task's id, through a handle: the host's, or `weft_task_self`'s (a detached
    /// task's own too), while the task's state lives.
    pub(crate) fn id(&'static self) -> Result<u64> {
        let _pin = self.pin()?;
        Ok(self.owned_id())
    }

    /// Starts a task; its handle (None for a detached one) and its id.
    pub(crate) fn spawn(rt: &'static Runtime, req: SpawnRequest) -> Result<Spawned> {
        rt.begin_task()?;
        // A task's failures go to its own weft_last_error() text from its first call on.
        crate::ffi::error::install_task_errors(crate::runtime::context::task_last_error);
        let shell = SHELLS.take(|| Task {
            tag: AtomicU32::new(0),
            handle: AtomicU32::new(HANDLE_LIVE),
            owners: AtomicUsize::new(0),
            state: AtomicPtr::new(ptr::null_mut()),
            storage: UnsafeCell::new(MaybeUninit::uninit()),
            spare_context: UnsafeCell::new(None),
        });
        let state = TaskState {
            ctx: ManuallyDrop::new(shell.new_context(req.name.clone())),
            rt,
            func: may_unwind!(req.func, fn(*mut c_void, *mut *mut c_void) -> i32),
            arg: req.arg,
            code: AtomicI32::new(0),
            result: AtomicPtr::new(ptr::null_mut()),
            plat: ForkMutex::new(ptr::null_mut()),
            cancels: AtomicU32::new(0),
            linked: ForkMutex::new(Some(Vec::new())),
            group: req.group,
        };
        // SAFETY: the shell is ours alone (see the Sync impl), its previous state dropped.
        let state: *mut TaskState = unsafe { (*shell.storage.get()).write(state) };
        // A detached task's handle is given up from the start: the task may run before
        // the spawn returns, and its `weft_cancel(weft_task_self())` must not depend on
        // whether it did.
        shell.handle.store(if req.detached { HANDLE_GONE } else { HANDLE_LIVE }, Relaxed);
        shell.owners.store(2, Relaxed);
        shell.state.store(state, Relaxed);
        shell.tag.store(TASK_TAG, Release);
        let plat_opts = weft_plat_spawn_t {
            struct_size: std::mem::size_of::<weft_plat_spawn_t>() as u32,
            stack_size: crate::runtime::stack::effective_stack_size(req.stack_size),
            name: req.name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
            id: shell.state().ctx.id,
        };
        let mut plat = ptr::null_mut();
        // No lock is held across the plugin's spawn: a platform may run the new task
        // before spawn returns (on this very thread, for a coroutine platform), and
        // other tasks may reach it meanwhile (the registry, the hooks): see the cancel
        // below.
        let ctx_for_plugin = shell as *const Task as *mut c_void;
        shell.state().ctx.start_arg.store(req.arg as usize, SeqCst);
        safepoint::task_spawning(rt, &shell.state().ctx);
        let status = plat_call!(rt.table, spawn(rt.prt, ctx_for_plugin, &plat_opts, &mut plat));
        if status != WEFT_OK {
            safepoint::spawn_failed(rt, &shell.state().ctx);
            // The task's owner and the host's let go, one by one: a call through the
            // handle the registry handed out meanwhile (`weft_tasks_foreach`) may hold
            // a pin, and keeps the state until it drops (a store of the count freed the
            // state under that call).
            shell.handle.store(HANDLE_GONE, SeqCst);
            shell.let_go();
            shell.let_go();
            rt.end_task();
            check_plugin(status, || "the platform could not start the task".into())?;
            fail!(WEFT_EINTERNAL, "the platform failed without a status");
        }
        *shell.state().plat.lock() = plat;
        // A cancel that came before the platform's handle was stored (the registry and
        // the task hooks hand the task out from its spawn on) set the flag but could
        // wake nothing: wake it now. Either that cancel found the handle under the lock,
        // or its flag, set before it took the lock, is seen here.
        if shell.state().ctx.cancelled.load(SeqCst) {
            // The spawn itself succeeded: its result stands whatever this wake-up says
            // (the flag is set, and the task's next cancellation point sees it).
            let _ = plat_call!(rt.table, cancel(plat));
        }
        let id = shell.owned_id();
        if req.detached {
            shell.release_handle();
            return Ok(Spawned { task: None, id });
        }
        Ok(Spawned { task: Some(shell), id })
    }

    /// Adds an owner (a group keeps the shell until it has joined the task).
    pub(crate) fn retain(&self) {
        self.owners.fetch_add(1, AcqRel);
    }

    /// Gives back the owner added by `retain`.
    pub(crate) fn release_extra(&'static self) {
        self.let_go();
    }

    /// One owner lets go; the last frees the state and retires the shell.
    fn let_go(&'static self) {
        if self.owners.fetch_sub(1, AcqRel) != 1 {
            return;
        }
        self.tag.store(TASK_GONE, Release);
        self.drop_state();
        SHELLS.give_back(self);
    }

    /// Keeps the state for a call through the host's handle, which another thread may
    /// join or detach meanwhile (the joiner's last `let_go` would free the state under
    /// the call): one more owner, added only while the shell has one, so a shell whose
    /// last owner let go is not revived (`WEFT_EINVAL`, the handle was given up). Given
    /// back when the pin drops, by `let_go`, which frees the state if the others let go
    /// meanwhile. (A handle used after its join returned may meet the shell's next task:
    /// shells are pooled; the header says not to.)
    fn pin(&'static self) -> Result<Pin> {
        if !refs::retain(&self.owners) {
            fail!(WEFT_EINVAL, "task {:p} was already joined or detached", self);
        }
        Ok(Pin(self))
    }

    /// `pin`, for a call that needs the host's handle still held (not given up by a
    /// join or detach): `WEFT_EINVAL` otherwise.
    fn pin_held_handle(&'static self) -> Result<Pin> {
        let pin = self.pin()?;
        if self.handle.load(SeqCst) == HANDLE_GONE {
            fail!(WEFT_EINVAL, "task {} was already joined or detached: its handle was given up", self.owned_id());
        }
        Ok(pin)
    }

    /// Takes the host's handle for a join or a detach; only one may have it.
    fn claim_handle(&self, to: u32) -> Result<()> {
        match self.handle.compare_exchange(HANDLE_LIVE, to, SeqCst, SeqCst) {
            Ok(_) => Ok(()),
            Err(HANDLE_JOINING) => fail!(WEFT_EINVAL, "task {} is being joined by another thread", self.owned_id()),
            Err(_) => fail!(WEFT_EINVAL, "task {} was already joined or detached", self.owned_id()),
        }
    }

    /// Releases the plugin's handle and the host's ownership (claimed by the caller).
    fn release_handle(&'static self) {
        let state = self.state();
        let plat = std::mem::replace(&mut *state.plat.lock(), ptr::null_mut());
        if !plat.is_null() {
            // A cancel that read the handle before it was taken above counted itself
            // first; it returns at once by contract.
            while state.cancels.load(SeqCst) != 0 {
                plat_call!(state.rt.table, r#yield(state.rt.prt));
            }
            plat_call!(state.rt.table, detach(plat));
            clear_plugin_detail();
        }
        self.handle.store(HANDLE_GONE, SeqCst);
        self.let_go();
    }

    /// Waits for the task; on success its code and result, and the handle is consumed.
    /// `by` says whose handle it is: a group's task is joined by its group only.
    pub(crate) fn join(&'static self, deadline: i64, by: Joiner) -> Result<(i32, *mut c_void)> {
        let _pin = self.pin()?;
        if by == Joiner::Handle {
            self.refuse_groups_task("joined")?;
        }
        let state = self.state();
        if context::current_if_any().is_some_and(|c| c.id == state.ctx.id) {
            fail!(WEFT_EDEADLK, "task {} cannot join itself", state.ctx.id);
        }
        // Only a join without deadline can deadlock; a refused one leaves the handle.
        let checks = &state.rt.checks;
        let watched = checks.on() && deadline == WEFT_FOREVER;
        let me = context::current();
        if watched {
            checks.wait_for_task(me, state.ctx.id)?;
        }
        if let Err(e) = self.claim_handle(HANDLE_JOINING) {
            if watched {
                checks.done_waiting(me);
            }
            return Err(e);
        }
        let plat = *state.plat.lock();
        let status = plat_call!(state.rt.table, join(plat, deadline));
        if watched {
            checks.done_waiting(me);
        }
        if status != WEFT_OK {
            self.handle.store(HANDLE_LIVE, SeqCst);
            let id = state.ctx.id;
            check_plugin(status, || match status {
                WEFT_ETIMEDOUT => format!("task {id} did not finish before the deadline"),
                WEFT_ECANCELED => format!("the caller was cancelled while joining task {id}"),
                _ => format!("cannot join task {id}"),
            })?;
        }
        let outcome = (state.code.load(Acquire), state.result.load(Relaxed));
        self.release_handle();
        Ok(outcome)
    }

    /// Gives up the host's handle; the task runs on. Not a group's task (see `join`).
    pub(crate) fn detach(&'static self) -> Result<()> {
        let _pin = self.pin()?;
        self.refuse_groups_task("detached")?;
        self.claim_handle(HANDLE_GONE)?;
        self.release_handle();
        Ok(())
    }

    /// `WEFT_EINVAL` for a task of a group, whose handle is the group's: the host can
    /// still reach it (`weft_task_self` in the task, the task hooks, the registry), and a
    /// join or detach through it would leave the group a task it can never join, so
    /// that its wait and its free failed for ever.
    fn refuse_groups_task(&self, what: &str) -> Result<()> {
        if let Some(group) = self.state().group {
            fail!(
                WEFT_EINVAL,
                "task {} belongs to group {:p}, which joins it: its handle cannot be {what} (weft_group_wait)",
                self.owned_id(),
                group
            );
        }
        Ok(())
    }

    /// Closes `chan` with the task's return code when the task ends (at once if it has
    /// ended). The task keeps a reference on the channel until then.
    pub(crate) fn link_chan(&'static self, chan: &'static Channel) -> Result<()> {
        let _pin = self.pin_held_handle()?;
        let state = self.state();
        if !std::ptr::eq(chan.runtime(), state.rt) {
            // The task would close it at its end, maybe after the channel's runtime
            // closed, which a close on that runtime is refused for.
            fail!(WEFT_EINVAL, "channel {:p} belongs to another runtime than task {}", chan, self.owned_id());
        }
        chan.retain()?;
        let mut linked = state.linked.lock();
        match linked.as_mut() {
            Some(list) => {
                list.push(chan);
                Ok(())
            }
            None => {
                drop(linked);
                let closed = chan.close(state.code.load(Acquire));
                let released = chan.release();
                closed.and(released)
            }
        }
    }

    /// Marks the task cancelled and wakes it if it waits in a cancellation point.
    pub(crate) fn cancel(&'static self) -> Result<()> {
        let _pin = self.pin_held_handle()?;
        let state = self.state();
        // Before the flag: a cancel the platform refused would still have cancelled.
        state.rt.check_runs_caller()?;
        state.ctx.cancelled.store(true, SeqCst);
        state.cancels.fetch_add(1, SeqCst);
        let plat = *state.plat.lock();
        let status = if plat.is_null() { WEFT_OK } else { plat_call!(state.rt.table, cancel(plat)) };
        state.cancels.fetch_sub(1, SeqCst);
        check_plugin(status, || format!("cannot wake task {}", state.ctx.id))
    }
}

/// An owner of a task's shell added by `Task::pin`, given back when dropped.
struct Pin(&'static Task);

/// A task's shell held for a visitor of the registry (`weft_tasks_foreach`), so that the
/// handle it is given names that task for the whole call: without it, a task that
/// ended and was joined meanwhile gave its shell to the next spawn, and the visitor's
/// `weft_cancel(info->task)` cancelled another task.
pub(crate) struct RegistryHold(#[allow(dead_code)] Pin);

/// Holds the shell of the task whose context is `ctx`, if that task still owns it;
/// None for a context that is no task's, or whose task's shell was given up.
pub(crate) fn hold_for_registry(ctx: &crate::runtime::context::Context) -> Option<RegistryHold> {
    let shell = ctx.task_handle() as *const Task;
    // SAFETY: a task's context points to its shell, and shells are never freed (they
    // are pooled: a stale one still reads a count).
    let shell: &'static Task = unsafe { shell.as_ref() }?;
    let pin = shell.pin().ok()?;
    (shell.state().ctx.id == ctx.id).then_some(RegistryHold(pin))
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.0.let_go();
    }
}

/// The host service `task_run`: runs one task to its end on the calling context.
///
/// # Safety
/// `ctx` is what `Task::spawn` handed the plugin, used once.
pub(crate) unsafe fn run(ctx: *mut c_void) {
    // SAFETY: a live shell (see above); the running task is one of its owners.
    let shell: &'static Task = unsafe { &*(ctx as *const Task) };
    let state = shell.state();
    let rt = state.rt;
    let previous = context::enter(Arc::as_ptr(&state.ctx));
    let handle = shell.as_handle();
    // Nothing here may unwind into the plugin; a panic in weft's own bookkeeping still
    // ends the task and releases the runtime.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        safepoint::task_started(rt, &state.ctx);
        if let Some(hook) = rt.on_task_start {
            let hook = may_unwind!(hook, fn(*mut weft_task_t, *mut c_void));
            // SAFETY: the host's hook, called as documented.
            host_call("the on_task_start hook", || unsafe { hook(handle, rt.hook_ud) });
        }
        let mut result = ptr::null_mut();
        // From here the argument is the function's, on the task's stack or in its
        // registers, where a collector finds it.
        state.ctx.start_arg.store(0, SeqCst);
        let what = if state.group.is_some() { "a group's task function" } else { "a task function" };
        // SAFETY: the host's task function with the host's argument.
        let code = host_call(what, || unsafe { (state.func)(state.arg, &mut result) });
        if let (Some(group), true) = (state.group, code != 0) {
            group.task_failed(code);
        }
        state.result.store(result, Relaxed);
        state.code.store(code, Release);
        // Out of any region the function left open first (waiting for a stop in force
        // to end): the releases below may run the host's `elem_drop`, host code that
        // must not run while a collector holds the world.
        safepoint::leave_open_regions(&state.ctx);
        // Receivers on a linked channel learn that the task ended, and with what code.
        for chan in state.linked.lock().take().unwrap_or_default() {
            let _ = chan.close(code);
            let _ = chan.release();
        }
        if let Some(hook) = rt.on_task_exit {
            let hook = may_unwind!(hook, fn(*mut weft_task_t, *mut c_void));
            // SAFETY: as above.
            host_call("the on_task_exit hook", || unsafe { hook(handle, rt.hook_ud) });
        }
        state.ctx.run_slot_destructors();
    }));
    safepoint::context_ending(&state.ctx);
    context::enter(previous);
    shell.let_go();
    rt.end_task();
}

/// Renames the caller (task or thread) and, where the caller is an OS thread of its own
/// (a host thread, or a task of a platform whose tasks are OS threads), the thread too.
pub(crate) fn rename_current(name: CString) {
    let ctx = context::current();
    let own_thread = ctx.task.is_null()
        || crate::runtime::safepoint::caller_runtime().is_some_and(|rt| rt.table.caps & WEFT_CAP_OS_THREADS != 0);
    if own_thread {
        // The kernel keeps 15 bytes; cut on a character boundary.
        let text = name.to_string_lossy();
        let mut len = text.len().min(15);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        if let Ok(short) = CString::new(&text.as_bytes()[..len]) {
            // SAFETY: the calling thread's own handle and a NUL-terminated name.
            unsafe { libc::pthread_setname_np(libc::pthread_self(), short.as_ptr()) };
        }
    }
    ctx.set_name(name);
}

/// The calling task's handle, or NULL on a thread that is not a weft task.
pub(crate) fn current_handle() -> *mut weft_task_t {
    context::current_if_any().map_or(ptr::null_mut(), |c| c.task_handle())
}

/// Who joins a task: the holder of the handle `weft_spawn` gave out (the host, or
/// libweft for its own tasks), or the task's group.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Joiner {
    Handle,
    Group,
}

/// The group the calling task belongs to, if any.
pub(crate) fn current_group() -> Option<&'static Group> {
    // The running task is an owner of its own shell (see `state`), which stays its own
    // while it runs.
    crate::ffi::handle::probe::<Task>(current_handle().cast()).and_then(|task| task.state().group)
}

/// Whether the calling task has been cancelled (false on a host thread).
pub(crate) fn current_cancelled() -> bool {
    context::current_if_any().is_some_and(|c| c.is_cancelled())
}
