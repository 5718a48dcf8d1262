//! Blobs: immutable byte payloads shared by reference count, the "share" way of
//! crossing a task boundary (beside copying bytes through a channel and moving a
//! pointer with an `elem_drop`).
//!
//! Handles are shells (`ffi::shell`), as channels are: `weft_blob_new` copies the bytes
//! into an allocation of their own, `weft_blob_wrap` points at the host's. The last
//! release frees the bytes (or runs the host's destructor) and retires the shell.
use std::alloc::{alloc, dealloc, Layout};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering::Relaxed, Ordering::Release};

use weft_platform::*;

use crate::ffi::callback::host_call;
use crate::ffi::error::{fail, Error, Result};
use crate::ffi::handle::{Handle, Lifetime};
use crate::ffi::refs;
use crate::ffi::shell::ShellPool;
use crate::types::weft_blob_dtor_fn;

/// The shell behind a `weft_blob_t *`.
#[repr(C)]
pub(crate) struct Blob {
    tag: AtomicU32,
    refs: AtomicUsize,
    data: AtomicPtr<u8>,
    len: AtomicUsize,
    /// Set when weft allocated the bytes (`weft_blob_new`): freed with `copy_layout`.
    copied: AtomicPtr<u8>,
    dtor: AtomicPtr<c_void>,
    ud: AtomicPtr<c_void>,
}

const BLOB_TAG: u32 = 0x5742_4c42;
const BLOB_RELEASED: u32 = 0x5742_4c46;
/// Alignment of the bytes of `weft_blob_new`: enough for any C type.
const DATA_ALIGN: usize = 16;

impl Handle for Blob {
    const KIND: &'static str = "blob";
    const LIVE: &'static [u32] = &[BLOB_TAG];
    const DEAD: u32 = BLOB_RELEASED;
    const DEAD_REASON: &'static str = "was released (its last reference is gone)";
    const LIFETIME: Lifetime = Lifetime::Shell;
    fn tag(&self) -> &AtomicU32 {
        &self.tag
    }
}

static SHELLS: ShellPool<Blob> = ShellPool::new();

/// The shell pool's lock (see `fork`).
pub(crate) fn shells_lock() -> &'static weft_platform::fork_lock::RawForkLock {
    SHELLS.raw_lock()
}

fn copy_layout(len: usize) -> Option<Layout> {
    Layout::from_size_align(len, DATA_ALIGN).ok()
}

fn shell(data: *mut u8, len: usize, copied: *mut u8, dtor: weft_blob_dtor_fn, ud: *mut c_void) -> &'static Blob {
    let b = SHELLS.take(|| Blob {
        tag: AtomicU32::new(0),
        refs: AtomicUsize::new(0),
        data: AtomicPtr::new(ptr::null_mut()),
        len: AtomicUsize::new(0),
        copied: AtomicPtr::new(ptr::null_mut()),
        dtor: AtomicPtr::new(ptr::null_mut()),
        ud: AtomicPtr::new(ptr::null_mut()),
    });
    b.refs.store(1, Relaxed);
    b.data.store(data, Relaxed);
    b.len.store(len, Relaxed);
    b.copied.store(copied, Relaxed);
    b.dtor.store(dtor.map_or(ptr::null_mut(), |f| f as *mut c_void), Relaxed);
    b.ud.store(ud, Relaxed);
    b.tag.store(BLOB_TAG, Release);
    b
}

impl Blob {
    /// A blob holding a copy of `bytes`.
    pub(crate) fn copy_of(bytes: &[u8]) -> Result<&'static Blob> {
        let len = bytes.len();
        let too_big = || Error::new(WEFT_ENOMEM, format!("a blob of {len} bytes does not fit in memory"));
        if len == 0 {
            return Ok(shell(ptr::null_mut(), 0, ptr::null_mut(), None, ptr::null_mut()));
        }
        let layout = copy_layout(len).ok_or_else(too_big)?;
        // SAFETY: a layout of non-zero size.
        let copy = unsafe { alloc(layout) };
        if copy.is_null() {
            return Err(too_big());
        }
        // SAFETY: `copy` is a fresh allocation of `len` bytes.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), copy, len) };
        Ok(shell(copy, len, copy, None, ptr::null_mut()))
    }

    /// A blob over the host's bytes, freed by `dtor(data, ud)`.
    pub(crate) fn wrapping(data: *mut u8, len: usize, dtor: weft_blob_dtor_fn, ud: *mut c_void) -> &'static Blob {
        shell(data, len, ptr::null_mut(), dtor, ud)
    }

    /// The bytes: never NULL, even for an empty blob.
    pub(crate) fn data(&self) -> *const c_void {
        let data = self.data.load(Relaxed);
        if data.is_null() {
            ptr::NonNull::<u64>::dangling().as_ptr() as *const c_void
        } else {
            data as *const c_void
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Relaxed)
    }

    pub(crate) fn retain(&self) -> Result<()> {
        if !refs::retain(&self.refs) {
            fail!(WEFT_EINVAL, "blob {:p} was released (its last reference is gone)", self);
        }
        Ok(())
    }

    /// Gives back one reference; the last frees the bytes and retires the shell.
    pub(crate) fn release(&'static self) -> Result<()> {
        match refs::release(&self.refs) {
            None => fail!(WEFT_EINVAL, "blob {:p} was released (its last reference is gone)", self),
            Some(false) => return Ok(()),
            Some(true) => {} // the last owner: every other one's last use came before
        }
        self.tag.store(BLOB_RELEASED, Release);
        let (data, len, copied) = (self.data.load(Relaxed), self.len(), self.copied.load(Relaxed));
        let dtor = self.dtor.load(Relaxed);
        if !copied.is_null() {
            let layout = copy_layout(len).expect("the layout the copy was made with");
            // SAFETY: allocated in `copy_of` with this layout; the last reference is gone.
            unsafe { dealloc(copied, layout) };
        } else if !dtor.is_null() {
            // SAFETY: stored from the host's `weft_blob_dtor_fn` in `wrapping`.
            let dtor = unsafe {
                std::mem::transmute::<*mut c_void, unsafe extern "C-unwind" fn(*mut c_void, *mut c_void)>(dtor)
            };
            let ud = self.ud.load(Relaxed);
            // SAFETY: the host's destructor, run once, with what it was given.
            host_call("a blob destructor", || unsafe { dtor(data as *mut c_void, ud) });
        }
        SHELLS.give_back(self);
        Ok(())
    }
}
