//! The reference count of a shared handle (channels, blobs): counted owners that may
//! each give theirs back from any thread, where a count of 0 means "released" and no
//! reference may be taken or given back again (a stale handle, refused by the caller).
use std::sync::atomic::{fence, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

/// Adds an owner; false if the count is already 0 (the object was released).
pub(crate) fn retain(refs: &AtomicUsize) -> bool {
    let mut n = refs.load(Relaxed);
    loop {
        if n == 0 {
            return false;
        }
        match refs.compare_exchange_weak(n, n + 1, Relaxed, Relaxed) {
            Ok(_) => return true,
            Err(now) => n = now,
        }
    }
}

/// Gives back one owner: `None` if the count was already 0, `Some(true)` for the last
/// one (then every other owner's last use happened before this returns), else
/// `Some(false)`.
pub(crate) fn release(refs: &AtomicUsize) -> Option<bool> {
    let mut n = refs.load(Relaxed);
    loop {
        if n == 0 {
            return None;
        }
        match refs.compare_exchange_weak(n, n - 1, Release, Relaxed) {
            Ok(_) => break,
            Err(now) => n = now,
        }
    }
    if n > 1 {
        return Some(false);
    }
    fence(Acquire);
    Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_to_the_last_and_refuses_after() {
        let refs = AtomicUsize::new(1);
        assert!(retain(&refs));
        assert_eq!(release(&refs), Some(false));
        assert_eq!(release(&refs), Some(true));
        assert_eq!(release(&refs), None);
        assert!(!retain(&refs));
    }
}
