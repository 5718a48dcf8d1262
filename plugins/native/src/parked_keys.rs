//! What every thread of the process is parked on, so that a child of fork() can take the
//! parent's waiters out of the parking table before they turn into dangling entries.
//!
//! The parking (`parking_lot_core`) queues each parked thread's `ThreadData`, which lives
//! in that thread's thread-local storage: dynamically allocated, as this plugin is
//! `dlopen`ed. A child of fork() inherits the table with the parent's parked threads
//! still queued, but not the threads. When the child then starts a thread, glibc may
//! give it one of those threads' cached stacks and free their thread-local blocks; a
//! wake-up in the child whose key shares a bucket with such an entry then reads freed
//! memory while it walks the bucket (ASan caught it in `fork_child_opens_new_runtime`,
//! one run in eight). So each thread records the key it parks on in a slot of a list
//! that is never freed, and the child's fork handler, before the child can start a
//! thread, wakes every recorded key: the entries leave the queues while the memory they
//! point to is still the parent's copy.
//!
//! A slot is a thread's for its life (claimed at its first park, given back by a
//! thread-local destructor) and reused by later threads, so the list is as long as the
//! most threads that ever parked at once.
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering::Acquire, Ordering::Release, Ordering::SeqCst};
use std::sync::Once;

use parking_lot_core::DEFAULT_UNPARK_TOKEN;

struct Slot {
    /// The key the thread is parked on, 0 when it is not parked.
    key: AtomicUsize,
    taken: AtomicBool,
    /// The slot pushed before this one (the list only grows).
    next: *const Slot,
}

// SAFETY: `next` is written before the slot is published and never changed; the rest
// is atomic.
unsafe impl Sync for Slot {}

static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());

/// This thread's slot while the thread lives.
struct Claimed(&'static Slot);

impl Claimed {
    fn claim() -> Claimed {
        let mut at = SLOTS.load(Acquire) as *const Slot;
        // SAFETY: slots are leaked, never freed; `next` never changes.
        while let Some(slot) = unsafe { at.as_ref() } {
            if slot.taken.compare_exchange(false, true, Acquire, Acquire).is_ok() {
                return Claimed(slot);
            }
            at = slot.next;
        }
        let mut head = SLOTS.load(Acquire);
        let slot: &'static mut Slot =
            Box::leak(Box::new(Slot { key: AtomicUsize::new(0), taken: AtomicBool::new(true), next: head }));
        while let Err(now) = SLOTS.compare_exchange(head, &mut *slot as *mut Slot, Release, Acquire) {
            head = now;
            slot.next = head;
        }
        Claimed(slot)
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        self.0.key.store(0, SeqCst);
        self.0.taken.store(false, Release);
    }
}

thread_local! {
    static MINE: Claimed = Claimed::claim();
}

/// Records that the calling thread parks on `key` for the length of `wait`: set before
/// the thread is queued, cleared after it left the queue, so a queued thread's key is
/// always recorded. A thread past its thread-locals' destruction is not recorded.
pub(crate) fn while_parked_on<R>(key: usize, wait: impl FnOnce() -> R) -> R {
    fork_handler();
    let slot = MINE.try_with(|claimed| claimed.0).ok();
    if let Some(slot) = slot {
        slot.key.store(key, SeqCst);
    }
    let result = wait();
    if let Some(slot) = slot {
        slot.key.store(0, SeqCst);
    }
    result
}

fn fork_handler() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        // SAFETY: a plain function that lives as long as the plugin, which is never
        // unloaded while a runtime uses it.
        unsafe { libc::pthread_atfork(None, None, Some(forget_parent_waiters)) };
    });
}

/// In the child, before it returns from fork(): wakes every key a thread of the parent
/// was parked on. No thread of the parent runs here, so the wake-ups only take their
/// entries out of the queues (a futex wake of an address nobody waits on is a no-op).
extern "C" fn forget_parent_waiters() {
    let mut at = SLOTS.load(Acquire) as *const Slot;
    // SAFETY: as in `claim`.
    while let Some(slot) = unsafe { at.as_ref() } {
        let key = slot.key.swap(0, SeqCst);
        if key != 0 {
            // SAFETY: the key was the address of an object of this plugin's in the parent;
            // waking it touches only the parking table's entries for it.
            unsafe { parking_lot_core::unpark_all(key, DEFAULT_UNPARK_TOKEN) };
        }
        at = slot.next;
    }
}
