//! Two bounded queues from the sources to the record stage: lineage (process events and loss
//! reports) before bulk (file events). Under overload the bulk queue backs up into the file ring
//! buffer, where the kernel sheds and counts file events, while lineage keeps flowing.

use tokio::sync::mpsc::{self, Receiver, Sender, error::TryRecvError};

use crate::flow::PipelineEvent;

/// Senders: one per priority.
#[derive(Debug, Clone)]
pub struct PrioritySenders {
    pub lineage: Sender<PipelineEvent>,
    pub bulk: Sender<PipelineEvent>,
}

/// The record stage's end.
#[derive(Debug)]
pub struct PriorityReceiver {
    lineage: Receiver<PipelineEvent>,
    bulk: Receiver<PipelineEvent>,
    lineage_open: bool,
    bulk_open: bool,
}

/// Two queues of `capacity` events each.
pub fn priority_queues(capacity: usize) -> (PrioritySenders, PriorityReceiver) {
    let (lt, lr) = mpsc::channel(capacity);
    let (bt, br) = mpsc::channel(capacity);
    (
        PrioritySenders { lineage: lt, bulk: bt },
        PriorityReceiver { lineage: lr, bulk: br, lineage_open: true, bulk_open: true },
    )
}

/// What a non-blocking receive found.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "returned by value and consumed at once; boxing would allocate per event"
)]
pub enum Polled {
    Event(PipelineEvent),
    Empty,
    Closed,
}

impl PriorityReceiver {
    /// Events waiting in the lineage and bulk queues.
    pub fn depths(&self) -> (usize, usize) {
        (self.lineage.len(), self.bulk.len())
    }

    /// Whether every lineage event queued so far has been taken.
    pub fn lineage_is_empty(&self) -> bool {
        self.lineage.is_empty()
    }

    /// Whether every bulk event queued so far has been taken.
    pub fn bulk_is_empty(&self) -> bool {
        self.bulk.is_empty()
    }

    /// The next event without waiting, lineage first.
    pub fn try_next(&mut self) -> Polled {
        for (rx, open) in [(&mut self.lineage, &mut self.lineage_open), (&mut self.bulk, &mut self.bulk_open)]
        {
            if !*open {
                continue;
            }
            match rx.try_recv() {
                Ok(ev) => return Polled::Event(ev),
                Err(TryRecvError::Disconnected) => *open = false,
                Err(TryRecvError::Empty) => {}
            }
        }
        if self.lineage_open || self.bulk_open { Polled::Empty } else { Polled::Closed }
    }

    /// Waits for the next event, lineage first; `None` once both queues are closed and empty.
    pub async fn next(&mut self) -> Option<PipelineEvent> {
        loop {
            if !self.lineage_open && !self.bulk_open {
                return None;
            }
            tokio::select! {
                biased;
                ev = self.lineage.recv(), if self.lineage_open => match ev {
                    Some(ev) => return Some(ev),
                    None => self.lineage_open = false,
                },
                ev = self.bulk.recv(), if self.bulk_open => match ev {
                    Some(ev) => return Some(ev),
                    None => self.bulk_open = false,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::LossReport;

    fn loss(count: u64) -> PipelineEvent {
        PipelineEvent::Loss(LossReport {
            kind: "file",
            reason: "test",
            count,
            first_boot_ns: 0,
            last_boot_ns: 0,
        })
    }

    #[tokio::test]
    async fn lineage_goes_first_and_both_drain_before_close() {
        let (tx, mut rx) = priority_queues(8);
        tx.bulk.send(loss(1)).await.expect("send");
        tx.bulk.send(loss(2)).await.expect("send");
        tx.lineage.send(loss(3)).await.expect("send");
        drop(tx);
        let mut order = Vec::new();
        while let Some(PipelineEvent::Loss(l)) = rx.next().await {
            order.push(l.count);
        }
        assert_eq!(order, vec![3, 1, 2]);
        assert!(matches!(rx.try_next(), Polled::Closed));
    }
}
