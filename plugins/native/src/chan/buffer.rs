//! The lock-free storage of a buffered channel, after crossbeam-channel's flavors: a
//! Vyukov array of stamped slots when bounded ([`Array`]), a linked list of blocks when
//! unbounded ([`List`]), and a bare counter when elements have no bytes ([`Count`]).
//!
//! Every flavor keeps the closed mark in the word senders move (the tail, or the count),
//! so a send either lands before the close or sees it. The "is there room / is there an
//! element" checks that a caller about to wait makes after announcing itself use SeqCst
//! loads or fences, and the pushes and pops that complete use SeqCst read-modify-writes:
//! whichever of the two comes second in the single SeqCst order sees the other (see
//! `chan.rs` for the waiter's half).
use std::ops::Deref;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use super::array::Array;
use super::list::List;

/// What a push gave.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Push {
    Done,
    /// A bounded buffer with no room.
    Full,
    Closed,
    /// An unbounded buffer could not allocate its next block.
    NoMemory,
}

/// What a pop gave.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Pop {
    Done,
    Empty,
    /// Closed and empty.
    Closed,
}

/// A buffered channel's elements.
pub(super) enum Buffer {
    Array(Array),
    List(List),
    Count(Count),
}

impl Buffer {
    /// A buffer for `capacity` (`None`: unbounded) elements of `elem` bytes; `None` when
    /// it cannot be allocated.
    pub(super) fn new(elem: usize, capacity: Option<usize>) -> Option<Buffer> {
        Some(match (elem, capacity) {
            (0, capacity) => Buffer::Count(Count::new(capacity)?),
            (elem, Some(capacity)) => Buffer::Array(Array::new(elem, capacity)?),
            (elem, None) => Buffer::List(List::new(elem)?),
        })
    }

    /// Copies the element at `src` in, unless full or closed.
    ///
    /// # Safety
    /// `src` points to the channel's `elem_size` bytes (any pointer when 0).
    #[inline(always)]
    pub(super) unsafe fn push(&self, src: *const u8) -> Push {
        match self {
            // SAFETY: `src` covers the channel's `elem_size` bytes, which is the array's
            // element size (the caller's contract above).
            Buffer::Array(a) => unsafe { a.push(src) },
            // SAFETY: as for the array: `src` covers the list's element size.
            Buffer::List(l) => unsafe { l.push(src) },
            Buffer::Count(c) => c.push(),
        }
    }

    /// Moves the oldest element to `dst`, unless empty.
    ///
    /// # Safety
    /// `dst` points to `elem_size` writable bytes (any pointer when 0).
    #[inline(always)]
    pub(super) unsafe fn pop(&self, dst: *mut u8) -> Pop {
        match self {
            // SAFETY: `dst` covers the channel's `elem_size` writable bytes, which is the
            // array's element size (the caller's contract above).
            Buffer::Array(a) => unsafe { a.pop(dst) },
            // SAFETY: as for the array: `dst` covers the list's element size.
            Buffer::List(l) => unsafe { l.pop(dst) },
            Buffer::Count(c) => c.pop(),
        }
    }

    /// Marks the buffer closed: pushes fail from now on. False if it already was.
    pub(super) fn close(&self) -> bool {
        match self {
            Buffer::Array(a) => a.close(),
            Buffer::List(l) => l.close(),
            Buffer::Count(c) => c.close(),
        }
    }

    /// True when a push would not find the buffer full (it has room, or it is closed).
    /// SeqCst: see the module comment.
    pub(super) fn push_ready(&self) -> bool {
        match self {
            Buffer::Array(a) => a.push_ready(),
            Buffer::List(_) => true,
            Buffer::Count(c) => c.push_ready(),
        }
    }

    /// True when a pop would not find the buffer empty (it has an element, or it is
    /// closed). SeqCst: see the module comment.
    pub(super) fn pop_ready(&self) -> bool {
        match self {
            Buffer::Array(a) => a.pop_ready(),
            Buffer::List(l) => l.pop_ready(),
            Buffer::Count(c) => c.pop_ready(),
        }
    }

    pub(super) fn is_closed(&self) -> bool {
        match self {
            Buffer::Array(a) => a.is_closed(),
            Buffer::List(l) => l.is_closed(),
            Buffer::Count(c) => c.is_closed(),
        }
    }

    /// The number of elements buffered (a consistent snapshot).
    pub(super) fn len(&self) -> usize {
        match self {
            Buffer::Array(a) => a.len(),
            Buffer::List(l) => l.len(),
            Buffer::Count(c) => c.len(),
        }
    }

    /// Calls `f` on each element still buffered, oldest first. Nothing else may use the
    /// buffer any more (the channel is being freed).
    pub(super) fn for_each_left(&mut self, f: impl FnMut(*mut u8)) {
        match self {
            Buffer::Array(a) => a.for_each_left(f),
            Buffer::List(l) => l.for_each_left(f),
            Buffer::Count(c) => c.for_each_left(f),
        }
    }
}

/// Copies one element. The common sizes are single moves; others call `memcpy`.
///
/// # Safety
/// Both pointers cover `len` bytes and do not overlap (unaligned is fine).
#[inline(always)]
pub(super) unsafe fn copy_elem(src: *const u8, dst: *mut u8, len: usize) {
    match len {
        0 => {}
        4 => {
            // SAFETY: `src` covers 4 readable bytes (the caller's contract); an unaligned read.
            let v = unsafe { (src as *const u32).read_unaligned() };
            // SAFETY: `dst` covers 4 writable bytes (the caller's contract); an unaligned write.
            unsafe { (dst as *mut u32).write_unaligned(v) }
        }
        8 => {
            // SAFETY: `src` covers 8 readable bytes (the caller's contract); an unaligned read.
            let v = unsafe { (src as *const u64).read_unaligned() };
            // SAFETY: `dst` covers 8 writable bytes (the caller's contract); an unaligned write.
            unsafe { (dst as *mut u64).write_unaligned(v) }
        }
        16 => {
            // SAFETY: `src` covers 16 readable bytes (the caller's contract); an unaligned read.
            let v = unsafe { (src as *const u128).read_unaligned() };
            // SAFETY: `dst` covers 16 writable bytes (the caller's contract); an unaligned write.
            unsafe { (dst as *mut u128).write_unaligned(v) }
        }
        // SAFETY: both pointers cover `len` bytes and the ranges do not overlap (the
        // caller's contract); `copy_nonoverlapping` has no alignment requirement for u8.
        _ => unsafe { ptr::copy_nonoverlapping(src, dst, len) },
    }
}

/// Where a slot keeps its state word and its element, and how far apart slots are.
///
/// An element is aligned as any C type of its size may need: to 16 bytes when its size
/// is a multiple of 16 (`long double`, `__int128`, a struct holding one: a type's size
/// is a multiple of its alignment, and no C type here needs more than 16), else to 8.
/// The host's `elem_drop` then reads it in place as its type (the pthread plugin's
/// `malloc`ed ring of `elem_size`-byte slots gives the same). The state word comes
/// first, padded to the element's alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SlotShape {
    /// The element's offset in the slot (its alignment: 8 or 16).
    pub(super) data_at: usize,
    /// Bytes per slot, a multiple of `data_at`.
    pub(super) stride: usize,
}

impl SlotShape {
    /// None on overflow.
    pub(super) fn of(elem: usize) -> Option<SlotShape> {
        let align = if elem != 0 && elem.is_multiple_of(16) { 16 } else { 8 };
        let stride = elem.checked_add(align)?.checked_next_multiple_of(align)?;
        Some(SlotShape { data_at: align, stride })
    }

    /// The alignment of the memory the slots are in.
    pub(super) fn align(self) -> usize {
        self.data_at
    }
}

/// Keeps a value on its own cache line pair (the adjacent-line prefetcher pulls two),
/// as crossbeam does for the head and the tail.
#[repr(align(128))]
pub(super) struct CachePadded<T>(pub(super) T);

impl<T> Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

const SPIN_LIMIT: u32 = 6;
const YIELD_LIMIT: u32 = 10;

/// Exponential back-off for a thread that lost a race or waits for another thread to
/// finish a step (crossbeam-utils' `Backoff`): spins, then yields the CPU.
pub(super) struct Backoff {
    step: u32,
}

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff { step: 0 }
    }

    /// After a lost compare-and-swap: spin a little, never yield.
    #[inline]
    pub(super) fn spin(&mut self) {
        for _ in 0..1u32 << self.step.min(SPIN_LIMIT) {
            std::hint::spin_loop();
        }
        if self.step <= SPIN_LIMIT {
            self.step += 1;
        }
    }

    /// While waiting for another thread: spin, then yield.
    pub(super) fn snooze(&mut self) {
        if self.step <= SPIN_LIMIT {
            for _ in 0..1u32 << self.step {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        if self.step <= YIELD_LIMIT {
            self.step += 1;
        }
    }

    /// True when the next `snooze` yields rather than spins.
    pub(super) fn would_yield(&self) -> bool {
        self.step > SPIN_LIMIT
    }

    /// True once snoozing has gone on long enough that parking is cheaper.
    pub(super) fn is_completed(&self) -> bool {
        self.step > YIELD_LIMIT
    }
}

/// Elements of 0 bytes carry nothing but their number: the buffer is a count, the low
/// bit the closed mark.
pub(super) struct Count {
    state: CachePadded<AtomicU64>,
    /// The bound (at most `COUNT_MAX`: 2^63 sends take centuries).
    cap: u64,
    unbounded: bool,
}

const COUNT_CLOSED: u64 = 1;
const COUNT_ONE: u64 = 2;
const COUNT_MAX: u64 = u64::MAX / COUNT_ONE;

impl Count {
    fn new(capacity: Option<usize>) -> Option<Count> {
        let cap = capacity.map_or(COUNT_MAX, |n| (n as u64).min(COUNT_MAX));
        Some(Count { state: CachePadded(AtomicU64::new(0)), cap, unbounded: capacity.is_none() })
    }

    fn push(&self) -> Push {
        let mut state = self.state.load(SeqCst);
        loop {
            if state & COUNT_CLOSED != 0 {
                return Push::Closed;
            }
            if state / COUNT_ONE >= self.cap {
                return if self.unbounded { Push::NoMemory } else { Push::Full };
            }
            match self.state.compare_exchange_weak(state, state + COUNT_ONE, SeqCst, SeqCst) {
                Ok(_) => return Push::Done,
                Err(now) => state = now,
            }
        }
    }

    fn pop(&self) -> Pop {
        let mut state = self.state.load(SeqCst);
        loop {
            if state / COUNT_ONE == 0 {
                return if state & COUNT_CLOSED != 0 { Pop::Closed } else { Pop::Empty };
            }
            match self.state.compare_exchange_weak(state, state - COUNT_ONE, SeqCst, SeqCst) {
                Ok(_) => return Pop::Done,
                Err(now) => state = now,
            }
        }
    }

    fn close(&self) -> bool {
        self.state.fetch_or(COUNT_CLOSED, SeqCst) & COUNT_CLOSED == 0
    }

    fn push_ready(&self) -> bool {
        let state = self.state.load(SeqCst);
        state & COUNT_CLOSED != 0 || state / COUNT_ONE < self.cap
    }

    fn pop_ready(&self) -> bool {
        let state = self.state.load(SeqCst);
        state & COUNT_CLOSED != 0 || state / COUNT_ONE > 0
    }

    fn is_closed(&self) -> bool {
        self.state.load(SeqCst) & COUNT_CLOSED != 0
    }

    fn len(&self) -> usize {
        (self.state.load(SeqCst) / COUNT_ONE) as usize
    }

    fn for_each_left(&mut self, mut f: impl FnMut(*mut u8)) {
        let mut element = 0u64;
        for _ in 0..self.len() {
            f(&mut element as *mut u64 as *mut u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SlotShape;

    /// The element sits at its alignment, slots stay multiples of it, and nothing is
    /// padded that a C type of the element's size could not need.
    #[test]
    fn slot_shapes_align_elements_as_their_size_needs() {
        let shape = |elem| SlotShape::of(elem).unwrap();
        assert_eq!(shape(0), SlotShape { data_at: 8, stride: 8 });
        assert_eq!(shape(1), SlotShape { data_at: 8, stride: 16 });
        assert_eq!(shape(8), SlotShape { data_at: 8, stride: 16 });
        assert_eq!(shape(16), SlotShape { data_at: 16, stride: 32 });
        assert_eq!(shape(24), SlotShape { data_at: 8, stride: 32 });
        assert_eq!(shape(32), SlotShape { data_at: 16, stride: 48 });
        for elem in 0..300 {
            let s = shape(elem);
            assert_eq!(s.stride % s.data_at, 0, "{elem}");
            assert!(s.data_at + elem <= s.stride, "{elem}");
            assert!(s.stride - (s.data_at + elem) < s.data_at, "{elem}: no whole padding step");
        }
        assert_eq!(SlotShape::of(usize::MAX - 4), None);
    }
}
