//! The state machine on one core: signed transactions verified (one batch) and applied
//! with `BlockExecutor::apply` — on an in-memory state and on the RocksDB store's state —
//! and whole blocks built with `chain::build_block` (1,000 transactions: application,
//! history-log appends, tx root, state root).
//!
//! ```sh
//! cargo bench --workspace --bench execute   # (-p ledger alone would rebuild RocksDB with other features)
//! ```
//!
//! Target (issue 2): verify+apply ≥ 30,000 tx/s on one core. Throughput is per
//! transaction (`elem/s`). The transactions are the mixed ~300-byte records of
//! `benches/common` (approvals, land registrations, data-access events, anchors), from 8
//! signers in turn, on top of a block that registered the catalogue.

mod common;

use common::{BLOCK_TXS, Fixture, mean_size, verify};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ledger::chain::ChainTip;
use ledger::execute::{BlockContext, BlockExecutor, VerifiedTx, verify_batch};
use ledger::state::{MemState, StateRead};
use ledger::tx::SignedTx;
use std::hint::black_box;

/// Transactions per measured block of verify+apply.
const APPLY_TXS: usize = 1024;

/// A state with the catalogue block applied, its tip, and the next transactions.
struct Prepared {
    fixture: Fixture,
    mem: MemState,
    tip: ChainTip,
}

fn prepared() -> Prepared {
    let mut fixture = Fixture::new();
    let (mut mem, tip) = fixture.genesis_mem();
    let catalog = verify(fixture.catalog_txs());
    let executed = fixture.build(&mem, &tip, catalog);
    mem.commit(&executed.writes, executed.tree.as_ref());
    let tip = tip.after(&executed);
    Prepared { fixture, mem, tip }
}

fn context(tip: &ChainTip) -> BlockContext {
    tip.next_context(tip.time_ms + 1000)
}

/// Verifies `txs` in one batch and applies them in order on `base`.
fn verify_and_apply<B: StateRead>(base: B, ctx: BlockContext, txs: Vec<SignedTx>) {
    let mut ex = BlockExecutor::new(base, ctx);
    for v in verify_batch(txs) {
        let vtx = v.expect("valid signature");
        ex.apply(&vtx).expect("applies");
    }
    black_box(ex.into_writes());
}

fn apply_only<B: StateRead>(base: B, ctx: BlockContext, txs: &[VerifiedTx]) {
    let mut ex = BlockExecutor::new(base, ctx);
    for vtx in txs {
        ex.apply(vtx).expect("applies");
    }
    black_box(ex.into_writes());
}

fn bench_memstate(c: &mut Criterion) {
    let mut p = prepared();
    let txs = p.fixture.next_txs(APPLY_TXS);
    eprintln!(
        "fixture: {} transactions, mean {:.0} bytes",
        txs.len(),
        mean_size(&txs)
    );
    let verified = verify(txs.clone());
    let mut group = c.benchmark_group("execute/mem_state");
    group.throughput(Throughput::Elements(APPLY_TXS as u64));
    group.bench_function("verify_batch_and_apply", |b| {
        b.iter_batched(
            || txs.clone(),
            |t| verify_and_apply(&p.mem, context(&p.tip), t),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("apply_only", |b| {
        b.iter(|| apply_only(&p.mem, context(&p.tip), &verified))
    });
    group.finish();

    // A whole block as the proposer builds it.
    // The first 1,000 of the same transactions: they apply on top of the same state.
    let block = verified[..BLOCK_TXS].to_vec();
    let mut group = c.benchmark_group("execute/build_block");
    group.throughput(Throughput::Elements(BLOCK_TXS as u64));
    group.sample_size(20);
    group.bench_function("1000_txs_mem_state", |b| {
        b.iter_batched(
            || block.clone(),
            |t| black_box(p.fixture.build(&p.mem, &p.tip, t)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

#[cfg(feature = "rocksdb")]
fn bench_store_state(c: &mut Criterion) {
    // The same transactions on top of a store holding 100 blocks of them (so reads go to
    // RocksDB's memtable and files, with bloom filters, as in a node).
    let mut chain = common::StoreChain::new();
    chain.grow_to(100 * BLOCK_TXS);
    let txs = chain.fixture.next_txs(APPLY_TXS);
    let verified = verify(txs.clone());
    let tip = chain.tip.clone();
    let mut group = c.benchmark_group("execute/store_state");
    group.throughput(Throughput::Elements(APPLY_TXS as u64));
    group.measurement_time(std::time::Duration::from_secs(8));
    group.bench_function("verify_batch_and_apply", |b| {
        b.iter_batched(
            || txs.clone(),
            |t| verify_and_apply(chain.store.state(), context(&tip), t),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("apply_only", |b| {
        b.iter(|| apply_only(chain.store.state(), context(&tip), &verified))
    });
    group.finish();
    let block = verified[..BLOCK_TXS].to_vec();
    let mut group = c.benchmark_group("execute/build_block");
    group.throughput(Throughput::Elements(BLOCK_TXS as u64));
    group.sample_size(20);
    group.bench_function("1000_txs_store_state", |b| {
        b.iter_batched(
            || block.clone(),
            |t| black_box(chain.fixture.build(chain.store.state(), &tip, t)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

#[cfg(not(feature = "rocksdb"))]
fn bench_store_state(_: &mut Criterion) {}

criterion_group!(benches, bench_memstate, bench_store_state);
criterion_main!(benches);
