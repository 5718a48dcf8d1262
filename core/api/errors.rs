//! Errors: naming a status code, and the detail of the calling thread's last failure.
use std::ffi::c_char;

use weft_platform::weft_status_t;

use crate::ffi::error::{last_error_ptr, static_cstr};

/// A static, human-readable name for a status code. Never NULL; unknown codes give
/// "unknown status code". The string is owned by weft and valid forever.
#[no_mangle]
pub extern "C" fn weft_strerror(code: weft_status_t) -> *const c_char {
    static_cstr(code).as_ptr()
}

/// The detail of the caller's last failed weft call: which function, which object,
/// which path or symbol, and why. The caller is the running weft task if there is one
/// (its text follows the task on a platform whose tasks share or change threads), else
/// the calling thread. Never NULL ("" before any failure). Successful calls leave it
/// unchanged. Borrowed: valid until the caller's next failing weft call (a task's text
/// ends with the task).
#[no_mangle]
pub extern "C" fn weft_last_error() -> *const c_char {
    last_error_ptr()
}
