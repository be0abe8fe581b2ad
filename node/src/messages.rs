//! Messages between nodes, in the canonical encoding (`ledger::codec`). Every message has
//! a size bound checked before decoding.

use ledger::block::{Block, CommittedBlock};
use ledger::codec::{self, DecodeError};
use ledger::tx::SignedTx;
use ledger::vote::{Evidence, Proposal, Vote};
use serde::{Deserialize, Serialize};

/// Largest gossip message: the genesis's frame bound, which every valid `max_block_bytes`
/// fits with its proposal envelope (see `ledger::genesis::BLOCK_BYTES_HARD_MAX`).
pub const GOSSIP_BYTES_MAX: usize = ledger::genesis::GOSSIP_FRAME_BYTES_MAX as usize;
/// Most transactions in one gossiped batch.
pub const GOSSIP_TXS_MAX: usize = 4096;
/// Largest sync request.
pub const SYNC_REQUEST_BYTES_MAX: usize = 1024;
/// Largest sync response.
pub const SYNC_RESPONSE_BYTES_MAX: usize = 32 * 1024 * 1024;
/// A responder stops adding blocks once a response reaches this size (one block may be
/// larger): small enough that the two batches a catching-up node holds (one executing, one
/// being verified) stay a few tens of MiB, large enough to amortise a round trip.
pub const SYNC_RESPONSE_BYTES_TARGET: usize = 4 * 1024 * 1024;
/// Most blocks asked for in one sync request.
pub const SYNC_BLOCKS_MAX: u32 = 64;

/// A message broadcast to every peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMsg {
    /// New transactions (already checked by the sender; every receiver verifies them).
    Txs(Vec<SignedTx>),
    /// A signed proposal and the block it proposes.
    Proposal {
        /// The proposal.
        proposal: Proposal,
        /// The block (boxed: it is by far the largest variant).
        block: Box<Block>,
    },
    /// A signed vote.
    Vote(Vote),
    /// Evidence of equivocation.
    Evidence(Evidence),
    /// Where the sender is; lets peers that are behind start a sync.
    Status(Status),
}

/// A node's position, with the commit certificate of its tip as proof: a peer that is
/// behind trusts the height only if the certificate verifies (see `driver::sync`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Height of the sender's last committed block.
    pub height: u64,
    /// Its hash.
    pub block_hash: ledger::hash::Hash,
    /// The sender's current round at `height + 1`.
    pub round: u32,
    /// The certificate of that block (`None` at genesis).
    pub commit: Option<ledger::CommitCertificate>,
}

impl GossipMsg {
    /// Canonical bytes.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes, refusing oversize input before decoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > GOSSIP_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: GOSSIP_BYTES_MAX,
            });
        }
        let msg: GossipMsg = codec::decode(bytes)?;
        match &msg {
            GossipMsg::Txs(txs) => {
                codec::check_len("txs", txs.len(), GOSSIP_TXS_MAX)?;
                for t in txs {
                    t.tx.check_limits()?;
                }
            }
            GossipMsg::Proposal { block, .. } => {
                for t in &block.txs {
                    t.tx.check_limits()?;
                }
            }
            _ => {}
        }
        Ok(msg)
    }
}

/// Ask a peer for committed blocks `[from_height, from_height + count)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// First height wanted.
    pub from_height: u64,
    /// How many (≤ [`SYNC_BLOCKS_MAX`]).
    pub count: u32,
}

/// The answer to a [`SyncRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The responder's tip height.
    pub tip_height: u64,
    /// Consecutive committed blocks from `from_height` (possibly fewer than asked, to stay
    /// under [`SYNC_RESPONSE_BYTES_MAX`]; empty if the responder has none).
    pub blocks: Vec<CommittedBlock>,
}

impl SyncResponse {
    /// Decodes a response, refusing oversize input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > SYNC_RESPONSE_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: SYNC_RESPONSE_BYTES_MAX,
            });
        }
        let r: SyncResponse = codec::decode(bytes)?;
        codec::check_len("blocks", r.blocks.len(), SYNC_BLOCKS_MAX as usize)?;
        for b in &r.blocks {
            for t in &b.block.txs {
                t.tx.check_limits()?;
            }
        }
        Ok(r)
    }
}

impl SyncRequest {
    /// Decodes a request, refusing oversize input.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > SYNC_REQUEST_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: SYNC_REQUEST_BYTES_MAX,
            });
        }
        codec::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trip_and_garbage() {
        let m = GossipMsg::Status(Status {
            height: 7,
            block_hash: ledger::hash::Hash::ZERO,
            round: 2,
            commit: None,
        });
        assert_eq!(GossipMsg::decode(&m.encode()).unwrap(), m);
        assert!(GossipMsg::decode(&[0xff; 40]).is_err());
        assert!(GossipMsg::decode(&[]).is_err());
        let big = vec![0u8; GOSSIP_BYTES_MAX + 1];
        assert!(matches!(
            GossipMsg::decode(&big),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
