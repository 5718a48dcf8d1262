//! Generates the two public headers from the sources:
//! * `include/weft.h`, the host API, from core/ (and the shared items of
//!   platform/src/status.rs), laid out in the sections of `sections.rs`, with the rules
//!   of `docs/rules.md` in its preamble;
//! * `include/weft_platform.h`, the plugin ABI, from platform/src/abi.rs, with the
//!   entry prototype, its export macro and the host-table member test.
//!
//! cbindgen writes the declarations and their doc comments; this crate places them.
//! `./dev headers` writes include/; the `drift` test fails when the committed headers
//! differ from a fresh generation, so cbindgen is in no library build.
use std::fs;
use std::path::Path;

pub mod items;
pub mod sections;

use items::Item;
use sections::{section_of, SECTIONS};

/// The generated headers: (file name in include/, text).
pub fn generate(root: &Path) -> Vec<(&'static str, String)> {
    vec![("weft.h", weft_h(root)), ("weft_platform.h", weft_platform_h(root))]
}

/// The version of the workspace, from its Cargo.toml.
fn version(root: &Path) -> (String, [u32; 3]) {
    let manifest = fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let line = manifest
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find(|l| l.trim_start().starts_with("version"))
        .expect("[workspace.package] version");
    let text = line.split('"').nth(1).expect("a quoted version").to_string();
    let mut parts = text.split('.').map(|p| p.parse::<u32>().expect("a numeric version"));
    let numbers = [parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap()];
    (text, numbers)
}

fn config(exclude: Vec<String>, include: Vec<String>) -> cbindgen::Config {
    let mut config = cbindgen::Config {
        language: cbindgen::Language::C,
        no_includes: true,
        style: cbindgen::Style::Both,
        documentation: true,
        documentation_style: cbindgen::DocumentationStyle::C99,
        usize_is_size_t: true,
        ..Default::default()
    };
    config.function.args = cbindgen::Layout::Horizontal;
    config.parse.parse_deps = false;
    config.export.exclude = exclude;
    config.export.include = include;
    config
}

fn body(builder: cbindgen::Builder, config: cbindgen::Config) -> String {
    let bindings = builder.with_config(config).generate().expect("cbindgen could not generate a header");
    let mut text = Vec::new();
    bindings.write(&mut text);
    String::from_utf8(text).expect("UTF-8")
}

/// The names a Rust source file declares `pub` at the start of a line (consts, types,
/// structs), so each header can leave out what the other one defines.
fn public_names(file: &Path) -> Vec<String> {
    let text = fs::read_to_string(file).expect("a source file");
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

/// `docs/rules.md` as the lines of a C block comment (markdown emphasis dropped).
fn rules_comment(root: &Path) -> String {
    let rules = fs::read_to_string(root.join("docs/rules.md")).expect("docs/rules.md");
    rules
        .lines()
        .map(|l| {
            let plain = l.replace("**", "").replace('`', "");
            let plain = plain.strip_prefix("- ").map_or_else(|| plain.clone(), |p| format!("- {p}"));
            format!(" * {plain}").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn banner(title: &str, lead: &str) -> String {
    let rule = "/* ".to_string() + &"=".repeat(84) + " */";
    let mut text = format!("{rule}\n/* {title:<84} */\n{rule}\n\n");
    for line in lead.lines() {
        text.push_str(&format!("// {line}\n"));
    }
    text
}

fn weft_h(root: &Path) -> String {
    let abi_only = public_names(&root.join("platform/src/abi.rs"));
    let mut exclude = abi_only;
    // core/plugin/loader.rs declares glibc's secure_getenv itself (the libc crate
    // lacks it); it is not part of weft's API.
    exclude.push("secure_getenv".into());
    let generated = body(
        cbindgen::Builder::new().with_crate(root).with_src(root.join("platform/src/status.rs")),
        config(exclude, Vec::new()),
    );
    let mut placed: Vec<Vec<Item>> = SECTIONS.iter().map(|_| Vec::new()).collect();
    let mut homeless = Vec::new();
    for item in items::split(&generated) {
        match section_of(&item.name) {
            Some(section) => placed[section].push(item),
            None => homeless.push(item.name),
        }
    }
    assert!(
        homeless.is_empty(),
        "no section of weft.h holds {homeless:?}: place them in tools/headers/src/sections.rs"
    );
    let (version, [major, minor, patch]) = version(root);
    let mut out = format!(
        "/*\n * weft.h: the public API of libweft, a concurrency runtime for C and C++ hosts.\n *\n \
         * Generated from core/ by tools/headers (./dev headers): do not edit.\n *\n \
         * Rules that hold for every function below:\n{}\n */\n\n#ifndef WEFT_H\n#define WEFT_H\n\n\
         #include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n\n\
         #define WEFT_VERSION_MAJOR {major}\n#define WEFT_VERSION_MINOR {minor}\n#define WEFT_VERSION_PATCH {patch}\n\
         #define WEFT_VERSION_STRING \"{version}\"\n\
         // MAJOR * 1000000 + MINOR * 1000 + PATCH, for #if; weft_version_number() returns the\n\
         // library's own.\n#define WEFT_VERSION_NUMBER {number}\n\n\
         // The casts in weft.h's macros: static_cast in C++, so that hosts built with\n\
         // -Wold-style-cast stay quiet.\n#ifdef __cplusplus\n#define WEFT_CAST_(type, value) (static_cast<type>(value))\n\
         #else\n#define WEFT_CAST_(type, value) ((type)(value))\n#endif\n\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n",
        rules_comment(root),
        number = major * 1_000_000 + minor * 1_000 + patch
    );
    for (section, items) in SECTIONS.iter().zip(placed) {
        out.push('\n');
        out.push_str(&banner(section.title, section.lead));
        if !section.extra.is_empty() {
            out.push('\n');
            out.push_str(section.extra);
        }
        // Types and constants before functions, each in source order.
        let (functions, declarations): (Vec<Item>, Vec<Item>) = items.into_iter().partition(|i| i.is_function);
        for item in declarations.iter().chain(&functions) {
            out.push('\n');
            out.push_str(&item.text);
        }
        if !section.after.is_empty() {
            out.push('\n');
            out.push_str(section.after);
        }
    }
    out.push_str("\n#ifdef __cplusplus\n}  // extern \"C\"\n#endif\n\n#endif  /* WEFT_H */\n");
    out
}

/// Where the table's members of each ABI version begin: (first member, version).
const VERSION_MARKERS: &[(&str, u32)] = &[("runtime_open", 1), ("fd_wait", 2)];

/// Puts a "ABI version N and later" line before the doc comment of table member
/// `member` (SQLite's sqlite3_vfs does the same).
fn mark_version(text: &str, member: &str, abi: u32) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let at = lines
        .iter()
        .position(|l| {
            l.starts_with("  ")
                && (l.trim_end().ends_with(&format!(" {member};")) || l.contains(&format!("(*{member})(")))
        })
        .unwrap_or_else(|| panic!("table member {member}"));
    let mut first = at;
    while first > 0 && lines[first - 1].trim_start().starts_with("//") && lines[first - 1].starts_with("  ") {
        first -= 1;
    }
    lines.insert(first, format!("\n  /* ---- ABI version {abi} and later ---- */"));
    lines.join("\n") + "\n"
}

fn weft_platform_h(root: &Path) -> String {
    let shared = public_names(&root.join("platform/src/status.rs"));
    let roots = ["weft_platform_t", "weft_host_t", "weft_platform_entry_fn"].map(String::from).to_vec();
    let mut generated = body(cbindgen::Builder::new().with_crate(root.join("platform")), config(shared, roots));
    // The magic reads as what it is: "WEFTPLAT" in ASCII, little-endian.
    let magic = generated
        .lines()
        .find_map(|l| l.strip_prefix("#define WEFT_PLATFORM_MAGIC "))
        .expect("WEFT_PLATFORM_MAGIC")
        .to_string();
    let value: u64 = magic.trim().trim_end_matches("ull").trim_end_matches("ULL").parse().expect("a decimal magic");
    generated = generated.replace(
        &format!("#define WEFT_PLATFORM_MAGIC {magic}"),
        &format!("#define WEFT_PLATFORM_MAGIC UINT64_C(0x{value:016x})"),
    );
    for (member, abi) in VERSION_MARKERS {
        generated = mark_version(&generated, member, *abi);
    }
    format!(
        "/*\n * weft_platform.h: the ABI between libweft and a platform plugin.\n *\n \
         * Generated from platform/src/abi.rs by tools/headers (./dev headers): do not edit.\n *\n \
         * A plugin is a shared object that exports one function, weft_platform_entry\n \
         * (declared at the end), returning a static weft_platform_t. docs/plugins.md has\n \
         * the rules, what changed in each ABI version, and a worked example\n \
         * (plugins/pthread, in C).\n */\n\n#ifndef WEFT_PLATFORM_H\n#define WEFT_PLATFORM_H\n\n\
         #include \"weft.h\"\n\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n{generated}\n\
         // Marks the entry function for export from the plugin's shared object.\n\
         #if defined(__GNUC__) || defined(__clang__)\n\
         #define WEFT_PLATFORM_EXPORT __attribute__((visibility(\"default\")))\n\
         #else\n#define WEFT_PLATFORM_EXPORT\n#endif\n\n\
         // True when the host-services table `host` has member `member` (a field added by\n\
         // a later host ABI version is present only if the runtime is that new).\n\
         #define WEFT_HOST_HAS(host, member) \\\n\
         \x20 ((host)->struct_size >= offsetof(weft_host_t, member) + sizeof((host)->member) && \\\n\
         \x20  (host)->member != NULL)\n\n\
         // The one function a plugin exports, by the symbol name `weft_platform_entry`:\n\
         // receives the runtime's host services (static, valid for the life of the process)\n\
         // and returns the plugin's static table, or NULL if it cannot work with this host.\n\
         WEFT_PLATFORM_EXPORT const weft_platform_t *weft_platform_entry(const weft_host_t *host);\n\n\
         #ifdef __cplusplus\n}}  // extern \"C\"\n#endif\n\n#endif  /* WEFT_PLATFORM_H */\n"
    )
}
