//! The simulated world: nodes running the real driver core on real stores, a simulated
//! clock and network, byzantine behaviours, and the record the checks read.

use govledger_node::app::{App, NodeStatus, Waiters};
use govledger_node::config::ApiConfig;
use govledger_node::driver::blocks::{CANDIDATES_BYTES_MAX, CANDIDATES_MAX};
use govledger_node::driver::core::{EVIDENCE_SEEN_MAX, NEXT_HEIGHT_MSGS_MAX};
use govledger_node::driver::sync::{PEERS_TRACKED_MAX, SYNC_INFLIGHT_MAX};
use govledger_node::driver::timers::TIMERS_MAX;
use govledger_node::driver::{CoreConfig, DriverCore, DriverInput, Effect, Now, verify_synced};
use govledger_node::intake::SeenIds;
use govledger_node::mempool::{Mempool, MempoolLimits};
use govledger_node::messages::{GossipMsg, Status};
use govledger_node::metrics::Metrics;
use govledger_node::signing::{self, Binding};
use ledger::block::Block;
use ledger::execute::VerifiedTx;
use ledger::genesis::{ConsensusParams, Department, Genesis, Member, StateFormat};
use ledger::hash::{Hash, hash_document};
use ledger::store::Store;
use ledger::tx::{Anchor, Role, RoleSet, Tx, TxBody};
use ledger::validator::Validator;
use ledger::vote::{Evidence, Proposal, Vote};
use ledger::{PublicKey, SecretKey, VoteType};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// Chain id of simulated chains.
pub const CHAIN_ID: &str = "govledger-sim";
/// Genesis time; node wall clocks start just after it.
pub const GENESIS_TIME_MS: u64 = 1_800_000_000_000;
/// Most transactions per block in the simulation (small, so that an oversized block is
/// cheap to build).
pub const SIM_BLOCK_TXS_MAX: u32 = 64;
/// Evidence messages an `EvidenceSpam` node sends per tick, each about a fresh key.
pub const EVIDENCE_SPAM_BURST: usize = 24;

/// A small deterministic generator (splitmix64).
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..hi` (`lo` if empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next_u64() % (hi - lo)
        }
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// How a sync liar answers requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiarKind {
    /// Never answers.
    Silent,
    /// Answers after the requester's timeout.
    Slow,
    /// Answers empty or with one block.
    Partial,
    /// Answers with tampered blocks.
    Invalid,
}

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// The real node, nothing else.
    Honest,
    /// Never sends anything (never starts).
    Silent,
    /// Signs a second, conflicting prevote for every prevote.
    Equivocate,
    /// Signs proposals for its own far-future rounds, many per tick.
    FutureRoundFlood,
    /// Attributes its blocks to another validator.
    WrongProposer,
    /// Proposes blocks with a wrong state root.
    InvalidBlock,
    /// Proposes blocks with more transactions than allowed.
    OversizedBlock,
    /// Claims the best height it has heard of (with its real certificate) and a far
    /// higher one (without), and answers sync requests as given.
    SyncLiar(LiarKind),
    /// Gossips evidence about random keys.
    EvidenceSpam,
    /// Re-gossips old messages it recorded.
    ReplayOld,
}

impl Behaviour {
    /// Whether the node counts as correct for the checks.
    pub fn honest(self) -> bool {
        self == Behaviour::Honest
    }
}

/// One node's description.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// A validator (else a follower peer with the node role).
    pub validator: bool,
    /// What it does.
    pub behaviour: Behaviour,
    /// Wall-clock skew (ms, may be negative).
    pub skew_ms: i64,
}

struct Running {
    core: DriverCore,
    app: Arc<App>,
    _status_rx: watch::Receiver<NodeStatus>,
    _announce_rx: mpsc::Receiver<Vec<VerifiedTx>>,
}

/// A node of the world.
pub struct SimNode {
    /// Its spec.
    pub spec: NodeSpec,
    /// Its key.
    pub key: SecretKey,
    /// The client key that submits through it.
    pub client: SecretKey,
    dir: PathBuf,
    run: Option<Running>,
    wake_at: u64,
    /// Whether the next start confirms a disagreeing signing state.
    confirm: bool,
    /// Byzantine memory: a block of the current height to copy, old messages to replay,
    /// the best status heard.
    template: Option<Block>,
    recorded: Vec<GossipMsg>,
    best_status: Option<Status>,
    last_byz_ms: u64,
}

#[allow(clippy::large_enum_variant)] // most events are deliveries
enum Event {
    Deliver { to: usize, input: DriverInput },
    Crash { node: usize },
    Restart { node: usize, wipe_store: bool },
    Submit,
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Event,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Network conditions.
#[derive(Clone, Debug)]
pub struct NetConditions {
    /// Base one-way delay (ms).
    pub delay_ms: (u64, u64),
    /// Loss probability.
    pub loss: f64,
    /// Duplication probability.
    pub dup: f64,
}

/// What the checks read.
#[derive(Default)]
pub struct Record {
    /// Messages signed by correct validators: (signer, height, round, step) → block.
    pub signed: BTreeMap<(PublicKey, u64, u32, u8), Option<Hash>>,
    /// Double signs found.
    pub double_signs: Vec<String>,
    /// Strikes by correct nodes against correct nodes.
    pub honest_strikes: Vec<String>,
    /// Fatal errors of correct nodes.
    pub fatal: Vec<String>,
    /// Blocks made by byzantine proposers that must never commit.
    pub forbidden_blocks: BTreeSet<Hash>,
    /// Validators that really equivocated.
    pub equivocators: BTreeSet<PublicKey>,
    /// Bound violations.
    pub bounds: Vec<String>,
    /// Signed messages that left before their block was durable on the signer.
    pub unpersisted: Vec<String>,
    /// Evidence about keys that are no validators, relayed by correct nodes.
    pub spam_relayed: Vec<String>,
    /// Effects carried out.
    pub effects: u64,
}

/// The world.
pub struct World {
    /// Seed.
    pub seed: u64,
    /// The genesis.
    pub genesis: Genesis,
    /// Nodes.
    pub nodes: Vec<SimNode>,
    /// Simulated time (ms).
    pub now: u64,
    rng: Rng,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    /// Links cut: (a, b) with a < b.
    pub cut: BTreeSet<(usize, usize)>,
    /// Network conditions.
    pub net: NetConditions,
    /// The record.
    pub record: Record,
    /// Transactions are submitted while true.
    pub submitting: bool,
    _dir: tempfile::TempDir,
}

fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("govledger-sim-")
            .tempdir_in(shm)
            .expect("tempdir")
    } else {
        tempfile::tempdir().expect("tempdir")
    }
}

impl World {
    /// A world of these nodes.
    pub fn new(seed: u64, specs: Vec<NodeSpec>, net: NetConditions) -> Self {
        let dir = scratch_dir();
        let mut nodes = Vec::new();
        let mut validators = Vec::new();
        let mut members = Vec::new();
        let mut departments = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let key = SecretKey::from_seed(&seed_bytes(seed, i as u64, 1));
            let client = SecretKey::from_seed(&seed_bytes(seed, i as u64, 2));
            let dept = format!("d{i}");
            departments.push(Department {
                id: dept.as_str().into(),
                name: format!("Department {i}"),
                governance_weight: 1,
            });
            if spec.validator {
                validators.push(Validator {
                    department: dept.as_str().into(),
                    public_key: key.public_key(),
                    power: 1,
                    address: String::new(),
                });
            } else {
                members.push(Member {
                    key: key.public_key(),
                    department: dept.as_str().into(),
                    roles: [Role::Node].into_iter().collect(),
                    name: format!("node {i}"),
                });
            }
            let mut roles: RoleSet = Role::ALL.into_iter().collect();
            roles.remove(Role::Node);
            members.push(Member {
                key: client.public_key(),
                department: dept.as_str().into(),
                roles,
                name: format!("client {i}"),
            });
            let d = dir.path().join(format!("node-{i}"));
            std::fs::create_dir_all(&d).expect("node dir");
            nodes.push(SimNode {
                spec,
                key,
                client,
                dir: d,
                run: None,
                wake_at: u64::MAX,
                confirm: false,
                template: None,
                recorded: Vec::new(),
                best_status: None,
                last_byz_ms: 0,
            });
        }
        let genesis = Genesis {
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: GENESIS_TIME_MS,
            departments,
            members,
            validators,
            params: ConsensusParams {
                max_block_txs: SIM_BLOCK_TXS_MAX,
                timeout_propose_ms: 400,
                timeout_propose_delta_ms: 100,
                timeout_prevote_ms: 200,
                timeout_prevote_delta_ms: 100,
                timeout_precommit_ms: 200,
                timeout_precommit_delta_ms: 100,
                idle_block_interval_ms: 300,
                clock_drift_max_ms: 10_000,
                ..ConsensusParams::default()
            },
            state_format: StateFormat::CURRENT,
        };
        let mut w = World {
            seed,
            genesis,
            nodes,
            now: 0,
            rng: Rng::new(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            cut: BTreeSet::new(),
            net,
            record: Record::default(),
            submitting: true,
            _dir: dir,
        };
        for i in 0..w.nodes.len() {
            if w.nodes[i].spec.behaviour != Behaviour::Silent {
                w.start(i);
            }
        }
        w.schedule(50, Event::Submit);
        w
    }

    fn schedule(&mut self, after_ms: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at: self.now + after_ms,
            seq: self.seq,
            ev,
        }));
    }

    /// Crashes `node` after `after_ms`.
    pub fn crash_at(&mut self, node: usize, after_ms: u64) {
        self.schedule(after_ms, Event::Crash { node });
    }

    /// Restarts `node` after `after_ms` (deleting its chain store first if asked; the
    /// signing state is kept).
    pub fn restart_at(&mut self, node: usize, after_ms: u64, wipe_store: bool) {
        self.schedule(after_ms, Event::Restart { node, wipe_store });
    }

    fn wall(&self, i: usize) -> u64 {
        let base = GENESIS_TIME_MS + 1_000 + self.now;
        base.saturating_add_signed(self.nodes[i].spec.skew_ms)
    }

    fn now_of(&self, i: usize) -> Now {
        Now {
            mono_ms: self.now,
            wall_ms: self.wall(i),
        }
    }

    /// Whether node `i` is running.
    pub fn running(&self, i: usize) -> bool {
        self.nodes[i].run.is_some()
    }

    /// Node `i`'s store, while it runs.
    pub fn store(&self, i: usize) -> Option<&Arc<Store>> {
        self.nodes[i].run.as_ref().map(|r| &r.app.store)
    }

    /// Node `i`'s committed height, while it runs.
    pub fn height(&self, i: usize) -> Option<u64> {
        self.nodes[i].run.as_ref().map(|r| r.core.tip().height)
    }

    fn start(&mut self, i: usize) {
        let n = &self.nodes[i];
        let store = Arc::new(Store::open(&n.dir.join("db"), &self.genesis).expect("store opens"));
        let binding = Binding {
            version: signing::SIGNING_FORMAT_VERSION,
            chain_id: CHAIN_ID.into(),
            genesis_hash: self.genesis.hash(),
            key: n.key.public_key(),
        };
        let signing = match signing::open_checked(&n.dir, &store, &binding, n.confirm) {
            Ok(s) => s,
            Err(e) => {
                self.record
                    .fatal
                    .push(format!("node {i} refused to start: {e}"));
                return;
            }
        };
        let tip = store.stored_tip().expect("tip");
        let status = NodeStatus {
            height: tip.height,
            block_hash: tip.block_hash,
            block_time_ms: tip.time_ms,
            log_size: tip.log_size,
            log_root: Hash::ZERO,
            state_root: tip.state_root,
            round: 0,
            syncing: false,
            peers: vec![],
            validators: vec![],
        };
        let (status_tx, status_rx) = watch::channel(status);
        let (announce_tx, announce_rx) = mpsc::channel(16);
        let app = Arc::new(App {
            genesis_hash: self.genesis.hash(),
            genesis: Arc::new(self.genesis.clone()),
            mempool: Arc::new(Mempool::new(
                CHAIN_ID.into(),
                MempoolLimits {
                    txs_max: 10_000,
                    bytes_max: 16 * 1024 * 1024,
                },
                tip.height,
            )),
            store,
            node_key: n.key.public_key(),
            peer_id: format!("sim-{i}"),
            status: status_rx.clone(),
            waiters: Waiters::default(),
            metrics: Arc::new(Metrics::new()),
            api_config: ApiConfig::default(),
            announce: announce_tx,
            health: govledger_node::health::Health::new(GENESIS_TIME_MS, 300, tip.height),
        });
        let cfg = CoreConfig {
            key: n.key.clone(),
            equivocate: n.spec.behaviour == Behaviour::Equivocate,
            signing,
            seen: Arc::new(SeenIds::default()),
        };
        let now = self.now_of(i);
        let core = match DriverCore::new(app.clone(), status_tx, cfg, now) {
            Ok(c) => c,
            Err(e) => {
                self.record
                    .fatal
                    .push(format!("node {i} driver failed to start: {e}"));
                return;
            }
        };
        self.nodes[i].run = Some(Running {
            core,
            app,
            _status_rx: status_rx,
            _announce_rx: announce_rx,
        });
        self.nodes[i].wake_at = self.now;
        // Peers see it connect, and it sees them.
        for j in 0..self.nodes.len() {
            if j != i && self.running(j) {
                let (pi, pj) = (
                    self.nodes[i].key.public_key(),
                    self.nodes[j].key.public_key(),
                );
                self.schedule(
                    1,
                    Event::Deliver {
                        to: j,
                        input: DriverInput::PeerConnected(pi),
                    },
                );
                self.schedule(
                    1,
                    Event::Deliver {
                        to: i,
                        input: DriverInput::PeerConnected(pj),
                    },
                );
            }
        }
    }

    fn crash(&mut self, i: usize) {
        self.nodes[i].run = None;
        self.nodes[i].wake_at = u64::MAX;
        let pk = self.nodes[i].key.public_key();
        for j in 0..self.nodes.len() {
            if j != i && self.running(j) {
                self.schedule(
                    1,
                    Event::Deliver {
                        to: j,
                        input: DriverInput::PeerDisconnected(pk),
                    },
                );
            }
        }
    }

    /// Runs until `until(self)` holds or simulated time reaches `end_ms`. Returns whether
    /// `until` held.
    pub fn run_until(&mut self, end_ms: u64, mut until: impl FnMut(&World) -> bool) -> bool {
        let mut steps = 0u64;
        loop {
            steps += 1;
            if steps.is_multiple_of(64) && until(self) {
                return true;
            }
            let next_ev = self.queue.peek().map(|q| q.0.at).unwrap_or(u64::MAX);
            let (wi, next_wake) = self
                .nodes
                .iter()
                .enumerate()
                .map(|(i, n)| (i, n.wake_at))
                .min_by_key(|(_, w)| *w)
                .unwrap_or((0, u64::MAX));
            let at = next_ev.min(next_wake);
            if at >= end_ms {
                self.now = end_ms;
                return until(self);
            }
            self.now = self.now.max(at);
            if next_ev <= next_wake {
                let Some(Reverse(q)) = self.queue.pop() else {
                    continue;
                };
                match q.ev {
                    Event::Deliver { to, input } => self.input(to, input),
                    Event::Crash { node } => self.crash(node),
                    Event::Restart { node, wipe_store } => {
                        if self.running(node) {
                            self.crash(node);
                        }
                        if wipe_store {
                            let _ = std::fs::remove_dir_all(self.nodes[node].dir.join("db"));
                            // The operator, told by the refusal, confirms.
                            self.nodes[node].confirm = true;
                        }
                        self.start(node);
                    }
                    Event::Submit => self.submit(),
                }
            } else {
                self.input(wi, DriverInput::Wake);
            }
        }
    }

    fn input(&mut self, i: usize, input: DriverInput) {
        let now = self.now_of(i);
        if self.nodes[i].run.is_none() {
            return;
        }
        if let DriverInput::Gossip { msg, .. } = &input {
            let n = &mut self.nodes[i];
            match msg {
                GossipMsg::Proposal { block, .. } => n.template = Some((**block).clone()),
                GossipMsg::Status(s)
                    if s.commit.is_some()
                        && n.best_status.as_ref().is_none_or(|b| s.height > b.height) =>
                {
                    n.best_status = Some(s.clone());
                }
                _ => {}
            }
            if n.spec.behaviour == Behaviour::ReplayOld && n.recorded.len() < 4096 {
                n.recorded.push(msg.clone());
            }
        }
        let run = self.nodes[i].run.as_mut().unwrap_or_else(|| unreachable!());
        let effects = run.core.handle(now, input);
        let sizes = run.core.sizes();
        let validators = run.core.validators().len();
        self.nodes[i].wake_at = run.core.next_wakeup_ms();
        self.check_bounds(i, &sizes, validators);
        for e in effects {
            self.effect(i, e);
        }
        self.byzantine_extra(i);
    }

    fn check_bounds(&mut self, i: usize, s: &govledger_node::driver::CoreSizes, validators: usize) {
        let mut bad = |what: &str, v: usize, max: usize| {
            if v > max {
                self.record
                    .bounds
                    .push(format!("node {i}: {what} = {v} > {max} at t={}", self.now));
            }
        };
        bad("candidates", s.candidates, CANDIDATES_MAX);
        bad("candidate bytes", s.candidate_bytes, CANDIDATES_BYTES_MAX);
        bad("timers", s.timers, TIMERS_MAX);
        bad("next-height buffer", s.next_height, NEXT_HEIGHT_MSGS_MAX);
        bad("evidence seen", s.evidence_seen, EVIDENCE_SEEN_MAX);
        bad("awaited blocks", s.awaiting, CANDIDATES_MAX);
        bad("sync claims", s.sync.0, PEERS_TRACKED_MAX);
        bad("sync records", s.sync.1, PEERS_TRACKED_MAX);
        bad("sync in flight", s.sync.2, SYNC_INFLIGHT_MAX);
        bad("sync answers waiting", s.sync.3, SYNC_INFLIGHT_MAX);
        bad(
            "consensus items",
            s.consensus_items,
            consensus::Consensus::stored_items_bound(validators.max(1)),
        );
    }

    fn delay(&mut self) -> u64 {
        let (lo, hi) = self.net.delay_ms;
        self.rng.range(lo, hi + 1)
    }

    fn link_up(&self, a: usize, b: usize) -> bool {
        !self.cut.contains(&(a.min(b), a.max(b)))
    }

    fn send(&mut self, from: usize, to: usize, msg: GossipMsg) {
        self.note_signed(from, &msg);
        if !self.link_up(from, to) || self.rng.chance(self.net.loss) {
            return;
        }
        let pk = self.nodes[from].key.public_key();
        let copies = if self.rng.chance(self.net.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let d = self.delay();
            self.schedule(
                d,
                Event::Deliver {
                    to,
                    input: DriverInput::Gossip {
                        from: pk,
                        msg: msg.clone(),
                    },
                },
            );
        }
    }

    /// Whether `key` is in the genesis validator set (the simulation never changes it).
    fn is_validator(&self, key: &PublicKey) -> bool {
        self.genesis.validators.iter().any(|v| v.public_key == *key)
    }

    fn broadcast(&mut self, from: usize, msg: GossipMsg) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }

    /// Records what node `i` signed and sends; a conflict is a double sign of a correct
    /// node (a failure) or a byzantine node's equivocation (which evidence may name).
    fn note_signed(&mut self, i: usize, msg: &GossipMsg) {
        let me = self.nodes[i].key.public_key();
        let (key, hash) = match msg {
            GossipMsg::Vote(v) if v.validator == me => (
                (
                    me,
                    v.height,
                    v.round,
                    if v.vote_type == VoteType::Prevote {
                        1
                    } else {
                        2
                    },
                ),
                v.block_hash,
            ),
            GossipMsg::Proposal { proposal, .. } if proposal.proposer == me => (
                (me, proposal.height, proposal.round, 0),
                Some(proposal.block_hash),
            ),
            _ => return,
        };
        match self.record.signed.get(&key) {
            Some(_) if !self.nodes[i].spec.behaviour.honest() => {
                if self.record.signed.get(&key) != Some(&hash) {
                    self.record.equivocators.insert(me);
                }
            }
            Some(h) if *h != hash => self.record.double_signs.push(format!(
                "node {i} signed {key:?} for {h:?} and then {hash:?}"
            )),
            Some(_) => {}
            None => {
                self.record.signed.insert(key, hash);
                if let Some(h) = hash
                    && self.nodes[i].spec.behaviour.honest()
                {
                    self.check_signed_block_durable(i, key.1, h);
                }
            }
        }
    }

    /// A correct validator's message for block `h` at `height` is leaving for the first
    /// time: the block must already be durable on that node (persisted with the signing
    /// state, or committed), since after a restart its signed messages count again and can
    /// decide the block.
    fn check_signed_block_durable(&mut self, i: usize, height: u64, h: Hash) {
        let Some(run) = &self.nodes[i].run else {
            return;
        };
        let store = &run.app.store;
        let committed = store
            .header(height)
            .ok()
            .flatten()
            .is_some_and(|hd| hd.hash() == h);
        let persisted = store
            .node_get(govledger_node::driver::core::LOCKED_BLOCKS_KEY)
            .ok()
            .flatten()
            .and_then(|b| ledger::codec::decode::<Vec<ledger::block::Block>>(&b).ok())
            .is_some_and(|blocks| blocks.iter().any(|b| b.hash() == h));
        if !committed && !persisted {
            self.record.unpersisted.push(format!(
                "node {i} signed for block {h} at height {height} before the block was durable (t={})",
                self.now
            ));
        }
    }

    fn effect(&mut self, i: usize, e: Effect) {
        self.record.effects += 1;
        let behaviour = self.nodes[i].spec.behaviour;
        match e {
            Effect::Broadcast(m) => {
                if behaviour.honest()
                    && let GossipMsg::Evidence(ev) = &m
                    && !self.is_validator(&ev.key().validator)
                {
                    self.record.spam_relayed.push(format!(
                        "node {i} relayed evidence about {}, no validator",
                        ev.key().validator
                    ));
                }
                if let Some(m) = self.byzantine_outgoing(i, m) {
                    self.broadcast(i, m);
                }
            }
            Effect::SendTo(p, m) => {
                if let Some(to) = self.index_of(&p)
                    && let Some(m) = self.byzantine_outgoing(i, m)
                {
                    self.send(i, to, m);
                }
            }
            Effect::Report { peer, reason } => {
                if let Some(j) = self.index_of(&peer)
                    && behaviour.honest()
                    && self.nodes[j].spec.behaviour.honest()
                {
                    self.record
                        .honest_strikes
                        .push(format!("node {i} struck correct node {j}: {reason}"));
                }
            }
            Effect::SetAllowed(_) => {}
            Effect::Fetch { id, peer, req } => self.fetch(i, id, peer, req),
            Effect::PeerTxs { txs, .. } => {
                if let Some(run) = &self.nodes[i].run {
                    let wall = self.wall(i);
                    for t in txs {
                        if let Ok(v) = VerifiedTx::verify(t) {
                            let _ = run.app.mempool.insert(&run.app.store, v, wall);
                        }
                    }
                }
            }
            Effect::Fatal { code, reason } => {
                if behaviour.honest() {
                    self.record
                        .fatal
                        .push(format!("node {i} fatal {code}: {reason}"));
                }
                self.crash(i);
            }
        }
    }

    fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.nodes.iter().position(|n| n.key.public_key() == *key)
    }

    fn fetch(
        &mut self,
        from: usize,
        id: u64,
        peer: PublicKey,
        req: govledger_node::messages::SyncRequest,
    ) {
        let Some(to) = self.index_of(&peer) else {
            return;
        };
        let rtt = self.delay() + self.delay();
        let Some(store) = self.store(to).cloned().filter(|_| self.link_up(from, to)) else {
            // A dead or cut-off peer: the request fails after a while.
            self.schedule(
                rtt + 500,
                Event::Deliver {
                    to: from,
                    input: DriverInput::Fetched {
                        id,
                        result: Err("not connected".into()),
                    },
                },
            );
            return;
        };
        let blocks = match govledger_node::network::serve_blocks(&store, req) {
            Ok(r) => r.blocks,
            Err(e) => {
                self.record
                    .fatal
                    .push(format!("node {to} cannot serve blocks: {e}"));
                return;
            }
        };
        let (blocks, extra_delay) = match self.nodes[to].spec.behaviour {
            Behaviour::SyncLiar(LiarKind::Silent) => return,
            Behaviour::SyncLiar(LiarKind::Slow) => (blocks, 15_000),
            Behaviour::SyncLiar(LiarKind::Partial) => {
                let keep = if self.rng.chance(0.5) { 0 } else { 1 };
                (blocks.into_iter().take(keep).collect(), 0)
            }
            Behaviour::SyncLiar(LiarKind::Invalid) => {
                let mut blocks = blocks;
                for b in &mut blocks {
                    b.block.header.state_root = hash_document(&self.rng.next_u64().to_le_bytes());
                }
                (blocks, 0)
            }
            _ => (blocks, 0),
        };
        let synced = verify_synced(blocks, |_| None);
        self.schedule(
            rtt + extra_delay,
            Event::Deliver {
                to: from,
                input: DriverInput::Fetched {
                    id,
                    result: Ok(synced),
                },
            },
        );
    }

    /// A byzantine node's rewrite of what its honest core sends.
    fn byzantine_outgoing(&mut self, i: usize, m: GossipMsg) -> Option<GossipMsg> {
        let n = &self.nodes[i];
        let key = n.key.clone();
        match (n.spec.behaviour, m) {
            (Behaviour::WrongProposer, GossipMsg::Proposal { proposal, block })
                if proposal.pol_round.is_none() =>
            {
                let mut b = *block;
                let other = self
                    .genesis
                    .validators
                    .iter()
                    .map(|v| v.public_key)
                    .find(|k| *k != key.public_key())?;
                b.header.proposer = other;
                Some(self.resign(&key, &proposal, b))
            }
            (Behaviour::InvalidBlock, GossipMsg::Proposal { proposal, block })
                if proposal.pol_round.is_none() =>
            {
                let mut b = *block;
                b.header.state_root = hash_document(b"not the state");
                Some(self.resign(&key, &proposal, b))
            }
            (Behaviour::OversizedBlock, GossipMsg::Proposal { proposal, block })
                if proposal.pol_round.is_none() =>
            {
                let mut b = *block;
                let client = self.nodes[i].client.clone();
                for k in 0..(SIM_BLOCK_TXS_MAX as u64 + 8) {
                    b.txs
                        .push(anchor_tx(&client, 1_000_000 + k, b.header.time_ms, k));
                }
                b.header.tx_count = b.txs.len() as u32;
                b.header.tx_root = b.compute_tx_root();
                Some(self.resign(&key, &proposal, b))
            }
            (Behaviour::SyncLiar(_), GossipMsg::Status(_)) => {
                // The best verified claim it heard, as its own.
                self.nodes[i].best_status.clone().map(GossipMsg::Status)
            }
            (_, m) => Some(m),
        }
    }

    fn resign(&mut self, key: &SecretKey, p: &Proposal, block: Block) -> GossipMsg {
        let hash = block.hash();
        self.record.forbidden_blocks.insert(hash);
        let proposal = Proposal::new_signed(CHAIN_ID, p.height, p.round, None, hash, key);
        GossipMsg::Proposal {
            proposal,
            block: Box::new(block),
        }
    }

    /// What a byzantine node does on its own, at most every 100 ms.
    fn byzantine_extra(&mut self, i: usize) {
        let b = self.nodes[i].spec.behaviour;
        if b.honest() || self.now < self.nodes[i].last_byz_ms + 100 {
            return;
        }
        self.nodes[i].last_byz_ms = self.now;
        let key = self.nodes[i].key.clone();
        let Some(run) = &self.nodes[i].run else {
            return;
        };
        let height = run.core.tip().height + 1;
        let tip_hash = run.core.tip().block_hash;
        let set = run.core.validators().clone();
        match b {
            Behaviour::FutureRoundFlood => {
                let Some(template) = self.nodes[i].template.clone() else {
                    return;
                };
                if template.header.height != height {
                    return;
                }
                let mut sent = 0;
                for round in 1..400u32 {
                    if set.proposer(height, round).public_key != key.public_key() {
                        continue;
                    }
                    let mut blk = template.clone();
                    blk.header.proposer = key.public_key();
                    blk.header.time_ms = blk
                        .header
                        .time_ms
                        .wrapping_add(u64::from(round) + self.rng.range(0, 1 << 20));
                    let hash = blk.hash();
                    self.record.forbidden_blocks.insert(hash);
                    let proposal = Proposal::new_signed(CHAIN_ID, height, round, None, hash, &key);
                    self.broadcast(
                        i,
                        GossipMsg::Proposal {
                            proposal,
                            block: Box::new(blk),
                        },
                    );
                    sent += 1;
                    if sent >= 80 {
                        break;
                    }
                }
            }
            Behaviour::SyncLiar(_) => {
                // Also an unverifiable far-future claim.
                self.broadcast(
                    i,
                    GossipMsg::Status(Status {
                        height: height + 1_000_000,
                        block_hash: tip_hash,
                        round: 0,
                        commit: None,
                    }),
                );
            }
            Behaviour::EvidenceSpam => {
                // A burst each tick: more keys in a few seconds than a node may remember.
                for _ in 0..EVIDENCE_SPAM_BURST {
                    let k = SecretKey::from_seed(&seed_bytes(self.seed, self.rng.next_u64(), 9));
                    let a = Vote::new_signed(CHAIN_ID, height, 0, VoteType::Prevote, None, &k);
                    let c = Vote::new_signed(
                        CHAIN_ID,
                        height,
                        0,
                        VoteType::Prevote,
                        Some(tip_hash),
                        &k,
                    );
                    self.broadcast(i, GossipMsg::Evidence(Evidence::from_votes(a, c)));
                }
            }
            Behaviour::ReplayOld => {
                let n = self.nodes[i].recorded.len() as u64;
                if n > 0 {
                    for _ in 0..4 {
                        let m = self.nodes[i].recorded[self.rng.range(0, n) as usize].clone();
                        self.broadcast(i, m);
                    }
                }
            }
            _ => {}
        }
    }

    fn submit(&mut self) {
        if self.submitting {
            let honest: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.running(i) && self.nodes[i].spec.behaviour.honest())
                .collect();
            if !honest.is_empty() {
                let i = honest[self.rng.range(0, honest.len() as u64) as usize];
                let run = self.nodes[i].run.as_ref().unwrap_or_else(|| unreachable!());
                let client = self.nodes[i].client.clone();
                let nonce = run
                    .app
                    .mempool
                    .pending_nonce(&run.app.store, &client.public_key())
                    .unwrap_or(0);
                let wall = self.wall(i);
                let stx = anchor_tx(&client, nonce, wall, self.rng.next_u64());
                if let Ok(v) = VerifiedTx::verify(stx)
                    && run
                        .app
                        .mempool
                        .insert(&run.app.store, v.clone(), wall)
                        .is_ok()
                {
                    self.input(i, DriverInput::Announce(vec![v]));
                }
            }
        }
        let d = self.rng.range(20, 120);
        self.schedule(d, Event::Submit);
    }

    /// Node `i`'s committed block hashes, from height 1.
    pub fn chain(&self, i: usize) -> Vec<Hash> {
        let Some(store) = self.store(i) else {
            return vec![];
        };
        let tip = store.stored_tip().map(|t| t.height).unwrap_or(0);
        (1..=tip)
            .filter_map(|h| store.header(h).ok().flatten().map(|hd| hd.hash()))
            .collect()
    }
}

/// An anchor transaction of `client`.
pub fn anchor_tx(client: &SecretKey, nonce: u64, now_ms: u64, salt: u64) -> ledger::SignedTx {
    Tx {
        chain_id: CHAIN_ID.into(),
        signer: client.public_key(),
        nonce,
        created_at_ms: now_ms,
        expires_at_ms: now_ms + 600_000,
        body: TxBody::Anchor(Anchor {
            document_hash: hash_document(&salt.to_le_bytes()),
            label: "sim".into(),
        }),
    }
    .sign(client)
}

fn seed_bytes(seed: u64, i: u64, kind: u64) -> [u8; 32] {
    let mut r = Rng::new(
        seed.wrapping_mul(31)
            .wrapping_add(i.wrapping_mul(1_000_003))
            .wrapping_add(kind << 56),
    );
    let mut out = [0u8; 32];
    for c in out.chunks_mut(8) {
        c.copy_from_slice(&r.next_u64().to_le_bytes());
    }
    out
}
