//! `docs/records.md` is generated from the schema's comments: this test fails when it is out of
//! date. Regenerate with `UPDATE_REFERENCE=1 cargo test -p sensor-proto --test reference`.

use std::fmt::Write as _;

use prost::Message as _;
use prost_types::{
    DescriptorProto, FileDescriptorProto, FileDescriptorSet, SourceCodeInfo,
    field_descriptor_proto::{Label, Type},
};

const HEADER: &str = "\
# Audit record reference

Generated from [`proto/sensor/audit/v1/audit.proto`](../proto/sensor/audit/v1/audit.proto) by
`proto/tests/reference.rs` (the test fails when this page is out of date). Field numbers are
stable: fields are only ever added. Records are protobuf messages (`file:` output, length-delimited)
or canonical proto3 JSON (`jsonl`, syslog, Kafka): snake_case names as below, 64-bit integers as
strings, `bytes` as base64, default values included. `--format ocsf` maps records to OCSF instead
(see [ocsf.md](ocsf.md)).
";

fn comment(info: &SourceCodeInfo, path: &[i32]) -> String {
    info.location
        .iter()
        .find(|l| l.path == path)
        .and_then(|l| l.leading_comments.as_deref())
        .map(|c| c.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn type_name(f: &prost_types::FieldDescriptorProto) -> String {
    let base = match f.r#type() {
        Type::Message | Type::Enum => {
            let n = f.type_name().trim_start_matches('.');
            let short = n.rsplit('.').next().unwrap_or(n);
            if n.starts_with("google.") {
                n.to_owned()
            } else {
                format!("[{short}](#{})", short.to_lowercase())
            }
        }
        t => t.as_str_name().trim_start_matches("TYPE_").to_lowercase(),
    };
    if f.label() == Label::Repeated { format!("repeated {base}") } else { base }
}

fn message(out: &mut String, m: &DescriptorProto, info: &SourceCodeInfo, path: &[i32]) {
    let name = m.name();
    if m.options.as_ref().is_some_and(prost_types::MessageOptions::map_entry) {
        return;
    }
    let _ = writeln!(out, "\n## {name}\n");
    let doc = comment(info, path);
    if !doc.is_empty() {
        let _ = writeln!(out, "{doc}\n");
    }
    let _ = writeln!(out, "| # | field | type | description |\n|---|---|---|---|");
    for (i, f) in m.field.iter().enumerate() {
        let mut fpath = path.to_vec();
        fpath.extend([2, i32::try_from(i).expect("field index")]);
        let mut doc = comment(info, &fpath).replace('|', "\\|");
        if let Some(o) = f.oneof_index {
            let oneof = m.oneof_decl.get(usize::try_from(o).expect("oneof")).map_or("", |d| d.name());
            doc = format!("(one of `{oneof}`) {doc}");
        }
        let ty = match m.nested_type.iter().find(|n| f.type_name().ends_with(&format!(".{}", n.name()))) {
            Some(entry) if entry.options.as_ref().is_some_and(prost_types::MessageOptions::map_entry) => {
                "map<string, string>".to_owned()
            }
            _ => type_name(f),
        };
        assert!(!comment(info, &fpath).is_empty(), "{name}.{} has no comment in the schema", f.name());
        let _ = writeln!(out, "| {} | `{}` | {ty} | {} |", f.number(), f.name(), doc.trim());
    }
}

fn render(file: &FileDescriptorProto) -> String {
    let info = file.source_code_info.clone().unwrap_or_default();
    let mut out = HEADER.to_owned();
    for (i, m) in file.message_type.iter().enumerate() {
        message(&mut out, m, &info, &[4, i32::try_from(i).expect("message index")]);
    }
    out
}

#[test]
fn reference_page_is_current() {
    let set = FileDescriptorSet::decode(sensor_proto::DESCRIPTOR_SET).expect("descriptor set");
    let file = set.file.iter().find(|f| f.name() == "sensor/audit/v1/audit.proto").expect("audit.proto");
    let page = render(file);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/records.md");
    if std::env::var_os("UPDATE_REFERENCE").is_some() {
        std::fs::write(&path, &page).expect("write docs/records.md");
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == page,
        "docs/records.md is out of date: UPDATE_REFERENCE=1 cargo test -p sensor-proto --test reference"
    );
    for m in &file.message_type {
        for f in &m.field {
            assert!(page.contains(&format!("`{}`", f.name())), "{} documented", f.name());
        }
    }
}
