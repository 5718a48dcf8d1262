//! The `sim` weft platform: a deterministic, replayable scheduler for testing hosts.
//! The thread that opens the runtime runs every task, one at a time, as coroutines on
//! green's stacks (`sched.rs`); every weft call that reaches the plugin is a switch
//! point where a PRNG seeded from `weft_config_t.seed` or `$WEFT_SEED` picks the next
//! task (random walk or PCT); time is virtual and jumps when every task waits; a run in
//! which every task waits for ever ends with a report and exit status 86.
//!
//! Built as `libweft_sim.so` and loaded by libweft through `weft_platform_entry`. The
//! `weft-sim` driver (`plugins/sim/driver`) explores seeds and replays one.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

// The native plugin's channels and green's stacks, shared as source: the channels need
// from the crate `clock`, `HOST` and a `wait` with the native interface, the stacks a
// `sched::running_for_fault`.
#[path = "../../native/src"]
mod shared {
    #[allow(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
    pub(crate) mod chan;
}
#[path = "../../green/src"]
mod green {
    #[allow(dead_code)]
    pub(crate) mod stack;
}
use green::stack;
use shared::chan;
mod clock;
mod exit;
mod io;
mod parking;
mod sched;
mod stall;
mod sync;
mod task;
mod wait;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use weft_platform::once::ForkSafeOnce;
use weft_platform::*;

use sched::{Call, Obj, Sim};

/// The runtime's host services, installed by the entry function.
pub(crate) static HOST: HostRef = HostRef::new();

/// One sim runtime at a time per process: it owns the opener's thread.
static OPEN: AtomicBool = AtomicBool::new(false);

/// One runtime open on the scheduler (`*mut weft_plat_rt_t`): every runtime the thread
/// opens shares the one scheduler, but each is its own object, so that what belongs to a
/// runtime (its IO waiters, for `fd_forget`) stays apart.
pub(crate) struct Opened {
    sim: &'static Sim,
}

impl Opened {
    fn boxed(sim: &'static Sim) -> *mut weft_plat_rt_t {
        Box::into_raw(Box::new(Opened { sim })) as *mut weft_plat_rt_t
    }
}

/// Runs a table function for a caller on the thread the sim runs; any other thread
/// (one the host made itself, attached or not) is refused with `WEFT_ENOTSUP`.
pub(crate) fn on_sim(f: impl FnOnce(&'static Sim) -> weft_status_t) -> weft_status_t {
    HOST.guard(|| match sched::here() {
        Some(sim) => f(sim),
        None => refuse_foreign_thread(),
    })
}

/// `WEFT_ENOTSUP`, and why, for a caller on a thread the sim does not run.
pub(crate) fn refuse_foreign_thread() -> weft_status_t {
    HOST.fail(
        WEFT_ENOTSUP,
        "the sim platform runs every task on the thread that opened the runtime, one at a time, and does not \
         control this thread (made by the host, not by weft_spawn); call weft from weft tasks or from the \
         opening thread only",
    )
}

/// As `on_sim`, for a release (an unlock): also allowed when no sim runtime is open at
/// all, for a lock still held when its runtime closed. No task is left then, so nobody
/// waits on the object: the release only clears its words (`f` gets no scheduler).
pub(crate) fn on_sim_or_closed(f: impl FnOnce(Option<&'static Sim>) -> weft_status_t) -> weft_status_t {
    if sched::here().is_none() && !OPEN.load(SeqCst) {
        return HOST.guard(|| f(None));
    }
    on_sim(|sim| f(Some(sim)))
}

unsafe extern "C" fn runtime_open(cfg: *const weft_plat_config_t, out: *mut *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime passes its config for the call.
        let cfg = unsafe { cfg.as_ref() };
        let seed = cfg
            .filter(|c| c.struct_size as usize >= std::mem::offset_of!(weft_plat_config_t, seed) + 8)
            .map_or(0, |c| c.seed);
        if let Some(sim) = sched::here() {
            // A second runtime shares the running scheduler, and with it its seed.
            let running = sim.seed();
            if seed != 0 && seed != running {
                return HOST.fail(
                    WEFT_EINVAL,
                    &format!(
                        "weft_config_t.seed is {seed}, but this thread already runs a sim runtime with seed \
                         {running}: every runtime it opens shares that one scheduler (pass 0 or {running})"
                    ),
                );
            }
            sim.reopen();
            // SAFETY: the runtime's out-pointer.
            unsafe { *out = Opened::boxed(sim) };
            return WEFT_OK;
        }
        let settings = match sched::Settings::read(seed) {
            Ok(s) => s,
            Err(e) => return HOST.fail(WEFT_EINVAL, &e),
        };
        if OPEN.swap(true, SeqCst) {
            return HOST.fail(
                WEFT_ENOTSUP,
                "the sim platform runs on the one thread that opened its first runtime; this is another thread",
            );
        }
        forget_parents_scheduler_at_fork();
        let sim: &'static Sim = Box::leak(Sim::open(settings));
        // SAFETY: the runtime's out-pointer.
        unsafe { *out = Opened::boxed(sim) };
        WEFT_OK
    })
}

/// Installs, once, the handler that leaves the parent's scheduler behind in a child of
/// `fork()`: the child's one thread is no longer a sim thread, and may open a runtime of
/// its own on a new scheduler. Without it a runtime the child opened shared the copy of
/// the parent's scheduler, whose tasks (copied with it) then ran in the child.
fn forget_parents_scheduler_at_fork() {
    static INSTALLED: ForkSafeOnce = ForkSafeOnce::new();
    extern "C" fn in_child() {
        // The parent's scheduler is left as it is (leaked): its coroutines' stacks are
        // still mapped, and nothing resumes them.
        sched::forget_here();
        OPEN.store(false, SeqCst);
    }
    // SAFETY: a plain function that lives as long as the plugin, which is never unloaded
    // while a runtime is open (and this runs as the first one opens).
    INSTALLED.call_once(|| unsafe {
        libc::pthread_atfork(None, None, Some(in_child));
    });
}

unsafe extern "C" fn runtime_close(rt: *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: made by `runtime_open`, given back once; no task of this runtime runs
        // any more.
        let opened = unsafe { Box::from_raw(rt as *mut Opened) };
        if opened.sim.close() {
            // SAFETY: the last runtime on the scheduler, leaked from a box by
            // `runtime_open`; nothing refers to it any more.
            drop(unsafe { Box::from_raw(opened.sim as *const Sim as *mut Sim) });
            OPEN.store(false, SeqCst);
            // The stacks its tasks gave back are trimmed by the next give-back at the
            // earliest (sim has no idle workers to do it): now, then.
            stack::trim_unused(true);
        }
        WEFT_OK
    })
}

unsafe extern "C" fn now(_rt: *mut weft_plat_rt_t) -> i64 {
    clock::now()
}

unsafe extern "C" fn chan_new(
    rt: *mut weft_plat_rt_t,
    elem_size: usize,
    capacity: usize,
    out: *mut *mut weft_plat_chan_t,
) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's arguments, passed on.
        let status = unsafe { chan::chan_new(rt, elem_size, capacity, out) };
        if let (WEFT_OK, Some(sim)) = (status, sched::here()) {
            // SAFETY: the channel just made.
            sim.register(unsafe { *out } as usize);
        }
        status
    })
}

fn chan_call(name: &'static str, ch: *mut weft_plat_chan_t) -> Call {
    Call { name, obj: Obj::Chan(ch as usize) }
}

unsafe extern "C" fn chan_send(ch: *mut weft_plat_chan_t, elem: *const c_void, deadline: i64) -> weft_status_t {
    on_sim(|sim| {
        sim.step(chan_call("weft_chan_send", ch));
        // SAFETY: the runtime's arguments, passed on.
        unsafe { chan::chan_send(ch, elem, deadline) }
    })
}

unsafe extern "C" fn chan_recv(ch: *mut weft_plat_chan_t, out: *mut c_void, deadline: i64) -> weft_status_t {
    on_sim(|sim| {
        sim.step(chan_call("weft_chan_recv", ch));
        // SAFETY: the runtime's arguments, passed on.
        unsafe { chan::chan_recv(ch, out, deadline) }
    })
}

unsafe extern "C" fn chan_close(ch: *mut weft_plat_chan_t) -> weft_status_t {
    on_sim(|sim| {
        sim.step(chan_call("weft_chan_close", ch));
        // SAFETY: the runtime's argument, passed on.
        unsafe { chan::chan_close(ch) }
    })
}

unsafe extern "C" fn chan_select(
    cases: *const weft_plat_select_case_t,
    n: usize,
    deadline: i64,
    flags: u32,
    chosen: *mut usize,
) -> weft_status_t {
    on_sim(|sim| {
        let first = if n > 0 && !cases.is_null() {
            // SAFETY: the runtime passes `n` cases.
            unsafe { (*cases).chan as usize }
        } else {
            0
        };
        let obj = if n == 0 { Obj::Deadline(deadline) } else { Obj::Chan(first) };
        sim.step(Call { name: "weft_select", obj });
        // SAFETY: the runtime's arguments, passed on.
        unsafe { chan::chan_select(cases, n, deadline, flags, chosen) }
    })
}

struct Table(weft_platform_t);
// SAFETY: the table is immutable and its pointers are to static strings and functions.
unsafe impl Sync for Table {}

static TABLE: Table = Table(weft_platform_t {
    magic: WEFT_PLATFORM_MAGIC,
    struct_size: std::mem::size_of::<weft_platform_t>() as u32,
    abi_version: WEFT_PLATFORM_ABI_VERSION,
    name: c"sim".as_ptr(),
    version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const _,
    caps: WEFT_CAP_GREEN_TASKS | WEFT_CAP_CANCEL | WEFT_CAP_VIRTUAL_TIME | WEFT_CAP_DETERMINISTIC,
    mutex_size: sync::MUTEX_SIZE,
    cond_size: sync::COND_SIZE,
    rwlock_size: sync::RWLOCK_SIZE,
    sync_align: sync::SYNC_ALIGN,
    runtime_open: Some(runtime_open),
    runtime_close: Some(runtime_close),
    now: Some(now),
    r#yield: Some(task::yield_now),
    sleep_until: Some(task::sleep_until),
    spawn: Some(task::spawn),
    join: Some(task::join),
    detach: Some(task::detach),
    cancel: Some(task::cancel),
    mutex_init: Some(sync::mutex_init),
    mutex_destroy: Some(sync::sync_destroy),
    mutex_lock: Some(sync::mutex_lock),
    mutex_try_lock: Some(sync::mutex_trylock),
    mutex_lock_until: Some(sync::mutex_lock_until),
    mutex_unlock: Some(sync::mutex_unlock),
    cond_init: Some(sync::cond_init),
    cond_destroy: Some(sync::sync_destroy),
    cond_wait_until: Some(sync::cond_wait_until),
    cond_signal: Some(sync::cond_signal),
    cond_broadcast: Some(sync::cond_broadcast),
    rwlock_init: Some(sync::rwlock_init),
    rwlock_destroy: Some(sync::sync_destroy),
    rwlock_read_lock: Some(sync::rwlock_read_lock),
    rwlock_try_read_lock: Some(sync::rwlock_try_read_lock),
    rwlock_write_lock: Some(sync::rwlock_write_lock),
    rwlock_try_write_lock: Some(sync::rwlock_try_write_lock),
    rwlock_read_unlock: Some(sync::rwlock_read_unlock),
    rwlock_write_unlock: Some(sync::rwlock_write_unlock),
    chan_new: Some(chan_new),
    chan_send: Some(chan_send),
    chan_recv: Some(chan_recv),
    chan_close: Some(chan_close),
    chan_len: Some(chan::chan_len),
    chan_free: Some(chan::chan_free),
    chan_select: Some(chan_select),
    fd_wait: Some(io::fd_wait),
    fd_forget: Some(io::fd_forget),
    region_enter: Some(task::region_enter),
    region_leave: Some(task::region_leave),
    preempt_attach: Some(task::preempt_attach),
    preempt_point: Some(task::preempt_point),
    stack_bounds: Some(task::stack_bounds),
    park: Some(parking::park),
    unpark: Some(parking::unpark),
    rwlock_read_lock_until: Some(sync::rwlock_read_lock_until),
    rwlock_write_lock_until: Some(sync::rwlock_write_lock_until),
});

/// The plugin's entry point: keeps the host services and returns the static table, or
/// NULL when the host's services are older than this plugin needs (host ABI 2's
/// `context_set` makes each coroutine's weft identity its own).
///
/// # Safety
/// `host` must be NULL or a static `weft_host_t`.
#[no_mangle]
pub unsafe extern "C" fn weft_platform_entry(host: *const weft_host_t) -> *const weft_platform_t {
    // SAFETY: as the caller promises.
    if unsafe { HOST.install(host) } {
        &TABLE.0
    } else {
        std::ptr::null()
    }
}

/// The entry function has the type the ABI declares.
const _: weft_platform_entry_fn = weft_platform_entry;
