//! The `govledger` command-line client as a library: the node client, key files, building
//! and signing transactions, queries, the offline proof verifier, the auditor and the
//! testnet generator. The binary (`src/main.rs`) only parses arguments and maps errors to
//! exit codes; tests and the end-to-end suite call these modules directly.
//!
//! * [`client`]: the node's HTTP API (`docs/api.md`).
//! * [`keys`]: key files, public keys and libp2p peer ids.
//! * [`write`]: signing and submitting transactions (nonces, retries), document hashes,
//!   citizen pseudonyms.
//! * [`verify`]: offline verification of proof bundles (no network code path).
//! * [`status`]: status bundles fetched with every page of their history, in plain words.
//! * [`audit`]: full re-verification of a chain from genesis, with checkpoints.
//! * [`consistency`]: whether a later checkpoint extends an earlier one, offline, or
//!   evidence of a fork; consistency proof files.
//! * [`testnet`]: a local N-validator network in one folder.
//! * [`bench`]: the load generator (`govledger bench`).
//! * [`bench_proofs`]: proof bundles served over HTTP and verified offline, per second.
//! * [`output`], [`time`], [`exit`]: printing, time arguments, exit codes.

#![forbid(unsafe_code)]

#[macro_use]
pub mod exit;
pub mod args;
pub mod audit;
pub mod bench;
pub mod bench_proofs;
pub mod client;
pub mod commands;
pub mod consistency;
pub mod keys;
pub mod output;
pub mod status;
pub mod testnet;
pub mod time;
pub mod verify;
pub mod write;
