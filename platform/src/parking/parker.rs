//! The futex word each parked thread sleeps on, in memory that is never freed.
//!
//! A waker marks a waiter woken under the bucket's lock and makes the futex call after
//! releasing it; by then the waiter may have seen the mark, returned and even ended. So
//! the word is not on the waiter's stack (valgrind caught the wake reaching a popped
//! frame) nor in memory its thread's end frees: each thread claims a [`Parker`] from a
//! list that only grows, and gives it back when it ends, for a later thread to reuse. A
//! late futex wake then reaches a word that is still there, at worst its next owner's,
//! who takes it as a spurious wake-up and looks again. The list is as long as the most
//! threads that ever parked at once.
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering::Acquire, Ordering::Release};

use crate::fork_lock::futex;
use crate::WEFT_FOREVER;

pub(super) const PARKED: u32 = 1;
pub(super) const WOKEN: u32 = 0;

pub(super) struct Parker {
    /// `PARKED` while its thread's node is queued; the futex word.
    pub(super) state: AtomicU32,
    /// Written by the waker before it stores `WOKEN`.
    pub(super) unpark_token: AtomicUsize,
    taken: AtomicBool,
    /// The parker pushed before this one (the list only grows; never changed).
    next: *const Parker,
}

// SAFETY: `next` is written before the parker is published and never changed; the rest
// is atomic.
unsafe impl Sync for Parker {}

static PARKERS: AtomicPtr<Parker> = AtomicPtr::new(ptr::null_mut());

fn all() -> impl Iterator<Item = &'static Parker> {
    let mut at = PARKERS.load(Acquire) as *const Parker;
    std::iter::from_fn(move || {
        // SAFETY: parkers are leaked, never freed, and `next` never changes.
        let parker = unsafe { at.as_ref() }?;
        at = parker.next;
        Some(parker)
    })
}

/// A parker while its thread (or one park, see `with_parker`) has it.
struct Claimed(&'static Parker);

impl Claimed {
    fn claim() -> Claimed {
        if let Some(free) = all().find(|p| p.taken.compare_exchange(false, true, Acquire, Acquire).is_ok()) {
            return Claimed(free);
        }
        let mut head = PARKERS.load(Acquire);
        let parker: &'static mut Parker = Box::leak(Box::new(Parker {
            state: AtomicU32::new(WOKEN),
            unpark_token: AtomicUsize::new(0),
            taken: AtomicBool::new(true),
            next: head,
        }));
        while let Err(now) = PARKERS.compare_exchange(head, &mut *parker as *mut Parker, Release, Acquire) {
            head = now;
            parker.next = head;
        }
        Claimed(parker)
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        self.0.taken.store(false, Release);
    }
}

thread_local! {
    static MINE: Claimed = Claimed::claim();
}

/// Runs `f` with the calling thread's parker; a thread past its thread-locals'
/// destruction borrows one for the call.
pub(super) fn with_parker<R>(f: impl FnOnce(&'static Parker) -> R) -> R {
    match MINE.try_with(|claimed| claimed.0) {
        Ok(parker) => f(parker),
        Err(_) => {
            let borrowed = Claimed::claim();
            f(borrowed.0)
        }
    }
}

/// In a child of fork(): the parent's other threads are gone, and their parkers with
/// them; every parker but the calling thread's is free again.
pub(super) fn free_parent_parkers_in_child() {
    let mine = MINE.try_with(|claimed| claimed.0 as *const Parker).unwrap_or(ptr::null());
    all().filter(|p| !ptr::eq(*p, mine)).for_each(|p| p.taken.store(false, Release));
}

impl Parker {
    /// Waits while the word is `PARKED`, until woken or `deadline` (`CLOCK_MONOTONIC`
    /// nanoseconds, or `WEFT_FOREVER`); true if the deadline passed (a wake-up, a changed
    /// word or a signal return false).
    pub(super) fn sleep_until(&self, deadline: i64) -> bool {
        let until;
        let timeout = if deadline == WEFT_FOREVER {
            ptr::null()
        } else {
            until =
                libc::timespec { tv_sec: deadline.max(0) / 1_000_000_000, tv_nsec: deadline.max(0) % 1_000_000_000 };
            &until as *const libc::timespec
        };
        let _errno = crate::errno::Kept::new();
        // SAFETY: a futex wait on a live, aligned u32; FUTEX_WAIT_BITSET takes an
        // absolute CLOCK_MONOTONIC time (or NULL: no timeout).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.state.as_ptr(),
                libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
                PARKED,
                timeout,
                ptr::null::<u32>(),
                libc::FUTEX_BITSET_MATCH_ANY,
            )
        };
        rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT)
    }

    /// Wakes the thread sleeping on this word, if it still sleeps.
    pub(super) fn wake(&self) {
        futex(&self.state, libc::FUTEX_WAKE, 1);
    }
}
