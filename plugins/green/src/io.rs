//! IO readiness waits on green: a task that waits for a file descriptor parks (its
//! worker runs other tasks) and costs no thread, as in Go's netpoller.
//!
//! There is no poller thread. The epoll set belongs to the runtime's scheduler, and the
//! workers poll it themselves (`sched.rs`, Go's `findrunnable`): a worker that finds no
//! task polls it without blocking before it sleeps, and one idle worker at a time sleeps
//! in `epoll_wait` (until the earliest timer) instead of on a futex. A readiness report
//! therefore wakes its task on the worker that saw it: the task goes to that worker's
//! run queue and runs next, with no hand-over to another thread. Whoever queues work
//! (or an earlier timer) while that worker sleeps writes the poller's eventfd
//! (`interrupt`).
//!
//! Each fd waited on has an entry until `fd_forget`: its waiters (how many ask for
//! reading, for writing), sequence numbers per kind of event bumped by every report its
//! waiters want (a parked waiter returns the kinds that moved since it armed: every
//! waiter sees every report), the events reported and not yet returned by a wait
//! (`pending`, what a drained wait starts from), and a generation that `fd_forget`
//! ends (the waiters of an ended generation return `WEFT_ECLOSED`). The fd stays in the epoll set between waits,
//! edge-triggered (`EPOLLET`: one report per change, so a ready fd nobody reads never
//! makes a worker spin). A plain wait arms it (`EPOLL_CTL_MOD` with its waiters'
//! directions), and level semantics (ready now returns at once) come from that arming,
//! which reports an fd that is ready already: a task arms and parks without polling
//! the fd first (see `wait`); a thread that is not a task, and a wait whose deadline has
//! passed, poll first, and a thread polls again when a report wakes it (a report may be
//! stale: the edge of data it already found by polling). A drained wait (`WEFT_IO_DRAINED`: the host read or wrote until
//! `EAGAIN`) makes no system call when the fd is registered for its direction: a change
//! reported since the last wait returned is in `pending`, and a later one wakes it, as
//! in Go's netpoller. A plain wait clears what is pending for its directions before it
//! arms (the arming reports what is ready now). A host that closes
//! an fd without forgetting it leaves a stale entry: the next plain wait's arming finds
//! the fd missing from the epoll set (`ENOENT`) and adds it again (a drained wait would
//! not notice: it requires the forget). An fd epoll does not take (a regular file) is
//! polled: it is always ready.
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};

use weft_platform::fork_lock::ForkMutex;
use weft_platform::readiness::{not_open_detail, poll_now, PollNow};
use weft_platform::*;

use crate::clock;
use crate::sched;
use crate::wait::{self, Wake};
use crate::HOST;

struct Entry {
    /// Ends with `fd_forget`; a new entry for the same fd gets a new one.
    generation: u64,
    readers: u32,
    writers: u32,
    /// Bumped by every report that a waiter of the entry asked for, per direction.
    seqs: Seqs,
    /// The `WEFT_IO_*` bits reported and not yet returned by a wait (see `take_pending`).
    pending: u32,
    /// The epoll interest the fd is registered with (0: not yet).
    registered: u32,
    /// A hang-up was reported: it lasts (end of file stays readable), where an error
    /// alone goes once the host reads it (a connected UDP socket's ICMP error).
    hung_up: bool,
}

/// How many reports a waiter of the entry asked for, per kind of event: a waiter
/// remembers them when it arms, and returns the kinds that moved since. Each waiter
/// sees every report after its arming this way; a shared "reported and not yet taken"
/// word woke the first of two readers of one byte and let the second sleep on.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Seqs {
    read: u64,
    write: u64,
    error: u64,
}

impl Seqs {
    /// The events of `events` (`WEFT_IO_READ`, `WEFT_IO_WRITE`; an error always) that
    /// were reported since `seen`.
    fn moved_since(&self, seen: &Seqs, events: u32) -> u32 {
        let mut bits = 0;
        if events & WEFT_IO_READ != 0 && self.read != seen.read {
            bits |= WEFT_IO_READ;
        }
        if events & WEFT_IO_WRITE != 0 && self.write != seen.write {
            bits |= WEFT_IO_WRITE;
        }
        if self.error != seen.error {
            bits |= WEFT_IO_ERROR;
        }
        bits
    }
}

impl Entry {
    /// Counts a report of `ready` (`WEFT_IO_*`) for the waiters that asked for it;
    /// whether any did.
    fn count_report(&mut self, ready: u32) -> bool {
        let read = self.readers > 0 && ready & WEFT_IO_READ != 0;
        let write = self.writers > 0 && ready & WEFT_IO_WRITE != 0;
        let error = self.readers + self.writers > 0 && ready & WEFT_IO_ERROR != 0;
        self.seqs.read += read as u64;
        self.seqs.write += write as u64;
        self.seqs.error += error as u64;
        read || write || error
    }

    /// The interest for the entry's waiters now.
    fn interest(&self) -> u32 {
        let mut bits = libc::EPOLLET as u32 | libc::EPOLLRDHUP as u32;
        if self.readers > 0 {
            bits |= libc::EPOLLIN as u32;
        }
        if self.writers > 0 {
            bits |= libc::EPOLLOUT as u32;
        }
        bits
    }

    /// Takes the pending events a wait for `events` returns, if any. After a hang-up,
    /// readability (end of file) and its error stay pending: a hang-up does not go
    /// away when a wait reports it, and the edge-triggered set reports it only once. An
    /// error alone is taken as the rest are: the host clears it by reading it, and a
    /// later one is reported again.
    fn take_pending(&mut self, events: u32) -> Option<u32> {
        let ready = self.pending & (events | WEFT_IO_ERROR);
        let lasting = if self.hung_up { self.pending & (WEFT_IO_READ | WEFT_IO_ERROR) } else { 0 };
        self.pending = (self.pending & !(events | WEFT_IO_ERROR)) | lasting;
        (ready != 0).then_some(ready)
    }
}

/// The epoll interest bits for `events` (`WEFT_IO_READ`, `WEFT_IO_WRITE`).
fn directions(events: u32) -> u32 {
    let mut bits = 0;
    if events & WEFT_IO_READ != 0 {
        bits |= libc::EPOLLIN as u32;
    }
    if events & WEFT_IO_WRITE != 0 {
        bits |= libc::EPOLLOUT as u32;
    }
    bits
}

/// Entries are spread over locks by fd, so that waits on different fds rarely meet.
const SHARDS: usize = 64;

/// At most this many reports per poll: a busy network cannot flood a worker's run queue
/// in one go (Go's netpoll takes 128 too).
pub(crate) const BATCH: usize = 128;

pub(crate) type Events = [libc::epoll_event; BATCH];

pub(crate) fn no_events() -> Events {
    [libc::epoll_event { events: 0, u64: 0 }; BATCH]
}

/// The epoll set of one runtime and the entries of the fds waited on.
pub(crate) struct Poller {
    epoll: OwnedFd,
    /// Written to end a worker's `epoll_wait` early (work or an earlier timer came).
    wake: OwnedFd,
    shards: [ForkMutex<HashMap<i32, Entry>>; SHARDS],
    generations: AtomicU64,
    /// Waits in progress: while there are none, nobody polls (Go's `netpollAnyWaiters`).
    waiters: AtomicUsize,
    /// A worker sleeps in `epoll_wait` (at most one does).
    sleeping: AtomicBool,
    /// When the set was last polled (`clock::now()`), for the monitor's backstop.
    last_poll: AtomicI64,
}

/// The data of the wake eventfd in the epoll set (no fd has this number).
const WAKE_TOKEN: u64 = u64::MAX;

/// The data of `fd`'s registration: the fd, and the low half of its entry's generation
/// above it, so that a report collected for a forgotten fd is not taken for the new
/// file that reuses its number (Go's netpoller tags its reports the same way).
fn report_data(fd: i32, generation: u64) -> u64 {
    (generation as u32 as u64) << 32 | fd as u32 as u64
}

fn last_os_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// `epoll_pwait2` (nanosecond timeouts) is Linux 5.11; older kernels round up to ms.
static NO_PWAIT2: AtomicBool = AtomicBool::new(false);

impl Poller {
    pub(crate) fn new() -> Result<Poller, String> {
        // SAFETY: plain syscalls; the results are checked and owned at once.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(last_os_error("epoll_create1"));
        }
        // SAFETY: a fresh descriptor, owned from here on.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: as above.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            return Err(last_os_error("eventfd"));
        }
        // SAFETY: as above.
        let wake = unsafe { OwnedFd::from_raw_fd(wake) };
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: WAKE_TOKEN };
        // SAFETY: valid descriptors and event.
        if unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, wake.as_raw_fd(), &mut ev) } != 0 {
            return Err(last_os_error("epoll_ctl"));
        }
        Ok(Poller {
            epoll,
            wake,
            shards: std::array::from_fn(|_| ForkMutex::new(HashMap::new())),
            generations: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            sleeping: AtomicBool::new(false),
            last_poll: AtomicI64::new(clock::now()),
        })
    }

    fn shard(&self, fd: i32) -> &ForkMutex<HashMap<i32, Entry>> {
        &self.shards[fd as usize % SHARDS]
    }

    /// The park key of `fd`'s waiters: unique to this poller and fd.
    fn key(&self, fd: i32) -> usize {
        (self as *const Poller as usize).wrapping_add((fd as usize).wrapping_mul(8)).wrapping_add(1)
    }

    /// True while some wait is in progress: only then is the set worth polling.
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiters.load(SeqCst) != 0
    }

    /// Makes the caller the worker that sleeps in `epoll_wait`; false if another is.
    pub(crate) fn claim_sleep(&self) -> bool {
        !self.sleeping.load(Relaxed) && !self.sleeping.swap(true, SeqCst)
    }

    pub(crate) fn release_sleep(&self) {
        self.sleeping.store(false, SeqCst);
    }

    pub(crate) fn someone_sleeps(&self) -> bool {
        self.sleeping.load(SeqCst)
    }

    pub(crate) fn last_poll(&self) -> i64 {
        self.last_poll.load(Relaxed)
    }

    /// Ends the `epoll_wait` of the sleeping worker (or its next one, if it is about to
    /// sleep: the eventfd stays readable until that worker reads it).
    pub(crate) fn interrupt(&self) {
        let one: u64 = 1;
        // SAFETY: an eventfd we own, written with 8 bytes. It only fails when the
        // counter is about to overflow, which means it is readable anyway.
        unsafe { libc::write(self.wake.as_raw_fd(), &one as *const u64 as *const libc::c_void, 8) };
    }

    /// Waits for reports for up to `timeout` ns (0: do not block; negative: until one
    /// comes or `interrupt`), into `events`; returns how many. Does not wake anyone
    /// (`dispatch` does), so that the caller can first leave the idle list.
    pub(crate) fn wait_reports(&self, timeout: i64, events: &mut Events) -> usize {
        let n = epoll_wait_ns(self.epoll.as_raw_fd(), events, timeout);
        self.last_poll.store(clock::now(), Relaxed);
        n
    }

    /// Wakes the waiters of the fds reported in `events`; returns how many fds had some.
    /// A task woken here goes to the back of the calling worker's run queue, in report
    /// order (a thread without a processor: the injector). Only the sleeping worker
    /// (`sleeper`) empties the wake eventfd: the write is meant for it, and a worker
    /// that polls without blocking meanwhile must not take it away (the sleeper would
    /// sleep on).
    pub(crate) fn dispatch(&self, events: &[libc::epoll_event], sleeper: bool) -> usize {
        let mut woken = 0;
        for ev in events {
            if ev.u64 == WAKE_TOKEN {
                if !sleeper {
                    continue;
                }
                let mut count: u64 = 0;
                // SAFETY: our non-blocking eventfd, read with 8 bytes; EAGAIN is fine.
                unsafe { libc::read(self.wake.as_raw_fd(), &mut count as *mut u64 as *mut libc::c_void, 8) };
                continue;
            }
            let fd = ev.u64 as u32 as i32;
            let ready = weft_events(ev.events);
            let waited = match self.shard(fd).lock().get_mut(&fd) {
                Some(entry) if report_data(fd, entry.generation) == ev.u64 => {
                    entry.pending |= ready;
                    entry.hung_up |= ev.events & (libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0;
                    entry.count_report(ready)
                }
                // Forgotten, or a report for the file that had the number before.
                _ => false,
            };
            if waited {
                wait::wake_all_queued(self.key(fd));
                woken += 1;
            }
        }
        woken
    }

    /// Registers `fd` with `interest`, or changes its registration to it (which reports
    /// the fd at once if it is ready now).
    fn arm(&self, fd: i32, generation: u64, interest: u32, new: bool) -> Result<(), String> {
        let mut ev = libc::epoll_event { events: interest, u64: report_data(fd, generation) };
        let mut op = if new { libc::EPOLL_CTL_ADD } else { libc::EPOLL_CTL_MOD };
        for _ in 0..2 {
            // SAFETY: a valid epoll descriptor and event; `fd` is the host's, checked open.
            if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) } == 0 {
                return Ok(());
            }
            // A stale entry (the fd was closed without a forget, its number reused) or
            // a registration left by one: switch between adding and modifying once.
            op = match io::Error::last_os_error().raw_os_error() {
                Some(libc::ENOENT) if op == libc::EPOLL_CTL_MOD => libc::EPOLL_CTL_ADD,
                Some(libc::EEXIST) if op == libc::EPOLL_CTL_ADD => libc::EPOLL_CTL_MOD,
                _ => break,
            };
        }
        Err(last_os_error("epoll_ctl"))
    }

    /// `fd_wait`. `needs_poller` is called when the wait is about to park and no worker
    /// sleeps in `epoll_wait`, so that one comes to poll for it.
    pub(crate) fn wait(
        &self,
        fd: i32,
        events: u32,
        deadline: i64,
        revents: *mut u32,
        needs_poller: impl Fn(),
    ) -> weft_status_t {
        let (reads, writes) = ((events & WEFT_IO_READ != 0) as u32, (events & WEFT_IO_WRITE != 0) as u32);
        let drained = events & WEFT_IO_DRAINED != 0;
        let events = events & (WEFT_IO_READ | WEFT_IO_WRITE);
        // The generation of the entry this wait counts itself in.
        let mut mine: Option<u64> = None;
        // A task's first look is the arming: an fd ready at `EPOLL_CTL_MOD` is reported
        // at once, and the task's worker polls before it idles. Hosts wait after a read
        // or write said EAGAIN, so the fd is almost never ready here, and a poll first
        // would be a syscall per wait for nothing (Go's netpoll does not poll either).
        // A thread that is not a task has no worker to poll for it, and a past deadline
        // polls once: they poll.
        let on_task = sched::on_task();
        let mut poll = !on_task || clock::expired(deadline);
        let status = loop {
            // Cancellation first: a cancelled task gets WEFT_ECANCELED even on a ready fd.
            if wait::cancelled() {
                break WEFT_ECANCELED;
            }
            let ready_now = if poll { poll_now(fd, events) } else { PollNow::NotReady };
            // A drained wait looks at the fd only through the reports of its changes.
            poll = !drained;
            match ready_now {
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
            let (generation, seen) = {
                let mut shard = self.shard(fd).lock();
                let new = !shard.contains_key(&fd);
                let entry = match mine {
                    None => {
                        let entry = shard.entry(fd).or_insert_with(|| Entry {
                            generation: self.generations.fetch_add(1, Relaxed),
                            readers: 0,
                            writers: 0,
                            seqs: Seqs::default(),
                            pending: 0,
                            registered: 0,
                            hung_up: false,
                        });
                        entry.readers += reads;
                        entry.writers += writes;
                        mine = Some(entry.generation);
                        self.waiters.fetch_add(1, SeqCst);
                        entry
                    }
                    Some(generation) => match shard.get_mut(&fd) {
                        Some(entry) if entry.generation == generation => entry,
                        _ => break WEFT_ECLOSED,
                    },
                };
                // A drained wait takes a change reported since the last wait returned.
                if drained {
                    if let Some(ready) = entry.take_pending(events) {
                        // After a hang-up, end of file stays pending, for ever on a
                        // socket; but a FIFO's hang-up ends when a writer opens it
                        // again, and a drained wait returned at once from then on (an
                        // echo loop spun). Only then is the fd looked at.
                        let ready = if entry.hung_up { still_hung_up(entry, fd, events, ready) } else { Some(ready) };
                        if let Some(ready) = ready {
                            // SAFETY: the runtime passes a valid out-pointer.
                            unsafe { *revents = ready };
                            break WEFT_OK;
                        }
                    }
                } else {
                    // The arming below reports the fd if it is ready now: what was
                    // reported before for these directions is stale (the host may have
                    // read it since), and a plain wait returned it with its own report.
                    entry.pending &= !events;
                }
                let needed = directions(events);
                let armed = drained && !new && entry.registered & needed == needed;
                let interest = if drained { entry.registered | entry.interest() } else { entry.interest() };
                if armed {
                    // Registered for this direction already: the next change is reported.
                } else if let Err(e) = self.arm(fd, entry.generation, interest, new) {
                    // An fd epoll does not take (a regular file: EPERM) is always ready
                    // to poll; the task did not poll it yet. One that is not open
                    // (EBADF) is found here too. An entry made for this wait goes: a
                    // host that waits on bad fds must not grow the table.
                    if new {
                        shard.remove(&fd);
                    }
                    match poll_now(fd, events) {
                        PollNow::Ready(ready) => {
                            // SAFETY: the runtime passes a valid out-pointer.
                            unsafe { *revents = ready };
                            break WEFT_OK;
                        }
                        PollNow::NotOpen => break HOST.fail(WEFT_EINVAL, &not_open_detail(fd)),
                        PollNow::NotReady => break HOST.fail(WEFT_EINVAL, &format!("cannot wait on fd {fd}: {e}")),
                    }
                } else {
                    entry.registered = interest;
                }
                (entry.generation, entry.seqs)
            };
            if !self.someone_sleeps() {
                needs_poller();
            }
            let still = || {
                let shard = self.shard(fd).lock();
                shard.get(&fd).is_some_and(|e| e.generation == generation && e.seqs.moved_since(&seen, events) == 0)
            };
            match HOST.blocking(|| wait::park(self.key(fd), still, deadline)) {
                Wake::Woken | Wake::TimedOut => {}
                Wake::Cancelled => break WEFT_ECANCELED,
            }
            if wait::cancelled() {
                continue; // WEFT_ECANCELED at the top, even with events pending
            }
            let reported = match self.shard(fd).lock().get_mut(&fd) {
                Some(e) if e.generation == generation => {
                    let moved = e.seqs.moved_since(&seen, events);
                    // What it returns is no longer pending for the next drained wait.
                    let _ = e.take_pending(moved & !WEFT_IO_ERROR);
                    (moved != 0).then_some(moved)
                }
                _ => break WEFT_ECLOSED,
            };
            if let Some(ready) = reported {
                if !drained {
                    // A plain wait looks at the fd itself before it says READ or
                    // WRITE: a report may be stale. The edge of data the caller read
                    // since can still be between a worker's epoll_wait and its dispatch
                    // when the caller arms again, and woke its next wait with nothing
                    // to read (a thread's: 1 run in 20 of `io_wakeups_around_the_poller`
                    // under ASan; a task's: about 1 wait in 10,000 of
                    // `io_plain_wait_reports_no_stale_read`). A drained wait may wake
                    // spuriously by its contract, and keeps the report.
                    continue;
                }
                // SAFETY: the runtime passes a valid out-pointer.
                unsafe { *revents = ready };
                break WEFT_OK;
            }
        };
        if let Some(generation) = mine {
            if let Some(entry) = self.shard(fd).lock().get_mut(&fd).filter(|e| e.generation == generation) {
                entry.readers -= reads;
                entry.writers -= writes;
            }
            self.waiters.fetch_sub(1, SeqCst);
        }
        status
    }

    /// `fd_forget`: wakes the waiters on `fd` with `WEFT_ECLOSED` and takes the fd out
    /// of the epoll set.
    pub(crate) fn forget(&self, fd: i32) {
        // The removal from the set under the shard's lock too: a wait that starts
        // meanwhile makes a new entry and registers the fd again under that lock, and a
        // removal after it would leave that wait deaf.
        let mut shard = self.shard(fd).lock();
        if shard.remove(&fd).is_some() {
            // SAFETY: a valid epoll descriptor; an fd not in the set is fine (ENOENT).
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
        }
        drop(shard);
        wait::wake_all(self.key(fd));
    }
}

/// The events a drained wait returns after a hang-up was reported (`ready`, taken from
/// `entry.pending`), if the fd still says so; if not (a FIFO a writer opened again),
/// the hang-up and what it left pending are over, and the wait waits.
fn still_hung_up(entry: &mut Entry, fd: i32, events: u32, ready: u32) -> Option<u32> {
    match poll_now(fd, events) {
        PollNow::NotReady => {
            entry.hung_up = false;
            entry.pending &= !(WEFT_IO_READ | WEFT_IO_ERROR);
            None
        }
        PollNow::Ready(now) => Some(now),
        PollNow::NotOpen => Some(ready),
    }
}

/// `epoll_wait` with a timeout in nanoseconds (negative: none).
fn epoll_wait_ns(epoll: i32, events: &mut Events, timeout: i64) -> usize {
    let max = events.len() as i32;
    let n = if timeout <= 0 || NO_PWAIT2.load(Relaxed) {
        let ms = match timeout {
            t if t < 0 => -1,
            0 => 0,
            // Rounded up: a worker that wakes before its timer would only sleep again.
            t => ((t as u64).div_ceil(1_000_000)).min(i32::MAX as u64) as i32,
        };
        // SAFETY: a valid epoll descriptor and buffer of `max` events.
        unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), max, ms) }
    } else {
        let ts = libc::timespec { tv_sec: timeout / 1_000_000_000, tv_nsec: timeout % 1_000_000_000 };
        // SAFETY: as above, with a valid timespec and no signal mask.
        let n = unsafe {
            libc::syscall(libc::SYS_epoll_pwait2, epoll, events.as_mut_ptr(), max, &ts, std::ptr::null::<u8>(), 0)
        } as i32;
        if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            NO_PWAIT2.store(true, Relaxed);
            return epoll_wait_ns(epoll, events, timeout);
        }
        n
    };
    n.max(0) as usize // EINTR: nothing reported
}

/// An epoll report as `WEFT_IO_*` bits, read as `poll_now` reads `poll`'s (a hang-up
/// is readable, and an error).
fn weft_events(epoll: u32) -> u32 {
    let mut ready = 0;
    if epoll & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP) as u32 != 0 {
        ready |= WEFT_IO_READ;
    }
    if epoll & libc::EPOLLOUT as u32 != 0 {
        ready |= WEFT_IO_WRITE;
    }
    if epoll & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0 {
        ready |= WEFT_IO_ERROR;
    }
    ready
}
