//! Consensus timeouts on the node's clock.

use consensus::Timeout;
use std::collections::BTreeMap;
use tokio::time::{Duration, Instant};

/// Most timeouts pending at once. The machine schedules at most three per round and the
/// driver drops those of past heights, so this is never reached in practice; it bounds
/// memory if it ever were.
pub const TIMERS_MAX: usize = 1024;

/// Pending timeouts ordered by deadline.
#[derive(Default)]
pub struct Timers {
    pending: BTreeMap<(Instant, u64), Timeout>,
    seq: u64,
}

impl Timers {
    /// Schedules `t` after its duration.
    pub fn schedule(&mut self, t: Timeout) {
        if self.pending.len() >= TIMERS_MAX {
            // Drop the earliest-scheduled (oldest round) rather than grow.
            self.pending.pop_first();
        }
        let at = Instant::now() + Duration::from_millis(t.duration_ms);
        self.seq += 1;
        self.pending.insert((at, self.seq), t);
    }

    /// The next deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns every timeout due by `now`.
    pub fn expired(&mut self, now: Instant) -> Vec<Timeout> {
        let mut out = vec![];
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now {
                break;
            }
            out.push(entry.remove());
        }
        out
    }

    /// Forgets the timeouts of heights below `height`.
    pub fn drop_below(&mut self, height: u64) {
        self.pending.retain(|_, t| t.height >= height);
    }
}
