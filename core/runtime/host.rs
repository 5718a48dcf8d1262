//! The host services handed to every plugin: the runtime's side of the plugin ABI.
use std::ffi::{c_char, c_void, CStr};

use weft_platform::*;

use crate::ffi::error;
use crate::runtime::context;
use crate::runtime::task;
use crate::runtime::{parked, safepoint};

unsafe extern "C" fn task_run(ctx: *mut c_void) {
    // SAFETY: the plugin calls it once per spawn with the context spawn gave it.
    unsafe { task::run(ctx) };
}

/// The `blocking_enter` service: the plugin is about to wait. Its entry records the
/// plugin's registers and stack pointer at the call (runtime/parked.rs), before the
/// wait that follows it.
#[unsafe(naked)]
unsafe extern "C" fn blocking_enter() {
    parked::recording_entry!(blocking_enter_recorded)
}

/// The body of `blocking_enter`, given the words its entry recorded.
///
/// # Safety
/// `words` points to what the entry stored.
unsafe extern "C" fn blocking_enter_recorded(words: *const usize, _unused: *mut c_void) {
    if let Some(ctx) = context::current_if_any() {
        // SAFETY: see above.
        let entry = unsafe { parked::EntryWords::new(words) };
        safepoint::enter_blocking_from_plugin(ctx, entry);
    }
}

unsafe extern "C" fn blocking_leave() {
    if let Some(ctx) = context::current_if_any() {
        safepoint::leave_blocking_from_plugin(ctx);
    }
}

unsafe extern "C" fn set_error_detail(detail: *const c_char) {
    if !detail.is_null() {
        // SAFETY: a non-NULL detail is the plugin's NUL-terminated string.
        error::set_plugin_detail(unsafe { CStr::from_ptr(detail) }.to_string_lossy().into_owned());
    }
}

unsafe extern "C" fn cancel_pending() -> i32 {
    context::current_if_any().is_some_and(|ctx| ctx.is_cancelled() && !ctx.mutator.cancel_masked()) as i32
}

unsafe extern "C" fn context_get() -> *mut c_void {
    context::current_if_any().map_or(std::ptr::null_mut(), |c| c as *const context::Context as *mut c_void)
}

unsafe extern "C" fn context_set(ctx: *mut c_void) -> *mut c_void {
    context::enter(ctx as *const context::Context) as *mut c_void
}

pub(crate) static HOST: weft_host_t = weft_host_t {
    struct_size: std::mem::size_of::<weft_host_t>() as u32,
    abi_version: WEFT_HOST_ABI_VERSION,
    task_run: Some(task_run),
    blocking_enter: Some(blocking_enter),
    blocking_leave: Some(blocking_leave),
    set_error_detail: Some(set_error_detail),
    cancel_pending: Some(cancel_pending),
    context_get: Some(context_get),
    context_set: Some(context_set),
};
