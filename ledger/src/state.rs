//! The replicated state: a key-value map that the state machine reads and writes, its
//! typed records, and the layering used to execute a block without touching the store
//! until the block is committed.
//!
//! Keys are a one-byte table prefix followed by the record's id bytes (see [`keys`]);
//! values are canonical encodings of the types below. Every node holds the same map after
//! the same blocks, and the chained state root ([`chain_state_root`]) commits to it.

use crate::codec::{self, DecodeError};
use crate::crypto::PublicKey;
use crate::genesis::{ConsensusParams, Department};
use crate::hash::{Hash, domain, hash_parts};
use crate::state_tree::{MemTree, NodeRead, TreeUpdate};
use crate::tx::{CatalogEntry, Decision, DepartmentId, EncumbranceKind, GovAction, RoleSet};
use crate::validator::ValidatorSet;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;

/// A failure to read the state (storage, or a stored value that does not decode).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The backing store failed.
    #[error("state storage error: {0}")]
    Storage(String),
    /// A stored value does not decode: the store is corrupt.
    #[error("corrupt state value under key {key}: {source}")]
    Corrupt {
        /// Hex of the key.
        key: String,
        /// The decoding error.
        source: DecodeError,
    },
    /// A record that must exist (e.g. the consensus parameters) is missing.
    #[error("state is missing {0}; was the chain initialised from genesis?")]
    Missing(&'static str),
}

/// Read access to a state map.
pub trait StateRead {
    /// The value under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;

    /// The state tree of exactly this state, if this is a committed state that keeps one
    /// (a store or a [`MemState`] of a format-2 chain). A view with pending writes on top
    /// has none: its tree is not stored yet.
    fn tree(&self) -> Option<&dyn NodeRead> {
        None
    }
}

impl<T: StateRead + ?Sized> StateRead for &T {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        (**self).get(key)
    }
    fn tree(&self) -> Option<&dyn NodeRead> {
        (**self).tree()
    }
}

/// Pending writes: `None` deletes. A `BTreeMap`, so iteration (and hence the state root)
/// is in key order on every node.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// An in-memory state map, for tests, the auditor's replay and builds without RocksDB,
/// with its state tree (format 2; empty for a format-1 chain).
#[derive(Clone, Debug, Default)]
pub struct MemState {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    tree: MemTree,
}

impl MemState {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a committed block's (or the genesis') writes and its tree update (format 2;
    /// the tree keeps only the newest version).
    pub fn commit(&mut self, writes: &WriteSet, tree: Option<&TreeUpdate>) {
        self.apply(writes);
        if let Some(update) = tree {
            self.tree.commit(update.clone(), Some(1));
        }
    }

    /// Applies a write set to the map alone (the tree is not touched: a format-1 chain, or
    /// a test that never builds on this state).
    pub fn apply(&mut self, writes: &WriteSet) {
        for (k, v) in writes {
            match v {
                Some(v) => {
                    self.map.insert(k.clone(), v.clone());
                }
                None => {
                    self.map.remove(k);
                }
            }
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.map.iter()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl StateRead for MemState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.map.get(key).cloned())
    }
    fn tree(&self) -> Option<&dyn NodeRead> {
        Some(&self.tree)
    }
}

/// A base state with pending writes on top.
pub struct Overlay<B> {
    base: B,
    writes: WriteSet,
}

impl<B: StateRead> Overlay<B> {
    /// No pending writes yet.
    pub fn new(base: B) -> Self {
        Self {
            base,
            writes: WriteSet::new(),
        }
    }

    /// Records a write.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    /// Records a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Merges another write set on top (later writes win).
    pub fn extend(&mut self, writes: WriteSet) {
        self.writes.extend(writes);
    }

    /// The pending writes.
    pub fn writes(&self) -> &WriteSet {
        &self.writes
    }

    /// Gives up the base, keeping the writes.
    pub fn into_writes(self) -> WriteSet {
        self.writes
    }

    /// The base.
    pub fn base(&self) -> &B {
        &self.base
    }
}

impl<B: StateRead> StateRead for Overlay<B> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
}

/// A base state with a borrowed write set on top (no copy of the writes).
pub struct Layered<'a, B> {
    /// The base.
    pub base: B,
    /// The writes on top.
    pub top: &'a WriteSet,
}

impl<B: StateRead> StateRead for Layered<'_, B> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.top.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.base.get(key),
        }
    }
}

/// Key layout. One prefix byte per table; changing any is a hard fork.
pub mod keys {
    use crate::crypto::PublicKey;
    use crate::hash::Hash;

    /// Next nonce of a signer.
    pub const NONCE: u8 = b'k';
    /// Member key record.
    pub const MEMBER: u8 = b'm';
    /// All departments (one value).
    pub const DEPARTMENTS: &[u8] = b"D";
    /// Validator set history (one value).
    pub const VALIDATOR_SETS: &[u8] = b"V";
    /// Consensus parameters (one value).
    pub const PARAMS: &[u8] = b"P";
    /// Governance voters: per department, the number of active members holding the
    /// `governance` role (one value, [`super::GovernanceVoters`]).
    pub const GOVERNANCE_VOTERS: &[u8] = b"W";
    /// Approval record.
    pub const APPROVAL: u8 = b'a';
    /// Land parcel record.
    pub const PARCEL: u8 = b'l';
    /// Catalogue entry record.
    pub const CATALOG: u8 = b'c';
    /// Governance proposal record.
    pub const PROPOSAL: u8 = b'g';
    /// Committed evidence, by equivocation key.
    pub const EVIDENCE: u8 = b'e';
    /// History heads (state format 2): a tag byte, then the id ([`crate::history`]).
    pub const HISTORY: u8 = b'H';

    fn with(prefix: u8, id: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(1 + id.len());
        k.push(prefix);
        k.extend_from_slice(id);
        k
    }

    /// Key of a signer's next nonce.
    pub fn nonce(key: &PublicKey) -> Vec<u8> {
        with(NONCE, &key.0)
    }
    /// Key of a member record.
    pub fn member(key: &PublicKey) -> Vec<u8> {
        with(MEMBER, &key.0)
    }
    /// Key of an approval.
    pub fn approval(id: &str) -> Vec<u8> {
        with(APPROVAL, id.as_bytes())
    }
    /// Key of a parcel.
    pub fn parcel(id: &str) -> Vec<u8> {
        with(PARCEL, id.as_bytes())
    }
    /// Key of a catalogue entry.
    pub fn catalog(id: &str) -> Vec<u8> {
        with(CATALOG, id.as_bytes())
    }
    /// Key of a governance proposal.
    pub fn proposal(id: &Hash) -> Vec<u8> {
        with(PROPOSAL, &id.0)
    }
    /// Key of committed evidence.
    pub fn evidence(k: &crate::vote::EquivocationKey) -> Vec<u8> {
        with(EVIDENCE, &crate::codec::encode(k))
    }
}

/// A member key's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberState {
    /// Its department.
    pub department: DepartmentId,
    /// Its roles (empty once removed).
    pub roles: RoleSet,
    /// Label.
    pub name: String,
    /// False once removed by governance; a removed key signs nothing.
    pub active: bool,
}

/// Per department, the number of active member keys holding the `governance` role: the
/// departments that can vote, and so the ones whose weight counts in a governance tally.
///
/// Canonical form: sorted by department id, each id once, every count at least 1 (a
/// department whose count drops to 0 is removed). Written by genesis and by every
/// governance action that changes a member's `governance` role or activity, in the same
/// write set as the member record, so it never disagrees with the member records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernanceVoters {
    /// `(department, count ≥ 1)`, strictly increasing department ids.
    pub counts: Vec<(DepartmentId, u64)>,
}

impl GovernanceVoters {
    /// The count of `department` (0 if it has no voter).
    pub fn count(&self, department: &str) -> u64 {
        self.counts
            .binary_search_by(|(d, _)| d.as_str().cmp(department))
            .map_or(0, |i| self.counts[i].1)
    }

    /// Whether `department` has at least one voter.
    pub fn can_vote(&self, department: &str) -> bool {
        self.count(department) > 0
    }

    /// Adds one voter to `department`.
    pub fn add(&mut self, department: &str) {
        match self
            .counts
            .binary_search_by(|(d, _)| d.as_str().cmp(department))
        {
            Ok(i) => self.counts[i].1 = self.counts[i].1.saturating_add(1),
            Err(i) => self.counts.insert(i, (department.to_string(), 1)),
        }
    }

    /// Removes one voter from `department`, dropping the department at 0. Returns false
    /// (and changes nothing) if the department had no voter.
    pub fn remove(&mut self, department: &str) -> bool {
        match self
            .counts
            .binary_search_by(|(d, _)| d.as_str().cmp(department))
        {
            Ok(i) => {
                if self.counts[i].1 <= 1 {
                    self.counts.remove(i);
                } else {
                    self.counts[i].1 -= 1;
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Status of an approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// In force (subject to its validity dates).
    Active,
    /// Revoked; it stays in history.
    Revoked,
}

/// The current form of an approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalState {
    /// Id.
    pub approval_id: String,
    /// Issuing department: the only one that may amend or revoke it.
    pub issuer: DepartmentId,
    /// Kind.
    pub kind: String,
    /// Subject.
    pub subject: String,
    /// Current decision.
    pub decision: Decision,
    /// Current document hash.
    pub document_hash: Hash,
    /// Validity start.
    pub valid_from_ms: u64,
    /// Validity end.
    pub valid_until_ms: Option<u64>,
    /// Status.
    pub status: ApprovalStatus,
    /// Record id of the issuing transaction.
    pub issued_by_tx: Hash,
    /// Record id of the latest transaction that changed it.
    pub last_tx: Hash,
    /// Number of amendments.
    pub amendments: u32,
}

/// An encumbrance on a parcel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncumbranceState {
    /// Id within the parcel.
    pub encumbrance_id: String,
    /// Kind.
    pub kind: EncumbranceKind,
    /// Holder.
    pub holder: String,
    /// Instrument hash.
    pub document_hash: Hash,
    /// Record id of the encumbering transaction.
    pub tx: Hash,
}

/// The current title of a parcel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParcelState {
    /// Parcel id.
    pub parcel_id: String,
    /// Current owner.
    pub owner: String,
    /// Hash of the current title document or deed.
    pub document_hash: Hash,
    /// Registering department.
    pub registered_by: DepartmentId,
    /// Active encumbrances, in the order they were created.
    pub encumbrances: Vec<EncumbranceState>,
    /// Record id of the latest transaction that changed the title.
    pub last_tx: Hash,
}

impl ParcelState {
    /// The court freeze that blocks transfers, if any.
    pub fn freeze(&self) -> Option<&EncumbranceState> {
        self.encumbrances
            .iter()
            .find(|e| e.kind == EncumbranceKind::CourtFreeze)
    }
}

/// A catalogue entry and its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogState {
    /// The entry.
    pub entry: CatalogEntry,
    /// Owning department.
    pub owner: DepartmentId,
    /// Record id of the registration.
    pub registered_by_tx: Hash,
    /// Record id of the latest change.
    pub last_tx: Hash,
}

/// Status of a governance proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    /// Open for votes until `expires_at_ms`.
    Open,
    /// Approved and executed at this height.
    Executed {
        /// Height of execution.
        height: u64,
    },
    /// Approved, but the action could not be applied (state had changed).
    Failed {
        /// Height of the attempt.
        height: u64,
        /// Why.
        reason: String,
    },
    /// Enough departments rejected it that it can no longer pass.
    Rejected {
        /// Height of the deciding vote.
        height: u64,
    },
}

/// A governance proposal and its votes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalState {
    /// Record id of the proposing transaction.
    pub proposal_id: Hash,
    /// The proposing department (counts as approving).
    pub department: DepartmentId,
    /// The action.
    pub action: GovAction,
    /// The description.
    pub description: String,
    /// Height of the proposal.
    pub created_height: u64,
    /// No votes after this time.
    pub expires_at_ms: u64,
    /// One vote per department, sorted by department id.
    pub votes: Vec<(DepartmentId, bool)>,
    /// Status.
    pub status: ProposalStatus,
}

/// Validator sets with the height from which each is in force, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorSetHistory {
    /// `(activation height, set)`, strictly increasing heights; the first has height 1.
    pub sets: Vec<(u64, ValidatorSet)>,
}

/// How many validator sets the state keeps (older ones live in the store's history).
pub const VALIDATOR_SET_HISTORY_MAX: usize = 64;

impl ValidatorSetHistory {
    /// The set in force at `height`.
    pub fn at(&self, height: u64) -> Option<&ValidatorSet> {
        self.sets
            .iter()
            .rev()
            .find(|(from, _)| *from <= height)
            .map(|(_, s)| s)
    }

    /// The newest set (possibly not yet in force).
    pub fn latest(&self) -> Option<&ValidatorSet> {
        self.sets.last().map(|(_, s)| s)
    }

    /// Schedules `set` from `height` on (replacing a set scheduled for the same height) and
    /// drops the oldest entries beyond [`VALIDATOR_SET_HISTORY_MAX`].
    pub fn schedule(&mut self, height: u64, set: ValidatorSet) {
        if let Some(last) = self.sets.last_mut()
            && last.0 == height
        {
            last.1 = set;
            return;
        }
        self.sets.push((height, set));
        if self.sets.len() > VALIDATOR_SET_HISTORY_MAX {
            let excess = self.sets.len() - VALIDATOR_SET_HISTORY_MAX;
            self.sets.drain(..excess);
        }
    }
}

/// Typed reads of the state. Implemented for every [`StateRead`].
pub trait StateView: StateRead {
    /// Reads and decodes a value.
    fn get_typed<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, StateError> {
        match self.get(key)? {
            None => Ok(None),
            Some(bytes) => codec::decode_prefix_exact(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt {
                    key: hex::encode(key),
                    source,
                }),
        }
    }

    /// A signer's next nonce (0 if it never signed).
    fn next_nonce(&self, key: &PublicKey) -> Result<u64, StateError> {
        Ok(self.get_typed::<u64>(&keys::nonce(key))?.unwrap_or(0))
    }

    /// A member record.
    fn member(&self, key: &PublicKey) -> Result<Option<MemberState>, StateError> {
        self.get_typed(&keys::member(key))
    }

    /// All departments, sorted by id.
    fn departments(&self) -> Result<Vec<Department>, StateError> {
        self.get_typed(keys::DEPARTMENTS)?
            .ok_or(StateError::Missing("the department list"))
    }

    /// Per department, the active members holding the `governance` role.
    fn governance_voters(&self) -> Result<GovernanceVoters, StateError> {
        self.get_typed(keys::GOVERNANCE_VOTERS)?
            .ok_or(StateError::Missing("the governance voter counts"))
    }

    /// The validator set history.
    fn validator_sets(&self) -> Result<ValidatorSetHistory, StateError> {
        self.get_typed(keys::VALIDATOR_SETS)?
            .ok_or(StateError::Missing("the validator sets"))
    }

    /// The consensus parameters in force.
    fn params(&self) -> Result<ConsensusParams, StateError> {
        self.get_typed(keys::PARAMS)?
            .ok_or(StateError::Missing("the consensus parameters"))
    }

    /// An approval.
    fn approval(&self, id: &str) -> Result<Option<ApprovalState>, StateError> {
        self.get_typed(&keys::approval(id))
    }

    /// A parcel.
    fn parcel(&self, id: &str) -> Result<Option<ParcelState>, StateError> {
        self.get_typed(&keys::parcel(id))
    }

    /// A catalogue entry.
    fn catalog(&self, id: &str) -> Result<Option<CatalogState>, StateError> {
        self.get_typed(&keys::catalog(id))
    }

    /// A governance proposal.
    fn proposal(&self, id: &Hash) -> Result<Option<ProposalState>, StateError> {
        self.get_typed(&keys::proposal(id))
    }

    /// The head of a history (state format 2; the empty head if it has no record yet).
    fn history_head(
        &self,
        id: &crate::history::HistoryId,
    ) -> Result<crate::history::HistoryHead, StateError> {
        Ok(self.get_typed(&id.state_key())?.unwrap_or_default())
    }
}

impl<T: StateRead + ?Sized> StateView for T {}

/// Digest of a block's write set: `blake3(encode(list of (key, value or none)))` in key order.
pub fn writes_digest(writes: &WriteSet) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(&(writes.len() as u64).to_le_bytes());
    for (k, v) in writes {
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(k);
        match v {
            None => {
                h.update(&[0]);
            }
            Some(v) => {
                h.update(&[1]);
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(v);
            }
        }
    }
    Hash(*h.finalize().as_bytes())
}

/// The state root after a block: `blake3("govledger/state/v1" ‖ previous root ‖
/// height (u64 LE) ‖ writes digest)`. A chained commitment: two nodes have the same root
/// exactly when they applied the same writes at every height. (The genesis state uses the
/// genesis hash as the "previous root" and height 0.)
pub fn chain_state_root(prev: &Hash, height: u64, writes: &WriteSet) -> Hash {
    hash_parts(
        domain::STATE,
        &[&prev.0, &height.to_le_bytes(), &writes_digest(writes).0],
    )
}

/// Encodes a value for the state.
pub fn encode_value<T: Serialize>(v: &T) -> Vec<u8> {
    codec::encode(v)
}
