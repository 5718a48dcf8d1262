//! Blobs: immutable byte payloads shared by reference count, the "share" way of
//! crossing a task boundary (beside copying bytes through a channel and moving a
//! pointer with an `elem_drop`).
//!
//! `weft_blob_new` puts the header and the copied bytes in one allocation;
//! `weft_blob_wrap` allocates a header only. The last release marks the header freed
//! before giving it back, so a stale pointer is refused for as long as the memory is
//! not reused.
use std::alloc::{alloc, dealloc, Layout};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{fence, AtomicU32, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use weft_platform::*;

use crate::error::{fail, ffi, ffi_value, Result};

/// Frees the memory a blob wrapped: called once, by the last `weft_blob_release`, with
/// the `ptr` and `ud` given to `weft_blob_wrap`.
pub type weft_blob_dtor_fn = Option<unsafe extern "C" fn(ptr: *mut c_void, ud: *mut c_void)>;

/// An immutable, reference-counted byte payload. Opaque. Made by `weft_blob_new` or
/// `weft_blob_wrap` with one reference, owned by the caller; `weft_blob_retain` adds
/// one, `weft_blob_release` gives one back. Any thread may read the bytes while it
/// owns a reference; nobody may change them.
pub struct weft_blob_t {
    magic: AtomicU32,
    refs: AtomicUsize,
    data: *mut u8,
    len: usize,
    /// The layout of this allocation (header, plus the bytes for `weft_blob_new`).
    layout: Layout,
    dtor: weft_blob_dtor_fn,
    ud: *mut c_void,
}

const BLOB_MAGIC: u32 = 0x5742_4c42;
const BLOB_RELEASED: u32 = 0x5742_4c46;
/// Alignment of the bytes of `weft_blob_new`: enough for any C type.
const DATA_ALIGN: usize = 16;

fn blob_ref<'a>(b: *const weft_blob_t) -> Result<&'a weft_blob_t> {
    // SAFETY: a non-NULL pointer from the host is a blob from weft_blob_new/_wrap; a
    // released or foreign one is refused by its magic as far as it can be told.
    let Some(blob) = (unsafe { b.as_ref() }) else { fail!(WEFT_EINVAL, "blob is NULL") };
    match blob.magic.load(Acquire) {
        BLOB_MAGIC => Ok(blob),
        BLOB_RELEASED => fail!(WEFT_EINVAL, "blob {b:p} was released (its last reference is gone)"),
        _ => fail!(WEFT_EINVAL, "{b:p} is not a weft blob"),
    }
}

/// Allocates a blob: with `data` NULL, `len` bytes of its own follow the header
/// (uninitialised); otherwise the blob points at `data`.
fn allocate(data: *mut u8, len: usize, dtor: weft_blob_dtor_fn, ud: *mut c_void) -> Result<*mut weft_blob_t> {
    let too_big = || crate::error::Error::new(WEFT_ENOMEM, format!("a blob of {len} bytes does not fit in memory"));
    let extra = if data.is_null() { len } else { 0 };
    let bytes = Layout::from_size_align(extra, DATA_ALIGN).map_err(|_| too_big())?;
    let (layout, offset) = Layout::new::<weft_blob_t>().extend(bytes).map_err(|_| too_big())?;
    // SAFETY: the layout has a non-zero size (the header).
    let base = unsafe { alloc(layout) };
    if base.is_null() {
        return Err(too_big());
    }
    // SAFETY: `base` is a fresh allocation of `layout`, which holds the header first.
    unsafe {
        let data = if data.is_null() { base.add(offset) } else { data };
        (base as *mut weft_blob_t).write(weft_blob_t {
            magic: AtomicU32::new(BLOB_MAGIC),
            refs: AtomicUsize::new(1),
            data,
            len,
            layout,
            dtor,
            ud,
        });
    }
    Ok(base as *mut weft_blob_t)
}

/// Creates a blob holding a copy of the `len` bytes at `data` (`data` is borrowed for
/// the call; it may be NULL when `len` is 0). The copy is aligned to 16 bytes. On
/// success `*out` receives a blob with one reference, owned by the caller, who must
/// give it back with `weft_blob_release`. `WEFT_ENOMEM` if the copy cannot be allocated.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_new(data: *const c_void, len: usize, out: *mut *mut weft_blob_t) -> weft_status_t {
    ffi("weft_blob_new", || {
        if out.is_null() {
            fail!(WEFT_EINVAL, "out is NULL");
        }
        if data.is_null() && len != 0 {
            fail!(WEFT_EINVAL, "data is NULL but len is {len}");
        }
        let blob = allocate(ptr::null_mut(), len, None, ptr::null_mut())?;
        if len != 0 {
            ptr::copy_nonoverlapping(data as *const u8, (*blob).data, len);
        }
        *out = blob;
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
        if out.is_null() {
            fail!(WEFT_EINVAL, "out is NULL");
        }
        if ptr.is_null() && len != 0 {
            fail!(WEFT_EINVAL, "ptr is NULL but len is {len}");
        }
        let blob = allocate(ptr as *mut u8, len, dtor, ud)?;
        if ptr.is_null() {
            // An empty wrap of NULL: the destructor gets NULL back.
            (*blob).data = std::ptr::null_mut();
        }
        *out = blob;
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
            *len = blob.len;
        }
        Ok(if blob.data.is_null() {
            ptr::NonNull::<u64>::dangling().as_ptr() as *const c_void
        } else {
            blob.data as *const c_void
        })
    })
}

/// The number of bytes in the blob; 0 for an invalid blob (with `weft_last_error()`).
#[no_mangle]
pub unsafe extern "C" fn weft_blob_len(b: *const weft_blob_t) -> usize {
    ffi_value("weft_blob_len", 0, || Ok(blob_ref(b)?.len))
}

/// Adds a reference (atomically; any thread) and returns `b`, or NULL for an invalid
/// blob (with `weft_last_error()`). The caller owns the new reference and must give it
/// back with `weft_blob_release`.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_retain(b: *mut weft_blob_t) -> *mut weft_blob_t {
    ffi_value("weft_blob_retain", ptr::null_mut(), || {
        let blob = blob_ref(b)?;
        let mut refs = blob.refs.load(Relaxed);
        loop {
            if refs == 0 {
                fail!(WEFT_EINVAL, "blob {b:p} was released (its last reference is gone)");
            }
            match blob.refs.compare_exchange_weak(refs, refs + 1, Relaxed, Relaxed) {
                Ok(_) => return Ok(b),
                Err(now) => refs = now,
            }
        }
    })
}

/// Gives back one reference (atomically; any thread). The last one frees the blob (and
/// runs the `weft_blob_wrap` destructor, on the calling thread); `b` must not be used
/// again. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_release(b: *mut weft_blob_t) {
    if b.is_null() {
        return;
    }
    ffi_value("weft_blob_release", (), || {
        let blob = blob_ref(b)?;
        let mut refs = blob.refs.load(Relaxed);
        loop {
            if refs == 0 {
                fail!(WEFT_EINVAL, "blob {b:p} was released (its last reference is gone)");
            }
            match blob.refs.compare_exchange_weak(refs, refs - 1, Release, Relaxed) {
                Ok(_) => break,
                Err(now) => refs = now,
            }
        }
        if refs > 1 {
            return Ok(());
        }
        fence(Acquire);
        blob.magic.store(BLOB_RELEASED, Relaxed);
        let (data, dtor, ud, layout) = (blob.data, blob.dtor, blob.ud, blob.layout);
        if let Some(dtor) = dtor {
            let dtor = crate::callback::may_unwind!(dtor, fn(*mut c_void, *mut c_void));
            crate::callback::host_call("a blob destructor", || dtor(data as *mut c_void, ud));
        }
        dealloc(b as *mut u8, layout);
        Ok(())
    })
}

/// An `elem_drop` for channels whose elements are `weft_blob_t *`: releases the blob an
/// undelivered element holds (`ud` is ignored). Pass it as `weft_chan_opts_t.elem_drop`
/// so that a blob sent but never received is not leaked.
#[no_mangle]
pub unsafe extern "C" fn weft_blob_elem_drop(elem: *mut c_void, ud: *mut c_void) {
    let _ = ud;
    if !elem.is_null() {
        weft_blob_release(*(elem as *const *mut weft_blob_t));
    }
}
