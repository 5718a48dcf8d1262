//! Task stack sizes, the same on every platform: the runtime hands the plugin a size
//! that is already the final one (a whole number of pages, at least the minimum), so
//! that no plugin falls back to its own default (glibc's 8 MiB, Rust's 2 MiB or
//! `$RUST_MIN_STACK`) or lets glibc round an odd request down.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::types::{WEFT_DEFAULT_STACK_SIZE, WEFT_MIN_STACK_SIZE};

/// The stack size the plugin is asked for: `requested` (0: the default) as a minimum,
/// raised to `WEFT_MIN_STACK_SIZE` and rounded up to whole pages.
pub(crate) fn effective_stack_size(requested: usize) -> usize {
    let wanted = if requested == 0 { WEFT_DEFAULT_STACK_SIZE } else { requested.max(WEFT_MIN_STACK_SIZE) };
    let page = page_size();
    // A request within a page of usize::MAX cannot be satisfied anyway; the plugin fails it.
    wanted.checked_next_multiple_of(page).unwrap_or(wanted)
}

/// The page size, asked once (every spawn needs it).
fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    match PAGE.load(Relaxed) {
        0 => {
            // SAFETY: sysconf only reads a configuration value.
            let page =
                usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).ok().filter(|p| p.is_power_of_two());
            let page = page.unwrap_or(4096);
            PAGE.store(page, Relaxed);
            page
        }
        page => page,
    }
}
