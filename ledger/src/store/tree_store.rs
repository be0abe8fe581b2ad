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
//! | `tree` | depth (u16 BE) ‖ the `ceil(depth/8)` bytes of the path | the node ([`encode_node`]) |
//! | `meta` | `tree_root` | the tip's version (u64) and root [`Child`] |
//!
//! The nodes of the upper [`TREE_MEMORY_DEPTH`] levels (at most 2^18 − 1 of them) are
//! also held in memory, exactly as committed, so an update or a proof reads only the few
//! nodes below them from RocksDB.

use crate::hash::Hash;
use crate::state_tree::{Child, Node, NodeKey};
use std::collections::HashMap;

/// Default levels of the tree held in memory: depths `0 .. TREE_MEMORY_DEPTH`. At most
/// 2^18 − 1 nodes (about 40 MB; a state of 1M keys has nearly all of them, one of 100 keys
/// a few hundred). Measured on the 4-validator testnet: 16 levels gave 4,650 tx/s, 18
/// levels 5,153 tx/s (each level saves one RocksDB read per changed key). The store's
/// `tree_memory_depth` option sets it.
pub const TREE_MEMORY_DEPTH: u16 = 18;
/// Most levels the option may hold in memory (2^20 − 1 nodes, about 160 MB).
pub const TREE_MEMORY_DEPTH_MAX: u16 = 20;

/// A node as stored: `0x00 ‖ key hash ‖ value hash` for a leaf, `0x01 ‖ left ‖ right` for
/// an interior node, each child `0x00` (empty), `0x01 ‖ hash` (a leaf) or `0x02 ‖ hash` (an
/// interior node): 65 to 67 bytes. The versions of the tree's references are not stored
/// (the store holds one version; they read back as 0).
pub fn encode_node(node: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(67);
    match node {
        Node::Leaf {
            key_hash,
            value_hash,
        } => {
            out.push(0);
            out.extend_from_slice(&key_hash.0);
            out.extend_from_slice(&value_hash.0);
        }
        Node::Interior { left, right } => {
            out.push(1);
            for c in [left, right] {
                match c {
                    Child::Empty => out.push(0),
                    Child::Leaf { hash, .. } => {
                        out.push(1);
                        out.extend_from_slice(&hash.0);
                    }
                    Child::Interior { hash, .. } => {
                        out.push(2);
                        out.extend_from_slice(&hash.0);
                    }
                }
            }
        }
    }
    out
}

fn take_hash(b: &[u8]) -> Option<(Hash, &[u8])> {
    let (h, rest) = b.split_at_checked(32)?;
    Some((Hash(h.try_into().ok()?), rest))
}

fn take_child(b: &[u8]) -> Option<(Child, &[u8])> {
    let (&tag, rest) = b.split_first()?;
    match tag {
        0 => Some((Child::Empty, rest)),
        1 => take_hash(rest).map(|(hash, r)| (Child::Leaf { hash, version: 0 }, r)),
        2 => take_hash(rest).map(|(hash, r)| (Child::Interior { hash, version: 0 }, r)),
        _ => None,
    }
}

/// The node stored as `b` (`None` if `b` is not one [`encode_node`] writes).
pub fn decode_node(b: &[u8]) -> Option<Node> {
    let (&tag, rest) = b.split_first()?;
    let (node, rest) = match tag {
        0 => {
            let (key_hash, rest) = take_hash(rest)?;
            let (value_hash, rest) = take_hash(rest)?;
            (
                Node::Leaf {
                    key_hash,
                    value_hash,
                },
                rest,
            )
        }
        1 => {
            let (left, rest) = take_child(rest)?;
            let (right, rest) = take_child(rest)?;
            (Node::Interior { left, right }, rest)
        }
        _ => return None,
    };
    rest.is_empty().then_some(node)
}

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
    fn nodes_round_trip_without_versions() {
        let h = |b| Hash([b; 32]);
        let nodes = [
            Node::Leaf {
                key_hash: h(1),
                value_hash: h(2),
            },
            Node::Interior {
                left: Child::Empty,
                right: Child::Leaf {
                    hash: h(3),
                    version: 0,
                },
            },
            Node::Interior {
                left: Child::Interior {
                    hash: h(4),
                    version: 0,
                },
                right: Child::Leaf {
                    hash: h(5),
                    version: 0,
                },
            },
        ];
        for n in nodes {
            let b = encode_node(&n);
            assert!(b.len() <= 67);
            assert_eq!(decode_node(&b), Some(n));
            assert_eq!(decode_node(&b[..b.len() - 1]), None);
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(decode_node(&longer), None);
        }
        assert_eq!(decode_node(&[7]), None);
        assert_eq!(decode_node(&[1, 3]), None);
    }

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
