//! The running context's slot: two pointers per OS thread, read on every fast path.
//!
//! A Rust `thread_local!` in a shared library uses the general-dynamic TLS model: every
//! read is a call to `__tls_get_addr` (11 instructions and a call, twice per mutex
//! lock+unlock pair). This slot is instead an initial-exec TLS variable, defined here in
//! assembly (stable Rust has no `#[thread_local]` and no TLS model switch): a read is
//! two instructions, a GOT load of the variable's offset from the thread pointer and a
//! load through `%fs` (`tpidr_el0` on aarch64), the way glibc, jemalloc and Mesa reach
//! their own per-thread state. The variable lives in the static TLS block that the
//! dynamic loader sets up for every thread; a libweft.so loaded with `dlopen` takes its
//! 16 bytes from the surplus glibc reserves for such libraries.
//!
//! Word 0 is the running context (what `context::current` returns), word 1 that
//! context's state pointer (`weft_task_set_state`). Every switch of the running context
//! (`context::enter`, which green and sim call through `host->context_set` when they
//! switch tasks on a worker) writes both. Because the variable is initial-exec, its
//! offset from the thread pointer is the same on every thread: libweft publishes the
//! offset of word 1 (`weft_state_tls_offset_`, set by a constructor when the library
//! loads), and weft.h's inline `weft_task_state()` reads the word with one load through
//! the thread pointer, with no call into libweft.
//!
//! Reads are `asm!` blocks without `pure`: the compiler never merges two reads or hoists
//! one across a call, so a green task that moves to another worker inside a weft call
//! reads its new worker's slot afterwards. Elsewhere than x86-64 and aarch64 Linux the
//! slot is a `thread_local!` and the offset is 0 (weft.h then calls
//! `weft_task_state_get`).
use std::ffi::c_void;

/// Word 0 of the slot: the running context.
const CONTEXT: usize = 0;
/// Word 1 of the slot: the running context's state pointer.
const STATE: usize = 1;

/// Owned by libweft, for weft.h's inline `weft_task_state()` only (read it, never write
/// it): the offset of the running task's state word from the thread pointer, the same
/// on every thread; 0 until published, and where weft.h does not read it inline.
#[no_mangle]
#[used]
pub static mut weft_state_tls_offset_: isize = 0;

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod imp {
    use std::ffi::c_void;
    use std::sync::atomic::Ordering::Relaxed;

    // The variable: 16 bytes of zero-initialised TLS, private to libweft (weft.h reaches
    // word 1 through `weft_state_tls_offset_`).
    std::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".balign 16",
        ".globl weft_tls_slot",
        ".hidden weft_tls_slot",
        ".type weft_tls_slot, @tls_object",
        ".size weft_tls_slot, 16",
        "weft_tls_slot:",
        ".zero 16",
        ".popsection",
    );

    /// The slot's offset from the thread pointer (fixed for the process: initial-exec).
    #[cfg(target_arch = "x86_64")]
    pub(super) fn slot_offset() -> isize {
        let offset: isize;
        // SAFETY: reads the GOT entry the linker made for the slot.
        unsafe {
            std::arch::asm!(
                "mov {o}, qword ptr [rip + weft_tls_slot@GOTTPOFF]",
                o = out(reg) offset,
                options(nostack, readonly, preserves_flags),
            );
        }
        offset
    }

    /// Reads word `WORD` of this thread's slot.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn read<const WORD: usize>() -> *mut c_void {
        let value: *mut c_void;
        // SAFETY: reads this thread's own slot, which the loader allocated with the
        // thread; the offset comes from the GOT entry the linker made for it.
        unsafe {
            std::arch::asm!(
                "mov {v}, qword ptr [rip + weft_tls_slot@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v} + {off}]",
                v = out(reg) value,
                off = const WORD * 8,
                options(nostack, readonly, preserves_flags),
            );
        }
        value
    }

    /// Writes word `WORD` of this thread's slot.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn write<const WORD: usize>(value: *mut c_void) {
        // SAFETY: as in `read`.
        unsafe {
            std::arch::asm!(
                "mov {t}, qword ptr [rip + weft_tls_slot@GOTTPOFF]",
                "mov qword ptr fs:[{t} + {off}], {v}",
                t = out(reg) _,
                v = in(reg) value,
                off = const WORD * 8,
                options(nostack, preserves_flags),
            );
        }
    }

    /// The slot's offset from the thread pointer (fixed for the process: initial-exec).
    #[cfg(target_arch = "aarch64")]
    pub(super) fn slot_offset() -> isize {
        let offset: isize;
        // SAFETY: reads the GOT entry the linker made for the slot.
        unsafe {
            std::arch::asm!(
                "adrp {o}, :gottprel:weft_tls_slot",
                "ldr {o}, [{o}, #:gottprel_lo12:weft_tls_slot]",
                o = out(reg) offset,
                options(nostack, readonly, preserves_flags),
            );
        }
        offset
    }

    /// Reads word `WORD` of this thread's slot.
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub(super) fn read<const WORD: usize>() -> *mut c_void {
        let value: *mut c_void;
        // SAFETY: as for x86-64.
        unsafe {
            std::arch::asm!(
                "mrs {tp}, tpidr_el0",
                "adrp {v}, :gottprel:weft_tls_slot",
                "ldr {v}, [{v}, #:gottprel_lo12:weft_tls_slot]",
                "add {v}, {v}, {tp}",
                "ldr {v}, [{v}, #{off}]",
                tp = out(reg) _,
                v = out(reg) value,
                off = const WORD * 8,
                options(nostack, readonly, preserves_flags),
            );
        }
        value
    }

    /// Writes word `WORD` of this thread's slot.
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub(super) fn write<const WORD: usize>(value: *mut c_void) {
        // SAFETY: as in `read`.
        unsafe {
            std::arch::asm!(
                "mrs {tp}, tpidr_el0",
                "adrp {t}, :gottprel:weft_tls_slot",
                "ldr {t}, [{t}, #:gottprel_lo12:weft_tls_slot]",
                "add {t}, {t}, {tp}",
                "str {v}, [{t}, #{off}]",
                tp = out(reg) _,
                t = out(reg) _,
                v = in(reg) value,
                off = const WORD * 8,
                options(nostack, preserves_flags),
            );
        }
    }

    /// Publishes the state word's offset for weft.h. Not a `Once`: every writer writes
    /// the same value, and a child forked during another thread's `call_once` would
    /// wait for it for ever.
    pub(super) fn publish_offset() {
        // SAFETY: an aligned word that libweft accesses only here, atomically; weft.h
        // reads it, and takes 0 (before the first write) as "not published: call
        // weft_task_state_get".
        let word =
            unsafe { std::sync::atomic::AtomicIsize::from_ptr(std::ptr::addr_of_mut!(super::weft_state_tls_offset_)) };
        if word.load(Relaxed) == 0 {
            word.store(slot_offset() + (super::STATE * 8) as isize, Relaxed);
        }
    }

    extern "C" fn publish_at_load() {
        publish_offset();
    }

    // When the library loads. (Linked from libweft.a, a constructor in an object
    // nothing else pulls in may be left out: `set_state` publishes it too.)
    #[used]
    #[link_section = ".init_array"]
    static PUBLISH_OFFSET: extern "C" fn() = publish_at_load;
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
mod imp {
    use std::cell::Cell;
    use std::ffi::c_void;

    thread_local! {
        static SLOT: [Cell<*mut c_void>; 2] = const { [Cell::new(std::ptr::null_mut()), Cell::new(std::ptr::null_mut())] };
    }

    #[inline(never)]
    pub(super) fn read<const WORD: usize>() -> *mut c_void {
        SLOT.with(|s| s[WORD].get())
    }

    #[inline(never)]
    pub(super) fn write<const WORD: usize>(value: *mut c_void) {
        SLOT.with(|s| s[WORD].set(value))
    }
}

/// The running context of this thread (NULL: none yet).
#[inline(always)]
pub(crate) fn context() -> *mut c_void {
    imp::read::<CONTEXT>()
}

/// Makes `ctx` (with its state pointer `state`) the running context of this thread.
#[inline(always)]
pub(crate) fn set(ctx: *mut c_void, state: *mut c_void) {
    imp::write::<CONTEXT>(ctx);
    imp::write::<STATE>(state);
}

/// The running context's state pointer, as this thread's slot holds it.
#[inline(always)]
pub(crate) fn state() -> *mut c_void {
    imp::read::<STATE>()
}

/// Sets the running context's state pointer in this thread's slot.
#[inline(always)]
pub(crate) fn set_state(state: *mut c_void) {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    imp::publish_offset();
    imp::write::<STATE>(state);
}
