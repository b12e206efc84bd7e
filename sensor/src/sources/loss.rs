//! Polls the kernel's per-CPU loss counters and turns increases into loss reports.

use std::time::Duration;

use aya::maps::{MapData, PerCpuArray};
use sensor_common::{EventKind, LossCounter};
use tokio::sync::{mpsc, watch};
use tracing::{error, warn};

use crate::{
    enrich::clock::BootClock,
    pipeline::{LossReport, PipelineEvent},
};

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    counts: LossCounter,
    at_boot_ns: u64,
}

/// Polls every `every` until `stop`, with a final poll at stop.
pub async fn run(
    map: PerCpuArray<MapData, LossCounter>,
    tx: mpsc::Sender<PipelineEvent>,
    mut stop: watch::Receiver<bool>,
    every: Duration,
) -> anyhow::Result<()> {
    let start = BootClock::boot_ns_now();
    let mut seen = [Seen { at_boot_ns: start, ..Default::default() }; EventKind::ALL.len()];
    let mut tick = tokio::time::interval(every);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        for report in poll(&map, &mut seen) {
            error!(kind = report.kind, reason = report.reason, count = report.count, "kernel events lost");
            if tx.send(PipelineEvent::Loss(report)).await.is_err() {
                return Ok(());
            }
        }
        if stopping {
            return Ok(());
        }
    }
}

fn poll(map: &PerCpuArray<MapData, LossCounter>, seen: &mut [Seen]) -> Vec<LossReport> {
    let now = BootClock::boot_ns_now();
    let mut out = Vec::new();
    for (i, kind) in EventKind::ALL.iter().enumerate() {
        let values = match map.get(&kind.counter_index(), 0) {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "reading loss counters");
                continue;
            }
        };
        let mut total = LossCounter::default();
        for v in values.iter() {
            total.ringbuf_full += v.ringbuf_full;
            total.read_failed += v.read_failed;
        }
        let prev = seen[i];
        for (reason, now_count, prev_count) in [
            ("ringbuf_full", total.ringbuf_full, prev.counts.ringbuf_full),
            ("read_failed", total.read_failed, prev.counts.read_failed),
        ] {
            if now_count > prev_count {
                out.push(LossReport {
                    kind: kind.name(),
                    reason,
                    count: now_count - prev_count,
                    first_boot_ns: prev.at_boot_ns,
                    last_boot_ns: now,
                });
            }
        }
        seen[i] = Seen { counts: total, at_boot_ns: now };
    }
    out
}
