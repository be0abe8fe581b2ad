//! The JSON shapes of answers (`docs/api.md`), and the loader that turns history-log leaf
//! indexes into [`RecordView`]s.

use super::error::ApiError;
use ledger::crypto::PublicKey;
use ledger::hash::Hash;
use ledger::state::StateView;
use ledger::store::{Page, Store, TxLocation};
use ledger::tx::{DepartmentId, SignedTx, TxBody, tx_id};
use ledger::validator::ValidatorSet;
use serde::Serialize;
use std::collections::HashMap;

/// A committed record as queries return it.
#[derive(Clone, Debug, Serialize)]
pub struct RecordView {
    /// Record id (history-log leaf hash).
    pub id: Hash,
    /// Position in the history log.
    pub leaf_index: u64,
    /// Height of its block.
    pub height: u64,
    /// Time of its block.
    pub block_time_ms: u64,
    /// Record kind, e.g. `approval_issue`.
    pub kind: &'static str,
    /// The signing key.
    pub signer: PublicKey,
    /// The signer's department (the validator's, for evidence); `null` if unknown.
    pub department: Option<DepartmentId>,
    /// The signed transaction.
    pub tx: SignedTx,
}

/// A page of records.
#[derive(Clone, Debug, Serialize)]
pub struct PageView {
    /// The records, in log order.
    pub records: Vec<RecordView>,
    /// Cursor of the next page (`after=`), `null` at the end.
    pub next: Option<u64>,
}

/// The answer to a submission.
#[derive(Clone, Debug, Serialize)]
pub struct SubmitView {
    /// Record id.
    pub id: Hash,
    /// `pending` or `committed`.
    pub status: &'static str,
    /// Height, once committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Leaf index, once committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
}

impl SubmitView {
    /// Held in the mempool.
    pub fn pending(id: Hash) -> Self {
        SubmitView {
            id,
            status: "pending",
            height: None,
            leaf_index: None,
        }
    }

    /// In a committed block.
    pub fn committed(id: Hash, loc: TxLocation) -> Self {
        SubmitView {
            id,
            status: "committed",
            height: Some(loc.height),
            leaf_index: Some(loc.leaf_index),
        }
    }
}

/// Turns leaf indexes into record views, caching what records of one answer share
/// (block times, validator sets, members' departments).
pub struct RecordLoader<'a> {
    store: &'a Store,
    block_times: HashMap<u64, u64>,
    validator_sets: HashMap<u64, Option<ValidatorSet>>,
    departments: HashMap<PublicKey, Option<DepartmentId>>,
}

impl<'a> RecordLoader<'a> {
    /// A loader over `store`.
    pub fn new(store: &'a Store) -> Self {
        RecordLoader {
            store,
            block_times: HashMap::new(),
            validator_sets: HashMap::new(),
            departments: HashMap::new(),
        }
    }

    /// The record at a leaf index (which must be committed).
    pub fn at_leaf(&mut self, leaf: u64) -> Result<RecordView, ApiError> {
        let bytes = self.store.tx_bytes(leaf)?.ok_or_else(|| {
            ApiError::Internal(format!("the index names leaf {leaf}, which is not stored"))
        })?;
        let id = tx_id(&bytes);
        let loc = self.store.tx_location(&id)?.ok_or_else(|| {
            ApiError::Internal(format!("record {id} at leaf {leaf} has no location"))
        })?;
        self.view(id, loc, &bytes)
    }

    /// The record at a known location.
    pub fn at(&mut self, id: Hash, loc: TxLocation) -> Result<RecordView, ApiError> {
        let bytes = self.store.tx_bytes(loc.leaf_index)?.ok_or_else(|| {
            ApiError::Internal(format!(
                "record {id} at leaf {} is not stored",
                loc.leaf_index
            ))
        })?;
        self.view(id, loc, &bytes)
    }

    /// The records of a page.
    pub fn page(&mut self, page: Page) -> Result<PageView, ApiError> {
        let records = page
            .leaves
            .iter()
            .map(|&leaf| self.at_leaf(leaf))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PageView {
            records,
            next: page.next,
        })
    }

    fn view(&mut self, id: Hash, loc: TxLocation, bytes: &[u8]) -> Result<RecordView, ApiError> {
        // The store's own bytes: canonical when written.
        let tx: SignedTx = ledger::codec::decode_prefix_exact(bytes)
            .map_err(|e| ApiError::Internal(format!("stored record {id} does not decode: {e}")))?;
        let block_time_ms = self.block_time(loc.height)?;
        let department = self.department(&tx, loc.height)?;
        Ok(RecordView {
            id,
            leaf_index: loc.leaf_index,
            height: loc.height,
            block_time_ms,
            kind: tx.tx.body.kind(),
            signer: tx.tx.signer,
            department,
            tx,
        })
    }

    fn block_time(&mut self, height: u64) -> Result<u64, ApiError> {
        if let Some(t) = self.block_times.get(&height) {
            return Ok(*t);
        }
        let header = self
            .store
            .header(height)?
            .ok_or_else(|| ApiError::Internal(format!("header {height} is not stored")))?;
        self.block_times.insert(height, header.time_ms);
        Ok(header.time_ms)
    }

    fn department(&mut self, tx: &SignedTx, height: u64) -> Result<Option<DepartmentId>, ApiError> {
        let signer = tx.tx.signer;
        if let TxBody::Evidence(_) = tx.tx.body {
            // Signed by a validator key in force at that height.
            if !self.validator_sets.contains_key(&height) {
                let set = self.store.validator_set_at(height)?;
                self.validator_sets.insert(height, set);
            }
            let set = self.validator_sets.get(&height).and_then(Option::as_ref);
            return Ok(set
                .and_then(|s| s.get(&signer))
                .map(|v| v.department.clone()));
        }
        if let Some(d) = self.departments.get(&signer) {
            return Ok(d.clone());
        }
        // Member records are kept (inactive) when a key is removed. A removed key that
        // governance re-adds to another department shows its new department here (the
        // department index itself keeps the one in force when the record was written).
        let d = self.store.state().member(&signer)?.map(|m| m.department);
        self.departments.insert(signer, d.clone());
        Ok(d)
    }
}
