//! [`Consensus`]: checks every input, feeds the state machine, signs what it decides to
//! send (under the signing watermark) and returns the outputs in the order the node must
//! carry them out.

use crate::error::{ConsensusError, Result};
use crate::io::{Input, Message, Output, Step, Timeout, TimeoutParams};
use crate::persisted::{PersistedState, RoundValue, SignDecision, SignGuard};
use crate::state_machine::{Action, Context, RoundState, ValidityTable};
use crate::vote_keeper::{Admission, NewQuorum, PROPOSALS_PER_ROUND_MAX, VoteKeeper, VoteSlot};
use ledger::vote::EquivocationKey;
use ledger::{
    CommitCertificate, Evidence, Hash, Proposal, PublicKey, SecretKey, Signature, ValidatorSet,
    Vote, VoteType,
};
use std::collections::BTreeSet;

/// Most messages for the next height held until its `StartHeight` (the node buffers too;
/// anything dropped here comes back through gossip).
pub const FUTURE_BUFFER_MAX: usize = 1024;
/// Most blocks whose validity is tracked in one height.
pub const VALIDITY_ENTRIES_MAX: usize = 256;
/// Bound on rule firings for one input: a guard against a bug looping forever. Each input
/// fires a handful of rules; a skipped round fires a few more.
const RULE_FIRINGS_MAX: usize = 1024;

/// Keys, chain id, watermark: everything needed to sign safely.
#[derive(Debug)]
struct Signer {
    chain_id: String,
    key: Option<SecretKey>,
    public_key: Option<PublicKey>,
    guard: SignGuard,
    last_persisted: Option<PersistedState>,
}

impl Signer {
    /// The state to persist now, if this node signs at all.
    fn snapshot(&self, sm: &RoundState) -> Option<PersistedState> {
        self.key.as_ref()?;
        Some(PersistedState {
            height: sm.height,
            round: sm.round,
            step: sm.step,
            locked: sm.locked,
            valid: sm.valid,
            last_signed: self.guard.last(),
            signed: self.guard.signed().to_vec(),
        })
    }

    /// Emits `Persist` if the persisted state changed since the last one emitted.
    fn persist(&mut self, sm: &RoundState, out: &mut Vec<Output>) {
        if let Some(s) = self.snapshot(sm)
            && self.last_persisted.as_ref() != Some(&s)
        {
            self.last_persisted = Some(s.clone());
            out.push(Output::Persist(s));
        }
    }

    /// Signs (or re-sends) a vote; `Persist` precedes the `Broadcast` of a new signature.
    fn vote(
        &mut self,
        sm: &RoundState,
        round: u32,
        vote_type: VoteType,
        block_hash: Option<Hash>,
        out: &mut Vec<Output>,
    ) -> Option<Vote> {
        let key = self.key.as_ref()?;
        let height = sm.height;
        match self.guard.check_vote(height, round, vote_type, block_hash) {
            SignDecision::Sign => {
                let v = Vote::new_signed(&self.chain_id, height, round, vote_type, block_hash, key);
                let m = Message::Vote(v.clone());
                self.guard.record(&m);
                self.persist(sm, out);
                out.push(Output::Broadcast(m));
                Some(v)
            }
            SignDecision::Resend(Message::Vote(v)) => {
                out.push(Output::Broadcast(Message::Vote(v.clone())));
                Some(v)
            }
            SignDecision::Resend(Message::Proposal(_)) | SignDecision::Refuse => {
                out.push(Output::Dropped {
                    reason: ConsensusError::DoubleSignPrevented {
                        height,
                        round,
                        step: vote_type.into(),
                    },
                });
                None
            }
        }
    }

    /// Signs (or re-sends) a proposal; `Persist` precedes the `Broadcast` of a new one.
    fn proposal(
        &mut self,
        sm: &RoundState,
        round: u32,
        pol_round: Option<u32>,
        block_hash: Hash,
        out: &mut Vec<Output>,
    ) -> Option<Proposal> {
        let key = self.key.as_ref()?;
        let height = sm.height;
        match self
            .guard
            .check_proposal(height, round, pol_round, block_hash)
        {
            SignDecision::Sign => {
                let p =
                    Proposal::new_signed(&self.chain_id, height, round, pol_round, block_hash, key);
                let m = Message::Proposal(p.clone());
                self.guard.record(&m);
                self.persist(sm, out);
                out.push(Output::Broadcast(m));
                Some(p)
            }
            SignDecision::Resend(Message::Proposal(p)) => {
                out.push(Output::Broadcast(Message::Proposal(p.clone())));
                Some(p)
            }
            SignDecision::Resend(Message::Vote(_)) | SignDecision::Refuse => {
                out.push(Output::Dropped {
                    reason: ConsensusError::DoubleSignPrevented {
                        height,
                        round,
                        step: Step::Propose,
                    },
                });
                None
            }
        }
    }
}

/// Everything about the height being decided.
#[derive(Debug)]
struct HeightState {
    sm: RoundState,
    keeper: VoteKeeper,
    validity: ValidityTable,
    /// Our key if we are a validator of this height (and hold a key).
    me: Option<PublicKey>,
}

impl HeightState {
    /// Asks the node for `valid(block)` once.
    fn request_validity(&mut self, block: Hash, round: u32, out: &mut Vec<Output>) {
        if self.validity.contains_key(&block) {
            return;
        }
        if self.validity.len() >= VALIDITY_ENTRIES_MAX {
            self.prune_validity();
            if self.validity.len() >= VALIDITY_ENTRIES_MAX {
                return;
            }
        }
        self.validity.insert(block, None);
        out.push(Output::ValidateBlock {
            height: self.sm.height,
            round,
            block_hash: block,
        });
    }

    /// Forgets the validity of blocks no stored message refers to.
    fn prune_validity(&mut self) {
        let mut keep = self.keeper.referenced_blocks();
        keep.extend(self.sm.locked.map(|l| l.block_hash));
        keep.extend(self.sm.valid.map(|v| v.block_hash));
        self.validity.retain(|h, _| keep.contains(h));
    }

    /// Moves the keeper's window along with the state machine's round.
    fn sync_round(&mut self) {
        let pinned: Vec<u32> = [self.sm.locked, self.sm.valid]
            .iter()
            .flatten()
            .map(|v| v.round)
            .collect();
        self.keeper.advance(self.sm.round, &pinned);
    }

    /// Counts a verified vote, asking for the validity of a block that reached a
    /// precommit quorum (L49 may need a block we never saw proposed).
    fn count_vote(&mut self, v: Vote, out: &mut Vec<Output>) {
        self.keeper.observe_round(v.validator, v.round);
        if let Some(NewQuorum::Commit(round, block)) = self.keeper.insert_vote(v) {
            self.request_validity(block, round, out);
        }
    }
}

/// The next height's messages, held until its `StartHeight`.
#[derive(Debug, Default)]
struct FutureBuffer {
    messages: Vec<Message>,
    /// Exact copies already buffered (signature included, so that a forged copy cannot
    /// shadow the real message).
    seen: BTreeSet<(PublicKey, u32, Step, Option<Hash>, Signature)>,
}

/// Tendermint consensus for one validator (or a non-validator that follows), as a pure,
/// deterministic state machine. See the crate documentation for the contract.
#[derive(Debug)]
pub struct Consensus {
    signer: Signer,
    params: TimeoutParams,
    restored: Option<PersistedState>,
    current: Option<HeightState>,
    future: FutureBuffer,
}

impl Consensus {
    /// A machine for `chain_id`. `key` is `None` for a non-validator (follows and decides,
    /// never signs). `restored` is the last [`Output::Persist`] of a previous run: the
    /// machine then never signs below or beside what it signed before, resumes the height,
    /// round and step it was at when `StartHeight` names that height, and keeps its lock.
    /// Nothing happens until the first [`Input::StartHeight`].
    pub fn new(
        chain_id: String,
        params: TimeoutParams,
        key: Option<SecretKey>,
        restored: Option<PersistedState>,
    ) -> Self {
        let public_key = key.as_ref().map(SecretKey::public_key);
        let guard = restored
            .as_ref()
            .map(|s| SignGuard::restore(s, public_key.as_ref()))
            .unwrap_or_default();
        Consensus {
            signer: Signer {
                chain_id,
                key,
                public_key,
                guard,
                last_persisted: restored.clone(),
            },
            params,
            restored,
            current: None,
            future: FutureBuffer::default(),
        }
    }

    /// Handles one input and returns what the node must do, in order. Never panics.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        let result = match input {
            Input::StartHeight { height, validators } => {
                self.start_height(height, validators, &mut out)
            }
            Input::Proposal(p) => self.on_proposal(p, &mut out),
            Input::Vote(v) => self.on_vote(v, &mut out),
            Input::BlockValidity { block_hash, valid } => self.on_block_validity(block_hash, valid),
            Input::ProposeValue {
                height,
                round,
                block_hash,
            } => self.on_propose_value(height, round, block_hash, &mut out),
            Input::TimeoutElapsed(t) => {
                self.on_timeout(t, &mut out);
                Ok(())
            }
        };
        if let Err(reason) = result {
            out.push(Output::Dropped { reason });
        }
        self.run_rules(&mut out);
        if let Some(cur) = &self.current {
            self.signer.persist(&cur.sm, &mut out);
        }
        out
    }

    /// The height being decided (`None` before the first `StartHeight`).
    pub fn height(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.sm.height)
    }

    /// The current round.
    pub fn round(&self) -> Option<u32> {
        self.current.as_ref().map(|c| c.sm.round)
    }

    /// The current step.
    pub fn step(&self) -> Option<Step> {
        self.current.as_ref().map(|c| c.sm.step)
    }

    /// The decision of the current height, once made (round of the quorum, block).
    pub fn decision(&self) -> Option<RoundValue> {
        self.current.as_ref().and_then(|c| c.sm.decided)
    }

    /// `lockedValue`/`lockedRound`.
    pub fn locked(&self) -> Option<RoundValue> {
        self.current.as_ref().and_then(|c| c.sm.locked)
    }

    /// `validValue`/`validRound`.
    pub fn valid(&self) -> Option<RoundValue> {
        self.current.as_ref().and_then(|c| c.sm.valid)
    }

    /// This machine's signing key, if any.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.signer.public_key
    }

    /// What the node should re-gossip periodically while the height is undecided: the
    /// messages this validator signed at the current height that are still stored (its
    /// proposals and votes of the kept rounds), then the prevotes that justify its
    /// `validValue` (the proof of lock that L28 needs beside a re-proposal of it, which
    /// may include votes of a byzantine validator that only some peers received).
    ///
    /// Tendermint's liveness assumes that a message received by a correct validator
    /// eventually reaches every correct validator; this is the part of that gossip the
    /// protocol depends on. At most `3 × rounds kept + validators` messages.
    pub fn rebroadcast(&self) -> Vec<Message> {
        let Some(c) = &self.current else {
            return Vec::new();
        };
        let mut out = match c.me {
            Some(me) => c.keeper.messages_of(&me),
            None => Vec::new(),
        };
        if let Some(v) = c.sm.valid {
            out.extend(
                c.keeper
                    .votes_for(v.round, VoteType::Prevote, v.block_hash)
                    .into_iter()
                    .filter(|p| Some(p.validator) != c.me)
                    .map(|p| Message::Vote(p.clone())),
            );
        }
        out
    }

    /// What the memory of the current height grows with: stored proposals and votes,
    /// per-validator round marks, remembered polkas and commits, reported equivocations,
    /// tracked block validities and buffered next-height messages. Bounded by the
    /// constants of [`crate::vote_keeper`] and this module.
    pub fn stored_items(&self) -> usize {
        self.current
            .as_ref()
            .map_or(0, |c| c.keeper.stored_items() + c.validity.len())
            + self.future.messages.len()
    }

    /// The most [`Consensus::stored_items`] can ever be with `validators` validators,
    /// whatever the inputs: the memory bound of one height.
    pub fn stored_items_bound(validators: usize) -> usize {
        use crate::vote_keeper::{
            COMMIT_ROUNDS_KEPT, FUTURE_ROUNDS_WINDOW, PAST_ROUNDS_KEPT, POLKA_ROUNDS_KEPT,
        };
        // The window, the older commit rounds, the locked and the valid round.
        let rounds =
            (PAST_ROUNDS_KEPT + 1 + FUTURE_ROUNDS_WINDOW) as usize + COMMIT_ROUNDS_KEPT + 2;
        // Per round: two proposals, and per vote type a first and a conflicting vote.
        let per_round = PROPOSALS_PER_ROUND_MAX + 2 * 2 * validators;
        // Equivocation keys: per round, proposal + two vote types per validator.
        let reported = rounds * 3 * validators;
        let polkas = POLKA_ROUNDS_KEPT + 2 + rounds;
        rounds * per_round
            + validators
            + polkas
            + COMMIT_ROUNDS_KEPT
            + reported
            + VALIDITY_ENTRIES_MAX
            + FUTURE_BUFFER_MAX
    }

    /// The number of rounds whose messages are stored in full.
    pub fn stored_rounds(&self) -> usize {
        self.current
            .as_ref()
            .map_or(0, |c| c.keeper.stored_rounds())
    }

    fn start_height(
        &mut self,
        height: u64,
        validators: ValidatorSet,
        out: &mut Vec<Output>,
    ) -> Result<()> {
        if let Some(cur) = &self.current
            && height <= cur.sm.height
        {
            return Err(ConsensusError::StaleStartHeight {
                height,
                current: cur.sm.height,
            });
        }
        let me = self
            .signer
            .public_key
            .filter(|k| validators.power_of(k) > 0);
        let mut cur = HeightState {
            sm: RoundState::new(height),
            keeper: VoteKeeper::new(validators),
            validity: ValidityTable::new(),
            me,
        };
        let resume = match self.restored.take() {
            Some(s) if s.height == height => Some(s),
            // A state for a later height: keep it until that height starts.
            Some(s) if s.height > height => {
                self.restored = Some(s);
                None
            }
            _ => None,
        };
        let actions = match resume {
            Some(s) => {
                cur.sm = RoundState::resumed(height, s.round, s.step, s.locked, s.valid);
                for rv in [s.locked, s.valid].into_iter().flatten() {
                    cur.validity.insert(rv.block_hash, Some(true));
                    cur.keeper.pin_polka(rv.round, rv.block_hash);
                }
                cur.sync_round();
                // What we signed before the restart: count it again and send it again.
                for m in self.signer.guard.signed().to_vec() {
                    if m.height() != height || Some(m.signer()) != me {
                        continue;
                    }
                    match &m {
                        Message::Proposal(p) => {
                            cur.validity.insert(p.block_hash, Some(true));
                            cur.keeper.observe_round(p.proposer, p.round);
                            cur.keeper.insert_proposal(p.clone());
                        }
                        Message::Vote(v) => {
                            if cur.keeper.vote_slot(v) == VoteSlot::Empty {
                                cur.count_vote(v.clone(), out);
                            }
                        }
                    }
                    out.push(Output::Broadcast(m));
                }
                if s.step == Step::Propose {
                    let round = cur.sm.round;
                    let cx = Context {
                        keeper: &cur.keeper,
                        validity: &cur.validity,
                        me: cur.me,
                    };
                    cur.sm.start_round(round, &cx)
                } else {
                    Vec::new()
                }
            }
            // L10: upon start do StartRound(0).
            None => {
                let cx = Context {
                    keeper: &cur.keeper,
                    validity: &cur.validity,
                    me: cur.me,
                };
                cur.sm.start_round(0, &cx)
            }
        };
        self.current = Some(cur);
        self.execute(actions, out);
        // Messages that arrived early for this height.
        let buffered = std::mem::take(&mut self.future);
        for m in buffered.messages {
            if m.height() != height {
                continue;
            }
            let r = match m {
                Message::Proposal(p) => self.on_proposal(p, out),
                Message::Vote(v) => self.on_vote(v, out),
            };
            if let Err(reason) = r {
                out.push(Output::Dropped { reason });
            }
        }
        Ok(())
    }

    /// Height checks shared by proposals and votes; `Ok(false)` means buffered.
    fn admit_height(&mut self, m: &Message) -> Result<bool> {
        let cur = self.current.as_ref().ok_or(ConsensusError::NotStarted)?;
        let (height, current) = (m.height(), cur.sm.height);
        if height < current {
            return Err(ConsensusError::PastHeight { height, current });
        }
        if height == current {
            return Ok(true);
        }
        if height != current.saturating_add(1) {
            return Err(ConsensusError::FutureHeight { height, current });
        }
        let key = (
            m.signer(),
            m.round(),
            m.step(),
            m.block_hash(),
            m.signature(),
        );
        if self.future.seen.contains(&key) {
            return Err(ConsensusError::Duplicate {
                signer: m.signer(),
                round: m.round(),
            });
        }
        if self.future.messages.len() >= FUTURE_BUFFER_MAX {
            return Err(ConsensusError::FutureBufferFull {
                capacity: FUTURE_BUFFER_MAX,
            });
        }
        self.future.seen.insert(key);
        self.future.messages.push(m.clone());
        Ok(false)
    }

    fn on_vote(&mut self, v: Vote, out: &mut Vec<Output>) -> Result<()> {
        if !self.admit_height(&Message::Vote(v.clone()))? {
            return Ok(());
        }
        let chain_id = self.signer.chain_id.as_str();
        let cur = self.current.as_mut().ok_or(ConsensusError::NotStarted)?;
        if cur.keeper.validators().power_of(&v.validator) == 0 {
            return Err(ConsensusError::UnknownValidator {
                signer: v.validator,
            });
        }
        let verify = |v: &Vote| {
            v.verify(chain_id)
                .map_err(|_| ConsensusError::BadSignature {
                    signer: v.validator,
                })
        };
        match cur.keeper.admission(v.round) {
            Admission::TooFar => {
                verify(&v)?;
                // Kept only as a round mark for L55; the rules run after this input.
                cur.keeper.observe_round(v.validator, v.round);
                Err(ConsensusError::RoundTooFar {
                    round: v.round,
                    current: cur.sm.round,
                    window: crate::vote_keeper::FUTURE_ROUNDS_WINDOW,
                })
            }
            Admission::TooOld { oldest } => Err(ConsensusError::RoundTooOld {
                round: v.round,
                oldest,
            }),
            Admission::Store => match cur.keeper.vote_slot(&v) {
                VoteSlot::Same => Err(ConsensusError::Duplicate {
                    signer: v.validator,
                    round: v.round,
                }),
                VoteSlot::Conflicting { full: true, .. } => {
                    Err(ConsensusError::EquivocationReported {
                        signer: v.validator,
                        round: v.round,
                    })
                }
                VoteSlot::Conflicting { first, full: false } => {
                    verify(&v)?;
                    let first = first.clone();
                    let key = EquivocationKey {
                        validator: v.validator,
                        height: v.height,
                        round: v.round,
                        step: match v.vote_type {
                            VoteType::Prevote => 1,
                            VoteType::Precommit => 2,
                        },
                    };
                    // Counted for its value too (see vote_keeper): the paper's quorums are
                    // per value, so a polka some peers saw is visible here as well.
                    cur.count_vote(v.clone(), out);
                    if cur.keeper.note_equivocation(key) {
                        out.push(Output::Evidence(Evidence::from_votes(first, v)));
                    }
                    Ok(())
                }
                VoteSlot::Empty => {
                    verify(&v)?;
                    cur.count_vote(v, out);
                    Ok(())
                }
            },
        }
    }

    fn on_proposal(&mut self, p: Proposal, out: &mut Vec<Output>) -> Result<()> {
        if !self.admit_height(&Message::Proposal(p.clone()))? {
            return Ok(());
        }
        let chain_id = self.signer.chain_id.as_str();
        let cur = self.current.as_mut().ok_or(ConsensusError::NotStarted)?;
        let validators = cur.keeper.validators();
        if validators.power_of(&p.proposer) == 0 {
            return Err(ConsensusError::UnknownValidator { signer: p.proposer });
        }
        if let Some(vr) = p.pol_round
            && vr >= p.round
        {
            return Err(ConsensusError::BadPolRound {
                round: p.round,
                pol_round: vr,
            });
        }
        let expected = validators.proposer(p.height, p.round).public_key;
        if p.proposer != expected {
            return Err(ConsensusError::WrongProposer {
                signer: p.proposer,
                round: p.round,
                expected,
            });
        }
        let verify = |p: &Proposal| {
            p.verify(chain_id)
                .map_err(|_| ConsensusError::BadSignature { signer: p.proposer })
        };
        match cur.keeper.admission(p.round) {
            Admission::TooFar => {
                verify(&p)?;
                cur.keeper.observe_round(p.proposer, p.round);
                Err(ConsensusError::RoundTooFar {
                    round: p.round,
                    current: cur.sm.round,
                    window: crate::vote_keeper::FUTURE_ROUNDS_WINDOW,
                })
            }
            Admission::TooOld { oldest } => Err(ConsensusError::RoundTooOld {
                round: p.round,
                oldest,
            }),
            Admission::Store => {
                let stored = cur.keeper.proposals(p.round);
                if stored.iter().any(|q| q.block_hash == p.block_hash) {
                    return Err(ConsensusError::Duplicate {
                        signer: p.proposer,
                        round: p.round,
                    });
                }
                if stored.len() >= PROPOSALS_PER_ROUND_MAX {
                    return Err(ConsensusError::EquivocationReported {
                        signer: p.proposer,
                        round: p.round,
                    });
                }
                if let Some(first) = stored.first() {
                    verify(&p)?;
                    let first = first.clone();
                    let key = EquivocationKey {
                        validator: p.proposer,
                        height: p.height,
                        round: p.round,
                        step: 0,
                    };
                    if cur.keeper.note_equivocation(key) {
                        out.push(Output::Evidence(Evidence::from_proposals(first, p.clone())));
                    }
                    // Kept too: L36 may find the polka on this one.
                    let (block, round) = (p.block_hash, p.round);
                    cur.keeper.insert_proposal(p);
                    cur.request_validity(block, round, out);
                    return Ok(());
                }
                verify(&p)?;
                cur.keeper.observe_round(p.proposer, p.round);
                let (block, round) = (p.block_hash, p.round);
                cur.keeper.insert_proposal(p);
                cur.request_validity(block, round, out);
                Ok(())
            }
        }
    }

    fn on_block_validity(&mut self, block: Hash, valid: bool) -> Result<()> {
        let cur = self.current.as_mut().ok_or(ConsensusError::NotStarted)?;
        match cur.validity.get_mut(&block) {
            Some(slot @ None) => {
                *slot = Some(valid);
                Ok(())
            }
            _ => Err(ConsensusError::UnexpectedBlockValidity { block_hash: block }),
        }
    }

    fn on_propose_value(
        &mut self,
        height: u64,
        round: u32,
        block: Hash,
        out: &mut Vec<Output>,
    ) -> Result<()> {
        let cur = self.current.as_mut().ok_or(ConsensusError::NotStarted)?;
        if !cur.sm.awaits_value(height, round) {
            return Err(ConsensusError::UnexpectedProposeValue { height, round });
        }
        let action = cur.sm.on_propose_value(block);
        self.execute(vec![action], out);
        Ok(())
    }

    fn on_timeout(&mut self, t: Timeout, out: &mut Vec<Output>) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        let cx = Context {
            keeper: &cur.keeper,
            validity: &cur.validity,
            me: cur.me,
        };
        let actions = cur.sm.on_timeout(t.height, t.round, t.step, &cx);
        self.execute(actions, out);
    }

    /// Applies upon-rules until none fires.
    fn run_rules(&mut self, out: &mut Vec<Output>) {
        for _ in 0..RULE_FIRINGS_MAX {
            let Some(cur) = self.current.as_mut() else {
                return;
            };
            let cx = Context {
                keeper: &cur.keeper,
                validity: &cur.validity,
                me: cur.me,
            };
            let Some(actions) = cur.sm.evaluate(&cx) else {
                return;
            };
            self.execute(actions, out);
        }
    }

    /// Carries out the state machine's actions: sign (persisting first), count our own
    /// messages, schedule, decide.
    fn execute(&mut self, actions: Vec<Action>, out: &mut Vec<Output>) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        cur.sync_round();
        let height = cur.sm.height;
        for action in actions {
            match action {
                Action::Propose {
                    round,
                    block_hash,
                    pol_round,
                } => {
                    if cur.me.is_none() {
                        continue;
                    }
                    // Our own value (built by the node, or validValue): valid.
                    cur.validity.insert(block_hash, Some(true));
                    if let Some(p) = self
                        .signer
                        .proposal(&cur.sm, round, pol_round, block_hash, out)
                    {
                        cur.keeper.observe_round(p.proposer, p.round);
                        cur.keeper.insert_proposal(p);
                    }
                }
                Action::RequestProposal { round } => {
                    out.push(Output::RequestProposal { height, round });
                }
                Action::Vote {
                    round,
                    vote_type,
                    block_hash,
                } => {
                    if cur.me.is_none() {
                        continue;
                    }
                    if let Some(v) = self.signer.vote(&cur.sm, round, vote_type, block_hash, out)
                        && cur.keeper.vote_slot(&v) == VoteSlot::Empty
                    {
                        cur.count_vote(v, out);
                    }
                }
                Action::ScheduleTimeout { round, step } => {
                    out.push(Output::ScheduleTimeout(Timeout {
                        height,
                        round,
                        step,
                        duration_ms: self.params.duration_ms(step, round),
                    }));
                }
                Action::Decide { round, block_hash } => {
                    let certificate = CommitCertificate::from_votes(
                        height,
                        round,
                        block_hash,
                        cur.keeper.votes_for(round, VoteType::Precommit, block_hash),
                    );
                    out.push(Output::Decide {
                        height,
                        round,
                        block_hash,
                        certificate,
                    });
                }
            }
        }
    }
}
