//! What the parts of a running node share: the store, the mempool, the node's status, the
//! waiters for commits, metrics, and the channel that carries newly admitted
//! transactions to the network.

use crate::config::ApiConfig;
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use ledger::execute::VerifiedTx;
use ledger::genesis::Genesis;
use ledger::hash::Hash;
use ledger::store::{Store, TxLocation};
use ledger::{PublicKey, Validator};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot, watch};

/// Bound of the channel of admitted transactions waiting to be gossiped.
pub const ANNOUNCE_QUEUE_MAX: usize = 1024;

/// A connected peer.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its ed25519 key.
    pub key: PublicKey,
    /// Its libp2p peer id.
    pub peer_id: String,
}

/// The node's view of the chain, published after every change.
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    /// Height of the last committed block.
    pub height: u64,
    /// Its hash.
    pub block_hash: Hash,
    /// Its time.
    pub block_time_ms: u64,
    /// Log size after it.
    pub log_size: u64,
    /// Log root after it.
    pub log_root: Hash,
    /// State root after it.
    pub state_root: Hash,
    /// Consensus round at `height + 1`.
    pub round: u32,
    /// Whether the node is catching up from peers.
    pub syncing: bool,
    /// Connected peers.
    pub peers: Vec<PeerInfo>,
    /// The validator set in force at `height + 1`.
    pub validators: Vec<Validator>,
}

/// Waiters for transactions to commit (`wait=true` submissions).
///
/// A waiter whose request has gone away (answered, timed out after at most
/// `WAIT_TIMEOUT_MAX_MS`, or disconnected) leaves a closed sender behind; those are swept
/// every [`WAITERS_SWEEP_EVERY`] registrations and whenever the table is full, so the
/// table holds at most `max` transactions and its dead entries do not outlive the next
/// sweep.
#[derive(Default)]
pub struct Waiters {
    inner: Mutex<WaiterTable>,
}

#[derive(Default)]
struct WaiterTable {
    by_tx: HashMap<Hash, Vec<oneshot::Sender<TxLocation>>>,
    registrations: u64,
}

/// How many registrations pass between two sweeps of closed waiters.
pub const WAITERS_SWEEP_EVERY: u64 = 256;

impl WaiterTable {
    fn sweep(&mut self) {
        self.by_tx.retain(|_, v| {
            v.retain(|s| !s.is_closed());
            !v.is_empty()
        });
    }
}

impl Waiters {
    /// Registers interest in `id`; `None` when `max` waiters are already registered.
    pub fn register(&self, id: Hash, max: usize) -> Option<oneshot::Receiver<TxLocation>> {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.registrations = m.registrations.wrapping_add(1);
        if m.by_tx.len() >= max || m.registrations.is_multiple_of(WAITERS_SWEEP_EVERY) {
            // Drop the waiters whose requests have gone away (before refusing).
            m.sweep();
            if m.by_tx.len() >= max {
                return None;
            }
        }
        let (tx, rx) = oneshot::channel();
        m.by_tx.entry(id).or_default().push(tx);
        Some(rx)
    }

    /// Registered transactions, closed waiters included until the next sweep.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_tx
            .len()
    }

    /// Wakes the waiters of a committed transaction.
    pub fn notify(&self, id: &Hash, loc: TxLocation) {
        let senders = {
            let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            m.by_tx.remove(id)
        };
        for s in senders.into_iter().flatten() {
            let _ = s.send(loc);
        }
    }

    /// Whether anyone waits (lets the committer skip the lookups).
    pub fn is_empty(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_tx
            .is_empty()
    }
}

/// The shared context of a node.
pub struct App {
    /// The genesis.
    pub genesis: Arc<Genesis>,
    /// Its hash.
    pub genesis_hash: Hash,
    /// The store.
    pub store: Arc<Store>,
    /// The mempool.
    pub mempool: Arc<Mempool>,
    /// This node's key.
    pub node_key: PublicKey,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// The latest status.
    pub status: watch::Receiver<NodeStatus>,
    /// Commit waiters.
    pub waiters: Waiters,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// API limits.
    pub api_config: ApiConfig,
    /// Newly admitted transactions, for the network to gossip.
    pub announce: mpsc::Sender<Vec<VerifiedTx>>,
    /// Whether the node makes progress (`/healthz`).
    pub health: crate::health::Health,
}

impl App {
    /// Hands admitted transactions to the network. If the queue is full they are not
    /// gossiped now; they stay in this node's mempool and reach a block when this node
    /// proposes.
    pub fn announce_txs(&self, txs: Vec<VerifiedTx>) {
        if !txs.is_empty() {
            let _ = self.announce.try_send(txs);
        }
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_waiters_are_swept_by_age_not_only_when_full() {
        let w = Waiters::default();
        // Requests that went away (their receivers dropped), well under the cap.
        for i in 0..(WAITERS_SWEEP_EVERY - 1) {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&i.to_le_bytes());
            drop(w.register(Hash(id), 10_000).expect("room"));
        }
        assert_eq!(w.len() as u64, WAITERS_SWEEP_EVERY - 1);
        // One live waiter: the next registration sweeps the dead ones.
        let live = w.register(Hash([0xff; 32]), 10_000).expect("room");
        assert_eq!(w.len(), 1);
        // At the cap, a live waiter is never swept and a new one is refused.
        assert!(w.register(Hash([0xfe; 32]), 1).is_none());
        drop(live);
        assert!(w.register(Hash([0xfe; 32]), 1).is_some());
    }
}
