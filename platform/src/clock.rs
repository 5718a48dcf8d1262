//! The clock of real-time deadlines: `CLOCK_MONOTONIC` in nanoseconds.
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock a platform that claims
/// `WEFT_CAP_MONOTONIC_CLOCK` keeps its deadlines on (native, green, pthread), and the
/// one `std::time::Instant` reads on Linux.
#[inline]
pub fn monotonic_now() -> i64 {
    monotonic_now_with(libc::clock_gettime)
}

/// `CLOCK_MONOTONIC` now, in nanoseconds, read by `clock_gettime` (glibc's, or the
/// vDSO's from [`fastest_clock_gettime`]).
#[inline]
pub fn monotonic_now_with(clock_gettime: ClockGettime) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// A `clock_gettime`: glibc's, or the vDSO's own.
pub type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int;

/// The kernel's `clock_gettime` in the vDSO, which glibc's calls through a pointer of
/// its own: called directly, a read of the clock makes one call less. glibc's where
/// the process has no vDSO (valgrind hides it). Looked up once per process (the answer
/// is the same on every call), so that a child of `fork()` that opens a runtime
/// inherits it and makes no `dlopen` of its own.
pub fn fastest_clock_gettime() -> ClockGettime {
    static FOUND: AtomicUsize = AtomicUsize::new(0);
    let found = FOUND.load(Relaxed);
    if found != 0 {
        // SAFETY: stored below from a `ClockGettime`.
        return unsafe { std::mem::transmute::<usize, ClockGettime>(found) };
    }
    let clock_gettime = look_up_vdso_clock_gettime().unwrap_or(libc::clock_gettime);
    // Two first calls at once store the same value.
    FOUND.store(clock_gettime as usize, Relaxed);
    clock_gettime
}

fn look_up_vdso_clock_gettime() -> Option<ClockGettime> {
    #[cfg(target_arch = "x86_64")]
    const SYMBOL: &std::ffi::CStr = c"__vdso_clock_gettime";
    #[cfg(not(target_arch = "x86_64"))]
    const SYMBOL: &std::ffi::CStr = c"__kernel_clock_gettime";
    // SAFETY: RTLD_NOLOAD only looks up an object already mapped (the vDSO, which glibc
    // lists under this name); the handle is never closed (the vDSO stays mapped), and
    // the symbol, where found, is the kernel's clock_gettime with glibc's signature.
    unsafe {
        let vdso = libc::dlopen(c"linux-vdso.so.1".as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if vdso.is_null() {
            return None;
        }
        let sym = libc::dlsym(vdso, SYMBOL.as_ptr());
        (!sym.is_null()).then(|| std::mem::transmute::<*mut libc::c_void, ClockGettime>(sym))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(clock_gettime: ClockGettime) -> i64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a clock_gettime with a valid out-pointer.
        assert_eq!(unsafe { clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) }, 0);
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    }

    #[test]
    fn the_vdso_clock_is_found_and_reads_glibcs_monotonic_clock() {
        let fastest = fastest_clock_gettime();
        // SAFETY: getauxval has no preconditions.
        let has_vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } != 0;
        assert_eq!(
            fastest as usize != libc::clock_gettime as *const () as usize,
            has_vdso,
            "the vDSO's clock_gettime is used where there is one"
        );
        for _ in 0..1000 {
            let (a, b, c) = (monotonic_now(), read(fastest), monotonic_now());
            assert!(a <= b && b <= c, "the vDSO's reading {b} lies between glibc's {a} and {c}");
        }
    }
}
