//! An unbounded buffer: crossbeam-channel's `list` flavor, a linked list of blocks of
//! `BLOCK_CAP` slots of `elem_size` bytes.
//!
//! Each element gets an index; `head` and `tail` hold the next index to pop and to push
//! (shifted left by one: in the tail the low bit is the closed mark, in the head it says
//! "the head's block is not the last one"), and the block each is in. Index `BLOCK_CAP`
//! of each lap is a gap: a push that takes the block's last slot installs the next block
//! (allocated before it moved the tail, so a failed allocation takes nothing) and moves
//! the tail past the gap; a pop that takes the last slot moves the head the same way.
//! A slot's state records WRITE (the element is in) and READ (taken); the pop of a
//! block's last slot frees the block, and a pop still reading an earlier slot then frees
//! it instead (DESTROY), so a block goes exactly once, after its last reader.
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::{self, NonNull};
use std::sync::atomic::{
    AtomicPtr, AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
    Ordering::SeqCst,
};
use weft_platform::fence;

use super::buffer::{copy_elem, Backoff, CachePadded, Pop, Push, SlotShape};

const WRITE: usize = 1;
const READ: usize = 2;
const DESTROY: usize = 4;

/// Each block covers one lap of indices, the last of which is the gap.
const LAP: u64 = 32;
const BLOCK_CAP: usize = LAP as usize - 1;
const SHIFT: u32 = 1;
const MARK_BIT: u64 = 1;

/// A block: `next` (a pointer), then `BLOCK_CAP` slots of `stride` bytes, each a state
/// word followed by the element. Only ever handled through raw pointers.
type Block = u8;

struct Position {
    index: AtomicU64,
    block: AtomicPtr<Block>,
}

pub(super) struct List {
    head: CachePadded<Position>,
    tail: CachePadded<Position>,
    elem: usize,
    stride: usize,
    /// Where the element starts in its slot, and the first slot in its block
    /// (`SlotShape`: the `next` word is padded as a slot's state word is).
    data_at: usize,
    layout: Layout,
}

// SAFETY: the blocks are reached only through the index protocol above, from any thread.
unsafe impl Send for List {}
// SAFETY: concurrent pushes and pops reach a slot only once the index protocol gives it
// to them alone, and a block is freed once, after its last reader; everything else is
// atomic or immutable.
unsafe impl Sync for List {}

/// A block allocated ahead of need, freed unless handed to the list.
struct Spare<'a> {
    block: Option<NonNull<Block>>,
    list: &'a List,
}

impl Drop for Spare<'_> {
    fn drop(&mut self) {
        if let Some(block) = self.block {
            // SAFETY: allocated by `alloc_block` and never published.
            unsafe { dealloc(block.as_ptr(), self.list.layout) }
        }
    }
}

impl List {
    pub(super) fn new(elem: usize) -> Option<List> {
        let shape = SlotShape::of(elem)?;
        let stride = shape.stride;
        // The `next` word, padded to the slots' alignment, then the slots.
        let bytes = stride.checked_mul(BLOCK_CAP)?.checked_add(shape.align())?;
        let layout = Layout::from_size_align(bytes, shape.align()).ok()?;
        let mut list = List {
            head: CachePadded(Position { index: AtomicU64::new(0), block: AtomicPtr::new(ptr::null_mut()) }),
            tail: CachePadded(Position { index: AtomicU64::new(0), block: AtomicPtr::new(ptr::null_mut()) }),
            elem,
            stride,
            data_at: shape.data_at,
            layout,
        };
        let first = list.alloc_block()?.as_ptr();
        *list.head.0.block.get_mut() = first;
        *list.tail.0.block.get_mut() = first;
        Some(list)
    }

    fn alloc_block(&self) -> Option<NonNull<Block>> {
        // SAFETY: the layout is not zero-sized. Zeroed: a null `next`, every slot's
        // state 0.
        NonNull::new(unsafe { alloc_zeroed(self.layout) })
    }

    /// The `next` word of `block`.
    ///
    /// # Safety
    /// `block` is a live block of this list, and stays so while the reference is used.
    #[inline]
    unsafe fn next_of<'b>(block: *mut Block) -> &'b AtomicPtr<Block> {
        // SAFETY: a live block (the caller's contract) starts with its `next` word, 8-aligned
        // (the block layout's alignment) and only ever accessed atomically.
        unsafe { &*(block as *const AtomicPtr<Block>) }
    }

    /// The state word and the element bytes of slot `offset` (< BLOCK_CAP) of `block`.
    ///
    /// # Safety
    /// `block` is a live block of this list, and stays so while the results are used;
    /// `offset` < BLOCK_CAP.
    #[inline]
    unsafe fn slot<'b>(&self, block: *mut Block, offset: usize) -> (&'b AtomicUsize, *mut u8) {
        // SAFETY: `block` is live (the caller's contract) and slot `offset` < BLOCK_CAP
        // lies inside it: data_at + BLOCK_CAP * stride bytes are allocated.
        let at = unsafe { block.add(self.data_at + offset * self.stride) };
        // SAFETY: the slot starts with its state word, aligned (data_at + a multiple of
        // stride, both multiples of the block's alignment) and only ever accessed
        // atomically.
        let state = unsafe { &*(at as *const AtomicUsize) };
        // SAFETY: the element bytes follow the (padded) state word inside the same slot.
        let data = unsafe { at.add(self.data_at) };
        (state, data)
    }

    /// Waits until the block after `block` is installed.
    ///
    /// # Safety
    /// `block` is a live block of this list, kept alive by the caller for the call (a
    /// slot of it taken and not yet read), whose successor is being or has been
    /// installed (the caller took its last slot).
    unsafe fn wait_next(block: *mut Block) -> *mut Block {
        let mut backoff = Backoff::new();
        loop {
            // SAFETY: `block` is live for the whole call (the caller's contract).
            let next = unsafe { Self::next_of(block) }.load(Acquire);
            if !next.is_null() {
                return next;
            }
            backoff.snooze();
        }
    }

    /// Frees `block` once no pop still reads a slot from `start` on; a pop still
    /// reading one frees it when it is done.
    ///
    /// # Safety
    /// `block` is a live block of this list whose every slot has been taken by a pop, and
    /// the caller is the one pop entitled to go on destroying it: the reader of its last
    /// slot (`start` 0), or the reader of slot `start - 1` that found DESTROY there. The
    /// caller does not touch the block afterwards.
    unsafe fn destroy(&self, block: *mut Block, start: usize) {
        // The last slot needs no mark: its reader is the one destroying the block.
        for offset in start..BLOCK_CAP - 1 {
            // SAFETY: the block is live until freed below or handed on to a reader that
            // has not set READ yet (the caller's contract), and `offset` < BLOCK_CAP.
            let (state, _) = unsafe { self.slot(block, offset) };
            if state.load(Acquire) & READ == 0 && state.fetch_or(DESTROY, AcqRel) & READ == 0 {
                return;
            }
        }
        // SAFETY: every slot from `start` on has been read (READ seen, AcqRel), those
        // before it by the caller's contract: no pop touches the block any more, and it
        // was allocated by `alloc_block` with this layout. Freed exactly once: a slot's
        // reader and the destroyer that marks it agree, through the one `fetch_or` each,
        // on which of them goes on.
        unsafe { dealloc(block, self.layout) };
    }

    /// Copies the element at `src` into the slot at the tail, unless closed; NoMemory
    /// when the next block cannot be allocated.
    ///
    /// # Safety
    /// `src` points to `elem` readable bytes (the element size the list was made for)
    /// that do not overlap the list's blocks.
    #[inline]
    pub(super) unsafe fn push(&self, src: *const u8) -> Push {
        let mut backoff = Backoff::new();
        let mut tail = self.tail.index.load(Acquire);
        let mut block = self.tail.block.load(Acquire);
        let mut spare = Spare { block: None, list: self };
        loop {
            if tail & MARK_BIT != 0 {
                return Push::Closed;
            }
            let offset = ((tail >> SHIFT) % LAP) as usize;
            if offset == BLOCK_CAP {
                // Another push is installing the next block.
                backoff.snooze();
                tail = self.tail.index.load(Acquire);
                block = self.tail.block.load(Acquire);
                continue;
            }
            if offset + 1 == BLOCK_CAP && spare.block.is_none() {
                match self.alloc_block() {
                    Some(new) => spare.block = Some(new),
                    None => return Push::NoMemory,
                }
            }
            let new_tail = tail + (1 << SHIFT);
            match self.tail.index.compare_exchange_weak(tail, new_tail, SeqCst, Acquire) {
                Ok(_) => {
                    if offset + 1 == BLOCK_CAP {
                        let next = spare.block.take().expect("allocated above").as_ptr();
                        self.tail.block.store(next, Release);
                        self.tail.index.fetch_add(1 << SHIFT, Release);
                        // SAFETY: the won CAS reserved slot `offset` of `block` (the
                        // block of that tail index) for this push: no pop has read it, so
                        // the block is not freed.
                        unsafe { Self::next_of(block) }.store(next, Release);
                    }
                    // SAFETY: `block` is live as above, `offset` < BLOCK_CAP.
                    let (state, data) = unsafe { self.slot(block, offset) };
                    // SAFETY: `src` covers `elem` bytes apart from the blocks (the
                    // caller's contract); `data` is the `elem` bytes of the slot this
                    // push reserved, which no pop reads before WRITE is set below.
                    unsafe { copy_elem(src, data, self.elem) };
                    state.fetch_or(WRITE, Release);
                    return Push::Done;
                }
                Err(now) => {
                    tail = now;
                    block = self.tail.block.load(Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Moves the element of the slot at the head to `dst`, unless empty.
    ///
    /// # Safety
    /// `dst` points to `elem` writable bytes (the element size the list was made for)
    /// that do not overlap the list's blocks.
    #[inline]
    pub(super) unsafe fn pop(&self, dst: *mut u8) -> Pop {
        let mut backoff = Backoff::new();
        let mut head = self.head.index.load(Acquire);
        let mut block = self.head.block.load(Acquire);
        loop {
            let offset = ((head >> SHIFT) % LAP) as usize;
            if offset == BLOCK_CAP {
                // Another pop is moving the head to the next block.
                backoff.snooze();
                head = self.head.index.load(Acquire);
                block = self.head.block.load(Acquire);
                continue;
            }
            let mut new_head = head + (1 << SHIFT);
            if new_head & MARK_BIT == 0 {
                // The head's block may be the last: compare with the tail.
                fence::full();
                // Acquire: see array.rs (the close mark publishes the close code).
                let tail = self.tail.index.load(Acquire);
                if head >> SHIFT == tail >> SHIFT {
                    return if tail & MARK_BIT != 0 { Pop::Closed } else { Pop::Empty };
                }
                if (head >> SHIFT) / LAP != (tail >> SHIFT) / LAP {
                    new_head |= MARK_BIT;
                }
            }
            match self.head.index.compare_exchange_weak(head, new_head, SeqCst, Acquire) {
                Ok(_) => {
                    if offset + 1 == BLOCK_CAP {
                        // SAFETY: the won CAS gave this pop the block's last slot, not
                        // read yet, so the block stays live; its successor is installed
                        // by the push that took that slot.
                        let next = unsafe { Self::wait_next(block) };
                        let mut next_index = (new_head & !MARK_BIT).wrapping_add(1 << SHIFT);
                        // SAFETY: `next` is installed and none of its slots can be taken
                        // before the head index is stored below, so it is not freed.
                        if !unsafe { Self::next_of(next) }.load(Relaxed).is_null() {
                            next_index |= MARK_BIT;
                        }
                        self.head.block.store(next, Release);
                        self.head.index.store(next_index, Release);
                    }
                    // SAFETY: the won CAS reserved slot `offset` (< BLOCK_CAP) of `block`
                    // for this pop: the block is not freed before this pop reads it.
                    let (state, data) = unsafe { self.slot(block, offset) };
                    let mut wait = Backoff::new();
                    while state.load(Acquire) & WRITE == 0 {
                        wait.snooze();
                    }
                    // SAFETY: `dst` covers `elem` writable bytes apart from the blocks
                    // (the caller's contract); `data` is the slot's `elem` bytes, written
                    // by its push (WRITE seen with Acquire) and read by this pop alone.
                    unsafe { copy_elem(data, dst, self.elem) };
                    if offset + 1 == BLOCK_CAP {
                        // SAFETY: this pop read the block's last slot, so every slot has
                        // been taken and it is the one to start destroying it.
                        unsafe { self.destroy(block, 0) };
                    } else if state.fetch_or(READ, AcqRel) & DESTROY != 0 {
                        // SAFETY: a destroyer marked this slot before it was read, and so
                        // handed the rest of the destruction to this pop.
                        unsafe { self.destroy(block, offset + 1) };
                    }
                    return Pop::Done;
                }
                Err(now) => {
                    head = now;
                    block = self.head.block.load(Acquire);
                    backoff.spin();
                }
            }
        }
    }

    pub(super) fn close(&self) -> bool {
        self.tail.index.fetch_or(MARK_BIT, SeqCst) & MARK_BIT == 0
    }

    pub(super) fn is_closed(&self) -> bool {
        self.tail.index.load(SeqCst) & MARK_BIT != 0
    }

    pub(super) fn pop_ready(&self) -> bool {
        let head = self.head.index.load(SeqCst);
        let tail = self.tail.index.load(SeqCst);
        tail & MARK_BIT != 0 || head >> SHIFT != tail >> SHIFT
    }

    pub(super) fn len(&self) -> usize {
        loop {
            let mut tail = self.tail.index.load(SeqCst);
            let mut head = self.head.index.load(SeqCst);
            if self.tail.index.load(SeqCst) == tail {
                tail &= !((1 << SHIFT) - 1);
                head &= !((1 << SHIFT) - 1);
                // An index on a gap counts as the next block's first.
                if (tail >> SHIFT) & (LAP - 1) == LAP - 1 {
                    tail = tail.wrapping_add(1 << SHIFT);
                }
                if (head >> SHIFT) & (LAP - 1) == LAP - 1 {
                    head = head.wrapping_add(1 << SHIFT);
                }
                // Rotate both so that the head falls in the first lap.
                let lap = (head >> SHIFT) / LAP;
                tail = tail.wrapping_sub((lap * LAP) << SHIFT);
                head = head.wrapping_sub((lap * LAP) << SHIFT);
                tail >>= SHIFT;
                head >>= SHIFT;
                // The difference, minus the gaps between.
                return (tail - head - tail / LAP) as usize;
            }
        }
    }

    pub(super) fn for_each_left(&mut self, mut f: impl FnMut(*mut u8)) {
        let mut head = *self.head.0.index.get_mut() & !((1 << SHIFT) - 1);
        let tail = *self.tail.0.index.get_mut() & !((1 << SHIFT) - 1);
        let mut block = *self.head.0.block.get_mut();
        // SAFETY: nothing else uses the list; every index between head and tail was
        // written (its push completed), and the blocks from the head's on are live.
        unsafe {
            while head != tail {
                let offset = ((head >> SHIFT) % LAP) as usize;
                if offset < BLOCK_CAP {
                    f(self.slot(block, offset).1);
                } else {
                    let next = Self::next_of(block).load(Relaxed);
                    dealloc(block, self.layout);
                    block = next;
                }
                head = head.wrapping_add(1 << SHIFT);
            }
            // Freed here: `Drop` finds nothing left.
            dealloc(block, self.layout);
        }
        *self.head.0.block.get_mut() = ptr::null_mut();
    }
}

impl Drop for List {
    fn drop(&mut self) {
        // The blocks are freed by walking the elements, with nothing to call on them.
        if !self.head.0.block.get_mut().is_null() {
            self.for_each_left(|_| {});
        }
    }
}
