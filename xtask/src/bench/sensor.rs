//! The sensor as a separate process with its file output, as a user runs it.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub struct Sensor {
    child: Child,
    log: PathBuf,
    pub records: PathBuf,
    /// Resident set size once it streams records (idle, table seeded).
    pub start_rss_kib: u64,
    /// The part of it that is the eBPF maps mapped into the process: the ring buffers, whose
    /// data pages the kernel maps twice (so a record that wraps around reads contiguously).
    pub start_map_rss_kib: u64,
    /// Milliseconds from spawn until it streams records.
    pub startup_ms: u64,
}

/// What the sensor's log said at stop.
#[derive(Debug, Default, Clone, Copy)]
pub struct SensorEnd {
    /// Peak resident set size (VmHWM) just before it stopped.
    pub peak_rss_kib: u64,
    /// Load (BTF, maps, object) + verification and attachment of every program.
    pub load_attach_ms: Option<u64>,
    /// From SIGINT to the process's exit (final drain, flush, detaching every program).
    pub stop_ms: u64,
}

impl Sensor {
    /// Starts the sensor writing to `dir`; `rules`: with its default detection rules (as a user
    /// runs it), or with detection turned off.
    pub fn start(bin: &Path, dir: &Path, rules: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let log = dir.join("sensor.log");
        let records = dir.join("records");
        let mut cmd = Command::new(bin);
        cmd.args(["run", "--output"]).arg(format!("file:{}", records.display()));
        if !rules {
            let config = dir.join("no-rules.toml");
            std::fs::write(&config, "[detection]\nenabled = false\n")?;
            cmd.arg("--config").arg(config);
        }
        let started = Instant::now();
        let child = cmd
            // The loader logs its own timing at debug.
            .env("SENSOR_LOG", "info,sensor::loader=debug")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting the sensor")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("streaming records") {
                let startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                let start_rss_kib = proc_status_kib(child.id(), "VmRSS:").unwrap_or(0);
                let start_map_rss_kib = map_rss_kib(child.id());
                return Ok(Self { child, log, records, start_rss_kib, start_map_rss_kib, startup_ms });
            }
            if Instant::now() > deadline || text.contains("ERROR") {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
                bail!("sensor did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:").unwrap_or(0)
    }

    /// The sensor's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGINT (as Ctrl-C), then waits for the flush and exit.
    pub fn stop(mut self) -> anyhow::Result<SensorEnd> {
        let peak_rss_kib = proc_status_kib(self.pid(), "VmHWM:").unwrap_or(0);
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        let stopping = Instant::now();
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).context("SIGINT to the sensor")?;
        let status = self.child.wait()?;
        let stop_ms = u64::try_from(stopping.elapsed().as_millis()).unwrap_or(u64::MAX);
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if !status.success() {
            bail!("sensor exited with {status}:\n{}", tail(&text, 20));
        }
        let elapsed = |msg: &str| {
            text.lines()
                .find(|l| l.contains(msg))
                .and_then(|l| l.split("elapsed_ms=").nth(1))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let load_attach_ms = match (elapsed("eBPF object loaded"), elapsed("programs attached")) {
            (Some(l), Some(a)) => Some(l + a),
            _ => None,
        };
        Ok(SensorEnd { peak_rss_kib, load_attach_ms, stop_ms })
    }
}

impl Drop for Sensor {
    /// A sensor left behind by an error is stopped (after `stop` it has already exited).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Resident kB of the process's mappings of eBPF maps (`anon_inode:bpf-map` in smaps).
pub fn map_rss_kib(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut in_map = false;
    let mut total = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            // A mapping's header line: `start-end perms offset dev inode [name]`.
            in_map = line.ends_with("anon_inode:bpf-map");
        } else if in_map && let Some(v) = line.strip_prefix("Rss:") {
            total += v.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(field)).and_then(|v| v.split_whitespace().next())?.parse().ok()
}
