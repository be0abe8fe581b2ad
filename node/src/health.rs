//! Whether the node is making progress, or why not: what `/healthz` answers.
//!
//! The driver reports each committed height ([`Health::advanced`]); the API asks
//! [`Health::check`] with the node's latest status. Healthy means the chain advanced
//! recently. Otherwise the answer names the reason an operator can act on: the genesis
//! time is still ahead, there are no peers, the node is syncing, a part of the node
//! stopped, or no block was committed for too long.

use crate::app::NodeStatus;
use ledger::PublicKey;
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time without a new block before the node counts as stalled. The window is
/// `max(STALL_AFTER_MIN, STALL_IDLE_INTERVALS × idle_block_interval_ms)`: an idle chain
/// still commits an empty block every idle interval, so several missed ones mean stalled.
pub const STALL_AFTER_MIN: Duration = Duration::from_secs(30);
/// Idle intervals without a block before the node counts as stalled.
pub const STALL_IDLE_INTERVALS: u32 = 6;

/// Why the node is not healthy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Unhealthy {
    /// The chain has not started: its genesis time is ahead of this node's clock.
    GenesisInFuture {
        /// The genesis time (ms since the epoch).
        genesis_time_ms: u64,
        /// This node's clock.
        now_ms: u64,
    },
    /// Other validators exist but none is connected.
    NoPeers,
    /// Catching up from peers.
    Syncing {
        /// The height reached so far.
        height: u64,
    },
    /// A part of the node stopped (the node is going down).
    Stopped {
        /// What stopped and why.
        what: String,
    },
    /// No block was committed for too long.
    Stalled {
        /// The height the node is at.
        height: u64,
        /// Seconds since it last advanced (or started).
        since_s: u64,
    },
}

impl Unhealthy {
    /// For humans.
    pub fn message(&self) -> String {
        match self {
            Unhealthy::GenesisInFuture {
                genesis_time_ms,
                now_ms,
            } => format!(
                "the genesis time is in the future: the chain starts at {genesis_time_ms} ms, this node's clock is {now_ms} ms"
            ),
            Unhealthy::NoPeers => "no peers: no other validator is connected".into(),
            Unhealthy::Syncing { height } => {
                format!("syncing: catching up from peers, at height {height}")
            }
            Unhealthy::Stopped { what } => format!("stopped: {what}"),
            Unhealthy::Stalled { height, since_s } => {
                format!("stalled: no block committed for {since_s} s, at height {height}")
            }
        }
    }
}

struct Progress {
    height: u64,
    at: Instant,
    stopped: Option<String>,
}

/// The node's progress, shared by the driver (which reports it) and the API.
pub struct Health {
    genesis_time_ms: u64,
    stall_after: Duration,
    progress: Mutex<Progress>,
}

impl Health {
    /// Progress at `height`, counted from now.
    pub fn new(genesis_time_ms: u64, idle_block_interval_ms: u64, height: u64) -> Self {
        let idle = Duration::from_millis(idle_block_interval_ms);
        Health {
            genesis_time_ms,
            stall_after: STALL_AFTER_MIN.max(idle.saturating_mul(STALL_IDLE_INTERVALS)),
            progress: Mutex::new(Progress {
                height,
                at: Instant::now(),
                stopped: None,
            }),
        }
    }

    /// The chain reached `height` (called on every commit).
    pub fn advanced(&self, height: u64) {
        let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        if height > p.height {
            p.height = height;
            p.at = Instant::now();
        }
    }

    /// A part of the node stopped; every later check says so.
    pub fn stopped(&self, what: impl Into<String>) {
        let mut p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        p.stopped.get_or_insert_with(|| what.into());
    }

    /// `Ok` while the node makes progress, else why not. `me` is this node's key,
    /// `now_ms` the wall clock, `now` the monotonic one.
    pub fn check(
        &self,
        status: &NodeStatus,
        me: &PublicKey,
        now_ms: u64,
        now: Instant,
    ) -> Result<(), Unhealthy> {
        let (height, at, stopped) = {
            let p = self.progress.lock().unwrap_or_else(|p| p.into_inner());
            (p.height, p.at, p.stopped.clone())
        };
        if let Some(what) = stopped {
            return Err(Unhealthy::Stopped { what });
        }
        if height == 0 && now_ms < self.genesis_time_ms {
            return Err(Unhealthy::GenesisInFuture {
                genesis_time_ms: self.genesis_time_ms,
                now_ms,
            });
        }
        let since = now.saturating_duration_since(at);
        if since < self.stall_after {
            return Ok(());
        }
        if status.syncing {
            return Err(Unhealthy::Syncing { height });
        }
        let others = status.validators.iter().any(|v| &v.public_key != me);
        if others && status.peers.is_empty() {
            return Err(Unhealthy::NoPeers);
        }
        Err(Unhealthy::Stalled {
            height,
            since_s: since.as_secs(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::PeerInfo;
    use ledger::crypto::SecretKey;
    use ledger::hash::Hash;
    use ledger::validator::Validator;

    fn status(validators: &[PublicKey], peers: usize, syncing: bool) -> NodeStatus {
        NodeStatus {
            height: 0,
            block_hash: Hash([0; 32]),
            block_time_ms: 0,
            log_size: 0,
            log_root: Hash([0; 32]),
            state_root: Hash([0; 32]),
            round: 0,
            syncing,
            peers: (0..peers)
                .map(|i| PeerInfo {
                    key: validators[i],
                    peer_id: String::new(),
                })
                .collect(),
            validators: validators
                .iter()
                .map(|k| Validator {
                    department: "d".into(),
                    public_key: *k,
                    power: 1,
                    address: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn progress_is_healthy_and_a_stall_says_why() {
        let me = SecretKey::from_seed(&[1; 32]).public_key();
        let other = SecretKey::from_seed(&[2; 32]).public_key();
        let h = Health::new(1_000, 5_000, 0);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(3600);
        let alone = status(&[me, other], 0, false);
        assert_eq!(h.check(&alone, &me, 2_000, t0), Ok(()));
        assert_eq!(h.check(&alone, &me, 2_000, later), Err(Unhealthy::NoPeers));
        let connected = status(&[other, me], 1, false);
        assert!(matches!(
            h.check(&connected, &me, 2_000, later),
            Err(Unhealthy::Stalled { height: 0, .. })
        ));
        let syncing = status(&[other, me], 1, true);
        assert_eq!(
            h.check(&syncing, &me, 2_000, later),
            Err(Unhealthy::Syncing { height: 0 })
        );
        // A single validator needs no peers.
        let single = status(&[me], 0, false);
        assert!(matches!(
            h.check(&single, &me, 2_000, later),
            Err(Unhealthy::Stalled { .. })
        ));
        h.stopped("the consensus driver panicked");
        assert!(matches!(
            h.check(&connected, &me, 2_000, t0),
            Err(Unhealthy::Stopped { .. })
        ));
    }

    #[test]
    fn a_genesis_in_the_future_is_a_reason() {
        let me = SecretKey::from_seed(&[1; 32]).public_key();
        let h = Health::new(10_000, 5_000, 0);
        let s = status(&[me], 0, false);
        assert_eq!(
            h.check(&s, &me, 9_000, Instant::now()),
            Err(Unhealthy::GenesisInFuture {
                genesis_time_ms: 10_000,
                now_ms: 9_000
            })
        );
        assert_eq!(h.check(&s, &me, 10_001, Instant::now()), Ok(()));
    }
}
