//! Counters and gauges of a running sensor: written by the sources and the record stage, read by
//! the live view, the heartbeat, the metrics endpoint (`metrics.rs`) and the shutdown report.
//! Nothing here is read back into the pipeline, so data still flows one way.
//!
//! Stats sit at the bottom of the module graph with `crate::flow`: the stages write plain numbers
//! in (the record stage samples the queue depths, the process table and each sink's
//! [`SinkMetrics`] and stores them with the setters below); this module knows no stage.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use sensor_common::EventKind;

use crate::flow::{LossReport, Ring};

/// Events between two samples of the gauges while the record stage is busy.
pub const PUBLISH_EVERY: u32 = 256;

/// Counters and gauges shared by the stages.
#[derive(Debug, Default)]
pub struct Stats {
    pub kernel_events: AtomicU64,
    /// Events the record stage took from its queues (the service watchdog's sign of progress).
    pub events_taken: AtomicU64,
    pub kernel_bytes: AtomicU64,
    pub decode_errors: AtomicU64,
    pub records: AtomicU64,
    pub loss_records: AtomicU64,
    pub sink_errors: AtomicU64,
    /// Decoded kernel events, indexed like [`EventKind::ALL`].
    pub events_by_kind: [AtomicU64; EventKind::ALL.len()],
    /// Bytes read from each ring buffer, indexed like [`Ring::ALL`].
    pub ring_bytes: [AtomicU64; Ring::ALL.len()],
    /// Events lost (the sum of loss record counts), by (kind, reason).
    pub lost: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Events waiting in the lineage and bulk queues, sampled by the record stage.
    pub queue_depth: [AtomicU64; 2],
    /// Capacity of each queue.
    pub queue_capacity: AtomicU64,
    /// Process table: live entries, exited entries kept for lineage, entries evicted when full.
    pub table_live: AtomicU64,
    pub table_exited: AtomicU64,
    pub table_evicted: AtomicU64,
    /// One entry per sink, in the order the pipeline writes to them.
    pub sinks: Vec<SinkStats>,
    /// Alert records written, by (rule id, level).
    pub alerts: Mutex<BTreeMap<(String, String), u64>>,
    /// Alert records written, in total.
    pub alerts_total: AtomicU64,
    /// One line per recent alert, for the live view (the oldest are dropped past 64).
    pub recent_alerts: Mutex<VecDeque<String>>,
}

/// Alerts kept for the live view until it shows them.
const RECENT_ALERTS: usize = 64;

/// What one sink has done, as seen by the record stage and reported by the sink itself.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub name: String,
    /// Records the sink accepted.
    pub records: AtomicU64,
    /// Writes and flushes that returned an error.
    pub write_errors: AtomicU64,
    /// From the sink's [`SinkMetrics`]: bytes in the sink's spool, records delivered, delivery errors.
    pub spool_bytes: AtomicU64,
    pub delivered: AtomicU64,
    pub delivery_errors: AtomicU64,
    /// From the [`SinkMetrics`] of sinks that write to a local disk (`has_disk`): free space,
    /// reserve, 1 while suspended, records not written, files deleted for space.
    pub has_disk: std::sync::atomic::AtomicBool,
    pub disk_free: AtomicU64,
    pub disk_reserve: AtomicU64,
    pub disk_suspended: AtomicU64,
    pub unwritten: AtomicU64,
    pub deleted_files: AtomicU64,
}

impl Stats {
    /// Counts one item read from `ring`.
    pub fn add_kernel_bytes(&self, ring: Ring, n: usize) {
        self.kernel_events.fetch_add(1, Ordering::Relaxed);
        self.kernel_bytes.fetch_add(n as u64, Ordering::Relaxed);
        self.ring_bytes[ring as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts one decoded kernel event by its kind.
    pub fn add_event(&self, kind: EventKind) {
        if let Some(c) = self.events_by_kind.get(kind.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds a loss report's count to its (kind, reason).
    pub fn add_loss(&self, l: &LossReport) {
        let mut lost = self.lost.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *lost.entry((l.kind, l.reason)).or_default() += l.count;
    }

    /// Counts an alert record and keeps a line for the live view.
    pub fn add_alert(&self, record: &sensor_proto::AuditRecord) {
        let Some(sensor_proto::v1::audit_record::Event::Alert(a)) = &record.event else { return };
        self.alerts_total.fetch_add(1, Ordering::Relaxed);
        let mut alerts = self.alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *alerts.entry((a.rule_id.clone(), a.level.clone())).or_default() += 1;
        drop(alerts);
        let (pid, exe) = record.process.as_ref().map_or((0, ""), |p| (p.pid, p.exe.as_str()));
        let line = format!(
            "ALERT {:<8} {} — pid {pid} {exe} (seq {}; sensor trace --alert {})",
            a.level, a.title, record.seq, record.seq
        );
        let mut recent = self.recent_alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() >= RECENT_ALERTS {
            recent.pop_front();
        }
        recent.push_back(line);
    }

    /// Takes the alert lines not shown yet.
    pub fn take_recent_alerts(&self) -> Vec<String> {
        let mut recent = self.recent_alerts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.drain(..).collect()
    }

    /// Events waiting in the lineage and bulk queues.
    pub fn set_queue_depths(&self, lineage: usize, bulk: usize) {
        self.queue_depth[0].store(lineage as u64, Ordering::Relaxed);
        self.queue_depth[1].store(bulk as u64, Ordering::Relaxed);
    }

    /// Process table entries: live, exited (kept for lineage), evicted in total.
    pub fn set_table(&self, live: usize, exited: usize, evicted: u64) {
        self.table_live.store(live as u64, Ordering::Relaxed);
        self.table_exited.store(exited as u64, Ordering::Relaxed);
        self.table_evicted.store(evicted, Ordering::Relaxed);
    }
}

impl SinkStats {
    /// Stores what the sink reports about itself.
    pub fn set_metrics(&self, m: &SinkMetrics) {
        self.spool_bytes.store(m.spool_bytes, Ordering::Relaxed);
        self.delivered.store(m.delivered, Ordering::Relaxed);
        self.delivery_errors.store(m.errors, Ordering::Relaxed);
        if let Some(d) = m.disk {
            self.has_disk.store(true, Ordering::Relaxed);
            self.disk_free.store(d.free_bytes, Ordering::Relaxed);
            self.disk_reserve.store(d.reserve_bytes, Ordering::Relaxed);
            self.disk_suspended.store(u64::from(d.suspended), Ordering::Relaxed);
            self.unwritten.store(d.unwritten, Ordering::Relaxed);
            self.deleted_files.store(d.deleted_files, Ordering::Relaxed);
        }
    }
}

/// What a sink reports about itself beyond what the pipeline sees (`Sink::metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkMetrics {
    /// Bytes waiting in the sink's spool (memory and disk).
    pub spool_bytes: u64,
    /// Records the destination has acknowledged, in total.
    pub delivered: u64,
    /// Delivery attempts that failed (connection refused, timeouts, …), in total.
    pub errors: u64,
    /// The disk the sink writes to (`file:` and the spools of network sinks).
    pub disk: Option<DiskMetrics>,
}

/// Disk space and the disk-space policy of a sink that writes local files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskMetrics {
    /// Free bytes on the file system at the last check.
    pub free_bytes: u64,
    /// The reserve the sink leaves free.
    pub reserve_bytes: u64,
    /// The sink is not writing (below the reserve, or a write failed).
    pub suspended: bool,
    /// Records not written because of a full disk or an I/O error, in total.
    pub unwritten: u64,
    /// Files deleted to keep the reserve (`on_low_space = "rotate"`), in total.
    pub deleted_files: u64,
}
