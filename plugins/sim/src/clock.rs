//! The virtual clock: nanoseconds since the runtime opened, advanced only by the
//! scheduler when every task waits (see `sched.rs`).
use std::sync::atomic::Ordering::Relaxed;

use weft_platform::WEFT_FOREVER;

use crate::sched::{self, NOW};

pub(crate) fn now() -> i64 {
    NOW.load(Relaxed)
}

/// True when `deadline` means "do not wait".
pub(crate) fn expired(deadline: i64) -> bool {
    deadline != WEFT_FOREVER && deadline <= now()
}

/// A select's random poll order comes from the scheduler's seeded stream.
pub(crate) fn select_random() -> Option<u64> {
    sched::here().map(|sim| sim.random())
}
