//! Blobs: immutable, reference-counted byte payloads.
use std::ffi::c_void;
use std::ptr;

use weft_platform::*;

use super::{non_null, write_out};
use crate::ffi::error::{fail, ffi, ffi_value, Result};
use crate::ffi::handle;
use crate::runtime::blob::Blob;
use crate::types::*;

fn blob_ref(b: *const weft_blob_t) -> Result<&'static Blob> {
    // Shells are never freed: a checked shell lives as long as the process.
    handle::check::<Blob>(b.cast())
}

fn handle_of(blob: &'static Blob) -> *mut weft_blob_t {
    blob as *const Blob as *mut weft_blob_t
}

/// Creates a blob holding a copy of the `len` bytes at `data` (`data` is borrowed for
/// the call; it may be NULL when `len` is 0). The copy is aligned to 16 bytes. On
/// success `*out` receives a blob with one reference, owned by the caller, who must
/// give it back with `weft_blob_release`. `WEFT_ENOMEM` if the copy cannot be allocated.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_new(data: *const c_void, len: usize, out: *mut *mut weft_blob_t) -> weft_status_t {
    ffi("weft_blob_new", || {
        non_null(out, "out")?;
        if data.is_null() && len != 0 {
            fail!(WEFT_EINVAL, "data is NULL but len is {len}");
        }
        if len > isize::MAX as usize {
            fail!(WEFT_ENOMEM, "a blob of {len} bytes does not fit in memory");
        }
        let bytes = match len {
            0 => &[][..],
            // SAFETY: the host's `len` bytes at `data` (non-NULL, at most isize::MAX),
            // borrowed for the call.
            _ => unsafe { std::slice::from_raw_parts(data as *const u8, len) },
        };
        let blob = Blob::copy_of(bytes)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, handle_of(blob)) };
        Ok(())
    })
}

/// Creates a blob over the `len` bytes at `ptr` without copying, and takes ownership
/// of them: `dtor(ptr, ud)` runs exactly once, on the thread of the last
/// `weft_blob_release`. `dtor` may be NULL for memory that needs no freeing (static
/// data). `ptr` may be NULL only when `len` is 0. The bytes must not change while the
/// blob lives. On success `*out` receives a blob with one reference, owned by the
/// caller. On failure nothing was taken: `dtor` is never called and `ptr` stays the
/// caller's.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_wrap(
    ptr: *mut c_void,
    len: usize,
    dtor: weft_blob_dtor_fn,
    ud: *mut c_void,
    out: *mut *mut weft_blob_t,
) -> weft_status_t {
    ffi("weft_blob_wrap", || {
        non_null(out, "out")?;
        if ptr.is_null() && len != 0 {
            fail!(WEFT_EINVAL, "ptr is NULL but len is {len}");
        }
        let blob = Blob::wrapping(ptr as *mut u8, len, dtor, ud);
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, handle_of(blob)) };
        Ok(())
    })
}

/// The blob's bytes, and their number in `*len` (if `len` is not NULL). Borrowed: valid
/// while the caller owns a reference. Never NULL for a valid blob, even an empty one;
/// NULL (and `*len` untouched) for an invalid blob, with `weft_last_error()`.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_data(b: *const weft_blob_t, len: *mut usize) -> *const c_void {
    ffi_value("weft_blob_data", ptr::null(), || {
        let blob = blob_ref(b)?;
        if !len.is_null() {
            // SAFETY: the host's optional out-parameter, checked non-NULL.
            unsafe { write_out(len, blob.len()) };
        }
        Ok(blob.data())
    })
}

/// The number of bytes in the blob; 0 for an invalid blob (with `weft_last_error()`).
#[no_mangle]
pub unsafe extern "C" fn weft_blob_len(b: *const weft_blob_t) -> usize {
    ffi_value("weft_blob_len", 0, || Ok(blob_ref(b)?.len()))
}

/// Adds a reference (atomically; any thread) and returns `b`, or NULL for an invalid
/// blob (with `weft_last_error()`). The caller owns the new reference and must give it
/// back with `weft_blob_release`.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_retain(b: *mut weft_blob_t) -> *mut weft_blob_t {
    ffi_value("weft_blob_retain", ptr::null_mut(), || {
        blob_ref(b)?.retain()?;
        Ok(b)
    })
}

/// Gives back one reference (atomically; any thread). The last one frees the blob (and
/// runs the `weft_blob_wrap` destructor, on the calling thread); `b` must not be used
/// again (a later call through it is refused with `WEFT_EINVAL` until a new blob reuses
/// its memory). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_release(b: *mut weft_blob_t) {
    if b.is_null() {
        return;
    }
    ffi_value("weft_blob_release", (), || blob_ref(b)?.release())
}

/// An `elem_drop` for channels whose elements are `weft_blob_t *`: releases the blob an
/// undelivered element holds (`ud` is ignored). Pass it as `weft_chan_opts_t.elem_drop`
/// so that a blob sent but never received is not leaked.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_elem_drop(elem: *mut c_void, ud: *mut c_void) {
    let _ = ud;
    if !elem.is_null() {
        // SAFETY: the channel hands over an element of its `weft_blob_t *` elements.
        unsafe { weft_blob_release(*(elem as *const *mut weft_blob_t)) };
    }
}
