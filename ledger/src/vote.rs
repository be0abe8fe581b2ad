//! Consensus messages as ledger types: votes, proposals, commit certificates and evidence
//! of equivocation. The `consensus` crate produces and consumes them; the ledger verifies
//! certificates (proofs, sync, audit) and evidence (state machine).

use crate::codec::{self, DecodeError};
use crate::crypto::{BatchVerifier, PublicKey, SecretKey, Signature, SignatureError};
use crate::hash::{Hash, domain};
use crate::validator::ValidatorSet;
use serde::{Deserialize, Serialize};

/// Bound on the signatures in a commit certificate.
pub const COMMIT_SIGNATURES_MAX: usize = crate::validator::VALIDATOR_SET_MAX;

/// The two voting steps of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteType {
    /// First vote of a round (Tendermint "prevote").
    Prevote,
    /// Second vote of a round (Tendermint "precommit").
    Precommit,
}

/// A signed vote for a block hash, or for nothing (`None`, "nil").
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// Step.
    pub vote_type: VoteType,
    /// The block voted for; `None` is a nil vote.
    pub block_hash: Option<Hash>,
    /// The voting validator.
    pub validator: PublicKey,
    /// Signature over [`Vote::sign_bytes`].
    pub signature: Signature,
}

#[derive(Serialize)]
struct VoteSignBytes<'a> {
    chain_id: &'a str,
    height: u64,
    round: u32,
    vote_type: VoteType,
    block_hash: Option<Hash>,
}

impl Vote {
    /// The bytes signed (after the `govledger/vote/v1` domain tag):
    /// `encode((chain_id, height, round, vote_type, block_hash))`.
    pub fn sign_bytes(
        chain_id: &str,
        height: u64,
        round: u32,
        vote_type: VoteType,
        block_hash: Option<Hash>,
    ) -> Vec<u8> {
        codec::encode(&VoteSignBytes {
            chain_id,
            height,
            round,
            vote_type,
            block_hash,
        })
    }

    /// Creates and signs a vote.
    pub fn new_signed(
        chain_id: &str,
        height: u64,
        round: u32,
        vote_type: VoteType,
        block_hash: Option<Hash>,
        key: &SecretKey,
    ) -> Self {
        let msg = Self::sign_bytes(chain_id, height, round, vote_type, block_hash);
        Vote {
            height,
            round,
            vote_type,
            block_hash,
            validator: key.public_key(),
            signature: key.sign(domain::VOTE_SIGN, &msg),
        }
    }

    /// Verifies the signature (not membership).
    pub fn verify(&self, chain_id: &str) -> Result<(), SignatureError> {
        let msg = Self::sign_bytes(
            chain_id,
            self.height,
            self.round,
            self.vote_type,
            self.block_hash,
        );
        self.validator
            .verify(domain::VOTE_SIGN, &msg, &self.signature)
    }
}

/// A signed proposal of a block for `(height, round)`. `pol_round` is Tendermint's
/// `validRound` (`None` for −1): the round in which the proposer saw a polka for the block.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Proposal {
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// Proof-of-lock round, if the proposer re-proposes a block that had a polka.
    pub pol_round: Option<u32>,
    /// The proposed block.
    pub block_hash: Hash,
    /// The proposer.
    pub proposer: PublicKey,
    /// Signature over [`Proposal::sign_bytes`].
    pub signature: Signature,
}

#[derive(Serialize)]
struct ProposalSignBytes<'a> {
    chain_id: &'a str,
    height: u64,
    round: u32,
    pol_round: Option<u32>,
    block_hash: Hash,
}

impl Proposal {
    /// The bytes signed (after the `govledger/proposal/v1` tag):
    /// `encode((chain_id, height, round, pol_round, block_hash))`.
    pub fn sign_bytes(
        chain_id: &str,
        height: u64,
        round: u32,
        pol_round: Option<u32>,
        block_hash: Hash,
    ) -> Vec<u8> {
        codec::encode(&ProposalSignBytes {
            chain_id,
            height,
            round,
            pol_round,
            block_hash,
        })
    }

    /// Creates and signs a proposal.
    pub fn new_signed(
        chain_id: &str,
        height: u64,
        round: u32,
        pol_round: Option<u32>,
        block_hash: Hash,
        key: &SecretKey,
    ) -> Self {
        let msg = Self::sign_bytes(chain_id, height, round, pol_round, block_hash);
        Proposal {
            height,
            round,
            pol_round,
            block_hash,
            proposer: key.public_key(),
            signature: key.sign(domain::PROPOSAL_SIGN, &msg),
        }
    }

    /// Verifies the signature (not that the signer is the round's proposer).
    pub fn verify(&self, chain_id: &str) -> Result<(), SignatureError> {
        let msg = Self::sign_bytes(
            chain_id,
            self.height,
            self.round,
            self.pol_round,
            self.block_hash,
        );
        self.proposer
            .verify(domain::PROPOSAL_SIGN, &msg, &self.signature)
    }
}

/// One precommit signature in a commit certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSig {
    /// The validator.
    pub validator: PublicKey,
    /// Its precommit signature for `(height, round, block_hash)`.
    pub signature: Signature,
}

/// Proof that a block is final: precommits for its hash from validators holding more than
/// two thirds of the voting power, sorted by validator key, each key once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCertificate {
    /// Height of the block.
    pub height: u64,
    /// Round in which it was decided.
    pub round: u32,
    /// The block hash.
    pub block_hash: Hash,
    /// The precommit signatures.
    pub signatures: Vec<CommitSig>,
}

/// Why a commit certificate does not prove finality.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The certificate is for another height or block.
    #[error(
        "certificate is for height {cert_height} block {cert_block}, expected height {height} block {block}"
    )]
    WrongBlock {
        /// Certificate height.
        cert_height: u64,
        /// Certificate block.
        cert_block: Hash,
        /// Expected height.
        height: u64,
        /// Expected block.
        block: Hash,
    },
    /// Signatures are not sorted by key or a key repeats.
    #[error("signatures are not in strictly increasing validator order")]
    NotCanonical,
    /// Too many signatures.
    #[error("{0} signatures exceed the bound")]
    TooMany(usize),
    /// A signer is not in the validator set in force.
    #[error("{0} is not a validator at this height")]
    UnknownValidator(PublicKey),
    /// A signature does not verify.
    #[error("precommit signature of {0} does not verify")]
    BadSignature(PublicKey),
    /// Not enough power.
    #[error("signers hold {signed} of {total} voting power; more than two thirds is needed")]
    NoQuorum {
        /// Power that signed.
        signed: u64,
        /// Total power.
        total: u64,
    },
}

impl CommitCertificate {
    /// Builds a certificate from precommit votes for one block (sorts and dedups).
    pub fn from_votes<'a>(
        height: u64,
        round: u32,
        block_hash: Hash,
        votes: impl IntoIterator<Item = &'a Vote>,
    ) -> Self {
        let mut signatures: Vec<CommitSig> = votes
            .into_iter()
            .filter(|v| {
                v.height == height
                    && v.round == round
                    && v.vote_type == VoteType::Precommit
                    && v.block_hash == Some(block_hash)
            })
            .map(|v| CommitSig {
                validator: v.validator,
                signature: v.signature,
            })
            .collect();
        signatures.sort_by_key(|s| s.validator);
        signatures.dedup_by(|a, b| a.validator == b.validator);
        CommitCertificate {
            height,
            round,
            block_hash,
            signatures,
        }
    }

    /// Checks that this certificate proves `block_hash` final at `height` under
    /// `validators` (the set in force at that height): canonical order, every signer a
    /// validator, every signature valid, more than two thirds of the power.
    pub fn verify(
        &self,
        chain_id: &str,
        height: u64,
        block_hash: &Hash,
        validators: &ValidatorSet,
    ) -> Result<(), CertificateError> {
        if self.height != height || &self.block_hash != block_hash {
            return Err(CertificateError::WrongBlock {
                cert_height: self.height,
                cert_block: self.block_hash,
                height,
                block: *block_hash,
            });
        }
        if self.signatures.len() > COMMIT_SIGNATURES_MAX {
            return Err(CertificateError::TooMany(self.signatures.len()));
        }
        if self
            .signatures
            .windows(2)
            .any(|w| w[0].validator >= w[1].validator)
        {
            return Err(CertificateError::NotCanonical);
        }
        let msg = Vote::sign_bytes(
            chain_id,
            self.height,
            self.round,
            VoteType::Precommit,
            Some(self.block_hash),
        );
        let mut power = 0u64;
        let mut batch = BatchVerifier::with_capacity(self.signatures.len());
        for s in &self.signatures {
            let p = validators.power_of(&s.validator);
            if p == 0 {
                return Err(CertificateError::UnknownValidator(s.validator));
            }
            power += p;
            batch.push(&s.validator, domain::VOTE_SIGN, &msg, &s.signature);
        }
        if !validators.is_quorum(power) {
            return Err(CertificateError::NoQuorum {
                signed: power,
                total: validators.total_power(),
            });
        }
        for (s, r) in self.signatures.iter().zip(batch.verify()) {
            if r.is_err() {
                return Err(CertificateError::BadSignature(s.validator));
            }
        }
        Ok(())
    }
}

/// Evidence that one validator signed two conflicting messages for the same step.
/// Canonical form: the two messages ordered by their block hash (`None` first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// Two votes of one validator, same height, round and type, different block hashes.
    DuplicateVote {
        /// The first vote (smaller block hash).
        a: Vote,
        /// The second vote.
        b: Vote,
    },
    /// Two proposals of one validator for the same height and round, different blocks.
    DuplicateProposal {
        /// The first proposal (smaller block hash).
        a: Proposal,
        /// The second proposal.
        b: Proposal,
    },
}

/// Why evidence is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The two messages are not from one signer for one step, or do not conflict.
    #[error("the two messages do not conflict: {0}")]
    NotConflicting(&'static str),
    /// Not in canonical order.
    #[error("the two messages are not in canonical order (smaller block hash first)")]
    NotCanonical,
    /// A signature does not verify.
    #[error("a signature in the evidence does not verify")]
    BadSignature,
}

/// The step an equivocation happened at: what makes two pieces of evidence the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EquivocationKey {
    /// The equivocating validator.
    pub validator: PublicKey,
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// 0 = proposal, 1 = prevote, 2 = precommit.
    pub step: u8,
}

impl Evidence {
    /// Builds canonical evidence from two conflicting votes (in either order).
    pub fn from_votes(x: Vote, y: Vote) -> Self {
        if x.block_hash <= y.block_hash {
            Evidence::DuplicateVote { a: x, b: y }
        } else {
            Evidence::DuplicateVote { a: y, b: x }
        }
    }

    /// Builds canonical evidence from two conflicting proposals (in either order).
    pub fn from_proposals(x: Proposal, y: Proposal) -> Self {
        if x.block_hash <= y.block_hash {
            Evidence::DuplicateProposal { a: x, b: y }
        } else {
            Evidence::DuplicateProposal { a: y, b: x }
        }
    }

    /// Who equivocated, where.
    pub fn key(&self) -> EquivocationKey {
        match self {
            Evidence::DuplicateVote { a, .. } => EquivocationKey {
                validator: a.validator,
                height: a.height,
                round: a.round,
                step: match a.vote_type {
                    VoteType::Prevote => 1,
                    VoteType::Precommit => 2,
                },
            },
            Evidence::DuplicateProposal { a, .. } => EquivocationKey {
                validator: a.proposer,
                height: a.height,
                round: a.round,
                step: 0,
            },
        }
    }

    /// Checks the evidence on its own: same signer and step, different blocks, canonical
    /// order, both signatures valid. Whether the signer was a validator at that height is
    /// for the state machine to check.
    pub fn verify(&self, chain_id: &str) -> Result<(), EvidenceError> {
        match self {
            Evidence::DuplicateVote { a, b } => {
                if a.validator != b.validator {
                    return Err(EvidenceError::NotConflicting("different validators"));
                }
                if (a.height, a.round, a.vote_type) != (b.height, b.round, b.vote_type) {
                    return Err(EvidenceError::NotConflicting("different steps"));
                }
                if a.block_hash == b.block_hash {
                    return Err(EvidenceError::NotConflicting("same block"));
                }
                if a.block_hash > b.block_hash {
                    return Err(EvidenceError::NotCanonical);
                }
                a.verify(chain_id)
                    .and(b.verify(chain_id))
                    .map_err(|_| EvidenceError::BadSignature)
            }
            Evidence::DuplicateProposal { a, b } => {
                if a.proposer != b.proposer {
                    return Err(EvidenceError::NotConflicting("different proposers"));
                }
                if (a.height, a.round) != (b.height, b.round) {
                    return Err(EvidenceError::NotConflicting("different rounds"));
                }
                if a.block_hash == b.block_hash {
                    return Err(EvidenceError::NotConflicting("same block"));
                }
                if a.block_hash > b.block_hash {
                    return Err(EvidenceError::NotCanonical);
                }
                a.verify(chain_id)
                    .and(b.verify(chain_id))
                    .map_err(|_| EvidenceError::BadSignature)
            }
        }
    }
}

/// Decodes a vote canonically (network input).
pub fn decode_vote(bytes: &[u8]) -> Result<Vote, DecodeError> {
    codec::decode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validator::Validator;

    fn keys(n: u8) -> Vec<SecretKey> {
        (1..=n).map(|i| SecretKey::from_seed(&[i; 32])).collect()
    }

    fn set(keys: &[SecretKey]) -> ValidatorSet {
        ValidatorSet::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| Validator {
                    department: format!("d{i}"),
                    public_key: k.public_key(),
                    power: 1,
                    address: String::new(),
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn certificate_needs_quorum_and_valid_signatures() {
        let ks = keys(4);
        let vs = set(&ks);
        let block = crate::hash::hash_document(b"block");
        let votes: Vec<Vote> = ks
            .iter()
            .map(|k| Vote::new_signed("c", 5, 1, VoteType::Precommit, Some(block), k))
            .collect();
        let cert = CommitCertificate::from_votes(5, 1, block, &votes[..3]);
        cert.verify("c", 5, &block, &vs).unwrap();
        assert!(matches!(
            cert.verify("other-chain", 5, &block, &vs),
            Err(CertificateError::BadSignature(_))
        ));
        let two = CommitCertificate::from_votes(5, 1, block, &votes[..2]);
        assert!(matches!(
            two.verify("c", 5, &block, &vs),
            Err(CertificateError::NoQuorum {
                signed: 2,
                total: 4
            })
        ));
        let mut dup = cert.clone();
        dup.signatures.push(dup.signatures[0].clone());
        assert_eq!(
            dup.verify("c", 5, &block, &vs),
            Err(CertificateError::NotCanonical)
        );
        let mut bad = cert.clone();
        bad.signatures[1].signature.0[0] ^= 1;
        assert!(matches!(
            bad.verify("c", 5, &block, &vs),
            Err(CertificateError::BadSignature(_))
        ));
        assert!(matches!(
            cert.verify("c", 6, &block, &vs),
            Err(CertificateError::WrongBlock { .. })
        ));
    }

    #[test]
    fn evidence_checks() {
        let k = &keys(1)[0];
        let a = Vote::new_signed("c", 3, 0, VoteType::Prevote, Some(Hash([1; 32])), k);
        let b = Vote::new_signed("c", 3, 0, VoteType::Prevote, Some(Hash([2; 32])), k);
        let nil = Vote::new_signed("c", 3, 0, VoteType::Prevote, None, k);
        Evidence::from_votes(b.clone(), a.clone())
            .verify("c")
            .unwrap();
        Evidence::from_votes(a.clone(), nil).verify("c").unwrap();
        assert_eq!(
            Evidence::DuplicateVote {
                a: b.clone(),
                b: a.clone()
            }
            .verify("c"),
            Err(EvidenceError::NotCanonical)
        );
        assert!(
            Evidence::from_votes(a.clone(), a.clone())
                .verify("c")
                .is_err()
        );
        let other_round = Vote::new_signed("c", 3, 1, VoteType::Prevote, Some(Hash([2; 32])), k);
        assert!(
            Evidence::from_votes(a.clone(), other_round)
                .verify("c")
                .is_err()
        );
        let p1 = Proposal::new_signed("c", 3, 0, None, Hash([1; 32]), k);
        let p2 = Proposal::new_signed("c", 3, 0, None, Hash([2; 32]), k);
        let ev = Evidence::from_proposals(p2, p1);
        ev.verify("c").unwrap();
        assert_eq!(ev.key().step, 0);
    }
}
