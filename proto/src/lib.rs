//! The audit record schema (`sensor/audit/v1/audit.proto`): prost types and canonical JSON.
//!
//! Canonical JSON is the proto3 JSON mapping with the proto's own snake_case field names,
//! default values included (a uid of 0 is shown, not omitted), 64-bit integers as strings and
//! `bytes` as base64, as the mapping specifies.

/// Version 1 of the audit record.
#[allow(missing_debug_implementations, clippy::all, reason = "generated code")]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/sensor.audit.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/sensor.audit.v1.serde.rs"));
}

include!(concat!(env!("OUT_DIR"), "/record_kinds.rs"));

pub use pbjson_types::Timestamp;
pub use v1::AuditRecord;

/// Schema version written in `AuditRecord.schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// The name of a record kind's message (see [`EventName`]).
pub fn name_of<T: EventName>(_: &T) -> &'static str {
    T::NAME
}

/// Canonical JSON of a record, one line, no trailing newline.
pub fn to_json(record: &AuditRecord) -> serde_json::Result<String> {
    serde_json::to_string(record)
}

/// The compiled schema (a `FileDescriptorSet` with comments), for tools that document or
/// reflect on it.
pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
