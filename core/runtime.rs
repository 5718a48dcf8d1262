//! Opening and closing a runtime, its configuration, the clock, yield and sleep.
//!
//! A runtime is never freed: a closed one keeps its small shell so that a late call
//! through a stale pointer gets `WEFT_EINVAL` ("runtime was closed") instead of touching
//! freed memory. Everything heavy (the plugin's state, the mutator registry) is released.
use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::Acquire, Ordering::SeqCst};

use parking_lot::Mutex;
use weft_platform::*;

use crate::error::{check_plugin, fail, ffi, ffi_value, Result};
use crate::loader::{self, plat_call, Platform};
use crate::safepoint::{self, World};
use crate::sized::read_sized;
use crate::task::weft_task_t;

/// Called on a task's own thread when it starts (before its function) and just before
/// it exits (after its function, before its task-local destructors). `ud` is
/// `weft_config_t.hook_ud`; `task` is borrowed for the call.
pub type weft_task_hook_fn = Option<unsafe extern "C" fn(ud: *mut c_void, task: *mut weft_task_t)>;

/// Runtime configuration. Initialise with `weft_config_init`, then set what you need.
/// Borrowed by `weft_runtime_open` for the call only.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct weft_config_t {
    /// `sizeof(weft_config_t)`; set by `weft_config_init`.
    pub struct_size: u32,
    /// A platform name ("native" loads `libweft_native.so`, looked up next to libweft.so,
    /// then in `$WEFT_PLUGIN_PATH`) or a path (anything containing '/'). NULL:
    /// `$WEFT_PLATFORM`, else "native".
    pub platform: *const c_char,
    /// Worker threads for an M:N platform; 0 = one per CPU. Other platforms ignore it.
    pub workers: u32,
    /// Reserved for option bits; must be 0.
    pub flags: u32,
    /// Seed for a deterministic platform. Other platforms ignore it.
    pub seed: u64,
    /// Optional: run on each task's own thread when it starts.
    pub on_task_start: weft_task_hook_fn,
    /// Optional: run on each task's own thread just before it exits.
    pub on_task_exit: weft_task_hook_fn,
    /// Passed to both hooks.
    pub hook_ud: *mut c_void,
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

/// A runtime: one loaded platform plus the registry of its tasks and mutators.
pub struct weft_runtime_t {
    magic: u32,
    /// Read on every call; written once, at close.
    closed: AtomicBool,
    /// The plugin's table, copied in: one dependent load less on every call.
    pub(crate) table: weft_platform_t,
    pub(crate) prt: *mut weft_plat_rt_t,
    pub(crate) on_task_start: weft_task_hook_fn,
    pub(crate) on_task_exit: weft_task_hook_fn,
    pub(crate) hook_ud: *mut c_void,
    info: weft_platform_info_t,
    /// Running tasks, plus CLOSING while a close is deciding.
    tasks: AtomicU64,
    pub(crate) world: World,
}

// SAFETY: the raw pointers are the plugin's state and the host's hook data, both made
// to be used from any thread.
unsafe impl Send for weft_runtime_t {}
unsafe impl Sync for weft_runtime_t {}

const RUNTIME_MAGIC: u32 = 0x5752_544d;
const CLOSING: u64 = 1 << 63;

/// Closed runtimes, kept reachable (see the module comment).
static CLOSED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// The runtime opened last, for calls that take no runtime and come from a thread that
/// is not a mutator (a select with no cases).
static LAST_OPENED: AtomicPtr<weft_runtime_t> = AtomicPtr::new(ptr::null_mut());

/// The runtime a call without a runtime argument uses: the caller's (a task's, or an
/// attached thread's), else the one opened last, if it is still open.
pub(crate) fn implicit_runtime() -> Option<&'static weft_runtime_t> {
    // SAFETY: runtimes are never freed.
    let rt = crate::safepoint::caller_runtime().or_else(|| unsafe { LAST_OPENED.load(Acquire).as_ref() })?;
    rt.is_open().then_some(rt)
}

impl weft_runtime_t {
    pub(crate) fn is_open(&self) -> bool {
        !self.closed.load(Acquire)
    }

    /// Counts a task about to start; fails once the runtime is closed.
    pub(crate) fn begin_task(&self) -> Result<()> {
        loop {
            if self.tasks.fetch_add(1, SeqCst) & CLOSING == 0 {
                return Ok(());
            }
            self.tasks.fetch_sub(1, SeqCst);
            if self.closed.load(SeqCst) {
                fail!(WEFT_EINVAL, "the runtime is closed");
            }
            // A close is deciding: it holds CLOSING only while it checks the registry,
            // and it may still be refused (attached threads). A spawn must not fail
            // because of a close that does not happen, so wait for the decision. Not
            // through the plugin: once the close succeeds, its state is being freed.
            std::thread::yield_now();
        }
    }

    /// Counts a task that has exited (the last thing its `task_run` does).
    pub(crate) fn end_task(&self) {
        self.tasks.fetch_sub(1, SeqCst);
    }

    pub(crate) fn now(&self) -> i64 {
        plat_call!(self.table, now(self.prt))
    }
}

/// `open_runtime` for the fast paths: the same checks, None instead of an error (the
/// checked path then says what is wrong). Only loads.
#[inline(always)]
pub(crate) fn open_runtime_fast(rt: *const weft_runtime_t) -> Option<&'static weft_runtime_t> {
    // SAFETY: as in `any_runtime`.
    let rt = unsafe { rt.as_ref() }?;
    (rt.magic == RUNTIME_MAGIC && rt.is_open()).then_some(rt)
}

/// Checks a runtime pointer from the host: not NULL, a runtime, not closed.
pub(crate) fn open_runtime(rt: *const weft_runtime_t) -> Result<&'static weft_runtime_t> {
    let rt = any_runtime(rt)?;
    if !rt.is_open() {
        fail!(WEFT_EINVAL, "runtime {rt:p} was closed");
    }
    Ok(rt)
}

/// Like `open_runtime`, but a closed runtime is accepted (for destroy-style calls).
pub(crate) fn any_runtime(rt: *const weft_runtime_t) -> Result<&'static weft_runtime_t> {
    // SAFETY: a non-NULL pointer from the host is a runtime from weft_runtime_open,
    // and runtimes are never freed.
    let Some(rt) = (unsafe { rt.as_ref() }) else { fail!(WEFT_EINVAL, "runtime is NULL") };
    if rt.magic != RUNTIME_MAGIC {
        fail!(WEFT_EINVAL, "{rt:p} is not a weft runtime");
    }
    Ok(rt)
}

/// Fills `cfg` with the defaults: platform from `$WEFT_PLATFORM` or "native", no hooks.
/// NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn weft_config_init(cfg: *mut weft_config_t) {
    if !cfg.is_null() {
        cfg.write(weft_config_t::default());
    }
}

/// Opens a runtime on the configured platform. `cfg` (may be NULL for the defaults) is
/// borrowed for the call. On success `*out` receives a runtime the caller owns and must
/// close with `weft_runtime_close`. Plugin problems are `WEFT_EPLUGIN` with the path and
/// the reason in `weft_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn weft_runtime_open(cfg: *const weft_config_t, out: *mut *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_runtime_open", || {
        if out.is_null() {
            fail!(WEFT_EINVAL, "out is NULL");
        }
        let cfg = if cfg.is_null() {
            weft_config_t::default()
        } else {
            read_sized(cfg, weft_config_t::default(), "weft_config_t")?
        };
        if cfg.flags != 0 {
            fail!(WEFT_EINVAL, "unknown weft_config_t.flags 0x{:x}", cfg.flags);
        }
        let spec = (!cfg.platform.is_null()).then(|| CStr::from_ptr(cfg.platform));
        let platform: &'static Platform = loader::load(spec)?;
        let table = &platform.table;
        let plat_cfg = weft_plat_config_t {
            struct_size: std::mem::size_of::<weft_plat_config_t>() as u32,
            workers: cfg.workers,
            seed: cfg.seed,
        };
        let mut prt = ptr::null_mut();
        check_plugin(plat_call!(table, runtime_open(&plat_cfg, &mut prt)), || {
            format!("platform \"{}\" could not open a runtime", platform.name.to_string_lossy())
        })?;
        let world = match World::new(table, prt) {
            Ok(world) => world,
            Err(e) => {
                plat_call!(table, runtime_close(prt));
                return Err(e);
            }
        };
        let rt = Box::new(weft_runtime_t {
            magic: RUNTIME_MAGIC,
            closed: AtomicBool::new(false),
            // SAFETY: a plain copy of the accepted table (pointers to the plugin's
            // static data and functions, valid for the life of the process).
            table: unsafe { std::ptr::read(table) },
            prt,
            on_task_start: cfg.on_task_start,
            on_task_exit: cfg.on_task_exit,
            hook_ud: cfg.hook_ud,
            info: weft_platform_info_t {
                struct_size: std::mem::size_of::<weft_platform_info_t>() as u32,
                abi_version: table.abi_version,
                name: platform.name.as_ptr(),
                version: platform.version.as_ptr(),
                path: platform.path.as_ptr(),
                caps: table.caps,
            },
            tasks: AtomicU64::new(0),
            world,
        });
        let rt = Box::into_raw(rt);
        // A platform that preempts polling tasks learns the poll word (ABI 2 and later).
        if let Some(attach) = (*rt).table.preempt_attach {
            attach(prt, (*rt).world.flag.as_ptr());
        }
        LAST_OPENED.store(rt, SeqCst);
        *out = rt;
        Ok(())
    })
}

/// Closes a runtime. `WEFT_EBUSY` (and nothing changes) while tasks it spawned still
/// run, other threads are still attached, or a stop-the-world is in force; the caller's
/// own attachment, if any, ends.
/// Task handles not yet joined stay valid for `weft_join`/`weft_detach`. Afterwards
/// every call on `rt` or its objects is `WEFT_EINVAL`, except the `_destroy` functions.
/// The plugin stays loaded.
#[no_mangle]
pub unsafe extern "C" fn weft_runtime_close(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_runtime_close", || {
        let rt = open_runtime(rt)?;
        if rt.tasks.compare_exchange(0, CLOSING, SeqCst, SeqCst).is_err() {
            let running = rt.tasks.load(SeqCst) & !CLOSING;
            if running == 0 {
                fail!(WEFT_EBUSY, "another thread is closing this runtime");
            }
            fail!(WEFT_EBUSY, "{running} task(s) of this runtime still run");
        }
        if let Err(e) = rt.world.close_registry(|| rt.closed.store(true, SeqCst)) {
            // Clear only the CLOSING bit: a concurrent spawn may have counted itself in
            // the meantime and will take itself out again; storing 0 here would make its
            // decrement wrap the count, leaving the runtime unusable and unclosable.
            rt.tasks.fetch_and(!CLOSING, SeqCst);
            return Err(e);
        }
        rt.world.release();
        plat_call!(rt.table, runtime_close(rt.prt));
        CLOSED.lock().push(rt as *const weft_runtime_t as usize);
        Ok(())
    })
}

/// The loaded platform's name, version, path, ABI version and capabilities, or NULL
/// (with `weft_last_error()`) for an invalid runtime. Owned by weft; valid forever.
#[no_mangle]
pub unsafe extern "C" fn weft_runtime_platform(rt: *const weft_runtime_t) -> *const weft_platform_info_t {
    ffi_value("weft_runtime_platform", ptr::null(), || Ok(&any_runtime(rt)?.info as *const _))
}

/// The runtime's monotonic clock in nanoseconds (virtual on a virtual-time platform).
/// -1 for an invalid runtime (with `weft_last_error()`); as a deadline, -1 means
/// "do not wait".
#[no_mangle]
pub unsafe extern "C" fn weft_now(rt: *const weft_runtime_t) -> i64 {
    // The plugin's clock is an extern "C" call that cannot unwind: no boundary needed.
    match open_runtime_fast(rt) {
        Some(rt) => rt.now(),
        None => ffi_value("weft_now", -1, || Ok(open_runtime(rt)?.now())),
    }
}

/// The deadline `ns` nanoseconds from now (`weft_now(rt) + ns`, saturating at
/// `WEFT_FOREVER`; a negative `ns` gives a deadline already past). -1 for an invalid
/// runtime.
#[no_mangle]
pub unsafe extern "C" fn weft_deadline_after(rt: *const weft_runtime_t, ns: i64) -> i64 {
    match open_runtime_fast(rt) {
        Some(rt) => rt.now().saturating_add(ns),
        None => ffi_value("weft_deadline_after", -1, || Ok(open_runtime(rt)?.now().saturating_add(ns))),
    }
}

/// Lets other tasks run; on OS threads, a `sched_yield`. The caller is in a blocking
/// region while it yields, so a loop that spins on `weft_yield` does not hold up a
/// stop-the-world (and does not run on while the world is stopped).
#[no_mangle]
pub unsafe extern "C" fn weft_yield(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_yield", || {
        let rt = open_runtime(rt)?;
        // The plugin does not count a yield as blocking, but a VM spin-waiting with it
        // (for a lock of its own, for another thread's progress) must be stoppable.
        let status = safepoint::in_blocking_region(rt, || plat_call!(rt.table, yield_now(rt.prt)));
        check_plugin(status, || "the platform could not yield".into())
    })
}

/// Sleeps until `deadline` (a deadline already past returns at once). A cancellation
/// point: `WEFT_ECANCELED` if the calling task is cancelled before or while it sleeps.
/// The sleeping task is in a blocking region: a stop-the-world does not wait for it.
#[no_mangle]
pub unsafe extern "C" fn weft_sleep_until(rt: *mut weft_runtime_t, deadline: i64) -> weft_status_t {
    ffi("weft_sleep_until", || {
        let rt = open_runtime(rt)?;
        check_plugin(plat_call!(rt.table, sleep_until(rt.prt, deadline)), || "sleep interrupted".into())
    })
}

static VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(v) => v,
    Err(_) => panic!("version string"),
};

/// The library's version, "MAJOR.MINOR.PATCH" (the same as the `WEFT_VERSION_*` macros
/// of the header it was built with). Static.
#[no_mangle]
pub extern "C" fn weft_version() -> *const c_char {
    VERSION.as_ptr()
}
