//! The network actor's mailbox: what callers ask of it, and [`NetworkHandle`], the cheap
//! clonable handle they ask through.
//!
//! Gossip and control travel in separate bounded channels so that a burst of broadcasts can
//! never hold up a sync request or a strike; the allowed set travels in a `watch` channel
//! because only its latest value matters and it must never be lost to a full queue.

use super::{NetError, Result};
use crate::app::PeerInfo;
use crate::messages::{GOSSIP_BYTES_MAX, GossipMsg, SyncRequest, SyncResponse};
use ledger::PublicKey;
use libp2p::{Multiaddr, PeerId};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::warn;

/// Outgoing gossip waiting for the actor. A full queue drops the message.
pub const OUTBOUND_QUEUE_MAX: usize = 4096;
/// Bytes of outgoing gossip waiting for the actor (each message counted once, however many
/// peers it goes to): eight frames of the largest size. Beyond it the message is dropped,
/// as when the queue is full.
pub const OUTBOUND_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Control commands waiting for the actor.
pub const CONTROL_QUEUE_MAX: usize = 256;
/// How long [`NetworkHandle::request_blocks`] waits in all, beyond the protocol's own
/// timeout (which normally answers first).
pub const REQUEST_BLOCKS_TIMEOUT: Duration = Duration::from_secs(35);

/// Gossip to send.
#[derive(Debug)]
pub enum Outbound {
    /// To every connected peer.
    Broadcast(Arc<[u8]>),
    /// To one peer.
    SendTo(PublicKey, Arc<[u8]>),
}

impl Outbound {
    /// The encoded message.
    pub fn bytes(&self) -> &Arc<[u8]> {
        match self {
            Outbound::Broadcast(bytes) | Outbound::SendTo(_, bytes) => bytes,
        }
    }
}

/// Everything else the actor is asked to do.
#[derive(Debug)]
pub enum Control {
    /// Fetch committed blocks from a peer.
    RequestBlocks {
        /// The peer.
        peer: PublicKey,
        /// What to ask.
        req: SyncRequest,
        /// Where the answer goes.
        reply: oneshot::Sender<Result<SyncResponse>>,
    },
    /// The core found a message from `peer` invalid.
    ReportInvalid {
        /// The sender.
        peer: PublicKey,
        /// Why (for the log).
        reason: String,
    },
}

/// What the actor publishes for the handle's synchronous getters.
#[derive(Debug, Default)]
pub struct Shared {
    /// Connected allowed peers.
    pub peers: Mutex<Vec<PeerInfo>>,
    /// Addresses the swarm listens on.
    pub listen_addrs: Mutex<Vec<Multiaddr>>,
    /// Gossip messages dropped because the outbound queue was full, a message was too big,
    /// or its peer was not acknowledging.
    pub dropped_outbound: AtomicU64,
    /// Events dropped because the core was not reading them.
    pub dropped_inbound: AtomicU64,
    /// Bytes of gossip in the outbound queue (bounded by [`OUTBOUND_BYTES_MAX`]).
    pub outbound_bytes: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data is replaced whole under the lock, so a poisoned value is still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Replaces the list of connected peers.
    pub fn set_peers(&self, peers: Vec<PeerInfo>) {
        *lock(&self.peers) = peers;
    }

    /// Adds a listen address.
    pub fn add_listen_addr(&self, addr: Multiaddr) {
        let mut addrs = lock(&self.listen_addrs);
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }

    /// Removes a listen address.
    pub fn remove_listen_addr(&self, addr: &Multiaddr) {
        lock(&self.listen_addrs).retain(|a| a != addr);
    }
}

/// The handle to the network actor. Cheap to clone; the actor stops when every clone is
/// dropped (closing its connections and its listener).
#[derive(Clone, Debug)]
pub struct NetworkHandle {
    outbound: mpsc::Sender<Outbound>,
    control: mpsc::Sender<Control>,
    allowed: Arc<watch::Sender<BTreeSet<PublicKey>>>,
    shared: Arc<Shared>,
    local_peer_id: PeerId,
}

/// The actor's ends of the mailbox.
pub struct Mailbox {
    /// Gossip to send.
    pub outbound: mpsc::Receiver<Outbound>,
    /// Control commands.
    pub control: mpsc::Receiver<Control>,
    /// The allowed set.
    pub allowed: watch::Receiver<BTreeSet<PublicKey>>,
}

impl NetworkHandle {
    /// A handle and the actor's mailbox.
    pub fn new(
        allowed: BTreeSet<PublicKey>,
        shared: Arc<Shared>,
        local_peer_id: PeerId,
    ) -> (Self, Mailbox) {
        let (outbound_tx, outbound_rx) = mpsc::channel(OUTBOUND_QUEUE_MAX);
        let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE_MAX);
        let (allowed_tx, allowed_rx) = watch::channel(allowed);
        (
            NetworkHandle {
                outbound: outbound_tx,
                control: control_tx,
                allowed: Arc::new(allowed_tx),
                shared,
                local_peer_id,
            },
            Mailbox {
                outbound: outbound_rx,
                control: control_rx,
                allowed: allowed_rx,
            },
        )
    }

    fn encode(&self, msg: &GossipMsg) -> Option<Arc<[u8]>> {
        let bytes = msg.encode();
        if bytes.len() > GOSSIP_BYTES_MAX {
            // Every peer would refuse it and count a strike against us.
            self.shared.dropped_outbound.fetch_add(1, Ordering::Relaxed);
            warn!(
                bytes = bytes.len(),
                max = GOSSIP_BYTES_MAX,
                "gossip message too large, dropped"
            );
            return None;
        }
        Some(bytes.into())
    }

    fn enqueue(&self, out: Outbound) {
        let len = out.bytes().len();
        let reserved =
            self.shared
                .outbound_bytes
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                    held.checked_add(len).filter(|&n| n <= OUTBOUND_BYTES_MAX)
                });
        if reserved.is_err() {
            self.shared.dropped_outbound.fetch_add(1, Ordering::Relaxed);
            warn!(
                bytes = len,
                max = OUTBOUND_BYTES_MAX,
                "network outbound queue holds too many bytes, gossip dropped"
            );
            return;
        }
        if let Err(e) = self.outbound.try_send(out) {
            self.shared.outbound_bytes.fetch_sub(len, Ordering::AcqRel);
            self.shared.dropped_outbound.fetch_add(1, Ordering::Relaxed);
            match e {
                mpsc::error::TrySendError::Full(_) => {
                    warn!(
                        queue = OUTBOUND_QUEUE_MAX,
                        "network outbound queue full, gossip dropped"
                    )
                }
                mpsc::error::TrySendError::Closed(_) => {
                    warn!("network stopped, gossip dropped")
                }
            }
        }
    }

    /// Sends `msg` to every connected allowed peer. Never blocks: when the outbound queue is
    /// full the message is dropped (logged and counted in [`Self::dropped_outbound`]).
    pub fn broadcast(&self, msg: GossipMsg) {
        if let Some(bytes) = self.encode(&msg) {
            self.enqueue(Outbound::Broadcast(bytes));
        }
    }

    /// Sends `msg` to `peer` if it is connected; like [`Self::broadcast`] otherwise.
    pub fn send_to(&self, peer: PublicKey, msg: GossipMsg) {
        if let Some(bytes) = self.encode(&msg) {
            self.enqueue(Outbound::SendTo(peer, bytes));
        }
    }

    /// Asks `peer` for committed blocks. Fails if the peer is not connected, does not answer
    /// within the sync timeout, or answers with something undecodable (which also counts a
    /// strike against it). The response is decoded but not verified: that is the caller's.
    pub async fn request_blocks(&self, peer: PublicKey, req: SyncRequest) -> Result<SyncResponse> {
        let (reply, rx) = oneshot::channel();
        self.control
            .send(Control::RequestBlocks { peer, req, reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        match tokio::time::timeout(REQUEST_BLOCKS_TIMEOUT, rx).await {
            Ok(Ok(res)) => res,
            Ok(Err(_)) => Err(NetError::Stopped),
            Err(_) => Err(NetError::Timeout { peer }),
        }
    }

    /// Replaces the set of keys whose nodes may connect; peers no longer in it are
    /// disconnected.
    pub fn set_allowed(&self, keys: BTreeSet<PublicKey>) {
        // Fails only when the actor has stopped, and then there is nothing to update.
        let _ = self.allowed.send(keys);
    }

    /// Reports that `peer` sent an invalid message: one strike (and one count in the
    /// `peer_messages_invalid` metric). Enough strikes within a window disconnect the peer
    /// and refuse it for a while.
    pub fn report_invalid(&self, peer: PublicKey, reason: &str) {
        let cmd = Control::ReportInvalid {
            peer,
            reason: reason.to_owned(),
        };
        if self.control.try_send(cmd).is_err() {
            warn!(peer = %peer, reason, "network control queue full, strike not counted");
        }
    }

    /// The connected allowed peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        lock(&self.shared.peers).clone()
    }

    /// This node's libp2p peer id.
    pub fn local_peer_id(&self) -> String {
        self.local_peer_id.to_string()
    }

    /// The addresses the node listens on (with the actual port when configured with port 0).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        lock(&self.shared.listen_addrs).clone()
    }

    /// Gossip messages dropped since start instead of being sent: the outbound queue was
    /// full, the message was larger than `GOSSIP_BYTES_MAX`, or its peer had too many
    /// messages unacknowledged.
    pub fn dropped_outbound(&self) -> u64 {
        self.shared.dropped_outbound.load(Ordering::Relaxed)
    }

    /// Events from peers dropped since start because the core was not reading them.
    pub fn dropped_inbound(&self) -> u64 {
        self.shared.dropped_inbound.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> (NetworkHandle, Mailbox) {
        let shared = Arc::new(Shared::default());
        NetworkHandle::new(BTreeSet::new(), shared, PeerId::random())
    }

    #[test]
    fn outbound_queue_is_bounded_by_bytes_while_the_actor_does_not_drain_it() {
        let (net, mut mailbox) = handle();
        let frame: Arc<[u8]> = vec![1u8; GOSSIP_BYTES_MAX].into();
        let fits = OUTBOUND_BYTES_MAX / GOSSIP_BYTES_MAX;
        assert!(
            fits < OUTBOUND_QUEUE_MAX,
            "the byte bound is the one reached here"
        );
        for _ in 0..fits + 3 {
            net.enqueue(Outbound::Broadcast(frame.clone()));
        }
        assert_eq!(net.dropped_outbound(), 3);
        assert!(net.shared.outbound_bytes.load(Ordering::Acquire) <= OUTBOUND_BYTES_MAX);
        // Smaller messages still fill what is left, to the byte.
        let room = OUTBOUND_BYTES_MAX - fits * GOSSIP_BYTES_MAX;
        let mut dropped = 3;
        if room > 0 {
            net.enqueue(Outbound::Broadcast(vec![2u8; room].into()));
            assert_eq!(net.dropped_outbound(), dropped);
        }
        assert_eq!(
            net.shared.outbound_bytes.load(Ordering::Acquire),
            OUTBOUND_BYTES_MAX
        );
        net.enqueue(Outbound::Broadcast(vec![3u8; 1].into()));
        dropped += 1;
        assert_eq!(net.dropped_outbound(), dropped);

        // The actor takes one out and releases its bytes (as `on_outbound` does); the
        // queue then takes a large frame again.
        let out = mailbox.outbound.try_recv().expect("queued");
        net.shared
            .outbound_bytes
            .fetch_sub(out.bytes().len(), Ordering::AcqRel);
        net.enqueue(Outbound::Broadcast(frame.clone()));
        assert_eq!(net.dropped_outbound(), dropped);
        net.enqueue(Outbound::Broadcast(frame));
        assert_eq!(net.dropped_outbound(), dropped + 1);
    }

    #[test]
    fn a_message_that_cannot_be_queued_releases_its_bytes() {
        let (net, mailbox) = handle();
        drop(mailbox);
        net.enqueue(Outbound::Broadcast(vec![0u8; 1000].into()));
        assert_eq!(net.dropped_outbound(), 1);
        assert_eq!(net.shared.outbound_bytes.load(Ordering::Acquire), 0);
    }
}
