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
#[derive(Default)]
pub struct Waiters {
    inner: Mutex<HashMap<Hash, Vec<oneshot::Sender<TxLocation>>>>,
}

impl Waiters {
    /// Registers interest in `id`; `None` when `max` waiters are already registered.
    pub fn register(&self, id: Hash, max: usize) -> Option<oneshot::Receiver<TxLocation>> {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= max {
            // Drop the waiters whose requests have gone away before refusing.
            m.retain(|_, v| {
                v.retain(|s| !s.is_closed());
                !v.is_empty()
            });
            if m.len() >= max {
                return None;
            }
        }
        let (tx, rx) = oneshot::channel();
        m.entry(id).or_default().push(tx);
        Some(rx)
    }

    /// Wakes the waiters of a committed transaction.
    pub fn notify(&self, id: &Hash, loc: TxLocation) {
        let senders = {
            let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            m.remove(id)
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
