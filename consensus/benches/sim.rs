//! Throughput of the state machine in the simulator, without faults: heights decided per
//! second (criterion's "elem/s") with 4 and 7 validators, with every signature made and
//! verified for real. Messages per height are printed before each benchmark.
//!
//! `cargo bench -p consensus --bench sim -- --quick`

use consensus::sim::{self, Scenario, SimConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const HEIGHTS: u64 = 20;

fn heights_per_second(c: &mut Criterion) {
    let mut group = c.benchmark_group("sim_clean");
    group.sample_size(10);
    for n in [4usize, 7] {
        let cfg = SimConfig {
            scenario: Scenario::Clean,
            seed: 1,
            heights: HEIGHTS,
            validators: Some(n),
        };
        let report = match sim::run(&cfg) {
            Ok(r) => r,
            Err(f) => panic!("{f}"),
        };
        println!(
            "{n} validators: per height {:.1} broadcasts (signed messages, each to {} peers), {:.1} consensus messages sent (incl. re-gossip), {:.1} packets (incl. status and sync); {:.0} ms virtual per height",
            report.broadcasts as f64 / HEIGHTS as f64,
            n - 1,
            report.consensus_messages_sent as f64 / HEIGHTS as f64,
            report.packets_sent as f64 / HEIGHTS as f64,
            report.virtual_ms as f64 / HEIGHTS as f64,
        );
        group.throughput(Throughput::Elements(HEIGHTS));
        group.bench_function(format!("{n}_validators_{HEIGHTS}_heights"), |b| {
            b.iter(|| black_box(sim::run(black_box(&cfg))))
        });
    }
    group.finish();
}

criterion_group!(benches, heights_per_second);
criterion_main!(benches);
