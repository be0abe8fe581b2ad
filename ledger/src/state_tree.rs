//! The authenticated state tree: a Jellyfish Merkle tree (the `jmt` crate, as Diem, Aptos
//! and Penumbra run it) over the whole state map, keyed by the hash of the state key. Its
//! root is the header's `state_root` (state format 2); a [`StateProof`] proves a key's
//! value, or its absence, against that root.
//!
//! Every hash of the tree is `blake3("govledger/state-tree/v1" ‖ …)`:
//!
//! * key hash: `H(state key)`; value hash: `H(value bytes)`;
//! * leaf: `H("JMT::LeafNode" ‖ key hash ‖ value hash)`;
//! * interior: `H("JMT::IntrnalNode" ‖ left ‖ right)`;
//! * an empty subtree is the 32 ASCII bytes `SPARSE_MERKLE_PLACEHOLDER_HASH__` (not hashed).
//!
//! The tree is a binary tree of depth 256 over the key hash's bits (most significant
//! first), in which a subtree holding one key is replaced by that key's leaf and an empty
//! subtree by the placeholder. A proof is the leaf found on the key's path (the key's own,
//! another key's alone in the subtree the key would be in, or none) and the sibling hashes
//! from that leaf's level up to the root. `docs/proof-format.md` gives the verification
//! step by step; [`StateProof::verify`] is that text as code, and is tested against the
//! `jmt` crate's own verifier.
//!
//! Nodes are versioned by block height: a block writes only the nodes on the paths it
//! changed, under its own height, and lists the nodes it made stale. The store writes both
//! in the block's atomic batch and prunes stale nodes after [`STATE_VERSIONS_KEPT`]
//! heights, so proofs can be made at every height that recent.

use crate::hash::Hash;
use crate::state::{StateError, WriteSet};
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, SimpleHasher, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Domain tag of every hash in the tree.
pub const TREE_TAG: &[u8] = b"govledger/state-tree/v1";
/// The hash of an empty subtree (and the root of an empty state).
pub const EMPTY_SUBTREE: Hash = Hash(*b"SPARSE_MERKLE_PLACEHOLDER_HASH__");
/// Leaf domain separator (the `jmt` crate's).
pub const LEAF_TAG: &[u8] = b"JMT::LeafNode";
/// Interior-node domain separator (the `jmt` crate's).
pub const INTERIOR_TAG: &[u8] = b"JMT::IntrnalNode";
/// Bound on a proof's siblings: one per bit of the key hash.
pub const PROOF_SIBLINGS_MAX: usize = 256;
/// Heights whose tree a node keeps: nodes made stale at height `h` are deleted once the
/// tip passes `h + STATE_VERSIONS_KEPT`. Proofs can be made at any of the last this many
/// heights; older ones need an archive node (`--state-versions all`).
pub const STATE_VERSIONS_KEPT: u64 = 1_000;

/// The tree's hasher: blake3 with the [`TREE_TAG`] prefix.
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

fn tree_hash(parts: &[&[u8]]) -> Hash {
    let mut h = TreeHasher::new();
    for p in parts {
        h.update(p);
    }
    Hash(h.finalize())
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

fn common_prefix_bits(a: &Hash, b: &Hash) -> usize {
    for (i, (x, y)) in a.0.iter().zip(b.0.iter()).enumerate() {
        let d = x ^ y;
        if d != 0 {
            return i * 8 + d.leading_zeros() as usize;
        }
    }
    256
}

/// The storage key of a tree node: its version (big-endian, so a version's nodes are
/// together) then the node key's canonical borsh bytes.
pub fn node_storage_key(key: &NodeKey) -> Vec<u8> {
    let mut out = key.version().to_be_bytes().to_vec();
    // borsh of a NodeKey is infallible into a Vec.
    out.extend(borsh::to_vec(key).unwrap_or_default());
    out
}

/// Encodes a node for storage (the `jmt` crate's borsh form).
pub fn encode_node(node: &Node) -> Vec<u8> {
    borsh::to_vec(node).unwrap_or_default()
}

/// Decodes a stored node.
pub fn decode_node(key: &[u8], bytes: &[u8]) -> Result<Node, StateError> {
    borsh::from_slice(bytes).map_err(|e| {
        StateError::Storage(format!(
            "state tree node {} does not decode: {e}",
            crate::bytes::encode_hex(key)
        ))
    })
}

/// Where the tree's nodes are read from: the store, or memory.
pub trait NodeRead {
    /// The node under `key`, if any.
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError>;
}

impl<T: NodeRead + ?Sized> NodeRead for &T {
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError> {
        (**self).node(key)
    }
}

/// The tree's changes of one block: new nodes and the nodes they made stale.
#[derive(Clone, Debug)]
pub struct TreeUpdate {
    /// The version (block height) written.
    pub version: u64,
    /// The root after the block.
    pub root: Hash,
    /// Nodes to write.
    pub nodes: Vec<(NodeKey, Node)>,
    /// Nodes no longer reachable from this version's root.
    pub stale: Vec<NodeKey>,
}

/// A `jmt` reader over a [`NodeRead`], which can also serve the one value a proof needs
/// (values live in the state map, not in the tree's store).
struct Reader<'a, R: ?Sized> {
    nodes: &'a R,
    value: Option<(KeyHash, &'a [u8])>,
}

impl<R: NodeRead + ?Sized> TreeReader for Reader<'_, R> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.node(node_key)?)
    }

    fn get_value_option(
        &self,
        _max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self
            .value
            .filter(|(k, _)| *k == key_hash)
            .map(|(_, v)| v.to_vec()))
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("the state tree is never restored from a stream of leaves")
    }
}

fn tree_error(e: anyhow::Error) -> StateError {
    match e.downcast::<StateError>() {
        Ok(e) => e,
        Err(e) => StateError::Storage(format!("state tree: {e:#}")),
    }
}

/// Applies a block's writes to the tree at `version` (the block's height), on top of the
/// tree at `version - 1` (nothing before version 0, the genesis state).
pub fn apply<R: NodeRead + ?Sized>(
    nodes: &R,
    version: u64,
    writes: &WriteSet,
) -> Result<TreeUpdate, StateError> {
    let reader = Reader { nodes, value: None };
    let tree = JellyfishMerkleTree::<_, TreeHasher>::new(&reader);
    let set = writes
        .iter()
        .map(|(k, v)| (KeyHash(key_hash(k).0), v.clone()));
    let (root, batch) = tree.put_value_set(set, version).map_err(tree_error)?;
    let nodes = batch
        .node_batch
        .nodes()
        .iter()
        .map(|(k, n)| (k.clone(), n.clone()))
        .collect();
    let stale = batch
        .stale_node_index_batch
        .iter()
        .map(|s| s.node_key.clone())
        .collect();
    Ok(TreeUpdate {
        version,
        root: Hash(root.0),
        nodes,
        stale,
    })
}

/// The root of the tree at `version`, if the tree has it.
pub fn root<R: NodeRead + ?Sized>(nodes: &R, version: u64) -> Result<Option<Hash>, StateError> {
    let reader = Reader { nodes, value: None };
    let tree = JellyfishMerkleTree::<_, TreeHasher>::new(&reader);
    let r = tree.get_root_hash_option(version).map_err(tree_error)?;
    Ok(r.map(|r| Hash(r.0)))
}

/// Proves the value of `key` at `version`: `value` is the key's value in the state map at
/// that version (`None` if absent). Fails if the tree disagrees with it (a corrupt store).
pub fn prove<R: NodeRead + ?Sized>(
    nodes: &R,
    version: u64,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<StateProof, StateError> {
    let kh = KeyHash(key_hash(key).0);
    let reader = Reader {
        nodes,
        value: value.map(|v| (kh, v)),
    };
    let tree = JellyfishMerkleTree::<_, TreeHasher>::new(&reader);
    let (found, proof) = tree.get_with_proof(kh, version).map_err(tree_error)?;
    let mirror: JmtProof = crate::codec::decode(&crate::codec::encode(&proof)).map_err(|e| {
        StateError::Storage(format!("state tree proof has an unexpected form: {e}"))
    })?;
    let proof = StateProof {
        leaf: mirror.leaf.map(|l| ProofLeaf {
            key_hash: Hash(l.key_hash),
            value_hash: Hash(l.value_hash),
        }),
        siblings: mirror.siblings.iter().map(JmtNode::hash).collect(),
    };
    let root = root(nodes, version)?.ok_or_else(|| {
        StateError::Storage(format!("state tree has no root at version {version}"))
    })?;
    if found.as_deref() != value {
        return Err(StateError::Storage(format!(
            "state tree and state map disagree on key {} at version {version}",
            crate::bytes::encode_hex(key)
        )));
    }
    proof.verify(&root, key, value).map_err(|e| {
        StateError::Storage(format!(
            "state tree proof of key {} at version {version} does not verify: {e}",
            crate::bytes::encode_hex(key)
        ))
    })?;
    Ok(proof)
}

/// The serde layout of `jmt::proof::SparseMerkleProof` (its fields are not public): read
/// back through the canonical encoding, and checked against `jmt` by the tests.
#[derive(Serialize, Deserialize)]
struct JmtProof {
    leaf: Option<JmtLeaf>,
    siblings: Vec<JmtNode>,
    phantom_hasher: (),
}

#[derive(Serialize, Deserialize)]
struct JmtLeaf {
    key_hash: [u8; 32],
    value_hash: [u8; 32],
}

#[derive(Serialize, Deserialize)]
enum JmtNode {
    Null,
    Internal {
        left_child: [u8; 32],
        right_child: [u8; 32],
    },
    Leaf(JmtLeaf),
}

impl JmtNode {
    fn hash(&self) -> Hash {
        match self {
            JmtNode::Null => EMPTY_SUBTREE,
            JmtNode::Internal {
                left_child,
                right_child,
            } => interior_hash(&Hash(*left_child), &Hash(*right_child)),
            JmtNode::Leaf(l) => leaf_hash(&Hash(l.key_hash), &Hash(l.value_hash)),
        }
    }
}

/// The leaf a proof ends at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofLeaf {
    /// The hash of the leaf's state key.
    pub key_hash: Hash,
    /// The hash of its value.
    pub value_hash: Hash,
}

/// A proof of a key's value, or of its absence, against a state root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Stale nodes, by the version that made them stale.
    stale: BTreeMap<u64, Vec<NodeKey>>,
}

impl MemTree {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes a block's update, and prunes what fell out of the kept versions.
    pub fn commit(&mut self, update: TreeUpdate, versions_kept: Option<u64>) {
        for (k, n) in update.nodes {
            self.nodes.insert(k, n);
        }
        if !update.stale.is_empty() {
            self.stale.insert(update.version, update.stale);
        }
        if let Some(kept) = versions_kept {
            let floor = update.version.saturating_sub(kept);
            while let Some(entry) = self.stale.first_entry() {
                if *entry.key() > floor {
                    break;
                }
                for k in entry.remove() {
                    self.nodes.remove(&k);
                }
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
        Ok(self.nodes.get(key).cloned())
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

    /// A reference model: the state map after each version.
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
            let r = u.root;
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
            roots.push(u.root);
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Random blocks of inserts, updates and deletes: every key's proof verifies at
        /// every version, agrees with `jmt`'s own verifier, and the root depends only on
        /// the resulting map (not on the order of history).
        #[test]
        fn proofs_match_the_model_and_jmt(
            blocks in prop::collection::vec(
                prop::collection::btree_map(0u8..40, prop::option::of(prop::collection::vec(any::<u8>(), 0..6)), 0..12),
                1..6,
            )
        ) {
            let blocks: Vec<WriteSet> = blocks
                .into_iter()
                .map(|b| b.into_iter().map(|(k, v)| (vec![k], v)).collect())
                .collect();
            let (tree, states) = commit_all(&blocks);
            for (v, (root, map)) in states.iter().enumerate() {
                for k in 0u8..42 {
                    let key = [k];
                    let value = map.get(&key[..]).map(|v| v.as_slice());
                    let p = prove(&tree, v as u64, &key, value).unwrap();
                    prop_assert!(p.verify(root, &key, value).is_ok());
                    // jmt's verifier agrees, on the same proof.
                    let reader = Reader { nodes: &tree, value: value.map(|x| (KeyHash(key_hash(&key).0), x)) };
                    let (_, jp) = JellyfishMerkleTree::<_, TreeHasher>::new(&reader)
                        .get_with_proof(KeyHash(key_hash(&key).0), v as u64).unwrap();
                    prop_assert!(jp.verify(jmt::RootHash(root.0), KeyHash(key_hash(&key).0), value).is_ok());
                }
                // The same map written at once gives the same root.
                let fresh: WriteSet = map.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
                let u = apply(&MemTree::new(), 0, &fresh).unwrap();
                prop_assert_eq!(u.root, *root);
            }
        }
    }
}
