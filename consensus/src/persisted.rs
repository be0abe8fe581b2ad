//! Signing safety: what a validator persists so that, after a crash, it never signs a
//! message conflicting with one it signed before, and keeps its lock.
//!
//! The rule is a watermark, like a remote signer's "last sign state": a message at
//! `(height, round, step)` is signed only if that position is strictly above the last
//! signed one, or if it is exactly the message already signed there (which is then
//! re-broadcast byte for byte, never re-signed differently). Tendermint never needs to sign
//! twice at one position, nor to go back: rounds only grow within a height and the steps of
//! a round are signed in order (proposal, prevote, precommit).

use crate::io::{Message, Step};
use ledger::codec::{self, DecodeError};
use ledger::{Hash, PublicKey, VoteType};
use serde::{Deserialize, Serialize};

/// Most messages one validator signs in one round: a proposal, a prevote, a precommit.
pub const SIGNED_PER_ROUND_MAX: usize = 3;
/// Rounds of signed messages kept in the persisted state: the watermark's round and the
/// [`PAST_ROUNDS_KEPT`](crate::vote_keeper::PAST_ROUNDS_KEPT) before it.
pub const SIGNED_ROUNDS_KEPT: u32 = crate::vote_keeper::PAST_ROUNDS_KEPT + 1;
/// Bound on [`PersistedState::signed`].
pub const SIGNED_MESSAGES_MAX: usize = SIGNED_PER_ROUND_MAX * SIGNED_ROUNDS_KEPT as usize;

/// A block hash with the round it belongs to: Tendermint's `lockedValue`/`lockedRound`
/// and `validValue`/`validRound` pairs (`None` for the paper's `nil`/`-1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RoundValue {
    /// The round (`lockedRound` or `validRound`).
    pub round: u32,
    /// The block (`lockedValue` or `validValue`).
    pub block_hash: Hash,
}

/// Position of a signed message. Ordered lexicographically: height, then round, then step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SignedStep {
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// Step (`Propose` for a proposal).
    pub step: Step,
}

/// The state a validator must keep durably, emitted as
/// [`Output::Persist`](crate::Output::Persist) and given back to
/// [`Consensus::new`](crate::Consensus::new) after a restart.
///
/// It holds the position (height, round, step), the lock and valid value, and the signing
/// watermark with the messages signed at it. Votes received from others are *not* part of
/// it: after a restart they arrive again through gossip (or the node may re-feed the ones
/// it stored as ordinary [`Input::Vote`](crate::Input::Vote)s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// Height the machine was at.
    pub height: u64,
    /// Round it was at.
    pub round: u32,
    /// Step it was at.
    pub step: Step,
    /// `lockedValue`/`lockedRound` (`None` = nil/-1).
    pub locked: Option<RoundValue>,
    /// `validValue`/`validRound` (`None` = nil/-1).
    pub valid: Option<RoundValue>,
    /// The highest position this validator has signed at (any height).
    pub last_signed: Option<SignedStep>,
    /// The messages signed at `last_signed`'s height, in its round and the
    /// [`SIGNED_ROUNDS_KEPT`]` - 1` rounds before (at most [`SIGNED_MESSAGES_MAX`]).
    /// After a restart they are counted again and re-broadcast unchanged: a message sent
    /// just before a crash may have been lost, and Tendermint's liveness needs every
    /// message of a correct validator to arrive eventually.
    pub signed: Vec<Message>,
}

impl PersistedState {
    /// Canonical bytes (the ledger's encoding), for the node's store.
    pub fn to_bytes(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes [`PersistedState::to_bytes`], refusing non-canonical input and more than
    /// [`SIGNED_MESSAGES_MAX`] signed messages.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let state: PersistedState = codec::decode(bytes)?;
        codec::check_len("signed", state.signed.len(), SIGNED_MESSAGES_MAX)?;
        Ok(state)
    }
}

/// The position a message was signed at.
pub(crate) fn position(m: &Message) -> SignedStep {
    SignedStep {
        height: m.height(),
        round: m.round(),
        step: m.step(),
    }
}

/// What the guard allows for a message about to be signed.
#[derive(Debug)]
pub(crate) enum SignDecision {
    /// Above the watermark: sign it.
    Sign,
    /// Exactly the message already signed at this position: send that one again.
    Resend(Message),
    /// At or below the watermark and different: do not sign.
    Refuse,
}

/// The signing watermark and the messages signed at it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SignGuard {
    last: Option<SignedStep>,
    signed: Vec<Message>,
}

impl SignGuard {
    /// Restores the guard from a persisted state. Messages that are not this validator's,
    /// not at the watermark's height, or above the watermark, are ignored (the watermark
    /// still holds).
    pub(crate) fn restore(state: &PersistedState, me: Option<&PublicKey>) -> Self {
        let last = state.last_signed;
        let signed = match (last, me) {
            (Some(l), Some(me)) => state
                .signed
                .iter()
                .filter(|m| {
                    let p = position(m);
                    m.signer() == *me && p.height == l.height && p <= l
                })
                .take(SIGNED_MESSAGES_MAX)
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        SignGuard { last, signed }
    }

    /// The highest signed position.
    pub(crate) fn last(&self) -> Option<SignedStep> {
        self.last
    }

    /// The messages signed at the watermark's height (recent rounds).
    pub(crate) fn signed(&self) -> &[Message] {
        &self.signed
    }

    /// May a vote `(height, round, vote_type, block_hash)` be signed?
    pub(crate) fn check_vote(
        &self,
        height: u64,
        round: u32,
        vote_type: VoteType,
        block_hash: Option<Hash>,
    ) -> SignDecision {
        let at = SignedStep {
            height,
            round,
            step: vote_type.into(),
        };
        self.decide(
            at,
            |m| matches!(m, Message::Vote(v) if v.block_hash == block_hash),
        )
    }

    /// May a proposal `(height, round, pol_round, block_hash)` be signed?
    pub(crate) fn check_proposal(
        &self,
        height: u64,
        round: u32,
        pol_round: Option<u32>,
        block_hash: Hash,
    ) -> SignDecision {
        let at = SignedStep {
            height,
            round,
            step: Step::Propose,
        };
        self.decide(at, |m| {
            matches!(m, Message::Proposal(p) if p.block_hash == block_hash && p.pol_round == pol_round)
        })
    }

    fn decide(&self, at: SignedStep, same: impl Fn(&Message) -> bool) -> SignDecision {
        if let Some(m) = self.signed.iter().find(|m| position(m) == at) {
            return if same(m) {
                SignDecision::Resend(m.clone())
            } else {
                SignDecision::Refuse
            };
        }
        match self.last {
            Some(last) if at <= last => SignDecision::Refuse,
            _ => SignDecision::Sign,
        }
    }

    /// Records a newly signed message: it becomes the watermark.
    pub(crate) fn record(&mut self, m: &Message) {
        let at = position(m);
        if self.last.is_none_or(|l| l.height != at.height) {
            self.signed.clear();
        }
        let oldest = at.round.saturating_sub(SIGNED_ROUNDS_KEPT - 1);
        self.signed.retain(|s| s.round() >= oldest);
        if self.signed.len() >= SIGNED_MESSAGES_MAX {
            self.signed.remove(0);
        }
        self.signed.push(m.clone());
        self.last = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::{SecretKey, Vote};

    #[test]
    fn watermark_allows_only_forward_or_identical() {
        let k = SecretKey::from_seed(&[7; 32]);
        let mut g = SignGuard::default();
        let a = Hash([1; 32]);
        assert!(matches!(
            g.check_vote(3, 1, VoteType::Prevote, Some(a)),
            SignDecision::Sign
        ));
        let v = Vote::new_signed("c", 3, 1, VoteType::Prevote, Some(a), &k);
        g.record(&Message::Vote(v.clone()));
        assert!(matches!(
            g.check_vote(3, 1, VoteType::Prevote, Some(a)),
            SignDecision::Resend(Message::Vote(ref x)) if *x == v
        ));
        assert!(matches!(
            g.check_vote(3, 1, VoteType::Prevote, None),
            SignDecision::Refuse
        ));
        assert!(matches!(
            g.check_proposal(3, 1, None, a),
            SignDecision::Refuse
        ));
        assert!(matches!(
            g.check_vote(3, 0, VoteType::Precommit, None),
            SignDecision::Refuse
        ));
        assert!(matches!(
            g.check_vote(3, 1, VoteType::Precommit, None),
            SignDecision::Sign
        ));
        assert!(matches!(
            g.check_proposal(3, 2, None, a),
            SignDecision::Sign
        ));
        assert!(matches!(
            g.check_vote(4, 0, VoteType::Prevote, None),
            SignDecision::Sign
        ));
    }

    #[test]
    fn persisted_state_round_trips() {
        let k = SecretKey::from_seed(&[7; 32]);
        let v = Vote::new_signed("c", 3, 1, VoteType::Precommit, None, &k);
        let s = PersistedState {
            height: 3,
            round: 1,
            step: Step::Precommit,
            locked: Some(RoundValue {
                round: 0,
                block_hash: Hash([9; 32]),
            }),
            valid: None,
            last_signed: Some(position(&Message::Vote(v.clone()))),
            signed: vec![Message::Vote(v)],
        };
        let back = PersistedState::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        let mut big = s.clone();
        big.signed = vec![s.signed[0].clone(); SIGNED_MESSAGES_MAX + 1];
        assert!(PersistedState::from_bytes(&big.to_bytes()).is_err());
    }
}
