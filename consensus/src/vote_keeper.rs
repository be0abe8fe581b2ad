//! The messages of one height, counted per round, with bounded memory.
//!
//! Only *verified* messages from validators of the height are stored (the driver checks
//! before inserting). Per `(validator, round, vote type)` the first vote and at most one
//! conflicting vote (an equivocation) are kept and counted per value, as in the paper; per
//! round, the proposer's proposal and at most one conflicting proposal. Bounds, per height:
//!
//! * full vote sets and the proposal are kept for the rounds in
//!   `[current - PAST_ROUNDS_KEPT, current + FUTURE_ROUNDS_WINDOW]`, plus the locked and
//!   valid rounds (their prevotes are the proof of lock to relay) and at most
//!   [`COMMIT_ROUNDS_KEPT`] older rounds that hold a precommit quorum (their votes form the
//!   commit certificate);
//! * for older rounds only the fact "block v had a polka in round r" survives (Tendermint's
//!   L28 needs it), at most [`POLKA_ROUNDS_KEPT`] of them plus the locked and valid rounds;
//! * for messages beyond the window only the highest round seen per validator is kept,
//!   which is all the round-skip rule (L55) needs.
//!
//! So a flood of votes for far-future rounds costs one `u32` per validator.

use crate::io::Message;
use ledger::vote::EquivocationKey;
use ledger::{Hash, Proposal, PublicKey, ValidatorSet, Vote, VoteType};
use std::collections::{BTreeMap, BTreeSet};

/// Rounds above the current one whose messages are stored in full.
pub const FUTURE_ROUNDS_WINDOW: u32 = 8;
/// Rounds below the current one whose messages are kept in full.
pub const PAST_ROUNDS_KEPT: u32 = 8;
/// Older rounds whose polka (the block with 2f+1 prevotes) is remembered.
pub const POLKA_ROUNDS_KEPT: usize = 32;
/// Older rounds with a precommit quorum whose precommits are kept.
pub const COMMIT_ROUNDS_KEPT: usize = 4;

/// Votes of one type in one round.
///
/// As in the paper, a quorum for a value counts distinct validators that voted for that
/// value, so an equivocating validator counts for both values it voted for (it is one of
/// the f). Of one validator, the first vote and at most one conflicting vote are kept; a
/// third value is dropped. "2f+1 votes of any value" counts each validator once.
#[derive(Debug, Default)]
struct Tally {
    votes: BTreeMap<PublicKey, (Vote, Option<Vote>)>,
    power_for: BTreeMap<Option<Hash>, u64>,
    power: u64,
}

impl Tally {
    /// Counts a vote (first or conflicting); returns the power now behind its value.
    fn add(&mut self, vote: Vote, power: u64) -> u64 {
        let value = vote.block_hash;
        match self.votes.get_mut(&vote.validator) {
            None => {
                self.power = self.power.saturating_add(power);
                self.votes.insert(vote.validator, (vote, None));
            }
            Some((_, second @ None)) => *second = Some(vote),
            // The driver never inserts a third value.
            Some((_, Some(_))) => return self.power_for(value),
        }
        let entry = self.power_for.entry(value).or_insert(0);
        *entry = entry.saturating_add(power);
        *entry
    }

    fn power_for(&self, value: Option<Hash>) -> u64 {
        self.power_for.get(&value).copied().unwrap_or(0)
    }

    fn len(&self) -> usize {
        self.votes
            .values()
            .map(|(_, second)| 1 + usize::from(second.is_some()))
            .sum()
    }
}

/// Everything stored for one round.
#[derive(Debug, Default)]
struct RoundMessages {
    /// The proposer's proposal and, if it equivocated, its second one.
    proposals: Vec<Proposal>,
    prevotes: Tally,
    precommits: Tally,
}

impl RoundMessages {
    fn tally(&self, t: VoteType) -> &Tally {
        match t {
            VoteType::Prevote => &self.prevotes,
            VoteType::Precommit => &self.precommits,
        }
    }

    fn tally_mut(&mut self, t: VoteType) -> &mut Tally {
        match t {
            VoteType::Prevote => &mut self.prevotes,
            VoteType::Precommit => &mut self.precommits,
        }
    }
}

/// Whether a message's round can be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Inside the window (or a kept round).
    Store,
    /// Above the window: only counts for L55.
    TooFar,
    /// Below the oldest kept round.
    TooOld {
        /// The oldest round still stored.
        oldest: u32,
    },
}

/// How a vote relates to what is stored at its `(validator, round, type)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VoteSlot<'a> {
    /// Nothing stored yet.
    Empty,
    /// A vote for the same value is stored.
    Same,
    /// A vote for another value is stored: an equivocation. `full` when two values are
    /// stored already (the new one cannot be counted).
    Conflicting {
        /// The first vote stored.
        first: &'a Vote,
        /// Whether a second value is stored already.
        full: bool,
    },
}

/// Most proposals kept per round: the first and one conflicting (an equivocation).
pub const PROPOSALS_PER_ROUND_MAX: usize = 2;

/// A quorum that a newly counted vote completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewQuorum {
    /// 2f+1 prevotes for this block in this round (a "polka").
    Polka(u32, Hash),
    /// 2f+1 precommits for this block in this round.
    Commit(u32, Hash),
}

/// The messages of one height.
#[derive(Debug)]
pub(crate) struct VoteKeeper {
    validators: ValidatorSet,
    current: u32,
    rounds: BTreeMap<u32, RoundMessages>,
    polkas: BTreeMap<u32, Hash>,
    commits: BTreeMap<u32, Hash>,
    pinned_polkas: BTreeSet<u32>,
    highest_round: BTreeMap<PublicKey, u32>,
    skip_target: Option<u32>,
    reported: BTreeSet<EquivocationKey>,
}

impl VoteKeeper {
    /// An empty keeper for a height with these validators, at round 0.
    pub(crate) fn new(validators: ValidatorSet) -> Self {
        VoteKeeper {
            validators,
            current: 0,
            rounds: BTreeMap::new(),
            polkas: BTreeMap::new(),
            commits: BTreeMap::new(),
            pinned_polkas: BTreeSet::new(),
            highest_round: BTreeMap::new(),
            skip_target: None,
            reported: BTreeSet::new(),
        }
    }

    /// The validator set of the height.
    pub(crate) fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    fn oldest_window_round(&self) -> u32 {
        self.current.saturating_sub(PAST_ROUNDS_KEPT)
    }

    /// Whether messages of `round` can be stored now.
    pub(crate) fn admission(&self, round: u32) -> Admission {
        if round > self.current.saturating_add(FUTURE_ROUNDS_WINDOW) {
            Admission::TooFar
        } else if round >= self.oldest_window_round() || self.rounds.contains_key(&round) {
            Admission::Store
        } else {
            Admission::TooOld {
                oldest: self.oldest_window_round(),
            }
        }
    }

    /// What is stored at the vote's `(validator, round, type)`.
    pub(crate) fn vote_slot(&self, v: &Vote) -> VoteSlot<'_> {
        let stored = self
            .rounds
            .get(&v.round)
            .and_then(|r| r.tally(v.vote_type).votes.get(&v.validator));
        match stored {
            None => VoteSlot::Empty,
            Some((first, second)) => {
                if first.block_hash == v.block_hash
                    || second
                        .as_ref()
                        .is_some_and(|s| s.block_hash == v.block_hash)
                {
                    VoteSlot::Same
                } else {
                    VoteSlot::Conflicting {
                        first,
                        full: second.is_some(),
                    }
                }
            }
        }
    }

    /// Counts a verified vote whose slot is [`VoteSlot::Empty`], or
    /// [`VoteSlot::Conflicting`] and not full. Returns the quorum it completed, if any.
    pub(crate) fn insert_vote(&mut self, vote: Vote) -> Option<NewQuorum> {
        let power = self.validators.power_of(&vote.validator);
        let (round, vote_type, value) = (vote.round, vote.vote_type, vote.block_hash);
        let tally = self.rounds.entry(round).or_default().tally_mut(vote_type);
        let before = tally.power_for(value);
        let after = tally.add(vote, power);
        let block = value?;
        if self.validators.is_quorum(before) || !self.validators.is_quorum(after) {
            return None;
        }
        match vote_type {
            VoteType::Prevote => {
                self.polkas.entry(round).or_insert(block);
                Some(NewQuorum::Polka(round, block))
            }
            VoteType::Precommit => {
                self.commits.entry(round).or_insert(block);
                self.trim_commits();
                Some(NewQuorum::Commit(round, block))
            }
        }
    }

    /// The proposals of `round`, first received first (always from the round's proposer,
    /// verified; two only if it equivocated).
    pub(crate) fn proposals(&self, round: u32) -> &[Proposal] {
        self.rounds
            .get(&round)
            .map_or(&[], |r| r.proposals.as_slice())
    }

    /// Stores a verified proposal, up to [`PROPOSALS_PER_ROUND_MAX`] per round.
    pub(crate) fn insert_proposal(&mut self, p: Proposal) {
        let slot = &mut self.rounds.entry(p.round).or_default().proposals;
        if slot.len() < PROPOSALS_PER_ROUND_MAX && slot.iter().all(|q| q.block_hash != p.block_hash)
        {
            slot.push(p);
        }
    }

    /// Records an equivocation; true the first time for its key.
    pub(crate) fn note_equivocation(&mut self, key: EquivocationKey) -> bool {
        self.reported.insert(key)
    }

    /// The block with 2f+1 prevotes in `round`, if one had them (remembered after eviction).
    pub(crate) fn polka(&self, round: u32) -> Option<Hash> {
        self.polkas.get(&round).copied()
    }

    /// Remembers a polka known from the persisted state (after a restart, the lock and the
    /// valid value were set on a polka this validator saw).
    pub(crate) fn pin_polka(&mut self, round: u32, block: Hash) {
        self.polkas.entry(round).or_insert(block);
        self.pinned_polkas.insert(round);
    }

    /// 2f+1 prevotes of any value in `round` (L34).
    pub(crate) fn prevote_quorum_any(&self, round: u32) -> bool {
        self.rounds
            .get(&round)
            .is_some_and(|r| self.validators.is_quorum(r.prevotes.power))
    }

    /// 2f+1 prevotes for nil in `round` (L44).
    pub(crate) fn prevote_nil_quorum(&self, round: u32) -> bool {
        self.rounds
            .get(&round)
            .is_some_and(|r| self.validators.is_quorum(r.prevotes.power_for(None)))
    }

    /// 2f+1 precommits of any value in `round` (L47).
    pub(crate) fn precommit_quorum_any(&self, round: u32) -> bool {
        self.rounds
            .get(&round)
            .is_some_and(|r| self.validators.is_quorum(r.precommits.power))
    }

    /// Rounds with 2f+1 precommits for a block, oldest first (L49).
    pub(crate) fn commit_quorums(&self) -> impl Iterator<Item = (u32, Hash)> + '_ {
        self.commits.iter().map(|(r, h)| (*r, *h))
    }

    /// The votes of type `t` for `block` in `round` (a commit certificate's precommits, or
    /// the prevotes of a polka to relay).
    pub(crate) fn votes_for(&self, round: u32, t: VoteType, block: Hash) -> Vec<&Vote> {
        self.rounds.get(&round).map_or_else(Vec::new, |r| {
            r.tally(t)
                .votes
                .values()
                .filter_map(|(first, second)| {
                    [Some(first), second.as_ref()]
                        .into_iter()
                        .flatten()
                        .find(|v| v.block_hash == Some(block))
                })
                .collect()
        })
    }

    /// Notes that `validator` sent a verified message for `round` (L55 bookkeeping).
    pub(crate) fn observe_round(&mut self, validator: PublicKey, round: u32) {
        let changed = match self.highest_round.get_mut(&validator) {
            Some(r) if *r >= round => false,
            Some(r) => {
                *r = round;
                true
            }
            None => {
                self.highest_round.insert(validator, round);
                true
            }
        };
        if changed {
            self.skip_target = self.compute_skip_target();
        }
    }

    /// L55 generalised to a window: the highest round `R` such that validators holding
    /// more than a third of the power sent messages for rounds `≥ R`. At least one correct
    /// validator has then reached round `R` (correct validators never go back), which is
    /// the property the paper's "f+1 messages of round R" gives.
    fn compute_skip_target(&self) -> Option<u32> {
        let mut seen: Vec<(u32, u64)> = self
            .highest_round
            .iter()
            .map(|(k, r)| (*r, self.validators.power_of(k)))
            .collect();
        seen.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        let mut power = 0u64;
        for (round, p) in seen {
            power = power.saturating_add(p);
            if self.validators.is_one_third(power) {
                return Some(round);
            }
        }
        None
    }

    /// The round to skip to by L55, if above `current`.
    pub(crate) fn skip_target(&self, current: u32) -> Option<u32> {
        self.skip_target.filter(|r| *r > current)
    }

    /// Moves the window to `current`, evicting rounds below it. `pinned` rounds keep their
    /// polka (the locked and valid rounds).
    pub(crate) fn advance(&mut self, current: u32, pinned: &[u32]) {
        self.current = current;
        let oldest = self.oldest_window_round();
        let commits = &self.commits;
        // The locked and valid rounds keep their votes: the prevotes of the valid round are
        // the proof of lock that is relayed with a re-proposal (see `Consensus::rebroadcast`).
        self.rounds
            .retain(|r, _| *r >= oldest || commits.contains_key(r) || pinned.contains(r));
        for r in pinned {
            self.pinned_polkas.insert(*r);
        }
        self.pinned_polkas.retain(|r| pinned.contains(r));
        while self.polkas.len() > POLKA_ROUNDS_KEPT + self.pinned_polkas.len() {
            let victim = self
                .polkas
                .keys()
                .copied()
                .find(|r| *r < oldest && !self.pinned_polkas.contains(r));
            match victim {
                Some(r) => {
                    self.polkas.remove(&r);
                }
                None => break,
            }
        }
        let rounds = &self.rounds;
        self.reported
            .retain(|k| k.round >= oldest || rounds.contains_key(&k.round));
    }

    fn trim_commits(&mut self) {
        while self.commits.len() > COMMIT_ROUNDS_KEPT {
            let Some((&r, _)) = self.commits.iter().next() else {
                break;
            };
            self.commits.remove(&r);
            if r < self.oldest_window_round() {
                self.rounds.remove(&r);
            }
        }
    }

    /// Blocks that stored messages refer to (proposals, polkas, commit quorums).
    pub(crate) fn referenced_blocks(&self) -> BTreeSet<Hash> {
        let mut out: BTreeSet<Hash> = self
            .rounds
            .values()
            .flat_map(|r| r.proposals.iter().map(|p| p.block_hash))
            .collect();
        out.extend(self.polkas.values().copied());
        out.extend(self.commits.values().copied());
        out
    }

    /// The messages `me` signed that are stored, in round order.
    pub(crate) fn messages_of(&self, me: &PublicKey) -> Vec<Message> {
        let mut out = Vec::new();
        for r in self.rounds.values() {
            if let Some(p) = r.proposals.first().filter(|p| p.proposer == *me) {
                out.push(Message::Proposal(p.clone()));
            }
            for t in [&r.prevotes, &r.precommits] {
                if let Some((v, _)) = t.votes.get(me) {
                    out.push(Message::Vote(v.clone()));
                }
            }
        }
        out
    }

    /// Number of stored proposals and votes, plus the per-validator round marks and
    /// remembered polkas, commits and equivocation keys: what memory grows with.
    pub(crate) fn stored_items(&self) -> usize {
        let messages: usize = self
            .rounds
            .values()
            .map(|r| r.proposals.len() + r.prevotes.len() + r.precommits.len())
            .sum();
        messages
            + self.highest_round.len()
            + self.polkas.len()
            + self.commits.len()
            + self.reported.len()
    }

    /// The number of rounds with stored messages.
    pub(crate) fn stored_rounds(&self) -> usize {
        self.rounds.len()
    }
}
