//! `weft-headers`: writes include/weft.h and include/weft_platform.h (`./dev headers`).
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().expect("the workspace root");
    for (name, text) in weft_headers::generate(&root) {
        let path = root.join("include").join(name);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if old != text {
            std::fs::write(&path, text).expect("include/ is writable");
            println!("wrote include/{name}");
        } else {
            println!("include/{name} is current");
        }
    }
    quote_rules_in_readme(&root);
}

/// README.md quotes docs/rules.md between two markers, so the two cannot disagree.
fn quote_rules_in_readme(root: &Path) {
    const BEGIN: &str = "<!-- rules: from docs/rules.md, by ./dev headers -->\n";
    const END: &str = "<!-- /rules -->";
    let path = root.join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let rules = std::fs::read_to_string(root.join("docs/rules.md")).expect("docs/rules.md");
    let (Some(start), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md lacks the rules markers {BEGIN:?} ... {END:?}");
    };
    let updated = format!("{}{BEGIN}{}{}", &readme[..start], rules, &readme[end..]);
    if updated != readme {
        std::fs::write(&path, updated).expect("README.md is writable");
        println!("wrote the rules into README.md");
    }
}
