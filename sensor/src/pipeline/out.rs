//! The record stage: the single consumer that enriches, numbers, detects and writes (see the
//! module above), and the accounting of what sinks could not write.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use tracing::{error, info, warn};

use super::{PARKED_POLL, SinkReport};
use crate::{
    detect::Detector,
    enrich::{Enriched, Enricher, clock::BootClock},
    flow::{BulkMark, LineageMark, LossReport, PipelineEvent},
    handover::{Handover, WrittenCounter},
    lifecycle::Lifecycle,
    queue,
    recordbuild::RecordBuilder,
    sinks::{self, Sink},
    stats::Stats,
};

/// Alerts that must leave the host at once: tamper evidence (the sensor may be about to die)
/// and critical ones.
fn urgent(record: &sensor_proto::AuditRecord) -> bool {
    matches!(&record.event, Some(sensor_proto::v1::audit_record::Event::Alert(a))
        if a.rule_id.starts_with("sensor.tamper.") || a.level == "critical")
}

/// The end of the record stage: numbering and chaining (builder), detection, and the sinks.
pub(super) struct RecordOut {
    builder: RecordBuilder,
    detector: Detector,
    sinks: Vec<Box<dyn Sink>>,
    /// Some sink reads `record.ancestors` (see [`Sink::reads_ancestors`]).
    fill_ancestors: bool,
    /// Alerts raised by the record being written.
    alerts: Vec<Enriched>,
    /// Write errors per sink.
    errors: Vec<u64>,
    /// Events written, for the next run that adopts pinned programs (see `crate::handover`).
    handover: Option<(Arc<Handover>, WrittenCounter)>,
}

impl RecordOut {
    pub(super) fn new(builder: RecordBuilder, detector: Detector, sinks: Vec<Box<dyn Sink>>) -> Self {
        let fill_ancestors = sinks.iter().any(|s| s.reads_ancestors());
        Self {
            builder,
            detector,
            sinks,
            fill_ancestors,
            alerts: Vec::with_capacity(4),
            errors: Vec::new(),
            handover: None,
        }
    }

    pub(super) fn with_handover(mut self, handover: Arc<Handover>) -> Self {
        self.handover = Some((handover, WrittenCounter::default()));
        self
    }

    /// The stage took a kernel event of `kind` from the queue.
    fn took(&mut self, kind: sensor_common::EventKind) {
        if let Some((_, w)) = &mut self.handover {
            w.took(kind);
        }
    }

    /// Every output has flushed: the events taken are written, but for those still parked.
    fn flushed(&self, enricher: &Enricher) {
        if let Some((h, w)) = &self.handover {
            w.flushed(&enricher.parked_by_kind(), h);
        }
    }

    /// Builds, evaluates and writes one record, then the alerts it raised, then a checkpoint
    /// when one is due.
    fn emit(&mut self, e: Enriched, stats: &Stats) {
        let mut record = self.builder.build(e);
        self.detector.evaluate_shared(&record.record, &record.ancestry, &mut self.alerts);
        self.write(&mut record, stats);
        self.builder.recycle(record);
        let mut alerts = std::mem::take(&mut self.alerts);
        for a in alerts.drain(..) {
            let mut sealed = self.builder.build(a);
            stats.add_alert(&sealed.record);
            self.write(&mut sealed, stats);
            if urgent(&sealed.record) {
                for i in 0..self.sinks.len() {
                    let res = self.sinks[i].urgent(&sealed.record, &sealed.bytes);
                    self.count_error(i, res, stats);
                }
            }
            self.builder.recycle(sealed);
        }
        self.alerts = alerts;
        if self.builder.checkpoint_due() {
            let mut cp = self.builder.checkpoint(false);
            self.write(&mut cp, stats);
            self.builder.recycle(cp);
        }
    }

    /// The final checkpoint: a chain that ends without one was cut short.
    fn finish(&mut self, stats: &Stats) {
        let mut cp = self.builder.checkpoint(true);
        self.write(&mut cp, stats);
        self.flush(stats);
    }

    /// Writes `rec` to every sink, with its ancestors put into the struct first when a sink
    /// reads them there.
    fn write(&mut self, rec: &mut crate::recordbuild::Sealed, stats: &Stats) {
        if self.fill_ancestors {
            rec.fill_ancestors();
        }
        stats.records.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.sinks.len() {
            let res = self.sinks[i].write(&rec.record, &rec.bytes);
            if res.is_ok()
                && let Some(c) = stats.sinks.get(i)
            {
                c.records.fetch_add(1, Ordering::Relaxed);
            }
            self.count_error(i, res, stats);
        }
    }

    fn flush(&mut self, stats: &Stats) {
        for i in 0..self.sinks.len() {
            let res = self.sinks[i].flush();
            self.count_error(i, res, stats);
        }
    }

    fn count_error(&mut self, i: usize, res: Result<(), sinks::SinkError>, stats: &Stats) {
        let Err(e) = res else { return };
        if self.errors.len() < self.sinks.len() {
            self.errors.resize(self.sinks.len(), 0);
        }
        self.errors[i] += 1;
        stats.sink_errors.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = stats.sinks.get(i) {
            c.write_errors.fetch_add(1, Ordering::Relaxed);
        }
        // Log the first error and then every 1000th, so a dead sink cannot flood logs.
        let n = self.errors[i];
        if n == 1 || n.is_multiple_of(1000) {
            error!(sink = self.sinks[i].name(), error = %e, errors = n, "sink write failed");
        }
    }

    fn reports(&self) -> Vec<SinkReport> {
        self.sinks
            .iter()
            .enumerate()
            .map(|(i, s)| SinkReport {
                name: s.name().to_owned(),
                errors: self.errors.get(i).copied().unwrap_or(0),
            })
            .collect()
    }
}

/// What the record stage owns: its end of the queues, the enricher, the lineage mark it reads,
/// and the end of the stage (builder, detector, sinks).
pub(super) struct Stage {
    pub(super) rx: queue::PriorityReceiver,
    pub(super) enricher: Enricher,
    pub(super) lineage_mark: LineageMark,
    pub(super) bulk_mark: BulkMark,
    pub(super) out: RecordOut,
}

/// The single consumer: enrich, number, detect, write. Flushes whenever it has caught up.
pub(super) fn record_stage(
    stage: &mut Stage,
    rt: &tokio::runtime::Handle,
    initial: Vec<Enriched>,
    stats: &Stats,
    lifecycle: &Lifecycle,
) -> Vec<SinkReport> {
    for e in initial {
        stage.out.emit(e, stats);
    }
    let mut batch = Vec::with_capacity(2);
    let mut since_publish = 0u32;
    let mut shrunk_at = Instant::now();
    loop {
        since_publish += 1;
        if since_publish >= crate::stats::PUBLISH_EVERY {
            since_publish = 0;
            stage.publish_gauges(stats);
            account_sink_losses(&mut stage.out, stats, false);
            // Now and then, not on every drain (a storm would regrow them each time): releasing
            // a full parking queue fills the batch with thousands of events at once.
            if shrunk_at.elapsed() >= super::memory::TRIM_EVERY {
                shrunk_at = Instant::now();
                crate::capacity::shrink_if_idle(&mut batch, 64);
                stage.enricher.shrink_idle_buffers();
            }
        }
        // Read before taking an event: the process events it covers are queued by now, and the
        // lineage queue is emptied before any bulk event is taken.
        stage.enricher.advance_lineage_mark(stage.lineage_mark.get());
        // The mark first, then the queue: bulk events stamped before it were queued before it
        // was set, so an empty queue means they have all been taken.
        let bulk_mark = stage.bulk_mark.get();
        if stage.rx.bulk_is_empty() {
            stage.enricher.settle_bulk(bulk_mark);
        }
        let ev = match stage.rx.try_next() {
            queue::Polled::Event(ev) => Some(ev),
            queue::Polled::Empty => match stage.caught_up(rt, stats) {
                Waited::Event(ev) => Some(ev),
                Waited::Timeout => None,
                Waited::Closed => break,
            },
            queue::Polled::Closed => break,
        };
        if let Some(ev) = ev {
            stage.take(ev, stats, &mut batch);
        }
        // Only once the lineage queue is empty: the mark read above covers process events that
        // may still be queued behind the one just taken.
        if stage.enricher.parked() > 0 && stage.rx.lineage_is_empty() {
            stage.enricher.release_parked(BootClock::boot_ns_now(), false, &mut batch);
        }
        for e in batch.drain(..) {
            stage.out.emit(e, stats);
        }
        stage.enricher.reuse(stage.out.builder.spares());
    }
    stage.finish(stats, lifecycle)
}

/// What waiting for the next event gave.
#[expect(clippy::large_enum_variant, reason = "returned once per wait, never stored")]
enum Waited {
    Event(PipelineEvent),
    /// Time to release parked events or to probe the disk again.
    Timeout,
    Closed,
}

impl Stage {
    /// Samples what only the record stage can see into `stats`: queue depths, the process
    /// table, each sink's own metrics.
    fn publish_gauges(&self, stats: &Stats) {
        let (lineage, bulk) = self.rx.depths();
        stats.set_queue_depths(lineage, bulk);
        let t = self.enricher.table_stats();
        stats.set_table(t.live, t.exited, t.evicted);
        for (sink, c) in self.out.sinks.iter().zip(&stats.sinks) {
            c.set_metrics(&sink.metrics());
        }
    }

    /// Both queues are empty: write the loss records of the sinks, flush everything, then wait
    /// for the next event (with a timeout while events are parked, an output waits for disk
    /// space or has a sync due).
    fn caught_up(&mut self, rt: &tokio::runtime::Handle, stats: &Stats) -> Waited {
        // Loss records first: flushed with the rest before the stage waits (it may wait long on
        // a quiet machine).
        account_sink_drops(&mut self.out, &mut self.enricher, stats);
        account_sink_losses(&mut self.out, stats, false);
        self.out.flush(stats);
        self.out.flushed(&self.enricher);
        self.publish_gauges(stats);
        let parked = (self.enricher.parked() > 0).then_some(PARKED_POLL);
        let gap = self.out.sinks.iter().any(|s| s.gap_open()).then_some(crate::sinks::space::PROBE_EVERY);
        let due = self.out.sinks.iter().filter_map(|s| s.flush_due()).min();
        let wake = [parked, gap, due].into_iter().flatten().min();
        let next = match wake {
            Some(wake) => match rt.block_on(tokio::time::timeout(wake, self.rx.next())) {
                Ok(next) => next,
                Err(_) => return Waited::Timeout,
            },
            None => rt.block_on(self.rx.next()),
        };
        next.map_or(Waited::Closed, Waited::Event)
    }

    /// Counts an event taken from the queues and enriches it into `batch`.
    fn take(&mut self, ev: PipelineEvent, stats: &Stats, batch: &mut Vec<Enriched>) {
        stats.events_taken.fetch_add(1, Ordering::Relaxed);
        match &ev {
            PipelineEvent::Loss(l) => {
                stats.loss_records.fetch_add(1, Ordering::Relaxed);
                stats.add_loss(l);
            }
            PipelineEvent::Kernel(k) => self.out.took(k.kind()),
            PipelineEvent::Sensor(_) => {}
        }
        self.enricher.enrich(ev, batch);
    }

    /// The queues are closed: parked events go with what is known, the sinks' losses are
    /// written, then `sensor_stop` and the final checkpoint.
    fn finish(&mut self, stats: &Stats, lifecycle: &Lifecycle) -> Vec<SinkReport> {
        let mut batch = Vec::new();
        self.enricher.release_parked(BootClock::boot_ns_now(), true, &mut batch);
        for e in batch.drain(..) {
            self.out.emit(e, stats);
        }
        // Outputs that cannot write: the other outputs learn how much is missing from them.
        account_sink_drops(&mut self.out, &mut self.enricher, stats);
        account_sink_losses(&mut self.out, stats, true);
        let stop = lifecycle.stop_event(self.out.builder.count());
        self.out.emit(self.enricher.sensor_record(BootClock::boot_ns_now(), stop), stats);
        self.out.finish(stats);
        self.out.flushed(&self.enricher);
        self.publish_gauges(stats);
        self.log_at_stop();
        self.out.reports()
    }

    fn log_at_stop(&self) {
        let t = self.enricher.table_stats();
        info!(
            live = t.live,
            exited = t.exited,
            evicted = t.evicted,
            retired = t.retired,
            "process table at stop"
        );
        let d = self.out.detector.stats();
        let memo = self.out.detector.memo_stats();
        info!(
            evaluated = d.evaluated,
            memo_hits = memo.hits,
            memo_misses = memo.misses,
            alerts = d.alerts,
            excepted = d.excepted,
            suppressed = d.suppressed,
            correlation_groups = self.out.detector.correlation_groups(),
            "detection at stop"
        );
        if self.out.builder.count() <= 1 {
            warn!("no records were produced");
        }
    }
}

/// Turns records a sink had to give up (a full spool, a low disk) into loss records, written to
/// every sink.
fn account_sink_drops(out: &mut RecordOut, enricher: &mut Enricher, stats: &Stats) {
    let mut dropped = Vec::new();
    for s in &mut out.sinks {
        dropped.extend(s.take_dropped().into_iter().map(|(reason, n)| (s.name().to_owned(), reason, n)));
    }
    for (output, reason, count) in dropped.into_iter().filter(|d| d.2 > 0) {
        let now = BootClock::boot_ns_now();
        let report = LossReport { kind: "record", reason, count, first_boot_ns: now, last_boot_ns: now };
        stats.add_loss(&report);
        let mut batch = Vec::with_capacity(1);
        enricher.enrich(PipelineEvent::Loss(report), &mut batch);
        for mut e in batch {
            if let sensor_proto::v1::audit_record::Event::Loss(l) = &mut e.event {
                l.output = output.clone();
            }
            stats.loss_records.fetch_add(1, Ordering::Relaxed);
            out.emit(e, stats);
        }
    }
}

/// Records a sink could not write (full disk, I/O error): once it can write again (or at stop),
/// one loss record for the gap goes to every sink, that sink's stream included. One sink at a
/// time, so each such record directly follows its own gap.
fn account_sink_losses(out: &mut RecordOut, stats: &Stats, stopping: bool) {
    for i in 0..out.sinks.len() {
        let Some(loss) = out.sinks.get_mut(i).and_then(|s| s.take_loss(stopping)) else { continue };
        let now = BootClock::boot_ns_now();
        stats.add_loss(&LossReport {
            kind: "sink",
            reason: loss.reason,
            count: loss.count,
            first_boot_ns: loss.first_boot_ns,
            last_boot_ns: loss.last_boot_ns,
        });
        stats.loss_records.fetch_add(1, Ordering::Relaxed);
        out.emit(crate::enrich::sink_loss(now, loss), stats);
    }
}
