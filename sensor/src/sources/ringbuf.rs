//! Ring-buffer reader: waits on the map's fd with `AsyncFd`, and also drains on a short timer
//! because the programs skip wakeups for small batches (see `sensor-ebpf/src/emit.rs`).

use std::{sync::Arc, time::Duration};

use aya::maps::{MapData, RingBuf};
use tokio::sync::{mpsc, watch};
use tracing::warn;

use crate::{
    decode,
    enrich::clock::BootClock,
    flow::{BulkMark, LineageMark, LossReport, PipelineEvent},
    handover::Handover,
    ratelimit::RateLimited,
    stats::Stats,
};

pub use crate::flow::Ring;

/// An event is stamped, then reserved and committed in the ring within microseconds: the
/// lineage and bulk marks stay this far behind the time the ring was found empty.
const MARK_MARGIN_NS: u64 = 1_000_000;

/// Most events decoded before they are handed on (bounds the local batch).
const BATCH: usize = 1024;

/// Queue slots a reader waits for at once. While the record stage is the bottleneck the queue
/// is full: sending one event at a time would wake the reader for every slot the record stage
/// frees (a futex and an epoll round trip per record); waiting for a chunk wakes it once per
/// chunk.
const SEND_CHUNK: usize = 256;

/// Reads `ring` until `stop` turns true, then drains what is left and returns.
pub async fn run(
    which: Ring,
    ring: RingBuf<MapData>,
    tx: mpsc::Sender<PipelineEvent>,
    ctx: Arc<ReadContext>,
    mut stop: watch::Receiver<bool>,
    drain_every: Duration,
) -> anyhow::Result<()> {
    let stats = &ctx.stats;
    let seen = Seen { which, stats, handover: &ctx.handover, ignore_tgid: ctx.ignore_tgid };
    let mut fd = super::readable(ring)?;
    let mut tick = tokio::time::interval(drain_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(BATCH);
    let mut bad = RateLimited::default();
    loop {
        let stopping = tokio::select! {
            guard = fd.readable_mut() => {
                let mut guard = guard?;
                drain(&seen, guard.get_inner_mut(), &mut batch, &mut bad);
                guard.clear_ready();
                false
            }
            _ = tick.tick() => {
                drain(&seen, fd.get_mut(), &mut batch, &mut bad);
                false
            }
            _ = stop.changed() => true,
        };
        loop {
            if send_all(&tx, &mut batch).await.is_err() {
                return Ok(()); // pipeline gone: shutting down
            }
            // A full batch means more may be waiting; on stop, empty the ring completely.
            let before = BootClock::boot_ns_now();
            drain(&seen, fd.get_mut(), &mut batch, &mut bad);
            if batch.is_empty() {
                // Everything stamped before `before` (less a margin for events stamped but not
                // yet committed) has been read and queued.
                let mark = before.saturating_sub(MARK_MARGIN_NS);
                match which {
                    Ring::Proc => ctx.lineage_mark.advance(mark),
                    Ring::File | Ring::Net => ctx.bulk_mark.advance(which, mark),
                }
                break;
            }
        }
        if stopping {
            return Ok(());
        }
    }
}

/// Hands every event of `batch` on, in order, waiting for free slots a chunk at a time.
async fn send_all(
    tx: &mpsc::Sender<PipelineEvent>,
    batch: &mut Vec<PipelineEvent>,
) -> Result<(), mpsc::error::SendError<()>> {
    let mut events = batch.drain(..);
    loop {
        let n = events.len().min(SEND_CHUNK).min(tx.max_capacity());
        if n == 0 {
            return Ok(());
        }
        for (permit, ev) in tx.reserve_many(n).await?.zip(events.by_ref()) {
            permit.send(ev);
        }
    }
}

/// What the readers share.
#[derive(Debug)]
pub struct ReadContext {
    pub stats: Arc<Stats>,
    pub handover: Arc<Handover>,
    /// Advanced by the process reader whenever it finds its ring empty (see [`LineageMark`]).
    pub lineage_mark: LineageMark,
    /// Advanced by the file and network readers whenever they find their rings empty.
    pub bulk_mark: BulkMark,
    /// The sensor's own process (0: none): its events are dropped here too, because adopted
    /// programs name the previous sensor until this one has claimed them.
    pub ignore_tgid: u32,
}

/// Where a reader counts what it reads.
struct Seen<'a> {
    which: Ring,
    stats: &'a Stats,
    /// Counted before the item leaves the ring: a crash in between counts it twice (read here
    /// and again by the next run), never not at all.
    handover: &'a Handover,
    ignore_tgid: u32,
}

/// Decodes up to [`BATCH`] items into `batch`.
fn drain(
    seen: &Seen<'_>,
    ring: &mut RingBuf<MapData>,
    batch: &mut Vec<PipelineEvent>,
    bad: &mut RateLimited,
) {
    let (which, stats) = (seen.which, seen.stats);
    while batch.len() < BATCH {
        let Some(item) = ring.next() else { break };
        stats.add_kernel_bytes(which, item.len());
        match decode::decode(&item) {
            Ok(ev) if seen.ignore_tgid != 0 && ev.header().tgid == seen.ignore_tgid => {}
            Ok(ev) => {
                stats.add_event(ev.kind());
                seen.handover.read(ev.kind());
                batch.push(PipelineEvent::Kernel(ev));
            }
            Err(e) => {
                stats.decode_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(suppressed) = bad.allow() {
                    // Each one is also counted in a loss record (kind "unknown").
                    warn!(ring = which.name(), error = %e, len = item.len(), suppressed,
                        "undecodable kernel event");
                }
                let now = BootClock::boot_ns_now();
                batch.push(PipelineEvent::Loss(LossReport {
                    kind: "unknown",
                    reason: "decode_error",
                    count: 1,
                    first_boot_ns: now,
                    last_boot_ns: now,
                }));
            }
        }
    }
}
