//! Transactions gossiped by peers: verified in batches on a dedicated thread, off the
//! consensus path, and admitted to the mempool. Bounded queue, no silent loss under normal
//! load, and nothing verified twice: ids already verified or committed here are skipped.

use crate::app::now_ms;
use crate::mempool::{Mempool, MempoolError};
use crate::metrics::Metrics;
use crate::network::NetworkHandle;
use ledger::PublicKey;
use ledger::execute::{VerifiedTx, verify_batch};
use ledger::hash::Hash;
use ledger::store::Store;
use ledger::tx::SignedTx;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Batches of peer transactions waiting for verification.
pub const INTAKE_QUEUE_BATCHES_MAX: usize = 512;
/// Most transactions verified in one batch.
pub const INTAKE_BATCH_TXS_MAX: usize = 4096;
/// How many recent ids (verified or committed here) are remembered.
pub const SEEN_IDS_MAX: usize = 262_144;
/// Most gossiped transactions parked because their nonce was ahead of their signer's next.
pub const PARKED_TXS_MAX: usize = 16_384;
/// A parked transaction is given up after this long (it reaches blocks through its
/// entry node anyway).
pub const PARKED_AGE_MAX: Duration = Duration::from_secs(30);
/// How often parked transactions are retried when no gossip arrives (a missing earlier
/// nonce may also arrive in a committed block).
pub const PARKED_RETRY_EVERY: Duration = Duration::from_millis(100);

/// Gossiped transactions refused only because their nonce is ahead of the signer's next
/// one: an earlier transaction of the same signer is still on its way (gossip batches
/// travel on separate streams and one may overtake another). Without parking, such a
/// transaction stayed out of this node's mempool for good — the others' too — and waited
/// for its entry node's turn to propose; at the end of a load it waited for an idle block
/// (5 s). Retried in (signer, nonce) order after every admission and every
/// [`PARKED_RETRY_EVERY`]; bounded by [`PARKED_TXS_MAX`] and [`PARKED_AGE_MAX`].
#[derive(Default)]
pub struct Parked {
    txs: BTreeMap<(PublicKey, u64), (VerifiedTx, Instant)>,
}

/// What the mempool said of a retried transaction.
pub enum Admission {
    /// Admitted.
    Admitted,
    /// Still ahead: keep it parked.
    Ahead(VerifiedTx),
    /// Refused for another reason (or already there): forget it.
    Gone,
}

impl Parked {
    /// Parks a transaction (dropped if the parking is full).
    pub fn park(&mut self, vtx: VerifiedTx, now: Instant) {
        if self.txs.len() >= PARKED_TXS_MAX {
            debug!("parked transactions full; dropping one");
            return;
        }
        let t = &vtx.tx().tx;
        self.txs.insert((t.signer, t.nonce), (vtx, now));
    }

    /// Parked transactions.
    pub fn len(&self) -> usize {
        self.txs.len()
    }

    /// Whether nothing is parked.
    pub fn is_empty(&self) -> bool {
        self.txs.is_empty()
    }

    /// Retries every parked transaction in (signer, nonce) order, forgetting those older
    /// than [`PARKED_AGE_MAX`]; returns how many were admitted. After a signer's first
    /// transaction that is still ahead, its later ones are not tried.
    pub fn retry(&mut self, now: Instant, mut admit: impl FnMut(VerifiedTx) -> Admission) -> usize {
        self.txs.retain(|_, (_, parked_at)| {
            now.saturating_duration_since(*parked_at) <= PARKED_AGE_MAX
        });
        let mut admitted = 0;
        let mut from = Bound::Unbounded;
        while let Some(key) = self
            .txs
            .range((from, Bound::Unbounded))
            .next()
            .map(|(k, _)| *k)
        {
            let Some((vtx, parked_at)) = self.txs.remove(&key) else {
                break;
            };
            from = Bound::Excluded(key);
            match admit(vtx) {
                Admission::Admitted => admitted += 1,
                Admission::Ahead(vtx) => {
                    self.txs.insert(key, (vtx, parked_at));
                    // The signer's later nonces are ahead too: on to the next signer.
                    from = Bound::Excluded((key.0, u64::MAX));
                }
                Admission::Gone => {}
            }
        }
        admitted
    }
}

fn admit(mempool: &Mempool, store: &Store, vtx: VerifiedTx, now_ms: u64) -> Admission {
    match mempool.insert_or_return(store, vtx, now_ms) {
        Ok(()) => Admission::Admitted,
        Err(refused) => match *refused {
            (MempoolError::Refused(r), vtx) if r.is_future_nonce() => Admission::Ahead(vtx),
            _ => Admission::Gone,
        },
    }
}

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
    let mut parked = Parked::default();
    loop {
        let first = if parked.is_empty() {
            match rx.recv() {
                Ok(b) => b,
                Err(_) => return,
            }
        } else {
            match rx.recv_timeout(PARKED_RETRY_EVERY) {
                Ok(b) => b,
                Err(RecvTimeoutError::Timeout) => {
                    let now = now_ms();
                    let n = parked.retry(Instant::now(), |v| admit(&mempool, &store, v, now));
                    if n > 0 {
                        wake.notify_one();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        };
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
                    match admit(&mempool, &store, vtx, now) {
                        Admission::Admitted => admitted += 1,
                        Admission::Ahead(vtx) => parked.park(vtx, Instant::now()),
                        Admission::Gone => {}
                    }
                }
                Err(_) => bad_senders.push(from),
            }
        }
        if admitted > 0 && !parked.is_empty() {
            admitted += parked.retry(Instant::now(), |v| admit(&mempool, &store, v, now));
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

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::SecretKey;
    use ledger::tx::{Anchor, Tx, TxBody};

    fn tx(k: &SecretKey, nonce: u64) -> VerifiedTx {
        VerifiedTx::verify(
            Tx {
                chain_id: "intake".into(),
                signer: k.public_key(),
                nonce,
                created_at_ms: 0,
                expires_at_ms: u64::MAX,
                body: TxBody::Anchor(Anchor {
                    document_hash: ledger::Hash([nonce as u8; 32]),
                    label: String::new(),
                }),
            }
            .sign(k),
        )
        .unwrap()
    }

    /// A mempool stand-in: admits exactly the signer's next nonce.
    fn admit_next(next: &mut BTreeMap<PublicKey, u64>, v: VerifiedTx) -> Admission {
        let t = &v.tx().tx;
        let n = next.entry(t.signer).or_insert(0);
        match t.nonce.cmp(n) {
            std::cmp::Ordering::Equal => {
                *n += 1;
                Admission::Admitted
            }
            std::cmp::Ordering::Greater => Admission::Ahead(v),
            std::cmp::Ordering::Less => Admission::Gone,
        }
    }

    #[test]
    fn overtaken_transactions_are_admitted_once_the_gap_fills() {
        let (a, b) = (
            SecretKey::from_seed(&[1; 32]),
            SecretKey::from_seed(&[2; 32]),
        );
        let mut next = BTreeMap::new();
        let mut parked = Parked::default();
        let now = Instant::now();
        // a's nonces 2 and 1 overtook 0; b's 1 overtook 0; b's 0 is stale later.
        for v in [tx(&a, 2), tx(&a, 1), tx(&b, 1)] {
            match admit_next(&mut next, v) {
                Admission::Ahead(v) => parked.park(v, now),
                _ => panic!("ahead"),
            }
        }
        assert_eq!(parked.len(), 3);
        assert_eq!(parked.retry(now, |v| admit_next(&mut next, v)), 0);
        assert_eq!(parked.len(), 3);
        assert!(matches!(
            admit_next(&mut next, tx(&a, 0)),
            Admission::Admitted
        ));
        // a's 1 then 2 go in, in nonce order; b's 1 still waits for b's 0.
        assert_eq!(parked.retry(now, |v| admit_next(&mut next, v)), 2);
        assert_eq!(next[&a.public_key()], 3);
        assert_eq!(parked.len(), 1);
        // b's 0 arrives in a block instead (the stand-in moves on): b's 1 is admitted.
        next.insert(b.public_key(), 1);
        assert_eq!(parked.retry(now, |v| admit_next(&mut next, v)), 1);
        assert!(parked.is_empty());
    }

    #[test]
    fn parking_is_bounded_in_count_and_age() {
        let k = SecretKey::from_seed(&[3; 32]);
        let mut parked = Parked::default();
        let t0 = Instant::now();
        for n in 1..=(PARKED_TXS_MAX as u64 + 3) {
            parked.park(tx(&k, n), t0);
        }
        assert_eq!(parked.len(), PARKED_TXS_MAX);
        let later = t0 + PARKED_AGE_MAX + Duration::from_secs(1);
        assert_eq!(parked.retry(later, |_| panic!("too old to try")), 0);
        assert!(parked.is_empty());
    }
}
