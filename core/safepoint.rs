//! Mutators, safepoints, stop-the-world and blocking regions.
//!
//! Every weft task is a mutator from start to exit; a host thread becomes one with
//! `weft_thread_attach`. A mutator is RUNNING, AT_SAFEPOINT (parked by a safepoint or a
//! stop request) or BLOCKING (in a blocking region: inside a weft wait, or where the host
//! said it will not touch managed memory). A stop-the-world sets the world's flag and
//! waits until no other mutator is RUNNING.
//!
//! The protocol is two Dekker pairs, all SeqCst: the requester stores the flag and then
//! reads the states; a mutator stores its state and then reads the flag. So a mutator
//! leaving a blocking region either is seen RUNNING by the requester (which waits for it)
//! or sees the flag (and parks before running managed code). The same holds for
//! registration: a new mutator pushes itself and then reads the flag.
use std::ffi::{c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;

use parking_lot::Mutex;
use weft_platform::*;

use crate::context::{self, Context};
use crate::error::{ffi, ffi_value, fail, Result};
use crate::internal_lock::InternalLock;
use crate::runtime::{any_runtime, open_runtime, weft_runtime_t};
use crate::task::weft_task_t;

/// The mutator runs managed code (or may at any moment).
pub const WEFT_TASK_RUNNING: u32 = 0;
/// The mutator is parked at a safepoint.
pub const WEFT_TASK_AT_SAFEPOINT: u32 = 1;
/// The mutator is in a blocking region and will not touch managed memory until it
/// leaves it (and leaving waits while the world is stopped).
pub const WEFT_TASK_BLOCKING: u32 = 2;

/// What `weft_tasks_foreach` tells about one mutator. Borrowed: valid during the
/// callback only.
#[repr(C)]
pub struct weft_task_info_t {
    /// `sizeof(weft_task_info_t)` of the library that filled it.
    pub struct_size: u32,
    /// `WEFT_TASK_RUNNING`, `WEFT_TASK_AT_SAFEPOINT` or `WEFT_TASK_BLOCKING`.
    pub state: u32,
    /// The task's id (as `weft_task_id`), or the attached thread's id.
    pub id: u64,
    /// The task's name, or NULL.
    pub name: *const std::ffi::c_char,
    /// The task, or NULL for an attached host thread.
    pub task: *mut weft_task_t,
    /// The mutator's task-local values: `locals[k - 1]` is the value of key `k` when
    /// `k <= nlocals`, NULL otherwise. Stable only while the world is stopped.
    pub locals: *const *mut c_void,
    /// Number of entries in `locals`.
    pub nlocals: usize,
}

/// Called once per live mutator; return non-zero to stop the enumeration.
pub type weft_task_visit_fn = Option<unsafe extern "C" fn(ud: *mut c_void, info: *const weft_task_info_t) -> c_int>;

/// The mutator side of a context.
#[derive(Default)]
pub(crate) struct Mutator {
    /// The runtime this context is a mutator of; NULL if none.
    rt: AtomicPtr<weft_runtime_t>,
    state: AtomicU32,
    blocking_depth: AtomicU32,
    attach_depth: AtomicU32,
    /// Non-zero while the runtime waits on its own behalf: the host hooks the plugin
    /// calls are then no-ops and cancellation is masked.
    internal: AtomicU32,
}

impl Mutator {
    pub(crate) fn is_internal_wait(&self) -> bool {
        self.internal.load(Relaxed) != 0
    }

    fn runtime(&self) -> *const weft_runtime_t {
        self.rt.load(SeqCst)
    }
}

/// Masks hooks and cancellation while the runtime waits for itself.
struct InternalWait<'a>(&'a Mutator);

impl<'a> InternalWait<'a> {
    fn new(m: &'a Mutator) -> Self {
        m.internal.fetch_add(1, Relaxed);
        InternalWait(m)
    }
}

impl Drop for InternalWait<'_> {
    fn drop(&mut self) {
        self.0.internal.fetch_sub(1, Relaxed);
    }
}

/// A runtime's stop-the-world state.
pub(crate) struct World {
    /// The word the inline poll reads: non-zero while a stop is requested or in force.
    pub(crate) flag: AtomicU32,
    /// Id of the context that holds the stopped world; 0 = none.
    owner: AtomicU64,
    registry: Mutex<Vec<Arc<Context>>>,
    lock: Mutex<Option<InternalLock>>,
}

impl World {
    pub(crate) fn new(table: &'static weft_platform_t, prt: *mut weft_plat_rt_t) -> Result<World> {
        Ok(World {
            flag: AtomicU32::new(0),
            owner: AtomicU64::new(0),
            registry: Mutex::new(Vec::new()),
            lock: Mutex::new(Some(InternalLock::new(table, prt)?)),
        })
    }

    fn with_lock<R>(&self, f: impl FnOnce(&InternalLock) -> R) -> R {
        // The Option is only emptied at close, when no mutator is left to call this;
        // the parking_lot guard is held only to read the pointer.
        let lock: *const InternalLock = self.lock.lock().as_ref().expect("runtime world used after close");
        // SAFETY: see above: the InternalLock outlives every mutator of the runtime.
        f(unsafe { &*lock })
    }

    /// Wakes everyone waiting on the world (the requester re-checks, parked mutators
    /// re-check the owner).
    fn notify(&self) {
        self.with_lock(|l| {
            l.lock();
            l.broadcast();
            l.unlock();
        });
    }

    /// For close: fails if a mutator other than the caller is still registered; drops
    /// the caller's own attachment.
    pub(crate) fn close_registry(&self) -> Result<()> {
        let me = context::current_if_any().map(|c| c.id);
        let mut registry = self.registry.lock();
        let others = registry.iter().filter(|c| Some(c.id) != me).count();
        if others > 0 {
            fail!(WEFT_EBUSY, "{others} attached thread(s) must call weft_thread_detach first");
        }
        for ctx in registry.drain(..) {
            ctx.mutator.rt.store(ptr::null_mut(), SeqCst);
            ctx.mutator.attach_depth.store(0, SeqCst);
            ctx.mutator.blocking_depth.store(0, SeqCst);
        }
        Ok(())
    }

    /// For close: frees the platform objects (no mutator is left).
    pub(crate) fn release(&self) {
        self.lock.lock().take();
    }
}

/// Adds `ctx` as a mutator of `rt`; parks it at once if the world is stopped.
pub(crate) fn register(rt: &'static weft_runtime_t, ctx: &Arc<Context>) {
    ctx.mutator.state.store(WEFT_TASK_RUNNING, SeqCst);
    ctx.mutator.rt.store(rt as *const _ as *mut _, SeqCst);
    rt.world.registry.lock().push(Arc::clone(ctx));
    if rt.world.flag.load(SeqCst) != 0 {
        park(rt, ctx);
    }
}

/// Removes `ctx` from `rt`'s mutators; a waiting requester no longer waits for it.
pub(crate) fn unregister(rt: &weft_runtime_t, ctx: &Context) {
    rt.world.registry.lock().retain(|c| c.id != ctx.id);
    ctx.mutator.rt.store(ptr::null_mut(), SeqCst);
    ctx.mutator.attach_depth.store(0, SeqCst);
    ctx.mutator.blocking_depth.store(0, SeqCst);
    if rt.world.flag.load(SeqCst) != 0 {
        rt.world.notify();
    }
}

/// Parks `ctx` while another context holds (or requests) the stopped world.
fn park(rt: &weft_runtime_t, ctx: &Context) {
    let _internal = InternalWait::new(&ctx.mutator);
    rt.world.with_lock(|l| {
        l.lock();
        ctx.mutator.state.store(WEFT_TASK_AT_SAFEPOINT, SeqCst);
        l.broadcast();
        loop {
            let owner = rt.world.owner.load(SeqCst);
            if rt.world.flag.load(SeqCst) == 0 || owner == ctx.id {
                break;
            }
            l.wait_until(WEFT_FOREVER);
        }
        ctx.mutator.state.store(WEFT_TASK_RUNNING, SeqCst);
        l.unlock();
    });
}

fn blocking_begin(rt: &weft_runtime_t, ctx: &Context) {
    if ctx.mutator.blocking_depth.fetch_add(1, SeqCst) == 0 {
        ctx.mutator.state.store(WEFT_TASK_BLOCKING, SeqCst);
        if rt.world.flag.load(SeqCst) != 0 {
            rt.world.notify();
        }
    }
}

fn blocking_end(rt: &weft_runtime_t, ctx: &Context) {
    if ctx.mutator.blocking_depth.fetch_sub(1, SeqCst) == 1 {
        ctx.mutator.state.store(WEFT_TASK_RUNNING, SeqCst);
        if rt.world.flag.load(SeqCst) != 0 && rt.world.owner.load(SeqCst) != ctx.id {
            park(rt, ctx);
        }
    }
}

/// The `blocking_enter` host service: a no-op for a context that is not a mutator or
/// that waits on the runtime's own behalf.
pub(crate) fn enter_blocking_from_plugin(ctx: &Context) {
    // SAFETY: runtimes are never freed.
    if let Some(rt) = unsafe { ctx.mutator.runtime().as_ref() } {
        if !ctx.mutator.is_internal_wait() {
            blocking_begin(rt, ctx);
        }
    }
}

/// The `blocking_leave` host service.
pub(crate) fn leave_blocking_from_plugin(ctx: &Context) {
    // SAFETY: runtimes are never freed.
    if let Some(rt) = unsafe { ctx.mutator.runtime().as_ref() } {
        if !ctx.mutator.is_internal_wait() && ctx.mutator.blocking_depth.load(SeqCst) > 0 {
            blocking_end(rt, ctx);
        }
    }
}

/// The runtime the calling context is a mutator of (a task's, or an attached thread's).
pub(crate) fn caller_runtime() -> Option<&'static weft_runtime_t> {
    // SAFETY: runtimes are never freed.
    context::current_if_any().and_then(|ctx| unsafe { ctx.mutator.runtime().as_ref() })
}

/// A host thread is exiting: it stops being a mutator.
pub(crate) fn thread_exiting(ctx: &Context) {
    // SAFETY: runtimes are never freed.
    if let Some(rt) = unsafe { ctx.mutator.runtime().as_ref() } {
        unregister(rt, ctx);
    }
}

/// The calling context, which must be a mutator of `rt`.
fn mutator_of(rt: &weft_runtime_t) -> Result<&'static Context> {
    match context::current_if_any() {
        Some(ctx) if ctx.mutator.runtime() == rt as *const _ => Ok(ctx),
        _ => fail!(WEFT_EPERM, "the calling thread is not a mutator of this runtime (not a weft task, not attached)"),
    }
}

/// Makes the calling host thread a mutator of `rt` until `weft_thread_detach`: a
/// stop-the-world then waits for it to reach a safepoint or a blocking region. Attaching
/// again to the same runtime is counted (each attach needs its detach); from a weft task
/// of `rt`, it is counted too. A thread is a mutator of one runtime at a time
/// (`WEFT_EBUSY` for a second). If the world is stopped, returns once it resumes.
#[no_mangle]
pub unsafe extern "C" fn weft_thread_attach(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_thread_attach", || {
        let rt = open_runtime(rt)?;
        let ctx = context::current();
        let current = ctx.mutator.runtime();
        if current == rt as *const _ {
            ctx.mutator.attach_depth.fetch_add(1, SeqCst);
            return Ok(());
        }
        if !current.is_null() {
            fail!(WEFT_EBUSY, "the calling thread is already a mutator of another runtime");
        }
        let Some(arc) = context::thread_context_arc() else {
            fail!(WEFT_EINTERNAL, "a context without a runtime is not a host thread's");
        };
        ctx.mutator.attach_depth.store(1, SeqCst);
        register(rt, &arc);
        Ok(())
    })
}

/// Ends one `weft_thread_attach` of the calling thread; the last one makes it stop being
/// a mutator. `WEFT_EINVAL` if the thread is not attached to `rt` (a task's own
/// membership cannot be detached); `WEFT_EBUSY` inside a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_thread_detach(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_thread_detach", || {
        let rt = any_runtime(rt)?;
        let ctx = match context::current_if_any() {
            Some(ctx) if ctx.mutator.runtime() == rt as *const _ && ctx.mutator.attach_depth.load(SeqCst) > 0 => ctx,
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

/// A safepoint: if a stop-the-world is requested or in force, parks the calling mutator
/// until it ends; otherwise returns at once. `WEFT_EPERM` if the caller is not a mutator
/// of `rt`. The inline `WEFT_SAFEPOINT_POLL` calls it only when the flag is set.
#[no_mangle]
pub unsafe extern "C" fn weft_safepoint(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_safepoint", || {
        let rt = open_runtime(rt)?;
        let ctx = mutator_of(rt)?;
        if rt.world.flag.load(SeqCst) != 0 && rt.world.owner.load(SeqCst) != ctx.id {
            park(rt, ctx);
        }
        Ok(())
    })
}

/// The address of `rt`'s safepoint word, for `WEFT_SAFEPOINT_POLL`: non-zero while a
/// stop-the-world is requested or in force. Owned by weft; valid for the life of the
/// process. NULL for an invalid runtime.
#[no_mangle]
pub unsafe extern "C" fn weft_safepoint_flag(rt: *mut weft_runtime_t) -> *const c_void {
    ffi_value("weft_safepoint_flag", ptr::null(), || Ok(&any_runtime(rt)?.world.flag as *const AtomicU32 as *const c_void))
}

/// Stops the world: returns `WEFT_OK` once every other mutator of `rt` is parked at a
/// safepoint or inside a blocking region; they stay so until `weft_stw_end`. The caller
/// (a mutator or not) keeps running. If another thread holds the world, the caller
/// parks as a mutator until it ends, then takes its turn. `WEFT_ETIMEDOUT` at the
/// deadline, with the world resumed and the names of the mutators that did not stop in
/// `weft_last_error()`. `WEFT_EDEADLK` if the caller already holds the world.
#[no_mangle]
pub unsafe extern "C" fn weft_stw_begin(rt: *mut weft_runtime_t, deadline: i64) -> weft_status_t {
    ffi("weft_stw_begin", || {
        let rt = open_runtime(rt)?;
        let me = context::current();
        let world = &rt.world;
        if world.owner.load(SeqCst) == me.id {
            fail!(WEFT_EDEADLK, "the calling thread already holds the stopped world");
        }
        let is_mutator = me.mutator.runtime() == rt as *const _;
        let _internal = InternalWait::new(&me.mutator);
        world.with_lock(|l| {
            l.lock();
            while world.owner.load(SeqCst) != 0 {
                if is_mutator {
                    me.mutator.state.store(WEFT_TASK_AT_SAFEPOINT, SeqCst);
                    l.broadcast();
                }
                if l.wait_until(deadline) == WEFT_ETIMEDOUT && world.owner.load(SeqCst) != 0 {
                    if is_mutator {
                        me.mutator.state.store(WEFT_TASK_RUNNING, SeqCst);
                    }
                    l.unlock();
                    fail!(WEFT_ETIMEDOUT, "another thread held the stopped world until the deadline");
                }
            }
            if is_mutator {
                me.mutator.state.store(WEFT_TASK_RUNNING, SeqCst);
            }
            world.owner.store(me.id, SeqCst);
            world.flag.store(1, SeqCst);
            loop {
                let running = still_running(world, me.id);
                if running.is_empty() {
                    break;
                }
                if l.wait_until(deadline) == WEFT_ETIMEDOUT {
                    let running = still_running(world, me.id);
                    if running.is_empty() {
                        break;
                    }
                    world.owner.store(0, SeqCst);
                    world.flag.store(0, SeqCst);
                    l.broadcast();
                    l.unlock();
                    fail!(WEFT_ETIMEDOUT, "{} mutator(s) did not reach a safepoint by the deadline: {}", running.len(), running.join(", "));
                }
            }
            l.unlock();
            Ok(())
        })
    })
}

/// Names of the mutators other than `me` that are still RUNNING.
fn still_running(world: &World, me: u64) -> Vec<String> {
    world
        .registry
        .lock()
        .iter()
        .filter(|c| c.id != me && c.mutator.state.load(SeqCst) == WEFT_TASK_RUNNING)
        .map(|c| match &c.name {
            Some(name) => format!("{} (id {})", name.to_string_lossy(), c.id),
            None => format!("id {}", c.id),
        })
        .collect()
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
        let _internal = InternalWait::new(&me.mutator);
        rt.world.with_lock(|l| {
            l.lock();
            rt.world.owner.store(0, SeqCst);
            rt.world.flag.store(0, SeqCst);
            l.broadcast();
            l.unlock();
        });
        Ok(())
    })
}

/// Enters a blocking region: until `weft_blocking_end`, the calling mutator promises not
/// to touch managed memory, and a stop-the-world does not wait for it. Nestable.
/// Every weft call that can block does this by itself. `WEFT_EPERM` if the caller is not
/// a mutator of `rt`.
#[no_mangle]
pub unsafe extern "C" fn weft_blocking_begin(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_blocking_begin", || {
        let rt = open_runtime(rt)?;
        blocking_begin(rt, mutator_of(rt)?);
        Ok(())
    })
}

/// Leaves the blocking region of the matching `weft_blocking_begin`. Leaving the
/// outermost one while the world is stopped waits until it resumes. `WEFT_EPERM` if the
/// caller is not a mutator of `rt` or not in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_blocking_end(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_blocking_end", || {
        let rt = open_runtime(rt)?;
        let ctx = mutator_of(rt)?;
        if ctx.mutator.blocking_depth.load(SeqCst) == 0 {
            fail!(WEFT_EPERM, "the calling thread is not in a blocking region");
        }
        blocking_end(rt, ctx);
        Ok(())
    })
}

/// Calls `fn(ud, info)` for every live mutator of `rt` (tasks and attached threads),
/// until it returns non-zero. Meant for a collector holding the stopped world; outside
/// one, states and slots may change while you read them. The callback may call weft.
#[no_mangle]
pub unsafe extern "C" fn weft_tasks_foreach(rt: *mut weft_runtime_t, visit: weft_task_visit_fn, ud: *mut c_void) -> weft_status_t {
    ffi("weft_tasks_foreach", || {
        let rt = open_runtime(rt)?;
        let Some(visit) = visit else { fail!(WEFT_EINVAL, "fn is NULL") };
        let snapshot: Vec<Arc<Context>> = rt.world.registry.lock().clone();
        for ctx in snapshot {
            let (locals, nlocals) = ctx.slots_view();
            let info = weft_task_info_t {
                struct_size: std::mem::size_of::<weft_task_info_t>() as u32,
                state: ctx.mutator.state.load(SeqCst),
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
