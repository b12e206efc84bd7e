//! Record building: wraps an enriched event in the audit envelope (seq, time, host).

pub mod text;

use sensor_proto::{AuditRecord, SCHEMA_VERSION, v1::Host};

use crate::enrich::{Enriched, clock::BootClock};

/// Assigns sequence numbers and adds the envelope. Single owner: the pipeline's record stage.
#[derive(Debug)]
pub struct RecordBuilder {
    host: Host,
    clock: BootClock,
    next_seq: u64,
}

impl RecordBuilder {
    pub fn new(host: Host, clock: BootClock) -> Self {
        Self { host, clock, next_seq: 1 }
    }

    /// Builds the next record. `seq` is strictly increasing from 1 with no gaps.
    pub fn build(&mut self, e: Enriched) -> AuditRecord {
        let seq = self.next_seq;
        self.next_seq += 1;
        AuditRecord {
            schema_version: SCHEMA_VERSION,
            seq,
            time: Some(self.clock.wall(e.boot_ns)),
            boot_ns: e.boot_ns,
            host: Some(self.host.clone()),
            process: e.process,
            ancestors: e.ancestors,
            event: Some(e.event),
            integrity: None,
        }
    }

    /// Records built so far.
    pub fn count(&self) -> u64 {
        self.next_seq - 1
    }
}
