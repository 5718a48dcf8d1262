//! The `native` weft platform: every task is an OS thread; waiting is parking on an
//! address in a table a child of fork() resets (`weft_platform::parking`);
//! channels keep their elements in crossbeam-style lock-free buffers and their waiting
//! calls in Go-style queues (see `chan.rs`).
//!
//! Built as `libweft_native.so` and loaded by libweft through `weft_platform_entry`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod chan;
mod clock;
mod io;
mod lock;
mod rwlock;
mod task;
mod wait;
mod yields;

use weft_platform::*;

/// The runtime's host services, installed by the entry function.
pub(crate) static HOST: HostRef = HostRef::new();

/// Threads, clock and parking are process-wide; a runtime keeps only its IO waiters (so
/// that `fd_forget` in one runtime leaves another's waiters alone).
pub(crate) struct NativeRuntime {
    pub(crate) io: io::Registry,
}

unsafe extern "C" fn runtime_open(_cfg: *const weft_plat_config_t, out: *mut *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        let rt = Box::new(NativeRuntime { io: io::Registry::default() });
        // SAFETY: the runtime's out-parameter.
        unsafe { *out = Box::into_raw(rt) as *mut weft_plat_rt_t };
        WEFT_OK
    })
}

unsafe extern "C" fn runtime_close(rt: *mut weft_plat_rt_t) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: made by `runtime_open`, closed once.
        drop(unsafe { Box::from_raw(rt as *mut NativeRuntime) });
        WEFT_OK
    })
}

unsafe extern "C" fn now(_rt: *mut weft_plat_rt_t) -> i64 {
    HOST.guard_or(-1, clock::now)
}

struct Table(weft_platform_t);
// SAFETY: the table is immutable and its pointers are to static strings and functions.
unsafe impl Sync for Table {}

static TABLE: Table = Table(weft_platform_t {
    magic: WEFT_PLATFORM_MAGIC,
    struct_size: std::mem::size_of::<weft_platform_t>() as u32,
    abi_version: WEFT_PLATFORM_ABI_VERSION,
    name: c"native".as_ptr(),
    version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const _,
    caps: WEFT_CAP_OS_THREADS | WEFT_CAP_CANCEL | WEFT_CAP_MUTEX_BYTE | WEFT_CAP_MONOTONIC_CLOCK | WEFT_CAP_SCHED_YIELD,
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
    fd_wait: Some(io::fd_wait),
    fd_forget: Some(io::fd_forget),
    // A task per OS thread: a host's blocking region blocks only that task, and the OS
    // preempts threads; the M:N notifications are not needed.
    region_enter: None,
    region_leave: None,
    preempt_attach: None,
    preempt_point: None,
    stack_bounds: None,
    park: Some(lock::park),
    unpark: Some(lock::unpark),
    rwlock_read_lock_until: Some(rwlock::rwlock_read_lock_until),
    rwlock_write_lock_until: Some(rwlock::rwlock_write_lock_until),
});

/// The plugin's entry point: keeps the host services and returns the static table, or
/// NULL when the host's services are older than this plugin needs.
///
/// # Safety
/// `host` must be NULL or a static `weft_host_t`.
#[no_mangle]
pub unsafe extern "C" fn weft_platform_entry(host: *const weft_host_t) -> *const weft_platform_t {
    // SAFETY: the runtime hands its static host table (or NULL, refused).
    if unsafe { HOST.install(host) } {
        &TABLE.0
    } else {
        std::ptr::null()
    }
}

/// The entry function has the type the ABI declares.
const _: weft_platform_entry_fn = weft_platform_entry;
