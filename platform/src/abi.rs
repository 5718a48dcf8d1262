//! The plugin table, the host-services table and the versioning rules.
//!
//! Versioning (as SQLite's `sqlite3_vfs` and tree-sitter's language versions do it):
//! * The table only ever grows at the end. Members added by ABI version N sit after a
//!   comment "ABI N and later"; the loader reads a member only when the plugin's
//!   `abi_version >= N` and its `struct_size` covers the member.
//! * The loader accepts `WEFT_PLATFORM_ABI_MIN ..= WEFT_PLATFORM_ABI_VERSION` and refuses
//!   anything else with `WEFT_EPLUGIN`.
//! * Every member of the plugin's declared version must be non-NULL; an operation a
//!   platform cannot offer is a function that returns `WEFT_ENOTSUP`.
use core::ffi::{c_char, c_void};

use crate::status::weft_status_t;

/// First field of every plugin table ("WEFTPLAT" in ASCII, little-endian).
pub const WEFT_PLATFORM_MAGIC: u64 = 0x5441_4c50_5446_4557;
/// The plugin ABI version this header describes.
pub const WEFT_PLATFORM_ABI_VERSION: u32 = 1;
/// The oldest plugin ABI version this runtime still loads.
pub const WEFT_PLATFORM_ABI_MIN: u32 = 1;
/// The host-services ABI version this header describes (`weft_host_t.abi_version`).
pub const WEFT_HOST_ABI_VERSION: u32 = 1;

/// Bytes of a `weft_mutex_t` that belong to the plugin (the rest is the runtime's
/// owner and state bookkeeping). A plugin whose `mutex_size` is larger is refused.
pub const WEFT_PLATFORM_MUTEX_BYTES: u32 = 40;
/// Bytes of a `weft_cond_t` that belong to the plugin.
pub const WEFT_PLATFORM_COND_BYTES: u32 = 48;
/// Bytes of a `weft_rwlock_t` that belong to the plugin.
pub const WEFT_PLATFORM_RWLOCK_BYTES: u32 = 56;
/// Alignment the runtime guarantees for a plugin's part of every sync object.
pub const WEFT_PLATFORM_SYNC_ALIGN: u32 = 8;

/// A plugin's runtime state, created by `runtime_open`. Opaque to the runtime.
pub struct weft_plat_rt_t {
    _private: [u8; 0],
}

/// A plugin's handle to one spawned task. Opaque to the runtime.
pub struct weft_plat_task_t {
    _private: [u8; 0],
}

/// What the runtime tells the plugin when it opens (copied from `weft_config_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct weft_plat_config_t {
    /// `sizeof(weft_plat_config_t)` as the runtime knows it.
    pub struct_size: u32,
    /// Worker threads for an M:N platform; 0 = one per CPU. Other platforms ignore it.
    pub workers: u32,
    /// Seed for a deterministic platform; other platforms ignore it.
    pub seed: u64,
}

/// What the runtime tells the plugin about one spawn.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct weft_plat_spawn_t {
    /// `sizeof(weft_plat_spawn_t)` as the runtime knows it.
    pub struct_size: u32,
    /// Stack size in bytes; 0 = the platform's default. The platform may round it up.
    pub stack_size: usize,
    /// The task's name (borrowed for the duration of `spawn`), or NULL.
    pub name: *const c_char,
}

/// Host services: the runtime's functions a plugin calls back. The plugin receives the
/// table in `weft_platform_entry`; it is static and valid for the life of the process.
#[repr(C)]
pub struct weft_host_t {
    /// `sizeof(weft_host_t)` as the runtime knows it.
    pub struct_size: u32,
    /// `WEFT_HOST_ABI_VERSION` of the runtime.
    pub abi_version: u32,
    /// Runs a spawned task to completion on the calling execution context: the runtime
    /// registers the task as a mutator (task started), runs the start hook, the task
    /// function, the exit hook and the task-local destructors, and unregisters it (task
    /// exited). A plugin calls it exactly once per successful `spawn`, with the `ctx` it
    /// was given, from the new task's own context. After it returns the plugin must not
    /// touch the runtime state (`weft_plat_rt_t`): the runtime may be closing.
    pub task_run: Option<unsafe extern "C" fn(ctx: *mut c_void)>,
    /// Call before the calling task may block (park, sleep, wait on the OS) inside the
    /// plugin, and `blocking_leave` after. While inside, a stop-the-world does not wait
    /// for the task; `blocking_leave` may itself park the task until the world resumes.
    /// Only the slow path needs it: an uncontended lock need not call it. Regions nest:
    /// around `mutex_lock`, `mutex_lock_until`, the rwlock locks and `cond_wait_until`
    /// the runtime keeps a region of its own open, so there the plugin's leave never
    /// parks (the runtime gives the lock back itself if the world was stopped meanwhile).
    pub blocking_enter: Option<unsafe extern "C" fn()>,
    /// Leaves the blocking region entered with `blocking_enter`. Call it with no plugin
    /// lock held that another task needs to make progress.
    pub blocking_leave: Option<unsafe extern "C" fn()>,
    /// Records a human-readable detail for the error the plugin is about to return
    /// (copied; e.g. the `strerror` of a failed `pthread_create`). The runtime adds it to
    /// `weft_last_error()`.
    pub set_error_detail: Option<unsafe extern "C" fn(detail: *const c_char)>,
    /// Non-zero when the calling task has been cancelled and the runtime does not mask
    /// cancellation for the current wait (it does for its own internal waits). Every
    /// cancellation point asks before it waits and again whenever it wakes; the plugin's
    /// `cancel` only has to wake the task.
    pub cancel_pending: Option<unsafe extern "C" fn() -> i32>,
}

/// `runtime_open`: create the plugin's runtime state. `cfg` is borrowed for the call.
pub type weft_plat_open_fn = Option<unsafe extern "C" fn(cfg: *const weft_plat_config_t, out: *mut *mut weft_plat_rt_t) -> weft_status_t>;
/// A call that takes only the plugin's runtime state.
pub type weft_plat_rt_fn = Option<unsafe extern "C" fn(rt: *mut weft_plat_rt_t) -> weft_status_t>;
/// `now`: the platform's monotonic clock in nanoseconds.
pub type weft_plat_now_fn = Option<unsafe extern "C" fn(rt: *mut weft_plat_rt_t) -> i64>;
/// `sleep_until`: wait until `deadline` (a cancellation point).
pub type weft_plat_sleep_fn = Option<unsafe extern "C" fn(rt: *mut weft_plat_rt_t, deadline: i64) -> weft_status_t>;
/// `spawn`: start a task that calls `host->task_run(ctx)`; `opts` is borrowed for the call.
pub type weft_plat_spawn_fn = Option<unsafe extern "C" fn(
    rt: *mut weft_plat_rt_t,
    ctx: *mut c_void,
    opts: *const weft_plat_spawn_t,
    out: *mut *mut weft_plat_task_t,
) -> weft_status_t>;
/// `join`: wait until the task's `task_run` returned, or `deadline`. The handle stays
/// valid either way (the runtime releases it with `detach`). The wait is a cancellation
/// point for the caller.
pub type weft_plat_join_fn = Option<unsafe extern "C" fn(task: *mut weft_plat_task_t, deadline: i64) -> weft_status_t>;
/// A call that takes one task handle (`detach` releases it; `cancel` does not).
pub type weft_plat_task_fn = Option<unsafe extern "C" fn(task: *mut weft_plat_task_t) -> weft_status_t>;
/// Initialise a sync object's plugin bytes (`obj` is 8-aligned, zeroed).
pub type weft_plat_init_fn = Option<unsafe extern "C" fn(rt: *mut weft_plat_rt_t, obj: *mut c_void) -> weft_status_t>;
/// An operation on a sync object's plugin bytes.
pub type weft_plat_obj_fn = Option<unsafe extern "C" fn(obj: *mut c_void) -> weft_status_t>;
/// A timed operation on a sync object's plugin bytes.
pub type weft_plat_obj_until_fn = Option<unsafe extern "C" fn(obj: *mut c_void, deadline: i64) -> weft_status_t>;
/// `cond_wait_until`: atomically release `mutex`, wait for a signal, the deadline or a
/// cancellation, and re-acquire `mutex` before returning (whatever the result).
pub type weft_plat_cond_wait_fn = Option<unsafe extern "C" fn(cond: *mut c_void, mutex: *mut c_void, deadline: i64) -> weft_status_t>;

/// The table a plugin returns from `weft_platform_entry`. Static: it must stay valid
/// and unchanged for the life of the process (the runtime never unloads a plugin).
///
/// Deadlines are absolute nanoseconds of the plugin's own `now`; `WEFT_FOREVER` never
/// expires; a deadline at or before now means "try once, do not wait".
/// Cancellation points (`sleep_until`, `join`, `cond_wait_until`) return
/// `WEFT_ECANCELED` at once when `host->cancel_pending()` says so, and wake up to return
/// it when `cancel` is called while they wait. Lock acquisition is not a cancellation
/// point.
#[repr(C)]
pub struct weft_platform_t {
    /// `WEFT_PLATFORM_MAGIC`.
    pub magic: u64,
    /// `sizeof(weft_platform_t)` as the plugin was compiled.
    pub struct_size: u32,
    /// The plugin ABI version the plugin was compiled against.
    pub abi_version: u32,
    /// Short name, e.g. "native" (static string).
    pub name: *const c_char,
    /// The plugin's own version, e.g. "1.2.0" (static string).
    pub version: *const c_char,
    /// `WEFT_CAP_*` bits.
    pub caps: u64,
    /// Bytes the plugin needs in each mutex; at most `WEFT_PLATFORM_MUTEX_BYTES`.
    pub mutex_size: u32,
    /// Bytes the plugin needs in each condition; at most `WEFT_PLATFORM_COND_BYTES`.
    pub cond_size: u32,
    /// Bytes the plugin needs in each rwlock; at most `WEFT_PLATFORM_RWLOCK_BYTES`.
    pub rwlock_size: u32,
    /// Alignment the plugin needs for its sync bytes; at most `WEFT_PLATFORM_SYNC_ALIGN`.
    pub sync_align: u32,

    // ABI 1 and later.
    /// Creates the plugin's runtime state.
    pub runtime_open: weft_plat_open_fn,
    /// Frees the plugin's runtime state. Called once no task of it runs.
    pub runtime_close: weft_plat_rt_fn,
    /// The monotonic clock, in nanoseconds.
    pub now: weft_plat_now_fn,
    /// Lets other tasks run.
    pub yield_now: weft_plat_rt_fn,
    /// Waits until a deadline (cancellation point).
    pub sleep_until: weft_plat_sleep_fn,
    /// Starts a task.
    pub spawn: weft_plat_spawn_fn,
    /// Waits for a task to finish.
    pub join: weft_plat_join_fn,
    /// Releases a task handle, after a join or instead of one (the task runs on).
    /// Called exactly once per spawned task.
    pub detach: weft_plat_task_fn,
    /// Wakes a task if it waits in a cancellation point (the runtime has already marked
    /// it cancelled; the wait sees it through `host->cancel_pending`).
    pub cancel: weft_plat_task_fn,
    /// Initialises a mutex.
    pub mutex_init: weft_plat_init_fn,
    /// Destroys an unlocked mutex.
    pub mutex_destroy: weft_plat_obj_fn,
    /// Acquires a mutex, waiting as long as it takes.
    pub mutex_lock: weft_plat_obj_fn,
    /// Acquires a mutex if it is free; `WEFT_EBUSY` otherwise.
    pub mutex_trylock: weft_plat_obj_fn,
    /// Acquires a mutex or gives up at the deadline with `WEFT_ETIMEDOUT`.
    pub mutex_lock_until: weft_plat_obj_until_fn,
    /// Releases a mutex held by the caller.
    pub mutex_unlock: weft_plat_obj_fn,
    /// Initialises a condition variable.
    pub cond_init: weft_plat_init_fn,
    /// Destroys a condition variable nobody waits on.
    pub cond_destroy: weft_plat_obj_fn,
    /// Waits on a condition variable (cancellation point; spurious wake-ups allowed).
    pub cond_wait_until: weft_plat_cond_wait_fn,
    /// Wakes at least one waiter, if any.
    pub cond_signal: weft_plat_obj_fn,
    /// Wakes every waiter.
    pub cond_broadcast: weft_plat_obj_fn,
    /// Initialises a readers-writer lock; writers must not starve.
    pub rwlock_init: weft_plat_init_fn,
    /// Destroys an unlocked rwlock.
    pub rwlock_destroy: weft_plat_obj_fn,
    /// Acquires shared access.
    pub rwlock_read_lock: weft_plat_obj_fn,
    /// Acquires shared access if no writer holds or waits; `WEFT_EBUSY` otherwise.
    pub rwlock_try_read_lock: weft_plat_obj_fn,
    /// Acquires exclusive access.
    pub rwlock_write_lock: weft_plat_obj_fn,
    /// Acquires exclusive access if free; `WEFT_EBUSY` otherwise.
    pub rwlock_try_write_lock: weft_plat_obj_fn,
    /// Releases shared access.
    pub rwlock_read_unlock: weft_plat_obj_fn,
    /// Releases exclusive access.
    pub rwlock_write_unlock: weft_plat_obj_fn,
}

/// The one symbol a plugin exports, `weft_platform_entry`. It receives the runtime's
/// host services (static, valid for the life of the process) and returns the plugin's
/// static table, or NULL if the plugin cannot work with this host (e.g. `host` too old).
pub type weft_platform_entry_fn = unsafe extern "C" fn(host: *const weft_host_t) -> *const weft_platform_t;

/// The name of the entry symbol, for `dlsym`.
pub const WEFT_PLATFORM_ENTRY_SYMBOL: &str = "weft_platform_entry";
