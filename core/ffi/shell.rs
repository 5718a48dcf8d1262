//! Pools of handle shells that are never given back to the allocator (see
//! `handle::Lifetime::Shell`): a released handle's shell is kept for the next handle of
//! its kind, so a stale pointer always reads a tag, and memory stays bounded by the peak
//! number of live handles.
use weft_platform::fork_lock::{ForkMutex, RawForkLock};

pub(crate) struct ShellPool<T: 'static> {
    free: ForkMutex<Vec<&'static T>>,
}

impl<T: 'static> ShellPool<T> {
    pub(crate) const fn new() -> Self {
        ShellPool { free: ForkMutex::new(Vec::new()) }
    }

    /// A released shell, or a new one made by `make`. The caller makes it live (fills
    /// it, then stores a live tag).
    pub(crate) fn take(&self, make: impl FnOnce() -> T) -> &'static T {
        if let Some(shell) = self.free.lock().pop() {
            return shell;
        }
        Box::leak(Box::new(make()))
    }

    /// The pool's lock, for the fork handlers (which hold every global lock across a
    /// fork).
    pub(crate) fn raw_lock(&self) -> &RawForkLock {
        // SAFETY: only the raw lock is handed out; the list stays behind the Mutex.
        unsafe { self.free.raw() }
    }

    /// Keeps a shell whose handle was released (its tag says so already) for reuse.
    pub(crate) fn give_back(&self, shell: &'static T) {
        self.free.lock().push(shell);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

    #[test]
    fn a_shell_given_back_is_the_next_one_taken() {
        static POOL: ShellPool<AtomicU32> = ShellPool::new();
        let a = POOL.take(|| AtomicU32::new(1));
        a.store(5, Relaxed);
        POOL.give_back(a);
        let b = POOL.take(|| AtomicU32::new(2));
        assert!(std::ptr::eq(a, b));
        assert_eq!(b.load(Relaxed), 5);
        assert_eq!(POOL.take(|| AtomicU32::new(3)).load(Relaxed), 3);
    }
}
