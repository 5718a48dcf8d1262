//! The exported IO readiness waits: argument checks and conversion at the C boundary;
//! the logic is in `runtime/io.rs`.
use std::ffi::c_int;

use weft_platform::*;

use super::open_runtime;
use crate::ffi::error::{ffi, Result};
use crate::runtime::{io, Runtime};
use crate::types::weft_runtime_t;

/// Waits until the file descriptor `fd` (a socket, pipe, eventfd, terminal...) is ready
/// for one of `events` (`WEFT_IO_READ`, `WEFT_IO_WRITE`, or both), or `deadline`.
/// Level-triggered: an fd that is ready now returns at once. On `WEFT_OK` writes the
/// ready events to `*revents` (if `revents` is not NULL): `WEFT_IO_READ` and
/// `WEFT_IO_WRITE` as asked for and ready, plus `WEFT_IO_ERROR` whenever the fd has an
/// error or hang-up condition (then the host's next read or write reports it).
///
/// The fd stays the host's: weft never reads, writes, closes or changes it; making it
/// non-blocking (`O_NONBLOCK`) so that a read after a wake-up cannot block is the
/// host's job. Before closing an fd that tasks may wait on, call `weft_fd_forget`.
///
/// `events` may add `WEFT_IO_DRAINED` when the caller read or wrote until `EAGAIN`
/// since its last wait on `fd` returned: the wait then waits for the readiness to
/// change rather than checking it (no system call to wait on green, as in Go). A
/// drained wait on an fd that is still ready may sleep until the next data or room.
///
/// `WEFT_ETIMEDOUT` at the deadline (a deadline at or before now polls once).
/// `WEFT_ECANCELED` if the calling task is cancelled before or while it waits (a
/// cancellation point). `WEFT_ECLOSED` if `weft_fd_forget(rt, fd)` is called while it
/// waits. `WEFT_EINVAL` (naming the fd and the reason) for `rt` NULL or closed, `fd`
/// negative or not open, `events` without `WEFT_IO_READ`/`WEFT_IO_WRITE` or with
/// unknown bits. `WEFT_ENOTSUP` on a platform plugin older than IO waits (ABI 1).
/// The waiting caller is in a blocking region: a stop-the-world does not wait for it.
/// Several tasks may wait on one fd; each whose events are ready is woken.
#[no_mangle]
pub unsafe extern "C" fn weft_fd_wait(
    rt: *mut weft_runtime_t,
    fd: c_int,
    events: u32,
    deadline: i64,
    revents: *mut u32,
) -> weft_status_t {
    // The platform's own polls and registrations fail by design (no weft call sets errno).
    let _errno = weft_platform::errno::Kept::new();
    ffi("weft_fd_wait", || {
        let rt = runtime_for(rt, fd)?;
        let ready = io::wait(rt, fd, events, deadline)?;
        if !revents.is_null() {
            // SAFETY: the host's out-parameter, checked non-NULL.
            unsafe { revents.write(ready) };
        }
        Ok(())
    })
}

/// Tells weft that the host is about to close `fd`: every task waiting on `fd` in `rt`
/// returns `WEFT_ECLOSED` (without waiting for them), and whatever the platform keeps
/// for `fd` is dropped. Call it before `close(fd)`, never after: a wait on an fd closed
/// under it may not notice, and the number may already name a new file. Fine for an fd
/// never waited on. It affects `rt` only (an fd waited on in two runtimes is forgotten
/// in each). `WEFT_EINVAL` for `rt` NULL or closed or `fd` negative, and for an fd that
/// is no longer open (its waiters are woken all the same). `WEFT_ENOTSUP` on a platform
/// plugin older than IO waits (ABI 1).
#[no_mangle]
pub unsafe extern "C" fn weft_fd_forget(rt: *mut weft_runtime_t, fd: c_int) -> weft_status_t {
    // An fd never registered fails the platform's `epoll_ctl` (no weft call sets errno).
    let _errno = weft_platform::errno::Kept::new();
    ffi("weft_fd_forget", || io::forget(runtime_for(rt, fd)?, fd))
}

/// `open_runtime`, with the fd in the message: every refusal names the fd.
fn runtime_for(rt: *mut weft_runtime_t, fd: c_int) -> Result<&'static Runtime> {
    open_runtime(rt).map_err(|mut e| {
        e.detail = format!("fd {fd}: {}", e.detail);
        e
    })
}
