//! Splits cbindgen's output into items (a declaration with its doc comment) and names
//! each one, so that the header can be laid out by section.

/// One declaration of the generated C, with the comment lines before it.
#[derive(Debug, Clone)]
pub struct Item {
    pub name: String,
    pub is_function: bool,
    pub text: String,
}

/// The items of a body generated with no guard, no includes and no C++ wrapper: blocks
/// separated by blank lines.
pub fn split(body: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut block = String::new();
    for line in body.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !block.trim().is_empty() {
                items.push(name_item(std::mem::take(&mut block)));
            }
            block.clear();
        } else {
            block.push_str(line);
            block.push('\n');
        }
    }
    items
}

fn name_item(text: String) -> Item {
    let decl = text
        .lines()
        .find(|l| !l.trim_start().starts_with("//"))
        .unwrap_or_else(|| panic!("a block with no declaration:\n{text}"));
    let (name, is_function) = declared_name(decl).unwrap_or_else(|| panic!("cannot name the declaration {decl:?}"));
    Item { name, is_function, text }
}

fn ident_at(s: &str) -> String {
    s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

/// The name a line of C declares, and whether it is a function.
fn declared_name(decl: &str) -> Option<(String, bool)> {
    if let Some(rest) = decl.strip_prefix("#define ") {
        return Some((ident_at(rest), false));
    }
    if let Some(rest) = decl.strip_prefix("typedef ") {
        if let Some(at) = rest.find("(*") {
            return Some((ident_at(&rest[at + 2..]), false));
        }
        if let Some(rest) = rest.strip_prefix("struct ").or_else(|| rest.strip_prefix("enum ")) {
            return Some((ident_at(rest), false));
        }
        let last = rest.trim_end_matches(';').split_whitespace().last()?;
        return Some((ident_at(last), false));
    }
    if let Some(rest) = decl.strip_prefix("extern ").filter(|r| !r.contains('(')) {
        // A variable: `extern TYPE NAME;`.
        let last = rest.trim_end_matches(';').split_whitespace().last()?;
        return Some((ident_at(last.trim_start_matches('*')), false));
    }
    let open = decl.find('(')?;
    let before = decl[..open].trim_end();
    let start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
    Some((before[start..].to_string(), true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_kind_of_declaration() {
        let body = "// A.\n#define WEFT_A 1\n\ntypedef struct weft_x_t weft_x_t;\n\n\
                    typedef struct weft_y_t {\n  int a;\n} weft_y_t;\n\n\
                    typedef int32_t (*weft_f)(void *ud);\n\ntypedef uint32_t weft_key_t;\n\n\
                    // Doc.\nconst char *weft_strerror(weft_status_t code);\n";
        let names: Vec<_> = split(body).into_iter().map(|i| (i.name, i.is_function)).collect();
        assert_eq!(
            names,
            [
                ("WEFT_A".into(), false),
                ("weft_x_t".into(), false),
                ("weft_y_t".into(), false),
                ("weft_f".into(), false),
                ("weft_key_t".into(), false),
                ("weft_strerror".into(), true)
            ]
        );
    }
}
