//! IO readiness waits on green: a task that waits for a file descriptor parks (its
//! worker runs other tasks), and one poller thread per runtime, sleeping in
//! `epoll_wait`, wakes it. A waiting task costs no thread, as in Go's netpoller.
//!
//! Each fd waited on has an entry: the events asked for by its waiters, a sequence number
//! bumped by every readiness report and by `fd_forget`, and the waiters' count. The fd
//! is in the epoll set with `EPOLLONESHOT`: one report per arming, so a ready fd nobody
//! reads does not make the poller spin. A woken waiter polls the fd itself (level
//! semantics: the answer is the fd's state now), and arms it again if it must wait on.
//! The entry (and the epoll registration) goes with the last waiter.
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use parking_lot::Mutex;
use weft_platform::readiness::{poll_now, PollNow};
use weft_platform::*;

use crate::clock;
use crate::wait::{self, Wake};
use crate::HOST;

struct Entry {
    /// The events the waiters ask for (`WEFT_IO_READ` / `WEFT_IO_WRITE`).
    interest: u32,
    waiters: u32,
    /// Bumped on every report from epoll and by `fd_forget`: a parked waiter's reason to
    /// look again.
    seq: u64,
    /// Bumped by `fd_forget`: the waiters present then return `WEFT_ECLOSED`.
    forgotten: u64,
}

/// The poller of one runtime.
pub(crate) struct Poller {
    epoll: OwnedFd,
    /// Written to end the poller thread.
    stop: OwnedFd,
    stopping: AtomicBool,
    entries: Mutex<HashMap<i32, Entry>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The data of the stop eventfd in the epoll set (no fd has this number).
const STOP_TOKEN: u64 = u64::MAX;

fn last_os_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

impl Poller {
    pub(crate) fn new() -> Result<Arc<Poller>, String> {
        // SAFETY: plain syscalls; the results are checked and owned at once.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(last_os_error("epoll_create1"));
        }
        // SAFETY: a fresh descriptor, owned from here on.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: as above.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(last_os_error("eventfd"));
        }
        // SAFETY: as above.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: STOP_TOKEN };
        // SAFETY: valid descriptors and event.
        if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, stop.as_raw_fd(), &mut ev) } != 0 {
            return Err(last_os_error("epoll_ctl"));
        }
        let poller = Arc::new(Poller {
            epoll,
            stop,
            stopping: AtomicBool::new(false),
            entries: Mutex::new(HashMap::new()),
            thread: Mutex::new(None),
        });
        let for_thread = Arc::clone(&poller);
        let thread = std::thread::Builder::new()
            .name("weft-netpoll".into())
            .spawn(move || for_thread.run())
            .map_err(|e| format!("cannot start the poller thread: {e}"))?;
        *poller.thread.lock() = Some(thread);
        Ok(poller)
    }

    /// The park key of `fd`'s waiters: unique to this poller and fd.
    fn key(&self, fd: i32) -> usize {
        (self as *const Poller as usize).wrapping_add((fd as usize).wrapping_mul(8)).wrapping_add(1)
    }

    fn run(&self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        while !self.stopping.load(SeqCst) {
            // SAFETY: a valid epoll descriptor and buffer.
            let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, -1) };
            if n < 0 {
                continue; // EINTR
            }
            for ev in &events[..n as usize] {
                if ev.u64 == STOP_TOKEN {
                    continue;
                }
                let fd = ev.u64 as i32;
                if let Some(entry) = self.entries.lock().get_mut(&fd) {
                    entry.seq += 1;
                }
                wait::wake_all(self.key(fd));
            }
        }
    }

    /// Arms `fd` for its waiters' interest (one report: `EPOLLONESHOT`).
    fn arm(&self, fd: i32, interest: u32, first: bool) -> Result<(), String> {
        let mut bits = libc::EPOLLONESHOT as u32 | libc::EPOLLRDHUP as u32;
        if interest & WEFT_IO_READ != 0 {
            bits |= libc::EPOLLIN as u32;
        }
        if interest & WEFT_IO_WRITE != 0 {
            bits |= libc::EPOLLOUT as u32;
        }
        let mut ev = libc::epoll_event { events: bits, u64: fd as u64 };
        let op = if first { libc::EPOLL_CTL_ADD } else { libc::EPOLL_CTL_MOD };
        // SAFETY: a valid epoll descriptor and event; `fd` is the host's, checked open.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } != 0 {
            return Err(last_os_error("epoll_ctl"));
        }
        Ok(())
    }

    fn forget_entry(&self, fd: i32) {
        // SAFETY: a valid epoll descriptor; an fd not in the set is fine (ENOENT).
        unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
    }

    /// `fd_wait`.
    pub(crate) fn wait(&self, fd: i32, events: u32, deadline: i64, revents: *mut u32) -> weft_status_t {
        let mut registered = false;
        let mut forgotten_at = 0;
        let status = loop {
            // Cancellation first: a cancelled task gets WEFT_ECANCELED even on a ready fd.
            if wait::cancelled() {
                break WEFT_ECANCELED;
            }
            match poll_now(fd, events) {
                PollNow::Ready(ready) => {
                    // SAFETY: the runtime passes a valid out-pointer.
                    unsafe { *revents = ready };
                    break WEFT_OK;
                }
                PollNow::NotOpen => {
                    break HOST.fail(WEFT_EINVAL, &format!("fd {fd} is not open (closed while waited on?)"));
                }
                PollNow::NotReady => {}
            }
            if clock::expired(deadline) {
                break WEFT_ETIMEDOUT;
            }
            let seen = {
                let mut entries = self.entries.lock();
                let first = !entries.contains_key(&fd);
                let entry = entries.entry(fd).or_insert(Entry { interest: 0, waiters: 0, seq: 0, forgotten: 0 });
                if !registered {
                    entry.waiters += 1;
                    forgotten_at = entry.forgotten;
                    registered = true;
                } else if entry.forgotten != forgotten_at {
                    break WEFT_ECLOSED;
                }
                entry.interest |= events;
                if let Err(e) = self.arm(fd, entry.interest, first) {
                    break HOST.fail(WEFT_EINVAL, &format!("cannot wait on fd {fd}: {e}"));
                }
                entry.seq
            };
            let still = || self.entries.lock().get(&fd).is_some_and(|e| e.seq == seen);
            match HOST.blocking(|| wait::park(self.key(fd), still, deadline)) {
                Wake::Woken | Wake::TimedOut => {}
                Wake::Cancelled => break WEFT_ECANCELED,
            }
            if self.entries.lock().get(&fd).is_some_and(|e| e.forgotten != forgotten_at) {
                break WEFT_ECLOSED;
            }
        };
        if registered {
            let mut entries = self.entries.lock();
            if let Some(entry) = entries.get_mut(&fd) {
                entry.waiters -= 1;
                if entry.waiters == 0 {
                    entries.remove(&fd);
                    self.forget_entry(fd);
                }
            }
        }
        status
    }

    /// `fd_forget`: wakes the waiters on `fd` with `WEFT_ECLOSED`.
    pub(crate) fn forget(&self, fd: i32) {
        if let Some(entry) = self.entries.lock().get_mut(&fd) {
            entry.forgotten += 1;
            entry.seq += 1;
        }
        self.forget_entry(fd);
        wait::wake_all(self.key(fd));
    }

    /// Ends the poller thread (at `runtime_close`: nobody waits any more).
    pub(crate) fn close(&self) {
        self.stopping.store(true, SeqCst);
        let one: u64 = 1;
        // SAFETY: an eventfd we own, written with 8 bytes.
        unsafe { libc::write(self.stop.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}
