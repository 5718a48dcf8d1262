//! A bounded buffer: Dmitry Vyukov's bounded MPMC queue, as crossbeam-channel's `array`
//! flavor builds it, with slots of `elem_size` bytes.
//!
//! `head` and `tail` are stamps: a lap above the mark bit, the mark bit (in the tail: the
//! channel is closed), a slot index below it. Each slot carries a stamp too: `tail`
//! when the slot is free for the push at `tail`, `head + 1` when it holds the element
//! for the pop at `head`. A push claims its slot by moving the tail with a CAS, copies
//! the element in and then publishes the slot's new stamp; a pop does the same with the
//! head. A thread that finds a slot still being written or read waits for its stamp.
//!
//! Slot stamps are stored minus the slot's index, so that a freshly zeroed allocation
//! holds every initial stamp (`index`, lap 0): a huge capacity costs no time at
//! creation, and memory only as the channel first fills. Pages are committed ahead of
//! the pushes, the first time around: a push that starts a `CHUNK` asks the kernel to
//! map the next chunk writable in one call (`MADV_POPULATE_WRITE`), so that the pushes
//! do not stall on a page fault every page (a stalled producer lets its consumer run
//! dry and park, and a park costs far more than the fault); and a push that starts a
//! page writes a stamp two pages ahead, so that where that call is not available
//! every page is at least first touched by a write, never by a read (a stamp read
//! would map the shared zero page, and the write that follows would then cost a second
//! fault and a TLB shootdown across the CPUs).
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release, Ordering::SeqCst};
use weft_platform::fence;

use super::buffer::{copy_elem, Backoff, CachePadded, Pop, Push, SlotShape};

/// The memory page size assumed for touching ahead (a smaller real page only means
/// some pages are first read; a larger one, that some are touched twice).
const PAGE: usize = 4096;
const TOUCH_AHEAD: usize = 2 * PAGE;
/// Committed ahead in one call: 64 pages, a stall of some tens of microseconds.
const CHUNK: usize = 64 * PAGE;

pub(super) struct Array {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
    slots: NonNull<u8>,
    layout: Layout,
    stride: usize,
    /// Where the element starts in its slot (`SlotShape`).
    data_at: usize,
    elem: usize,
    cap: usize,
    /// `{ lap: 1, mark: 0, index: 0 }`.
    one_lap: u64,
    /// Set in the tail once closed.
    mark_bit: u64,
}

// SAFETY: the slots are reached only through the stamp protocol above, from any thread.
unsafe impl Send for Array {}
// SAFETY: concurrent pushes and pops reach a slot only once the stamp protocol gives
// it to them alone; everything else is atomic or immutable.
unsafe impl Sync for Array {}

impl Array {
    pub(super) fn new(elem: usize, cap: usize) -> Option<Array> {
        debug_assert!(cap > 0);
        let mark_bit = u64::try_from(cap).ok()?.checked_add(1)?.checked_next_power_of_two()?;
        let one_lap = mark_bit.checked_mul(2)?;
        let shape = SlotShape::of(elem)?;
        let stride = shape.stride;
        let layout = Layout::from_size_align(cap.checked_mul(stride)?, shape.align()).ok()?;
        // SAFETY: the layout is not zero-sized (cap >= 1, stride >= 8).
        let slots = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        // The first chunk, which no push commits ahead of time (see the module comment).
        // SAFETY: inside the allocation, which nothing else uses yet.
        unsafe { ptr::write_bytes(slots.as_ptr(), 0, layout.size().min(CHUNK + TOUCH_AHEAD)) };
        Some(Array {
            head: CachePadded(AtomicU64::new(0)),
            tail: CachePadded(AtomicU64::new(0)),
            slots,
            layout,
            stride,
            data_at: shape.data_at,
            elem,
            cap,
            one_lap,
            mark_bit,
        })
    }

    /// On the first lap: a push at a slot that starts a chunk commits the next chunk; one
    /// that starts a page writes the stamp of a slot `TOUCH_AHEAD` bytes further (a
    /// compare-and-swap of 0 for 0, which changes nothing but is a write: an atomic add
    /// of 0 would be compiled to a plain load). See the module comment.
    #[inline]
    fn touch_ahead(&self, tail: u64, index: usize) {
        if tail >= self.mark_bit {
            return;
        }
        let at = index * self.stride;
        if at % PAGE >= self.stride {
            return;
        }
        if at % CHUNK < self.stride {
            self.commit((at / CHUNK + 1) * CHUNK);
        }
        let ahead = (at + TOUCH_AHEAD) / self.stride;
        if ahead < self.cap {
            let _ = self.slot(ahead).0.compare_exchange(0, 0, Relaxed, Relaxed);
        }
    }

    /// Asks the kernel to map the chunk at byte `from` of the slots writable now (its
    /// contents are not changed). Without `MADV_POPULATE_WRITE` (Linux before 5.14, or
    /// refused), does nothing: the pages then fault one by one.
    #[cold]
    fn commit(&self, from: usize) {
        let to = (from + CHUNK).min(self.layout.size());
        if from >= to {
            return;
        }
        let base = self.slots.as_ptr() as usize;
        // Whole pages: the ends may share a page with other memory, which the call
        // leaves as it is.
        let start = (base + from) & !(PAGE - 1);
        let end = (base + to + PAGE - 1) & !(PAGE - 1);
        // SAFETY: every page of the range holds part of the allocation, so it is
        // mapped; populating does not change memory contents.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE) };
    }

    /// The stamp word and the element bytes of slot `index` (< cap).
    #[inline]
    fn slot(&self, index: usize) -> (&AtomicU64, *mut u8) {
        debug_assert!(index < self.cap);
        // SAFETY: slot `index` < cap starts inside the allocation of `cap * stride` bytes.
        let at = unsafe { self.slots.as_ptr().add(index * self.stride) };
        // SAFETY: the slot starts with its stamp word, 8-aligned (the allocation is, and
        // stride is a multiple of 8), initialised (zeroed) and only ever accessed
        // atomically.
        let word = unsafe { &*(at as *const AtomicU64) };
        // SAFETY: the element bytes follow the (padded) word inside the same slot.
        let data = unsafe { at.add(self.data_at) };
        (word, data)
    }

    #[inline]
    fn load_stamp(word: &AtomicU64, index: usize) -> u64 {
        word.load(Acquire).wrapping_add(index as u64)
    }

    #[inline]
    fn store_stamp(word: &AtomicU64, index: usize, stamp: u64) {
        word.store(stamp.wrapping_sub(index as u64), Release)
    }

    /// The stamp after `at` (same lap, next index; or the next lap's index 0).
    #[inline]
    fn next(&self, at: u64) -> u64 {
        let index = (at & (self.mark_bit - 1)) as usize;
        if index + 1 < self.cap {
            at + 1
        } else {
            (at & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    /// Copies the element at `src` into the slot at the tail, unless full or closed.
    ///
    /// # Safety
    /// `src` points to `elem` readable bytes (the element size the array was made for)
    /// that do not overlap the array's slots.
    #[inline(always)]
    pub(super) unsafe fn push(&self, src: *const u8) -> Push {
        let mut backoff = Backoff::new();
        // Every read of the tail acquires: a send that finds the close mark and says
        // `WEFT_ECLOSED` then reads the close code the closer stored before it (the
        // same instruction as a relaxed load on x86-64; on AArch64 it was 0 maybe).
        let mut tail = self.tail.load(Acquire);
        loop {
            if tail & self.mark_bit != 0 {
                return Push::Closed;
            }
            let index = (tail & (self.mark_bit - 1)) as usize;
            let (word, data) = self.slot(index);
            let stamp = Self::load_stamp(word, index);
            if tail == stamp {
                match self.tail.compare_exchange_weak(tail, self.next(tail), SeqCst, Acquire) {
                    Ok(_) => {
                        // SAFETY: `src` covers `elem` bytes apart from the slots (the
                        // caller's contract); `data` is the `elem` bytes of slot `index`,
                        // which the won CAS on the tail gives this push alone until it
                        // publishes the stamp below.
                        unsafe { copy_elem(src, data, self.elem) };
                        Self::store_stamp(word, index, tail + 1);
                        self.touch_ahead(tail, index);
                        return Push::Done;
                    }
                    Err(now) => {
                        tail = now;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail + 1 {
                // The slot still holds last lap's element: full, unless a pop is under way.
                fence::full();
                let head = self.head.load(Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    return Push::Full;
                }
                backoff.spin();
                tail = self.tail.load(Acquire);
            } else {
                // Another push or pop is finishing with this slot.
                backoff.snooze();
                tail = self.tail.load(Acquire);
            }
        }
    }

    /// Moves the element of the slot at the head to `dst`, unless empty.
    ///
    /// # Safety
    /// `dst` points to `elem` writable bytes (the element size the array was made for)
    /// that do not overlap the array's slots.
    #[inline(always)]
    pub(super) unsafe fn pop(&self, dst: *mut u8) -> Pop {
        let mut backoff = Backoff::new();
        let mut head = self.head.load(Relaxed);
        loop {
            let index = (head & (self.mark_bit - 1)) as usize;
            let (word, data) = self.slot(index);
            let stamp = Self::load_stamp(word, index);
            if head + 1 == stamp {
                match self.head.compare_exchange_weak(head, self.next(head), SeqCst, Relaxed) {
                    Ok(_) => {
                        // SAFETY: `dst` covers `elem` writable bytes apart from the slots
                        // (the caller's contract); `data` is the `elem` bytes of slot
                        // `index`, whose push completed (its stamp said so, seen with
                        // Acquire) and which the won CAS on the head gives this pop alone
                        // until it publishes the stamp below.
                        unsafe { copy_elem(data, dst, self.elem) };
                        Self::store_stamp(word, index, head.wrapping_add(self.one_lap));
                        return Pop::Done;
                    }
                    Err(now) => {
                        head = now;
                        backoff.spin();
                    }
                }
            } else if stamp == head {
                // The slot is free: empty, unless a push is under way.
                fence::full();
                // Acquire: a receiver that sees the close mark sees what the closer
                // wrote before it (the close code libweft stores first).
                let tail = self.tail.load(Acquire);
                if tail & !self.mark_bit == head {
                    return if tail & self.mark_bit != 0 { Pop::Closed } else { Pop::Empty };
                }
                backoff.spin();
                head = self.head.load(Relaxed);
            } else {
                backoff.snooze();
                head = self.head.load(Relaxed);
            }
        }
    }

    pub(super) fn close(&self) -> bool {
        self.tail.fetch_or(self.mark_bit, SeqCst) & self.mark_bit == 0
    }

    pub(super) fn is_closed(&self) -> bool {
        self.tail.load(SeqCst) & self.mark_bit != 0
    }

    pub(super) fn push_ready(&self) -> bool {
        let tail = self.tail.load(SeqCst);
        let head = self.head.load(SeqCst);
        tail & self.mark_bit != 0 || head.wrapping_add(self.one_lap) != tail
    }

    pub(super) fn pop_ready(&self) -> bool {
        let head = self.head.load(SeqCst);
        let tail = self.tail.load(SeqCst);
        tail & self.mark_bit != 0 || tail != head
    }

    pub(super) fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(SeqCst);
            let head = self.head.load(SeqCst);
            if self.tail.load(SeqCst) == tail {
                let hix = (head & (self.mark_bit - 1)) as usize;
                let tix = (tail & (self.mark_bit - 1)) as usize;
                return if hix < tix {
                    tix - hix
                } else if hix > tix {
                    self.cap - hix + tix
                } else if tail & !self.mark_bit == head {
                    0
                } else {
                    self.cap
                };
            }
        }
    }

    pub(super) fn for_each_left(&mut self, mut f: impl FnMut(*mut u8)) {
        let first = (*self.head.0.get_mut() & (self.mark_bit - 1)) as usize;
        for i in 0..self.len() {
            let index = (first + i) % self.cap;
            f(self.slot(index).1);
        }
    }
}

impl Drop for Array {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.slots.as_ptr(), self.layout) }
    }
}
