//! Networking: libp2p over TCP + Noise + Yamux between allow-listed peers.
//!
//! * The node's libp2p identity is derived from its ed25519 node key, so a peer id *is* a
//!   key. Only peers whose keys are in the allowed set (validators and member nodes) get
//!   past the connection [gate](behaviour::Gate), in either direction; nothing from anyone
//!   else ever reaches the core.
//! * Gossip is a direct fan-out: every message is pushed to every connected peer on the
//!   request-response protocol [`GOSSIP_PROTOCOL`](codec::GOSSIP_PROTOCOL), acknowledged
//!   with an empty response. Validators form a full mesh, so nothing is relayed, and since
//!   every payload is signed already there is no transport-level message signing.
//!   Deduplication is the core's.
//! * Block sync is request-response on [`SYNC_PROTOCOL`](codec::SYNC_PROTOCOL), served by
//!   the actor from the [`Store`] on the blocking pool.
//! * Bootstrap addresses are dialled at start and redialled with exponential backoff
//!   (≤ 10 s) whenever their peer is not connected. A connection whose pings go unanswered
//!   for `LIVENESS_TIMEOUT` (5 s) is closed, so a dead or paused peer is noticed in ~5 s.
//! * Every message has a size bound enforced while reading. Undecodable or oversize input,
//!   gossip floods and messages the core reports invalid are strikes; `STRIKES_MAX` (10)
//!   within a minute disconnect the peer and refuse it for `BAN_DURATION` (2 min).
//!
//! Files by role: `actor` owns the swarm and runs the only `select!` loop; [`ingress`] is
//! its mailbox and the [`NetworkHandle`]; [`behaviour`] the libp2p behaviour; [`codec`] the
//! wire format; [`state`] the synchronous bookkeeping (strikes, rates, redials).

mod actor;
pub mod behaviour;
pub mod codec;
pub mod events;
pub mod ingress;
pub mod state;
#[cfg(test)]
mod tests;

pub use actor::serve_blocks;
pub use events::{EVENTS_BACKLOG_MAX, EVENTS_BYTES_MAX, EVENTS_CHANNEL_CAPACITY, NetEvents};
pub use ingress::NetworkHandle;

use crate::messages::GossipMsg;
use crate::metrics::Metrics;
use futures::StreamExt;
use ledger::store::Store;
use ledger::{PublicKey, SecretKey};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, identity, noise, tcp, yamux};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

/// Time for a TCP connection to be set up, authenticated and multiplexed.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`spawn`] waits for the listener to come up.
pub const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections are never closed for being idle: peers stay connected, and ping detects
/// dead ones.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(u64::MAX);

/// Network errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A key is not a valid ed25519 public key, so no peer id can be derived from it.
    #[error("{key} is not a valid ed25519 public key")]
    InvalidKey {
        /// The key.
        key: PublicKey,
    },
    /// The libp2p identity could not be derived from the node key.
    #[error("cannot derive the libp2p identity from the node key: {reason}")]
    Identity {
        /// Why.
        reason: String,
    },
    /// The transport could not be built.
    #[error("cannot set up the transport: {reason}")]
    Transport {
        /// Why.
        reason: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The peer is not connected.
    #[error("peer {peer} is not connected")]
    NotConnected {
        /// The peer.
        peer: PublicKey,
    },
    /// Too many sync requests are in flight.
    #[error("{max} sync requests already in flight")]
    Busy {
        /// The bound.
        max: usize,
    },
    /// A sync request failed (connection closed, unsupported, refused, undecodable answer).
    #[error("sync request to {peer} failed: {reason}")]
    Request {
        /// The peer.
        peer: PublicKey,
        /// Why.
        reason: String,
    },
    /// A sync request got no answer in time.
    #[error("sync request to {peer} timed out")]
    Timeout {
        /// The peer.
        peer: PublicKey,
    },
    /// The network actor has stopped.
    #[error("the network has stopped")]
    Stopped,
}

/// Result alias.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// What the network needs to start.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// The node key; the libp2p identity is derived from it.
    pub key: SecretKey,
    /// Where to listen, e.g. `/ip4/0.0.0.0/tcp/26656`.
    pub listen: Multiaddr,
    /// Dialled at start and redialled with backoff whenever not connected. A `/p2p/<id>`
    /// suffix is optional; an address of this node itself is skipped.
    pub bootstrap: Vec<Multiaddr>,
    /// Validator keys and member node keys: everyone else is refused at the connection.
    pub allowed: BTreeSet<PublicKey>,
}

/// What the network reports to the core.
#[allow(
    clippy::large_enum_variant,
    reason = "the core's API carries `GossipMsg` by value; events are moved once through the channel"
)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A message from an allowed peer, decoded with [`GossipMsg::decode`] (undecodable input
    /// never gets here: it is dropped and counts as a strike).
    Gossip {
        /// The sender.
        from: PublicKey,
        /// The message.
        msg: GossipMsg,
    },
    /// The first connection with an allowed peer was established.
    PeerConnected(PublicKey),
    /// The last connection with a peer closed.
    PeerDisconnected(PublicKey),
}

/// The libp2p peer id of an ed25519 key.
pub fn peer_id_of(key: &PublicKey) -> Result<PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(key.as_bytes())
        .map_err(|_| NetError::InvalidKey { key: *key })?;
    Ok(identity::PublicKey::from(pk).to_peer_id())
}

/// Peer ids of the allowed keys (invalid keys cannot connect anyway and are skipped).
fn allowed_peers(keys: &BTreeSet<PublicKey>) -> HashMap<PeerId, PublicKey> {
    keys.iter()
        .filter_map(|k| match peer_id_of(k) {
            Ok(p) => Some((p, *k)),
            Err(e) => {
                tracing::warn!(key = %k, error = %e, "allowed key skipped");
                None
            }
        })
        .collect()
}

/// Starts the network: binds the listener (returning once it is up, so that
/// [`NetworkHandle::listen_addrs`] has the actual port), dials the bootstrap addresses, and
/// spawns the actor. The actor runs until every [`NetworkHandle`] clone is dropped.
pub async fn spawn(
    cfg: NetworkConfig,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
) -> Result<(NetworkHandle, NetEvents)> {
    let keypair =
        identity::Keypair::ed25519_from_bytes(cfg.key.seed()).map_err(|e| NetError::Identity {
            reason: e.to_string(),
        })?;
    let local_peer_id = keypair.public().to_peer_id();
    if peer_id_of(&cfg.key.public_key())? != local_peer_id {
        return Err(NetError::Identity {
            reason: "libp2p derived a different public key from the node key's seed".into(),
        });
    }
    let allowed = allowed_peers(&cfg.allowed);
    let gate_set = allowed.keys().copied().collect();

    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Transport {
            reason: e.to_string(),
        })?
        .with_behaviour(|_| behaviour::Behaviour::new(gate_set))
        .map_err(|e| NetError::Transport {
            reason: e.to_string(),
        })?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
                .with_substream_upgrade_protocol_override(libp2p::core::upgrade::Version::V1Lazy)
        })
        .with_connection_timeout(CONNECTION_TIMEOUT)
        .build();

    swarm
        .listen_on(cfg.listen.clone())
        .map_err(|e| NetError::Listen {
            addr: cfg.listen.clone(),
            reason: e.to_string(),
        })?;
    let first_addr = wait_for_listener(&mut swarm, &cfg.listen).await?;
    info!(peer_id = %local_peer_id, addr = %first_addr, "p2p listening");

    let shared = Arc::new(ingress::Shared::default());
    shared.add_listen_addr(first_addr);
    let (handle, mailbox) = NetworkHandle::new(cfg.allowed, shared.clone(), local_peer_id);
    let (events_tx, events_rx) = events::channel();
    let actor = actor::Actor::new(actor::Parts {
        swarm,
        mailbox,
        events: events_tx,
        store,
        metrics,
        shared,
        allowed,
        bootstrap: cfg.bootstrap,
    });
    tokio::spawn(actor.run());
    Ok((handle, events_rx))
}

/// Drives the swarm until the listener reports its first address.
async fn wait_for_listener(
    swarm: &mut libp2p::Swarm<behaviour::Behaviour>,
    addr: &Multiaddr,
) -> Result<Multiaddr> {
    let listen_failed = |reason: String| NetError::Listen {
        addr: addr.clone(),
        reason,
    };
    let wait = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => return Ok(address),
                SwarmEvent::ListenerClosed { reason, .. } => {
                    return Err(listen_failed(match reason {
                        Ok(()) => "listener closed".into(),
                        Err(e) => e.to_string(),
                    }));
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(listen_failed(error.to_string()));
                }
                _ => {}
            }
        }
    };
    tokio::time::timeout(LISTEN_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| Err(listen_failed("timed out".into())))
}
