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

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Opts {
        struct_size: u32,
        a: u32,
        b: u64,
    }

    const DEFAULTS: Opts = Opts { struct_size: 16, a: 1, b: 2 };

    #[test]
    fn an_older_smaller_struct_keeps_the_newer_defaults() {
        let old = Opts { struct_size: 8, a: 9, b: 99 };
        // SAFETY: `old` is readable for its whole size, more than its struct_size.
        let read = unsafe { read_sized(&old, DEFAULTS, "opts_t") }.unwrap();
        assert_eq!(read, Opts { struct_size: 8, a: 9, b: 2 });
    }

    #[test]
    fn a_missing_size_is_refused_by_name() {
        let zero = Opts { struct_size: 0, a: 0, b: 0 };
        // SAFETY: as above.
        let e = unsafe { read_sized(&zero, DEFAULTS, "opts_t") }.unwrap_err();
        assert!(e.detail.contains("opts_t.struct_size is 0"), "{}", e.detail);
    }
}
