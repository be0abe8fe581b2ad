use super::*;
use crate::chain::{build_block, execute_block};
use crate::crypto::SecretKey;
use crate::execute::VerifiedTx;
use crate::history_log::verify_inclusion;
use crate::tx::{Anchor, LandRegister, LandTransfer, Tx, TxBody};
use crate::vote::{Vote, VoteType};
use std::io::{BufRead, BufReader};

struct Fixture {
    genesis: Genesis,
    validators: Vec<SecretKey>,
    clerk: SecretKey,
}

fn fixture() -> Fixture {
    let (genesis, validators, members) = crate::genesis::tests::sample();
    Fixture {
        genesis,
        validators,
        clerk: members[0].clone(),
    }
}

fn cert(f: &Fixture, header: &BlockHeader) -> CommitCertificate {
    let votes: Vec<Vote> = f
        .validators
        .iter()
        .map(|k| {
            Vote::new_signed(
                &f.genesis.chain_id,
                header.height,
                0,
                VoteType::Precommit,
                Some(header.hash()),
                k,
            )
        })
        .collect();
    CommitCertificate::from_votes(header.height, 0, header.hash(), &votes)
}

fn tx(f: &Fixture, nonce: u64, body: TxBody) -> VerifiedTx {
    VerifiedTx::verify(
        Tx {
            chain_id: f.genesis.chain_id.clone(),
            signer: f.clerk.public_key(),
            nonce,
            created_at_ms: 0,
            expires_at_ms: u64::MAX,
            body,
        }
        .sign(&f.clerk),
    )
    .unwrap()
}

fn anchor(i: u64) -> TxBody {
    TxBody::Anchor(Anchor {
        document_hash: crate::hash::hash_document(&i.to_le_bytes()),
        label: format!("doc {i}"),
    })
}

/// Commits one block of `n` anchors starting at nonce `nonce`.
fn commit_anchors(f: &Fixture, store: &Store, nonce: u64, n: u64) -> ExecutedBlock {
    let tip = store.load_tip().unwrap();
    let txs: Vec<VerifiedTx> = (nonce..nonce + n).map(|i| tx(f, i, anchor(i))).collect();
    let proposer = f.genesis.validators[0].public_key;
    let (ex, refused) =
        build_block(store.state(), &tip, proposer, tip.time_ms + 1000, txs).unwrap();
    assert!(refused.is_empty());
    store.commit_block(&ex, &cert(f, &ex.header)).unwrap();
    ex
}

#[test]
fn commit_reopen_and_read_back() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let mut headers = vec![];
    {
        let store = Store::open(dir.path(), &f.genesis).unwrap();
        assert_eq!(store.stored_tip().unwrap().height, 0);
        for b in 0..5u64 {
            headers.push(commit_anchors(&f, &store, b * 10, 10).header);
        }
    }
    let store = Store::open(dir.path(), &f.genesis).unwrap();
    let tip = store.load_tip().unwrap();
    assert_eq!(tip.height, 5);
    assert_eq!(tip.frontier.size(), 50);
    assert_eq!(tip.frontier.root(), headers[4].log_root);
    for (i, h) in headers.iter().enumerate() {
        let stored = store.header(i as u64 + 1).unwrap().unwrap();
        assert_eq!(&stored, h);
        let cb = store.committed_block(i as u64 + 1).unwrap().unwrap();
        assert_eq!(cb.block.txs.len(), 10);
        assert_eq!(cb.block.compute_tx_root(), h.tx_root);
        let vs = store.validator_set_at(h.height).unwrap().unwrap();
        cb.commit
            .verify(&f.genesis.chain_id, h.height, &h.hash(), &vs)
            .unwrap();
        // Past roots from stored nodes.
        assert_eq!(store.log_root_at(h.log_size).unwrap(), h.log_root);
    }
    // Inclusion proof of every record against the latest header.
    let last = &headers[4];
    for leaf in 0..50 {
        let stx = store.tx_at(leaf).unwrap().unwrap();
        let loc = store.tx_location(&stx.id()).unwrap().unwrap();
        assert_eq!(loc.leaf_index, leaf);
        assert_eq!(loc.height, leaf / 10 + 1);
        let proof = store.inclusion_proof(leaf, last.log_size).unwrap();
        verify_inclusion(&stx.id(), leaf, last.log_size, &proof, &last.log_root).unwrap();
    }
    // Consistency between every pair of block boundaries.
    for a in &headers {
        for b in &headers {
            if a.log_size <= b.log_size {
                let p = store.consistency_proof(a.log_size, b.log_size).unwrap();
                history_log::verify_consistency(
                    a.log_size,
                    b.log_size,
                    &a.log_root,
                    &b.log_root,
                    &p,
                )
                .unwrap();
            }
        }
    }
}

#[test]
fn wrong_genesis_is_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), &f.genesis).unwrap());
    let mut other = f.genesis.clone();
    other.chain_id = "other".into();
    assert!(matches!(
        Store::open(dir.path(), &other),
        Err(StoreError::GenesisMismatch { .. })
    ));
}

#[test]
fn out_of_order_commit_is_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &f.genesis).unwrap();
    let ex = commit_anchors(&f, &store, 0, 1);
    assert!(matches!(
        store.commit_block(&ex, &cert(&f, &ex.header)),
        Err(StoreError::NotNext { tip: 1, got: 1 })
    ));
}

#[test]
fn indexes_paginate_in_log_order() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &f.genesis).unwrap();
    let tip = store.load_tip().unwrap();
    let mut txs = vec![tx(
        &f,
        0,
        TxBody::LandRegister(LandRegister {
            parcel_id: "P-1".into(),
            owner: "o0".into(),
            document_hash: Hash([1; 32]),
        }),
    )];
    for i in 0..25u64 {
        txs.push(tx(
            &f,
            i + 1,
            TxBody::LandTransfer(LandTransfer {
                parcel_id: "P-1".into(),
                from: format!("o{i}"),
                to: format!("o{}", i + 1),
                deed_hash: Hash([2; 32]),
            }),
        ));
    }
    // A parcel whose id extends P-1's must not show up in P-1's history.
    txs.push(tx(
        &f,
        26,
        TxBody::LandRegister(LandRegister {
            parcel_id: "P-10".into(),
            owner: "x".into(),
            document_hash: Hash([3; 32]),
        }),
    ));
    let proposer = f.genesis.validators[0].public_key;
    let (ex, refused) = build_block(store.state(), &tip, proposer, tip.time_ms + 5, txs).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    store.commit_block(&ex, &cert(&f, &ex.header)).unwrap();

    let q = IndexQuery::Parcel("P-1");
    let mut all = vec![];
    let mut after = None;
    loop {
        let page = store.query(&q, after, 10).unwrap();
        all.extend(page.leaves.iter().copied());
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(all, (0..26).collect::<Vec<u64>>());
    let docs = store
        .query(&IndexQuery::Document(&Hash([2; 32])), None, 1000)
        .unwrap();
    assert_eq!(docs.leaves.len(), 25);
    let dept = store
        .query(
            &IndexQuery::Department {
                department: "land",
                from_ms: ex.header.time_ms,
                to_ms: ex.header.time_ms,
            },
            None,
            1000,
        )
        .unwrap();
    assert_eq!(dept.leaves.len(), 27);
    let dq = IndexQuery::Department {
        department: "land",
        from_ms: 0,
        to_ms: u64::MAX,
    };
    let mut paged = vec![];
    let mut after = None;
    loop {
        let page = store.query(&dq, after, 4).unwrap();
        paged.extend(page.leaves.iter().copied());
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, dept.leaves);
    let none = store
        .query(
            &IndexQuery::Department {
                department: "land",
                from_ms: 0,
                to_ms: ex.header.time_ms - 1,
            },
            None,
            1000,
        )
        .unwrap();
    assert!(none.leaves.is_empty());
    let parcel = store.state().parcel("P-1").unwrap().unwrap();
    assert_eq!(parcel.owner, "o25");
}

#[test]
fn synced_block_from_one_store_replays_into_another() {
    let f = fixture();
    let d1 = tempfile::tempdir().unwrap();
    let d2 = tempfile::tempdir().unwrap();
    let a = Store::open(d1.path(), &f.genesis).unwrap();
    let b = Store::open(d2.path(), &f.genesis).unwrap();
    for i in 0..3 {
        commit_anchors(&f, &a, i * 4, 4);
    }
    for h in 1..=3 {
        let cb = a.committed_block(h).unwrap().unwrap();
        let tip = b.load_tip().unwrap();
        let txs: Vec<VerifiedTx> = crate::execute::verify_batch(cb.block.txs.clone())
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let ex = execute_block(b.state(), &tip, &cb.block.header, txs).unwrap();
        b.commit_block(&ex, &cb.commit).unwrap();
    }
    assert_eq!(a.stored_tip().unwrap(), b.stored_tip().unwrap());
}

/// Child half of the crash test: commits blocks forever, printing each committed height.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("GOVLEDGER_CRASH_DIR") else {
        return; // Only meaningful when started by `crash_between_blocks`.
    };
    let f = fixture();
    let store = Store::open(Path::new(&dir), &f.genesis).unwrap();
    let mut nonce = store.state().next_nonce(&f.clerk.public_key()).unwrap();
    loop {
        let ex = commit_anchors(&f, &store, nonce, 20);
        nonce += 20;
        println!("COMMITTED {}", ex.header.height);
    }
}

#[test]
fn crash_between_blocks() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::tests::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GOVLEDGER_CRASH_DIR", dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked = 0u64;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(h) = line.strip_prefix("COMMITTED ") {
                acked = h.trim().parse().unwrap();
                if acked >= (round + 1) * 15 {
                    break;
                }
            }
        }
        // SIGKILL: no destructors, no flush, possibly in the middle of a batch.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(acked > 0, "child never committed");

        let store = Store::open(dir.path(), &f.genesis).unwrap();
        let tip = store.load_tip().unwrap();
        // Every acknowledged block survived; nothing beyond a whole block appeared.
        assert!(
            tip.height >= acked,
            "lost acknowledged block: tip {} < {acked}",
            tip.height
        );
        assert_eq!(tip.frontier.size(), tip.height * 20);
        // The whole chain replays to the same headers from genesis.
        let d2 = tempfile::tempdir().unwrap();
        let replay = Store::open(d2.path(), &f.genesis).unwrap();
        for h in 1..=tip.height {
            let cb = store.committed_block(h).unwrap().unwrap();
            let rtip = replay.load_tip().unwrap();
            let txs = crate::execute::verify_batch(cb.block.txs.clone())
                .into_iter()
                .map(|r| r.unwrap())
                .collect();
            let ex = execute_block(replay.state(), &rtip, &cb.block.header, txs).unwrap();
            replay.commit_block(&ex, &cb.commit).unwrap();
        }
        assert_eq!(replay.stored_tip().unwrap(), store.stored_tip().unwrap());
        assert!(store.header(tip.height + 1).unwrap().is_none());
    }
}

/// The upper levels of the log are served from memory (filled by commits, and again at
/// open): proofs and roots must equal the reference log's at every size, before and after
/// reopening, and a size beyond the log must still be refused.
#[test]
fn proofs_through_the_memory_levels_match_the_reference() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let per_block = 97u64;
    let blocks = 12u64; // 1,164 leaves: levels up to 10, so several nodes at levels ≥ 8
    let mut reference = history_log::MemoryLog::new();
    let check = |store: &Store, reference: &history_log::MemoryLog| {
        let n = reference.size();
        for size in [1, 255, 256, 257, 511, 512, 513, 1000, n] {
            assert_eq!(
                store.log_root_at(size).unwrap(),
                reference.root_at(size).unwrap()
            );
            for leaf in [0, size / 3, size / 2, size - 1] {
                assert_eq!(
                    store.inclusion_proof(leaf, size).unwrap(),
                    reference.inclusion_proof(leaf, size).unwrap(),
                    "leaf {leaf} size {size}"
                );
            }
            for old in [1, 256, 300, size] {
                if old <= size {
                    assert_eq!(
                        store.consistency_proof(old, size).unwrap(),
                        reference.consistency_proof(old, size).unwrap()
                    );
                }
            }
        }
        assert!(matches!(
            store.inclusion_proof(0, n + 300),
            Err(StoreError::Log(LogError::MissingNode { .. }))
        ));
    };
    {
        let store = Store::open(dir.path(), &f.genesis).unwrap();
        for b in 0..blocks {
            let ex = commit_anchors(&f, &store, b * per_block, per_block);
            for vtx in &ex.txs {
                reference.push(vtx.id());
            }
        }
        check(&store, &reference);
    }
    let store = Store::open(dir.path(), &f.genesis).unwrap();
    check(&store, &reference);
    // The chunk at the right edge keeps filling after a reopen.
    let ex = commit_anchors(&f, &store, blocks * per_block, 21);
    for vtx in &ex.txs {
        reference.push(vtx.id());
    }
    check(&store, &reference);
}

#[test]
fn memory_budgets_apply_and_memory_is_reported() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        memtable_bytes: 1, // raised to the minimum
        block_cache_bytes: 8 * 1024 * 1024,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), &f.genesis, options).unwrap();
    let before = store.memory();
    let mut nonce = 0;
    for _ in 0..4 {
        commit_anchors(&f, &store, nonce, 200);
        nonce += 200;
    }
    let after = store.memory();
    assert!(
        after.memtables > before.memtables,
        "{before:?} -> {after:?}"
    );
    // 800 leaves: levels 4.. hold 50 + 25 + 12 + 6 + 3 + 1 nodes of 32 bytes.
    assert_eq!(after.log_nodes, (50 + 25 + 12 + 6 + 3 + 1) * 32);
    assert_eq!(store.stored_tip().unwrap().log_size, 800);
    drop(store);
    // The same data opens with the default budgets.
    let store = Store::open(dir.path(), &f.genesis).unwrap();
    assert_eq!(store.stored_tip().unwrap().log_size, 800);
    assert_eq!(store.memory().log_nodes, (50 + 25 + 12 + 6 + 3 + 1) * 32);
}

/// The state cache answers exactly what RocksDB holds, across commits that change and
/// delete-free-overwrite keys it has cached (parcels transferred, nonces advanced).
#[test]
fn cached_state_reads_match_the_database_across_commits() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &f.genesis).unwrap();
    let raw = |k: &[u8]| store.db.get_cf(store.cf(CF_STATE), k).unwrap();
    let mut keys: std::collections::BTreeSet<Vec<u8>> = Default::default();
    let mut nonce = 0u64;
    for round in 0..6u64 {
        let tip = store.load_tip().unwrap();
        let mut txs = vec![tx(
            &f,
            nonce,
            if round == 0 {
                TxBody::LandRegister(LandRegister {
                    parcel_id: "P-7".into(),
                    owner: "o0".into(),
                    document_hash: Hash([1; 32]),
                })
            } else {
                TxBody::LandTransfer(LandTransfer {
                    parcel_id: "P-7".into(),
                    from: format!("o{}", round - 1),
                    to: format!("o{round}"),
                    deed_hash: Hash([2; 32]),
                })
            },
        )];
        nonce += 1;
        for _ in 0..3 {
            txs.push(tx(&f, nonce, anchor(nonce)));
            nonce += 1;
        }
        let proposer = f.genesis.validators[0].public_key;
        let (ex, refused) =
            build_block(store.state(), &tip, proposer, tip.time_ms + 1000, txs).unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        keys.extend(ex.writes.keys().cloned());
        // Read (and so cache) every key, including ones the coming block overwrites.
        for k in &keys {
            assert_eq!(store.state().get(k).unwrap(), raw(k));
        }
        store.commit_block(&ex, &cert(&f, &ex.header)).unwrap();
        for k in &keys {
            assert_eq!(
                store.state().get(k).unwrap(),
                raw(k),
                "key {}",
                hex::encode(k)
            );
        }
        // Absent keys are cached as absent and stay so.
        assert_eq!(store.state().get(b"no such key").unwrap(), None);
    }
    assert!(!store.state_cache.is_empty());
}

/// Bundles built through the per-block cache are the ones built from the store.
#[test]
fn cached_proof_parts_give_the_same_verifying_bundles() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &f.genesis).unwrap();
    let ex1 = commit_anchors(&f, &store, 0, 5);
    let ex2 = commit_anchors(&f, &store, 5, 5);
    let ids: Vec<Hash> = ex1
        .txs
        .iter()
        .chain(ex2.txs.iter())
        .map(|t| t.id())
        .collect();
    let first: Vec<_> = ids
        .iter()
        .map(|id| store.proof_bundle(&f.genesis, id).unwrap().unwrap())
        .collect();
    assert_eq!(store.proof_parts.lock().unwrap().len(), 2);
    for (id, b) in ids.iter().zip(&first) {
        let again = store.proof_bundle(&f.genesis, id).unwrap().unwrap();
        assert_eq!(&again, b);
        assert_eq!(
            again.verify(&f.genesis, None).unwrap().height,
            b.record.height
        );
    }
}

fn land_register(id: &str, owner: &str) -> TxBody {
    TxBody::LandRegister(LandRegister {
        parcel_id: id.into(),
        owner: owner.into(),
        document_hash: crate::hash::hash_document(id.as_bytes()),
    })
}

/// Every state entry of the store as one write set (to build a tree from scratch).
fn whole_state(store: &Store) -> crate::state::WriteSet {
    store
        .db
        .iterator_cf(store.cf(CF_STATE), IteratorMode::Start)
        .map(|item| {
            let (k, v) = item.unwrap();
            (k.to_vec(), Some(v.to_vec()))
        })
        .collect()
}

/// The positions a store holding `depth` levels in memory stores for its whole state.
fn stored_nodes(store: &Store, depth: u16) -> usize {
    state_tree::apply(&state_tree::MemTree::new(), 0, &whole_state(store))
        .unwrap()
        .nodes
        .iter()
        .filter(|(k, n)| n.is_leaf() || k.depth >= depth)
        .count()
}

fn tree_positions(store: &Store) -> usize {
    store
        .db
        .iterator_cf(store.cf(CF_TREE), IteratorMode::Start)
        .count()
}

/// State format 2 in RocksDB: after every block, and after a reopen, the stored tree is
/// exactly the tree of the whole state built from scratch (its root is the header's
/// `state_root`; it holds every leaf and the interior nodes below the levels in memory,
/// and no node more: stale positions are deleted in the block's batch), every key and an
/// absent one prove against the header, and the upper levels held in memory change
/// nothing (the same chain with none held, with 4 and with 18 levels, and reopened with
/// another number of levels each time, which converts the stored layout).
#[test]
fn the_state_tree_is_committed_with_each_block_and_proves_every_key() {
    let f = fixture();
    assert!(f.genesis.state_format.has_tree());
    let mut headers = vec![];
    let plans: [&[u16]; 4] = [
        &[0, 0, 0],
        &[4, 4, 4],
        &[TREE_MEMORY_DEPTH, TREE_MEMORY_DEPTH, TREE_MEMORY_DEPTH],
        &[TREE_MEMORY_DEPTH, 2, 0, 5],
    ];
    for plan in plans {
        let dir = tempfile::tempdir().unwrap();
        let mut nonce = 0;
        let mut these = vec![];
        for (round, depth) in plan.iter().copied().enumerate() {
            let options = StoreOptions {
                tree_memory_depth: depth,
                ..StoreOptions::default()
            };
            let store = Store::open_with(dir.path(), &f.genesis, options).unwrap();
            assert_eq!(
                tree_positions(&store),
                stored_nodes(&store, depth),
                "the layout after opening with {depth} levels in memory"
            );
            for b in 0..4u64 {
                let tip = store.load_tip().unwrap();
                let mut txs = vec![];
                for i in 0..40u64 {
                    let id = format!("P-{round}-{b}-{i}");
                    txs.push(tx(&f, nonce, land_register(&id, "owner-a")));
                    nonce += 1;
                }
                txs.push(tx(&f, nonce, anchor(nonce)));
                nonce += 1;
                let proposer = f.genesis.validators[0].public_key;
                let (ex, refused) =
                    build_block(store.state(), &tip, proposer, tip.time_ms + 1000, txs).unwrap();
                assert!(refused.is_empty(), "{refused:?}");
                store.commit_block(&ex, &cert(&f, &ex.header)).unwrap();
                let scratch =
                    state_tree::apply(&state_tree::MemTree::new(), 0, &whole_state(&store))
                        .unwrap();
                assert_eq!(scratch.root_hash(), ex.header.state_root);
                let expected = scratch
                    .nodes
                    .iter()
                    .filter(|(k, n)| n.is_leaf() || k.depth >= depth)
                    .count();
                assert_eq!(tree_positions(&store), expected, "no stale node kept");
                these.push(ex.header);
            }
            // Every key, and keys that are absent, prove against the tip's header.
            let tip_header = these.last().unwrap().clone();
            let whole = whole_state(&store);
            let mut asked: Vec<Vec<u8>> = whole.keys().cloned().collect();
            asked.push(crate::state::keys::parcel("P-none"));
            asked.push(b"absent".to_vec());
            let refs: Vec<&[u8]> = asked.iter().map(Vec::as_slice).collect();
            let proofs = store.prove_state(&refs).unwrap();
            assert_eq!(proofs.height, tip_header.height);
            assert_eq!(proofs.state_root, tip_header.state_root);
            for (key, (value, proof)) in asked.iter().zip(&proofs.proofs) {
                assert_eq!(value.as_ref(), whole.get(key).and_then(|v| v.as_ref()));
                proof
                    .verify(&tip_header.state_root, key, value.as_deref())
                    .unwrap();
                if let Some(v) = value {
                    let mut other = v.clone();
                    other.push(0);
                    assert!(
                        proof
                            .verify(&tip_header.state_root, key, Some(&other))
                            .is_err()
                    );
                    assert!(proof.verify(&tip_header.state_root, key, None).is_err());
                }
            }
        }
        headers.push(these);
    }
    assert_eq!(headers[0], headers[1]);
    assert_eq!(headers[0], headers[2]);
}

/// The levels held in memory are recomputed at open and must make the stored root: a
/// store that lost a stored node, or holds a changed one, is refused at open (not served).
#[test]
fn a_store_whose_tree_nodes_do_not_make_its_root_is_refused_at_open() {
    let f = fixture();
    let options = StoreOptions {
        tree_memory_depth: 3,
        ..StoreOptions::default()
    };
    for change in ["delete", "alter", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(dir.path(), &f.genesis, options).unwrap();
        let tip = store.load_tip().unwrap();
        let txs: Vec<_> = (0..60u64)
            .map(|i| tx(&f, i, land_register(&format!("P-{i}"), "owner-a")))
            .collect();
        let proposer = f.genesis.validators[0].public_key;
        let (ex, _) = build_block(store.state(), &tip, proposer, tip.time_ms + 1000, txs).unwrap();
        store.commit_block(&ex, &cert(&f, &ex.header)).unwrap();
        // An interior node at the boundary depth: the shallowest stored ones.
        let (key, value) = store
            .db
            .iterator_cf(store.cf(CF_TREE), IteratorMode::Start)
            .map(|i| i.unwrap())
            .find(|(k, v)| {
                tree_store::position_of(k).unwrap().0 == 3
                    && !tree_store::decode_node(v).unwrap().is_leaf()
            })
            .expect("a stored interior node at depth 3");
        match change {
            "delete" => store.db.delete_cf(store.cf(CF_TREE), &key).unwrap(),
            "alter" => {
                let mut v = value.to_vec();
                let last = v.len() - 1;
                v[last] ^= 1;
                store.db.put_cf(store.cf(CF_TREE), &key, v).unwrap();
            }
            _ => {}
        }
        drop(store);
        let opened = Store::open_with(dir.path(), &f.genesis, options);
        if change == "none" {
            let store = opened.unwrap();
            assert_eq!(store.stored_tip().unwrap().state_root, ex.header.state_root);
            // A damaged boundary record is refused too, not a panic.
            store
                .db
                .put_cf(
                    store.cf(CF_META),
                    KEY_TREE_STORED_FROM,
                    codec::encode(&u16::MAX),
                )
                .unwrap();
            drop(store);
            let Err(err) = Store::open_with(dir.path(), &f.genesis, options) else {
                panic!("tree_stored_from {} accepted", u16::MAX);
            };
            assert!(
                matches!(
                    err,
                    StoreError::Corrupt {
                        what: "tree_stored_from",
                        ..
                    }
                ),
                "{err}"
            );
        } else {
            let Err(err) = opened else {
                panic!("{change}: a store whose tree does not make its root opened");
            };
            assert!(
                matches!(
                    err,
                    StoreError::Corrupt {
                        what: "state tree",
                        ..
                    }
                ),
                "{change}: {err}"
            );
        }
    }
}

/// A block executed for a state format other than the store's is refused, and nothing is
/// written; a store of format 1 has no tree to prove with.
#[test]
fn the_store_refuses_a_block_of_another_state_format() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &f.genesis).unwrap();
    let tip = store.load_tip().unwrap();
    let proposer = f.genesis.validators[0].public_key;
    let (mut ex, _) = build_block(
        store.state(),
        &tip,
        proposer,
        tip.time_ms + 1000,
        vec![tx(&f, 0, anchor(0))],
    )
    .unwrap();
    ex.tree = None;
    assert!(store.commit_block(&ex, &cert(&f, &ex.header)).is_err());
    assert_eq!(store.stored_tip().unwrap().height, 0);

    let mut g1 = f.genesis.clone();
    g1.state_format = crate::genesis::StateFormat::V1;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &g1).unwrap();
    assert!(matches!(
        store.prove_state(&[b"x"]),
        Err(StoreError::NoStateTree)
    ));
    assert_eq!(tree_positions(&store), 0);
}
