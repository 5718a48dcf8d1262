//! The committed headers are exactly what build.rs generates from the sources.
//! (Outside CI build.rs refreshes include/ itself; in CI a stale header fails here.)
use std::path::Path;

fn check(name: &str) {
    let generated = Path::new(env!("WEFT_GENERATED_HEADERS")).join(name);
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("include").join(name);
    let generated = std::fs::read_to_string(&generated).unwrap();
    let committed = std::fs::read_to_string(&committed).unwrap_or_default();
    assert!(
        generated == committed,
        "include/{name} differs from what the sources generate: run `cargo build` and commit include/{name}"
    );
}

#[test]
fn weft_h_is_current() {
    check("weft.h");
}

#[test]
fn weft_platform_h_is_current() {
    check("weft_platform.h");
}
