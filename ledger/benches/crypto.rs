//! Signatures and encoding on one core: ed25519 signing, single verification, batch
//! verification (64 and 1,024 signatures, through the raw [`BatchVerifier`] and through
//! `execute::verify_batch` on signed transactions), and the canonical encoding and
//! decoding of a signed transaction.
//!
//! ```sh
//! cargo bench -p ledger --no-default-features --bench crypto
//! ```
//!
//! Throughput is per signature (or per transaction): criterion prints `elem/s`.

mod common;

use common::{Fixture, mean_size};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ledger::codec;
use ledger::crypto::BatchVerifier;
use ledger::execute::{VerifiedTx, verify_batch};
use ledger::hash::domain;
use ledger::tx::SignedTx;
use std::hint::black_box;

/// Batch sizes measured.
const BATCHES: [usize; 2] = [64, 1024];

fn signed(n: usize) -> Vec<SignedTx> {
    let mut f = Fixture::new();
    let txs = f.next_txs(n);
    eprintln!(
        "fixture: {n} signed transactions, mean {:.0} bytes",
        mean_size(&txs)
    );
    txs
}

fn bench_signatures(c: &mut Criterion) {
    let txs = signed(1024);
    let messages: Vec<Vec<u8>> = txs.iter().map(|s| codec::encode(&s.tx)).collect();
    let mut group = c.benchmark_group("ed25519");
    group.throughput(Throughput::Elements(1));
    let key = ledger::crypto::SecretKey::from_seed(&[7; 32]);
    group.bench_function("sign", |b| {
        b.iter(|| black_box(key.sign(domain::TX_SIGN, black_box(&messages[0]))))
    });
    let mut k = 0usize;
    group.bench_function("verify_single", |b| {
        b.iter(|| {
            k = (k + 1) % txs.len();
            let s = &txs[k];
            s.tx.signer
                .verify(domain::TX_SIGN, &messages[k], &s.signature)
                .expect("valid")
        })
    });
    for n in BATCHES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("verify_batch_{n}"), |b| {
            b.iter(|| {
                let mut batch = BatchVerifier::with_capacity(n);
                for (s, m) in txs[..n].iter().zip(&messages) {
                    batch.push(&s.tx.signer, domain::TX_SIGN, m, &s.signature);
                }
                let verdicts = batch.verify();
                assert!(verdicts.iter().all(Result::is_ok));
            })
        });
    }
    group.finish();

    // The node's path: signed transactions in, verified transactions (with their canonical
    // bytes and record ids) out.
    let mut group = c.benchmark_group("verify_tx");
    group.throughput(Throughput::Elements(1));
    group.bench_function("single", |b| {
        b.iter_batched(
            || txs[0].clone(),
            |t| black_box(VerifiedTx::verify(t).expect("valid")),
            BatchSize::SmallInput,
        )
    });
    for n in BATCHES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("verify_batch_{n}"), |b| {
            b.iter_batched(
                || txs[..n].to_vec(),
                |batch| {
                    let out = verify_batch(batch);
                    assert!(out.iter().all(Result::is_ok));
                    black_box(out)
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn bench_encoding(c: &mut Criterion) {
    let txs = signed(256);
    let bytes: Vec<Vec<u8>> = txs.iter().map(SignedTx::encode).collect();
    let mut group = c.benchmark_group("signed_tx");
    group.throughput(Throughput::Elements(1));
    let mut k = 0usize;
    group.bench_function("encode", |b| {
        b.iter(|| {
            k = (k + 1) % txs.len();
            black_box(txs[k].encode())
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            k = (k + 1) % bytes.len();
            black_box(SignedTx::decode(&bytes[k]).expect("canonical"))
        })
    });
    group.bench_function("id", |b| {
        b.iter(|| {
            k = (k + 1) % bytes.len();
            black_box(ledger::tx::tx_id(&bytes[k]))
        })
    });
    group.finish();
}

criterion_group!(benches, bench_signatures, bench_encoding);
criterion_main!(benches);
