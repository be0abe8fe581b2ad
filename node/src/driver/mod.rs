//! The consensus driver: the node's core actor. It owns the consensus state machine and
//! the committed tip, and is the only writer of blocks to the store.
//!
//! Split in two, as a runtime-agnostic core and a thin shell (see `docs/simulation.md`):
//!
//! * [`core::DriverCore`]: every decision, synchronous, with time given to it: it executes
//!   proposed blocks before consensus may prevote for them, builds blocks when this node
//!   proposes, commits decided blocks, keeps candidate blocks per round
//!   ([`blocks`]), plans block sync without ever waiting on it ([`sync`]), and writes the
//!   signing state to its own file before a signed message leaves.
//! * this shell: the tokio task that feeds the core network events, transactions to
//!   gossip, sync answers and wake-ups at [`core::DriverCore::next_wakeup_ms`], and
//!   carries out its effects: gossip, strikes, allow-list changes, sync requests (each a
//!   task of its own, whose blocks are verified on the blocking pool before they come
//!   back), the intake, and stopping the node on a fatal error.
//!
//! The whole-node simulation (`node/tests/sim`) drives the same core with simulated time,
//! network and faults.

pub mod blocks;
pub mod core;
pub mod sync;
pub mod timers;

pub use self::core::{
    CoreConfig, CoreSizes, DriverCore, DriverInput, Effect, Now, allowed_peers, verify_synced,
};
use crate::app::{App, NodeStatus};
use crate::intake::TxIntake;
use crate::network::{NetEvent, NetEvents, NetworkHandle};
use crate::signing::SigningFile;
use consensus::PersistedState;
use ledger::SecretKey;
use ledger::execute::VerifiedTx;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync::SyncedBlock;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// A sync request waits at most this long in the shell (the core gives up on its own
/// clock as well, see [`sync::SYNC_REQUEST_TIMEOUT_MS`]).
const SYNC_TIMEOUT: Duration = Duration::from_millis(sync::SYNC_REQUEST_TIMEOUT_MS);
/// Sync answers waiting for the driver (bounded by the requests in flight).
const FETCHED_QUEUE_MAX: usize = sync::SYNC_INFLIGHT_MAX * 2;

/// What the driver needs beyond the shared [`App`].
pub struct DriverConfig {
    /// The node key (the consensus key if this node is a validator).
    pub key: SecretKey,
    /// Fault injection: equivocate on every prevote (see `TestingConfig`; only in builds
    /// with the `fault-injection` feature).
    #[cfg(feature = "fault-injection")]
    pub equivocate: bool,
    /// The signing-state file and what it held.
    pub signing: (SigningFile, Option<PersistedState>),
}

/// Why the driver stopped the node.
#[derive(Debug)]
pub struct DriverFailed {
    /// Process exit code.
    pub code: i32,
    /// Why.
    pub reason: String,
}

/// The driver shell.
pub struct Driver {
    core: DriverCore,
    app: Arc<App>,
    net: NetworkHandle,
    events: NetEvents,
    announce: mpsc::Receiver<Vec<VerifiedTx>>,
    status_tx: watch::Sender<NodeStatus>,
    intake: TxIntake,
    wake: Arc<tokio::sync::Notify>,
    fetched_tx: mpsc::Sender<(u64, Result<Vec<SyncedBlock>, String>)>,
    fetched_rx: mpsc::Receiver<(u64, Result<Vec<SyncedBlock>, String>)>,
    origin: Instant,
}

impl Driver {
    /// Builds the driver at the store's tip, restoring the persisted signing state.
    pub fn new(
        app: Arc<App>,
        net: NetworkHandle,
        events: NetEvents,
        announce: mpsc::Receiver<Vec<VerifiedTx>>,
        status_tx: watch::Sender<NodeStatus>,
        cfg: DriverConfig,
    ) -> anyhow::Result<Self> {
        let wake = Arc::new(tokio::sync::Notify::new());
        let intake = TxIntake::spawn(
            app.store.clone(),
            app.mempool.clone(),
            net.clone(),
            app.metrics.clone(),
            wake.clone(),
        )?;
        let origin = Instant::now();
        let core = DriverCore::new(
            app.clone(),
            status_tx.clone(),
            CoreConfig {
                key: cfg.key,
                #[cfg(feature = "fault-injection")]
                equivocate: cfg.equivocate,
                signing: cfg.signing,
                seen: intake.seen().clone(),
            },
            now(origin),
        )?;
        let (fetched_tx, fetched_rx) = mpsc::channel(FETCHED_QUEUE_MAX);
        Ok(Driver {
            core,
            app,
            net,
            events,
            announce,
            status_tx,
            intake,
            wake,
            fetched_tx,
            fetched_rx,
            origin,
        })
    }

    /// Runs until `shutdown` turns true, or until the core fails (then it says why). A
    /// block being committed is always finished.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), DriverFailed> {
        self.publish_peers();
        let mut input = DriverInput::Wake;
        loop {
            let now = now(self.origin);
            let core = &mut self.core;
            let effects = tokio::task::block_in_place(|| core.handle(now, input));
            self.carry_out(effects)?;
            let wake_at = self.origin + Duration::from_millis(self.core.next_wakeup_ms());
            input = tokio::select! {
                biased;
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        info!("driver stopping");
                        return Ok(());
                    }
                    DriverInput::Wake
                }
                Some((id, result)) = self.fetched_rx.recv() => DriverInput::Fetched { id, result },
                ev = self.events.recv() => match ev {
                    Some(NetEvent::Gossip { from, msg }) => DriverInput::Gossip { from, msg },
                    Some(NetEvent::PeerConnected(p)) => {
                        self.publish_peers();
                        DriverInput::PeerConnected(p)
                    }
                    Some(NetEvent::PeerDisconnected(p)) => {
                        self.publish_peers();
                        DriverInput::PeerDisconnected(p)
                    }
                    None => {
                        error!("network stopped; driver stopping");
                        return Ok(());
                    }
                },
                Some(txs) = self.announce.recv() => DriverInput::Announce(self.drain_announced(txs)),
                _ = self.wake.notified() => DriverInput::Wake,
                _ = tokio::time::sleep_until(wake_at.into()) => DriverInput::Wake,
            };
        }
    }

    /// More queued announcements, up to one gossip batch.
    fn drain_announced(&mut self, mut txs: Vec<VerifiedTx>) -> Vec<VerifiedTx> {
        while txs.len() < self::core::GOSSIP_BATCH_TXS {
            match self.announce.try_recv() {
                Ok(more) => txs.extend(more),
                Err(_) => break,
            }
        }
        txs
    }

    fn publish_peers(&self) {
        let peers = self.net.peers();
        self.app.metrics.peers.set(peers.len() as i64);
        self.status_tx.send_modify(|s| s.peers = peers);
    }

    fn carry_out(&mut self, effects: Vec<Effect>) -> Result<(), DriverFailed> {
        for e in effects {
            match e {
                Effect::Broadcast(m) => self.net.broadcast(m),
                Effect::SendTo(p, m) => self.net.send_to(p, m),
                Effect::Report { peer, reason } => self.net.report_invalid(peer, reason),
                Effect::SetAllowed(keys) => self.net.set_allowed(keys),
                Effect::PeerTxs { from, txs } => self.intake.submit(from, txs),
                Effect::Fetch { id, peer, req } => self.fetch(id, peer, req),
                Effect::Fatal { code, reason } => return Err(DriverFailed { code, reason }),
            }
        }
        Ok(())
    }

    /// One sync request as a task of its own: fetch, verify the transactions on the
    /// blocking pool, hand the result to the driver.
    fn fetch(&self, id: u64, peer: ledger::PublicKey, req: crate::messages::SyncRequest) {
        let net = self.net.clone();
        let back = self.fetched_tx.clone();
        let mempool = self.app.mempool.clone();
        tokio::spawn(async move {
            let result = match tokio::time::timeout(SYNC_TIMEOUT, net.request_blocks(peer, req))
                .await
            {
                Ok(Ok(resp)) => {
                    let blocks = resp.blocks;
                    tokio::task::spawn_blocking(move || verify_synced(blocks, |h| mempool.get(h)))
                        .await
                        .map_err(|e| format!("verification task failed: {e}"))
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out".to_string()),
            };
            if let Err(e) = &result {
                warn!(%peer, error = %e, "sync request failed");
            }
            let _ = back.send((id, result)).await;
        });
    }
}

fn now(origin: Instant) -> Now {
    Now {
        mono_ms: origin.elapsed().as_millis() as u64,
        wall_ms: crate::app::now_ms(),
    }
}
