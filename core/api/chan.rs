//! Channels: create, send, receive, close, reference counting.
use std::ffi::c_void;
use std::ptr;

use weft_platform::*;

use super::{non_null, open_runtime, write_out};
use crate::ffi::error::{ffi, ffi_value, Error, Result};
use crate::ffi::handle;
use crate::ffi::sized::read_sized;
use crate::runtime::chan::{plugin_error, Channel};
use crate::types::*;

/// A live channel from the host. `allow_closed`: its runtime may be closed (retain,
/// release, capacity). Inline: a send or receive pays a few loads and branches; the
/// messages are built out of line, only on failure.
#[inline]
pub(crate) fn chan_ref<'a>(ch: *const weft_chan_t, allow_closed: bool) -> Result<&'a Channel> {
    match chan_probe(ch, allow_closed) {
        Some(c) => Ok(c),
        None => Err(chan_refusal(ch, allow_closed)),
    }
}

/// `chan_ref` without the reason: None when `chan_ref` would fail.
#[inline]
pub(crate) fn chan_probe<'a>(ch: *const weft_chan_t, allow_closed: bool) -> Option<&'a Channel> {
    handle::probe::<Channel>(ch.cast()).filter(|c| allow_closed || c.runtime().is_open())
}

#[cold]
#[inline(never)]
fn chan_refusal(ch: *const weft_chan_t, allow_closed: bool) -> Error {
    match handle::probe::<Channel>(ch.cast()) {
        Some(c) if !allow_closed => Error::new(
            WEFT_EINVAL,
            crate::runtime::fork::not_open(c.runtime(), format_args!("the runtime of channel {ch:p}")),
        ),
        _ => handle::refusal::<Channel>(ch.cast()),
    }
}

/// Fills `opts` with the defaults (no `elem_drop`). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn weft_chan_opts_init(opts: *mut weft_chan_opts_t) {
    if !opts.is_null() {
        // SAFETY: the host's options struct, to be filled.
        unsafe { write_out(opts, weft_chan_opts_t::default()) };
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
        non_null(out, "out")?;
        let opts = if opts.is_null() {
            weft_chan_opts_t::default()
        } else {
            // SAFETY: options from the host begin with their struct_size.
            unsafe { read_sized(opts, weft_chan_opts_t::default(), "weft_chan_opts_t")? }
        };
        let chan = Channel::new(rt, elem_size, capacity, &opts)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, chan as *const Channel as *mut weft_chan_t) };
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
        match c.send(elem, deadline) {
            WEFT_OK => Ok(()),
            status => Err(send_error(ch, c, status)),
        }
    })
}

#[cold]
#[inline(never)]
fn send_error(ch: *const weft_chan_t, c: &Channel, status: weft_status_t) -> Error {
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
        match c.recv(out, deadline) {
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
    ffi("weft_chan_close", || chan_ref(ch, false)?.close(0))
}

/// `weft_chan_close`, recording `code` for receivers to read with `weft_chan_close_code`
/// (for instance why a producer stopped). A channel already closed keeps the code of
/// its first close.
#[no_mangle]
pub unsafe extern "C" fn weft_chan_close_with(ch: *mut weft_chan_t, code: i32) -> weft_status_t {
    ffi("weft_chan_close_with", || chan_ref(ch, false)?.close(code))
}

/// The code the channel was closed with: the `code` of `weft_chan_close_with`, or the
/// return code of the task it was linked to (`weft_task_link_chan`); 0 while it is open
/// and after a plain `weft_chan_close`. 0 for an invalid channel (with
/// `weft_last_error()`). Read it after a receive returned `WEFT_ECLOSED`.
#[no_mangle]
pub unsafe extern "C" fn weft_chan_close_code(ch: *const weft_chan_t) -> i32 {
    ffi_value("weft_chan_close_code", 0, || Ok(chan_ref(ch, true)?.close_code()))
}

/// The number of elements buffered now (0 for a rendezvous channel). A snapshot: other
/// tasks may change it at once. 0 for an invalid channel (with `weft_last_error()`).
#[no_mangle]
pub unsafe extern "C" fn weft_chan_len(ch: *const weft_chan_t) -> usize {
    ffi_value("weft_chan_len", 0, || Ok(chan_ref(ch, false)?.len()))
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
        chan_ref(ch, true)?.retain()?;
        Ok(ch)
    })
}

/// Gives back one reference (atomically; any thread). The last one frees the channel:
/// `elem_drop`, if set, runs exactly once on each element still buffered, oldest first,
/// on the calling thread; then the channel is gone and `ch` must not be used again (a
/// later call through it is refused with `WEFT_EINVAL` until a new channel reuses its
/// memory). Nobody may be waiting on the channel then (a task that uses the channel
/// owns a reference). Allowed after the runtime closed. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn weft_chan_release(ch: *mut weft_chan_t) {
    if ch.is_null() {
        return;
    }
    ffi_value("weft_chan_release", (), || chan_ref(ch, true)?.release())
}
