//! Shared by the Rust integration tests: a runtime on the native plugin this workspace
//! built. The tests link libweft statically (as the rlib), so "native" is not found
//! next to the test binary; the plugin is opened by path instead.
#![allow(dead_code)]

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr;

use weft::*;

/// `target/<profile>/libweft_native.so`, next to the `deps/` folder of the test binary.
pub fn native_plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test>");
    let path = profile_dir.join("libweft_native.so");
    assert!(path.is_file(), "{} is missing: run `cargo build --workspace` first", path.display());
    path
}

// Exported by libweft from modules the rlib keeps private: reached by symbol, as C does.
extern "C" {
    fn weft_last_error() -> *const c_char;
    pub fn weft_strerror(code: i32) -> *const c_char;
}

/// The calling thread's `weft_last_error()`.
pub fn last_error() -> String {
    // SAFETY: weft_last_error never returns NULL and the string is valid until the next
    // failing call on this thread.
    unsafe { CStr::from_ptr(weft_last_error()) }.to_string_lossy().into_owned()
}

/// A runtime handle that can be shared with other threads (the runtime is thread-safe).
#[derive(Clone, Copy)]
pub struct Rt(pub *mut weft_runtime_t);
// SAFETY: every weft call on a runtime may be made from any thread.
unsafe impl Send for Rt {}
unsafe impl Sync for Rt {}

/// Opens a runtime on the native plugin.
pub fn open() -> Rt {
    let path = CString::new(native_plugin().into_os_string().into_encoded_bytes()).unwrap();
    let cfg = weft_config_t { platform: path.as_ptr(), ..weft_config_t::default() };
    let mut rt = ptr::null_mut();
    // SAFETY: valid config and out pointer; the path outlives the call.
    let status = unsafe { weft_runtime_open(&cfg, &mut rt) };
    assert_eq!(status, WEFT_OK, "weft_runtime_open: {}", last_error());
    Rt(rt)
}

/// Closes a runtime; panics if it cannot.
pub fn close(rt: Rt) {
    // SAFETY: a runtime from `open`.
    let status = unsafe { weft_runtime_close(rt.0) };
    assert_eq!(status, WEFT_OK, "weft_runtime_close: {}", last_error());
}

/// A `*mut c_void` that may cross threads (test data shared on purpose).
#[derive(Clone, Copy)]
pub struct SendPtr(pub *mut c_void);
// SAFETY: used only for data the tests synchronise themselves.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
