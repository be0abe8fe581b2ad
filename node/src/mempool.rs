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
//! * After each block the committed transactions leave. If every one of them had been
//!   admitted here, the check state already holds their effects and stays as it is;
//!   otherwise (and every few blocks regardless) the rest is re-checked (apply only, no
//!   signatures) and whatever no longer applies is dropped.

use ledger::execute::{BlockContext, BlockExecutor, Rejection, VerifiedTx};
use ledger::hash::Hash;
use ledger::state::{Layered, StateView, WriteSet};
use ledger::store::Store;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Without foreign transactions in blocks, the check state is still rebuilt this often.
pub const RECHECK_EVERY_BLOCKS: u64 = 16;
/// The check state is rebuilt when it holds more than this many writes per held
/// transaction (plus a constant).
pub const CHECK_WRITES_PER_TX_MAX: usize = 4;

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
    /// `time_ms` is the local clock; the transaction is checked at the next block's
    /// earliest time, `max(time_ms, tip time + 1)`, so that before a genesis time in the
    /// future a transaction that expires before the chain can include it is refused as
    /// `expired` instead of admitted and silently dropped.
    pub fn insert(&self, store: &Store, vtx: VerifiedTx, time_ms: u64) -> Result<(), MempoolError> {
        self.insert_or_return(store, vtx, time_ms)
            .map_err(|refused| refused.0)
    }

    /// [`Mempool::insert`], handing the transaction back when it is not admitted (the
    /// intake parks those whose nonce is only ahead).
    pub fn insert_or_return(
        &self,
        store: &Store,
        vtx: VerifiedTx,
        time_ms: u64,
    ) -> Result<(), Box<(MempoolError, VerifiedTx)>> {
        let time_ms = next_block_time_ms(store, time_ms);
        let mut inner = self.lock();
        let id = vtx.id();
        if inner.by_id.contains_key(&id) {
            return Err(Box::new((MempoolError::Duplicate(id), vtx)));
        }
        let len = vtx.bytes().len();
        if inner.by_id.len() >= self.limits.txs_max || inner.bytes + len > self.limits.bytes_max {
            let full = MempoolError::Full {
                txs: inner.by_id.len(),
                bytes: inner.bytes,
            };
            return Err(Box::new((full, vtx)));
        }
        match store.tx_location(&id) {
            Err(e) => {
                return Err(Box::new((
                    MempoolError::Refused(Rejection::State(state_err(e))),
                    vtx,
                )));
            }
            Ok(Some(_)) => return Err(Box::new((MempoolError::Duplicate(id), vtx))),
            Ok(None) => {}
        }
        let ctx = BlockContext {
            chain_id: self.chain_id.clone(),
            height: inner.base_height + 1,
            time_ms,
            // Checks only (`for_checks`): no history heads, so no leaf index is needed.
            first_leaf: 0,
            state_format: store.state_format(),
        };
        let applied = {
            let base = Layered {
                base: store.state(),
                top: &inner.check_writes,
            };
            let mut ex = BlockExecutor::for_checks(base, ctx);
            ex.apply(&vtx).map(|_| ex.into_writes())
        };
        let writes = match applied {
            Ok(w) => w,
            Err(r) => return Err(Box::new((MempoolError::Refused(r), vtx))),
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
        // Were all of the block's transactions admitted here? Then the check state (the
        // committed state before the block plus every admitted transaction) already
        // contains their effects, and the remaining transactions were checked on top of
        // them. If the block ordered them differently from our admission order, the check
        // state may differ in rare non-commuting cases; that only affects the advice the
        // API gives, never a block (blocks are always fully re-executed), and the periodic
        // rebuild below bounds how long it lasts.
        let all_admitted_here = committed.iter().all(|id| inner.by_id.contains_key(id));
        for id in committed {
            if let Some(e) = inner.by_id.remove(id) {
                inner.order.remove(&e.seq);
                inner.bytes -= e.vtx.bytes().len();
            }
        }
        inner.base_height = height;
        if inner.by_id.is_empty() {
            inner.check_writes.clear();
            return 0;
        }
        // The check state also keeps the writes of committed transactions (now in the
        // store, with the same values); rebuild it from time to time so it stays small.
        let bloated = inner.check_writes.len() > CHECK_WRITES_PER_TX_MAX * inner.by_id.len() + 4096;
        let periodic = height.is_multiple_of(RECHECK_EVERY_BLOCKS);
        if all_admitted_here && !bloated && !periodic {
            return 0;
        }
        self.recheck(&mut inner, store, time_ms)
    }

    fn recheck(&self, inner: &mut Inner, store: &Store, time_ms: u64) -> usize {
        let time_ms = next_block_time_ms(store, time_ms);
        let ctx = BlockContext {
            chain_id: self.chain_id.clone(),
            height: inner.base_height + 1,
            time_ms,
            // Checks only (`for_checks`): no history heads, so no leaf index is needed.
            first_leaf: 0,
            state_format: store.state_format(),
        };
        let mut ex = BlockExecutor::for_checks(store.state(), ctx);
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

/// The time the next block is checked at: the local clock, but never before the tip's
/// time + 1 (the earliest time the next block may carry; after a genesis in the future,
/// that is the genesis time). A store that does not answer leaves the clock as it is: the
/// checks that follow read the store and report it.
fn next_block_time_ms(store: &Store, now_ms: u64) -> u64 {
    match store.stored_tip() {
        Ok(t) => now_ms.max(t.time_ms.saturating_add(1)),
        Err(_) => now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::chain::build_block;
    use ledger::crypto::SecretKey;
    use ledger::genesis::{ConsensusParams, Department, Genesis, Member, StateFormat};
    use ledger::tx::{LandRegister, RoleSet, Tx, TxBody};
    use ledger::validator::Validator;
    use ledger::vote::{CommitCertificate, Vote, VoteType};

    struct Fx {
        store: Store,
        genesis: Genesis,
        val: SecretKey,
        clerks: Vec<SecretKey>,
        _dir: tempfile::TempDir,
    }

    fn fx() -> Fx {
        let val = SecretKey::from_seed(&[1; 32]);
        let clerks: Vec<SecretKey> = (2..4).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let genesis = Genesis {
            chain_id: "mp".into(),
            genesis_time_ms: 1000,
            departments: vec![Department {
                id: "d".into(),
                name: "D".into(),
                governance_weight: 1,
            }],
            members: clerks
                .iter()
                .map(|k| Member {
                    key: k.public_key(),
                    department: "d".into(),
                    roles: RoleSet::all(),
                    name: String::new(),
                })
                .collect(),
            validators: vec![Validator {
                department: "d".into(),
                public_key: val.public_key(),
                power: 1,
                address: String::new(),
            }],
            params: ConsensusParams::default(),
            state_format: StateFormat::CURRENT,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &genesis).unwrap();
        Fx {
            store,
            genesis,
            val,
            clerks,
            _dir: dir,
        }
    }

    fn register(k: &SecretKey, nonce: u64, parcel: &str) -> VerifiedTx {
        VerifiedTx::verify(
            Tx {
                chain_id: "mp".into(),
                signer: k.public_key(),
                nonce,
                created_at_ms: 0,
                expires_at_ms: u64::MAX,
                body: TxBody::LandRegister(LandRegister {
                    parcel_id: parcel.into(),
                    owner: "o".into(),
                    document_hash: ledger::Hash([0; 32]),
                }),
            }
            .sign(k),
        )
        .unwrap()
    }

    fn commit(f: &Fx, txs: Vec<VerifiedTx>) -> Vec<Hash> {
        let tip = f.store.load_tip().unwrap();
        let (ex, refused) = build_block(
            f.store.state(),
            &tip,
            f.val.public_key(),
            tip.time_ms + 1,
            txs,
        )
        .unwrap();
        assert!(refused.is_empty());
        let h = ex.header.hash();
        let v = Vote::new_signed(
            &f.genesis.chain_id,
            ex.header.height,
            0,
            VoteType::Precommit,
            Some(h),
            &f.val,
        );
        let cert = CommitCertificate::from_votes(ex.header.height, 0, h, [&v]);
        f.store.commit_block(&ex, &cert).unwrap();
        ex.txs.iter().map(|t| t.id()).collect()
    }

    #[test]
    fn admits_in_sequence_refuses_conflicts_and_duplicates() {
        let f = fx();
        let mp = Mempool::new("mp".into(), MempoolLimits::default(), 0);
        let (a, b) = (&f.clerks[0], &f.clerks[1]);
        mp.insert(&f.store, register(a, 0, "P1"), 2000).unwrap();
        // Nonce 1 applies on top of nonce 0 held in the mempool.
        mp.insert(&f.store, register(a, 1, "P2"), 2000).unwrap();
        assert_eq!(mp.pending_nonce(&f.store, &a.public_key()).unwrap(), 2);
        // Same parcel from another clerk conflicts with the held registration.
        assert!(matches!(
            mp.insert(&f.store, register(b, 0, "P1"), 2000),
            Err(MempoolError::Refused(_))
        ));
        assert!(matches!(
            mp.insert(&f.store, register(a, 0, "P1"), 2000),
            Err(MempoolError::Duplicate(_))
        ));
        // A gap in nonces is refused.
        assert!(matches!(
            mp.insert(&f.store, register(a, 5, "P9"), 2000),
            Err(MempoolError::Refused(r)) if r.is_future_nonce()
        ));
        let taken = mp.take_for_block(10, 1 << 20);
        assert_eq!(taken.len(), 2);
        assert_eq!(mp.size().txs, 2);
    }

    #[test]
    fn full_mempool_says_busy() {
        let f = fx();
        let mp = Mempool::new(
            "mp".into(),
            MempoolLimits {
                txs_max: 2,
                bytes_max: 1 << 20,
            },
            0,
        );
        let a = &f.clerks[0];
        for n in 0..2 {
            mp.insert(&f.store, register(a, n, &format!("P{n}")), 2000)
                .unwrap();
        }
        assert!(matches!(
            mp.insert(&f.store, register(a, 2, "P2"), 2000),
            Err(MempoolError::Full { txs: 2, .. })
        ));
    }

    #[test]
    fn commit_removes_and_a_foreign_block_triggers_recheck() {
        let f = fx();
        let mp = Mempool::new("mp".into(), MempoolLimits::default(), 0);
        let (a, b) = (&f.clerks[0], &f.clerks[1]);
        let mine = register(a, 0, "P1");
        mp.insert(&f.store, mine.clone(), 2000).unwrap();
        mp.insert(&f.store, register(a, 1, "P2"), 2000).unwrap();
        // Our own first transaction commits: the rest stays.
        let ids = commit(&f, vec![mine]);
        assert_eq!(mp.on_commit(&f.store, 1, &ids, 3000), 0);
        assert_eq!(mp.size().txs, 1);
        // A block we never saw registers P2 first: our P2 no longer applies and is dropped.
        let foreign = register(b, 0, "P2");
        let ids = commit(&f, vec![foreign]);
        assert_eq!(mp.on_commit(&f.store, 2, &ids, 4000), 1);
        assert!(mp.is_empty());
        // The check state follows the store: the clerk's next nonce is 1 again.
        assert_eq!(mp.pending_nonce(&f.store, &a.public_key()).unwrap(), 1);
    }

    /// A genesis in the future: a transaction that expires before the chain starts is
    /// refused at once (`expired`, naming the first block's time), not admitted and then
    /// silently dropped; one that outlives the start is admitted.
    #[test]
    fn before_a_future_genesis_expired_transactions_are_refused_at_admission() {
        let f = fx();
        let genesis_ms = f.genesis.genesis_time_ms;
        let now = genesis_ms - 500; // the local clock is before the genesis time
        let mp = Mempool::new("mp".into(), MempoolLimits::default(), 0);
        let tx = |nonce, expires_at_ms| {
            VerifiedTx::verify(
                Tx {
                    chain_id: "mp".into(),
                    signer: f.clerks[0].public_key(),
                    nonce,
                    created_at_ms: now,
                    expires_at_ms,
                    body: TxBody::LandRegister(LandRegister {
                        parcel_id: format!("p{nonce}"),
                        owner: "o".into(),
                        document_hash: ledger::Hash([0; 32]),
                    }),
                }
                .sign(&f.clerks[0]),
            )
            .unwrap()
        };
        match mp.insert(&f.store, tx(0, now + 100), now) {
            Err(MempoolError::Refused(Rejection::Expired { block_time_ms, .. })) => {
                assert_eq!(block_time_ms, genesis_ms + 1);
            }
            other => panic!("expected an expiry refusal, got {other:?}"),
        }
        mp.insert(&f.store, tx(0, genesis_ms + 60_000), now)
            .unwrap();
    }
}
