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
//! | `meta` | `tree_stored_from` | the first depth whose interior nodes are stored (u16; absent: 0) |
//!
//! The upper levels (depths `0 .. D`, [`TREE_MEMORY_DEPTH`] by default) are held in memory
//! and their **interior nodes are not stored**: every block rewrites most of them (a block
//! of 5,000 changed keys touches nearly all 2^13 nodes of depth 13, and 5,000 of each
//! depth below), so writing them would multiply the block's batch for nodes that any
//! restart can recompute. What is stored is every leaf, at whatever depth, and every
//! interior node of depth `D` or more; at start [`rebuild_upper`] recomputes the levels
//! above `D` from the nodes at depth `D` and the shallower leaves (2^D hashes at most,
//! about 0.3 s at D = 18) and checks the result against the stored root, so a store whose
//! nodes do not make its root is refused at open. `tree_stored_from` records `D`: opened
//! with another `D`, the store writes the interior nodes it now needs on disk (a smaller
//! `D`) or deletes those now held in memory (a larger one), in one batch, before it
//! serves anything. A store written before this layout (all nodes stored, no
//! `tree_stored_from`) reads as `D = 0` and is converted the same way.
//!
//! So an update or a proof reads from RocksDB only the few nodes below depth `D`.

use crate::hash::Hash;
use crate::state_tree::{Child, Node, NodeKey};
use std::collections::HashMap;

/// Default levels of the tree held in memory: depths `0 .. TREE_MEMORY_DEPTH`. At most
/// 2^18 − 1 nodes (about 40 MB; a state of 1M keys has nearly all of them, one of 100 keys
/// a few hundred). Measured on the 4-validator testnet (when these levels were also
/// stored): 16 levels gave 4,650 tx/s, 18 levels 5,153 tx/s (each level saves one RocksDB
/// read per changed key). The store's `tree_memory_depth` option sets it.
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

/// The nodes of depths `0 .. depth` of a tree, recomputed from its stored nodes: the nodes
/// at `depth` and the leaves above it (`stored` may hold other nodes: interior nodes above
/// `depth` and anything deeper are ignored). Interior nodes are built bottom-up, each from
/// its two children (an absent child is an empty subtree). `Err` names the first
/// inconsistency: a leaf alone beside an empty subtree (the tree lifts such a leaf), or a
/// leaf where the nodes below make an interior node.
pub fn rebuild_upper(
    depth: u16,
    stored: impl IntoIterator<Item = (u16, Hash, Node)>,
) -> Result<HashMap<(u16, Hash), Node>, String> {
    let mut leaves: Vec<Vec<(Hash, Node)>> = vec![Vec::new(); usize::from(depth)];
    let mut level: Vec<(Hash, Node)> = Vec::new();
    for (d, path, node) in stored {
        if d == depth {
            level.push((path, node));
        } else if d < depth && node.is_leaf() {
            leaves[usize::from(d)].push((path, node));
        }
    }
    level.sort_unstable_by_key(|e| e.0);
    let mut out = HashMap::new();
    for d in (0..usize::from(depth)).rev() {
        // `level` holds the nodes of depth d + 1, sorted by path: two siblings are
        // adjacent, the left one (bit d clear) first.
        let mut parents: Vec<(Hash, Node)> = Vec::with_capacity(level.len() / 2 + 1);
        let mut i = 0;
        while i < level.len() {
            let (path, node) = level[i];
            let parent = without_bit(path, d);
            let (left, right) = if has_bit(&path, d) {
                i += 1;
                (Child::Empty, node.child())
            } else if let Some((p2, n2)) = level.get(i + 1)
                && without_bit(*p2, d) == parent
            {
                i += 2;
                (node.child(), n2.child())
            } else {
                i += 1;
                (node.child(), Child::Empty)
            };
            if matches!(
                (left, right),
                (Child::Leaf { .. }, Child::Empty) | (Child::Empty, Child::Leaf { .. })
            ) {
                return Err(format!(
                    "a leaf alone under depth {d} at {}",
                    hex::encode(parent.0)
                ));
            }
            parents.push((parent, Node::Interior { left, right }));
        }
        let mut these = std::mem::take(&mut leaves[d]);
        these.sort_unstable_by_key(|e| e.0);
        let mut merged = Vec::with_capacity(parents.len() + these.len());
        let (mut a, mut b) = (parents.into_iter().peekable(), these.into_iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    return Err(format!(
                        "a leaf at depth {d}, {}, above other nodes",
                        hex::encode(x.0.0)
                    ));
                }
                (Some(x), Some(y)) if x.0 < y.0 => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            merged.extend(next);
        }
        for (path, node) in &merged {
            out.insert((d as u16, *path), *node);
        }
        level = merged;
    }
    Ok(out)
}

fn has_bit(h: &Hash, i: usize) -> bool {
    (h.0[i / 8] >> (7 - i % 8)) & 1 == 1
}

fn without_bit(mut h: Hash, i: usize) -> Hash {
    h.0[i / 8] &= !(0x80 >> (i % 8));
    h
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

    /// Replaces the nodes held by `nodes` (those of the levels held).
    pub fn set_nodes(&mut self, nodes: HashMap<(u16, Hash), Node>) {
        let depth = self.depth;
        self.nodes = nodes;
        self.nodes.retain(|(d, _), _| *d < depth);
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

    /// The upper levels recomputed from the nodes at the boundary and the shallower leaves
    /// are exactly the tree's own, at every boundary depth and tree size; a missing node,
    /// a lone leaf or a leaf above other nodes is found.
    #[test]
    fn the_upper_levels_are_recomputed_from_the_stored_nodes() {
        use crate::state_tree::{MemTree, apply};
        for keys in [0usize, 1, 2, 3, 17, 300] {
            let writes: crate::state::WriteSet = (0..keys)
                .map(|i| (format!("k{i}").into_bytes(), Some(vec![i as u8])))
                .collect();
            let full = apply(&MemTree::new(), 0, &writes).unwrap();
            let norm = |n: &Node| decode_node(&encode_node(n)).unwrap();
            let all: HashMap<(u16, Hash), Node> = full
                .nodes
                .iter()
                .map(|(k, n)| ((k.depth, k.path), norm(n)))
                .collect();
            for depth in [0u16, 1, 2, 5, 9, 18] {
                let stored: Vec<(u16, Hash, Node)> = all
                    .iter()
                    .filter(|((d, _), n)| n.is_leaf() || *d >= depth)
                    .map(|((d, p), n)| (*d, *p, *n))
                    .collect();
                let upper = rebuild_upper(depth, stored.clone()).unwrap();
                let expected: HashMap<(u16, Hash), Node> = all
                    .iter()
                    .filter(|((d, _), _)| *d < depth)
                    .map(|(k, n)| (*k, *n))
                    .collect();
                assert_eq!(upper, expected, "{keys} keys, depth {depth}");
                if depth > 0 && keys > 0 {
                    let root = upper
                        .get(&(0, Hash::ZERO))
                        .copied()
                        .or_else(|| all.get(&(0, Hash::ZERO)).copied())
                        .unwrap();
                    assert_eq!(root.child().hash(), full.root_hash());
                }
                // A stored interior node at the boundary lost: the root changes, or a
                // leaf is left alone.
                if let Some(i) = stored
                    .iter()
                    .position(|(d, _, n)| *d == depth && !n.is_leaf())
                    && depth > 0
                {
                    let mut fewer = stored.clone();
                    fewer.remove(i);
                    match rebuild_upper(depth, fewer) {
                        Err(_) => {}
                        Ok(u) => assert_ne!(
                            u.get(&(0, Hash::ZERO)).map(|n| n.child().hash()),
                            Some(full.root_hash())
                        ),
                    }
                }
            }
        }
        // A leaf alone beside an empty subtree, and a leaf above an interior node.
        let leaf = Node::Leaf {
            key_hash: Hash([0x80; 32]),
            value_hash: Hash([1; 32]),
        };
        let mut p = Hash::ZERO;
        p.0[0] = 0x80;
        assert!(rebuild_upper(1, [(1, p, leaf)]).is_err());
        let interior = Node::Interior {
            left: leaf.child(),
            right: leaf.child(),
        };
        assert!(rebuild_upper(1, [(1, Hash::ZERO, interior), (0, Hash::ZERO, leaf)]).is_err());
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
