//! What the runtime keeps in the first bytes of every host-memory sync object: a tag
//! saying what the memory holds (so uninitialised and destroyed objects are refused),
//! and the runtime it belongs to. The plugin's bytes follow.
use std::sync::atomic::{AtomicU32, Ordering::Acquire};

use weft_platform::WEFT_EINVAL;

use crate::error::{fail, Result};
use crate::runtime::{any_runtime, weft_runtime_t};

/// The tag of a destroyed object, whatever it was.
pub(crate) const TAG_DESTROYED: u32 = 0xdead_0b1e;

/// Reads the tag of the object at `ptr` and returns the runtime it belongs to.
/// `live` are the tags this kind of object has while initialised.
pub(crate) fn live_object(
    tag: &AtomicU32,
    rt: *const weft_runtime_t,
    live: &[u32],
    kind: &str,
    ptr: *const u8,
    allow_closed: bool,
) -> Result<&'static weft_runtime_t> {
    let found = tag.load(Acquire);
    if found == TAG_DESTROYED {
        fail!(WEFT_EINVAL, "{kind} {ptr:p} was destroyed");
    }
    if !live.contains(&found) {
        fail!(WEFT_EINVAL, "{kind} {ptr:p} is not initialised (call weft_{kind}_init first)");
    }
    let rt = any_runtime(rt)?;
    if !allow_closed && !rt.is_open() {
        fail!(WEFT_EINVAL, "the runtime of {kind} {ptr:p} was closed");
    }
    Ok(rt)
}
