//! The C boundary: every exported function, one file per area of `weft.h`. An export
//! checks its arguments (through `ffi::handle` for every handle and object), converts
//! them, calls the runtime below and turns the outcome into a status, inside the panic
//! guard (`ffi::error::ffi`). Nothing below this layer is `extern "C"` or takes a raw
//! pointer from the host unchecked. The few fast paths (mutex lock and unlock, the
//! clock, task-local reads) check the same things with loads only and fall back to the
//! guarded path for every error.
use weft_platform::WEFT_EINVAL;

use crate::ffi::error::{fail, Result};
use crate::ffi::handle;
use crate::runtime::Runtime;
use crate::types::weft_runtime_t;

mod blob;
mod chan;
mod errors;
mod io;
mod local;
mod parallel;
mod parking;
mod runtime;
mod select;
mod sync;
mod task;
mod vm;

pub use blob::*;
pub use chan::*;
pub use errors::*;
pub use io::*;
pub use local::*;
pub use parallel::*;
pub use parking::*;
pub use runtime::*;
pub use select::*;
pub use sync::*;
pub use task::*;
pub use vm::*;

/// A runtime from the host: not NULL, a runtime, not closed.
pub(crate) fn open_runtime(rt: *const weft_runtime_t) -> Result<&'static Runtime> {
    let rt = any_runtime(rt)?;
    if !rt.is_open() {
        fail!(
            WEFT_EINVAL,
            "{}",
            crate::runtime::fork::not_open(rt, format_args!("runtime {:p}", rt as *const Runtime))
        );
    }
    Ok(rt)
}

/// Like `open_runtime`, but a closed runtime is accepted (for destroy-style calls).
pub(crate) fn any_runtime(rt: *const weft_runtime_t) -> Result<&'static Runtime> {
    // Runtimes are never freed, so the reference lives as long as the process.
    handle::check::<Runtime>(rt.cast())
}

/// `open_runtime` for the fast paths: the same checks, None instead of an error (the
/// checked path then says what is wrong). Loads only.
#[inline(always)]
pub(crate) fn open_runtime_fast(rt: *const weft_runtime_t) -> Option<&'static Runtime> {
    handle::probe::<Runtime>(rt.cast()).filter(|rt| rt.is_open())
}

/// Writes a call's output. `out` is checked non-NULL by the caller.
///
/// # Safety
/// `out` points to writable memory for a `T` (the host's out-parameter).
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: see above.
    unsafe { out.write(value) }
}

/// Fails with "NAME is NULL" when `ptr` is NULL.
pub(crate) fn non_null<T>(ptr: *const T, name: &str) -> Result<()> {
    if ptr.is_null() {
        fail!(WEFT_EINVAL, "{name} is NULL");
    }
    // Its atomics (or the pointer written through it) need the type's alignment: a
    // misaligned atomic is undefined (a split lock on x86-64, a fault on AArch64).
    if !ptr.is_aligned() {
        fail!(WEFT_EINVAL, "{name} {ptr:p} is not aligned to {} bytes", std::mem::align_of::<T>());
    }
    Ok(())
}
