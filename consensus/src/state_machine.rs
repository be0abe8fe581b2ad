//! The round logic of Tendermint: Algorithm 1 of "The latest gossip on BFT consensus"
//! (Buchman, Kwon, Milosevic, 2018). Comments `// L22` name the lines of the paper.
//!
//! The state machine reads the messages counted by the
//! [`VoteKeeper`](crate::vote_keeper::VoteKeeper) and the known validity of blocks, updates
//! `round_p`, `step_p`, `lockedValue/lockedRound`, `validValue/validRound`, and returns
//! [`Action`]s. It neither signs, nor persists, nor sends: the driver does, in that order.
//!
//! Two refinements of the paper, both standard in implementations:
//! * `valid(v)` is asked of the node by block hash and may arrive later than the proposal;
//!   a rule that needs it waits (and the propose timeout still applies).
//! * L49 needs 2f+1 precommits for `v` and `v` known valid, not necessarily the proposal
//!   message of that round: a validator that missed the proposal (or syncs from a commit
//!   certificate) fetches the block by hash. Safety rests on the precommit quorum alone.

use crate::io::Step;
use crate::persisted::RoundValue;
use crate::vote_keeper::VoteKeeper;
use ledger::{Hash, PublicKey, VoteType};
use std::collections::BTreeMap;

/// What is known of a block's validity: absent = never asked, `None` = asked, no answer.
pub(crate) type ValidityTable = BTreeMap<Hash, Option<bool>>;

/// What the state machine reads.
pub(crate) struct Context<'a> {
    /// The messages of the height.
    pub(crate) keeper: &'a VoteKeeper,
    /// Known validity of blocks.
    pub(crate) validity: &'a ValidityTable,
    /// This validator's key, if it is a validator of the height and holds its key.
    pub(crate) me: Option<PublicKey>,
}

impl Context<'_> {
    fn valid(&self, block: &Hash) -> Option<bool> {
        self.validity.get(block).copied().flatten()
    }

    fn is_proposer(&self, height: u64, round: u32) -> bool {
        self.me
            .is_some_and(|me| self.keeper.validators().proposer(height, round).public_key == me)
    }
}

/// What the driver must do for the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Sign and broadcast a proposal (L18/L19).
    Propose {
        round: u32,
        block_hash: Hash,
        pol_round: Option<u32>,
    },
    /// Ask the node for a value (L17 `getValue()`).
    RequestProposal { round: u32 },
    /// Sign and broadcast a prevote or precommit.
    Vote {
        round: u32,
        vote_type: VoteType,
        block_hash: Option<Hash>,
    },
    /// Schedule one of the three timeouts.
    ScheduleTimeout { round: u32, step: Step },
    /// Decide (L49-L51).
    Decide { round: u32, block_hash: Hash },
}

/// Tendermint's per-height process state.
#[derive(Debug, Clone)]
pub(crate) struct RoundState {
    /// `h_p`.
    pub(crate) height: u64,
    /// `round_p`.
    pub(crate) round: u32,
    /// `step_p`.
    pub(crate) step: Step,
    /// `lockedValue_p` / `lockedRound_p`.
    pub(crate) locked: Option<RoundValue>,
    /// `validValue_p` / `validRound_p`.
    pub(crate) valid: Option<RoundValue>,
    /// `decision_p[h_p]`, with the round of the precommit quorum.
    pub(crate) decided: Option<RoundValue>,
    /// A `RequestProposal` for the current round awaits `ProposeValue`.
    awaiting_value: bool,
    /// L34 "for the first time" in the current round.
    prevote_timeout_scheduled: bool,
    /// L36 "for the first time" in the current round.
    polka_handled: bool,
    /// L47 "for the first time" in the current round.
    precommit_timeout_scheduled: bool,
}

impl RoundState {
    /// Initialisation (L1-L9) for `height`. `StartRound(0)` follows via [`Self::start_round`].
    pub(crate) fn new(height: u64) -> Self {
        RoundState {
            height,
            round: 0,
            step: Step::Propose,
            locked: None,
            valid: None,
            decided: None,
            awaiting_value: false,
            prevote_timeout_scheduled: false,
            polka_handled: false,
            precommit_timeout_scheduled: false,
        }
    }

    /// A state restored after a restart: same position, lock and valid value.
    pub(crate) fn resumed(
        height: u64,
        round: u32,
        step: Step,
        locked: Option<RoundValue>,
        valid: Option<RoundValue>,
    ) -> Self {
        RoundState {
            round,
            step,
            locked,
            valid,
            ..RoundState::new(height)
        }
    }

    /// Whether a `ProposeValue` for `(height, round)` answers the pending request.
    pub(crate) fn awaits_value(&self, height: u64, round: u32) -> bool {
        self.awaiting_value
            && self.decided.is_none()
            && self.height == height
            && self.round == round
            && self.step == Step::Propose
    }

    /// The node answered `getValue()` (L17): propose it (L18).
    pub(crate) fn on_propose_value(&mut self, block_hash: Hash) -> Action {
        self.awaiting_value = false;
        Action::Propose {
            round: self.round,
            block_hash,
            pol_round: None,
        }
    }

    /// `StartRound(round)`, L11-L21.
    pub(crate) fn start_round(&mut self, round: u32, cx: &Context) -> Vec<Action> {
        // L11-L12
        self.round = round;
        self.step = Step::Propose;
        self.awaiting_value = false;
        self.prevote_timeout_scheduled = false;
        self.polka_handled = false;
        self.precommit_timeout_scheduled = false;
        let mut actions = Vec::with_capacity(2);
        // L13: proposer(h_p, round_p) = p. A proposal of ours already stored means we
        // proposed in this round before a restart: the driver re-broadcasts it.
        let already_proposed = cx
            .keeper
            .proposals(round)
            .iter()
            .any(|p| Some(p.proposer) == cx.me);
        if cx.is_proposer(self.height, round) && !already_proposed {
            match self.valid {
                // L14-L15, L18: re-propose validValue with validRound.
                Some(v) => actions.push(Action::Propose {
                    round,
                    block_hash: v.block_hash,
                    pol_round: Some(v.round),
                }),
                // L16-L17: getValue() is asked of the node, answered by ProposeValue.
                None => {
                    self.awaiting_value = true;
                    actions.push(Action::RequestProposal { round });
                }
            }
        }
        // L20-L21. Also scheduled when we propose: if the node never answers
        // RequestProposal, L57 still moves the round on.
        actions.push(Action::ScheduleTimeout {
            round,
            step: Step::Propose,
        });
        actions
    }

    /// `OnTimeoutPropose` (L57), `OnTimeoutPrevote` (L61), `OnTimeoutPrecommit` (L65).
    pub(crate) fn on_timeout(
        &mut self,
        height: u64,
        round: u32,
        step: Step,
        cx: &Context,
    ) -> Vec<Action> {
        if self.decided.is_some() || height != self.height || round != self.round {
            return Vec::new();
        }
        match step {
            // L57-L60
            Step::Propose if self.step == Step::Propose => {
                self.step = Step::Prevote;
                self.awaiting_value = false;
                vec![self.vote(VoteType::Prevote, None)]
            }
            // L61-L64
            Step::Prevote if self.step == Step::Prevote => {
                self.step = Step::Precommit;
                vec![self.vote(VoteType::Precommit, None)]
            }
            // L65-L67
            Step::Precommit => match self.round.checked_add(1) {
                Some(next) => self.start_round(next, cx),
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn vote(&self, vote_type: VoteType, block_hash: Option<Hash>) -> Action {
        Action::Vote {
            round: self.round,
            vote_type,
            block_hash,
        }
    }

    fn locked_round_at_most(&self, vr: u32) -> bool {
        self.locked.is_none_or(|l| l.round <= vr)
    }

    fn locked_on(&self, v: Hash) -> bool {
        self.locked.is_some_and(|l| l.block_hash == v)
    }

    /// Applies the first upon-rule whose condition holds. `None` when none does: the
    /// driver calls this until then (every rule changes the state, so this terminates).
    pub(crate) fn evaluate(&mut self, cx: &Context) -> Option<Vec<Action>> {
        if self.decided.is_some() {
            return None;
        }
        // L49-L54: 2f+1 precommits for v in some round r of this height and valid(v).
        // (L52-L54, the move to the next height, is the node's StartHeight.)
        if let Some((round, block_hash)) = cx
            .keeper
            .commit_quorums()
            .find(|(_, v)| cx.valid(v) == Some(true))
        {
            self.decided = Some(RoundValue { round, block_hash });
            return Some(vec![Action::Decide { round, block_hash }]);
        }
        // L55-L56: messages from more than a third of the power for a higher round.
        if let Some(round) = cx.keeper.skip_target(self.round) {
            return Some(self.start_round(round, cx));
        }
        let r = self.round;
        if self.step == Step::Propose {
            // The keeper stores only proposals from proposer(h_p, round_p): one, or two if
            // it equivocated (then whichever first satisfies a rule, as "upon" reads).
            for p in cx.keeper.proposals(r) {
                let v = p.block_hash;
                let accept = match (p.pol_round, cx.valid(&v)) {
                    // L22-L27
                    (None, Some(valid)) => valid && (self.locked.is_none() || self.locked_on(v)),
                    // L28-L33: needs 2f+1 prevotes for v in round vr < round_p.
                    (Some(vr), Some(valid)) if vr < r && cx.keeper.polka(vr) == Some(v) => {
                        valid && (self.locked_round_at_most(vr) || self.locked_on(v))
                    }
                    // Validity not known yet, or the polka of vr not seen: wait (or L57).
                    _ => continue,
                };
                self.step = Step::Prevote;
                self.awaiting_value = false;
                return Some(vec![self.vote(VoteType::Prevote, accept.then_some(v))]);
            }
        }
        // L34-L35
        if self.step == Step::Prevote
            && !self.prevote_timeout_scheduled
            && cx.keeper.prevote_quorum_any(r)
        {
            self.prevote_timeout_scheduled = true;
            return Some(vec![Action::ScheduleTimeout {
                round: r,
                step: Step::Prevote,
            }]);
        }
        // L36-L43: the proposal of this round, valid, with 2f+1 prevotes for it.
        if self.step >= Step::Prevote
            && !self.polka_handled
            && let Some(v) = cx.keeper.polka(r)
            && cx.valid(&v) == Some(true)
            && cx.keeper.proposals(r).iter().any(|p| p.block_hash == v)
        {
            self.polka_handled = true;
            let mut actions = Vec::new();
            // L37-L41
            if self.step == Step::Prevote {
                self.locked = Some(RoundValue {
                    round: r,
                    block_hash: v,
                });
                self.step = Step::Precommit;
                actions.push(self.vote(VoteType::Precommit, Some(v)));
            }
            // L42-L43
            self.valid = Some(RoundValue {
                round: r,
                block_hash: v,
            });
            return Some(actions);
        }
        // L44-L46
        if self.step == Step::Prevote && cx.keeper.prevote_nil_quorum(r) {
            self.step = Step::Precommit;
            return Some(vec![self.vote(VoteType::Precommit, None)]);
        }
        // L47-L48
        if !self.precommit_timeout_scheduled && cx.keeper.precommit_quorum_any(r) {
            self.precommit_timeout_scheduled = true;
            return Some(vec![Action::ScheduleTimeout {
                round: r,
                step: Step::Precommit,
            }]);
        }
        None
    }
}
