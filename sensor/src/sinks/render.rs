//! Text renderings of a record shared by the text sinks (jsonl, syslog, kafka).

use sensor_proto::AuditRecord;

use super::spec::Format;

/// Appends the record as one line of JSON (no newline) in the chosen format.
pub fn json(record: &AuditRecord, format: Format, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    match format {
        Format::Json => serde_json::to_writer(out, record),
        Format::Ocsf => serde_json::to_writer(out, &crate::recordbuild::ocsf::map(record)),
    }
}
