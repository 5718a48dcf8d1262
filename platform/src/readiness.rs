//! The translation between weft's IO events and `poll(2)`'s bits, for Rust plugins that
//! wait with `poll`/`ppoll` (native, green's re-check, sim): written once so that every
//! platform reports readiness the same way (`docs/io.md`: end of file is readable, an
//! error or hang-up is always reported as `WEFT_IO_ERROR`).
use crate::status::{WEFT_IO_ERROR, WEFT_IO_READ, WEFT_IO_WRITE};

/// The `poll` events to ask for, for weft `events` (`WEFT_IO_READ` / `WEFT_IO_WRITE`).
pub fn poll_events(events: u32) -> libc::c_short {
    let mut bits = 0;
    if events & WEFT_IO_READ != 0 {
        bits |= libc::POLLIN;
    }
    if events & WEFT_IO_WRITE != 0 {
        bits |= libc::POLLOUT;
    }
    bits
}

/// The weft ready events for what `poll` reported on an fd asked for `events`; 0 when
/// nothing is ready. `POLLNVAL` (not open) is the caller's to look at first.
pub fn ready_events(events: u32, revents: libc::c_short) -> u32 {
    let mut ready = 0;
    if events & WEFT_IO_READ != 0 && revents & (libc::POLLIN | libc::POLLHUP) != 0 {
        ready |= WEFT_IO_READ;
    }
    if events & WEFT_IO_WRITE != 0 && revents & libc::POLLOUT != 0 {
        ready |= WEFT_IO_WRITE;
    }
    if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        ready |= WEFT_IO_ERROR;
    }
    ready
}

/// What one `poll` of one fd with a zero timeout says.
pub enum PollNow {
    /// Ready: the weft events (never 0).
    Ready(u32),
    NotReady,
    /// `POLLNVAL`: the fd is not open (never opened, or closed before or while waited on).
    NotOpen,
}

/// The error detail every Rust plugin gives for an fd that is not open (the pthread
/// plugin writes the same words in C).
pub fn not_open_detail(fd: i32) -> String {
    format!("fd {fd} is not open (closed, or never opened; call weft_fd_forget before close)")
}

/// Polls `fd` for `events` without waiting.
pub fn poll_now(fd: i32, events: u32) -> PollNow {
    let mut p = libc::pollfd { fd, events: poll_events(events), revents: 0 };
    // SAFETY: one valid pollfd; a zero timeout never blocks.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n <= 0 {
        return PollNow::NotReady;
    }
    if p.revents & libc::POLLNVAL != 0 {
        return PollNow::NotOpen;
    }
    match ready_events(events, p.revents) {
        0 => PollNow::NotReady,
        ready => PollNow::Ready(ready),
    }
}
