//! Pipeline micro-benchmark: raw ring-buffer bytes → decode → enrich → record build (envelope,
//! protobuf encoding, hash chain), on one core, in records per second.
//!
//! The input is a realistic stream laid out exactly as the eBPF programs write it: for each
//! short-lived process a fork, an exec (interpreter, script, arguments), a create+write open, a
//! chmod, a rename and an unlink (paths as the kernel walks them), a TCP connect and an exit.
//! Pids and start times change from process to process, so GUIDs, the process table and the
//! ancestry walk do real work; the same batch is replayed every iteration.
//!
//! Time is the CPU time of the benchmark thread, pinned to one core: the result is records per
//! second of one core, also when other work shares the machine.
//!
//! Two functions: without detection, and with the detection stage holding the built-in rules and
//! the public SigmaHQ Linux rules (from `../shared/sigma` beside the repository, when present) —
//! every record evaluated, as in the sensor.
//!
//! Run: `cargo bench -p sensor --bench pipeline` (`cargo xtask bench` runs it and reports it);
//! `PIPELINE_BENCH_BATCHES=N` runs N batches without criterion (for `perf record`), with the
//! detection stage when `PIPELINE_BENCH_DETECT` is set; `PIPELINE_BENCH_INTERLEAVED=ROUNDS`
//! alternates the two functions and prints the with ÷ without ratio per round (the noise of a
//! shared machine moves both rates, not their ratio).

use std::{collections::BTreeMap, hint::black_box, time::Duration};

use criterion::{
    Criterion, Throughput,
    measurement::{Measurement, ValueFormatter, WallTime},
};
use sensor::{
    decode,
    detect::{DetectConfig, Detector, Sources},
    enrich::{EnrichConfig, Enricher, clock::BootClock, host},
    flow::PipelineEvent,
    recordbuild::RecordBuilder,
};

// Not `mod workload;`: from the crate root that would be `benches/workload.rs`, which cargo
// would take for a benchmark of its own.
#[path = "pipeline/workload.rs"]
mod workload;

use workload::batch;

/// Criterion measurement: CPU time of the benchmark thread (`CLOCK_THREAD_CPUTIME_ID`), so the
/// result is records per second of one core even when other work shares the machine (wall
/// time would count the time this thread waited for a CPU).
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the owned timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) } != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds, as with wall time: reuse its formatting.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

/// Pins this thread (and the threads it starts later) to the first CPU it may run on.
fn pin_to_one_core() {
    // SAFETY: plain libc calls on a zeroed, owned cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) != 0 {
            return;
        }
        let Some(cpu) = (0..libc::CPU_SETSIZE as usize).find(|&c| libc::CPU_ISSET(c, &set)) else { return };
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) == 0 {
            eprintln!("pipeline bench: pinned to cpu {cpu}");
        }
    }
}

/// The SigmaHQ Linux rules beside the repository (`../shared/sigma`), when present.
fn sigma_rules() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/sigma");
    ["rules/linux", "rules-threat-hunting/linux"]
        .iter()
        .map(|d| root.join(d))
        .filter(|p| p.is_dir())
        .collect()
}

/// The detection stage as the sensor runs it by default, plus the SigmaHQ Linux rules.
fn detector() -> Detector {
    let cfg = DetectConfig {
        sources: match std::env::var("PIPELINE_BENCH_RULES").as_deref() {
            Ok("builtin") => Sources { builtin: true, paths: Vec::new(), optional_dir: None },
            Ok("sigma") => Sources { builtin: false, paths: sigma_rules(), optional_dir: None },
            Ok(path) if path != "all" => {
                Sources { builtin: false, paths: vec![path.into()], optional_dir: None }
            }
            _ => Sources { builtin: true, paths: sigma_rules(), optional_dir: None },
        },
        ..DetectConfig::default()
    };
    let d = Detector::new(&cfg).expect("rules load");
    eprintln!("pipeline bench: detection with {} rules", d.rule_count());
    d
}

/// The stage under test: decode, enrich and build (encode, chain) every event of the batch, and
/// evaluate every record when there is a detector.
struct Stage {
    enricher: Enricher,
    builder: RecordBuilder,
    out: Vec<sensor::enrich::Enriched>,
    detector: Option<Detector>,
    alerts: Vec<sensor::enrich::Enriched>,
}

impl Stage {
    fn with_detector(detector: Detector) -> Self {
        Self { detector: Some(detector), ..Self::new() }
    }

    fn new() -> Self {
        let clock = BootClock::now();
        let host = host::identify(BTreeMap::from([("site".to_owned(), "north".to_owned())]));
        let mut enricher = Enricher::new(clock, &host.boot_id, EnrichConfig::default());
        // Events are fed in order from one source: every lineage event is already enriched when
        // a bulk event comes, so nothing waits for the process ring's mark.
        enricher.advance_lineage_mark(u64::MAX);
        Self {
            enricher,
            builder: RecordBuilder::new(host, clock, None),
            out: Vec::with_capacity(2),
            detector: None,
            alerts: Vec::new(),
        }
    }

    /// Runs the batch through; returns the records built.
    fn run(&mut self, events: &[Vec<u8>]) -> u64 {
        let mut records = 0;
        for raw in events {
            let Ok(ev) = decode::decode(black_box(raw)) else { continue };
            self.enricher.enrich(PipelineEvent::Kernel(ev), &mut self.out);
            for e in self.out.drain(..) {
                let sealed = self.builder.build(e);
                if let Some(d) = &mut self.detector {
                    d.evaluate_shared(&sealed.record, &sealed.ancestry, &mut self.alerts);
                    for a in self.alerts.drain(..) {
                        let alert = black_box(self.builder.build(a));
                        self.builder.recycle(alert);
                    }
                }
                // As the record stage does once every sink has the record.
                self.builder.recycle(black_box(sealed));
                records += 1;
                if self.builder.checkpoint_due() {
                    let cp = black_box(self.builder.checkpoint(false));
                    self.builder.recycle(cp);
                }
            }
            // As the record stage does after each event's records.
            self.enricher.reuse(self.builder.spares());
        }
        records
    }
}

fn pipeline(c: &mut Criterion<ThreadCpuTime>) {
    let events = batch();
    let mut stage = Stage::new();
    // Every event must decode and give a record (the first shell exec also opens a session).
    let records = stage.run(&events);
    assert!(records >= events.len() as u64, "{records} records from {} events", events.len());

    let mut detecting = Stage::with_detector(detector());
    let with_rules = detecting.run(&events);
    assert_eq!(with_rules, records, "detection adds alerts, not records of the batch");

    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("decode_enrich_record_encode", |b| b.iter(|| stage.run(&events)));
    g.bench_function("decode_enrich_record_encode_detect", |b| b.iter(|| detecting.run(&events)));
    g.finish();
}

/// Batches per stage and round of [`interleaved`] (about 0.15 s of CPU each).
const INTERLEAVED_BATCHES: usize = 30;

/// `PIPELINE_BENCH_INTERLEAVED=ROUNDS`: the two functions of the benchmark in alternation, a
/// round of each after the other, so that the machine's drift (frequency, neighbours) hits both
/// alike; prints both rates and the median, lowest and highest per-round ratio of with ÷
/// without detection (read by `cargo xtask bench`).
fn interleaved(rounds: usize) {
    let events = batch();
    let mut plain = Stage::new();
    let mut detecting = Stage::with_detector(detector());
    // Warm-up: caches, the process tables, the detection memo.
    plain.run(&events);
    detecting.run(&events);
    let timed = |stage: &mut Stage| {
        let cpu = thread_cpu_ns();
        let records: u64 = (0..INTERLEAVED_BATCHES).map(|_| stage.run(&events)).sum();
        records as f64 * 1e9 / (thread_cpu_ns() - cpu).max(1) as f64
    };
    let (mut plain_rates, mut detect_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let p = timed(&mut plain);
        let d = timed(&mut detecting);
        plain_rates.push(p);
        detect_rates.push(d);
        ratios.push(d / p);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (lo, hi) =
        (ratios.iter().copied().fold(f64::MAX, f64::min), ratios.iter().copied().fold(0.0, f64::max));
    println!(
        "interleaved rounds={rounds} plain={:.0} detect={:.0} ratio={:.4} low={lo:.4} high={hi:.4}",
        median(&mut plain_rates),
        median(&mut detect_rates),
        median(&mut ratios),
    );
    if let Some(d) = &detecting.detector {
        eprintln!("pipeline bench: memo {:?}", d.memo_stats());
    }
}

/// `PIPELINE_BENCH_DETECT_BY_KIND=1`: the detection stage alone, per record kind of the batch
/// (`PIPELINE_BENCH_KIND=process_creation`: that kind only, for profiling;
/// `PIPELINE_BENCH_KIND_RECORDS=N`: N evaluations per kind, 200,000 by default;
/// `PIPELINE_BENCH_FRESH_PATHS=1`: every evaluation of a file record sees a new path, as in a
/// write storm, where the detection memo cannot answer)
/// (CPU time per record), to see where the rules cost.
fn detect_by_kind() {
    let events = batch();
    let mut stage = Stage::new();
    let mut records: BTreeMap<&'static str, Vec<sensor_proto::AuditRecord>> = BTreeMap::new();
    for raw in &events {
        let Ok(ev) = decode::decode(raw) else { continue };
        stage.enricher.enrich(PipelineEvent::Kernel(ev), &mut stage.out);
        for e in stage.out.drain(..).collect::<Vec<_>>() {
            let sealed = stage.builder.build(e);
            let kind =
                sensor::detect::category::categories_of(&sealed.record).first().map_or("none", |c| c.name());
            records.entry(kind).or_default().push(sealed.record);
        }
    }
    let mut d = detector();
    let mut alerts = Vec::new();
    let only = std::env::var("PIPELINE_BENCH_KIND").ok();
    let fresh_paths = std::env::var_os("PIPELINE_BENCH_FRESH_PATHS").is_some();
    for (kind, recs) in records.iter().filter(|(k, _)| only.as_deref().is_none_or(|o| o == **k)) {
        let total =
            std::env::var("PIPELINE_BENCH_KIND_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
        let rounds = total / recs.len().max(1);
        let mut recs = recs.clone();
        let bases: Vec<usize> = recs.iter().map(|r| file_path(r).map_or(0, String::len)).collect();
        let cpu = thread_cpu_ns();
        for round in 0..rounds {
            for (r, base) in recs.iter_mut().zip(&bases) {
                if fresh_paths {
                    renumber(r, *base, round);
                }
                d.evaluate(black_box(r), &mut alerts);
                alerts.clear();
            }
        }
        let per = (thread_cpu_ns() - cpu) as f64 / (rounds * recs.len()) as f64;
        let s = d.stats();
        println!("  evaluated {} alerts {} suppressed {}", s.evaluated, s.alerts, s.suppressed);
        println!("{kind:<12} {:>5} records  {per:>8.0} ns per record", recs.len());
    }
}

/// The path of a file record.
fn file_path(r: &sensor_proto::AuditRecord) -> Option<&String> {
    match &r.event {
        Some(sensor_proto::v1::audit_record::Event::File(f)) => Some(&f.path),
        _ => None,
    }
}

/// Gives a file record a path no earlier evaluation saw: its first `base` bytes and `.round`.
fn renumber(r: &mut sensor_proto::AuditRecord, base: usize, round: usize) {
    use std::fmt::Write as _;
    if let Some(sensor_proto::v1::audit_record::Event::File(f)) = &mut r.event {
        f.path.truncate(base);
        let _ = write!(f.path, ".{round}");
    }
}

/// `PIPELINE_BENCH_RULE_COST=1` (or `=DIR`): each SigmaHQ rule file (or each file of DIR) on its own, CPU time per record of the
/// batch, costliest first (which rules make detection expensive).
fn rule_cost() {
    let events = batch();
    let mut stage = Stage::new();
    let mut records = Vec::new();
    for raw in &events {
        let Ok(ev) = decode::decode(raw) else { continue };
        stage.enricher.enrich(PipelineEvent::Kernel(ev), &mut stage.out);
        for e in stage.out.drain(..).collect::<Vec<_>>() {
            records.push(stage.builder.build(e).record);
        }
    }
    let mut files = Vec::new();
    let dirs = match std::env::var("PIPELINE_BENCH_RULE_COST").ok().filter(|v| v != "1") {
        Some(dir) => vec![std::path::PathBuf::from(dir)],
        None => sigma_rules(),
    };
    for d in dirs {
        for e in walk(&d) {
            files.push(e);
        }
    }
    let mut costs = Vec::new();
    for f in files {
        let cfg = DetectConfig {
            sources: Sources { builtin: false, paths: vec![f.clone()], optional_dir: None },
            ..DetectConfig::default()
        };
        let Ok(mut d) = Detector::new(&cfg) else { continue };
        if d.rule_count() == 0 {
            continue;
        }
        let mut alerts = Vec::new();
        let cpu = thread_cpu_ns();
        for _ in 0..20 {
            for r in &records {
                d.evaluate(r, &mut alerts);
                alerts.clear();
            }
        }
        let per = (thread_cpu_ns() - cpu) as f64 / (20 * records.len()) as f64;
        costs.push((per, f));
    }
    costs.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (per, f) in costs.iter().take(15) {
        println!("{per:>8.0} ns  {}", f.display());
    }
    println!("total {:.0} ns over {} files", costs.iter().map(|c| c.0).sum::<f64>(), costs.len());
}

fn walk(d: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "yml") {
            out.push(p);
        }
    }
    out
}

fn main() {
    pin_to_one_core();
    // `PIPELINE_BENCH_BATCHES=N`: run N batches without criterion (for `perf stat`/`perf record`
    // on a fixed amount of work) and print the records and the CPU-time rate.
    if std::env::var_os("PIPELINE_BENCH_RULE_COST").is_some() {
        rule_cost();
        return;
    }
    if std::env::var_os("PIPELINE_BENCH_DETECT_BY_KIND").is_some() {
        detect_by_kind();
        return;
    }
    if let Some(rounds) =
        std::env::var("PIPELINE_BENCH_INTERLEAVED").ok().and_then(|v| v.parse::<usize>().ok())
    {
        interleaved(rounds.max(1));
        return;
    }
    if let Some(n) = std::env::var("PIPELINE_BENCH_BATCHES").ok().and_then(|v| v.parse::<u64>().ok()) {
        let events = batch();
        let mut stage = if std::env::var_os("PIPELINE_BENCH_DETECT").is_some() {
            Stage::with_detector(detector())
        } else {
            Stage::new()
        };
        let (wall, cpu) = (std::time::Instant::now(), thread_cpu_ns());
        let records: u64 = (0..n).map(|_| stage.run(&events)).sum();
        let cpu = (thread_cpu_ns() - cpu) as f64 / 1e9;
        let wall = wall.elapsed().as_secs_f64();
        println!(
            "{records} records: {:.0} records per CPU second ({cpu:.3} s CPU, {wall:.3} s wall)",
            records as f64 / cpu
        );
        if let Some(d) = &stage.detector {
            eprintln!("pipeline bench: detection {:?}, memo {:?}", d.stats(), d.memo_stats());
        }
        return;
    }
    let mut c = Criterion::default()
        .with_measurement(ThreadCpuTime)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    pipeline(&mut c);
    c.final_summary();
}
