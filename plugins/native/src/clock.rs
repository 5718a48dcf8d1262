//! The native clock: CLOCK_MONOTONIC in nanoseconds, the same clock `std::time::Instant`
//! reads on Linux, so deadlines convert to `Instant`s for a thread's timed sleeps.
use std::time::{Duration, Instant};

use weft_platform::WEFT_FOREVER;

pub(crate) use weft_platform::clock::monotonic_now as now;

/// True when `deadline` means "do not wait".
pub(crate) fn expired(deadline: i64) -> bool {
    deadline != WEFT_FOREVER && deadline <= now()
}

/// The `Instant` of `deadline`, or None for a deadline too far to represent (forever).
pub(crate) fn instant(deadline: i64) -> Option<Instant> {
    if deadline == WEFT_FOREVER {
        return None;
    }
    let left = deadline.saturating_sub(now()).max(0) as u64;
    Instant::now().checked_add(Duration::from_nanos(left))
}

/// Sleeps the calling OS thread until `deadline` (for ever: parks it, never to be
/// woken by the plugin). For a thread the host made, which is no task of the plugin.
pub(crate) fn sleep_thread_until(deadline: i64) {
    // A sleep a signal interrupts sets errno (EINTR).
    let _errno = weft_platform::errno::Kept::new();
    loop {
        match instant(deadline) {
            None => std::thread::park(),
            Some(until) => {
                let now = Instant::now();
                if until <= now {
                    return;
                }
                std::thread::sleep(until - now);
            }
        }
    }
}

/// A select's random state from a deterministic platform's stream; this clock's
/// platforms have none (each thread seeds its own, see `chan.rs`).
pub(crate) fn select_random() -> Option<u64> {
    None
}
