//! The network side of a sink: what the durable spool (`spool.rs`) drives.
//!
//! A network sink is a [`Transport`] wrapped in the spool: the pipeline thread renders each
//! record into its wire payload, the spool keeps payloads in order (memory, then disk when the
//! remote is down or slow) and a sender thread delivers them. Delivery is at-least-once: after an
//! error the spool re-sends from the first payload not acknowledged, so a receiver may see a
//! `seq` twice and de-duplicates by it.

use sensor_proto::AuditRecord;

use super::SinkError;

/// One rendered record waiting for delivery. The payload is opaque to the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// A remote destination.
pub trait Transport: Send + 'static {
    /// Short name for logs and metrics, e.g. `syslog+tls://siem:6514`.
    fn name(&self) -> &str;
    /// Renders a record into the payload this transport sends (runs on the pipeline thread).
    fn render(&self, record: &AuditRecord, encoded: &[u8]) -> Result<Vec<u8>, SinkError>;
    /// Delivers the payloads in order and returns once the remote has accepted all of them.
    /// On error, any prefix may have arrived; the caller re-sends the whole batch later
    /// (after reconnecting), which is why receivers de-duplicate by seq.
    fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), SinkError>;
}
