//! State-tree costs on a state of 1,000,000 keys held in memory: a block's update (1,000
//! writes), proof generation and proof verification.
//!
//! `cargo bench -p ledger --no-default-features --bench state_tree`
//! (`STATE_TREE_KEYS=N` for another state size.)

use std::hint::black_box;

mod common;

use common::randoms;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ledger::state::WriteSet;
use ledger::state_tree::{MemTree, StateProof, apply, prove};

/// Keys written per block while building the state, and per measured block.
const BLOCK_WRITES: usize = 1_000;
/// Precomputed random queries, cycled through by the benchmarks.
const QUERIES: usize = 4096;

fn state_keys() -> u64 {
    std::env::var("STATE_TREE_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

/// A state key shaped like the ledger's: a table byte and an id.
fn key(i: u64) -> Vec<u8> {
    let mut k = vec![0x10];
    k.extend_from_slice(format!("BP-2026-{i:09}").as_bytes());
    k
}

/// A value of a typical record's size.
fn value(i: u64, round: u64) -> Vec<u8> {
    let mut v = vec![0u8; 160];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v[8..16].copy_from_slice(&round.to_le_bytes());
    v
}

struct Fixture {
    tree: MemTree,
    version: u64,
    keys: u64,
}

fn build() -> Fixture {
    let keys = state_keys();
    let mut tree = MemTree::new();
    let mut version = 0;
    let mut next = 0u64;
    while next < keys {
        let end = (next + 10 * BLOCK_WRITES as u64).min(keys);
        let w: WriteSet = (next..end).map(|i| (key(i), Some(value(i, 0)))).collect();
        let u = apply(&tree, version, &w).expect("apply");
        tree.commit(u, Some(1));
        next = end;
        version += 1;
    }
    Fixture {
        tree,
        version: version - 1,
        keys,
    }
}

fn bench(c: &mut Criterion) {
    let f = build();
    let queries: Vec<u64> = randoms(7).take(QUERIES).map(|r| r % f.keys).collect();

    let mut g = c.benchmark_group("state_tree");
    g.sample_size(20);
    g.throughput(Throughput::Elements(BLOCK_WRITES as u64));
    // One block's update: 1,000 updates of existing keys at random, nodes computed, not
    // committed (each iteration starts from the same tree).
    let mut blocks = randoms(11);
    g.bench_function("apply_block_1000_writes", |b| {
        b.iter(|| {
            let w: WriteSet = (0..BLOCK_WRITES)
                .map(|_| {
                    let i = blocks.next().unwrap_or(0) % f.keys;
                    (key(i), Some(value(i, 1)))
                })
                .collect();
            black_box(apply(&f.tree, f.version + 1, &w).expect("apply"))
        })
    });

    g.sample_size(50);
    g.throughput(Throughput::Elements(1));
    let mut qi = 0usize;
    g.bench_function("prove_present", |b| {
        b.iter(|| {
            let i = queries[qi % QUERIES];
            qi += 1;
            let v = value(i, 0);
            black_box(prove(&f.tree, f.version, &key(i), Some(&v)).expect("prove"))
        })
    });
    g.bench_function("prove_absent", |b| {
        b.iter(|| {
            let i = f.keys + queries[qi % QUERIES];
            qi += 1;
            black_box(prove(&f.tree, f.version, &key(i), None).expect("prove"))
        })
    });

    let root = ledger::state_tree::root(&f.tree, f.version)
        .expect("root")
        .expect("a root");
    let proofs: Vec<(Vec<u8>, Vec<u8>, StateProof)> = queries
        .iter()
        .take(512)
        .map(|&i| {
            let v = value(i, 0);
            let p = prove(&f.tree, f.version, &key(i), Some(&v)).expect("prove");
            (key(i), v, p)
        })
        .collect();
    g.bench_function("verify", |b| {
        b.iter(|| {
            let (k, v, p) = &proofs[qi % proofs.len()];
            qi += 1;
            black_box(p.verify(&root, k, Some(v)).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
