//! The weft platform-plugin ABI.
//!
//! A platform plugin is a shared object exporting one function,
//! [`weft_platform_entry`](abi::weft_platform_entry_fn), that returns a static
//! [`weft_platform_t`] table. The runtime (libweft) loads it, checks the table and calls
//! through it for everything that can block or schedule. This crate holds the `repr(C)`
//! definitions (from which cbindgen generates `include/weft_platform.h`) and a few helpers
//! for plugins written in Rust.
#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod abi;
pub mod clock;
pub mod errno;
pub mod fence;
pub mod fork_lock;
pub mod guard;
pub mod once;
pub mod os_thread;
pub mod parking;
pub mod readiness;
pub mod status;
pub mod stderr;
pub mod tls_slot;

pub use abi::*;
pub use guard::HostRef;
pub use status::*;
