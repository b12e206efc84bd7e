//! The spool's sender thread: delivers spooled records in order, urgent ones first, then what
//! the memory lane holds; acks what the remote took, backs off and replays after errors, drains
//! until the close deadline.

use std::{
    collections::VecDeque,
    fs::File,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use tracing::{error, info, warn};

use super::{
    BACKOFF_MAX, BACKOFF_MIN, BATCH_BYTES, BATCH_RECORDS, ESCALATE_AFTER, REPLAY_MAX, REPLAY_WINDOW, Shared,
    ack::AckFile, store,
};
use crate::sinks::{
    SinkError,
    transport::{Outgoing, Transport},
};

/// Sends the urgent records ahead of the backlog, one attempt (they are spooled as well).
fn send_urgent<T: Transport>(shared: &Shared, transport: &mut T, name: &str) {
    let batch = shared.take_urgent();
    if batch.is_empty() {
        return;
    }
    match transport.deliver(&batch) {
        Ok(()) => info!(sink = %name, records = batch.len(), "urgent records sent ahead of the spool"),
        Err(e) => warn!(sink = %name, error = %e, "urgent send failed; the records follow from the spool"),
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

pub(super) fn run_sender<T: Transport>(shared: &Shared, transport: T, ack: &AckFile) {
    let mut sender = Sender::new(shared, transport, ack);
    while let Some(work) = sender.next_work() {
        match work {
            Work::Spool(plan) => {
                let Some((batch, end)) = sender.read(&plan) else { continue };
                match sender.deliver(Some(&plan), &batch) {
                    Delivery::Delivered => sender.acknowledge(&plan, end, batch),
                    Delivery::Abandoned => {}
                    Delivery::Closed => return,
                }
            }
            Work::Memory(batch) => match sender.deliver(None, &batch) {
                Delivery::Delivered => sender.acknowledge_held(batch),
                Delivery::Abandoned => {}
                Delivery::Closed => return,
            },
        }
    }
}

/// What the sender does next.
enum Work {
    /// A batch of the spool.
    Spool(store::Plan),
    /// A copy of the oldest records of the memory lane (the spooled backlog is delivered).
    Memory(Vec<Outgoing>),
}

/// How delivering one batch ended.
enum Delivery {
    /// The remote has the batch.
    Delivered,
    /// The full policy dropped the batch's segment meanwhile (already counted as lost).
    Abandoned,
    /// The close deadline passed while retrying.
    Closed,
}

/// The sender thread's state between batches.
struct Sender<'a, T: Transport> {
    shared: &'a Shared,
    transport: T,
    ack: &'a AckFile,
    name: String,
    /// The segment being read, by id.
    file: Option<(u64, File)>,
    /// What was delivered within the last [`REPLAY_WINDOW`], re-sent after an error.
    recent: VecDeque<(Instant, Outgoing)>,
    /// The last delivery failed: the next one starts with `recent`.
    replay: bool,
    backoff: Duration,
    /// When deliveries started failing, and whether that has been logged as an error.
    failing_since: Option<Instant>,
    escalated: bool,
}

impl<'a, T: Transport> Sender<'a, T> {
    fn new(shared: &'a Shared, transport: T, ack: &'a AckFile) -> Self {
        Self {
            shared,
            name: transport.name().to_owned(),
            transport,
            ack,
            file: None,
            recent: VecDeque::new(),
            replay: false,
            backoff: BACKOFF_MIN,
            failing_since: None,
            escalated: false,
        }
    }

    /// What to send next: sends urgent records first, then the spool, then the memory lane, and
    /// waits for the pipeline while there is nothing. `None` once the sink is closing and
    /// nothing is left, or at the deadline.
    fn next_work(&mut self) -> Option<Work> {
        let shared = self.shared;
        let mut store = shared.lock();
        loop {
            if shared.deadline().is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            if !shared.urgent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty() {
                drop(store);
                send_urgent(shared, &mut self.transport, &self.name);
                store = shared.lock();
                continue;
            }
            match store.plan() {
                Ok(Some(p)) => return Some(Work::Spool(p)),
                Ok(None) => {
                    let held = shared.memory().batch(BATCH_RECORDS, BATCH_BYTES);
                    if !held.is_empty() {
                        return Some(Work::Memory(held));
                    }
                }
                Err(e) => error!(sink = %self.name, error = %e, "spool: deleting a delivered segment failed"),
            }
            shared.publish(&store);
            if shared.deadline().is_some() {
                return None;
            }
            store = shared
                .wake
                .wait_timeout(store, Duration::from_millis(200))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Reads the planned batch and the offset after it. A segment that cannot be opened is
    /// skipped (acknowledged) and gives `None`; one that cannot be read gives an empty batch.
    fn read(&mut self, plan: &store::Plan) -> Option<(Vec<Outgoing>, u64)> {
        if self.file.as_ref().is_none_or(|(id, _)| *id != plan.id) {
            match File::open(&plan.path) {
                Ok(f) => self.file = Some((plan.id, f)),
                Err(e) => {
                    error!(sink = %self.name, segment = %plan.path.display(), error = %e, "spool: cannot read segment; skipping it");
                    self.shared.lock().ack(plan.id, plan.end, 0);
                    return None;
                }
            }
        }
        let (_, f) = self.file.as_ref()?;
        Some(match store::read_batch(f, plan, BATCH_RECORDS, BATCH_BYTES) {
            Ok(b) => b,
            Err(e) => {
                error!(sink = %self.name, segment = %plan.path.display(), error = %e, "spool: reading segment failed; skipping it");
                (Vec::new(), plan.end)
            }
        })
    }

    /// Delivers `batch` (after the replay window when the last attempt failed), retrying with
    /// backoff until it works, its segment (`plan`; none for the memory lane) is dropped, or the
    /// close deadline passes.
    fn deliver(&mut self, plan: Option<&store::Plan>, batch: &[Outgoing]) -> Delivery {
        loop {
            if plan.is_some_and(|p| self.shared.lock().front_id() != Some(p.id)) {
                return Delivery::Abandoned;
            }
            let res = if self.replay && !self.recent.is_empty() {
                let mut all: Vec<Outgoing> = self.recent.iter().map(|(_, o)| o.clone()).collect();
                all.extend(batch.iter().cloned());
                self.transport.deliver(&all)
            } else if batch.is_empty() {
                Ok(())
            } else {
                self.transport.deliver(batch)
            };
            match res {
                Ok(()) => {
                    self.succeeded();
                    return Delivery::Delivered;
                }
                Err(e) => {
                    self.failed(&e);
                    if !nap(self.shared, self.backoff) {
                        return Delivery::Closed;
                    }
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn succeeded(&mut self) {
        if let Some(since) = self.failing_since.take() {
            info!(sink = %self.name, down_secs = since.elapsed().as_secs(), "delivering again");
        }
        self.shared.stats.connected.store(true, Ordering::Relaxed);
        self.backoff = BACKOFF_MIN;
        self.replay = false;
    }

    /// Counts and logs a failed delivery: a warning when it starts, an error once it has lasted
    /// [`ESCALATE_AFTER`] (someone has to look: the receiver, a certificate, a firewall).
    fn failed(&mut self, e: &SinkError) {
        let stats = &self.shared.stats;
        stats.delivery_errors.fetch_add(1, Ordering::Relaxed);
        stats.connected.store(false, Ordering::Relaxed);
        match self.failing_since {
            None => {
                warn!(sink = %self.name, error = %e, "delivery failed; spooling and retrying");
                self.failing_since = Some(Instant::now());
                self.escalated = false;
            }
            Some(since) if !self.escalated && since.elapsed() >= ESCALATE_AFTER => {
                error!(sink = %self.name, error = %e, down_secs = since.elapsed().as_secs(),
                    "delivery keeps failing; records are kept in the spool until it works");
                self.escalated = true;
            }
            Some(_) => {}
        }
        self.replay = true;
    }

    /// Counts the delivered batch, acknowledges it (in memory and in the ack file) and keeps it
    /// for the replay window.
    fn acknowledge(&mut self, plan: &store::Plan, end: u64, batch: Vec<Outgoing>) {
        self.shared.stats.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let acked = self.shared.lock().ack(plan.id, end, batch.len() as u64);
        if acked && let Err(e) = self.ack.write(plan.id, end) {
            warn!(sink = %self.name, error = %e, "spool: writing the ack file failed (records may be re-sent)");
        }
        self.remember(batch);
    }

    /// A batch of the memory lane was delivered: the lane forgets it (unless it was spooled
    /// meanwhile; then the spool sends it again).
    fn acknowledge_held(&mut self, batch: Vec<Outgoing>) {
        self.shared.stats.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(last) = batch.last() {
            self.shared.memory().delivered(last.seq);
        }
        self.remember(batch);
    }

    /// Keeps a delivered batch for the replay window.
    fn remember(&mut self, batch: Vec<Outgoing>) {
        let now = Instant::now();
        self.recent.extend(batch.into_iter().map(|o| (now, o)));
        while self.recent.front().is_some_and(|(t, _)| now.duration_since(*t) > REPLAY_WINDOW)
            || self.recent.len() > REPLAY_MAX
        {
            self.recent.pop_front();
        }
    }
}
