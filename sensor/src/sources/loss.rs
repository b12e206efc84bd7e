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
    loader::{ProgramRuns, Runs},
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
    tracing::debug!(programs = programs.len(), "counting the runs the kernel skips");
    let mut skipped = Skipped::new(programs, &handover, start);
    let mut tick = tokio::time::interval(every);
    // Sustained loss is one line per interval per kind and reason, with the sum since the last.
    let mut limits: std::collections::HashMap<(&str, &str), (RateLimited, u64)> = Default::default();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        let mut reports = poll(&map, &mut seen);
        reports.extend(skipped.poll(&handover));
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

/// Runs the kernel skipped because the same program was already running on that CPU (nested, or
/// preempted on kernels that run BPF with preemption enabled) — `recursion_misses`, counted per
/// program from its load since Linux 5.12 and shown in its fdinfo. Adopted (pinned) programs
/// keep counting across runs: what earlier runs reported is in the handover array, per kind.
/// Skipped runs of the raw syscall dispatchers are system calls of any watched kind: loss kind
/// "syscall".
struct Skipped {
    /// Each program and its last count read.
    programs: Vec<(ProgramRuns, u64)>,
    /// Per group (see [`Runs::index`]): the sum over its programs reported so far.
    reported: [u64; Runs::COUNT],
    since_boot_ns: u64,
    log: RateLimited,
}

impl Skipped {
    fn new(programs: Vec<ProgramRuns>, handover: &Handover, start: u64) -> Self {
        Self {
            programs: programs.into_iter().map(|p| (p, 0)).collect(),
            reported: std::array::from_fn(|i| handover.skipped_reported(i)),
            since_boot_ns: start,
            log: RateLimited::default(),
        }
    }

    fn poll(&mut self, handover: &Handover) -> Vec<LossReport> {
        let now = BootClock::boot_ns_now();
        let mut totals = [0u64; Runs::COUNT];
        for (prog, last) in &mut self.programs {
            let path = format!("/proc/self/fdinfo/{}", prog.fd.as_fd().as_raw_fd());
            // Kernels before 5.12 do not count them; a failed read keeps the last count.
            if let Some(misses) = std::fs::read_to_string(&path).ok().and_then(|t| recursion_misses(&t)) {
                if misses > *last
                    && let Some(suppressed) = self.log.allow()
                {
                    warn!(
                        prog = prog.name,
                        skipped = misses - *last,
                        suppressed,
                        "the kernel skipped runs of a program"
                    );
                }
                *last = misses.max(*last);
            }
            totals[prog.kind.index()] += *last;
        }
        let out = new_skips(&totals, &mut self.reported, self.since_boot_ns, now);
        for (i, n) in self.reported.iter().enumerate() {
            handover.set_skipped_reported(i, *n);
        }
        self.since_boot_ns = now;
        out
    }
}

/// Loss reports for what `totals` (per group) adds to `reported`, which then holds `totals`.
fn new_skips(
    totals: &[u64; Runs::COUNT],
    reported: &mut [u64; Runs::COUNT],
    since_boot_ns: u64,
    now: u64,
) -> Vec<LossReport> {
    let mut out = Vec::new();
    for (i, (total, seen)) in totals.iter().zip(reported.iter_mut()).enumerate() {
        if *total > *seen {
            out.push(LossReport {
                kind: Runs::at(i).name(),
                reason: "kernel_skipped",
                count: total - *seen,
                first_boot_ns: since_boot_ns,
                last_boot_ns: now,
            });
        }
        // A count below what was reported: programs not readable now, or counts from pins a
        // run of an older layout left. Never report the same runs twice.
        *seen = (*seen).max(*total);
    }
    out
}

/// The `recursion_misses:` value of a BPF program's fdinfo.
pub fn recursion_misses(fdinfo: &str) -> Option<u64> {
    fdinfo.lines().find_map(|l| l.strip_prefix("recursion_misses:")).and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use sensor_common::EventKind;

    use super::{Runs, new_skips, recursion_misses};

    #[test]
    fn skipped_runs_are_reported_once_across_runs() {
        let file = EventKind::File.index();
        let mut totals = [0u64; Runs::COUNT];
        // An adopting run starts from what the last run reported (here 5 of the programs' 7).
        let mut reported = [0u64; Runs::COUNT];
        reported[file] = 5;
        totals[file] = 7;
        let r = new_skips(&totals, &mut reported, 10, 20);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].kind, r[0].reason, r[0].count), ("file", "kernel_skipped", 2));
        assert_eq!((r[0].first_boot_ns, r[0].last_boot_ns), (10, 20));
        assert!(new_skips(&totals, &mut reported, 20, 30).is_empty(), "nothing new");
        // A lower total (a program unreadable) reports nothing and forgets nothing.
        totals[file] = 6;
        assert!(new_skips(&totals, &mut reported, 30, 40).is_empty());
        totals[file] = 9;
        assert_eq!(new_skips(&totals, &mut reported, 40, 50)[0].count, 2);
    }

    #[test]
    fn dispatcher_skips_are_syscall_losses() {
        let mut totals = [0u64; Runs::COUNT];
        let mut reported = [0u64; Runs::COUNT];
        totals[Runs::Syscalls.index()] = 3;
        let r = new_skips(&totals, &mut reported, 1, 2);
        assert_eq!((r.len(), r[0].kind, r[0].reason, r[0].count), (1, "syscall", "kernel_skipped", 3));
        assert_eq!(Runs::at(EventKind::File.index()), Runs::Kind(EventKind::File));
        assert_eq!(Runs::at(Runs::Syscalls.index()), Runs::Syscalls);
    }

    #[test]
    fn reads_recursion_misses_from_fdinfo() {
        let t = "pos:\t0\nflags:\t02000002\nprog_type:\t5\nrun_cnt:\t0\nrecursion_misses:\t17\nverified_insns:\t9\n";
        assert_eq!(recursion_misses(t), Some(17));
        assert_eq!(recursion_misses("prog_type:\t5\n"), None);
    }
}
