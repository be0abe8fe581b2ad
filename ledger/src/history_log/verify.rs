//! Verification of inclusion and consistency proofs (RFC 9162 §2.1.3.2 and §2.1.4.2).

use super::proof::{consistency_proof_len, inclusion_proof_len};
use super::{empty_root, node_hash};
use crate::hash::Hash;

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the claimed log size.
    #[error("leaf index {index} is not in a log of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed log size.
        size: u64,
    },
    /// The old size of a consistency proof is larger than the new size.
    #[error("old log size {old_size} is larger than new log size {new_size}")]
    SizesOutOfOrder {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
    },
    /// The proof does not have the number of hashes that the claimed index and size(s)
    /// determine.
    #[error("the proof has {actual} hashes, but the claimed index and sizes need {expected}")]
    WrongPathLength {
        /// Hashes the claimed index and size(s) need.
        expected: usize,
        /// Hashes in the proof.
        actual: usize,
    },
    /// The inclusion path does not lead from the leaf to the expected root.
    #[error("the inclusion proof leads to root {computed}, not to the expected root {expected}")]
    RootMismatch {
        /// The root the path leads to.
        computed: Hash,
        /// The root the proof was checked against.
        expected: Hash,
    },
    /// The consistency proof does not reconstruct the old root.
    #[error("the consistency proof leads to old root {computed}, not to the expected {expected}")]
    OldRootMismatch {
        /// The old root the proof leads to.
        computed: Hash,
        /// The old root the proof was checked against.
        expected: Hash,
    },
    /// The consistency proof does not reconstruct the new root.
    #[error("the consistency proof leads to new root {computed}, not to the expected {expected}")]
    NewRootMismatch {
        /// The new root the proof leads to.
        computed: Hash,
        /// The new root the proof was checked against.
        expected: Hash,
    },
    /// Two different roots were claimed for the same log size.
    #[error("two different roots were given for the same log size {size}")]
    SameSizeRootsDiffer {
        /// The log size.
        size: u64,
    },
}

/// Verifies that `leaf` (a leaf hash) is leaf number `index` of the log of `size` leaves whose
/// root is `root`, with the algorithm of RFC 9162 §2.1.3.2.
///
/// The size itself is not authenticated by the path: it must come from a signed header. (Two
/// sizes whose trees put leaf `index` at the same position, e.g. index 0 in sizes 3 and 4,
/// accept the same path.)
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // 1. leaf_index < tree_size.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongPathLength {
            expected,
            actual: proof.len(),
        });
    }
    let wrong_length = || ProofError::WrongPathLength {
        expected,
        actual: proof.len(),
    };
    // 2.–3.
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    // 4.
    for p in proof {
        if snode == 0 {
            return Err(wrong_length());
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // 5.
    if snode != 0 {
        return Err(wrong_length());
    }
    if r != *root {
        return Err(ProofError::RootMismatch {
            computed: r,
            expected: *root,
        });
    }
    Ok(())
}

/// Verifies that the log of `old_size` leaves with root `old_root` is a prefix of the log of
/// `new_size` leaves with root `new_root`, with the algorithm of RFC 9162 §2.1.4.2.
///
/// Beyond the RFC's `0 < old_size < new_size`: for `old_size == new_size` the proof must be
/// empty and the roots equal; for `old_size == 0` the proof must be empty and `old_root` must
/// be [`empty_root`] (the empty log is a prefix of every log).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    let expected = if old_size == 0 || old_size == new_size {
        0
    } else {
        consistency_proof_len(old_size, new_size)
    };
    let wrong_length = || ProofError::WrongPathLength {
        expected,
        actual: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length());
    }
    if old_size == 0 {
        let empty = empty_root();
        if *old_root != empty {
            return Err(ProofError::OldRootMismatch {
                computed: empty,
                expected: *old_root,
            });
        }
        if new_size == 0 && *new_root != empty {
            return Err(ProofError::NewRootMismatch {
                computed: empty,
                expected: *new_root,
            });
        }
        return Ok(());
    }
    if old_size == new_size {
        if old_root != new_root {
            return Err(ProofError::SameSizeRootsDiffer { size: old_size });
        }
        return Ok(());
    }
    // 1. The path is not empty: `expected ≥ 1` whenever 0 < old_size < new_size.
    // 2. If old_size is an exact power of 2, prepend old_root to the path.
    let (first, rest) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(wrong_length()),
        }
    };
    // 3.
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    // 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // 5.
    let (mut fr, mut sr) = (first, first);
    // 6.
    for c in rest {
        if snode == 0 {
            return Err(wrong_length());
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // 7.
    if snode != 0 {
        return Err(wrong_length());
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}
