//! A tracer session: nothing, auditd or the sensor running around one workload run, with the
//! CPU time the tracer's processes used for it and what they delivered.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use super::{
    auditd::Auditd,
    count::{self, Delivered, Matcher},
    floor::{Floor, Hook},
    sensor::Sensor,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    None,
    /// Empty eBPF programs on the sensor's tracepoints: the cost no tracepoint sensor avoids.
    Floor,
    Auditd,
    Sensor,
    /// The sensor with detection turned off (`--compare-rules`): what the rules cost.
    SensorNoRules,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "no tracer",
            Self::Floor => "floor",
            Self::Auditd => "auditd",
            Self::Sensor => "sensor",
            Self::SensorNoRules => "sensor without rules",
        }
    }
}

pub struct Session {
    /// Detached (closed) when the session ends.
    floor: Option<Floor>,
    sensor: Option<Sensor>,
    auditd: Option<Auditd>,
    cpu_start: u64,
}

/// What a session measured.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionEnd {
    /// CPU seconds (user + system) of the tracer's processes from [`Session::mark`] until they
    /// were idle again after the workload (auditd + kauditd, or the sensor).
    pub cpu_secs: f64,
    pub delivered: Option<Delivered>,
    pub start_rss_kib: Option<u64>,
    pub start_map_rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    pub load_attach_ms: Option<u64>,
    pub startup_ms: Option<u64>,
    /// Milliseconds from SIGINT to the sensor's exit.
    pub stop_ms: Option<u64>,
}

impl Session {
    /// `hooks`: where the floor's empty programs go (the sensor's own tracepoints).
    pub fn start(mode: Mode, sensor_bin: &Path, dir: &Path, hooks: &[Hook]) -> anyhow::Result<Self> {
        let mut s = Self { floor: None, sensor: None, auditd: None, cpu_start: 0 };
        match mode {
            Mode::None => {}
            Mode::Floor => s.floor = Some(Floor::attach(hooks)?),
            Mode::Auditd => s.auditd = Some(Auditd::start(dir)?),
            Mode::Sensor => s.sensor = Some(Sensor::start(sensor_bin, dir, true)?),
            Mode::SensorNoRules => s.sensor = Some(Sensor::start(sensor_bin, dir, false)?),
        }
        s.settle();
        s.mark();
        Ok(s)
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        if let Some(s) = &self.sensor {
            pids.push(s.pid());
        }
        if let Some(a) = &self.auditd {
            pids.extend(a.pid());
            pids.extend(a.kauditd);
        }
        pids
    }

    fn cpu_ticks(&self) -> u64 {
        self.pids().into_iter().filter_map(cpu_ticks).sum()
    }

    /// Starts the CPU accounting (just before the workload).
    pub fn mark(&mut self) {
        self.cpu_start = self.cpu_ticks();
    }

    /// Waits (at most 15 s) until the tracer has caught up: no CPU used for 200 ms and, for
    /// auditd, nothing left in the kernel's backlog. (Tracing is system-wide: on a busy machine
    /// other processes keep it from ever being idle, hence the limit.)
    fn settle(&self) {
        if self.pids().is_empty() {
            return;
        }
        let backlog = || self.auditd.as_ref().map_or(0, Auditd::backlog);
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last = self.cpu_ticks();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.cpu_ticks();
            if now.saturating_sub(last) <= 1 && backlog() == 0 {
                return;
            }
            last = now;
        }
        eprintln!("xtask bench: the tracer was still busy after 15 s (other activity on the machine?)");
    }

    pub fn sensor_rss_kib(&self) -> Option<u64> {
        self.sensor.as_ref().map(Sensor::rss_kib)
    }

    /// Lets the tracer catch up, stops it, and counts what it delivered for the workload.
    pub fn finish(mut self, sensor_bin: &Path, m: Matcher) -> anyhow::Result<SessionEnd> {
        self.settle();
        let ticks = self.cpu_ticks().saturating_sub(self.cpu_start);
        let mut end = SessionEnd { cpu_secs: ticks as f64 / TICKS_PER_SEC, ..SessionEnd::default() };
        let me = std::process::id();
        if let Some(s) = self.sensor.take() {
            let records: PathBuf = s.records.clone();
            end.start_rss_kib = Some(s.start_rss_kib);
            end.start_map_rss_kib = Some(s.start_map_rss_kib);
            end.startup_ms = Some(s.startup_ms);
            let stopped = s.stop()?;
            end.peak_rss_kib = Some(stopped.peak_rss_kib);
            end.load_attach_ms = stopped.load_attach_ms;
            end.stop_ms = Some(stopped.stop_ms);
            end.delivered = Some(count::sensor_records(sensor_bin, &records, m, me)?);
        }
        if let Some(a) = self.auditd.take() {
            let lost = a.lost();
            let log = a.log.clone();
            a.stop()?;
            let matched = count::audit_log(&log, m, me)?;
            end.delivered = Some(Delivered { matched, loss_reported: lost });
        }
        drop(self.floor.take());
        Ok(end)
    }
}

/// `USER_HZ`: the unit of the times in `/proc/PID/stat` (100 on every Linux ABI).
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may hold spaces: fields 3.. follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // utime is field 14 and stime field 15: indexes 11 and 12 here.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_cpu_ticks_read() {
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(std::hint::black_box(x) != 1);
        assert!(super::cpu_ticks(std::process::id()).is_some());
    }
}
