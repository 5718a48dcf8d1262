//! IO readiness waits on sim. A task in `weft_fd_wait` is blocked like any waiting task;
//! the scheduler, not the task, looks at its fd: at every step it polls the fds of the
//! blocked waiters with a zero timeout and makes the ready ones runnable, and when no
//! task can run it waits in a real `poll` (see `State::wait_for_io` in `sched.rs` for
//! how that meets virtual time). Which fds are ready is the world's business, like real
//! IO; which ready waiter runs is the seeded strategy's. With IO the program does to
//! itself (pipes, socket pairs, eventfds its own tasks write) readiness changes only at
//! the program's own steps, so a seed replays exactly.
use weft_platform::readiness::{not_open_detail, poll_events, poll_now, PollNow};
use weft_platform::*;

use crate::sched::{Call, Obj, Sim};
use crate::{clock, on_sim, wait, HOST};

/// One task's wait in progress: on which runtime, fd and events, and whether a
/// `fd_forget` of that fd in that runtime came while it waited.
pub(crate) struct IoWait {
    pub(crate) rt: usize,
    pub(crate) fd: i32,
    pub(crate) events: u32,
    pub(crate) forgotten: bool,
}

/// Polls `waits` for up to `timeout_ms` (-1: for ever); returns, for each, whether it
/// has anything to report (ready, hung up, or not open). One `pollfd` per fd, however
/// many tasks wait on it: `poll` refuses more entries than the process may have fds
/// open (`RLIMIT_NOFILE`), and with one per waiter the waits of over 1024 tasks on one
/// fd were never seen ready (the run ended in a false deadlock report). A signal does
/// not cut the wait short (a deadlock report must not come early because the host got
/// a SIGCHLD); any other failure reports every wait, each of which looks at its own fd.
pub(crate) fn poll_waits<'a>(waits: impl Iterator<Item = &'a IoWait>, timeout_ms: i32) -> Vec<bool> {
    let _errno = weft_platform::errno::Kept::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut slot_of_fd = std::collections::BTreeMap::new();
    // Each wait's slot in `fds` and the poll events it looks for.
    let waits: Vec<(usize, i16)> = waits
        .map(|w| {
            let events = poll_events(w.events);
            let slot = *slot_of_fd.entry(w.fd).or_insert_with(|| {
                fds.push(libc::pollfd { fd: w.fd, events: 0, revents: 0 });
                fds.len() - 1
            });
            fds[slot].events |= events;
            (slot, events)
        })
        .collect();
    let start = std::time::Instant::now();
    let mut left_ms = timeout_ms;
    loop {
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, left_ms) };
        if n >= 0 {
            let always = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
            return waits.iter().map(|&(slot, events)| fds[slot].revents & (events | always) != 0).collect();
        }
        let interrupted = std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
        if !interrupted {
            return vec![true; waits.len()];
        }
        if timeout_ms >= 0 {
            let spent = start.elapsed().as_millis().min(i32::MAX as u128) as i32;
            left_ms = (timeout_ms - spent).max(0);
        }
    }
}

fn io_call(name: &'static str, fd: i32, events: u32) -> Call {
    Call { name, obj: Obj::Fd(fd, events) }
}

pub(crate) unsafe extern "C" fn fd_wait(
    rt: *mut weft_plat_rt_t,
    fd: i32,
    events: u32,
    deadline: i64,
    revents: *mut u32,
) -> weft_status_t {
    on_sim(|sim| {
        let call = io_call("weft_fd_wait", fd, events);
        sim.step(call);
        sim.io_begin(IoWait { rt: rt as usize, fd, events, forgotten: false });
        // The wait ends inside the blocking region: leaving the region may park the
        // task for a stop of the world, and a task still listed there with a ready fd
        // was made runnable at every step meanwhile (virtual time stood still).
        HOST.blocking(|| {
            let status = wait_for_fd(sim, call, fd, events, deadline, revents);
            sim.io_end();
            status
        })
    })
}

/// The loop of `fd_wait`, inside its blocking region.
fn wait_for_fd(sim: &Sim, call: Call, fd: i32, events: u32, deadline: i64, revents: *mut u32) -> weft_status_t {
    loop {
        // Cancellation first: a cancelled task gets WEFT_ECANCELED even on a ready fd.
        if wait::cancelled() {
            break WEFT_ECANCELED;
        }
        if sim.io_forgotten() {
            break WEFT_ECLOSED;
        }
        match poll_now(fd, events) {
            PollNow::Ready(ready) => {
                // SAFETY: the runtime passes a valid out-pointer.
                unsafe { *revents = ready };
                break WEFT_OK;
            }
            PollNow::NotOpen => {
                break HOST.fail(WEFT_EINVAL, &not_open_detail(fd));
            }
            PollNow::NotReady => {}
        }
        if clock::expired(deadline) {
            break WEFT_ETIMEDOUT;
        }
        // Made runnable by the scheduler's poll, a forget, a cancellation or the
        // deadline: look again.
        sim.block_on_io(call, deadline);
    }
}

pub(crate) unsafe extern "C" fn fd_forget(rt: *mut weft_plat_rt_t, fd: i32) -> weft_status_t {
    on_sim(|sim| {
        sim.step(io_call("weft_fd_forget", fd, 0));
        sim.io_forget(rt as usize, fd);
        WEFT_OK
    })
}
