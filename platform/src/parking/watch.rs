//! Watching for a wake-up before parking: a waiter whose waker runs on another CPU is
//! often answered within microseconds, and then it need not sleep at all.
//!
//! A thread that parks and is woken pays a system call on each side and, when its CPU
//! went idle meanwhile, the time the CPU takes to come back: 20-40 us on the virtual
//! machines weft is measured on, where a condition ping-pong's round trip (two such
//! wake-ups) took 60 us with glibc's condition and with weft's. A waiter that first
//! watches the word its waker changes is answered in the time a cache line takes to
//! cross, and the round trip takes 1-4 us (docs/performance.md, "A condition waiter
//! watches before it sleeps").
//!
//! A watch burns its CPU, so three limits keep it from costing more than it saves:
//!
//! * **A spare CPU.** At most one thread fewer than the process's CPUs watches at once,
//!   so that the waker always has a CPU to run on; on one CPU nobody watches. Nor does
//!   anybody while the machine's runnable threads outnumber its CPUs (the kernel's
//!   count in `/proc/loadavg`, read at most every `FRESH_NS`): a watch would take the CPU
//!   of a thread that waits for one (a stop-the-world's requester and its running
//!   mutators, 3 threads on 2 CPUs, reached the safepoint in 13-24 us without watches,
//!   and in 42-62 us in a third of the runs with them).
//! * **What the object's waits have been like.** Each object keeps how many watches in
//!   a row went unanswered (`history`); each halves the next one, down to
//!   `LONGEST_NS >> MAX_UNANSWERED` (about 1.6 us, the price of the system calls it would
//!   save), and one answered watch restores the whole. An object whose waits are long
//!   (an idle worker's condition) costs that little per wait.
//! * **The caller's policy**, which asks only on OS threads while the machine is not
//!   overloaded (a green task never watches: its worker runs other tasks instead).
//!
//! The longest watch is longer than an idle CPU's wake-up: after one side has slept,
//! the other side's watch still catches its answer, and the pair is back to watching.
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicUsize, Ordering::Relaxed};

use crate::clock::monotonic_now as now;
use crate::once::{known_once, ForkSafeOnce};

/// The longest watch.
const LONGEST_NS: i64 = 50_000;
/// Unanswered watches in a row that shorten the next one (each halves it).
const MAX_UNANSWERED: u32 = 5;
/// Reads of the watched word between two looks at the clock.
const READS_PER_CLOCK: u32 = 16;

/// Threads watching now, across the process (this copy of the crate).
static WATCHERS: AtomicUsize = AtomicUsize::new(0);

/// How many threads may watch at once: the process's CPUs but one.
fn spare_cpus() -> usize {
    static CPUS: AtomicUsize = AtomicUsize::new(0);
    known_once(&CPUS, || std::thread::available_parallelism().map_or(1, NonZeroUsize::get)) - 1
}

/// How old a reading of the machine's runnable threads may be.
const FRESH_NS: i64 = 200_000;

/// Whether the machine's runnable threads (the caller among them) were at most its CPUs
/// at the last reading, made again when older than `FRESH_NS`. True where
/// `/proc/loadavg` cannot be read: the spare-CPU count still limits the watchers.
fn no_thread_waits_for_a_cpu(now: i64) -> bool {
    static READ_AT: AtomicI64 = AtomicI64::new(i64::MIN);
    static ROOM: AtomicBool = AtomicBool::new(true);
    if now.saturating_sub(READ_AT.load(Relaxed)) > FRESH_NS {
        READ_AT.store(now, Relaxed);
        if let Some(runnable) = runnable_threads() {
            ROOM.store(runnable <= online_cpus(), Relaxed);
        }
    }
    ROOM.load(Relaxed)
}

/// The kernel's count of runnable threads, machine-wide: the fourth field of
/// `/proc/loadavg` ("0.20 0.18 0.12 2/80 1234"), before its slash. The file stays open
/// (one `pread` a reading).
fn runnable_threads() -> Option<usize> {
    const UNOPENED: i32 = -1;
    const UNAVAILABLE: i32 = -2;
    static FD: AtomicI32 = AtomicI32::new(UNOPENED);
    let mut fd = FD.load(Relaxed);
    if fd == UNOPENED {
        // SAFETY: a NUL-terminated path.
        let opened = unsafe { libc::open(c"/proc/loadavg".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        let mine = if opened >= 0 { opened } else { UNAVAILABLE };
        fd = match FD.compare_exchange(UNOPENED, mine, Relaxed, Relaxed) {
            Ok(_) => mine,
            Err(theirs) => {
                if opened >= 0 {
                    // SAFETY: the descriptor this call opened, which nobody else saw.
                    unsafe { libc::close(opened) };
                }
                theirs
            }
        };
    }
    if fd < 0 {
        return None;
    }
    let mut buf = [0u8; 128];
    // SAFETY: a buffer of that length; `fd` stays open for the process's life.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    let text = std::str::from_utf8(buf.get(..usize::try_from(n).ok()?)?).ok()?;
    text.split_ascii_whitespace().nth(3)?.split('/').next()?.parse().ok()
}

/// The machine's online CPUs (what `/proc/loadavg`'s count is shared among).
fn online_cpus() -> usize {
    static ONLINE: AtomicUsize = AtomicUsize::new(0);
    // SAFETY: sysconf has no preconditions.
    known_once(&ONLINE, || usize::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).unwrap_or(1))
}

/// Watches until `answered()` or the watch's end (never past `deadline`, a
/// `CLOCK_MONOTONIC` time in ns): true if answered. `history` is the watched object's
/// count of unanswered watches in a row (zero-initialised; see the module). False at
/// once when no CPU is spare or a thread waits for one.
pub fn watch(history: &AtomicU32, deadline: i64, answered: impl Fn() -> bool) -> bool {
    HANDLER.call_once(|| {
        // SAFETY: a plain function that lives as long as the object holding this copy
        // of the crate, which is not unloaded while anything watches.
        unsafe { libc::pthread_atfork(None, None, Some(forget_parent_watchers_in_child)) };
    });
    let start = now();
    no_thread_waits_for_a_cpu(start) && watch_on_a_spare_cpu(history, start, deadline, answered)
}

/// `watch` but for the machine's load: false at once when the spare CPUs are taken.
fn watch_on_a_spare_cpu(history: &AtomicU32, start: i64, deadline: i64, answered: impl Fn() -> bool) -> bool {
    if WATCHERS.fetch_add(1, Relaxed) >= spare_cpus() {
        WATCHERS.fetch_sub(1, Relaxed);
        return false;
    }
    let seen = watch_from(history, start, deadline, answered);
    WATCHERS.fetch_sub(1, Relaxed);
    seen
}

/// The watch itself, from `start`, for as long as `history` allows; updates it.
fn watch_from(history: &AtomicU32, start: i64, deadline: i64, answered: impl Fn() -> bool) -> bool {
    let unanswered = history.load(Relaxed);
    let until = deadline.min(start.saturating_add(LONGEST_NS >> unanswered.min(MAX_UNANSWERED)));
    let seen = 'watch: loop {
        for _ in 0..READS_PER_CLOCK {
            if answered() {
                break 'watch true;
            }
            std::hint::spin_loop();
        }
        if now() >= until {
            break false;
        }
    };
    if seen {
        if unanswered != 0 {
            history.store(0, Relaxed);
        }
    } else if unanswered < MAX_UNANSWERED {
        history.store(unanswered + 1, Relaxed);
    }
    seen
}

/// Registers `forget_parent_watchers_in_child`, once per copy of this crate.
static HANDLER: ForkSafeOnce = ForkSafeOnce::new();

/// In a child of fork(): the parent's watchers are threads the child does not have.
extern "C" fn forget_parent_watchers_in_child() {
    HANDLER.mark_done();
    WATCHERS.store(0, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::{Acquire, Release};
    use std::sync::Arc;

    /// An answer given by another thread during the watch is seen, and restores the
    /// object's history; a watch nobody answers ends, and counts.
    #[test]
    fn answered_and_unanswered_watches() {
        let history = AtomicU32::new(0);
        let watch = |answer: bool| watch_from(&history, now(), i64::MAX, || answer);
        assert!(!watch(false), "nobody answers");
        assert_eq!(history.load(Relaxed), 1);
        assert!(!watch(false));
        assert_eq!(history.load(Relaxed), 2);
        assert!(watch(true), "answered at the first read");
        assert_eq!(history.load(Relaxed), 0, "an answer restores the whole watch");
        (0..2 * MAX_UNANSWERED).for_each(|_| assert!(!watch(false)));
        assert_eq!(history.load(Relaxed), MAX_UNANSWERED, "the count stops at its most");

        // From another thread: answered while watching, as a signaller on another CPU.
        // The watch may end before the answer on a loaded machine; try until one lands.
        let flag = Arc::new(AtomicBool::new(false));
        let seen = (0..1000).any(|_| {
            flag.store(false, Release);
            let history = AtomicU32::new(0);
            let setter = {
                let flag = Arc::clone(&flag);
                std::thread::spawn(move || flag.store(true, Release))
            };
            let seen = watch_from(&history, now(), i64::MAX, || flag.load(Acquire));
            setter.join().unwrap();
            seen
        });
        assert!(seen, "1000 watches of 50 us never saw another thread's store");
    }

    /// A watch never runs past its deadline: one whose deadline has passed reads the
    /// word no more than once per look at the clock.
    #[test]
    fn watch_ends_by_its_deadline() {
        let history = AtomicU32::new(0);
        let reads = AtomicU32::new(0);
        let answered = || {
            reads.fetch_add(1, Relaxed);
            false
        };
        assert!(!watch_from(&history, now(), now() - 1, answered));
        assert!(
            reads.load(Relaxed) <= READS_PER_CLOCK,
            "a past deadline ends the watch at the first look at the clock"
        );
    }

    /// No more threads watch at once than there are spare CPUs; the others are refused
    /// at once and leave no count behind.
    #[test]
    fn at_most_the_spare_cpus_watch() {
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..spare_cpus() + 3)
            .map(|_| {
                let (inside, most) = (Arc::clone(&inside), Arc::clone(&most));
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let history = AtomicU32::new(0);
                        watch_on_a_spare_cpu(&history, now(), i64::MAX, || {
                            let now = inside.fetch_add(1, Relaxed) + 1;
                            most.fetch_max(now, Relaxed);
                            inside.fetch_sub(1, Relaxed);
                            false
                        });
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(
            most.load(Relaxed) <= spare_cpus(),
            "{} watched at once, {} CPUs spare",
            most.load(Relaxed),
            spare_cpus()
        );
        assert_eq!(WATCHERS.load(Relaxed), 0, "every watch gave its place back");
    }

    /// The kernel's count of runnable threads is read (this test's thread is one of
    /// them), and again from the open file.
    #[test]
    fn runnable_threads_are_counted() {
        for _ in 0..3 {
            let runnable = runnable_threads().expect("/proc/loadavg's fourth field");
            assert!(runnable >= 1, "the reading thread runs: {runnable}");
        }
        assert!(online_cpus() >= 1);
    }
}
