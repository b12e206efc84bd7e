//! `DurableSink<T>`: a [`Transport`] behind an on-disk spool, so a network sink neither blocks
//! the pipeline nor loses records when the remote is down, slow, or the sensor restarts.
//!
//! - The pipeline thread renders each record (`Transport::render`) and appends the payload to
//!   the spool (a buffered write to a local segment file; never a network call).
//! - A sender thread reads the spool in order, delivers batches, and acknowledges what was
//!   delivered; fully delivered segments are deleted.
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

mod store;

use std::{
    collections::VecDeque,
    fs::File,
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

use self::store::{AckFile, Store};
use super::{
    Sink, SinkError,
    spec::SpoolOptions,
    transport::{Outgoing, Transport},
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

/// Counters of one durable sink, shared with its threads (for logs and a metrics endpoint).
#[derive(Debug, Default)]
pub struct SpoolStats {
    /// Bytes of spool segments on disk (bounded by `max_bytes`).
    pub spool_bytes: AtomicU64,
    /// Records in the spool not yet delivered.
    pub pending_records: AtomicU64,
    /// Records delivered (re-sends included).
    pub delivered: AtomicU64,
    /// Failed delivery attempts (each is followed by a reconnect).
    pub delivery_errors: AtomicU64,
    /// Records given up to the full policy.
    pub dropped: AtomicU64,
    /// Whether the last delivery attempt succeeded.
    pub connected: AtomicBool,
}

struct Shared {
    store: Mutex<Store>,
    wake: Condvar,
    /// Set when the sink closes: the sender stops at this instant at the latest.
    deadline: Mutex<Option<Instant>>,
    stats: Arc<SpoolStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish(&self, store: &Store) {
        self.stats.spool_bytes.store(store.total_bytes(), Ordering::Relaxed);
        self.stats.pending_records.store(store.pending_records(), Ordering::Relaxed);
    }
}

/// A network sink: records are spooled on disk and delivered by a sender thread.
pub struct DurableSink<T: Transport> {
    name: String,
    renderer: T,
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    drain: Duration,
}

impl<T: Transport> std::fmt::Debug for DurableSink<T> {
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

impl<T: Transport> DurableSink<T> {
    /// Opens the spool and starts the sender. Takes two instances of the transport: `renderer`
    /// renders on the pipeline thread, `sender` delivers on the sender thread, so rendering
    /// never waits for a network call (transports connect lazily, in `deliver`).
    pub fn open(renderer: T, sender: T, opts: &SpoolOptions) -> Result<Self, SinkError> {
        let name = renderer.name().to_owned();
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
        });
        shared.publish(&shared.lock());
        let thread_shared = shared.clone();
        let sender = std::thread::Builder::new()
            .name("spool-sender".into())
            .spawn(move || run_sender(&thread_shared, sender, &ack))
            .map_err(io)?;
        Ok(Self { name, renderer, shared, sender: Some(sender), drain: DRAIN_ON_CLOSE })
    }

    /// How long closing may keep delivering (default [`DRAIN_ON_CLOSE`]).
    pub fn set_drain_on_close(&mut self, d: Duration) {
        self.drain = d;
    }

    /// Live counters (spool size, delivered, errors, dropped).
    pub fn stats(&self) -> Arc<SpoolStats> {
        self.shared.stats.clone()
    }

    fn io(&self, source: std::io::Error) -> SinkError {
        SinkError::Io { sink: self.name.clone(), source }
    }
}

impl<T: Transport> Sink for DurableSink<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn write(&mut self, record: &AuditRecord, encoded: &[u8]) -> Result<(), SinkError> {
        let payload = self.renderer.render(record, encoded)?;
        let mut store = self.shared.lock();
        let res = store.append(record.seq, &payload);
        self.shared.publish(&store);
        res.map_err(|e| self.io(e))
    }

    /// Hands spooled records to the kernel and wakes the sender; never waits for the remote.
    fn flush(&mut self) -> Result<(), SinkError> {
        let mut store = self.shared.lock();
        let res = store.flush();
        self.shared.publish(&store);
        drop(store);
        self.shared.wake.notify_all();
        res.map_err(|e| self.io(e))
    }

    fn take_dropped(&mut self) -> u64 {
        let n = std::mem::take(&mut self.shared.lock().dropped);
        self.shared.stats.dropped.fetch_add(n, Ordering::Relaxed);
        n
    }

    fn spool_stats(&self) -> Option<Arc<SpoolStats>> {
        Some(self.stats())
    }
}

impl<T: Transport> Drop for DurableSink<T> {
    fn drop(&mut self) {
        if let Err(e) = self.shared.lock().flush() {
            error!(sink = %self.name, error = %e, "spool: final write failed");
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

/// Sleeps `d`, or until the close deadline; false when the deadline has passed.
fn nap(shared: &Shared, d: Duration) -> bool {
    let until = Instant::now() + d;
    loop {
        let now = Instant::now();
        if shared.deadline().is_some_and(|dl| now >= dl) {
            return false;
        }
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

fn run_sender<T: Transport>(shared: &Shared, mut transport: T, ack: &AckFile) {
    let name = transport.name().to_owned();
    let stats = &shared.stats;
    let mut file: Option<(u64, File)> = None;
    let mut recent: VecDeque<(Instant, Outgoing)> = VecDeque::new();
    let mut replay = false;
    let mut backoff = BACKOFF_MIN;
    let mut failing_since: Option<Instant> = None;
    loop {
        // What to send next; wait for the pipeline while there is nothing.
        let plan = {
            let mut store = shared.lock();
            loop {
                if shared.deadline().is_some_and(|d| Instant::now() >= d) {
                    break None;
                }
                match store.plan() {
                    Ok(Some(p)) => break Some(p),
                    Ok(None) => {}
                    Err(e) => error!(sink = %name, error = %e, "spool: deleting a delivered segment failed"),
                }
                shared.publish(&store);
                if shared.deadline().is_some() {
                    break None;
                }
                store = shared
                    .wake
                    .wait_timeout(store, Duration::from_millis(200))
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
        };
        let Some(plan) = plan else { return };
        if file.as_ref().is_none_or(|(id, _)| *id != plan.id) {
            match File::open(&plan.path) {
                Ok(f) => file = Some((plan.id, f)),
                Err(e) => {
                    error!(sink = %name, segment = %plan.path.display(), error = %e, "spool: cannot read segment; skipping it");
                    shared.lock().ack(plan.id, plan.end, 0);
                    continue;
                }
            }
        }
        let Some((_, f)) = file.as_ref() else { continue };
        let (batch, end) = match store::read_batch(f, &plan, BATCH_RECORDS, BATCH_BYTES) {
            Ok(b) => b,
            Err(e) => {
                error!(sink = %name, segment = %plan.path.display(), error = %e, "spool: reading segment failed; skipping it");
                (Vec::new(), plan.end)
            }
        };

        // Deliver, retrying with backoff until it works or the close deadline passes.
        let mut abandoned = false;
        loop {
            if shared.lock().front_id() != Some(plan.id) {
                // The full policy dropped this segment meanwhile (already counted as lost).
                abandoned = true;
                break;
            }
            let res = if replay && !recent.is_empty() {
                let mut all: Vec<Outgoing> = recent.iter().map(|(_, o)| o.clone()).collect();
                all.extend(batch.iter().cloned());
                transport.deliver(&all)
            } else if batch.is_empty() {
                Ok(())
            } else {
                transport.deliver(&batch)
            };
            match res {
                Ok(()) => {
                    if let Some(since) = failing_since.take() {
                        info!(sink = %name, down_secs = since.elapsed().as_secs(), "delivering again");
                    }
                    stats.connected.store(true, Ordering::Relaxed);
                    backoff = BACKOFF_MIN;
                    replay = false;
                    break;
                }
                Err(e) => {
                    stats.delivery_errors.fetch_add(1, Ordering::Relaxed);
                    stats.connected.store(false, Ordering::Relaxed);
                    if failing_since.is_none() {
                        warn!(sink = %name, error = %e, "delivery failed; spooling and retrying");
                        failing_since = Some(Instant::now());
                    }
                    replay = true;
                    if !nap(shared, backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        if abandoned {
            continue;
        }
        stats.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let acked = shared.lock().ack(plan.id, end, batch.len() as u64);
        if acked && let Err(e) = ack.write(plan.id, end) {
            warn!(sink = %name, error = %e, "spool: writing the ack file failed (records may be re-sent)");
        }
        let now = Instant::now();
        recent.extend(batch.into_iter().map(|o| (now, o)));
        while recent.front().is_some_and(|(t, _)| now.duration_since(*t) > REPLAY_WINDOW)
            || recent.len() > REPLAY_MAX
        {
            recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests;
