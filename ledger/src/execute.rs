//! The state machine: applies signed transactions to the state, enforcing membership,
//! roles, replay protection and every business rule. Deterministic: the same state and
//! the same transactions give the same writes on every node.
//!
//! Signatures are checked once, when a transaction becomes a [`VerifiedTx`] (singly or in
//! a batch); application takes only verified transactions, so nothing is verified twice.

use crate::codec;
use crate::crypto::{BatchVerifier, SignatureError};
use crate::genesis::StateFormat;
use crate::genesis::{Department, Genesis};
use crate::hash::{Hash, domain};
use crate::state::{
    ApprovalState, ApprovalStatus, CatalogState, EncumbranceState, GovernanceVoters, MemberState,
    Overlay, ParcelState, ProposalState, ProposalStatus, StateError, StateRead, StateView,
    ValidatorSetHistory, WriteSet, chain_state_root, encode_value, keys,
};
use crate::state_tree::{self, TreeUpdate};
use crate::tx::{DepartmentId, GovAction, Role, SharingType, SignedTx, TxBody};
use crate::validator::ValidatorSet;
use std::sync::Arc;

/// Validator-set changes executed at height `h` take effect at `h + VALSET_CHANGE_DELAY`,
/// so that header `h + 1` can announce them in `next_validators_hash`.
pub const VALSET_CHANGE_DELAY: u64 = 2;

/// Evidence older than this many heights is refused.
pub const EVIDENCE_AGE_MAX_HEIGHTS: u64 = 100_000;

/// How far ahead of the block time a data-access event's time may be (clock skew, ms).
pub const ACCESS_TIME_SKEW_MAX_MS: u64 = 60_000;

/// How far ahead of the block time a transaction's `created_at_ms` may be (clock skew
/// between the clerk's machine and the proposer, ms). Later ones are refused, so that a
/// record cannot claim to be created in the far future.
pub const TX_CREATED_SKEW_MAX_MS: u64 = 60_000;

/// A signed transaction whose signature has been verified, with its canonical bytes and
/// record id. The only way to get one is through [`VerifiedTx::verify`] or
/// [`verify_batch`].
#[derive(Clone, Debug)]
pub struct VerifiedTx {
    tx: Arc<SignedTx>,
    bytes: Arc<[u8]>,
    id: Hash,
}

impl VerifiedTx {
    /// Verifies one transaction's signature.
    pub fn verify(stx: SignedTx) -> Result<Self, SignatureError> {
        stx.verify_signature()?;
        let bytes: Arc<[u8]> = stx.encode().into();
        Ok(Self {
            id: crate::tx::tx_id(&bytes),
            tx: Arc::new(stx),
            bytes,
        })
    }

    /// The transaction.
    pub fn tx(&self) -> &SignedTx {
        &self.tx
    }

    /// Shared handle to the transaction.
    pub fn tx_arc(&self) -> &Arc<SignedTx> {
        &self.tx
    }

    /// Canonical bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Record id (history-log leaf hash).
    pub fn id(&self) -> Hash {
        self.id
    }
}

/// Verifies many transactions in one batch; the verdict for each is the same as
/// [`VerifiedTx::verify`] would give.
pub fn verify_batch(txs: Vec<SignedTx>) -> Vec<Result<VerifiedTx, SignatureError>> {
    let encoded: Vec<(Vec<u8>, Vec<u8>)> = txs
        .iter()
        .map(|s| (codec::encode(&s.tx), s.encode()))
        .collect();
    let mut batch = BatchVerifier::with_capacity(txs.len());
    for (s, (tx_bytes, _)) in txs.iter().zip(&encoded) {
        batch.push(&s.tx.signer, domain::TX_SIGN, tx_bytes, &s.signature);
    }
    batch
        .verify()
        .into_iter()
        .zip(txs)
        .zip(encoded)
        .map(|((verdict, stx), (_, bytes))| {
            verdict.map(|()| {
                let bytes: Arc<[u8]> = bytes.into();
                VerifiedTx {
                    id: crate::tx::tx_id(&bytes),
                    tx: Arc::new(stx),
                    bytes,
                }
            })
        })
        .collect()
}

/// Why a transaction was refused. Each message is meant for the clerk who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Signed for another chain.
    #[error("transaction is for chain {got:?}, this is chain {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The transaction's.
        got: String,
    },
    /// Signature invalid.
    #[error("signature does not verify: {0}")]
    BadSignature(SignatureError),
    /// Past its expiry.
    #[error("transaction expired at {expires_at_ms} ms; the block time is {block_time_ms} ms")]
    Expired {
        /// Expiry.
        expires_at_ms: u64,
        /// Block time.
        block_time_ms: u64,
    },
    /// Created too far after the block time.
    #[error(
        "transaction created at {created_at_ms} ms, more than {TX_CREATED_SKEW_MAX_MS} ms after the block time {block_time_ms} ms; check the clock of the machine that signed it"
    )]
    CreatedInFuture {
        /// The transaction's creation time.
        created_at_ms: u64,
        /// Block time.
        block_time_ms: u64,
    },
    /// Nonce not the signer's next.
    #[error("nonce {got} is not the signer's next nonce {expected}")]
    BadNonce {
        /// Expected.
        expected: u64,
        /// Given.
        got: u64,
    },
    /// Signer is not a member key.
    #[error("signer {0} is not a member key of any department")]
    UnknownSigner(crate::crypto::PublicKey),
    /// Signer was removed by governance.
    #[error("signer {0} was removed from its department and can no longer sign")]
    SignerRemoved(crate::crypto::PublicKey),
    /// Signer lacks the role.
    #[error("signer lacks the `{}` role needed for {kind}", role.name())]
    MissingRole {
        /// The role needed.
        role: Role,
        /// The record kind.
        kind: &'static str,
    },
    /// Evidence must be signed by a current validator.
    #[error("evidence must be submitted by a current validator key")]
    NotAValidator,
    /// Approval id taken.
    #[error("approval {0:?} already exists")]
    ApprovalExists(String),
    /// No such approval.
    #[error("approval {0:?} does not exist")]
    ApprovalNotFound(String),
    /// Only the issuer may change it.
    #[error(
        "approval {approval_id:?} was issued by {issuer:?}; only that department may amend or revoke it"
    )]
    NotIssuer {
        /// The approval.
        approval_id: String,
        /// The issuer.
        issuer: DepartmentId,
    },
    /// Already revoked.
    #[error("approval {0:?} is revoked")]
    ApprovalRevoked(String),
    /// Validity end before start.
    #[error("validity ends ({until_ms}) before it starts ({from_ms})")]
    BadValidity {
        /// Start.
        from_ms: u64,
        /// End.
        until_ms: u64,
    },
    /// Parcel id taken.
    #[error("parcel {0:?} is already registered")]
    ParcelExists(String),
    /// No such parcel.
    #[error("parcel {0:?} is not registered")]
    ParcelNotFound(String),
    /// `from` is not the owner.
    #[error("parcel {parcel_id:?} is owned by {owner:?}, not {from:?}")]
    NotCurrentOwner {
        /// The parcel.
        parcel_id: String,
        /// Its owner.
        owner: String,
        /// The claimed owner.
        from: String,
    },
    /// Transfer to the current owner.
    #[error("parcel {0:?} would be transferred to its current owner")]
    TransferToSelf(String),
    /// Frozen by a court.
    #[error("parcel {parcel_id:?} is frozen by court order {encumbrance_id:?}; release it first")]
    ParcelFrozen {
        /// The parcel.
        parcel_id: String,
        /// The freeze.
        encumbrance_id: String,
    },
    /// Encumbrance id taken.
    #[error("parcel {parcel_id:?} already has encumbrance {encumbrance_id:?}")]
    EncumbranceExists {
        /// The parcel.
        parcel_id: String,
        /// The encumbrance.
        encumbrance_id: String,
    },
    /// No such encumbrance.
    #[error("parcel {parcel_id:?} has no encumbrance {encumbrance_id:?}")]
    EncumbranceNotFound {
        /// The parcel.
        parcel_id: String,
        /// The encumbrance.
        encumbrance_id: String,
    },
    /// Too many encumbrances on one parcel.
    #[error("parcel {0:?} has too many encumbrances")]
    TooManyEncumbrances(String),
    /// Resource id taken.
    #[error("catalogue resource {0:?} already exists")]
    ResourceExists(String),
    /// No such resource.
    #[error("catalogue resource {0:?} does not exist; it must be catalogued before it is accessed")]
    ResourceNotFound(String),
    /// Only the owner may update the entry.
    #[error(
        "catalogue resource {resource_id:?} belongs to {owner:?}; only that department may update it"
    )]
    NotResourceOwner {
        /// The resource.
        resource_id: String,
        /// Its owner.
        owner: DepartmentId,
    },
    /// Not shared with other departments.
    #[error("catalogue resource {resource_id:?} of {owner:?} is not shared with other departments")]
    ResourceNotShared {
        /// The resource.
        resource_id: String,
        /// Its owner.
        owner: DepartmentId,
    },
    /// Conditional sharing needs a legal basis.
    #[error("catalogue resource {0:?} is shared conditionally: a legal basis is required")]
    LegalBasisRequired(String),
    /// A purpose is always required.
    #[error("a data-access event must state its purpose")]
    PurposeRequired,
    /// Access time after the block.
    #[error("access time {accessed_at_ms} is later than the block time {block_time_ms}")]
    AccessInFuture {
        /// Access time.
        accessed_at_ms: u64,
        /// Block time.
        block_time_ms: u64,
    },
    /// No such proposal.
    #[error("governance proposal {0} does not exist")]
    ProposalNotFound(Hash),
    /// Not open.
    #[error("governance proposal {0} is closed")]
    ProposalClosed(Hash),
    /// Past its voting period.
    #[error("governance proposal {0} expired")]
    ProposalExpired(Hash),
    /// Department voted already.
    #[error("department {0:?} has already voted on this proposal")]
    AlreadyVoted(DepartmentId),
    /// The action cannot apply.
    #[error("governance action is invalid: {0}")]
    InvalidAction(String),
    /// Evidence is not valid.
    #[error("evidence is invalid: {0}")]
    InvalidEvidence(String),
    /// Already committed.
    #[error("this equivocation is already on the ledger")]
    DuplicateEvidence,
    /// The state could not be read: not the transaction's fault.
    #[error(transparent)]
    State(#[from] StateError),
}

impl Rejection {
    /// A stable snake_case code for APIs and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::WrongChain { .. } => "wrong_chain",
            Rejection::BadSignature(_) => "bad_signature",
            Rejection::Expired { .. } => "expired",
            Rejection::CreatedInFuture { .. } => "created_in_future",
            Rejection::BadNonce { .. } => "bad_nonce",
            Rejection::UnknownSigner(_) => "unknown_signer",
            Rejection::SignerRemoved(_) => "signer_removed",
            Rejection::MissingRole { .. } => "missing_role",
            Rejection::NotAValidator => "not_a_validator",
            Rejection::ApprovalExists(_) => "approval_exists",
            Rejection::ApprovalNotFound(_) => "approval_not_found",
            Rejection::NotIssuer { .. } => "not_issuer",
            Rejection::ApprovalRevoked(_) => "approval_revoked",
            Rejection::BadValidity { .. } => "bad_validity",
            Rejection::ParcelExists(_) => "parcel_exists",
            Rejection::ParcelNotFound(_) => "parcel_not_found",
            Rejection::NotCurrentOwner { .. } => "not_current_owner",
            Rejection::TransferToSelf(_) => "transfer_to_self",
            Rejection::ParcelFrozen { .. } => "parcel_frozen",
            Rejection::EncumbranceExists { .. } => "encumbrance_exists",
            Rejection::EncumbranceNotFound { .. } => "encumbrance_not_found",
            Rejection::TooManyEncumbrances(_) => "too_many_encumbrances",
            Rejection::ResourceExists(_) => "resource_exists",
            Rejection::ResourceNotFound(_) => "resource_not_found",
            Rejection::NotResourceOwner { .. } => "not_resource_owner",
            Rejection::ResourceNotShared { .. } => "resource_not_shared",
            Rejection::LegalBasisRequired(_) => "legal_basis_required",
            Rejection::PurposeRequired => "purpose_required",
            Rejection::AccessInFuture { .. } => "access_in_future",
            Rejection::ProposalNotFound(_) => "proposal_not_found",
            Rejection::ProposalClosed(_) => "proposal_closed",
            Rejection::ProposalExpired(_) => "proposal_expired",
            Rejection::AlreadyVoted(_) => "already_voted",
            Rejection::InvalidAction(_) => "invalid_action",
            Rejection::InvalidEvidence(_) => "invalid_evidence",
            Rejection::DuplicateEvidence => "duplicate_evidence",
            Rejection::State(_) => "state_error",
        }
    }

    /// Whether the rejection depends only on the nonce being ahead of the state (the
    /// transaction may become valid once earlier ones commit).
    pub fn is_future_nonce(&self) -> bool {
        matches!(self, Rejection::BadNonce { expected, got } if got > expected)
    }
}

/// Bound on the encumbrances of one parcel.
pub const ENCUMBRANCES_PER_PARCEL_MAX: usize = 64;

/// What executing a transaction produced, for indexing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The signer's department (for validator-signed evidence, the validator's).
    pub department: DepartmentId,
}

/// The block being executed: chain id, height, time, where its records start in the
/// history log, and the chain's state format.
#[derive(Clone, Debug)]
pub struct BlockContext {
    /// Chain id.
    pub chain_id: String,
    /// Height of the block.
    pub height: u64,
    /// Block time (ms since the epoch).
    pub time_ms: u64,
    /// The history log's size before the block: the leaf index of its first record.
    pub first_leaf: u64,
    /// The chain's state format (format 2 keeps history heads in the state).
    pub state_format: StateFormat,
}

/// Executes the transactions of one block on top of a base state.
pub struct BlockExecutor<B> {
    ctx: BlockContext,
    state: Overlay<B>,
    /// Leaf index the next applied transaction takes.
    next_leaf: u64,
    /// Whether applying a transaction updates the history heads (format 2, a real block).
    heads: bool,
    /// After each applied record, the new head of each history it joined (in order).
    history: Vec<HistoryEntry>,
}

/// A record's place in one of its histories: the history's head key and the head after
/// the record (its count is the record's 1-based position in the history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The head's state key ([`crate::history::HistoryId::state_key`]).
    pub head_key: Vec<u8>,
    /// The record's leaf index.
    pub leaf_index: u64,
    /// The head after the record.
    pub head: crate::history::HistoryHead,
}

impl<B: StateRead> BlockExecutor<B> {
    /// Starts a block.
    pub fn new(base: B, ctx: BlockContext) -> Self {
        Self {
            next_leaf: ctx.first_leaf,
            heads: ctx.state_format.has_tree(),
            history: Vec::new(),
            ctx,
            state: Overlay::new(base),
        }
    }

    /// Starts an executor that checks the rules of transactions in sequence (the mempool)
    /// without computing what only a block needs: the history heads, which never refuse a
    /// record. Its writes are not a block's writes.
    pub fn for_checks(base: B, ctx: BlockContext) -> Self {
        Self {
            heads: false,
            ..Self::new(base, ctx)
        }
    }

    /// The block context.
    pub fn context(&self) -> &BlockContext {
        &self.ctx
    }

    /// The state as it is after the transactions applied so far.
    pub fn state(&self) -> &Overlay<B> {
        &self.state
    }

    /// Applies one transaction. On rejection nothing is written.
    pub fn apply(&mut self, vtx: &VerifiedTx) -> Result<Applied, Rejection> {
        let mut tx_state = Overlay::new(&self.state);
        let applied = apply_tx(&mut tx_state, &self.ctx, vtx)?;
        if self.heads {
            let first = self.history.len();
            for id in crate::history::histories_of(vtx.tx(), &applied) {
                let head = tx_state.history_head(&id)?.next(self.next_leaf, &vtx.id());
                let head_key = id.state_key();
                tx_state.put(head_key.clone(), encode_value(&head));
                self.history.push(HistoryEntry {
                    head_key,
                    leaf_index: self.next_leaf,
                    head,
                });
            }
            debug_assert!(
                self.history.len() > first,
                "every record is its department's"
            );
        }
        self.next_leaf += 1;
        let writes = tx_state.into_writes();
        self.state.extend(writes);
        Ok(applied)
    }

    /// Checks a transaction against the current state without applying it (history heads,
    /// which never refuse a record, are not computed).
    pub fn check(&self, vtx: &VerifiedTx) -> Result<Applied, Rejection> {
        let mut tx_state = Overlay::new(&self.state);
        apply_tx(&mut tx_state, &self.ctx, vtx)
    }

    /// The writes so far, without a state root (for mempool checks).
    pub fn into_writes(self) -> WriteSet {
        self.state.into_writes()
    }

    /// Ends the block: the writes, the new state root and (format 2) the state tree's
    /// update. Format 1 chains the write set onto `prev_state_root`; format 2 applies it to
    /// the base state's tree, which must be the committed state the block builds on.
    pub fn finish(self, prev_state_root: &Hash) -> Result<BlockState, StateError> {
        if !self.ctx.state_format.has_tree() {
            let root = chain_state_root(prev_state_root, self.ctx.height, self.state.writes());
            return Ok(BlockState {
                writes: self.state.into_writes(),
                root,
                tree: None,
                history: Vec::new(),
            });
        }
        let nodes = self
            .state
            .base()
            .tree()
            .ok_or(StateError::Missing("the state tree (format 2)"))?;
        let update = state_tree::apply(nodes, self.ctx.height, self.state.writes())?;
        Ok(BlockState {
            root: update.root_hash(),
            tree: Some(update),
            writes: self.state.into_writes(),
            history: self.history,
        })
    }
}

/// What a block (or the genesis) does to the state: its writes, the state root after it,
/// and for format 2 the state tree's new and stale nodes.
#[derive(Clone, Debug)]
pub struct BlockState {
    /// The writes.
    pub writes: WriteSet,
    /// The header's `state_root`.
    pub root: Hash,
    /// The tree update (format 2).
    pub tree: Option<TreeUpdate>,
    /// Format 2: after each record, its place in each of its histories, in log order.
    pub history: Vec<HistoryEntry>,
}

/// Applies one verified transaction to `state`.
fn apply_tx<S: StateRead>(
    state: &mut Overlay<S>,
    ctx: &BlockContext,
    vtx: &VerifiedTx,
) -> Result<Applied, Rejection> {
    let stx = vtx.tx();
    let tx = &stx.tx;
    if tx.chain_id != ctx.chain_id {
        return Err(Rejection::WrongChain {
            expected: ctx.chain_id.clone(),
            got: tx.chain_id.clone(),
        });
    }
    if ctx.time_ms > tx.expires_at_ms {
        return Err(Rejection::Expired {
            expires_at_ms: tx.expires_at_ms,
            block_time_ms: ctx.time_ms,
        });
    }
    if tx.created_at_ms > ctx.time_ms.saturating_add(TX_CREATED_SKEW_MAX_MS) {
        return Err(Rejection::CreatedInFuture {
            created_at_ms: tx.created_at_ms,
            block_time_ms: ctx.time_ms,
        });
    }
    let expected = state.next_nonce(&tx.signer)?;
    if tx.nonce != expected {
        return Err(Rejection::BadNonce {
            expected,
            got: tx.nonce,
        });
    }
    let department = match tx.body.required_role() {
        Some(role) => {
            let member = state
                .member(&tx.signer)?
                .ok_or(Rejection::UnknownSigner(tx.signer))?;
            if !member.active {
                return Err(Rejection::SignerRemoved(tx.signer));
            }
            if !member.roles.contains(role) {
                return Err(Rejection::MissingRole {
                    role,
                    kind: tx.body.kind(),
                });
            }
            member.department
        }
        None => {
            // Evidence: signed by a validator key in force at this height.
            let sets = state.validator_sets()?;
            let set = sets.at(ctx.height).ok_or(Rejection::NotAValidator)?;
            set.get(&tx.signer)
                .ok_or(Rejection::NotAValidator)?
                .department
                .clone()
        }
    };
    let id = vtx.id();
    let rules = Rules {
        state: &mut *state,
        ctx,
        department: &department,
        tx_id: id,
    };
    rules.apply(&tx.body)?;
    state.put(keys::nonce(&tx.signer), encode_value(&(expected + 1)));
    Ok(Applied { department })
}

struct Rules<'a, S> {
    state: &'a mut Overlay<S>,
    ctx: &'a BlockContext,
    department: &'a DepartmentId,
    tx_id: Hash,
}

impl<S: StateRead> Rules<'_, S> {
    fn apply(self, body: &TxBody) -> Result<(), Rejection> {
        match body {
            TxBody::ApprovalIssue(a) => {
                if self.state.approval(&a.approval_id)?.is_some() {
                    return Err(Rejection::ApprovalExists(a.approval_id.clone()));
                }
                if let Some(until) = a.valid_until_ms
                    && until < a.valid_from_ms
                {
                    return Err(Rejection::BadValidity {
                        from_ms: a.valid_from_ms,
                        until_ms: until,
                    });
                }
                let st = ApprovalState {
                    approval_id: a.approval_id.clone(),
                    issuer: self.department.clone(),
                    kind: a.kind.clone(),
                    subject: a.subject.clone(),
                    decision: a.decision,
                    document_hash: a.document_hash,
                    valid_from_ms: a.valid_from_ms,
                    valid_until_ms: a.valid_until_ms,
                    status: ApprovalStatus::Active,
                    issued_by_tx: self.tx_id,
                    last_tx: self.tx_id,
                    amendments: 0,
                };
                self.state
                    .put(keys::approval(&a.approval_id), encode_value(&st));
            }
            TxBody::ApprovalAmend(a) => {
                let mut st = self.issued_approval(&a.approval_id)?;
                if let Some(until) = a.valid_until_ms
                    && until < st.valid_from_ms
                {
                    return Err(Rejection::BadValidity {
                        from_ms: st.valid_from_ms,
                        until_ms: until,
                    });
                }
                st.decision = a.decision;
                st.document_hash = a.document_hash;
                st.valid_until_ms = a.valid_until_ms;
                st.last_tx = self.tx_id;
                st.amendments = st.amendments.saturating_add(1);
                self.state
                    .put(keys::approval(&a.approval_id), encode_value(&st));
            }
            TxBody::ApprovalRevoke(a) => {
                let mut st = self.issued_approval(&a.approval_id)?;
                st.status = ApprovalStatus::Revoked;
                st.last_tx = self.tx_id;
                self.state
                    .put(keys::approval(&a.approval_id), encode_value(&st));
            }
            TxBody::LandRegister(l) => {
                if self.state.parcel(&l.parcel_id)?.is_some() {
                    return Err(Rejection::ParcelExists(l.parcel_id.clone()));
                }
                let st = ParcelState {
                    parcel_id: l.parcel_id.clone(),
                    owner: l.owner.clone(),
                    document_hash: l.document_hash,
                    registered_by: self.department.clone(),
                    encumbrances: vec![],
                    last_tx: self.tx_id,
                };
                self.state
                    .put(keys::parcel(&l.parcel_id), encode_value(&st));
            }
            TxBody::LandTransfer(l) => {
                let mut st = self.parcel(&l.parcel_id)?;
                if st.owner != l.from {
                    return Err(Rejection::NotCurrentOwner {
                        parcel_id: l.parcel_id.clone(),
                        owner: st.owner,
                        from: l.from.clone(),
                    });
                }
                if l.to == st.owner {
                    return Err(Rejection::TransferToSelf(l.parcel_id.clone()));
                }
                if let Some(f) = st.freeze() {
                    return Err(Rejection::ParcelFrozen {
                        parcel_id: l.parcel_id.clone(),
                        encumbrance_id: f.encumbrance_id.clone(),
                    });
                }
                st.owner = l.to.clone();
                st.document_hash = l.deed_hash;
                st.last_tx = self.tx_id;
                self.state
                    .put(keys::parcel(&l.parcel_id), encode_value(&st));
            }
            TxBody::LandEncumber(l) => {
                let mut st = self.parcel(&l.parcel_id)?;
                if st
                    .encumbrances
                    .iter()
                    .any(|e| e.encumbrance_id == l.encumbrance_id)
                {
                    return Err(Rejection::EncumbranceExists {
                        parcel_id: l.parcel_id.clone(),
                        encumbrance_id: l.encumbrance_id.clone(),
                    });
                }
                if st.encumbrances.len() >= ENCUMBRANCES_PER_PARCEL_MAX {
                    return Err(Rejection::TooManyEncumbrances(l.parcel_id.clone()));
                }
                st.encumbrances.push(EncumbranceState {
                    encumbrance_id: l.encumbrance_id.clone(),
                    kind: l.kind,
                    holder: l.holder.clone(),
                    document_hash: l.document_hash,
                    tx: self.tx_id,
                });
                st.last_tx = self.tx_id;
                self.state
                    .put(keys::parcel(&l.parcel_id), encode_value(&st));
            }
            TxBody::LandRelease(l) => {
                let mut st = self.parcel(&l.parcel_id)?;
                let pos = st
                    .encumbrances
                    .iter()
                    .position(|e| e.encumbrance_id == l.encumbrance_id)
                    .ok_or_else(|| Rejection::EncumbranceNotFound {
                        parcel_id: l.parcel_id.clone(),
                        encumbrance_id: l.encumbrance_id.clone(),
                    })?;
                st.encumbrances.remove(pos);
                st.last_tx = self.tx_id;
                self.state
                    .put(keys::parcel(&l.parcel_id), encode_value(&st));
            }
            TxBody::CatalogRegister(c) => {
                if self.state.catalog(&c.resource_id)?.is_some() {
                    return Err(Rejection::ResourceExists(c.resource_id.clone()));
                }
                let st = CatalogState {
                    entry: c.clone(),
                    owner: self.department.clone(),
                    registered_by_tx: self.tx_id,
                    last_tx: self.tx_id,
                };
                self.state
                    .put(keys::catalog(&c.resource_id), encode_value(&st));
            }
            TxBody::CatalogUpdate(c) => {
                let mut st = self
                    .state
                    .catalog(&c.resource_id)?
                    .ok_or_else(|| Rejection::ResourceNotFound(c.resource_id.clone()))?;
                if &st.owner != self.department {
                    return Err(Rejection::NotResourceOwner {
                        resource_id: c.resource_id.clone(),
                        owner: st.owner,
                    });
                }
                st.entry = c.clone();
                st.last_tx = self.tx_id;
                self.state
                    .put(keys::catalog(&c.resource_id), encode_value(&st));
            }
            TxBody::DataAccess(d) => {
                let st = self
                    .state
                    .catalog(&d.resource_id)?
                    .ok_or_else(|| Rejection::ResourceNotFound(d.resource_id.clone()))?;
                if d.purpose.trim().is_empty() {
                    return Err(Rejection::PurposeRequired);
                }
                if d.accessed_at_ms > self.ctx.time_ms.saturating_add(ACCESS_TIME_SKEW_MAX_MS) {
                    return Err(Rejection::AccessInFuture {
                        accessed_at_ms: d.accessed_at_ms,
                        block_time_ms: self.ctx.time_ms,
                    });
                }
                if &st.owner != self.department {
                    match st.entry.sharing {
                        SharingType::Unconditional => {}
                        SharingType::Conditional => {
                            if d.legal_basis.trim().is_empty() {
                                return Err(Rejection::LegalBasisRequired(d.resource_id.clone()));
                            }
                        }
                        SharingType::NotShared => {
                            return Err(Rejection::ResourceNotShared {
                                resource_id: d.resource_id.clone(),
                                owner: st.owner,
                            });
                        }
                    }
                }
                // An access event changes no state beyond the nonce: it is a record in the
                // log and in the pseudonym index.
            }
            TxBody::Anchor(_) => {}
            TxBody::GovernancePropose(p) => {
                check_action_plausible(&*self.state, &p.action)?;
                let params = self.state.params()?;
                let mut st = ProposalState {
                    proposal_id: self.tx_id,
                    department: self.department.clone(),
                    action: p.action.clone(),
                    description: p.description.clone(),
                    created_height: self.ctx.height,
                    expires_at_ms: self
                        .ctx
                        .time_ms
                        .saturating_add(params.governance_voting_period_ms),
                    votes: vec![(self.department.clone(), true)],
                    status: ProposalStatus::Open,
                };
                tally(self.state, self.ctx, &mut st)?;
                self.state
                    .put(keys::proposal(&self.tx_id), encode_value(&st));
            }
            TxBody::GovernanceVote(v) => {
                let mut st = self
                    .state
                    .proposal(&v.proposal_id)?
                    .ok_or(Rejection::ProposalNotFound(v.proposal_id))?;
                if st.status != ProposalStatus::Open {
                    return Err(Rejection::ProposalClosed(v.proposal_id));
                }
                if self.ctx.time_ms > st.expires_at_ms {
                    return Err(Rejection::ProposalExpired(v.proposal_id));
                }
                match st
                    .votes
                    .binary_search_by(|(d, _)| d.as_str().cmp(self.department))
                {
                    Ok(_) => return Err(Rejection::AlreadyVoted(self.department.clone())),
                    Err(pos) => st.votes.insert(pos, (self.department.clone(), v.approve)),
                }
                tally(self.state, self.ctx, &mut st)?;
                self.state
                    .put(keys::proposal(&v.proposal_id), encode_value(&st));
            }
            TxBody::Evidence(ev) => {
                ev.verify(&self.ctx.chain_id)
                    .map_err(|e| Rejection::InvalidEvidence(e.to_string()))?;
                let key = ev.key();
                if key.height > self.ctx.height {
                    return Err(Rejection::InvalidEvidence(format!(
                        "evidence is for height {}, later than this block",
                        key.height
                    )));
                }
                if self.ctx.height - key.height > EVIDENCE_AGE_MAX_HEIGHTS {
                    return Err(Rejection::InvalidEvidence(format!(
                        "evidence is older than {EVIDENCE_AGE_MAX_HEIGHTS} heights"
                    )));
                }
                let sets = self.state.validator_sets()?;
                let set = sets.at(key.height).ok_or_else(|| {
                    Rejection::InvalidEvidence("no validator set is known for that height".into())
                })?;
                if set.get(&key.validator).is_none() {
                    return Err(Rejection::InvalidEvidence(format!(
                        "{} was not a validator at height {}",
                        key.validator, key.height
                    )));
                }
                let k = keys::evidence(&key);
                if self.state.get(&k)?.is_some() {
                    return Err(Rejection::DuplicateEvidence);
                }
                self.state.put(k, encode_value(&self.tx_id));
            }
        }
        Ok(())
    }

    fn issued_approval(&self, id: &str) -> Result<ApprovalState, Rejection> {
        let st = self
            .state
            .approval(id)?
            .ok_or_else(|| Rejection::ApprovalNotFound(id.to_string()))?;
        if &st.issuer != self.department {
            return Err(Rejection::NotIssuer {
                approval_id: id.to_string(),
                issuer: st.issuer,
            });
        }
        if st.status == ApprovalStatus::Revoked {
            return Err(Rejection::ApprovalRevoked(id.to_string()));
        }
        Ok(st)
    }

    fn parcel(&self, id: &str) -> Result<ParcelState, Rejection> {
        self.state
            .parcel(id)?
            .ok_or_else(|| Rejection::ParcelNotFound(id.to_string()))
    }
}

/// Refuses a proposal whose action could not apply to the current state, so that clerks
/// learn at once instead of after the vote. (The action is checked again at execution.)
fn check_action_plausible<S: StateRead>(state: &S, action: &GovAction) -> Result<(), Rejection> {
    let mut scratch = Overlay::new(state);
    // Execute against a scratch overlay at a far height; only the verdict matters.
    execute_action(&mut scratch, u64::MAX - VALSET_CHANGE_DELAY, action).map_err(|e| match e {
        ActionError::Invalid(reason) => Rejection::InvalidAction(reason),
        ActionError::State(e) => Rejection::State(e),
    })
}

/// Counts the votes; executes or rejects the proposal once the outcome is certain.
///
/// Only departments that can vote count: those with at least one active member holding
/// the `governance` role ([`GovernanceVoters`]). Their weights make the voting total, and
/// only their votes count (a recorded vote of a department that has since lost all its
/// voters counts for nothing, on either side). The proposal executes once the approving
/// weight is more than two thirds of that total, and is rejected once it can no longer
/// get there. The total is taken when the tally runs (at the proposal and at each vote),
/// so an open proposal is judged against the voters of that moment.
fn tally<S: StateRead>(
    state: &mut Overlay<S>,
    ctx: &BlockContext,
    st: &mut ProposalState,
) -> Result<(), Rejection> {
    let departments = state.departments()?;
    let voters = state.governance_voters()?;
    let weight = |id: &str| -> u128 {
        if !voters.can_vote(id) {
            return 0;
        }
        departments
            .binary_search_by(|d| d.id.as_str().cmp(id))
            .map_or(0, |i| departments[i].governance_weight as u128)
    };
    let total: u128 = voters.counts.iter().map(|(id, _)| weight(id)).sum();
    let approve: u128 = st.votes.iter().filter(|v| v.1).map(|v| weight(&v.0)).sum();
    let reject: u128 = st.votes.iter().filter(|v| !v.1).map(|v| weight(&v.0)).sum();
    if 3 * approve > 2 * total {
        let mut scratch = Overlay::new(&*state);
        st.status = match execute_action(&mut scratch, ctx.height, &st.action) {
            Ok(()) => {
                let writes = scratch.into_writes();
                state.extend(writes);
                ProposalStatus::Executed { height: ctx.height }
            }
            Err(ActionError::Invalid(reason)) => ProposalStatus::Failed {
                height: ctx.height,
                reason,
            },
            // Never recorded: a read failure on this node would give it a different state.
            Err(ActionError::State(e)) => return Err(Rejection::State(e)),
        };
    } else if 3 * (total.saturating_sub(reject)) <= 2 * total {
        st.status = ProposalStatus::Rejected { height: ctx.height };
    }
    Ok(())
}

/// Why a governance action did not apply.
#[derive(Debug)]
enum ActionError {
    /// The action cannot apply to this state: a reason, recorded as the proposal's
    /// failure (the same on every node).
    Invalid(String),
    /// The state could not be read on this node: not the proposal's fault, never
    /// recorded; the block aborts on this node.
    State(StateError),
}

impl From<String> for ActionError {
    fn from(reason: String) -> Self {
        ActionError::Invalid(reason)
    }
}

impl From<&str> for ActionError {
    fn from(reason: &str) -> Self {
        ActionError::Invalid(reason.to_string())
    }
}

impl From<StateError> for ActionError {
    fn from(e: StateError) -> Self {
        ActionError::State(e)
    }
}

/// Applies a governance action at `height`. Invalid actions give reasons (the proposal
/// fails); a storage error is an error of this node and propagates.
fn execute_action<S: StateRead>(
    state: &mut Overlay<S>,
    height: u64,
    action: &GovAction,
) -> Result<(), ActionError> {
    match action {
        GovAction::AddDepartment {
            id,
            name,
            governance_weight,
        } => {
            let mut depts = state.departments()?;
            match depts.binary_search_by(|d| d.id.as_str().cmp(id)) {
                Ok(_) => return Err(format!("department {id:?} already exists").into()),
                Err(pos) => {
                    if *governance_weight == 0 {
                        return Err("governance weight must be at least 1".into());
                    }
                    if depts.len() >= crate::genesis::DEPARTMENTS_MAX {
                        return Err("too many departments".into());
                    }
                    depts.insert(
                        pos,
                        Department {
                            id: id.clone(),
                            name: name.clone(),
                            governance_weight: *governance_weight,
                        },
                    )
                }
            }
            state.put(keys::DEPARTMENTS.to_vec(), encode_value(&depts));
        }
        GovAction::AddMember {
            key,
            department,
            roles,
            name,
        } => {
            if !key.is_valid() {
                return Err("the key is not a valid ed25519 public key".into());
            }
            let depts = state.departments()?;
            if depts.binary_search_by(|d| d.id.cmp(department)).is_err() {
                return Err(format!("department {department:?} does not exist").into());
            }
            if let Some(m) = state.member(key)?
                && m.active
            {
                return Err(format!("{key} is already a member of {:?}", m.department).into());
            }
            let m = MemberState {
                department: department.clone(),
                roles: *roles,
                name: name.clone(),
                active: true,
            };
            if m.roles.contains(Role::Governance) {
                let mut voters = state.governance_voters()?;
                voters.add(department);
                state.put(keys::GOVERNANCE_VOTERS.to_vec(), encode_value(&voters));
            }
            state.put(keys::member(key), encode_value(&m));
        }
        GovAction::RemoveMember { key } => {
            let mut m = active_member(state, key)?;
            if m.roles.contains(Role::Governance) {
                remove_voter(state, key, &m.department, "removing it")?;
            }
            m.active = false;
            m.roles = crate::tx::RoleSet::empty();
            state.put(keys::member(key), encode_value(&m));
        }
        GovAction::GrantRole { key, role } | GovAction::RevokeRole { key, role } => {
            let mut m = active_member(state, key)?;
            let had = m.roles.contains(*role);
            if matches!(action, GovAction::GrantRole { .. }) {
                m.roles.insert(*role);
                if *role == Role::Governance && !had {
                    let mut voters = state.governance_voters()?;
                    voters.add(&m.department);
                    state.put(keys::GOVERNANCE_VOTERS.to_vec(), encode_value(&voters));
                }
            } else {
                m.roles.remove(*role);
                if *role == Role::Governance && had {
                    remove_voter(state, key, &m.department, "revoking its governance role")?;
                }
            }
            state.put(keys::member(key), encode_value(&m));
        }
        GovAction::AddValidator { validator } => {
            let depts = state.departments()?;
            if depts
                .binary_search_by(|d| d.id.cmp(&validator.department))
                .is_err()
            {
                return Err(format!("department {:?} does not exist", validator.department).into());
            }
            change_validators(state, height, |vals| {
                if vals.iter().any(|v| v.public_key == validator.public_key) {
                    return Err(format!("{} is already a validator", validator.public_key));
                }
                vals.push(validator.clone());
                Ok(())
            })?;
        }
        GovAction::RemoveValidator { key } => {
            change_validators(state, height, |vals| {
                let before = vals.len();
                vals.retain(|v| &v.public_key != key);
                if vals.len() == before {
                    return Err(format!("{key} is not a validator"));
                }
                Ok(())
            })?;
        }
        GovAction::SetValidatorPower { key, power } => {
            change_validators(state, height, |vals| {
                let v = vals
                    .iter_mut()
                    .find(|v| &v.public_key == key)
                    .ok_or_else(|| format!("{key} is not a validator"))?;
                v.power = *power;
                Ok(())
            })?;
        }
        GovAction::SetParams { params } => {
            params
                .validate()
                .map_err(|e| ActionError::Invalid(e.to_string()))?;
            state.put(keys::PARAMS.to_vec(), encode_value(params));
        }
    }
    Ok(())
}

/// Takes one voter away from `department` (the member `key` loses the `governance` role or
/// is removed). Refused if it is the last member holding the role on the whole chain: no
/// one could then propose or vote, and governance could never change anything again.
fn remove_voter<S: StateRead>(
    state: &mut Overlay<S>,
    key: &crate::crypto::PublicKey,
    department: &str,
    doing: &str,
) -> Result<(), ActionError> {
    let mut voters = state.governance_voters()?;
    // The member holds the role, so its department is counted (genesis and every action
    // keep the counts in step with the member records); `remove` is a no-op otherwise.
    voters.remove(department);
    if voters.counts.is_empty() {
        return Err(format!(
            "{key} is the last active member holding the governance role; {doing} would leave \
             no one able to propose or vote, so governance could never act again. Grant the \
             governance role to another member first"
        )
        .into());
    }
    state.put(keys::GOVERNANCE_VOTERS.to_vec(), encode_value(&voters));
    Ok(())
}

fn active_member<S: StateRead>(
    state: &Overlay<S>,
    key: &crate::crypto::PublicKey,
) -> Result<MemberState, ActionError> {
    match state.member(key)? {
        Some(m) if m.active => Ok(m),
        _ => Err(format!("{key} is not an active member").into()),
    }
}

fn change_validators<S: StateRead>(
    state: &mut Overlay<S>,
    height: u64,
    change: impl FnOnce(&mut Vec<crate::validator::Validator>) -> Result<(), String>,
) -> Result<(), ActionError> {
    let mut history = state.validator_sets()?;
    let mut vals = history
        .latest()
        .map(|s| s.validators().to_vec())
        .unwrap_or_default();
    change(&mut vals)?;
    let set = ValidatorSet::new(vals).map_err(|e| ActionError::Invalid(e.to_string()))?;
    history.schedule(height.saturating_add(VALSET_CHANGE_DELAY), set);
    state.put(keys::VALIDATOR_SETS.to_vec(), encode_value(&history));
    Ok(())
}

/// The state written by genesis and its state root: format 1 `chain_state_root(genesis
/// hash, 0, writes)`, format 2 the root of the tree holding exactly these writes (version
/// 0).
pub fn genesis_state(genesis: &Genesis) -> Result<BlockState, crate::genesis::GenesisError> {
    genesis.validate()?;
    let mut w = WriteSet::new();
    let mut depts = genesis.departments.clone();
    depts.sort_by(|a, b| a.id.cmp(&b.id));
    w.insert(keys::DEPARTMENTS.to_vec(), Some(encode_value(&depts)));
    let mut voters = GovernanceVoters::default();
    for m in &genesis.members {
        if m.roles.contains(Role::Governance) {
            voters.add(&m.department);
        }
        let st = MemberState {
            department: m.department.clone(),
            roles: m.roles,
            name: m.name.clone(),
            active: true,
        };
        w.insert(keys::member(&m.key), Some(encode_value(&st)));
    }
    w.insert(
        keys::GOVERNANCE_VOTERS.to_vec(),
        Some(encode_value(&voters)),
    );
    let history = ValidatorSetHistory {
        sets: vec![(1, genesis.validator_set()?)],
    };
    w.insert(keys::VALIDATOR_SETS.to_vec(), Some(encode_value(&history)));
    w.insert(keys::PARAMS.to_vec(), Some(encode_value(&genesis.params)));
    if !genesis.state_format.has_tree() {
        let root = chain_state_root(&genesis.hash(), 0, &w);
        return Ok(BlockState {
            writes: w,
            root,
            tree: None,
            history: Vec::new(),
        });
    }
    // An empty tree has no node to read: the update of version 0 reads nothing.
    let update = state_tree::apply(&state_tree::MemTree::new(), 0, &w).map_err(|e| {
        crate::genesis::GenesisError::Invalid {
            field: "state".into(),
            reason: e.to_string(),
        }
    })?;
    Ok(BlockState {
        root: update.root_hash(),
        tree: Some(update),
        writes: w,
        history: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
