//! libweft: a concurrency runtime for C and C++ hosts. Layers, top to bottom (see
//! docs/architecture.md):
//! * `api`: the C boundary, every exported function: argument checks and conversion;
//! * `runtime`: the logic: tasks, sync objects, channels, blobs, stop-the-world, and the
//!   host services the plugin calls back;
//! * `plugin`: loading and checking a platform plugin, and calling its table;
//! * `ffi` and `types`: the error model and panic guard, handle checks, shells, and the
//!   C types of the public API, used by every layer above.
//!
//! Everything that blocks or schedules is the loaded platform plugin's.
#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![allow(clippy::missing_safety_doc)] // every exported function documents its contract in weft.h

mod api;
mod ffi;
mod plugin;
mod runtime;
pub mod types;

pub use api::*;
pub use types::*;
pub use weft_platform::status::*;
