//! The checks made at the end of a run. Agreement, validity, certificates, signing safety,
//! accountability and the memory bound are checked as events happen (in `world.rs`).
//!
//! Liveness, two ways:
//! * every honest validator commits every height before the deadline
//!   (`GST + SETTLE_MS + heights × HEIGHT_BUDGET_MS`);
//! * every height whose first honest start is at least `SETTLE_MS` after GST is decided in
//!   a round no higher than the number of consecutive faulty proposers at the start of the
//!   height plus `ROUND_SLACK`. After GST all messages arrive within
//!   `DELAY_MAX_AFTER_GST_MS`, far below the round-0 timeouts, so the first round with an
//!   honest proposer should decide; the slack covers a round lost to a lock taken under an
//!   equivocating proposer and re-gossip.

use super::world::{ROUND_SLACK, SETTLE_MS, World};

pub(crate) fn final_checks(w: &mut World) {
    let lagging: Vec<(usize, u64)> = w
        .honest_progress()
        .into_iter()
        .filter(|(_, committed)| *committed < w.heights)
        .collect();
    if !lagging.is_empty() {
        let msg = format!(
            "liveness: by the deadline ({} ms, GST {} ms) honest validators (index, heights committed) {:?} had not committed all {} heights",
            w.deadline_ms, w.plan.gst_ms, lagging, w.heights
        );
        w.fail(msg);
        return;
    }
    let settled_from = w.plan.gst_ms + SETTLE_MS;
    let settled: Vec<(u64, u32)> = w
        .decision_round
        .iter()
        .filter(|(h, _)| w.height_start.get(h).is_some_and(|t| *t >= settled_from))
        .map(|(h, r)| (*h, *r))
        .collect();
    w.settled_heights = settled.len() as u64;
    for (height, round) in settled {
        let bound = w.faulty_proposer_run(height) + ROUND_SLACK;
        if round > bound {
            w.fail(format!(
                "liveness: height {height} started after the network settled but was decided in round {round}, above the bound {bound}"
            ));
            return;
        }
    }
}
