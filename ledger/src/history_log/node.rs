//! Stored nodes: their ids, the reader trait a store implements, and the hash of any subtree
//! on the tree's split grid folded from stored nodes.

use super::node_hash;
use crate::hash::Hash;

/// A complete, aligned subtree: `level` 0 is a leaf; node `(level, index)` covers the leaves
/// `[index·2^level, (index+1)·2^level)` and its hash is their MTH.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// Height above the leaves (0 = leaf, at most 63).
    pub level: u8,
    /// Position among the nodes of this level, from the left.
    pub index: u64,
}

impl NodeId {
    /// Length of [`NodeId::key`].
    pub const KEY_LEN: usize = 9;

    /// The node `(level, index)`.
    pub const fn new(level: u8, index: u64) -> Self {
        Self { level, index }
    }

    /// The storage key: `[level: u8][index: u64 big-endian]`. Keys sort by level, then index.
    pub fn key(&self) -> [u8; Self::KEY_LEN] {
        let mut k = [0u8; Self::KEY_LEN];
        k[0] = self.level;
        k[1..].copy_from_slice(&self.index.to_be_bytes());
        k
    }

    /// Parses a key made by [`NodeId::key`]; `None` unless it is exactly 9 bytes with a level
    /// of at most 63.
    pub fn from_key(key: &[u8]) -> Option<Self> {
        let (&level, index) = key.split_first()?;
        let index: [u8; 8] = index.try_into().ok()?;
        (level < 64).then(|| Self::new(level, u64::from_be_bytes(index)))
    }

    /// The leaves this node covers, `[first, end)`; `None` if that range does not fit in u64
    /// (no such node can exist).
    pub fn leaf_range(&self) -> Option<std::ops::Range<u64>> {
        let width = 1u64.checked_shl(u32::from(self.level))?;
        let first = self.index.checked_mul(width)?;
        let end = first.checked_add(width)?;
        Some(first..end)
    }
}

/// Read access to the stored nodes of a log (see [`NodeId`]).
pub trait NodeReader {
    /// The hash of node `(level, index)`: [`LogError::MissingNode`] if it is not stored (its
    /// leaves are not all in the log yet), [`LogError::Storage`] if the store failed.
    fn node(&self, level: u8, index: u64) -> Result<Hash, LogError>;

    /// The hashes of several nodes, in the order asked, with the errors of [`Self::node`].
    /// A store overrides it to read them in one batch (a proof needs ~log n nodes at once).
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LogError> {
        ids.iter().map(|id| self.node(id.level, id.index)).collect()
    }
}

impl<R: NodeReader + ?Sized> NodeReader for &R {
    fn node(&self, level: u8, index: u64) -> Result<Hash, LogError> {
        (**self).node(level, index)
    }
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LogError> {
        (**self).nodes(ids)
    }
}

impl<R: NodeReader + ?Sized> NodeReader for Box<R> {
    fn node(&self, level: u8, index: u64) -> Result<Hash, LogError> {
        (**self).node(level, index)
    }
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LogError> {
        (**self).nodes(ids)
    }
}

/// Why a root or a proof could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// A node the computation needs is not stored: the requested size is beyond the log, or
    /// the store lost it.
    #[error("history log node (level {level}, index {index}) is not stored")]
    MissingNode {
        /// Level of the missing node.
        level: u8,
        /// Index of the missing node within its level.
        index: u64,
    },
    /// The store failed to read a node.
    #[error("history log storage error: {0}")]
    Storage(String),
    /// An inclusion proof was asked for a leaf that is not in the log of that size.
    #[error("leaf index {index} is not in a log of size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The requested log size.
        size: u64,
    },
    /// A consistency proof was asked from a larger to a smaller size.
    #[error("old log size {old_size} is larger than new log size {new_size}")]
    SizesOutOfOrder {
        /// The requested old size.
        old_size: u64,
        /// The requested new size.
        new_size: u64,
    },
}

/// `MTH(D[start:start+len])` for a range on the split grid of RFC 9162 trees: `len ≥ 1` and
/// `start` is a multiple of the smallest power of two `≥ len`. Every subtree that MTH, PATH or
/// SUBPROOF visits is of that form. The range splits into the complete aligned subtrees of the
/// binary decomposition of `len` (largest first), which are stored nodes; MTH folds them from
/// the right. Reads `popcount(len)` nodes.
pub(crate) fn range_hash(
    start: u64,
    len: u64,
    reader: &(impl NodeReader + ?Sized),
) -> Result<Hash, LogError> {
    let mut ids = Vec::with_capacity(len.count_ones() as usize);
    range_nodes(start, len, &mut ids);
    Ok(fold_range(&reader.nodes(&ids)?))
}

/// The stored nodes whose fold is `MTH(D[start:start+len])` (see [`range_hash`]): the
/// complete aligned subtrees of the binary decomposition of `len`, **right to left**.
pub(crate) fn range_nodes(start: u64, len: u64, out: &mut Vec<NodeId>) {
    debug_assert!(len >= 1);
    // Walk the decomposition from the right: the lowest set bit of `len` is the last subtree.
    let mut end = start + len;
    let mut bits = len;
    while bits != 0 {
        let level = bits.trailing_zeros();
        bits &= bits - 1;
        end -= 1u64 << level;
        out.push(NodeId::new(level as u8, end >> level));
    }
}

/// Folds the hashes of [`range_nodes`] (right to left) into the range's MTH.
pub(crate) fn fold_range(hashes: &[Hash]) -> Hash {
    let mut acc: Option<Hash> = None;
    for h in hashes {
        acc = Some(match acc {
            None => *h,
            Some(right) => node_hash(h, &right),
        });
    }
    acc.unwrap_or_else(super::empty_root)
}
