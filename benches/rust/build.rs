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
        check_select_case(&text);
        println!("cargo:rustc-cfg=weft_chan");
    }
}

/// src/weft.rs declares `weft_select_case_t` by hand as { chan, op (int32_t), buf }, as
/// in the design appendix; refuse to build against a header whose struct differs.
fn check_select_case(header: &str) {
    let Some(start) = header.find("typedef struct weft_select_case") else {
        panic!("include/weft.h declares weft_select but no `typedef struct weft_select_case...`: update benches/rust/src/weft.rs");
    };
    let body = &header[start..];
    let body = &body[body.find('{').unwrap_or(0) + 1..body.find('}').unwrap_or(0)];
    let code: String = body.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join(" ");
    let fields: Vec<String> =
        code.split(';').map(|f| f.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|f| !f.is_empty()).collect();
    let names: Vec<&str> = fields.iter().map(|f| f.rsplit([' ', '*']).next().unwrap_or("")).collect();
    let op_is_i32 = fields.iter().any(|f| f.starts_with("int32_t") && f.ends_with(" op"));
    if names != ["chan", "op", "buf"] || !op_is_i32 {
        panic!("weft_select_case_t in include/weft.h is {{ {} }}, not {{ chan, int32_t op, buf }}: update benches/rust/src/weft.rs", fields.join("; "));
    }
}
