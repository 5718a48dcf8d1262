//! libweft: the runtime. Argument checks, errors, the panic boundary, plugin loading,
//! tasks and their registry, host-memory sync objects, channels and select, blobs,
//! safepoints and stop-the-world.
//! Everything that blocks or schedules is the loaded platform plugin's.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // every exported function documents its contract in weft.h

mod callback;
mod context;
mod error;
mod fork;
mod host;
mod internal_lock;
mod keys;
mod loader;
mod plugin_dirs;
mod sized;
mod stack;
mod sync_object;

pub mod blob;
pub mod chan;
pub mod cond;
pub mod mutex;
pub mod runtime;
pub mod rwlock;
pub mod safepoint;
pub mod select;
pub mod task;

pub use stack::{WEFT_DEFAULT_STACK_SIZE, WEFT_MIN_STACK_SIZE};
pub use weft_platform::status::*;
