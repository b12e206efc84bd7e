//! `cargo xtask bench`: the cost of tracing, measured in one run against no tracer, against the
//! floor (empty eBPF programs on the sensor's own tracepoints: what any tracepoint sensor pays)
//! and against auditd (rules for the same activity), plus what each tracer delivered and used.
//!
//! - Storms (exec, tmpfs writes, read-only noise, loopback connects): interleaved rounds, each
//!   round runs every workload under every tracer in a rotating order; median ns/op and the
//!   ratio to no tracer. Each run is its own tracer session, so CPU seconds (from
//!   `/proc/PID/stat`) and delivered records are the workload's alone.
//! - A mixed load paced at a fixed event rate: delivered vs expected (loss), CPU, sensor RSS.
//! - The pipeline micro-benchmark (criterion): records/s on one core.
//!
//! Writes `results.md` and `overhead.svg` to `docs/bench/` (or `--out`); numbers are ratios
//! within this run because absolute numbers on a shared VM mean little.

mod auditd;
pub(crate) mod count;
mod floor;
mod micro;
mod report;
mod sensor;
mod svg;
mod tracer;
pub(crate) mod workloads;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::util;
use count::{Delivered, Matcher};
use tracer::{Mode, Session};
use workloads::{MixedResult, Storm};

/// Options of a bench run.
#[derive(Debug, Clone)]
pub struct BenchOpts {
    pub rounds: u32,
    /// Length of each storm run.
    pub round_secs: f64,
    /// Length of the fixed-rate mixed load, per tracer.
    pub mixed_secs: f64,
    /// Events per second of the mixed load.
    pub mixed_rate: u64,
    /// Skip auditd (compare with no tracer and the floor only).
    pub no_auditd: bool,
    /// Skip the floor (empty programs on the sensor's tracepoints).
    pub no_floor: bool,
    /// Also run the sensor with detection turned off, to measure what the rules cost.
    pub compare_rules: bool,
    /// Skip the criterion micro-benchmark.
    pub no_micro: bool,
    /// A smoke test: one short round, short mixed load, quick criterion run.
    pub quick: bool,
    /// Keep each session's records and logs in target/bench-tmp (for inspection).
    pub keep_tmp: bool,
    /// Where results.md and overhead.svg go (default `docs/bench`, `target/bench-quick` with
    /// `--quick`).
    pub out: Option<PathBuf>,
}

/// Measurements of one workload under one tracer, over the rounds.
#[derive(Debug, Default, Clone)]
pub struct Cell {
    pub ns_per_op: Vec<f64>,
    pub ops: u64,
    pub cpu_secs: f64,
    pub delivered: u64,
    pub loss_reported: u64,
}

#[derive(Debug, Clone)]
pub struct MixedRun {
    pub mode: Mode,
    pub load: MixedResult,
    pub delivered: Option<Delivered>,
    pub cpu_secs: f64,
    /// Sensor RSS once a second (KiB).
    pub rss_kib: Vec<u64>,
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Results {
    pub modes: Vec<Mode>,
    pub rounds: u32,
    pub round_secs: f64,
    pub mixed_secs: f64,
    pub mixed_rate: u64,
    /// By storm, then by index in `modes`.
    pub storms: Vec<(Storm, Vec<Cell>)>,
    pub mixed: Vec<MixedRun>,
    pub micro: Option<micro::Micro>,
    pub sensor_start_rss_kib: Vec<u64>,
    /// Of it, the eBPF ring buffers mapped into the sensor.
    pub sensor_start_map_rss_kib: Vec<u64>,
    pub sensor_peak_rss_kib: u64,
    pub load_attach_ms: Vec<u64>,
    pub startup_ms: Vec<u64>,
    /// SIGINT to exit of every sensor run.
    pub stop_ms: Vec<u64>,
    /// The tracepoints the sensor attached (and the floor too).
    pub hooks: Vec<String>,
    pub load_before: String,
    pub load_after: String,
}

pub fn bench(ws: &Path, opts: &BenchOpts) -> anyhow::Result<()> {
    if !util::is_root() {
        bail!("the benchmarks load eBPF programs and run auditd: run as root");
    }
    let (rounds, round, mixed_secs) = if opts.quick {
        (1, Duration::from_secs(1), Duration::from_secs(3))
    } else {
        (
            opts.rounds.max(1),
            Duration::from_secs_f64(opts.round_secs),
            Duration::from_secs_f64(opts.mixed_secs),
        )
    };
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| if opts.quick { ws.join("target/bench-quick") } else { ws.join("docs/bench") });
    util::run(util::cargo(ws).args(["build", "--release", "--package", "sensor"]))?;
    if !opts.no_micro {
        micro::build(ws)?;
    }
    let bin = ws.join("target/release/sensor");
    let tmp = ws.join("target/bench-tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    // The sensor says which tracepoints it attaches: the floor goes on exactly those.
    let hooks = probe_hooks(&bin, &tmp.join("probe"))?;
    eprintln!("xtask bench: the sensor attaches {} tracepoints", hooks.len());
    let mut modes = vec![Mode::None];
    if !opts.no_floor {
        modes.push(Mode::Floor);
    }
    if !opts.no_auditd {
        auditd::prepare()?;
        modes.push(Mode::Auditd);
    }
    modes.push(Mode::Sensor);
    if opts.compare_rules {
        modes.push(Mode::SensorNoRules);
    }

    let mut res = Results {
        modes: modes.clone(),
        rounds,
        round_secs: round.as_secs_f64(),
        mixed_secs: mixed_secs.as_secs_f64(),
        mixed_rate: opts.mixed_rate,
        load_before: loadavg(),
        hooks: hooks.iter().map(floor::Hook::label).collect(),
        ..Results::default()
    };

    // 1. Storms, interleaved: every round runs each workload under every tracer, the order of
    // tracers rotating so none always runs first.
    res.storms = Storm::ALL.iter().map(|s| (*s, vec![Cell::default(); modes.len()])).collect();
    for r in 0..rounds {
        for (si, storm) in Storm::ALL.into_iter().enumerate() {
            for k in 0..modes.len() {
                let mi = (k + r as usize + si) % modes.len();
                let mode = modes[mi];
                let dir = tmp.join(format!("r{r}-{}-{}", storm.short(), mi));
                eprintln!("xtask bench: round {}/{rounds}: {} with {}", r + 1, storm.name(), mode.name());
                let session = Session::start(mode, &bin, &dir, &hooks)?;
                let run = workloads::on_new_task(|| storm.run(round))?;
                let end = session.finish(&bin, Matcher::Storm(storm))?;
                let cell = &mut res.storms[si].1[mi];
                cell.ns_per_op.push(run.ns_per_op);
                cell.ops += run.ops;
                cell.cpu_secs += end.cpu_secs;
                if let Some(d) = end.delivered {
                    cell.delivered += d.matched;
                    cell.loss_reported += d.loss_reported;
                }
                note_sensor(&mut res, &end);
                if !opts.keep_tmp {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
    }

    // 2. The mixed load at a fixed rate, under each tracer (the floor delivers nothing).
    for (mi, mode) in modes.iter().copied().enumerate().filter(|(_, m)| *m != Mode::Floor) {
        let dir = tmp.join(format!("mixed-{mi}"));
        eprintln!(
            "xtask bench: mixed load, {} events/s for {:.0} s, with {}",
            opts.mixed_rate,
            mixed_secs.as_secs_f64(),
            mode.name()
        );
        let session = Session::start(mode, &bin, &dir, &hooks)?;
        let mut rss = Vec::new();
        let load = workloads::on_new_task(|| {
            workloads::mixed(opts.mixed_rate, mixed_secs, || rss.extend(session.sensor_rss_kib()))
        })?;
        rss.extend(session.sensor_rss_kib());
        let end = session.finish(&bin, Matcher::Mixed)?;
        workloads::cleanup_mixed();
        note_sensor(&mut res, &end);
        res.mixed.push(MixedRun {
            mode,
            load,
            delivered: end.delivered,
            cpu_secs: end.cpu_secs,
            rss_kib: rss,
        });
        if !opts.keep_tmp {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    res.load_after = loadavg();

    // 3. The pipeline on one core.
    if !opts.no_micro {
        eprintln!("xtask bench: pipeline micro-benchmark (criterion)");
        res.micro = Some(micro::run(ws, opts.quick)?);
    }

    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let md = report::markdown(&res, &machine());
    let md_path = out_dir.join("results.md");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let svg_path = out_dir.join("overhead.svg");
    std::fs::write(&svg_path, svg::chart(&res)).with_context(|| format!("writing {}", svg_path.display()))?;
    print!("{md}");
    eprintln!("xtask bench: written to {} and {}", md_path.display(), svg_path.display());
    if !opts.keep_tmp {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

fn note_sensor(res: &mut Results, end: &tracer::SessionEnd) {
    res.sensor_start_rss_kib.extend(end.start_rss_kib);
    res.sensor_start_map_rss_kib.extend(end.start_map_rss_kib);
    res.sensor_peak_rss_kib = res.sensor_peak_rss_kib.max(end.peak_rss_kib.unwrap_or(0));
    res.load_attach_ms.extend(end.load_attach_ms);
    res.startup_ms.extend(end.startup_ms);
    res.stop_ms.extend(end.stop_ms);
}

/// Starts the sensor once and reads from its log the tracepoints its loader attached.
fn probe_hooks(bin: &Path, dir: &Path) -> anyhow::Result<Vec<floor::Hook>> {
    let s = sensor::Sensor::start(bin, dir, true)?;
    let hooks = floor::from_sensor_log(&s.log_text());
    s.stop()?;
    let _ = std::fs::remove_dir_all(dir);
    if hooks.is_empty() {
        bail!("the sensor's log names no attached tracepoint (debug lines of sensor::loader)");
    }
    Ok(hooks)
}

/// Median of the values (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The machine description printed with the results.
pub(crate) fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let kernel = read("/proc/sys/kernel/osrelease");
    let model = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_owned))
        .unwrap_or_default();
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |kib| kib as f64 / f64::from(1 << 20));
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
        .unwrap_or_default();
    let auditd =
        util::output(std::process::Command::new("dpkg-query").args(["-W", "-f", "${Version}", "auditd"]))
            .map(|v| format!(", auditd {v}"))
            .unwrap_or_default();
    format!("{cpus} vCPU ({model}), {mem_gib:.0} GiB, Linux {}, {os}{auditd}", kernel.trim())
}
