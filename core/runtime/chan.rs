//! Channels: the handle, the reference count, the closed flag and the `elem_drop`
//! bookkeeping. Storing and waiting are the plugin's (`chan_*`).
//!
//! Handles are shells (`ffi::shell`): the last release frees the plugin's channel and
//! retires the shell for the next `weft_chan_new`. Every field is atomic because a
//! stale reader may look at a shell while it is being reused.
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{
    AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
    Ordering::Release,
};

use weft_platform::*;

use crate::ffi::callback::{plugin_elem_drop, HostElemDrop};
use crate::ffi::error::{check_plugin, fail, Error, Result};
use crate::ffi::handle::{Handle, Lifetime};
use crate::ffi::refs;
use crate::ffi::shell::ShellPool;
use crate::plugin::plat_call;
use crate::runtime::Runtime;
use crate::types::weft_chan_opts_t;

/// The shell behind a `weft_chan_t *`.
#[repr(C)]
pub(crate) struct Channel {
    tag: AtomicU32,
    /// OPEN, CLOSING (a close is telling the plugin) or CLOSED.
    close_state: AtomicU32,
    /// The code the channel was closed with (`weft_chan_close_with`, or a linked task's
    /// return code); 0 for a plain close.
    close_code: AtomicI32,
    refs: AtomicUsize,
    rt: AtomicPtr<Runtime>,
    plat: AtomicPtr<weft_plat_chan_t>,
    elem_size: AtomicUsize,
    capacity: AtomicUsize,
    elem_drop: AtomicPtr<c_void>,
    drop_ud: AtomicPtr<c_void>,
}

const OPEN: u32 = 0;
const CLOSING: u32 = 1;
const CLOSED: u32 = 2;

const CHAN_TAG: u32 = 0x5743_484e;
const CHAN_RELEASED: u32 = 0x5743_4846;

impl Handle for Channel {
    const KIND: &'static str = "channel";
    const LIVE: &'static [u32] = &[CHAN_TAG];
    const DEAD: u32 = CHAN_RELEASED;
    const DEAD_REASON: &'static str = "was released (its last reference is gone)";
    const LIFETIME: Lifetime = Lifetime::Shell;
    fn tag(&self) -> &AtomicU32 {
        &self.tag
    }
}

static SHELLS: ShellPool<Channel> = ShellPool::new();

/// The shell pool's lock (see `fork`).
pub(crate) fn shells_lock() -> &'static weft_platform::fork_lock::RawForkLock {
    SHELLS.raw_lock()
}

/// Elements an unbounded channel must be able to hold at once, for the creation check
/// (the plugins grow such channels in blocks of about this many).
const UNBOUNDED_BLOCK: usize = 64;

impl Channel {
    /// Creates a channel with one reference.
    pub(crate) fn new(
        rt: &'static Runtime,
        elem_size: usize,
        capacity: usize,
        opts: &weft_chan_opts_t,
    ) -> Result<&'static Channel> {
        // The same answer on every platform: a buffer (or, unbounded, a block of
        // UNBOUNDED_BLOCK elements) that cannot fit in memory is refused now, not at the
        // first send.
        let slots = if capacity == WEFT_CHAN_UNBOUNDED { UNBOUNDED_BLOCK } else { capacity };
        if elem_size.checked_mul(slots).is_none_or(|bytes| bytes > isize::MAX as usize) {
            if capacity == WEFT_CHAN_UNBOUNDED {
                fail!(WEFT_ENOMEM, "an unbounded channel of {elem_size}-byte elements does not fit in memory");
            }
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
        let s = SHELLS.take(|| Channel {
            tag: AtomicU32::new(0),
            close_state: AtomicU32::new(OPEN),
            close_code: AtomicI32::new(0),
            refs: AtomicUsize::new(0),
            rt: AtomicPtr::new(ptr::null_mut()),
            plat: AtomicPtr::new(ptr::null_mut()),
            elem_size: AtomicUsize::new(0),
            capacity: AtomicUsize::new(0),
            elem_drop: AtomicPtr::new(ptr::null_mut()),
            drop_ud: AtomicPtr::new(ptr::null_mut()),
        });
        s.close_state.store(OPEN, Relaxed);
        s.close_code.store(0, Relaxed);
        s.refs.store(1, Relaxed);
        s.rt.store(rt as *const Runtime as *mut Runtime, Relaxed);
        s.plat.store(plat, Relaxed);
        s.elem_size.store(elem_size, Relaxed);
        s.capacity.store(capacity, Relaxed);
        s.elem_drop.store(opts.elem_drop.map_or(ptr::null_mut(), |f| f as *mut c_void), Relaxed);
        s.drop_ud.store(opts.drop_ud, Relaxed);
        s.tag.store(CHAN_TAG, Release);
        Ok(s)
    }

    pub(crate) fn runtime(&self) -> &'static Runtime {
        // SAFETY: stored before the live tag (Release; the check that gave out `self`
        // read it with Acquire); runtimes are never freed.
        unsafe { &*self.rt.load(Relaxed) }
    }

    pub(crate) fn plat(&self) -> *mut weft_plat_chan_t {
        self.plat.load(Relaxed)
    }

    pub(crate) fn elem_size(&self) -> usize {
        self.elem_size.load(Relaxed)
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity.load(Relaxed)
    }

    /// Sends `elem` (the plugin's status: the API layer words the errors).
    #[inline]
    pub(crate) fn send(&self, elem: *const c_void, deadline: i64) -> weft_status_t {
        plat_call!(self.runtime().table, chan_send(self.plat(), elem, deadline))
    }

    #[inline]
    pub(crate) fn recv(&self, out: *mut c_void, deadline: i64) -> weft_status_t {
        plat_call!(self.runtime().table, chan_recv(self.plat(), out, deadline))
    }

    /// Closes the channel; closing a closed channel does nothing. Every close that
    /// returns leaves the channel closed: a close that loses the race to another waits
    /// until the winner's plugin close is done (it returns at once by contract), so no
    /// send after either returns can succeed.
    pub(crate) fn close(&self, code: i32) -> Result<()> {
        let rt = self.runtime();
        // Before the state moves: a close the platform refused would still have closed.
        rt.check_runs_caller()?;
        if self.close_state.compare_exchange(OPEN, CLOSING, AcqRel, Acquire).is_err() {
            while self.close_state.load(Acquire) == CLOSING {
                plat_call!(rt.table, r#yield(rt.prt));
            }
            return Ok(());
        }
        self.close_code.store(code, Release);
        let status = plat_call!(rt.table, chan_close(self.plat()));
        self.close_state.store(CLOSED, Release);
        check_plugin(status, || format!("cannot close channel {:p}", self))
    }

    /// The code of the close that closed the channel (0: open, or a plain close). Read
    /// while the close is still CLOSING too: the code is stored before the plugin's
    /// close, so a receiver the plugin woke with `WEFT_ECLOSED` sees it, even before the
    /// closer marks the channel CLOSED.
    pub(crate) fn close_code(&self) -> i32 {
        match self.close_state.load(Acquire) {
            OPEN => 0,
            _ => self.close_code.load(Acquire),
        }
    }

    pub(crate) fn len(&self) -> usize {
        plat_call!(self.runtime().table, chan_len(self.plat()))
    }

    pub(crate) fn retain(&self) -> Result<()> {
        if !refs::retain(&self.refs) {
            fail!(WEFT_EINVAL, "channel {:p} was released (its last reference is gone)", self);
        }
        Ok(())
    }

    /// Gives back one reference; the last frees the plugin's channel (dropping what it
    /// still holds) and retires the shell.
    pub(crate) fn release(&'static self) -> Result<()> {
        match refs::release(&self.refs) {
            None => fail!(WEFT_EINVAL, "channel {:p} was released (its last reference is gone)", self),
            Some(false) => return Ok(()),
            Some(true) => {} // the last owner: every other one's last use came before
        }
        self.tag.store(CHAN_RELEASED, Release);
        let drop_fn = self.elem_drop.load(Relaxed);
        let host_drop = (!drop_fn.is_null()).then(|| HostElemDrop {
            // SAFETY: stored from a `weft_chan_drop_fn` in `new`.
            elem_drop: unsafe {
                std::mem::transmute::<*mut c_void, unsafe extern "C-unwind" fn(*mut c_void, *mut c_void)>(drop_fn)
            },
            ud: self.drop_ud.load(Relaxed),
        });
        // The plugin calls weft's trampoline, which calls the host's elem_drop.
        let (drop_fn, drop_ud) = plugin_elem_drop(host_drop.as_ref());
        plat_call!(self.runtime().table, chan_free(self.plat(), drop_fn, drop_ud));
        self.plat.store(ptr::null_mut(), Relaxed);
        SHELLS.give_back(self);
        Ok(())
    }
}

/// `check_plugin`'s error for a status known not to be `WEFT_OK`.
pub(crate) fn plugin_error(status: weft_status_t, what: impl FnOnce() -> String) -> Error {
    match check_plugin(status, what) {
        Err(e) => e,
        Ok(()) => Error::new(WEFT_EINTERNAL, "the platform failed without a status"),
    }
}
