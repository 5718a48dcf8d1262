//! The runtime, its platform and the clock: open, close, drain, time, yield, sleep.
use std::ffi::{c_char, CStr};
use std::ptr;

use weft_platform::*;

use super::{any_runtime, non_null, open_runtime, open_runtime_fast, write_out};
use crate::ffi::error::{ffi, ffi_value};
use crate::ffi::sized::read_sized;
use crate::runtime::safepoint;
use crate::runtime::Runtime;
use crate::types::*;

/// Fills `cfg` with the defaults: platform from `$WEFT_PLATFORM` or "native", no hooks.
/// NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn weft_config_init(cfg: *mut weft_config_t) {
    if !cfg.is_null() {
        // SAFETY: the host's config struct, to be filled.
        unsafe { write_out(cfg, weft_config_t::default()) };
    }
}

/// Opens a runtime on the configured platform. `cfg` (may be NULL for the defaults) is
/// borrowed for the call. On success `*out` receives a runtime the caller owns and must
/// close with `weft_runtime_close`. Plugin problems are `WEFT_EPLUGIN` with the path and
/// the reason in `weft_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn weft_runtime_open(cfg: *const weft_config_t, out: *mut *mut weft_runtime_t) -> weft_status_t {
    // The look for the plugin fails where it is not (no weft call sets errno).
    let _errno = weft_platform::errno::Kept::new();
    ffi("weft_runtime_open", || {
        non_null(out, "out")?;
        let cfg = if cfg.is_null() {
            weft_config_t::default()
        } else {
            // SAFETY: a config from the host begins with its struct_size.
            unsafe { read_sized(cfg, weft_config_t::default(), "weft_config_t")? }
        };
        // SAFETY: a non-NULL platform is the host's NUL-terminated string.
        let platform = (!cfg.platform.is_null()).then(|| unsafe { CStr::from_ptr(cfg.platform) });
        let rt = Runtime::open(&cfg, platform)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, rt as *const Runtime as *mut weft_runtime_t) };
        Ok(())
    })
}

/// Closes a runtime. `WEFT_EBUSY` (and nothing changes) while tasks it spawned still
/// run (`weft_runtime_drain` waits for them), other threads are still attached, or a
/// stop-the-world is in force; the caller's own attachment, if any, ends. Task handles
/// not yet joined stay valid for `weft_join`/`weft_detach`. Afterwards every call on
/// `rt` or its objects is `WEFT_EINVAL`, except the `_destroy`, `_retain` and `_release`
/// functions, the unlocks (a lock held at the close can still be released), `weft_cancel`
/// of a handle not yet joined (its task has ended: it does nothing), and the
/// reads that return a value, not a status (`weft_chan_capacity`,
/// `weft_chan_close_code`, `weft_sem_value`). The plugin stays loaded.
#[no_mangle]
pub unsafe extern "C" fn weft_runtime_close(rt: *mut weft_runtime_t) -> weft_status_t {
    // The platform's teardown joins and closes its threads and fds (no weft call sets errno).
    let _errno = weft_platform::errno::Kept::new();
    ffi("weft_runtime_close", || open_runtime(rt)?.close())
}

/// Waits until no task spawned on `rt` runs any more, detached tasks included, so that
/// `weft_runtime_close` can succeed; `WEFT_ETIMEDOUT` at `deadline` if some still run.
/// Tasks may still be spawned meanwhile (the wait then lasts until they end too). The
/// waiting caller is in a blocking region. Called from a task of `rt`, it waits for
/// itself: it can only time out.
#[no_mangle]
pub unsafe extern "C" fn weft_runtime_drain(rt: *mut weft_runtime_t, deadline: i64) -> weft_status_t {
    ffi("weft_runtime_drain", || open_runtime(rt)?.drain(deadline))
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
    // The plugin's clock is an extern "C" call that cannot unwind: no guard needed.
    match open_runtime_fast(rt) {
        Some(rt) => rt.now(),
        None => now_refused(rt),
    }
}

/// `weft_now` for a runtime the fast path refused: -1 and the reason.
#[cold]
#[inline(never)]
fn now_refused(rt: *const weft_runtime_t) -> i64 {
    ffi_value("weft_now", -1, || Ok(open_runtime(rt)?.now()))
}

/// The deadline `ns` nanoseconds from now (`weft_now(rt) + ns`, saturating at
/// `WEFT_FOREVER`; a negative `ns` gives a deadline already past). -1 for an invalid
/// runtime.
#[no_mangle]
pub unsafe extern "C" fn weft_deadline_after(rt: *const weft_runtime_t, ns: i64) -> i64 {
    match open_runtime_fast(rt) {
        Some(rt) => rt.deadline_after(ns),
        None => deadline_after_refused(rt, ns),
    }
}

/// `weft_deadline_after` for a runtime the fast path refused: -1 and the reason.
#[cold]
#[inline(never)]
fn deadline_after_refused(rt: *const weft_runtime_t, ns: i64) -> i64 {
    ffi_value("weft_deadline_after", -1, || Ok(open_runtime(rt)?.deadline_after(ns)))
}

/// Lets other tasks run; on OS threads, a `sched_yield`. A loop that spins on
/// `weft_yield` does not hold up a stop-the-world (and does not run on while the world
/// is stopped): the call polls the safepoint before it yields and after. (Where the
/// yield leaves the task queued behind others, as on green, a stop waits until it runs
/// again and polls.)
#[no_mangle]
pub unsafe extern "C" fn weft_yield(rt: *mut weft_runtime_t) -> weft_status_t {
    // The fast path, with no stop requested: `sched_yield` in tail position where the
    // plugin says that is its yield, else the plugin's yield (an extern "C" call, which
    // cannot unwind) and a second poll. A stop, or an error, goes through the guard, out
    // of line.
    if let Some(rt) = open_runtime_fast(rt) {
        if !safepoint::stop_requested(rt) {
            if rt.yield_is_sched_yield() {
                return yield_by_sched_yield();
            }
            let status = rt.plugin_yield();
            if status == WEFT_OK && !safepoint::stop_requested(rt) {
                return WEFT_OK;
            }
            return yielded_slowly(rt, status);
        }
    }
    yield_checked(rt)
}

/// The yield of a platform whose yield is `sched_yield` (`WEFT_CAP_SCHED_YIELD`), made
/// in tail position so that the system call returns straight to the host. After a
/// system call, each return through another frame costs a mispredicted return (about
/// 6 ns here, more than all of `weft_yield`'s checks: docs/performance.md, "weft_yield
/// returns from the system call straight to the host"). So the stop is polled before
/// the yield only: one requested meanwhile waits for the caller's next poll (in a loop
/// that spins on `weft_yield`, its next call), as it waits for any running mutator, and
/// the world is not stopped before that poll.
#[inline(always)]
fn yield_by_sched_yield() -> weft_status_t {
    // Linux's sched_yield always returns 0, which is WEFT_OK (sched_yield(2)).
    const _: () = assert!(WEFT_OK == 0);
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() }
}

/// The end of a fast-path yield that met a stop or an error: parks for the stop, then
/// reports the plugin's status.
#[cold]
#[inline(never)]
fn yielded_slowly(rt: &Runtime, status: weft_status_t) -> weft_status_t {
    ffi("weft_yield", || {
        safepoint::poll(rt);
        rt.yielded(status)
    })
}

#[cold]
#[inline(never)]
fn yield_checked(rt: *mut weft_runtime_t) -> weft_status_t {
    ffi("weft_yield", || open_runtime(rt)?.yield_now())
}

/// Sleeps until `deadline` (a deadline already past returns at once). A cancellation
/// point: `WEFT_ECANCELED` if the calling task is cancelled before or while it sleeps.
/// The sleeping task is in a blocking region: a stop-the-world does not wait for it.
#[no_mangle]
pub unsafe extern "C" fn weft_sleep_until(rt: *mut weft_runtime_t, deadline: i64) -> weft_status_t {
    ffi("weft_sleep_until", || open_runtime(rt)?.sleep_until(deadline))
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

/// The library's version as one number, MAJOR * 1000000 + MINOR * 1000 + PATCH (0.1.0
/// is 1000): compare it with the `WEFT_VERSION_NUMBER` of the header a program was
/// compiled with to find a library older than the header.
#[no_mangle]
pub extern "C" fn weft_version_number() -> u32 {
    const fn number(text: &str) -> u32 {
        let bytes = text.as_bytes();
        let mut value = 0;
        let mut i = 0;
        while i < bytes.len() {
            value = value * 10 + (bytes[i] - b'0') as u32;
            i += 1;
        }
        value
    }
    const NUMBER: u32 = number(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + number(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
        + number(env!("CARGO_PKG_VERSION_PATCH"));
    NUMBER
}
