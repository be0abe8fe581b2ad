//! An in-memory log: every stored node in vectors, plus the frontier.

use super::frontier::Frontier;
use super::node::{LogError, NodeId, NodeReader};
use super::proof;
use crate::hash::Hash;

/// An in-memory history log: the stored nodes of every level and the [`Frontier`]. For tests,
/// for the auditor (which rebuilds the log while it replays the chain) and for builds without
/// RocksDB. It implements [`NodeReader`], so the free proof functions work on it too.
#[derive(Clone, Default)]
pub struct MemoryLog {
    /// `levels[l][i]` is node `(l, i)`.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
    /// Reused buffer for the nodes an append completes.
    scratch: Vec<(NodeId, Hash)>,
}

impl MemoryLog {
    /// The empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log holding `leaves` (leaf hashes) in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut log = Self::new();
        for leaf in leaves {
            log.push(leaf);
        }
        log
    }

    /// Appends a leaf hash and returns its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        let index = self.frontier.size();
        self.frontier.append(leaf, &mut self.scratch);
        for (id, hash) in self.scratch.drain(..) {
            let level = usize::from(id.level);
            if self.levels.len() <= level {
                self.levels.resize_with(level + 1, Vec::new);
            }
            debug_assert_eq!(self.levels[level].len() as u64, id.index);
            self.levels[level].push(hash);
        }
        index
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// MTH of the whole log.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The frontier (right edge) of the log.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// Leaf hash number `index`, if the log has it.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.stored(0, index)
    }

    /// MTH of the first `size` leaves (see [`proof::root_at`]).
    pub fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        proof::root_at(size, self)
    }

    /// Inclusion proof of leaf `index` in the log of `size` leaves (see
    /// [`proof::inclusion_proof`]).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        proof::inclusion_proof(index, size, self)
    }

    /// Consistency proof from size `old_size` to size `new_size` (see
    /// [`proof::consistency_proof`]).
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, LogError> {
        proof::consistency_proof(old_size, new_size, self)
    }

    fn stored(&self, level: u8, index: u64) -> Option<Hash> {
        let nodes = self.levels.get(usize::from(level))?;
        nodes.get(usize::try_from(index).ok()?).copied()
    }
}

impl std::fmt::Debug for MemoryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLog")
            .field("size", &self.size())
            .field("root", &self.root())
            .finish_non_exhaustive()
    }
}

impl NodeReader for MemoryLog {
    fn node(&self, level: u8, index: u64) -> Result<Hash, LogError> {
        self.stored(level, index)
            .ok_or(LogError::MissingNode { level, index })
    }
}
