//! Links libweft from the root's release build, and turns on the weft channel cases
//! (`cfg(weft_chan)`) only when the header declares the channel API.
use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..").canonicalize().unwrap();
    let lib = root.join("target/release");
    let header = root.join("include/weft.h");
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=weft");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    println!("cargo::rustc-check-cfg=cfg(weft_chan)");
    let text = std::fs::read_to_string(&header).unwrap_or_default();
    if text.contains("weft_chan_new") && text.contains("weft_select") {
        println!("cargo:rustc-cfg=weft_chan");
    }
}
