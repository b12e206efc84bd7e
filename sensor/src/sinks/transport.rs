//! The network side of a sink: what the durable spool (`spool/`) drives, in two parts.
//!
//! - An [`Encoder`] renders each record into its wire payload (a syslog line, a Kafka key and
//!   value). It runs on the record thread and holds no network client.
//! - A [`Transport`] delivers payloads. It lives on the spool's sender thread and is built once
//!   per output, so an output has one connection (one librdkafka client for Kafka).
//!
//! Between the two, the spool keeps payloads in order (memory, then disk when the remote is down
//! or slow). Delivery is at-least-once: after an error the spool re-sends from the first payload
//! not acknowledged, so a receiver may see a `seq` twice and de-duplicates by it.

use sensor_proto::AuditRecord;

use super::SinkError;

/// One rendered record waiting for delivery. The payload is opaque to the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// Renders records into the payloads a transport sends (runs on the record thread).
pub trait Encoder: Send + 'static {
    /// Renders a record; `encoded` is its protobuf encoding.
    fn encode(&self, record: &AuditRecord, encoded: &[u8]) -> Result<Vec<u8>, SinkError>;
}

/// A remote destination (runs on the spool's sender thread).
pub trait Transport: Send + 'static {
    /// Short name for logs and metrics, e.g. `syslog+tls://siem:6514`.
    fn name(&self) -> &str;
    /// Delivers the payloads in order and returns once the remote has accepted all of them.
    /// On error, any prefix may have arrived; the caller re-sends the whole batch later
    /// (after reconnecting), which is why receivers de-duplicate by seq.
    fn deliver(&mut self, batch: &[Outgoing]) -> Result<(), SinkError>;
}

/// Transports built by this thread so far (tests check that an output builds one).
#[cfg(test)]
pub(crate) fn built() -> usize {
    BUILT.with(std::cell::Cell::get)
}

#[cfg(test)]
thread_local! {
    static BUILT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Called by every transport's constructor (counts in tests, nothing otherwise).
pub(crate) fn count_built() {
    #[cfg(test)]
    BUILT.with(|n| n.set(n.get() + 1));
}
