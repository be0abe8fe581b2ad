//! Block sync planning, off the driver's path: which peer to ask for which heights, what
//! is in flight, what arrived and waits to be applied, and which peers failed.
//!
//! * A peer's height is a **claim**. A claim is *verified* when it came with a commit
//!   certificate that checks against the validator set this node knows for that height
//!   (a quorum really committed it: some correct node can serve it); otherwise it is
//!   *unverified* (the set changed beyond what this node knows, or the peer lies), and is
//!   used only when no verified claim is ahead. Proposals and votes never make claims.
//! * At most [`SYNC_INFLIGHT_MAX`] range requests are in flight, each for consecutive
//!   heights not yet asked for, each to a different peer. The driver never waits on one:
//!   answers arrive as inputs, and a request that is not answered within
//!   [`SYNC_REQUEST_TIMEOUT_MS`] is given up.
//! * A peer that fails a request (error, timeout, empty or non-contiguous answer, invalid
//!   block) is **struck**: it is not asked again for a backoff that doubles from
//!   [`BACKOFF_MIN_MS`] up to [`BACKOFF_MAX_MS`], and peers with fewer failures are
//!   preferred. A success resets its record.
//! * Answers waiting to be applied are bounded by the in-flight bound times the size of a
//!   response.

use crate::messages::{SYNC_BLOCKS_MAX, SyncRequest};
use ledger::PublicKey;
use ledger::block::CommittedBlock;
use ledger::execute::VerifiedTx;
use std::collections::BTreeMap;

/// Most range requests in flight.
pub const SYNC_INFLIGHT_MAX: usize = 2;
/// A request not answered within this is given up, and its peer struck.
pub const SYNC_REQUEST_TIMEOUT_MS: u64 = 10_000;
/// First backoff of a struck peer.
pub const BACKOFF_MIN_MS: u64 = 1_000;
/// Longest backoff of a struck peer.
pub const BACKOFF_MAX_MS: u64 = 60_000;
/// Most peers with a claim or a failure record (the allow-list bounds it in practice).
pub const PEERS_TRACKED_MAX: usize = 1024;
/// A peer that committed only the height this node is deciding is not synced from until
/// this long after this node's last commit: normally this node decides it itself.
pub const SYNC_GRACE_MS: u64 = 1_000;

/// A block fetched by sync, with its transactions' signatures checked (or why not).
pub struct SyncedBlock {
    /// The block and its certificate.
    pub block: CommittedBlock,
    /// Its transactions, verified, or why they are not.
    pub txs: Result<Vec<VerifiedTx>, String>,
}

/// A peer's claimed height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// Its last committed height.
    pub height: u64,
    /// Whether a commit certificate backs it.
    pub verified: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Record {
    failures: u32,
    until_ms: u64,
}

/// A request in flight.
#[derive(Clone, Copy, Debug)]
pub struct InFlight {
    /// Asked of.
    pub peer: PublicKey,
    /// First height.
    pub from: u64,
    /// How many.
    pub count: u32,
    /// Given up at.
    pub deadline_ms: u64,
}

/// What to do with an answer.
pub enum Answer {
    /// Blocks from this peer, to apply in order from `from`.
    Blocks {
        /// The peer that answered.
        peer: PublicKey,
        /// The first block's height.
        from: u64,
    },
    /// The answer was unusable; the peer was struck.
    Failed {
        /// The peer.
        peer: PublicKey,
        /// Why.
        reason: &'static str,
    },
    /// Not a request this planner made (late, after a timeout): ignored.
    Unknown,
}

/// The planner.
#[derive(Default)]
pub struct SyncPlanner {
    claims: BTreeMap<PublicKey, Claim>,
    records: BTreeMap<PublicKey, Record>,
    in_flight: BTreeMap<u64, InFlight>,
    /// Answers waiting to be applied, by first height.
    pending: BTreeMap<u64, (PublicKey, Vec<SyncedBlock>)>,
    next_id: u64,
}

impl SyncPlanner {
    /// Records a claim (the highest seen per peer; a verified claim beats an unverified
    /// one of the same height).
    pub fn claim(&mut self, peer: PublicKey, claim: Claim) {
        if !self.claims.contains_key(&peer) && self.claims.len() >= PEERS_TRACKED_MAX {
            return;
        }
        let c = self.claims.entry(peer).or_insert(claim);
        if claim.height > c.height || (claim.height == c.height && claim.verified) {
            *c = claim;
        }
    }

    /// A peer left: its claim goes (its failure record stays, so a peer cannot clear it
    /// by reconnecting).
    pub fn forget(&mut self, peer: &PublicKey) {
        self.claims.remove(peer);
    }

    /// The best claim above `tip`: verified claims first.
    pub fn target(&self, tip: u64) -> Option<Claim> {
        let best = |verified: bool| {
            self.claims
                .values()
                .filter(|c| c.verified == verified && c.height > tip)
                .map(|c| c.height)
                .max()
        };
        best(true)
            .map(|height| Claim {
                height,
                verified: true,
            })
            .or_else(|| {
                best(false).map(|height| Claim {
                    height,
                    verified: false,
                })
            })
    }

    /// Whether a request is in flight or an answer waits.
    pub fn busy(&self) -> bool {
        !self.in_flight.is_empty() || !self.pending.is_empty()
    }

    /// Gives up requests past their deadline, striking their peers; returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<PublicKey> {
        let late: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, r)| r.deadline_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        let mut struck = Vec::new();
        for id in late {
            if let Some(r) = self.in_flight.remove(&id) {
                self.strike(r.peer, now_ms);
                struck.push(r.peer);
            }
        }
        struck
    }

    /// New requests to send now, as `(id, peer, request)`. `lagging` says whether this
    /// node has waited long enough for a height a peer committed first
    /// ([`SYNC_GRACE_MS`]).
    pub fn plan(
        &mut self,
        now_ms: u64,
        tip: u64,
        lagging: bool,
    ) -> Vec<(u64, PublicKey, SyncRequest)> {
        let mut out = Vec::new();
        // Answers below the tip are stale.
        self.pending
            .retain(|from, (_, blocks)| from + blocks.len() as u64 > tip + 1);
        let Some(target) = self.target(tip) else {
            return out;
        };
        if target.height == tip + 1 && !lagging {
            return out;
        }
        while self.in_flight.len() < SYNC_INFLIGHT_MAX {
            let Some(start) = self.first_unasked(tip + 1, target.height) else {
                break;
            };
            let Some(peer) = self.pick(now_ms, start, target.verified) else {
                break;
            };
            let count = (target.height - start + 1).min(u64::from(SYNC_BLOCKS_MAX)) as u32;
            let id = self.next_id;
            self.next_id += 1;
            self.in_flight.insert(
                id,
                InFlight {
                    peer,
                    from: start,
                    count,
                    deadline_ms: now_ms.saturating_add(SYNC_REQUEST_TIMEOUT_MS),
                },
            );
            out.push((
                id,
                peer,
                SyncRequest {
                    from_height: start,
                    count,
                },
            ));
        }
        out
    }

    /// The first height in `from..=to` neither in flight nor waiting.
    fn first_unasked(&self, from: u64, to: u64) -> Option<u64> {
        let mut s = from;
        'outer: loop {
            if s > to {
                return None;
            }
            for r in self.in_flight.values() {
                if r.from <= s && s < r.from + u64::from(r.count) {
                    s = r.from + u64::from(r.count);
                    continue 'outer;
                }
            }
            for (f, (_, b)) in &self.pending {
                if *f <= s && s < f + b.len() as u64 {
                    s = f + b.len() as u64;
                    continue 'outer;
                }
            }
            return Some(s);
        }
    }

    /// The peer to ask for `height`: claims at least that high (verified ones only if
    /// `verified`), not backing off, not already asked; fewest failures, then highest.
    fn pick(&self, now_ms: u64, height: u64, verified: bool) -> Option<PublicKey> {
        self.claims
            .iter()
            .filter(|(p, c)| {
                c.height >= height
                    && (c.verified || !verified)
                    && self.records.get(*p).is_none_or(|r| r.until_ms <= now_ms)
                    && !self.in_flight.values().any(|r| r.peer == **p)
            })
            .min_by_key(|(p, c)| {
                (
                    self.records.get(*p).map_or(0, |r| r.failures),
                    std::cmp::Reverse(c.height),
                    **p,
                )
            })
            .map(|(p, _)| *p)
    }

    /// Strikes a peer: backoff doubles with each failure.
    pub fn strike(&mut self, peer: PublicKey, now_ms: u64) {
        if !self.records.contains_key(&peer) && self.records.len() >= PEERS_TRACKED_MAX {
            // Forget the record that expired first.
            if let Some(old) = self
                .records
                .iter()
                .min_by_key(|(_, r)| r.until_ms)
                .map(|(p, _)| *p)
            {
                self.records.remove(&old);
            }
        }
        let r = self.records.entry(peer).or_default();
        r.failures = r.failures.saturating_add(1);
        let backoff = BACKOFF_MIN_MS
            .saturating_mul(1u64 << (r.failures - 1).min(16))
            .min(BACKOFF_MAX_MS);
        r.until_ms = now_ms.saturating_add(backoff);
    }

    /// Takes an answer: `Ok(blocks)` as fetched and verified, or why the request failed.
    pub fn answer(
        &mut self,
        now_ms: u64,
        id: u64,
        result: Result<Vec<SyncedBlock>, String>,
    ) -> Answer {
        let Some(req) = self.in_flight.remove(&id) else {
            return Answer::Unknown;
        };
        let reason = match result {
            Err(_) => "sync request failed",
            Ok(blocks) if blocks.is_empty() => "sync answer empty",
            Ok(blocks)
                if blocks.len() > req.count as usize
                    || blocks
                        .iter()
                        .enumerate()
                        .any(|(i, b)| b.block.block.header.height != req.from + i as u64) =>
            {
                "sync answer not the heights asked for"
            }
            Ok(blocks) => {
                self.records.remove(&req.peer);
                self.pending.insert(req.from, (req.peer, blocks));
                return Answer::Blocks {
                    peer: req.peer,
                    from: req.from,
                };
            }
        };
        self.strike(req.peer, now_ms);
        Answer::Failed {
            peer: req.peer,
            reason,
        }
    }

    /// The next waiting answer that starts at or below `height` (the one to apply next).
    pub fn take_ready(&mut self, height: u64) -> Option<(PublicKey, Vec<SyncedBlock>)> {
        let from = *self.pending.range(..=height).next_back()?.0;
        self.pending.remove(&from)
    }

    /// Drops what a peer sent that is still waiting (it sent an invalid block).
    pub fn drop_from(&mut self, peer: &PublicKey) {
        self.pending.retain(|_, (p, _)| p != peer);
    }

    /// Sizes, for the bounds checks: (claims, failure records, in flight, waiting answers).
    pub fn sizes(&self) -> (usize, usize, usize, usize) {
        (
            self.claims.len(),
            self.records.len(),
            self.in_flight.len(),
            self.pending.len(),
        )
    }
}

impl Answer {
    /// Whether the answer matched no request.
    pub fn is_unknown(&self) -> bool {
        matches!(self, Answer::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        ledger::SecretKey::from_seed(&[b; 32]).public_key()
    }

    fn verified(height: u64) -> Claim {
        Claim {
            height,
            verified: true,
        }
    }

    #[test]
    fn nobody_ahead_means_no_request() {
        let mut s = SyncPlanner::default();
        assert!(s.plan(0, 5, true).is_empty());
        s.claim(key(1), verified(5));
        assert!(s.plan(0, 5, true).is_empty());
        // One height ahead: only once lagging.
        s.claim(key(1), verified(6));
        assert!(s.plan(0, 5, false).is_empty());
        assert_eq!(s.plan(0, 5, true).len(), 1);
    }

    #[test]
    fn windows_go_to_different_peers_and_a_timeout_strikes() {
        let mut s = SyncPlanner::default();
        s.claim(key(1), verified(500));
        s.claim(key(2), verified(500));
        let reqs = s.plan(0, 0, true);
        assert_eq!(reqs.len(), 2);
        assert_ne!(reqs[0].1, reqs[1].1);
        assert_eq!(reqs[0].2.from_height, 1);
        assert_eq!(reqs[1].2.from_height, 1 + u64::from(SYNC_BLOCKS_MAX));
        assert!(s.plan(1, 0, true).is_empty(), "both slots busy");
        let struck = s.expire(SYNC_REQUEST_TIMEOUT_MS);
        assert_eq!(struck.len(), 2);
        // Both back off; nobody is asked until the backoff ends.
        assert!(s.plan(SYNC_REQUEST_TIMEOUT_MS, 0, true).is_empty());
        assert_eq!(
            s.plan(SYNC_REQUEST_TIMEOUT_MS + BACKOFF_MIN_MS, 0, true)
                .len(),
            2
        );
    }

    #[test]
    fn an_unverified_liar_is_not_used_while_a_verified_claim_exists() {
        let mut s = SyncPlanner::default();
        s.claim(
            key(1),
            Claim {
                height: 1_000_000,
                verified: false,
            },
        );
        s.claim(key(2), verified(10));
        let reqs = s.plan(0, 0, true);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].1, key(2));
        assert_eq!(reqs[0].2.count, 10);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut s = SyncPlanner::default();
        for _ in 0..40 {
            s.strike(key(1), 0);
        }
        let r = s.records[&key(1)];
        assert_eq!(r.until_ms, BACKOFF_MAX_MS);
        assert!(s.answer(0, 99, Err("x".into())).is_unknown());
    }
}
