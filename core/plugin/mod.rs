//! The way down to the platform plugin: finding, loading and checking it (`loader`), and
//! calling the members of its table (`plat_call!`). Knows nothing of the runtime above
//! it: the host-services table the plugin calls back is handed in by the caller.
pub(crate) mod dirs;
mod elf;
pub(crate) mod loader;

/// Calls a member of an accepted table. The loader refuses a table with a NULL member
/// of its version, so the member is present; the caller vouches for the arguments
/// (live plugin objects of this table, pointers valid for the call).
macro_rules! plat_call {
    ($table:expr, $member:ident($($arg:expr),* $(,)?)) => {{
        let member = $table.$member;
        debug_assert!(member.is_some(), concat!("unchecked table member ", stringify!($member)));
        #[allow(unused_unsafe)]
        // SAFETY: checked non-NULL by the loader; the arguments are the caller's to vouch for.
        unsafe { (member.unwrap_unchecked())($($arg),*) }
    }};
}
pub(crate) use plat_call;
