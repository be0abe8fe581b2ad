//! Why the state machine did not act on an input.
//!
//! [`Consensus::handle`](crate::Consensus::handle) never fails and never panics: an input
//! it cannot use is reported as [`Output::Dropped`](crate::Output::Dropped) with one of
//! these reasons, which the node counts (by [`ConsensusError::label`]) and may use to
//! score peers.

use crate::io::Step;
use ledger::{Hash, PublicKey};

/// Why an input was dropped, or why the machine declined to sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// No [`Input::StartHeight`](crate::Input::StartHeight) has been handled yet.
    #[error("consensus has not started a height yet")]
    NotStarted,
    /// The message is for a height that is already over.
    #[error("message for past height {height} (current {current})")]
    PastHeight {
        /// The message's height.
        height: u64,
        /// The height the machine is at.
        current: u64,
    },
    /// The message is for a height beyond the next one; the node buffers those.
    #[error(
        "message for future height {height} (current {current}); only the next height is buffered"
    )]
    FutureHeight {
        /// The message's height.
        height: u64,
        /// The height the machine is at.
        current: u64,
    },
    /// The buffer of next-height messages is full.
    #[error("the next-height buffer is full ({capacity} messages)")]
    FutureBufferFull {
        /// Its capacity.
        capacity: usize,
    },
    /// The signer is not in the validator set of the message's height.
    #[error("{signer} is not a validator at this height")]
    UnknownValidator {
        /// The claimed signer.
        signer: PublicKey,
    },
    /// The signature does not verify.
    #[error("signature of {signer} does not verify")]
    BadSignature {
        /// The claimed signer.
        signer: PublicKey,
    },
    /// The same message (same signer, round, step and block) was already counted.
    #[error("duplicate message from {signer} for round {round}")]
    Duplicate {
        /// The signer.
        signer: PublicKey,
        /// The round.
        round: u32,
    },
    /// A conflicting message whose equivocation was already reported as evidence.
    #[error("conflicting message from {signer} for round {round}; evidence already emitted")]
    EquivocationReported {
        /// The equivocating signer.
        signer: PublicKey,
        /// The round.
        round: u32,
    },
    /// A proposal signed by a validator that is not the proposer of its round.
    #[error("proposal for round {round} from {signer}, but the proposer is {expected}")]
    WrongProposer {
        /// The signer.
        signer: PublicKey,
        /// The round.
        round: u32,
        /// `ValidatorSet::proposer(height, round)`.
        expected: PublicKey,
    },
    /// A proposal whose proof-of-lock round is not below its round.
    #[error("proposal for round {round} carries pol_round {pol_round}, which is not below it")]
    BadPolRound {
        /// The proposal's round.
        round: u32,
        /// Its `pol_round`.
        pol_round: u32,
    },
    /// The message's round is too far above the current round to be stored. Its signer
    /// still counts for the round-skip rule (L55).
    #[error("round {round} is beyond the window (current {current}, window {window})")]
    RoundTooFar {
        /// The message's round.
        round: u32,
        /// The current round.
        current: u32,
        /// The number of future rounds stored.
        window: u32,
    },
    /// The message's round is older than the rounds still stored.
    #[error("round {round} is older than the oldest stored round {oldest}")]
    RoundTooOld {
        /// The message's round.
        round: u32,
        /// The oldest round still stored.
        oldest: u32,
    },
    /// `StartHeight` for a height not above the current one.
    #[error("StartHeight({height}) does not advance the current height {current}")]
    StaleStartHeight {
        /// Requested height.
        height: u64,
        /// Current height.
        current: u64,
    },
    /// `BlockValidity` for a block the machine did not ask about.
    #[error("BlockValidity for block {block_hash}, which was not requested")]
    UnexpectedBlockValidity {
        /// The block.
        block_hash: Hash,
    },
    /// `ProposeValue` that does not answer the pending `RequestProposal`.
    #[error("ProposeValue for height {height} round {round} answers no pending request")]
    UnexpectedProposeValue {
        /// Its height.
        height: u64,
        /// Its round.
        round: u32,
    },
    /// The machine would have signed a message conflicting with one it already signed at
    /// this height, round and step (only possible after a restart): it signed nothing.
    #[error(
        "refused to sign at height {height} round {round} step {step:?}: already signed a different message"
    )]
    DoubleSignPrevented {
        /// Height.
        height: u64,
        /// Round.
        round: u32,
        /// Step.
        step: Step,
    },
}

impl ConsensusError {
    /// A short, stable, metric-friendly name of the reason (e.g. `bad_signature`).
    pub fn label(&self) -> &'static str {
        match self {
            ConsensusError::NotStarted => "not_started",
            ConsensusError::PastHeight { .. } => "past_height",
            ConsensusError::FutureHeight { .. } => "future_height",
            ConsensusError::FutureBufferFull { .. } => "future_buffer_full",
            ConsensusError::UnknownValidator { .. } => "unknown_validator",
            ConsensusError::BadSignature { .. } => "bad_signature",
            ConsensusError::Duplicate { .. } => "duplicate",
            ConsensusError::EquivocationReported { .. } => "equivocation_reported",
            ConsensusError::WrongProposer { .. } => "wrong_proposer",
            ConsensusError::BadPolRound { .. } => "bad_pol_round",
            ConsensusError::RoundTooFar { .. } => "round_too_far",
            ConsensusError::RoundTooOld { .. } => "round_too_old",
            ConsensusError::StaleStartHeight { .. } => "stale_start_height",
            ConsensusError::UnexpectedBlockValidity { .. } => "unexpected_block_validity",
            ConsensusError::UnexpectedProposeValue { .. } => "unexpected_propose_value",
            ConsensusError::DoubleSignPrevented { .. } => "double_sign_prevented",
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ConsensusError>;
