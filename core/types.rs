//! The C types of the public API: opaque handles, `repr(C)` structs, callbacks and
//! constants. A leaf module: the API layer and the runtime both use it, it uses neither.
//! The opaque handles are only names for C; behind each is a runtime type (`Runtime`,
//! `Task`, `Channel`, `Blob`) that the API layer checks the pointer against.
use std::ffi::{c_char, c_void};
use std::ptr;

/// A runtime: one loaded platform plugin, the registry of its tasks and mutators, and
/// its stop-the-world state. Opaque. Made by `weft_runtime_open`, owned by the caller,
/// given back with `weft_runtime_close`.
pub struct weft_runtime_t {
    _private: [u8; 0],
}

/// A spawned task. Opaque. Returned by `weft_spawn`; the caller owns the handle and
/// gives it back exactly once, with `weft_join` (once it returns `WEFT_OK`) or
/// `weft_detach`.
pub struct weft_task_t {
    _private: [u8; 0],
}

/// A channel of fixed-size elements, copied in and out. Opaque, reference-counted:
/// made by `weft_chan_new` with one reference, owned by the caller; `weft_chan_retain`
/// adds one, `weft_chan_release` gives one back. Every task that uses the channel owns
/// a reference (or borrows one that outlives its calls).
pub struct weft_chan_t {
    _private: [u8; 0],
}

/// An immutable, reference-counted byte payload. Opaque. Made by `weft_blob_new` or
/// `weft_blob_wrap` with one reference, owned by the caller; `weft_blob_retain` adds
/// one, `weft_blob_release` gives one back. Any task may read the bytes while it owns a
/// reference; nobody may change them.
pub struct weft_blob_t {
    _private: [u8; 0],
}

/// Called on a task's own thread of execution when it starts (before its function) and
/// just before it exits (after its function, before its task-local destructors). `task`
/// is borrowed for the call; `ud` is `weft_config_t.hook_ud`.
pub type weft_task_hook_fn = Option<unsafe extern "C" fn(task: *mut weft_task_t, ud: *mut c_void)>;

/// `weft_config_t.flags`: report the first acquisition that closes a cycle in the
/// "held A while acquiring B" graph of mutexes and rwlocks (a lock-order inversion),
/// once per pair of locks, even if no deadlock happens. See docs/checks.md.
pub const WEFT_CHECK_LOCK_ORDER: u32 = 1;
/// `weft_config_t.flags`: a blocking lock or join that would close a cycle of waits
/// returns `WEFT_EDEADLK` at once (and reports it) instead of waiting for ever.
pub const WEFT_CHECK_DEADLOCK: u32 = 2;

/// Takes a check's report instead of stderr: `report` (borrowed for the call) starts
/// with a line `weft: lock-order inversion` or `weft: deadlock`; `ud` is
/// `weft_config_t.hook_ud`. Called on the task whose call found the problem.
pub type weft_check_report_fn = Option<unsafe extern "C" fn(report: *const c_char, ud: *mut c_void)>;

/// Runtime configuration. Initialise with `weft_config_init`, then set what you need.
/// Borrowed by `weft_runtime_open` for the call only.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct weft_config_t {
    /// `sizeof(weft_config_t)`; set by `weft_config_init`.
    pub struct_size: u32,
    /// A platform name ("native" loads `libweft_native.so`, looked up next to libweft.so
    /// (next to the program for libweft.a), then in the installed plugin directory
    /// `LIBDIR/weft/plugins`, then in `$WEFT_PLUGIN_PATH`; never in the current directory)
    /// or a path (anything containing '/'). NULL: `$WEFT_PLATFORM`, else "native".
    pub platform: *const c_char,
    /// Worker threads for an M:N platform; 0 = one per CPU. Other platforms ignore it.
    pub workers: u32,
    /// `WEFT_CHECK_*` bits, merged with `$WEFT_CHECKS` (comma-separated `lock-order`,
    /// `deadlock`, `all`). 0: no checks, and no cost.
    pub flags: u32,
    /// Seed for a deterministic platform. Other platforms ignore it.
    pub seed: u64,
    /// Optional: run on each task when it starts.
    pub on_task_start: weft_task_hook_fn,
    /// Optional: run on each task just before it exits.
    pub on_task_exit: weft_task_hook_fn,
    /// Passed to both hooks and to `on_check_report`.
    pub hook_ud: *mut c_void,
    /// Optional: receives the reports of the checks instead of stderr.
    pub on_check_report: weft_check_report_fn,
}

impl Default for weft_config_t {
    fn default() -> Self {
        weft_config_t {
            struct_size: std::mem::size_of::<weft_config_t>() as u32,
            platform: ptr::null(),
            workers: 0,
            flags: 0,
            seed: 0,
            on_task_start: None,
            on_task_exit: None,
            hook_ud: ptr::null_mut(),
            on_check_report: None,
        }
    }
}

/// What `weft_runtime_platform` tells about the loaded plugin. Owned by weft, valid
/// for the life of the process.
#[repr(C)]
pub struct weft_platform_info_t {
    /// `sizeof(weft_platform_info_t)` of the library that filled it.
    pub struct_size: u32,
    /// The plugin's ABI version.
    pub abi_version: u32,
    /// The plugin's name, e.g. "native".
    pub name: *const c_char,
    /// The plugin's own version string.
    pub version: *const c_char,
    /// The file the plugin was loaded from.
    pub path: *const c_char,
    /// `WEFT_CAP_*` bits.
    pub caps: u64,
}

/// A task's function. It runs on the task; `arg` is what was given to `weft_spawn`.
/// It may store a pointer in `*result` for the joiner. A non-zero return means the task
/// failed with that code; `weft_join` reports it.
pub type weft_task_fn = Option<unsafe extern "C" fn(arg: *mut c_void, result: *mut *mut c_void) -> i32>;

/// `weft_spawn_opts_t.flags`: the task is detached from the start; `weft_spawn` returns
/// no handle (its `out` may be NULL and is set to NULL).
pub const WEFT_SPAWN_DETACHED: u32 = 1;

/// The stack size of a task spawned with `stack_size` 0: 8 MiB, glibc's usual default
/// for a pthread, on every platform.
pub const WEFT_DEFAULT_STACK_SIZE: usize = 8 << 20;

/// The smallest stack weft gives a task (smaller requests are raised to it): less could
/// not run the runtime's own bookkeeping around the task function.
pub const WEFT_MIN_STACK_SIZE: usize = 64 << 10;

/// Options for `weft_spawn`. Initialise with `weft_spawn_opts_init`. Borrowed for the
/// call only (the name is copied).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct weft_spawn_opts_t {
    /// `sizeof(weft_spawn_opts_t)`; set by `weft_spawn_opts_init`.
    pub struct_size: u32,
    /// The task's name (copied), shown by `weft_tasks_foreach` and, where the platform
    /// can, by debuggers. NULL: unnamed.
    pub name: *const c_char,
    /// Stack size in bytes, a minimum: raised to `WEFT_MIN_STACK_SIZE` (64 KiB) and
    /// rounded up to whole pages. 0 = `WEFT_DEFAULT_STACK_SIZE` (8 MiB). The same on every
    /// platform. At most 2^56 (`WEFT_ENOMEM` above).
    pub stack_size: usize,
    /// `WEFT_SPAWN_*` bits.
    pub flags: u32,
    /// Optional: receives the new task's id (as `weft_task_id`) on success, also for a
    /// `WEFT_SPAWN_DETACHED` task, which has no handle to ask.
    pub id_out: *mut u64,
}

impl Default for weft_spawn_opts_t {
    fn default() -> Self {
        weft_spawn_opts_t {
            struct_size: std::mem::size_of::<weft_spawn_opts_t>() as u32,
            name: ptr::null(),
            stack_size: 0,
            flags: 0,
            id_out: ptr::null_mut(),
        }
    }
}

/// A task-local key. 0 is never a valid key. Its low `WEFT_KEY_SLOT_BITS` bits are
/// its slot + 1 (see `WEFT_KEY_SLOT`), the rest a generation that changes when a
/// deleted key's slot is reused.
pub type weft_key_t = u32;

/// Destructor of task-local values, called with a non-NULL value when its task exits.
pub type weft_key_dtor_fn = Option<unsafe extern "C" fn(value: *mut c_void)>;

/// How many keys may be live at once in a process (created and not deleted). Deleted
/// keys do not count: a process may create and delete keys without end.
pub const WEFT_KEYS_MAX: u32 = (1 << WEFT_KEY_SLOT_BITS) - 1;

/// The bits of a key that name its slot (`WEFT_KEY_SLOT`).
pub const WEFT_KEY_SLOT_BITS: u32 = 20;

/// `weft_mutex_init` flag: the owner may lock again; each lock needs its unlock. A
/// recursive mutex is held at most 16,777,216 (2^24) times at once: one more lock is
/// `WEFT_ENOMEM`.
pub const WEFT_MUTEX_RECURSIVE: u32 = 1;

/// Called on each element a channel still holds when its last reference goes:
/// `elem` points to the element's `elem_size` bytes (valid during the call only), `ud`
/// is `weft_chan_opts_t.drop_ud`. `elem` is aligned as any C type of `elem_size` bytes
/// needs (to the largest power of two that divides `elem_size`, up to 16: a 16-byte
/// `long double` or a struct of two pointers is read in place as its type).
pub type weft_chan_drop_fn = Option<unsafe extern "C" fn(elem: *mut c_void, ud: *mut c_void)>;

/// Options for `weft_chan_new`. Initialise with `weft_chan_opts_init`. Borrowed for the
/// call only.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct weft_chan_opts_t {
    /// `sizeof(weft_chan_opts_t)`; set by `weft_chan_opts_init`.
    pub struct_size: u32,
    /// Optional. When the channel's last reference is released, called exactly once on
    /// each element that was sent but never received, oldest first. Never called on an
    /// element that was received, nor on one whose send failed (that element stays the
    /// sender's). This is how a channel of owned pointers ("move") never leaks. It must
    /// not call into the channel being released.
    pub elem_drop: weft_chan_drop_fn,
    /// Passed to `elem_drop` as `ud`.
    pub drop_ud: *mut c_void,
}

impl Default for weft_chan_opts_t {
    fn default() -> Self {
        weft_chan_opts_t {
            struct_size: std::mem::size_of::<weft_chan_opts_t>() as u32,
            elem_drop: None,
            drop_ud: ptr::null_mut(),
        }
    }
}

/// One case of `weft_select`: send from, or receive into, `buf` on `chan`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct weft_select_case_t {
    /// The channel (borrowed: the caller owns a reference for the duration of the call).
    pub chan: *mut weft_chan_t,
    /// `WEFT_SELECT_SEND` or `WEFT_SELECT_RECV`.
    pub op: i32,
    /// Send: the element to send (`elem_size` bytes, copied only if this case is
    /// chosen). Receive: where the element is written, only if this case is chosen.
    /// May be NULL only for a channel of 0-byte elements.
    pub buf: *mut c_void,
}

/// Frees the memory a blob wrapped: called once, by the last `weft_blob_release`, with
/// the `ptr` and `ud` given to `weft_blob_wrap`.
pub type weft_blob_dtor_fn = Option<unsafe extern "C" fn(ptr: *mut c_void, ud: *mut c_void)>;

/// The mutator runs managed code (or may at any moment).
pub const WEFT_TASK_RUNNING: u32 = 0;
/// The mutator is parked at a safepoint.
pub const WEFT_TASK_AT_SAFEPOINT: u32 = 1;
/// The mutator is in a blocking region and will not touch managed memory until it
/// leaves it (and leaving waits while the world is stopped).
pub const WEFT_TASK_BLOCKING: u32 = 2;
/// A task spawned but not started yet (not a mutator: it runs nothing before the world
/// resumes). `weft_tasks_foreach` reports it, with its spawn argument in `arg`, so that
/// a collector sees the argument of a just-spawned task as a root.
pub const WEFT_TASK_STARTING: u32 = 3;

/// Number of words in `weft_task_info_t.regs`, the saved callee-saved registers. On
/// x86-64: rbx, rbp, r12, r13, r14, r15 in that order; on aarch64: x19 to x29; the
/// remaining words are 0.
pub const WEFT_SAVED_REGS: usize = 12;

/// What `weft_tasks_foreach` tells about one mutator. Borrowed: valid during the
/// callback only.
#[repr(C)]
pub struct weft_task_info_t {
    /// `sizeof(weft_task_info_t)` of the library that filled it.
    pub struct_size: u32,
    /// `WEFT_TASK_RUNNING`, `WEFT_TASK_AT_SAFEPOINT`, `WEFT_TASK_BLOCKING` or
    /// `WEFT_TASK_STARTING`. While the caller holds the stopped world, every mutator but
    /// the caller is AT_SAFEPOINT or BLOCKING (STARTING tasks are not mutators yet).
    pub state: u32,
    /// The task's id (as `weft_task_id`), or the attached thread's id (unique in the
    /// process too, never 0).
    pub id: u64,
    /// The task's name, or NULL.
    pub name: *const c_char,
    /// The task, or NULL for an attached host thread (and for a task that ended and was
    /// joined while the walk ran). It names this task for the whole call of the
    /// visitor, which may use it (`weft_cancel`, `weft_task_id`; a detached task's handle
    /// was given up: `weft_cancel` on it is `WEFT_EINVAL`).
    pub task: *mut weft_task_t,
    /// The mutator's task-local values: `locals[WEFT_KEY_SLOT(k)]` is its value for key
    /// `k` when `WEFT_KEY_SLOT(k) < nlocals` (NULL if it never set one), NULL otherwise
    /// (for a key never deleted and reused, `WEFT_KEY_SLOT(k)` is `k - 1`). Valid for
    /// the call of the visitor. Given only where they
    /// cannot change under the reader: for the caller's own entry, and for every entry
    /// while the caller holds the stopped world; otherwise `locals` is NULL and
    /// `nlocals` 0.
    pub locals: *const *mut c_void,
    /// Number of entries in `locals`.
    pub nlocals: usize,
    /// The mutator's stack: the lowest and one past the highest address of the memory
    /// its stack may use (a green or sim task's own stack; for an OS thread, what
    /// `pthread_getattr_np` reports). Found by the mutator the first time it parks,
    /// waits in a blocking region or asks (`weft_task_stack`), so given for every
    /// mutator during a stop and for the caller's own entry; NULL for a mutator that
    /// never did, and for a `WEFT_TASK_STARTING` task.
    pub stack_lo: *mut c_void,
    /// See `stack_lo`. The stack grows down from here.
    pub stack_hi: *mut c_void,
    /// The mutator's stack pointer where weft recorded it when the mutator parked or
    /// entered its (outermost) blocking region: every word of its stack a collector must
    /// scan lies in `[sp, stack_hi)`, and every callee-saved register it held then is in
    /// `regs`. Given where it cannot change under the reader: for every mutator but the
    /// caller while the caller holds the stopped world (all are AT_SAFEPOINT or
    /// BLOCKING), and for the caller's own entry (recorded by `weft_tasks_foreach`
    /// itself, valid during the callback); otherwise NULL, as for a STARTING task.
    pub sp: *mut c_void,
    /// The callee-saved registers recorded with `sp` (layout: `WEFT_SAVED_REGS`), all 0
    /// when `sp` is NULL. Scan them as words, like the stack.
    pub regs: [usize; WEFT_SAVED_REGS],
    /// The `arg` a task was spawned with, while its function has not been called yet
    /// (a `WEFT_TASK_STARTING` task, or one that started during a stop and is parked
    /// before its start hook): then weft alone holds it, so it is the task's root. NULL
    /// once the function runs (the argument is then on its stack or in its registers),
    /// and for attached threads.
    pub arg: *mut c_void,
}

/// The function `weft_blocking_call` runs inside a blocking region, with `arg` as given.
pub type weft_blocking_fn = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// Called by `weft_tasks_foreach` once per live mutator, with `ud` as given; return
/// true to stop the enumeration.
pub type weft_task_visit_fn = Option<unsafe extern "C" fn(info: *const weft_task_info_t, ud: *mut c_void) -> bool>;

/// A group of tasks with one failure policy: waited for together; the first task that
/// fails (returns non-zero) gives the group its code and cancels the others. Opaque.
/// Made by `weft_group_new`, owned by the caller, given back with `weft_group_free`.
pub struct weft_group_t {
    _private: [u8; 0],
}

/// A body of `weft_parallel_for`: handles the indices `[begin, end)` and returns 0, or
/// non-zero to fail (the sub-ranges not started yet are then skipped). `ud` is the
/// `ud` given to `weft_parallel_for`, shared by every call (which run in parallel).
pub type weft_range_fn = Option<unsafe extern "C" fn(begin: usize, end: usize, ud: *mut c_void) -> i32>;

/// Decides, atomically with respect to `weft_unpark` on the same address, whether
/// `weft_park` parks the caller: true parks. `ud` is what `weft_park` was given.
pub type weft_park_validate_fn = Option<unsafe extern "C" fn(ud: *mut c_void) -> bool>;

/// A counting semaphore in host memory: `weft_sem_init` / `weft_sem_destroy`, same rules
/// as `weft_mutex_t`. Any task may post, any task may wait: a semaphore of value 1 is the
/// lock that one thread takes and another releases (Python's `_thread.lock`).
#[repr(C)]
pub struct weft_sem_t {
    pub _opaque: [u64; 4],
}

/// A barrier in host memory for a fixed number of tasks, reusable round after round:
/// `weft_barrier_init` / `weft_barrier_destroy`, same rules as `weft_mutex_t`.
#[repr(C)]
pub struct weft_barrier_t {
    pub _opaque: [u64; 4],
}

/// Runs a function exactly once, however many tasks call `weft_once` on it at once.
/// Statically initialised: `weft_once_t once = WEFT_ONCE_INIT;`. Needs no destroy.
#[repr(C)]
pub struct weft_once_t {
    pub _opaque: [u64; 2],
}

/// The function `weft_once` runs, with its `ud`.
pub type weft_once_fn = Option<unsafe extern "C" fn(ud: *mut c_void)>;
