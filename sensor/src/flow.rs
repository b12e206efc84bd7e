//! What flows between the stages, at the bottom of the module graph: every stage may use these
//! types, and this module uses no stage.
//!
//! - [`PipelineEvent`]: from the sources (and the lifecycle) through the queues to the record
//!   stage.
//! - [`LossReport`]: events lost before they became records; [`SinkLoss`]: records a sink could
//!   not write. Both become loss records.
//! - [`LineageMark`]: how far the process ring has been read, from the process reader to the
//!   record stage (the one value that travels beside the queues rather than in them).
//! - [`Ring`]: the three ring buffers events come from.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use crate::decode::KernelEvent;

/// What flows from the sources to the record stage.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "loss reports are rare; boxing kernel events would allocate per event"
)]
pub enum PipelineEvent {
    Kernel(KernelEvent),
    Loss(LossReport),
    /// A record about the sensor itself (start, heartbeat, a previous run's end): the record
    /// stage gives it the sensor's own process.
    Sensor(Box<sensor_proto::v1::audit_record::Event>),
}

/// Events lost before they became records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossReport {
    pub kind: &'static str,
    pub reason: &'static str,
    pub count: u64,
    pub first_boot_ns: u64,
    pub last_boot_ns: u64,
}

/// Records one sink could not write: a run of consecutive `seq`s missing from its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkLoss {
    pub sink: String,
    /// `disk_full` or `io_error`.
    pub reason: &'static str,
    pub count: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_boot_ns: u64,
    pub last_boot_ns: u64,
    /// Hex SHA-256 of the last record the sink wrote before the gap.
    pub prev_hash: String,
}

/// Every process-ring event stamped before this time (boot ns) is in the lineage queue: the
/// process reader found the ring empty after it (`sources::ringbuf` advances it). The record
/// stage reads it before it takes an event and hands it to the enricher, whose parked file and
/// network events wait for it to pass their time (`enrich::parking`). Clones share one value.
#[derive(Debug, Clone, Default)]
pub struct LineageMark(Arc<AtomicU64>);

impl LineageMark {
    /// Moves the mark forward to `boot_ns` (never back).
    pub fn advance(&self, boot_ns: u64) {
        self.0.fetch_max(boot_ns, Ordering::Release);
    }

    /// The mark: every process event stamped before it has been queued.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Every file and network event stamped before this time (boot ns) is in the bulk queue: each
/// bulk reader found its ring empty after it (`sources::ringbuf` advances each reader's part;
/// the mark is the smaller). The record stage reads it, then finds the bulk queue empty, and
/// tells the enricher those events are enriched: exited processes they could name can go
/// (`enrich::process_table`). Clones share one value.
#[derive(Debug, Clone, Default)]
pub struct BulkMark(Arc<[AtomicU64; 2]>);

impl BulkMark {
    /// Moves `ring`'s part forward to `boot_ns` (never back); the process ring has none.
    pub fn advance(&self, ring: Ring, boot_ns: u64) {
        let part = match ring {
            Ring::Proc => return,
            Ring::File => &self.0[0],
            Ring::Net => &self.0[1],
        };
        part.fetch_max(boot_ns, Ordering::Release);
    }

    /// The mark: every bulk event stamped before it has been queued.
    pub fn get(&self) -> u64 {
        self.0.iter().map(|m| m.load(Ordering::Acquire)).min().unwrap_or(0)
    }
}

/// Which ring buffer events come from (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    Proc = 0,
    File = 1,
    Net = 2,
}

impl Ring {
    pub const ALL: [Ring; 3] = [Ring::Proc, Ring::File, Ring::Net];

    pub const fn name(self) -> &'static str {
        match self {
            Ring::Proc => "proc",
            Ring::File => "file",
            Ring::Net => "net",
        }
    }
}
