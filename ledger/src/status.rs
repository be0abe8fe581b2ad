//! Status bundles (proof format 2): what is true **now** about an approval, a parcel, a
//! catalogue resource, a citizen pseudonym's accesses, a department, a governance
//! proposal, a member key or the validator set, and — for things with a history — that the
//! history shown is all of it. Verifiable offline with nothing but the genesis file; the
//! bytes are described in `docs/proof-format.md`.
//!
//! A bundle holds, for the header at some height `H` certified by a commit certificate
//! (reached from genesis through the validator-set changes):
//!
//! 1. the current value of each state key of its subject, or its absence, with a state
//!    proof against the header's `state_root` (the keys are derived from the subject by
//!    the verifier, never read from the bundle);
//! 2. for a subject with a history, a page of it: the newest records, each with its
//!    inclusion proof in the header's log, and the history head before the page. Chained
//!    onto that head, the records must give the head the state proves. If the page starts
//!    at record 0 the history is proven complete.
//!
//! Unlike format 1, a bundle carries no decoded copies of what it proves: the header and
//! every record are bytes, and what is shown to a reader is decoded from them.

use crate::block::BlockHeader;
use crate::codec;
use crate::crypto::PublicKey;
use crate::genesis::Genesis;
use crate::hash::Hash;
use crate::history::{HistoryHead, HistoryId, check_page};
use crate::history_log::verify_inclusion;
use crate::proof::{BundleHeader, HexBytes, PATH_LEN_MAX, Step, ValidatorChange, VerifyError};
use crate::state::{
    ApprovalState, ApprovalStatus, CatalogState, MemberState, ParcelState, ProposalState,
    ValidatorSetHistory, keys,
};
use crate::state_tree::{PROOF_SIBLINGS_MAX, StateProof};
use crate::tx::{SignedTx, tx_id};
use crate::vote::CommitCertificate;
use serde::{Deserialize, Serialize};

/// The bundle format version of status bundles.
pub const STATUS_BUNDLE_VERSION: u32 = 2;
/// Most records in one page of a history.
pub const PAGE_RECORDS_MAX: usize = 1000;
/// Most records of a history in one bundle, over all its pages (about 40 MB of JSON).
pub const BUNDLE_RECORDS_MAX: usize = 20_000;

/// What a status bundle is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Subject {
    /// An approval (permit, licence, certificate, judgment) by id.
    Approval(String),
    /// A land parcel by id.
    Parcel(String),
    /// A catalogue resource by id.
    Resource(String),
    /// A citizen's data-access events, by pseudonym.
    Pseudonym(Hash),
    /// A department's records (and its entry in the department list).
    Department(String),
    /// A governance proposal by id (the proposing record's id).
    Proposal(Hash),
    /// A member key: its department, roles and whether it is active.
    Member(PublicKey),
    /// The validator sets in force and scheduled.
    Validators,
}

impl Subject {
    /// The state keys whose values the bundle proves, in order: the subject's record (if
    /// it has one), then its history head (if it has a history).
    pub fn state_keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(2);
        match self {
            Subject::Approval(id) => out.push(keys::approval(id)),
            Subject::Parcel(id) => out.push(keys::parcel(id)),
            Subject::Resource(id) => out.push(keys::catalog(id)),
            Subject::Proposal(id) => out.push(keys::proposal(id)),
            Subject::Member(k) => out.push(keys::member(k)),
            Subject::Department(_) => out.push(keys::DEPARTMENTS.to_vec()),
            Subject::Validators => out.push(keys::VALIDATOR_SETS.to_vec()),
            Subject::Pseudonym(_) => {}
        }
        if let Some(h) = self.history() {
            out.push(h.state_key());
        }
        out
    }

    /// The history the subject has, if any.
    pub fn history(&self) -> Option<HistoryId> {
        Some(match self {
            Subject::Approval(id) => HistoryId::Approval(id.clone()),
            Subject::Parcel(id) => HistoryId::Parcel(id.clone()),
            Subject::Resource(id) => HistoryId::Resource(id.clone()),
            Subject::Pseudonym(p) => HistoryId::Pseudonym(*p),
            Subject::Department(id) => HistoryId::Department(id.clone()),
            Subject::Proposal(id) => HistoryId::Proposal(*id),
            Subject::Member(_) | Subject::Validators => return None,
        })
    }

    /// A short name: `approval BP-1`.
    pub fn describe(&self) -> String {
        match self {
            Subject::Member(k) => format!("member key {k}"),
            Subject::Validators => "validator set".into(),
            other => other.history().map(|h| h.describe()).unwrap_or_default(),
        }
    }
}

/// A header as bytes, with its commit certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertifiedHeader {
    /// Canonical header bytes.
    pub bytes: HexBytes,
    /// The commit certificate of the header's block.
    pub commit: CommitCertificate,
}

/// A validator-set change (format 2: no decoded header, no governance records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetChange {
    /// First height decided by the new set.
    pub activation_height: u64,
    /// The new set.
    pub validators: crate::validator::ValidatorSet,
    /// The header at `activation_height − 1`, signed by the set in force, whose
    /// `next_validators_hash` is the new set's hash.
    pub announced_by: CertifiedHeader,
}

/// A proven state value: the value's canonical bytes (`None`: the key is absent) and its
/// state proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateEntry {
    /// The value (hex of its canonical encoding), or null.
    pub value: Option<HexBytes>,
    /// The proof against the header's `state_root`.
    pub proof: StateProof,
}

/// One record of a history page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRecord {
    /// Its leaf index in the history log.
    pub leaf_index: u64,
    /// The canonical bytes of the signed transaction.
    pub tx_bytes: HexBytes,
    /// Its inclusion path in the header's log.
    pub path: Vec<Hash>,
}

/// Consecutive records of a history and the head before them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryPage {
    /// The head before `records[0]` (count 0 and the zero hash: the page starts the
    /// history).
    pub before: HistoryHead,
    /// The records, oldest first.
    pub records: Vec<PageRecord>,
}

/// A history's newest records, in pages: `pages[0]` ends at the proven head, each further
/// page ends where the one before it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryProof {
    /// The pages, newest first.
    pub pages: Vec<HistoryPage>,
}

/// A status bundle (format version 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusBundle {
    /// 2.
    pub version: u32,
    /// Chain id.
    pub chain_id: String,
    /// The genesis hash the chain started from.
    pub genesis_hash: Hash,
    /// What the bundle is about.
    pub subject: Subject,
    /// The header the state is proven at, and its certificate.
    pub header: CertifiedHeader,
    /// Every validator-set change from genesis up to the header, in order.
    pub validator_changes: Vec<SetChange>,
    /// One entry per key of [`Subject::state_keys`], in that order.
    pub state: Vec<StateEntry>,
    /// The subject's history (exactly when it has one).
    pub history: Option<HistoryProof>,
}

impl StatusBundle {
    /// Parses a bundle from JSON (unknown fields are refused).
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a status bundle: {e}"))
    }
}

/// The current value of a subject, decoded from proven bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Current {
    /// An approval, or `None` if no approval has that id.
    Approval(Option<ApprovalState>),
    /// A parcel.
    Parcel(Option<ParcelState>),
    /// A catalogue entry.
    Resource(Option<CatalogState>),
    /// A proposal.
    Proposal(Option<ProposalState>),
    /// A member key.
    Member(Option<MemberState>),
    /// The department, if it is in the department list.
    Department(Option<crate::genesis::Department>),
    /// The validator-set history.
    Validators(ValidatorSetHistory),
    /// A pseudonym has no record of its own, only its history.
    Pseudonym,
}

/// A record of a verified history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProvenRecord {
    /// Leaf index.
    pub leaf_index: u64,
    /// Record id.
    pub id: Hash,
    /// The record, decoded from its bytes.
    pub tx: SignedTx,
}

/// What a valid status bundle proves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedStatus {
    /// The subject.
    pub subject: Subject,
    /// The height the state is proven at.
    pub height: u64,
    /// That block's time (ms since the epoch).
    pub time_ms: u64,
    /// The header's hash.
    pub block_hash: Hash,
    /// The current value.
    pub current: Current,
    /// The history head (subjects with a history).
    pub head: Option<HistoryHead>,
    /// The records of the pages, oldest first.
    pub records: Vec<ProvenRecord>,
    /// Whether the records are the whole history (the oldest page starts at record 0).
    pub complete: bool,
    /// Validator-set changes followed from genesis.
    pub validator_changes: usize,
}

/// Whether an approval is in force at a time, in words a reader needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    /// Active and inside its validity window.
    Valid,
    /// Revoked by its issuer.
    Revoked,
    /// Active, but its validity has not begun.
    NotYetValid,
    /// Active, but its validity ended.
    Expired,
}

/// An approval's validity at `time_ms`.
pub fn approval_validity(a: &ApprovalState, time_ms: u64) -> Validity {
    if a.status == ApprovalStatus::Revoked {
        Validity::Revoked
    } else if time_ms < a.valid_from_ms {
        Validity::NotYetValid
    } else if a.valid_until_ms.is_some_and(|u| time_ms > u) {
        Validity::Expired
    } else {
        Validity::Valid
    }
}

fn fail<T>(step: Step, reason: impl Into<String>) -> Result<T, VerifyError> {
    Err(VerifyError {
        step,
        reason: reason.into(),
    })
}

fn decode_value<T: serde::de::DeserializeOwned>(
    v: &Option<Vec<u8>>,
    what: &str,
) -> Result<Option<T>, VerifyError> {
    match v {
        None => Ok(None),
        Some(b) => codec::decode_prefix_exact(b)
            .map(Some)
            .map_err(|e| VerifyError {
                step: Step::StateProof,
                reason: format!("the proven {what} does not decode: {e}"),
            }),
    }
}

/// Decodes and certifies a header: its bytes, chain, validator set (from genesis through
/// `changes`) and commit certificate. Returns the header and its hash.
pub fn certify_header(
    genesis: &Genesis,
    header: &CertifiedHeader,
    changes: &[SetChange],
) -> Result<(BlockHeader, Hash), VerifyError> {
    let h = match BlockHeader::decode(&header.bytes.0) {
        Ok(h) => h,
        Err(e) => return fail(Step::Header, format!("header bytes do not decode: {e}")),
    };
    if h.chain_id != genesis.chain_id {
        return fail(
            Step::Header,
            format!("header is for chain {:?}", h.chain_id),
        );
    }
    let mut v1 = Vec::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        let announced = match BlockHeader::decode(&c.announced_by.bytes.0) {
            Ok(a) => a,
            Err(e) => {
                return fail(
                    Step::ValidatorSetChange,
                    format!("change {i}: announcing header does not decode: {e}"),
                );
            }
        };
        v1.push(ValidatorChange {
            activation_height: c.activation_height,
            validators: c.validators.clone(),
            announced_by: BundleHeader {
                bytes: c.announced_by.bytes.clone(),
                header: announced,
                commit: c.announced_by.commit.clone(),
            },
            governance: vec![],
        });
    }
    let set = crate::proof::follow_validator_changes(genesis, &v1, h.height)?;
    if h.validators_hash != set.hash() {
        return fail(
            Step::ValidatorSetChange,
            "the header was decided by a validator set the bundle does not lead to",
        );
    }
    let hash = h.hash();
    if let Err(e) = header
        .commit
        .verify(&genesis.chain_id, h.height, &hash, &set)
    {
        return fail(Step::CommitCertificate, e.to_string());
    }
    Ok((h, hash))
}

/// Verifies status bundles against one genesis. Reusing one for many bundles saves work:
/// the genesis is hashed once, and a header whose certificate (and the validator changes
/// leading to it) was verified once is not verified again. The verdict for each bundle is
/// the one [`StatusBundle::verify`] gives.
pub struct StatusVerifier<'g> {
    genesis: &'g Genesis,
    genesis_hash: Hash,
    certified: std::sync::Mutex<std::collections::HashSet<Hash>>,
}

impl<'g> StatusVerifier<'g> {
    /// A verifier pinned to `genesis`.
    pub fn new(genesis: &'g Genesis) -> Self {
        StatusVerifier {
            genesis,
            genesis_hash: genesis.hash(),
            certified: Default::default(),
        }
    }

    /// Verifies one bundle.
    pub fn verify(&self, bundle: &StatusBundle) -> Result<VerifiedStatus, VerifyError> {
        bundle.verify_inner(self)
    }

    fn certify(
        &self,
        header: &CertifiedHeader,
        changes: &[SetChange],
    ) -> Result<(BlockHeader, Hash), VerifyError> {
        // The key covers every byte the certification reads, so a tampered certificate or
        // change is never excused by an honest bundle of the same header.
        let key = crate::hash::hash_parts(
            b"govledger/status-certified",
            &[
                &header.bytes.0,
                &codec::encode(&header.commit),
                &codec::encode(changes),
            ],
        );
        let known = self
            .certified
            .lock()
            .map(|c| c.contains(&key))
            .unwrap_or(false);
        if known {
            let h = match BlockHeader::decode(&header.bytes.0) {
                Ok(h) => h,
                Err(e) => return fail(Step::Header, format!("header bytes do not decode: {e}")),
            };
            let hash = h.hash();
            return Ok((h, hash));
        }
        let out = certify_header(self.genesis, header, changes)?;
        if let Ok(mut c) = self.certified.lock() {
            if c.len() >= crate::proof::CERTIFIED_CACHE_MAX {
                c.clear();
            }
            c.insert(key);
        }
        Ok(out)
    }
}

impl StatusBundle {
    /// Verifies the bundle offline against `genesis`.
    pub fn verify(&self, genesis: &Genesis) -> Result<VerifiedStatus, VerifyError> {
        StatusVerifier::new(genesis).verify(self)
    }

    fn verify_inner(&self, verifier: &StatusVerifier<'_>) -> Result<VerifiedStatus, VerifyError> {
        let genesis = verifier.genesis;
        // 1. Genesis and version.
        if self.version != STATUS_BUNDLE_VERSION {
            return fail(
                Step::Genesis,
                format!(
                    "status bundle version {} is not {STATUS_BUNDLE_VERSION}",
                    self.version
                ),
            );
        }
        let genesis_hash = verifier.genesis_hash;
        if self.genesis_hash != genesis_hash || self.chain_id != genesis.chain_id {
            return fail(
                Step::Genesis,
                format!(
                    "bundle is for chain {:?} with genesis {}, the given genesis is {:?} {}",
                    self.chain_id, self.genesis_hash, genesis.chain_id, genesis_hash
                ),
            );
        }
        if !genesis.state_format.has_tree() {
            return fail(
                Step::Genesis,
                "this chain's genesis has state format 1: its headers commit to no state tree",
            );
        }
        // 2-4. Header, validator sets, commit certificate.
        let (h, block_hash) = verifier.certify(&self.header, &self.validator_changes)?;
        // 5. State proofs, of the keys the subject names.
        let keys = self.subject.state_keys();
        if self.state.len() != keys.len() {
            return fail(
                Step::StateProof,
                format!(
                    "{} proves {} state values, the bundle has {}",
                    self.subject.describe(),
                    keys.len(),
                    self.state.len()
                ),
            );
        }
        let mut values = Vec::with_capacity(keys.len());
        for (i, (key, entry)) in keys.iter().zip(&self.state).enumerate() {
            if entry.proof.siblings.len() > PROOF_SIBLINGS_MAX {
                return fail(Step::StateProof, format!("entry {i}: too many siblings"));
            }
            let value = entry.value.as_ref().map(|v| v.0.clone());
            if let Err(e) = entry.proof.verify(&h.state_root, key, value.as_deref()) {
                return fail(Step::StateProof, format!("entry {i}: {e}"));
            }
            values.push(value);
        }
        let current = match &self.subject {
            Subject::Approval(_) => Current::Approval(decode_value(&values[0], "approval")?),
            Subject::Parcel(_) => Current::Parcel(decode_value(&values[0], "parcel")?),
            Subject::Resource(_) => Current::Resource(decode_value(&values[0], "catalogue entry")?),
            Subject::Proposal(_) => Current::Proposal(decode_value(&values[0], "proposal")?),
            Subject::Member(_) => Current::Member(decode_value(&values[0], "member")?),
            Subject::Department(id) => {
                let list: Option<Vec<crate::genesis::Department>> =
                    decode_value(&values[0], "department list")?;
                Current::Department(list.unwrap_or_default().into_iter().find(|d| &d.id == id))
            }
            Subject::Validators => match decode_value(&values[0], "validator sets")? {
                Some(v) => Current::Validators(v),
                None => return fail(Step::StateProof, "the validator sets are absent"),
            },
            Subject::Pseudonym(_) => Current::Pseudonym,
        };
        // 6. History.
        let (head, records, complete) = match (self.subject.history(), &self.history) {
            (None, None) => (None, vec![], true),
            (None, Some(_)) => {
                return fail(
                    Step::History,
                    "this subject has no history, the bundle has one",
                );
            }
            (Some(_), None) => return fail(Step::History, "the bundle lacks the history"),
            (Some(_), Some(history)) => {
                let head: HistoryHead =
                    decode_value(values.last().unwrap_or(&None), "head")?.unwrap_or_default();
                let total: usize = history.pages.iter().map(|p| p.records.len()).sum();
                if total > BUNDLE_RECORDS_MAX {
                    return fail(
                        Step::History,
                        format!("{total} records in one bundle, at most {BUNDLE_RECORDS_MAX}"),
                    );
                }
                if history.pages.is_empty() {
                    return fail(Step::History, "the history has no page");
                }
                // Newest first: each page must end exactly where the verified part begins.
                let mut end = head;
                let mut pages = Vec::with_capacity(history.pages.len());
                for (i, page) in history.pages.iter().enumerate() {
                    let records = Self::verify_page(&h, page, &end).map_err(|e| VerifyError {
                        step: e.step,
                        reason: format!("page {i}: {}", e.reason),
                    })?;
                    end = page.before;
                    pages.push(records);
                }
                let records: Vec<ProvenRecord> = pages.into_iter().rev().flatten().collect();
                (Some(head), records, end.count == 0)
            }
        };
        Ok(VerifiedStatus {
            subject: self.subject.clone(),
            height: h.height,
            time_ms: h.time_ms,
            block_hash,
            current,
            head,
            records,
            complete,
            validator_changes: self.validator_changes.len(),
        })
    }

    /// Checks one page against the head it must end at (the proven head, or the start
    /// of the newer page).
    fn verify_page(
        h: &BlockHeader,
        page: &HistoryPage,
        end: &HistoryHead,
    ) -> Result<Vec<ProvenRecord>, VerifyError> {
        if page.records.len() > PAGE_RECORDS_MAX {
            return fail(
                Step::History,
                format!(
                    "{} records in one page, at most {PAGE_RECORDS_MAX}",
                    page.records.len()
                ),
            );
        }
        if page.records.is_empty() && end.count > 0 {
            return fail(
                Step::History,
                format!("the page ends at record {} but holds none", end.count),
            );
        }
        let mut chained = Vec::with_capacity(page.records.len());
        let mut out = Vec::with_capacity(page.records.len());
        for (i, r) in page.records.iter().enumerate() {
            let tx = match SignedTx::decode(&r.tx_bytes.0) {
                Ok(t) => t,
                Err(e) => {
                    return fail(Step::History, format!("record {i} does not decode: {e}"));
                }
            };
            let id = tx_id(&r.tx_bytes.0);
            if r.path.len() > PATH_LEN_MAX {
                return fail(
                    Step::History,
                    format!("record {i}: inclusion path too long"),
                );
            }
            if let Err(e) = verify_inclusion(&id, r.leaf_index, h.log_size, &r.path, &h.log_root) {
                return fail(
                    Step::History,
                    format!("record {i} (leaf {}) is not in the log: {e}", r.leaf_index),
                );
            }
            chained.push((r.leaf_index, id));
            out.push(ProvenRecord {
                leaf_index: r.leaf_index,
                id,
                tx,
            });
        }
        if let Err(e) = check_page(&page.before, &chained, end) {
            return fail(
                Step::History,
                format!("the records are not the history the state proves: {e}"),
            );
        }
        Ok(out)
    }
}

#[cfg(feature = "rocksdb")]
mod build {
    use super::*;
    use crate::store::{Store, StoreError};

    impl Store {
        /// The status bundle of `subject` at the tip, with the newest `records` records of
        /// its history (at most [`PAGE_RECORDS_MAX`]). `None` before the first block (no
        /// header to prove against). The state is read at one height: the proofs, the
        /// history and the header agree.
        pub fn status_bundle(
            &self,
            genesis: &Genesis,
            subject: &Subject,
            records: usize,
        ) -> Result<Option<StatusBundle>, StoreError> {
            let keys = subject.state_keys();
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let proven = self.prove_state(&refs)?;
            if proven.height == 0 {
                return Ok(None);
            }
            let header = self
                .header(proven.height)?
                .ok_or(StoreError::NotInitialised)?;
            let commit = self
                .commit(proven.height)?
                .ok_or(StoreError::NotInitialised)?;
            let history = match subject.history() {
                None => None,
                Some(id) => {
                    let head_value = proven.proofs.last().and_then(|(v, _)| v.as_ref());
                    let head: HistoryHead = match head_value {
                        None => HistoryHead::default(),
                        Some(b) => {
                            codec::decode_prefix_exact(b).map_err(|source| StoreError::Corrupt {
                                what: "history head",
                                source,
                            })?
                        }
                    };
                    let page =
                        self.history_page_proof(&id, head.count, records, header.log_size)?;
                    Some(HistoryProof { pages: vec![page] })
                }
            };
            Ok(Some(StatusBundle {
                version: STATUS_BUNDLE_VERSION,
                chain_id: genesis.chain_id.clone(),
                genesis_hash: genesis.hash(),
                subject: subject.clone(),
                header: CertifiedHeader {
                    bytes: HexBytes(header.encode()),
                    commit,
                },
                validator_changes: self.set_changes(proven.height)?,
                state: proven
                    .proofs
                    .into_iter()
                    .map(|(value, proof)| StateEntry {
                        value: value.map(HexBytes),
                        proof,
                    })
                    .collect(),
                history,
            }))
        }

        /// The records at positions `end − records … end − 1` of a history, each with its
        /// inclusion path in the log of `log_size` (a log that holds them all), and the
        /// head before them.
        pub fn history_page_proof(
            &self,
            id: &HistoryId,
            end: u64,
            records: usize,
            log_size: u64,
        ) -> Result<HistoryPage, StoreError> {
            let limit = records.clamp(1, PAGE_RECORDS_MAX) as u64;
            let page = self.history_page(&id.state_key(), end, limit)?;
            let mut out = Vec::with_capacity(page.records.len());
            for (leaf, _) in &page.records {
                if *leaf >= log_size {
                    return Err(StoreError::Corrupt {
                        what: "history entry",
                        source: crate::codec::DecodeError::Malformed(format!(
                            "leaf {leaf} is beyond the log size {log_size}"
                        )),
                    });
                }
                let bytes = self.tx_bytes(*leaf)?.ok_or(StoreError::NotInitialised)?;
                out.push(PageRecord {
                    leaf_index: *leaf,
                    tx_bytes: HexBytes(bytes),
                    path: self.inclusion_proof(*leaf, log_size)?,
                });
            }
            Ok(HistoryPage {
                before: page.before,
                records: out,
            })
        }

        /// The validator-set changes up to `height`, in format 2's form.
        pub fn set_changes(&self, height: u64) -> Result<Vec<SetChange>, StoreError> {
            let mut out = vec![];
            for (from, set) in self.validator_set_history()? {
                if from <= 1 || from > height {
                    continue;
                }
                let at = from - 1;
                let header = self.header(at)?.ok_or(StoreError::NotInitialised)?;
                let commit = self.commit(at)?.ok_or(StoreError::NotInitialised)?;
                out.push(SetChange {
                    activation_height: from,
                    validators: set,
                    announced_by: CertifiedHeader {
                        bytes: HexBytes(header.encode()),
                        commit,
                    },
                });
            }
            Ok(out)
        }
    }
}

#[cfg(all(test, feature = "rocksdb"))]
mod tests;
