//! Task-local slots: keys are process-wide (like pthread keys); values live in each
//! context, so a task keeps its values wherever it runs.
use std::ffi::c_void;
use std::sync::atomic::{AtomicU32, Ordering::Acquire, Ordering::Release};

use parking_lot::Mutex;
use weft_platform::*;

use crate::context;
use crate::error::{fail, ffi, ffi_value, Result};
use crate::runtime::{self, weft_runtime_t};

/// A task-local key. 0 is never a valid key.
pub type weft_key_t = u32;

/// Destructor of task-local values, called with a non-NULL value when its task exits.
pub type weft_key_dtor_fn = Option<unsafe extern "C" fn(value: *mut c_void)>;

/// How many keys a process may create (as PTHREAD_KEYS_MAX).
pub const WEFT_KEYS_MAX: u32 = 1024;

pub(crate) static KEYS: Mutex<Vec<weft_key_dtor_fn>> = Mutex::new(Vec::new());
/// `KEYS.len()`, readable without the lock: the get/set fast path takes no lock.
static KEY_COUNT: AtomicU32 = AtomicU32::new(0);

/// The destructor registered for slot `index`.
pub(crate) fn destructor(index: usize) -> weft_key_dtor_fn {
    KEYS.lock().get(index).copied().flatten()
}

fn slot_index(key: weft_key_t) -> Result<usize> {
    if key == 0 || key > KEY_COUNT.load(Acquire) {
        fail!(WEFT_EINVAL, "key {key} was not created by weft_key_create");
    }
    Ok(key as usize - 1)
}

/// Creates a task-local key. Every task (and host thread) starts with NULL for it.
/// `dtor` (may be NULL) is called on the exiting task's own thread with each non-NULL
/// value it holds. Keys are never deleted; at most `WEFT_KEYS_MAX` exist
/// (`WEFT_ENOMEM` after that). `*out` is written only on success.
#[no_mangle]
pub unsafe extern "C" fn weft_key_create(
    rt: *mut weft_runtime_t,
    dtor: weft_key_dtor_fn,
    out: *mut weft_key_t,
) -> weft_status_t {
    ffi("weft_key_create", || {
        runtime::open_runtime(rt)?;
        if out.is_null() {
            fail!(WEFT_EINVAL, "out is NULL");
        }
        let mut keys = KEYS.lock();
        if keys.len() as u32 >= WEFT_KEYS_MAX {
            fail!(WEFT_ENOMEM, "all {WEFT_KEYS_MAX} task-local keys are in use");
        }
        keys.push(dtor);
        let key = keys.len() as weft_key_t;
        KEY_COUNT.store(key, Release);
        *out = key;
        Ok(())
    })
}

/// The calling task's (or host thread's) value for `key`; NULL if never set, and NULL
/// for an invalid key (with `weft_last_error()` set). The value is the caller's: weft
/// only stores it.
#[no_mangle]
pub extern "C" fn weft_local_get(key: weft_key_t) -> *mut c_void {
    // The fast path (a VM reads its per-task state on every call): a valid key on a
    // thread that has a context already. Loads only: it cannot panic.
    if key != 0 && key <= KEY_COUNT.load(Acquire) {
        if let Some(ctx) = context::current_if_any_fast() {
            return ctx.slot(key as usize - 1);
        }
    }
    ffi_value("weft_local_get", std::ptr::null_mut(), || {
        let index = slot_index(key)?;
        Ok(context::current().slot(index))
    })
}

/// Sets the calling task's (or host thread's) value for `key`. The previous value is
/// not destroyed. Works from any thread: a host thread's values are destroyed when the
/// thread exits.
#[no_mangle]
pub extern "C" fn weft_local_set(key: weft_key_t, value: *mut c_void) -> weft_status_t {
    ffi("weft_local_set", || {
        let index = slot_index(key)?;
        context::current().set_slot(index, value);
        Ok(())
    })
}
