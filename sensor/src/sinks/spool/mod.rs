//! `DurableSink<E>`: an [`Encoder`] and a [`Transport`] with an on-disk spool between them, so a
//! network sink neither blocks the pipeline nor loses records when the remote is down, slow, or
//! the sensor restarts.
//!
//! - The pipeline thread renders each record (`Encoder::encode`) and appends the payload to
//!   the spool (a buffered write to a local segment file; never a network call).
//! - A sender thread owns the transport (the output's only one), reads the spool in order,
//!   delivers batches, and acknowledges what was delivered; fully delivered segments are deleted.
//! - Every record goes through the spool, not only when the remote is down (a write-ahead
//!   log, as Vector's disk buffers do). This costs one buffered append per record, like the
//!   `file:` sink, and makes order and restart recovery the same code path: a new run first
//!   delivers what the last one left (see `store.rs` for the format and crash safety).
//! - The spool is bounded by `max_bytes`; when full, the `full` policy drops the oldest
//!   segment or the newest record and the count comes back through [`Sink::take_dropped`].
//! - Delivery is at-least-once: on an error the batch is re-sent after reconnecting with
//!   backoff, preceded by what was delivered in the last [`REPLAY_WINDOW`] (a plain TCP
//!   receiver that dies may lose what it had accepted but not yet written). Receivers
//!   de-duplicate by `(instance, seq)`.
//! - On drop (after the pipeline's final flush), the sender gets [`DRAIN_ON_CLOSE`] to deliver
//!   the rest; whatever is left stays in the spool for the next run.
//! - The spool's disk follows the disk-space policy of `super::space`: a reserve of free space
//!   (below it the oldest segments go, or spooling stops), and a failed write (full disk, I/O
//!   error) starts an episode whose loss record goes into the spool when writing works again.
//!   During an episode the records go to a bounded [`memory`] lane, delivered directly while
//!   the remote is reachable: a full disk does not blind a network output.

// Public for the fuzz targets (fuzz/): the spool's on-disk formats are untrusted input.
pub mod ack;
pub mod frame;
mod memory;
mod sender;
pub mod store;

use std::{
    path::PathBuf,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use sensor_proto::AuditRecord;
use tracing::{error, info, warn};

use self::{
    ack::AckFile,
    memory::{Held, MemoryLane},
    store::{Entry, Store},
};
use super::{
    DiskMetrics, Sink, SinkError, SinkLoss,
    space::{self, Episode, SpaceCheck},
    spec::{LowSpace, SpoolOptions},
    transport::{Encoder, Outgoing, Transport},
};

/// Default parent of spool directories (one per sink, named after it).
pub const DEFAULT_SPOOL_ROOT: &str = "/var/lib/sensor/spool";
/// How long the sender may keep delivering after the sink is closed.
pub const DRAIN_ON_CLOSE: Duration = Duration::from_secs(5);
/// Records delivered this recently are re-sent after a delivery error.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(2);
const REPLAY_MAX: usize = 8192;
const BATCH_RECORDS: usize = 512;
const BATCH_BYTES: usize = 1024 * 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A delivery failure is logged as a warning, and as an error once it lasts this long.
const ESCALATE_AFTER: Duration = Duration::from_secs(60);

/// Counters of one durable sink, shared with its threads (for logs and a metrics endpoint).
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Bytes of spool segments on disk (bounded by `max_bytes`).
    pub spool_bytes: AtomicU64,
    /// Records in the spool not yet delivered.
    pub pending_records: AtomicU64,
    /// Records delivered from the spool (re-sends after an error are not counted again).
    pub delivered: AtomicU64,
    /// Failed delivery attempts (each is followed by a reconnect).
    pub delivery_errors: AtomicU64,
    /// Records given up to the full policy.
    pub dropped: AtomicU64,
    /// Whether the last delivery attempt succeeded.
    pub connected: AtomicBool,
    /// Records held in memory because the spool's disk cannot take them (see [`memory`]).
    pub held_records: AtomicU64,
}

struct Shared {
    store: Mutex<Store>,
    wake: Condvar,
    /// Set when the sink closes: the sender stops at this instant at the latest.
    deadline: Mutex<Option<Instant>>,
    stats: Arc<SpoolStats>,
    /// Urgent records (tamper alerts): sent ahead of the spooled backlog, once, by the sender.
    /// They are in the spool too and go again in order (receivers de-duplicate by seq), so an
    /// urgent send that fails loses nothing.
    urgent: Mutex<Vec<Outgoing>>,
    /// Records the spool could not take (its disk is below the reserve or failing), delivered
    /// after the spooled backlog. Lock order: `store`, then `memory`.
    memory: Mutex<MemoryLane>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn memory(&self) -> MutexGuard<'_, MemoryLane> {
        self.memory.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_urgent(&self) -> Vec<Outgoing> {
        std::mem::take(&mut *self.urgent.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn publish(&self, store: &Store) {
        self.stats.spool_bytes.store(store.total_bytes(), Ordering::Relaxed);
        self.stats.pending_records.store(store.pending_records(), Ordering::Relaxed);
        self.stats.held_records.store(self.memory().len() as u64, Ordering::Relaxed);
    }
}

/// A network sink: records are spooled on disk and delivered by a sender thread.
pub struct DurableSink<E: Encoder> {
    name: String,
    encoder: E,
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    drain: Duration,
    space: SpaceCheck,
    /// Records not spooled since a write failed or the reserve was reached.
    episode: Option<Episode>,
    /// The episode's loss record is the next record.
    resuming: bool,
    low_warned: bool,
    low_log: crate::ratelimit::RateLimited,
    unwritten: u64,
    deleted_segments: u64,
}

impl<E: Encoder> std::fmt::Debug for DurableSink<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableSink").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The spool directory of a sink: `opts.dir`, or one named after the sink under
/// [`DEFAULT_SPOOL_ROOT`] (characters other than `[A-Za-z0-9._-]` become `_`).
pub fn spool_dir(name: &str, opts: &SpoolOptions) -> PathBuf {
    opts.dir.clone().unwrap_or_else(|| {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
            .collect();
        PathBuf::from(DEFAULT_SPOOL_ROOT).join(safe)
    })
}

/// The spool directory of a network output (its sink is named after the spec).
pub fn output_spool_dir(output: &super::Output) -> Option<PathBuf> {
    match &output.spec {
        super::OutputSpec::Syslog { .. } | super::OutputSpec::Kafka { .. } => {
            Some(spool_dir(&output.spec.to_string(), &output.options.spool))
        }
        super::OutputSpec::Jsonl(_) | super::OutputSpec::File(_) => None,
    }
}

impl<E: Encoder> DurableSink<E> {
    /// Opens the spool and starts the sender. `encoder` renders on the pipeline thread;
    /// `transport` moves to the sender thread and delivers, so rendering never waits for a
    /// network call. The sink is named after the transport.
    pub fn open<T: Transport>(encoder: E, transport: T, opts: &SpoolOptions) -> Result<Self, SinkError> {
        let name = transport.name().to_owned();
        let dir = spool_dir(&name, opts);
        let io = |source| SinkError::Io { sink: name.clone(), source };
        let segment_bytes = (opts.max_bytes / 8).clamp(4096, 32 * 1024 * 1024);
        let store = Store::open(&dir, opts.max_bytes, segment_bytes, opts.full).map_err(io)?;
        let ack = AckFile::open(&dir).map_err(io)?;
        let pending = store.pending_records();
        if pending > 0 {
            info!(sink = %name, records = pending, spool = %dir.display(), "delivering records spooled by an earlier run first");
        }
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            wake: Condvar::new(),
            deadline: Mutex::new(None),
            stats: Arc::new(SpoolStats::default()),
            urgent: Mutex::new(Vec::new()),
            memory: Mutex::new(MemoryLane::new(
                usize::try_from(opts.max_bytes).unwrap_or(usize::MAX).min(memory::LANE_BYTES),
            )),
        });
        shared.publish(&shared.lock());
        let thread_shared = shared.clone();
        let sender_thread = std::thread::Builder::new()
            .name("spool-sender".into())
            .spawn(move || sender::run_sender(&thread_shared, transport, &ack))
            .map_err(io)?;
        let space = SpaceCheck::new(&name, &dir, opts.disk);
        Ok(Self {
            name,
            encoder,
            shared,
            sender: Some(sender_thread),
            drain: DRAIN_ON_CLOSE,
            space,
            episode: None,
            resuming: false,
            low_warned: false,
            low_log: crate::ratelimit::RateLimited::new(Duration::from_secs(600)),
            unwritten: 0,
            deleted_segments: 0,
        })
    }

    /// How long closing may keep delivering (default [`DRAIN_ON_CLOSE`]).
    pub fn set_drain_on_close(&mut self, d: Duration) {
        self.drain = d;
    }

    /// Live counters (spool size, delivered, errors, dropped).
    pub fn stats(&self) -> Arc<SpoolStats> {
        self.shared.stats.clone()
    }

    /// A spool write failed: the episode starts (or goes on), and the records the disk refused
    /// are held in memory.
    fn fail(&mut self, e: &std::io::Error, refused: Vec<Held>) {
        if self.episode.is_none() {
            let reason = space::reason(e);
            warn!(sink = %self.name, error = %e, reason,
                "spooling records failed: records are delivered from memory meanwhile; what \
                 cannot be held is counted, and a loss record follows as soon as writing works again");
            self.episode = Some(Episode::new(reason));
        }
        self.resuming = false;
        for h in refused {
            self.hold(h);
        }
    }

    /// Below the reserve: with `rotate`, deletes the oldest sealed segments (their undelivered
    /// records are counted as lost) until it is free. True when it still is not.
    fn make_room(&mut self) -> bool {
        let mut deleted = 0u64;
        if self.space.options().on_low_space == LowSpace::Rotate {
            let mut store = self.shared.lock();
            while let Ok(true) = store.drop_oldest_for_space() {
                deleted += 1;
                if !self.space.low() {
                    break;
                }
            }
            self.shared.publish(&store);
        }
        self.deleted_segments += deleted;
        let still_low = self.space.free < self.space.reserve;
        // Stopping starts an episode: always said. Deleting old files to keep the reserve is
        // said at most once per 10 minutes (others filling the disk make it come and go).
        let suppressed = if still_low { Some(0) } else { self.low_log.allow() };
        if !self.low_warned
            && let Some(suppressed) = suppressed
        {
            self.low_warned = true;
            warn!(sink = %self.name, free = self.space.free, reserve = self.space.reserve,
                deleted_segments = deleted, stopped = still_low, suppressed,
                "spool: free space below the reserve{}",
                if still_low { ": spooling stops until it is free again (records are delivered from memory meanwhile; what cannot be held is counted)" }
                else { ": deleted the oldest spooled records (counted as lost)" });
        }
        still_low
    }

    /// The spool cannot take `record`: it is held in memory (see [`Self::hold`]).
    fn hold_record(&mut self, record: &AuditRecord, payload: Vec<u8>) {
        let prev_hash = record.integrity.as_ref().map_or_else(String::new, |i| i.prev_hash.clone());
        self.hold(Held { seq: record.seq, boot_ns: record.boot_ns, prev_hash, payload });
    }

    /// The memory lane holds `held` for the sender; what it evicts to make room is counted as
    /// lost.
    fn hold(&mut self, held: Held) {
        let evicted = self.shared.memory().push(held);
        for h in &evicted {
            self.count_lost(h);
        }
        self.shared.wake.notify_all();
    }

    fn count_lost(&mut self, h: &Held) {
        if let Some(ep) = self.episode.as_mut() {
            ep.add(h.seq, h.boot_ns, &h.prev_hash);
            self.unwritten += 1;
        }
    }

    /// Moves what the memory lane holds into the spool, behind its backlog and ahead of anything
    /// new. False when a write failed: that record and the rest go back to the lane.
    fn spool_held(&mut self) -> bool {
        let held = self.shared.memory().take();
        if held.is_empty() {
            return true;
        }
        let mut store = self.shared.lock();
        let mut rest = held.iter();
        let mut res = Ok(());
        for h in rest.by_ref() {
            res = store.append(Entry {
                seq: h.seq,
                boot_ns: h.boot_ns,
                prev_hash: &h.prev_hash,
                payload: &h.payload,
            });
            if res.is_err() {
                break;
            }
        }
        let res = res.and_then(|()| store.flush());
        self.shared.publish(&store);
        let mut refused = store.take_refused();
        drop(store);
        self.shared.wake.notify_all();
        match res {
            Ok(()) => true,
            Err(e) => {
                refused.extend(rest.cloned());
                self.fail(&e, refused);
                false
            }
        }
    }

    /// Writes the spooled records out with `op` (flush or fsync), publishes the spool's state and
    /// wakes the sender; a failure starts a gap episode.
    fn hand_over(&mut self, op: fn(&mut Store) -> std::io::Result<()>) {
        let res = {
            let mut store = self.shared.lock();
            let res = op(&mut store);
            self.shared.publish(&store);
            res.map_err(|e| (e, store.take_refused()))
        };
        self.shared.wake.notify_all();
        if let Err((e, lost)) = res {
            self.fail(&e, lost);
        }
    }
}

impl<E: Encoder> Sink for DurableSink<E> {
    fn name(&self) -> &str {
        &self.name
    }

    /// A record that cannot be spooled (full disk, I/O error) is held in memory, or counted
    /// when memory is full too; never an error.
    fn write(&mut self, record: &AuditRecord, encoded: &[u8]) -> Result<(), SinkError> {
        let payload = self.encoder.encode(record, encoded)?;
        if self.episode.is_some() && !self.resuming {
            self.hold_record(record, payload);
            return Ok(());
        }
        if !self.resuming && self.space.due(payload.len() as u64) {
            if self.space.low() {
                if self.make_room() {
                    let (res, refused) = {
                        let mut store = self.shared.lock();
                        (store.flush(), store.take_refused())
                    };
                    match res {
                        Ok(()) => {
                            self.episode.get_or_insert_with(|| Episode::new("disk_full"));
                        }
                        Err(e) => self.fail(&e, refused),
                    }
                    self.hold_record(record, payload);
                    return Ok(());
                }
            } else {
                self.low_warned = false;
            }
        }
        let entry = Entry {
            seq: record.seq,
            boot_ns: record.boot_ns,
            prev_hash: record.integrity.as_ref().map_or("", |i| i.prev_hash.as_str()),
            payload: &payload,
        };
        let mut res = {
            let mut store = self.shared.lock();
            let res = store.append(entry);
            self.shared.publish(&store);
            res
        };
        if self.resuming && res.is_ok() {
            // The loss record must be on disk before the episode is over.
            res = self.shared.lock().flush();
            if res.is_ok() {
                if let Some(ep) = self.episode.take() {
                    info!(sink = %self.name, records = ep.count, reason = ep.reason,
                        secs = ep.duration().as_secs(), "spooling again; a loss record accounts for the gap");
                }
                self.resuming = false;
                return Ok(());
            }
        }
        if let Err(e) = res {
            let refused = self.shared.lock().take_refused();
            self.fail(&e, refused);
        }
        Ok(())
    }

    /// Hands spooled records to the kernel and wakes the sender; never waits for the remote.
    fn flush(&mut self) -> Result<(), SinkError> {
        self.hand_over(Store::flush);
        Ok(())
    }

    /// Spooled and fsynced, then handed to the sender to go before the backlog.
    fn urgent(&mut self, record: &AuditRecord, encoded: &[u8]) -> Result<(), SinkError> {
        // Queued before the spooled records become visible to the sender, so it goes first.
        let payload = self.encoder.encode(record, encoded)?;
        self.shared
            .urgent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Outgoing { seq: record.seq, payload });
        self.hand_over(Store::sync);
        Ok(())
    }

    fn take_dropped(&mut self) -> Vec<(&'static str, u64)> {
        let mut store = self.shared.lock();
        let full = std::mem::take(&mut store.dropped);
        let low = std::mem::take(&mut store.dropped_low_space);
        let damaged = std::mem::take(&mut store.dropped_damaged);
        self.shared.stats.dropped.fetch_add(full + low + damaged, Ordering::Relaxed);
        vec![("sink_spool_full", full), ("disk_full", low), ("spool_damaged", damaged)]
    }

    fn gap_open(&self) -> bool {
        self.episode.is_some()
    }

    fn take_loss(&mut self, stopping: bool) -> Option<SinkLoss> {
        let ep = self.episode.as_mut()?;
        if self.resuming || !(stopping || ep.probe_due()) {
            return None;
        }
        if !self.space.can_write() && !stopping {
            return None;
        }
        // Writing works again, or the sensor stops (then the lane's few MiB may go into the
        // reserve, for the next run to deliver): what the lane holds is spooled first.
        if !self.spool_held() {
            if !stopping {
                return None;
            }
            // Stopping and the disk refuses them: what memory holds may still go out while the
            // sender drains, but no later run can deliver it, so it is counted as missing.
            let held: Vec<(u64, u64, String)> =
                self.shared.memory().iter().map(|h| (h.seq, h.boot_ns, h.prev_hash.clone())).collect();
            if let Some(ep) = self.episode.as_mut() {
                for (seq, boot_ns, prev_hash) in &held {
                    ep.add(*seq, *boot_ns, prev_hash);
                }
                self.unwritten += held.len() as u64;
            }
        }
        let ep = self.episode.as_mut()?;
        if ep.count == 0 {
            self.episode = None;
            return None;
        }
        self.resuming = true;
        self.low_warned = false;
        Some(ep.loss(&self.name))
    }

    fn spool_stats(&self) -> Option<Arc<SpoolStats>> {
        Some(self.stats())
    }

    fn metrics(&self) -> super::SinkMetrics {
        let s = &self.shared.stats;
        super::SinkMetrics {
            spool_bytes: s.spool_bytes.load(std::sync::atomic::Ordering::Relaxed),
            delivered: s.delivered.load(std::sync::atomic::Ordering::Relaxed),
            errors: s.delivery_errors.load(std::sync::atomic::Ordering::Relaxed),
            disk: Some(DiskMetrics {
                free_bytes: self.space.free,
                reserve_bytes: self.space.reserve,
                suspended: self.episode.is_some(),
                unwritten: self.unwritten,
                deleted_files: self.deleted_segments,
            }),
        }
    }
}

impl<E: Encoder> Drop for DurableSink<E> {
    fn drop(&mut self) {
        if let Err(e) = self.shared.lock().flush() {
            error!(sink = %self.name, error = %e, "spool: final write failed");
        }
        if let Some(ep) = &self.episode {
            warn!(sink = %self.name, records = ep.count, reason = ep.reason,
                "stopping while the spool cannot be written: these records are missing from it");
        }
        *self.shared.deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Instant::now() + self.drain);
        self.shared.wake.notify_all();
        if let Some(h) = self.sender.take()
            && h.join().is_err()
        {
            error!(sink = %self.name, "spool sender panicked");
        }
        let mut store = self.shared.lock();
        if let Err(e) = store.sync() {
            error!(sink = %self.name, error = %e, "spool: final fsync failed");
        }
        let left = store.pending_records();
        if left > 0 {
            warn!(sink = %self.name, records = left, spool = %store.dir().display(),
                "closing with undelivered records; the next run delivers them");
        }
    }
}

#[cfg(test)]
mod tests;
