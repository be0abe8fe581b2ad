//! The driver's core: everything the consensus driver decides, as a synchronous state
//! machine over inputs and effects, with time given to it. No tokio runtime, no network,
//! no clock: the same code runs in the node (behind the shell in [`super`]) and in the
//! whole-node simulation (`node/tests/sim`), where time, the network and faults are
//! simulated and every run replays from its seed.
//!
//! It does touch the disk, synchronously: the chain store (executing and committing
//! blocks) and the signing-state file (written and synced before a signed message leaves,
//! i.e. before [`DriverCore::handle`] returns the effects that carry it).

use super::blocks::{Candidate, Candidates};
use super::sync::{Answer, Claim, SYNC_GRACE_MS, SyncPlanner, SyncedBlock};
use super::timers::Timers;
use crate::app::{App, NodeStatus};
use crate::intake::SeenIds;
use crate::messages::{GossipMsg, Status, SyncRequest};
use crate::signing::SigningFile;
use consensus::{Consensus, ConsensusError, Message, Output, PersistedState, TimeoutParams};
use ledger::block::Block;
use ledger::chain::{ChainTip, ExecutedBlock, build_block, execute_block, validators_for};
use ledger::execute::{VerifiedTx, verify_batch};
use ledger::hash::Hash;
use ledger::state::StateView;
use ledger::store::{Store, TxLocation};
use ledger::tx::{Role, SignedTx, Tx, TxBody};
use ledger::vote::{EquivocationKey, Evidence};
use ledger::{CommitCertificate, PublicKey, SecretKey, ValidatorSet};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

/// Key of the locked and valid blocks in the store's node column family.
pub const LOCKED_BLOCKS_KEY: &[u8] = b"locked_blocks";
/// How often the driver re-gossips its consensus messages and status.
pub const TICK_MS: u64 = 1000;
/// Most transactions gossiped in one message.
pub(crate) const GOSSIP_BATCH_TXS: usize = 2048;
/// Proposals with more transactions than this are not re-gossiped every tick.
const REBROADCAST_BLOCK_TXS_MAX: usize = 1000;
/// Expiry of evidence transactions this node signs.
const EVIDENCE_TX_TTL_MS: u64 = 3_600_000;
/// Evidence keys remembered (to submit each equivocation once); older heights go first.
pub const EVIDENCE_SEEN_MAX: usize = 1024;
/// How many heights beyond the one in progress have their proposals and votes buffered.
/// One was not enough: at ~100 blocks/s a validator slowed down for a moment fell two
/// heights behind, dropped the proposal and votes of the height after next, and stalled
/// the chain for ~2 s until its propose timeout and block sync caught it up.
pub const FUTURE_HEIGHTS_BUFFERED: u64 = 3;
/// Most buffered future-height messages.
pub const NEXT_HEIGHT_MSGS_MAX: usize = 1024;
/// Most buffered future-height proposals (each carries its block).
pub const NEXT_HEIGHT_PROPOSALS_MAX: usize = 4;

/// The time of an input: a monotonic clock for timeouts and a wall clock for block
/// times, both in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic milliseconds (any origin).
    pub mono_ms: u64,
    /// Milliseconds since the Unix epoch.
    pub wall_ms: u64,
}

/// An input of the driver core.
#[allow(clippy::large_enum_variant)] // gossip dominates; boxing it would add an allocation per message
pub enum DriverInput {
    /// A peer's gossip.
    Gossip {
        /// The sender.
        from: PublicKey,
        /// The message.
        msg: GossipMsg,
    },
    /// A peer connected.
    PeerConnected(PublicKey),
    /// A peer disconnected.
    PeerDisconnected(PublicKey),
    /// Transactions admitted by this node's API, to gossip.
    Announce(Vec<VerifiedTx>),
    /// The answer to an [`Effect::Fetch`], its transactions already verified.
    Fetched {
        /// The request's id.
        id: u64,
        /// The blocks, or why the request failed.
        result: Result<Vec<SyncedBlock>, String>,
    },
    /// Nothing but time passing (timeouts, ticks, the idle interval, a mempool that
    /// filled).
    Wake,
}

/// An effect the shell carries out, in order.
#[derive(Debug)]
pub enum Effect {
    /// Gossip to every peer.
    Broadcast(GossipMsg),
    /// Send to one peer.
    SendTo(PublicKey, GossipMsg),
    /// The peer sent something invalid (a strike).
    Report {
        /// The peer.
        peer: PublicKey,
        /// Why.
        reason: &'static str,
    },
    /// The allowed peers changed.
    SetAllowed(BTreeSet<PublicKey>),
    /// Ask `peer` for blocks; answer with [`DriverInput::Fetched`] carrying `id`.
    Fetch {
        /// Id of the request.
        id: u64,
        /// Asked of.
        peer: PublicKey,
        /// What.
        req: SyncRequest,
    },
    /// A peer's transactions, for the intake (verification off the driver's path).
    PeerTxs {
        /// The sender.
        from: PublicKey,
        /// The transactions.
        txs: Vec<SignedTx>,
    },
    /// The node must stop: continuing could sign or commit what it cannot stand behind.
    Fatal {
        /// Process exit code.
        code: i32,
        /// Why.
        reason: String,
    },
}

/// The sizes of everything the core keeps, against their named bounds.
#[derive(Clone, Debug, Default)]
pub struct CoreSizes {
    /// Candidate blocks.
    pub candidates: usize,
    /// Their bytes.
    pub candidate_bytes: usize,
    /// Pending timeouts.
    pub timers: usize,
    /// Buffered future-height messages.
    pub next_height: usize,
    /// Remembered evidence keys.
    pub evidence_seen: usize,
    /// Blocks awaited for validation.
    pub awaiting: usize,
    /// Sync planner (claims, failure records, in flight, waiting answers).
    pub sync: (usize, usize, usize, usize),
    /// Consensus's stored votes and proposals.
    pub consensus_items: usize,
}

/// What the core needs beyond the shared [`App`].
pub struct CoreConfig {
    /// The node key (the consensus key if this node is a validator).
    pub key: SecretKey,
    /// Fault injection: equivocate on every prevote (only in builds with the
    /// `fault-injection` feature, which the release binaries do not have).
    #[cfg(feature = "fault-injection")]
    pub equivocate: bool,
    /// The signing-state file and the state read from it.
    pub signing: (SigningFile, Option<PersistedState>),
    /// The ids this node has verified (shared with the intake).
    pub seen: Arc<SeenIds>,
}

/// The driver core.
pub struct DriverCore {
    app: Arc<App>,
    store: Arc<Store>,
    status_tx: watch::Sender<NodeStatus>,
    key: SecretKey,
    #[cfg(feature = "fault-injection")]
    equivocate: bool,
    consensus: Consensus,
    signing: SigningFile,
    /// The locked/valid hashes whose blocks are in the store (see [`LOCKED_BLOCKS_KEY`]).
    persisted_blocks: Vec<Hash>,
    tip: ChainTip,
    /// The certificate of the tip (sent in status messages as proof of height).
    tip_cert: Option<CommitCertificate>,
    started: Option<u64>,
    validators: ValidatorSet,
    params: ledger::ConsensusParams,
    candidates: Candidates,
    timers: Timers,
    owed_proposal: Option<(u64, u32)>,
    /// Blocks the machine asked to validate that have not arrived yet.
    awaiting_blocks: BTreeSet<Hash>,
    tip_committed_at_ms: u64,
    next_height: NextHeightBuffer,
    evidence_seen: BTreeSet<(u64, EquivocationKey)>,
    current_sender: Option<PublicKey>,
    seen: Arc<SeenIds>,
    sync: SyncPlanner,
    last_tick_ms: Option<u64>,
    now: Now,
    effects: Vec<Effect>,
    fatal: bool,
    syncing: bool,
}

impl DriverCore {
    /// Builds the core at the store's tip with the restored signing state.
    pub fn new(
        app: Arc<App>,
        status_tx: watch::Sender<NodeStatus>,
        cfg: CoreConfig,
        now: Now,
    ) -> anyhow::Result<Self> {
        let store = app.store.clone();
        let tip = store.load_tip()?;
        let tip_cert = if tip.height > 0 {
            store.commit(tip.height)?
        } else {
            None
        };
        let (signing, restored) = cfg.signing;
        if let Some(r) = &restored {
            info!(
                height = r.height,
                round = r.round,
                "restored consensus signing state"
            );
        }
        let params = store.state().params()?;
        let consensus = Consensus::new(
            tip.chain_id.clone(),
            TimeoutParams::from(&params),
            Some(cfg.key.clone()),
            restored,
        );
        let (validators, _) = validators_for(&store.state(), tip.height + 1)?;
        let mut core = DriverCore {
            app,
            store,
            status_tx,
            key: cfg.key,
            #[cfg(feature = "fault-injection")]
            equivocate: cfg.equivocate,
            consensus,
            signing,
            persisted_blocks: Vec::new(),
            tip,
            tip_cert,
            started: None,
            validators,
            params,
            candidates: Candidates::default(),
            timers: Timers::default(),
            owed_proposal: None,
            awaiting_blocks: BTreeSet::new(),
            tip_committed_at_ms: now.mono_ms,
            next_height: NextHeightBuffer::default(),
            evidence_seen: BTreeSet::new(),
            current_sender: None,
            seen: cfg.seen,
            sync: SyncPlanner::default(),
            last_tick_ms: None,
            now,
            effects: Vec::new(),
            fatal: false,
            syncing: false,
        };
        core.restore_locked_blocks();
        core.publish_status();
        Ok(core)
    }

    /// Puts the locked and valid blocks persisted before a restart back among the
    /// candidates, so that this node can re-propose them.
    fn restore_locked_blocks(&mut self) {
        let bytes = match self.store.node_get(LOCKED_BLOCKS_KEY) {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "cannot read the persisted locked blocks");
                return;
            }
        };
        let blocks: Vec<Block> = match ledger::codec::decode(&bytes) {
            Ok(b) => b,
            Err(e) => {
                warn!(error = %e, "persisted locked blocks do not decode; ignoring them");
                return;
            }
        };
        for b in blocks {
            if b.header.height == self.tip.height + 1 {
                let h = b.hash();
                info!(block = %h, "restored a locked/valid block");
                self.persisted_blocks.push(h);
                // Round 0: pinned below, so the window does not matter.
                let _ = self.candidates.insert(h, b, 0, 0);
            }
        }
        self.pin();
    }

    /// Handles one input at `now`; returns the effects, in order.
    pub fn handle(&mut self, now: Now, input: DriverInput) -> Vec<Effect> {
        if self.fatal {
            return Vec::new();
        }
        self.now = Now {
            mono_ms: now.mono_ms.max(self.now.mono_ms),
            wall_ms: now.wall_ms,
        };
        match input {
            DriverInput::Gossip { from, msg } => {
                self.current_sender = Some(from);
                self.on_gossip(from, msg);
                self.current_sender = None;
            }
            DriverInput::PeerConnected(peer) => self.on_peer_connected(peer),
            DriverInput::PeerDisconnected(peer) => {
                debug!(%peer, "peer disconnected");
                self.sync.forget(&peer);
                self.publish_status();
            }
            DriverInput::Announce(txs) => self.gossip_txs(txs),
            DriverInput::Fetched { id, result } => self.on_fetched(id, result),
            DriverInput::Wake => {}
        }
        self.after_input();
        std::mem::take(&mut self.effects)
    }

    /// The work every input ends with: due timeouts, the periodic tick, buffered
    /// next-height messages, starting and proposing, sync.
    fn after_input(&mut self) {
        for t in self.timers.expired(self.now.mono_ms) {
            if self.fatal {
                return;
            }
            self.feed(consensus::Input::TimeoutElapsed(t));
        }
        if self
            .last_tick_ms
            .is_none_or(|t| self.now.mono_ms >= t + TICK_MS)
        {
            self.last_tick_ms = Some(self.now.mono_ms);
            self.on_tick();
        }
        self.replay_next_height();
        self.maybe_start_height();
        self.maybe_propose();
        self.drive_sync();
        if self.fatal {
            self.effects.retain(|e| matches!(e, Effect::Fatal { .. }));
        }
    }

    /// When the core next needs a [`DriverInput::Wake`] (monotonic ms), if nothing else
    /// arrives. Never in the past: a deadline already due is handled by the input that
    /// made it due, so the earliest wake-up is the current time plus one millisecond.
    pub fn next_wakeup_ms(&self) -> u64 {
        let now = self.now.mono_ms;
        let mut at = self.last_tick_ms.map_or(now, |t| t + TICK_MS);
        if let Some(t) = self.timers.next_deadline() {
            at = at.min(t);
        }
        if self.started.is_none() || self.owed_proposal.is_some() {
            at = at.min(self.tip_committed_at_ms + self.params.idle_block_interval_ms);
        }
        at.max(now + 1)
    }

    /// The committed tip.
    pub fn tip(&self) -> &ChainTip {
        &self.tip
    }

    /// Whether a fatal effect was emitted.
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// Sizes of what the core keeps (for the simulation's bound checks and metrics).
    pub fn sizes(&self) -> CoreSizes {
        CoreSizes {
            candidates: self.candidates.len(),
            candidate_bytes: self.candidates.bytes(),
            timers: self.timers.len(),
            next_height: self.next_height.msgs.len(),
            evidence_seen: self.evidence_seen.len(),
            awaiting: self.awaiting_blocks.len(),
            sync: self.sync.sizes(),
            consensus_items: self.consensus.stored_items(),
        }
    }

    /// The validators at the height in progress.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    fn fatal(&mut self, code: i32, reason: String) {
        error!(code, %reason, "driver stopping the node");
        self.fatal = true;
        self.effects.push(Effect::Fatal { code, reason });
    }

    fn maybe_start_height(&mut self) {
        if self.started.is_some() || self.fatal {
            return;
        }
        let interval = self.params.idle_block_interval_ms;
        let idle_over = self.now.mono_ms >= self.tip_committed_at_ms + interval;
        if idle_over || !self.app.mempool.is_empty() || self.tip.height == 0 {
            self.start_height();
        }
    }

    fn start_height(&mut self) {
        let height = self.tip.height + 1;
        match validators_for(&self.store.state(), height) {
            Ok((set, _)) => self.validators = set,
            Err(e) => {
                error!(error = %e, "cannot read the validator set; not starting the height");
                return;
            }
        }
        self.started = Some(height);
        debug!(height, "starting height");
        self.feed(consensus::Input::StartHeight {
            height,
            validators: self.validators.clone(),
        });
    }

    fn maybe_propose(&mut self) {
        let Some((height, round)) = self.owed_proposal else {
            return;
        };
        if height != self.tip.height + 1 || self.fatal {
            self.owed_proposal = None;
            return;
        }
        let interval = self.params.idle_block_interval_ms;
        let idle_over = round > 0
            || self.tip.height == 0
            || self.now.mono_ms >= self.tip_committed_at_ms + interval;
        if !idle_over && self.app.mempool.is_empty() {
            return;
        }
        self.owed_proposal = None;
        match self.build_proposal(height, round) {
            Ok(hash) => self.feed(consensus::Input::ProposeValue {
                height,
                round,
                block_hash: hash,
            }),
            Err(e) => error!(height, round, error = %e, "could not build a block"),
        }
    }

    fn build_proposal(&mut self, height: u64, round: u32) -> anyhow::Result<Hash> {
        let params = self.params.clone();
        let txs = self.app.mempool.take_for_block(
            params.max_block_txs as usize,
            params.max_block_bytes as usize,
        );
        let (executed, refused) = build_block(
            self.store.state(),
            &self.tip,
            self.key.public_key(),
            self.now.wall_ms,
            txs,
        )?;
        if !refused.is_empty() {
            let ids: Vec<Hash> = refused.iter().map(|(t, _)| t.id()).collect();
            for (t, r) in &refused {
                debug!(tx = %t.id(), reason = %r, "dropping transaction that no longer applies");
            }
            self.app.mempool.remove(&self.store, &ids, self.now.wall_ms);
        }
        let hash = executed.header.hash();
        info!(height, round, txs = executed.txs.len(), block = %hash, "proposing block");
        let cur = self.consensus.round().unwrap_or(round);
        // Pinned first, so that the window and per-round bounds cannot refuse it.
        let mut pins = self.pins();
        pins.push(hash);
        self.candidates.set_pinned(pins);
        let _ = self.candidates.insert(hash, executed.block(), round, cur);
        if let Some(c) = self.candidates.get_mut(&hash) {
            c.executed = Some(executed);
            c.valid = Some(true);
        }
        Ok(hash)
    }

    /// The hashes consensus still needs: locked, valid, decided.
    fn pins(&self) -> Vec<Hash> {
        let mut v: Vec<Hash> = [
            self.consensus.locked(),
            self.consensus.valid(),
            self.consensus.decision(),
        ]
        .into_iter()
        .flatten()
        .map(|rv| rv.block_hash)
        .collect();
        v.extend(self.persisted_blocks.iter().copied());
        v.dedup();
        v
    }

    fn pin(&mut self) {
        let pins = self.pins();
        self.candidates.set_pinned(pins);
    }

    fn feed(&mut self, input: consensus::Input) {
        let outputs = self.consensus.handle(input);
        for out in outputs {
            if self.fatal {
                return;
            }
            self.on_output(out);
        }
        if let Some(r) = self.consensus.round() {
            self.app.metrics.round.set(i64::from(r));
            self.pin();
            self.candidates.prune(r);
        }
    }

    fn on_output(&mut self, out: Output) {
        match out {
            Output::Persist(state) => self.persist(state),
            Output::Broadcast(Message::Proposal(p)) => {
                let Some(c) = self.candidates.get(&p.block_hash) else {
                    warn!(block = %p.block_hash, "own proposal's block is unknown; not sending");
                    return;
                };
                let block = Box::new(c.block.clone());
                self.effects.push(Effect::Broadcast(GossipMsg::Proposal {
                    proposal: p,
                    block,
                }));
            }
            Output::Broadcast(Message::Vote(v)) => {
                #[cfg(feature = "fault-injection")]
                if self.equivocate
                    && v.vote_type == ledger::VoteType::Prevote
                    && v.block_hash.is_some()
                {
                    self.equivocate_on(&v);
                }
                self.effects.push(Effect::Broadcast(GossipMsg::Vote(v)));
            }
            Output::ScheduleTimeout(t) => self.timers.schedule(self.now.mono_ms, t),
            Output::RequestProposal { height, round } => {
                self.owed_proposal = Some((height, round));
            }
            Output::ValidateBlock {
                height,
                round,
                block_hash,
            } => self.validate(height, round, block_hash),
            Output::Decide {
                height,
                round,
                block_hash,
                certificate,
            } => self.decide(height, round, block_hash, certificate),
            Output::Evidence(ev) => self.submit_evidence(ev),
            Output::Dropped { reason } => self.on_dropped(reason),
        }
    }

    /// Writes the signing state (and first the blocks it names) durably; nothing signed
    /// after it leaves before this returns.
    ///
    /// The blocks named are the locked and valid ones and every block this validator has
    /// signed a proposal or a vote for at the state's height: after a restart its signed
    /// messages are counted again, and they alone can decide a block (a lone validator's own
    /// prevote and precommit are a quorum; found by the power-loss test: a cut after the
    /// proposal and prevote were persisted, before the lock, restarted into a decision on a
    /// block nobody held).
    fn persist(&mut self, state: PersistedState) {
        let mut named: Vec<Hash> = [state.locked, state.valid]
            .into_iter()
            .flatten()
            .map(|rv| rv.block_hash)
            .collect();
        for m in &state.signed {
            let hash = match m {
                Message::Proposal(p) if p.height == state.height => Some(p.block_hash),
                Message::Vote(v) if v.height == state.height => v.block_hash,
                _ => None,
            };
            if let Some(h) = hash
                && !named.contains(&h)
            {
                named.push(h);
            }
        }
        let missing = named.iter().any(|h| !self.persisted_blocks.contains(h));
        if missing {
            let blocks: Vec<Block> = named
                .iter()
                .filter_map(|h| self.candidates.get(h).map(|c| c.block.clone()))
                .collect();
            match self
                .store
                .node_put_sync(LOCKED_BLOCKS_KEY, &ledger::codec::encode(&blocks))
            {
                Ok(()) => self.persisted_blocks = blocks.iter().map(Block::hash).collect(),
                Err(e) => {
                    return self.fatal(70, format!("cannot persist the locked block: {e}"));
                }
            }
        }
        if let Err(e) = self.signing.write(&state) {
            // Without a durable signing state nothing may be signed: stop rather than risk
            // double-signing after a restart.
            self.fatal(70, format!("cannot persist the signing state: {e}"));
        }
    }

    /// Fault injection: sign and send a second prevote for nil beside `v`.
    #[cfg(feature = "fault-injection")]
    fn equivocate_on(&mut self, v: &ledger::vote::Vote) {
        let conflicting = ledger::vote::Vote::new_signed(
            &self.tip.chain_id,
            v.height,
            v.round,
            v.vote_type,
            None,
            &self.key,
        );
        warn!(height = v.height, round = v.round, "TESTING: equivocating");
        self.effects
            .push(Effect::Broadcast(GossipMsg::Vote(conflicting)));
    }

    fn report(&mut self, peer: PublicKey, reason: &'static str) {
        self.app.metrics.peer_messages_invalid.inc();
        self.effects.push(Effect::Report { peer, reason });
    }

    fn on_dropped(&mut self, reason: ConsensusError) {
        let invalid = matches!(
            reason,
            ConsensusError::BadSignature { .. }
                | ConsensusError::UnknownValidator { .. }
                | ConsensusError::WrongProposer { .. }
                | ConsensusError::BadPolRound { .. }
        );
        if invalid {
            if let Some(peer) = self.current_sender {
                self.report(peer, reason.label());
            }
            debug!(%reason, "dropped invalid consensus input");
        } else {
            debug!(%reason, "consensus input not used");
        }
    }

    fn validate(&mut self, height: u64, round: u32, block_hash: Hash) {
        if height != self.tip.height + 1 {
            return;
        }
        let Some(cand) = self.candidates.get(&block_hash) else {
            debug!(height, round, block = %block_hash, "block to validate not here yet");
            if self.awaiting_blocks.len() < super::blocks::CANDIDATES_MAX {
                self.awaiting_blocks.insert(block_hash);
            }
            return;
        };
        if let Some(valid) = cand.valid {
            self.feed(consensus::Input::BlockValidity { block_hash, valid });
            return;
        }
        let block = cand.block.clone();
        let valid = match self.execute_candidate(&block) {
            Ok(executed) => {
                if let Some(c) = self.candidates.get_mut(&block_hash) {
                    c.executed = Some(executed);
                    c.valid = Some(true);
                }
                true
            }
            Err(reason) => {
                warn!(height, round, block = %block_hash, %reason, "proposed block is invalid; prevoting nil");
                if let Some(c) = self.candidates.get_mut(&block_hash) {
                    c.valid = Some(false);
                }
                false
            }
        };
        self.feed(consensus::Input::BlockValidity { block_hash, valid });
    }

    fn execute_candidate(&self, block: &Block) -> Result<ExecutedBlock, String> {
        let drift = self.params.clock_drift_max_ms;
        if block.header.time_ms > self.now.wall_ms.saturating_add(drift) {
            return Err(format!(
                "block time {} is more than {drift} ms ahead of this node's clock",
                block.header.time_ms
            ));
        }
        if self.validators.get(&block.header.proposer).is_none() {
            return Err("the block's proposer is not a validator".into());
        }
        let mempool = self.app.mempool.clone();
        let txs = verify_block_txs(block, |id| mempool.get(id))?;
        self.seen.insert_all(txs.iter().map(VerifiedTx::id));
        execute_block(self.store.state(), &self.tip, &block.header, txs).map_err(|e| e.to_string())
    }

    fn decide(&mut self, height: u64, round: u32, block_hash: Hash, cert: CommitCertificate) {
        let decided_at = std::time::Instant::now();
        let executed = match self.candidates.take(&block_hash) {
            Some(Candidate {
                executed: Some(e), ..
            }) => e,
            Some(c) => match self.execute_candidate(&c.block) {
                Ok(e) => e,
                Err(reason) => {
                    // A quorum decided a block this node cannot execute: its state has
                    // diverged, or it is corrupt. Never commit what we cannot check.
                    return self.fatal(
                        71,
                        format!("decided block {block_hash} at height {height} does not execute here: {reason}"),
                    );
                }
            },
            None => {
                // Fetch it from the validators that committed it: their precommits are a
                // verified claim that they hold it.
                warn!(height, block = %block_hash, "decided block is unknown here; fetching it from its signers");
                let me = self.key.public_key();
                for s in &cert.signatures {
                    if s.validator != me {
                        self.sync.claim(
                            s.validator,
                            Claim {
                                height,
                                verified: true,
                            },
                        );
                    }
                }
                return;
            }
        };
        if let Err(e) = self.commit(&executed, &cert) {
            return self.fatal(72, format!("commit of height {height} failed: {e}"));
        }
        self.app
            .metrics
            .commit_latency
            .observe(decided_at.elapsed().as_secs_f64());
        info!(height, round, txs = executed.txs.len(), block = %block_hash, log_size = executed.header.log_size, "committed block");
    }

    fn commit(&mut self, executed: &ExecutedBlock, cert: &CommitCertificate) -> anyhow::Result<()> {
        self.store.commit_block(executed, cert)?;
        let prev_time = self.tip.time_ms;
        self.tip = self.tip.after(executed);
        self.tip_cert = Some(cert.clone());
        self.started = None;
        self.owed_proposal = None;
        self.awaiting_blocks.clear();
        self.tip_committed_at_ms = self.now.mono_ms;
        let height = executed.header.height;
        self.candidates.clear();
        self.persisted_blocks.clear();
        self.timers.drop_below(height + 1);
        let ids: Vec<Hash> = executed.txs.iter().map(VerifiedTx::id).collect();
        self.seen.insert_all(ids.iter().copied());
        let mempool = self.app.mempool.clone();
        let dropped = mempool.on_commit(&self.store, height, &ids, self.now.wall_ms);
        if dropped > 0 {
            debug!(dropped, "mempool transactions no longer apply");
        }
        if !self.app.waiters.is_empty() {
            let first = executed.first_leaf_index();
            for (i, id) in ids.iter().enumerate() {
                self.app.waiters.notify(
                    id,
                    TxLocation {
                        height,
                        leaf_index: first + i as u64,
                    },
                );
            }
        }
        self.app.health.advanced(height);
        let m = &self.app.metrics;
        m.height.set(height as i64);
        m.committed_txs.inc_by(ids.len() as u64);
        m.block_txs.observe(ids.len() as f64);
        if height > 1 {
            m.block_interval
                .observe(executed.header.time_ms.saturating_sub(prev_time) as f64 / 1000.0);
        }
        let size = self.app.mempool.size();
        m.mempool_txs.set(size.txs as i64);
        m.mempool_bytes.set(size.bytes as i64);
        // Membership, roles and validators decide who may connect: recompute on any
        // change (a removed validator or a revoked node role leaves at once).
        let membership_changed = executed.validator_sets.is_some()
            || executed.txs.iter().any(|t| {
                matches!(
                    t.tx().tx.body,
                    TxBody::GovernancePropose(_) | TxBody::GovernanceVote(_)
                )
            });
        if membership_changed {
            self.refresh_allowed_peers();
        }
        match self.store.state().params() {
            Ok(p) => self.params = p,
            Err(e) => {
                warn!(error = %e, "cannot read consensus parameters; keeping the previous ones")
            }
        }
        self.evidence_seen
            .retain(|(h, _)| h.saturating_add(EVIDENCE_KEEP_HEIGHTS) >= height);
        self.publish_status();
        Ok(())
    }

    fn refresh_allowed_peers(&mut self) {
        match allowed_peers(&self.store) {
            Ok(keys) => self.effects.push(Effect::SetAllowed(keys)),
            Err(e) => warn!(error = %e, "cannot compute the allowed peers"),
        }
    }

    /// Evidence from consensus or a peer: checked to name a validator of its height,
    /// submitted once (as a transaction when this node is a validator).
    fn submit_evidence(&mut self, ev: Evidence) {
        let key = ev.key();
        let entry = (key.height, key);
        if self.evidence_seen.contains(&entry) {
            return;
        }
        if self.evidence_seen.len() >= EVIDENCE_SEEN_MAX {
            self.evidence_seen.pop_first();
        }
        self.evidence_seen.insert(entry);
        warn!(validator = %key.validator, height = key.height, round = key.round, step = key.step, "equivocation detected");
        if self.validators.get(&self.key.public_key()).is_none() {
            self.effects
                .push(Effect::Broadcast(GossipMsg::Evidence(ev)));
            return;
        }
        let mempool = self.app.mempool.clone();
        let nonce = match mempool.pending_nonce(&self.store, &self.key.public_key()) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "cannot read own nonce for evidence");
                return;
            }
        };
        let now = self.now.wall_ms;
        let stx = Tx {
            chain_id: self.tip.chain_id.clone(),
            signer: self.key.public_key(),
            nonce,
            created_at_ms: now,
            expires_at_ms: now + EVIDENCE_TX_TTL_MS,
            body: TxBody::Evidence(ev),
        }
        .sign(&self.key);
        let vtx = match VerifiedTx::verify(stx) {
            Ok(v) => v,
            Err(e) => {
                error!(error = %e, "own evidence transaction does not verify");
                return;
            }
        };
        match mempool.insert(&self.store, vtx.clone(), now) {
            Ok(()) => {
                info!(tx = %vtx.id(), "submitted evidence transaction");
                self.gossip_txs(vec![vtx]);
            }
            Err(e) => debug!(error = %e, "evidence not submitted"),
        }
    }

    /// Whether gossiped evidence names a validator of its height, by the sets this node
    /// knows: `Some(false)` is noise (a strike), `None` means this node cannot tell yet
    /// (the evidence is of a height it has not reached: ignored, not held against the
    /// sender; a correct peer ahead of it may well send it).
    fn evidence_names_a_validator(&self, ev: &Evidence) -> Option<bool> {
        let key = ev.key();
        if key.height > self.tip.height + 1 {
            return None;
        }
        match self.store.state().validator_sets() {
            Ok(sets) => Some(
                sets.at(key.height)
                    .is_some_and(|s| s.get(&key.validator).is_some()),
            ),
            Err(_) => None,
        }
    }

    fn gossip_txs(&mut self, txs: Vec<VerifiedTx>) {
        for chunk in txs.chunks(GOSSIP_BATCH_TXS) {
            self.effects.push(Effect::Broadcast(GossipMsg::Txs(
                chunk.iter().map(|t| t.tx().clone()).collect(),
            )));
        }
    }

    fn status(&self) -> GossipMsg {
        GossipMsg::Status(Status {
            height: self.tip.height,
            block_hash: self.tip.block_hash,
            round: self.consensus.round().unwrap_or(0),
            commit: self.tip_cert.clone(),
        })
    }

    fn on_peer_connected(&mut self, peer: PublicKey) {
        debug!(%peer, "peer connected");
        let status = self.status();
        self.effects.push(Effect::SendTo(peer, status));
        for m in self.consensus.rebroadcast() {
            if let Some(g) = self.to_gossip(m) {
                self.effects.push(Effect::SendTo(peer, g));
            }
        }
        self.publish_status();
    }

    fn to_gossip(&self, m: Message) -> Option<GossipMsg> {
        match m {
            Message::Vote(v) => Some(GossipMsg::Vote(v)),
            Message::Proposal(p) => {
                self.candidates
                    .get(&p.block_hash)
                    .map(|c| GossipMsg::Proposal {
                        proposal: p,
                        block: Box::new(c.block.clone()),
                    })
            }
        }
    }

    fn on_gossip(&mut self, from: PublicKey, msg: GossipMsg) {
        match msg {
            GossipMsg::Txs(txs) => self.effects.push(Effect::PeerTxs { from, txs }),
            GossipMsg::Proposal { proposal, block } => self.on_proposal(from, proposal, block),
            GossipMsg::Vote(v) => {
                let next = self.tip.height + 1;
                if v.height > next {
                    if v.height <= next + FUTURE_HEIGHTS_BUFFERED {
                        self.next_height.push(from, GossipMsg::Vote(v));
                    }
                    return;
                }
                if v.height < next {
                    return;
                }
                if self.started.is_none() {
                    self.start_height();
                }
                self.feed(consensus::Input::Vote(v));
            }
            GossipMsg::Evidence(ev) => {
                if ev.verify(&self.tip.chain_id).is_err() {
                    self.report(from, "invalid evidence");
                } else {
                    match self.evidence_names_a_validator(&ev) {
                        Some(true) => self.submit_evidence(ev),
                        Some(false) => {
                            self.report(from, "evidence about a key that is no validator")
                        }
                        None => debug!("evidence of a height not reached yet; ignored"),
                    }
                }
            }
            GossipMsg::Status(s) => self.on_status(from, s),
        }
    }

    fn on_proposal(
        &mut self,
        from: PublicKey,
        proposal: ledger::vote::Proposal,
        block: Box<Block>,
    ) {
        let next = self.tip.height + 1;
        if proposal.height < next {
            return;
        }
        if proposal.height > next {
            if proposal.height <= next + FUTURE_HEIGHTS_BUFFERED {
                self.next_height
                    .push(from, GossipMsg::Proposal { proposal, block });
            }
            return;
        }
        if block.hash() != proposal.block_hash {
            return self.report(from, "proposal's block does not match its hash");
        }
        let expected = self
            .validators
            .proposer(proposal.height, proposal.round)
            .public_key;
        if proposal.proposer != expected || proposal.verify(&self.tip.chain_id).is_err() {
            return self.report(from, "proposal not signed by the round's proposer");
        }
        // A fresh proposal is the proposer's own block; a re-proposal (with a proof of
        // lock) carries the block of whoever proposed it first.
        if proposal.pol_round.is_none() && block.header.proposer != proposal.proposer {
            return self.report(from, "block attributed to another proposer");
        }
        let hash = proposal.block_hash;
        let cur = self.consensus.round().unwrap_or(0);
        if let Err(why) = self.candidates.insert(hash, *block, proposal.round, cur) {
            debug!(
                round = proposal.round,
                current = cur,
                ?why,
                "proposal's block not kept"
            );
            return;
        }
        if self.started.is_none() {
            self.start_height();
        }
        self.feed(consensus::Input::Proposal(proposal));
        if self.awaiting_blocks.remove(&hash) {
            self.validate(next, 0, hash);
        }
    }

    /// A peer's status: a claim of height, verified by its commit certificate when this
    /// node knows the validator set of that height.
    fn on_status(&mut self, from: PublicKey, s: Status) {
        if s.height <= self.tip.height {
            // Behind or level: only worth remembering as "not ahead".
            self.sync.claim(
                from,
                Claim {
                    height: s.height,
                    verified: false,
                },
            );
            return;
        }
        let verified = match &s.commit {
            Some(cert) => match self.store.state().validator_sets() {
                Ok(sets) => sets.at(s.height).is_some_and(|set| {
                    cert.verify(&self.tip.chain_id, s.height, &s.block_hash, set)
                        .is_ok()
                }),
                Err(_) => false,
            },
            None => false,
        };
        self.sync.claim(
            from,
            Claim {
                height: s.height,
                verified,
            },
        );
    }

    fn replay_next_height(&mut self) {
        let next = self.tip.height + 1;
        if self.next_height.is_empty() || self.next_height.replayed_for == next {
            return;
        }
        self.next_height.replayed_for = next;
        for (from, msg) in self.next_height.take() {
            let height = match &msg {
                GossipMsg::Proposal { proposal, .. } => proposal.height,
                GossipMsg::Vote(v) => v.height,
                _ => continue,
            };
            if height == next {
                self.current_sender = Some(from);
                self.on_gossip(from, msg);
                self.current_sender = None;
            } else if height > next {
                self.next_height.push(from, msg);
            }
        }
    }

    fn on_tick(&mut self) {
        for m in self.consensus.rebroadcast() {
            let small = match &m {
                Message::Proposal(p) => self
                    .candidates
                    .get(&p.block_hash)
                    .is_some_and(|c| c.block.txs.len() <= REBROADCAST_BLOCK_TXS_MAX),
                Message::Vote(_) => true,
            };
            if small && let Some(g) = self.to_gossip(m) {
                self.effects.push(Effect::Broadcast(g));
            }
        }
        let status = self.status();
        self.effects.push(Effect::Broadcast(status));
        let size = self.app.mempool.size();
        self.app.metrics.mempool_txs.set(size.txs as i64);
        self.app.metrics.mempool_bytes.set(size.bytes as i64);
        self.publish_status();
    }

    /// Gives up late requests, applies what arrived in order, asks for more.
    fn drive_sync(&mut self) {
        if self.fatal {
            return;
        }
        for peer in self.sync.expire(self.now.mono_ms) {
            warn!(%peer, "sync request timed out; backing off from this peer");
        }
        self.apply_ready();
        let lagging = self.now.mono_ms >= self.tip_committed_at_ms + SYNC_GRACE_MS;
        let reqs = self.sync.plan(self.now.mono_ms, self.tip.height, lagging);
        for (id, peer, req) in reqs {
            debug!(%peer, from = req.from_height, count = req.count, "requesting blocks");
            self.effects.push(Effect::Fetch { id, peer, req });
        }
        let syncing = self.sync.busy();
        if syncing != self.syncing {
            self.syncing = syncing;
            if syncing {
                info!(from = self.tip.height + 1, "catching up");
            }
            self.status_tx.send_modify(|s| s.syncing = syncing);
        }
    }

    fn on_fetched(&mut self, id: u64, result: Result<Vec<SyncedBlock>, String>) {
        match self.sync.answer(self.now.mono_ms, id, result) {
            Answer::Blocks { .. } | Answer::Unknown => {}
            Answer::Failed { peer, reason } => {
                warn!(%peer, reason, "sync request failed; backing off from this peer");
            }
        }
    }

    fn apply_ready(&mut self) {
        while let Some((peer, batch)) = self.sync.take_ready(self.tip.height + 1) {
            for sb in batch {
                if sb.block.block.header.height <= self.tip.height {
                    continue;
                }
                let height = sb.block.block.header.height;
                if let Err(reason) = self.apply_synced(sb) {
                    if self.fatal {
                        return;
                    }
                    warn!(%peer, height, %reason, "synced block refused");
                    self.report(peer, "invalid synced block");
                    self.sync.strike(peer, self.now.mono_ms);
                    self.sync.drop_from(&peer);
                    break;
                }
            }
        }
    }

    fn apply_synced(&mut self, sb: SyncedBlock) -> Result<(), String> {
        let cb = sb.block;
        let txs = sb.txs?;
        let h = cb.block.header.height;
        if h != self.tip.height + 1 {
            return Err(format!("expected height {}, got {h}", self.tip.height + 1));
        }
        let (set, _) = validators_for(&self.store.state(), h).map_err(|e| e.to_string())?;
        cb.commit
            .verify(&self.tip.chain_id, h, &cb.block.hash(), &set)
            .map_err(|e| format!("commit certificate: {e}"))?;
        let executed = execute_block(self.store.state(), &self.tip, &cb.block.header, txs)
            .map_err(|e| e.to_string())?;
        if let Err(e) = self.commit(&executed, &cb.commit) {
            self.fatal(72, format!("commit of synced height {h} failed: {e}"));
            return Err(e.to_string());
        }
        info!(height = h, txs = executed.txs.len(), "synced block");
        // Consensus resumes at the new tip.
        Ok(())
    }

    fn publish_status(&self) {
        let validators = self.validators.validators().to_vec();
        let round = self.consensus.round().unwrap_or(0);
        let tip = &self.tip;
        self.status_tx.send_modify(|s| {
            s.height = tip.height;
            s.block_hash = tip.block_hash;
            s.block_time_ms = tip.time_ms;
            s.log_size = tip.frontier.size();
            s.log_root = tip.frontier.root();
            s.state_root = tip.state_root;
            s.round = round;
            s.validators = validators;
        });
    }
}

/// Evidence keys are remembered for this many heights after theirs.
pub const EVIDENCE_KEEP_HEIGHTS: u64 = 1000;

/// Verifies the transactions of fetched blocks (see [`verify_block_txs`]).
pub fn verify_synced(
    blocks: Vec<ledger::block::CommittedBlock>,
    known: impl Fn(&Hash) -> Option<VerifiedTx>,
) -> Vec<SyncedBlock> {
    blocks
        .into_iter()
        .map(|block| SyncedBlock {
            txs: verify_block_txs(&block.block, &known),
            block,
        })
        .collect()
}

/// The block's transactions as verified transactions: those the mempool verified already
/// are reused; the rest are verified in one batch.
pub fn verify_block_txs(
    block: &Block,
    known: impl Fn(&Hash) -> Option<VerifiedTx>,
) -> Result<Vec<VerifiedTx>, String> {
    let mut out: Vec<Option<VerifiedTx>> = Vec::with_capacity(block.txs.len());
    let mut unknown = Vec::new();
    let mut unknown_pos = Vec::new();
    for (i, t) in block.txs.iter().enumerate() {
        match known(&t.id()) {
            Some(v) => out.push(Some(v)),
            None => {
                out.push(None);
                unknown.push(t.clone());
                unknown_pos.push(i);
            }
        }
    }
    for (pos, r) in unknown_pos.into_iter().zip(verify_batch(unknown)) {
        match r {
            Ok(v) => out[pos] = Some(v),
            Err(e) => return Err(format!("transaction {pos} has an invalid signature: {e}")),
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// The keys allowed to connect: every validator of the sets the state knows, and every
/// active member key with the `node` role.
pub fn allowed_peers(store: &Store) -> anyhow::Result<BTreeSet<PublicKey>> {
    let mut keys = BTreeSet::new();
    for (_, set) in store.state().validator_sets()?.sets {
        keys.extend(set.validators().iter().map(|v| v.public_key));
    }
    for (key, m) in store.members()? {
        if m.active && m.roles.contains(Role::Node) {
            keys.insert(key);
        }
    }
    Ok(keys)
}

/// Bounded buffer of the proposals and votes of the next [`FUTURE_HEIGHTS_BUFFERED`]
/// heights, in arrival order. When full, new messages are dropped (re-gossip and block
/// sync recover them).
#[derive(Default)]
struct NextHeightBuffer {
    msgs: Vec<(PublicKey, GossipMsg)>,
    proposals: usize,
    replayed_for: u64,
}

impl NextHeightBuffer {
    fn push(&mut self, from: PublicKey, msg: GossipMsg) {
        let is_proposal = matches!(msg, GossipMsg::Proposal { .. });
        if self.msgs.len() >= NEXT_HEIGHT_MSGS_MAX
            || (is_proposal && self.proposals >= NEXT_HEIGHT_PROPOSALS_MAX)
        {
            debug!(%from, "next-height buffer full; message dropped");
            return;
        }
        self.proposals += usize::from(is_proposal);
        self.msgs.push((from, msg));
    }

    fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    fn take(&mut self) -> Vec<(PublicKey, GossipMsg)> {
        self.proposals = 0;
        std::mem::take(&mut self.msgs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        ledger::SecretKey::from_seed(&[b; 32]).public_key()
    }

    #[test]
    fn the_next_height_buffer_is_bounded_and_drains_in_order() {
        let mut b = NextHeightBuffer::default();
        for i in 0..NEXT_HEIGHT_MSGS_MAX as u64 + 10 {
            b.push(
                key(1),
                GossipMsg::Status(Status {
                    height: i,
                    block_hash: Hash::ZERO,
                    round: 0,
                    commit: None,
                }),
            );
        }
        let got = b.take();
        assert_eq!(got.len(), NEXT_HEIGHT_MSGS_MAX);
        assert!(matches!(&got[0].1, GossipMsg::Status(s) if s.height == 0));
        assert!(b.is_empty());
    }
}
