//! The simulator tier: many seeded runs of every scenario, each checked for agreement,
//! validity, liveness, accountability, signing safety, certificates and the memory bound
//! (see `consensus::sim`).
//!
//! * `SIM_SEEDS=N` runs N seeds per scenario (default 50: 350 runs of 30 heights);
//! * `SIM_SEED_START=S` starts at seed S (default 0); `SIM_HEIGHTS=H` (default 30);
//! * a failure prints its seed and the command that replays it:
//!   `SIM_SEED=1234 SIM_SCENARIO=partition SIM_HEIGHTS=30 cargo test --release -p consensus --test sim -- replay --nocapture`.

use consensus::sim::{self, Scenario, SimConfig, SimReport};

const DEFAULT_SEEDS_PER_SCENARIO: u64 = 50;
const DEFAULT_HEIGHTS: u64 = 30;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn run_scenario(scenario: Scenario) {
    let heights = env_u64("SIM_HEIGHTS", DEFAULT_HEIGHTS);
    let count = env_u64("SIM_SEEDS", DEFAULT_SEEDS_PER_SCENARIO);
    let start = env_u64("SIM_SEED_START", 0);
    let mut failures = Vec::new();
    let mut reports: Vec<SimReport> = Vec::new();
    for seed in start..start + count {
        match sim::run(&SimConfig::new(scenario, seed, heights)) {
            Ok(r) => reports.push(r),
            Err(f) => {
                eprintln!("{f}");
                failures.push(f);
            }
        }
    }
    let decided: u64 = reports.iter().map(|r| r.heights).sum();
    let max_round = reports
        .iter()
        .map(|r| r.max_decision_round)
        .max()
        .unwrap_or(0);
    let evidence: u64 = reports.iter().map(|r| r.evidence).sum();
    let crashes: u64 = reports.iter().map(|r| r.crashes).sum();
    let msgs: u64 = reports.iter().map(|r| r.consensus_messages_sent).sum();
    let settled: u64 = reports.iter().map(|r| r.settled_heights).sum();
    println!(
        "{}: {} runs passed, {} failed; {decided} heights decided ({settled} checked against the round bound); max decision round {max_round}; {evidence} evidence; {crashes} crashes; {:.0} consensus messages per height",
        scenario.name(),
        reports.len(),
        failures.len(),
        msgs as f64 / decided.max(1) as f64,
    );
    if let Some(first) = failures.first() {
        panic!(
            "{} of {count} runs of {} failed; first:\n{first}",
            failures.len(),
            scenario.name()
        );
    }
    assert_eq!(reports.len() as u64, count);
    assert!(reports.iter().all(|r| r.heights == heights));
}

#[test]
fn clean() {
    run_scenario(Scenario::Clean);
}

#[test]
fn lossy() {
    run_scenario(Scenario::Lossy);
}

#[test]
fn partition() {
    run_scenario(Scenario::Partition);
}

#[test]
fn crash() {
    run_scenario(Scenario::Crash);
}

#[test]
fn byzantine() {
    run_scenario(Scenario::Byzantine);
}

#[test]
fn weighted() {
    run_scenario(Scenario::Weighted);
}

#[test]
fn chaos() {
    run_scenario(Scenario::Chaos);
}

/// Replays one seed (`SIM_SEED`, `SIM_SCENARIO`, `SIM_HEIGHTS`; by default seed 1 of
/// `chaos`) twice and checks that both runs are identical, event for event.
#[test]
fn replay() {
    let seed = env_u64("SIM_SEED", 1);
    let scenario = match std::env::var("SIM_SCENARIO") {
        Ok(name) => Scenario::from_name(&name).unwrap_or_else(|| {
            panic!(
                "SIM_SCENARIO={name:?}: expected one of {:?}",
                Scenario::ALL.map(Scenario::name)
            )
        }),
        Err(_) => Scenario::Chaos,
    };
    let heights = env_u64("SIM_HEIGHTS", DEFAULT_HEIGHTS);
    let cfg = SimConfig::new(scenario, seed, heights);
    let first = sim::run(&cfg);
    let second = sim::run(&cfg);
    let (a, b) = match (&first, &second) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(a), Err(b)) => {
            assert_eq!(a.reason, b.reason, "the two replays failed differently");
            (&*a.report, &*b.report)
        }
        _ => panic!("one replay passed and the other failed: {first:?} / {second:?}"),
    };
    assert_eq!(a, b, "the two replays differ");
    println!("{a:#?}");
    if let Err(f) = first {
        panic!("{f}");
    }
}

#[test]
fn replay_command_is_one_line_with_the_seed() {
    let cmd = sim::replay_command(Scenario::Partition, 1234, 30);
    assert_eq!(
        cmd,
        "SIM_SEED=1234 SIM_SCENARIO=partition SIM_HEIGHTS=30 cargo test --release -p consensus --test sim -- replay --nocapture"
    );
    for s in Scenario::ALL {
        assert_eq!(Scenario::from_name(s.name()), Some(s));
    }
}
