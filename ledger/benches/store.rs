//! The RocksDB store: inclusion proofs read from the store, proof bundles built from it,
//! bundles verified offline, and block commits (1,000 transactions in one synced batch).
//!
//! ```sh
//! cargo bench --workspace --bench store
//! GOVLEDGER_BENCH_RECORDS=200000 cargo bench --workspace --bench store   # a smaller store
//! ```
//!
//! The store is built once per run in a temporary directory: a catalogue block, then
//! blocks of 1,000 mixed ~300-byte records, signed, verified, executed and committed as a
//! node would (default 1,000,000 records; building takes a few minutes and is reported
//! on stderr). Targets (issue 2, one core): inclusion-proof generation ≥ 50,000/s, bundle
//! verification ≥ 20,000/s. Throughput is per operation (`elem/s`).

mod common;

use common::{StoreChain, randoms};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ledger::hash::Hash;
use ledger::proof::{ProofBundle, Verifier};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Records in the store unless `GOVLEDGER_BENCH_RECORDS` says otherwise.
const RECORDS_DEFAULT: usize = 1_000_000;
/// Precomputed random queries, cycled through.
const QUERIES: usize = 4096;
/// Bundles prepared for the verification benchmark.
const BUNDLES: usize = 256;
/// Bundles verified together by one verifier.
const MANY: usize = 256;

fn records() -> usize {
    std::env::var("GOVLEDGER_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RECORDS_DEFAULT)
}

fn bench_store(c: &mut Criterion) {
    let mut chain = StoreChain::new();
    chain.grow_to(records());
    let size = chain.tip.frontier.size();
    let genesis = chain.fixture.genesis.clone();
    let n = chain.ids.len() as u64;
    // Leaf 0..4 is the catalogue block: queries are over the mixed records after it.
    let first_leaf = size - n;
    let leaves: Vec<u64> = randoms(11)
        .take(QUERIES)
        .map(|r| first_leaf + r % n)
        .collect();
    let ids: Vec<Hash> = randoms(12)
        .take(QUERIES)
        .map(|r| chain.ids[(r % n) as usize])
        .collect();

    let mut group = c.benchmark_group(format!("store/{}k_records", n / 1000));
    group.throughput(Throughput::Elements(1));
    let mut k = 0usize;
    let mut next = move || {
        k = (k + 1) % QUERIES;
        k
    };
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            let leaf = leaves[next()];
            black_box(chain.store.inclusion_proof(leaf, size).expect("proof"))
        })
    });
    group.bench_function("proof_bundle", |b| {
        b.iter(|| {
            let id = ids[next()];
            black_box(
                chain
                    .store
                    .proof_bundle(&genesis, &id)
                    .expect("bundle")
                    .expect("known id"),
            )
        })
    });
    let bundles: Vec<ProofBundle> = ids[..BUNDLES]
        .iter()
        .map(|id| chain.store.proof_bundle(&genesis, id).unwrap().unwrap())
        .collect();
    let jsons: Vec<String> = bundles
        .iter()
        .map(|b| serde_json::to_string(b).expect("json"))
        .collect();
    eprintln!(
        "bundle: {} bytes of JSON, {} path hashes, {} commit signatures",
        jsons[0].len(),
        bundles[0].inclusion.path.len(),
        bundles[0].header.commit.signatures.len()
    );
    let mut j = 0usize;
    group.bench_function("bundle_verify", |b| {
        b.iter(|| {
            j = (j + 1) % BUNDLES;
            black_box(bundles[j].verify(&genesis, None).expect("verifies"))
        })
    });
    group.bench_function("bundle_parse_and_verify", |b| {
        b.iter(|| {
            j = (j + 1) % BUNDLES;
            let bundle = ProofBundle::from_json(&jsons[j]).expect("parses");
            black_box(bundle.verify(&genesis, None).expect("verifies"))
        })
    });

    if genesis.state_format.has_tree() {
        // State format 2: state proofs and status bundles at the tip, over a state of about
        // 1.25 keys per record (approvals, parcels, history heads of every pseudonym, ...).
        let approvals: Vec<String> = randoms(14)
            .take(QUERIES)
            .map(|r| format!("BP-2026-{:010}", (r % n) / 4 * 4))
            .collect();
        let keys: Vec<Vec<u8>> = approvals
            .iter()
            .map(|a| ledger::state::keys::approval(a))
            .collect();
        group.bench_function("state_proof_present", |b| {
            b.iter(|| {
                let k = &keys[next()];
                black_box(chain.store.prove_state(&[k]).expect("proof"))
            })
        });
        group.bench_function("state_proof_absent", |b| {
            b.iter(|| {
                let mut k = keys[next()].clone();
                k.push(b'x');
                black_box(chain.store.prove_state(&[&k]).expect("proof"))
            })
        });
        group.bench_function("status_bundle_approval", |b| {
            b.iter(|| {
                let s = ledger::status::Subject::Approval(approvals[next()].clone());
                black_box(
                    chain
                        .store
                        .status_bundle(&genesis, &s, 1000)
                        .expect("bundle")
                        .expect("a block"),
                )
            })
        });
        let statuses: Vec<ledger::status::StatusBundle> = approvals[..BUNDLES]
            .iter()
            .map(|a| {
                let s = ledger::status::Subject::Approval(a.clone());
                chain
                    .store
                    .status_bundle(&genesis, &s, 1000)
                    .unwrap()
                    .unwrap()
            })
            .collect();
        eprintln!(
            "status bundle: {} bytes of JSON, {} state siblings",
            serde_json::to_string(&statuses[0])
                .map(|j| j.len())
                .unwrap_or(0),
            statuses[0].state[0].proof.siblings.len()
        );
        group.bench_function("status_bundle_verify", |b| {
            b.iter(|| {
                j = (j + 1) % BUNDLES;
                black_box(statuses[j].verify(&genesis).expect("verifies"))
            })
        });
        // Many bundles of one height through one verifier, as a portal or a bank checks
        // them: the certificate is verified once.
        let verifier = ledger::status::StatusVerifier::new(&genesis);
        group.bench_function("status_bundle_verify_with_verifier", |b| {
            b.iter(|| {
                j = (j + 1) % BUNDLES;
                black_box(verifier.verify(&statuses[j]).expect("verifies"))
            })
        });
    }
    group.finish();

    // Many bundles at once, as a portal or an auditor checks them: records of the 4 latest
    // blocks, one fresh verifier per batch (certificates verified once per block, record
    // signatures in one batch). Throughput is per bundle.
    let recent: Vec<ProofBundle> = randoms(13)
        .take(MANY)
        .map(|r| {
            let tail = (4 * common::BLOCK_TXS).min(chain.ids.len());
            let id = chain.ids[chain.ids.len() - 1 - (r as usize % tail)];
            chain.store.proof_bundle(&genesis, &id).unwrap().unwrap()
        })
        .collect();
    let mut group = c.benchmark_group(format!("store/{}k_records", n / 1000));
    group.throughput(Throughput::Elements(MANY as u64));
    group.bench_function("bundle_verify_many_256_of_4_blocks", |b| {
        b.iter(|| {
            let verifier = Verifier::new(&genesis).expect("genesis");
            let results = verifier.verify_many(&recent);
            assert!(results.iter().all(Result::is_ok));
            black_box(results)
        })
    });
    group.finish();

    // Block commits: each iteration commits the next block of 1,000 fresh transactions in
    // one synced batch. Building the block (signing, verifying, executing) is not timed.
    let mut group = c.benchmark_group("store/commit_block");
    group.throughput(Throughput::Elements(common::BLOCK_TXS as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("1000_txs_synced", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let (executed, cert) = chain.next_block();
                let started = Instant::now();
                chain.commit_built(&executed, &cert);
                timed += started.elapsed();
            }
            timed
        })
    });
    group.finish();
}

criterion_group!(benches, bench_store);
criterion_main!(benches);
