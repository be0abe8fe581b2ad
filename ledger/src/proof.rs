//! Proof bundles: everything a citizen needs to check, offline and with nothing but the
//! genesis file, that a record is in the ledger and final. Documented byte by byte in
//! `docs/proof-format.md`.
//!
//! The verifier follows the validator sets from genesis like a light client: each change
//! is accepted only through a header signed by the set in force that announces the next
//! set's hash; the record's block must then be signed by the set those changes lead to.

use crate::block::BlockHeader;
use crate::genesis::Genesis;
use crate::hash::{Hash, hash_document};
use crate::history_log::{ProofError, verify_inclusion};
use crate::tx::{SignedTx, TxBody, tx_id};
use crate::validator::ValidatorSet;
use crate::vote::CommitCertificate;
use serde::{Deserialize, Serialize};

/// The bundle format version this code writes and reads.
pub const BUNDLE_VERSION: u32 = 1;
/// Bound on validator-set changes in one bundle.
pub const VALIDATOR_CHANGES_MAX: usize = 10_000;
/// Bound on an inclusion path (a log of 2^64 leaves needs 64).
pub const PATH_LEN_MAX: usize = 64;

/// Bytes in JSON as lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl Serialize for HexBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&crate::bytes::encode_hex(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode(s)
                .map(HexBytes)
                .map_err(serde::de::Error::custom)
        } else {
            Vec::<u8>::deserialize(d).map(HexBytes)
        }
    }
}

/// The record being proven.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRecord {
    /// Record id: `blake3(0x00 ‖ tx_bytes)`.
    pub id: Hash,
    /// Position in the history log.
    pub leaf_index: u64,
    /// Height of the block that holds it.
    pub height: u64,
    /// Canonical bytes of the signed transaction.
    pub tx_bytes: HexBytes,
    /// The same transaction, decoded (for reading; the verifier checks they agree).
    pub tx: SignedTx,
}

/// An inclusion path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleInclusion {
    /// Log size the path is for (the header's `log_size`).
    pub log_size: u64,
    /// RFC 9162 inclusion path, leaf side first.
    pub path: Vec<Hash>,
}

/// A header with its canonical bytes and its commit certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// Canonical header bytes (what is hashed).
    pub bytes: HexBytes,
    /// Decoded (for reading; the verifier checks they agree).
    pub header: BlockHeader,
    /// Its commit certificate.
    pub commit: CommitCertificate,
}

/// A governance record that contributed to a validator-set change, with its inclusion
/// path in the log of the announcing header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernanceRecord {
    /// Canonical bytes of the signed transaction.
    pub tx_bytes: HexBytes,
    /// Its leaf index.
    pub leaf_index: u64,
    /// Inclusion path in the announcing header's log.
    pub path: Vec<Hash>,
}

/// A change of the validator set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatorChange {
    /// First height decided by the new set.
    pub activation_height: u64,
    /// The new set.
    pub validators: ValidatorSet,
    /// The header at `activation_height − 1`, signed by the previous set, whose
    /// `next_validators_hash` is the new set's hash.
    pub announced_by: BundleHeader,
    /// The governance records executed for it (transparency; also checked for inclusion).
    pub governance: Vec<GovernanceRecord>,
}

/// A proof bundle (format version 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofBundle {
    /// Format version.
    pub version: u32,
    /// Chain id.
    pub chain_id: String,
    /// Hash of the genesis the chain started from.
    pub genesis_hash: Hash,
    /// The record.
    pub record: BundleRecord,
    /// Its inclusion path.
    pub inclusion: BundleInclusion,
    /// The header of the record's block and its commit certificate.
    pub header: BundleHeader,
    /// Every validator-set change from genesis up to the record's height, in order.
    pub validator_changes: Vec<ValidatorChange>,
}

/// The step of verification that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The bundle is not for this genesis, or has an unknown version.
    Genesis,
    /// The record's bytes, id or signature.
    RecordContent,
    /// The header's bytes or position.
    Header,
    /// The inclusion path.
    Inclusion,
    /// A validator-set change.
    ValidatorSetChange,
    /// The commit certificate of the record's block.
    CommitCertificate,
    /// The document does not match the record's document hash.
    DocumentHash,
    /// A state proof (format 2): a value, or an absence, against the header's state root.
    StateProof,
    /// A history page (format 2): records, inclusion, and the chain to the proven head.
    History,
    /// The bundle is older than the reader accepts (`--max-age`).
    Age,
}

impl Step {
    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            Step::Genesis => "genesis",
            Step::RecordContent => "record content",
            Step::Header => "header",
            Step::Inclusion => "inclusion",
            Step::ValidatorSetChange => "validator-set change",
            Step::CommitCertificate => "commit certificate",
            Step::DocumentHash => "document hash",
            Step::StateProof => "state proof",
            Step::History => "history",
            Step::Age => "age",
        }
    }
}

/// A failed verification: which step, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} check failed: {reason}", step.name())]
pub struct VerifyError {
    /// The step.
    pub step: Step,
    /// Why.
    pub reason: String,
}

fn fail<T>(step: Step, reason: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError {
        step,
        reason: reason.into(),
    })
}

/// What a valid bundle proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedRecord {
    /// Record id.
    pub id: Hash,
    /// Record kind.
    pub kind: String,
    /// Block height.
    pub height: u64,
    /// Block time: the record existed by then.
    pub block_time_ms: u64,
    /// Leaf index.
    pub leaf_index: u64,
    /// The signer.
    pub signer: crate::crypto::PublicKey,
    /// Validator-set changes followed.
    pub validator_changes: usize,
}

/// The document hashes a record names (anchors, approval and land documents).
pub fn document_hashes(body: &TxBody) -> Vec<Hash> {
    match body {
        TxBody::Anchor(a) => vec![a.document_hash],
        TxBody::ApprovalIssue(a) => vec![a.document_hash],
        TxBody::ApprovalAmend(a) => vec![a.document_hash],
        TxBody::LandRegister(l) => vec![l.document_hash],
        TxBody::LandTransfer(l) => vec![l.deed_hash],
        TxBody::LandEncumber(l) => vec![l.document_hash],
        TxBody::LandRelease(l) => vec![l.document_hash],
        _ => vec![],
    }
}

fn check_header(bh: &BundleHeader, chain_id: &str, step: Step) -> Result<Hash, VerifyError> {
    let decoded = match BlockHeader::decode(&bh.bytes.0) {
        Ok(h) => h,
        Err(e) => return fail(step, format!("header bytes do not decode: {e}")),
    };
    if decoded != bh.header {
        return fail(step, "decoded header differs from the header bytes");
    }
    if decoded.chain_id != chain_id {
        return fail(step, format!("header is for chain {:?}", decoded.chain_id));
    }
    Ok(decoded.hash())
}

/// The light-client walk over validator-set changes, shared by bundles and checkpoints:
/// returns the set in force at `height`.
pub fn follow_validator_changes(
    genesis: &Genesis,
    changes: &[ValidatorChange],
    height: u64,
) -> Result<ValidatorSet, VerifyError> {
    let set = match genesis.validator_set() {
        Ok(s) => s,
        Err(e) => return fail(Step::Genesis, e.to_string()),
    };
    follow_from(&genesis.chain_id, set, changes, height)
}

fn follow_from(
    chain_id: &str,
    mut set: ValidatorSet,
    changes: &[ValidatorChange],
    height: u64,
) -> Result<ValidatorSet, VerifyError> {
    let step = Step::ValidatorSetChange;
    if changes.len() > VALIDATOR_CHANGES_MAX {
        return fail(step, "too many validator-set changes");
    }
    let mut from = 1u64;
    for (i, c) in changes.iter().enumerate() {
        if c.activation_height <= from || c.activation_height > height {
            return fail(
                step,
                format!(
                    "change {i}: activation height {} is out of order (previous {from}, target {height})",
                    c.activation_height
                ),
            );
        }
        let hh = check_header(&c.announced_by, chain_id, step)?;
        let h = &c.announced_by.header;
        if h.height != c.activation_height - 1 {
            return fail(
                step,
                format!(
                    "change {i}: announcing header is at height {}, expected {}",
                    h.height,
                    c.activation_height - 1
                ),
            );
        }
        if h.validators_hash != set.hash() {
            return fail(
                step,
                format!(
                    "change {i}: the announcing header at height {} is not from the validator set in force; a change is missing",
                    h.height
                ),
            );
        }
        if let Err(e) = c.announced_by.commit.verify(chain_id, h.height, &hh, &set) {
            return fail(step, format!("change {i}: announcing header's commit: {e}"));
        }
        if h.next_validators_hash != c.validators.hash() {
            return fail(
                step,
                format!("change {i}: the new set is not the one the header announces"),
            );
        }
        for (j, g) in c.governance.iter().enumerate() {
            let ok = SignedTx::decode(&g.tx_bytes.0).is_ok()
                && verify_inclusion(
                    &tx_id(&g.tx_bytes.0),
                    g.leaf_index,
                    h.log_size,
                    &g.path,
                    &h.log_root,
                )
                .is_ok();
            if !ok {
                return fail(
                    step,
                    format!(
                        "change {i}: governance record {j} is not in the announcing header's log"
                    ),
                );
            }
        }
        set = c.validators.clone();
        from = c.activation_height;
    }
    Ok(set)
}

impl ProofBundle {
    /// Verifies the bundle offline against `genesis`, and the document if given.
    pub fn verify(
        &self,
        genesis: &Genesis,
        document: Option<&[u8]>,
    ) -> Result<VerifiedRecord, VerifyError> {
        Verifier::new(genesis)?.verify(self, document)
    }

    /// Parses a bundle from JSON.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a proof bundle: {e}"))
    }
}

/// Most block hashes a [`Verifier`] remembers as certified.
pub const CERTIFIED_CACHE_MAX: usize = 100_000;

/// Verifies proof bundles against one genesis. Reusing a verifier for many bundles saves
/// work: the genesis is hashed once, and a block whose certificate was verified once is
/// not verified again for other records of it. [`Verifier::verify_many`] also checks the
/// records' signatures in one batch.
pub struct Verifier<'g> {
    genesis: &'g Genesis,
    genesis_hash: Hash,
    genesis_set: ValidatorSet,
    certified: std::sync::Mutex<std::collections::HashSet<Hash>>,
}

impl<'g> Verifier<'g> {
    /// A verifier pinned to `genesis`.
    pub fn new(genesis: &'g Genesis) -> Result<Self, VerifyError> {
        let genesis_set = match genesis.validator_set() {
            Ok(s) => s,
            Err(e) => return fail(Step::Genesis, e.to_string()),
        };
        Ok(Verifier {
            genesis,
            genesis_hash: genesis.hash(),
            genesis_set,
            certified: Default::default(),
        })
    }

    fn is_certified(&self, h: &Hash) -> bool {
        self.certified
            .lock()
            .map(|c| c.contains(h))
            .unwrap_or(false)
    }

    fn remember_certified(&self, h: Hash) {
        if let Ok(mut c) = self.certified.lock() {
            if c.len() >= CERTIFIED_CACHE_MAX {
                c.clear();
            }
            c.insert(h);
        }
    }

    /// Verifies one bundle, and the document if given.
    pub fn verify(
        &self,
        bundle: &ProofBundle,
        document: Option<&[u8]>,
    ) -> Result<VerifiedRecord, VerifyError> {
        self.verify_inner(bundle, document, false)
    }

    /// Verifies many bundles; the records' signatures are checked in one batch. The verdict
    /// for each is the same as [`Verifier::verify`] would give.
    pub fn verify_many(&self, bundles: &[ProofBundle]) -> Vec<Result<VerifiedRecord, VerifyError>> {
        let mut batch = crate::crypto::BatchVerifier::with_capacity(bundles.len());
        for b in bundles {
            batch.push(
                &b.record.tx.tx.signer,
                crate::hash::domain::TX_SIGN,
                &crate::codec::encode(&b.record.tx.tx),
                &b.record.tx.signature,
            );
        }
        batch
            .verify()
            .into_iter()
            .zip(bundles)
            .map(|(sig, b)| match sig {
                // The decoded record is checked against its bytes inside; a valid signature
                // over the decoded form is then a valid signature over the bytes.
                Ok(()) => self.verify_inner(b, None, true),
                Err(_) => self.verify_inner(b, None, false),
            })
            .collect()
    }

    fn verify_inner(
        &self,
        bundle: &ProofBundle,
        document: Option<&[u8]>,
        signature_checked: bool,
    ) -> Result<VerifiedRecord, VerifyError> {
        let genesis = self.genesis;
        // 1. Genesis.
        if bundle.version != BUNDLE_VERSION {
            return fail(
                Step::Genesis,
                format!("bundle version {} is not {BUNDLE_VERSION}", bundle.version),
            );
        }
        if bundle.genesis_hash != self.genesis_hash || bundle.chain_id != genesis.chain_id {
            return fail(
                Step::Genesis,
                format!(
                    "bundle is for chain {:?} with genesis {}, the given genesis is {:?} {}",
                    bundle.chain_id, bundle.genesis_hash, genesis.chain_id, self.genesis_hash
                ),
            );
        }
        // 2. Record content.
        let r = &bundle.record;
        let stx = match SignedTx::decode(&r.tx_bytes.0) {
            Ok(t) => t,
            Err(e) => {
                return fail(
                    Step::RecordContent,
                    format!("record bytes do not decode: {e}"),
                );
            }
        };
        if stx != r.tx {
            return fail(
                Step::RecordContent,
                "decoded record differs from the record bytes",
            );
        }
        if tx_id(&r.tx_bytes.0) != r.id {
            return fail(
                Step::RecordContent,
                "record id is not the hash of the record bytes",
            );
        }
        if stx.tx.chain_id != genesis.chain_id {
            return fail(Step::RecordContent, "record is signed for another chain");
        }
        if !signature_checked && let Err(e) = stx.verify_signature() {
            return fail(Step::RecordContent, format!("record signature: {e}"));
        }
        // 3. Header.
        let header_hash = check_header(&bundle.header, &genesis.chain_id, Step::Header)?;
        let h = &bundle.header.header;
        if h.height != r.height {
            return fail(
                Step::Header,
                format!(
                    "header is for height {}, the record says {}",
                    h.height, r.height
                ),
            );
        }
        let first = h.log_size.saturating_sub(h.tx_count as u64);
        if r.leaf_index < first || r.leaf_index >= h.log_size {
            return fail(
                Step::Header,
                format!(
                    "leaf {} is not in this block's range [{first}, {})",
                    r.leaf_index, h.log_size
                ),
            );
        }
        // 4. Inclusion.
        if bundle.inclusion.log_size != h.log_size {
            return fail(
                Step::Inclusion,
                "path is for another log size than the header's",
            );
        }
        if bundle.inclusion.path.len() > PATH_LEN_MAX {
            return fail(Step::Inclusion, "path too long");
        }
        if let Err(e) = verify_inclusion(
            &r.id,
            r.leaf_index,
            h.log_size,
            &bundle.inclusion.path,
            &h.log_root,
        ) {
            return fail(Step::Inclusion, describe(e));
        }
        // 5 and 6, once per block: a header whose certificate was verified before is final,
        // whichever bundle carried it.
        // The key covers everything steps 5 and 6 read, so that a bundle whose certificate
        // or validator changes were tampered with is never excused by an honest one.
        let certified_key = crate::hash::hash_parts(
            b"",
            &[
                &header_hash.0,
                &crate::codec::encode(&bundle.header.commit),
                &crate::codec::encode(&bundle.validator_changes),
            ],
        );
        if !self.is_certified(&certified_key) {
            // 5. Validator sets from genesis to the record's height.
            let set = follow_from(
                &genesis.chain_id,
                self.genesis_set.clone(),
                &bundle.validator_changes,
                h.height,
            )?;
            if h.validators_hash != set.hash() {
                return fail(
                    Step::ValidatorSetChange,
                    "the record's block was decided by a validator set the bundle does not lead to",
                );
            }
            // 6. Commit certificate.
            if let Err(e) =
                bundle
                    .header
                    .commit
                    .verify(&genesis.chain_id, h.height, &header_hash, &set)
            {
                return fail(Step::CommitCertificate, e.to_string());
            }
            self.remember_certified(certified_key);
        }
        // 7. Document.
        if let Some(doc) = document {
            let got = hash_document(doc);
            let named = document_hashes(&stx.tx.body);
            if named.is_empty() {
                return fail(Step::DocumentHash, "the record names no document");
            }
            if !named.contains(&got) {
                return fail(
                    Step::DocumentHash,
                    format!(
                        "the document's blake3 is {got}; the record names {}",
                        named[0]
                    ),
                );
            }
        }
        Ok(VerifiedRecord {
            id: r.id,
            kind: stx.tx.body.kind().to_string(),
            height: h.height,
            block_time_ms: h.time_ms,
            leaf_index: r.leaf_index,
            signer: stx.tx.signer,
            validator_changes: bundle.validator_changes.len(),
        })
    }
}

fn describe(e: ProofError) -> String {
    e.to_string()
}

/// A checkpoint an auditor keeps: a signed header plus the validator changes needed to
/// check it from genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version.
    pub version: u32,
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis_hash: Hash,
    /// The header and its commit.
    pub header: BundleHeader,
    /// Validator-set changes from genesis to the header's height.
    pub validator_changes: Vec<ValidatorChange>,
}

impl Checkpoint {
    /// Verifies the checkpoint against genesis; returns its header.
    pub fn verify(&self, genesis: &Genesis) -> Result<&BlockHeader, VerifyError> {
        if self.version != BUNDLE_VERSION {
            return fail(
                Step::Genesis,
                format!(
                    "checkpoint version {} is not {BUNDLE_VERSION}",
                    self.version
                ),
            );
        }
        if self.genesis_hash != genesis.hash() || self.chain_id != genesis.chain_id {
            return fail(Step::Genesis, "checkpoint is for another genesis");
        }
        let hh = check_header(&self.header, &genesis.chain_id, Step::Header)?;
        let h = &self.header.header;
        let set = follow_validator_changes(genesis, &self.validator_changes, h.height)?;
        if h.validators_hash != set.hash() {
            return fail(
                Step::ValidatorSetChange,
                "checkpoint header's validator set is not reached",
            );
        }
        if let Err(e) = self
            .header
            .commit
            .verify(&genesis.chain_id, h.height, &hh, &set)
        {
            return fail(Step::CommitCertificate, e.to_string());
        }
        Ok(h)
    }
}

/// What every proof bundle of one block shares: the block's header with its certificate,
/// and the validator-set changes from genesis up to it.
#[derive(Clone, Debug)]
pub struct BlockProofParts {
    /// The header and certificate.
    pub header: BundleHeader,
    /// The validator-set changes.
    pub validator_changes: Vec<ValidatorChange>,
}

#[cfg(feature = "rocksdb")]
mod build {
    use super::*;
    use crate::codec;
    use crate::state::{ProposalStatus, StateView};
    use crate::store::{Store, StoreError};
    use crate::tx::GovAction;

    impl Store {
        /// The shared parts of the bundles of block `height`, from the cache or the store.
        fn block_proof_parts(
            &self,
            height: u64,
        ) -> Result<std::sync::Arc<BlockProofParts>, StoreError> {
            let lock = || self.proof_parts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(p) = lock().get(&height) {
                return Ok(p.clone());
            }
            let parts = std::sync::Arc::new(BlockProofParts {
                header: self.bundle_header(height)?,
                validator_changes: self.validator_changes(height)?,
            });
            let mut cache = lock();
            if cache.len() >= crate::store::PROOF_PARTS_CACHE_MAX {
                cache.pop_first();
            }
            cache.insert(height, parts.clone());
            Ok(parts)
        }

        fn bundle_header(&self, height: u64) -> Result<BundleHeader, StoreError> {
            let header = self.header(height)?.ok_or(StoreError::NotInitialised)?;
            let commit = self.commit(height)?.ok_or(StoreError::NotInitialised)?;
            Ok(BundleHeader {
                bytes: HexBytes(header.encode()),
                header,
                commit,
            })
        }

        /// The validator-set changes from genesis up to `height`.
        pub fn validator_changes(&self, height: u64) -> Result<Vec<ValidatorChange>, StoreError> {
            let mut out = vec![];
            for (from, set) in self.validator_set_history()? {
                if from <= 1 || from > height {
                    continue;
                }
                let announced_by = self.bundle_header(from - 1)?;
                let governance = self.governance_for_change(from)?;
                out.push(ValidatorChange {
                    activation_height: from,
                    validators: set,
                    announced_by,
                    governance,
                });
            }
            Ok(out)
        }

        fn governance_for_change(
            &self,
            activation: u64,
        ) -> Result<Vec<GovernanceRecord>, StoreError> {
            let exec_height = activation.saturating_sub(crate::execute::VALSET_CHANGE_DELAY);
            let Some(cb) = self.committed_block(exec_height)? else {
                return Ok(vec![]);
            };
            let announce_size = self
                .header(activation - 1)?
                .map(|h| h.log_size)
                .unwrap_or(cb.block.header.log_size);
            let first = cb.block.header.log_size - cb.block.header.tx_count as u64;
            let state = self.state();
            let mut out = vec![];
            for (i, stx) in cb.block.txs.iter().enumerate() {
                let pid = match &stx.tx.body {
                    TxBody::GovernancePropose(_) => stx.id(),
                    TxBody::GovernanceVote(v) => v.proposal_id,
                    _ => continue,
                };
                let Some(p) = state.proposal(&pid)? else {
                    continue;
                };
                let is_valset = matches!(
                    p.action,
                    GovAction::AddValidator { .. }
                        | GovAction::RemoveValidator { .. }
                        | GovAction::SetValidatorPower { .. }
                );
                if is_valset
                    && p.status
                        == (ProposalStatus::Executed {
                            height: exec_height,
                        })
                {
                    let leaf = first + i as u64;
                    out.push(GovernanceRecord {
                        tx_bytes: HexBytes(stx.encode()),
                        leaf_index: leaf,
                        path: self.inclusion_proof(leaf, announce_size)?,
                    });
                }
            }
            Ok(out)
        }

        /// The proof bundle of a committed record, or `None` if the id is unknown.
        pub fn proof_bundle(
            &self,
            genesis: &Genesis,
            id: &Hash,
        ) -> Result<Option<ProofBundle>, StoreError> {
            let Some(loc) = self.tx_location(id)? else {
                return Ok(None);
            };
            let parts = self.block_proof_parts(loc.height)?;
            let header = parts.header.clone();
            let bytes = self
                .tx_bytes(loc.leaf_index)?
                .ok_or(StoreError::NotInitialised)?;
            let tx: SignedTx =
                codec::decode_prefix_exact(&bytes).map_err(|source| StoreError::Corrupt {
                    what: "transaction",
                    source,
                })?;
            let path = self.inclusion_proof(loc.leaf_index, header.header.log_size)?;
            Ok(Some(ProofBundle {
                version: BUNDLE_VERSION,
                chain_id: genesis.chain_id.clone(),
                genesis_hash: genesis.hash(),
                record: BundleRecord {
                    id: *id,
                    leaf_index: loc.leaf_index,
                    height: loc.height,
                    tx_bytes: HexBytes(bytes),
                    tx,
                },
                inclusion: BundleInclusion {
                    log_size: header.header.log_size,
                    path,
                },
                validator_changes: parts.validator_changes.clone(),
                header,
            }))
        }

        /// The latest checkpoint (or at `height`).
        pub fn checkpoint(
            &self,
            genesis: &Genesis,
            height: Option<u64>,
        ) -> Result<Option<Checkpoint>, StoreError> {
            let h = match height {
                Some(h) => h,
                None => self.stored_tip()?.height,
            };
            if h == 0 || self.header(h)?.is_none() {
                return Ok(None);
            }
            Ok(Some(Checkpoint {
                version: BUNDLE_VERSION,
                chain_id: genesis.chain_id.clone(),
                genesis_hash: genesis.hash(),
                header: self.bundle_header(h)?,
                validator_changes: self.validator_changes(h)?,
            }))
        }
    }
}
