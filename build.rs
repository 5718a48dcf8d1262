//! Generates the two public headers with cbindgen:
//! * `include/weft.h` — the host API, from core/ plus the shared items of platform/;
//! * `include/weft_platform.h` — the plugin ABI, from platform/, including weft.h.
//!
//! Both are written to OUT_DIR, where `tests/headers.rs` compares them with the
//! committed copies in include/. Outside CI the committed copies are refreshed too, so
//! a developer only has to commit them; in CI (`CI` set) include/ is left alone and a
//! stale header fails the test.
use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    for watched in ["core", "platform/src", "cbindgen", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CI");

    let shared = public_names(&root.join("platform/src/status.rs"));
    let abi_only = public_names(&root.join("platform/src/abi.rs"));

    let mut host = cbindgen::Config::from_file(root.join("cbindgen/weft.toml")).expect("cbindgen/weft.toml");
    host.after_includes = Some(version_macros() + host.after_includes.as_deref().unwrap_or(""));
    host.export.exclude.extend(abi_only);
    let host_header =
        generate(cbindgen::Builder::new().with_crate(&root).with_src(root.join("platform/src/status.rs")), host);

    let mut plugin =
        cbindgen::Config::from_file(root.join("cbindgen/weft_platform.toml")).expect("cbindgen/weft_platform.toml");
    plugin.export.exclude.extend(shared);
    let plugin_header = generate(cbindgen::Builder::new().with_crate(root.join("platform")), plugin);

    let generated = [("weft.h", host_header), ("weft_platform.h", plugin_header)];
    for (name, text) in &generated {
        fs::write(out.join(name), text).unwrap();
        let committed = root.join("include").join(name);
        let stale = fs::read_to_string(&committed).map_or(true, |old| &old != text);
        if stale && env::var_os("CI").is_none() {
            fs::create_dir_all(committed.parent().unwrap()).unwrap();
            fs::write(&committed, text).unwrap();
        }
    }
    println!("cargo:rustc-env=WEFT_GENERATED_HEADERS={}", out.display());
    soname();
}

/// libweft.so carries the SONAME `libweft.so.MAJOR`, so a program records the ABI it
/// was linked against; `cmake --install` installs `libweft.so.MAJOR.MINOR.PATCH` with
/// the `libweft.so.MAJOR` and `libweft.so` links (the policy: docs/versioning.md).
fn soname() {
    let major = env::var("CARGO_PKG_VERSION_MAJOR").unwrap();
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libweft.so.{major}");
}

fn generate(builder: cbindgen::Builder, config: cbindgen::Config) -> String {
    let bindings = builder.with_config(config).generate().expect("cbindgen could not generate a header");
    let mut text = Vec::new();
    bindings.write(&mut text);
    String::from_utf8(text).unwrap()
}

fn version_macros() -> String {
    let part = |name: &str| env::var(name).unwrap();
    format!(
        "\n#define WEFT_VERSION_MAJOR {}\n#define WEFT_VERSION_MINOR {}\n#define WEFT_VERSION_PATCH {}\n#define WEFT_VERSION_STRING \"{}\"\n",
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
        part("CARGO_PKG_VERSION"),
    ) + &version_number_macro()
}

/// `WEFT_VERSION_NUMBER`: MAJOR * 1000000 + MINOR * 1000 + PATCH, for `#if` tests (the
/// same number as `weft_version_number()` returns).
fn version_number_macro() -> String {
    let part = |name: &str| env::var(name).unwrap().parse::<u64>().unwrap();
    let number = part("CARGO_PKG_VERSION_MAJOR") * 1_000_000
        + part("CARGO_PKG_VERSION_MINOR") * 1_000
        + part("CARGO_PKG_VERSION_PATCH");
    format!(
        "/* MAJOR * 1000000 + MINOR * 1000 + PATCH, for #if; weft_version_number() returns the\n   library's own. */\n#define WEFT_VERSION_NUMBER {number}\n"
    )
}

/// The names a Rust source file declares `pub` at the start of a line (consts, types,
/// structs), so each header can leave out what the other one defines.
fn public_names(file: &Path) -> Vec<String> {
    let text = fs::read_to_string(file).unwrap();
    text.lines()
        .filter_map(|line| {
            let rest = line
                .strip_prefix("pub const ")
                .or_else(|| line.strip_prefix("pub type "))
                .or_else(|| line.strip_prefix("pub struct "))?;
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}
