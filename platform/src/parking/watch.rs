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
//!   so that the waker always has a CPU to run on; on one CPU nobody watches.
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
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::OnceLock;

/// The longest watch.
pub const LONGEST_NS: i64 = 50_000;
/// Unanswered watches in a row that shorten the next one (each halves it).
const MAX_UNANSWERED: u32 = 5;
/// Reads of the watched word between two looks at the clock.
const READS_PER_CLOCK: u32 = 16;

/// Threads watching now, across the process (this copy of the crate).
static WATCHERS: AtomicUsize = AtomicUsize::new(0);

/// How many threads may watch at once: the process's CPUs but one.
fn spare_cpus() -> usize {
    static SPARE: OnceLock<usize> = OnceLock::new();
    *SPARE.get_or_init(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get) - 1)
}

/// Watches until `answered()` or the watch's end (never past `deadline`, a
/// `CLOCK_MONOTONIC` time in ns): true if answered. `history` is the watched object's
/// count of unanswered watches in a row (zero-initialised; see the module). False at
/// once when no CPU is spare.
pub fn watch(history: &AtomicU32, deadline: i64, answered: impl Fn() -> bool) -> bool {
    super::forget_parent_waiters_in_children();
    if WATCHERS.fetch_add(1, Relaxed) >= spare_cpus() {
        WATCHERS.fetch_sub(1, Relaxed);
        return false;
    }
    let unanswered = history.load(Relaxed);
    let start = now();
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
    WATCHERS.fetch_sub(1, Relaxed);
    if seen {
        if unanswered != 0 {
            history.store(0, Relaxed);
        }
    } else if unanswered < MAX_UNANSWERED {
        history.store(unanswered + 1, Relaxed);
    }
    seen
}

/// In a child of fork(): the parent's watchers are threads the child does not have.
pub(super) fn forget_parent_watchers_in_child() {
    WATCHERS.store(0, Relaxed);
}

fn now() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: an out-parameter; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::atomic::Ordering::{Acquire, Release};
    use std::sync::Arc;

    /// The tests count the process's watchers: one at a time.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn one_cpu() -> bool {
        spare_cpus() == 0
    }

    /// An answer given by another thread during the watch is seen, and restores the
    /// object's history; a watch nobody answers ends, and counts.
    #[test]
    fn answered_and_unanswered_watches() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        if one_cpu() {
            return;
        }
        let history = AtomicU32::new(0);
        assert!(!watch(&history, i64::MAX, || false), "nobody answers");
        assert_eq!(history.load(Relaxed), 1);
        assert!(!watch(&history, i64::MAX, || false));
        assert_eq!(history.load(Relaxed), 2);
        assert!(watch(&history, i64::MAX, || true), "answered at the first read");
        assert_eq!(history.load(Relaxed), 0, "an answer restores the whole watch");
        (0..2 * MAX_UNANSWERED).for_each(|_| assert!(!watch(&history, i64::MAX, || false)));
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
            let seen = watch(&history, i64::MAX, || flag.load(Acquire));
            setter.join().unwrap();
            seen
        });
        assert!(seen, "1000 watches of 50 us never saw another thread's store");
    }

    /// A watch never runs past its deadline, and one whose deadline has passed reads the
    /// word once at most.
    #[test]
    fn watch_ends_by_its_deadline() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        if one_cpu() {
            return;
        }
        let history = AtomicU32::new(0);
        let reads = AtomicU32::new(0);
        assert!(!watch(&history, now() - 1, || {
            reads.fetch_add(1, Relaxed);
            false
        }));
        assert!(
            reads.load(Relaxed) <= READS_PER_CLOCK,
            "a past deadline ends the watch at the first look at the clock"
        );
    }

    /// No more threads watch at once than there are spare CPUs; the others are refused
    /// at once and leave no count behind.
    #[test]
    fn at_most_the_spare_cpus_watch() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..spare_cpus() + 3)
            .map(|_| {
                let (inside, most) = (Arc::clone(&inside), Arc::clone(&most));
                std::thread::spawn(move || {
                    let history = AtomicU32::new(0);
                    for _ in 0..200 {
                        watch(&history, i64::MAX, || {
                            let now = inside.fetch_add(1, Relaxed) + 1;
                            most.fetch_max(now, Relaxed);
                            inside.fetch_sub(1, Relaxed);
                            false
                        });
                        history.store(0, Relaxed);
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
}
