//! The one way every pointer the host hands in is checked.
//!
//! Every kind of handle (runtimes, tasks, channels, blobs) and of object in host memory
//! (mutexes, conditions, rwlocks) begins with a 32-bit tag. A kind says, once, which tags
//! mean "live" and "released", what the messages call it, and how its memory is owned;
//! [`check`] and [`probe`] do the rest. The ownership decides what a stale pointer can
//! be told from:
//! * [`Lifetime::Immortal`] and [`Lifetime::Shell`]: weft never gives the memory back to
//!   the allocator (a runtime's shell after close; recycled shells for tasks, channels
//!   and blobs), so a pointer to a released handle always reads a tag: it is refused
//!   until its shell is reused by a new handle of the same kind.
//! * [`Lifetime::HostMemory`]: the host owns the memory; init writes the live tag and
//!   destroy overwrites it, so a destroyed object is refused while the host leaves the
//!   memory alone.
//!
//! Anything else (a pointer to unrelated memory) is refused as far as reading its first
//! four bytes can tell; a pointer to unmapped memory cannot be checked by anyone.
use std::sync::atomic::{AtomicU32, Ordering::Acquire};

use weft_platform::WEFT_EINVAL;

use crate::ffi::error::{Error, Result};

/// How the memory behind a kind of handle is owned (see the module comment).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Lifetime {
    /// Allocated by weft, never freed.
    Immortal,
    /// Allocated by weft from a pool of shells that are never freed, only reused.
    Shell,
    /// Owned by the host, which calls an init and a destroy function on it.
    HostMemory,
}

/// A kind of handle. The implementing type is `repr(C)` and begins with the tag.
pub(crate) trait Handle: 'static {
    /// What messages call it: "mutex", "channel", ...
    const KIND: &'static str;
    /// Tags of a live handle of this kind (a mutex has two: plain and recursive).
    const LIVE: &'static [u32];
    /// The tag a handle of this kind has once released or destroyed.
    const DEAD: u32;
    /// How the rest of a message reads for a dead handle: "was destroyed", ...
    const DEAD_REASON: &'static str;
    const LIFETIME: Lifetime;
    /// For host-memory objects, the function that initialises one ("weft_mutex_init").
    const INIT_FN: &'static str = "";

    fn tag(&self) -> &AtomicU32;
}

/// The handle behind `ptr` if it carries a live tag, else None. Loads only, cannot
/// fail in any other way: for the fast paths, whose slow path then calls [`check`].
#[inline(always)]
pub(crate) fn probe<'a, T: Handle>(ptr: *const T) -> Option<&'a T> {
    // In host memory a misaligned pointer is no `T` (and its atomic tag could not be
    // read). A handle weft made is aligned, and a pointer that is not is garbage, as one
    // to unmapped memory: not looked at on the hot paths.
    if T::LIFETIME == Lifetime::HostMemory && !ptr.is_aligned() {
        return None;
    }
    // SAFETY: a non-NULL pointer from the host addresses a `T` of this kind, or at least
    // four readable bytes (see the module comment); only the atomic tag is read before
    // the tag says it is a `T`.
    let handle = unsafe { ptr.as_ref() }?;
    T::LIVE.contains(&handle.tag().load(Acquire)).then_some(handle)
}

/// The handle behind `ptr`, or an error that says what is wrong with it.
#[inline]
pub(crate) fn check<'a, T: Handle>(ptr: *const T) -> Result<&'a T> {
    match probe(ptr) {
        Some(handle) => Ok(handle),
        None => Err(refusal(ptr)),
    }
}

/// Why [`probe`] refused `ptr`.
#[cold]
#[inline(never)]
pub(crate) fn refusal<T: Handle>(ptr: *const T) -> Error {
    let kind = T::KIND;
    if !ptr.is_aligned() {
        return Error::new(
            WEFT_EINVAL,
            format!(
                "{ptr:p} is not a weft {kind}: it is not aligned to {} bytes, as every weft {kind} is",
                std::mem::align_of::<T>()
            ),
        );
    }
    // SAFETY: as in `probe`.
    let Some(handle) = (unsafe { ptr.as_ref() }) else {
        return Error::new(WEFT_EINVAL, format!("{kind} is NULL"));
    };
    let tag = handle.tag().load(Acquire);
    let detail = if tag == T::DEAD {
        format!("{kind} {ptr:p} {}", T::DEAD_REASON)
    } else if T::LIVE.contains(&tag) {
        // Released and reused between the two looks.
        format!("{kind} {ptr:p} {} (during the call)", T::DEAD_REASON)
    } else if T::LIFETIME == Lifetime::HostMemory {
        format!("{kind} {ptr:p} is not initialised (call {} first)", T::INIT_FN)
    } else {
        format!("{ptr:p} is not a weft {kind}")
    };
    Error::new(WEFT_EINVAL, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    struct Thing {
        tag: AtomicU32,
    }

    impl Handle for Thing {
        const KIND: &'static str = "thing";
        const LIVE: &'static [u32] = &[7, 8];
        const DEAD: u32 = 9;
        const DEAD_REASON: &'static str = "was thrown away";
        const LIFETIME: Lifetime = Lifetime::HostMemory;
        const INIT_FN: &'static str = "weft_thing_init";
        fn tag(&self) -> &AtomicU32 {
            &self.tag
        }
    }

    fn message(t: *const Thing) -> String {
        check(t).err().map(|e| e.detail).unwrap_or_default()
    }

    #[test]
    fn live_tags_pass_and_everything_else_is_named() {
        let live = Thing { tag: AtomicU32::new(8) };
        assert!(check(&live as *const Thing).is_ok());
        assert!(probe(&live as *const Thing).is_some());
        assert_eq!(message(std::ptr::null()), "thing is NULL");
        let dead = Thing { tag: AtomicU32::new(9) };
        assert!(message(&dead).ends_with("was thrown away"), "{}", message(&dead));
        let raw = Thing { tag: AtomicU32::new(0) };
        assert!(message(&raw).contains("is not initialised (call weft_thing_init first)"));
        assert_eq!(check(&raw as *const Thing).err().unwrap().code, WEFT_EINVAL);
        let misaligned = (&live as *const Thing as usize + 1) as *const Thing;
        assert!(probe(misaligned).is_none());
        assert!(
            message(misaligned).contains("is not a weft thing: it is not aligned to 4 bytes, as every weft thing is"),
            "{}",
            message(misaligned)
        );
    }
}
