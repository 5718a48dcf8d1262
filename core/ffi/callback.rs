//! Calling the host's callbacks: task functions, task hooks, slot destructors, channel
//! `elem_drop`, blob destructors, `weft_tasks_foreach` visitors.
//!
//! A callback must return normally: no C++ exception may leave it, no `longjmp` may
//! jump out of it. An exception that escaped would unwind through weft's Rust frames
//! (and, on the pthread plugin, C frames) with locks held and counts half-updated,
//! which is undefined, and it used to end differently per callback and plugin (let
//! through to the caller, or `std::terminate`, or Rust's "cannot catch foreign
//! exceptions"). So every callback is called as `extern "C-unwind"` (`may_unwind!`),
//! which makes the call site unwind-aware, under a guard that turns any unwinding out
//! of a callback into the same immediate abort, with a message naming the callback,
//! on every plugin. (`longjmp` cannot be detected; it stays undefined.)
use std::ffi::c_void;

use weft_platform::weft_plat_elem_drop_fn;

/// `$f`, an `unsafe extern "C" fn` of the host, as the same function declared
/// `extern "C-unwind"`, so that calling it gives the call site the landing pad that the
/// guard of `host_call` needs. (The public callback types stay `extern "C"`: the two
/// ABIs are one calling convention and the C declarations are the same.)
macro_rules! may_unwind {
    ($f:expr, fn($($arg:ty),*) $(-> $ret:ty)?) => {{
        let f: unsafe extern "C" fn($($arg),*) $(-> $ret)? = $f;
        // SAFETY: "C" and "C-unwind" differ only in whether the callee may unwind; the
        // calling convention and the signature are the same.
        unsafe {
            std::mem::transmute::<unsafe extern "C" fn($($arg),*) $(-> $ret)?, unsafe extern "C-unwind" fn($($arg),*) $(-> $ret)?>(f)
        }
    }};
}
pub(crate) use may_unwind;

/// Aborts the process if dropped, which only happens when a callback unwinds: a normal
/// return forgets the guard.
struct AbortOnUnwind(&'static str);

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!(
            "weft: {} let a C++ exception (or another unwind) escape into weft; callbacks must return normally (see weft.h), so the process is aborted",
            self.0
        );
        std::process::abort();
    }
}

/// Runs `call`, a call of the host callback named by `what`; any unwinding out of it
/// aborts the process with a message. The `catch_unwind` is what makes the unwinder run
/// the guard wherever the callback was called from: without a handler above it (a
/// thread-exit destructor, say) a C++ exception would go straight to `std::terminate`.
#[inline(always)]
pub(crate) fn host_call<R>(what: &'static str, call: impl FnOnce() -> R) -> R {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let guard = AbortOnUnwind(what);
        let value = call();
        std::mem::forget(guard);
        value
    }));
    match caught {
        Ok(value) => value,
        // Only after the guard has aborted the process, so never; kept as an abort too.
        Err(_) => {
            drop(AbortOnUnwind(what));
            unreachable!()
        }
    }
}

/// The host's `elem_drop` and its `drop_ud`, handed to the plugin's `chan_free` through
/// `elem_drop_trampoline`, so that a plugin never calls a host callback directly.
pub(crate) struct HostElemDrop {
    pub(crate) elem_drop: unsafe extern "C-unwind" fn(*mut c_void, *mut c_void),
    pub(crate) ud: *mut c_void,
}

unsafe extern "C" fn elem_drop_trampoline(elem: *mut c_void, host: *mut c_void) {
    // SAFETY: `host` is the `HostElemDrop` given to `chan_free` with this function, alive
    // for the whole call.
    let host = unsafe { &*(host as *const HostElemDrop) };
    // SAFETY: the host's elem_drop, called on an undelivered element with its drop_ud.
    host_call("a channel's elem_drop callback", || unsafe { (host.elem_drop)(elem, host.ud) });
}

/// The drop function and user data to pass to a plugin's `chan_free` for `host`.
pub(crate) fn plugin_elem_drop(host: Option<&HostElemDrop>) -> (weft_plat_elem_drop_fn, *mut c_void) {
    match host {
        Some(host) => (Some(elem_drop_trampoline), host as *const HostElemDrop as *mut c_void),
        None => (None, std::ptr::null_mut()),
    }
}
