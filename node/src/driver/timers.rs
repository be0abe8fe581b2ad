//! Consensus timeouts on the driver's monotonic clock (milliseconds, given by the shell or
//! the simulator: the driver core never reads a clock).

use consensus::Timeout;
use std::collections::BTreeMap;

/// Most timeouts pending at once. The machine schedules at most three per round and the
/// driver drops those of past heights, so this is never reached in practice; it bounds
/// memory if it ever were.
pub const TIMERS_MAX: usize = 1024;

/// Pending timeouts ordered by deadline.
#[derive(Default)]
pub struct Timers {
    pending: BTreeMap<(u64, u64), Timeout>,
    seq: u64,
}

impl Timers {
    /// Schedules `t` to fire `t.duration_ms` after `now_ms`.
    pub fn schedule(&mut self, now_ms: u64, t: Timeout) {
        if self.pending.len() >= TIMERS_MAX {
            // Drop the earliest-scheduled (oldest round) rather than grow.
            self.pending.pop_first();
        }
        let at = now_ms.saturating_add(t.duration_ms);
        self.seq += 1;
        self.pending.insert((at, self.seq), t);
    }

    /// The next deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns every timeout due by `now_ms`.
    pub fn expired(&mut self, now_ms: u64) -> Vec<Timeout> {
        let mut out = vec![];
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > now_ms {
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

    /// How many are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}
