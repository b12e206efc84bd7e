//! Polls the kernel's per-CPU loss counters, and the kernel's count of skipped runs of each
//! program, and turns increases into loss reports.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    sync::Arc,
    time::Duration,
};

use aya::maps::{MapData, PerCpuArray};
use sensor_common::{EventKind, LossCounter};
use tokio::sync::{mpsc, watch};
use tracing::{error, warn};

use crate::{
    enrich::clock::BootClock,
    flow::{LossReport, PipelineEvent},
    handover::Handover,
    loader::ProgramRuns,
    ratelimit::RateLimited,
};

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    counts: LossCounter,
    at_boot_ns: u64,
}

/// What earlier runs of the same (pinned) programs already reported (see `crate::handover`).
fn baseline(handover: &Handover, start: u64) -> [Seen; EventKind::ALL.len()] {
    std::array::from_fn(|i| {
        let (counts, last) = handover.reported(i);
        // Losses found at the first poll happened since the last run's last poll.
        Seen { counts, at_boot_ns: if last != 0 { last } else { start } }
    })
}

/// Records what has been reported (see [`baseline`]).
fn save(handover: &Handover, seen: &[Seen]) {
    for (i, s) in seen.iter().enumerate() {
        handover.set_reported(i, &s.counts, s.at_boot_ns);
    }
}

/// Polls every `every` until `stop`, with a final poll at stop.
pub async fn run(
    map: PerCpuArray<MapData, LossCounter>,
    handover: Arc<Handover>,
    programs: Vec<ProgramRuns>,
    tx: mpsc::Sender<PipelineEvent>,
    mut stop: watch::Receiver<bool>,
    every: Duration,
) -> anyhow::Result<()> {
    let start = BootClock::boot_ns_now();
    let mut seen = baseline(&handover, start);
    let mut skipped = Skipped::new(programs, start);
    let mut tick = tokio::time::interval(every);
    // Sustained loss is one line per interval per kind and reason, with the sum since the last.
    let mut limits: std::collections::HashMap<(&str, &str), (RateLimited, u64)> = Default::default();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        let mut reports = poll(&map, &mut seen);
        reports.extend(skipped.poll());
        for report in reports {
            let (limit, unlogged) = limits.entry((report.kind, report.reason)).or_default();
            *unlogged += report.count;
            if limit.allow().is_some() {
                error!(
                    kind = report.kind,
                    reason = report.reason,
                    count = *unlogged,
                    "kernel events lost (each accounted for by a loss record)"
                );
                *unlogged = 0;
            }
            if tx.send(PipelineEvent::Loss(report)).await.is_err() {
                return Ok(());
            }
        }
        save(&handover, &seen);
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

/// Runs the kernel skipped because another BPF program was active on the CPU at the time
/// (`recursion_misses`, counted per program since Linux 5.12 and shown in its fdinfo).
struct Skipped {
    programs: Vec<(ProgramRuns, u64)>,
    since_boot_ns: u64,
    log: RateLimited,
}

impl Skipped {
    fn new(programs: Vec<ProgramRuns>, start: u64) -> Self {
        Self {
            programs: programs.into_iter().map(|p| (p, 0)).collect(),
            since_boot_ns: start,
            log: RateLimited::default(),
        }
    }

    fn poll(&mut self) -> Vec<LossReport> {
        let now = BootClock::boot_ns_now();
        let mut by_kind = [0u64; EventKind::ALL.len()];
        for (prog, seen) in &mut self.programs {
            let path = format!("/proc/self/fdinfo/{}", prog.fd.as_fd().as_raw_fd());
            let Some(misses) = std::fs::read_to_string(&path).ok().and_then(|t| recursion_misses(&t)) else {
                continue; // kernels before 5.12 do not count them
            };
            if misses > *seen {
                if let Some(suppressed) = self.log.allow() {
                    warn!(
                        prog = prog.name,
                        skipped = misses - *seen,
                        suppressed,
                        "the kernel skipped runs of a program"
                    );
                }
                if let Some(i) = EventKind::ALL.iter().position(|k| *k == prog.kind) {
                    by_kind[i] += misses - *seen;
                }
                *seen = misses;
            }
        }
        let out = EventKind::ALL
            .iter()
            .zip(by_kind)
            .filter(|(_, n)| *n > 0)
            .map(|(kind, count)| LossReport {
                kind: kind.name(),
                reason: "kernel_skipped",
                count,
                first_boot_ns: self.since_boot_ns,
                last_boot_ns: now,
            })
            .collect();
        self.since_boot_ns = now;
        out
    }
}

/// The `recursion_misses:` value of a BPF program's fdinfo.
fn recursion_misses(fdinfo: &str) -> Option<u64> {
    fdinfo.lines().find_map(|l| l.strip_prefix("recursion_misses:")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::recursion_misses;

    #[test]
    fn reads_recursion_misses_from_fdinfo() {
        let t = "pos:\t0\nflags:\t02000002\nprog_type:\t5\nrun_cnt:\t0\nrecursion_misses:\t17\nverified_insns:\t9\n";
        assert_eq!(recursion_misses(t), Some(17));
        assert_eq!(recursion_misses("prog_type:\t5\n"), None);
    }
}
