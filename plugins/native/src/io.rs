//! IO readiness waits: each waiting task polls its fd together with a wake-up eventfd
//! of its own thread, in one `ppoll`, inside a blocking region.
//!
//! Two things wake a waiter before its fd is ready, and both write to its eventfd:
//! * `cancel`: the task's `TaskState` records the eventfd for the length of the wait
//!   (see `wait::cancel`); the runtime sets the cancelled flag before it calls
//!   `cancel`, and the waiter records its eventfd before it asks `cancel_pending`, both
//!   under the record's lock, so either the canceller finds the eventfd or the waiter
//!   sees the flag;
//! * `fd_forget`: every waiter is listed, by fd, in its runtime's [`Registry`] for the
//!   length of the wait; forget marks each waiter of the fd forgotten and writes to its
//!   eventfd, under the registry lock that a waiter takes to join the list, so a
//!   waiter listed before the forget is always woken and one listed after is not.
//!
//! The eventfd belongs to the thread and lives in an `Arc`: a canceller or a forget
//! that still holds it writes to the same file even if the waiter has moved on, never
//! to a number since reused. A stale wake-up (a cancel that came after the wait it was
//! meant for had returned) only makes a later wait drain it and look again.
use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

use weft_platform::fork_lock::ForkMutex;
use weft_platform::readiness::{not_open_detail, poll_events, ready_events};
use weft_platform::*;

use crate::clock;
use crate::wait;
use crate::HOST;

/// A thread's wake-up eventfd (non-blocking, close-on-exec).
pub(crate) struct WakeFd(OwnedFd);

impl WakeFd {
    fn new() -> io::Result<WakeFd> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new descriptor
        // that nothing else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        Ok(WakeFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the eventfd readable until the owner drains it.
    pub(crate) fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to our own eventfd. It can only fail when
        // the counter is near overflow, and then the fd is readable already.
        unsafe { libc::write(self.0.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
    }

    fn drain(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a local from our own non-blocking eventfd (EAGAIN
        // when there is nothing to drain).
        unsafe { libc::read(self.0.as_raw_fd(), &mut count as *mut u64 as *mut libc::c_void, 8) };
    }
}

thread_local! {
    // Made on a thread's first wait and kept: two system calls less per wait. Closed
    // when the thread exits and nobody holds it any more.
    static THREAD_WAKE: RefCell<Option<Arc<WakeFd>>> = const { RefCell::new(None) };
}

fn thread_wake() -> io::Result<Arc<WakeFd>> {
    let cached = THREAD_WAKE.try_with(|slot| {
        let mut slot = slot.borrow_mut();
        if let Some(wake) = slot.as_ref() {
            return Ok(Arc::clone(wake));
        }
        let wake = Arc::new(WakeFd::new()?);
        *slot = Some(Arc::clone(&wake));
        Ok(wake)
    });
    // A wait during thread exit, after the thread-locals are gone, gets one of its own.
    cached.unwrap_or_else(|_| WakeFd::new().map(Arc::new))
}

/// One call of `fd_wait` that is waiting.
struct Waiter {
    wake: Arc<WakeFd>,
    forgotten: AtomicBool,
}

/// The waiters of one runtime, by fd, for `fd_forget`.
#[derive(Default)]
pub(crate) struct Registry {
    waiters: ForkMutex<HashMap<i32, Vec<Arc<Waiter>>>>,
}

impl Registry {
    fn add(&self, fd: i32, waiter: &Arc<Waiter>) {
        self.waiters.lock().entry(fd).or_default().push(Arc::clone(waiter));
    }

    fn remove(&self, fd: i32, waiter: &Arc<Waiter>) {
        let mut waiters = self.waiters.lock();
        if let Some(list) = waiters.get_mut(&fd) {
            if let Some(at) = list.iter().position(|w| Arc::ptr_eq(w, waiter)) {
                list.swap_remove(at);
            }
            if list.is_empty() {
                waiters.remove(&fd);
            }
        }
    }

    fn forget(&self, fd: i32) {
        let mut waiters = self.waiters.lock();
        for waiter in waiters.remove(&fd).unwrap_or_default() {
            waiter.forgotten.store(true, SeqCst);
            waiter.wake.signal();
        }
    }
}

fn not_open(fd: i32) -> weft_status_t {
    HOST.fail(WEFT_EINVAL, &not_open_detail(fd))
}

/// Polls `fds` until one is ready or `deadline`; retries on EINTR. Returns false when
/// the deadline passed with nothing ready.
fn poll(fds: &mut [libc::pollfd], deadline: i64) -> io::Result<bool> {
    loop {
        let left = if deadline == WEFT_FOREVER { None } else { Some(deadline.saturating_sub(clock::now()).max(0)) };
        let ts = left.map(|ns| libc::timespec { tv_sec: ns / 1_000_000_000, tv_nsec: ns % 1_000_000_000 });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds, `ts_ptr` NULL or a
        // local timespec, and no signal mask is given.
        let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ts_ptr, std::ptr::null()) };
        if rc > 0 {
            return Ok(true);
        }
        if rc == 0 {
            if left == Some(0) || clock::expired(deadline) {
                return Ok(false);
            }
            continue;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

pub(crate) unsafe extern "C" fn fd_wait(
    rt: *mut weft_plat_rt_t,
    fd: i32,
    events: u32,
    deadline: i64,
    revents: *mut u32,
) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime passes the state this plugin made in `runtime_open`.
        let registry = unsafe { &(*(rt as *const crate::NativeRuntime)).io };
        if wait::cancelled() {
            return WEFT_ECANCELED;
        }
        // No separate first poll for a ready fd: the thread's eventfd is made once, so
        // listing the waiter costs only a lock, and a ready fd (or a past deadline,
        // polled with a zero timeout) returns from the first `ppoll` all the same.
        let wake = match thread_wake() {
            Ok(wake) => wake,
            Err(e) => return HOST.fail(WEFT_ENOMEM, &format!("cannot make a wake-up eventfd: {e}")),
        };
        let mut fds = [
            libc::pollfd { fd, events: poll_events(events), revents: 0 },
            libc::pollfd { fd: wake.0.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        let waiter = Arc::new(Waiter { wake: Arc::clone(&wake), forgotten: AtomicBool::new(false) });
        registry.add(fd, &waiter);
        let task = wait::current();
        if let Some(task) = task {
            task.set_io_wake(Some(Arc::clone(&wake)));
        }
        let status = HOST.blocking(|| loop {
            if waiter.forgotten.load(SeqCst) {
                return WEFT_ECLOSED;
            }
            if wait::cancelled() {
                return WEFT_ECANCELED;
            }
            fds[0].revents = 0;
            fds[1].revents = 0;
            match poll(&mut fds, deadline) {
                Err(e) => return HOST.fail(WEFT_EINTERNAL, &format!("poll on fd {fd}: {e}")),
                Ok(false) => return WEFT_ETIMEDOUT,
                Ok(true) => {}
            }
            if fds[0].revents != 0 && !waiter.forgotten.load(SeqCst) {
                return finish(fd, events, fds[0].revents, revents);
            }
            // Cancelled or forgotten (asked at the top), or a stale wake-up left by a
            // cancel that came after an earlier wait of this thread had returned.
            wake.drain();
        });
        if let Some(task) = task {
            task.set_io_wake(None);
        }
        registry.remove(fd, &waiter);
        status
    })
}

/// The result of a poll that reported something on `fd`.
fn finish(fd: i32, events: u32, polled: libc::c_short, revents: *mut u32) -> weft_status_t {
    if polled & libc::POLLNVAL != 0 {
        return not_open(fd);
    }
    let ready = ready_events(events, polled);
    // SAFETY: the runtime passes a valid out-pointer.
    unsafe { revents.write(ready) };
    WEFT_OK
}

pub(crate) unsafe extern "C" fn fd_forget(rt: *mut weft_plat_rt_t, fd: i32) -> weft_status_t {
    HOST.guard(|| {
        // SAFETY: the runtime passes the state this plugin made in `runtime_open`.
        let registry = unsafe { &(*(rt as *const crate::NativeRuntime)).io };
        registry.forget(fd);
        WEFT_OK
    })
}
