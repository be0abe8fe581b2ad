//! The event loop: validators (each a [`Consensus`] plus what a node does around it), the
//! network, the virtual clock, and the checks made as events happen.

use super::network::Network;
use super::rng::{Rng, splitmix64};
use super::scenario::{Plan, Role, Scenario};
use super::{SimConfig, SimFailure, SimReport};
use crate::error::ConsensusError;
use crate::io::{Input, Message, Output, Step, TimeoutParams};
use crate::persisted::{PersistedState, SignedStep};
use crate::{Consensus, certificate_votes};
use ledger::hash::hash_parts;
use ledger::validator::Validator;
use ledger::vote::EquivocationKey;
use ledger::{CommitCertificate, Evidence, Hash, PublicKey, SecretKey, ValidatorSet};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

/// The chain id of every simulated chain.
pub const CHAIN_ID: &str = "govledger-sim";
/// How often a validator re-sends its own messages of the current height and its status.
pub const GOSSIP_INTERVAL_MS: u64 = 300;
/// After GST, heights that start this much later must decide within the round bound.
pub const SETTLE_MS: u64 = 5_000;
/// Rounds allowed beyond the run of faulty proposers at the start of a settled height.
pub const ROUND_SLACK: u32 = 2;
/// Virtual time allowed per height after GST before the run is declared not live.
pub const HEIGHT_BUDGET_MS: u64 = 3_000;

/// The timeouts of the simulated chain (much shorter than production, same shape).
pub fn sim_timeouts() -> TimeoutParams {
    TimeoutParams {
        propose_ms: 300,
        propose_delta_ms: 100,
        prevote_ms: 150,
        prevote_delta_ms: 50,
        precommit_ms: 150,
        precommit_delta_ms: 50,
    }
}

/// What travels between simulated nodes.
#[derive(Clone, Debug)]
pub(crate) enum Packet {
    /// A consensus message.
    Consensus(Message),
    /// "I am at this height" (block-sync status).
    Status { height: u64 },
    /// Block sync: the certificate of a height the receiver is behind on.
    Certificate(CommitCertificate),
}

#[derive(Debug)]
pub(crate) enum EventKind {
    Deliver {
        to: usize,
        from: usize,
        packet: Packet,
    },
    Input {
        node: usize,
        incarnation: u32,
        input: Input,
    },
    Gossip {
        node: usize,
    },
    Crash {
        node: usize,
        down_ms: u64,
    },
    Restart {
        node: usize,
    },
    Partition(Option<Vec<u8>>),
}

#[derive(Debug)]
pub(crate) struct Event {
    at_ms: u64,
    seq: u64,
    kind: EventKind,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Event {
    /// Reversed: the heap pops the earliest event, ties broken by scheduling order.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

/// A simulated validator node.
pub(crate) struct Node {
    pub(crate) key: SecretKey,
    pub(crate) public_key: PublicKey,
    pub(crate) role: Role,
    pub(crate) up: bool,
    pub(crate) machine: Option<Consensus>,
    /// Bumped at every crash; events of an older incarnation are void.
    pub(crate) incarnation: u32,
    /// Durable: the last `Persist`.
    pub(crate) persisted: Option<PersistedState>,
    /// Durable: the certificates of the committed heights (index = height - 1).
    pub(crate) committed: Vec<CommitCertificate>,
    /// Highest height seen from each peer.
    pub(crate) peer_height: Vec<u64>,
    /// Last certificate sent to each peer: (height, time).
    pub(crate) cert_sent: Vec<(u64, u64)>,
    /// This incarnation: the first value accepted per equivocation key.
    pub(crate) accepted: BTreeMap<EquivocationKey, Option<Hash>>,
    /// This incarnation: the equivocations it reported.
    pub(crate) evidence: BTreeMap<EquivocationKey, ()>,
}

impl Node {
    pub(crate) fn observed_height(&self) -> u64 {
        self.peer_height.iter().copied().max().unwrap_or(0).max(1)
    }
}

/// Counters of one run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) events: u64,
    pub(crate) packets_sent: u64,
    pub(crate) consensus_sent: u64,
    pub(crate) broadcasts: u64,
    pub(crate) evidence: u64,
    pub(crate) crashes: u64,
    pub(crate) crashes_after_persist: u64,
    pub(crate) max_stored_items: usize,
    pub(crate) drops: BTreeMap<&'static str, u64>,
}

/// One run of the simulator.
pub(crate) struct World {
    pub(crate) scenario: Scenario,
    pub(crate) seed: u64,
    pub(crate) heights: u64,
    pub(crate) plan: Plan,
    pub(crate) rng: Rng,
    pub(crate) now_ms: u64,
    seq: u64,
    queue: BinaryHeap<Event>,
    pub(crate) validators: ValidatorSet,
    pub(crate) nodes: Vec<Node>,
    net: Network,
    /// Every block ever built, and whether it is valid.
    pub(crate) blocks: BTreeMap<Hash, bool>,
    block_nonce: u64,
    /// The first honest decision of each height.
    decisions: BTreeMap<u64, Hash>,
    /// The highest round in which an honest validator decided each height.
    pub(crate) decision_round: BTreeMap<u64, u32>,
    /// When the first honest validator started each height.
    pub(crate) height_start: BTreeMap<u64, u64>,
    /// Every message an honest validator broadcast, by position.
    honest_signed: BTreeMap<(PublicKey, SignedStep), (Option<Hash>, Option<u32>)>,
    pub(crate) unknown_key: SecretKey,
    pub(crate) stats: Stats,
    trace: u64,
    failure: Option<String>,
    /// Honest validators that have committed every height.
    done: usize,
    honest: usize,
    pub(crate) deadline_ms: u64,
    /// Heights that the round bound was checked on (see `checks.rs`).
    pub(crate) settled_heights: u64,
    /// `SIM_LOG` set: print every input and output of every validator to stderr.
    log: bool,
}

impl World {
    pub(crate) fn new(cfg: &SimConfig) -> Result<World, String> {
        let (plan, mut rng) = Plan::draw(cfg.scenario, cfg.seed, cfg.validators);
        let n = plan.roles.len();
        let keys: Vec<SecretKey> = (0..n)
            .map(|i| {
                let mut s = cfg.seed ^ (i as u64).wrapping_mul(0xA076_1D64_78BD_642F);
                let mut seed = [0u8; 32];
                for chunk in seed.chunks_mut(8) {
                    chunk.copy_from_slice(&splitmix64(&mut s).to_le_bytes());
                }
                SecretKey::from_seed(&seed)
            })
            .collect();
        let validators = ValidatorSet::new(
            keys.iter()
                .zip(&plan.powers)
                .enumerate()
                .map(|(i, (k, p))| Validator {
                    department: format!("dept-{i}"),
                    public_key: k.public_key(),
                    power: *p,
                    address: String::new(),
                })
                .collect(),
        );
        let validators = validators.map_err(|e| format!("validator set: {e}"))?;
        let net = Network::new(&plan, &mut rng);
        let nodes = keys
            .into_iter()
            .zip(&plan.roles)
            .map(|(key, role)| {
                let machine = matches!(role, Role::Honest | Role::Equivocator).then(|| {
                    Consensus::new(CHAIN_ID.into(), sim_timeouts(), Some(key.clone()), None)
                });
                Node {
                    public_key: key.public_key(),
                    key,
                    role: *role,
                    up: *role != Role::Silent,
                    machine,
                    incarnation: 0,
                    persisted: None,
                    committed: Vec::new(),
                    peer_height: vec![0; n],
                    cert_sent: vec![(0, 0); n],
                    accepted: BTreeMap::new(),
                    evidence: BTreeMap::new(),
                }
            })
            .collect::<Vec<_>>();
        let honest = plan.roles.iter().filter(|r| **r == Role::Honest).count();
        let deadline_ms = plan.gst_ms + SETTLE_MS + cfg.heights * HEIGHT_BUDGET_MS;
        Ok(World {
            scenario: cfg.scenario,
            seed: cfg.seed,
            heights: cfg.heights,
            unknown_key: SecretKey::from_seed(&[0xEE; 32]),
            plan,
            rng,
            now_ms: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            validators,
            nodes,
            net,
            blocks: BTreeMap::new(),
            block_nonce: 0,
            decisions: BTreeMap::new(),
            decision_round: BTreeMap::new(),
            height_start: BTreeMap::new(),
            honest_signed: BTreeMap::new(),
            stats: Stats::default(),
            trace: cfg.seed,
            failure: None,
            done: 0,
            honest,
            deadline_ms,
            settled_heights: 0,
            log: std::env::var_os("SIM_LOG").is_some(),
        })
    }

    pub(crate) fn fail(&mut self, reason: String) {
        if self.failure.is_none() {
            self.failure = Some(format!("t={}ms: {reason}", self.now_ms));
        }
    }

    fn schedule(&mut self, delay_ms: u64, kind: EventKind) {
        self.seq += 1;
        self.queue.push(Event {
            at_ms: self.now_ms.saturating_add(delay_ms),
            seq: self.seq,
            kind,
        });
    }

    fn schedule_input(&mut self, node: usize, delay_ms: u64, input: Input) {
        let incarnation = self.nodes[node].incarnation;
        self.schedule(
            delay_ms,
            EventKind::Input {
                node,
                incarnation,
                input,
            },
        );
    }

    pub(crate) fn send(&mut self, from: usize, to: usize, packet: Packet) {
        let delays = self.net.transit(&mut self.rng, self.now_ms, from, to);
        self.stats.packets_sent += 1;
        if matches!(packet, Packet::Consensus(_)) {
            self.stats.consensus_sent += 1;
        }
        for d in delays {
            self.schedule(
                d,
                EventKind::Deliver {
                    to,
                    from,
                    packet: packet.clone(),
                },
            );
        }
    }

    pub(crate) fn send_all(&mut self, from: usize, packet: &Packet) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, packet.clone());
            }
        }
    }

    /// Builds a block: its hash is all the simulator needs; validity is recorded.
    pub(crate) fn make_block(&mut self, node: usize, height: u64, round: u32, valid: bool) -> Hash {
        self.block_nonce += 1;
        let h = hash_parts(
            b"govledger-sim/block",
            &[
                &self.seed.to_le_bytes(),
                &(node as u64).to_le_bytes(),
                &height.to_le_bytes(),
                &round.to_le_bytes(),
                &self.block_nonce.to_le_bytes(),
            ],
        );
        self.blocks.insert(h, valid);
        h
    }

    fn mix(&mut self, words: &[u64]) {
        for w in words {
            let mut s = self.trace ^ w;
            self.trace = splitmix64(&mut s);
        }
    }

    fn trace_event(&mut self, ev: &Event) {
        let (tag, a, b, c) = match &ev.kind {
            EventKind::Deliver { to, from, packet } => {
                let c = match packet {
                    Packet::Consensus(m) => {
                        let sig = m.signature().0;
                        m.height()
                            ^ (u64::from(m.round()) << 32)
                            ^ u64::from_le_bytes([
                                sig[0], sig[1], sig[2], sig[3], sig[4], sig[5], sig[6], sig[7],
                            ])
                    }
                    Packet::Status { height } => *height,
                    Packet::Certificate(c) => c.height ^ 0xCE,
                };
                (1, *to as u64, *from as u64, c)
            }
            EventKind::Input { node, input, .. } => {
                let c = match input {
                    Input::StartHeight { height, .. } => *height,
                    Input::TimeoutElapsed(t) => t.height ^ (u64::from(t.round) << 32),
                    Input::BlockValidity { valid, .. } => u64::from(*valid),
                    Input::ProposeValue { round, .. } => u64::from(*round),
                    Input::Proposal(_) | Input::Vote(_) => 0,
                };
                (2, *node as u64, 0, c)
            }
            EventKind::Gossip { node } => (3, *node as u64, 0, 0),
            EventKind::Crash { node, down_ms } => (4, *node as u64, *down_ms, 0),
            EventKind::Restart { node } => (5, *node as u64, 0, 0),
            EventKind::Partition(g) => (6, g.as_ref().map_or(0, |g| g.len() as u64), 0, 0),
        };
        self.mix(&[ev.at_ms, tag, a, b, c]);
    }

    fn init(&mut self) {
        let n = self.nodes.len();
        for i in 0..n {
            if self.nodes[i].role == Role::Silent {
                continue;
            }
            if self.nodes[i].machine.is_some() {
                let d = self.rng.below(20);
                let validators = self.validators.clone();
                self.schedule_input(
                    i,
                    d,
                    Input::StartHeight {
                        height: 1,
                        validators,
                    },
                );
            }
            let d = self.rng.below(GOSSIP_INTERVAL_MS);
            self.schedule(d, EventKind::Gossip { node: i });
        }
        for c in self.plan.crashes.clone() {
            self.schedule(
                c.at_ms,
                EventKind::Crash {
                    node: c.node,
                    down_ms: c.down_ms,
                },
            );
        }
        for p in self.plan.partitions.clone() {
            self.schedule(p.start_ms, EventKind::Partition(Some(p.group)));
            self.schedule(p.end_ms, EventKind::Partition(None));
        }
    }

    /// Runs to completion (every honest validator committed every height), failure, or
    /// the deadline.
    pub(crate) fn run(mut self) -> Result<SimReport, SimFailure> {
        self.init();
        let mut end_ms = 0;
        while let Some(ev) = self.queue.pop() {
            if ev.at_ms > self.deadline_ms {
                break;
            }
            self.now_ms = ev.at_ms;
            self.trace_event(&ev);
            self.stats.events += 1;
            self.process(ev.kind);
            if self.failure.is_some() {
                break;
            }
            if self.done == self.honest {
                end_ms = self.now_ms;
                break;
            }
        }
        if self.failure.is_none() {
            super::checks::final_checks(&mut self);
        }
        let report = SimReport {
            scenario: self.scenario,
            seed: self.seed,
            validators: self.nodes.len(),
            roles: self.plan.roles.clone(),
            powers: self.plan.powers.clone(),
            heights: self.heights,
            gst_ms: self.plan.gst_ms,
            virtual_ms: end_ms,
            events: self.stats.events,
            packets_sent: self.stats.packets_sent,
            consensus_messages_sent: self.stats.consensus_sent,
            broadcasts: self.stats.broadcasts,
            settled_heights: self.settled_heights,
            max_decision_round: self.decision_round.values().copied().max().unwrap_or(0),
            evidence: self.stats.evidence,
            crashes: self.stats.crashes,
            crashes_after_persist: self.stats.crashes_after_persist,
            max_stored_items: self.stats.max_stored_items,
            drops: self.stats.drops.clone(),
            trace_hash: self.trace,
        };
        match self.failure {
            None => Ok(report),
            Some(reason) => Err(SimFailure {
                reason,
                report: Box::new(report),
            }),
        }
    }

    fn process(&mut self, kind: EventKind) {
        match kind {
            EventKind::Deliver { to, from, packet } => self.deliver(to, from, packet),
            EventKind::Input {
                node,
                incarnation,
                input,
            } => {
                if self.nodes[node].incarnation != incarnation || !self.nodes[node].up {
                    return;
                }
                if let Input::StartHeight { height, .. } = &input {
                    self.on_start_height(node, *height);
                }
                self.feed(node, input);
            }
            EventKind::Gossip { node } => {
                self.gossip(node);
                let d = GOSSIP_INTERVAL_MS + self.rng.below(100);
                self.schedule(d, EventKind::Gossip { node });
            }
            EventKind::Crash { node, down_ms } => {
                if self.nodes[node].up && self.nodes[node].role == Role::Honest {
                    self.crash(node);
                    self.schedule(down_ms, EventKind::Restart { node });
                }
            }
            EventKind::Restart { node } => self.restart(node),
            EventKind::Partition(g) => self.net.set_partition(g),
        }
    }

    fn on_start_height(&mut self, node: usize, height: u64) {
        let role = self.nodes[node].role;
        let now = self.now_ms;
        if role == Role::Honest {
            self.height_start.entry(height).or_insert(now);
        }
        let n = &mut self.nodes[node];
        n.accepted.retain(|k, _| k.height >= height);
        n.evidence.retain(|k, _| k.height >= height);
        self.send_all(node, &Packet::Status { height });
    }

    fn crash(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.up = false;
        n.machine = None;
        n.incarnation += 1;
        n.accepted.clear();
        n.evidence.clear();
        self.stats.crashes += 1;
    }

    fn restart(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        if n.up {
            return;
        }
        n.up = true;
        n.machine = Some(Consensus::new(
            CHAIN_ID.into(),
            sim_timeouts(),
            Some(n.key.clone()),
            n.persisted.clone(),
        ));
        let height = n.committed.len() as u64 + 1;
        let validators = self.validators.clone();
        self.on_start_height(node, height);
        self.feed(node, Input::StartHeight { height, validators });
    }

    fn gossip(&mut self, node: usize) {
        if !self.nodes[node].up {
            return;
        }
        match self.nodes[node].role {
            Role::Honest | Role::Equivocator => {
                let Some(m) = self.nodes[node].machine.as_ref() else {
                    return;
                };
                let own = m.rebroadcast();
                let height = m.height().unwrap_or(1);
                for msg in own {
                    self.send_all(node, &Packet::Consensus(msg));
                }
                self.send_all(node, &Packet::Status { height });
            }
            Role::Garbage => self.send_garbage(node),
            Role::Silent => {}
        }
    }

    fn deliver(&mut self, to: usize, from: usize, packet: Packet) {
        if !self.nodes[to].up {
            return;
        }
        match packet {
            Packet::Consensus(m) => {
                let h = &mut self.nodes[to].peer_height[from];
                *h = (*h).max(m.height());
                self.deliver_message(to, m);
            }
            Packet::Status { height } => {
                let h = &mut self.nodes[to].peer_height[from];
                *h = (*h).max(height);
                self.answer_status(to, from, height);
            }
            Packet::Certificate(cert) => {
                let at_height = self.nodes[to].machine.as_ref().and_then(Consensus::height);
                if at_height == Some(cert.height) {
                    for v in certificate_votes(&cert) {
                        self.deliver_message(to, Message::Vote(v));
                    }
                }
            }
        }
    }

    /// Block sync: an honest node sends the certificate of the height a peer is at, if it
    /// committed it (at most once per 200 ms per peer and height).
    fn answer_status(&mut self, me: usize, peer: usize, height: u64) {
        let n = &self.nodes[me];
        if n.role != Role::Honest || height == 0 || height > n.committed.len() as u64 {
            return;
        }
        let (last_h, last_t) = n.cert_sent[peer];
        if last_h == height && self.now_ms < last_t + 200 {
            return;
        }
        let cert = n.committed[(height - 1) as usize].clone();
        self.nodes[me].cert_sent[peer] = (height, self.now_ms);
        self.send(me, peer, Packet::Certificate(cert));
    }

    /// Hands a message to a node's machine and checks accountability: a node that accepted
    /// two conflicting messages of one validator for one step must have produced evidence.
    fn deliver_message(&mut self, node: usize, m: Message) {
        let Some(machine) = self.nodes[node].machine.as_ref() else {
            return;
        };
        let height_before = machine.height();
        let input = match &m {
            Message::Proposal(p) => Input::Proposal(p.clone()),
            Message::Vote(v) => Input::Vote(v.clone()),
        };
        let outs = self.handle(node, input);
        if self.nodes[node].role == Role::Honest && height_before == Some(m.height()) {
            let rejected = outs.iter().any(|o| {
                matches!(o, Output::Dropped { reason }
                    if !matches!(reason, ConsensusError::DoubleSignPrevented { .. }))
            });
            if !rejected {
                let key = equivocation_key(&m);
                let value = m.block_hash();
                match self.nodes[node].accepted.get(&key).copied() {
                    None => {
                        self.nodes[node].accepted.insert(key, value);
                    }
                    Some(first) if first != value => {
                        let reported = self.nodes[node].evidence.contains_key(&key)
                            || outs
                                .iter()
                                .any(|o| matches!(o, Output::Evidence(e) if e.key() == key));
                        if !reported {
                            self.fail(format!(
                                "accountability: validator {node} accepted two conflicting messages for {key:?} and produced no evidence"
                            ));
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        self.apply(node, outs);
    }

    /// `handle` plus the memory-bound check.
    fn handle(&mut self, node: usize, input: Input) -> Vec<Output> {
        let n = self.nodes.len();
        let Some(machine) = self.nodes[node].machine.as_mut() else {
            return Vec::new();
        };
        let summary = self.log.then(|| summarize_input(&input));
        let outs = machine.handle(input);
        if let Some(summary) = summary {
            eprintln!(
                "{:>7} v{node} h{:?} r{:?} {:?} <- {summary}",
                self.now_ms,
                machine.height(),
                machine.round(),
                machine.step()
            );
            for o in &outs {
                eprintln!("{:>7} v{node}    -> {}", self.now_ms, summarize_output(o));
            }
        }
        let stored = machine.stored_items();
        self.stats.max_stored_items = self.stats.max_stored_items.max(stored);
        if stored > Consensus::stored_items_bound(n) {
            self.fail(format!(
                "memory: validator {node} stores {stored} items, above the bound {}",
                Consensus::stored_items_bound(n)
            ));
        }
        outs
    }

    fn feed(&mut self, node: usize, input: Input) {
        let outs = self.handle(node, input);
        self.apply(node, outs);
    }

    /// Carries out a batch of outputs in order, as the node would.
    fn apply(&mut self, node: usize, outs: Vec<Output>) {
        for o in outs {
            if !self.nodes[node].up {
                // Crashed in the middle of the batch: the rest never happened.
                return;
            }
            match o {
                Output::Persist(s) => {
                    self.nodes[node].persisted = Some(s);
                    if self.nodes[node].role == Role::Honest
                        && self.now_ms < self.plan.gst_ms
                        && self.rng.chance(self.plan.crash_after_persist_prob)
                    {
                        self.crash(node);
                        self.stats.crashes_after_persist += 1;
                        let gst = self.plan.gst_ms;
                        let at =
                            (self.now_ms + self.rng.range(50, 2_000)).min(gst.max(self.now_ms + 1));
                        let d = at - self.now_ms;
                        self.schedule(d, EventKind::Restart { node });
                        return;
                    }
                }
                Output::Broadcast(m) => self.on_broadcast(node, m),
                Output::ScheduleTimeout(t) => {
                    self.schedule_input(node, t.duration_ms, Input::TimeoutElapsed(t));
                }
                Output::RequestProposal { height, round } => {
                    let valid = self.nodes[node].role == Role::Honest
                        || !self.rng.chance(self.plan.invalid_block_prob);
                    let block_hash = self.make_block(node, height, round, valid);
                    let d = self.rng.range(1, 10);
                    self.schedule_input(
                        node,
                        d,
                        Input::ProposeValue {
                            height,
                            round,
                            block_hash,
                        },
                    );
                }
                Output::ValidateBlock { block_hash, .. } => {
                    // A block never built (a garbage hash) does not execute: invalid.
                    let valid = self.blocks.get(&block_hash).copied().unwrap_or(false);
                    let d = self.rng.range(1, 5);
                    self.schedule_input(node, d, Input::BlockValidity { block_hash, valid });
                }
                Output::Decide {
                    height,
                    round,
                    block_hash,
                    certificate,
                } => self.on_decide(node, height, round, block_hash, certificate),
                Output::Evidence(e) => self.on_evidence(node, e),
                Output::Dropped { reason } => {
                    *self.stats.drops.entry(reason.label()).or_insert(0) += 1;
                }
            }
        }
    }

    fn on_broadcast(&mut self, node: usize, m: Message) {
        self.stats.broadcasts += 1;
        match self.nodes[node].role {
            Role::Honest => {
                let pos = SignedStep {
                    height: m.height(),
                    round: m.round(),
                    step: m.step(),
                };
                let persisted = self.nodes[node]
                    .persisted
                    .as_ref()
                    .and_then(|p| p.last_signed);
                if persisted.is_none_or(|p| p < pos) {
                    self.fail(format!(
                        "signing safety: validator {node} broadcast {pos:?} before persisting it (persisted {persisted:?})"
                    ));
                }
                let pol = match &m {
                    Message::Proposal(p) => p.pol_round,
                    Message::Vote(_) => None,
                };
                let value = (m.block_hash(), pol);
                let pk = self.nodes[node].public_key;
                match self.honest_signed.get(&(pk, pos)) {
                    None => {
                        self.honest_signed.insert((pk, pos), value);
                    }
                    Some(prev) if *prev != value => {
                        let prev = *prev;
                        self.fail(format!(
                            "double sign: honest validator {node} signed {value:?} and {prev:?} at {pos:?}"
                        ));
                    }
                    Some(_) => {}
                }
                self.send_all(node, &Packet::Consensus(m));
            }
            Role::Equivocator => self.equivocate(node, m),
            Role::Silent | Role::Garbage => {}
        }
    }

    fn on_decide(
        &mut self,
        node: usize,
        height: u64,
        round: u32,
        block_hash: Hash,
        certificate: CommitCertificate,
    ) {
        if self.nodes[node].role == Role::Honest {
            if let Err(e) = certificate.verify(CHAIN_ID, height, &block_hash, &self.validators) {
                self.fail(format!(
                    "certificate: validator {node} decided height {height} with a certificate that does not verify: {e}"
                ));
            }
            match self.blocks.get(&block_hash) {
                Some(true) => {}
                Some(false) => self.fail(format!(
                    "validity: validator {node} decided the invalid block {block_hash} at height {height}"
                )),
                None => self.fail(format!(
                    "validity: validator {node} decided {block_hash} at height {height}, which was never proposed"
                )),
            }
            match self.decisions.get(&height) {
                None => {
                    self.decisions.insert(height, block_hash);
                }
                Some(prev) if *prev != block_hash => {
                    let prev = *prev;
                    self.fail(format!(
                        "agreement: validator {node} decided {block_hash} at height {height}, another honest validator decided {prev}"
                    ));
                }
                Some(_) => {}
            }
            let r = self.decision_round.entry(height).or_insert(0);
            *r = (*r).max(round);
            self.mix(&[height, u64::from(round), node as u64]);
        }
        let n = &mut self.nodes[node];
        if height == n.committed.len() as u64 + 1 {
            n.committed.push(certificate);
            if n.role == Role::Honest && height == self.heights {
                self.done += 1;
            }
        }
        let d = self.rng.range(1, 10);
        let validators = self.validators.clone();
        self.schedule_input(
            node,
            d,
            Input::StartHeight {
                height: height + 1,
                validators,
            },
        );
    }

    fn on_evidence(&mut self, node: usize, e: Evidence) {
        self.stats.evidence += 1;
        if self.nodes[node].role != Role::Honest {
            return;
        }
        if let Err(err) = e.verify(CHAIN_ID) {
            self.fail(format!(
                "evidence from validator {node} does not verify: {err}"
            ));
        }
        let key = e.key();
        let accused = self
            .nodes
            .iter()
            .position(|n| n.public_key == key.validator);
        match accused {
            Some(i) if self.nodes[i].role != Role::Honest => {}
            _ => self.fail(format!(
                "evidence from validator {node} names {:?}, which is honest or unknown",
                key.validator
            )),
        }
        self.nodes[node].evidence.insert(key, ());
    }

    /// The number of consecutive rounds, from round 0 of `height`, whose proposer is not
    /// honest.
    pub(crate) fn faulty_proposer_run(&self, height: u64) -> u32 {
        let mut run = 0u32;
        while run < 1_000 {
            let p = self.validators.proposer(height, run).public_key;
            let honest = self
                .nodes
                .iter()
                .any(|n| n.public_key == p && n.role == Role::Honest);
            if honest {
                break;
            }
            run += 1;
        }
        run
    }

    /// Honest validators and the heights they committed.
    pub(crate) fn honest_progress(&self) -> Vec<(usize, u64)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.role == Role::Honest)
            .map(|(i, n)| (i, n.committed.len() as u64))
            .collect()
    }
}

/// The equivocation key a message belongs to.
pub(crate) fn equivocation_key(m: &Message) -> EquivocationKey {
    EquivocationKey {
        validator: m.signer(),
        height: m.height(),
        round: m.round(),
        step: match m.step() {
            Step::Propose => 0,
            Step::Prevote => 1,
            Step::Precommit => 2,
        },
    }
}

fn short(h: &Option<Hash>) -> String {
    h.map_or_else(|| "nil".to_string(), |h| h.to_hex()[..6].to_string())
}

fn summarize_message(m: &Message) -> String {
    match m {
        Message::Proposal(p) => format!(
            "Proposal(h{} r{} pol{:?} {} by {})",
            p.height,
            p.round,
            p.pol_round,
            short(&Some(p.block_hash)),
            &p.proposer.to_hex()[..6]
        ),
        Message::Vote(v) => format!(
            "{:?}(h{} r{} {} by {})",
            v.vote_type,
            v.height,
            v.round,
            short(&v.block_hash),
            &v.validator.to_hex()[..6]
        ),
    }
}

fn summarize_input(i: &Input) -> String {
    match i {
        Input::StartHeight { height, .. } => format!("StartHeight({height})"),
        Input::Proposal(p) => summarize_message(&Message::Proposal(p.clone())),
        Input::Vote(v) => summarize_message(&Message::Vote(v.clone())),
        Input::BlockValidity { block_hash, valid } => {
            format!("BlockValidity({} {valid})", short(&Some(*block_hash)))
        }
        Input::ProposeValue {
            height,
            round,
            block_hash,
        } => format!(
            "ProposeValue(h{height} r{round} {})",
            short(&Some(*block_hash))
        ),
        Input::TimeoutElapsed(t) => format!("Timeout({:?} h{} r{})", t.step, t.height, t.round),
    }
}

fn summarize_output(o: &Output) -> String {
    match o {
        Output::Persist(s) => format!(
            "Persist(h{} r{} {:?} locked {:?} valid {:?})",
            s.height,
            s.round,
            s.step,
            s.locked.map(|l| (l.round, short(&Some(l.block_hash)))),
            s.valid.map(|l| (l.round, short(&Some(l.block_hash))))
        ),
        Output::Broadcast(m) => format!("Broadcast {}", summarize_message(m)),
        Output::ScheduleTimeout(t) => {
            format!("Schedule({:?} r{} {}ms)", t.step, t.round, t.duration_ms)
        }
        Output::RequestProposal { round, .. } => format!("RequestProposal(r{round})"),
        Output::ValidateBlock {
            block_hash, round, ..
        } => {
            format!("ValidateBlock(r{round} {})", short(&Some(*block_hash)))
        }
        Output::Decide {
            round, block_hash, ..
        } => {
            format!("DECIDE(r{round} {})", short(&Some(*block_hash)))
        }
        Output::Evidence(e) => format!("Evidence({:?})", e.key()),
        Output::Dropped { reason } => format!("Dropped({})", reason.label()),
    }
}
