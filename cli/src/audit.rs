//! The auditor: re-verifies a whole chain from its genesis, offline once the blocks are in
//! hand.
//!
//! For every block, in order: the header links to the previous one (chain id, height,
//! `prev_hash`); its commit certificate carries more than two thirds of the voting power of
//! the validator set in force at that height (taken from the replayed state, so validator
//! changes are followed exactly as the chain executed them); every transaction's signature
//! verifies (in a batch) and its fields are within bounds; and executing the block on the
//! replayed state yields exactly the header's `tx_root`, `log_size`, `log_root`,
//! `state_root`, `validators_hash` and `next_validators_hash`, with every permission and
//! business rule re-checked. The history log is rebuilt through its right edge (the
//! frontier), so memory does not grow with the log.
//!
//! Given a checkpoint kept earlier: the checkpoint verifies against genesis on its own, the
//! replayed header at its height is exactly the checkpoint's header, and the source's RFC
//! 9162 consistency proof from the checkpoint's log to the replayed tip verifies.
//!
//! Fetching and signature checks run on one thread while execution runs on another, so the
//! replay uses two cores.

use crate::client::{CHAIN_PAGE_BLOCKS_MAX, ClientError, NodeClient};
use crate::exit::Exit;
use ledger::block::{BlockHeader, CommittedBlock};
use ledger::chain::{ChainTip, execute_block, validators_for};
use ledger::execute::{VerifiedTx, genesis_state, verify_batch};
use ledger::genesis::{Genesis, GenesisError};
use ledger::hash::Hash;
use ledger::history_log::verify_consistency;
use ledger::proof::{Checkpoint, VerifyError};
use ledger::state::MemState;
use ledger::vote::CommitCertificate;
use serde::Serialize;
use std::sync::mpsc;
use std::time::Instant;

/// A boxed error from a chain source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Blocks buffered between the fetching thread and the replaying thread.
pub const PIPELINE_BLOCKS_MAX: usize = 16;

/// Where the auditor gets the chain: a node over HTTP, or (in tests) a store.
pub trait ChainSource {
    /// Up to `limit` consecutive committed blocks starting at height `from`; empty when
    /// there is no block at `from`.
    fn blocks(&mut self, from: u64, limit: u32) -> Result<Vec<CommittedBlock>, BoxError>;
    /// The RFC 9162 consistency proof between two log sizes.
    fn consistency_proof(&mut self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, BoxError>;
}

impl ChainSource for NodeClient {
    fn blocks(&mut self, from: u64, limit: u32) -> Result<Vec<CommittedBlock>, BoxError> {
        Ok(self.chain_blocks(from, limit)?)
    }
    fn consistency_proof(&mut self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, BoxError> {
        Ok(self.consistency(old_size, new_size)?)
    }
}

/// Why an audit failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The chain does not re-verify at this height.
    #[error("audit failed at height {height}: {check}: {reason}")]
    Mismatch {
        /// The height of the first block that does not verify.
        height: u64,
        /// The check that failed (e.g. `commit certificate`, `execution`).
        check: &'static str,
        /// Why.
        reason: String,
    },
    /// The checkpoint itself does not verify against genesis.
    #[error("the checkpoint does not verify against the genesis: {0}")]
    Checkpoint(VerifyError),
    /// The genesis cannot start a chain.
    #[error("genesis: {0}")]
    Genesis(#[from] GenesisError),
    /// The source failed (network, node error).
    #[error("fetching the chain at height {height}")]
    Source {
        /// The height being fetched.
        height: u64,
        /// The source's error.
        #[source]
        source: BoxError,
    },
}

impl AuditError {
    /// The exit code, if this error decides it.
    pub fn exit(&self) -> Option<Exit> {
        Some(match self {
            AuditError::Mismatch { .. } | AuditError::Checkpoint(_) => Exit::AuditMismatch,
            AuditError::Genesis(_) => Exit::Local,
            AuditError::Source { source, .. } => source
                .downcast_ref::<ClientError>()
                .map(ClientError::exit)
                .unwrap_or(Exit::Node),
        })
    }

    /// The height at which the chain failed to verify, if it did.
    pub fn height(&self) -> Option<u64> {
        match self {
            AuditError::Mismatch { height, .. } => Some(*height),
            _ => None,
        }
    }
}

fn mismatch(height: u64, check: &'static str, reason: impl Into<String>) -> AuditError {
    AuditError::Mismatch {
        height,
        check,
        reason: reason.into(),
    }
}

/// How to audit.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// A checkpoint kept earlier, which the chain must extend.
    pub checkpoint: Option<Checkpoint>,
    /// Audit up to this height (the source must have it); `None`: until the source has no
    /// more blocks.
    pub to_height: Option<u64>,
    /// Blocks per request.
    pub page_blocks: u32,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            checkpoint: None,
            to_height: None,
            page_blocks: CHAIN_PAGE_BLOCKS_MAX,
        }
    }
}

/// Progress, reported after each block.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Height just verified.
    pub height: u64,
    /// Transactions verified so far.
    pub txs: u64,
}

/// What the checkpoint check established.
#[derive(Clone, Debug, Serialize)]
pub struct CheckpointCheck {
    /// Height of the checkpoint.
    pub height: u64,
    /// Its block hash.
    pub block_hash: Hash,
    /// Its log size.
    pub log_size: u64,
    /// The tip's log size the consistency proof reaches.
    pub new_log_size: u64,
    /// Hashes in the consistency proof.
    pub consistency_proof_hashes: usize,
}

/// The report of a passed audit.
#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash (the trust root).
    pub genesis_hash: Hash,
    /// Blocks verified.
    pub blocks: u64,
    /// Transactions verified and replayed.
    pub txs: u64,
    /// Height of the last block.
    pub tip_height: u64,
    /// Its hash.
    pub tip_hash: Hash,
    /// Its time.
    pub tip_time_ms: u64,
    /// History-log size at the tip.
    pub log_size: u64,
    /// History-log root at the tip.
    pub log_root: Hash,
    /// State root at the tip.
    pub state_root: Hash,
    /// Headers announcing a validator-set change.
    pub validator_set_changes: u64,
    /// The checkpoint check, if a checkpoint was given.
    pub checkpoint: Option<CheckpointCheck>,
    /// Wall time of fetching, verifying and replaying (ms).
    pub elapsed_ms: u64,
    /// Transactions per second over that time.
    pub txs_per_sec: f64,
}

/// A block whose transactions' signatures and bounds were checked.
struct Prepared {
    header: BlockHeader,
    commit: CommitCertificate,
    txs: Vec<VerifiedTx>,
}

fn prepare(cb: CommittedBlock) -> Result<Prepared, AuditError> {
    let CommittedBlock { block, commit } = cb;
    let h = block.header.height;
    let first_leaf = block
        .header
        .log_size
        .saturating_sub(u64::from(block.header.tx_count));
    for (i, stx) in block.txs.iter().enumerate() {
        if let Err(e) = stx.tx.check_limits() {
            return Err(mismatch(
                h,
                "transaction bounds",
                format!("transaction {i} (leaf {}): {e}", first_leaf + i as u64),
            ));
        }
    }
    let mut txs = Vec::with_capacity(block.txs.len());
    for (i, r) in verify_batch(block.txs).into_iter().enumerate() {
        match r {
            Ok(v) => txs.push(v),
            Err(e) => {
                return Err(mismatch(
                    h,
                    "transaction signature",
                    format!("transaction {i} (leaf {}): {e}", first_leaf + i as u64),
                ));
            }
        }
    }
    Ok(Prepared {
        header: block.header,
        commit,
        txs,
    })
}

/// The fetching side: pages of blocks in height order, signatures checked.
fn fetch(
    source: &mut (dyn ChainSource + Send),
    opts: &AuditOptions,
    out: mpsc::SyncSender<Result<Prepared, AuditError>>,
) {
    let page = opts.page_blocks.max(1);
    let mut next = 1u64;
    loop {
        let limit = match opts.to_height {
            Some(to) if next > to => return,
            Some(to) => u64::from(page).min(to - next + 1) as u32,
            None => page,
        };
        let blocks = match source.blocks(next, limit) {
            Ok(b) => b,
            Err(source) => {
                let _ = out.send(Err(AuditError::Source {
                    height: next,
                    source,
                }));
                return;
            }
        };
        if blocks.is_empty() {
            if let Some(to) = opts.to_height {
                let _ = out.send(Err(mismatch(
                    next,
                    "completeness",
                    format!("the source announced height {to} but has no block at height {next}"),
                )));
            }
            return;
        }
        for cb in blocks {
            let got = cb.block.header.height;
            let item = if got != next {
                Err(mismatch(
                    next,
                    "sequence",
                    format!("asked for height {next}, the source sent height {got}"),
                ))
            } else {
                prepare(cb)
            };
            let failed = item.is_err();
            // A closed channel means the replaying side stopped (it found a mismatch).
            if out.send(item).is_err() || failed {
                return;
            }
            next += 1;
        }
    }
}

/// The replaying side's state.
struct Replay {
    chain_id: String,
    state: MemState,
    tip: ChainTip,
    txs: u64,
    blocks: u64,
    validator_set_changes: u64,
    checkpoint_seen: bool,
}

impl Replay {
    fn new(genesis: &Genesis) -> Result<Self, AuditError> {
        let gs = genesis_state(genesis)?;
        let mut state = MemState::new();
        state.commit(&gs.writes, gs.tree.as_ref());
        Ok(Replay {
            chain_id: genesis.chain_id.clone(),
            state,
            tip: ChainTip::genesis(genesis, gs.root),
            txs: 0,
            blocks: 0,
            validator_set_changes: 0,
            checkpoint_seen: false,
        })
    }

    fn apply(&mut self, p: Prepared, checkpoint: Option<&BlockHeader>) -> Result<(), AuditError> {
        let Prepared {
            header,
            commit,
            txs,
        } = p;
        let h = self.tip.height + 1;
        if header.chain_id != self.chain_id {
            return Err(mismatch(
                h,
                "header link",
                format!(
                    "chain id {:?}, expected {:?}",
                    header.chain_id, self.chain_id
                ),
            ));
        }
        if header.height != h {
            return Err(mismatch(
                h,
                "header link",
                format!("header height is {}", header.height),
            ));
        }
        if header.prev_hash != self.tip.block_hash {
            return Err(mismatch(
                h,
                "header link",
                format!(
                    "prev_hash {} is not the previous block's hash {}",
                    header.prev_hash, self.tip.block_hash
                ),
            ));
        }
        let (in_force, _) = validators_for(&self.state, h)
            .map_err(|e| mismatch(h, "validator set", e.to_string()))?;
        let block_hash = header.hash();
        commit
            .verify(&self.chain_id, h, &block_hash, &in_force)
            .map_err(|e| mismatch(h, "commit certificate", e.to_string()))?;
        let n = txs.len() as u64;
        let executed = execute_block(&self.state, &self.tip, &header, txs)
            .map_err(|e| mismatch(h, "execution", e.to_string()))?;
        self.state.commit(&executed.writes, executed.tree.as_ref());
        self.tip = self.tip.after(&executed);
        if header.next_validators_hash != header.validators_hash {
            self.validator_set_changes += 1;
        }
        if let Some(cp) = checkpoint
            && cp.height == h
        {
            if *cp != header {
                return Err(mismatch(
                    h,
                    "checkpoint",
                    format!(
                        "the chain's block {} differs from the checkpoint's block {} at this height: history was rewritten",
                        block_hash,
                        cp.hash()
                    ),
                ));
            }
            self.checkpoint_seen = true;
        }
        self.txs += n;
        self.blocks += 1;
        Ok(())
    }
}

/// Audits the chain `source` serves against `genesis`. `on_block` is called after every
/// verified block (for a progress bar).
pub fn audit(
    genesis: &Genesis,
    source: &mut (dyn ChainSource + Send),
    opts: &AuditOptions,
    on_block: &mut dyn FnMut(Progress),
) -> Result<AuditReport, AuditError> {
    let started = Instant::now();
    let cp_header = match &opts.checkpoint {
        Some(cp) => Some(cp.verify(genesis).map_err(AuditError::Checkpoint)?.clone()),
        None => None,
    };
    let mut replay = Replay::new(genesis)?;
    let result = std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(PIPELINE_BLOCKS_MAX);
        let src = &mut *source;
        s.spawn(move || fetch(src, opts, tx));
        for item in rx {
            replay.apply(item?, cp_header.as_ref())?;
            on_block(Progress {
                height: replay.tip.height,
                txs: replay.txs,
            });
        }
        Ok::<(), AuditError>(())
    });
    result?;
    let tip = &replay.tip;
    let checkpoint = match &cp_header {
        None => None,
        Some(cp) => {
            if !replay.checkpoint_seen {
                return Err(mismatch(
                    cp.height,
                    "checkpoint",
                    format!(
                        "the chain ends at height {}, below the checkpoint's height {}: history was truncated",
                        tip.height, cp.height
                    ),
                ));
            }
            let new_size = tip.frontier.size();
            let proof = source
                .consistency_proof(cp.log_size, new_size)
                .map_err(|source| AuditError::Source {
                    height: tip.height,
                    source,
                })?;
            verify_consistency(
                cp.log_size,
                new_size,
                &cp.log_root,
                &tip.frontier.root(),
                &proof,
            )
            .map_err(|e| {
                mismatch(
                    tip.height,
                    "consistency proof",
                    format!("from log size {} to {new_size}: {e}", cp.log_size),
                )
            })?;
            Some(CheckpointCheck {
                height: cp.height,
                block_hash: cp.hash(),
                log_size: cp.log_size,
                new_log_size: new_size,
                consistency_proof_hashes: proof.len(),
            })
        }
    };
    let elapsed = started.elapsed();
    let secs = elapsed.as_secs_f64();
    Ok(AuditReport {
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash(),
        blocks: replay.blocks,
        txs: replay.txs,
        tip_height: tip.height,
        tip_hash: tip.block_hash,
        tip_time_ms: tip.time_ms,
        log_size: tip.frontier.size(),
        log_root: tip.frontier.root(),
        state_root: tip.state_root,
        validator_set_changes: replay.validator_set_changes,
        checkpoint,
        elapsed_ms: elapsed.as_millis() as u64,
        txs_per_sec: if secs > 0.0 {
            replay.txs as f64 / secs
        } else {
            0.0
        },
    })
}
