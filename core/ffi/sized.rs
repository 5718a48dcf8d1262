//! Caller structs that begin with their own `struct_size`, read the way that survives
//! versions: an older (smaller) struct gives its prefix and defaults fill the rest; a
//! newer (larger) one gives what this runtime knows.
use weft_platform::WEFT_EINVAL;

use crate::ffi::error::{fail, Result};

/// Copies `*ptr` into `defaults` up to the smaller of the two sizes.
///
/// # Safety
/// `ptr` must point to at least `struct_size` readable bytes, `struct_size` being the
/// `u32` it begins with; `T` must be `repr(C)` and begin with that `u32`.
pub(crate) unsafe fn read_sized<T: Copy>(ptr: *const T, mut defaults: T, type_name: &str) -> Result<T> {
    // SAFETY: the caller vouches for the first `u32` (see above).
    let size = unsafe { std::ptr::read_unaligned(ptr as *const u32) } as usize;
    if size < 8 {
        fail!(
            WEFT_EINVAL,
            "{type_name}.struct_size is {size}: set it to sizeof({type_name}) (the _init function does)"
        );
    }
    let len = size.min(std::mem::size_of::<T>());
    // SAFETY: `len` is at most the caller's `struct_size` and at most `size_of::<T>()`;
    // `T` is plain old data (`Copy`, `repr(C)`), so any prefix of bytes is a valid value.
    unsafe { std::ptr::copy_nonoverlapping(ptr as *const u8, &mut defaults as *mut T as *mut u8, len) };
    Ok(defaults)
}
