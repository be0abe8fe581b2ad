//! Blocks and their headers.

use crate::codec::{self, DecodeError};
use crate::crypto::PublicKey;
use crate::hash::{Hash, domain, hash_with};
use crate::history_log;
use crate::tx::SignedTx;
use crate::vote::CommitCertificate;
use serde::{Deserialize, Serialize};

/// A block header. Its hash, `blake3("govledger/header/v1" ‖ encode(header))`, is the block
/// hash that validators vote on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// Chain id.
    pub chain_id: String,
    /// Height (the first block is 1).
    pub height: u64,
    /// Proposer's time (ms since the epoch), strictly after the previous block's.
    pub time_ms: u64,
    /// Hash of the previous header (`Hash::ZERO` at height 1).
    pub prev_hash: Hash,
    /// RFC 9162 root over the record ids of this block's transactions.
    pub tx_root: Hash,
    /// Number of transactions in this block.
    pub tx_count: u32,
    /// Size of the history log after this block.
    pub log_size: u64,
    /// Root of the history log after this block.
    pub log_root: Hash,
    /// Chained state commitment after this block (see `docs/encoding.md`).
    pub state_root: Hash,
    /// Hash of the validator set that decides this block.
    pub validators_hash: Hash,
    /// Hash of the validator set that decides the next block.
    pub next_validators_hash: Hash,
    /// The proposer's key.
    pub proposer: PublicKey,
}

impl BlockHeader {
    /// The block hash.
    pub fn hash(&self) -> Hash {
        hash_with(domain::HEADER, &codec::encode(self))
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let h: BlockHeader = codec::decode(bytes)?;
        codec::check_len("chain_id", h.chain_id.len(), crate::tx::CHAIN_ID_BYTES_MAX)?;
        Ok(h)
    }
}

/// A block: a header and its transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, in execution (and log) order.
    pub txs: Vec<SignedTx>,
}

impl Block {
    /// The block hash (the header's hash).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes canonical bytes and checks every transaction's field bounds.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: Block = codec::decode(bytes)?;
        codec::check_len(
            "chain_id",
            b.header.chain_id.len(),
            crate::tx::CHAIN_ID_BYTES_MAX,
        )?;
        for tx in &b.txs {
            tx.tx.check_limits()?;
        }
        Ok(b)
    }

    /// The root that `header.tx_root` must equal.
    pub fn compute_tx_root(&self) -> Hash {
        let ids: Vec<Hash> = self.txs.iter().map(SignedTx::id).collect();
        history_log::merkle_root(&ids)
    }
}

/// A block with the certificate that made it final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedBlock {
    /// The block.
    pub block: Block,
    /// Its commit certificate.
    pub commit: CommitCertificate,
}

/// A header with its commit certificate: what an auditor keeps as a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHeader {
    /// The header.
    pub header: BlockHeader,
    /// Its commit certificate.
    pub commit: CommitCertificate,
}
