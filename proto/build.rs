//! Compiles the audit schema with protox (pure Rust, no system `protoc`), then generates prost
//! types and pbjson serde impls (canonical proto3 JSON with the proto's snake_case names).
use std::{env, path::PathBuf};

use anyhow::Context as _;
use prost::Message as _;

fn main() -> anyhow::Result<()> {
    let proto = "sensor/audit/v1/audit.proto";
    println!("cargo:rerun-if-changed={proto}");
    let out = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);

    let fds = protox::compile([proto], ["."]).context("compiling the audit schema")?;
    let descriptor_path = out.join("descriptor.bin");
    std::fs::write(&descriptor_path, fds.encode_to_vec()).context("writing descriptor set")?;

    std::fs::write(out.join("record_kinds.rs"), record_kinds(&fds)?).context("writing record_kinds.rs")?;

    // BTreeMap for map fields: deterministic encoding, so a decoded record re-encodes to the same
    // bytes (the hash chain is over record bytes).
    // The process part is boxed: a record moves through several stages and is recycled (see
    // `recordbuild`), and moving the ~450-byte part by value at each step was a visible share of
    // the pipeline's copying.
    prost_build::Config::new()
        .btree_map(["."])
        .boxed(".sensor.audit.v1.AuditRecord.process")
        .file_descriptor_set_path(&descriptor_path)
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .skip_protoc_run()
        .compile_fds(fds)
        .context("generating prost types")?;

    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor_path)?)?
        .preserve_proto_field_names()
        .btree_map(["."])
        .emit_fields()
        .build(&[".sensor"])
        .context("generating serde impls")?;

    Ok(())
}

/// The variants of `AuditRecord`'s `oneof event`, in field-number order, as
/// (prost's variant name, message type, field name).
fn event_variants(fds: &prost_types::FileDescriptorSet) -> anyhow::Result<Vec<(String, String, String)>> {
    let record = fds
        .file
        .iter()
        .flat_map(|f| &f.message_type)
        .find(|m| m.name() == "AuditRecord")
        .context("the schema has no AuditRecord message")?;
    let oneof = record
        .oneof_decl
        .iter()
        .position(|o| o.name() == "event")
        .context("AuditRecord has no `oneof event`")?;
    let mut fields: Vec<_> = record
        .field
        .iter()
        .filter(|f| f.oneof_index.and_then(|i| usize::try_from(i).ok()) == Some(oneof))
        .collect();
    fields.sort_by_key(|f| f.number());
    fields
        .into_iter()
        .map(|f| {
            let ty = f.type_name().rsplit('.').next().unwrap_or_default().to_owned();
            anyhow::ensure!(!ty.is_empty(), "oneof event field {} is not a message", f.name());
            Ok((upper_camel(f.name()), ty, f.name().to_owned()))
        })
        .collect()
}

/// prost's variant name for a snake_case field name (`memfd_create` → `MemfdCreate`).
fn upper_camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Generated from the schema, so that a new record kind is declared once (in the proto): the
/// `match_event!` and `for_each_event!` macros and the `EventName` impls.
fn record_kinds(fds: &prost_types::FileDescriptorSet) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let variants = event_variants(fds)?;
    let mut arms = String::new();
    let mut list = String::new();
    let mut names = String::new();
    for (variant, ty, name) in &variants {
        writeln!(arms, "            $crate::v1::audit_record::Event::{variant}($x) => $body,")?;
        writeln!(list, "            {variant}({ty}) {name},")?;
        writeln!(names, "impl EventName for v1::{ty} {{\n    const NAME: &'static str = \"{name}\";\n}}")?;
    }
    Ok(format!(
        r#"/// Evaluates `$body` with `$x` bound to the message of whichever variant of the record's
/// `oneof event` `$event` (an `&Event`) is: one arm per variant, generated from the schema, so
/// `$body` must compile for every record kind (typically a trait method each kind implements).
#[macro_export]
macro_rules! match_event {{
    ($event:expr, $x:ident => $body:expr) => {{
        match $event {{
{arms}        }}
    }};
}}

/// Calls the macro `$callback` with every variant of the record's `oneof event`, in field-number
/// order, as `Variant(MessageType) field_name,` — e.g. to declare one module per record kind.
#[macro_export]
macro_rules! for_each_event {{
    ($callback:ident) => {{
        $callback! {{
{list}        }}
    }};
}}

/// The field name of a record kind in the `oneof event` (`"memfd_create"`): the record kind's
/// name in JSON, syslog MSGIDs, the OCSF `unmapped` key and file names.
pub trait EventName {{
    /// The field name.
    const NAME: &'static str;
}}

{names}"#
    ))
}
