//! Channels, the way Go's runtime builds them (`hchan`): one lock per channel, a ring
//! buffer of `elem_size`-byte slots, and two queues of waiting senders and receivers.
//!
//! A waiter is a call blocked on the channel: a pointer to its buffer and to a [`Sel`],
//! the decision word shared by every case of one waiting call (one case for a send or
//! a receive, one per case for a select). Whoever completes a waiter first claims its
//! `Sel` (WAITING -> CLAIMED), so at most one case of a select ever completes; then,
//! still holding the channel lock, it copies the element straight to or from the
//! waiter's buffer (the direct hand-off that makes rendezvous channels work), publishes
//! DONE and wakes the waiter. A waiter that times out or is cancelled tries WAITING ->
//! ABORTED; if that fails, its operation was completed and it reports that instead, so
//! an element handed over is never lost.
//!
//! Waiters and their `Sel` live on the waiting caller's stack. The queues hold raw
//! pointers to them, read only under the channel's lock; the caller takes them out of
//! every queue (under the locks) before returning, except for the waiter the completer
//! already popped. The completer touches neither after publishing DONE: it wakes the
//! waiter by address (a stale wake-up is harmless, every waiter loops).
//!
//! A select locks its channels in address order (each once), polls its cases in a
//! random order (or in array order), and otherwise queues one waiter per case. Single
//! sends and receives lock one channel only and, once completed by someone else, do
//! not lock again.
use std::cell::{Cell, UnsafeCell};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use lock_api::RawMutex as _;
use parking_lot::RawMutex;
use smallvec::SmallVec;
use weft_platform::*;

use crate::clock;
use crate::wait::{self, Wake};
use crate::HOST;

/// The fixed-size ring of buffered elements (grown on demand when unbounded).
struct Ring {
    storage: Vec<u8>,
    elem: usize,
    /// Slots in `storage`; `usize::MAX` for 0-byte elements, which need no storage.
    slots: usize,
    head: usize,
    len: usize,
}

impl Ring {
    fn new(elem: usize, slots: usize) -> Option<Ring> {
        if elem == 0 {
            return Some(Ring { storage: Vec::new(), elem, slots: usize::MAX, head: 0, len: 0 });
        }
        let mut storage = Vec::new();
        storage.try_reserve_exact(slots.checked_mul(elem)?).ok()?;
        Some(Ring { storage, elem, slots, head: 0, len: 0 })
    }

    fn slot(&self, index: usize) -> *mut u8 {
        if self.elem == 0 {
            return NonNull::<u64>::dangling().as_ptr() as *mut u8;
        }
        let at = self.head + index;
        let at = if at >= self.slots { at - self.slots } else { at };
        // SAFETY: `at < slots`, inside the storage's capacity.
        unsafe { (self.storage.as_ptr() as *mut u8).add(at * self.elem) }
    }

    /// Doubles the storage, keeping the elements in order; false when out of memory.
    fn grow(&mut self) -> bool {
        let Some(slots) = self.slots.checked_mul(2).map(|s| s.max(16)) else { return false };
        let Some(bytes) = slots.checked_mul(self.elem) else { return false };
        let mut storage: Vec<u8> = Vec::new();
        if storage.try_reserve_exact(bytes).is_err() {
            return false;
        }
        let first = (self.slots - self.head).min(self.len);
        // SAFETY: both ranges lie inside the old storage's capacity; the new storage
        // holds `len` elements.
        unsafe {
            let to = storage.as_mut_ptr();
            ptr::copy_nonoverlapping(self.slot(0), to, first * self.elem);
            ptr::copy_nonoverlapping(self.storage.as_ptr(), to.add(first * self.elem), (self.len - first) * self.elem);
        }
        self.storage = storage;
        self.slots = slots;
        self.head = 0;
        true
    }

    /// Appends a copy of the element at `src`; false when an unbounded ring cannot grow.
    fn push(&mut self, src: *const u8) -> bool {
        if self.len == self.slots && !self.grow() {
            return false;
        }
        copy(src, self.slot(self.len), self.elem);
        self.len += 1;
        true
    }

    /// Moves the oldest element to `dst`. The ring is not empty.
    fn pop(&mut self, dst: *mut u8) {
        copy(self.slot(0), dst, self.elem);
        self.head += 1;
        if self.head == self.slots {
            self.head = 0;
        }
        self.len -= 1;
    }
}

fn copy(src: *const u8, dst: *mut u8, len: usize) {
    if len != 0 {
        // SAFETY: the runtime passes buffers of `elem_size` bytes; ring slots are
        // distinct from every caller's buffer.
        unsafe { ptr::copy_nonoverlapping(src, dst, len) }
    }
}

const WAITING: usize = 0;
const CLAIMED: usize = 1;
const ABORTED: usize = 2;
/// `DONE + 2 * case + closed`: completed, by case `case`, with or without a close.
const DONE: usize = 3;

/// The decision word of one waiting call (see the module comment).
struct Sel {
    state: AtomicUsize,
}

impl Sel {
    fn new() -> Sel {
        Sel { state: AtomicUsize::new(WAITING) }
    }

    fn key(&self) -> usize {
        self as *const Sel as usize
    }

    /// The completer's claim; only one ever succeeds, and not after an abort.
    fn claim(&self) -> bool {
        self.state.compare_exchange(WAITING, CLAIMED, Acquire, Relaxed).is_ok()
    }

    /// Publishes the completion of a claimed call. The waiter may return at once: the
    /// caller must not touch it afterwards.
    fn finish(&self, case: usize, closed: bool) {
        self.state.store(DONE + 2 * case + closed as usize, Release);
    }
}

/// One case of a waiting call, queued on its channel.
struct Waiter {
    sel: *const Sel,
    /// Send: the element to take. Receive: where to put it.
    buf: *mut u8,
    case: usize,
}

struct Inner {
    ring: Ring,
    closed: bool,
    sendq: VecDeque<*const Waiter>,
    recvq: VecDeque<*const Waiter>,
}

/// What an attempt that needs no waiting gave.
enum Attempt {
    /// Completed; wake the waiter parked on this key, if any (after unlocking).
    Done(Option<usize>),
    Closed,
    NoMemory,
    NotReady,
}

/// Pops the first waiter of `queue` that can still be claimed, claiming it; waiters of
/// calls already decided (completed elsewhere, or given up) are dropped on the way.
///
/// # Safety
/// The channel's lock is held (queued waiters are alive while they are queued).
unsafe fn claim_first<'a>(queue: &mut VecDeque<*const Waiter>) -> Option<&'a Waiter> {
    while let Some(waiter) = queue.pop_front() {
        let waiter = &*waiter;
        if (*waiter.sel).claim() {
            return Some(waiter);
        }
    }
    None
}

/// Completes a claimed waiter and returns the key to wake.
unsafe fn finish(waiter: &Waiter, closed: bool) -> usize {
    let sel = &*waiter.sel;
    let key = sel.key();
    sel.finish(waiter.case, closed);
    key
}

impl Inner {
    /// A send that does not wait. Lock held.
    unsafe fn try_send(&mut self, cap: usize, src: *const u8) -> Attempt {
        if self.closed {
            return Attempt::Closed;
        }
        if let Some(receiver) = claim_first(&mut self.recvq) {
            copy(src, receiver.buf, self.ring.elem);
            return Attempt::Done(Some(finish(receiver, false)));
        }
        if self.ring.len < cap {
            return if self.ring.push(src) { Attempt::Done(None) } else { Attempt::NoMemory };
        }
        Attempt::NotReady
    }

    /// A receive that does not wait. Lock held.
    unsafe fn try_recv(&mut self, dst: *mut u8) -> Attempt {
        if let Some(sender) = claim_first(&mut self.sendq) {
            if self.ring.len > 0 {
                // Full: take the head, the sender's element goes to the tail (the slot
                // just freed, so the push cannot fail).
                self.ring.pop(dst);
                self.ring.push(sender.buf);
            } else {
                copy(sender.buf, dst, self.ring.elem);
            }
            return Attempt::Done(Some(finish(sender, false)));
        }
        if self.ring.len > 0 {
            self.ring.pop(dst);
            return Attempt::Done(None);
        }
        if self.closed {
            return Attempt::Closed;
        }
        Attempt::NotReady
    }
}

/// A native channel; `*mut weft_plat_chan_t` is a `*mut Chan`.
struct Chan {
    lock: RawMutex,
    cap: usize,
    inner: UnsafeCell<Inner>,
}

// SAFETY: `inner` (and the waiters it points to) is only touched under `lock`.
unsafe impl Send for Chan {}
unsafe impl Sync for Chan {}

impl Chan {
    unsafe fn from<'a>(ch: *mut weft_plat_chan_t) -> &'a Chan {
        &*(ch as *const Chan)
    }

    fn lock(&self) -> Locked<'_> {
        self.lock.lock();
        Locked(self)
    }

    /// # Safety
    /// The lock is held, and the reference does not outlive it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn inner(&self) -> &mut Inner {
        &mut *self.inner.get()
    }
}

struct Locked<'a>(&'a Chan);

impl Locked<'_> {
    fn inner(&mut self) -> &mut Inner {
        // SAFETY: the lock is held for the guard's life; `&mut self` keeps it unique.
        unsafe { self.0.inner() }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: locked by `Chan::lock`.
        unsafe { self.0.lock.unlock() }
    }
}

/// Back-off before parking: `1 << step` spins for the first steps, then yields.
const BACKOFF_SPIN_STEPS: u32 = 6;
const BACKOFF_STEPS: u32 = 10;

/// How a wait ended.
enum Outcome {
    Done { case: usize, closed: bool },
    GaveUp(weft_status_t),
}

/// Waits until `sel` is completed, the deadline passes or the task is cancelled
/// (inside a blocking region). Giving up succeeds only if nobody claimed `sel` first.
fn wait_for(sel: &Sel, deadline: i64) -> Outcome {
    // A partner is often about to complete the call (a receiver draining a full
    // channel, a sender arriving at a rendezvous): back off briefly, as crossbeam does,
    // before paying for a park and a wake-up.
    for step in 0..BACKOFF_STEPS {
        if sel.state.load(Acquire) != WAITING {
            break;
        }
        if step < BACKOFF_SPIN_STEPS {
            (0..1u32 << step).for_each(|_| std::hint::spin_loop());
        } else {
            std::thread::yield_now();
        }
    }
    loop {
        let state = sel.state.load(Acquire);
        if state >= DONE {
            return Outcome::Done { case: (state - DONE) / 2, closed: (state - DONE) % 2 == 1 };
        }
        if state == CLAIMED {
            // The completer is copying under its lock; it publishes DONE right after.
            std::thread::yield_now();
            continue;
        }
        let woke = HOST.blocking(|| wait::park(sel.key(), || sel.state.load(Acquire) == WAITING, deadline));
        let give_up = match woke {
            Wake::Woken => continue,
            Wake::TimedOut => WEFT_ETIMEDOUT,
            Wake::Cancelled => WEFT_ECANCELED,
        };
        if sel.state.compare_exchange(WAITING, ABORTED, Acquire, Acquire).is_ok() {
            return Outcome::GaveUp(give_up);
        }
    }
}

/// Why a call that could not complete at once does not wait: a pending cancellation,
/// or a deadline already past.
fn must_not_wait(deadline: i64) -> Option<weft_status_t> {
    if wait::cancelled() {
        Some(WEFT_ECANCELED)
    } else if clock::expired(deadline) {
        Some(WEFT_ETIMEDOUT)
    } else {
        None
    }
}

fn remove(queue: &mut VecDeque<*const Waiter>, waiter: *const Waiter) {
    if let Some(at) = queue.iter().position(|w| ptr::eq(*w, waiter)) {
        queue.remove(at);
    }
}

fn attempt_status(attempt: Attempt) -> Option<weft_status_t> {
    match attempt {
        Attempt::Done(wake) => {
            if let Some(key) = wake {
                wait::wake_one(key);
            }
            Some(WEFT_OK)
        }
        Attempt::Closed => Some(WEFT_ECLOSED),
        Attempt::NoMemory => Some(HOST.fail(WEFT_ENOMEM, "an unbounded channel could not grow its buffer")),
        Attempt::NotReady => None,
    }
}

pub(crate) unsafe extern "C" fn chan_new(_rt: *mut weft_plat_rt_t, elem_size: usize, capacity: usize, out: *mut *mut weft_plat_chan_t) -> weft_status_t {
    guard(|| {
        let slots = if capacity == WEFT_CHAN_UNBOUNDED { 0 } else { capacity };
        let Some(ring) = Ring::new(elem_size, slots) else {
            return HOST.fail(WEFT_ENOMEM, &format!("cannot allocate {capacity} slots of {elem_size} bytes"));
        };
        let chan = Chan {
            lock: RawMutex::INIT,
            cap: capacity,
            inner: UnsafeCell::new(Inner { ring, closed: false, sendq: VecDeque::new(), recvq: VecDeque::new() }),
        };
        *out = Box::into_raw(Box::new(chan)) as *mut weft_plat_chan_t;
        WEFT_OK
    })
}

/// A single send or receive: try, else queue one waiter and wait.
unsafe fn single(ch: *mut weft_plat_chan_t, buf: *mut u8, deadline: i64, send: bool) -> weft_status_t {
    let chan = Chan::from(ch);
    let mut locked = chan.lock();
    let inner = locked.inner();
    let attempt = if send { inner.try_send(chan.cap, buf) } else { inner.try_recv(buf) };
    if !matches!(attempt, Attempt::NotReady) {
        drop(locked);
        return attempt_status(attempt).unwrap_or(WEFT_EINTERNAL);
    }
    if let Some(status) = must_not_wait(deadline) {
        return status;
    }
    let sel = Sel::new();
    let waiter = Waiter { sel: &sel, buf, case: 0 };
    let queue = if send { &mut inner.sendq } else { &mut inner.recvq };
    queue.push_back(&waiter);
    drop(locked);
    match wait_for(&sel, deadline) {
        Outcome::Done { closed, .. } => {
            if closed {
                WEFT_ECLOSED
            } else {
                WEFT_OK
            }
        }
        Outcome::GaveUp(status) => {
            let mut locked = chan.lock();
            let inner = locked.inner();
            remove(if send { &mut inner.sendq } else { &mut inner.recvq }, &waiter);
            status
        }
    }
}

pub(crate) unsafe extern "C" fn chan_send(ch: *mut weft_plat_chan_t, elem: *const c_void, deadline: i64) -> weft_status_t {
    guard(|| single(ch, elem as *mut u8, deadline, true))
}

pub(crate) unsafe extern "C" fn chan_recv(ch: *mut weft_plat_chan_t, out: *mut c_void, deadline: i64) -> weft_status_t {
    guard(|| single(ch, out as *mut u8, deadline, false))
}

pub(crate) unsafe extern "C" fn chan_close(ch: *mut weft_plat_chan_t) -> weft_status_t {
    guard(|| {
        let chan = Chan::from(ch);
        let mut woken: SmallVec<[usize; 8]> = SmallVec::new();
        {
            let mut locked = chan.lock();
            let inner = locked.inner();
            inner.closed = true;
            for queue in [&mut inner.sendq, &mut inner.recvq] {
                while let Some(waiter) = claim_first(queue) {
                    woken.push(finish(waiter, true));
                }
            }
        }
        for key in woken {
            wait::wake_one(key);
        }
        WEFT_OK
    })
}

pub(crate) unsafe extern "C" fn chan_len(ch: *mut weft_plat_chan_t) -> usize {
    let chan = Chan::from(ch);
    let mut locked = chan.lock();
    locked.inner().ring.len
}

pub(crate) unsafe extern "C" fn chan_free(ch: *mut weft_plat_chan_t, drop_fn: weft_plat_elem_drop_fn, ud: *mut c_void) {
    let chan = Box::from_raw(ch as *mut Chan);
    let inner = chan.inner.into_inner();
    if let Some(drop_fn) = drop_fn {
        for index in 0..inner.ring.len {
            drop_fn(inner.ring.slot(index) as *mut c_void, ud);
        }
    }
}

thread_local! {
    static RANDOM: Cell<u64> = const { Cell::new(0) };
}

/// A uniformly distributed index below `bound` (xorshift64*, seeded per thread).
fn random_below(bound: usize) -> usize {
    RANDOM.with(|state| {
        let mut x = state.get();
        if x == 0 {
            x = (clock::now() as u64 ^ (state as *const _ as u64).rotate_left(32)) | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((r as u128 * bound as u128) >> 64) as usize
    })
}

type Cases<T> = SmallVec<[T; 8]>;

unsafe fn lock_all(chans: &[*const Chan]) {
    for chan in chans {
        (**chan).lock.lock();
    }
}

unsafe fn unlock_all(chans: &[*const Chan]) {
    for chan in chans.iter().rev() {
        (**chan).lock.unlock();
    }
}

pub(crate) unsafe extern "C" fn chan_select(
    cases: *const weft_plat_select_case_t,
    n: usize,
    deadline: i64,
    flags: u32,
    chosen: *mut usize,
) -> weft_status_t {
    guard(|| {
        let cases = std::slice::from_raw_parts(cases, n);
        let chan_of = |case: &weft_plat_select_case_t| case.chan as *const Chan;

        // Poll order: a uniformly random permutation (so the first ready case in it is
        // uniform among the ready ones), or the array order.
        let mut order: Cases<usize> = (0..n).collect();
        if flags & WEFT_SELECT_ORDERED == 0 {
            for i in (1..n).rev() {
                order.swap(i, random_below(i + 1));
            }
        }
        // Lock order: each channel once, by address.
        let mut chans: Cases<*const Chan> = cases.iter().map(chan_of).collect();
        chans.sort_unstable();
        chans.dedup();

        lock_all(&chans);
        for &index in &order {
            let case = &cases[index];
            let chan = &*chan_of(case);
            let inner = chan.inner();
            let attempt = if case.op == WEFT_SELECT_SEND { inner.try_send(chan.cap, case.buf as *const u8) } else { inner.try_recv(case.buf as *mut u8) };
            if matches!(attempt, Attempt::NotReady) {
                continue;
            }
            unlock_all(&chans);
            let status = attempt_status(attempt).unwrap_or(WEFT_EINTERNAL);
            if status == WEFT_OK || status == WEFT_ECLOSED {
                *chosen = index;
            }
            return status;
        }
        if let Some(status) = must_not_wait(deadline) {
            unlock_all(&chans);
            return status;
        }

        let sel = Sel::new();
        let waiters: Cases<Waiter> = cases.iter().enumerate().map(|(case, c)| Waiter { sel: &sel, buf: c.buf as *mut u8, case }).collect();
        let queue_of = |case: &weft_plat_select_case_t| {
            let inner = (*chan_of(case)).inner();
            if case.op == WEFT_SELECT_SEND {
                &mut inner.sendq
            } else {
                &mut inner.recvq
            }
        };
        for (case, waiter) in cases.iter().zip(&waiters) {
            queue_of(case).push_back(waiter);
        }
        unlock_all(&chans);

        let outcome = wait_for(&sel, deadline);

        lock_all(&chans);
        for (case, waiter) in cases.iter().zip(&waiters) {
            remove(queue_of(case), waiter);
        }
        unlock_all(&chans);
        match outcome {
            Outcome::Done { case, closed } => {
                *chosen = case;
                if closed {
                    WEFT_ECLOSED
                } else {
                    WEFT_OK
                }
            }
            Outcome::GaveUp(status) => status,
        }
    })
}
