//! `govledger-node`: a validator (or follower) node of govledger.
//!
//! * [`network`]: libp2p (TCP + Noise + Yamux), allow-listed peers, gossip and block sync.
//! * [`driver`]: drives the consensus state machine with real timers, builds and checks
//!   blocks, persists signing state, commits decided blocks, syncs when behind.
//! * [`mempool`]: verified transactions waiting for a block.
//! * [`api`]: the HTTP API and `/metrics`.
//! * [`app`]: what these share; [`config`]: the config file; [`dev`]: the single-node
//!   development chain.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod config;
pub mod dev;
pub mod driver;
pub mod health;
pub mod intake;
pub mod mempool;
pub mod messages;
pub mod metrics;
pub mod network;
pub mod run;
pub mod signing;
