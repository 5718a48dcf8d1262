//! The `green` weft platform: M:N stackful tasks. Every task is a corosensei coroutine
//! on its own lazily committed, guarded stack, run by a fixed number of worker threads
//! with work stealing (`sched.rs`). Every wait parks the task, not the worker
//! (`wait.rs`); threads that are not tasks wait in the OS on the same queues, so they
//! can share mutexes, conditions and channels with tasks. Channels are the native
//! plugin's lock-free buffers and Go-style waiter queues (`chan.rs`).
//!
//! Built as `libweft_green.so` and loaded by libweft through `weft_platform_entry`.
#![deny(unsafe_op_in_unsafe_fn)]

// The native plugin's channels, mutexes, conditions and rwlocks, shared as source: they need
// from the crate only `clock`, `HOST` and a `wait` with the same interface, which green
// provides with parking that suspends a task instead of its worker.
#[path = "../../native/src"]
mod shared {
    #[allow(unsafe_op_in_unsafe_fn)]
    pub(crate) mod chan;
    pub(crate) mod clock;
    pub(crate) mod lock;
    pub(crate) mod rwlock;
    pub(crate) mod yields;
}
use shared::{chan, clock, lock, rwlock, yields};
mod io;
mod sched;
mod stack;
mod task;
mod wait;

use std::sync::Arc;

use weft_platform::*;

/// The runtime's host services, installed by the entry function.
pub(crate) static HOST: HostRef = HostRef::new();

unsafe extern "C" fn runtime_open(cfg: *const weft_plat_config_t, out: *mut *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime passes its config for the call.
        let cfg = unsafe { cfg.as_ref() };
        let asked = cfg
            .filter(|c| c.struct_size as usize >= std::mem::offset_of!(weft_plat_config_t, workers) + 4)
            .map_or(0, |c| c.workers as usize);
        wait::forget_parent_waiters_in_children();
        let workers = if asked == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { asked };
        let retake_ns = match sched::retake_ns() {
            Ok(ns) => ns,
            Err(e) => return HOST.fail(WEFT_EINVAL, &e),
        };
        match sched::Sched::open(workers, retake_ns) {
            Ok(sched) => {
                // SAFETY: the runtime's out-pointer.
                unsafe { *out = Box::into_raw(Box::new(sched)) as *mut weft_plat_rt_t };
                WEFT_OK
            }
            Err(e) => HOST.fail(WEFT_ENOMEM, &e),
        }
    })
}

unsafe extern "C" fn runtime_close(rt: *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: made by `runtime_open`; no task of the runtime runs any more.
        let sched = unsafe { Box::from_raw(rt as *mut Arc<sched::Sched>) };
        sched.close();
        WEFT_OK
    })
}

unsafe extern "C" fn now(_rt: *mut weft_plat_rt_t) -> i64 {
    clock::now()
}

unsafe extern "C" fn fd_wait(rt: *mut weft_plat_rt_t, fd: i32, ev: u32, dl: i64, rev: *mut u32) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's state.
        let sched = unsafe { task::sched_of(rt) };
        match sched.poller() {
            Ok(p) => p.wait(fd, ev, dl, rev, || sched.poller_wanted()),
            Err(e) => HOST.fail(WEFT_ENOMEM, &format!("cannot make the netpoller: {e}")),
        }
    })
}

unsafe extern "C" fn fd_forget(rt: *mut weft_plat_rt_t, fd: i32) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime's state. A runtime that never waited has nothing to forget.
        if let Some(p) = unsafe { task::sched_of(rt) }.poller_if_made() {
            p.forget(fd);
        }
        WEFT_OK
    })
}

struct Table(weft_platform_t);
// SAFETY: the table is immutable and its pointers are to static strings and functions.
unsafe impl Sync for Table {}

static TABLE: Table = Table(weft_platform_t {
    magic: WEFT_PLATFORM_MAGIC,
    struct_size: std::mem::size_of::<weft_platform_t>() as u32,
    abi_version: WEFT_PLATFORM_ABI_VERSION,
    name: c"green".as_ptr(),
    version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const _,
    caps: WEFT_CAP_GREEN_TASKS | WEFT_CAP_CANCEL | WEFT_CAP_MUTEX_BYTE | WEFT_CAP_MONOTONIC_CLOCK | WEFT_CAP_IO_DRAINED,
    mutex_size: lock::MUTEX_SIZE,
    cond_size: lock::COND_SIZE,
    rwlock_size: rwlock::RWLOCK_SIZE,
    sync_align: rwlock::SYNC_ALIGN,
    runtime_open: Some(runtime_open),
    runtime_close: Some(runtime_close),
    now: Some(now),
    r#yield: Some(task::yield_now),
    sleep_until: Some(task::sleep_until),
    spawn: Some(task::spawn),
    join: Some(task::join),
    detach: Some(task::detach),
    cancel: Some(task::cancel),
    mutex_init: Some(lock::mutex_init),
    mutex_destroy: Some(lock::sync_destroy),
    mutex_lock: Some(lock::mutex_lock),
    mutex_try_lock: Some(lock::mutex_try_lock),
    mutex_lock_until: Some(lock::mutex_lock_until),
    mutex_unlock: Some(lock::mutex_unlock),
    cond_init: Some(lock::cond_init),
    cond_destroy: Some(lock::sync_destroy),
    cond_wait_until: Some(lock::cond_wait_until),
    cond_signal: Some(lock::cond_signal),
    cond_broadcast: Some(lock::cond_broadcast),
    rwlock_init: Some(rwlock::rwlock_init),
    rwlock_destroy: Some(lock::sync_destroy),
    rwlock_read_lock: Some(rwlock::rwlock_read_lock),
    rwlock_try_read_lock: Some(rwlock::rwlock_try_read_lock),
    rwlock_write_lock: Some(rwlock::rwlock_write_lock),
    rwlock_try_write_lock: Some(rwlock::rwlock_try_write_lock),
    rwlock_read_unlock: Some(rwlock::rwlock_read_unlock),
    rwlock_write_unlock: Some(rwlock::rwlock_write_unlock),
    chan_new: Some(chan::chan_new),
    chan_send: Some(chan::chan_send),
    chan_recv: Some(chan::chan_recv),
    chan_close: Some(chan::chan_close),
    chan_len: Some(chan::chan_len),
    chan_free: Some(chan::chan_free),
    chan_select: Some(chan::chan_select),
    fd_wait: Some(fd_wait),
    fd_forget: Some(fd_forget),
    region_enter: Some(task::region_enter),
    region_leave: Some(task::region_leave),
    preempt_attach: Some(task::preempt_attach),
    preempt_point: Some(task::preempt_point),
    stack_bounds: Some(task::stack_bounds),
    park: Some(lock::park),
    unpark: Some(lock::unpark),
    rwlock_read_lock_until: Some(rwlock::rwlock_read_lock_until),
    rwlock_write_lock_until: Some(rwlock::rwlock_write_lock_until),
});

/// The plugin's entry point: keeps the host services and returns the static table, or
/// NULL when the host's services are older than this plugin needs (a green task's
/// identity follows it between workers only with host ABI 2's `context_set`).
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
