//! History-log throughput: appends, and proof generation and verification from an in-memory
//! log of 1,000,000 leaves.
//!
//! `cargo bench -p ledger --no-default-features --bench history_log`

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ledger::hash::Hash;
use ledger::history_log::{
    Frontier, MemoryLog, consistency_proof, inclusion_proof, leaf_hash, node_hash, root_at,
    verify_consistency, verify_inclusion,
};

const LOG_SIZE: u64 = 1_000_000;
/// Precomputed random queries, cycled through by the benchmarks.
const QUERIES: usize = 4096;

/// splitmix64: a fixed, dependency-free stream of test indices.
fn randoms(seed: u64) -> impl Iterator<Item = u64> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn test_leaf(i: u64) -> Hash {
    leaf_hash(&i.to_le_bytes())
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("history_log/append");
    group.throughput(Throughput::Elements(1));
    // The unit of all costs below: one inner-node hash, blake3 over 65 bytes.
    group.bench_function("node_hash", |b| {
        let (left, right) = (test_leaf(1), test_leaf(2));
        b.iter(|| node_hash(black_box(&left), black_box(&right)))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("frontier", |b| {
        let mut frontier = Frontier::empty();
        let mut out = Vec::with_capacity(64);
        let leaf = test_leaf(1);
        b.iter(|| {
            out.clear();
            frontier.append(black_box(leaf), &mut out);
            black_box(out.len());
        });
    });
    // A fresh log per sample, so that memory stays bounded by one sample's appends.
    group.bench_function("memory_log", |b| {
        let leaf = test_leaf(2);
        b.iter_custom(|iters| {
            let mut log = MemoryLog::new();
            let start = Instant::now();
            for _ in 0..iters {
                black_box(log.push(black_box(leaf)));
            }
            let elapsed = start.elapsed();
            drop(black_box(log));
            elapsed
        });
    });
    group.finish();
}

fn bench_proofs(c: &mut Criterion) {
    let log = MemoryLog::from_leaves((0..LOG_SIZE).map(test_leaf));
    let root = log.root();

    // Inclusion of random leaves in the whole log.
    let indices: Vec<u64> = randoms(1).take(QUERIES).map(|r| r % LOG_SIZE).collect();
    let proofs: Vec<Vec<Hash>> = indices
        .iter()
        .map(|&i| inclusion_proof(i, LOG_SIZE, &log).unwrap())
        .collect();
    let leaves: Vec<Hash> = indices.iter().map(|&i| log.leaf(i).unwrap()).collect();

    // Consistency from random old sizes to the whole log.
    let olds: Vec<u64> = randoms(2)
        .take(QUERIES)
        .map(|r| r % (LOG_SIZE - 1) + 1)
        .collect();
    let old_roots: Vec<Hash> = olds.iter().map(|&m| root_at(m, &log).unwrap()).collect();
    let cproofs: Vec<Vec<Hash>> = olds
        .iter()
        .map(|&m| consistency_proof(m, LOG_SIZE, &log).unwrap())
        .collect();

    // Inclusion of random leaves in random past sizes.
    let past: Vec<(u64, u64)> = randoms(3)
        .take(QUERIES)
        .map(|r| {
            let size = r % LOG_SIZE + 1;
            ((r >> 20) % size, size)
        })
        .collect();

    let mut group = c.benchmark_group("history_log/1M");
    group.throughput(Throughput::Elements(1));
    let mut k = 0usize;
    let mut next = move || {
        k = (k + 1) % QUERIES;
        k
    };
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            let i = indices[next()];
            black_box(inclusion_proof(black_box(i), LOG_SIZE, &log).unwrap())
        })
    });
    group.bench_function("inclusion_proof_past_size", |b| {
        b.iter(|| {
            let (i, n) = past[next()];
            black_box(inclusion_proof(black_box(i), black_box(n), &log).unwrap())
        })
    });
    group.bench_function("verify_inclusion", |b| {
        b.iter(|| {
            let q = next();
            verify_inclusion(&leaves[q], indices[q], LOG_SIZE, &proofs[q], &root).unwrap()
        })
    });
    group.bench_function("consistency_proof", |b| {
        b.iter(|| {
            let m = olds[next()];
            black_box(consistency_proof(black_box(m), LOG_SIZE, &log).unwrap())
        })
    });
    group.bench_function("verify_consistency", |b| {
        b.iter(|| {
            let q = next();
            verify_consistency(olds[q], LOG_SIZE, &old_roots[q], &root, &cproofs[q]).unwrap()
        })
    });
    group.bench_function("root_at", |b| {
        b.iter(|| black_box(root_at(black_box(olds[next()]), &log).unwrap()))
    });
    group.bench_function("frontier_load", |b| {
        b.iter(|| black_box(Frontier::load(black_box(olds[next()]), &log).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_proofs);
criterion_main!(benches);
