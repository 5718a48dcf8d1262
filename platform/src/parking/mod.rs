//! Parking OS threads on an address, in a table a child of `fork()` can reset.
//!
//! The shape of parking_lot_core's (`park` / `unpark_one` / `unpark_all` /
//! `unpark_filter`, a validation under the bucket's lock, tokens both ways), but over
//! buckets of [`ForkMutex`]es. parking_lot_core's table cannot be made whole in a child of
//! `fork()`: a thread of the parent that was queueing or waking at the instant of the
//! fork leaves a bucket's lock held for ever, and the child hangs in the first wait or
//! wake hashed to it (5 of 160 forks of a busy condition ping-pong hung the child inside
//! `fork()`, where the native plugin took its parent's waiters out of that table). Here
//! the child's handler makes every bucket free and empty again without waking anybody
//! (the parent's waiters are threads the child does not have), so nothing inherited can
//! hang it or point it at freed memory.
//!
//! A waiter queues a node on its own stack and sleeps on its thread's futex word
//! (`parker.rs`); the node leaves its queue only under the bucket's lock, through a
//! waker (which marks the word woken, then wakes it after the lock is released) or
//! through its waiter giving up at its deadline. A waiter never returns while its node
//! is queued, so a queued node is always alive.
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use smallvec::SmallVec;

use crate::fork_lock::ForkMutex;
use crate::once::ForkSafeOnce;

mod parker;
pub mod watch;
use parker::{Parker, PARKED, WOKEN};

/// How a [`park`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ParkResult {
    /// Woken by an unpark, with the token it gave.
    Unparked(usize),
    /// The validation said not to wait.
    Invalid,
    /// The deadline passed first.
    TimedOut,
}

/// What [`unpark_filter`] does with one waiter of the key.
#[derive(Debug, PartialEq, Eq)]
pub enum FilterOp {
    Unpark,
    Skip,
    Stop,
}

/// A parked thread, on its own stack while it is queued.
struct Node {
    key: usize,
    park_token: usize,
    next: Cell<*const Node>,
    /// The waiting thread's; `PARKED` until a waker takes the node off its queue.
    parker: &'static Parker,
}

/// A bucket's waiters, oldest first: a singly linked list of nodes.
struct Queue {
    head: *const Node,
    tail: *const Node,
}

// SAFETY: the nodes are only reached under the bucket's lock, while queued (alive).
unsafe impl Send for Queue {}

impl Queue {
    const EMPTY: Queue = Queue { head: ptr::null(), tail: ptr::null() };

    fn push(&mut self, node: &Node) {
        node.next.set(ptr::null());
        if self.tail.is_null() {
            self.head = node;
        } else {
            // SAFETY: a queued node is alive (see the module).
            unsafe { &*self.tail }.next.set(node);
        }
        self.tail = node;
    }

    /// Takes the node after `prev` (the head when null) off the queue; returns it.
    fn remove_after(&mut self, prev: *const Node) -> *const Node {
        // SAFETY: queued nodes are alive; `prev` is queued or null.
        unsafe {
            let node = if prev.is_null() { self.head } else { (*prev).next.get() };
            let next = (*node).next.get();
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next.set(next);
            }
            if self.tail == node {
                self.tail = prev;
            }
            node
        }
    }

    /// Walks the queue: `visit(node)` says whether to take the node off (`Unpark`),
    /// leave it (`Skip`), or stop.
    fn drain(&mut self, mut visit: impl FnMut(&Node) -> FilterOp, mut taken: impl FnMut(&Node)) {
        let mut prev: *const Node = ptr::null();
        let mut at = self.head;
        while !at.is_null() {
            // SAFETY: a queued node is alive.
            let node = unsafe { &*at };
            let next = node.next.get();
            match visit(node) {
                FilterOp::Unpark => {
                    self.remove_after(prev);
                    taken(node);
                }
                FilterOp::Skip => prev = at,
                FilterOp::Stop => return,
            }
            at = next;
        }
    }

    fn has_key(&self, key: usize) -> bool {
        let mut at = self.head;
        while !at.is_null() {
            // SAFETY: a queued node is alive.
            let node = unsafe { &*at };
            if node.key == key {
                return true;
            }
            at = node.next.get();
        }
        false
    }
}

/// One line each: two waits on unrelated keys do not share a cache line's traffic.
#[repr(align(64))]
struct Bucket(ForkMutex<Queue>);

const BUCKET_BITS: u32 = 12;
static BUCKETS: [Bucket; 1 << BUCKET_BITS] = [const { Bucket(ForkMutex::new(Queue::EMPTY)) }; 1 << BUCKET_BITS];

fn bucket(key: usize) -> &'static ForkMutex<Queue> {
    let hash = (key as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKET_BITS);
    &BUCKETS[hash as usize].0
}

/// Registers (once per copy of this crate: each shared object has its own table) the
/// `fork()` handler that empties the table in a child. A `ForkSafeOnce`: a child forked
/// while another thread registered it must not wait for that thread.
static REGISTERED: ForkSafeOnce = ForkSafeOnce::new();

fn forget_parent_waiters_in_children() {
    REGISTERED.call_once(|| {
        // SAFETY: a plain function that lives as long as the object holding this table,
        // which is not unloaded while anything parks in it.
        unsafe { libc::pthread_atfork(None, None, Some(empty_buckets_in_child)) };
    });
}

/// In a child of fork(): every queued node is a parent's thread, which the child does
/// not have, and a bucket's lock may have been held by one. Every bucket is made free
/// and empty; its old list is forgotten, not walked (it may be half-changed).
extern "C" fn empty_buckets_in_child() {
    REGISTERED.mark_done();
    parker::free_parent_parkers_in_child();
    for bucket in &BUCKETS {
        // SAFETY: the child's only thread (this one) holds no bucket's lock.
        unsafe { empty_in_child(&bucket.0) };
    }
}

/// # Safety
/// No thread holds or waits for the bucket's lock (the child of a fork).
unsafe fn empty_in_child(bucket: &ForkMutex<Queue>) {
    // SAFETY: see above; the queue is replaced without being read.
    unsafe {
        bucket.raw().reset_in_child();
        ptr::write(bucket.data_ptr(), Queue::EMPTY);
    }
}

/// Parks the calling thread on `key` if `validate()` (asked under the bucket's lock)
/// says so, until an unpark of `key` takes it or `deadline` (`CLOCK_MONOTONIC`
/// nanoseconds, or `WEFT_FOREVER`) passes. On the deadline, `timed_out(last)` runs under
/// the bucket's lock after the waiter left the queue, `last` telling whether no other
/// waiter of `key` is left. `park_token` is what an [`unpark_filter`] sees of this
/// waiter. The callbacks must not park or unpark (the bucket's lock is held).
pub fn park(
    key: usize,
    validate: impl FnOnce() -> bool,
    timed_out: impl FnOnce(bool),
    park_token: usize,
    deadline: i64,
) -> ParkResult {
    forget_parent_waiters_in_children();
    parker::with_parker(|parker| {
        parker.state.store(PARKED, Relaxed);
        let node = Node { key, park_token, next: Cell::new(ptr::null()), parker };
        let bucket = bucket(key);
        {
            let mut queue = bucket.lock();
            if !validate() {
                return ParkResult::Invalid;
            }
            queue.push(&node);
        }
        loop {
            if parker.state.load(Acquire) == WOKEN {
                return ParkResult::Unparked(parker.unpark_token.load(Relaxed));
            }
            if !parker.sleep_until(deadline) {
                continue;
            }
            // The deadline passed: leave the queue, unless a waker took the node meanwhile.
            let mut queue = bucket.lock();
            if parker.state.load(Acquire) == WOKEN {
                return ParkResult::Unparked(parker.unpark_token.load(Relaxed));
            }
            let me: *const Node = &node;
            queue.drain(|n| if ptr::eq(n, me) { FilterOp::Unpark } else { FilterOp::Skip }, |_| {});
            timed_out(!queue.has_key(key));
            return ParkResult::TimedOut;
        }
    })
}

/// Marks a node taken off its queue as woken with `token` (under the bucket's lock) and
/// returns the parker to wake once the lock is released. The node is read only before
/// the `WOKEN` store: its waiter checks its state without the bucket's lock, so it may
/// return from `park` at once and reuse the stack slot the node was in. (The parker was
/// read after the store until 2026-12-02: a waker under valgrind once read a NULL parker
/// from a reused slot and made a futex call on address 0x10.) The parker itself lives
/// for ever: a late wake is at worst a spurious one for its next owner.
///
/// # Safety
/// `node` was just taken off its queue, whose bucket's lock the caller still holds.
/// A raw pointer, not a reference: no reference to the node outlives the store.
unsafe fn mark_woken(node: *const Node, token: usize) -> &'static Parker {
    // SAFETY: as this function's: the node is alive until the `WOKEN` store below.
    let parker = unsafe { (*node).parker };
    parker.unpark_token.store(token, Relaxed);
    parker.state.store(WOKEN, Release);
    parker
}

/// Unparks the oldest waiter of `key`, if any, with `token`; `under_lock(woke)` runs
/// under the bucket's lock first, so that what the waiter waits for changes atomically
/// with the queue. True if it woke one.
pub fn unpark_one(key: usize, token: usize, under_lock: impl FnOnce(bool)) -> bool {
    let woken = {
        let mut queue = bucket(key).lock();
        let mut taken: Option<*const Node> = None;
        let mut found = false;
        let first_of_key = |n: &Node| match (found, n.key == key) {
            (true, _) => FilterOp::Stop,
            (false, true) => {
                found = true;
                FilterOp::Unpark
            }
            (false, false) => FilterOp::Skip,
        };
        queue.drain(first_of_key, |n| taken = Some(n));
        under_lock(taken.is_some());
        // SAFETY: the node was just taken off the queue, under the lock held here.
        taken.map(|n| unsafe { mark_woken(n, token) })
    };
    woken.map(Parker::wake).is_some()
}

/// Unparks every waiter of `key` with `token`; how many.
pub fn unpark_all(key: usize, token: usize) -> usize {
    unpark_filter(key, |_| FilterOp::Unpark, token)
}

/// Walks the waiters of `key`, oldest first, asking `filter(park_token)` of each whether
/// to unpark it (with `token`), skip it, or stop; how many it unparked. `filter` runs
/// under the bucket's lock.
pub fn unpark_filter(key: usize, mut filter: impl FnMut(usize) -> FilterOp, token: usize) -> usize {
    let mut parkers: SmallVec<[&'static Parker; 8]> = SmallVec::new();
    {
        let mut queue = bucket(key).lock();
        queue.drain(
            |n| if n.key == key { filter(n.park_token) } else { FilterOp::Skip },
            // SAFETY: `n` was just taken off the queue, under the lock held here.
            |n| parkers.push(unsafe { mark_woken(n, token) }),
        );
    }
    parkers.iter().for_each(|p| p.wake());
    parkers.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::monotonic_now as now;
    use crate::WEFT_FOREVER;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn an_invalid_park_returns_at_once() {
        let key = 0x1000;
        assert_eq!(park(key, || false, |_| {}, 0, WEFT_FOREVER), ParkResult::Invalid);
        assert_eq!(unpark_all(key, 0), 0);
    }

    #[test]
    fn a_deadline_ends_the_park_and_says_it_was_the_last() {
        let key = 0x2000;
        let mut last = None;
        let start = now();
        let result = park(key, || true, |l| last = Some(l), 0, start + 20_000_000);
        assert_eq!(result, ParkResult::TimedOut);
        assert!(now() - start >= 20_000_000);
        assert_eq!(last, Some(true));
        assert!(!unpark_one(key, 0, |woke| assert!(!woke)));
    }

    #[test]
    fn unpark_one_wakes_the_oldest_with_its_token() {
        let key = Box::into_raw(Box::new(0u64)) as usize;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let parked = Arc::new(AtomicU64::new(0));
        let waiters: Vec<_> = (0..4)
            .map(|i| {
                let (order, counted) = (order.clone(), parked.clone());
                let t = thread::spawn(move || {
                    let count_me = || {
                        counted.fetch_add(1, SeqCst);
                        true
                    };
                    let r = park(key, count_me, |_| {}, i, WEFT_FOREVER);
                    order.lock().unwrap().push((i, r));
                });
                // Queue them in order: the next one starts once this one is queued.
                while parked.load(SeqCst) <= i as u64 {
                    thread::yield_now();
                }
                t
            })
            .collect();
        for token in 10..14 {
            // A waiter counted itself under the bucket's lock, so it is queued.
            while !unpark_one(key, token, |_| {}) {
                thread::yield_now();
            }
        }
        waiters.into_iter().for_each(|t| t.join().unwrap());
        let mut order = std::mem::take(&mut *order.lock().unwrap());
        order.sort_by_key(|entry| entry.0);
        let expected: Vec<_> = (0..4).map(|i| (i, ParkResult::Unparked(10 + i))).collect();
        assert_eq!(order, expected);
        // SAFETY: the box made above, no longer used as a key.
        drop(unsafe { Box::from_raw(key as *mut u64) });
    }

    #[test]
    fn unpark_filter_picks_by_token_and_many_handoffs_lose_nothing() {
        // A flag handed back and forth 20,000 times through park/unpark: a lost wake-up
        // would hang (the test's bound is the harness's), a double one would miscount.
        let flag = Arc::new(AtomicBool::new(false));
        let key = Arc::as_ptr(&flag) as usize;
        let rounds = 20_000;
        let other = {
            let flag = flag.clone();
            thread::spawn(move || {
                for _ in 0..rounds {
                    while !flag.load(SeqCst) {
                        park(key, || !flag.load(SeqCst), |_| {}, 7, WEFT_FOREVER);
                    }
                    flag.store(false, SeqCst);
                    unpark_filter(key, |t| if t == 8 { FilterOp::Unpark } else { FilterOp::Skip }, 0);
                }
            })
        };
        for _ in 0..rounds {
            flag.store(true, SeqCst);
            unpark_filter(key, |t| if t == 7 { FilterOp::Unpark } else { FilterOp::Skip }, 0);
            while flag.load(SeqCst) {
                park(key, || flag.load(SeqCst), |_| {}, 8, WEFT_FOREVER);
            }
        }
        other.join().unwrap();
        assert!(!flag.load(SeqCst));
    }

    #[test]
    fn wakes_racing_deadlines_are_counted_once() {
        // Waiters park on three keys with deadlines of 0-60 us while two threads unpark
        // one or all of a key at random: every waiter an unpark reports having woken
        // returns Unparked, and no other does (a wake that raced the deadline goes to
        // exactly one side).
        const KEYS: [usize; 3] = [0x7000, 0x7008, 0x7010];
        let stop = Arc::new(AtomicBool::new(false));
        let unparked_seen = Arc::new(AtomicU64::new(0));
        let waiters: Vec<_> = (0..4u64)
            .map(|w| {
                let (stop, seen) = (stop.clone(), unparked_seen.clone());
                thread::spawn(move || {
                    let mut x = w.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    while !stop.load(SeqCst) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let key = KEYS[(x % 3) as usize];
                        let deadline = now() + (x % 60_000) as i64;
                        if let ParkResult::Unparked(_) = park(key, || true, |_| {}, 0, deadline) {
                            seen.fetch_add(1, SeqCst);
                        }
                    }
                })
            })
            .collect();
        let woken = Arc::new(AtomicU64::new(0));
        let wakers: Vec<_> = (0..2u64)
            .map(|w| {
                let (stop, woken) = (stop.clone(), woken.clone());
                thread::spawn(move || {
                    let mut i = w;
                    while !stop.load(SeqCst) {
                        i += 1;
                        let key = KEYS[(i % 3) as usize];
                        let n = if i % 5 == 0 { unpark_all(key, 0) } else { usize::from(unpark_one(key, 0, |_| {})) };
                        woken.fetch_add(n as u64, SeqCst);
                        if i % 64 == 0 {
                            thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        thread::sleep(std::time::Duration::from_millis(500));
        stop.store(true, SeqCst);
        wakers.into_iter().for_each(|t| t.join().unwrap());
        // The waiters still parked end by their deadlines (at most 60 us away).
        waiters.into_iter().for_each(|t| t.join().unwrap());
        assert!(woken.load(SeqCst) > 0);
        assert_eq!(woken.load(SeqCst), unparked_seen.load(SeqCst));
    }

    #[test]
    fn a_reset_bucket_is_empty_and_free() {
        // As a child finds a bucket: a node of a thread it does not have, and the lock
        // held by another such thread.
        let bucket = ForkMutex::new(Queue::EMPTY);
        let gone = parker::with_parker(|parker| Node { key: 1, park_token: 0, next: Cell::new(ptr::null()), parker });
        bucket.lock().push(&gone);
        std::mem::forget(bucket.lock());
        // SAFETY: the lock's holder is forgotten; nothing else uses this bucket.
        unsafe { empty_in_child(&bucket) };
        let queue = bucket.try_lock().expect("free after the reset");
        assert!(queue.head.is_null() && queue.tail.is_null() && !queue.has_key(1));
    }
}
