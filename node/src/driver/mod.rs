//! The consensus driver: the node's core actor. It owns the consensus state machine and
//! the committed tip, and is the only writer of blocks to the store.
//!
//! * Inputs: peers' proposals (with their blocks), votes, transactions, evidence and
//!   status; timeouts; newly admitted transactions to gossip; a periodic tick.
//! * It carries out the machine's outputs in order; `Persist` is written **synced before**
//!   anything later in the batch leaves the process, so a restart never double-signs.
//! * It executes every proposed block before the machine may prevote for it
//!   ([`ledger::chain::execute_block`]), builds blocks when this node proposes, and
//!   commits a decided block in one atomic synced batch before anything reports it.
//! * A node that is behind fetches blocks with their certificates from a peer that is
//!   ahead, verifies and executes them, then rejoins consensus at the tip.
//! * When idle, the next height starts (and so an empty block is proposed) at most every
//!   `idle_block_interval_ms`; a transaction in the mempool or a peer's message for the
//!   next height starts it at once.

mod blocks;
mod timers;

use crate::app::{App, NodeStatus, now_ms};
use crate::intake::TxIntake;
use crate::messages::{GossipMsg, SYNC_BLOCKS_MAX, SyncRequest, SyncResponse};
use crate::network::{NetEvent, NetworkHandle};
use blocks::Candidates;
use consensus::{Consensus, ConsensusError, Input, Message, Output, PersistedState, TimeoutParams};
use ledger::block::{Block, CommittedBlock};
use ledger::chain::{ChainTip, ExecutedBlock, build_block, execute_block, validators_for};
use ledger::execute::{VerifiedTx, verify_batch};
use ledger::hash::Hash;
use ledger::state::StateView;
use ledger::store::{Store, TxLocation};
use ledger::tx::{Role, Tx, TxBody};
use ledger::vote::{Evidence, Vote};
use ledger::{CommitCertificate, PublicKey, SecretKey, ValidatorSet};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use timers::Timers;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

/// Key of the persisted consensus state in the store's node column family.
const CONSENSUS_STATE_KEY: &[u8] = b"consensus_state";
/// How often the driver re-gossips its consensus messages and status.
const TICK_MS: u64 = 1000;
/// Most transactions gossiped in one message.
const GOSSIP_BATCH_TXS: usize = 2048;
/// Proposals with more transactions than this are not re-gossiped every tick.
const REBROADCAST_BLOCK_TXS_MAX: usize = 1000;
/// A sync request waits at most this long.
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);
/// Expiry of evidence transactions this node signs.
const EVIDENCE_TX_TTL_MS: u64 = 3_600_000;

/// What the driver needs beyond the shared [`App`].
pub struct DriverConfig {
    /// The node key (the consensus key if this node is a validator).
    pub key: SecretKey,
    /// Fault injection: equivocate on every prevote (see `TestingConfig`).
    pub equivocate: bool,
}

/// The driver.
pub struct Driver {
    app: Arc<App>,
    store: Arc<Store>,
    net: NetworkHandle,
    events: mpsc::Receiver<NetEvent>,
    announce: mpsc::Receiver<Vec<VerifiedTx>>,
    status_tx: watch::Sender<NodeStatus>,
    key: SecretKey,
    equivocate: bool,
    consensus: Consensus,
    tip: ChainTip,
    /// Height the machine is deciding (`tip.height + 1` once started).
    started: Option<u64>,
    validators: ValidatorSet,
    /// Consensus parameters in force (re-read after every commit: governance may change them).
    params: ledger::ConsensusParams,
    candidates: Candidates,
    timers: Timers,
    /// A proposal this node owes: `(height, round)`.
    owed_proposal: Option<(u64, u32)>,
    /// Blocks the machine asked to validate that have not arrived yet.
    awaiting_blocks: BTreeSet<Hash>,
    /// When the tip was committed (local clock), for the idle interval.
    tip_committed_at: tokio::time::Instant,
    /// The latest committed height each connected peer reported (bounded by the allow-listed
    /// peer set: an entry leaves when its peer disconnects or fails a sync request).
    peer_heights: BTreeMap<PublicKey, u64>,
    /// The peer whose sync request failed last (skipped when another is as high).
    sync_failed_last: Option<PublicKey>,
    /// Proposals and votes of the height after the one in progress, which peers that
    /// committed first have already started: handled once this node commits.
    next_height: NextHeightBuffer,
    /// Evidence already turned into a transaction.
    evidence_sent: BTreeSet<ledger::vote::EquivocationKey>,
    /// The peer whose message is being handled (for reporting invalid input).
    current_sender: Option<PublicKey>,
    /// Verifies and admits peers' transactions on its own thread.
    intake: TxIntake,
    /// Woken when transactions were admitted off the driver's task.
    wake: Arc<tokio::sync::Notify>,
}

impl Driver {
    /// Builds the driver at the store's tip, restoring the persisted signing state.
    pub fn new(
        app: Arc<App>,
        net: NetworkHandle,
        events: mpsc::Receiver<NetEvent>,
        announce: mpsc::Receiver<Vec<VerifiedTx>>,
        status_tx: watch::Sender<NodeStatus>,
        cfg: DriverConfig,
    ) -> anyhow::Result<Self> {
        let store = app.store.clone();
        let tip = store.load_tip()?;
        let restored = match store.node_get(CONSENSUS_STATE_KEY)? {
            Some(bytes) => Some(PersistedState::from_bytes(&bytes).map_err(|e| {
                anyhow::anyhow!("persisted consensus state is corrupt ({e}); refusing to start rather than risk double-signing")
            })?),
            None => None,
        };
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
        let wake = Arc::new(tokio::sync::Notify::new());
        let intake = TxIntake::spawn(
            store.clone(),
            app.mempool.clone(),
            net.clone(),
            app.metrics.clone(),
            wake.clone(),
        )?;
        Ok(Driver {
            app,
            store,
            net,
            events,
            announce,
            status_tx,
            key: cfg.key,
            equivocate: cfg.equivocate,
            consensus,
            tip,
            started: None,
            validators,
            params,
            candidates: Candidates::default(),
            timers: Timers::default(),
            owed_proposal: None,
            awaiting_blocks: BTreeSet::new(),
            tip_committed_at: tokio::time::Instant::now(),
            peer_heights: BTreeMap::new(),
            sync_failed_last: None,
            next_height: NextHeightBuffer::default(),
            evidence_sent: BTreeSet::new(),
            current_sender: None,
            intake,
            wake,
        })
    }

    /// Runs until `shutdown` turns true. A block being committed is always finished.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        self.publish_status();
        let mut tick = tokio::time::interval(Duration::from_millis(TICK_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.replay_next_height();
            self.maybe_start_height();
            self.maybe_propose();
            let deadline = self
                .timers
                .next_deadline()
                .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            let idle_deadline = self.idle_deadline();
            tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        info!("driver stopping");
                        return;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    for t in self.timers.expired(tokio::time::Instant::now()) {
                        self.feed(Input::TimeoutElapsed(t));
                    }
                }
                ev = self.events.recv() => match ev {
                    Some(ev) => self.on_net_event(ev),
                    None => {
                        error!("network stopped; driver stopping");
                        return;
                    }
                },
                Some(txs) = self.announce.recv() => self.gossip_txs(txs),
                _ = self.wake.notified() => {}
                _ = tick.tick() => self.on_tick().await,
                _ = tokio::time::sleep_until(idle_deadline) => {}
            }
        }
    }

    fn idle_deadline(&self) -> tokio::time::Instant {
        let interval = self.params.idle_block_interval_ms;
        if self.started.is_none() || self.owed_proposal.is_some() {
            self.tip_committed_at + Duration::from_millis(interval)
        } else {
            tokio::time::Instant::now() + Duration::from_secs(3600)
        }
    }

    /// Starts the next height when there is work, a peer has started it, or the idle
    /// interval has passed.
    fn maybe_start_height(&mut self) {
        if self.started.is_some() {
            return;
        }
        let interval = self.params.idle_block_interval_ms;
        let idle_over = self.tip_committed_at.elapsed() >= Duration::from_millis(interval);
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
        self.feed(Input::StartHeight {
            height,
            validators: self.validators.clone(),
        });
    }

    /// Builds the owed proposal, when there is something to propose or idling is over.
    fn maybe_propose(&mut self) {
        let Some((height, round)) = self.owed_proposal else {
            return;
        };
        if height != self.tip.height + 1 {
            self.owed_proposal = None;
            return;
        }
        let interval = self.params.idle_block_interval_ms;
        // In later rounds, propose at once: peers are waiting on us.
        let idle_over = round > 0
            || self.tip.height == 0
            || self.tip_committed_at.elapsed() >= Duration::from_millis(interval);
        if !idle_over && self.app.mempool.is_empty() {
            return;
        }
        self.owed_proposal = None;
        match self.build_proposal(height) {
            Ok(hash) => self.feed(Input::ProposeValue {
                height,
                round,
                block_hash: hash,
            }),
            Err(e) => error!(height, round, error = %e, "could not build a block"),
        }
    }

    fn build_proposal(&mut self, height: u64) -> anyhow::Result<Hash> {
        let params = self.params.clone();
        let candidates = self.app.mempool.take_for_block(
            params.max_block_txs as usize,
            params.max_block_bytes as usize,
        );
        let store = self.store.clone();
        let tip = self.tip.clone();
        let proposer = self.key.public_key();
        let (executed, refused) = tokio::task::block_in_place(|| {
            build_block(store.state(), &tip, proposer, now_ms(), candidates)
        })?;
        if !refused.is_empty() {
            let ids: Vec<Hash> = refused.iter().map(|(t, _)| t.id()).collect();
            for (t, r) in &refused {
                debug!(tx = %t.id(), reason = %r, "dropping transaction that no longer applies");
            }
            self.app.mempool.remove(&self.store, &ids, now_ms());
        }
        let hash = executed.header.hash();
        info!(
            height,
            txs = executed.txs.len(),
            block = %hash,
            "proposing block"
        );
        self.candidates.insert(hash, executed.block());
        if let Some(c) = self.candidates.get_mut(&hash) {
            c.executed = Some(executed);
            c.valid = Some(true);
        }
        Ok(hash)
    }

    /// Feeds one input and carries out the outputs in order.
    fn feed(&mut self, input: Input) {
        let outputs = self.consensus.handle(input);
        for out in outputs {
            self.on_output(out);
        }
        if let Some(r) = self.consensus.round() {
            self.app.metrics.round.set(i64::from(r));
        }
    }

    fn on_output(&mut self, out: Output) {
        match out {
            Output::Persist(state) => {
                let bytes = state.to_bytes();
                let store = self.store.clone();
                if let Err(e) =
                    tokio::task::block_in_place(|| store.node_put_sync(CONSENSUS_STATE_KEY, &bytes))
                {
                    // Without a durable signing state nothing may be signed: stop the
                    // process rather than risk double-signing after a restart.
                    error!(error = %e, "cannot persist consensus state; exiting");
                    std::process::exit(70);
                }
            }
            Output::Broadcast(Message::Proposal(p)) => {
                let Some(c) = self.candidates.get(&p.block_hash) else {
                    warn!(block = %p.block_hash, "own proposal's block is unknown; not sending");
                    return;
                };
                self.net.broadcast(GossipMsg::Proposal {
                    proposal: p,
                    block: Box::new(c.block.clone()),
                });
            }
            Output::Broadcast(Message::Vote(v)) => {
                if self.equivocate
                    && v.vote_type == ledger::VoteType::Prevote
                    && v.block_hash.is_some()
                {
                    self.equivocate_on(&v);
                }
                self.net.broadcast(GossipMsg::Vote(v));
            }
            Output::ScheduleTimeout(t) => self.timers.schedule(t),
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

    /// Fault injection: sign and send a second prevote for nil beside `v`.
    fn equivocate_on(&self, v: &Vote) {
        let conflicting = Vote::new_signed(
            &self.tip.chain_id,
            v.height,
            v.round,
            v.vote_type,
            None,
            &self.key,
        );
        warn!(height = v.height, round = v.round, "TESTING: equivocating");
        self.net.broadcast(GossipMsg::Vote(conflicting));
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
            self.app.metrics.peer_messages_invalid.inc();
            if let Some(peer) = self.current_sender {
                self.net.report_invalid(peer, reason.label());
            }
            debug!(%reason, "dropped invalid consensus input");
        } else {
            debug!(%reason, "consensus input not used");
        }
    }

    /// Executes a candidate block and answers the machine.
    fn validate(&mut self, height: u64, round: u32, block_hash: Hash) {
        if height != self.tip.height + 1 {
            return;
        }
        let Some(cand) = self.candidates.get(&block_hash) else {
            debug!(height, round, block = %block_hash, "block to validate not here yet");
            self.awaiting_blocks.insert(block_hash);
            return;
        };
        if let Some(valid) = cand.valid {
            self.feed(Input::BlockValidity { block_hash, valid });
            return;
        }
        let block = cand.block.clone();
        let result = self.execute_candidate(&block);
        let valid = match result {
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
        self.feed(Input::BlockValidity { block_hash, valid });
    }

    /// Verifies (what the mempool has not verified) and executes a block on the tip.
    fn execute_candidate(&self, block: &Block) -> Result<ExecutedBlock, String> {
        let params = &self.params;
        let drift = params.clock_drift_max_ms;
        if block.header.time_ms > now_ms().saturating_add(drift) {
            return Err(format!(
                "block time {} is more than {drift} ms ahead of this node's clock",
                block.header.time_ms
            ));
        }
        let store = self.store.clone();
        let tip = self.tip.clone();
        let mempool = self.app.mempool.clone();
        let block = block.clone();
        let seen = self.intake.seen().clone();
        tokio::task::block_in_place(move || {
            let txs = verify_block_txs(&block, |id| mempool.get(id))?;
            seen.insert_all(txs.iter().map(VerifiedTx::id));
            execute_block(store.state(), &tip, &block.header, txs).map_err(|e| e.to_string())
        })
    }

    fn decide(&mut self, height: u64, round: u32, block_hash: Hash, cert: CommitCertificate) {
        let decided_at = std::time::Instant::now();
        let executed = match self.candidates.take(&block_hash) {
            Some(blocks::Candidate {
                executed: Some(e), ..
            }) => e,
            Some(c) => match self.execute_candidate(&c.block) {
                Ok(e) => e,
                Err(reason) => {
                    // A quorum decided a block this node cannot execute: its state has
                    // diverged, or it is corrupt. Never commit what we cannot check.
                    error!(height, block = %block_hash, %reason, "decided block does not execute here; stopping");
                    std::process::exit(71);
                }
            },
            None => {
                // Peers have it; their status makes this node sync it.
                warn!(height, block = %block_hash, "decided block is unknown here; will sync it");
                return;
            }
        };
        if let Err(e) = self.commit(&executed, &cert) {
            error!(height, error = %e, "commit failed; stopping");
            std::process::exit(72);
        }
        self.app
            .metrics
            .commit_latency
            .observe(decided_at.elapsed().as_secs_f64());
        info!(
            height,
            round,
            txs = executed.txs.len(),
            block = %block_hash,
            log_size = executed.header.log_size,
            "committed block"
        );
    }

    /// Writes a block (decided here or synced) and moves the tip.
    fn commit(&mut self, executed: &ExecutedBlock, cert: &CommitCertificate) -> anyhow::Result<()> {
        let store = self.store.clone();
        tokio::task::block_in_place(|| store.commit_block(executed, cert))?;
        let prev_time = self.tip.time_ms;
        self.tip = self.tip.after(executed);
        self.started = None;
        self.owed_proposal = None;
        self.awaiting_blocks.clear();
        self.tip_committed_at = tokio::time::Instant::now();
        let height = executed.header.height;
        self.app.health.advanced(height);
        self.candidates.drop_below(height + 1);
        self.timers.drop_below(height + 1);
        // Mempool and waiters.
        let ids: Vec<Hash> = executed.txs.iter().map(VerifiedTx::id).collect();
        self.intake.seen().insert_all(ids.iter().copied());
        let mempool = self.app.mempool.clone();
        let dropped =
            tokio::task::block_in_place(|| mempool.on_commit(&store, height, &ids, now_ms()));
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
        if executed.validator_sets.is_some() {
            self.refresh_allowed_peers();
        }
        match store.state().params() {
            Ok(p) => self.params = p,
            Err(e) => {
                warn!(error = %e, "cannot read consensus parameters; keeping the previous ones")
            }
        }
        self.publish_status();
        Ok(())
    }

    fn refresh_allowed_peers(&self) {
        match allowed_peers(&self.store) {
            Ok(keys) => self.net.set_allowed(keys),
            Err(e) => warn!(error = %e, "cannot compute the allowed peers"),
        }
    }

    fn submit_evidence(&mut self, ev: Evidence) {
        let key = ev.key();
        if !self.evidence_sent.insert(key) {
            return;
        }
        warn!(validator = %key.validator, height = key.height, round = key.round, step = key.step, "equivocation detected");
        // Only a validator key may sign an evidence transaction.
        if self.validators.get(&self.key.public_key()).is_none() {
            self.net.broadcast(GossipMsg::Evidence(ev));
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
        let now = now_ms();
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

    fn gossip_txs(&mut self, mut txs: Vec<VerifiedTx>) {
        // Drain what else is queued, up to one batch.
        while txs.len() < GOSSIP_BATCH_TXS {
            match self.announce.try_recv() {
                Ok(more) => txs.extend(more),
                Err(_) => break,
            }
        }
        for chunk in txs.chunks(GOSSIP_BATCH_TXS) {
            self.net.broadcast(GossipMsg::Txs(
                chunk.iter().map(|t| t.tx().clone()).collect(),
            ));
        }
    }

    fn on_net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Gossip { from, msg } => {
                self.current_sender = Some(from);
                self.on_gossip(from, msg);
                self.current_sender = None;
            }
            NetEvent::PeerConnected(peer) => {
                debug!(%peer, "peer connected");
                self.net.send_to(
                    peer,
                    GossipMsg::Status {
                        height: self.tip.height,
                        round: self.consensus.round().unwrap_or(0),
                    },
                );
                for m in self.consensus.rebroadcast() {
                    if let Some(g) = self.to_gossip(m) {
                        self.net.send_to(peer, g);
                    }
                }
                self.publish_status();
            }
            NetEvent::PeerDisconnected(peer) => {
                debug!(%peer, "peer disconnected");
                self.peer_heights.remove(&peer);
                self.publish_status();
            }
        }
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
            GossipMsg::Txs(txs) => self.on_peer_txs(from, txs),
            GossipMsg::Proposal { proposal, block } => {
                let next = self.tip.height + 1;
                if proposal.height < next {
                    return;
                }
                if proposal.height > next {
                    self.note_peer_height(from, proposal.height - 1);
                    if proposal.height <= next + FUTURE_HEIGHTS_BUFFERED {
                        self.next_height
                            .push(from, GossipMsg::Proposal { proposal, block });
                    }
                    return;
                }
                if block.hash() != proposal.block_hash {
                    self.net
                        .report_invalid(from, "proposal's block does not match its hash");
                    return;
                }
                // Keep the block only for a correctly signed proposal of the round's proposer.
                let expected = self
                    .validators
                    .proposer(proposal.height, proposal.round)
                    .public_key;
                if proposal.proposer != expected || proposal.verify(&self.tip.chain_id).is_err() {
                    self.net
                        .report_invalid(from, "proposal not signed by the round's proposer");
                    return;
                }
                let hash = proposal.block_hash;
                self.candidates.insert(hash, *block);
                if self.started.is_none() {
                    self.start_height();
                }
                self.feed(Input::Proposal(proposal));
                if self.awaiting_blocks.remove(&hash) {
                    self.validate(next, 0, hash);
                }
            }
            GossipMsg::Vote(v) => {
                let next = self.tip.height + 1;
                if v.height > next {
                    self.note_peer_height(from, v.height - 1);
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
                self.feed(Input::Vote(v));
            }
            GossipMsg::Evidence(ev) => {
                if ev.verify(&self.tip.chain_id).is_ok() {
                    self.submit_evidence(ev);
                } else {
                    self.net.report_invalid(from, "invalid evidence");
                }
            }
            GossipMsg::Status { height, .. } => self.note_peer_height(from, height),
        }
    }

    /// Hands a peer's transactions to the intake thread (verification off the consensus
    /// path).
    fn on_peer_txs(&mut self, from: PublicKey, txs: Vec<ledger::SignedTx>) {
        self.intake.submit(from, txs);
    }

    /// Handles the buffered messages of the height now in progress (after a commit);
    /// anything older is dropped. Runs once per height: everything buffered while a height
    /// is in progress is for a later one.
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
                // Still ahead (this node has not committed yet): keep it.
                self.next_height.push(from, msg);
            }
        }
    }

    fn note_peer_height(&mut self, peer: PublicKey, height: u64) {
        let h = self.peer_heights.entry(peer).or_insert(0);
        *h = (*h).max(height);
    }

    /// The connected peer to catch up from, and its height (see [`pick_sync_peer`]).
    fn sync_peer(&self) -> Option<(PublicKey, u64)> {
        pick_sync_peer(&self.peer_heights, self.tip.height, self.sync_failed_last)
    }

    async fn on_tick(&mut self) {
        // Re-gossip what the protocol's liveness depends on, and where we are. Large
        // proposals are re-sent only to peers that connect, not every tick.
        for m in self.consensus.rebroadcast() {
            let small = match &m {
                Message::Proposal(p) => self
                    .candidates
                    .get(&p.block_hash)
                    .is_some_and(|c| c.block.txs.len() <= REBROADCAST_BLOCK_TXS_MAX),
                Message::Vote(_) => true,
            };
            if small && let Some(g) = self.to_gossip(m) {
                self.net.broadcast(g);
            }
        }
        self.net.broadcast(GossipMsg::Status {
            height: self.tip.height,
            round: self.consensus.round().unwrap_or(0),
        });
        let size = self.app.mempool.size();
        self.app.metrics.mempool_txs.set(size.txs as i64);
        self.app.metrics.mempool_bytes.set(size.bytes as i64);
        self.publish_status();
        if let Some((peer, h)) = self.sync_peer() {
            self.sync_from(peer, h).await;
        }
    }

    /// Fetches and commits blocks from `peer` until this node reaches `target` (or the
    /// peer stops helping). Every block's certificate is checked against the validator set
    /// in force at its height, and the block is executed and checked like a proposal.
    ///
    /// A pipeline of two stages: while one batch of blocks is executed and committed here,
    /// the next batch is already fetched and its transactions' signatures verified on a
    /// blocking thread, so that catching up uses two cores.
    async fn sync_from(&mut self, peer: PublicKey, target: u64) {
        self.set_syncing(true);
        info!(%peer, from = self.tip.height + 1, target, "catching up");
        let mut failed = false;
        let mut next_from = self.tip.height + 1;
        let mut verifying: Option<tokio::task::JoinHandle<Vec<SyncedBlock>>> = None;
        loop {
            // Stage 1: fetch the next batch and start verifying it.
            let mut fetched = None;
            if next_from <= target {
                match self.fetch_blocks(peer, next_from).await {
                    Ok(blocks) if !blocks.is_empty() => {
                        next_from += blocks.len() as u64;
                        let mempool = self.app.mempool.clone();
                        fetched = Some(tokio::task::spawn_blocking(move || {
                            verify_synced(blocks, |id| mempool.get(id))
                        }));
                    }
                    // An empty answer: it announced a height it does not serve.
                    Ok(_) | Err(()) => failed = true,
                }
            }
            // Stage 2: execute and commit the batch verified before.
            if let Some(handle) = verifying.take() {
                let Ok(batch) = handle.await else {
                    failed = true;
                    break;
                };
                for sb in batch {
                    let height = sb.block.block.header.height;
                    if let Err(reason) = self.apply_synced(sb) {
                        warn!(%peer, height, %reason, "synced block refused");
                        self.net.report_invalid(peer, "invalid synced block");
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                if let Some(h) = fetched {
                    h.abort();
                }
                break;
            }
            verifying = fetched;
            if verifying.is_none() {
                break;
            }
        }
        if failed {
            // Ask another peer next time; this one is asked again only once it announces
            // its height anew (it does every tick while it is alive and connected).
            self.peer_heights.remove(&peer);
            self.sync_failed_last = Some(peer);
        } else {
            self.sync_failed_last = None;
        }
        // `commit` reset `started`: consensus resumes at the new tip.
        self.set_syncing(false);
    }

    /// One sync request; `Err` (logged) if the peer failed or timed out.
    async fn fetch_blocks(&self, peer: PublicKey, from: u64) -> Result<Vec<CommittedBlock>, ()> {
        let req = SyncRequest {
            from_height: from,
            count: SYNC_BLOCKS_MAX,
        };
        match tokio::time::timeout(SYNC_TIMEOUT, self.net.request_blocks(peer, req)).await {
            Ok(Ok(SyncResponse { blocks, .. })) => Ok(blocks),
            Ok(Err(e)) => {
                warn!(%peer, error = %e, "sync request failed");
                Err(())
            }
            Err(_) => {
                warn!(%peer, "sync request timed out");
                Err(())
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
        let store = self.store.clone();
        let tip = self.tip.clone();
        let header = &cb.block.header;
        let executed = tokio::task::block_in_place(move || {
            execute_block(store.state(), &tip, header, txs).map_err(|e| e.to_string())
        })?;
        self.commit(&executed, &cb.commit)
            .map_err(|e| e.to_string())?;
        info!(height = h, txs = executed.txs.len(), "synced block");
        Ok(())
    }

    fn set_syncing(&self, syncing: bool) {
        self.status_tx.send_modify(|s| s.syncing = syncing);
    }

    fn publish_status(&self) {
        let peers = self.net.peers();
        self.app.metrics.peers.set(peers.len() as i64);
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
            s.peers = peers;
            s.validators = validators;
        });
    }
}

/// A block fetched by sync, with its transactions' signatures checked (or why not).
struct SyncedBlock {
    block: CommittedBlock,
    txs: Result<Vec<VerifiedTx>, String>,
}

/// Verifies the transactions of fetched blocks (see [`verify_block_txs`]).
fn verify_synced(
    blocks: Vec<CommittedBlock>,
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
fn verify_block_txs(
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

/// How many heights beyond the one in progress have their proposals and votes buffered.
/// One was not enough: at ~100 blocks/s a validator slowed down for a moment (a flush, a
/// busy core) fell two heights behind, dropped the proposal and votes of the height after
/// next, and stalled the chain for ~2 s (it was that height's proposer) until its
/// propose timeout and block sync caught it up: the p99 of an open-loop run went from
/// ~60 ms to 1.3 s.
pub const FUTURE_HEIGHTS_BUFFERED: u64 = 3;
/// Most buffered future-height messages.
pub const NEXT_HEIGHT_MSGS_MAX: usize = 1024;
/// Most buffered future-height proposals (each carries its block, up to the genesis block
/// size limit).
pub const NEXT_HEIGHT_PROPOSALS_MAX: usize = 4;

/// Bounded buffer of the proposals and votes of the next [`FUTURE_HEIGHTS_BUFFERED`]
/// heights, in arrival order. When full, new messages are dropped (re-gossip and block
/// sync recover them).
#[derive(Default)]
struct NextHeightBuffer {
    msgs: Vec<(PublicKey, GossipMsg)>,
    proposals: usize,
    /// The height whose messages were last handed back (see `replay_next_height`).
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

/// The peer to catch up from: the highest reported height above `tip`. Ties go to the
/// peer after the one that failed last, so that one unhelpful peer (frozen, or partitioned
/// away but not yet disconnected) is not asked again and again while others could serve.
fn pick_sync_peer(
    peer_heights: &BTreeMap<PublicKey, u64>,
    tip: u64,
    failed_last: Option<PublicKey>,
) -> Option<(PublicKey, u64)> {
    let best = peer_heights.values().copied().max()?;
    if best <= tip {
        return None;
    }
    let tied = || {
        peer_heights
            .iter()
            .filter(move |(_, h)| **h == best)
            .map(|(p, _)| *p)
    };
    let first = tied().next()?;
    let pick = match failed_last {
        Some(failed) => tied().find(|p| *p > failed).unwrap_or(first),
        None => first,
    };
    Some((pick, best))
}

#[cfg(test)]
mod sync_peer_tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        ledger::SecretKey::from_seed(&[b; 32]).public_key()
    }

    #[test]
    fn nobody_ahead_means_no_sync() {
        let mut m = BTreeMap::new();
        assert_eq!(pick_sync_peer(&m, 5, None), None);
        m.insert(key(1), 5);
        m.insert(key(2), 3);
        assert_eq!(pick_sync_peer(&m, 5, None), None);
    }

    #[test]
    fn the_highest_peer_is_chosen() {
        let m = BTreeMap::from([(key(1), 7), (key(2), 9), (key(3), 8)]);
        assert_eq!(pick_sync_peer(&m, 5, None), Some((key(2), 9)));
    }

    #[test]
    fn the_next_height_buffer_is_bounded_and_drains_in_order() {
        let mut b = NextHeightBuffer::default();
        for i in 0..NEXT_HEIGHT_MSGS_MAX as u64 + 10 {
            b.push(
                key(1),
                GossipMsg::Status {
                    height: i,
                    round: 0,
                },
            );
        }
        let got = b.take();
        assert_eq!(got.len(), NEXT_HEIGHT_MSGS_MAX);
        assert!(matches!(got[0].1, GossipMsg::Status { height: 0, .. }));
        assert!(b.is_empty());
    }

    /// The e2e `pause` scenario: the first peer to announce the next height was frozen; the
    /// others announced the same height and must be tried in turn.
    #[test]
    fn a_failed_peer_yields_to_the_next_one_at_the_same_height() {
        let mut keys = [key(1), key(2), key(3)];
        keys.sort();
        let m: BTreeMap<_, _> = keys.iter().map(|k| (*k, 10)).collect();
        assert_eq!(pick_sync_peer(&m, 9, None), Some((keys[0], 10)));
        assert_eq!(pick_sync_peer(&m, 9, Some(keys[0])), Some((keys[1], 10)));
        assert_eq!(pick_sync_peer(&m, 9, Some(keys[1])), Some((keys[2], 10)));
        // Wraps around.
        assert_eq!(pick_sync_peer(&m, 9, Some(keys[2])), Some((keys[0], 10)));
    }
}
