//! Transactions and the record bodies they carry.
//!
//! The enum and field order here *is* the wire format (bincode encodes enum variants by
//! index and struct fields in order). Never reorder; only append new variants.

use crate::codec::{self, DecodeError, check_len};
use crate::crypto::{PublicKey, SecretKey, Signature, SignatureError};
use crate::hash::{Hash, domain, hash_with};
use crate::vote::Evidence;
use serde::{Deserialize, Serialize};

/// Bound on identifiers: approval, parcel, encumbrance, resource and party ids.
pub const ID_BYTES_MAX: usize = 128;
/// Bound on a department id.
pub const DEPARTMENT_ID_BYTES_MAX: usize = 64;
/// Bound on short labels: approval kind, resource format, names.
pub const LABEL_BYTES_MAX: usize = 256;
/// Bound on free text: purpose, legal basis, reasons, descriptions, decisions' notes.
pub const TEXT_BYTES_MAX: usize = 2048;
/// Bound on a chain id.
pub const CHAIN_ID_BYTES_MAX: usize = 64;
/// Bound on a list of validators in one governance action.
pub const VALIDATORS_MAX: usize = 256;
/// Bound on the encoded size of one signed transaction.
pub const TX_BYTES_MAX: usize = 64 * 1024;

/// A department id, e.g. `land-bureau`: 1–64 bytes of `[a-z0-9._-]`.
pub type DepartmentId = String;

/// Checks the syntax of a department id.
pub fn check_department_id(id: &str) -> Result<(), DecodeError> {
    check_len("department", id.len(), DEPARTMENT_ID_BYTES_MAX)?;
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(DecodeError::Malformed(format!(
            "department id {id:?} must be 1-64 characters of a-z, 0-9, '.', '_', '-'"
        )))
    }
}

fn check_id(field: &'static str, id: &str) -> Result<(), DecodeError> {
    check_len(field, id.len(), ID_BYTES_MAX)?;
    if id.is_empty() || id.chars().any(|c| c.is_control()) {
        return Err(DecodeError::Malformed(format!(
            "`{field}` must be non-empty and free of control characters"
        )));
    }
    Ok(())
}

/// A role a member key holds. Reads need no role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Issue, amend and revoke approvals.
    Approvals,
    /// Register and transfer land titles, encumber and release.
    LandRegistry,
    /// Publish the department's information resources.
    Catalog,
    /// Log data-access events.
    DataAccess,
    /// Anchor document hashes.
    Anchor,
    /// Propose and vote on governance changes for the department.
    Governance,
    /// Run a (non-validator) peer node of the department.
    Node,
}

impl Role {
    /// Every role, in bit order.
    pub const ALL: [Role; 7] = [
        Role::Approvals,
        Role::LandRegistry,
        Role::Catalog,
        Role::DataAccess,
        Role::Anchor,
        Role::Governance,
        Role::Node,
    ];

    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    /// The snake_case name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Approvals => "approvals",
            Role::LandRegistry => "land_registry",
            Role::Catalog => "catalog",
            Role::DataAccess => "data_access",
            Role::Anchor => "anchor",
            Role::Governance => "governance",
            Role::Node => "node",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?}; roles are {}",
                    Role::ALL.map(Role::name).join(", ")
                )
            })
    }
}

/// A set of roles: a `u32` bit mask in binary (bit `i` = `Role::ALL[i]`), a list of names
/// in JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u32);

impl RoleSet {
    const VALID_BITS: u32 = (1 << Role::ALL.len()) - 1;

    /// The empty set.
    pub const fn empty() -> Self {
        RoleSet(0)
    }
    /// Every role.
    pub const fn all() -> Self {
        RoleSet(Self::VALID_BITS)
    }
    /// Whether `role` is in the set.
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }
    /// Adds a role.
    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }
    /// Removes a role.
    pub fn remove(&mut self, role: Role) {
        self.0 &= !role.bit();
    }
    /// The raw mask.
    pub fn bits(self) -> u32 {
        self.0
    }
    /// The roles in the set, in bit order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        let mut s = RoleSet::empty();
        for r in iter {
            s.insert(r);
        }
        s
    }
}

impl Serialize for RoleSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_seq(self.iter())
        } else {
            s.serialize_u32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for RoleSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let roles = Vec::<Role>::deserialize(d)?;
            Ok(roles.into_iter().collect())
        } else {
            let bits = u32::deserialize(d)?;
            if bits & !Self::VALID_BITS != 0 {
                return Err(serde::de::Error::custom("role mask has unknown bits"));
            }
            Ok(RoleSet(bits))
        }
    }
}

/// A transaction: who signs, replay protection, and the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tx {
    /// Must equal the genesis chain id.
    pub chain_id: String,
    /// The submitting key: a member key, or a validator key for evidence.
    pub signer: PublicKey,
    /// The signer's next nonce: each key's transactions execute in nonce order, once.
    pub nonce: u64,
    /// The submitter's clock (ms since the Unix epoch); informational.
    pub created_at_ms: u64,
    /// The transaction is refused in any block whose time is later (ms since the epoch).
    pub expires_at_ms: u64,
    /// The record.
    pub body: TxBody,
}

/// A transaction and its signature over `"govledger/tx/v1" ‖ encode(tx)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTx {
    /// The transaction.
    pub tx: Tx,
    /// Ed25519 signature by `tx.signer`.
    pub signature: Signature,
}

impl Tx {
    /// Signs the transaction. `key` should be the key of `self.signer`.
    pub fn sign(self, key: &SecretKey) -> SignedTx {
        let signature = key.sign(domain::TX_SIGN, &codec::encode(&self));
        SignedTx {
            tx: self,
            signature,
        }
    }

    /// Stateless checks: sizes and syntax of every field.
    pub fn check_limits(&self) -> Result<(), DecodeError> {
        check_len("chain_id", self.chain_id.len(), CHAIN_ID_BYTES_MAX)?;
        self.body.check_limits()
    }
}

impl SignedTx {
    /// The canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes and checks the field bounds (not the signature).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > TX_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: TX_BYTES_MAX,
            });
        }
        let stx: SignedTx = codec::decode(bytes)?;
        stx.tx.check_limits()?;
        Ok(stx)
    }

    /// The record id: the history-log leaf hash `blake3(0x00 ‖ encode(signed tx))`.
    pub fn id(&self) -> Hash {
        tx_id(&self.encode())
    }

    /// Verifies the signature alone (one at a time; see [`crate::crypto::BatchVerifier`]).
    pub fn verify_signature(&self) -> Result<(), SignatureError> {
        self.tx
            .signer
            .verify(domain::TX_SIGN, &codec::encode(&self.tx), &self.signature)
    }
}

/// The record id of a signed transaction given its canonical bytes.
pub fn tx_id(signed_tx_bytes: &[u8]) -> Hash {
    hash_with(domain::LEAF, signed_tx_bytes)
}

/// The record a transaction carries. Variant order is the wire format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxBody {
    /// 0: issue an approval (permit, licence, certificate, decision).
    ApprovalIssue(ApprovalIssue),
    /// 1: amend an approval (issuing department only).
    ApprovalAmend(ApprovalAmend),
    /// 2: revoke an approval (issuing department only); it stays in history.
    ApprovalRevoke(ApprovalRevoke),
    /// 3: register a land parcel's title.
    LandRegister(LandRegister),
    /// 4: transfer a title from its current owner.
    LandTransfer(LandTransfer),
    /// 5: encumber a parcel (mortgage, lien, court freeze).
    LandEncumber(LandEncumber),
    /// 6: release an encumbrance.
    LandRelease(LandRelease),
    /// 7: register an information resource in the catalogue.
    CatalogRegister(CatalogEntry),
    /// 8: update the owning department's catalogue entry (full replacement).
    CatalogUpdate(CatalogEntry),
    /// 9: log that the signer's department accessed a citizen's data.
    DataAccess(DataAccess),
    /// 10: anchor a document hash.
    Anchor(Anchor),
    /// 11: propose a governance action.
    GovernancePropose(GovernancePropose),
    /// 12: vote on a governance proposal for the signer's department.
    GovernanceVote(GovernanceVote),
    /// 13: evidence that a validator signed two conflicting messages.
    Evidence(Evidence),
}

impl TxBody {
    /// The snake_case name of the record kind (as in JSON's `type`).
    pub fn kind(&self) -> &'static str {
        match self {
            TxBody::ApprovalIssue(_) => "approval_issue",
            TxBody::ApprovalAmend(_) => "approval_amend",
            TxBody::ApprovalRevoke(_) => "approval_revoke",
            TxBody::LandRegister(_) => "land_register",
            TxBody::LandTransfer(_) => "land_transfer",
            TxBody::LandEncumber(_) => "land_encumber",
            TxBody::LandRelease(_) => "land_release",
            TxBody::CatalogRegister(_) => "catalog_register",
            TxBody::CatalogUpdate(_) => "catalog_update",
            TxBody::DataAccess(_) => "data_access",
            TxBody::Anchor(_) => "anchor",
            TxBody::GovernancePropose(_) => "governance_propose",
            TxBody::GovernanceVote(_) => "governance_vote",
            TxBody::Evidence(_) => "evidence",
        }
    }

    /// The role the signer needs, or `None` for evidence (signed by a validator key).
    pub fn required_role(&self) -> Option<Role> {
        Some(match self {
            TxBody::ApprovalIssue(_) | TxBody::ApprovalAmend(_) | TxBody::ApprovalRevoke(_) => {
                Role::Approvals
            }
            TxBody::LandRegister(_)
            | TxBody::LandTransfer(_)
            | TxBody::LandEncumber(_)
            | TxBody::LandRelease(_) => Role::LandRegistry,
            TxBody::CatalogRegister(_) | TxBody::CatalogUpdate(_) => Role::Catalog,
            TxBody::DataAccess(_) => Role::DataAccess,
            TxBody::Anchor(_) => Role::Anchor,
            TxBody::GovernancePropose(_) | TxBody::GovernanceVote(_) => Role::Governance,
            TxBody::Evidence(_) => return None,
        })
    }

    fn check_limits(&self) -> Result<(), DecodeError> {
        match self {
            TxBody::ApprovalIssue(a) => {
                check_id("approval_id", &a.approval_id)?;
                check_id("kind", &a.kind)?;
                check_id("subject", &a.subject)?;
                check_len("note", a.note.len(), TEXT_BYTES_MAX)
            }
            TxBody::ApprovalAmend(a) => {
                check_id("approval_id", &a.approval_id)?;
                check_len("reason", a.reason.len(), TEXT_BYTES_MAX)
            }
            TxBody::ApprovalRevoke(a) => {
                check_id("approval_id", &a.approval_id)?;
                check_len("reason", a.reason.len(), TEXT_BYTES_MAX)
            }
            TxBody::LandRegister(l) => {
                check_id("parcel_id", &l.parcel_id)?;
                check_id("owner", &l.owner)
            }
            TxBody::LandTransfer(l) => {
                check_id("parcel_id", &l.parcel_id)?;
                check_id("from", &l.from)?;
                check_id("to", &l.to)
            }
            TxBody::LandEncumber(l) => {
                check_id("parcel_id", &l.parcel_id)?;
                check_id("encumbrance_id", &l.encumbrance_id)?;
                check_id("holder", &l.holder)
            }
            TxBody::LandRelease(l) => {
                check_id("parcel_id", &l.parcel_id)?;
                check_id("encumbrance_id", &l.encumbrance_id)
            }
            TxBody::CatalogRegister(c) | TxBody::CatalogUpdate(c) => {
                check_id("resource_id", &c.resource_id)?;
                check_len("name", c.name.len(), LABEL_BYTES_MAX)?;
                check_len("format", c.format.len(), LABEL_BYTES_MAX)?;
                check_len("link", c.link.len(), TEXT_BYTES_MAX)
            }
            TxBody::DataAccess(d) => {
                check_id("resource_id", &d.resource_id)?;
                check_len("purpose", d.purpose.len(), TEXT_BYTES_MAX)?;
                check_len("legal_basis", d.legal_basis.len(), TEXT_BYTES_MAX)
            }
            TxBody::Anchor(a) => check_len("label", a.label.len(), LABEL_BYTES_MAX),
            TxBody::GovernancePropose(p) => {
                check_len("description", p.description.len(), TEXT_BYTES_MAX)?;
                p.action.check_limits()
            }
            TxBody::GovernanceVote(_) => Ok(()),
            TxBody::Evidence(_) => Ok(()),
        }
    }
}

/// The outcome recorded by an approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Granted as applied for.
    Granted,
    /// Granted with conditions (see the note and the document).
    Conditional,
    /// Refused.
    Refused,
}

/// Issue an approval: a permit, licence, electronic certificate or decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalIssue {
    /// Unique id chosen by the issuing department, e.g. `BP-2026-000123`.
    pub approval_id: String,
    /// The kind, e.g. `building-permit`, `business-licence`.
    pub kind: String,
    /// The party the approval is about (company registration number, pseudonym, ...).
    pub subject: String,
    /// The decision.
    pub decision: Decision,
    /// blake3 of the signed decision document.
    pub document_hash: Hash,
    /// Start of validity (ms since the epoch).
    pub valid_from_ms: u64,
    /// End of validity, if any.
    pub valid_until_ms: Option<u64>,
    /// Free-text note (conditions, summary).
    pub note: String,
}

/// Amend an approval: new decision, document and validity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAmend {
    /// The approval.
    pub approval_id: String,
    /// The new decision.
    pub decision: Decision,
    /// blake3 of the amended document.
    pub document_hash: Hash,
    /// New end of validity.
    pub valid_until_ms: Option<u64>,
    /// Why.
    pub reason: String,
}

/// Revoke an approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRevoke {
    /// The approval.
    pub approval_id: String,
    /// Why.
    pub reason: String,
}

/// Register a parcel's first title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandRegister {
    /// Cadastral parcel id.
    pub parcel_id: String,
    /// The owning party.
    pub owner: String,
    /// blake3 of the title document.
    pub document_hash: Hash,
}

/// Transfer a title.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandTransfer {
    /// The parcel.
    pub parcel_id: String,
    /// Must be the current owner.
    pub from: String,
    /// The new owner.
    pub to: String,
    /// blake3 of the deed.
    pub deed_hash: Hash,
}

/// The kind of an encumbrance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EncumbranceKind {
    /// A mortgage.
    Mortgage,
    /// A lien.
    Lien,
    /// A court freeze: no transfer until released.
    CourtFreeze,
}

/// Encumber a parcel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandEncumber {
    /// The parcel.
    pub parcel_id: String,
    /// Id of the encumbrance, unique within the parcel.
    pub encumbrance_id: String,
    /// Its kind.
    pub kind: EncumbranceKind,
    /// The bank, creditor or court.
    pub holder: String,
    /// blake3 of the instrument.
    pub document_hash: Hash,
}

/// Release an encumbrance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LandRelease {
    /// The parcel.
    pub parcel_id: String,
    /// The encumbrance to release.
    pub encumbrance_id: String,
    /// blake3 of the release instrument.
    pub document_hash: Hash,
}

/// How a resource may be shared with other departments (government information-resource
/// catalogue practice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharingType {
    /// Any department may access it.
    Unconditional,
    /// Other departments need a stated legal basis.
    Conditional,
    /// Only the owning department may access it.
    NotShared,
}

/// Whether a resource is open to the public.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAttribute {
    /// Open data.
    Open,
    /// Open under conditions.
    Conditional,
    /// Not open.
    Closed,
}

/// A catalogue entry (registration or full update). The owner is the signer's department.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// Catalogue identifier, unique across the ledger.
    pub resource_id: String,
    /// Human-readable name.
    pub name: String,
    /// Sharing type.
    pub sharing: SharingType,
    /// Open attribute.
    pub open: OpenAttribute,
    /// Format, e.g. `database`, `csv`, `api`.
    pub format: String,
    /// Online resource link.
    pub link: String,
}

/// A department accessed a citizen's data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataAccess {
    /// The citizen's pseudonym: a keyed hash of the citizen id.
    pub subject: Hash,
    /// The catalogue entry of the data accessed.
    pub resource_id: String,
    /// Why.
    pub purpose: String,
    /// The law or case that allows it (required for conditional resources).
    pub legal_basis: String,
    /// When the access happened (ms since the epoch); not later than the block.
    pub accessed_at_ms: u64,
}

/// Anchor a document hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// blake3 of the document.
    pub document_hash: Hash,
    /// A label.
    pub label: String,
}

/// A governance proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernancePropose {
    /// What happens if approved.
    pub action: GovAction,
    /// Why.
    pub description: String,
}

/// A vote on a proposal. The proposer's department counts as approving.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GovernanceVote {
    /// The record id of the proposal.
    pub proposal_id: Hash,
    /// Approve or reject.
    pub approve: bool,
}

/// A governance action. Variant order is the wire format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GovAction {
    /// Add a department.
    AddDepartment {
        /// Its id.
        id: DepartmentId,
        /// Its name.
        name: String,
        /// Its weight in governance votes (≥ 1).
        governance_weight: u32,
    },
    /// Add a member key to a department.
    AddMember {
        /// The key.
        key: PublicKey,
        /// Its department.
        department: DepartmentId,
        /// Its roles.
        roles: RoleSet,
        /// A label (person or system).
        name: String,
    },
    /// Remove a member key: it can no longer sign records.
    RemoveMember {
        /// The key.
        key: PublicKey,
    },
    /// Grant a role.
    GrantRole {
        /// The member key.
        key: PublicKey,
        /// The role.
        role: Role,
    },
    /// Revoke a role.
    RevokeRole {
        /// The member key.
        key: PublicKey,
        /// The role.
        role: Role,
    },
    /// Add a validator (takes effect two heights after execution).
    AddValidator {
        /// The validator.
        validator: crate::validator::Validator,
    },
    /// Remove a validator (takes effect two heights after execution).
    RemoveValidator {
        /// Its consensus key.
        key: PublicKey,
    },
    /// Change a validator's voting power (takes effect two heights after execution).
    SetValidatorPower {
        /// Its consensus key.
        key: PublicKey,
        /// The new power (≥ 1).
        power: u64,
    },
    /// Replace the consensus parameters (takes effect at the next block).
    SetParams {
        /// The new parameters.
        params: crate::genesis::ConsensusParams,
    },
}

impl GovAction {
    fn check_limits(&self) -> Result<(), DecodeError> {
        match self {
            GovAction::AddDepartment { id, name, .. } => {
                check_department_id(id)?;
                check_len("name", name.len(), LABEL_BYTES_MAX)
            }
            GovAction::AddMember {
                department, name, ..
            } => {
                check_department_id(department)?;
                check_len("name", name.len(), LABEL_BYTES_MAX)
            }
            GovAction::AddValidator { validator } => validator.check_limits(),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_tx(key: &SecretKey, nonce: u64) -> SignedTx {
        Tx {
            chain_id: "test".into(),
            signer: key.public_key(),
            nonce,
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: u64::MAX,
            body: TxBody::Anchor(Anchor {
                document_hash: crate::hash::hash_document(b"doc"),
                label: "minutes".into(),
            }),
        }
        .sign(key)
    }

    #[test]
    fn sign_encode_decode_verify() {
        let k = SecretKey::from_seed(&[9; 32]);
        let stx = sample_tx(&k, 0);
        stx.verify_signature().unwrap();
        let bytes = stx.encode();
        let back = SignedTx::decode(&bytes).unwrap();
        assert_eq!(back, stx);
        assert_eq!(back.id(), stx.id());
        let mut tampered = stx.clone();
        tampered.tx.nonce = 1;
        assert!(tampered.verify_signature().is_err());
    }

    /// The worked example of `docs/encoding.md`.
    #[test]
    fn documented_anchor_layout() {
        let k = SecretKey::from_seed(&[9; 32]);
        let stx = sample_tx(&k, 0);
        let b = stx.encode();
        let mut expected = vec![4, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"test");
        expected.extend_from_slice(&k.public_key().0);
        expected.extend_from_slice(&0u64.to_le_bytes());
        expected.extend_from_slice(&1_700_000_000_000u64.to_le_bytes());
        expected.extend_from_slice(&u64::MAX.to_le_bytes());
        expected.extend_from_slice(&10u32.to_le_bytes());
        expected.extend_from_slice(&crate::hash::hash_document(b"doc").0);
        expected.extend_from_slice(&7u64.to_le_bytes());
        expected.extend_from_slice(b"minutes");
        expected.extend_from_slice(&stx.signature.0);
        assert_eq!(b, expected);
    }

    #[test]
    fn role_set_forms() {
        let s: RoleSet = [Role::Anchor, Role::Approvals].into_iter().collect();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"["approvals","anchor"]"#
        );
        assert_eq!(codec::encode(&s), 0b10001u32.to_le_bytes().to_vec());
        assert!(codec::decode::<RoleSet>(&(1u32 << 20).to_le_bytes()).is_err());
    }

    #[test]
    fn oversized_field_is_refused() {
        let k = SecretKey::from_seed(&[9; 32]);
        let mut stx = sample_tx(&k, 0);
        if let TxBody::Anchor(a) = &mut stx.tx.body {
            a.label = "x".repeat(LABEL_BYTES_MAX + 1);
        }
        let bytes = stx.encode();
        assert!(matches!(
            SignedTx::decode(&bytes),
            Err(DecodeError::FieldTooLong { field: "label", .. })
        ));
    }

    #[test]
    fn department_id_syntax() {
        assert!(check_department_id("land-bureau").is_ok());
        assert!(check_department_id("").is_err());
        assert!(check_department_id("Land").is_err());
        assert!(check_department_id(&"a".repeat(65)).is_err());
    }
}
