//! The state tree in RocksDB (state format 2).
//!
//! The store keeps the tree **at its tip only**: each position (depth, path) holds the one
//! node the tip's tree has there, and a block's update overwrites the positions it changes
//! and deletes the ones it empties, in the block's own atomic batch. Past versions are not
//! kept: the history of every value is in the history log (and its completeness in the
//! history heads), proofs are made at the tip, and an auditor re-derives any past root by
//! replay. So the tree costs its live nodes on disk, never a multiple of them, and nothing
//! needs pruning. (The tree's code keeps versions in its node references, as `jmt` does;
//! the store ignores them.)
//!
//! | cf | key | value |
//! |---|---|---|
//! | `tree` | depth (u16 BE) ‖ the `ceil(depth/8)` bytes of the path | canonical [`Node`] |
//! | `meta` | `tree_root` | the tip's version (u64) and root [`Child`] |
//!
//! The nodes of the upper [`TREE_MEMORY_DEPTH`] levels (at most 2^16 − 1 of them) are
//! also held in memory, exactly as committed, so an update or a proof reads only the few
//! nodes below them from RocksDB.

use crate::hash::Hash;
use crate::state_tree::{Child, Node, NodeKey};
use std::collections::HashMap;

/// Default levels of the tree held in memory: depths `0 .. TREE_MEMORY_DEPTH`. At most
/// 2^16 − 1 nodes (about 10 MB); a state of 1M keys has all of them, one of 100 keys a few
/// hundred. The store's `tree_memory_depth` option sets it.
pub const TREE_MEMORY_DEPTH: u16 = 16;
/// Most levels the option may hold in memory (2^20 − 1 nodes, about 160 MB).
pub const TREE_MEMORY_DEPTH_MAX: u16 = 20;

/// The storage key of the node at `depth` along `path`.
pub fn position_key(depth: u16, path: &Hash) -> Vec<u8> {
    let n = usize::from(depth).div_ceil(8);
    let mut out = Vec::with_capacity(2 + n);
    out.extend_from_slice(&depth.to_be_bytes());
    out.extend_from_slice(&path.0[..n]);
    out
}

/// The position a storage key names (`None` if it is not one).
pub fn position_of(key: &[u8]) -> Option<(u16, Hash)> {
    let depth = u16::from_be_bytes(key.get(..2)?.try_into().ok()?);
    if depth > 256 {
        return None;
    }
    let n = usize::from(depth).div_ceil(8);
    let rest = key.get(2..)?;
    if rest.len() != n {
        return None;
    }
    let mut path = Hash::ZERO;
    path.0[..n].copy_from_slice(rest);
    Some((depth, path))
}

/// The upper levels and the root, as committed.
#[derive(Debug)]
pub struct TreeMemory {
    /// The tip's version and root (`None` for a format-1 chain).
    pub root: Option<(u64, Child)>,
    nodes: HashMap<(u16, Hash), Node>,
    depth: u16,
}

impl Default for TreeMemory {
    fn default() -> Self {
        Self::new(TREE_MEMORY_DEPTH)
    }
}

impl TreeMemory {
    /// Holds depths `0 .. depth` (at most [`TREE_MEMORY_DEPTH_MAX`]).
    pub fn new(depth: u16) -> Self {
        TreeMemory {
            root: None,
            nodes: HashMap::new(),
            depth: depth.min(TREE_MEMORY_DEPTH_MAX),
        }
    }

    /// The first depth not held.
    pub fn depth(&self) -> u16 {
        self.depth
    }

    /// The node at a position of the upper levels, if held.
    pub fn get(&self, key: &NodeKey) -> Option<Node> {
        self.nodes.get(&(key.depth, key.path)).copied()
    }

    /// Whether a position is of the levels held.
    pub fn holds(&self, depth: u16) -> bool {
        depth < self.depth
    }

    /// Records a committed node.
    pub fn put(&mut self, depth: u16, path: Hash, node: Node) {
        if self.holds(depth) {
            self.nodes.insert((depth, path), node);
        }
    }

    /// Forgets a committed deletion.
    pub fn remove(&mut self, depth: u16, path: &Hash) {
        self.nodes.remove(&(depth, *path));
    }

    /// Nodes held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Approximate bytes held.
    pub fn bytes(&self) -> usize {
        // Key, node and the map's own slot, rounded up.
        self.nodes.len() * (34 + std::mem::size_of::<Node>() + 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_keys_round_trip_and_sort_by_depth() {
        let mut path = Hash::ZERO;
        path.0[0] = 0b1010_0000;
        for depth in [0u16, 1, 3, 8, 9, 255, 256] {
            let mut p = path;
            if depth < 8 {
                p.0[0] &= !(0xffu8 >> depth);
            }
            let k = position_key(depth, &p);
            assert_eq!(position_of(&k), Some((depth, p)), "depth {depth}");
        }
        assert!(position_key(1, &path) < position_key(2, &Hash::ZERO));
        assert_eq!(position_of(&[0, 1]), None);
        assert_eq!(position_of(&[1, 1, 0]), None);
        assert_eq!(position_of(&[0, 1, 0, 0]), None);
    }
}
