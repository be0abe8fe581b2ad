//! The mempool: verified transactions waiting for a block.
//!
//! * Bounded by count and bytes; when full, admission answers [`MempoolError::Full`]
//!   ("busy, retry") instead of growing.
//! * Deduplicated by record id. Each transaction's signature is verified once, before it
//!   gets here (the [`VerifiedTx`] type guarantees it); blocks reuse the verified copy.
//! * Checked against a **check state**: the committed state plus the writes of every
//!   transaction admitted so far, in admission order. A transaction is admitted only if it
//!   applies on top of all earlier ones, so a proposal built from the mempool in order is
//!   valid, and a clerk learns of a refusal at once.
//! * After each block the committed transactions leave. If the block was a prefix of the
//!   mempool's order, the check state stays valid as it is; otherwise the rest is
//!   re-checked (apply only, no signatures) and whatever no longer applies is dropped.

use ledger::execute::{BlockContext, BlockExecutor, Rejection, VerifiedTx};
use ledger::hash::Hash;
use ledger::state::{Layered, StateView, WriteSet};
use ledger::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Limits of the mempool.
#[derive(Clone, Debug)]
pub struct MempoolLimits {
    /// Most transactions held.
    pub txs_max: usize,
    /// Most bytes of transactions held.
    pub bytes_max: usize,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        Self {
            txs_max: 200_000,
            bytes_max: 128 * 1024 * 1024,
        }
    }
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Full: retry later.
    #[error("the mempool is full ({txs} transactions, {bytes} bytes); retry later")]
    Full {
        /// Transactions held.
        txs: usize,
        /// Bytes held.
        bytes: usize,
    },
    /// Already held (or already committed).
    #[error("transaction {0} is already known")]
    Duplicate(Hash),
    /// The state machine refuses it.
    #[error("{0}")]
    Refused(Rejection),
}

struct Entry {
    vtx: VerifiedTx,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<Hash, Entry>,
    /// Admission order: seq → id.
    order: BTreeMap<u64, Hash>,
    next_seq: u64,
    bytes: usize,
    /// Writes of every admitted transaction, on top of the committed state.
    check_writes: WriteSet,
    /// Height of the committed state the check state is based on.
    base_height: u64,
}

/// The mempool.
pub struct Mempool {
    inner: Mutex<Inner>,
    limits: MempoolLimits,
    chain_id: String,
}

/// A snapshot of the mempool's size.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct MempoolSize {
    /// Transactions.
    pub txs: usize,
    /// Bytes.
    pub bytes: usize,
}

impl Mempool {
    /// An empty mempool for a chain whose committed tip is `base_height`.
    pub fn new(chain_id: String, limits: MempoolLimits, base_height: u64) -> Self {
        Self {
            inner: Mutex::new(Inner {
                base_height,
                ..Inner::default()
            }),
            limits,
            chain_id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every mutation is
        // completed before anything can panic), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a verified transaction if it applies on top of the check state.
    /// `time_ms` is the local clock (the next block's likely time).
    pub fn insert(&self, store: &Store, vtx: VerifiedTx, time_ms: u64) -> Result<(), MempoolError> {
        let mut inner = self.lock();
        let id = vtx.id();
        if inner.by_id.contains_key(&id) {
            return Err(MempoolError::Duplicate(id));
        }
        let len = vtx.bytes().len();
        if inner.by_id.len() >= self.limits.txs_max || inner.bytes + len > self.limits.bytes_max {
            return Err(MempoolError::Full {
                txs: inner.by_id.len(),
                bytes: inner.bytes,
            });
        }
        if store
            .tx_location(&id)
            .map_err(|e| MempoolError::Refused(Rejection::State(state_err(e))))?
            .is_some()
        {
            return Err(MempoolError::Duplicate(id));
        }
        let ctx = BlockContext {
            chain_id: self.chain_id.clone(),
            height: inner.base_height + 1,
            time_ms,
        };
        let writes = {
            let base = Layered {
                base: store.state(),
                top: &inner.check_writes,
            };
            let mut ex = BlockExecutor::new(base, ctx);
            ex.apply(&vtx).map_err(MempoolError::Refused)?;
            ex.into_writes()
        };
        inner.check_writes.extend(writes);
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.insert(seq, id);
        inner.bytes += len;
        inner.by_id.insert(id, Entry { vtx, seq });
        Ok(())
    }

    /// The verified copy of a transaction, if held.
    pub fn get(&self, id: &Hash) -> Option<VerifiedTx> {
        self.lock().by_id.get(id).map(|e| e.vtx.clone())
    }

    /// Whether a transaction is held.
    pub fn contains(&self, id: &Hash) -> bool {
        self.lock().by_id.contains_key(id)
    }

    /// Up to `max_txs` transactions / `max_bytes` bytes, in admission order (for a
    /// proposal).
    pub fn take_for_block(&self, max_txs: usize, max_bytes: usize) -> Vec<VerifiedTx> {
        let inner = self.lock();
        let mut out = Vec::with_capacity(max_txs.min(inner.order.len()));
        let mut bytes = 0;
        for id in inner.order.values() {
            if out.len() >= max_txs {
                break;
            }
            let Some(e) = inner.by_id.get(id) else {
                continue;
            };
            let len = e.vtx.bytes().len();
            if bytes + len > max_bytes {
                break;
            }
            bytes += len;
            out.push(e.vtx.clone());
        }
        out
    }

    /// The next nonce of `key` counting the transactions held.
    pub fn pending_nonce(&self, store: &Store, key: &ledger::PublicKey) -> Result<u64, String> {
        let inner = self.lock();
        let st = Layered {
            base: store.state(),
            top: &inner.check_writes,
        };
        st.next_nonce(key).map_err(|e| e.to_string())
    }

    /// Removes the transactions of a committed block (now at `height`) and re-bases the
    /// check state on the store's new committed state. Returns how many held transactions
    /// were dropped because they no longer apply.
    pub fn on_commit(&self, store: &Store, height: u64, committed: &[Hash], time_ms: u64) -> usize {
        let mut inner = self.lock();
        // Was the block exactly the first `n` of our order?
        let prefix = committed.len() <= inner.order.len()
            && inner
                .order
                .values()
                .zip(committed)
                .all(|(ours, theirs)| ours == theirs);
        for id in committed {
            if let Some(e) = inner.by_id.remove(id) {
                inner.order.remove(&e.seq);
                inner.bytes -= e.vtx.bytes().len();
            }
        }
        inner.base_height = height;
        if prefix {
            // The writes of the remaining transactions, on top of the new committed state,
            // give the same values as before: nothing to re-check.
            if inner.by_id.is_empty() {
                inner.check_writes.clear();
            }
            return 0;
        }
        self.recheck(&mut inner, store, time_ms)
    }

    fn recheck(&self, inner: &mut Inner, store: &Store, time_ms: u64) -> usize {
        let ctx = BlockContext {
            chain_id: self.chain_id.clone(),
            height: inner.base_height + 1,
            time_ms,
        };
        let mut ex = BlockExecutor::new(store.state(), ctx);
        let mut dropped = vec![];
        for (seq, id) in &inner.order {
            if let Some(e) = inner.by_id.get(id)
                && ex.apply(&e.vtx).is_err()
            {
                dropped.push((*seq, *id));
            }
        }
        for (seq, id) in &dropped {
            inner.order.remove(seq);
            if let Some(e) = inner.by_id.remove(id) {
                inner.bytes -= e.vtx.bytes().len();
            }
        }
        inner.check_writes = ex.into_writes();
        dropped.len()
    }

    /// Drops transactions (e.g. ones a block builder found no longer apply) and re-checks
    /// the rest.
    pub fn remove(&self, store: &Store, ids: &[Hash], time_ms: u64) {
        let mut inner = self.lock();
        for id in ids {
            if let Some(e) = inner.by_id.remove(id) {
                inner.order.remove(&e.seq);
                inner.bytes -= e.vtx.bytes().len();
            }
        }
        self.recheck(&mut inner, store, time_ms);
    }

    /// Number of transactions and bytes held.
    pub fn size(&self) -> MempoolSize {
        let inner = self.lock();
        MempoolSize {
            txs: inner.by_id.len(),
            bytes: inner.bytes,
        }
    }

    /// Whether the mempool is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().by_id.is_empty()
    }
}

fn state_err(e: ledger::store::StoreError) -> ledger::state::StateError {
    ledger::state::StateError::Storage(e.to_string())
}
