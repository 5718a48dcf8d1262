//! Helpers for platform plugins written in Rust: the panic boundary every exported
//! function goes through, and typed access to the host services.
use core::ffi::{c_char, c_void};
use core::sync::atomic::{AtomicPtr, Ordering};
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::abi::{weft_host_t, WEFT_HOST_ABI_VERSION};
use crate::status::{weft_status_t, WEFT_EINTERNAL};

/// The text of a caught panic.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error in the plugin (a panic was caught at its boundary): {what}")
}

/// The host services a plugin received in `weft_platform_entry`, kept in a static.
pub struct HostRef(AtomicPtr<weft_host_t>);

impl HostRef {
    pub const fn new() -> Self {
        HostRef(AtomicPtr::new(core::ptr::null_mut()))
    }

    /// Keeps `host` if it is a host this plugin can work with; returns false otherwise,
    /// in which case the entry function should return NULL.
    ///
    /// # Safety
    /// `host` must be NULL or point to a static host-services table.
    pub unsafe fn install(&self, host: *const weft_host_t) -> bool {
        // SAFETY: NULL or a static table (see above).
        let Some(table) = (unsafe { host.as_ref() }) else { return false };
        let complete = table.abi_version >= WEFT_HOST_ABI_VERSION
            && table.struct_size as usize >= core::mem::size_of::<weft_host_t>()
            && table.task_run.is_some()
            && table.blocking_enter.is_some()
            && table.blocking_leave.is_some()
            && table.set_error_detail.is_some()
            && table.cancel_pending.is_some()
            && table.context_get.is_some()
            && table.context_set.is_some();
        if complete {
            self.0.store(host as *mut weft_host_t, Ordering::Release);
        }
        complete
    }

    #[inline]
    fn table(&self) -> Option<&'static weft_host_t> {
        // SAFETY: only a static table checked by `install` is ever stored.
        unsafe { self.0.load(Ordering::Acquire).as_ref() }
    }

    /// Runs the task `ctx` to completion (see `weft_host_t.task_run`).
    ///
    /// # Safety
    /// `ctx` must be the context the runtime passed to `spawn`, used exactly once.
    pub unsafe fn task_run(&self, ctx: *mut c_void) {
        if let Some(run) = self.table().and_then(|t| t.task_run) {
            // SAFETY: the caller passes the spawn context once (see above).
            unsafe { run(ctx) }
        }
    }

    /// Enters a blocking region for the calling task. Always inlined: the runtime
    /// records the registers of the function that calls the host (see
    /// `weft_host_t.blocking_enter`), which must be the one that waits.
    #[inline(always)]
    pub fn blocking_enter(&self) {
        if let Some(enter) = self.table().and_then(|t| t.blocking_enter) {
            // SAFETY: a host function taking no arguments.
            unsafe { enter() }
        }
    }

    /// Leaves the blocking region entered with `blocking_enter`.
    #[inline]
    pub fn blocking_leave(&self) {
        if let Some(leave) = self.table().and_then(|t| t.blocking_leave) {
            // SAFETY: a host function taking no arguments.
            unsafe { leave() }
        }
    }

    /// Runs `f` inside a blocking region.
    #[inline]
    pub fn blocking<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Leave<'a>(&'a HostRef);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.blocking_leave();
            }
        }
        self.blocking_enter();
        let _leave = Leave(self);
        f()
    }

    /// True when the calling task has a cancellation pending (see
    /// `weft_host_t.cancel_pending`).
    #[inline]
    pub fn cancel_pending(&self) -> bool {
        match self.table().and_then(|t| t.cancel_pending) {
            // SAFETY: a host function taking no arguments.
            Some(pending) => unsafe { pending() != 0 },
            None => false,
        }
    }

    /// Runs the body of a table function: a panic becomes `WEFT_EINTERNAL`, never
    /// crossing the C ABI, and its message goes to the runtime as the error's detail.
    #[inline]
    pub fn guard(&self, f: impl FnOnce() -> weft_status_t) -> weft_status_t {
        self.guard_or(WEFT_EINTERNAL, f)
    }

    /// `guard` for a table function that returns a value: `fallback` on a panic.
    #[inline]
    pub fn guard_or<T>(&self, fallback: T, f: impl FnOnce() -> T) -> T {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => value,
            Err(payload) => {
                self.fail(WEFT_EINTERNAL, &panic_message(&*payload));
                fallback
            }
        }
    }

    /// The running weft context of the calling OS thread (see `weft_host_t.context_get`).
    #[inline]
    pub fn context_get(&self) -> *mut c_void {
        match self.table().and_then(|t| t.context_get) {
            // SAFETY: a host function taking no arguments.
            Some(get) => unsafe { get() },
            None => core::ptr::null_mut(),
        }
    }

    /// Makes `ctx` the running weft context of the calling OS thread and returns the
    /// previous one (see `weft_host_t.context_set`).
    ///
    /// # Safety
    /// `ctx` is NULL or a value `context_get`/`context_set` returned, whose task (or
    /// thread) is still alive.
    #[inline]
    pub unsafe fn context_set(&self, ctx: *mut c_void) -> *mut c_void {
        match self.table().and_then(|t| t.context_set) {
            // SAFETY: as the caller promises.
            Some(set) => unsafe { set(ctx) },
            None => core::ptr::null_mut(),
        }
    }

    /// Records `detail` for the error about to be returned; returns `code`.
    pub fn fail(&self, code: weft_status_t, detail: &str) -> weft_status_t {
        if let (Some(set), Ok(text)) = (self.table().and_then(|t| t.set_error_detail), CString::new(detail)) {
            // SAFETY: `text` is a valid C string for the duration of the call.
            unsafe { set(text.as_ptr() as *const c_char) }
        }
        code
    }
}

impl Default for HostRef {
    fn default() -> Self {
        Self::new()
    }
}
