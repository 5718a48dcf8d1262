//! `weft_select` over send and receive cases.
use std::mem::MaybeUninit;
use std::ptr;

use weft_platform::*;

use super::chan::{chan_probe, chan_ref};
use super::write_out;
use crate::ffi::error::{check_plugin, fail, ffi, Error};
use crate::runtime::select::{self, Outcome};
use crate::runtime::Runtime;
use crate::types::*;

/// Cases up to this many are translated on the stack; more take one allocation.
const INLINE_CASES: usize = 16;

/// Checks the cases and writes each one's plugin form to `out`; the channels' runtime,
/// or None if any case is refused (see `case_error`).
#[inline]
fn translate(
    cases: &[weft_select_case_t],
    out: &mut [MaybeUninit<weft_plat_select_case_t>],
) -> Option<&'static Runtime> {
    let mut runtime: Option<&'static Runtime> = None;
    for (case, slot) in cases.iter().zip(out.iter_mut()) {
        let c = chan_probe(case.chan, true)?;
        let rt = c.runtime();
        if !ptr::eq(*runtime.get_or_insert(rt), rt) {
            return None;
        }
        if (case.op != WEFT_SELECT_SEND && case.op != WEFT_SELECT_RECV) || (case.buf.is_null() && c.elem_size() != 0) {
            return None;
        }
        slot.write(weft_plat_select_case_t { chan: c.plat(), op: case.op, buf: case.buf });
    }
    runtime.filter(|rt| rt.is_open())
}

/// Why `translate` refused the cases: the first bad one.
#[cold]
#[inline(never)]
fn case_error(cases: &[weft_select_case_t]) -> Error {
    let mut runtime: Option<&'static Runtime> = None;
    for (index, case) in cases.iter().enumerate() {
        let c = match chan_ref(case.chan, false) {
            Ok(c) => c,
            Err(e) => return Error::new(e.code, format!("case {index}: {}", e.detail)),
        };
        if !ptr::eq(*runtime.get_or_insert(c.runtime()), c.runtime()) {
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

/// Waits until one of `n` channel operations can complete, completes exactly that one,
/// and writes its index to `*chosen`. `cases` is borrowed for the call; the channels
/// must belong to one runtime, and one channel may appear in several cases. A send
/// case is ready when its channel has room, a waiting receiver, or is closed; a receive
/// case when its channel has an element, a waiting sender, or is closed. Among the cases
/// ready at once, one is chosen uniformly at random, or with `WEFT_SELECT_ORDERED` in
/// `flags` the one with the lowest index (a priority order). Unknown flags are
/// `WEFT_EINVAL`.
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
    cases: *const weft_select_case_t,
    n: usize,
    deadline: i64,
    flags: u32,
    chosen: *mut usize,
) -> weft_status_t {
    ffi("weft_select", || {
        if chosen.is_null() {
            fail!(WEFT_EINVAL, "chosen is NULL");
        }
        if flags & !WEFT_SELECT_ORDERED != 0 {
            fail!(WEFT_EINVAL, "unknown flags 0x{:x}", flags & !WEFT_SELECT_ORDERED);
        }
        if n == 0 {
            return select::sleep(deadline);
        }
        if cases.is_null() {
            fail!(WEFT_EINVAL, "cases is NULL but n is {n}");
        }
        if n > isize::MAX as usize / std::mem::size_of::<weft_select_case_t>() {
            fail!(WEFT_EINVAL, "n is {n}: no array of that many cases exists");
        }
        // SAFETY: the host's array of `n` cases, borrowed for the call.
        let cases = unsafe { std::slice::from_raw_parts(cases, n) };
        let mut inline = [MaybeUninit::<weft_plat_select_case_t>::uninit(); INLINE_CASES];
        let mut heap = Vec::new();
        let slots: &mut [MaybeUninit<weft_plat_select_case_t>] = if n <= INLINE_CASES {
            &mut inline[..n]
        } else {
            if heap.try_reserve_exact(n).is_err() {
                fail!(WEFT_ENOMEM, "no memory for {n} cases");
            }
            heap.resize(n, MaybeUninit::uninit());
            &mut heap[..]
        };
        // One quick pass; the reason for a refusal is worked out only then.
        let Some(rt) = translate(cases, slots) else { return Err(case_error(cases)) };
        // SAFETY: `translate` wrote every slot before returning Some.
        let plat_cases =
            unsafe { &*(slots as *const [MaybeUninit<weft_plat_select_case_t>] as *const [weft_plat_select_case_t]) };
        match select::select(rt, plat_cases, deadline, flags)? {
            Outcome::Chosen(index, status) => {
                // SAFETY: checked non-NULL above.
                unsafe { write_out(chosen, index) };
                if status == WEFT_ECLOSED {
                    let what =
                        if cases[index].op == WEFT_SELECT_SEND { "the element was not sent" } else { "it is empty" };
                    fail!(WEFT_ECLOSED, "case {index}: channel {:p} is closed; {what}", cases[index].chan);
                }
                Ok(())
            }
            Outcome::NoCase(WEFT_ETIMEDOUT) => {
                fail!(WEFT_ETIMEDOUT, "none of the {n} cases could complete before the deadline")
            }
            Outcome::NoCase(WEFT_ECANCELED) => {
                fail!(WEFT_ECANCELED, "the calling task was cancelled while selecting over {n} cases")
            }
            Outcome::NoCase(status) => check_plugin(status, || format!("cannot select over {n} cases")),
        }
    })
}
