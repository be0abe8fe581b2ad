//! Candidate blocks of the height being decided: proposed by peers or built here, with
//! the result of executing them once validated.
//!
//! Kept per round, so that no peer can evict the block consensus may still decide: a
//! block is admitted only for a round within [`ROUNDS_BEHIND`] below and [`ROUNDS_AHEAD`]
//! above the machine's round, at most [`PER_ROUND_MAX`] per round (a correct proposer
//! sends one; more come only from an equivocating proposer), and within
//! [`CANDIDATES_BYTES_MAX`]. Blocks that consensus holds as its locked, valid or decided
//! value, and this node's own proposal, are *pinned*: never evicted while their height is
//! in progress. (Before this bound, one byzantine validator signing 64 proposals for its
//! own far-future rounds evicted the real block from every honest node, and the chain
//! halted: the `future_round_flood` simulation scenario.)

use ledger::block::Block;
use ledger::chain::ExecutedBlock;
use ledger::hash::Hash;
use std::collections::{BTreeMap, BTreeSet};

/// Rounds above the machine's current round whose proposals are kept.
pub const ROUNDS_AHEAD: u32 = 8;
/// Rounds below the machine's current round whose proposals are kept (beyond those,
/// only pinned blocks stay).
pub const ROUNDS_BEHIND: u32 = 8;
/// Most blocks kept per round.
pub const PER_ROUND_MAX: usize = 2;
/// Most bytes of candidate blocks held (pinned blocks included).
pub const CANDIDATES_BYTES_MAX: usize = 96 * 1024 * 1024;
/// Upper bound on the number of candidates: every round of the window, plus pinned ones.
pub const CANDIDATES_MAX: usize =
    (ROUNDS_AHEAD + ROUNDS_BEHIND + 1) as usize * PER_ROUND_MAX + PINNED_MAX;
/// Most pinned blocks: locked, valid, decided, own proposal.
pub const PINNED_MAX: usize = 4;

/// A candidate block.
pub struct Candidate {
    /// The block.
    pub block: Block,
    /// The round it was proposed in.
    pub round: u32,
    /// Its encoded size.
    pub bytes: usize,
    /// Its execution, once validated.
    pub executed: Option<ExecutedBlock>,
    /// The verdict, once known.
    pub valid: Option<bool>,
}

/// Why a block was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its round is outside the kept window.
    RoundOutOfWindow,
    /// Its round has [`PER_ROUND_MAX`] blocks already.
    RoundFull,
    /// The byte budget is spent.
    Budget,
}

/// Candidate blocks by hash, indexed by round.
#[derive(Default)]
pub struct Candidates {
    by_hash: BTreeMap<Hash, Candidate>,
    by_round: BTreeMap<u32, Vec<Hash>>,
    pinned: BTreeSet<Hash>,
    bytes: usize,
}

impl Candidates {
    /// Adds a block of `round`, seen while the machine is in `current_round` (a block
    /// already known is accepted without change).
    pub fn insert(
        &mut self,
        hash: Hash,
        block: Block,
        round: u32,
        current_round: u32,
    ) -> Result<(), Refused> {
        if self.by_hash.contains_key(&hash) {
            return Ok(());
        }
        let pinned = self.pinned.contains(&hash);
        if !pinned
            && (round > current_round.saturating_add(ROUNDS_AHEAD)
                || round < current_round.saturating_sub(ROUNDS_BEHIND))
        {
            return Err(Refused::RoundOutOfWindow);
        }
        let in_round = self.by_round.get(&round).map_or(0, Vec::len);
        if !pinned && in_round >= PER_ROUND_MAX {
            return Err(Refused::RoundFull);
        }
        let bytes = ledger::codec::encode(&block).len();
        if self.bytes + bytes > CANDIDATES_BYTES_MAX {
            self.evict_for(bytes, current_round);
            if self.bytes + bytes > CANDIDATES_BYTES_MAX {
                return Err(Refused::Budget);
            }
        }
        self.bytes += bytes;
        self.by_round.entry(round).or_default().push(hash);
        self.by_hash.insert(
            hash,
            Candidate {
                block,
                round,
                bytes,
                executed: None,
                valid: None,
            },
        );
        Ok(())
    }

    /// Frees at least `need` bytes if it can, from the rounds farthest ahead of
    /// `current_round` first, never a pinned block nor one of the current round.
    fn evict_for(&mut self, need: usize, current_round: u32) {
        let mut rounds: Vec<u32> = self
            .by_round
            .keys()
            .copied()
            .filter(|r| *r != current_round)
            .collect();
        rounds.sort_by_key(|r| std::cmp::Reverse(r.abs_diff(current_round)));
        for r in rounds {
            if self.bytes + need <= CANDIDATES_BYTES_MAX {
                return;
            }
            let hashes = self.by_round.get(&r).cloned().unwrap_or_default();
            for h in hashes {
                if !self.pinned.contains(&h) {
                    self.remove(&h);
                }
            }
        }
    }

    /// Pins exactly these hashes (locked, valid, decided values; own proposal).
    pub fn set_pinned(&mut self, hashes: impl IntoIterator<Item = Hash>) {
        self.pinned = hashes.into_iter().take(PINNED_MAX).collect();
    }

    /// Forgets unpinned blocks of rounds that left the window below `current_round`.
    pub fn prune(&mut self, current_round: u32) {
        let floor = current_round.saturating_sub(ROUNDS_BEHIND);
        let old: Vec<Hash> = self
            .by_round
            .range(..floor)
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|h| !self.pinned.contains(h))
            .collect();
        for h in old {
            self.remove(&h);
        }
    }

    fn remove(&mut self, hash: &Hash) -> Option<Candidate> {
        let c = self.by_hash.remove(hash)?;
        self.bytes -= c.bytes;
        if let Some(v) = self.by_round.get_mut(&c.round) {
            v.retain(|h| h != hash);
            if v.is_empty() {
                self.by_round.remove(&c.round);
            }
        }
        Some(c)
    }

    /// A candidate.
    pub fn get(&self, hash: &Hash) -> Option<&Candidate> {
        self.by_hash.get(hash)
    }

    /// A candidate, mutably.
    pub fn get_mut(&mut self, hash: &Hash) -> Option<&mut Candidate> {
        self.by_hash.get_mut(hash)
    }

    /// Removes a candidate.
    pub fn take(&mut self, hash: &Hash) -> Option<Candidate> {
        self.remove(hash)
    }

    /// Forgets every candidate (the height moved on).
    pub fn clear(&mut self) {
        self.by_hash.clear();
        self.by_round.clear();
        self.pinned.clear();
        self.bytes = 0;
    }

    /// How many blocks are held.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::block::BlockHeader;

    fn block(n: u64) -> Block {
        let z = Hash::ZERO;
        Block {
            header: BlockHeader {
                chain_id: "sim".into(),
                height: 1,
                time_ms: n,
                prev_hash: z,
                tx_root: z,
                tx_count: 0,
                log_size: 0,
                log_root: z,
                state_root: z,
                validators_hash: z,
                next_validators_hash: z,
                proposer: ledger::SecretKey::from_seed(&[1; 32]).public_key(),
            },
            txs: vec![],
        }
    }

    #[test]
    fn far_future_rounds_cannot_evict_the_current_one() {
        let mut c = Candidates::default();
        let real = block(0);
        let real_hash = real.hash();
        c.insert(real_hash, real, 0, 0).unwrap();
        // A flood of proposals for rounds far ahead is refused; near rounds fill up to
        // their bound and no further.
        let mut admitted = 0;
        for r in 1..1000u32 {
            for k in 0..3u64 {
                let b = block(u64::from(r) * 10 + k + 1);
                if c.insert(b.hash(), b, r, 0).is_ok() {
                    admitted += 1;
                }
            }
        }
        assert_eq!(admitted, ROUNDS_AHEAD as usize * PER_ROUND_MAX);
        assert!(c.get(&real_hash).is_some());
        assert!(c.len() <= CANDIDATES_MAX);
    }

    #[test]
    fn pinned_blocks_survive_rounds_moving_on() {
        let mut c = Candidates::default();
        let locked = block(1);
        let lh = locked.hash();
        let other = block(2);
        let oh = other.hash();
        c.insert(lh, locked, 0, 0).unwrap();
        c.insert(oh, other, 1, 0).unwrap();
        c.set_pinned([lh]);
        c.prune(100);
        assert!(c.get(&lh).is_some());
        assert!(c.get(&oh).is_none());
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), c.get(&lh).unwrap().bytes);
    }
}
