//! The actor's plain synchronous bookkeeping, with time passed in: per-peer strikes, rate
//! limits and bans ([`PeerGuard`]), and the redial schedule of bootstrap addresses
//! ([`Redialer`]).

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Strikes within [`STRIKE_WINDOW`] that get a peer disconnected and banned.
pub const STRIKES_MAX: usize = 10;
/// How long a strike counts.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(60);
/// How long a banned peer is refused.
pub const BAN_DURATION: Duration = Duration::from_secs(120);
/// Sustained gossip messages per second accepted from one peer. Consensus sends a handful
/// per round and transactions travel in batches, so only a flood reaches it; it is about
/// what one peer can push over loopback at all (~9k/s measured), so it never throttles an
/// honest peer before the link does.
pub const GOSSIP_MSGS_PER_SEC: u32 = 10_000;
/// Gossip burst accepted from one peer.
pub const GOSSIP_MSGS_BURST: u32 = 20_000;
/// Sustained sync requests per second served to one peer.
pub const SYNC_REQUESTS_PER_SEC: u32 = 20;
/// Sync request burst served to one peer.
pub const SYNC_REQUESTS_BURST: u32 = 40;

/// Gossip messages sent to one peer and not yet acknowledged. Keeps each connection well
/// under libp2p's stream limit (`GOSSIP_STREAMS_MAX`, shared by both directions), so that
/// libp2p never has to drop a message; also the most that one round trip can carry.
pub const GOSSIP_INFLIGHT_PER_PEER_MAX: usize = 64;
/// Gossip messages waiting for one peer behind those in flight; beyond this, further
/// messages to that peer are dropped (a stalled peer must not make us buffer without bound).
pub const GOSSIP_WAITING_PER_PEER_MAX: usize = 4096;
/// Bytes of gossip held for one peer, in flight and waiting together: six frames of the
/// largest size (16 MiB). Frames of up to 16 MiB make the count bounds alone worth
/// gigabytes per peer that stops reading; an honest peer holds a few proposals at most.
/// A message that does not fit is dropped, except that a peer with nothing held always
/// takes one (every frame is within `GOSSIP_FRAME_BYTES_MAX`, far below this bound).
pub const GOSSIP_BYTES_PER_PEER_MAX: usize = 96 * 1024 * 1024;

/// First redial delay after a failure; doubled on each consecutive failure.
pub const DIAL_BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Largest redial delay.
pub const DIAL_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A connection that lasted this long resets the backoff when it closes.
pub const DIAL_BACKOFF_RESET_AFTER: Duration = Duration::from_secs(10);

/// A token bucket.
#[derive(Clone, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// Takes one token if there is one.
    fn take(&mut self, rate_per_sec: u32, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate_per_sec)).min(f64::from(burst));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct PeerRecord {
    strikes: VecDeque<Instant>,
    gossip: Bucket,
    sync: Bucket,
}

/// What a strike led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; the peer stays.
    Counted(usize),
    /// The peer reached [`STRIKES_MAX`]: disconnect it; it is refused until the time given.
    Ban(Instant),
}

/// Strikes, rate limits and bans of peers. Records exist for connected peers (dropped when
/// they disconnect, unless they carry strikes) and banned ones (dropped when the ban ends).
#[derive(Debug, Default)]
pub struct PeerGuard {
    peers: HashMap<PeerId, PeerRecord>,
    bans: HashMap<PeerId, Instant>,
}

impl PeerGuard {
    fn record(&mut self, peer: PeerId, now: Instant) -> &mut PeerRecord {
        self.peers.entry(peer).or_insert_with(|| PeerRecord {
            strikes: VecDeque::new(),
            gossip: Bucket::full(GOSSIP_MSGS_BURST, now),
            sync: Bucket::full(SYNC_REQUESTS_BURST, now),
        })
    }

    /// Counts a strike; returns whether the peer must now be banned.
    pub fn strike(&mut self, peer: PeerId, now: Instant) -> Verdict {
        let rec = self.record(peer, now);
        while rec
            .strikes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= STRIKE_WINDOW)
        {
            rec.strikes.pop_front();
        }
        rec.strikes.push_back(now);
        if rec.strikes.len() >= STRIKES_MAX {
            self.peers.remove(&peer);
            let until = now + BAN_DURATION;
            self.bans.insert(peer, until);
            Verdict::Ban(until)
        } else {
            Verdict::Counted(rec.strikes.len())
        }
    }

    /// Whether one more gossip message from `peer` is within its rate.
    pub fn allow_gossip(&mut self, peer: PeerId, now: Instant) -> bool {
        self.record(peer, now)
            .gossip
            .take(GOSSIP_MSGS_PER_SEC, GOSSIP_MSGS_BURST, now)
    }

    /// Whether one more sync request from `peer` is within its rate.
    pub fn allow_sync(&mut self, peer: PeerId, now: Instant) -> bool {
        self.record(peer, now)
            .sync
            .take(SYNC_REQUESTS_PER_SEC, SYNC_REQUESTS_BURST, now)
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        self.bans.get(peer).is_some_and(|until| now < *until)
    }

    /// The peer disconnected: forget its rates (its strikes stay until they expire).
    pub fn disconnected(&mut self, peer: &PeerId) {
        if self.peers.get(peer).is_some_and(|r| r.strikes.is_empty()) {
            self.peers.remove(peer);
        }
    }

    /// Drops expired bans and strikes; returns the peers whose ban ended.
    pub fn expire(&mut self, now: Instant) -> Vec<PeerId> {
        let ended: Vec<PeerId> = self
            .bans
            .iter()
            .filter(|(_, until)| now >= **until)
            .map(|(p, _)| *p)
            .collect();
        for p in &ended {
            self.bans.remove(p);
        }
        for rec in self.peers.values_mut() {
            while rec
                .strikes
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= STRIKE_WINDOW)
            {
                rec.strikes.pop_front();
            }
        }
        ended
    }
}

/// What [`PeerQueue::push`] did with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    /// Send it now.
    Send(Arc<[u8]>),
    /// It waits behind the messages in flight.
    Queued,
    /// The queue is full: dropped.
    Full,
}

/// Gossip to one peer: at most [`GOSSIP_INFLIGHT_PER_PEER_MAX`] in flight, then up to
/// [`GOSSIP_WAITING_PER_PEER_MAX`] waiting, in order; at most [`GOSSIP_BYTES_PER_PEER_MAX`]
/// bytes held in all.
#[derive(Debug, Default)]
pub struct PeerQueue {
    inflight: usize,
    waiting: VecDeque<Arc<[u8]>>,
    /// Bytes in flight and waiting.
    held_bytes: usize,
}

impl PeerQueue {
    /// Offers a message.
    pub fn push(&mut self, bytes: Arc<[u8]>) -> Push {
        self.push_bounded(bytes, GOSSIP_BYTES_PER_PEER_MAX)
    }

    fn push_bounded(&mut self, bytes: Arc<[u8]>, bytes_max: usize) -> Push {
        let held = self.held_bytes.saturating_add(bytes.len());
        if held > bytes_max && self.held_bytes > 0 {
            return Push::Full;
        }
        if self.inflight < GOSSIP_INFLIGHT_PER_PEER_MAX {
            self.inflight += 1;
            self.held_bytes = held;
            Push::Send(bytes)
        } else if self.waiting.len() < GOSSIP_WAITING_PER_PEER_MAX {
            self.waiting.push_back(bytes);
            self.held_bytes = held;
            Push::Queued
        } else {
            Push::Full
        }
    }

    /// One message in flight, of `len` bytes, was acknowledged or failed; returns the next
    /// one to send.
    pub fn done(&mut self, len: usize) -> Option<Arc<[u8]>> {
        self.inflight = self.inflight.saturating_sub(1);
        self.held_bytes = self.held_bytes.saturating_sub(len);
        let next = self.waiting.pop_front()?;
        self.inflight += 1;
        Some(next)
    }

    /// Messages in flight.
    pub fn inflight(&self) -> usize {
        self.inflight
    }

    /// Bytes in flight and waiting.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }
}

/// Where a bootstrap address stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialState {
    /// Waiting to be dialled at the given time.
    Waiting(Instant),
    /// A dial is under way.
    Dialing(ConnectionId),
    /// Its peer is connected (by this dial or any other connection) since the given time.
    Connected(Instant),
    /// The address is our own: never dialled.
    Myself,
}

/// One bootstrap address.
#[derive(Clone, Debug)]
pub struct Target {
    /// The address.
    pub addr: Multiaddr,
    /// Its peer, from a `/p2p/` suffix or learnt from the first connection.
    pub peer: Option<PeerId>,
    /// Where it stands.
    pub state: DialState,
    backoff: Duration,
}

/// The bootstrap addresses and when to dial each: at start, and again whenever its peer is
/// not connected, with exponential backoff from [`DIAL_BACKOFF_MIN`] to
/// [`DIAL_BACKOFF_MAX`].
#[derive(Debug, Default)]
pub struct Redialer {
    targets: Vec<Target>,
}

impl Redialer {
    /// All `addrs` are due at `now`, except our own.
    pub fn new(addrs: &[Multiaddr], local: PeerId, now: Instant) -> Self {
        let mut targets: Vec<Target> = Vec::new();
        for addr in addrs {
            if targets.iter().any(|t| &t.addr == addr) {
                continue;
            }
            let peer = match addr.iter().last() {
                Some(Protocol::P2p(p)) => Some(p),
                _ => None,
            };
            let state = if peer == Some(local) {
                DialState::Myself
            } else {
                DialState::Waiting(now)
            };
            targets.push(Target {
                addr: addr.clone(),
                peer,
                state,
                backoff: DIAL_BACKOFF_MIN,
            });
        }
        Redialer { targets }
    }

    /// The targets.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Indexes of targets due for a dial at `now`. A target whose peer is already connected
    /// is marked connected instead.
    pub fn due(&mut self, now: Instant, is_connected: impl Fn(&PeerId) -> bool) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, t) in self.targets.iter_mut().enumerate() {
            if let DialState::Waiting(at) = t.state
                && at <= now
            {
                if t.peer.as_ref().is_some_and(&is_connected) {
                    t.state = DialState::Connected(now);
                } else {
                    out.push(i);
                }
            }
        }
        out
    }

    /// A dial of target `i` started.
    pub fn dialing(&mut self, i: usize, id: ConnectionId) {
        if let Some(t) = self.targets.get_mut(i) {
            t.state = DialState::Dialing(id);
        }
    }

    /// A dial of target `i` could not even start, or failed: retry after the backoff.
    pub fn failed(&mut self, i: usize, now: Instant) {
        if let Some(t) = self.targets.get_mut(i) {
            t.state = DialState::Waiting(now + t.backoff);
            t.backoff = (t.backoff * 2).min(DIAL_BACKOFF_MAX);
        }
    }

    /// The dial with this connection id failed; returns the target's index if it was ours.
    pub fn dial_failed(&mut self, id: ConnectionId, now: Instant) -> Option<usize> {
        let i = self
            .targets
            .iter()
            .position(|t| t.state == DialState::Dialing(id))?;
        self.failed(i, now);
        Some(i)
    }

    /// The dial with this connection id reached our own node.
    pub fn dialled_myself(&mut self, id: ConnectionId) {
        if let Some(t) = self
            .targets
            .iter_mut()
            .find(|t| t.state == DialState::Dialing(id))
        {
            t.state = DialState::Myself;
        }
    }

    /// A connection to `peer` was established (by connection `id`, ours or not).
    pub fn connected(&mut self, id: ConnectionId, peer: PeerId, now: Instant) {
        for t in &mut self.targets {
            let ours = t.state == DialState::Dialing(id);
            if ours {
                t.peer = Some(peer);
            }
            if ours || (t.peer == Some(peer) && matches!(t.state, DialState::Waiting(_))) {
                t.state = DialState::Connected(now);
            }
        }
    }

    /// The last connection to `peer` closed: schedule redials of its targets.
    pub fn disconnected(&mut self, peer: PeerId, now: Instant) {
        for t in &mut self.targets {
            if t.peer != Some(peer) {
                continue;
            }
            if let DialState::Connected(since) = t.state {
                if now.saturating_duration_since(since) >= DIAL_BACKOFF_RESET_AFTER {
                    t.backoff = DIAL_BACKOFF_MIN;
                }
                t.state = DialState::Waiting(now + t.backoff);
                t.backoff = (t.backoff * 2).min(DIAL_BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(i: u8) -> PeerId {
        let kp = libp2p::identity::Keypair::ed25519_from_bytes([i; 32]).unwrap();
        kp.public().to_peer_id()
    }

    #[test]
    fn strikes_ban_within_the_window_only() {
        let mut g = PeerGuard::default();
        let p = peer(1);
        let t0 = Instant::now();
        // Strikes spread wider than the window never ban.
        for i in 0..(3 * STRIKES_MAX) as u32 {
            let v = g.strike(p, t0 + STRIKE_WINDOW / 2 * i);
            assert!(matches!(v, Verdict::Counted(n) if n <= 2), "{v:?}");
        }
        // STRIKES_MAX quick strikes ban.
        let t1 = t0 + STRIKE_WINDOW * 100;
        for i in 0..STRIKES_MAX - 1 {
            assert_eq!(g.strike(p, t1), Verdict::Counted(i + 1));
        }
        assert_eq!(g.strike(p, t1), Verdict::Ban(t1 + BAN_DURATION));
        assert!(g.is_banned(&p, t1));
        assert!(!g.is_banned(&peer(2), t1));
        assert!(g.expire(t1 + BAN_DURATION / 2).is_empty());
        assert_eq!(g.expire(t1 + BAN_DURATION), vec![p]);
        assert!(!g.is_banned(&p, t1 + BAN_DURATION));
    }

    #[test]
    fn gossip_rate_limit_refills() {
        let mut g = PeerGuard::default();
        let p = peer(1);
        let t0 = Instant::now();
        let allowed = (0..2 * GOSSIP_MSGS_BURST)
            .filter(|_| g.allow_gossip(p, t0))
            .count();
        assert_eq!(allowed, GOSSIP_MSGS_BURST as usize);
        // After one second, one second's worth again.
        let t1 = t0 + Duration::from_secs(1);
        let allowed = (0..2 * GOSSIP_MSGS_BURST)
            .filter(|_| g.allow_gossip(p, t1))
            .count();
        assert_eq!(allowed, GOSSIP_MSGS_PER_SEC as usize);
        // Sync requests have their own bucket.
        assert!(g.allow_sync(p, t1));
    }

    #[test]
    fn peer_queue_bounds_inflight_and_waiting() {
        let mut q = PeerQueue::default();
        let msg = |i: u32| -> Arc<[u8]> { i.to_be_bytes().to_vec().into() };
        for i in 0..GOSSIP_INFLIGHT_PER_PEER_MAX as u32 {
            assert_eq!(q.push(msg(i)), Push::Send(msg(i)));
        }
        for i in 0..GOSSIP_WAITING_PER_PEER_MAX as u32 {
            assert_eq!(q.push(msg(1_000_000 + i)), Push::Queued);
        }
        assert_eq!(q.push(msg(7)), Push::Full);
        // Each completion releases the oldest waiting message, in order.
        assert_eq!(q.done(4), Some(msg(1_000_000)));
        assert_eq!(q.done(4), Some(msg(1_000_001)));
        assert_eq!(q.inflight(), GOSSIP_INFLIGHT_PER_PEER_MAX);
        for _ in 2..GOSSIP_WAITING_PER_PEER_MAX {
            assert!(q.done(4).is_some());
        }
        assert_eq!(q.done(4), None);
        assert_eq!(q.inflight(), GOSSIP_INFLIGHT_PER_PEER_MAX - 1);
        assert_eq!(q.held_bytes(), 4 * (GOSSIP_INFLIGHT_PER_PEER_MAX - 1));
    }

    #[test]
    fn peer_queue_bounds_bytes_held_for_a_peer_that_stops_reading() {
        let frame = |n: usize| -> Arc<[u8]> { vec![7u8; n].into() };
        let max = GOSSIP_BYTES_PER_PEER_MAX;
        let big = crate::messages::GOSSIP_BYTES_MAX;
        assert!(big < max, "a largest frame must always fit an empty queue");

        // Largest frames to a peer that never acknowledges: sent while under the count
        // bound, held up to the byte bound, then dropped, long before either count bound.
        let mut q = PeerQueue::default();
        let fits = max / big;
        for _ in 0..fits {
            assert!(matches!(q.push(frame(big)), Push::Send(_)));
        }
        assert_eq!(q.push(frame(big)), Push::Full);
        assert!(q.held_bytes() <= max);
        assert!(fits < GOSSIP_INFLIGHT_PER_PEER_MAX);
        // Small messages still go in up to the byte bound.
        let room = max - q.held_bytes();
        if room > 0 {
            assert!(matches!(q.push(frame(room)), Push::Send(_)));
        }
        assert_eq!(q.push(frame(1)), Push::Full);
        assert_eq!(q.held_bytes(), max);

        // Acknowledgements release bytes, and the queue takes more again.
        assert_eq!(q.done(big), None);
        assert_eq!(q.held_bytes(), max - big);
        assert!(matches!(q.push(frame(big)), Push::Send(_)));

        // Waiting messages count too: with the in-flight slots full of small messages,
        // queued large ones stop at the byte bound, and release in order.
        let mut q = PeerQueue::default();
        for i in 0..GOSSIP_INFLIGHT_PER_PEER_MAX as u32 {
            assert!(matches!(
                q.push(i.to_be_bytes().to_vec().into()),
                Push::Send(_)
            ));
        }
        let mut queued = 0;
        while q.push(frame(big)) == Push::Queued {
            queued += 1;
        }
        assert_eq!(queued, (max - 4 * GOSSIP_INFLIGHT_PER_PEER_MAX) / big);
        assert!(q.held_bytes() <= max);
        assert_eq!(q.done(4).map(|m| m.len()), Some(big));

        // An empty queue takes one message even beyond a (smaller) bound: nothing else
        // would ever carry it.
        let mut q = PeerQueue::default();
        assert!(matches!(q.push_bounded(frame(10), 4), Push::Send(_)));
        assert_eq!(q.push_bounded(frame(1), 4), Push::Full);
    }

    #[test]
    fn redial_backoff_doubles_caps_and_resets() {
        let t0 = Instant::now();
        let me = peer(0);
        let a: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let mine: Multiaddr = format!("/ip4/127.0.0.1/tcp/2/p2p/{me}").parse().unwrap();
        let mut r = Redialer::new(&[a.clone(), a.clone(), mine], me, t0);
        assert_eq!(r.targets().len(), 2);
        assert_eq!(r.targets()[1].state, DialState::Myself);
        assert_eq!(r.due(t0, |_| false), vec![0]);

        // Consecutive failures: 250 ms, 500 ms, 1 s, ... capped at 10 s.
        let mut now = t0;
        let mut delays = vec![];
        for _ in 0..8 {
            let id = ConnectionId::new_unchecked(1);
            r.dialing(0, id);
            assert_eq!(r.dial_failed(id, now), Some(0));
            let DialState::Waiting(at) = r.targets()[0].state else {
                panic!("not waiting")
            };
            delays.push(at - now);
            assert!(r.due(at - Duration::from_millis(1), |_| false).is_empty());
            assert_eq!(r.due(at, |_| false), vec![0]);
            now = at;
        }
        assert_eq!(delays[0], DIAL_BACKOFF_MIN);
        assert_eq!(delays[1], DIAL_BACKOFF_MIN * 2);
        assert_eq!(*delays.last().unwrap(), DIAL_BACKOFF_MAX);

        // A connection learns the peer; a long-lived one resets the backoff when it closes.
        let p = peer(3);
        let id = ConnectionId::new_unchecked(2);
        r.dialing(0, id);
        r.connected(id, p, now);
        assert_eq!(r.targets()[0].peer, Some(p));
        r.disconnected(p, now + DIAL_BACKOFF_RESET_AFTER);
        assert_eq!(
            r.targets()[0].state,
            DialState::Waiting(now + DIAL_BACKOFF_RESET_AFTER + DIAL_BACKOFF_MIN)
        );
        // Already connected through an inbound connection: not dialled.
        let later = now + DIAL_BACKOFF_RESET_AFTER * 2;
        assert!(r.due(later, |q| *q == p).is_empty());
        assert!(matches!(r.targets()[0].state, DialState::Connected(_)));
    }
}
