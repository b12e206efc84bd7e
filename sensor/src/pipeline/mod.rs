//! The pipeline: sources → decode → enrich → record → sinks, one way.
//!
//! Readers decode ring-buffer items and send them into one bounded channel. When the channel is
//! full, readers wait (back-pressure), the ring buffers fill, and the kernel counts what it cannot
//! write; those counts come back as loss records. Nothing is dropped silently.
//! A single blocking stage owns enrichment, sequencing and the sinks, so `seq` is strictly
//! increasing in every sink.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use sensor_common::EventKind;
use tokio::{sync::watch, task::JoinHandle};
use tracing::{error, info, warn};

pub use crate::lifecycle::StopReason;
use crate::{
    decode::KernelEvent,
    detect::{DetectConfig, Detector},
    enrich::{EnrichConfig, Enriched, Enricher, clock::BootClock, host},
    lifecycle::Lifecycle,
    loader::{self, EbpfLogger, LoadConfig},
    queue,
    recordbuild::RecordBuilder,
    sinks::{self, Output, OutputSpec, Sink},
    sources::{self, ringbuf::Ring, ringfill::RingFill},
};

mod out;

pub use crate::stats::{SinkStats, Stats};

/// What flows from the sources to the record stage.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "loss reports are rare; boxing kernel events would allocate per event"
)]
pub enum PipelineEvent {
    Kernel(KernelEvent),
    Loss(LossReport),
    /// A record about the sensor itself (start, heartbeat, a previous run's end): the record
    /// stage gives it the sensor's own process.
    Sensor(Box<sensor_proto::v1::audit_record::Event>),
}

/// How often the record stage wakes up while events wait for their process's lineage.
const PARKED_POLL: Duration = Duration::from_millis(50);

/// Events lost before they became records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossReport {
    pub kind: &'static str,
    pub reason: &'static str,
    pub count: u64,
    pub first_boot_ns: u64,
    pub last_boot_ns: u64,
}

/// Settings of one sensor run.
pub struct Options {
    pub outputs: Vec<Output>,
    /// Sinks built by the caller (tests, embedding programs).
    pub extra_sinks: Vec<Box<dyn Sink>>,
    pub labels: BTreeMap<String, String>,
    pub args_max: u32,
    pub queue_capacity: usize,
    pub drain_interval: Duration,
    pub loss_poll_interval: Duration,
    /// Size of the process-event ring buffer in bytes (a power-of-two multiple of the page
    /// size); `None` keeps the object's default.
    pub proc_ring_bytes: Option<u32>,
    /// Size of the file-event ring buffer in bytes; `None` keeps the object's default.
    pub file_ring_bytes: Option<u32>,
    /// Report new threads as fork events too.
    pub report_threads: bool,
    /// Process table and hashing limits.
    pub enrich: EnrichConfig,
    /// Sensitive paths (in addition to the defaults unless `no_default_sensitive`).
    pub sensitive_paths: Vec<String>,
    pub no_default_sensitive: bool,
    /// Directories (or files) whose file activity is not reported. The outputs are always excluded.
    pub exclude_paths: Vec<std::path::PathBuf>,
    /// When not empty, only file activity at or below these (or on sensitive paths) is reported.
    pub include_paths: Vec<std::path::PathBuf>,
    /// How often the sensitive/excluded paths are re-resolved to inodes.
    pub filter_refresh: Duration,
    /// Ignore the sensor's own process (default). Tests that observe their own syscalls in
    /// process turn it off.
    pub ignore_self: bool,
    /// Serve Prometheus metrics on this address (`GET /metrics`); `None`: off.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Ed25519 key that signs checkpoint records (`[integrity] signing_key`); `None`: unsigned.
    pub signing_key: Option<std::path::PathBuf>,
    /// BTF file of the kernel (`--btf`, `[sensor] btf`); `None`: the kernel's own.
    pub btf: Option<std::path::PathBuf>,
    /// Detection rules and their settings (`[detection]`).
    pub detection: DetectConfig,
    /// The configuration file the options came from (`--config`): protected like the binary.
    pub config_file: Option<std::path::PathBuf>,
    /// Interval of heartbeat records (zero: none).
    pub heartbeat: Duration,
    /// Pin the programs and maps in bpffs (see `crate::pin`); `None`: off.
    pub pinning: Option<crate::pin::PinOptions>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("outputs", &self.outputs)
            .field("extra_sinks", &self.extra_sinks.len())
            .field("labels", &self.labels)
            .field("args_max", &self.args_max)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            outputs: Vec::new(),
            extra_sinks: Vec::new(),
            labels: BTreeMap::new(),
            args_max: sensor_common::exec::CaptureConfig::DEFAULT.args_max,
            queue_capacity: 16 * 1024,
            drain_interval: Duration::from_millis(20),
            loss_poll_interval: Duration::from_secs(1),
            proc_ring_bytes: None,
            file_ring_bytes: None,
            report_threads: false,
            enrich: EnrichConfig::default(),
            sensitive_paths: Vec::new(),
            no_default_sensitive: false,
            exclude_paths: Vec::new(),
            include_paths: Vec::new(),
            filter_refresh: Duration::from_secs(30),
            ignore_self: true,
            metrics_listen: None,
            signing_key: None,
            btf: None,
            detection: DetectConfig::default(),
            config_file: None,
            heartbeat: crate::lifecycle::DEFAULT_HEARTBEAT,
            pinning: None,
        }
    }
}

/// A running sensor: programs attached, records flowing.
pub struct Running {
    stop: watch::Sender<bool>,
    sources: Vec<JoinHandle<anyhow::Result<()>>>,
    record_stage: JoinHandle<Vec<SinkReport>>,
    pub stats: Arc<Stats>,
    /// Which collectors run, and which this kernel could not run.
    pub attached: loader::Attached,
    /// Where the metrics endpoint listens (the bound address, so port 0 resolves).
    pub metrics_addr: Option<std::net::SocketAddr>,
    lifecycle: Arc<Lifecycle>,
    /// The programs: released after the last record (pinned ones stay attached).
    kernel: crate::kernel::Kernel,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// How a sink ended.
#[derive(Debug, Clone)]
pub struct SinkReport {
    pub name: String,
    pub errors: u64,
}

/// Starts the sensor: opens sinks, loads programs, starts readers, then attaches.
pub async fn start(mut opts: Options) -> anyhow::Result<Running> {
    loader::preflight()?;
    // Rules first: a broken rule file stops the start before anything is loaded.
    let detector = load_detector(&opts.detection)?;
    let rules = detector.rule_count();
    let signer = opts
        .signing_key
        .as_deref()
        .map(crate::recordbuild::signing::CheckpointSigner::load)
        .transpose()
        .context("loading the checkpoint signing key")?;
    // Bind first: a taken port should stop the start before anything is loaded.
    let metrics_listener = match opts.metrics_listen {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for out in &opts.outputs {
        sinks.push(sinks::open(out).with_context(|| format!("opening output {}", out.spec))?);
    }
    sinks.append(&mut opts.extra_sinks);

    let load = LoadConfig {
        btf: opts.btf.clone(),
        args_max: opts.args_max,
        self_tgid: if opts.ignore_self { std::process::id() } else { 0 },
        report_threads: opts.report_threads,
        include_mode: !opts.include_paths.is_empty(),
        proc_ring_bytes: opts.proc_ring_bytes,
        file_ring_bytes: opts.file_ring_bytes,
    };
    let (mut kernel, loaded) = crate::kernel::Kernel::open(load, opts.pinning.as_ref())?;
    // In `Ring::ALL` order.
    let ring_fill = [&loaded.proc_events, &loaded.file_events, &loaded.net_events].map(|r| {
        RingFill::new(r).inspect_err(|e| warn!(error = %e, "ring buffer fill level unavailable")).ok()
    });
    let stats = Arc::new(Stats {
        ring_fill,
        sinks: sinks
            .iter()
            .map(|s| SinkStats { name: s.name().to_owned(), ..SinkStats::default() })
            .collect(),
        queue_capacity: AtomicU64::new(opts.queue_capacity as u64),
        ..Stats::default()
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tx, rx) = queue::priority_queues(opts.queue_capacity);

    let clock = BootClock::now();
    let host = host::identify(opts.labels.clone());
    let mut sensitive: Vec<String> = if opts.no_default_sensitive {
        Vec::new()
    } else {
        crate::filter::DEFAULT_SENSITIVE.iter().map(|s| (*s).to_owned()).collect()
    };
    sensitive.extend(opts.sensitive_paths.iter().cloned());
    let mut excluded = opts.exclude_paths.clone();
    excluded.extend(crate::filter::DEFAULT_EXCLUDED.iter().map(std::path::PathBuf::from));
    excluded.extend(opts.outputs.iter().filter_map(|o| o.spec.local_path()));
    // Network outputs write through a spool on disk.
    excluded.extend(opts.outputs.iter().filter_map(sinks::spool::output_spool_dir));
    let mut inode_filter =
        crate::filter::InodeFilter::new(loaded.inode_filter, sensitive, excluded, opts.include_paths.clone());
    let protected = crate::protect::ProtectedPaths::of(&opts);
    if loaded.adopted {
        inode_filter.clear_kernel_map();
    }
    inode_filter.set_protected(protected.paths().map(std::path::Path::to_path_buf).collect());
    inode_filter.refresh();
    let mut enricher = Enricher::new(clock, &host.boot_id, opts.enrich);
    enricher.set_protected(protected);
    enricher.set_sensitive(inode_filter.shared(), Some(inode_filter.waker()));
    // Processes that started before the sensor, so their later events have lineage.
    let initial = enricher.seed();
    let mut initial = initial;
    // A previous run writing to the same directory that did not end cleanly is reported first.
    let now_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0));
    let previous: Vec<Enriched> = opts
        .outputs
        .iter()
        .filter_map(|o| match &o.spec {
            OutputSpec::File(dir) => crate::lifecycle::previous::unfinished(dir, now_unix_ns, &host.boot_id),
            _ => None,
        })
        .map(|ev| enricher.sensor_record(BootClock::boot_ns_now(), ev))
        .collect();
    initial.splice(0..0, previous);
    // Events the previous run of adopted programs had read but not written when it died.
    let handover = Arc::new(loaded.handover);
    for (kind, count) in EventKind::ALL.iter().zip(handover.take_in_flight()).filter(|(_, n)| *n > 0) {
        let now = BootClock::boot_ns_now();
        let report = LossReport {
            kind: kind.name(),
            reason: "in_flight",
            count,
            first_boot_ns: now,
            last_boot_ns: now,
        };
        warn!(
            kind = kind.name(),
            count, "events the previous run read but never wrote (it ended abnormally)"
        );
        stats.add_loss(&report);
        stats.loss_records.fetch_add(1, Ordering::Relaxed);
        enricher.enrich(PipelineEvent::Loss(report), &mut initial);
    }
    // Continue the hash chain of a previous run writing to the same directory.
    let chain_tail = opts.outputs.iter().find_map(|o| match &o.spec {
        OutputSpec::File(dir) => crate::recordfile::chain_tail(dir),
        _ => None,
    });
    let mut builder = RecordBuilder::new(host, clock, chain_tail);
    if let Some(signer) = signer {
        info!(key_id = signer.key_id(), "signing checkpoints");
        builder = builder.with_signer(signer);
    }
    let lifecycle = Lifecycle::new(opts.heartbeat);
    let record_stage = {
        let stats = stats.clone();
        let handover_out = handover.clone();
        let lifecycle = lifecycle.clone();
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let mut out = out::RecordOut::new(builder, detector, sinks).with_handover(handover_out);
            out::record_stage(rx, &rt, initial, enricher, &mut out, &stats, &lifecycle)
        })
    };

    let read_ctx = Arc::new(sources::ringbuf::ReadContext {
        stats: stats.clone(),
        handover: handover.clone(),
        ignore_tgid: if opts.ignore_self { std::process::id() } else { 0 },
    });
    // Readers first, so nothing the programs emit waits unread.
    let rings = [
        (Ring::Proc, loaded.proc_events, &tx.lineage),
        (Ring::File, loaded.file_events, &tx.bulk),
        (Ring::Net, loaded.net_events, &tx.bulk),
    ];
    let mut sources: Vec<_> = rings
        .into_iter()
        .map(|(ring, map, queue)| {
            let run = sources::ringbuf::run(
                ring,
                map,
                queue.clone(),
                read_ctx.clone(),
                stop_rx.clone(),
                opts.drain_interval,
            );
            tokio::spawn(run)
        })
        .collect();
    sources.push(tokio::spawn(inode_filter.run(opts.filter_refresh, stop_rx.clone())));
    let mut metrics_addr = None;
    if let Some(listener) = metrics_listener {
        metrics_addr = listener.local_addr().ok();
        sources.push(tokio::spawn(crate::metrics::serve(listener, stats.clone(), stop_rx.clone())));
    }
    if let Some(logger) = loaded.logger {
        sources.push(tokio::spawn(bridge_ebpf_logs(logger, stop_rx.clone())));
    }
    let attached = match kernel.attach() {
        Ok(a) => a,
        Err(e) => {
            lifecycle.set_stop(StopReason::Error(format!("{e:#}")));
            let _ = stop_tx.send(true);
            return Err(e);
        }
    };
    let start = crate::lifecycle::start_event(&crate::lifecycle::StartFacts {
        opts: &opts,
        rules,
        attached: &attached,
        btf: kernel.btf.clone(),
        pinning: kernel.pinning.clone(),
        heartbeat: opts.heartbeat,
    });
    // Not awaited here: the record stage may be waiting on a sink with the queue full.
    let lineage = tx.lineage.clone();
    let retired = std::mem::take(&mut kernel.retired);
    tokio::spawn(async move {
        lineage.send(PipelineEvent::Sensor(Box::new(start))).await?;
        for report in retired {
            lineage.send(PipelineEvent::Loss(report)).await?;
        }
        Ok::<_, tokio::sync::mpsc::error::SendError<PipelineEvent>>(())
    });
    sources.push(tokio::spawn(lifecycle.clone().heartbeats(
        tx.lineage.clone(),
        stats.clone(),
        stop_rx.clone(),
    )));
    // After attach: the skipped-run counters belong to loaded programs.
    sources.push(tokio::spawn(sources::loss::run(
        loaded.loss,
        handover,
        kernel.program_runs(),
        tx.lineage,
        stop_rx,
        opts.loss_poll_interval,
    )));
    release_startup_memory();
    Ok(Running { stop: stop_tx, sources, record_stage, stats, attached, metrics_addr, lifecycle, kernel })
}

/// Hands the heap that start-up used (kernel BTF parsing, the `/proc` seed) back to the system:
/// without it, glibc keeps those pages and the resident size stays at its start-up peak.
fn release_startup_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap memory; no pointer is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Running {
    /// Says why the run stops (written in the `sensor_stop` record); call before [`Self::stop`].
    pub fn set_stop_reason(&self, reason: StopReason) {
        self.lifecycle.set_stop(reason);
    }

    /// Stops the readers after a final drain, writes every remaining record, flushes every sink.
    pub async fn stop(self) -> anyhow::Result<Vec<SinkReport>> {
        let _ = self.stop.send(true);
        for s in self.sources {
            match s.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error!(error = %e, "source failed"),
                Err(e) => error!(error = %e, "source task panicked"),
            }
        }
        let reports = self.record_stage.await.context("record stage panicked")?;
        let released = std::time::Instant::now();
        self.kernel.stop();
        info!(elapsed_ms = released.elapsed().as_millis(), "programs released");
        info!(
            records = self.stats.records.load(Ordering::Relaxed),
            loss_records = self.stats.loss_records.load(Ordering::Relaxed),
            "sensor stopped; sinks flushed"
        );
        Ok(reports)
    }
}

/// Loads the detection rules; logs what was loaded and what was left out.
fn load_detector(cfg: &DetectConfig) -> anyhow::Result<Detector> {
    let detector = Detector::new(cfg).context("loading detection rules")?;
    for p in detector.unsupported() {
        tracing::debug!(problem = %p, "rule left out");
    }
    if !detector.unsupported().is_empty() {
        warn!(
            rules = detector.unsupported().len(),
            "rules left out because the sensor cannot evaluate them as written (see `sensor rules check`)"
        );
    }
    info!(rules = detector.rule_count(), "detection rules loaded");
    Ok(detector)
}

/// Forwards aya-log records from the programs into `log` (and so into tracing).
async fn bridge_ebpf_logs(logger: EbpfLogger, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut fd = sources::readable(logger)?;
    loop {
        tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            _ = stop.changed() => {
                fd.get_mut().flush();
                return Ok(());
            }
        }
    }
}
