//! The history log: an append-only Merkle tree over every committed transaction, with the
//! tree shape and proof algorithms of RFC 9162 §2.1 (Certificate Transparency v2) and blake3
//! as the hash.
//!
//! * Leaves are leaf hashes `blake3(0x00 ‖ data)` ([`leaf_hash`]); a transaction's record id
//!   is its leaf hash. Inner nodes are `blake3(0x01 ‖ left ‖ right)` ([`node_hash`]); the
//!   empty log's root is `blake3("")` ([`empty_root`]).
//! * **Storage model.** The log keeps the hash of every *complete, aligned subtree*: node
//!   `(level, index)` ([`NodeId`]) covers leaves `[index·2^level, (index+1)·2^level)`; level 0
//!   holds the leaf hashes. A node exists once all its leaves exist and never changes after
//!   that. A store exposes them through [`NodeReader`]; [`NodeId::key`] is the 9-byte key
//!   `[level][index, big-endian]`.
//! * **Appending.** [`Frontier`] keeps the right edge of the tree (the "peaks") in memory, so
//!   an append needs no reads; it hands back every node that became complete, for the caller
//!   to write in the same batch as the block.
//! * **Proofs.** [`root_at`], [`inclusion_proof`] and [`consistency_proof`] work for any past
//!   size with O(log n) node reads: every subtree an RFC 9162 proof needs is either a stored
//!   complete node or a right-edge subtree folded from at most 64 stored nodes. They never
//!   touch the leaves. [`verify_inclusion`] and [`verify_consistency`] are the RFC 9162
//!   §2.1.3.2 and §2.1.4.2 algorithms.
//! * [`MemoryLog`] is an in-memory store with the same interface, for tests, the auditor and
//!   builds without RocksDB.
//!
//! `docs/history-log.md` describes the bytes and the algorithms with worked examples.

use crate::hash::{Hash, domain, hash_with};

mod frontier;
mod memory;
mod node;
mod proof;
mod verify;

pub use frontier::Frontier;
pub use memory::MemoryLog;
pub use node::{LogError, NodeId, NodeReader};
pub use proof::{consistency_proof, inclusion_proof, root_at};
pub use verify::{ProofError, verify_consistency, verify_inclusion};

/// `blake3(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    hash_with(domain::LEAF, data)
}

/// `blake3(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    // One call over a 65-byte buffer: the same bytes as `hash_parts(domain::NODE, ..)`,
    // without the incremental hasher's per-update overhead (this is the log's hot path).
    const _: () = assert!(domain::NODE.len() == 1);
    let mut input = [0u8; 1 + 2 * Hash::LEN];
    input[0] = domain::NODE[0];
    input[1..1 + Hash::LEN].copy_from_slice(&left.0);
    input[1 + Hash::LEN..].copy_from_slice(&right.0);
    Hash(*blake3::hash(&input).as_bytes())
}

/// The root of the empty log: `blake3("")`, as RFC 9162 defines MTH({}).
pub fn empty_root() -> Hash {
    hash_with(domain::EMPTY_LOG, b"")
}

/// MTH over leaf hashes that are already computed (RFC 9162 §2.1.1).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = largest_power_of_two_below(n as u64) as usize;
            node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly smaller than `n` (`n ≥ 2`).
pub fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}
