//! The history log: an append-only Merkle tree over every committed transaction, with the
//! tree shape and proof algorithms of RFC 9162 §2.1 and blake3 as the hash.

use crate::hash::{Hash, domain, hash_parts, hash_with};

/// `blake3(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    hash_with(domain::LEAF, data)
}

/// `blake3(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    hash_parts(domain::NODE, &[&left.0, &right.0])
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
