//! First runs that a child of `fork()` never waits for.
//!
//! `std::sync::Once` and `OnceLock` make every other caller wait while one thread runs
//! the initialisation. A child forked at that instant inherits the "running" state but
//! not the thread that runs it, and its first caller waits for ever: CPython's
//! test_threading forks from a thread while its main thread's first condition wait
//! counted the CPUs in a `OnceLock`, and the child hung in 6 of 6 runs. glibc's own
//! `pthread_once` guards against this with a fork generation; these do it with the
//! process id of the runner (the child's is never its parent's).
//!
//! * [`known_once`]: a number any caller may find again (a CPU count). Nobody waits.
//! * [`ForkSafeOnce`]: a first run with effects (a handler installed, a key made),
//!   which other threads of the same process wait for, and which a child whose parent
//!   was inside it runs again itself. A run that registers a `fork()` handler calls
//!   [`ForkSafeOnce::mark_done`] from the child's handler, so that a registration the
//!   child inherited is not made twice.
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::*};

/// The value in `cell`, found by `find` (at least 1) the first time. Two first callers
/// both find it, and one's answer stays: for values every finder agrees on.
pub fn known_once(cell: &AtomicUsize, find: impl FnOnce() -> usize) -> usize {
    match cell.load(Relaxed) {
        0 => {
            let found = find().max(1);
            cell.store(found, Relaxed);
            found
        }
        known => known,
    }
}

/// A first run that threads of one process wait for, and a child of `fork()` does not.
pub struct ForkSafeOnce {
    /// `NEW`, `DONE`, or the process id of the process one of whose threads runs it.
    state: AtomicI32,
}

const NEW: i32 = 0;
const DONE: i32 = -1;

impl ForkSafeOnce {
    pub const fn new() -> Self {
        ForkSafeOnce { state: AtomicI32::new(NEW) }
    }

    /// Runs `init` unless it has run (to its end) in this process or in the parent
    /// before the fork; returns once it has. A caller that finds another thread of its
    /// process running it waits; an `init` that panics leaves it to the next caller.
    #[inline]
    pub fn call_once(&self, init: impl FnOnce()) {
        if self.state.load(Acquire) != DONE {
            self.run_or_wait(init);
        }
    }

    /// Whether a run has ended, here or in the parent before the fork.
    pub fn is_done(&self) -> bool {
        self.state.load(Acquire) == DONE
    }

    /// Takes the run as done: for the child's `fork()` handler that `init` registered,
    /// whose running proves that the registration was inherited.
    pub fn mark_done(&self) {
        self.state.store(DONE, Release);
    }

    #[cold]
    fn run_or_wait(&self, init: impl FnOnce()) {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        let mut seen = self.state.load(Acquire);
        let mut waits = 0u32;
        loop {
            match seen {
                DONE => return,
                runner if runner == me => {
                    // Another thread of this process runs it: first runs are short
                    // (a system call or a few), so yield, then sleep a little.
                    if waits < 64 {
                        std::thread::yield_now();
                    } else {
                        std::thread::sleep(std::time::Duration::from_micros(50));
                    }
                    waits += 1;
                    seen = self.state.load(Acquire);
                }
                // Nobody ran it yet, a run panicked, or a thread of the parent was
                // running it when this process was forked: this one runs it.
                _ => match self.state.compare_exchange(seen, me, Acquire, Acquire) {
                    Ok(_) => {
                        let unwound = ResetOnUnwind(&self.state);
                        init();
                        std::mem::forget(unwound);
                        self.state.store(DONE, Release);
                        return;
                    }
                    Err(now) => seen = now,
                },
            }
        }
    }
}

impl Default for ForkSafeOnce {
    fn default() -> Self {
        Self::new()
    }
}

/// Gives a panicking run back to the next caller instead of leaving it "running".
struct ResetOnUnwind<'a>(&'a AtomicI32);

impl Drop for ResetOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.store(NEW, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::monotonic_now as now;
    use std::sync::atomic::AtomicU32;
    use std::sync::mpsc::channel;

    /// Forks while `runner` is inside a first run (it says so on `inside`, and waits for
    /// `forked`), runs `in_child` in the child, and asserts the child exits with 0
    /// within 10 s (a child that waits for the parent's runner fails the test, and is
    /// killed, instead of hanging it).
    fn fork_during_a_first_run(
        inside: std::sync::mpsc::Receiver<()>,
        forked: std::sync::mpsc::Sender<()>,
        in_child: impl FnOnce() -> bool,
    ) {
        inside.recv().unwrap();
        // SAFETY: the child only touches atomics and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ok = in_child();
            // SAFETY: ends the child at once, without the parent's exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert!(pid > 0, "fork failed");
        forked.send(()).unwrap();
        let mut status = 0;
        let give_up = now() + 10_000_000_000;
        // SAFETY: our child; WNOHANG, so that a hung child fails the test.
        while unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == 0 {
            if now() > give_up {
                // SAFETY: our child, which has not been reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("the child waited for the parent's first run for 10 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status:#x}");
    }

    /// A child forked while another thread of its parent finds a value finds it again
    /// instead of waiting for a thread it does not have.
    #[test]
    fn a_child_forked_during_a_first_count_does_not_wait_for_it() {
        static CELL: AtomicUsize = AtomicUsize::new(0);
        let (inside_tx, inside_rx) = channel();
        let (forked_tx, forked_rx) = channel::<()>();
        let finder = std::thread::spawn(move || {
            known_once(&CELL, || {
                inside_tx.send(()).unwrap();
                forked_rx.recv().unwrap();
                3
            })
        });
        fork_during_a_first_run(inside_rx, forked_tx, || known_once(&CELL, || 5) == 5);
        assert_eq!(finder.join().unwrap(), 3);
    }

    /// The same for a first run with effects: the child runs it itself; the parent's
    /// run ends in the parent, whose later callers do not run it again.
    #[test]
    fn a_child_forked_during_a_first_run_runs_it_itself() {
        static ONCE: ForkSafeOnce = ForkSafeOnce::new();
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let (inside_tx, inside_rx) = channel();
        let (forked_tx, forked_rx) = channel::<()>();
        let runner = std::thread::spawn(move || {
            ONCE.call_once(|| {
                inside_tx.send(()).unwrap();
                forked_rx.recv().unwrap();
                RUNS.fetch_add(1, SeqCst);
            })
        });
        fork_during_a_first_run(inside_rx, forked_tx, || {
            ONCE.call_once(|| {
                RUNS.fetch_add(10, SeqCst);
            });
            ONCE.call_once(|| {
                RUNS.fetch_add(100, SeqCst);
            });
            ONCE.is_done() && RUNS.load(SeqCst) == 10
        });
        runner.join().unwrap();
        ONCE.call_once(|| {
            RUNS.fetch_add(100, SeqCst);
        });
        assert!(ONCE.is_done());
        assert_eq!(RUNS.load(SeqCst), 1, "the parent's run, once");
    }

    /// Threads of one process that meet a first run wait for its end, and it runs once.
    #[test]
    fn threads_wait_for_one_run() {
        static ONCE: ForkSafeOnce = ForkSafeOnce::new();
        static RUNS: AtomicU32 = AtomicU32::new(0);
        static SEEN_DONE: AtomicU32 = AtomicU32::new(0);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    ONCE.call_once(|| {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        RUNS.fetch_add(1, SeqCst);
                    });
                    // Every caller returns after the run's effects.
                    if RUNS.load(SeqCst) == 1 {
                        SEEN_DONE.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(RUNS.load(SeqCst), 1);
        assert_eq!(SEEN_DONE.load(SeqCst), 8);
    }

    /// A run that panics leaves it to the next caller, as `std::sync::Once` does not
    /// (it poisons): weft's first runs are retried rather than failing for good.
    #[test]
    fn a_panicking_run_is_run_again() {
        static ONCE: ForkSafeOnce = ForkSafeOnce::new();
        let first = std::panic::catch_unwind(|| ONCE.call_once(|| panic!("first run fails")));
        assert!(first.is_err());
        assert!(!ONCE.is_done());
        let mut ran = false;
        ONCE.call_once(|| ran = true);
        assert!(ran && ONCE.is_done());
    }
}
