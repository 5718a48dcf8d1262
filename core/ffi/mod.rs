//! The machinery of the C boundary, shared by every exported function: the error model
//! and the panic guard, the handle checks, the shell pools, and versioned structs.
pub(crate) mod callback;
pub(crate) mod error;
pub(crate) mod handle;
pub(crate) mod refs;
pub(crate) mod shell;
pub(crate) mod sized;
