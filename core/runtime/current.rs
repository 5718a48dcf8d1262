//! The running context's slot: one pointer per OS thread, read on every fast path.
//!
//! A Rust `thread_local!` in a shared library uses the general-dynamic TLS model: every
//! read is a call to `__tls_get_addr` (11 instructions and a call, twice per mutex
//! lock+unlock pair). This slot is instead an initial-exec TLS variable, defined here in
//! assembly (stable Rust has no `#[thread_local]` and no TLS model switch): a read is
//! two instructions, a GOT load of the variable's offset from the thread pointer and a
//! load through `%fs` (`tpidr_el0` on aarch64), the way glibc, jemalloc and Mesa reach
//! their own per-thread state. The variable lives in the static TLS block that the
//! dynamic loader sets up for every thread; a libweft.so loaded with `dlopen` takes its
//! 8 bytes from the surplus glibc reserves for such libraries.
//!
//! The slot holds the running context (what `context::current` returns); every switch
//! of the running context (`context::enter`, which green and sim call through
//! `host->context_set` when they switch tasks on a worker) writes it.
//!
//! Reads are `asm!` blocks without `pure`: the compiler never merges two reads or hoists
//! one across a call, so a green task that moves to another worker inside a weft call
//! reads its new worker's slot afterwards. Elsewhere than x86-64 and aarch64 Linux the
//! slot is a `thread_local!`.
use std::ffi::c_void;

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod imp {
    use std::ffi::c_void;

    // The variable: one zero-initialised pointer of TLS, private to libweft.
    std::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".balign 8",
        ".globl weft_tls_slot",
        ".hidden weft_tls_slot",
        ".type weft_tls_slot, @tls_object",
        ".size weft_tls_slot, 8",
        "weft_tls_slot:",
        ".zero 8",
        ".popsection",
    );

    /// Reads this thread's slot.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn read() -> *mut c_void {
        let value: *mut c_void;
        // SAFETY: reads this thread's own slot, which the loader allocated with the
        // thread; the offset comes from the GOT entry the linker made for it.
        unsafe {
            std::arch::asm!(
                "mov {v}, qword ptr [rip + weft_tls_slot@GOTTPOFF]",
                "mov {v}, qword ptr fs:[{v}]",
                v = out(reg) value,
                options(nostack, readonly, preserves_flags),
            );
        }
        value
    }

    /// Writes this thread's slot.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn write(value: *mut c_void) {
        // SAFETY: as in `read`.
        unsafe {
            std::arch::asm!(
                "mov {t}, qword ptr [rip + weft_tls_slot@GOTTPOFF]",
                "mov qword ptr fs:[{t}], {v}",
                t = out(reg) _,
                v = in(reg) value,
                options(nostack, preserves_flags),
            );
        }
    }

    /// Reads this thread's slot.
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub(super) fn read() -> *mut c_void {
        let value: *mut c_void;
        // SAFETY: as for x86-64.
        unsafe {
            std::arch::asm!(
                "mrs {tp}, tpidr_el0",
                "adrp {v}, :gottprel:weft_tls_slot",
                "ldr {v}, [{v}, #:gottprel_lo12:weft_tls_slot]",
                "add {v}, {v}, {tp}",
                "ldr {v}, [{v}]",
                tp = out(reg) _,
                v = out(reg) value,
                options(nostack, readonly, preserves_flags),
            );
        }
        value
    }

    /// Writes this thread's slot.
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub(super) fn write(value: *mut c_void) {
        // SAFETY: as in `read`.
        unsafe {
            std::arch::asm!(
                "mrs {tp}, tpidr_el0",
                "adrp {t}, :gottprel:weft_tls_slot",
                "ldr {t}, [{t}, #:gottprel_lo12:weft_tls_slot]",
                "add {t}, {t}, {tp}",
                "str {v}, [{t}]",
                tp = out(reg) _,
                t = out(reg) _,
                v = in(reg) value,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
mod imp {
    use std::cell::Cell;
    use std::ffi::c_void;

    thread_local! {
        static SLOT: Cell<*mut c_void> = const { Cell::new(std::ptr::null_mut()) };
    }

    #[inline(never)]
    pub(super) fn read() -> *mut c_void {
        SLOT.with(|s| s.get())
    }

    #[inline(never)]
    pub(super) fn write(value: *mut c_void) {
        SLOT.with(|s| s.set(value))
    }
}

/// The running context of this thread (NULL: none yet).
#[inline(always)]
pub(crate) fn context() -> *mut c_void {
    imp::read()
}

/// Makes `ctx` the running context of this thread.
#[inline(always)]
pub(crate) fn set(ctx: *mut c_void) {
    imp::write(ctx);
}
