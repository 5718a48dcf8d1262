//! `weft_select`: waiting on several channel operations at once. The plugin's
//! `chan_select` does the choosing and the waiting; the API layer translates and checks
//! the cases.
use weft_platform::*;

use crate::ffi::error::{check_plugin, fail, Result};
use crate::plugin::plat_call;
use crate::runtime::{implicit_runtime, Runtime};

/// What became of a select that reached the plugin.
pub(crate) enum Outcome {
    /// A case completed with `status` (`WEFT_OK` or `WEFT_ECLOSED`).
    Chosen(usize, weft_status_t),
    /// No case completed (`WEFT_ETIMEDOUT`, `WEFT_ECANCELED`, `WEFT_ENOMEM`, ...).
    NoCase(weft_status_t),
}

/// Has the plugin complete one of `cases` (at least one, all on `rt`'s channels).
pub(crate) fn select(rt: &Runtime, cases: &[weft_plat_select_case_t], deadline: i64, flags: u32) -> Result<Outcome> {
    let n = cases.len();
    let mut index = usize::MAX;
    let status = plat_call!(rt.table, chan_select(cases.as_ptr(), n, deadline, flags, &mut index));
    match status {
        WEFT_OK | WEFT_ECLOSED if index >= n => fail!(WEFT_EINTERNAL, "the platform chose case {index} of {n}"),
        WEFT_OK | WEFT_ECLOSED => Ok(Outcome::Chosen(index, status)),
        status => Ok(Outcome::NoCase(status)),
    }
}

/// A select with no cases: a sleep until the deadline on the caller's runtime.
pub(crate) fn sleep(deadline: i64) -> Result<()> {
    let Some(rt) = implicit_runtime() else {
        fail!(WEFT_EINVAL, "a select with no cases sleeps on the caller's runtime, and no runtime is open");
    };
    match plat_call!(rt.table, sleep_until(rt.prt, deadline)) {
        WEFT_OK => fail!(WEFT_ETIMEDOUT, "a select with no cases waits until its deadline"),
        WEFT_ECANCELED => fail!(WEFT_ECANCELED, "the calling task was cancelled while selecting over no cases"),
        status => check_plugin(status, || "sleep interrupted".into()),
    }
}
