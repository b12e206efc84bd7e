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

    // BTreeMap for map fields: deterministic encoding, so a decoded record re-encodes to the same
    // bytes (the hash chain is over record bytes).
    prost_build::Config::new()
        .btree_map(["."])
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
