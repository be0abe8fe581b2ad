//! The authenticated state tree: a binary sparse Merkle tree over the whole state map,
//! keyed by the hash of the state key, whose root is the header's `state_root` (state
//! format 2). A [`StateProof`] proves a key's value, or its absence, against that root.
//!
//! Every hash of the tree is `blake3("govledger/state-tree/v1" ‖ …)`:
//!
//! * key hash: `H(state key)`; value hash: `H(value bytes)`;
//! * leaf: `H("JMT::LeafNode" ‖ key hash ‖ value hash)`;
//! * interior: `H("JMT::IntrnalNode" ‖ left ‖ right)`;
//! * an empty subtree is the 32 ASCII bytes `SPARSE_MERKLE_PLACEHOLDER_HASH__` (not hashed).
//!
//! The tree is binary, of depth 256 over the key hash's bits (most significant first); a
//! subtree holding one key is that key's leaf and an empty subtree the placeholder. These
//! are the roots and proofs of a Jellyfish Merkle tree (the `jmt` crate) with the same
//! hasher, which the tests use as the reference model; the nodes are stored binary, and a
//! block's writes are applied in one sorted pass that hashes each changed node once (see
//! `docs/state-tree.md` for why not `jmt` itself).
//!
//! Nodes are versioned by block height: a block writes only the nodes on the paths it
//! changed, under its own height, and lists the nodes it made stale. A parent names each
//! child's version, so every read is a point lookup. The store writes a block's nodes in
//! its atomic batch and deletes stale nodes [`STATE_VERSIONS_KEPT`] heights later, so a
//! proof can be made at any height that recent.

use crate::hash::{Hash, hash_parts};
use crate::state::{StateError, WriteSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Domain tag of every hash in the tree.
pub const TREE_TAG: &[u8] = b"govledger/state-tree/v1";
/// The hash of an empty subtree (and the root of an empty state).
pub const EMPTY_SUBTREE: Hash = Hash(*b"SPARSE_MERKLE_PLACEHOLDER_HASH__");
/// Leaf domain separator (the Jellyfish Merkle tree's).
pub const LEAF_TAG: &[u8] = b"JMT::LeafNode";
/// Interior-node domain separator (the Jellyfish Merkle tree's).
pub const INTERIOR_TAG: &[u8] = b"JMT::IntrnalNode";
/// Bound on a proof's siblings: one per bit of the key hash.
pub const PROOF_SIBLINGS_MAX: usize = 256;
/// Heights whose tree a node keeps: nodes made stale at height `h` are deleted once the
/// tip passes `h + STATE_VERSIONS_KEPT`. Proofs can be made at any of the last this many
/// heights.
pub const STATE_VERSIONS_KEPT: u64 = 1_000;

fn tree_hash(parts: &[&[u8]]) -> Hash {
    hash_parts(TREE_TAG, parts)
}

/// The tree's hash of a state key: the path of its leaf.
pub fn key_hash(key: &[u8]) -> Hash {
    tree_hash(&[key])
}

/// The tree's hash of a state value.
pub fn value_hash(value: &[u8]) -> Hash {
    tree_hash(&[value])
}

fn leaf_hash(key_hash: &Hash, value_hash: &Hash) -> Hash {
    tree_hash(&[LEAF_TAG, &key_hash.0, &value_hash.0])
}

fn interior_hash(left: &Hash, right: &Hash) -> Hash {
    tree_hash(&[INTERIOR_TAG, &left.0, &right.0])
}

/// Bit `i` of a hash, most significant bit of byte 0 first.
fn bit(h: &Hash, i: usize) -> bool {
    (h.0[i / 8] >> (7 - i % 8)) & 1 == 1
}

/// `path` with bit `i` set.
fn with_bit(mut path: Hash, i: usize) -> Hash {
    path.0[i / 8] |= 0x80 >> (i % 8);
    path
}

fn common_prefix_bits(a: &Hash, b: &Hash) -> usize {
    for (i, (x, y)) in a.0.iter().zip(b.0.iter()).enumerate() {
        let d = x ^ y;
        if d != 0 {
            return i * 8 + d.leading_zeros() as usize;
        }
    }
    256
}

/// Where a node is stored: the version (height) that wrote it and its position, `depth`
/// bits from the root along `path` (the bits beyond `depth` are zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeKey {
    /// The version that wrote the node.
    pub version: u64,
    /// Its depth (0 is the root).
    pub depth: u16,
    /// The first `depth` bits of every key below it.
    pub path: Hash,
}

impl NodeKey {
    /// The storage key: version (big-endian, so one version's nodes are together), depth
    /// (big-endian u16), then the `ceil(depth / 8)` bytes of the path that hold its bits.
    pub fn storage_key(&self) -> Vec<u8> {
        let n = usize::from(self.depth).div_ceil(8);
        let mut out = Vec::with_capacity(10 + n);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.depth.to_be_bytes());
        out.extend_from_slice(&self.path.0[..n]);
        out
    }
}

/// A parent's reference to a child: its kind, hash, and the version that stored it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Child {
    /// An empty subtree.
    Empty,
    /// A subtree of one key: a leaf node.
    Leaf {
        /// The leaf's hash.
        hash: Hash,
        /// The version that stored it.
        version: u64,
    },
    /// A subtree of two keys or more: an interior node.
    Interior {
        /// The node's hash.
        hash: Hash,
        /// The version that stored it.
        version: u64,
    },
}

impl Child {
    /// The subtree's hash.
    pub fn hash(&self) -> Hash {
        match self {
            Child::Empty => EMPTY_SUBTREE,
            Child::Leaf { hash, .. } | Child::Interior { hash, .. } => *hash,
        }
    }
}

/// A stored node (canonical encoding in the store).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    /// Two subtrees, at least one of them not empty (and not a lone leaf beside an empty
    /// one: that leaf is lifted into this position).
    Interior {
        /// Keys whose bit at this depth is 0.
        left: Child,
        /// Keys whose bit at this depth is 1.
        right: Child,
    },
    /// One key.
    Leaf {
        /// The hash of its state key.
        key_hash: Hash,
        /// The hash of its value.
        value_hash: Hash,
    },
}

impl Node {
    /// A parent's reference to this node (as the store reads it back: version 0).
    pub fn child(&self) -> Child {
        match self {
            Node::Leaf {
                key_hash,
                value_hash,
            } => Child::Leaf {
                hash: leaf_hash(key_hash, value_hash),
                version: 0,
            },
            Node::Interior { left, right } => Child::Interior {
                hash: interior_hash(&left.hash(), &right.hash()),
                version: 0,
            },
        }
    }

    /// Whether it is a leaf.
    pub fn is_leaf(&self) -> bool {
        matches!(self, Node::Leaf { .. })
    }
}

/// Where the tree's nodes are read from: the store, or memory.
pub trait NodeRead {
    /// The node under `key`, if any.
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError>;
    /// The root of `version`, if the tree has that version.
    fn root_of(&self, version: u64) -> Result<Option<Child>, StateError>;
}

impl<T: NodeRead + ?Sized> NodeRead for &T {
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError> {
        (**self).node(key)
    }
    fn root_of(&self, version: u64) -> Result<Option<Child>, StateError> {
        (**self).root_of(version)
    }
}

/// The tree's changes of one block: new nodes and the nodes they made stale.
#[derive(Clone, Debug)]
pub struct TreeUpdate {
    /// The version (block height) written.
    pub version: u64,
    /// The root after the block.
    pub root: Child,
    /// Nodes to write.
    pub nodes: Vec<(NodeKey, Node)>,
    /// Nodes no longer reachable from this version's root.
    pub stale: Vec<NodeKey>,
}

impl TreeUpdate {
    /// The state root after the block.
    pub fn root_hash(&self) -> Hash {
        self.root.hash()
    }
}

fn corrupt(what: String) -> StateError {
    StateError::Storage(format!("state tree: {what}"))
}

/// A subtree during an update: not yet stored where it may still move.
#[derive(Clone, Copy)]
enum Sub {
    Empty,
    /// A leaf whose final position is not known yet (it is lifted while its sibling is
    /// empty).
    Leaf {
        key_hash: Hash,
        value_hash: Hash,
    },
    /// A stored subtree, unchanged or written at this position.
    Stored(Child),
}

impl Sub {
    /// Whether this is `child`, unchanged.
    fn is(&self, child: &Child) -> bool {
        match self {
            Sub::Empty => *child == Child::Empty,
            Sub::Stored(c) => c == child,
            Sub::Leaf { .. } => false,
        }
    }
}

struct Update<'a, R: ?Sized> {
    nodes: &'a R,
    version: u64,
    written: Vec<(NodeKey, Node)>,
    stale: Vec<NodeKey>,
}

impl<R: NodeRead + ?Sized> Update<'_, R> {
    fn read(&self, key: &NodeKey) -> Result<Node, StateError> {
        self.nodes.node(key)?.ok_or_else(|| {
            corrupt(format!(
                "node at version {} depth {} is missing (pruned?)",
                key.version, key.depth
            ))
        })
    }

    fn read_leaf(&self, key: &NodeKey) -> Result<(Hash, Hash), StateError> {
        match self.read(key)? {
            Node::Leaf {
                key_hash,
                value_hash,
            } => Ok((key_hash, value_hash)),
            Node::Interior { .. } => Err(corrupt(format!(
                "an interior node where a leaf is named (version {} depth {})",
                key.version, key.depth
            ))),
        }
    }

    /// Applies `ups` (sorted by key hash, `None` deletes) to the subtree `child` at
    /// `depth`/`path`.
    fn update(
        &mut self,
        child: Child,
        depth: usize,
        path: Hash,
        ups: &[(Hash, Option<Hash>)],
    ) -> Result<Sub, StateError> {
        if ups.is_empty() {
            return Ok(match child {
                Child::Empty => Sub::Empty,
                c => Sub::Stored(c),
            });
        }
        let at = |version| NodeKey {
            version,
            depth: depth as u16,
            path,
        };
        match child {
            Child::Empty => self.build(depth, path, &inserts(ups, None)),
            Child::Leaf { version, .. } => {
                let key = at(version);
                let existing = self.read_leaf(&key)?;
                let set = inserts(ups, Some(existing));
                if set.len() == 1 && set[0] == existing {
                    return Ok(Sub::Stored(child));
                }
                self.stale.push(key);
                self.build(depth, path, &set)
            }
            Child::Interior { version, .. } => {
                let key = at(version);
                let Node::Interior { left, right } = self.read(&key)? else {
                    return Err(corrupt(format!(
                        "a leaf where an interior node is named (version {version} depth {depth})"
                    )));
                };
                if depth >= 256 {
                    return Err(corrupt("an interior node below depth 255".into()));
                }
                let split = ups.partition_point(|u| !bit(&u.0, depth));
                let (lu, ru) = ups.split_at(split);
                let l = self.update(left, depth + 1, path, lu)?;
                let r = self.update(right, depth + 1, with_bit(path, depth), ru)?;
                if l.is(&left) && r.is(&right) {
                    return Ok(Sub::Stored(child));
                }
                self.stale.push(key);
                self.join(depth, path, l, r)
            }
        }
    }

    /// The subtree at `depth`/`path` holding exactly `set` (sorted, distinct keys).
    fn build(&mut self, depth: usize, path: Hash, set: &[(Hash, Hash)]) -> Result<Sub, StateError> {
        match set {
            [] => Ok(Sub::Empty),
            [(k, v)] => Ok(Sub::Leaf {
                key_hash: *k,
                value_hash: *v,
            }),
            _ => {
                if depth >= 256 {
                    return Err(corrupt("two keys with the same hash".into()));
                }
                let split = set.partition_point(|u| !bit(&u.0, depth));
                let (ls, rs) = set.split_at(split);
                let l = self.build(depth + 1, path, ls)?;
                let r = self.build(depth + 1, with_bit(path, depth), rs)?;
                self.join(depth, path, l, r)
            }
        }
    }

    /// The subtree at `depth`/`path` whose halves are `l` and `r`: empty, a lifted leaf,
    /// or an interior node written here.
    fn join(&mut self, depth: usize, path: Hash, l: Sub, r: Sub) -> Result<Sub, StateError> {
        let right_path = with_bit(path, depth);
        match (l, r) {
            (Sub::Empty, Sub::Empty) => Ok(Sub::Empty),
            (leaf @ Sub::Leaf { .. }, Sub::Empty) | (Sub::Empty, leaf @ Sub::Leaf { .. }) => {
                Ok(leaf)
            }
            (Sub::Stored(Child::Leaf { version, .. }), Sub::Empty) => {
                self.lift(version, depth + 1, path)
            }
            (Sub::Empty, Sub::Stored(Child::Leaf { version, .. })) => {
                self.lift(version, depth + 1, right_path)
            }
            (l, r) => {
                let left = self.place(l, depth + 1, path);
                let right = self.place(r, depth + 1, right_path);
                let hash = interior_hash(&left.hash(), &right.hash());
                self.written.push((
                    NodeKey {
                        version: self.version,
                        depth: depth as u16,
                        path,
                    },
                    Node::Interior { left, right },
                ));
                Ok(Sub::Stored(Child::Interior {
                    hash,
                    version: self.version,
                }))
            }
        }
    }

    /// A stored leaf whose sibling became empty: it moves up (read, made stale).
    fn lift(&mut self, version: u64, depth: usize, path: Hash) -> Result<Sub, StateError> {
        let key = NodeKey {
            version,
            depth: depth as u16,
            path,
        };
        let (key_hash, value_hash) = self.read_leaf(&key)?;
        self.stale.push(key);
        Ok(Sub::Leaf {
            key_hash,
            value_hash,
        })
    }

    /// Gives `sub` its final position `depth`/`path`: a pending leaf is written there.
    fn place(&mut self, sub: Sub, depth: usize, path: Hash) -> Child {
        match sub {
            Sub::Empty => Child::Empty,
            Sub::Stored(c) => c,
            Sub::Leaf {
                key_hash,
                value_hash,
            } => {
                self.written.push((
                    NodeKey {
                        version: self.version,
                        depth: depth as u16,
                        path,
                    },
                    Node::Leaf {
                        key_hash,
                        value_hash,
                    },
                ));
                Child::Leaf {
                    hash: leaf_hash(&key_hash, &value_hash),
                    version: self.version,
                }
            }
        }
    }
}

/// The keys that remain in a subtree: `existing` (unless `ups` deletes or replaces it)
/// and the inserts of `ups`, sorted by key hash.
fn inserts(ups: &[(Hash, Option<Hash>)], existing: Option<(Hash, Hash)>) -> Vec<(Hash, Hash)> {
    let mut set: Vec<(Hash, Hash)> = ups.iter().filter_map(|(k, v)| v.map(|v| (*k, v))).collect();
    if let Some((ek, ev)) = existing
        && ups.binary_search_by(|u| u.0.cmp(&ek)).is_err()
    {
        let at = set.partition_point(|u| u.0 < ek);
        set.insert(at, (ek, ev));
    }
    set
}

/// Applies a block's writes to the tree at `version` (the block's height), on top of the
/// tree at `version - 1` (nothing before version 0, the genesis state).
pub fn apply<R: NodeRead + ?Sized>(
    nodes: &R,
    version: u64,
    writes: &WriteSet,
) -> Result<TreeUpdate, StateError> {
    let base = match version.checked_sub(1) {
        None => Child::Empty,
        Some(prev) => nodes
            .root_of(prev)?
            .ok_or_else(|| corrupt(format!("no root at version {prev}")))?,
    };
    let mut ups: Vec<(Hash, Option<Hash>)> = writes
        .iter()
        .map(|(k, v)| (key_hash(k), v.as_deref().map(value_hash)))
        .collect();
    ups.sort_unstable_by_key(|u| u.0);
    if ups.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(corrupt("two state keys with the same hash".into()));
    }
    let mut u = Update {
        nodes,
        version,
        written: Vec::new(),
        stale: Vec::new(),
    };
    let sub = u.update(base, 0, Hash::ZERO, &ups)?;
    let root = u.place(sub, 0, Hash::ZERO);
    Ok(TreeUpdate {
        version,
        root,
        nodes: u.written,
        stale: u.stale,
    })
}

/// The root of the tree at `version`, if the tree has it.
pub fn root<R: NodeRead + ?Sized>(nodes: &R, version: u64) -> Result<Option<Hash>, StateError> {
    Ok(nodes.root_of(version)?.map(|c| c.hash()))
}

/// Proves the value of `key` at `version`: `value` is the key's value in the state map at
/// that version (`None` if absent). Fails if the tree disagrees with it (a corrupt store).
pub fn prove<R: NodeRead + ?Sized>(
    nodes: &R,
    version: u64,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<StateProof, StateError> {
    let kh = key_hash(key);
    let mut child = nodes
        .root_of(version)?
        .ok_or_else(|| corrupt(format!("no root at version {version} (pruned?)")))?;
    let mut siblings = Vec::new();
    let mut path = Hash::ZERO;
    let mut depth = 0usize;
    let leaf = loop {
        let at = |version| NodeKey {
            version,
            depth: depth as u16,
            path,
        };
        match child {
            Child::Empty => break None,
            Child::Leaf { version, .. } => {
                let key = at(version);
                match nodes.node(&key)? {
                    Some(Node::Leaf {
                        key_hash,
                        value_hash,
                    }) => {
                        break Some(ProofLeaf {
                            key_hash,
                            value_hash,
                        });
                    }
                    _ => return Err(corrupt(format!("leaf missing at depth {depth}"))),
                }
            }
            Child::Interior { version, .. } => {
                let key = at(version);
                let Some(Node::Interior { left, right }) = nodes.node(&key)? else {
                    return Err(corrupt(format!("interior node missing at depth {depth}")));
                };
                if depth >= 256 {
                    return Err(corrupt("an interior node below depth 255".into()));
                }
                if bit(&kh, depth) {
                    siblings.push(left.hash());
                    child = right;
                    path = with_bit(path, depth);
                } else {
                    siblings.push(right.hash());
                    child = left;
                }
                depth += 1;
            }
        }
    };
    siblings.reverse();
    let agrees = match (value, leaf) {
        (Some(v), Some(l)) => l.key_hash == kh && l.value_hash == value_hash(v),
        (Some(_), None) => false,
        (None, Some(l)) => l.key_hash != kh,
        (None, None) => true,
    };
    if !agrees {
        return Err(corrupt(format!(
            "the tree and the state map disagree on key {} at version {version}",
            crate::bytes::encode_hex(key)
        )));
    }
    Ok(StateProof { leaf, siblings })
}

/// The leaf a proof ends at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofLeaf {
    /// The hash of the leaf's state key.
    pub key_hash: Hash,
    /// The hash of its value.
    pub value_hash: Hash,
}

/// A proof of a key's value, or of its absence, against a state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateProof {
    /// The leaf on the key's path: the key's own (presence), another key's that is alone
    /// where the key would be (absence), or none (absence: an empty subtree).
    pub leaf: Option<ProofLeaf>,
    /// Sibling hashes from the leaf's level up to the root's children (bottom first).
    pub siblings: Vec<Hash>,
}

/// Why a state proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateProofError {
    /// More siblings than a 256-bit key has bits.
    #[error("the proof has {0} siblings; at most {PROOF_SIBLINGS_MAX} are possible")]
    TooManySiblings(usize),
    /// A value was claimed, but the proof shows no leaf for the key.
    #[error("the proof shows the key absent, but a value was claimed")]
    ClaimedPresentButAbsent,
    /// A value was claimed, but the proof's leaf is another key's.
    #[error("the proof's leaf is another key's")]
    LeafOfAnotherKey,
    /// The proof's leaf commits to another value.
    #[error("the proof's leaf holds another value")]
    ValueMismatch,
    /// Absence was claimed, but the proof's leaf is the key's own.
    #[error("the proof shows the key present, but it was claimed absent")]
    ClaimedAbsentButPresent,
    /// The other key's leaf is not where the key would be.
    #[error("the proof's leaf is not on the key's path")]
    LeafOffPath,
    /// The hashes lead to another root.
    #[error("the proof leads to root {computed}, not {expected}")]
    RootMismatch {
        /// The root computed from the proof.
        computed: Hash,
        /// The root it should reach.
        expected: Hash,
    },
}

impl StateProof {
    /// Checks that, in the tree with root `root`, `key` holds `value` (`None`: is absent).
    pub fn verify(
        &self,
        root: &Hash,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateProofError> {
        let n = self.siblings.len();
        if n > PROOF_SIBLINGS_MAX {
            return Err(StateProofError::TooManySiblings(n));
        }
        let kh = key_hash(key);
        match (value, &self.leaf) {
            (Some(_), None) => return Err(StateProofError::ClaimedPresentButAbsent),
            (Some(v), Some(leaf)) => {
                if leaf.key_hash != kh {
                    return Err(StateProofError::LeafOfAnotherKey);
                }
                if leaf.value_hash != value_hash(v) {
                    return Err(StateProofError::ValueMismatch);
                }
            }
            (None, Some(leaf)) => {
                if leaf.key_hash == kh {
                    return Err(StateProofError::ClaimedAbsentButPresent);
                }
                if common_prefix_bits(&leaf.key_hash, &kh) < n {
                    return Err(StateProofError::LeafOffPath);
                }
            }
            (None, None) => {}
        }
        let mut h = self
            .leaf
            .map_or(EMPTY_SUBTREE, |l| leaf_hash(&l.key_hash, &l.value_hash));
        // siblings[0] is at depth n (the leaf's level), siblings[n-1] at depth 1.
        for (i, sibling) in self.siblings.iter().enumerate() {
            let depth = n - 1 - i;
            h = if bit(&kh, depth) {
                interior_hash(sibling, &h)
            } else {
                interior_hash(&h, sibling)
            };
        }
        if h != *root {
            return Err(StateProofError::RootMismatch {
                computed: h,
                expected: *root,
            });
        }
        Ok(())
    }
}

/// An in-memory node store: for tests, the auditor's replay and builds without RocksDB.
#[derive(Clone, Debug, Default)]
pub struct MemTree {
    nodes: BTreeMap<NodeKey, Node>,
    roots: BTreeMap<u64, Child>,
    /// Stale nodes, by the version that made them stale.
    stale: BTreeMap<u64, Vec<NodeKey>>,
}

impl MemTree {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a block's update, and prunes what fell out of the last `versions_kept`
    /// versions (`None`: keeps every version).
    pub fn commit(&mut self, update: TreeUpdate, versions_kept: Option<u64>) {
        self.nodes.extend(update.nodes);
        self.roots.insert(update.version, update.root);
        if !update.stale.is_empty() {
            self.stale.insert(update.version, update.stale);
        }
        if let Some(kept) = versions_kept {
            // Nodes made stale at or before `floor` are reachable only from roots before it.
            let floor = update.version.saturating_sub(kept);
            while let Some(entry) = self.stale.first_entry() {
                if *entry.key() > floor {
                    break;
                }
                for k in entry.remove() {
                    self.nodes.remove(&k);
                }
            }
            while let Some(entry) = self.roots.first_entry() {
                if *entry.key() >= floor {
                    break;
                }
                entry.remove();
            }
        }
    }

    /// Nodes held.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is held.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl NodeRead for MemTree {
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError> {
        Ok(self.nodes.get(key).copied())
    }

    fn root_of(&self, version: u64) -> Result<Option<Child>, StateError> {
        Ok(self.roots.get(&version).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn writes(pairs: &[(&[u8], Option<&[u8]>)]) -> WriteSet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.map(|v| v.to_vec())))
            .collect()
    }

    /// The root and the state map after each version.
    type Versions = Vec<(Hash, BTreeMap<Vec<u8>, Vec<u8>>)>;

    fn commit_all(blocks: &[WriteSet]) -> (MemTree, Versions) {
        let mut tree = MemTree::new();
        let mut map = BTreeMap::new();
        let mut out = Vec::new();
        for (v, w) in blocks.iter().enumerate() {
            let u = apply(&tree, v as u64, w).expect("apply");
            for (k, val) in w {
                match val {
                    Some(val) => map.insert(k.clone(), val.clone()),
                    None => map.remove(k),
                };
            }
            let r = u.root_hash();
            tree.commit(u, None);
            assert_eq!(root(&tree, v as u64).unwrap(), Some(r));
            out.push((r, map.clone()));
        }
        (tree, out)
    }

    #[test]
    fn the_empty_state_has_the_placeholder_root_and_proves_absence() {
        let (tree, roots) = commit_all(&[WriteSet::new()]);
        assert_eq!(roots[0].0, EMPTY_SUBTREE);
        let p = prove(&tree, 0, b"k", None).unwrap();
        assert_eq!(p.leaf, None);
        assert!(p.siblings.is_empty());
        p.verify(&EMPTY_SUBTREE, b"k", None).unwrap();
        assert_eq!(
            p.verify(&EMPTY_SUBTREE, b"k", Some(b"v")),
            Err(StateProofError::ClaimedPresentButAbsent)
        );
    }

    #[test]
    fn presence_and_absence_are_proven_at_every_version() {
        let blocks = vec![
            writes(&[(b"a", Some(b"1")), (b"b", Some(b"2"))]),
            writes(&[(b"c", Some(b"3"))]),
            writes(&[]),
            writes(&[(b"a", None), (b"b", Some(b"22"))]),
            writes(&[(b"b", None), (b"c", None)]),
        ];
        let (tree, states) = commit_all(&blocks);
        for (v, (root, map)) in states.iter().enumerate() {
            for key in [&b"a"[..], b"b", b"c", b"d", b""] {
                let value = map.get(key).map(|v| v.as_slice());
                let p = prove(&tree, v as u64, key, value).unwrap();
                p.verify(root, key, value).unwrap();
                // Any other claim is refused.
                let lie = match value {
                    Some(_) => None,
                    None => Some(&b"x"[..]),
                };
                assert!(p.verify(root, key, lie).is_err(), "v{v} {key:?}");
                if let Some(v) = value {
                    let mut other = v.to_vec();
                    other.push(0);
                    assert_eq!(
                        p.verify(root, key, Some(&other)),
                        Err(StateProofError::ValueMismatch)
                    );
                }
            }
        }
        // Version 2 wrote nothing: same root as version 1; the last version is empty.
        assert_eq!(states[2].0, states[1].0);
        assert_eq!(states[4].0, EMPTY_SUBTREE);
    }

    #[test]
    fn prove_refuses_a_value_the_tree_does_not_hold() {
        let (tree, _) = commit_all(&[writes(&[(b"a", Some(b"1"))])]);
        assert!(prove(&tree, 0, b"a", Some(b"2")).is_err());
        assert!(prove(&tree, 0, b"a", None).is_err());
        assert!(prove(&tree, 0, b"b", Some(b"1")).is_err());
        assert!(
            prove(&tree, 1, b"a", Some(b"1")).is_err(),
            "no such version"
        );
    }

    #[test]
    fn every_tampered_proof_is_refused() {
        let mut w = WriteSet::new();
        for i in 0u32..200 {
            w.insert(i.to_be_bytes().to_vec(), Some(vec![i as u8; 3]));
        }
        let (tree, states) = commit_all(&[w]);
        let root = states[0].0;
        for key in [7u32.to_be_bytes(), 1000u32.to_be_bytes()] {
            let value = states[0].1.get(&key[..]).cloned();
            let p = prove(&tree, 0, &key, value.as_deref()).unwrap();
            p.verify(&root, &key, value.as_deref()).unwrap();
            for i in 0..p.siblings.len() {
                let mut q = p.clone();
                q.siblings[i].0[5] ^= 1;
                assert!(q.verify(&root, &key, value.as_deref()).is_err());
                let mut q = p.clone();
                q.siblings.remove(i);
                assert!(q.verify(&root, &key, value.as_deref()).is_err());
            }
            let mut q = p.clone();
            q.siblings.push(EMPTY_SUBTREE);
            assert!(q.verify(&root, &key, value.as_deref()).is_err());
            if let Some(leaf) = p.leaf {
                let mut q = p.clone();
                q.leaf = Some(ProofLeaf {
                    value_hash: Hash([9; 32]),
                    ..leaf
                });
                assert!(q.verify(&root, &key, value.as_deref()).is_err());
                let mut q = p.clone();
                q.leaf = None;
                assert!(q.verify(&root, &key, value.as_deref()).is_err());
            }
            let mut q = p.clone();
            q.siblings = vec![Hash::ZERO; PROOF_SIBLINGS_MAX + 1];
            assert_eq!(
                q.verify(&root, &key, value.as_deref()),
                Err(StateProofError::TooManySiblings(PROOF_SIBLINGS_MAX + 1))
            );
        }
    }

    #[test]
    fn pruning_keeps_the_recent_versions_provable() {
        let mut tree = MemTree::new();
        let mut roots = Vec::new();
        let kept = 3;
        for v in 0u64..20 {
            let w = writes(&[(b"counter", Some(&v.to_le_bytes())), (b"fixed", Some(b"x"))]);
            let u = apply(&tree, v, &w).unwrap();
            roots.push(u.root_hash());
            tree.commit(u, Some(kept));
        }
        // A bounded store: the live tree plus `kept` versions of the changed paths.
        assert!(tree.len() < 20, "{} nodes", tree.len());
        for v in 20 - kept..20 {
            let p = prove(&tree, v, b"counter", Some(&v.to_le_bytes())).unwrap();
            p.verify(&roots[v as usize], b"counter", Some(&v.to_le_bytes()))
                .unwrap();
            prove(&tree, v, b"fixed", Some(b"x")).unwrap();
        }
        assert!(prove(&tree, 0, b"fixed", Some(b"x")).is_err(), "pruned");
    }

    #[test]
    fn the_tree_hashes_are_the_documented_ones() {
        // One key: the root is its leaf, H(tag ‖ "JMT::LeafNode" ‖ H(tag ‖ key) ‖ H(tag ‖ value)).
        let (_, states) = commit_all(&[writes(&[(b"key", Some(b"value"))])]);
        let mut h = blake3::Hasher::new();
        h.update(b"govledger/state-tree/v1");
        h.update(b"JMT::LeafNode");
        h.update(
            blake3::Hasher::new()
                .update(b"govledger/state-tree/v1")
                .update(b"key")
                .finalize()
                .as_bytes(),
        );
        h.update(
            blake3::Hasher::new()
                .update(b"govledger/state-tree/v1")
                .update(b"value")
                .finalize()
                .as_bytes(),
        );
        assert_eq!(states[0].0, Hash(*h.finalize().as_bytes()));
    }

    /// The reference model: the `jmt` crate with the same hasher, over memory.
    mod reference {
        use super::super::*;
        use jmt::storage::{LeafNode, Node as JNode, NodeKey as JKey, TreeReader};
        use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, SimpleHasher, Version};

        #[derive(Clone)]
        pub struct TreeHasher(blake3::Hasher);

        impl SimpleHasher for TreeHasher {
            fn new() -> Self {
                let mut h = blake3::Hasher::new();
                h.update(TREE_TAG);
                TreeHasher(h)
            }
            fn update(&mut self, data: &[u8]) {
                self.0.update(data);
            }
            fn finalize(self) -> [u8; 32] {
                *self.0.finalize().as_bytes()
            }
        }

        #[derive(Default)]
        pub struct Jmt {
            nodes: BTreeMap<JKey, JNode>,
            values: BTreeMap<(KeyHash, Version), Option<OwnedValue>>,
        }

        impl TreeReader for Jmt {
            fn get_node_option(&self, k: &JKey) -> anyhow::Result<Option<JNode>> {
                Ok(self.nodes.get(k).cloned())
            }
            fn get_value_option(
                &self,
                max_version: Version,
                key_hash: KeyHash,
            ) -> anyhow::Result<Option<OwnedValue>> {
                Ok(self
                    .values
                    .range((key_hash, 0)..=(key_hash, max_version))
                    .next_back()
                    .and_then(|(_, v)| v.clone()))
            }
            fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(JKey, LeafNode)>> {
                anyhow::bail!("unused")
            }
        }

        /// The serde layout of `jmt::proof::SparseMerkleProof` (its fields are private).
        #[derive(serde::Deserialize)]
        struct JmtProof {
            leaf: Option<JmtLeaf>,
            siblings: Vec<JmtNode>,
            #[allow(dead_code)]
            phantom_hasher: (),
        }
        #[derive(serde::Deserialize)]
        struct JmtLeaf {
            key_hash: [u8; 32],
            value_hash: [u8; 32],
        }
        #[derive(serde::Deserialize)]
        enum JmtNode {
            Null,
            Internal {
                left_child: [u8; 32],
                right_child: [u8; 32],
            },
            Leaf(JmtLeaf),
        }

        impl Jmt {
            /// Applies a block; returns jmt's root.
            pub fn apply(&mut self, version: u64, w: &WriteSet) -> Hash {
                let tree = JellyfishMerkleTree::<_, TreeHasher>::new(&*self);
                let set = w.iter().map(|(k, v)| (KeyHash(key_hash(k).0), v.clone()));
                let (root, batch) = tree.put_value_set(set, version).expect("jmt");
                for (k, n) in batch.node_batch.nodes() {
                    self.nodes.insert(k.clone(), n.clone());
                }
                for ((v, k), val) in batch.node_batch.values() {
                    self.values.insert((*k, *v), val.clone());
                }
                Hash(root.0)
            }

            /// jmt's proof of `key` at `version`, in our form.
            pub fn prove(&self, version: u64, key: &[u8]) -> StateProof {
                let tree = JellyfishMerkleTree::<_, TreeHasher>::new(self);
                let (_, proof) = tree
                    .get_with_proof(KeyHash(key_hash(key).0), version)
                    .expect("jmt proof");
                let bytes = bincode::serde::encode_to_vec(&proof, bincode::config::legacy())
                    .expect("encode");
                let (m, _): (JmtProof, usize) =
                    bincode::serde::decode_from_slice(&bytes, bincode::config::legacy())
                        .expect("jmt proof layout");
                StateProof {
                    leaf: m.leaf.map(|l| ProofLeaf {
                        key_hash: Hash(l.key_hash),
                        value_hash: Hash(l.value_hash),
                    }),
                    siblings: m
                        .siblings
                        .iter()
                        .map(|s| match s {
                            JmtNode::Null => EMPTY_SUBTREE,
                            JmtNode::Internal {
                                left_child,
                                right_child,
                            } => interior_hash(&Hash(*left_child), &Hash(*right_child)),
                            JmtNode::Leaf(l) => leaf_hash(&Hash(l.key_hash), &Hash(l.value_hash)),
                        })
                        .collect(),
                }
            }
        }
    }

    #[test]
    fn an_update_writes_each_changed_node_once_and_stales_what_it_replaced() {
        let mut tree = MemTree::new();
        let mut w = WriteSet::new();
        for i in 0u32..1000 {
            w.insert(i.to_be_bytes().to_vec(), Some(vec![1]));
        }
        let u = apply(&tree, 0, &w).unwrap();
        // 1,000 leaves, and one interior node per prefix that two keys or more share.
        // (Two keys share a prefix exactly when two neighbours in key-hash order do.)
        let mut hashes: Vec<Hash> = w.keys().map(|k| key_hash(k)).collect();
        hashes.sort();
        let mut shared = std::collections::BTreeSet::new();
        for pair in hashes.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            for depth in 0..common_prefix_bits(a, b) + 1 {
                let mut prefix = *a;
                for bit in depth..256 {
                    prefix.0[bit / 8] &= !(0x80 >> (bit % 8));
                }
                shared.insert((depth, prefix));
            }
        }
        assert_eq!(u.nodes.len(), 1000 + shared.len());
        assert!(u.stale.is_empty());
        tree.commit(u, None);
        // Changing one value rewrites its leaf and the interior nodes above it only.
        let mut one = WriteSet::new();
        one.insert(7u32.to_be_bytes().to_vec(), Some(vec![2]));
        let u = apply(&tree, 1, &one).unwrap();
        let p = prove(&tree, 0, &7u32.to_be_bytes(), Some(&[1])).unwrap();
        assert_eq!(u.nodes.len(), p.siblings.len() + 1);
        assert_eq!(u.stale.len(), p.siblings.len() + 1);
        tree.commit(u, None);
        // Deleting an absent key, or writing a value unchanged, changes nothing.
        let mut noop = WriteSet::new();
        noop.insert(b"absent".to_vec(), None);
        noop.insert(8u32.to_be_bytes().to_vec(), Some(vec![1]));
        let u = apply(&tree, 2, &noop).unwrap();
        assert!(u.nodes.is_empty() && u.stale.is_empty());
        assert_eq!(Some(u.root_hash()), root(&tree, 1).unwrap());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random blocks of inserts, updates and deletes: the root equals `jmt`'s at every
        /// version, every key's proof is `jmt`'s proof and verifies, and the root depends
        /// only on the resulting map.
        #[test]
        fn roots_and_proofs_are_those_of_jmt(
            blocks in prop::collection::vec(
                prop::collection::btree_map(
                    0u8..40,
                    prop::option::of(prop::collection::vec(any::<u8>(), 0..6)),
                    0..12,
                ),
                1..8,
            )
        ) {
            let blocks: Vec<WriteSet> = blocks
                .into_iter()
                .map(|b| b.into_iter().map(|(k, v)| (vec![k], v)).collect())
                .collect();
            let (tree, states) = commit_all(&blocks);
            let mut jmt = reference::Jmt::default();
            for (v, (root, map)) in states.iter().enumerate() {
                prop_assert_eq!(jmt.apply(v as u64, &blocks[v]), *root, "root at version {}", v);
                for k in 0u8..42 {
                    let key = [k];
                    let value = map.get(&key[..]).map(|v| v.as_slice());
                    let p = prove(&tree, v as u64, &key, value).unwrap();
                    prop_assert!(p.verify(root, &key, value).is_ok());
                    prop_assert_eq!(&p, &jmt.prove(v as u64, &key), "proof of {} at {}", k, v);
                }
                let fresh: WriteSet = map
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect();
                let u = apply(&MemTree::new(), 0, &fresh).unwrap();
                prop_assert_eq!(u.root_hash(), *root);
            }
        }

        /// Pruning never breaks a kept version, whatever the history.
        #[test]
        fn pruned_stores_prove_every_kept_version(
            blocks in prop::collection::vec(
                prop::collection::btree_map(0u8..24, prop::option::of(any::<u8>()), 0..8),
                1..16,
            ),
            kept in 1u64..4,
        ) {
            let mut tree = MemTree::new();
            let mut map: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut history = Vec::new();
            for (v, b) in blocks.iter().enumerate() {
                let w: WriteSet = b.iter().map(|(k, x)| (vec![*k], x.map(|x| vec![x]))).collect();
                for (k, x) in &w {
                    match x {
                        Some(x) => map.insert(k.clone(), x.clone()),
                        None => map.remove(k),
                    };
                }
                let u = apply(&tree, v as u64, &w).unwrap();
                history.push((u.root_hash(), map.clone()));
                tree.commit(u, Some(kept));
            }
            let last = blocks.len() as u64 - 1;
            for v in last.saturating_sub(kept)..=last {
                let (root, map) = &history[v as usize];
                for k in 0u8..26 {
                    let value = map.get(&vec![k]).map(|x| x.as_slice());
                    let p = prove(&tree, v, &[k], value).unwrap();
                    prop_assert!(p.verify(root, &[k], value).is_ok());
                }
            }
        }
    }
}
