//! Networks on loopback: full mesh, broadcast and send-to, the allow-list, block sync from a
//! real store, garbage and bans, redial after a restart. Timeouts only bound waiting.

use super::actor::serve_blocks;
use super::codec::GOSSIP_PROTOCOL;
use super::state::STRIKES_MAX;
use super::*;
use crate::messages::{GOSSIP_BYTES_MAX, SYNC_BLOCKS_MAX, SyncRequest, SyncResponse};
use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use ledger::block::BlockHeader;
use ledger::chain::build_block;
use ledger::genesis::{ConsensusParams, Department, Genesis, Member, StateFormat};
use ledger::tx::RoleSet;
use ledger::validator::Validator;
use ledger::vote::{CommitCertificate, Vote, VoteType};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{StreamProtocol, Swarm, ping, request_response};
use std::io;
use std::time::Duration;

/// Bounds every wait; nothing is expected to take anywhere near this long.
const WAIT: Duration = Duration::from_secs(30);

fn node_key(i: u8) -> SecretKey {
    SecretKey::from_seed(&[i; 32])
}

fn keys(ids: &[u8]) -> BTreeSet<PublicKey> {
    ids.iter().map(|i| node_key(*i).public_key()).collect()
}

fn loopback() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

/// A chain with four validators (seeds 101..=104) and one clerk.
struct Chain {
    genesis: Genesis,
    validators: Vec<SecretKey>,
}

fn chain() -> Chain {
    let validators: Vec<SecretKey> = (101..=104)
        .map(|i| SecretKey::from_seed(&[i; 32]))
        .collect();
    let clerk = SecretKey::from_seed(&[42; 32]);
    let genesis = Genesis {
        chain_id: "net-test".into(),
        genesis_time_ms: 1_000,
        departments: vec![Department {
            id: "city".into(),
            name: "City".into(),
            governance_weight: 1,
        }],
        members: vec![Member {
            key: clerk.public_key(),
            department: "city".into(),
            roles: RoleSet::all(),
            name: "clerk".into(),
        }],
        validators: validators
            .iter()
            .map(|k| Validator {
                department: "city".into(),
                public_key: k.public_key(),
                power: 1,
                address: String::new(),
            })
            .collect(),
        params: ConsensusParams::default(),
        state_format: StateFormat::CURRENT,
    };
    Chain {
        genesis,
        validators,
    }
}

impl Chain {
    fn store(&self) -> (tempfile::TempDir, Arc<Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &self.genesis).unwrap();
        (dir, Arc::new(store))
    }

    fn cert(&self, header: &BlockHeader) -> CommitCertificate {
        let votes: Vec<Vote> = self
            .validators
            .iter()
            .map(|k| {
                Vote::new_signed(
                    &self.genesis.chain_id,
                    header.height,
                    0,
                    VoteType::Precommit,
                    Some(header.hash()),
                    k,
                )
            })
            .collect();
        CommitCertificate::from_votes(header.height, 0, header.hash(), &votes)
    }

    /// Commits `n` empty blocks.
    fn commit_empty_blocks(&self, store: &Store, n: u64) {
        for _ in 0..n {
            let tip = store.load_tip().unwrap();
            let proposer = self.validators[0].public_key();
            let (ex, refused) =
                build_block(store.state(), &tip, proposer, tip.time_ms + 1000, vec![]).unwrap();
            assert!(refused.is_empty());
            store.commit_block(&ex, &self.cert(&ex.header)).unwrap();
        }
    }
}

/// One running network.
struct Node {
    key: PublicKey,
    net: NetworkHandle,
    events: NetEvents,
    metrics: Arc<Metrics>,
    addr: Multiaddr,
}

async fn start_at(
    id: u8,
    listen: Multiaddr,
    allowed: &[u8],
    bootstrap: Vec<Multiaddr>,
    store: Arc<Store>,
) -> Result<Node> {
    let metrics = Arc::new(Metrics::new());
    let cfg = NetworkConfig {
        key: node_key(id),
        listen,
        bootstrap,
        allowed: keys(allowed),
    };
    let (net, events) = spawn(cfg, store, metrics.clone()).await?;
    let addr = net.listen_addrs()[0].clone();
    Ok(Node {
        key: node_key(id).public_key(),
        net,
        events,
        metrics,
        addr,
    })
}

async fn start(id: u8, allowed: &[u8], bootstrap: Vec<Multiaddr>, store: Arc<Store>) -> Node {
    start_at(id, loopback(), allowed, bootstrap, store)
        .await
        .unwrap()
}

/// Waits for the first event that `f` accepts, skipping others.
async fn wait_for(node: &mut Node, what: &str, f: impl Fn(&NetEvent) -> bool) -> NetEvent {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match node.events.recv().await {
                Some(ev) if f(&ev) => return ev,
                Some(_) => {}
                None => panic!("event channel closed while waiting for {what}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

async fn wait_connected(node: &mut Node, peer: PublicKey) {
    wait_for(node, "peer connected", |e| {
        *e == NetEvent::PeerConnected(peer)
    })
    .await;
}

/// Polls `cond` until it holds.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

fn status(height: u64) -> GossipMsg {
    GossipMsg::Status(crate::messages::Status {
        height,
        block_hash: ledger::hash::Hash::ZERO,
        round: 0,
        commit: None,
    })
}

fn is_gossip(from: PublicKey, msg: GossipMsg) -> impl Fn(&NetEvent) -> bool {
    move |e| {
        *e == NetEvent::Gossip {
            from,
            msg: msg.clone(),
        }
    }
}

/// Three nodes bootstrapped to each other form a full mesh.
async fn mesh(store: &Arc<Store>) -> (Node, Node, Node) {
    let mut a = start(1, &[1, 2, 3], vec![], store.clone()).await;
    let mut b = start(2, &[1, 2, 3], vec![a.addr.clone()], store.clone()).await;
    let mut c = start(
        3,
        &[1, 2, 3],
        vec![a.addr.clone(), b.addr.clone()],
        store.clone(),
    )
    .await;
    let (ka, kb, kc) = (a.key, b.key, c.key);
    for (node, peers) in [(&mut a, [kb, kc]), (&mut b, [ka, kc]), (&mut c, [ka, kb])] {
        // In whatever order they come.
        let mut missing: BTreeSet<PublicKey> = peers.into_iter().collect();
        while !missing.is_empty() {
            if let NetEvent::PeerConnected(k) = wait_for(node, "mesh connections", |e| {
                matches!(e, NetEvent::PeerConnected(_))
            })
            .await
            {
                missing.remove(&k);
            }
        }
    }
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_all_and_send_to_reaches_one() {
    let ch = chain();
    let (_dir, store) = ch.store();
    let (mut a, mut b, mut c) = mesh(&store).await;

    for n in [&a, &b, &c] {
        let mut peers: Vec<PublicKey> = n.net.peers().iter().map(|p| p.key).collect();
        peers.sort();
        let mut want: Vec<PublicKey> = [a.key, b.key, c.key]
            .into_iter()
            .filter(|k| *k != n.key)
            .collect();
        want.sort();
        assert_eq!(peers, want);
        assert_eq!(n.metrics.peers.get(), 2);
        for p in n.net.peers() {
            assert_eq!(p.peer_id, peer_id_of(&p.key).unwrap().to_string());
        }
    }
    assert_eq!(
        a.net.local_peer_id(),
        peer_id_of(&a.key).unwrap().to_string()
    );

    // Broadcast from each node reaches both others.
    a.net.broadcast(status(1));
    wait_for(&mut b, "a's broadcast at b", is_gossip(a.key, status(1))).await;
    wait_for(&mut c, "a's broadcast at c", is_gossip(a.key, status(1))).await;
    c.net.broadcast(status(2));
    wait_for(&mut a, "c's broadcast at a", is_gossip(c.key, status(2))).await;
    wait_for(&mut b, "c's broadcast at b", is_gossip(c.key, status(2))).await;

    // send_to reaches only its target: c's next message from a is the later broadcast.
    a.net.send_to(b.key, status(3));
    wait_for(&mut b, "send_to at b", is_gossip(a.key, status(3))).await;
    a.net.broadcast(status(4));
    let ev = wait_for(
        &mut c,
        "gossip from a at c",
        |e| matches!(e, NetEvent::Gossip { from, .. } if *from == a.key),
    )
    .await;
    assert_eq!(
        ev,
        NetEvent::Gossip {
            from: a.key,
            msg: status(4)
        }
    );
    wait_for(
        &mut b,
        "a's second broadcast at b",
        is_gossip(a.key, status(4)),
    )
    .await;

    // A burst arrives whole (in any order: every message has its own stream).
    const BURST: u64 = 500;
    for h in 0..BURST {
        b.net.broadcast(status(1_000 + h));
    }
    for node in [&mut a, &mut c] {
        let mut seen = std::collections::HashSet::new();
        while (seen.len() as u64) < BURST {
            if let NetEvent::Gossip {
                msg: GossipMsg::Status(crate::messages::Status { height, .. }),
                ..
            } = wait_for(
                node,
                "burst",
                |e| matches!(e, NetEvent::Gossip { from, .. } if *from == b.key),
            )
            .await
            {
                seen.insert(height);
            }
        }
        assert_eq!(seen, (1_000..1_000 + BURST).collect());
    }
    assert_eq!(b.net.dropped_outbound(), 0);
    assert_eq!(a.metrics.peer_messages_invalid.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_outside_the_allowed_set_are_refused() {
    let ch = chain();
    let (_dir, store) = ch.store();
    let mut a = start(1, &[1, 2], vec![], store.clone()).await;
    let mut b = start(2, &[1, 2], vec![a.addr.clone()], store.clone()).await;
    wait_connected(&mut a, b.key).await;
    wait_connected(&mut b, a.key).await;

    // The outsider allows a and dials it; a refuses once Noise has authenticated it.
    let mut d = start(9, &[1, 9], vec![a.addr.clone()], store.clone()).await;
    // d's side completes its handshake first, so it sees the connection come and go,
    // which proves that its attempt reached a.
    wait_connected(&mut d, a.key).await;
    d.net.broadcast(status(99));
    wait_for(&mut d, "refused connection closed", |e| {
        *e == NetEvent::PeerDisconnected(a.key)
    })
    .await;

    // A marker from b: everything a reported before it came from b.
    b.net.broadcast(status(7));
    let marker = is_gossip(b.key, status(7));
    tokio::time::timeout(WAIT, async {
        loop {
            let ev = a.events.recv().await.unwrap();
            if marker(&ev) {
                break;
            }
            let from_b = match &ev {
                NetEvent::Gossip { from, .. } => *from == b.key,
                NetEvent::PeerConnected(k) | NetEvent::PeerDisconnected(k) => *k == b.key,
            };
            assert!(from_b, "event from a peer that is not allowed: {ev:?}");
        }
    })
    .await
    .unwrap();
    assert_eq!(
        a.net.peers().iter().map(|p| p.key).collect::<Vec<_>>(),
        vec![b.key]
    );

    // Governance removes b: a disconnects it and refuses its redials.
    a.net.set_allowed(keys(&[1]));
    wait_for(&mut a, "b disconnected", |e| {
        *e == NetEvent::PeerDisconnected(b.key)
    })
    .await;
    wait_for(&mut b, "a gone at b", |e| {
        *e == NetEvent::PeerDisconnected(a.key)
    })
    .await;
    wait_until("a has no peers", || a.net.peers().is_empty()).await;
    assert_eq!(a.metrics.peers.get(), 0);
    // b redials (its backoff starts at 250 ms) and sees its attempts refused.
    wait_connected(&mut b, a.key).await;
    wait_for(&mut b, "redial refused", |e| {
        *e == NetEvent::PeerDisconnected(a.key)
    })
    .await;
    assert!(a.net.peers().is_empty());
    assert!(a.events.try_recv().is_err(), "no event from a removed peer");

    // Allowed again: b's next redial gets in.
    a.net.set_allowed(keys(&[1, 2]));
    wait_connected(&mut a, b.key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_blocks_returns_committed_blocks() {
    let ch = chain();
    let (_dir_a, store_a) = ch.store();
    let (_dir_b, store_b) = ch.store();
    ch.commit_empty_blocks(&store_a, 5);
    let mut a = start(1, &[1, 2], vec![], store_a.clone()).await;
    let mut b = start(2, &[1, 2], vec![a.addr.clone()], store_b).await;
    wait_connected(&mut b, a.key).await;
    wait_connected(&mut a, b.key).await;

    let req = |from_height, count| SyncRequest { from_height, count };
    let resp = b.net.request_blocks(a.key, req(2, 3)).await.unwrap();
    assert_eq!(resp.tip_height, 5);
    let heights: Vec<u64> = resp
        .blocks
        .iter()
        .map(|cb| cb.block.header.height)
        .collect();
    assert_eq!(heights, vec![2, 3, 4]);
    let vs = store_a.validator_set_at(2).unwrap().unwrap();
    for cb in &resp.blocks {
        let h = &cb.block.header;
        assert_eq!(
            Some(cb),
            store_a.committed_block(h.height).unwrap().as_ref()
        );
        cb.commit
            .verify(&ch.genesis.chain_id, h.height, &h.hash(), &vs)
            .unwrap();
    }
    // Fewer than asked at the tip; none beyond it.
    let resp = b.net.request_blocks(a.key, req(4, 1000)).await.unwrap();
    assert_eq!(resp.blocks.len(), 2);
    let resp = b.net.request_blocks(a.key, req(6, 10)).await.unwrap();
    assert_eq!((resp.tip_height, resp.blocks.len()), (5, 0));
    // b has only genesis.
    let resp = a.net.request_blocks(b.key, req(1, 10)).await.unwrap();
    assert_eq!((resp.tip_height, resp.blocks.len()), (0, 0));

    // Not connected.
    let err = b
        .net
        .request_blocks(node_key(3).public_key(), req(1, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::NotConnected { .. }), "{err}");
}

#[test]
fn serve_blocks_caps_the_count() {
    let ch = chain();
    let (_dir, store) = ch.store();
    let n = u64::from(SYNC_BLOCKS_MAX) + 6;
    ch.commit_empty_blocks(&store, n);
    let resp = serve_blocks(
        &store,
        SyncRequest {
            from_height: 1,
            count: u32::MAX,
        },
    )
    .unwrap();
    assert_eq!(resp.tip_height, n);
    assert_eq!(resp.blocks.len(), SYNC_BLOCKS_MAX as usize);
    assert_eq!(resp.blocks[0].block.header.height, 1);
    // The answer decodes with the bounded decoder.
    let bytes = ledger::codec::encode(&resp);
    assert_eq!(SyncResponse::decode(&bytes).unwrap(), resp);
    // Heights near u64::MAX do not overflow.
    let resp = serve_blocks(
        &store,
        SyncRequest {
            from_height: u64::MAX,
            count: 5,
        },
    )
    .unwrap();
    assert!(resp.blocks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redials_a_peer_that_comes_back() {
    let ch = chain();
    let (_dir, store) = ch.store();
    let mut a = start(1, &[1, 2], vec![], store.clone()).await;
    let mut b = start(2, &[1, 2], vec![a.addr.clone()], store.clone()).await;
    wait_connected(&mut b, a.key).await;
    wait_connected(&mut a, b.key).await;

    // Stop a: dropping its handle stops its actor, which closes connections and listener.
    let addr = a.addr.clone();
    drop(a);
    wait_for(&mut b, "a gone", |e| {
        *e == NetEvent::PeerDisconnected(a_key())
    })
    .await;
    assert!(b.net.peers().is_empty());

    // Start it again on the same port with the same key (retrying while the old listener
    // is being torn down).
    let mut a = tokio::time::timeout(WAIT, async {
        loop {
            match start_at(1, addr.clone(), &[1, 2], vec![], store.clone()).await {
                Ok(n) => return n,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("restart on the same port");
    assert_eq!(a.addr, addr);
    wait_connected(&mut b, a.key).await;
    wait_connected(&mut a, b.key).await;
    b.net.broadcast(status(5));
    wait_for(
        &mut a,
        "gossip after reconnect",
        is_gossip(b.key, status(5)),
    )
    .await;
}

fn a_key() -> PublicKey {
    node_key(1).public_key()
}

// ---- a raw client that writes arbitrary bytes on the gossip protocol ----

#[derive(Clone, Copy, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut v = Vec::new();
        io.take(1024).read_to_end(&mut v).await?;
        Ok(v)
    }

    async fn read_response<T>(&mut self, p: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_request(p, io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await?;
        io.flush().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&res).await?;
        io.flush().await
    }
}

#[derive(NetworkBehaviour)]
struct RawBehaviour {
    ping: ping::Behaviour,
    gossip: request_response::Behaviour<RawCodec>,
}

fn raw_client(id: u8) -> Swarm<RawBehaviour> {
    let kp = libp2p::identity::Keypair::ed25519_from_bytes(node_key(id).seed()).unwrap();
    libp2p::SwarmBuilder::with_existing_identity(kp)
        .with_tokio()
        .with_tcp(
            Default::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| RawBehaviour {
            ping: ping::Behaviour::default(),
            gossip: request_response::Behaviour::new(
                [(GOSSIP_PROTOCOL, request_response::ProtocolSupport::Full)],
                request_response::Config::default(),
            ),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build()
}

/// Drives the raw client until `f` returns something.
async fn drive<T>(
    swarm: &mut Swarm<RawBehaviour>,
    what: &str,
    mut f: impl FnMut(SwarmEvent<RawBehaviourEvent>) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(t) = f(swarm.select_next_some().await) {
                return t;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Drives the raw client until `cond` holds.
async fn drive_until(swarm: &mut Swarm<RawBehaviour>, what: &str, mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::select! {
                _ = swarm.select_next_some() => {}
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting until {what}"));
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_dropped_counted_and_gets_the_sender_banned() {
    let ch = chain();
    let (_dir, store) = ch.store();
    let mut a = start(1, &[1, 5], vec![], store).await;
    let raw_key = node_key(5).public_key();
    let a_peer = peer_id_of(&a.key).unwrap();
    let mut raw = raw_client(5);
    raw.dial(a.addr.clone()).unwrap();
    drive(&mut raw, "raw connection", |e| match e {
        SwarmEvent::ConnectionEstablished { .. } => Some(()),
        _ => None,
    })
    .await;
    wait_connected(&mut a, raw_key).await;
    let invalid = a.metrics.clone();

    // Undecodable bytes: dropped and counted; the connection stays.
    raw.behaviour_mut()
        .gossip
        .send_request(&a_peer, framed(&[0xff; 40]));
    drive_until(&mut raw, "garbage counted", || {
        invalid.peer_messages_invalid.get() == 1
    })
    .await;
    // A valid message afterwards is delivered, so the garbage produced no event.
    raw.behaviour_mut()
        .gossip
        .send_request(&a_peer, framed(&status(11).encode()));
    drive_until(&mut raw, "valid message after garbage", || {
        matches!(a.events.try_recv(), Ok(NetEvent::Gossip { from, msg }) if from == raw_key && msg == status(11))
    })
    .await;

    // An oversize length claim: refused before reading, counted.
    raw.behaviour_mut().gossip.send_request(
        &a_peer,
        ((GOSSIP_BYTES_MAX + 1) as u32).to_be_bytes().to_vec(),
    );
    drive_until(&mut raw, "oversize counted", || {
        invalid.peer_messages_invalid.get() == 2
    })
    .await;
    // The core's own verdicts count as strikes too.
    a.net.report_invalid(raw_key, "bad signature");
    drive_until(&mut raw, "report counted", || {
        invalid.peer_messages_invalid.get() == 3
    })
    .await;

    // Enough strikes: a disconnects the sender...
    for _ in 3..STRIKES_MAX {
        raw.behaviour_mut()
            .gossip
            .send_request(&a_peer, framed(b"not a message"));
    }
    drive(&mut raw, "disconnection by a", |e| match e {
        SwarmEvent::ConnectionClosed {
            num_established: 0, ..
        } => Some(()),
        _ => None,
    })
    .await;
    wait_for(&mut a, "raw disconnected", |e| {
        *e == NetEvent::PeerDisconnected(raw_key)
    })
    .await;
    assert_eq!(invalid.peer_messages_invalid.get() as usize, STRIKES_MAX);

    // ...and refuses it for a while: a redial is closed by a without any event.
    raw.dial(a.addr.clone()).unwrap();
    drive(&mut raw, "refusal of the redial", |e| match e {
        SwarmEvent::ConnectionClosed {
            num_established: 0, ..
        }
        | SwarmEvent::OutgoingConnectionError { .. } => Some(()),
        _ => None,
    })
    .await;
    assert!(a.net.peers().is_empty());
    while let Ok(ev) = a.events.try_recv() {
        assert!(!matches!(ev, NetEvent::PeerConnected(_)), "{ev:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_errors_are_reported() {
    let ch = chain();
    let (_dir, store) = ch.store();
    let a = start(1, &[1], vec![], store.clone()).await;
    // An address no transport of ours can listen on.
    let err = start_at(
        2,
        "/ip4/127.0.0.1/udp/0".parse().unwrap(),
        &[1],
        vec![],
        store.clone(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, NetError::Listen { .. }), "{err}");
    // A bootstrap address of the node itself is skipped rather than dialled forever.
    let mine: Multiaddr = format!("/ip4/127.0.0.1/tcp/1/p2p/{}", a.net.local_peer_id())
        .parse()
        .unwrap();
    let r = state::Redialer::new(
        &[mine],
        peer_id_of(&a.key).unwrap(),
        std::time::Instant::now(),
    );
    assert_eq!(r.targets()[0].state, state::DialState::Myself);
    // Keys that are not curve points have no peer id.
    let bad = (0..=255u8)
        .map(|b| PublicKey([b; 32]))
        .find(|k| peer_id_of(k).is_err())
        .expect("some byte pattern is not a point");
    assert!(matches!(peer_id_of(&bad), Err(NetError::InvalidKey { .. })));
}

/// A TCP relay that can freeze: bytes stop flowing both ways but the sockets stay open, as
/// with a paused container or a dropped network link.
struct Relay {
    addr: Multiaddr,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

async fn relay_to(target: &Multiaddr) -> Relay {
    use libp2p::multiaddr::Protocol;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let port = target
        .iter()
        .find_map(|p| match p {
            Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!(
        "/ip4/127.0.0.1/tcp/{}",
        listener.local_addr().unwrap().port()
    )
    .parse()
    .unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let flag = frozen.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                continue;
            };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            for (mut r, mut w) in [(ri, wo), (ro, wi)] {
                let flag = flag.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        while flag.load(Ordering::Relaxed) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    });
    Relay { addr, frozen }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_detected_and_redialled() {
    use std::sync::atomic::Ordering;
    let ch = chain();
    let (_dir, store) = ch.store();
    let mut a = start(1, &[1, 2], vec![], store.clone()).await;
    let relay = relay_to(&a.addr).await;
    let mut b = start(2, &[1, 2], vec![relay.addr.clone()], store.clone()).await;
    wait_connected(&mut b, a.key).await;
    wait_connected(&mut a, b.key).await;

    // Silence: both sides notice through ping alone (no TCP error ever arrives).
    relay.frozen.store(true, Ordering::Relaxed);
    wait_for(&mut b, "a silent at b", |e| {
        *e == NetEvent::PeerDisconnected(a_key())
    })
    .await;
    wait_for(&mut a, "b silent at a", |e| {
        *e == NetEvent::PeerDisconnected(node_key(2).public_key())
    })
    .await;

    // The link comes back: b's redials get through.
    relay.frozen.store(false, Ordering::Relaxed);
    wait_connected(&mut b, a.key).await;
    wait_connected(&mut a, b.key).await;
    a.net.broadcast(status(8));
    wait_for(
        &mut b,
        "gossip after the link is back",
        is_gossip(a.key, status(8)),
    )
    .await;
}

/// Figures for the gossip design (run with `--ignored --nocapture`): round-trip latency of
/// one message, throughput of small messages, and of ~1 MB transaction batches, between
/// two nodes on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, not a check"]
async fn gossip_figures() {
    use ledger::hash::hash_document;
    use ledger::tx::{Anchor, Tx, TxBody};
    use std::time::Instant;
    let ch = chain();
    let (_dir, store) = ch.store();
    let mut a = start(1, &[1, 2], vec![], store.clone()).await;
    let mut b = start(2, &[1, 2], vec![a.addr.clone()], store.clone()).await;
    wait_connected(&mut a, b.key).await;
    wait_connected(&mut b, a.key).await;

    // Latency: a sends to b, b echoes back.
    let (ka, kb) = (a.key, b.key);
    let echo_net = b.net.clone();
    let mut b_events = b.events;
    tokio::spawn(async move {
        while let Some(ev) = b_events.recv().await {
            if let NetEvent::Gossip { msg, .. } = ev {
                echo_net.send_to(ka, msg);
            }
        }
    });
    let rounds = 2_000u64;
    let mut rtts = Vec::new();
    for h in 0..rounds {
        let t = Instant::now();
        a.net.send_to(kb, status(h));
        wait_for(&mut a, "echo", is_gossip(kb, status(h))).await;
        rtts.push(t.elapsed());
    }
    rtts.sort();
    eprintln!(
        "FIGURE round trip (send_to + echo), {rounds} rounds: p50 {:?}, p99 {:?}",
        rtts[rtts.len() / 2],
        rtts[rtts.len() * 99 / 100]
    );

    // Throughput of small messages, in windows that fit the outbound queue (b echoes each).
    // (Under the per-peer gossip rate limit: `GOSSIP_MSGS_BURST` in a burst, then
    // `GOSSIP_MSGS_PER_SEC`; beyond it, messages are dropped as a flood.)
    let (total, window) = (16_000u64, 2_000u64);
    let t = Instant::now();
    for w in 0..total / window {
        for h in 0..window {
            a.net.send_to(kb, status(1_000_000 + w * window + h));
        }
        let mut got = 0;
        while got < window {
            wait_for(&mut a, "echoes", |e| matches!(e, NetEvent::Gossip { .. })).await;
            got += 1;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "FIGURE small messages: {total} sent and echoed in {secs:.2} s = {:.0} msg/s each way",
        total as f64 / secs
    );
    assert_eq!(a.net.dropped_outbound(), 0);

    // Large messages: batches of 4000 anchors (~1 MB each).
    let clerk = SecretKey::from_seed(&[42; 32]);
    let txs: Vec<_> = (0..4_000u64)
        .map(|n| {
            Tx {
                chain_id: ch.genesis.chain_id.clone(),
                signer: clerk.public_key(),
                nonce: n,
                created_at_ms: 0,
                expires_at_ms: u64::MAX,
                body: TxBody::Anchor(Anchor {
                    document_hash: hash_document(&n.to_le_bytes()),
                    label: format!("document {n}"),
                }),
            }
            .sign(&clerk)
        })
        .collect();
    let batch = GossipMsg::Txs(txs);
    let bytes = batch.encode().len();
    let n = 40u64;
    let t = Instant::now();
    for _ in 0..n {
        a.net.send_to(kb, batch.clone());
    }
    for _ in 0..n {
        wait_for(&mut a, "batch echo", |e| {
            matches!(e, NetEvent::Gossip { .. })
        })
        .await;
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "FIGURE large messages: {n} × {bytes} bytes sent and echoed in {secs:.2} s = {:.1} MB/s each way",
        (n as f64 * bytes as f64) / secs / 1e6
    );
}
