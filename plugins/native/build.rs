//! The plugin's SONAME is its file name: plugins are opened by path, never through the
//! dynamic linker's search, so the name only has to identify the file.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libweft_native.so");
}
