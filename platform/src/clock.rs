//! The clock of real-time deadlines: `CLOCK_MONOTONIC` in nanoseconds.

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock a platform that claims
/// `WEFT_CAP_MONOTONIC_CLOCK` keeps its deadlines on (native, green, pthread), and the
/// one `std::time::Instant` reads on Linux.
#[inline]
pub fn monotonic_now() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}
