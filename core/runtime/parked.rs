//! What a conservative collector reads of a stopped mutator: its stack bounds, and the
//! stack pointer and callee-saved registers recorded where it parked or entered its
//! blocking region (`weft_task_info_t.stack_lo`, `stack_hi`, `sp`, `regs`).
//!
//! Why the recording is done where it is: a collector scans `[sp, stack_hi)` plus the
//! register block. That finds every value the host's frames hold if, and only if, the
//! recording was taken in a frame that stays alive until the mutator runs again: then
//! each callee-saved value of the host is either still in its register (recorded) or
//! was saved by some frame between the recording and the host (scanned). A recording
//! taken inside a function that returns before the wait (as the `blocking_enter` host
//! service does: the plugin calls it, then waits) would miss a host value that the
//! returned frame had saved in its prologue and the wait holds in a register again.
//! So:
//! * the runtime's own waits (parking at a safepoint, the regions it opens around locks,
//!   condition waits and yields, `weft_blocking_call`) record in the function that then
//!   waits (`Parked::record_here`), whose frame encloses the whole wait;
//! * a region entered by a call that returns before the wait, `weft_blocking_begin`
//!   (the host's) and the `blocking_enter` host service (the plugin's, right before it
//!   waits in a join, a sleep, a channel operation...), records at its entry: a few
//!   instructions of assembly (`recording_entry!`) store the caller's callee-saved
//!   registers as they are at the call, before any prologue can change them, and the
//!   stack pointer the caller has once the call returns. Everything above that stays
//!   alive while the caller waits, and every register value it holds then is either
//!   in the record or saved above. A wait that completes at once never calls them, so
//!   the fast paths pay nothing.
//!
//! The record is written only by the mutator itself, only while it is RUNNING, and
//! published by its SeqCst store of AT_SAFEPOINT or BLOCKING; a collector reads it only
//! while the world is stopped, after it read that state. So no one reads it while it
//! is written.
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

use weft_platform::*;

use crate::runtime::Runtime;
use crate::types::WEFT_SAVED_REGS;

/// A recorded stack pointer and callee-saved registers.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct Frame {
    /// In the order `weft_task_info_t.regs` documents.
    pub(crate) regs: [usize; WEFT_SAVED_REGS],
    pub(crate) sp: usize,
}

/// Stores the callee-saved registers and the stack pointer of the calling function's
/// frame into `frame`. Inlined into its caller, so the stack pointer is the caller's.
#[inline(always)]
pub(crate) fn capture(frame: &mut Frame) {
    let out = frame as *mut Frame;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: stores into `*out`, a valid `Frame` (13 words); reads registers only.
    unsafe {
        std::arch::asm!(
            "mov [rax], rbx",
            "mov [rax + 8], rbp",
            "mov [rax + 16], r12",
            "mov [rax + 24], r13",
            "mov [rax + 32], r14",
            "mov [rax + 40], r15",
            "mov [rax + 96], rsp",
            in("rax") out,
            options(nostack, preserves_flags)
        )
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above (x19 to x29 in the first 11 words, sp in the 13th).
    unsafe {
        std::arch::asm!(
            "stp x19, x20, [x8]",
            "stp x21, x22, [x8, #16]",
            "stp x23, x24, [x8, #32]",
            "stp x25, x26, [x8, #48]",
            "stp x27, x28, [x8, #64]",
            "str x29, [x8, #80]",
            "mov x9, sp",
            "str x9, [x8, #96]",
            in("x8") out,
            out("x9") _,
            options(nostack, preserves_flags)
        )
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    compile_error!("weft records parked mutators' registers on x86_64 and aarch64 only");
}

/// The parked-state part of a mutator.
#[derive(Default)]
pub(crate) struct Parked {
    frame: UnsafeCell<Frame>,
    stack_lo: AtomicUsize,
    stack_hi: AtomicUsize,
}

impl Parked {
    /// Records the calling function's frame, for a wait inside it: call it in the
    /// function that then parks or waits, and not right before a call that is that
    /// function's last action (a tail call would end the frame before the wait). Only
    /// by the mutator itself, while it runs (see the module comment).
    #[inline(always)]
    pub(crate) fn record_here(&self, rt: &Runtime) {
        // SAFETY: see the module comment: only this mutator writes, while it runs.
        capture(unsafe { &mut *self.frame.get() });
        self.learn_stack(rt);
    }

    /// Records what a recording entry stored.
    pub(crate) fn record(&self, rt: &Runtime, entry: EntryWords) {
        // SAFETY: as in `record_here`.
        unsafe { *self.frame.get() = entry.frame() };
        self.learn_stack(rt);
    }

    /// The recorded frame. Only while the mutator cannot run (see the module comment).
    pub(crate) fn frame(&self) -> Frame {
        // SAFETY: see above.
        unsafe { *self.frame.get() }
    }

    /// The stack bounds, (0, 0) until the mutator first recorded a frame or asked for
    /// them (a task that never waits never pays for finding them; every mutator stopped
    /// by a stop has recorded one).
    pub(crate) fn stack(&self) -> (usize, usize) {
        // `hi` first, with Acquire: a non-zero `hi` comes with its `lo` (see
        // `learn_stack`), also read from another thread while the mutator runs.
        let hi = self.stack_hi.load(Acquire);
        (self.stack_lo.load(Relaxed), hi)
    }

    /// Finds and keeps the calling context's stack bounds (see `stack_of_caller`), the
    /// first time. Only by the mutator itself.
    pub(crate) fn learn_stack(&self, rt: &Runtime) {
        if self.stack_hi.load(Relaxed) == 0 {
            let (lo, hi) = stack_of_caller(rt);
            self.stack_lo.store(lo, Relaxed);
            // Release: whoever reads this `hi` reads the `lo` above with it.
            self.stack_hi.store(hi, Release);
        }
    }
}

/// The calling context's stack: the platform's task stack if it runs the caller on one
/// of its own, else the OS thread's, from `pthread_getattr_np`; (0, 0) if neither is
/// known.
fn stack_of_caller(rt: &Runtime) -> (usize, usize) {
    if let Some(bounds) = rt.table.stack_bounds {
        let (mut lo, mut hi) = (0usize, 0usize);
        // SAFETY: a member of an accepted table, present for its version; valid
        // out-pointers.
        if unsafe { bounds(rt.prt, &mut lo, &mut hi) } == WEFT_OK && lo < hi {
            return (lo, hi);
        }
        crate::ffi::error::clear_plugin_detail();
    }
    thread_stack()
}

/// The calling OS thread's stack, as glibc knows it.
fn thread_stack() -> (usize, usize) {
    // SAFETY: a zeroed attribute object filled by pthread_getattr_np and destroyed after;
    // the out-parameters are locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return (0, 0);
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if !ok {
            return (0, 0);
        }
        (addr as usize, addr as usize + size)
    }
}

/// The words a recording entry stores: the callee-saved registers, then the caller's
/// stack pointer as it will be once the call has returned.
#[cfg(target_arch = "x86_64")]
pub(crate) const ENTRY_REGS: usize = 6;
#[cfg(target_arch = "aarch64")]
pub(crate) const ENTRY_REGS: usize = 11;

/// The body of a naked `extern "C"` function of at most one pointer-sized argument `a`
/// that records its caller's registers and stack pointer and tail-calls into
/// `$inner(words, a)`, `words` pointing to what `EntryWords` reads (valid during the
/// call only), then returns what `$inner` returned.
#[cfg(target_arch = "x86_64")]
macro_rules! recording_entry {
    ($inner:path) => {
        std::arch::naked_asm!(
            // 72 bytes keep the call 16-aligned: 6 registers and the stack pointer.
            "sub rsp, 72",
            "mov [rsp], rbx",
            "mov [rsp + 8], rbp",
            "mov [rsp + 16], r12",
            "mov [rsp + 24], r13",
            "mov [rsp + 32], r14",
            "mov [rsp + 40], r15",
            // The caller's stack pointer once this call has returned.
            "lea rax, [rsp + 80]",
            "mov [rsp + 48], rax",
            "mov rsi, rdi",
            "mov rdi, rsp",
            "call {inner}",
            "add rsp, 72",
            "ret",
            inner = sym $inner,
        )
    };
}
#[cfg(target_arch = "aarch64")]
macro_rules! recording_entry {
    ($inner:path) => {
        std::arch::naked_asm!(
            // x19 to x29, the stack pointer, and the link register across the call.
            "sub sp, sp, #112",
            "stp x19, x20, [sp]",
            "stp x21, x22, [sp, #16]",
            "stp x23, x24, [sp, #32]",
            "stp x25, x26, [sp, #48]",
            "stp x27, x28, [sp, #64]",
            "add x9, sp, #112",
            "stp x29, x9, [sp, #80]",
            "str x30, [sp, #96]",
            "mov x1, x0",
            "mov x0, sp",
            "bl {inner}",
            "ldr x30, [sp, #96]",
            "add sp, sp, #112",
            "ret",
            inner = sym $inner,
        )
    };
}
pub(crate) use recording_entry;

/// What a recording entry stored (`ENTRY_REGS` registers, then sp), read only if it is
/// recorded: most entries come inside a region that is recorded already.
#[derive(Clone, Copy)]
pub(crate) struct EntryWords(*const usize);

impl EntryWords {
    /// # Safety
    /// `words` points to `ENTRY_REGS + 1` words that stay readable while this is used
    /// (the entry's own, during its call).
    pub(crate) unsafe fn new(words: *const usize) -> EntryWords {
        EntryWords(words)
    }

    fn frame(self) -> Frame {
        let mut frame = Frame::default();
        // SAFETY: see `new`.
        let words = unsafe { std::slice::from_raw_parts(self.0, ENTRY_REGS + 1) };
        frame.regs[..ENTRY_REGS].copy_from_slice(&words[..ENTRY_REGS]);
        frame.sp = words[ENTRY_REGS];
        frame
    }
}
