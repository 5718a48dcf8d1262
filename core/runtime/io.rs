//! IO readiness waits: the checks and the calls into the plugin behind `weft_fd_wait`
//! and `weft_fd_forget` (exported in `api/io.rs`).
//!
//! The runtime owns no descriptor and keeps no state per fd: the host owns its fds
//! (opens them, makes them non-blocking, reads, writes, closes them), and the plugin
//! owns the waiting (a poll per waiter on thread platforms, a netpoller on M:N ones).
//! What the runtime adds is what every export adds: arguments refused before they reach
//! the plugin, `WEFT_ENOTSUP` for a plugin older than the IO members, and an error
//! message that names the fd and the reason.
use weft_platform::*;

use crate::ffi::error::{check_plugin, fail, Result};
use crate::runtime::Runtime;

/// The events a host may ask for. `WEFT_IO_ERROR` is accepted and changes nothing: it
/// is always reported. `WEFT_IO_DRAINED` is a promise about the host's reads and writes.
const KNOWN_EVENTS: u32 = WEFT_IO_READ | WEFT_IO_WRITE | WEFT_IO_ERROR | WEFT_IO_DRAINED;
/// The ready events a wait reports.
const READY_EVENTS: u32 = WEFT_IO_READ | WEFT_IO_WRITE | WEFT_IO_ERROR;
/// The events the plugin is asked for.
const WAITABLE_EVENTS: u32 = WEFT_IO_READ | WEFT_IO_WRITE;

/// `fd` is a descriptor number at all.
fn check_fd_number(fd: i32) -> Result<()> {
    if fd < 0 {
        fail!(WEFT_EINVAL, "fd {fd} is negative");
    }
    Ok(())
}

/// `fd` is open in this process now.
fn check_fd_open(fd: i32) -> Result<()> {
    // SAFETY: F_GETFD only reads the descriptor's flags; any number is safe to ask about.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        let why = std::io::Error::last_os_error();
        if why.raw_os_error() == Some(libc::EBADF) {
            fail!(WEFT_EINVAL, "fd {fd} is not open");
        }
        fail!(WEFT_EINVAL, "fd {fd} cannot be checked: {why}");
    }
    Ok(())
}

fn check_events(fd: i32, events: u32) -> Result<()> {
    if events & !KNOWN_EVENTS != 0 {
        fail!(
            WEFT_EINVAL,
            "fd {fd}: unknown events 0x{:x} (WEFT_IO_READ and WEFT_IO_WRITE are the events to wait for, \
             WEFT_IO_DRAINED may go with them)",
            events & !KNOWN_EVENTS
        );
    }
    if events & WAITABLE_EVENTS == 0 {
        fail!(
            WEFT_EINVAL,
            "fd {fd}: no events to wait for (events 0x{events:x}; ask for WEFT_IO_READ and/or WEFT_IO_WRITE)"
        );
    }
    Ok(())
}

/// Waits until `fd` is ready for one of `events`; returns the ready events.
pub(crate) fn wait(rt: &Runtime, fd: i32, events: u32, deadline: i64) -> Result<u32> {
    check_fd_number(fd)?;
    check_events(fd, events)?;
    // Whether `fd` is open is the plugin's to find out (its `poll` or `epoll_ctl` says
    // so at no extra cost; the table's contract): a check here would be one more
    // syscall on every wait, a fifth of a loopback echo server's.
    let Some(fd_wait) = rt.table.fd_wait else {
        fail!(WEFT_ENOTSUP, "{} does not offer IO waits (fd_wait came with plugin ABI 2)", rt.platform_label());
    };
    // A platform that does not take the drained promise waits level-triggered, which
    // keeps it too.
    let asked = if rt.table.caps & WEFT_CAP_IO_DRAINED != 0 {
        events & (WAITABLE_EVENTS | WEFT_IO_DRAINED)
    } else {
        events & WAITABLE_EVENTS
    };
    let mut ready = 0u32;
    // SAFETY: a member of the accepted table, called with the runtime's own plugin state,
    // a descriptor checked open, known events and a valid out-pointer.
    let status = unsafe { fd_wait(rt.prt, fd, asked, deadline, &mut ready) };
    check_plugin(status, || match status {
        WEFT_ETIMEDOUT => format!("fd {fd} was not ready by the deadline"),
        WEFT_ECANCELED => format!("the calling task was cancelled while it waited on fd {fd}"),
        WEFT_ECLOSED => format!("fd {fd} was forgotten (weft_fd_forget) while the caller waited on it"),
        _ => format!("cannot wait on fd {fd}"),
    })?;
    Ok(ready & READY_EVENTS)
}

/// Wakes every waiter on `fd` with `WEFT_ECLOSED` and drops what the plugin keeps for it.
pub(crate) fn forget(rt: &Runtime, fd: i32) -> Result<()> {
    check_fd_number(fd)?;
    let Some(fd_forget) = rt.table.fd_forget else {
        fail!(WEFT_ENOTSUP, "{} does not offer IO waits (fd_forget came with plugin ABI 2)", rt.platform_label());
    };
    // SAFETY: a member of the accepted table, called with the runtime's own plugin state.
    let status = unsafe { fd_forget(rt.prt, fd) };
    check_plugin(status, || format!("cannot forget fd {fd}"))?;
    // Checked after the plugin ran: a host that closed first still gets its waiters
    // woken, and then hears that the order was wrong.
    check_fd_open(fd).map_err(|mut e| {
        e.detail = format!("{} (its waiters were woken; call weft_fd_forget before close)", e.detail);
        e
    })
}
