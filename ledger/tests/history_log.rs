//! The history log against a naive, recursive reference implementation of RFC 9162 §2.1
//! (MTH, PATH, PROOF/SUBPROOF and verifiers that follow the recursive definitions), written
//! straight from the RFC text with its own blake3 hashing.
//!
//! Everything is inside `mod history_log` so that `cargo test history_log` selects it.

mod history_log {
    use std::cell::Cell;
    use std::collections::BTreeSet;
    use std::sync::OnceLock;

    use ledger::hash::Hash;
    use ledger::history_log::{
        Frontier, LogError, MemoryLog, NodeId, NodeReader, ProofError, consistency_proof,
        empty_root, inclusion_proof, leaf_hash, merkle_root, node_hash, root_at,
        verify_consistency, verify_inclusion,
    };
    use proptest::prelude::*;

    // ------------------------------------------------------------------------------------
    // The reference: RFC 9162 §2.1 read literally, over an MTH oracle for leaf ranges.
    // ------------------------------------------------------------------------------------

    /// `blake3(0x00 ‖ data)`.
    fn ref_leaf(data: &[u8]) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[0x00]);
        h.update(data);
        Hash(*h.finalize().as_bytes())
    }

    /// `blake3(0x01 ‖ left ‖ right)`.
    fn ref_node(left: &Hash, right: &Hash) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[0x01]);
        h.update(&left.0);
        h.update(&right.0);
        Hash(*h.finalize().as_bytes())
    }

    /// MTH({}) = blake3 of the empty string.
    fn ref_empty() -> Hash {
        Hash(*blake3::hash(b"").as_bytes())
    }

    /// "k is the largest power of two smaller than n" (n > 1).
    fn ref_k(n: u64) -> u64 {
        assert!(n > 1);
        let mut k = 1u64;
        while k < n - k {
            k *= 2;
        }
        k
    }

    /// The list D of a test: MTH of any range `D[start:end]`.
    trait Leaves {
        fn mth(&self, start: u64, end: u64) -> Hash;
    }

    /// MTH over a slice of leaf hashes, by the recursive definition.
    fn ref_mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => ref_empty(),
            1 => d[0],
            n => {
                let k = ref_k(n as u64) as usize;
                ref_node(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
            }
        }
    }

    struct VecLeaves<'a>(&'a [Hash]);

    impl Leaves for VecLeaves<'_> {
        fn mth(&self, start: u64, end: u64) -> Hash {
            ref_mth(&self.0[start as usize..end as usize])
        }
    }

    /// PATH(m, D[start:end]), RFC 9162 §2.1.3.1.
    fn ref_path(m: u64, start: u64, end: u64, d: &dyn Leaves) -> Vec<Hash> {
        let n = end - start;
        if n == 1 {
            return Vec::new();
        }
        let k = ref_k(n);
        if m < k {
            let mut p = ref_path(m, start, start + k, d);
            p.push(d.mth(start + k, end));
            p
        } else {
            let mut p = ref_path(m - k, start + k, end, d);
            p.push(d.mth(start, start + k));
            p
        }
    }

    /// SUBPROOF(m, D[start:end], b), RFC 9162 §2.1.4.1.
    fn ref_subproof(m: u64, start: u64, end: u64, b: bool, d: &dyn Leaves) -> Vec<Hash> {
        let n = end - start;
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![d.mth(start, end)]
            };
        }
        let k = ref_k(n);
        if m <= k {
            let mut p = ref_subproof(m, start, start + k, b, d);
            p.push(d.mth(start + k, end));
            p
        } else {
            let mut p = ref_subproof(m - k, start + k, end, false, d);
            p.push(d.mth(start, start + k));
            p
        }
    }

    /// PROOF(m, D[n]) = SUBPROOF(m, D[n], true), defined for 0 < m < n.
    fn ref_proof(m: u64, n: u64, d: &dyn Leaves) -> Vec<Hash> {
        assert!(0 < m && m < n);
        ref_subproof(m, 0, n, true, d)
    }

    /// Takes the last (top-most) element of a proof that is consumed from the root down.
    fn take_last(proof: &mut &[Hash]) -> Option<Hash> {
        let (last, init) = proof.split_last()?;
        *proof = init;
        Some(*last)
    }

    /// Recomputes MTH(D[n]) from the leaf and PATH(m, D[n]) by following the definition of
    /// PATH from the root down.
    fn ref_path_root(m: u64, n: u64, leaf: &Hash, proof: &mut &[Hash]) -> Option<Hash> {
        if n == 1 {
            return Some(*leaf);
        }
        let k = ref_k(n);
        let sibling = take_last(proof)?;
        if m < k {
            Some(ref_node(&ref_path_root(m, k, leaf, proof)?, &sibling))
        } else {
            Some(ref_node(
                &sibling,
                &ref_path_root(m - k, n - k, leaf, proof)?,
            ))
        }
    }

    /// A verifier built from the recursive definition of PATH (not the RFC's bit algorithm).
    fn ref_verify_inclusion(leaf: &Hash, m: u64, n: u64, proof: &[Hash], root: &Hash) -> bool {
        if m >= n {
            return false;
        }
        let mut rest = proof;
        ref_path_root(m, n, leaf, &mut rest).is_some_and(|r| rest.is_empty() && r == *root)
    }

    /// Recomputes (MTH(D[0:m]) restricted to this subtree, MTH of this subtree) from
    /// SUBPROOF(m, D[n], b), following the definition from the root down.
    fn ref_subproof_roots(
        m: u64,
        n: u64,
        b: bool,
        old_root: &Hash,
        proof: &mut &[Hash],
    ) -> Option<(Hash, Hash)> {
        if m == n {
            if b {
                return Some((*old_root, *old_root));
            }
            let x = take_last(proof)?;
            return Some((x, x));
        }
        let k = ref_k(n);
        let x = take_last(proof)?;
        if m <= k {
            let (old, left) = ref_subproof_roots(m, k, b, old_root, proof)?;
            Some((old, ref_node(&left, &x)))
        } else {
            let (old, right) = ref_subproof_roots(m - k, n - k, false, old_root, proof)?;
            Some((ref_node(&x, &old), ref_node(&x, &right)))
        }
    }

    /// A verifier built from the recursive definition of SUBPROOF, with the same conventions
    /// for m = 0 and m = n as the implementation.
    fn ref_verify_consistency(m: u64, n: u64, old: &Hash, new: &Hash, proof: &[Hash]) -> bool {
        if m > n {
            return false;
        }
        if m == 0 {
            return proof.is_empty() && *old == ref_empty() && (n > 0 || *new == ref_empty());
        }
        if m == n {
            return proof.is_empty() && old == new;
        }
        let mut rest = proof;
        ref_subproof_roots(m, n, true, old, &mut rest)
            .is_some_and(|(o, r)| rest.is_empty() && o == *old && r == *new)
    }

    // ------------------------------------------------------------------------------------
    // Test data.
    // ------------------------------------------------------------------------------------

    /// Distinct leaf hashes: leaf i is `blake3(0x00 ‖ "entry " ‖ i as u64 LE)`.
    fn test_leaf(i: u64) -> Hash {
        let mut data = b"entry ".to_vec();
        data.extend_from_slice(&i.to_le_bytes());
        ref_leaf(&data)
    }

    fn test_leaves(n: u64) -> Vec<Hash> {
        (0..n).map(test_leaf).collect()
    }

    const BIG_SIZE: u64 = 1 << 17;

    /// One log of 2^17 leaves, shared by the property tests, which ask it for past sizes.
    fn big() -> &'static (Vec<Hash>, MemoryLog) {
        static BIG: OnceLock<(Vec<Hash>, MemoryLog)> = OnceLock::new();
        BIG.get_or_init(|| {
            let leaves = test_leaves(BIG_SIZE);
            let log = MemoryLog::from_leaves(leaves.iter().copied());
            (leaves, log)
        })
    }

    /// A log of `size` leaves (any size up to u64::MAX) that are all the same hash except the
    /// one at `mark`. Its nodes are computed on demand from the reference MTH, so proofs at
    /// sizes near 2^63 can be checked against the reference, with a position that matters.
    struct MarkedLog {
        size: u64,
        mark: u64,
        mark_leaf: Hash,
        /// `uniform[l]`: MTH of 2^l plain leaves.
        uniform: Vec<Hash>,
    }

    impl MarkedLog {
        fn new(size: u64, mark: u64) -> Self {
            let mut uniform = vec![test_leaf(u64::MAX)];
            for l in 1..64 {
                let below = uniform[l - 1];
                uniform.push(ref_node(&below, &below));
            }
            Self {
                size,
                mark,
                mark_leaf: test_leaf(7),
                uniform,
            }
        }

        /// MTH of `n` plain leaves.
        fn uniform_mth(&self, n: u64) -> Hash {
            if n == 0 {
                return ref_empty();
            }
            if n.is_power_of_two() {
                return self.uniform[n.trailing_zeros() as usize];
            }
            let k = ref_k(n);
            ref_node(
                &self.uniform[k.trailing_zeros() as usize],
                &self.uniform_mth(n - k),
            )
        }
    }

    impl Leaves for MarkedLog {
        fn mth(&self, start: u64, end: u64) -> Hash {
            if !(start..end).contains(&self.mark) {
                return self.uniform_mth(end - start);
            }
            if end - start == 1 {
                return self.mark_leaf;
            }
            let k = ref_k(end - start);
            ref_node(&self.mth(start, start + k), &self.mth(start + k, end))
        }
    }

    impl NodeReader for MarkedLog {
        fn node(&self, level: u8, index: u64) -> Result<Hash, LogError> {
            match NodeId::new(level, index).leaf_range() {
                Some(r) if r.end <= self.size => Ok(self.mth(r.start, r.end)),
                _ => Err(LogError::MissingNode { level, index }),
            }
        }
    }

    /// Counts the reads of another reader.
    struct Counting<R> {
        inner: R,
        reads: Cell<u64>,
    }

    impl<R: NodeReader> Counting<R> {
        fn new(inner: R) -> Self {
            Self {
                inner,
                reads: Cell::new(0),
            }
        }

        fn take(&self) -> u64 {
            self.reads.replace(0)
        }
    }

    impl<R: NodeReader> NodeReader for Counting<R> {
        fn node(&self, level: u8, index: u64) -> Result<Hash, LogError> {
            self.reads.set(self.reads.get() + 1);
            self.inner.node(level, index)
        }
    }

    /// A store whose every read fails.
    struct Broken;

    impl NodeReader for Broken {
        fn node(&self, _: u8, _: u64) -> Result<Hash, LogError> {
            Err(LogError::Storage("disk unplugged".into()))
        }
    }

    /// Number of bits of `n`: ⌈log2(n + 1)⌉.
    fn bits(n: u64) -> u64 {
        u64::from(64 - n.leading_zeros())
    }

    fn flip(h: &Hash, bit: usize) -> Hash {
        let mut out = *h;
        out.0[bit / 8] ^= 1 << (bit % 8);
        out
    }

    // ------------------------------------------------------------------------------------
    // Hashing primitives and node ids.
    // ------------------------------------------------------------------------------------

    #[test]
    fn primitives_match_the_rfc_prefixes() {
        assert_eq!(leaf_hash(b"abc"), ref_leaf(b"abc"));
        let (a, b) = (test_leaf(1), test_leaf(2));
        assert_eq!(node_hash(&a, &b), ref_node(&a, &b));
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
        assert_eq!(empty_root(), ref_empty());
        assert_eq!(
            empty_root().to_hex(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }

    #[test]
    fn node_keys_are_level_then_big_endian_index() {
        let id = NodeId::new(3, 0x0102_0304_0506_0708);
        assert_eq!(id.key(), [3, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(NodeId::from_key(&id.key()), Some(id));
        assert_eq!(NodeId::from_key(&[3, 1, 2]), None);
        assert_eq!(NodeId::from_key(&[64, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(NodeId::from_key(&[0; 10]), None);
        // Byte order of keys = (level, index) order, as a RocksDB iterator sees them.
        let ids = [
            NodeId::new(0, 0),
            NodeId::new(0, 1),
            NodeId::new(0, 256),
            NodeId::new(0, u64::MAX),
            NodeId::new(1, 0),
            NodeId::new(63, 0),
        ];
        for w in ids.windows(2) {
            assert!(w[0] < w[1] && w[0].key() < w[1].key());
        }
        assert_eq!(NodeId::new(2, 3).leaf_range(), Some(12..16));
        assert_eq!(NodeId::new(63, 1).leaf_range(), None);
        assert_eq!(NodeId::new(64, 0).leaf_range(), None);
    }

    // ------------------------------------------------------------------------------------
    // Exhaustive checks for every size up to 64.
    // ------------------------------------------------------------------------------------

    const SMALL: u64 = 64;

    #[test]
    fn roots_at_every_size_up_to_64_match_the_reference() {
        let leaves = test_leaves(SMALL);
        let full = MemoryLog::from_leaves(leaves.iter().copied());
        let mut log = MemoryLog::new();
        for n in 0..=SMALL {
            let expected = ref_mth(&leaves[..n as usize]);
            assert_eq!(log.size(), n);
            assert_eq!(log.root(), expected, "root of size {n}");
            assert_eq!(log.frontier().root(), expected);
            assert_eq!(merkle_root(&leaves[..n as usize]), expected);
            // From the stored nodes of the log as it is now and of the full log.
            for k in 0..=n {
                assert_eq!(log.root_at(k), Ok(ref_mth(&leaves[..k as usize])));
            }
            assert_eq!(root_at(n, &full), Ok(expected));
            if n < SMALL {
                assert_eq!(log.push(leaves[n as usize]), n);
            }
        }
        assert_eq!(log.leaf(5), Some(leaves[5]));
        assert_eq!(log.leaf(SMALL), None);
    }

    #[test]
    fn appends_emit_every_complete_node_exactly_once_when_it_completes() {
        let leaves = test_leaves(SMALL);
        let mut frontier = Frontier::empty();
        let mut emitted = BTreeSet::new();
        let mut out = Vec::new();
        for (j, leaf) in leaves.iter().enumerate() {
            out.clear();
            frontier.append(*leaf, &mut out);
            let size = j as u64 + 1;
            assert_eq!(frontier.size(), size);
            assert_eq!(out[0], (NodeId::new(0, j as u64), *leaf));
            for (id, hash) in &out {
                let range = id.leaf_range().unwrap();
                assert_eq!(range.end, size, "{id:?} emitted at size {size}");
                assert_eq!(
                    *hash,
                    ref_mth(&leaves[range.start as usize..range.end as usize])
                );
                assert!(emitted.insert(*id), "{id:?} emitted twice");
            }
            // Lowest level first.
            assert!(out.windows(2).all(|w| w[0].0.level + 1 == w[1].0.level));
            // Every node whose leaves all exist has been emitted, and nothing else.
            let mut expected = BTreeSet::new();
            for level in 0..7u8 {
                for index in 0..(size >> level) {
                    expected.insert(NodeId::new(level, index));
                }
            }
            assert_eq!(emitted, expected);
        }
    }

    #[test]
    fn frontier_load_equals_appended_frontier_at_every_size_up_to_64() {
        let leaves = test_leaves(SMALL);
        let full = MemoryLog::from_leaves(leaves.iter().copied());
        let mut appended = Frontier::empty();
        let mut out = Vec::new();
        for n in 0..=SMALL {
            let counting = Counting::new(&full);
            let loaded = Frontier::load(n, &counting).unwrap();
            assert_eq!(counting.take(), u64::from(n.count_ones()));
            assert_eq!(loaded, appended, "size {n}");
            assert_eq!(loaded.root(), ref_mth(&leaves[..n as usize]));
            let peaks: Vec<_> = loaded.peaks().collect();
            assert_eq!(peaks.len(), n.count_ones() as usize);
            let mut start = 0;
            for (id, hash) in peaks {
                let range = id.leaf_range().unwrap();
                assert_eq!(range.start, start);
                assert_eq!(
                    hash,
                    ref_mth(&leaves[range.start as usize..range.end as usize])
                );
                start = range.end;
            }
            assert_eq!(start, n);
            if n < SMALL {
                appended.append(leaves[n as usize], &mut out);
            }
        }
        // Appending to a loaded frontier continues the log.
        let mut loaded = Frontier::load(37, &full).unwrap();
        for leaf in &leaves[37..] {
            loaded.append(*leaf, &mut out);
        }
        assert_eq!(loaded, *full.frontier());
    }

    #[test]
    fn every_inclusion_proof_up_to_size_64_matches_the_reference_and_verifies() {
        let leaves = test_leaves(SMALL);
        let log = MemoryLog::from_leaves(leaves.iter().copied());
        let d = VecLeaves(&leaves);
        for n in 1..=SMALL {
            let root = ref_mth(&leaves[..n as usize]);
            for i in 0..n {
                let counting = Counting::new(&log);
                let proof = inclusion_proof(i, n, &counting).unwrap();
                assert!(counting.take() <= 2 * bits(n), "reads for ({i}, {n})");
                assert_eq!(proof, ref_path(i, 0, n, &d), "PATH({i}, D[{n}])");
                assert_eq!(
                    verify_inclusion(&leaves[i as usize], i, n, &proof, &root),
                    Ok(())
                );
                assert!(ref_verify_inclusion(
                    &leaves[i as usize],
                    i,
                    n,
                    &proof,
                    &root
                ));
            }
        }
    }

    #[test]
    fn every_consistency_proof_up_to_size_64_matches_the_reference_and_verifies() {
        let leaves = test_leaves(SMALL);
        let log = MemoryLog::from_leaves(leaves.iter().copied());
        let d = VecLeaves(&leaves);
        for n in 0..=SMALL {
            let new_root = ref_mth(&leaves[..n as usize]);
            for m in 0..=n {
                let old_root = ref_mth(&leaves[..m as usize]);
                let counting = Counting::new(&log);
                let proof = consistency_proof(m, n, &counting).unwrap();
                assert!(counting.take() <= 2 * bits(n), "reads for ({m}, {n})");
                if 0 < m && m < n {
                    assert_eq!(proof, ref_proof(m, n, &d), "PROOF({m}, D[{n}])");
                } else {
                    assert!(proof.is_empty());
                }
                assert_eq!(
                    verify_consistency(m, n, &old_root, &new_root, &proof),
                    Ok(()),
                    "({m}, {n})"
                );
                assert!(ref_verify_consistency(m, n, &old_root, &new_root, &proof));
            }
        }
    }

    /// The RFC's bit-walking verifiers accept exactly what the recursive definitions accept,
    /// for the right and for every wrong index and size: a path does not authenticate the
    /// size (index 0 has the same path shape in sizes 3 and 4), which is why the size is
    /// signed in the block header. A wrong index in the right size is always refused.
    #[test]
    fn verifiers_accept_exactly_what_the_recursive_definitions_accept() {
        const N: u64 = 32;
        const CLAIMED: u64 = 36;
        let leaves = test_leaves(N);
        let log = MemoryLog::from_leaves(leaves.iter().copied());
        let mut wrong_size_accepted = 0;
        for n in 1..=N {
            let root = ref_mth(&leaves[..n as usize]);
            for i in 0..n {
                let leaf = leaves[i as usize];
                let proof = log.inclusion_proof(i, n).unwrap();
                for claimed_n in 0..=CLAIMED {
                    for claimed_i in 0..=claimed_n {
                        let ok = verify_inclusion(&leaf, claimed_i, claimed_n, &proof, &root);
                        let reference =
                            ref_verify_inclusion(&leaf, claimed_i, claimed_n, &proof, &root);
                        assert_eq!(
                            ok.is_ok(),
                            reference,
                            "({i}, {n}) as ({claimed_i}, {claimed_n})"
                        );
                        if claimed_n == n && claimed_i != i {
                            assert!(ok.is_err());
                        }
                        if ok.is_ok() && claimed_n != n {
                            wrong_size_accepted += 1;
                        }
                    }
                }
            }
        }
        assert!(wrong_size_accepted > 0);
        assert!(
            verify_inclusion(
                &leaves[0],
                0,
                4,
                &log.inclusion_proof(0, 3).unwrap(),
                &log.root_at(3).unwrap()
            )
            .is_ok()
        );

        for n in 0..=N {
            let new_root = ref_mth(&leaves[..n as usize]);
            for m in 0..=n {
                let old_root = ref_mth(&leaves[..m as usize]);
                let proof = log.consistency_proof(m, n).unwrap();
                for claimed_n in 0..=CLAIMED {
                    for claimed_m in 0..=CLAIMED {
                        let ok =
                            verify_consistency(claimed_m, claimed_n, &old_root, &new_root, &proof);
                        let reference = ref_verify_consistency(
                            claimed_m, claimed_n, &old_root, &new_root, &proof,
                        );
                        assert_eq!(
                            ok.is_ok(),
                            reference,
                            "({m}, {n}) as ({claimed_m}, {claimed_n})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn proofs_read_o_log_n_nodes_at_any_size() {
        for shift in 1..64 {
            let sizes = [
                (1u64 << shift) - 1,
                1 << shift,
                (1 << shift) + 1,
                (1 << shift) + (0x5555_5555_5555_5555 >> (64 - shift)),
            ];
            for size in sizes {
                let reader = Counting::new(MarkedLog::new(size, size / 3));
                root_at(size, &reader).unwrap();
                assert!(reader.take() <= bits(size));
                for index in [0, size / 3, size - 1] {
                    inclusion_proof(index, size, &reader).unwrap();
                    assert!(
                        reader.take() <= 2 * bits(size),
                        "inclusion ({index}, {size})"
                    );
                }
                for old in [1, size / 2, size - 1] {
                    consistency_proof(old, size, &reader).unwrap();
                    assert!(
                        reader.take() <= 2 * bits(size),
                        "consistency ({old}, {size})"
                    );
                }
            }
        }
        let reader = Counting::new(MarkedLog::new(u64::MAX, 12345));
        inclusion_proof(u64::MAX - 2, u64::MAX, &reader).unwrap();
        assert!(reader.take() <= 128);
    }

    // ------------------------------------------------------------------------------------
    // Errors, never panics.
    // ------------------------------------------------------------------------------------

    #[test]
    fn bad_arguments_and_missing_nodes_are_errors() {
        let log = MemoryLog::from_leaves(test_leaves(10));
        assert_eq!(
            log.inclusion_proof(0, 0),
            Err(LogError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            log.inclusion_proof(10, 10),
            Err(LogError::IndexOutOfRange {
                index: 10,
                size: 10
            })
        );
        assert_eq!(
            log.inclusion_proof(u64::MAX, 3),
            Err(LogError::IndexOutOfRange {
                index: u64::MAX,
                size: 3
            })
        );
        assert_eq!(
            log.consistency_proof(5, 4),
            Err(LogError::SizesOutOfOrder {
                old_size: 5,
                new_size: 4
            })
        );
        // Sizes beyond the log: the first node the computation needs is missing.
        assert_eq!(
            log.root_at(11),
            Err(LogError::MissingNode {
                level: 0,
                index: 10
            })
        );
        assert_eq!(
            log.root_at(12),
            Err(LogError::MissingNode { level: 2, index: 2 })
        );
        assert_eq!(
            log.inclusion_proof(0, 16),
            Err(LogError::MissingNode { level: 3, index: 1 })
        );
        assert!(matches!(
            log.consistency_proof(3, 11),
            Err(LogError::MissingNode { .. })
        ));
        assert!(matches!(
            Frontier::load(11, &log),
            Err(LogError::MissingNode { .. })
        ));
        assert!(matches!(
            log.root_at(u64::MAX),
            Err(LogError::MissingNode { .. })
        ));
        // Store failures come through unchanged.
        let broken = LogError::Storage("disk unplugged".into());
        assert_eq!(root_at(3, &Broken), Err(broken.clone()));
        assert_eq!(inclusion_proof(1, 3, &Broken), Err(broken.clone()));
        assert_eq!(consistency_proof(1, 3, &Broken), Err(broken.clone()));
        assert_eq!(Frontier::load(3, &Broken), Err(broken.clone()));
        assert_eq!(
            broken.to_string(),
            "history log storage error: disk unplugged"
        );
        // Nothing to read: these need no node.
        assert_eq!(root_at(0, &Broken), Ok(empty_root()));
        assert_eq!(consistency_proof(0, 3, &Broken), Ok(vec![]));
        assert_eq!(consistency_proof(3, 3, &Broken), Ok(vec![]));
        assert_eq!(Frontier::load(0, &Broken), Ok(Frontier::empty()));
        // Through a trait object.
        let dynamic: &dyn NodeReader = &log;
        assert_eq!(root_at(10, dynamic), Ok(log.root()));
    }

    #[test]
    fn verification_reports_what_failed() {
        let leaves = test_leaves(7);
        let log = MemoryLog::from_leaves(leaves.iter().copied());
        let root = log.root();
        let proof = log.inclusion_proof(2, 7).unwrap();
        assert_eq!(
            verify_inclusion(&leaves[2], 7, 7, &proof, &root),
            Err(ProofError::IndexOutOfRange { index: 7, size: 7 })
        );
        assert_eq!(
            verify_inclusion(&leaves[2], 0, 0, &[], &root),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&leaves[2], 2, 7, &proof[..2], &root),
            Err(ProofError::WrongPathLength {
                expected: 3,
                actual: 2
            })
        );
        let mut longer = proof.clone();
        longer.push(root);
        assert_eq!(
            verify_inclusion(&leaves[2], 2, 7, &longer, &root),
            Err(ProofError::WrongPathLength {
                expected: 3,
                actual: 4
            })
        );
        assert!(matches!(
            verify_inclusion(&leaves[3], 2, 7, &proof, &root),
            Err(ProofError::RootMismatch { expected, .. }) if expected == root
        ));
        // A one-leaf log: the leaf is the root and the path is empty.
        assert_eq!(verify_inclusion(&leaves[0], 0, 1, &[], &leaves[0]), Ok(()));

        let old = log.root_at(3).unwrap();
        let cproof = log.consistency_proof(3, 7).unwrap();
        assert_eq!(verify_consistency(3, 7, &old, &root, &cproof), Ok(()));
        assert_eq!(
            verify_consistency(7, 3, &old, &root, &cproof),
            Err(ProofError::SizesOutOfOrder {
                old_size: 7,
                new_size: 3
            })
        );
        assert_eq!(
            verify_consistency(3, 7, &old, &root, &[]),
            Err(ProofError::WrongPathLength {
                expected: 4,
                actual: 0
            })
        );
        assert!(matches!(
            verify_consistency(3, 7, &root, &root, &cproof),
            Err(ProofError::OldRootMismatch { .. })
        ));
        assert!(matches!(
            verify_consistency(3, 7, &old, &old, &cproof),
            Err(ProofError::NewRootMismatch { .. })
        ));
        assert_eq!(verify_consistency(7, 7, &root, &root, &[]), Ok(()));
        assert_eq!(
            verify_consistency(7, 7, &old, &root, &[]),
            Err(ProofError::SameSizeRootsDiffer { size: 7 })
        );
        assert_eq!(
            verify_consistency(7, 7, &root, &root, &cproof[..1]),
            Err(ProofError::WrongPathLength {
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(verify_consistency(0, 7, &empty_root(), &root, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 0, &empty_root(), &empty_root(), &[]),
            Ok(())
        );
        assert!(matches!(
            verify_consistency(0, 7, &old, &root, &[]),
            Err(ProofError::OldRootMismatch { .. })
        ));
        assert!(matches!(
            verify_consistency(0, 0, &empty_root(), &root, &[]),
            Err(ProofError::NewRootMismatch { .. })
        ));
        let message = ProofError::WrongPathLength {
            expected: 3,
            actual: 2,
        }
        .to_string();
        assert_eq!(
            message,
            "the proof has 2 hashes, but the claimed index and sizes need 3"
        );
    }

    // ------------------------------------------------------------------------------------
    // Worked example of docs/history-log.md: leaf i = blake3(0x00 ‖ byte i), sizes up to 8.
    // ------------------------------------------------------------------------------------

    #[test]
    fn documented_test_vectors() {
        let leaves: Vec<Hash> = (0u8..8).map(|i| ref_leaf(&[i])).collect();
        let log = MemoryLog::from_leaves(leaves.iter().copied());
        let hex = |hs: &[Hash]| hs.iter().map(Hash::to_hex).collect::<Vec<_>>();
        assert_eq!(
            hex(&leaves),
            [
                "1ad48f49627079d806b802c74f40c39d55fe1d78b3faf0f8017aec62cec42122",
                "7b7015bb92cf0b318037702a6cdd81dee41224f734684c2c122cd6359cb1ee63",
                "0013f4c84c09ed4f906f561e31fb6cb5336107f6813206a1f8860ab1ad35f2b8",
                "a88740cd9fb41a2cba302d8934e154b9b36e885744e8f9e90b2695f87c889baa",
                "124ff5a14dda3517f4fb2109e61ba1422254dcf64aef1746f9c10bc1e411796f",
                "693ff555e7a8722a3d8df635b599fe9915b2711fd1c6b3af02c17e405c03773f",
                "7b579b27b0d9d914358cdda951844b01393cb94a94dad3de8b45d8d89157316d",
                "b9e2c902602007a58a4bbdafacd9bbaddf3ba2d2d2a0ea9a0d80b6b2db382850",
            ]
        );
        let nodes = [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (3, 0)]
            .map(|(l, i)| log.node(l, i).unwrap().to_hex());
        assert_eq!(
            nodes,
            [
                "a7c40517c3ba6ed1c930a04047fc7d941e0c6c86dff760457784186431014629",
                "4a3da4a12e0b5795f7e288539baae926bd41091a16785b29409bd0030b6393ba",
                "57e3a5dc144f55866b8fef5cb4390c4a5be59e2b73b964a0643ce844fea69fa0",
                "afe5d3d3a7ec43e2a59bc908a308fd0425a8ce4a4716f01d1dfb4dbb30c1c294",
                "1ca3d0af7d87326223a1959c3a557cf4a73eb534e3d1aed29b1e61bcbf22a086",
                "812e40834dd0244935c629a1e20369335276a2ad23ef677808e4af587bd43cae",
                "ff947fdb4d6cc892e6402109c8e1b8be0f50e548d1fff152c9757e50d87ca560",
            ]
        );
        let roots: Vec<String> = (0..=8).map(|n| ref_mth(&leaves[..n]).to_hex()).collect();
        assert_eq!(
            roots,
            [
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
                "1ad48f49627079d806b802c74f40c39d55fe1d78b3faf0f8017aec62cec42122",
                "a7c40517c3ba6ed1c930a04047fc7d941e0c6c86dff760457784186431014629",
                "b8a32224c977fedb0f8860d7bb067da5e88821ebc3a518f29bf21afeee562d43",
                "1ca3d0af7d87326223a1959c3a557cf4a73eb534e3d1aed29b1e61bcbf22a086",
                "667f5c8d18ce7aa303848f8a0c385849aecfcb96b12e3dc8470435cffcfa3e84",
                "b62029ffc66892577f83147b284f54d3009308283c95492b691f5bc50967ccd8",
                "447242b100f0c5b345113b25b9fb2feff7448146255b57736a4c640ce68d1f93",
                "ff947fdb4d6cc892e6402109c8e1b8be0f50e548d1fff152c9757e50d87ca560",
            ]
        );
        // MTH(D[4:7]), the right-edge subtree of size 7 (not a stored node).
        let d4_7 = "0cca304dfafb0609336869fdb2ecaf96a88029d3f36bd17e806cbc559a683730";
        assert_eq!(ref_mth(&leaves[4..7]).to_hex(), d4_7);
        // Inclusion of leaf 2 in size 7: leaf 3, node (1,0), MTH(D[4:7]).
        let inclusion = log.inclusion_proof(2, 7).unwrap();
        assert_eq!(hex(&inclusion), [&leaves[3].to_hex(), &nodes[0], d4_7]);
        let root7 = Hash::from_hex(&roots[7]).unwrap();
        assert_eq!(
            verify_inclusion(&leaves[2], 2, 7, &inclusion, &root7),
            Ok(())
        );
        // Consistency 3 -> 7: leaf 2, leaf 3, node (1,0), MTH(D[4:7]).
        let consistency = log.consistency_proof(3, 7).unwrap();
        assert_eq!(
            hex(&consistency),
            [&leaves[2].to_hex(), &leaves[3].to_hex(), &nodes[0], d4_7]
        );
        let root3 = Hash::from_hex(&roots[3]).unwrap();
        assert_eq!(
            verify_consistency(3, 7, &root3, &root7, &consistency),
            Ok(())
        );
        // Consistency 4 -> 7: MTH(D[4:7]) alone (the old root is node (2,0)).
        let consistency = log.consistency_proof(4, 7).unwrap();
        assert_eq!(hex(&consistency), [d4_7]);
        let root4 = Hash::from_hex(&roots[4]).unwrap();
        assert_eq!(
            verify_consistency(4, 7, &root4, &root7, &consistency),
            Ok(())
        );
        // Consistency 6 -> 8: node (1,2), node (1,3), node (2,0).
        let consistency = log.consistency_proof(6, 8).unwrap();
        assert_eq!(hex(&consistency), nodes[2..5]);
    }

    // ------------------------------------------------------------------------------------
    // Property tests.
    // ------------------------------------------------------------------------------------

    /// A size and a leaf index in it, with sizes up to `max`.
    fn index_and_size(max: u64) -> impl Strategy<Value = (u64, u64)> {
        (1..=max).prop_flat_map(|n| (0..n, Just(n)))
    }

    /// An old size and a new size, `0 ≤ old ≤ new ≤ max`.
    fn old_and_new(max: u64) -> impl Strategy<Value = (u64, u64)> {
        (0..=max).prop_flat_map(|n| (0..=n, Just(n)))
    }

    /// Sizes from 1 to u64::MAX, with weight on the top and on powers of two and their
    /// neighbours.
    fn huge_size() -> impl Strategy<Value = u64> {
        prop_oneof![
            1..=u64::MAX,
            (1u64 << 62)..=(1u64 << 63),
            (0u32..64, -1i64..=1).prop_map(|(s, d)| (1u64 << s).saturating_add_signed(d).max(1)),
            Just(1u64 << 63),
            Just((1u64 << 63) + 1),
            Just(u64::MAX),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_sizes_match_the_reference(
            (index, size) in index_and_size(5000),
            (old, new) in old_and_new(5000),
        ) {
            let (leaves, log) = big();
            let d = VecLeaves(leaves);
            let root = ref_mth(&leaves[..size as usize]);
            prop_assert_eq!(log.root_at(size), Ok(root));
            let proof = log.inclusion_proof(index, size).unwrap();
            prop_assert_eq!(&proof, &ref_path(index, 0, size, &d));
            prop_assert_eq!(verify_inclusion(&leaves[index as usize], index, size, &proof, &root), Ok(()));

            let (old_root, new_root) = (ref_mth(&leaves[..old as usize]), ref_mth(&leaves[..new as usize]));
            let cproof = log.consistency_proof(old, new).unwrap();
            if 0 < old && old < new {
                prop_assert_eq!(&cproof, &ref_proof(old, new, &d));
            } else {
                prop_assert!(cproof.is_empty());
            }
            prop_assert_eq!(verify_consistency(old, new, &old_root, &new_root, &cproof), Ok(()));
        }

        #[test]
        fn frontier_load_and_roots_match_appending(size in 0..=BIG_SIZE) {
            let (leaves, log) = big();
            let mut appended = Frontier::empty();
            let mut out = Vec::new();
            for leaf in &leaves[..size as usize] {
                appended.append(*leaf, &mut out);
            }
            let loaded = Frontier::load(size, log).unwrap();
            prop_assert_eq!(&loaded, &appended);
            prop_assert_eq!(loaded.root(), log.root_at(size).unwrap());
            prop_assert_eq!(loaded.root(), merkle_root(&leaves[..size as usize]));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn large_sizes_match_the_reference(
            (index, size) in index_and_size(BIG_SIZE),
            old_fraction in 0.0f64..=1.0,
        ) {
            let (leaves, log) = big();
            let d = VecLeaves(leaves);
            let root = ref_mth(&leaves[..size as usize]);
            prop_assert_eq!(log.root_at(size), Ok(root));
            let proof = log.inclusion_proof(index, size).unwrap();
            prop_assert_eq!(&proof, &ref_path(index, 0, size, &d));
            prop_assert_eq!(verify_inclusion(&leaves[index as usize], index, size, &proof, &root), Ok(()));

            let old = ((size as f64 * old_fraction) as u64).clamp(1, size);
            let cproof = log.consistency_proof(old, size).unwrap();
            if old < size {
                prop_assert_eq!(&cproof, &ref_proof(old, size, &d));
            }
            let old_root = ref_mth(&leaves[..old as usize]);
            prop_assert_eq!(verify_consistency(old, size, &old_root, &root, &cproof), Ok(()));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Sizes up to u64::MAX, over a log whose leaves are all alike but one.
        #[test]
        fn huge_sizes_match_the_reference(
            size in huge_size(),
            raw_index in any::<u64>(),
            raw_old in any::<u64>(),
            mark_at_index in any::<bool>(),
        ) {
            let index = raw_index % size;
            let old = raw_old % size + 1;
            let mark = if mark_at_index { index } else { raw_old % old };
            let log = Counting::new(MarkedLog::new(size, mark));
            let root = log.inner.mth(0, size);
            prop_assert_eq!(root_at(size, &log), Ok(root));
            prop_assert_eq!(Frontier::load(size, &log).map(|f| f.root()), Ok(root));

            log.take();
            let proof = inclusion_proof(index, size, &log).unwrap();
            prop_assert!(log.take() <= 2 * bits(size));
            prop_assert_eq!(&proof, &ref_path(index, 0, size, &log.inner));
            let leaf = log.inner.mth(index, index + 1);
            prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));
            prop_assert!(ref_verify_inclusion(&leaf, index, size, &proof, &root));

            let cproof = consistency_proof(old, size, &log).unwrap();
            prop_assert!(log.take() <= 2 * bits(size));
            if old < size {
                prop_assert_eq!(&cproof, &ref_proof(old, size, &log.inner));
            }
            let old_root = log.inner.mth(0, old);
            prop_assert_eq!(verify_consistency(old, size, &old_root, &root, &cproof), Ok(()));
        }

        /// Any flipped bit in the proof, the leaf or the root, a wrong index, or a shortened
        /// or lengthened proof is refused; a wrong size is accepted exactly when the
        /// recursive definition accepts it (the path has the same shape in both sizes).
        #[test]
        fn tampered_inclusion_proofs_fail(
            (index, size) in index_and_size(5000),
            element in any::<prop::sample::Index>(),
            bit in 0usize..256,
            other in any::<prop::sample::Index>(),
            claimed_size in 0u64..=6000,
        ) {
            let (leaves, log) = big();
            let leaf = leaves[index as usize];
            let root = log.root_at(size).unwrap();
            let proof = log.inclusion_proof(index, size).unwrap();
            prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));

            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = element.index(bad.len());
                bad[j] = flip(&bad[j], bit);
                prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
                prop_assert!(verify_inclusion(&leaf, index, size, &proof[..proof.len() - 1], &root).is_err());
            }
            prop_assert!(verify_inclusion(&flip(&leaf, bit), index, size, &proof, &root).is_err());
            prop_assert!(verify_inclusion(&leaf, index, size, &proof, &flip(&root, bit)).is_err());
            let mut longer = proof.clone();
            longer.push(leaves[other.index(leaves.len())]);
            prop_assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());

            let wrong_index = other.index(size as usize) as u64;
            if wrong_index != index {
                prop_assert!(verify_inclusion(&leaf, wrong_index, size, &proof, &root).is_err());
            }
            prop_assert!(verify_inclusion(&leaf, index + size, size, &proof, &root).is_err());
            if claimed_size != size {
                let ok = verify_inclusion(&leaf, index, claimed_size, &proof, &root).is_ok();
                prop_assert_eq!(ok, ref_verify_inclusion(&leaf, index, claimed_size, &proof, &root));
            }
        }

        /// Any flipped bit in the proof or either root, or a shortened or lengthened proof,
        /// is refused; wrong sizes are accepted exactly when the recursive definition
        /// accepts them.
        #[test]
        fn tampered_consistency_proofs_fail(
            (old, new) in old_and_new(5000),
            element in any::<prop::sample::Index>(),
            bit in 0usize..256,
            claimed_old in 0u64..=6000,
            claimed_new in 0u64..=6000,
        ) {
            let (leaves, log) = big();
            let old_root = log.root_at(old).unwrap();
            let new_root = log.root_at(new).unwrap();
            let proof = log.consistency_proof(old, new).unwrap();
            prop_assert_eq!(verify_consistency(old, new, &old_root, &new_root, &proof), Ok(()));

            if !proof.is_empty() {
                let mut bad = proof.clone();
                let j = element.index(bad.len());
                bad[j] = flip(&bad[j], bit);
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err());
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof[1..]).is_err());
                prop_assert!(verify_consistency(old, new, &old_root, &new_root, &proof[..proof.len() - 1]).is_err());
            }
            prop_assert!(verify_consistency(old, new, &flip(&old_root, bit), &new_root, &proof).is_err());
            let other_new = verify_consistency(old, new, &old_root, &flip(&new_root, bit), &proof);
            // The empty log is a prefix of every log, whatever its root.
            prop_assert_eq!(other_new.is_ok(), old == 0 && new > 0);
            let mut longer = proof.clone();
            longer.push(leaves[element.index(leaves.len())]);
            prop_assert!(verify_consistency(old, new, &old_root, &new_root, &longer).is_err());

            if (claimed_old, claimed_new) != (old, new) {
                let ok = verify_consistency(claimed_old, claimed_new, &old_root, &new_root, &proof).is_ok();
                let reference = ref_verify_consistency(claimed_old, claimed_new, &old_root, &new_root, &proof);
                prop_assert_eq!(ok, reference);
            }
            // A log that differs from the old one in any leaf is not consistent with it.
            if old > 0 {
                let mut forked = leaves[..new as usize].to_vec();
                let j = element.index(old as usize);
                forked[j] = flip(&forked[j], bit);
                let forked_root = ref_mth(&forked);
                prop_assert!(verify_consistency(old, new, &old_root, &forked_root, &proof).is_err());
            }
        }

        /// Arbitrary arguments never panic, and random proofs are refused.
        #[test]
        fn garbage_is_refused_without_panicking(
            index in any::<u64>(),
            size in any::<u64>(),
            old in any::<u64>(),
            new in any::<u64>(),
            proof in prop::collection::vec(any::<[u8; 32]>().prop_map(Hash), 0..80),
            root in any::<[u8; 32]>().prop_map(Hash),
            leaf in any::<[u8; 32]>().prop_map(Hash),
        ) {
            prop_assert!(verify_inclusion(&leaf, index, size, &proof, &root).is_err());
            prop_assert!(verify_consistency(old, new, &leaf, &root, &proof).is_err());
            let small = MemoryLog::from_leaves(test_leaves(9));
            let in_log = |r: Result<Vec<Hash>, LogError>| r.is_ok() || matches!(r, Err(LogError::IndexOutOfRange { .. } | LogError::SizesOutOfOrder { .. } | LogError::MissingNode { .. }));
            prop_assert!(in_log(small.inclusion_proof(index, size)));
            prop_assert!(in_log(small.consistency_proof(old, new)));
            prop_assert!(small.root_at(size).is_ok() == (size <= 9));
        }
    }
}
