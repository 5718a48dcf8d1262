//! A mutex for the process-wide state a library must hand intact to a child of `fork()`.
//!
//! The usual way to make such state fork-safe is a `pthread_atfork` trio: take the lock
//! before the fork, release it in the parent, and in the child, whose only thread is the
//! one that forked, release it too. With parking_lot that last step is not safe: a
//! thread of the parent may have been inside parking_lot's global wait table (queueing
//! itself on this very lock, which the forking thread held) at the instant of the fork,
//! so the table's bucket lock is held for ever in the child, and any unlock or park in
//! the child that touches that bucket hangs. A [`ForkMutex`] keeps its waiters in the
//! kernel (a futex word, nothing shared with other locks), so the child forgets the
//! parent's waiters by resetting one word: [`RawForkLock::reset_in_child`].
//!
//! It is a three-state futex mutex (unlocked, locked, locked with sleepers), as in
//! Drepper's "Futexes Are Tricky", for locks held briefly (registries, and the buckets
//! of `parking`, where two threads trade one bucket at every park and unpark), where
//! fairness does not matter. A waiter spins a little, then yields a few times, before
//! it sleeps, as parking_lot's word lock does: a sleep costs the next unlock a wake-up
//! call, and with 100 spins and no yield the parking's buckets made a contended
//! one-word lock on `weft_park` 1.5x dearer and a semaphore ping-pong 1.3x.
use std::sync::atomic::{AtomicU32, Ordering::*};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
/// Locked, and a thread may sleep in the kernel waiting for it.
const SLEEPERS: u32 = 2;

/// Steps of back-off before sleeping: the first `SPIN_STEPS` spin 2, 4, 8 pauses, the
/// rest yield the CPU (a holder preempted mid-section gets to run on).
const SPIN_STEPS: u32 = 3;
const STEPS: u32 = 10;

/// The raw lock of a [`ForkMutex`].
pub struct RawForkLock {
    state: AtomicU32,
}

/// A mutex whose lock can be reset in a child of `fork()` (see the module).
pub type ForkMutex<T> = lock_api::Mutex<RawForkLock, T>;
/// The guard of a [`ForkMutex`].
pub type ForkMutexGuard<'a, T> = lock_api::MutexGuard<'a, RawForkLock, T>;

impl RawForkLock {
    #[cold]
    fn lock_slow(&self) {
        for step in 0..STEPS {
            if step < SPIN_STEPS {
                (0..2u32 << step).for_each(|_| std::hint::spin_loop());
            } else {
                std::thread::yield_now();
            }
            if self.state.load(Relaxed) == UNLOCKED
                && self.state.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).is_ok()
            {
                return;
            }
        }
        // From now on this thread may sleep, so whoever unlocks must wake.
        while self.state.swap(SLEEPERS, Acquire) != UNLOCKED {
            futex(&self.state, libc::FUTEX_WAIT, SLEEPERS);
        }
    }

    /// In the child of a `fork()`: leaves the lock free and forgets the parent's threads
    /// that waited for it. Wakes no one.
    ///
    /// # Safety
    /// Only in a child of `fork()`, whose one thread holds this lock (taken before the
    /// fork) or knows that the data behind it is consistent (or replaces it).
    pub unsafe fn reset_in_child(&self) {
        self.state.store(UNLOCKED, Release);
    }
}

// SAFETY: a lock is held by at most one thread at a time: every way in is a successful
// swap or compare-exchange from UNLOCKED with Acquire, and unlock stores UNLOCKED with
// Release.
unsafe impl lock_api::RawMutex for RawForkLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = RawForkLock { state: AtomicU32::new(UNLOCKED) };
    type GuardMarker = lock_api::GuardSend;

    fn lock(&self) {
        if self.state.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).is_err() {
            self.lock_slow();
        }
    }

    fn try_lock(&self) -> bool {
        self.state.compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed).is_ok()
    }

    unsafe fn unlock(&self) {
        if self.state.swap(UNLOCKED, Release) == SLEEPERS {
            futex(&self.state, libc::FUTEX_WAKE, 1);
        }
    }

    fn is_locked(&self) -> bool {
        self.state.load(Relaxed) != UNLOCKED
    }
}

/// `FUTEX_WAIT` (while `*word == val`, no timeout) or `FUTEX_WAKE` (`val` sleepers) on a
/// word of this process. A wait may return early (EINTR, or the word changed): callers
/// look at the word again in a loop.
pub(crate) fn futex(word: &AtomicU32, op: libc::c_int, val: u32) {
    let _errno = crate::errno::Kept::new();
    // SAFETY: a futex call on a live, aligned u32, without a timeout (NULL).
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op | libc::FUTEX_PRIVATE_FLAG,
            val,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_threads_count_exactly() {
        static COUNT: ForkMutex<u64> = ForkMutex::new(0);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..50_000 {
                        *COUNT.lock() += 1;
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*COUNT.lock(), 400_000);
    }

    #[test]
    fn a_reset_lock_is_free_again() {
        let m = ForkMutex::new(5);
        std::mem::forget(m.lock());
        assert!(m.try_lock().is_none());
        // SAFETY: the data is consistent (the forgotten guard changed nothing).
        unsafe { m.raw().reset_in_child() };
        assert_eq!(*m.try_lock().expect("free after the reset"), 5);
    }
}
