//! The sensor's own lifecycle in the record stream: `sensor_start` (what runs, with which
//! binary, configuration and rules, and what this kernel could not run), a `heartbeat` every
//! interval with the counters (so a SIEM can tell a silent host from a calm one), `sensor_stop`
//! with the reason, and `previous_run` when the run before this one ended without a final
//! checkpoint (see [`previous`]).

pub mod previous;

use std::{
    io::Read as _,
    path::Path,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use sensor_proto::v1::{Collector, HeartbeatEvent, SensorStartEvent, SensorStopEvent, audit_record::Event};
use sha2::{Digest as _, Sha256};
use tokio::sync::{mpsc, watch};

use crate::{detect::load::Sources, flow::PipelineEvent, loader::Attached, options::Options, stats::Stats};

pub use crate::options::DEFAULT_HEARTBEAT;

/// Why a run stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// SIGTERM or SIGINT (the name).
    Signal(&'static str),
    /// `--duration` reached.
    Duration,
    /// Something failed.
    Error(String),
}

/// What the record stage needs to write the lifecycle records of this run.
#[derive(Debug)]
pub struct Lifecycle {
    started: Instant,
    heartbeat: Duration,
    stop: Mutex<Option<StopReason>>,
}

impl Lifecycle {
    pub fn new(heartbeat: Duration) -> Arc<Self> {
        Arc::new(Self { started: Instant::now(), heartbeat, stop: Mutex::new(None) })
    }

    /// Records why the run stops (the first reason given wins).
    pub fn set_stop(&self, reason: StopReason) {
        if let Ok(mut s) = self.stop.lock() {
            s.get_or_insert(reason);
        }
    }

    fn uptime_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// The `sensor_stop` record's event; `records` is the count written so far.
    pub fn stop_event(&self, records: u64) -> Event {
        let reason = self.stop.lock().ok().and_then(|s| s.clone());
        let (reason, signal, error) = match reason {
            Some(StopReason::Signal(s)) => ("signal", s.to_owned(), String::new()),
            Some(StopReason::Duration) => ("duration", String::new(), String::new()),
            Some(StopReason::Error(e)) => ("error", String::new(), e),
            // Stopped by the program embedding the pipeline (tests, tools).
            None => ("requested", String::new(), String::new()),
        };
        Event::SensorStop(SensorStopEvent {
            reason: reason.to_owned(),
            signal,
            error,
            uptime_ns: self.uptime_ns(),
            records: records + 1,
        })
    }

    /// A heartbeat's event with the counters as they are now.
    pub fn heartbeat_event(&self, stats: &Stats) -> Event {
        let lost_events = stats.lost.lock().map(|l| l.values().sum()).unwrap_or(0);
        Event::Heartbeat(HeartbeatEvent {
            interval_secs: u32::try_from(self.heartbeat.as_secs()).unwrap_or(u32::MAX),
            uptime_ns: self.uptime_ns(),
            records: stats.records.load(Ordering::Relaxed),
            loss_records: stats.loss_records.load(Ordering::Relaxed),
            lost_events,
            alerts: stats.alerts_total.load(Ordering::Relaxed),
            kernel_events: stats.kernel_events.load(Ordering::Relaxed),
            queue_lineage: stats.queue_depth[0].load(Ordering::Relaxed),
            queue_bulk: stats.queue_depth[1].load(Ordering::Relaxed),
            sink_errors: stats.sink_errors.load(Ordering::Relaxed),
            suspended_outputs: stats
                .sinks
                .iter()
                .filter(|s| s.disk_suspended.load(Ordering::Relaxed) != 0)
                .map(|s| s.name.clone())
                .collect(),
        })
    }

    /// Sends a heartbeat record every interval until `stop` (none when the interval is 0).
    pub async fn heartbeats(
        self: Arc<Self>,
        tx: mpsc::Sender<PipelineEvent>,
        stats: Arc<Stats>,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        if self.heartbeat.is_zero() {
            return Ok(());
        }
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let ev = PipelineEvent::Sensor(Box::new(self.heartbeat_event(&stats)));
                    if tx.send(ev).await.is_err() {
                        return Ok(());
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}

/// What the start record says about the run.
#[derive(Debug)]
pub struct StartFacts<'a> {
    pub opts: &'a Options,
    pub rules: usize,
    pub attached: &'a Attached,
    pub btf: String,
    pub pinning: sensor_proto::v1::Pinning,
    pub heartbeat: Duration,
}

/// The `sensor_start` record's event.
pub fn start_event(f: &StartFacts<'_>) -> Event {
    let binary = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
    let mut collectors: Vec<Collector> = f
        .attached
        .collectors
        .iter()
        .map(|c| Collector { name: collector_name(c).to_owned(), on: true, reason: String::new() })
        .collect();
    collectors.extend(f.attached.adopted.iter().map(|p| Collector {
        name: collector_name(p).to_owned(),
        on: true,
        reason: "adopted from pins".to_owned(),
    }));
    collectors.extend(f.attached.disabled.iter().map(|(c, why)| Collector {
        name: collector_name(c).to_owned(),
        on: false,
        reason: why.clone(),
    }));
    Event::SensorStart(SensorStartEvent {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        binary,
        binary_sha256: file_sha256(Path::new("/proc/self/exe")).unwrap_or_default(),
        config_sha256: hex::encode(Sha256::digest(crate::config::summary::summary(f.opts).as_bytes())),
        config_file: f.opts.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        rules_sha256: rules_sha256(&f.opts.detection.sources),
        rules: u32::try_from(f.rules).unwrap_or(u32::MAX),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        btf: f.btf.clone(),
        collectors,
        pinning: Some(f.pinning.clone()),
        heartbeat_secs: u32::try_from(f.heartbeat.as_secs()).unwrap_or(u32::MAX),
        syscalls: f.attached.syscalls.to_owned(),
    })
}

/// The lifecycle programs are attached by program name; the record names them as collectors.
fn collector_name(c: &str) -> &str {
    match c {
        sensor_common::names::PROG_SCHED_PROCESS_EXEC => "exec",
        sensor_common::names::PROG_SCHED_PROCESS_FORK => "fork",
        sensor_common::names::PROG_SCHED_PROCESS_EXIT => "exit",
        other => other,
    }
}

/// SHA-256 (hex) of a file's content.
fn file_sha256(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Some(hex::encode(h.finalize()))
}

/// SHA-256 over the text of every rule source (built-in files, then the given files and
/// directories' `.yml`/`.yaml` files in name order), each preceded by its name.
fn rules_sha256(sources: &Sources) -> String {
    let mut h = Sha256::new();
    if sources.builtin {
        for (name, text) in crate::detect::load::BUILTIN {
            h.update(name.as_bytes());
            h.update(text.as_bytes());
        }
    }
    let mut paths: Vec<&Path> = sources.paths.iter().map(std::path::PathBuf::as_path).collect();
    paths.extend(sources.optional_dir.as_deref().filter(|d| d.is_dir()));
    for p in paths {
        let mut files = vec![p.to_path_buf()];
        if p.is_dir() {
            files = std::fs::read_dir(p)
                .map(|d| {
                    d.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|f| f.extension().is_some_and(|x| x == "yml" || x == "yaml"))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
        }
        for f in files {
            h.update(f.as_os_str().as_encoded_bytes());
            h.update(std::fs::read(&f).unwrap_or_default());
        }
    }
    hex::encode(h.finalize())
}
