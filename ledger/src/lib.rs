//! govledger's core: everything that must be the same on every node and in every verifier.
//!
//! * [`tx`]: transactions and record bodies; [`block`]: blocks and headers; [`vote`]:
//!   consensus messages, commit certificates and evidence; [`validator`]; [`genesis`].
//! * [`codec`]: the one canonical binary encoding; [`hash`]: blake3 with domain tags;
//!   [`crypto`]: ed25519 keys and the single/batch verification rule.
//! * [`history_log`]: the RFC 9162 Merkle log with inclusion and consistency proofs.
//!
//! The byte layouts are in `docs/encoding.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod block;
pub mod bytes;
pub mod chain;
pub mod codec;
pub mod crypto;
pub mod durable;
pub mod execute;
pub mod genesis;
pub mod hash;
pub mod history;
pub mod history_log;
pub mod index;
pub mod keyfile;
pub mod proof;
pub mod report;
pub mod state;
pub mod state_tree;
pub mod status;
#[cfg(feature = "rocksdb")]
pub mod store;
pub mod tx;
pub mod validator;
pub mod vote;

pub use block::{Block, BlockHeader, CommittedBlock, SignedHeader};
pub use crypto::{PublicKey, SecretKey, Signature};
pub use genesis::{ConsensusParams, Genesis};
pub use hash::Hash;
pub use tx::{SignedTx, Tx, TxBody};
pub use validator::{Validator, ValidatorSet};
pub use vote::{CommitCertificate, Evidence, Proposal, Vote, VoteType};
