//! Transactions gossiped by peers: verified in batches on a dedicated thread, off the
//! consensus path, and admitted to the mempool. Bounded queue, no silent loss under normal
//! load, and nothing verified twice: ids already verified or committed here are skipped.

use crate::app::now_ms;
use crate::mempool::Mempool;
use crate::metrics::Metrics;
use crate::network::NetworkHandle;
use ledger::PublicKey;
use ledger::execute::verify_batch;
use ledger::hash::Hash;
use ledger::store::Store;
use ledger::tx::SignedTx;
use std::collections::{HashSet, VecDeque};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Batches of peer transactions waiting for verification.
pub const INTAKE_QUEUE_BATCHES_MAX: usize = 512;
/// Most transactions verified in one batch.
pub const INTAKE_BATCH_TXS_MAX: usize = 4096;
/// How many recent ids (verified or committed here) are remembered.
pub const SEEN_IDS_MAX: usize = 262_144;

/// A bounded set of recently seen record ids (oldest forgotten first).
#[derive(Default)]
pub struct SeenIds {
    inner: Mutex<(HashSet<Hash>, VecDeque<Hash>)>,
}

impl SeenIds {
    /// Remembers ids.
    pub fn insert_all(&self, ids: impl IntoIterator<Item = Hash>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *g;
        for id in ids {
            if set.insert(id) {
                order.push_back(id);
                if order.len() > SEEN_IDS_MAX
                    && let Some(old) = order.pop_front()
                {
                    set.remove(&old);
                }
            }
        }
    }

    /// Whether an id was seen.
    pub fn contains(&self, id: &Hash) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .contains(id)
    }
}

type Batch = (PublicKey, Vec<SignedTx>);

/// The intake: a queue and the thread that drains it.
pub struct TxIntake {
    queue: SyncSender<Batch>,
    seen: Arc<SeenIds>,
    metrics: Arc<Metrics>,
}

impl TxIntake {
    /// Starts the intake thread.
    pub fn spawn(
        store: Arc<Store>,
        mempool: Arc<Mempool>,
        net: NetworkHandle,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> std::io::Result<Self> {
        let (queue, rx) = sync_channel::<Batch>(INTAKE_QUEUE_BATCHES_MAX);
        let seen = Arc::new(SeenIds::default());
        let worker_seen = seen.clone();
        std::thread::Builder::new()
            .name("tx-intake".into())
            .spawn(move || run(rx, store, mempool, net, worker_seen, wake))?;
        Ok(TxIntake {
            queue,
            seen,
            metrics,
        })
    }

    /// Queues a peer's transactions; drops the batch (counted) only if the queue is full.
    pub fn submit(&self, from: PublicKey, txs: Vec<SignedTx>) {
        match self.queue.try_send((from, txs)) {
            Ok(()) => {}
            Err(TrySendError::Full((_, txs))) => {
                self.metrics.intake_dropped_txs.inc_by(txs.len() as u64);
                warn!(%from, txs = txs.len(), "transaction intake full; dropping a gossip batch");
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// The ids this node has verified or committed recently.
    pub fn seen(&self) -> &Arc<SeenIds> {
        &self.seen
    }
}

fn run(
    rx: Receiver<Batch>,
    store: Arc<Store>,
    mempool: Arc<Mempool>,
    net: NetworkHandle,
    seen: Arc<SeenIds>,
    wake: Arc<Notify>,
) {
    while let Ok(first) = rx.recv() {
        // Take whatever else is queued, up to one verification batch.
        let mut batches = vec![first];
        let mut n = batches[0].1.len();
        while n < INTAKE_BATCH_TXS_MAX {
            match rx.try_recv() {
                Ok(b) => {
                    n += b.1.len();
                    batches.push(b);
                }
                Err(_) => break,
            }
        }
        let mut senders = Vec::with_capacity(n);
        let mut txs = Vec::with_capacity(n);
        for (from, batch) in batches {
            for t in batch {
                let id = t.id();
                if seen.contains(&id) || mempool.contains(&id) {
                    continue;
                }
                senders.push(from);
                txs.push(t);
            }
        }
        if txs.is_empty() {
            continue;
        }
        let now = now_ms();
        let mut admitted = 0usize;
        let mut verified_ids = Vec::with_capacity(txs.len());
        let mut bad_senders = Vec::new();
        for (r, from) in verify_batch(txs).into_iter().zip(senders) {
            match r {
                Ok(vtx) => {
                    verified_ids.push(vtx.id());
                    if mempool.insert(&store, vtx, now).is_ok() {
                        admitted += 1;
                    }
                }
                Err(_) => bad_senders.push(from),
            }
        }
        seen.insert_all(verified_ids);
        bad_senders.dedup();
        for from in bad_senders {
            net.report_invalid(from, "transactions with invalid signatures");
        }
        if admitted > 0 {
            // The driver may be idle, waiting for work to start the next height.
            wake.notify_one();
        }
        debug!(admitted, "peer transactions admitted");
    }
}
