//! The network actor: owns the swarm and runs the only `select!` loop of the network.

use super::behaviour::{Behaviour, BehaviourEvent};
use super::codec::{GossipFrame, SyncAsk, codec_error};
use super::events::{Dropped, EventSender};
use super::ingress::{Control, Mailbox, Outbound, Shared};
use super::state::{
    GOSSIP_BYTES_PER_PEER_MAX, GOSSIP_WAITING_PER_PEER_MAX, PeerGuard, PeerQueue, Push, Redialer,
    Verdict,
};
use super::{
    EVENTS_BACKLOG_MAX, EVENTS_BYTES_MAX, NetError, NetEvent, Result, allowed_peers, peer_id_of,
};
use crate::app::PeerInfo;
use crate::messages::{
    GossipMsg, SYNC_BLOCKS_MAX, SYNC_RESPONSE_BYTES_MAX, SYNC_RESPONSE_BYTES_TARGET, SyncRequest,
    SyncResponse,
};
use crate::metrics::Metrics;
use futures::StreamExt;
use ledger::PublicKey;
use ledger::store::{Store, StoreError};
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, ping};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// Period of the housekeeping tick: due redials, expired bans.
pub const TICK_INTERVAL: Duration = Duration::from_millis(250);
/// A connection without a successful ping for this long is closed as dead. libp2p's ping
/// alone reports a silent peer only after two failures, one of which waits for the 10 s
/// stream negotiation timeout; with pings every `PING_INTERVAL` (1 s) this detects a paused
/// or cut-off peer in 5–5.25 s.
pub const LIVENESS_TIMEOUT: Duration = Duration::from_secs(5);
/// Sync requests we have sent and not yet seen answered.
pub const SYNC_PENDING_MAX: usize = 64;
/// Sync requests served at once (each reads up to `SYNC_RESPONSE_BYTES_MAX` from the store
/// on the blocking pool); requests beyond this are refused.
pub const SYNC_SERVING_MAX: usize = 4;

type Served = (
    PeerId,
    ResponseChannel<SyncResponse>,
    Result<SyncResponse, StoreError>,
);

/// One input of the loop.
#[allow(
    clippy::large_enum_variant,
    reason = "a short-lived local, handled at once; boxing would allocate per event"
)]
enum Input {
    Swarm(SwarmEvent<BehaviourEvent>),
    Control(Control),
    Outbound(Outbound),
    AllowedChanged,
    Served(Result<Served, tokio::task::JoinError>),
    Tick,
}

/// What [`Actor::new`] takes.
pub struct Parts {
    pub swarm: Swarm<Behaviour>,
    pub mailbox: Mailbox,
    pub events: EventSender,
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub shared: Arc<Shared>,
    pub allowed: HashMap<PeerId, PublicKey>,
    pub bootstrap: Vec<Multiaddr>,
}

/// The actor.
pub struct Actor {
    swarm: Swarm<Behaviour>,
    mailbox: Mailbox,
    /// Events to the core, bounded by count and bytes (see [`super::events`]).
    events: EventSender,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    shared: Arc<Shared>,
    allowed: HashMap<PeerId, PublicKey>,
    /// Peers with at least one established connection.
    connected: BTreeMap<PeerId, PublicKey>,
    guard: PeerGuard,
    redialer: Redialer,
    /// Gossip in flight and waiting, per connected peer.
    out_queues: HashMap<PeerId, PeerQueue>,
    /// Gossip in flight: its peer and its length (released from the peer's queue when done).
    gossip_sent: HashMap<OutboundRequestId, (PeerId, usize)>,
    sync_pending: HashMap<OutboundRequestId, (PublicKey, oneshot::Sender<Result<SyncResponse>>)>,
    serving: JoinSet<Served>,
    /// Last sign of life (establishment or successful ping) of each connection.
    alive: HashMap<ConnectionId, (PeerId, Instant)>,
}

impl Actor {
    /// An actor over a listening swarm.
    pub fn new(p: Parts) -> Self {
        let redialer = Redialer::new(&p.bootstrap, *p.swarm.local_peer_id(), Instant::now());
        Actor {
            swarm: p.swarm,
            mailbox: p.mailbox,
            events: p.events,
            store: p.store,
            metrics: p.metrics,
            shared: p.shared,
            allowed: p.allowed,
            connected: BTreeMap::new(),
            guard: PeerGuard::default(),
            redialer,
            out_queues: HashMap::new(),
            gossip_sent: HashMap::new(),
            sync_pending: HashMap::new(),
            serving: JoinSet::new(),
            alive: HashMap::new(),
        }
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        let mut tick = tokio::time::interval(TICK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The branches only pick the input; handling it needs the whole actor.
            let input = tokio::select! {
                ev = self.swarm.select_next_some() => Input::Swarm(ev),
                cmd = self.mailbox.control.recv() => match cmd {
                    Some(cmd) => Input::Control(cmd),
                    None => break,
                },
                out = self.mailbox.outbound.recv() => match out {
                    Some(out) => Input::Outbound(out),
                    None => break,
                },
                changed = self.mailbox.allowed.changed() => match changed {
                    Ok(()) => Input::AllowedChanged,
                    Err(_) => break,
                },
                Some(done) = self.serving.join_next(), if !self.serving.is_empty() => {
                    Input::Served(done)
                }
                // A core that is gone leaves the backlog cleared (nobody will read it).
                _ = self.events.flush_one(), if self.events.has_backlog() => continue,
                _ = tick.tick() => Input::Tick,
            };
            match input {
                Input::Swarm(ev) => self.on_swarm_event(ev),
                Input::Control(cmd) => self.on_control(cmd),
                Input::Outbound(out) => self.on_outbound(out),
                Input::AllowedChanged => self.on_allowed_changed(),
                Input::Served(Ok(served)) => self.on_served(served),
                Input::Served(Err(e)) => error!(error = %e, "sync serving task failed"),
                Input::Tick => self.on_tick(),
            }
        }
        info!("network stopped");
    }

    // ---- events to the core ----

    /// Queues an event for the core; `bytes` is its frame's length (0 for connection events).
    fn emit(&mut self, ev: NetEvent, bytes: usize) {
        if let Err(why) = self.events.emit(ev, bytes) {
            self.shared.dropped_inbound.fetch_add(1, Ordering::Relaxed);
            match why {
                Dropped::Count => warn!(
                    backlog = EVENTS_BACKLOG_MAX,
                    "core is not reading network events, event dropped"
                ),
                Dropped::Bytes => warn!(
                    bytes,
                    bytes_max = EVENTS_BYTES_MAX,
                    "network events waiting for the core exceed their byte bound, event dropped"
                ),
            }
        }
    }

    fn publish_peers(&self) {
        let peers = self
            .connected
            .iter()
            .map(|(pid, key)| PeerInfo {
                key: *key,
                peer_id: pid.to_string(),
            })
            .collect::<Vec<_>>();
        self.metrics.peers.set(peers.len() as i64);
        self.shared.set_peers(peers);
    }

    // ---- misbehaviour ----

    /// One strike against `peer`; bans and disconnects it at the threshold.
    fn strike(&mut self, peer: PeerId, reason: &str) {
        let key = self.key_of(&peer);
        match self.guard.strike(peer, Instant::now()) {
            Verdict::Counted(strikes) => {
                debug!(peer = %key, %peer, reason, strikes, "strike");
            }
            Verdict::Ban(until) => {
                self.swarm.behaviour_mut().gate.ban(peer, until);
                let _ = self.swarm.disconnect_peer_id(peer);
                warn!(
                    peer = %key,
                    %peer,
                    reason,
                    ban_secs = until.saturating_duration_since(Instant::now()).as_secs(),
                    "peer banned"
                );
            }
        }
    }

    /// An invalid message from `peer`: counted and struck.
    fn invalid(&mut self, peer: PeerId, reason: &str) {
        self.metrics.peer_messages_invalid.inc();
        self.strike(peer, reason);
    }

    fn key_of(&self, peer: &PeerId) -> String {
        self.connected
            .get(peer)
            .or_else(|| self.allowed.get(peer))
            .map_or_else(|| "unknown".to_owned(), |k| k.to_string())
    }

    // ---- swarm ----

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        let now = Instant::now();
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossip(ev)) => self.on_gossip_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => self.on_sync_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result,
            })) => {
                match result {
                    Ok(_) => {
                        if let Some((_, t)) = self.alive.get_mut(&connection) {
                            *t = now;
                        }
                    }
                    // Every node of ours answers pings; a peer that does not is merely
                    // not watched for liveness.
                    Err(ping::Failure::Unsupported) => {
                        debug!(peer = %self.key_of(&peer), "peer does not support ping");
                        self.alive.remove(&connection);
                    }
                    Err(e) => {
                        warn!(peer = %self.key_of(&peer), error = %e, "ping failed, closing connection");
                        self.swarm.close_connection(connection);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gate(never)) => match never {},
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                self.redialer.connected(connection_id, peer_id, now);
                self.alive.insert(connection_id, (peer_id, now));
                let Some(key) = self.allowed.get(&peer_id).copied() else {
                    // The gate refuses these; this only covers an allowed set that changed
                    // while the connection was being set up.
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                };
                debug!(peer = %key, %peer_id, addr = %endpoint.get_remote_address(), connections = num_established.get(), "connection established");
                if self.connected.insert(peer_id, key).is_none() {
                    info!(peer = %key, %peer_id, addr = %endpoint.get_remote_address(), "peer connected");
                    self.publish_peers();
                    self.emit(NetEvent::PeerConnected(key), 0);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.alive.remove(&connection_id);
                if num_established > 0 {
                    return;
                }
                self.redialer.disconnected(peer_id, now);
                self.guard.disconnected(&peer_id);
                self.out_queues.remove(&peer_id);
                self.gossip_sent.retain(|_, (p, _)| *p != peer_id);
                if let Some(key) = self.connected.remove(&peer_id) {
                    info!(peer = %key, %peer_id, cause = ?cause.map(|c| c.to_string()), "peer disconnected");
                    self.publish_peers();
                    self.emit(NetEvent::PeerDisconnected(key), 0);
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let DialError::LocalPeerId { address } = &error {
                    info!(%address, "bootstrap address is this node, not dialled again");
                    self.redialer.dialled_myself(connection_id);
                    return;
                }
                if let Some(i) = self.redialer.dial_failed(connection_id, now) {
                    let addr = &self.redialer.targets()[i].addr;
                    debug!(%addr, ?peer_id, error = %error, "dial failed");
                }
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                peer_id,
                error,
                ..
            } => {
                debug!(addr = %send_back_addr, ?peer_id, error = %error, "inbound connection refused or failed");
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.shared.add_listen_addr(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.shared.remove_listen_addr(&address);
            }
            SwarmEvent::ListenerError { error, .. } => {
                error!(error = %error, "p2p listener error");
            }
            SwarmEvent::ListenerClosed {
                reason, addresses, ..
            } => {
                error!(?addresses, reason = ?reason.err().map(|e| e.to_string()), "p2p listener closed");
            }
            _ => {}
        }
    }

    fn on_gossip_event(&mut self, ev: request_response::Event<GossipFrame, ()>) {
        match ev {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if let GossipFrame::Invalid(e) = &request {
                    // No ack: dropping the channel closes the stream.
                    let reason = e.to_string();
                    warn!(peer = %self.key_of(&peer), %peer, reason, "invalid gossip dropped");
                    self.invalid(peer, &reason);
                    return;
                }
                // Acknowledge at once: the ack means "read", not "accepted".
                let _ = self.swarm.behaviour_mut().gossip.send_response(channel, ());
                self.on_gossip(peer, request);
            }
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, .. },
                ..
            } => self.gossip_done(request_id),
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.gossip_done(request_id);
                if let OutboundFailure::Io(e) = &error
                    && codec_error(e).is_some()
                {
                    self.invalid(peer, "malformed gossip ack");
                }
                debug!(peer = %self.key_of(&peer), error = %error, "gossip not delivered");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(peer = %self.key_of(&peer), error = %error, "inbound gossip failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn gossip_done(&mut self, id: OutboundRequestId) {
        if let Some((peer, len)) = self.gossip_sent.remove(&id)
            && self.connected.contains_key(&peer)
            && let Some(next) = self.out_queues.get_mut(&peer).and_then(|q| q.done(len))
        {
            self.send_gossip_now(peer, next);
        }
    }

    fn on_gossip(&mut self, peer: PeerId, frame: GossipFrame) {
        // Only connected allowed peers get here (the gate); the check is a second fence.
        let Some(key) = self.connected.get(&peer).copied() else {
            return;
        };
        if !self.guard.allow_gossip(peer, Instant::now()) {
            self.invalid(peer, "gossip rate exceeded");
            return;
        }
        let (msg, len) = match frame {
            GossipFrame::Decoded(msg, len) => (msg, len),
            // The codec always decodes; kept total rather than trusted.
            GossipFrame::Encoded(bytes) => match GossipMsg::decode(&bytes) {
                Ok(msg) => (msg, bytes.len()),
                Err(e) => {
                    self.invalid(peer, &e.to_string());
                    return;
                }
            },
            GossipFrame::Invalid(e) => {
                self.invalid(peer, &e.to_string());
                return;
            }
        };
        self.emit(NetEvent::Gossip { from: key, msg }, len);
    }

    fn on_sync_event(&mut self, ev: request_response::Event<SyncAsk, SyncResponse>) {
        match ev {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_sync_request(peer, request, channel),
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((key, reply)) = self.sync_pending.remove(&request_id) {
                    debug!(peer = %key, %peer, blocks = response.blocks.len(), tip = response.tip_height, "sync response");
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let OutboundFailure::Io(e) = &error
                    && let Some(ce) = codec_error(e)
                {
                    let reason = ce.to_string();
                    warn!(peer = %self.key_of(&peer), %peer, reason, "invalid sync response");
                    self.invalid(peer, &reason);
                }
                if let Some((key, reply)) = self.sync_pending.remove(&request_id) {
                    let err = match error {
                        OutboundFailure::Timeout => NetError::Timeout { peer: key },
                        other => NetError::Request {
                            peer: key,
                            reason: other.to_string(),
                        },
                    };
                    let _ = reply.send(Err(err));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(peer = %self.key_of(&peer), error = %error, "sync request not answered");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_sync_request(
        &mut self,
        peer: PeerId,
        ask: SyncAsk,
        channel: ResponseChannel<SyncResponse>,
    ) {
        let Some(key) = self.connected.get(&peer).copied() else {
            return;
        };
        let req = match ask {
            SyncAsk::Valid(req) => req,
            SyncAsk::Invalid(reason) => {
                warn!(peer = %key, %peer, reason, "invalid sync request dropped");
                self.invalid(peer, &reason);
                return;
            }
        };
        if !self.guard.allow_sync(peer, Instant::now()) {
            self.invalid(peer, "sync request rate exceeded");
            return;
        }
        if self.serving.len() >= SYNC_SERVING_MAX {
            // Dropping the channel tells the requester at once; it will ask someone else.
            debug!(peer = %key, serving = SYNC_SERVING_MAX, "sync request refused: busy");
            return;
        }
        debug!(peer = %key, from = req.from_height, count = req.count, "serving sync request");
        let store = self.store.clone();
        self.serving
            .spawn_blocking(move || (peer, channel, serve_blocks(&store, req)));
    }

    fn on_served(&mut self, (peer, channel, res): Served) {
        match res {
            Ok(resp) => {
                if self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, resp)
                    .is_err()
                {
                    debug!(peer = %self.key_of(&peer), "sync response not sent: requester gone");
                }
            }
            Err(e) => {
                error!(peer = %self.key_of(&peer), error = %e, "cannot read blocks to serve a sync request")
            }
        }
    }

    // ---- mailbox ----

    fn on_control(&mut self, cmd: Control) {
        match cmd {
            Control::RequestBlocks { peer, req, reply } => {
                let res = self.request_blocks(peer, req);
                if let Err(e) = res {
                    let _ = reply.send(Err(e));
                } else if let Ok(id) = res {
                    self.sync_pending.insert(id, (peer, reply));
                }
            }
            Control::ReportInvalid { peer, reason } => {
                warn!(peer = %peer, reason, "peer sent an invalid message");
                match peer_id_of(&peer) {
                    Ok(pid) => self.invalid(pid, &reason),
                    Err(e) => {
                        debug!(peer = %peer, error = %e, "strike against an invalid key ignored")
                    }
                }
            }
        }
    }

    fn request_blocks(&mut self, peer: PublicKey, req: SyncRequest) -> Result<OutboundRequestId> {
        let pid = peer_id_of(&peer)?;
        if !self.connected.contains_key(&pid) {
            return Err(NetError::NotConnected { peer });
        }
        if self.sync_pending.len() >= SYNC_PENDING_MAX {
            return Err(NetError::Busy {
                max: SYNC_PENDING_MAX,
            });
        }
        debug!(peer = %peer, from = req.from_height, count = req.count, "sync request");
        Ok(self
            .swarm
            .behaviour_mut()
            .sync
            .send_request(&pid, SyncAsk::Valid(req)))
    }

    fn on_outbound(&mut self, out: Outbound) {
        // Out of the mailbox: its bytes now count against the peers' queues instead.
        self.shared
            .outbound_bytes
            .fetch_sub(out.bytes().len(), Ordering::AcqRel);
        match out {
            Outbound::Broadcast(bytes) => {
                let peers: Vec<PeerId> = self.connected.keys().copied().collect();
                for pid in peers {
                    self.send_gossip(pid, bytes.clone());
                }
            }
            Outbound::SendTo(key, bytes) => match peer_id_of(&key) {
                Ok(pid) if self.connected.contains_key(&pid) => self.send_gossip(pid, bytes),
                _ => debug!(peer = %key, "gossip to a peer that is not connected dropped"),
            },
        }
    }

    fn send_gossip(&mut self, peer: PeerId, bytes: Arc<[u8]>) {
        match self.out_queues.entry(peer).or_default().push(bytes) {
            Push::Send(bytes) => self.send_gossip_now(peer, bytes),
            Push::Queued => {}
            Push::Full => {
                self.shared.dropped_outbound.fetch_add(1, Ordering::Relaxed);
                warn!(
                    peer = %self.key_of(&peer),
                    waiting_max = GOSSIP_WAITING_PER_PEER_MAX,
                    bytes_max = GOSSIP_BYTES_PER_PEER_MAX,
                    "peer not keeping up with gossip, message dropped"
                );
            }
        }
    }

    fn send_gossip_now(&mut self, peer: PeerId, bytes: Arc<[u8]>) {
        let len = bytes.len();
        let id = self
            .swarm
            .behaviour_mut()
            .gossip
            .send_request(&peer, GossipFrame::Encoded(bytes));
        self.gossip_sent.insert(id, (peer, len));
    }

    fn on_allowed_changed(&mut self) {
        let keys = self.mailbox.allowed.borrow_and_update().clone();
        self.allowed = allowed_peers(&keys);
        self.swarm
            .behaviour_mut()
            .gate
            .set_allowed(self.allowed.keys().copied().collect());
        let gone: Vec<(PeerId, PublicKey)> = self
            .connected
            .iter()
            .filter(|(pid, _)| !self.allowed.contains_key(pid))
            .map(|(p, k)| (*p, *k))
            .collect();
        info!(
            allowed = self.allowed.len(),
            removed = gone.len(),
            "allowed peers updated"
        );
        for (pid, key) in gone {
            info!(peer = %key, %pid, "peer no longer allowed, disconnecting");
            let _ = self.swarm.disconnect_peer_id(pid);
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for peer in self.guard.expire(now) {
            self.swarm.behaviour_mut().gate.unban(&peer);
        }
        let dead: Vec<(ConnectionId, PeerId)> = self
            .alive
            .iter()
            .filter(|(_, (_, t))| now.saturating_duration_since(*t) >= LIVENESS_TIMEOUT)
            .map(|(c, (p, _))| (*c, *p))
            .collect();
        for (connection, peer) in dead {
            warn!(
                peer = %self.key_of(&peer),
                %connection,
                silent_secs = LIVENESS_TIMEOUT.as_secs(),
                "no ping answered, closing connection"
            );
            self.alive.remove(&connection);
            self.swarm.close_connection(connection);
        }
        let connected = &self.connected;
        let due = self.redialer.due(now, |p| connected.contains_key(p));
        for i in due {
            let target = &self.redialer.targets()[i];
            let opts = match target.peer {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![target.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
                None => DialOpts::unknown_peer_id()
                    .address(target.addr.clone())
                    .build(),
            };
            let id = opts.connection_id();
            let addr = target.addr.clone();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    debug!(%addr, "dialling");
                    self.redialer.dialing(i, id);
                }
                Err(e) => {
                    debug!(%addr, error = %e, "dial not started");
                    self.redialer.failed(i, now);
                }
            }
        }
    }
}

/// Committed blocks from `req.from_height`: at most `min(req.count, SYNC_BLOCKS_MAX)`, and
/// stopping before the encoded response would exceed `SYNC_RESPONSE_BYTES_MAX` or once it
/// reaches `SYNC_RESPONSE_BYTES_TARGET` (but always at least one block if there is one).
pub fn serve_blocks(store: &Store, req: SyncRequest) -> Result<SyncResponse, StoreError> {
    let tip_height = store.stored_tip()?.height;
    let mut resp = SyncResponse {
        tip_height,
        blocks: Vec::new(),
    };
    let mut bytes = ledger::codec::encode(&resp).len();
    for i in 0..u64::from(req.count.min(SYNC_BLOCKS_MAX)) {
        let Some(height) = req.from_height.checked_add(i) else {
            break;
        };
        if height > tip_height {
            break;
        }
        let Some(block) = store.committed_block(height)? else {
            break;
        };
        let len = ledger::codec::encode(&block).len();
        if !resp.blocks.is_empty() && bytes + len > SYNC_RESPONSE_BYTES_MAX {
            break;
        }
        bytes += len;
        resp.blocks.push(block);
        if bytes >= SYNC_RESPONSE_BYTES_TARGET {
            break;
        }
    }
    Ok(resp)
}
