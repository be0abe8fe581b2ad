//! The right edge of the tree, kept in memory so that appends need no reads.

use super::node::{LogError, NodeId, NodeReader};
use super::{empty_root, node_hash};
use crate::hash::Hash;

/// The right edge of the tree ("peaks"): for a log of `size` leaves, one complete aligned
/// subtree per set bit of `size`, largest (leftmost) first. The peak for bit `level` is node
/// `(level, (size >> level) − 1)`. They are all that is needed to append and to compute the
/// current root, so appends need no reads.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// Peak hashes, one per set bit of `size`, from the highest bit to the lowest.
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty log.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The frontier of the log of `size` leaves, read from the stored nodes with
    /// `popcount(size)` reads (at most 64).
    pub fn load(size: u64, reader: &(impl NodeReader + ?Sized)) -> Result<Self, LogError> {
        let mut peaks = Vec::with_capacity(size.count_ones() as usize);
        for level in (0..64u8).rev() {
            if (size >> level) & 1 == 1 {
                peaks.push(reader.node(level, (size >> level) - 1)?);
            }
        }
        Ok(Self { size, peaks })
    }

    /// Number of leaves in the log.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The peaks with their node ids, largest (leftmost) first.
    pub fn peaks(&self) -> impl Iterator<Item = (NodeId, Hash)> + '_ {
        let size = self.size;
        (0..64u8)
            .rev()
            .filter(move |level| (size >> level) & 1 == 1)
            .map(move |level| NodeId::new(level, (size >> level) - 1))
            .zip(self.peaks.iter().copied())
    }

    /// MTH of the whole log: the peaks folded from the right,
    /// `node(p₀, node(p₁, … node(pₖ₋₁, pₖ)))`, or [`empty_root`] for the empty log.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        match it.next() {
            None => empty_root(),
            Some(&last) => it.fold(last, |right, left| node_hash(left, &right)),
        }
    }

    /// Appends one leaf hash and pushes every node that became complete (including the leaf
    /// itself at level 0) to `out`, lowest level first, for the caller to write in its batch.
    ///
    /// # Panics
    ///
    /// If the log already holds `u64::MAX` leaves, which no real log reaches.
    pub fn append(&mut self, leaf: Hash, out: &mut Vec<(NodeId, Hash)>) {
        let index = self.size;
        let new_size = index
            .checked_add(1)
            .expect("history log is full: it holds u64::MAX leaves");
        out.push((NodeId::new(0, index), leaf));
        // Each trailing one bit of the old size is a peak that the new leaf completes.
        let mut hash = leaf;
        let mut level = 0u8;
        let mut idx = index;
        while idx & 1 == 1 {
            let left = self
                .peaks
                .pop()
                .expect("a frontier has one peak per set bit of its size");
            hash = node_hash(&left, &hash);
            level += 1;
            idx >>= 1;
            out.push((NodeId::new(level, idx), hash));
        }
        self.peaks.push(hash);
        self.size = new_size;
    }
}
