//! The whole node in a deterministic simulation: the real driver core (candidate cache,
//! block dissemination, block sync, evidence, mempool, commit to a real RocksDB store,
//! signing-state file) on a simulated clock and network with delay, jitter, loss,
//! duplication and reordering, partitions, crashes and restarts, clock skew, and named
//! byzantine behaviours. See `docs/simulation.md`.
//!
//! `SIM_SEEDS=N` (default 200) seeds run, from `SIM_SEED_BASE` (default 0); each seed picks
//! a scenario and a validator count (4, 7 or 10). A failing seed prints the command that
//! replays it exactly.

mod world;

use ledger::tx::TxBody;
use std::collections::BTreeSet;
use world::{Behaviour, LiarKind, NetConditions, NodeSpec, World};

/// Heights every correct validator must commit after the network stabilises.
const LIVENESS_HEIGHTS: u64 = 4;
/// Simulated time allowed for them.
const LIVENESS_WINDOW_MS: u64 = 60_000;

fn honest(validator: bool) -> NodeSpec {
    NodeSpec {
        validator,
        behaviour: Behaviour::Honest,
        skew_ms: 0,
    }
}

fn byz(validator: bool, behaviour: Behaviour) -> NodeSpec {
    NodeSpec {
        validator,
        behaviour,
        skew_ms: 0,
    }
}

fn normal_net() -> NetConditions {
    NetConditions {
        delay_ms: (2, 40),
        loss: 0.01,
        dup: 0.02,
    }
}

/// `n` validators, the last `byzantine.len()` of them (at most f) replaced by the given
/// behaviours, plus correct followers and byzantine peers.
fn validators(n: usize, byzantine: &[Behaviour], peers: &[Behaviour]) -> Vec<NodeSpec> {
    assert!(byzantine.len() <= (n - 1) / 3);
    let mut v: Vec<NodeSpec> = (0..n - byzantine.len()).map(|_| honest(true)).collect();
    v.extend(byzantine.iter().map(|b| byz(true, *b)));
    v.push(honest(false));
    v.extend(peers.iter().map(|b| byz(false, *b)));
    v
}

type Plan = fn(&mut World, usize);

struct Scenario {
    name: &'static str,
    nodes: fn(usize) -> Vec<NodeSpec>,
    net: fn() -> NetConditions,
    /// Faults, run before the liveness phase (simulated time advances inside).
    plan: Plan,
}

fn run_for(w: &mut World, ms: u64) {
    let end = w.now + ms;
    w.run_until(end, |_| false);
}

fn plan_none(w: &mut World, _n: usize) {
    run_for(w, 3_000);
}

fn plan_partitions(w: &mut World, n: usize) {
    for _ in 0..3 {
        // Split the validators in two random halves (neither has a quorum when even).
        let mut side = BTreeSet::new();
        for i in 0..n {
            if w.seed.wrapping_add(i as u64 * 7 + w.now).is_multiple_of(2) {
                side.insert(i);
            }
        }
        for a in 0..w.nodes.len() {
            for b in a + 1..w.nodes.len() {
                if side.contains(&a) != side.contains(&b) {
                    w.cut.insert((a, b));
                }
            }
        }
        run_for(w, 2_000);
        w.cut.clear();
        run_for(w, 1_500);
    }
}

fn plan_crash_restart(w: &mut World, n: usize) {
    run_for(w, 1_500);
    let victim = (w.seed % n as u64) as usize;
    w.crash_at(victim, 0);
    run_for(w, 2_500);
    w.restart_at(victim, 0, false);
    run_for(w, 2_000);
}

fn plan_wipe(w: &mut World, n: usize) {
    run_for(w, 2_500);
    let victim = (w.seed % n as u64) as usize;
    w.restart_at(victim, 0, true);
    run_for(w, 3_000);
}

fn plan_restart_all(w: &mut World, n: usize) {
    run_for(w, 1_000);
    for round in 0..3u64 {
        // Everyone at once, at a moment that varies with the seed: often locked.
        run_for(
            w,
            200 + (w.seed.wrapping_mul(37).wrapping_add(round * 91)) % 400,
        );
        for i in 0..n {
            w.restart_at(i, 0, false);
        }
        run_for(w, 800);
    }
}

fn plan_isolate_then_heal(w: &mut World, _n: usize) {
    // Node 0 is cut off while the others commit, then must catch up by sync with the
    // liar among its peers.
    for b in 1..w.nodes.len() {
        w.cut.insert((0, b));
    }
    run_for(w, 3_500);
    w.cut.clear();
    run_for(w, 2_000);
}

fn skewed(n: usize) -> Vec<NodeSpec> {
    let mut v = validators(n, &[], &[]);
    for (i, s) in v.iter_mut().enumerate() {
        s.skew_ms = (i as i64 * 1_777 % 8_000) - 4_000;
    }
    v
}

fn f1(b: Behaviour) -> fn(usize) -> Vec<NodeSpec> {
    // One byzantine validator; function pointers cannot capture, so one per behaviour.
    match b {
        Behaviour::FutureRoundFlood => |n| validators(n, &[Behaviour::FutureRoundFlood], &[]),
        Behaviour::WrongProposer => |n| validators(n, &[Behaviour::WrongProposer], &[]),
        Behaviour::InvalidBlock => |n| validators(n, &[Behaviour::InvalidBlock], &[]),
        Behaviour::OversizedBlock => |n| validators(n, &[Behaviour::OversizedBlock], &[]),
        Behaviour::Equivocate => |n| validators(n, &[Behaviour::Equivocate], &[]),
        Behaviour::Silent => |n| validators(n, &[Behaviour::Silent], &[]),
        _ => unreachable!(),
    }
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "honest",
            nodes: |n| validators(n, &[], &[]),
            net: normal_net,
            plan: plan_none,
        },
        Scenario {
            name: "lossy_network",
            nodes: |n| validators(n, &[], &[]),
            net: || NetConditions {
                delay_ms: (1, 150),
                loss: 0.15,
                dup: 0.1,
            },
            plan: plan_none,
        },
        Scenario {
            name: "partitions",
            nodes: |n| validators(n, &[], &[]),
            net: normal_net,
            plan: plan_partitions,
        },
        Scenario {
            name: "crash_restart",
            nodes: |n| validators(n, &[], &[]),
            net: normal_net,
            plan: plan_crash_restart,
        },
        Scenario {
            name: "wipe_chain_store",
            nodes: |n| validators(n, &[], &[]),
            net: normal_net,
            plan: plan_wipe,
        },
        Scenario {
            name: "restart_all_locked",
            nodes: |n| validators(n, &[], &[]),
            net: normal_net,
            plan: plan_restart_all,
        },
        Scenario {
            name: "clock_skew",
            nodes: skewed,
            net: normal_net,
            plan: plan_none,
        },
        Scenario {
            name: "future_round_flood",
            nodes: f1(Behaviour::FutureRoundFlood),
            net: normal_net,
            plan: plan_none,
        },
        Scenario {
            name: "wrong_proposer",
            nodes: f1(Behaviour::WrongProposer),
            net: normal_net,
            plan: plan_none,
        },
        Scenario {
            name: "invalid_block",
            nodes: f1(Behaviour::InvalidBlock),
            net: normal_net,
            plan: plan_none,
        },
        Scenario {
            name: "oversized_block",
            nodes: f1(Behaviour::OversizedBlock),
            net: normal_net,
            plan: plan_none,
        },
        Scenario {
            name: "equivocation",
            nodes: f1(Behaviour::Equivocate),
            net: normal_net,
            plan: plan_none,
        },
        Scenario {
            name: "silent_validator",
            nodes: f1(Behaviour::Silent),
            net: normal_net,
            plan: plan_none,
        },
        Scenario {
            name: "sync_liar_silent",
            nodes: |n| validators(n, &[], &[Behaviour::SyncLiar(LiarKind::Silent)]),
            net: normal_net,
            plan: plan_isolate_then_heal,
        },
        Scenario {
            name: "sync_liar_slow",
            nodes: |n| validators(n, &[], &[Behaviour::SyncLiar(LiarKind::Slow)]),
            net: normal_net,
            plan: plan_isolate_then_heal,
        },
        Scenario {
            name: "sync_liar_partial",
            nodes: |n| validators(n, &[], &[Behaviour::SyncLiar(LiarKind::Partial)]),
            net: normal_net,
            plan: plan_isolate_then_heal,
        },
        Scenario {
            name: "sync_liar_invalid",
            nodes: |n| validators(n, &[], &[Behaviour::SyncLiar(LiarKind::Invalid)]),
            net: normal_net,
            plan: plan_isolate_then_heal,
        },
        Scenario {
            name: "evidence_spam",
            nodes: |n| validators(n, &[], &[Behaviour::EvidenceSpam]),
            net: normal_net,
            plan: plan_none,
        },
        Scenario {
            name: "replay_old_messages",
            nodes: |n| validators(n, &[], &[Behaviour::ReplayOld]),
            net: normal_net,
            plan: plan_partitions,
        },
        Scenario {
            name: "mixed",
            nodes: |n| {
                let byzantine: &[Behaviour] = if n >= 7 {
                    &[Behaviour::FutureRoundFlood, Behaviour::Equivocate]
                } else {
                    &[Behaviour::FutureRoundFlood]
                };
                validators(
                    n,
                    byzantine,
                    &[
                        Behaviour::SyncLiar(LiarKind::Invalid),
                        Behaviour::EvidenceSpam,
                        Behaviour::ReplayOld,
                    ],
                )
            },
            net: normal_net,
            plan: plan_crash_restart,
        },
    ]
}

/// What one run found.
struct Outcome {
    failures: Vec<String>,
    heights: u64,
}

/// The scenario a seed picks.
fn scenario_of(seed: u64) -> &'static str {
    let all = scenarios();
    all[(seed % all.len() as u64) as usize].name
}

fn run_one(seed: u64) -> (String, usize, Outcome) {
    let all = scenarios();
    let sc = &all[(seed % all.len() as u64) as usize];
    let n = [4usize, 7, 4, 10, 4, 7][((seed / all.len() as u64) % 6) as usize];
    let mut w = World::new(seed, (sc.nodes)(n), (sc.net)());
    (sc.plan)(&mut w, n);
    // The network stabilises: no cuts, every node runs again (but the silent).
    w.cut.clear();
    w.net = normal_net();
    for i in 0..w.nodes.len() {
        if !w.running(i) && w.nodes[i].spec.behaviour != Behaviour::Silent {
            w.restart_at(i, 0, false);
        }
    }
    let correct: Vec<usize> = (0..n)
        .filter(|&i| w.nodes[i].spec.behaviour.honest())
        .collect();
    run_for(&mut w, 10);
    let base = correct
        .iter()
        .filter_map(|&i| w.height(i))
        .max()
        .unwrap_or(0);
    let target = base + LIVENESS_HEIGHTS;
    let end = w.now + LIVENESS_WINDOW_MS;
    let live = w.run_until(end, |w| {
        correct
            .iter()
            .all(|&i| w.height(i).is_some_and(|h| h >= target))
    });
    w.submitting = false;
    let mut failures = Vec::new();
    if !live {
        let hs: Vec<_> = correct.iter().map(|&i| (i, w.height(i))).collect();
        failures.push(format!(
            "liveness: correct validators did not all reach height {target} within {LIVENESS_WINDOW_MS} ms after stabilising (heights {hs:?})"
        ));
    }
    check(&w, &correct, &mut failures);
    let heights = correct
        .iter()
        .filter_map(|&i| w.height(i))
        .min()
        .unwrap_or(0);
    (sc.name.to_string(), n, Outcome { failures, heights })
}

fn check(w: &World, correct: &[usize], failures: &mut Vec<String>) {
    let r = &w.record;
    failures.extend(r.double_signs.iter().map(|s| format!("double sign: {s}")));
    failures.extend(
        r.honest_strikes
            .iter()
            .take(5)
            .map(|s| format!("strike: {s}")),
    );
    failures.extend(r.fatal.iter().map(|s| format!("fatal: {s}")));
    failures.extend(
        r.spam_relayed
            .iter()
            .take(5)
            .map(|s| format!("evidence spam: {s}")),
    );
    failures.extend(r.bounds.iter().take(5).map(|s| format!("bound: {s}")));
    failures.extend(
        r.unpersisted
            .iter()
            .take(5)
            .map(|s| format!("durability: {s}")),
    );
    // Agreement: one chain among correct nodes (each a prefix of the longest).
    let chains: Vec<(usize, Vec<ledger::hash::Hash>)> = (0..w.nodes.len())
        .filter(|&i| w.nodes[i].spec.behaviour.honest())
        .map(|i| (i, w.chain(i)))
        .collect();
    if let Some((li, longest)) = chains.iter().max_by_key(|(_, c)| c.len()) {
        for (i, c) in &chains {
            if longest[..c.len()] != c[..] {
                failures.push(format!(
                    "agreement: node {i}'s chain differs from node {li}'s"
                ));
            }
        }
        // Validity: nothing a byzantine proposer tampered with was committed, and the
        // longest chain replays from genesis to the same state in a fresh store.
        for h in longest {
            if r.forbidden_blocks.contains(h) {
                failures.push(format!("validity: tampered block {h} was committed"));
            }
        }
        if let Some(store) = w.store(*li) {
            if let Err(e) = replay(w, store) {
                failures.push(format!("validity: replay of node {li}'s chain: {e}"));
            }
            // Accountability: evidence names only real equivocators.
            let tip = store.stored_tip().map(|t| t.height).unwrap_or(0);
            let mut named = BTreeSet::new();
            for h in 1..=tip {
                if let Ok(Some(b)) = store.committed_block(h) {
                    for t in &b.block.txs {
                        if let TxBody::Evidence(ev) = &t.tx.body {
                            named.insert(ev.key().validator);
                        }
                    }
                }
            }
            // ... and every validator that equivocated on every prevote is named.
            for n in &w.nodes {
                let k = n.key.public_key();
                if n.spec.behaviour == Behaviour::Equivocate && !named.contains(&k) {
                    failures.push(format!(
                        "accountability: equivocator {k} is named by no evidence"
                    ));
                }
            }
            for v in &named {
                if !r.equivocators.contains(v) {
                    failures.push(format!(
                        "accountability: evidence names {v}, who did not equivocate"
                    ));
                }
            }
        }
    }
    let _ = correct;
}

/// Re-executes a chain from genesis into a fresh store, checking every certificate and
/// the state root of every block.
fn replay(w: &World, store: &ledger::store::Store) -> Result<(), String> {
    use ledger::chain::{execute_block, validators_for};
    use ledger::execute::VerifiedTx;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let fresh = ledger::store::Store::open(dir.path(), &w.genesis).map_err(|e| e.to_string())?;
    let tip = store.stored_tip().map_err(|e| e.to_string())?.height;
    let mut chain_tip = fresh.load_tip().map_err(|e| e.to_string())?;
    for h in 1..=tip {
        let cb = store
            .committed_block(h)
            .map_err(|e| e.to_string())?
            .ok_or(format!("block {h} missing"))?;
        let (set, _) = validators_for(&fresh.state(), h).map_err(|e| e.to_string())?;
        cb.commit
            .verify(world::CHAIN_ID, h, &cb.block.hash(), &set)
            .map_err(|e| format!("height {h}: {e}"))?;
        let txs: Result<Vec<_>, _> = cb
            .block
            .txs
            .iter()
            .cloned()
            .map(VerifiedTx::verify)
            .collect();
        let txs = txs.map_err(|e| format!("height {h}: {e}"))?;
        let executed = execute_block(fresh.state(), &chain_tip, &cb.block.header, txs)
            .map_err(|e| format!("height {h}: {e}"))?;
        fresh
            .commit_block(&executed, &cb.commit)
            .map_err(|e| e.to_string())?;
        chain_tip = chain_tip.after(&executed);
    }
    Ok(())
}

fn replay_command(seed: u64) -> String {
    format!(
        "SIM_SEED_BASE={seed} SIM_SEEDS=1 cargo nextest run --release --workspace -E 'package(govledger-node) and binary(sim)' --no-capture"
    )
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn whole_node_seeds() {
    let seeds = env_u64("SIM_SEEDS", 200);
    let base = env_u64("SIM_SEED_BASE", 0);
    // `SIM_SCENARIO=name`: only the seeds (of the range) that pick that scenario.
    let only = std::env::var("SIM_SCENARIO").ok();
    if let Some(o) = &only {
        assert!(
            scenarios().iter().any(|s| s.name == o),
            "SIM_SCENARIO={o} names no scenario"
        );
    }
    let started = std::time::Instant::now();
    let next = std::sync::atomic::AtomicU64::new(base);
    let results = std::sync::Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if seed >= base + seeds {
                        return;
                    }
                    if only.as_deref().is_some_and(|o| o != scenario_of(seed)) {
                        continue;
                    }
                    let t = std::time::Instant::now();
                    let (name, n, out) = run_one(seed);
                    results.lock().unwrap_or_else(|p| p.into_inner()).push((
                        seed,
                        name,
                        n,
                        out,
                        t.elapsed(),
                    ));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|r| r.0);
    let mut failed = 0;
    for (seed, name, n, out, took) in &results {
        if out.failures.is_empty() {
            println!(
                "seed {seed:>5} {name:<22} {n:>2} validators: ok ({} heights, {:.1} s)",
                out.heights,
                took.as_secs_f64()
            );
        } else {
            failed += 1;
            println!("seed {seed:>5} {name:<22} {n:>2} validators: FAILED");
            for f in &out.failures {
                println!("    {f}");
            }
            println!("    replay: {}", replay_command(*seed));
        }
    }
    println!(
        "{} seeds, {failed} failed, in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        failed, 0,
        "{failed} whole-node simulation seeds failed (replay commands above)"
    );
}

/// The same seed gives the same run: same chain, same effects.
#[test]
fn a_seed_replays_exactly() {
    let run = |seed| {
        let all = scenarios();
        let sc = &all[(seed % all.len() as u64) as usize];
        let mut w = World::new(seed, (sc.nodes)(4), (sc.net)());
        (sc.plan)(&mut w, 4);
        (w.chain(0), w.record.effects, w.record.signed.len())
    };
    // A byzantine scenario with crashes (mixed) and one with partitions.
    for seed in [19u64, 2] {
        let a = run(seed);
        let b = run(seed);
        assert!(!a.0.is_empty(), "seed {seed} committed nothing");
        assert_eq!(a, b, "seed {seed} did not replay exactly");
    }
}
