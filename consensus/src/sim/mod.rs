//! A deterministic discrete-event network simulator for the consensus state machine
//! (feature `sim`, test tooling only).
//!
//! N validators run on one thread against a virtual clock. Everything random (validator
//! count, powers, roles, link delays, drops, duplicates, reordering, partitions, crashes)
//! is drawn from one seeded PRNG, so a `(scenario, seed)` pair always produces the same
//! event trace, summarised by [`SimReport::trace_hash`]. A failing run prints its seed and
//! the one command that replays it ([`replay_command`]).
//!
//! Each simulated node does what `govledger-node` will do around [`crate::Consensus`]:
//! writes `Persist` outputs durably before the rest of the batch, fires timeouts, builds
//! and validates blocks (here just hashes whose validity the simulator records), commits
//! decisions and starts the next height, re-gossips its own messages of the current
//! height, and answers a peer's status with the commit certificate of the height the peer
//! is stuck at (block sync).
//!
//! What is checked, and where: see `world.rs` (as events happen) and `checks.rs` (at the
//! end).

mod byzantine;
mod checks;
pub mod network;
pub mod rng;
mod scenario;
mod world;

pub use scenario::{Role, Scenario};
pub use world::{
    CHAIN_ID, GOSSIP_INTERVAL_MS, HEIGHT_BUDGET_MS, ROUND_SLACK, SETTLE_MS, sim_timeouts,
};

use std::collections::BTreeMap;
use std::fmt;

/// One run: a scenario, a seed, and how many heights every honest validator must commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// The family of faults.
    pub scenario: Scenario,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Heights to decide.
    pub heights: u64,
    /// Validator count; `None` draws 4, 7 or 10 from the seed.
    pub validators: Option<usize>,
}

impl SimConfig {
    /// A run of `scenario` with `seed`, deciding `heights` heights, with a drawn
    /// validator count.
    pub fn new(scenario: Scenario, seed: u64, heights: u64) -> Self {
        SimConfig {
            scenario,
            seed,
            heights,
            validators: None,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimReport {
    /// The scenario.
    pub scenario: Scenario,
    /// The seed.
    pub seed: u64,
    /// Number of validators.
    pub validators: usize,
    /// Role of each validator.
    pub roles: Vec<Role>,
    /// Voting power of each validator.
    pub powers: Vec<u64>,
    /// Heights every honest validator committed.
    pub heights: u64,
    /// When the network stabilised (virtual ms).
    pub gst_ms: u64,
    /// Virtual time at which the last honest validator committed the last height.
    pub virtual_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Packets sent (consensus messages, status, certificates).
    pub packets_sent: u64,
    /// Consensus messages (proposals and votes) sent, counting each recipient, including
    /// re-gossip.
    pub consensus_messages_sent: u64,
    /// `Broadcast` outputs of the state machines: messages signed (or re-sent after a
    /// restart), each sent to every other validator.
    pub broadcasts: u64,
    /// Heights started long enough after GST that the round bound was checked on them.
    pub settled_heights: u64,
    /// The highest round any height was decided in.
    pub max_decision_round: u32,
    /// Evidence outputs, over all validators.
    pub evidence: u64,
    /// Crashes of honest validators.
    pub crashes: u64,
    /// Of which right after a `Persist`, before the batch's broadcast left.
    pub crashes_after_persist: u64,
    /// The largest `Consensus::stored_items` seen.
    pub max_stored_items: usize,
    /// Dropped inputs by reason label, over all validators.
    pub drops: BTreeMap<&'static str, u64>,
    /// A hash of every event processed, in order: equal traces give equal hashes.
    pub trace_hash: u64,
}

/// A run that broke a property, with what it had done until then.
#[derive(Clone, Debug)]
pub struct SimFailure {
    /// Which property broke, when, and how.
    pub reason: String,
    /// The run up to the failure.
    pub report: Box<SimReport>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation failed: scenario={} seed={} validators={} roles={:?} powers={:?} gst={}ms\n  {}\n  replay: {}",
            self.report.scenario.name(),
            self.report.seed,
            self.report.validators,
            self.report.roles,
            self.report.powers,
            self.report.gst_ms,
            self.reason,
            replay_command(self.report.scenario, self.report.seed, self.report.heights),
        )
    }
}

/// Runs one simulation to the end and checks every property.
pub fn run(cfg: &SimConfig) -> Result<SimReport, SimFailure> {
    match world::World::new(cfg) {
        Ok(w) => w.run(),
        Err(reason) => Err(SimFailure {
            reason,
            report: Box::new(SimReport {
                scenario: cfg.scenario,
                seed: cfg.seed,
                validators: 0,
                roles: Vec::new(),
                powers: Vec::new(),
                heights: cfg.heights,
                gst_ms: 0,
                virtual_ms: 0,
                events: 0,
                packets_sent: 0,
                consensus_messages_sent: 0,
                broadcasts: 0,
                settled_heights: 0,
                max_decision_round: 0,
                evidence: 0,
                crashes: 0,
                crashes_after_persist: 0,
                max_stored_items: 0,
                drops: BTreeMap::new(),
                trace_hash: 0,
            }),
        }),
    }
}

/// The one command that replays `(scenario, seed)` exactly.
pub fn replay_command(scenario: Scenario, seed: u64, heights: u64) -> String {
    format!(
        "SIM_SEED={seed} SIM_SCENARIO={} SIM_HEIGHTS={heights} cargo test --release -p consensus --test sim -- replay --nocapture",
        scenario.name()
    )
}
