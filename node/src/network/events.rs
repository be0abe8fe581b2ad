//! The queue of events from the network actor to the core, bounded by count **and** bytes.
//!
//! Events go into a channel of [`EVENTS_CHANNEL_CAPACITY`]; when the core falls behind they
//! wait in the actor's backlog (at most [`EVENTS_BACKLOG_MAX`]). A gossip event weighs its
//! frame's length on the wire, and the weight of everything queued (channel and backlog
//! together) stays within [`EVENTS_BYTES_MAX`]: with frames of up to 16 MiB, a count bound
//! alone would let a slow core hold gigabytes. What does not fit is dropped and counted
//! (the node recovers a dropped proposal by fetching the decided block by hash, a dropped
//! vote from the next round's gossip). Peer connections and disconnections weigh nothing
//! and are never dropped for bytes.

use super::NetEvent;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// Events waiting for the core in the channel.
pub const EVENTS_CHANNEL_CAPACITY: usize = 1024;
/// Events waiting in the actor once that channel is full; beyond this, events are dropped
/// (the core is hopelessly behind).
pub const EVENTS_BACKLOG_MAX: usize = 4096;
/// Bytes of gossip waiting for the core, in the channel and the backlog together: eight
/// proposals of the largest block.
pub const EVENTS_BYTES_MAX: usize = 128 * 1024 * 1024;

/// Why an event was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dropped {
    /// The backlog holds [`EVENTS_BACKLOG_MAX`] events.
    Count,
    /// Queuing it would exceed the byte bound.
    Bytes,
}

/// The actor's end.
pub struct EventSender {
    tx: mpsc::Sender<(NetEvent, usize)>,
    backlog: VecDeque<(NetEvent, usize)>,
    queued_bytes: Arc<AtomicUsize>,
    count_max: usize,
    bytes_max: usize,
}

/// The core's end: hands out events and releases their weight.
pub struct NetEvents {
    rx: mpsc::Receiver<(NetEvent, usize)>,
    queued_bytes: Arc<AtomicUsize>,
}

/// A queue with the node's bounds.
pub fn channel() -> (EventSender, NetEvents) {
    channel_with(
        EVENTS_CHANNEL_CAPACITY,
        EVENTS_BACKLOG_MAX,
        EVENTS_BYTES_MAX,
    )
}

/// A queue with explicit bounds (tests).
pub fn channel_with(
    capacity: usize,
    backlog_max: usize,
    bytes_max: usize,
) -> (EventSender, NetEvents) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    (
        EventSender {
            tx,
            backlog: VecDeque::new(),
            queued_bytes: queued_bytes.clone(),
            count_max: backlog_max,
            bytes_max,
        },
        NetEvents { rx, queued_bytes },
    )
}

impl EventSender {
    /// Queues an event of `bytes` on the wire (0 for connection events).
    pub fn emit(&mut self, ev: NetEvent, bytes: usize) -> Result<(), Dropped> {
        if bytes > 0
            && self
                .queued_bytes
                .load(Ordering::Acquire)
                .saturating_add(bytes)
                > self.bytes_max
        {
            return Err(Dropped::Bytes);
        }
        if !self.backlog.is_empty() && self.backlog.len() >= self.count_max {
            return Err(Dropped::Count);
        }
        // Counted before it can be received, so the receiver never releases more than held.
        self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if self.backlog.is_empty() {
            match self.tx.try_send((ev, bytes)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                }
                Err(mpsc::error::TrySendError::Full(item)) => self.backlog.push_back(item),
            }
        } else {
            self.backlog.push_back((ev, bytes));
        }
        Ok(())
    }

    /// Whether events wait in the backlog.
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Waits for room in the channel and moves the oldest backlogged event into it. Returns
    /// `false` once the core is gone (the backlog is then cleared). Cancel-safe.
    pub async fn flush_one(&mut self) -> bool {
        match self.tx.reserve().await {
            Ok(permit) => {
                if let Some(item) = self.backlog.pop_front() {
                    permit.send(item);
                }
                true
            }
            Err(_) => {
                let held: usize = self.backlog.drain(..).map(|(_, b)| b).sum();
                self.queued_bytes.fetch_sub(held, Ordering::AcqRel);
                false
            }
        }
    }

    /// Events in the backlog.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }
}

impl NetEvents {
    /// The next event; `None` once the network has stopped.
    pub async fn recv(&mut self) -> Option<NetEvent> {
        let (ev, bytes) = self.rx.recv().await?;
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        Some(ev)
    }

    /// The next event if one is ready.
    pub fn try_recv(&mut self) -> Result<NetEvent, mpsc::error::TryRecvError> {
        let (ev, bytes) = self.rx.try_recv()?;
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        Ok(ev)
    }

    /// Bytes of gossip queued for the core (channel and backlog).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{GossipMsg, Status};
    use ledger::PublicKey;

    fn gossip(h: u64) -> NetEvent {
        NetEvent::Gossip {
            from: PublicKey([7; 32]),
            msg: GossipMsg::Status(Status {
                height: h,
                block_hash: ledger::hash::Hash::ZERO,
                round: 0,
                commit: None,
            }),
        }
    }

    #[tokio::test]
    async fn bytes_queued_for_a_core_that_does_not_read_stay_within_the_bound() {
        let (mut tx, mut rx) = channel_with(4, 1000, 10 * 1024);
        // A flood of 1 KiB frames while the core reads nothing: 10 fit (channel 4, backlog
        // 6), the rest is refused by bytes although the backlog has room by count.
        let mut dropped = 0;
        for h in 0..100 {
            if tx.emit(gossip(h), 1024) == Err(Dropped::Bytes) {
                dropped += 1;
            }
            assert!(rx.queued_bytes() <= 10 * 1024);
        }
        assert_eq!(dropped, 90);
        assert_eq!(tx.backlog_len(), 6);
        // Connection events weigh nothing and still get through.
        tx.emit(NetEvent::PeerConnected(PublicKey([1; 32])), 0)
            .unwrap();
        // The core reads: weight is released as events are handed out, in order.
        let mut seen = Vec::new();
        for _ in 0..11 {
            while rx.try_recv().map(|ev| seen.push(ev)).is_ok() {}
            if tx.has_backlog() {
                assert!(tx.flush_one().await);
            }
        }
        assert_eq!(seen.len(), 11);
        assert_eq!(seen[0], gossip(0));
        assert_eq!(seen[9], gossip(9));
        assert_eq!(seen[10], NetEvent::PeerConnected(PublicKey([1; 32])));
        assert_eq!(rx.queued_bytes(), 0);
        // Room again.
        tx.emit(gossip(100), 1024).unwrap();
    }

    #[tokio::test]
    async fn the_count_bound_holds_for_weightless_events_and_a_gone_core_releases_all() {
        let (mut tx, rx) = channel_with(1, 3, usize::MAX);
        let peer = |i: u8| NetEvent::PeerDisconnected(PublicKey([i; 32]));
        tx.emit(peer(0), 0).unwrap();
        for i in 1..=3 {
            tx.emit(peer(i), 0).unwrap();
        }
        assert_eq!(tx.emit(peer(4), 0), Err(Dropped::Count));
        tx.emit(gossip(1), 0).unwrap_err();
        let queued = rx.queued_bytes.clone();
        drop(rx);
        assert!(!tx.flush_one().await);
        assert!(!tx.has_backlog());
        assert_eq!(queued.load(Ordering::Acquire), 0);
    }
}
