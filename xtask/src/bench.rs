//! `cargo xtask bench`: workload cost with and without the sensor, measured in the same run,
//! and the sensor's memory under load. Numbers are ratios against the baseline of this run
//! (the machine is noisy; absolute numbers mean little).

use std::{
    fmt::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::util;

/// Options of a bench run.
#[derive(Debug, Clone, Copy)]
pub struct BenchOpts {
    /// Length of the exec storm with the sensor running (RSS is sampled throughout).
    pub storm_secs: u64,
    /// Length of each baseline/sensor round of the ratio measurement.
    pub round_secs: u64,
    pub rounds: u32,
}

pub fn bench(ws: &Path, opts: BenchOpts) -> anyhow::Result<()> {
    if !util::is_root() {
        bail!("the benchmarks load the sensor's eBPF programs and must run as root");
    }
    util::run(util::cargo(ws).args(["build", "--release", "--package", "sensor"]))?;
    let sensor_bin = ws.join("target/release/sensor");
    let out_dir = tempfile_dir(ws)?;

    // 1. Workloads, no sensor vs sensor, interleaved rounds; median ns/op of each.
    let round = Duration::from_secs(opts.round_secs);
    let workloads: [(&str, Workload); 4] = [
        ("exec storm (fork+exec /bin/true)", exec_storm),
        ("create+write+close storm on tmpfs", write_storm),
        ("read-only open storm (noise)", read_storm),
        ("loopback TCP connect storm", connect_storm),
    ];
    let mut rows = Vec::new();
    for (name, work) in workloads {
        let mut base = Vec::new();
        let mut with = Vec::new();
        for r in 0..opts.rounds {
            base.push(work(round)?.ns_per_op);
            let sensor = Sensor::start(&sensor_bin, &out_dir.join(format!("round{r}")))?;
            with.push(work(round)?.ns_per_op);
            sensor.stop()?;
        }
        rows.push((name, median(&mut base), median(&mut with)));
    }

    // 2. Sustained storm with the sensor: RSS over time and delivery.
    let sensor = Sensor::start(&sensor_bin, &out_dir.join("storm"))?;
    let pid = sensor.child.id();
    let started = Instant::now();
    let mut rss = Vec::new();
    let mut ops = 0u64;
    while started.elapsed() < Duration::from_secs(opts.storm_secs) {
        ops += exec_storm(Duration::from_secs(1))?.ops;
        rss.push((started.elapsed().as_secs(), rss_kib(pid)?));
    }
    let summary = sensor.stop()?;
    let peak = rss.iter().map(|(_, k)| *k).max().unwrap_or(0);
    let first10 = rss.iter().take(10).map(|(_, k)| *k).max().unwrap_or(0);
    let last10 = rss.iter().rev().take(10).map(|(_, k)| *k).max().unwrap_or(0);

    let mut md = String::new();
    let _ = writeln!(md, "# Sensor benchmarks\n");
    let _ = writeln!(md, "Machine: {}.\n", machine());
    let _ =
        writeln!(md, "## Workload cost, {} interleaved rounds of {} s each\n", opts.rounds, opts.round_secs);
    let _ =
        writeln!(md, "| workload | no tracer, median ns/op | sensor (file output), median ns/op | ratio |");
    let _ = writeln!(md, "|---|---|---|---|");
    for (name, base_ns, with_ns) in &rows {
        let _ = writeln!(md, "| {name} | {base_ns:.0} | {with_ns:.0} | {:.2} |", with_ns / base_ns);
    }
    let _ = writeln!(md, "\n## Sensor memory during a {} s exec storm\n", opts.storm_secs);
    let _ = writeln!(md, "| execs | peak RSS | max RSS first 10 s | max RSS last 10 s | records written |");
    let _ = writeln!(md, "|---|---|---|---|---|");
    let _ = writeln!(
        md,
        "| {ops} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} |",
        peak as f64 / 1024.0,
        first10 as f64 / 1024.0,
        last10 as f64 / 1024.0,
        summary.records.map_or("?".into(), |n| n.to_string()),
    );
    let _ = writeln!(md, "\nRSS samples (s, KiB): {rss:?}");
    print!("{md}");
    let path = ws.join("docs/bench/results.md");
    std::fs::write(&path, &md).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask bench: written to {}", path.display());
    let _ = std::fs::remove_dir_all(&out_dir);
    Ok(())
}

type Workload = fn(Duration) -> anyhow::Result<StormResult>;

struct StormResult {
    ops: u64,
    ns_per_op: f64,
}

/// Runs fork+exec of /bin/true back to back for `dur`.
fn exec_storm(dur: Duration) -> anyhow::Result<StormResult> {
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < dur {
        let status = Command::new("/bin/true").stdin(Stdio::null()).status().context("spawning /bin/true")?;
        if !status.success() {
            bail!("/bin/true failed");
        }
        ops += 1;
    }
    let ns = start.elapsed().as_nanos() as f64;
    Ok(StormResult { ops, ns_per_op: ns / ops.max(1) as f64 })
}

/// Creates, writes 4 KiB to and closes files on tmpfs (/dev/shm), over a set of 64 names.
fn write_storm(dur: Duration) -> anyhow::Result<StormResult> {
    use std::io::Write as _;
    let dir = Path::new("/dev/shm/sensor-bench");
    std::fs::create_dir_all(dir)?;
    let buf = [0x5au8; 4096];
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < dur {
        for i in 0..64 {
            let mut f = std::fs::File::create(dir.join(format!("f{i}")))?;
            f.write_all(&buf)?;
        }
        ops += 64;
    }
    let ns = start.elapsed().as_nanos() as f64;
    let _ = std::fs::remove_dir_all(dir);
    Ok(StormResult { ops, ns_per_op: ns / ops.max(1) as f64 })
}

/// Opens, reads and closes an ordinary file read-only: the noise the kernel filter must drop.
fn read_storm(dur: Duration) -> anyhow::Result<StormResult> {
    use std::io::Read as _;
    let mut buf = [0u8; 256];
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < dur {
        for _ in 0..256 {
            let mut f = std::fs::File::open("/etc/hostname")?;
            let _ = f.read(&mut buf)?;
        }
        ops += 256;
    }
    let ns = start.elapsed().as_nanos() as f64;
    Ok(StormResult { ops, ns_per_op: ns / ops.max(1) as f64 })
}

/// Connects to a loopback listener and closes, back to back (the listener accepts in a thread).
fn connect_storm(dur: Duration) -> anyhow::Result<StormResult> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acceptor = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
            }
        })
    };
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < dur {
        drop(std::net::TcpStream::connect(addr)?);
        ops += 1;
    }
    let ns = start.elapsed().as_nanos() as f64;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = std::net::TcpStream::connect(addr);
    let _ = acceptor.join();
    Ok(StormResult { ops, ns_per_op: ns / ops.max(1) as f64 })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Resident set size of `pid` in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: ").map(str::to_owned))
        .unwrap_or_default();
    format!("{cpus} vCPU ({model}), Linux {}", kernel.trim())
}

fn tempfile_dir(ws: &Path) -> anyhow::Result<std::path::PathBuf> {
    let dir = ws.join("target/bench-tmp");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The sensor running as a separate process with its default file output.
struct Sensor {
    child: Child,
    log: std::path::PathBuf,
}

struct SensorSummary {
    records: Option<u64>,
}

impl Sensor {
    fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log = dir.join("sensor.log");
        let child = Command::new(bin)
            .args(["run", "--output"])
            .arg(format!("file:{}", dir.join("records").display()))
            .env("SENSOR_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting the sensor")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("streaming records") {
                return Ok(Self { child, log });
            }
            if Instant::now() > deadline || text.contains("ERROR") {
                bail!("sensor did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> anyhow::Result<SensorSummary> {
        util::run(Command::new("kill").args(["-TERM", &self.child.id().to_string()]))?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("sensor exited with {status}");
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let records = text
            .lines()
            .filter(|l| l.contains("sensor stopped"))
            .find_map(|l| l.split("records=").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok());
        Ok(SensorSummary { records })
    }
}
