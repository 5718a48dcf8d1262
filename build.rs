//! One thing only, and no file written: libweft.so carries the SONAME
//! `libweft.so.MAJOR`, so that a program records the ABI it was linked against;
//! `cmake --install` installs `libweft.so.MAJOR.MINOR.PATCH` with the `libweft.so.MAJOR`
//! and `libweft.so` links (the policy: docs/versioning.md). The headers are generated
//! by tools/headers (`./dev headers`), not here.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libweft.so.{major}");
    println!("cargo:rerun-if-changed=build.rs");
}
