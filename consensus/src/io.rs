//! What goes into the state machine and what comes out of it.
//!
//! The node owns everything with a side effect: the clock, the network, the disk and the
//! blocks. It feeds [`Input`]s to [`Consensus::handle`](crate::Consensus::handle) and
//! carries out the returned [`Output`]s **in order**. The one ordering rule that matters for
//! safety: an [`Output::Persist`] must be durable before any later output of the same batch
//! leaves the process (see `docs/consensus.md`).

use crate::error::ConsensusError;
use crate::persisted::PersistedState;
use ledger::genesis::ConsensusParams;
use ledger::{
    CommitCertificate, Evidence, Hash, Proposal, PublicKey, Signature, ValidatorSet, Vote, VoteType,
};
use serde::{Deserialize, Serialize};

/// The step of a round (Tendermint's `step_p`), also the step of a signed message.
/// Ordered as in the paper: `Propose < Prevote < Precommit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Waiting for the round's proposal (a signed message of this step is a proposal).
    Propose,
    /// Prevoted; waiting for a prevote quorum.
    Prevote,
    /// Precommitted; waiting for a precommit quorum or the next round.
    Precommit,
}

impl From<VoteType> for Step {
    fn from(t: VoteType) -> Self {
        match t {
            VoteType::Prevote => Step::Prevote,
            VoteType::Precommit => Step::Precommit,
        }
    }
}

/// A consensus message as it travels between validators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Message {
    /// A signed proposal (the block itself travels separately; the node keeps blocks by hash).
    Proposal(Proposal),
    /// A signed prevote or precommit.
    Vote(Vote),
}

impl Message {
    /// The message's height.
    pub fn height(&self) -> u64 {
        match self {
            Message::Proposal(p) => p.height,
            Message::Vote(v) => v.height,
        }
    }

    /// The message's round.
    pub fn round(&self) -> u32 {
        match self {
            Message::Proposal(p) => p.round,
            Message::Vote(v) => v.round,
        }
    }

    /// The step it was signed at.
    pub fn step(&self) -> Step {
        match self {
            Message::Proposal(_) => Step::Propose,
            Message::Vote(v) => v.vote_type.into(),
        }
    }

    /// Who signed it.
    pub fn signer(&self) -> PublicKey {
        match self {
            Message::Proposal(p) => p.proposer,
            Message::Vote(v) => v.validator,
        }
    }

    /// Its signature.
    pub fn signature(&self) -> Signature {
        match self {
            Message::Proposal(p) => p.signature,
            Message::Vote(v) => v.signature,
        }
    }

    /// The block it is about (`None` for a nil vote).
    pub fn block_hash(&self) -> Option<Hash> {
        match self {
            Message::Proposal(p) => Some(p.block_hash),
            Message::Vote(v) => v.block_hash,
        }
    }
}

/// The three timeouts of Tendermint, with the durations that grow with the round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutParams {
    /// Propose timeout of round 0 (ms).
    pub propose_ms: u64,
    /// Added per round to the propose timeout (ms).
    pub propose_delta_ms: u64,
    /// Prevote timeout of round 0 (ms).
    pub prevote_ms: u64,
    /// Added per round to the prevote timeout (ms).
    pub prevote_delta_ms: u64,
    /// Precommit timeout of round 0 (ms).
    pub precommit_ms: u64,
    /// Added per round to the precommit timeout (ms).
    pub precommit_delta_ms: u64,
}

impl TimeoutParams {
    /// `base + delta * round` for the step's timeout, saturating instead of overflowing.
    pub fn duration_ms(&self, step: Step, round: u32) -> u64 {
        let (base, delta) = match step {
            Step::Propose => (self.propose_ms, self.propose_delta_ms),
            Step::Prevote => (self.prevote_ms, self.prevote_delta_ms),
            Step::Precommit => (self.precommit_ms, self.precommit_delta_ms),
        };
        base.saturating_add(delta.saturating_mul(u64::from(round)))
    }
}

impl From<&ConsensusParams> for TimeoutParams {
    fn from(p: &ConsensusParams) -> Self {
        TimeoutParams {
            propose_ms: p.timeout_propose_ms,
            propose_delta_ms: p.timeout_propose_delta_ms,
            prevote_ms: p.timeout_prevote_ms,
            prevote_delta_ms: p.timeout_prevote_delta_ms,
            precommit_ms: p.timeout_precommit_ms,
            precommit_delta_ms: p.timeout_precommit_delta_ms,
        }
    }
}

impl Default for TimeoutParams {
    /// The genesis defaults ([`ConsensusParams::default`]).
    fn default() -> Self {
        TimeoutParams::from(&ConsensusParams::default())
    }
}

/// A timeout the node must fire (as [`Input::TimeoutElapsed`] with the same value) after
/// `duration_ms` of its clock. A timeout that fires late or for an old round is harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timeout {
    /// Height it was scheduled at.
    pub height: u64,
    /// Round it was scheduled at.
    pub round: u32,
    /// Which of the three timeouts (`OnTimeoutPropose`, `OnTimeoutPrevote`, `OnTimeoutPrecommit`).
    pub step: Step,
    /// How long to wait (ms): the step's base plus its delta times the round.
    pub duration_ms: u64,
}

/// An input to the state machine.
#[derive(Clone, Debug)]
pub enum Input {
    /// Start `height` with its validator set: after `height - 1` was committed (or, for the
    /// first height, at start-up and after every restart).
    StartHeight {
        /// The height to decide.
        height: u64,
        /// The validators in force at that height.
        validators: ValidatorSet,
    },
    /// A signed proposal from the network.
    Proposal(Proposal),
    /// The node's answer to [`Output::ValidateBlock`]: whether the block with this hash is
    /// valid (Tendermint's `valid(v)`). Validity is a property of the block hash.
    BlockValidity {
        /// The block.
        block_hash: Hash,
        /// Whether it executes and passes every rule.
        valid: bool,
    },
    /// A signed vote from the network (or reconstructed from a commit certificate during
    /// block sync, see [`certificate_votes`](crate::certificate_votes)).
    Vote(Vote),
    /// The node's answer to [`Output::RequestProposal`]: the block it built (Tendermint's
    /// `getValue()`), by hash. The machine takes it to be valid.
    ProposeValue {
        /// The requested height.
        height: u64,
        /// The requested round.
        round: u32,
        /// The hash of the block the node built and keeps.
        block_hash: Hash,
    },
    /// A timeout scheduled by [`Output::ScheduleTimeout`] has elapsed.
    TimeoutElapsed(Timeout),
}

/// An effect the node must carry out, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Write this state durably, **before** any later output of the same batch leaves the
    /// process. Always emitted before the broadcast of a newly signed message.
    Persist(PersistedState),
    /// Send to every validator.
    Broadcast(Message),
    /// Fire [`Input::TimeoutElapsed`] with this value after `duration_ms`.
    ScheduleTimeout(Timeout),
    /// This validator proposes in `(height, round)` and has no valid value: build a block
    /// and answer [`Input::ProposeValue`].
    RequestProposal {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
    },
    /// Execute the block with this hash (fetching it from peers if it is not at hand) and
    /// answer [`Input::BlockValidity`]. `round` is the round it was seen in, for logs.
    ValidateBlock {
        /// Height.
        height: u64,
        /// Round of the proposal (or of the precommit quorum) that named it.
        round: u32,
        /// The block.
        block_hash: Hash,
    },
    /// The block is decided: commit it with its certificate, then send
    /// [`Input::StartHeight`] for `height + 1`. Until then the machine idles.
    Decide {
        /// Height.
        height: u64,
        /// Round of the precommit quorum.
        round: u32,
        /// The block.
        block_hash: Hash,
        /// Precommits of more than two thirds of the power; passes `CommitCertificate::verify`.
        certificate: CommitCertificate,
    },
    /// Evidence of an equivocation, once per [`ledger::vote::EquivocationKey`] and height:
    /// gossip it and include it in a block.
    Evidence(Evidence),
    /// An input was not used (or the machine declined to sign); for counters and logs.
    Dropped {
        /// Why.
        reason: ConsensusError,
    },
}
