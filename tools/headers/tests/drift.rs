//! The committed headers are exactly what the sources generate (run `./dev headers` and
//! commit include/ when this fails).
use std::path::Path;

#[test]
fn committed_headers_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for (name, generated) in weft_headers::generate(&root) {
        let committed = std::fs::read_to_string(root.join("include").join(name)).unwrap_or_default();
        assert!(generated == committed, "include/{name} differs from what the sources generate: run ./dev headers");
    }
}

#[test]
fn the_readme_states_the_rules_of_the_header() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rules = std::fs::read_to_string(root.join("docs/rules.md")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains(rules.trim()), "README.md must quote docs/rules.md verbatim: run ./dev headers");
}
