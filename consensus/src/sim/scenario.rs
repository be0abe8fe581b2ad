//! Scenarios, and the fault plan a seed draws for one.

use super::rng::Rng;

/// A family of runs. Every parameter of a run (validator count, powers, who is faulty, the
/// network's behaviour, when it stabilises) is drawn from the seed within the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scenario {
    /// No faults: per-link delays with jitter only (also the benchmark's network).
    Clean,
    /// Drops, duplicates and long delays (reordering) until the network stabilises.
    Lossy,
    /// Partitions that form and heal until the network stabilises.
    Partition,
    /// Honest validators crash (some right after persisting, before sending) and restart
    /// from their persisted state.
    Crash,
    /// f validators by power are byzantine: equivocator, silent, garbage sender.
    Byzantine,
    /// Unequal voting power, with byzantine validators holding up to f of it.
    Weighted,
    /// All of the above at once.
    Chaos,
}

impl Scenario {
    /// Every scenario, in the order the CI runs them.
    pub const ALL: [Scenario; 7] = [
        Scenario::Clean,
        Scenario::Lossy,
        Scenario::Partition,
        Scenario::Crash,
        Scenario::Byzantine,
        Scenario::Weighted,
        Scenario::Chaos,
    ];

    /// The name used by `SIM_SCENARIO`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Clean => "clean",
            Scenario::Lossy => "lossy",
            Scenario::Partition => "partition",
            Scenario::Crash => "crash",
            Scenario::Byzantine => "byzantine",
            Scenario::Weighted => "weighted",
            Scenario::Chaos => "chaos",
        }
    }

    /// Parses [`Scenario::name`].
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// A per-scenario salt, so that seed 1 of two scenarios are unrelated runs.
    fn salt(self) -> u64 {
        match self {
            Scenario::Clean => 0x11,
            Scenario::Lossy => 0x22,
            Scenario::Partition => 0x33,
            Scenario::Crash => 0x44,
            Scenario::Byzantine => 0x55,
            Scenario::Weighted => 0x66,
            Scenario::Chaos => 0x77,
        }
    }
}

/// How a validator behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Follows the protocol (may crash and restart).
    Honest,
    /// Never sends anything.
    Silent,
    /// Runs the protocol but signs two proposals and double votes, sends each to a part of
    /// the network (some peers get both), and sometimes proposes an invalid block.
    Equivocator,
    /// Sends structurally wrong messages: bad signatures, wrong heights, unknown keys,
    /// impersonation, far-future rounds, proposals out of turn, bad proof-of-lock rounds.
    Garbage,
}

/// A partition: `group[i]` is validator i's side; messages across sides are lost.
#[derive(Clone, Debug)]
pub(crate) struct PartitionEpisode {
    pub(crate) start_ms: u64,
    pub(crate) end_ms: u64,
    pub(crate) group: Vec<u8>,
}

/// A crash of validator `node` at `at_ms`, restarting `down_ms` later.
#[derive(Clone, Debug)]
pub(crate) struct CrashEpisode {
    pub(crate) node: usize,
    pub(crate) at_ms: u64,
    pub(crate) down_ms: u64,
}

/// Everything a seed decides about a run.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) powers: Vec<u64>,
    pub(crate) roles: Vec<Role>,
    /// From this time on: no drops, no partitions, no crashes, delays bounded.
    pub(crate) gst_ms: u64,
    pub(crate) drop_prob: f64,
    pub(crate) dup_prob: f64,
    pub(crate) long_delay_prob: f64,
    pub(crate) partitions: Vec<PartitionEpisode>,
    pub(crate) crashes: Vec<CrashEpisode>,
    /// Probability that an honest node crashes right after a `Persist`, before the rest of
    /// the batch (its broadcast) leaves (before GST only).
    pub(crate) crash_after_persist_prob: f64,
    /// Probability that a byzantine proposer's block is invalid.
    pub(crate) invalid_block_prob: f64,
    /// Probability that an equivocator equivocates on a given message.
    pub(crate) equivocate_prob: f64,
}

impl Plan {
    /// Draws the plan of `(scenario, seed)`. The same pair always gives the same plan.
    /// `validators` overrides the drawn validator count.
    pub(crate) fn draw(scenario: Scenario, seed: u64, validators: Option<usize>) -> (Plan, Rng) {
        let mut rng = Rng::new(seed ^ scenario.salt().wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let drawn = *rng.pick(&[4usize, 7, 10]).unwrap_or(&4);
        let n = validators.unwrap_or(drawn).clamp(1, 64);
        let mut plan = Plan {
            powers: vec![1; n],
            roles: vec![Role::Honest; n],
            gst_ms: 0,
            drop_prob: 0.0,
            dup_prob: 0.0,
            long_delay_prob: 0.0,
            partitions: Vec::new(),
            crashes: Vec::new(),
            crash_after_persist_prob: 0.0,
            invalid_block_prob: 0.0,
            equivocate_prob: 0.0,
        };
        let weighted = matches!(scenario, Scenario::Weighted | Scenario::Chaos);
        let byzantine = matches!(
            scenario,
            Scenario::Byzantine | Scenario::Weighted | Scenario::Chaos
        );
        if weighted {
            for p in plan.powers.iter_mut() {
                *p = rng.range(1, 5);
            }
        }
        if byzantine {
            plan.pick_byzantine(&mut rng);
            plan.invalid_block_prob = 0.3;
            plan.equivocate_prob = 0.6;
        }
        match scenario {
            Scenario::Clean => {}
            Scenario::Lossy => {
                plan.gst_ms = rng.range(3_000, 10_000);
                plan.drop_prob = rng.range(5, 30) as f64 / 100.0;
                plan.dup_prob = rng.range(5, 20) as f64 / 100.0;
                plan.long_delay_prob = 0.1;
            }
            Scenario::Partition => {
                plan.gst_ms = rng.range(4_000, 12_000);
                plan.drop_prob = 0.02;
                plan.partitions = draw_partitions(&mut rng, n, plan.gst_ms);
            }
            Scenario::Crash => {
                plan.gst_ms = rng.range(4_000, 12_000);
                plan.dup_prob = 0.05;
                plan.crash_after_persist_prob = 0.02;
                plan.crashes = draw_crashes(&mut rng, &plan.roles, plan.gst_ms);
            }
            Scenario::Byzantine | Scenario::Weighted => {
                plan.gst_ms = rng.range(0, 5_000);
                plan.drop_prob = 0.05;
                plan.dup_prob = 0.05;
            }
            Scenario::Chaos => {
                plan.gst_ms = rng.range(5_000, 15_000);
                plan.drop_prob = rng.range(2, 15) as f64 / 100.0;
                plan.dup_prob = 0.1;
                plan.long_delay_prob = 0.05;
                plan.partitions = draw_partitions(&mut rng, n, plan.gst_ms);
                plan.crash_after_persist_prob = 0.01;
                plan.crashes = draw_crashes(&mut rng, &plan.roles, plan.gst_ms);
            }
        }
        (plan, rng)
    }

    /// Makes validators byzantine while their total power stays below a third: one of
    /// each kind in turn (equivocator, silent, garbage), in random order of validators.
    fn pick_byzantine(&mut self, rng: &mut Rng) {
        let total: u64 = self.powers.iter().sum();
        let mut order: Vec<usize> = (0..self.powers.len()).collect();
        rng.shuffle(&mut order);
        let kinds = [Role::Equivocator, Role::Silent, Role::Garbage];
        let mut faulty_power = 0u64;
        let mut next_kind = rng.below(3) as usize;
        for i in order {
            if 3 * (faulty_power + self.powers[i]) < total {
                faulty_power += self.powers[i];
                self.roles[i] = kinds[next_kind % kinds.len()];
                next_kind += 1;
            }
        }
    }
}

fn draw_partitions(rng: &mut Rng, n: usize, gst_ms: u64) -> Vec<PartitionEpisode> {
    let mut out = Vec::new();
    let mut t = rng.range(0, 1_000);
    let episodes = rng.range(1, 4);
    for _ in 0..episodes {
        if t >= gst_ms {
            break;
        }
        let end = (t + rng.range(500, 4_000)).min(gst_ms);
        let sides = rng.range(2, 3) as u8;
        let group: Vec<u8> = (0..n).map(|_| rng.below(u64::from(sides)) as u8).collect();
        out.push(PartitionEpisode {
            start_ms: t,
            end_ms: end,
            group,
        });
        t = end + rng.range(200, 2_000);
    }
    out
}

fn draw_crashes(rng: &mut Rng, roles: &[Role], gst_ms: u64) -> Vec<CrashEpisode> {
    let honest: Vec<usize> = (0..roles.len())
        .filter(|i| roles[*i] == Role::Honest)
        .collect();
    let mut out = Vec::new();
    for _ in 0..rng.range(1, 4) {
        let Some(&node) = rng.pick(&honest) else {
            break;
        };
        let at_ms = rng.range(0, gst_ms.saturating_sub(500));
        let down_ms = rng.range(100, 3_000).min(gst_ms.saturating_sub(at_ms));
        out.push(CrashEpisode {
            node,
            at_ms,
            down_ms,
        });
    }
    out
}
