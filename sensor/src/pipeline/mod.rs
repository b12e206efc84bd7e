//! The pipeline: sources → decode → enrich → recordbuild → detect → sinks, one way. This module
//! wires the stages together for one run ([`start`], [`Running::stop`]); `out.rs` is the record
//! stage. The run's settings are `crate::options`, what flows between the stages is `crate::flow`.
//!
//! Readers decode ring-buffer items and send them into two bounded queues. When a queue is
//! full, readers wait (back-pressure), the ring buffers fill, and the kernel counts what it cannot
//! write; those counts come back as loss records. Nothing is dropped silently.
//! A single blocking stage owns enrichment, sequencing and the sinks, so `seq` is strictly
//! increasing in every sink.

use std::{
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

use crate::{
    detect::{DetectConfig, Detector},
    enrich::{Enriched, Enricher, clock::BootClock, host},
    filter::InodeFilter,
    flow::{BulkMark, LineageMark, LossReport, PipelineEvent, Ring},
    handover::Handover,
    lifecycle::Lifecycle,
    loader::{self, EbpfLogger, LoadConfig, Maps},
    metrics::RingFills,
    protect::ProtectedPaths,
    queue::{self, PrioritySenders},
    recordbuild::{RecordBuilder, signing::CheckpointSigner},
    sinks::{self, OutputSpec, Sink},
    sources::{self, ringfill::RingFill},
    stats::{SinkStats, Stats},
};
pub use crate::{lifecycle::StopReason, options::Options};

mod memory;
mod out;

/// How often the record stage wakes up while events wait for their process's lineage.
const PARKED_POLL: Duration = Duration::from_millis(50);

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
    // Whatever can refuse the start comes before anything is loaded: a broken rule file, an
    // unreadable key, a taken port, an output that cannot open.
    let detector = load_detector(&opts.detection)?;
    let rules = detector.rule_count();
    let signer = opts
        .signing_key
        .as_deref()
        .map(CheckpointSigner::load)
        .transpose()
        .context("loading the checkpoint signing key")?;
    let metrics_listener = match opts.metrics_listen {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    let sinks = open_sinks(&mut opts)?;

    let (mut kernel, loaded) = crate::kernel::Kernel::open(load_config(&opts), opts.pinning.as_ref())?;
    let ring_fills = Arc::new(ring_fills(&loaded));
    let stats = Arc::new(new_stats(&sinks, opts.queue_capacity));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (tx, rx) = queue::priority_queues(opts.queue_capacity);
    let lineage_mark = LineageMark::default();
    let bulk_mark = BulkMark::default();

    let clock = BootClock::now();
    let host = host::identify(opts.labels.clone());
    let protected = opts.protected_paths();
    let inode_filter = inode_filter(&opts, loaded.inode_filter, loaded.adopted, &protected);
    let mut enricher = Enricher::new(clock, &host.boot_id, opts.enrich);
    enricher.set_protected(protected);
    enricher.set_sensitive(inode_filter.shared(), Some(inode_filter.waker()));
    let handover = Arc::new(loaded.handover);
    let initial = initial_records(&opts, &mut enricher, &host.boot_id, &handover, &stats);
    let builder = record_builder(&opts, host, clock, signer);
    let lifecycle = Lifecycle::new(opts.heartbeat);
    let record_stage = {
        let stage = out::RecordOut::new(builder, detector, sinks).with_handover(handover.clone());
        let stage = out::Stage {
            rx,
            enricher,
            lineage_mark: lineage_mark.clone(),
            bulk_mark: bulk_mark.clone(),
            out: stage,
        };
        spawn_record_stage(stage, initial, stats.clone(), lifecycle.clone())
    };

    // Readers first, so nothing the programs emit waits unread.
    let read_ctx = Arc::new(sources::ringbuf::ReadContext {
        stats: stats.clone(),
        handover: handover.clone(),
        lineage_mark,
        bulk_mark,
        ignore_tgid: if opts.ignore_self { std::process::id() } else { 0 },
    });
    let rings = Rings { proc: loaded.proc_events, file: loaded.file_events, net: loaded.net_events };
    let mut sources = spawn_readers(rings, &tx, &read_ctx, &stop_rx, opts.drain_interval);
    sources.push(tokio::spawn(inode_filter.run(opts.filter_refresh, stop_rx.clone())));
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(listener) = metrics_listener {
        sources.push(tokio::spawn(crate::metrics::serve(
            listener,
            stats.clone(),
            ring_fills,
            stop_rx.clone(),
        )));
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
    send_start(&tx, start, std::mem::take(&mut kernel.retired));
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
        stop_rx.clone(),
        opts.loss_poll_interval,
    )));
    sources.push(tokio::spawn(memory::trim_periodically(memory::TRIM_EVERY, stop_rx)));
    // The heap start-up used (kernel BTF parsing, the `/proc` seed) goes back to the system.
    memory::release_free_memory();
    Ok(Running { stop: stop_tx, sources, record_stage, stats, attached, metrics_addr, lifecycle, kernel })
}

/// The outputs of the options, then the sinks built by the caller.
fn open_sinks(opts: &mut Options) -> anyhow::Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    for out in &opts.outputs {
        sinks.push(sinks::open(out).with_context(|| format!("opening output {}", out.spec))?);
    }
    sinks.append(&mut opts.extra_sinks);
    Ok(sinks)
}

fn load_config(opts: &Options) -> LoadConfig {
    LoadConfig {
        btf: opts.btf.clone(),
        args_max: opts.args_max,
        self_tgid: if opts.ignore_self { std::process::id() } else { 0 },
        report_threads: opts.report_threads,
        syscall_dispatcher: opts.syscall_dispatcher,
        syscall_fentry: opts.syscall_fentry,
        include_mode: !opts.include_paths.is_empty(),
        proc_ring_bytes: opts.proc_ring_bytes,
        file_ring_bytes: opts.file_ring_bytes,
        net_ring_bytes: opts.net_ring_bytes,
    }
}

/// Fill levels of the three rings, in `Ring::ALL` order, for the metrics endpoint.
fn ring_fills(maps: &Maps) -> RingFills {
    [&maps.proc_events, &maps.file_events, &maps.net_events].map(|r| {
        RingFill::new(r).inspect_err(|e| warn!(error = %e, "ring buffer fill level unavailable")).ok()
    })
}

fn new_stats(sinks: &[Box<dyn Sink>], queue_capacity: usize) -> Stats {
    Stats {
        sinks: sinks
            .iter()
            .map(|s| SinkStats { name: s.name().to_owned(), ..SinkStats::default() })
            .collect(),
        queue_capacity: AtomicU64::new(queue_capacity as u64),
        ..Stats::default()
    }
}

/// The inode filter: sensitive paths (defaults unless turned off), excluded paths (the defaults,
/// the outputs and their spools), included and protected paths, resolved once now.
fn inode_filter(
    opts: &Options,
    maps: crate::filter::FilterMaps,
    adopted: bool,
    protected: &ProtectedPaths,
) -> InodeFilter {
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
    let mut filter = InodeFilter::new(maps, sensitive, excluded, opts.include_paths.clone());
    if adopted {
        filter.clear_kernel_map();
    }
    filter.set_protected(protected.paths().map(std::path::Path::to_path_buf).collect());
    filter.refresh();
    filter
}

/// The records written before any event: a previous run that did not end cleanly, the
/// processes that started before the sensor (so their later events have lineage), and the
/// events a previous run of adopted programs read but never wrote.
fn initial_records(
    opts: &Options,
    enricher: &mut Enricher,
    boot_id: &str,
    handover: &Handover,
    stats: &Stats,
) -> Vec<Enriched> {
    let seeded = enricher.seed();
    let mut initial = previous_runs(opts, enricher, boot_id);
    initial.extend(seeded);
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
    initial
}

/// A `previous_run` record for each file output whose last run did not end cleanly.
fn previous_runs(opts: &Options, enricher: &mut Enricher, boot_id: &str) -> Vec<Enriched> {
    let now_unix_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(0));
    opts.outputs
        .iter()
        .filter_map(|o| match &o.spec {
            OutputSpec::File(dir) => crate::lifecycle::previous::unfinished(dir, now_unix_ns, boot_id),
            _ => None,
        })
        .map(|ev| enricher.sensor_record(BootClock::boot_ns_now(), ev))
        .collect()
}

/// The record builder, continuing the hash chain of a previous run writing to the same
/// directory, signing checkpoints when a key is given.
fn record_builder(
    opts: &Options,
    host: sensor_proto::v1::Host,
    clock: BootClock,
    signer: Option<CheckpointSigner>,
) -> RecordBuilder {
    let chain_tail = opts.outputs.iter().find_map(|o| match &o.spec {
        OutputSpec::File(dir) => crate::recordfile::chain_tail(dir),
        _ => None,
    });
    let mut builder = RecordBuilder::new(host, clock, chain_tail);
    if let Some(signer) = signer {
        info!(key_id = signer.key_id(), "signing checkpoints");
        builder = builder.with_signer(signer);
    }
    builder
}

/// The record stage on its own blocking thread: it returns when both queues are closed.
fn spawn_record_stage(
    mut stage: out::Stage,
    initial: Vec<Enriched>,
    stats: Arc<Stats>,
    lifecycle: Arc<Lifecycle>,
) -> JoinHandle<Vec<SinkReport>> {
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || out::record_stage(&mut stage, &rt, initial, &stats, &lifecycle))
}

/// The three ring buffers the readers drain.
struct Rings {
    proc: aya::maps::RingBuf<aya::maps::MapData>,
    file: aya::maps::RingBuf<aya::maps::MapData>,
    net: aya::maps::RingBuf<aya::maps::MapData>,
}

/// One reader per ring: process events into the lineage queue, file and network events into
/// the bulk queue.
fn spawn_readers(
    rings: Rings,
    tx: &PrioritySenders,
    ctx: &Arc<sources::ringbuf::ReadContext>,
    stop: &watch::Receiver<bool>,
    drain_every: Duration,
) -> Vec<JoinHandle<anyhow::Result<()>>> {
    [
        (Ring::Proc, rings.proc, &tx.lineage),
        (Ring::File, rings.file, &tx.bulk),
        (Ring::Net, rings.net, &tx.bulk),
    ]
    .into_iter()
    .map(|(ring, map, queue)| {
        tokio::spawn(sources::ringbuf::run(ring, map, queue.clone(), ctx.clone(), stop.clone(), drain_every))
    })
    .collect()
}

/// Queues the `sensor_start` record, then the loss reports of retired programs. Not awaited:
/// the record stage may be waiting on a sink with the queue full.
fn send_start(tx: &PrioritySenders, start: sensor_proto::v1::audit_record::Event, retired: Vec<LossReport>) {
    let lineage = tx.lineage.clone();
    tokio::spawn(async move {
        lineage.send(PipelineEvent::Sensor(Box::new(start))).await?;
        for report in retired {
            lineage.send(PipelineEvent::Loss(report)).await?;
        }
        Ok::<_, tokio::sync::mpsc::error::SendError<PipelineEvent>>(())
    });
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
