//! The README's rule and field tables are generated from the code: these tests fail when they are
//! out of date. Regenerate with `UPDATE_README=1 cargo test -p sensor readme`.

use std::path::Path;

use super::{RuleKind, Sources, fields, list, load};

/// The built-in rules as a Markdown table: id, level, log source, ATT&CK techniques, title.
fn rules_table() -> String {
    let set = load::load(&Sources { builtin: true, ..Sources::default() });
    let mut s = String::from("| id | level | log source | ATT&CK | title |\n|---|---|---|---|---|\n");
    for m in list(&set) {
        let source = match &m.kind {
            RuleKind::Detection { category: Some(c) } => c.name().to_owned(),
            RuleKind::Detection { category: None } => "any".to_owned(),
            RuleKind::Correlation { correlation_type, group_by, window_secs, .. } => {
                format!("{correlation_type} by {} in {window_secs}s", group_by.join(", "))
            }
        };
        s.push_str(&format!(
            "| `{}` | {} | {source} | {} | {} |\n",
            m.id,
            m.level,
            m.techniques.join(" "),
            m.title
        ));
    }
    s
}

/// Replaces what lies between `<!-- NAME…-->` and `<!-- /NAME -->` (or checks it).
fn sync(name: &str, body: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&path).expect("README");
    let open = format!("<!-- {name}");
    let close = format!("<!-- /{name} -->");
    let start =
        text.find(&open).and_then(|i| text[i..].find("-->").map(|j| i + j + 3)).expect("opening marker");
    let end = text.find(&close).expect("closing marker");
    let want = format!("\n{body}");
    if text[start..end] == want {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        let new = format!("{}{want}{}", &text[..start], &text[end..]);
        std::fs::write(&path, new).expect("write README");
    } else {
        panic!("README.md section `{name}` is out of date: run UPDATE_README=1 cargo test -p sensor readme");
    }
}

#[test]
fn readme_rules_table_matches_the_builtin_rules() {
    sync("rules-table", &rules_table());
}

#[test]
fn readme_fields_table_matches_the_field_mapping() {
    sync("fields-table", &fields::markdown_table());
}
