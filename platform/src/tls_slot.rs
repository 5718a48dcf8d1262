//! Per-thread words that a shared library reads in two instructions: `tls_slot!`.
//!
//! A Rust `thread_local!` in a shared library uses the general-dynamic TLS model: every
//! access is a call to `__tls_get_addr` (11 instructions and a call). A slot made by
//! `tls_slot!` is instead an initial-exec TLS variable, defined in assembly (stable Rust
//! has no `#[thread_local]` and no TLS model switch): an access is a GOT load of the
//! variable's offset from the thread pointer and a load or store through `%fs`
//! (`tpidr_el0` on aarch64), the way glibc, jemalloc and Mesa reach their own per-thread
//! state. The variable lives in the static TLS block that the dynamic loader sets up for
//! every thread; a library loaded with `dlopen` takes its bytes from the surplus glibc
//! reserves for such libraries, so a slot should stay a few words.
//!
//! Accesses are `asm!` blocks without `pure`: the compiler never merges two reads or
//! hoists one across a call, so code that may continue on another OS thread after a
//! call (a green task switched out and resumed elsewhere) reads its new thread's slot.
//! Elsewhere than x86-64 and aarch64 Linux the slot is a `thread_local!`.

/// Defines module `$module` holding `$words` machine words per OS thread, zero on every
/// new thread, in TLS symbol `$symbol` (hidden: one per shared object). The module has
/// `read::<WORD>() -> usize` and `write::<WORD>(usize)`, and, on x86-64 and aarch64
/// Linux, `offset() -> isize`: the slot's offset from the thread pointer, the same on
/// every thread.
#[macro_export]
macro_rules! tls_slot {
    ($(#[$meta:meta])* $vis:vis mod $module:ident: $words:literal words in $symbol:ident) => {
        $(#[$meta])*
        #[allow(dead_code)]
        $vis mod $module {
            /// The words of the slot.
            pub const WORDS: usize = $words;

            #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
            ::std::arch::global_asm!(
                ".pushsection .tbss,\"awT\",@nobits",
                ".balign 16",
                concat!(".globl ", stringify!($symbol)),
                concat!(".hidden ", stringify!($symbol)),
                concat!(".type ", stringify!($symbol), ", @tls_object"),
                concat!(".size ", stringify!($symbol), ", {size}"),
                concat!(stringify!($symbol), ":"),
                ".zero {size}",
                ".popsection",
                size = const $words * 8,
            );

            /// The slot's offset from the thread pointer (fixed for the process:
            /// initial-exec).
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            pub fn offset() -> isize {
                let offset: isize;
                // SAFETY: reads the GOT entry the linker made for the slot.
                unsafe {
                    ::std::arch::asm!(
                        concat!("mov {o}, qword ptr [rip + ", stringify!($symbol), "@GOTTPOFF]"),
                        o = out(reg) offset,
                        options(nostack, readonly, preserves_flags),
                    );
                }
                offset
            }

            /// Reads word `WORD` of this thread's slot.
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            #[inline(always)]
            pub fn read<const WORD: usize>() -> usize {
                const { assert!(WORD < $words) };
                let value: usize;
                // SAFETY: reads this thread's own slot, which the loader allocated with
                // the thread; the offset comes from the GOT entry the linker made for it.
                unsafe {
                    ::std::arch::asm!(
                        concat!("mov {v}, qword ptr [rip + ", stringify!($symbol), "@GOTTPOFF]"),
                        "mov {v}, qword ptr fs:[{v} + {off}]",
                        v = out(reg) value,
                        off = const WORD * 8,
                        options(nostack, readonly, preserves_flags),
                    );
                }
                value
            }

            /// Writes word `WORD` of this thread's slot.
            #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
            #[inline(always)]
            pub fn write<const WORD: usize>(value: usize) {
                const { assert!(WORD < $words) };
                // SAFETY: as in `read`.
                unsafe {
                    ::std::arch::asm!(
                        concat!("mov {t}, qword ptr [rip + ", stringify!($symbol), "@GOTTPOFF]"),
                        "mov qword ptr fs:[{t} + {off}], {v}",
                        t = out(reg) _,
                        v = in(reg) value,
                        off = const WORD * 8,
                        options(nostack, preserves_flags),
                    );
                }
            }

            /// The slot's offset from the thread pointer (fixed for the process:
            /// initial-exec).
            #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
            pub fn offset() -> isize {
                let offset: isize;
                // SAFETY: reads the GOT entry the linker made for the slot.
                unsafe {
                    ::std::arch::asm!(
                        concat!("adrp {o}, :gottprel:", stringify!($symbol)),
                        concat!("ldr {o}, [{o}, #:gottprel_lo12:", stringify!($symbol), "]"),
                        o = out(reg) offset,
                        options(nostack, readonly, preserves_flags),
                    );
                }
                offset
            }

            /// Reads word `WORD` of this thread's slot.
            #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
            #[inline(always)]
            pub fn read<const WORD: usize>() -> usize {
                const { assert!(WORD < $words) };
                let value: usize;
                // SAFETY: as for x86-64.
                unsafe {
                    ::std::arch::asm!(
                        "mrs {tp}, tpidr_el0",
                        concat!("adrp {v}, :gottprel:", stringify!($symbol)),
                        concat!("ldr {v}, [{v}, #:gottprel_lo12:", stringify!($symbol), "]"),
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
            #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
            #[inline(always)]
            pub fn write<const WORD: usize>(value: usize) {
                const { assert!(WORD < $words) };
                // SAFETY: as in `read`.
                unsafe {
                    ::std::arch::asm!(
                        "mrs {tp}, tpidr_el0",
                        concat!("adrp {t}, :gottprel:", stringify!($symbol)),
                        concat!("ldr {t}, [{t}, #:gottprel_lo12:", stringify!($symbol), "]"),
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

            #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
            ::std::thread_local! {
                static SLOT: [::std::cell::Cell<usize>; $words] = const { [const { ::std::cell::Cell::new(0) }; $words] };
            }

            /// Reads word `WORD` of this thread's slot.
            #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
            #[inline(never)]
            pub fn read<const WORD: usize>() -> usize {
                SLOT.with(|s| s[WORD].get())
            }

            /// Writes word `WORD` of this thread's slot.
            #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
            #[inline(never)]
            pub fn write<const WORD: usize>(value: usize) {
                SLOT.with(|s| s[WORD].set(value))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::tls_slot!(mod slot: 3 words in weft_platform_test_tls_slot);

    #[test]
    fn each_thread_has_its_own_words_zero_at_first() {
        assert_eq!((slot::read::<0>(), slot::read::<1>(), slot::read::<2>()), (0, 0, 0));
        slot::write::<0>(7);
        slot::write::<2>(usize::MAX);
        let other = std::thread::spawn(|| {
            let fresh = (slot::read::<0>(), slot::read::<1>(), slot::read::<2>());
            slot::write::<1>(5);
            (fresh, slot::read::<1>())
        })
        .join()
        .unwrap();
        assert_eq!(other, ((0, 0, 0), 5));
        assert_eq!((slot::read::<0>(), slot::read::<1>(), slot::read::<2>()), (7, 0, usize::MAX));
    }
}
