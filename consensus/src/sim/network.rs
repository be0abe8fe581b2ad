//! The simulated network: per-link delays with jitter; until GST also drops, duplicates,
//! long delays (which reorder) and partitions. After GST every message arrives within
//! [`DELAY_MAX_AFTER_GST_MS`].

use super::rng::Rng;
use super::scenario::Plan;

/// Shortest base delay of a link (ms).
pub const LINK_DELAY_MIN_MS: u64 = 5;
/// Longest base delay of a link (ms).
pub const LINK_DELAY_MAX_MS: u64 = 40;
/// Most jitter added to one message (ms).
pub const JITTER_MAX_MS: u64 = 20;
/// Most extra delay of a "long delay" before GST (ms).
pub const LONG_DELAY_MAX_MS: u64 = 1_500;
/// The bound on delays after GST: Tendermint's Δ in this simulator.
pub const DELAY_MAX_AFTER_GST_MS: u64 = LINK_DELAY_MAX_MS + JITTER_MAX_MS;

/// Link delays and the fault knobs of the plan.
#[derive(Debug)]
pub(crate) struct Network {
    base_delay_ms: Vec<Vec<u64>>,
    gst_ms: u64,
    drop_prob: f64,
    dup_prob: f64,
    long_delay_prob: f64,
    /// Current partition: side of each validator.
    partition: Option<Vec<u8>>,
}

impl Network {
    pub(crate) fn new(plan: &Plan, rng: &mut Rng) -> Self {
        let n = plan.roles.len();
        let base_delay_ms = (0..n)
            .map(|_| {
                (0..n)
                    .map(|_| rng.range(LINK_DELAY_MIN_MS, LINK_DELAY_MAX_MS))
                    .collect()
            })
            .collect();
        Network {
            base_delay_ms,
            gst_ms: plan.gst_ms,
            drop_prob: plan.drop_prob,
            dup_prob: plan.dup_prob,
            long_delay_prob: plan.long_delay_prob,
            partition: None,
        }
    }

    pub(crate) fn set_partition(&mut self, group: Option<Vec<u8>>) {
        self.partition = group;
    }

    /// The delays after which copies of a message sent now from `from` to `to` arrive:
    /// none (lost), one, or two (duplicated).
    pub(crate) fn transit(&self, rng: &mut Rng, now_ms: u64, from: usize, to: usize) -> Vec<u64> {
        let before_gst = now_ms < self.gst_ms;
        if let Some(g) = &self.partition
            && g.get(from) != g.get(to)
        {
            return Vec::new();
        }
        if before_gst && rng.chance(self.drop_prob) {
            return Vec::new();
        }
        let base = self.base_delay_ms[from][to];
        let mut delay = base + rng.below(JITTER_MAX_MS + 1);
        if before_gst && rng.chance(self.long_delay_prob) {
            delay += rng.below(LONG_DELAY_MAX_MS + 1);
        }
        let mut out = vec![delay];
        if rng.chance(self.dup_prob) {
            out.push(base + rng.below(JITTER_MAX_MS + 1));
        }
        out
    }
}
