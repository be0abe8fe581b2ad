//! govledger's BFT consensus: Tendermint (Algorithm 1 of "The latest gossip on BFT
//! consensus", Buchman, Kwon, Milosevic, 2018) as a pure, deterministic state machine.
//!
//! No clock, no network, no disk, no randomness, no threads: the node feeds
//! [`Input`]s to [`Consensus::handle`] and carries out the returned [`Output`]s in order.
//! Time arrives as [`Input::TimeoutElapsed`] and leaves as [`Output::ScheduleTimeout`].
//!
//! * [`state_machine`]: the round logic, tagged with the paper's line numbers;
//! * [`vote_keeper`]: the messages of a height, counted per round, with bounded memory;
//! * [`driver`]: [`Consensus`], which checks inputs (membership, heights, signatures,
//!   duplicates, proposer), detects equivocation, and signs under the watermark of
//!   [`persisted`];
//! * [`io`]: the inputs and outputs; [`error`]: why an input was dropped;
//! * [`sync`]: commit certificates as votes, for block sync;
//! * `sim` (feature `sim`): the deterministic network simulator the tests run.
//!
//! The contract, the bounds and the simulator are described in `docs/consensus.md`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod driver;
pub mod error;
pub mod io;
pub mod persisted;
#[cfg(feature = "sim")]
pub mod sim;
pub mod state_machine;
pub mod sync;
pub mod vote_keeper;

pub use driver::Consensus;
pub use error::{ConsensusError, Result};
pub use io::{Input, Message, Output, Step, Timeout, TimeoutParams};
pub use persisted::{PersistedState, RoundValue, SignedStep};
pub use sync::certificate_votes;

/// Why an input was dropped: the crate's error type under the name the node's metrics use.
pub type DropReason = ConsensusError;
