//! The libp2p behaviour: the connection [`Gate`] (allow-list, bans, connection limits),
//! ping for liveness, and the two request-response protocols.

use super::codec::{GOSSIP_PROTOCOL, GossipCodec, SYNC_PROTOCOL, SyncCodec};
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};
use libp2p::{Multiaddr, PeerId, ping, request_response};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Interval between pings on a connection.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// A ping unanswered for this long fails. (libp2p's ping forgives the first failure and
/// may wait out a 10 s stream negotiation, so the actor enforces its own
/// `LIVENESS_TIMEOUT` on top.)
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Concurrent gossip streams per connection (inbound and outbound together); further ones
/// are refused by libp2p.
pub const GOSSIP_STREAMS_MAX: usize = 256;
/// Time for a gossip message to be written and acknowledged.
pub const GOSSIP_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent sync streams per connection.
pub const SYNC_STREAMS_MAX: usize = 8;
/// Time for a sync request to be answered (up to `SYNC_RESPONSE_BYTES_MAX` bytes).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Inbound connections still in their handshake (peer not yet authenticated).
pub const PENDING_INBOUND_MAX: usize = 64;
/// Established connections per peer: one each way, plus one for a simultaneous redial.
pub const CONNECTIONS_PER_PEER_MAX: usize = 3;

/// Why the gate refused a connection.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The peer's key is not in the allowed set.
    #[error("peer {0} is not allowed")]
    NotAllowed(PeerId),
    /// The peer is banned for misbehaviour.
    #[error("peer {0} is banned")]
    Banned(PeerId),
    /// Too many unauthenticated inbound connections.
    #[error("{0} inbound connections already pending")]
    TooManyPending(usize),
    /// Too many connections with this peer.
    #[error("peer {0} already has {1} connections")]
    TooManyConnections(PeerId, usize),
}

/// Refuses, once the Noise handshake has authenticated the peer, every connection whose peer
/// is not allowed or is banned, in both directions; bounds pending inbound handshakes and
/// connections per peer. Nothing from a refused connection reaches the other behaviours.
#[derive(Debug, Default)]
pub struct Gate {
    allowed: HashSet<PeerId>,
    banned: HashMap<PeerId, Instant>,
    pending_inbound: HashSet<ConnectionId>,
    established: HashMap<PeerId, HashSet<ConnectionId>>,
}

impl Gate {
    /// A gate that lets in exactly `allowed`.
    pub fn new(allowed: HashSet<PeerId>) -> Self {
        Gate {
            allowed,
            ..Gate::default()
        }
    }

    /// Replaces the allowed set (existing connections are the actor's to close).
    pub fn set_allowed(&mut self, allowed: HashSet<PeerId>) {
        self.allowed = allowed;
    }

    /// Refuses `peer` until `until`.
    pub fn ban(&mut self, peer: PeerId, until: Instant) {
        self.banned.insert(peer, until);
    }

    /// Lifts a ban.
    pub fn unban(&mut self, peer: &PeerId) {
        self.banned.remove(peer);
    }

    fn check(&self, peer: PeerId) -> Result<(), ConnectionDenied> {
        if !self.allowed.contains(&peer) {
            return Err(ConnectionDenied::new(Refused::NotAllowed(peer)));
        }
        if self
            .banned
            .get(&peer)
            .is_some_and(|until| Instant::now() < *until)
        {
            return Err(ConnectionDenied::new(Refused::Banned(peer)));
        }
        let n = self.established.get(&peer).map_or(0, HashSet::len);
        if n >= CONNECTIONS_PER_PEER_MAX {
            return Err(ConnectionDenied::new(Refused::TooManyConnections(peer, n)));
        }
        Ok(())
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        if self.pending_inbound.len() >= PENDING_INBOUND_MAX {
            return Err(ConnectionDenied::new(Refused::TooManyPending(
                self.pending_inbound.len(),
            )));
        }
        self.pending_inbound.insert(connection_id);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending_inbound.remove(&connection_id);
        self.check(peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(peer)?;
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                self.established
                    .entry(e.peer_id)
                    .or_default()
                    .insert(e.connection_id);
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(set) = self.established.get_mut(&e.peer_id) {
                    set.remove(&e.connection_id);
                    if set.is_empty() {
                        self.established.remove(&e.peer_id);
                    }
                }
            }
            FromSwarm::ListenFailure(e) => {
                self.pending_inbound.remove(&e.connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Everything the swarm runs. The gate comes first so that a refused connection never gets
/// as far as the protocols.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Allow-list, bans and connection limits.
    pub gate: Gate,
    /// Liveness: a dead peer is disconnected after a few seconds.
    pub ping: ping::Behaviour,
    /// Gossip push.
    pub gossip: request_response::Behaviour<GossipCodec>,
    /// Block sync.
    pub sync: request_response::Behaviour<SyncCodec>,
}

impl Behaviour {
    /// The behaviour with `allowed` let in.
    pub fn new(allowed: HashSet<PeerId>) -> Self {
        Behaviour {
            gate: Gate::new(allowed),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            gossip: request_response::Behaviour::new(
                [(GOSSIP_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(GOSSIP_ACK_TIMEOUT)
                    .with_max_concurrent_streams(GOSSIP_STREAMS_MAX),
            ),
            sync: request_response::Behaviour::new(
                [(SYNC_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default()
                    .with_request_timeout(SYNC_TIMEOUT)
                    .with_max_concurrent_streams(SYNC_STREAMS_MAX),
            ),
        }
    }
}
