//! Caller structs that begin with their own `struct_size`, read the way that survives
//! versions: an older (smaller) struct gives its prefix and defaults fill the rest; a
//! newer (larger) one gives what this runtime knows.
use weft_platform::WEFT_EINVAL;

use crate::ffi::error::{fail, Result};

/// The most a struct may have grown in a newer header than this library's.
const MAX_GROWTH: usize = 4096;

/// Copies `*ptr` into `defaults` up to the smaller of the two sizes. A larger struct
/// (from a newer header) is accepted only if every byte this library does not know is
/// zero: a newer caller that sets an option this library lacks is told so.
///
/// # Safety
/// `ptr` must point to at least `struct_size` readable bytes, `struct_size` being the
/// `u32` it begins with; `T` must be `repr(C)` and begin with that `u32`.
pub(crate) unsafe fn read_sized<T: Copy>(ptr: *const T, mut defaults: T, type_name: &str) -> Result<T> {
    // SAFETY: the caller vouches for the first `u32` (see above).
    let size = unsafe { std::ptr::read_unaligned(ptr as *const u32) } as usize;
    let known = std::mem::size_of::<T>();
    // No version of these structs (each 8-aligned: they hold pointers) has a size that
    // is not a multiple of 8, and none will grow by kilobytes: such a size is an
    // uninitialised struct, whose prefix could cut a pointer in half and whose
    // "newer" bytes would be read far past its end.
    if size < 8 || !size.is_multiple_of(8) || size > known + MAX_GROWTH {
        fail!(
            WEFT_EINVAL,
            "{type_name}.struct_size is {size}: set it to sizeof({type_name}) (the _init function does)"
        );
    }
    if size > known {
        // SAFETY: the caller's struct is `size` bytes long (see above).
        let newer = unsafe { std::slice::from_raw_parts((ptr as *const u8).add(known), size - known) };
        if let Some(at) = newer.iter().position(|b| *b != 0) {
            fail!(
                WEFT_EINVAL,
                "{type_name}.struct_size is {size}, this library knows {known} bytes, and byte {} is set: \
                 the caller was built against a newer weft.h and asks for something this library lacks",
                known + at
            );
        }
    }
    let len = size.min(known);
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
    fn a_newer_struct_passes_only_with_its_unknown_bytes_zero() {
        #[repr(C)]
        struct Newer {
            old: Opts,
            extra: u64,
        }
        let mut newer = Newer { old: Opts { struct_size: 24, a: 5, b: 6 }, extra: 0 };
        // SAFETY: `newer` is readable for its struct_size.
        let read = unsafe { read_sized(&newer as *const Newer as *const Opts, DEFAULTS, "opts_t") }.unwrap();
        assert_eq!((read.a, read.b), (5, 6));
        newer.extra = 1;
        // SAFETY: as above.
        let e = unsafe { read_sized(&newer as *const Newer as *const Opts, DEFAULTS, "opts_t") }.unwrap_err();
        assert!(e.detail.contains("byte 16 is set"), "{}", e.detail);
    }

    #[test]
    fn a_missing_size_is_refused_by_name() {
        let zero = Opts { struct_size: 0, a: 0, b: 0 };
        // SAFETY: as above.
        let e = unsafe { read_sized(&zero, DEFAULTS, "opts_t") }.unwrap_err();
        assert!(e.detail.contains("opts_t.struct_size is 0"), "{}", e.detail);
    }
}
