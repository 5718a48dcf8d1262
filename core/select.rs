//! `weft_select`: waiting on several channel operations at once. The runtime checks the
//! cases and translates them to the plugin's channel handles; the plugin's
//! `chan_select` does the choosing and the waiting.
use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::ptr;

use weft_platform::*;

use crate::chan::{chan_check, chan_ref, weft_chan_t};
use crate::error::{check_plugin, fail, ffi, Error, Result};
use crate::loader::plat_call;
use crate::runtime::{implicit_runtime, weft_runtime_t};

/// One case of `weft_select`: send from, or receive into, `buf` on `chan`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct weft_select_case_t {
    /// The channel (borrowed: the caller owns a reference for the duration of the call).
    pub chan: *mut weft_chan_t,
    /// `WEFT_SELECT_SEND` or `WEFT_SELECT_RECV`.
    pub op: i32,
    /// Send: the element to send (`elem_size` bytes, copied only if this case is
    /// chosen). Receive: where the element is written, only if this case is chosen.
    /// May be NULL only for a channel of 0-byte elements.
    pub buf: *mut c_void,
}

/// Cases up to this many are translated on the stack; more take one allocation.
const INLINE_CASES: usize = 16;

fn in_case(index: usize, e: Error) -> Error {
    Error::new(e.code, format!("case {index}: {}", e.detail))
}

/// Checks the (at least one) cases and writes each one's plugin form to `out`; the
/// channels' runtime, or None if any case is refused (see `case_error`).
///
/// # Safety
/// `out` has room for `cases.len()` cases.
#[inline]
unsafe fn translate(
    cases: &[weft_select_case_t],
    out: *mut weft_plat_select_case_t,
) -> Option<&'static weft_runtime_t> {
    let mut runtime: Option<&'static weft_runtime_t> = None;
    for (index, case) in cases.iter().enumerate() {
        let c = chan_check(case.chan, true)?;
        if !ptr::eq(*runtime.get_or_insert(c.rt), c.rt) {
            return None;
        }
        if (case.op != WEFT_SELECT_SEND && case.op != WEFT_SELECT_RECV) || (case.buf.is_null() && c.elem_size() != 0) {
            return None;
        }
        out.add(index).write(weft_plat_select_case_t { chan: c.plat(), op: case.op, buf: case.buf });
    }
    runtime.filter(|rt| rt.is_open())
}

/// Why `translate` refused the cases: the first bad one.
#[cold]
#[inline(never)]
fn case_error(cases: &[weft_select_case_t]) -> Error {
    let mut runtime: Option<&'static weft_runtime_t> = None;
    for (index, case) in cases.iter().enumerate() {
        let c = match chan_ref(case.chan, false) {
            Ok(c) => c,
            Err(e) => return in_case(index, e),
        };
        if !ptr::eq(*runtime.get_or_insert(c.rt), c.rt) {
            return Error::new(
                WEFT_EINVAL,
                format!("case {index}: channel {:p} belongs to another runtime than case 0's", case.chan),
            );
        }
        if case.op != WEFT_SELECT_SEND && case.op != WEFT_SELECT_RECV {
            return Error::new(
                WEFT_EINVAL,
                format!("case {index}: op {} is neither WEFT_SELECT_SEND (1) nor WEFT_SELECT_RECV (2)", case.op),
            );
        }
        if case.buf.is_null() && c.elem_size() != 0 {
            return Error::new(
                WEFT_EINVAL,
                format!("case {index}: buf is NULL (channel {:p} carries {}-byte elements)", case.chan, c.elem_size()),
            );
        }
    }
    // A channel changed between the two looks (released, its runtime closed).
    Error::new(WEFT_EINVAL, "a case's channel was released or its runtime closed during the call")
}

unsafe fn select(
    function: &'static str,
    cases: *const weft_select_case_t,
    n: usize,
    deadline: i64,
    flags: u32,
    chosen: *mut usize,
) -> weft_status_t {
    ffi(function, || {
        if chosen.is_null() {
            fail!(WEFT_EINVAL, "chosen is NULL");
        }
        if flags & !WEFT_SELECT_ORDERED != 0 {
            fail!(WEFT_EINVAL, "unknown flags 0x{:x}", flags & !WEFT_SELECT_ORDERED);
        }
        if n == 0 {
            return sleep(deadline);
        }
        if cases.is_null() {
            fail!(WEFT_EINVAL, "cases is NULL but n is {n}");
        }
        let cases = std::slice::from_raw_parts(cases, n);
        let mut inline = MaybeUninit::<[weft_plat_select_case_t; INLINE_CASES]>::uninit();
        let mut heap = Vec::new();
        let plat_cases: *mut weft_plat_select_case_t = if n <= INLINE_CASES {
            inline.as_mut_ptr() as *mut weft_plat_select_case_t
        } else {
            if heap.try_reserve_exact(n).is_err() {
                fail!(WEFT_ENOMEM, "no memory for {n} cases");
            }
            heap.as_mut_ptr()
        };
        // One quick pass; the reason for a refusal is worked out only then.
        let rt = match translate(cases, plat_cases) {
            Some(rt) => rt,
            None => return Err(case_error(cases)),
        };
        let mut index = usize::MAX;
        let status = plat_call!(rt.table, chan_select(plat_cases, n, deadline, flags, &mut index));
        if (status == WEFT_OK || status == WEFT_ECLOSED) && index >= n {
            fail!(WEFT_EINTERNAL, "the platform chose case {index} of {n}");
        }
        match status {
            WEFT_OK => {
                *chosen = index;
                Ok(())
            }
            WEFT_ECLOSED => {
                *chosen = index;
                let what = if cases[index].op == WEFT_SELECT_SEND { "the element was not sent" } else { "it is empty" };
                fail!(WEFT_ECLOSED, "case {index}: channel {:p} is closed; {what}", cases[index].chan)
            }
            WEFT_ETIMEDOUT => fail!(WEFT_ETIMEDOUT, "none of the {n} cases could complete before the deadline"),
            WEFT_ECANCELED => fail!(WEFT_ECANCELED, "the calling task was cancelled while selecting over {n} cases"),
            status => check_plugin(status, || format!("cannot select over {n} cases")),
        }
    })
}

/// A select with no cases: a sleep until the deadline on the caller's runtime.
fn sleep(deadline: i64) -> Result<()> {
    let Some(rt) = implicit_runtime() else {
        fail!(WEFT_EINVAL, "a select with no cases sleeps on the caller's runtime, and no runtime is open");
    };
    match plat_call!(rt.table, sleep_until(rt.prt, deadline)) {
        WEFT_OK => fail!(WEFT_ETIMEDOUT, "a select with no cases waits until its deadline"),
        WEFT_ECANCELED => fail!(WEFT_ECANCELED, "the calling task was cancelled while selecting over no cases"),
        status => check_plugin(status, || "sleep interrupted".into()),
    }
}

/// Waits until one of `n` channel operations can complete, completes exactly that one,
/// and writes its index to `*chosen`. `cases` is borrowed for the call; the channels
/// must belong to one runtime, and one channel may appear in several cases. A send
/// case is ready when its channel has room, a waiting receiver, or is closed; a receive
/// case when its channel has an element, a waiting sender, or is closed. Among the cases
/// ready at once, one is chosen uniformly at random (see `weft_select_ex` for
/// first-in-order).
///
/// Returns the chosen case's outcome: `WEFT_OK` (sent, or received into its `buf`) or
/// `WEFT_ECLOSED` (its channel is closed: a send case's element was not taken; a
/// receive case's channel is closed and empty); `*chosen` is written for both. Or, with
/// no case completed (nothing sent, nothing received, `*chosen` untouched):
/// `WEFT_ETIMEDOUT` at the deadline, `WEFT_ECANCELED` if the calling task was cancelled
/// before or while it waited. With `n` 0 (`cases` may then be NULL) the call sleeps
/// until `deadline` and returns `WEFT_ETIMEDOUT` (a select with no cases and
/// `WEFT_FOREVER` waits until the task is cancelled), on the runtime of the calling task
/// or attached thread, or else on the runtime opened last. The waiting caller is in a
/// blocking region.
#[no_mangle]
pub unsafe extern "C" fn weft_select(
    cases: *mut weft_select_case_t,
    n: usize,
    deadline: i64,
    chosen: *mut usize,
) -> weft_status_t {
    select("weft_select", cases, n, deadline, 0, chosen)
}

/// `weft_select` with `WEFT_SELECT_*` flags: `WEFT_SELECT_ORDERED` picks, among the
/// cases ready at once, the one with the lowest index (a priority order) instead of a
/// random one. 0 behaves as `weft_select`. Unknown flags are `WEFT_EINVAL`.
#[no_mangle]
pub unsafe extern "C" fn weft_select_ex(
    cases: *mut weft_select_case_t,
    n: usize,
    deadline: i64,
    flags: u32,
    chosen: *mut usize,
) -> weft_status_t {
    select("weft_select_ex", cases, n, deadline, flags, chosen)
}
