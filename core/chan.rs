//! Channels: the public handle, argument checks, the reference count, the closed flag
//! and the `elem_drop` bookkeeping. Storing and waiting are the plugin's (`chan_*`).
//!
//! Handles are shells that are never given back to the allocator: the last release
//! frees the plugin's channel, marks the shell released and keeps it for the next
//! `weft_chan_new`. So a stale pointer to a released channel reads a valid shell and is
//! refused with `WEFT_EINVAL` (until the shell is reused by a new channel), and memory
//! stays bounded by the peak number of live channels. Every field is atomic because a
//! stale reader may look at a shell while it is being reused.
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

use parking_lot::Mutex;
use weft_platform::*;

use crate::error::{check_plugin, fail, ffi, ffi_value, Error, Result};
use crate::loader::plat_call;
use crate::runtime::{open_runtime, weft_runtime_t};
use crate::sized::read_sized;

/// Called on each element a channel still holds when its last reference goes:
/// `elem` points to the element's `elem_size` bytes (valid during the call only), `ud`
/// is `weft_chan_opts_t.drop_ud`.
pub type weft_chan_drop_fn = Option<unsafe extern "C" fn(elem: *mut c_void, ud: *mut c_void)>;

/// Options for `weft_chan_new`. Initialise with `weft_chan_opts_init`. Borrowed for the
/// call only.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct weft_chan_opts_t {
    /// `sizeof(weft_chan_opts_t)`; set by `weft_chan_opts_init`.
    pub struct_size: u32,
    /// Optional. When the channel's last reference is released, called exactly once on
    /// each element that was sent but never received, oldest first. Never called on an
    /// element that was received, nor on one whose send failed (that element stays the
    /// sender's). This is how a channel of owned pointers ("move") never leaks. It must
    /// not call into the channel being released.
    pub elem_drop: weft_chan_drop_fn,
    /// Passed to `elem_drop` as `ud`.
    pub drop_ud: *mut c_void,
}

impl Default for weft_chan_opts_t {
    fn default() -> Self {
        weft_chan_opts_t {
            struct_size: std::mem::size_of::<weft_chan_opts_t>() as u32,
            elem_drop: None,
            drop_ud: ptr::null_mut(),
        }
    }
}

/// A channel of fixed-size elements, copied in and out. Opaque. Made by
/// `weft_chan_new` with one reference, which the caller owns; `weft_chan_retain` adds
/// one, `weft_chan_release` gives one back. Every task that uses the channel must own
/// a reference (or borrow one that outlives its calls).
pub struct weft_chan_t {
    magic: AtomicU32,
    closed: AtomicBool,
    refs: AtomicUsize,
    rt: AtomicPtr<weft_runtime_t>,
    plat: AtomicPtr<weft_plat_chan_t>,
    elem_size: AtomicUsize,
    capacity: AtomicUsize,
    elem_drop: AtomicPtr<c_void>,
    drop_ud: AtomicPtr<c_void>,
}

const CHAN_MAGIC: u32 = 0x5743_484e;
const CHAN_RELEASED: u32 = 0x5743_4846;

/// Released shells, kept for reuse (see the module comment).
pub(crate) static SHELLS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// A live channel, checked.
pub(crate) struct Chan<'a> {
    pub(crate) shell: &'a weft_chan_t,
    pub(crate) rt: &'static weft_runtime_t,
}

impl Chan<'_> {
    pub(crate) fn plat(&self) -> *mut weft_plat_chan_t {
        self.shell.plat.load(Relaxed)
    }

    pub(crate) fn elem_size(&self) -> usize {
        self.shell.elem_size.load(Relaxed)
    }

    fn capacity(&self) -> usize {
        self.shell.capacity.load(Relaxed)
    }
}

/// Checks a channel pointer from the host. `allow_closed`: the runtime may be closed
/// (retain, release, capacity). Inline: a send or receive pays a few loads and
/// branches; the messages are built out of line, only on failure.
#[inline]
pub(crate) fn chan_ref<'a>(ch: *const weft_chan_t, allow_closed: bool) -> Result<Chan<'a>> {
    match chan_check(ch, allow_closed) {
        Some(c) => Ok(c),
        None => Err(chan_ref_error(ch, allow_closed)),
    }
}

/// `chan_ref` without the reason: None when `chan_ref` would fail.
#[inline]
pub(crate) fn chan_check<'a>(ch: *const weft_chan_t, allow_closed: bool) -> Option<Chan<'a>> {
    // SAFETY: a non-NULL pointer from the host is a channel shell from weft_chan_new
    // (shells are never freed); anything else is refused by the magic below, as far as
    // reading its first four bytes can tell.
    let shell = unsafe { ch.as_ref() }?;
    if shell.magic.load(Acquire) != CHAN_MAGIC {
        return None;
    }
    // SAFETY: a live shell's runtime; runtimes are never freed.
    let rt = unsafe { &*shell.rt.load(Relaxed) };
    (allow_closed || rt.is_open()).then_some(Chan { shell, rt })
}

/// Why `chan_ref` refused `ch`.
#[cold]
#[inline(never)]
fn chan_ref_error(ch: *const weft_chan_t, allow_closed: bool) -> Error {
    // SAFETY: as in `chan_ref`.
    let Some(shell) = (unsafe { ch.as_ref() }) else { return Error::new(WEFT_EINVAL, "channel is NULL") };
    match shell.magic.load(Acquire) {
        CHAN_MAGIC => {}
        CHAN_RELEASED => {
            return Error::new(WEFT_EINVAL, format!("channel {ch:p} was released (its last reference is gone)"))
        }
        _ => return Error::new(WEFT_EINVAL, format!("{ch:p} is not a weft channel")),
    }
    // SAFETY: as in `chan_ref`.
    let rt = unsafe { &*shell.rt.load(Relaxed) };
    if !allow_closed && !rt.is_open() {
        return Error::new(WEFT_EINVAL, format!("the runtime of channel {ch:p} was closed"));
    }
    // The shell was released and reused between the two looks.
    Error::new(WEFT_EINVAL, format!("channel {ch:p} was released (its last reference is gone)"))
}

fn new_shell() -> *mut weft_chan_t {
    if let Some(shell) = SHELLS.lock().pop() {
        return shell as *mut weft_chan_t;
    }
    Box::into_raw(Box::new(weft_chan_t {
        magic: AtomicU32::new(0),
        closed: AtomicBool::new(false),
        refs: AtomicUsize::new(0),
        rt: AtomicPtr::new(ptr::null_mut()),
        plat: AtomicPtr::new(ptr::null_mut()),
        elem_size: AtomicUsize::new(0),
        capacity: AtomicUsize::new(0),
        elem_drop: AtomicPtr::new(ptr::null_mut()),
        drop_ud: AtomicPtr::new(ptr::null_mut()),
    }))
}

/// Fills `opts` with the defaults (no `elem_drop`). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn weft_chan_opts_init(opts: *mut weft_chan_opts_t) {
    if !opts.is_null() {
        opts.write(weft_chan_opts_t::default());
    }
}

/// Creates a channel of `elem_size`-byte elements. `capacity` 0 makes a rendezvous
/// channel (a send completes when a receiver takes the element), `WEFT_CHAN_UNBOUNDED`
/// an unbounded one (a send never waits), anything else a bounded channel holding at
/// most `capacity` elements (its buffer is allocated now). `elem_size` may be 0: the
/// channel then carries bare signals, and element pointers may be NULL. `opts` may be
/// NULL (no `elem_drop`). On success `*out` receives a channel with one reference, owned
/// by the caller, who must give it back with `weft_chan_release`. `WEFT_ENOMEM` when the
/// buffer cannot be allocated (a huge `capacity`).
#[no_mangle]
pub unsafe extern "C" fn weft_chan_new(
    rt: *mut weft_runtime_t,
    elem_size: usize,
    capacity: usize,
    opts: *const weft_chan_opts_t,
    out: *mut *mut weft_chan_t,
) -> weft_status_t {
    ffi("weft_chan_new", || {
        let rt = open_runtime(rt)?;
        if out.is_null() {
            fail!(WEFT_EINVAL, "out is NULL");
        }
        let opts = if opts.is_null() {
            weft_chan_opts_t::default()
        } else {
            read_sized(opts, weft_chan_opts_t::default(), "weft_chan_opts_t")?
        };
        if capacity != WEFT_CHAN_UNBOUNDED
            && elem_size.checked_mul(capacity).map_or(true, |bytes| bytes > isize::MAX as usize)
        {
            fail!(WEFT_ENOMEM, "a buffer of {capacity} elements of {elem_size} bytes does not fit in memory");
        }
        let mut plat = ptr::null_mut();
        check_plugin(plat_call!(rt.table, chan_new(rt.prt, elem_size, capacity, &mut plat)), || {
            let kind = match capacity {
                0 => "rendezvous channel".to_string(),
                WEFT_CHAN_UNBOUNDED => "unbounded channel".to_string(),
                n => format!("channel of capacity {n}"),
            };
            format!("the platform could not create a {kind} of {elem_size}-byte elements")
        })?;
        let shell = new_shell();
        let s = &*shell;
        s.closed.store(false, Relaxed);
        s.refs.store(1, Relaxed);
        s.rt.store(rt as *const _ as *mut _, Relaxed);
        s.plat.store(plat, Relaxed);
        s.elem_size.store(elem_size, Relaxed);
        s.capacity.store(capacity, Relaxed);
        s.elem_drop.store(opts.elem_drop.map_or(ptr::null_mut(), |f| f as *mut c_void), Relaxed);
        s.drop_ud.store(opts.drop_ud, Relaxed);
        s.magic.store(CHAN_MAGIC, Release);
        *out = shell;
        Ok(())
    })
}

#[cold]
#[inline(never)]
fn null_elem(what: &str, ch: *const weft_chan_t, elem_size: usize) -> Error {
    Error::new(WEFT_EINVAL, format!("{what} is NULL (channel {ch:p} carries {elem_size}-byte elements)"))
}

/// Sends the `elem_size` bytes at `elem` (copied; `elem` is borrowed for the call).
/// Waits while the channel is full (a rendezvous channel: until a receiver takes the
/// element), at most until `deadline`. `WEFT_OK`: the element is in the channel or was
/// received. `WEFT_ECLOSED`: the channel is closed, or was closed while the caller
/// waited; `WEFT_ETIMEDOUT`: still full at the deadline; `WEFT_ECANCELED`: the calling
/// task was cancelled before or while it waited. On every error the element was not
/// taken: it stays the caller's (free what it owns). A send that can complete at once
/// completes even in a cancelled task. The waiting caller is in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_chan_send(ch: *mut weft_chan_t, elem: *const c_void, deadline: i64) -> weft_status_t {
    ffi("weft_chan_send", || {
        let c = chan_ref(ch, false)?;
        if elem.is_null() && c.elem_size() != 0 {
            return Err(null_elem("elem", ch, c.elem_size()));
        }
        match plat_call!(c.rt.table, chan_send(c.plat(), elem, deadline)) {
            WEFT_OK => Ok(()),
            status => Err(send_error(ch, &c, status)),
        }
    })
}

#[cold]
#[inline(never)]
fn send_error(ch: *const weft_chan_t, c: &Chan<'_>, status: weft_status_t) -> Error {
    let detail = match status {
        WEFT_ECLOSED => format!("channel {ch:p} is closed; the element was not sent"),
        WEFT_ETIMEDOUT if c.capacity() == 0 => {
            format!("no receiver took the element from channel {ch:p} before the deadline")
        }
        WEFT_ETIMEDOUT => format!("channel {ch:p} was still full at the deadline"),
        WEFT_ECANCELED => format!("the calling task was cancelled while sending on channel {ch:p}"),
        status => return plugin_error(status, || format!("cannot send on channel {ch:p}")),
    };
    Error::new(status, detail)
}

/// `check_plugin`'s error for a status known not to be `WEFT_OK`.
fn plugin_error(status: weft_status_t, what: impl FnOnce() -> String) -> Error {
    match check_plugin(status, what) {
        Err(e) => e,
        Ok(()) => Error::new(WEFT_EINTERNAL, "the platform failed without a status"),
    }
}

/// Receives the oldest element into `out` (`elem_size` bytes, written only on
/// `WEFT_OK`). Waits while the channel is empty, at most until `deadline`. After
/// `weft_chan_close`, the buffered elements are still received, then `WEFT_ECLOSED`.
/// `WEFT_ETIMEDOUT`: still empty at the deadline; `WEFT_ECANCELED`: the calling task
/// was cancelled before or while it waited. A receive that can complete at once
/// completes even in a cancelled task. The waiting caller is in a blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_chan_recv(ch: *mut weft_chan_t, out: *mut c_void, deadline: i64) -> weft_status_t {
    ffi("weft_chan_recv", || {
        let c = chan_ref(ch, false)?;
        if out.is_null() && c.elem_size() != 0 {
            return Err(null_elem("out", ch, c.elem_size()));
        }
        match plat_call!(c.rt.table, chan_recv(c.plat(), out, deadline)) {
            WEFT_OK => Ok(()),
            status => Err(recv_error(ch, status)),
        }
    })
}

#[cold]
#[inline(never)]
fn recv_error(ch: *const weft_chan_t, status: weft_status_t) -> Error {
    let detail = match status {
        WEFT_ECLOSED => format!("channel {ch:p} is closed and empty"),
        WEFT_ETIMEDOUT => format!("channel {ch:p} was still empty at the deadline"),
        WEFT_ECANCELED => format!("the calling task was cancelled while receiving from channel {ch:p}"),
        status => return plugin_error(status, || format!("cannot receive from channel {ch:p}")),
    };
    Error::new(status, detail)
}

/// Closes the channel. From now on sends fail with `WEFT_ECLOSED`, and so do the sends
/// waiting now (their elements were not taken and stay their senders'); receivers get
/// the elements still buffered, then `WEFT_ECLOSED` (receivers waiting now get it at
/// once). Closing does not release: the channel lives until its last reference goes.
/// Closing a closed channel does nothing and returns `WEFT_OK` (so any of several
/// producers may close).
#[no_mangle]
pub unsafe extern "C" fn weft_chan_close(ch: *mut weft_chan_t) -> weft_status_t {
    ffi("weft_chan_close", || {
        let c = chan_ref(ch, false)?;
        if c.shell.closed.swap(true, Relaxed) {
            return Ok(());
        }
        check_plugin(plat_call!(c.rt.table, chan_close(c.plat())), || format!("cannot close channel {ch:p}"))
    })
}

/// The number of elements buffered now (0 for a rendezvous channel). A snapshot: other
/// tasks may change it at once. 0 for an invalid channel (with `weft_last_error()`).
#[no_mangle]
pub unsafe extern "C" fn weft_chan_len(ch: *const weft_chan_t) -> usize {
    ffi_value("weft_chan_len", 0, || {
        let c = chan_ref(ch, false)?;
        Ok(plat_call!(c.rt.table, chan_len(c.plat())))
    })
}

/// The capacity the channel was made with: 0 (rendezvous), a bound, or
/// `WEFT_CHAN_UNBOUNDED`. 0 for an invalid channel (with `weft_last_error()`).
#[no_mangle]
pub unsafe extern "C" fn weft_chan_capacity(ch: *const weft_chan_t) -> usize {
    ffi_value("weft_chan_capacity", 0, || Ok(chan_ref(ch, true)?.capacity()))
}

/// Adds a reference to the channel (atomically; any thread) and returns `ch`, or NULL
/// for an invalid or released channel (with `weft_last_error()`). The caller owns the
/// new reference and must give it back with `weft_chan_release`. Retain before handing
/// the channel to another task that will release it.
#[no_mangle]
pub unsafe extern "C" fn weft_chan_retain(ch: *mut weft_chan_t) -> *mut weft_chan_t {
    ffi_value("weft_chan_retain", ptr::null_mut(), || {
        let c = chan_ref(ch, true)?;
        let mut refs = c.shell.refs.load(Relaxed);
        loop {
            if refs == 0 {
                fail!(WEFT_EINVAL, "channel {ch:p} was released (its last reference is gone)");
            }
            match c.shell.refs.compare_exchange_weak(refs, refs + 1, Relaxed, Relaxed) {
                Ok(_) => return Ok(ch),
                Err(now) => refs = now,
            }
        }
    })
}

/// Gives back one reference (atomically; any thread). The last one frees the channel:
/// `elem_drop`, if set, runs exactly once on each element still buffered, oldest first,
/// on the calling thread; then the channel is gone and `ch` must not be used again.
/// Nobody may be waiting on the channel then (a task that uses the channel owns a
/// reference). Allowed after the runtime closed. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn weft_chan_release(ch: *mut weft_chan_t) {
    if ch.is_null() {
        return;
    }
    ffi_value("weft_chan_release", (), || {
        let c = chan_ref(ch, true)?;
        let shell = c.shell;
        let mut refs = shell.refs.load(Relaxed);
        loop {
            if refs == 0 {
                fail!(WEFT_EINVAL, "channel {ch:p} was released (its last reference is gone)");
            }
            match shell.refs.compare_exchange_weak(refs, refs - 1, Release, Relaxed) {
                Ok(_) => break,
                Err(now) => refs = now,
            }
        }
        if refs > 1 {
            return Ok(());
        }
        // Every other owner's last use happened before its release.
        std::sync::atomic::fence(Acquire);
        shell.magic.store(CHAN_RELEASED, Release);
        let drop_fn = shell.elem_drop.load(Relaxed);
        // SAFETY: stored from a `weft_chan_drop_fn` in weft_chan_new.
        let host_drop = (!drop_fn.is_null()).then(|| crate::callback::HostElemDrop {
            elem_drop: unsafe {
                std::mem::transmute::<*mut c_void, unsafe extern "C-unwind" fn(*mut c_void, *mut c_void)>(drop_fn)
            },
            ud: shell.drop_ud.load(Relaxed),
        });
        // The plugin calls weft's trampoline, which calls the host's elem_drop.
        let (drop_fn, drop_ud) = crate::callback::plugin_elem_drop(host_drop.as_ref());
        plat_call!(c.rt.table, chan_free(c.plat(), drop_fn, drop_ud));
        shell.plat.store(ptr::null_mut(), Relaxed);
        SHELLS.lock().push(ch as usize);
        Ok(())
    })
}
