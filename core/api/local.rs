//! Task-local slots: keys, and each task's (or host thread's) value for a key.
use std::ffi::c_void;

use weft_platform::*;

use super::{non_null, open_runtime, write_out};
use crate::ffi::error::{ffi, ffi_value};
use crate::runtime::{context, keys};
use crate::types::*;

/// Creates a task-local key. Every task (and host thread) starts with NULL for it.
/// `dtor` (may be NULL) is called on the exiting task with each non-NULL value it
/// holds, as pthread calls its key destructors: the key reads NULL during the call,
/// the keys whose destructors have not run yet still read their values, and values a
/// destructor sets are destroyed in a next round (four at most). At most `WEFT_KEYS_MAX` keys are live at once (`WEFT_ENOMEM` after that);
/// deleted keys do not count. `*out` is written only on success. `rt` is an open
/// runtime, checked, or NULL: a key belongs to no runtime (keys are process-wide, as
/// pthread keys), so one made before any runtime opens, or with a runtime closed since,
/// stays valid in every runtime until `weft_key_delete`.
#[no_mangle]
pub unsafe extern "C" fn weft_key_create(
    rt: *mut weft_runtime_t,
    dtor: weft_key_dtor_fn,
    out: *mut weft_key_t,
) -> weft_status_t {
    ffi("weft_key_create", || {
        if !rt.is_null() {
            open_runtime(rt)?;
        }
        non_null(out, "out")?;
        let key = keys::create(dtor)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, key) };
        Ok(())
    })
}

/// The calling task's (or host thread's) value for `key`; NULL if never set, and NULL
/// for an invalid key (with `weft_last_error()` set). The value is the caller's: weft
/// only stores it.
#[no_mangle]
pub extern "C" fn weft_local_get(key: weft_key_t) -> *mut c_void {
    // The fast path (a VM reads its per-task state on every call): a valid key on a
    // thread that has a context already. Loads only (the context is one initial-exec
    // TLS read): it cannot panic.
    if let (Some(index), Some(ctx)) = (keys::slot_of(key), context::current_if_any()) {
        return ctx.slot(index, key);
    }
    local_get_checked(key)
}

/// `extern "C"`: the fast path jumps here, keeping no frame (see `lock_contended` in
/// sync.rs).
#[cold]
#[inline(never)]
extern "C" fn local_get_checked(key: weft_key_t) -> *mut c_void {
    ffi_value("weft_local_get", std::ptr::null_mut(), || Ok(context::current().slot(keys::slot_index(key)?, key)))
}

/// Sets the calling task's (or host thread's) value for `key`. The previous value is
/// not destroyed. Works from any thread: a host thread's values are destroyed when the
/// thread exits.
#[no_mangle]
pub extern "C" fn weft_local_set(key: weft_key_t, value: *mut c_void) -> weft_status_t {
    ffi("weft_local_set", || {
        context::current().set_slot(keys::slot_index(key)?, key, value);
        Ok(())
    })
}

/// Deletes `key` (as `pthread_key_delete`): every task's value for it is forgotten
/// without its destructor being called (the values are the host's to free), and the
/// key is no longer valid (`WEFT_EINVAL` from every call that takes it). A later key may
/// reuse its slot, with another generation, so it never equals the deleted one (until
/// 4096 keys have come and gone in that slot). Any thread may delete any key; deleting
/// a key while another thread uses it is the host's race, as with pthread.
#[no_mangle]
pub extern "C" fn weft_key_delete(key: weft_key_t) -> weft_status_t {
    ffi("weft_key_delete", || keys::delete(key))
}

/// Sets the calling task's (or host thread's) state pointer: one pointer per task that
/// weft keeps beside the task's identity and switches with it (a VM's per-thread state
/// structure), read back with weft.h's inline `weft_task_state()` at the cost of one
/// thread-local load. NULL until set; gone with the task. The pointer is the host's:
/// weft only keeps it. Always `WEFT_OK`.
#[no_mangle]
pub extern "C" fn weft_task_set_state(state: *mut c_void) -> weft_status_t {
    ffi("weft_task_set_state", || {
        context::current().set_state(state);
        Ok(())
    })
}

/// The calling task's (or host thread's) state pointer, out of line: what weft.h's
/// `weft_task_state()` calls where it cannot read it inline. NULL until set.
#[no_mangle]
pub extern "C" fn weft_task_state_get() -> *mut c_void {
    crate::runtime::current::state()
}
