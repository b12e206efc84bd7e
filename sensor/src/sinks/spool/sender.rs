//! The spool's sender thread: delivers spooled records in order, urgent ones first, acks what
//! the remote took, backs off and replays after errors, drains until the close deadline.

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
use crate::sinks::transport::{Outgoing, Transport};

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

pub(super) fn run_sender<T: Transport>(shared: &Shared, mut transport: T, ack: &AckFile) {
    let name = transport.name().to_owned();
    let stats = &shared.stats;
    let mut file: Option<(u64, File)> = None;
    let mut recent: VecDeque<(Instant, Outgoing)> = VecDeque::new();
    let mut replay = false;
    let mut backoff = BACKOFF_MIN;
    let mut failing_since: Option<Instant> = None;
    let mut escalated = false;
    loop {
        // What to send next; wait for the pipeline while there is nothing.
        let plan = {
            let mut store = shared.lock();
            loop {
                if shared.deadline().is_some_and(|d| Instant::now() >= d) {
                    break None;
                }
                if !shared.urgent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty() {
                    drop(store);
                    send_urgent(shared, &mut transport, &name);
                    store = shared.lock();
                    continue;
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
                    match failing_since {
                        None => {
                            warn!(sink = %name, error = %e, "delivery failed; spooling and retrying");
                            failing_since = Some(Instant::now());
                            escalated = false;
                        }
                        // Still failing after a minute: someone has to look (the receiver, a
                        // certificate, a firewall).
                        Some(since) if !escalated && since.elapsed() >= ESCALATE_AFTER => {
                            error!(sink = %name, error = %e, down_secs = since.elapsed().as_secs(),
                                "delivery keeps failing; records are kept in the spool until it works");
                            escalated = true;
                        }
                        Some(_) => {}
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
