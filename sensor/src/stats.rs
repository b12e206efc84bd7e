//! Counters and gauges of a running sensor: written by the sources and the record stage, read by
//! the live view, the metrics endpoint (`metrics.rs`) and the shutdown report. Nothing reads them
//! back into the pipeline, so data still flows one way.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use sensor_common::EventKind;

use crate::{
    enrich::Enricher,
    pipeline::LossReport,
    queue::PriorityReceiver,
    sinks::Sink,
    sources::{ringbuf::Ring, ringfill::RingFill},
};

/// Events between two samples of the gauges while the record stage is busy.
pub const PUBLISH_EVERY: u32 = 256;

/// Counters and gauges shared by the stages.
#[derive(Debug, Default)]
pub struct Stats {
    pub kernel_events: AtomicU64,
    pub kernel_bytes: AtomicU64,
    pub decode_errors: AtomicU64,
    pub records: AtomicU64,
    pub loss_records: AtomicU64,
    pub sink_errors: AtomicU64,
    /// Decoded kernel events, indexed like [`EventKind::ALL`].
    pub events_by_kind: [AtomicU64; EventKind::ALL.len()],
    /// Bytes read from each ring buffer, indexed like [`Ring::ALL`].
    pub ring_bytes: [AtomicU64; Ring::ALL.len()],
    /// Fill level of each ring buffer, read when scraped; `None` when it could not be mapped.
    pub ring_fill: [Option<RingFill>; Ring::ALL.len()],
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
    /// Every process-ring event stamped before this time (boot ns) is in the lineage queue: the
    /// process reader found the ring empty after it. Bulk events wait for it to pass their time
    /// (see `enrich::parking`).
    pub lineage_mark: AtomicU64,
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
    /// From [`Sink::metrics`]: bytes in the sink's spool, records delivered, delivery errors.
    pub spool_bytes: AtomicU64,
    pub delivered: AtomicU64,
    pub delivery_errors: AtomicU64,
    /// From [`Sink::metrics`] of sinks that write to a local disk (`has_disk`): free space,
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

    /// Samples what only the record stage can see: queue depths, the process table, the sinks'
    /// own metrics.
    pub fn publish(&self, rx: &PriorityReceiver, enricher: &Enricher, sinks: &[Box<dyn Sink>]) {
        let (lineage, bulk) = rx.depths();
        self.queue_depth[0].store(lineage as u64, Ordering::Relaxed);
        self.queue_depth[1].store(bulk as u64, Ordering::Relaxed);
        let t = enricher.table_stats();
        self.table_live.store(t.live as u64, Ordering::Relaxed);
        self.table_exited.store(t.exited as u64, Ordering::Relaxed);
        self.table_evicted.store(t.evicted, Ordering::Relaxed);
        for (sink, c) in sinks.iter().zip(&self.sinks) {
            let m = sink.metrics();
            c.spool_bytes.store(m.spool_bytes, Ordering::Relaxed);
            c.delivered.store(m.delivered, Ordering::Relaxed);
            c.delivery_errors.store(m.errors, Ordering::Relaxed);
            if let Some(d) = m.disk {
                c.has_disk.store(true, Ordering::Relaxed);
                c.disk_free.store(d.free_bytes, Ordering::Relaxed);
                c.disk_reserve.store(d.reserve_bytes, Ordering::Relaxed);
                c.disk_suspended.store(u64::from(d.suspended), Ordering::Relaxed);
                c.unwritten.store(d.unwritten, Ordering::Relaxed);
                c.deleted_files.store(d.deleted_files, Ordering::Relaxed);
            }
        }
    }
}
