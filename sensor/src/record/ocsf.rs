//! OCSF mapping of audit records (`format = "ocsf"`).

use sensor_proto::AuditRecord;

/// The OCSF event for a record.
pub fn map(record: &AuditRecord) -> serde_json::Value {
    // Filled in by the OCSF work; until then records pass through in their canonical form.
    serde_json::to_value(record).unwrap_or(serde_json::Value::Null)
}
