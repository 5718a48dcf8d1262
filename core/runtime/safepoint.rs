//! Mutators, safepoints, stop-the-world and blocking regions: the protocol. The exported
//! functions are in `api/vm.rs`.
//!
//! Every weft task is a mutator from start to exit; a host thread becomes one with
//! `weft_thread_attach`. A mutator's state is one word:
//! * RUNNING: it may run managed code at any moment;
//! * AT_SAFEPOINT: parked by the runtime (at a safepoint, behind another thread's stop
//!   while it requests its own, or on registration during a stop);
//! * BLOCKING: in a blocking region, where it promised not to touch managed memory;
//! * HELD: BLOCKING, and held there by the stop in force (reported as BLOCKING).
//!
//! The protocol:
//! * Only the mutator moves itself out of RUNNING: to BLOCKING by a store, to
//!   AT_SAFEPOINT under the world lock. A requester sets the flag under the world lock and
//!   scans: RUNNING means "wait", BLOCKING is compare-exchanged to HELD.
//! * A mutator leaves a blocking region with a compare-exchange BLOCKING -> RUNNING. Both
//!   sides update the same word, so either the mutator wins (the requester sees RUNNING
//!   and waits for it to poll) or the requester does (the exchange fails and the mutator
//!   waits until the stop ends). So no mutator is seen RUNNING while the world is
//!   stopped, not even for an instant, and none runs managed code then.
//! * Entering a region is a store of BLOCKING followed by a load of the flag, against the
//!   requester's store of the flag followed by its scan, all SeqCst (a Dekker pair):
//!   either the scan sees BLOCKING, or the mutator sees the flag and wakes the requester
//!   to scan again. A requester is never left waiting for a mutator that stopped.
//! * Parking, resuming and an attached thread's registration happen under the world
//!   lock, which the requester holds while it sets the flag and scans: a thread that
//!   attaches during a stop starts parked.
//! * A task is listed from its spawn, STARTING, and starts with a compare-exchange
//!   STARTING -> RUNNING, against the requester's STARTING -> STARTING_HELD in its scan
//!   (the pair of a blocking region's end): either it started before the scan, which
//!   waits for it to poll (it looks at the flag at once, and parks), or it waits for
//!   the stop's end. A task spawned after the scan holds itself: its spawn lists it,
//!   then looks at the flag (a Dekker pair with the requester's flag store and scan),
//!   and if a stop is requested or in force, moves it to STARTING_HELD under the world
//!   lock, which resuming holds too. So starting and exiting take no world lock
//!   unless a stop is requested.
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::Arc;

use weft_platform::fork_lock::ForkMutex;
use weft_platform::*;

use crate::types::{WEFT_TASK_AT_SAFEPOINT, WEFT_TASK_BLOCKING, WEFT_TASK_RUNNING, WEFT_TASK_STARTING};

use crate::ffi::error::{check_plugin, fail, Result};
use crate::plugin::plat_call;
use crate::runtime::context::{self, Context};
use crate::runtime::fork;
use crate::runtime::internal_lock::{Cond, InternalLock};
use crate::runtime::parked::{self, EntryWords, Frame, Parked};
use crate::runtime::Runtime;

/// BLOCKING, held there by the stop in force: leaving the region waits for its end.
/// Never reported (it reads BLOCKING), so apart from every public state.
const HELD: u32 = 16;
/// STARTING, held there by the stop: the task's start waits for its end. Reported as
/// STARTING.
const STARTING_HELD: u32 = 17;

/// The bit of the poll word (`World::flag`) that says a stop is requested or in force.
/// The platform may set another, `WEFT_SAFEPOINT_PREEMPT`, to have polling tasks call
/// its `preempt_point` (see `weft_safepoint`).
pub(crate) const STOP: u32 = 1;

/// The mutator side of a context.
#[derive(Default)]
pub(crate) struct Mutator {
    /// The runtime this context is a mutator of; NULL if none.
    rt: AtomicPtr<Runtime>,
    state: AtomicU32,
    /// Nesting of blocking regions (the host's and the plugin's). Only the context's
    /// own thread of execution reads or changes it while it is a mutator (a green task
    /// moves between workers through a run queue, which orders it), so a region's begin
    /// and end change it with a load and a store: a read-modify-write would be one more
    /// locked instruction on every wait.
    blocking_depth: AtomicU32,
    attach_depth: AtomicU32,
    /// Non-zero while the runtime waits on its own behalf: the host hooks the plugin
    /// calls are then no-ops and cancellation is masked.
    internal: AtomicU32,
    /// Non-zero while the context waits in a call that is no cancellation point but
    /// parks like one (`weft_once`): cancellation alone is masked (`CancelMask`), the
    /// wait stays a blocking region.
    cancel_masked: AtomicU32,
    /// How many runtimes' worlds this context holds stopped (each names it as its
    /// `World::owner`): a thread may stop several runtimes at once.
    holds: AtomicU32,
    /// Where the context sits in its runtime's registry (changed under the registry
    /// lock), so that leaving it is O(1) with 100,000s of green tasks.
    registry_index: AtomicUsize,
    /// Its stack and where it parked, for a conservative collector.
    pub(crate) parked: Parked,
}

impl Mutator {
    pub(crate) fn is_internal_wait(&self) -> bool {
        self.internal.load(Relaxed) != 0
    }

    /// Cancellation is masked: an internal wait, or a `CancelMask`.
    pub(crate) fn cancel_masked(&self) -> bool {
        self.is_internal_wait() || self.cancel_masked.load(Relaxed) != 0
    }

    fn runtime(&self) -> *const Runtime {
        self.rt.load(SeqCst)
    }

    /// Whether the mutator may record a new frame: not inside a blocking region, whose
    /// record is published (and whose frame encloses whatever runs inside it).
    fn may_record(&self) -> bool {
        self.blocking_depth.load(Relaxed) == 0
    }

    /// Records the calling function's frame (`Parked::record_here`, same rules) unless
    /// the mutator is inside a blocking region.
    #[inline(always)]
    fn record_here(&self, rt: &Runtime) {
        if self.may_record() {
            self.parked.record_here(rt);
        }
    }

    /// The state as `weft_task_info_t` reports it.
    fn public_state(&self) -> u32 {
        match self.state.load(SeqCst) {
            HELD => WEFT_TASK_BLOCKING,
            STARTING_HELD => WEFT_TASK_STARTING,
            state => state,
        }
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

/// Masks the cancellation of a context while it lives: its parks are no cancellation
/// points then (a cancelled task waiting for a `weft_once` to finish must sleep, not
/// spin on `WEFT_ECANCELED`), and stay blocking regions.
pub(crate) struct CancelMask<'a>(&'a Mutator);

impl<'a> CancelMask<'a> {
    pub(crate) fn new(m: &'a Mutator) -> Self {
        m.cancel_masked.fetch_add(1, Relaxed);
        CancelMask(m)
    }
}

impl Drop for CancelMask<'_> {
    fn drop(&mut self) {
        self.0.cancel_masked.fetch_sub(1, Relaxed);
    }
}

/// A runtime's stop-the-world state.
pub(crate) struct World {
    /// The word the inline poll reads: non-zero while a stop is requested or in force.
    /// Changed only under the world lock, together with `owner`.
    pub(crate) flag: AtomicU32,
    /// Id of the context that requests or holds the stop; 0 = none.
    owner: AtomicU64,
    /// The owner's `weft_stw_begin` succeeded and its `weft_stw_end` has not run yet.
    stopped: AtomicBool,
    registry: Registry,
    lock: InternalLock,
}

/// Every context a collector must know of: the mutators, and the tasks spawned and not
/// started yet (state STARTING, with their spawn argument). A task is listed from its
/// spawn to its exit: starting moves no entry, so a collector never misses it. The list
/// is in shards, each behind its own lock, a context in the shard of its id at its
/// `registry_index`: a spawn and another task's exit, on two threads at once, seldom
/// take the same lock (one lock was a cache line that every spawn and every exit
/// pulled over from the other CPU). A scan takes the shards one after the other; what
/// is listed meanwhile is what a scan under one lock would have missed too, listed
/// just after it (the Dekker pairs with the flag hold either way).
#[derive(Default)]
struct Registry {
    shards: [Shard; SHARDS],
}

const SHARDS: usize = 16;

#[derive(Default)]
#[repr(align(64))]
struct Shard(ForkMutex<Vec<Arc<Context>>>);

impl Registry {
    fn shard(&self, ctx: &Context) -> &ForkMutex<Vec<Arc<Context>>> {
        &self.shards[ctx.id as usize % SHARDS].0
    }

    fn add(&self, ctx: &Arc<Context>) {
        list_add(&mut self.shard(ctx).lock(), ctx);
    }

    fn remove(&self, ctx: &Context) {
        list_remove(&mut self.shard(ctx).lock(), ctx);
    }

    /// Calls `f` on every listed context, shard by shard, each under its lock.
    fn each(&self, mut f: impl FnMut(&Arc<Context>)) {
        for shard in &self.shards {
            shard.0.lock().iter().for_each(&mut f);
        }
    }
}

/// Adds `ctx` to `list` (registry lock held).
fn list_add(list: &mut Vec<Arc<Context>>, ctx: &Arc<Context>) {
    ctx.mutator.registry_index.store(list.len(), Relaxed);
    list.push(Arc::clone(ctx));
}

/// Removes `ctx` from `list` (registry lock held), O(1) by its index.
fn list_remove(list: &mut Vec<Arc<Context>>, ctx: &Context) {
    let index = ctx.mutator.registry_index.load(Relaxed);
    if list.get(index).is_some_and(|c| c.id == ctx.id) {
        list.swap_remove(index);
        if let Some(moved) = list.get(index) {
            moved.mutator.registry_index.store(index, Relaxed);
        }
    } else {
        list.retain(|c| c.id != ctx.id);
    }
}

/// Unlocks the world lock however the locked section ends.
struct Unlock<'a>(&'a InternalLock);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

impl World {
    pub(crate) fn new(table: &'static weft_platform_t, prt: *mut weft_plat_rt_t) -> Result<World> {
        Ok(World {
            flag: AtomicU32::new(0),
            owner: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            registry: Registry::default(),
            lock: InternalLock::new(table, prt)?,
        })
    }

    /// Runs `f` holding the world lock. The calling context's plugin hooks and
    /// cancellation are masked meanwhile: these waits are the runtime's own and set the
    /// mutator's state explicitly, and a cancelled task parked here must sleep, not spin
    /// on `WEFT_ECANCELED`.
    fn locked<R>(&self, f: impl FnOnce(&InternalLock) -> R) -> R {
        let _mask = context::current_if_any().map(|c| InternalWait::new(&c.mutator));
        self.lock.lock();
        let _unlock = Unlock(&self.lock);
        f(&self.lock)
    }

    /// Ends the stop (in force or requested), lock held: lets go of the mutators held
    /// in their blocking regions and wakes everyone parked.
    fn resume_locked(&self, l: &InternalLock) {
        self.stopped.store(false, SeqCst);
        self.owner.store(0, SeqCst);
        self.flag.fetch_and(!STOP, SeqCst);
        self.registry.each(|ctx| {
            let state = &ctx.mutator.state;
            let _ = state.compare_exchange(HELD, WEFT_TASK_BLOCKING, SeqCst, SeqCst);
            let _ = state.compare_exchange(STARTING_HELD, WEFT_TASK_STARTING, SeqCst, SeqCst);
        });
        l.broadcast(Cond::Resumed);
    }

    /// Scans the other mutators, lock held: holds every one found in a blocking region,
    /// and every task not started yet, and returns how many still run.
    fn hold_blocked_count_running(&self, me: u64) -> usize {
        let mut running = 0;
        self.registry.each(|ctx| {
            if ctx.id == me {
                return;
            }
            let state = &ctx.mutator.state;
            let stopped = match state.load(SeqCst) {
                WEFT_TASK_RUNNING => false,
                // Fails only if it left its region meanwhile: then it runs.
                WEFT_TASK_BLOCKING => state.compare_exchange(WEFT_TASK_BLOCKING, HELD, SeqCst, SeqCst).is_ok(),
                // Likewise if it started meanwhile.
                WEFT_TASK_STARTING => state.compare_exchange(WEFT_TASK_STARTING, STARTING_HELD, SeqCst, SeqCst).is_ok(),
                _ => true,
            };
            if !stopped {
                running += 1;
            }
        });
        running
    }

    /// Names of the other mutators that still run, for the timeout message.
    fn running_names(&self, me: u64) -> Vec<String> {
        let mut names = Vec::new();
        self.registry.each(|c| {
            if c.id != me && c.mutator.state.load(SeqCst) == WEFT_TASK_RUNNING {
                names.push(match (c.name(), c.task.is_null()) {
                    (Some(name), _) => format!("task \"{name}\" (id {})", c.id),
                    (None, false) => format!("task id {}", c.id),
                    (None, true) => format!("attached thread id {}", c.id),
                });
            }
        });
        names
    }

    /// For close, with `mark_closed` run under the world lock when it succeeds: fails
    /// if a stop is in force or a mutator other than the caller is still registered;
    /// drops the caller's own attachment. Marking the runtime closed under the lock
    /// that registration takes means a concurrent attach either is seen here or sees the
    /// runtime closed.
    pub(crate) fn close_registry(&self, mark_closed: impl FnOnce()) -> Result<()> {
        self.locked(|_| {
            if self.owner.load(SeqCst) != 0 {
                fail!(WEFT_EBUSY, "a stop-the-world is in force or requested (weft_stw_end first)");
            }
            let me = context::current_if_any().map(|c| c.id);
            let mut others = 0;
            self.registry.each(|c| others += usize::from(Some(c.id) != me));
            if others > 0 {
                fail!(WEFT_EBUSY, "{others} attached thread(s) must call weft_thread_detach first");
            }
            for shard in &self.registry.shards {
                for ctx in shard.0.lock().drain(..) {
                    forget_runtime(&ctx.mutator);
                }
            }
            mark_closed();
            Ok(())
        })
    }

    /// Runs `f` holding the world lock, for the runtime's other waits (drain).
    pub(crate) fn with_lock<R>(&self, f: impl FnOnce(&InternalLock) -> R) -> R {
        self.locked(f)
    }

    /// For close: gives the plugin objects back (nobody can wait on them any more).
    pub(crate) fn release(&self) {
        self.lock.destroy();
    }
}

fn forget_runtime(m: &Mutator) {
    m.rt.store(ptr::null_mut(), SeqCst);
    m.attach_depth.store(0, SeqCst);
    m.blocking_depth.store(0, Relaxed);
    m.state.store(WEFT_TASK_RUNNING, SeqCst);
}

/// In the child of a fork, for the forking thread's context: it is no mutator of the
/// parent's runtime any more, which is left behind there, and holds no stop of it.
/// Held in a stop (a collector of the parent stopped the world while this thread was in
/// a blocking region), it counts as blocking again: the frames that opened its regions
/// leave them without waiting for a resume nobody in the child can make. It may then
/// attach to a runtime of the child's own.
pub(crate) fn forget_parent_in_child(ctx: &Context) {
    let m = &ctx.mutator;
    m.rt.store(ptr::null_mut(), SeqCst);
    m.attach_depth.store(0, SeqCst);
    m.holds.store(0, SeqCst);
    let _ = m.state.compare_exchange(HELD, WEFT_TASK_BLOCKING, SeqCst, SeqCst);
}

/// Waits, lock held, while a stop is requested or in force.
fn wait_no_stop(world: &World, l: &InternalLock) {
    while world.flag.load(SeqCst) & STOP != 0 {
        l.wait_until(Cond::Resumed, WEFT_FOREVER);
    }
}

/// Adds an attached thread's `ctx` as a mutator of `rt`. If a stop is requested or in
/// force (by another context), it starts parked and this returns once the stop is over.
fn register(rt: &'static Runtime, ctx: &Arc<Context>) {
    let world = &rt.world;
    ctx.mutator.blocking_depth.store(0, Relaxed);
    world.locked(|l| {
        let stop = world.flag.load(SeqCst) & STOP != 0 && world.owner.load(SeqCst) != ctx.id;
        if stop {
            // It parks below, in this frame, and is published by the registry push.
            ctx.mutator.parked.record_here(rt);
        }
        ctx.mutator.state.store(if stop { WEFT_TASK_AT_SAFEPOINT } else { WEFT_TASK_RUNNING }, SeqCst);
        ctx.mutator.rt.store(rt as *const _ as *mut _, SeqCst);
        world.registry.add(ctx);
        if stop {
            wait_no_stop(world, l);
            ctx.mutator.state.store(WEFT_TASK_RUNNING, SeqCst);
        }
    });
}

/// A task was spawned: it is listed, STARTING (reported with its spawn argument) until
/// it starts. Called before the plugin can start it. If a stop is requested or in force,
/// the task is held until its end (see the module comment).
pub(crate) fn task_spawning(rt: &Runtime, ctx: &Arc<Context>) {
    let world = &rt.world;
    ctx.mutator.state.store(WEFT_TASK_STARTING, SeqCst);
    world.registry.add(ctx);
    if world.flag.load(SeqCst) & STOP != 0 {
        world.locked(|_| {
            if world.flag.load(SeqCst) & STOP != 0 {
                let _ = ctx.mutator.state.compare_exchange(WEFT_TASK_STARTING, STARTING_HELD, SeqCst, SeqCst);
            }
        });
    }
}

/// The platform could not start the task: it is listed no more.
pub(crate) fn spawn_failed(rt: &Runtime, ctx: &Context) {
    rt.world.registry.remove(ctx);
}

/// A task starts running on `ctx` (see the module comment): it becomes a mutator of
/// `rt`. If the stop holds it, it parks (from STARTING to AT_SAFEPOINT: its spawn
/// argument is still reported) and this returns once the stop is over; if a stop is
/// requested, it parks at once, before it runs anything of the host's.
pub(crate) fn task_started(rt: &'static Runtime, ctx: &Context) {
    let world = &rt.world;
    let m = &ctx.mutator;
    m.blocking_depth.store(0, Relaxed);
    m.rt.store(rt as *const _ as *mut _, SeqCst);
    while m.state.compare_exchange(WEFT_TASK_STARTING, WEFT_TASK_RUNNING, SeqCst, SeqCst).is_err() {
        // Held: it parks at a safepoint until the stop's end (resuming may have let it
        // go meanwhile: then it starts again).
        world.locked(|l| {
            if m.state.load(SeqCst) != STARTING_HELD {
                return;
            }
            // It parks below, in this frame.
            m.parked.record_here(rt);
            m.state.store(WEFT_TASK_AT_SAFEPOINT, SeqCst);
            wait_no_stop(world, l);
            m.state.store(WEFT_TASK_STARTING, SeqCst);
        });
    }
    if world.flag.load(SeqCst) & STOP != 0 && world.owner.load(SeqCst) != ctx.id {
        m.record_here(rt);
        park(rt, ctx);
    }
}

/// Removes `ctx` from `rt`'s mutators; a waiting requester no longer waits for it. The
/// world lock only if a stop is requested: the removal, under its shard's lock, then a
/// look at the flag, against the requester's flag store, then its scan under the same
/// lock; either the scan does not find this context, or this sees the flag and wakes
/// the requester to scan again.
fn unregister(rt: &Runtime, ctx: &Context) {
    rt.world.registry.remove(ctx);
    forget_runtime(&ctx.mutator);
    if rt.world.flag.load(SeqCst) & STOP != 0 {
        rt.world.locked(|l| l.broadcast(Cond::Progress));
    }
}

/// Parks `ctx` at a safepoint while a stop by another context is requested or in force.
fn park(rt: &Runtime, ctx: &Context) {
    let world = &rt.world;
    world.locked(|l| {
        // Looked at again under the lock: the stop may have ended meanwhile.
        if world.flag.load(SeqCst) & STOP == 0 || world.owner.load(SeqCst) == ctx.id {
            return;
        }
        ctx.mutator.state.store(WEFT_TASK_AT_SAFEPOINT, SeqCst);
        l.broadcast(Cond::Progress);
        wait_no_stop(world, l);
        ctx.mutator.state.store(WEFT_TASK_RUNNING, SeqCst);
    });
}

fn blocking_begin(rt: &Runtime, ctx: &Context) {
    let depth = ctx.mutator.blocking_depth.load(Relaxed);
    ctx.mutator.blocking_depth.store(depth + 1, Relaxed);
    if depth == 0 {
        // Dekker with the requester: state store, then flag load (see the module doc).
        ctx.mutator.state.store(WEFT_TASK_BLOCKING, SeqCst);
        if rt.world.flag.load(SeqCst) & STOP != 0 {
            rt.world.locked(|l| l.broadcast(Cond::Progress));
        }
    }
}

/// Leaves one level of blocking region without waiting. Returns false, still in the
/// (outermost) region, when a stop holds the caller there.
fn try_blocking_end(ctx: &Context) -> bool {
    let m = &ctx.mutator;
    let depth = m.blocking_depth.load(Relaxed);
    if depth > 1 {
        m.blocking_depth.store(depth - 1, Relaxed);
        return true;
    }
    if depth == 0 {
        // Nothing left to leave: the region was ended under its opener (an unbalanced
        // `weft_blocking_end` inside `weft_blocking_call`, a close that forgot the
        // mutator). Waiting for a state no stop will set would spin for ever.
        return true;
    }
    if m.state.compare_exchange(WEFT_TASK_BLOCKING, WEFT_TASK_RUNNING, SeqCst, SeqCst).is_err() {
        return false;
    }
    m.blocking_depth.store(0, Relaxed);
    true
}

/// Leaves one level of blocking region; leaving the outermost one while a stop holds
/// the caller waits until the stop ends.
fn blocking_end(rt: &Runtime, ctx: &Context) {
    while !try_blocking_end(ctx) {
        rt.world.locked(|l| {
            while ctx.mutator.state.load(SeqCst) == HELD {
                l.wait_until(Cond::Resumed, WEFT_FOREVER);
            }
        });
    }
}

/// The calling context if it is a mutator of `rt`.
fn current_mutator_of(rt: &Runtime) -> Option<&'static Context> {
    context::current_if_any().filter(|ctx| std::ptr::eq(ctx.mutator.runtime(), rt))
}

/// Takes a lock through the plugin's blocking `lock` so that the calling mutator never
/// leaves the blocking region *holding* the lock while the world is stopped: parked
/// there, it would deadlock a collector that takes the same lock during the stop (the
/// mutator may have been handed the lock by an unlock inside the stop). The plugin's own
/// hooks nest inside this region and so never park. If a stop holds the caller when the
/// lock is acquired, `unlock` gives it back, the caller waits for the stop to end, and
/// the acquisition starts again. For a caller that is not a mutator, just `lock()`.
pub(crate) fn lock_outside_stop(
    rt: &Runtime,
    mut lock: impl FnMut() -> weft_status_t,
    mut unlock: impl FnMut(),
) -> weft_status_t {
    let Some(ctx) = current_mutator_of(rt) else { return lock() };
    ctx.mutator.record_here(rt);
    loop {
        blocking_begin(rt, ctx);
        let status = lock();
        if status != WEFT_OK {
            blocking_end(rt, ctx);
            return status;
        }
        if try_blocking_end(ctx) {
            return WEFT_OK;
        }
        unlock();
        blocking_end(rt, ctx);
    }
}

/// As `lock_outside_stop`, for a wait that returns with the lock held whatever its
/// status (a condition wait): on a stop, the lock is given back and taken again with
/// `lock_outside_stop`. Returns the wait's status, or the relock's if that failed.
pub(crate) fn wait_outside_stop(
    rt: &Runtime,
    wait: impl FnOnce() -> weft_status_t,
    lock: impl FnMut() -> weft_status_t,
    mut unlock: impl FnMut(),
) -> weft_status_t {
    let Some(ctx) = current_mutator_of(rt) else { return wait() };
    ctx.mutator.record_here(rt);
    blocking_begin(rt, ctx);
    let status = wait();
    if try_blocking_end(ctx) {
        return status;
    }
    unlock();
    blocking_end(rt, ctx);
    match lock_outside_stop(rt, lock, unlock) {
        WEFT_OK => status,
        relock => relock,
    }
}

/// Runs `f` in a blocking region of the calling mutator (as is, for a caller that is
/// not one), for runtime calls the plugin does not count as blocking. `f` must not
/// return holding anything a collector may need (see `lock_outside_stop` for locks).
pub(crate) fn in_blocking_region<R>(rt: &Runtime, f: impl FnOnce() -> R) -> R {
    let Some(ctx) = current_mutator_of(rt) else { return f() };
    ctx.mutator.record_here(rt);
    blocking_begin(rt, ctx);
    let result = f();
    blocking_end(rt, ctx);
    result
}

/// Runs `f`, which waits on `rt`'s world lock on behalf of a call on `rt`, in a
/// blocking region of the runtime the caller is a mutator of, if that is another one:
/// the world lock masks the caller's plugin hooks (`World::locked`), so without it a
/// task of runtime B waiting in `weft_stw_begin(A)` or `weft_runtime_drain(A)` counted
/// as running in B, and a stop of B waited for it.
fn in_own_region_for<R>(rt: &Runtime, f: impl FnOnce() -> R) -> R {
    // SAFETY: runtimes are never freed.
    let own = context::current_if_any().and_then(|ctx| unsafe { ctx.mutator.runtime().as_ref() });
    match own {
        Some(own) if !std::ptr::eq(own, rt) => in_blocking_region(own, f),
        _ => f(),
    }
}

/// As `in_blocking_region` for a mutator of `rt`; for a mutator of another runtime, a
/// blocking region of that one (`in_own_region_for`).
pub(crate) fn in_blocking_region_of_caller<R>(rt: &Runtime, f: impl FnOnce() -> R) -> R {
    in_own_region_for(rt, || in_blocking_region(rt, f))
}

/// The `blocking_enter` host service: a no-op for a context that is not a mutator or
/// that waits on the runtime's own behalf.
pub(crate) fn enter_blocking_from_plugin(ctx: &Context, entry: EntryWords) {
    // SAFETY: runtimes are never freed.
    if let Some(rt) = unsafe { ctx.mutator.runtime().as_ref() } {
        if !ctx.mutator.is_internal_wait() {
            if ctx.mutator.may_record() {
                ctx.mutator.parked.record(rt, entry);
            }
            blocking_begin(rt, ctx);
        }
    }
}

/// The `blocking_leave` host service.
pub(crate) fn leave_blocking_from_plugin(ctx: &Context) {
    // SAFETY: runtimes are never freed.
    if let Some(rt) = unsafe { ctx.mutator.runtime().as_ref() } {
        if !ctx.mutator.is_internal_wait() && ctx.mutator.blocking_depth.load(Relaxed) > 0 {
            blocking_end(rt, ctx);
        }
    }
}

/// The runtime the calling context is a mutator of (a task's, or an attached thread's).
pub(crate) fn caller_runtime() -> Option<&'static Runtime> {
    // SAFETY: runtimes are never freed.
    context::current_if_any().and_then(|ctx| unsafe { ctx.mutator.runtime().as_ref() })
}

/// A task's function returned, or a host thread is exiting: leaves any blocking region
/// the host left open (waiting if the world is stopped), so that what still runs on the
/// context (exit hook, task-local destructors) runs as a mutator that counts as running.
pub(crate) fn leave_open_regions(ctx: &Context) {
    // SAFETY: runtimes are never freed.
    if let Some(rt) = unsafe { ctx.mutator.runtime().as_ref() } {
        if ctx.mutator.blocking_depth.load(Relaxed) > 0 {
            ctx.mutator.blocking_depth.store(1, Relaxed);
            blocking_end(rt, ctx);
        }
    }
}

/// The context is about to end (its task exited, or its host thread is exiting): it
/// stops being a mutator, and a stop it still holds is ended. Leaving the world stopped
/// would hang every mutator for good, and nobody is left who could end it.
pub(crate) fn context_ending(ctx: &Context) {
    // SAFETY: runtimes are never freed.
    if let Some(rt) = unsafe { ctx.mutator.runtime().as_ref() } {
        unregister(rt, ctx);
    }
    if ctx.mutator.holds.swap(0, SeqCst) == 0 {
        return;
    }
    for rt in fork::open_runtimes() {
        if rt.world.owner.load(SeqCst) == ctx.id {
            rt.world.locked(|l| {
                if rt.world.owner.load(SeqCst) == ctx.id {
                    rt.world.resume_locked(l);
                }
            });
        }
    }
}

/// Whether `ctx`, a host thread's context at the thread's end, is the main thread's
/// while it holds or requests a stop: the main thread ends only with the process (a
/// return from `main`, or `exit`), and a VM may end it so with mutators still running.
/// Then nothing is undone: resuming the world would let them run while the process
/// tears down.
pub(crate) fn keeps_world_at_exit(ctx: &Context) -> bool {
    // SAFETY: plain system calls with no arguments.
    ctx.mutator.holds.load(SeqCst) != 0 && unsafe { libc::gettid() == libc::getpid() }
}

/// The calling context, which must be a mutator of `rt`.
fn mutator_of(rt: &Runtime) -> Result<&'static Context> {
    match current_mutator_of(rt) {
        Some(ctx) => Ok(ctx),
        None => {
            fail!(WEFT_EPERM, "the calling thread is not a mutator of this runtime (not a weft task, not attached)")
        }
    }
}

/// `weft_thread_attach`.
pub(crate) fn attach(rt: &'static Runtime) -> Result<()> {
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
        let status = plat_call!(rt.table, r#yield(rt.prt));
        check_plugin(status, || "the platform cannot run this thread".into())?;
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
        fail!(WEFT_EINVAL, "runtime {:p} was closed", rt as *const Runtime);
    }
    Ok(())
}

/// `weft_thread_detach`.
pub(crate) fn detach(rt: &Runtime) -> Result<()> {
    let ctx = match current_mutator_of(rt) {
        Some(ctx) if ctx.mutator.attach_depth.load(SeqCst) > 0 => ctx,
        _ => fail!(WEFT_EINVAL, "the calling thread is not attached to this runtime"),
    };
    if ctx.mutator.blocking_depth.load(Relaxed) > 0 {
        fail!(WEFT_EBUSY, "the calling thread is inside a blocking region (call weft_blocking_end first)");
    }
    if ctx.mutator.attach_depth.fetch_sub(1, SeqCst) == 1 && ctx.task.is_null() {
        unregister(rt, ctx);
    }
    Ok(())
}

/// A safepoint poll for weft's own calls that run managed code on either side: when a
/// stop-the-world is requested of the caller (a mutator of `rt` outside any blocking
/// region), parks it until the stop ends. One relaxed load when no stop is requested;
/// nothing for a caller that is not a mutator of `rt`.
#[inline]
pub(crate) fn poll(rt: &Runtime) {
    if stop_requested(rt) {
        poll_requested(rt);
    }
}

/// Whether a stop-the-world of `rt` is requested or in force (one relaxed load).
#[inline(always)]
pub(crate) fn stop_requested(rt: &Runtime) -> bool {
    rt.world.flag.load(Relaxed) & STOP != 0
}

#[cold]
#[inline(never)]
fn poll_requested(rt: &Runtime) {
    if let Some(ctx) = current_mutator_of(rt) {
        if ctx.mutator.blocking_depth.load(Relaxed) == 0 && rt.world.owner.load(SeqCst) != ctx.id {
            // The collector scans from here: without the record it read the frame of
            // the mutator's last wait (gone since), or none at all.
            ctx.mutator.record_here(rt);
            park(rt, ctx);
        }
    }
}

/// `weft_safepoint`.
pub(crate) fn safepoint(rt: &Runtime) -> Result<()> {
    let ctx = mutator_of(rt)?;
    if ctx.mutator.blocking_depth.load(Relaxed) == 0
        && rt.world.flag.load(SeqCst) & STOP != 0
        && rt.world.owner.load(SeqCst) != ctx.id
    {
        ctx.mutator.record_here(rt);
        park(rt, ctx);
    }
    // An M:N platform asks a task that overran its time slice to yield here.
    if rt.world.flag.load(Relaxed) & WEFT_SAFEPOINT_PREEMPT != 0 && ctx.mutator.blocking_depth.load(Relaxed) == 0 {
        if let Some(point) = rt.table.preempt_point {
            // SAFETY: a member of an accepted table, present for its version.
            unsafe { point(rt.prt) };
        }
    }
    Ok(())
}

/// `weft_stw_begin`.
pub(crate) fn stop_world(rt: &'static Runtime, deadline: i64) -> Result<()> {
    // Before the world is asked to stop: the platform would refuse this thread's waits
    // and wake-ups, and the tasks parked for the stop would never resume.
    rt.check_runs_caller()?;
    let me = context::current();
    let world = &rt.world;
    if world.owner.load(SeqCst) == me.id {
        fail!(WEFT_EDEADLK, "the calling thread already holds the stopped world");
    }
    let is_mutator = std::ptr::eq(me.mutator.runtime(), rt);
    in_own_region_for(rt, || stop_world_locked(rt, me, is_mutator, deadline))
}

/// `stop_world`'s work under the world lock.
fn stop_world_locked(rt: &'static Runtime, me: &Context, is_mutator: bool, deadline: i64) -> Result<()> {
    let world = &rt.world;
    world.locked(|l| {
        if world.owner.load(SeqCst) != 0 {
            if is_mutator {
                // A mutator inside a blocking region is stopped already (the other
                // stop may even hold it there); a running one parks.
                let was_running = me.mutator.state.load(SeqCst) == WEFT_TASK_RUNNING;
                if was_running {
                    // `stop_world`'s own frame encloses this wait.
                    me.mutator.parked.record_here(rt);
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
        me.mutator.holds.fetch_add(1, SeqCst);
        loop {
            if world.hold_blocked_count_running(me.id) == 0 {
                world.stopped.store(true, SeqCst);
                return Ok(());
            }
            if l.wait_until(Cond::Progress, deadline) == WEFT_ETIMEDOUT && world.hold_blocked_count_running(me.id) != 0
            {
                let running = world.running_names(me.id);
                world.resume_locked(l);
                me.mutator.holds.fetch_sub(1, SeqCst);
                fail!(
                    WEFT_ETIMEDOUT,
                    "{} mutator(s) did not reach a safepoint by the deadline: {}",
                    running.len(),
                    running.join(", ")
                );
            }
        }
    })
}

/// `weft_stw_end`.
pub(crate) fn resume_world(rt: &Runtime) -> Result<()> {
    let me = context::current();
    if rt.world.owner.load(SeqCst) != me.id {
        fail!(WEFT_EPERM, "the calling thread does not hold the stopped world");
    }
    rt.world.locked(|l| rt.world.resume_locked(l));
    me.mutator.holds.fetch_sub(1, SeqCst);
    Ok(())
}

/// `weft_blocking_begin`, with the frame its entry recorded for the caller.
pub(crate) fn host_blocking_begin(rt: &Runtime, entry: EntryWords) -> Result<()> {
    let ctx = mutator_of(rt)?;
    if ctx.mutator.may_record() {
        ctx.mutator.parked.record(rt, entry);
    }
    enter_host_region(rt, ctx);
    Ok(())
}

/// Opens a blocking region the host asked for, its frame recorded. The outermost one
/// hands the thread's processor on, on an M:N platform (ABI 2 and later); a region
/// nested in it does not, as the matching end must not take one back while the outer
/// region's blocking call is still to come.
fn enter_host_region(rt: &Runtime, ctx: &Context) {
    let outermost = ctx.mutator.blocking_depth.load(Relaxed) == 0;
    blocking_begin(rt, ctx);
    if let (true, Some(enter)) = (outermost, rt.table.region_enter) {
        // SAFETY: a member of an accepted table, present for its version.
        unsafe { enter(rt.prt) };
    }
}

/// Closes a region of `enter_host_region`: the outermost takes a processor back.
fn leave_host_region(rt: &Runtime, ctx: &Context) {
    let outermost = ctx.mutator.blocking_depth.load(Relaxed) == 1;
    if let (true, Some(leave)) = (outermost, rt.table.region_leave) {
        // SAFETY: a member of an accepted table, present for its version.
        unsafe { leave(rt.prt) };
    }
    blocking_end(rt, ctx);
}

/// `weft_blocking_call`: `f` runs inside a blocking region opened in this frame, which
/// records the caller's registers and stays alive until `f` returns.
pub(crate) fn blocking_call(rt: &Runtime, f: impl FnOnce()) -> Result<()> {
    let ctx = mutator_of(rt)?;
    ctx.mutator.record_here(rt);
    enter_host_region(rt, ctx);
    let depth = ctx.mutator.blocking_depth.load(Relaxed);
    f();
    if !std::ptr::eq(ctx.mutator.runtime(), rt) {
        // `f` closed the runtime: the region ended with the mutator.
        return Ok(());
    }
    if ctx.mutator.blocking_depth.load(Relaxed) < depth {
        fail!(
            WEFT_EPERM,
            "the function of weft_blocking_call ended the blocking region the call opened (a weft_blocking_end \
             without its weft_blocking_begin)"
        );
    }
    leave_host_region(rt, ctx);
    Ok(())
}

/// `weft_task_stack`: the calling mutator's stack.
pub(crate) fn caller_stack() -> Result<(usize, usize)> {
    let ctx = context::current_if_any();
    // SAFETY: runtimes are never freed.
    let Some((ctx, rt)) = ctx.and_then(|c| unsafe { c.mutator.runtime().as_ref() }.map(|rt| (c, rt))) else {
        fail!(WEFT_EPERM, "the calling thread is not a mutator (not a weft task, not attached)");
    };
    ctx.mutator.parked.learn_stack(rt);
    match ctx.mutator.parked.stack() {
        (_, 0) => fail!(WEFT_ENOTSUP, "the calling thread's stack could not be found (pthread_getattr_np failed)"),
        bounds => Ok(bounds),
    }
}

/// `weft_blocking_end`.
pub(crate) fn host_blocking_end(rt: &Runtime) -> Result<()> {
    let ctx = mutator_of(rt)?;
    if ctx.mutator.blocking_depth.load(Relaxed) == 0 {
        fail!(WEFT_EPERM, "the calling thread is not in a blocking region");
    }
    leave_host_region(rt, ctx);
    Ok(())
}

/// One entry of `weft_tasks_foreach`: a mutator, or a task not started yet.
pub(crate) struct MutatorView {
    pub(crate) ctx: Arc<Context>,
    pub(crate) state: u32,
    /// The task-local slots, where they cannot change under the reader.
    pub(crate) locals: (*const *mut std::ffi::c_void, usize),
    /// The stack bounds; (0, 0) for a STARTING task.
    pub(crate) stack: (usize, usize),
    /// Where it parked, where that cannot change under the reader; else all 0.
    pub(crate) frame: Frame,
    /// The spawn argument of a task whose function was not called yet; 0 otherwise.
    pub(crate) arg: usize,
}

/// Calls `visit` for each live mutator of `rt`, then each task not started yet, until
/// it returns true. Another context's slots and parked frame are given only when it
/// cannot be running: the caller holds the stopped world (a Vec read while its owner
/// resizes it is a data race). Asked per entry: the callback may end the stop. The
/// caller's own entry carries a frame recorded here, in a frame alive during `visit`.
#[inline(never)]
pub(crate) fn for_each_mutator(rt: &Runtime, mut visit: impl FnMut(&MutatorView) -> bool) {
    let mut own = Frame::default();
    parked::capture(&mut own);
    let me = context::current_if_any().map_or(0, |c| c.id);
    let holds_stop = || me != 0 && rt.world.owner.load(SeqCst) == me && rt.world.stopped.load(SeqCst);
    // The mutators first, then the tasks not started yet, each state read once.
    let mut listed = Vec::new();
    rt.world.registry.each(|ctx| listed.push((Arc::clone(ctx), ctx.mutator.public_state())));
    let (starting, mutators): (Vec<_>, Vec<_>) =
        listed.into_iter().partition(|(_, state)| *state == WEFT_TASK_STARTING);
    let mut values = Vec::new();
    let mut live_slots = |ctx: &Context| {
        ctx.live_slots(&mut values);
        (values.as_ptr(), values.len())
    };
    for (ctx, state) in mutators {
        let (locals, frame) = if ctx.id == me {
            ctx.mutator.parked.learn_stack(rt);
            (live_slots(&ctx), own)
        } else if holds_stop() {
            (live_slots(&ctx), ctx.mutator.parked.frame())
        } else {
            ((ptr::null(), 0), Frame::default())
        };
        let stack = ctx.mutator.parked.stack();
        let arg = ctx.start_arg.load(SeqCst);
        if visit(&MutatorView { ctx, state, locals, stack, frame, arg }) {
            return;
        }
    }
    for (ctx, _) in starting {
        let arg = ctx.start_arg.load(SeqCst);
        let view = MutatorView {
            ctx,
            state: WEFT_TASK_STARTING,
            locals: (ptr::null(), 0),
            stack: (0, 0),
            frame: Frame::default(),
            arg,
        };
        if visit(&view) {
            return;
        }
    }
}
