//! Yielding the OS thread while waiting for another thread, and knowing when not to.
//!
//! A waiter that backs off before it parks (a channel call, a contended lock) yields a
//! few times: on a quiet machine its partner runs on another CPU and completes within
//! a microsecond, and a yield is cheaper than parking and being woken. When there are
//! more runnable threads than CPUs, a `sched_yield` sends the caller behind every
//! one of them: it returns after their time slices (milliseconds each; measured on
//! this 2-CPU machine with 8 busy threads, half the yields took over 1 ms), while a
//! thread woken from a futex is placed ahead. Yielding there costs the partner's
//! progress for nothing, and throughput collapses.
//!
//! So every back-off yield is timed. One that took the CPU away for longer than a time
//! slice's worth (`SLOW_YIELD_NS`) closes the gate for a while: back-offs then skip
//! their yields and park at once, as a pthread mutex or condition would. The closed
//! time doubles while probes find yields still slow (up to `MAX_CLOSED_NS`) and halves
//! when they are fast again. The gate is process-wide: what it measures is the
//! machine's load, not one lock's.
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};

use crate::clock;

/// A yield that gives the CPU away for this long ran other threads' slices.
const SLOW_YIELD_NS: i64 = 200_000;
/// How long the gate first stays closed after a slow yield.
const MIN_CLOSED_NS: i64 = 10_000_000;
/// The longest it stays closed before a yield probes the load again.
const MAX_CLOSED_NS: i64 = 1_000_000_000;

/// Until when back-offs do not yield (0: open).
static CLOSED_UNTIL: AtomicI64 = AtomicI64::new(0);
/// How long the next closing lasts.
static CLOSED_FOR: AtomicI64 = AtomicI64::new(MIN_CLOSED_NS);

/// True when a back-off may yield the thread; false while yields have recently been
/// slow (more runnable threads than CPUs): park instead.
pub(crate) fn yielding_pays() -> bool {
    match CLOSED_UNTIL.load(Relaxed) {
        0 => true,
        until => clock::now() >= until,
    }
}

/// Yields the OS thread without touching the gate (a contended mutex's wait, which
/// stops yielding by itself after a slow yield): true if the yield was fast.
pub(crate) fn ungated_yield() -> bool {
    let start = clock::now();
    std::thread::yield_now();
    clock::now() - start < SLOW_YIELD_NS
}

/// Yields the OS thread, and closes the gate if the yield was slow.
pub(crate) fn timed_yield() {
    let start = clock::now();
    std::thread::yield_now();
    let took = clock::now() - start;
    let (until, closed_for) = (CLOSED_UNTIL.load(Relaxed), CLOSED_FOR.load(Relaxed));
    if took >= SLOW_YIELD_NS {
        CLOSED_UNTIL.store(start + took + closed_for, Relaxed);
        CLOSED_FOR.store((closed_for * 2).min(MAX_CLOSED_NS), Relaxed);
    } else if until != 0 && start >= until {
        // A probe after the gate reopened, and fast: the load has gone.
        CLOSED_UNTIL.store(0, Relaxed);
        CLOSED_FOR.store((closed_for / 2).max(MIN_CLOSED_NS), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// With four busy threads per CPU, yields become slow and the gate closes; without
    /// them, a probe after the closed time finds yields fast and opens it again.
    /// Bounded by progress, not by speed: each phase has 30 s to happen.
    #[test]
    fn gate_closes_under_overload_and_reopens() {
        assert!(yielding_pays(), "the gate starts open");
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let quit = Arc::new(AtomicBool::new(false));
        let busy: Vec<_> = (0..4 * cpus)
            .map(|_| {
                let quit = Arc::clone(&quit);
                std::thread::spawn(move || {
                    while !quit.load(Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let give_up = Instant::now() + Duration::from_secs(30);
        while yielding_pays() && Instant::now() < give_up {
            timed_yield();
        }
        let closed = !yielding_pays();
        quit.store(true, SeqCst);
        busy.into_iter().for_each(|t| t.join().unwrap());
        assert!(closed, "30 s of yields among {} busy threads on {cpus} CPUs never took {SLOW_YIELD_NS} ns", 4 * cpus);
        assert!(CLOSED_FOR.load(Relaxed) > MIN_CLOSED_NS, "a slow yield doubles the next closing");

        let give_up = Instant::now() + Duration::from_secs(30);
        while CLOSED_UNTIL.load(Relaxed) != 0 && Instant::now() < give_up {
            if yielding_pays() {
                timed_yield();
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert!(yielding_pays(), "the gate never reopened on a machine without the busy threads");
    }
}
