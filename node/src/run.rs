//! Starting and stopping a node: config → store → network → driver → API, and a clean
//! shutdown on SIGTERM or Ctrl-C (no half-written block; the database is closed).

use crate::app::{ANNOUNCE_QUEUE_MAX, App, NodeStatus, Waiters};
use crate::config::{Config, LogFormat};
use crate::driver::{Driver, DriverConfig, allowed_peers};
use crate::mempool::{Mempool, MempoolLimits};
use crate::metrics::Metrics;
use crate::network::{self, NetworkConfig};
use anyhow::Context;
use ledger::genesis::Genesis;
use ledger::state::StateView;
use ledger::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info};

/// Sets up logging from the config (`RUST_LOG` overrides the level).
pub fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

/// Reads and validates the genesis file.
pub fn load_genesis(path: &std::path::Path) -> anyhow::Result<Genesis> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read genesis {}", path.display()))?;
    if meta.len() > ledger::genesis::GENESIS_BYTES_MAX as u64 {
        anyhow::bail!(
            "genesis {} is larger than {} bytes",
            path.display(),
            ledger::genesis::GENESIS_BYTES_MAX
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read genesis {}", path.display()))?;
    Genesis::from_json(&text).with_context(|| format!("genesis {}", path.display()))
}

/// A running node's handles, for printing where it listens.
pub struct Started {
    /// Where the API listens.
    pub api_addr: std::net::SocketAddr,
    /// The node's peer id.
    pub peer_id: String,
    /// The node's key.
    pub node_key: ledger::PublicKey,
}

/// Runs a node until SIGTERM/Ctrl-C. `on_started` is called once it listens.
pub async fn run(cfg: Config, on_started: impl FnOnce(&Started)) -> anyhow::Result<()> {
    let genesis = load_genesis(&cfg.genesis)?;
    let key = ledger::keyfile::read(&cfg.node_key).context("node key")?;
    let db_path = cfg.data_dir.join("db");
    // Created here with synced parents: RocksDB syncs what is inside `db`, not `db`'s own
    // entry in the data directory (a power cut could lose the whole store).
    ledger::durable::create_dir_all(&db_path)
        .with_context(|| format!("cannot create data directory {}", db_path.display()))?;
    let store = Arc::new(
        Store::open_with(&db_path, &genesis, cfg.store)
            .with_context(|| format!("cannot open the store in {}", db_path.display()))?,
    );
    let tip = store.stored_tip()?;
    info!(
        chain_id = %genesis.chain_id,
        genesis = %genesis.hash(),
        height = tip.height,
        node_key = %key.public_key(),
        "store opened"
    );
    let metrics = Arc::new(Metrics::new());
    metrics.height.set(tip.height as i64);

    let mut bootstrap = Vec::new();
    for b in &cfg.bootstrap {
        bootstrap.push(
            b.parse()
                .with_context(|| format!("bootstrap address {b}"))?,
        );
    }
    let me = key.public_key();
    for v in store
        .state()
        .validator_sets()?
        .latest()
        .map(|s| s.validators().to_vec())
        .unwrap_or_default()
    {
        if v.public_key != me
            && let Ok(addr) = v.address.parse()
            && !bootstrap.contains(&addr)
        {
            bootstrap.push(addr);
        }
    }
    let net_cfg = NetworkConfig {
        key: key.clone(),
        listen: cfg.p2p_listen.parse().context("p2p_listen")?,
        bootstrap,
        allowed: allowed_peers(&store)?,
    };
    let (net, events) = network::spawn(net_cfg, store.clone(), metrics.clone())
        .await
        .context("cannot start networking")?;

    let mempool = Arc::new(Mempool::new(
        genesis.chain_id.clone(),
        MempoolLimits {
            txs_max: cfg.mempool.txs_max,
            bytes_max: cfg.mempool.bytes_max,
        },
        tip.height,
    ));
    let initial = NodeStatus {
        height: tip.height,
        block_hash: tip.block_hash,
        block_time_ms: tip.time_ms,
        log_size: tip.log_size,
        log_root: store.log_root_at(tip.log_size)?,
        state_root: tip.state_root,
        round: 0,
        syncing: false,
        peers: vec![],
        validators: vec![],
    };
    let (status_tx, status_rx) = watch::channel(initial);
    let (genesis_time_ms, idle_block_interval_ms) = (
        genesis.genesis_time_ms,
        store.state().params()?.idle_block_interval_ms,
    );
    let (announce_tx, announce_rx) = mpsc::channel(ANNOUNCE_QUEUE_MAX);
    let app = Arc::new(App {
        genesis_hash: genesis.hash(),
        genesis: Arc::new(genesis),
        store: store.clone(),
        mempool,
        node_key: me,
        peer_id: net.local_peer_id(),
        status: status_rx,
        waiters: Waiters::default(),
        metrics,
        api_config: cfg.api.clone(),
        announce: announce_tx,
        health: crate::health::Health::new(genesis_time_ms, idle_block_interval_ms, tip.height),
    });
    let signing = crate::signing::open_checked(
        &cfg.data_dir,
        &store,
        &crate::signing::Binding {
            version: crate::signing::SIGNING_FORMAT_VERSION,
            chain_id: app.genesis.chain_id.clone(),
            genesis_hash: app.genesis_hash,
            key: key.public_key(),
        },
        cfg.confirm_signing_state,
    )?;
    let driver = Driver::new(
        app.clone(),
        net.clone(),
        events,
        announce_rx,
        status_tx,
        DriverConfig {
            key,
            #[cfg(feature = "fault-injection")]
            equivocate: cfg.testing.equivocate,
            signing,
        },
    )?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let driver_task = tokio::spawn(driver.run(shutdown_rx.clone()));

    let listener = tokio::net::TcpListener::bind(cfg.api_listen)
        .await
        .with_context(|| format!("cannot listen for the API on {}", cfg.api_listen))?;
    let api_addr = listener.local_addr()?;
    let mut api_shutdown = shutdown_rx.clone();
    let api_task = tokio::spawn(crate::api::serve(app.clone(), listener, async move {
        let _ = api_shutdown.wait_for(|s| *s).await;
    }));
    on_started(&Started {
        api_addr,
        peer_id: app.peer_id.clone(),
        node_key: app.node_key,
    });
    info!(api = %api_addr, peer_id = %app.peer_id, "node running");

    let failure = supervise(&app, driver_task, api_task, shutdown_tx).await;
    drop(net);
    drop(app);
    close_store(store).await;
    match failure {
        None => {
            info!("stopped");
            Ok(())
        }
        Some((what, None)) => Err(anyhow::anyhow!("{what}; the node stopped")),
        Some((what, Some(code))) => {
            // The driver refused to go on (it could sign or commit what it cannot stand
            // behind): its own exit code, after the store closed cleanly.
            eprintln!("error: {what}; the node stopped");
            std::process::exit(code);
        }
    }
}

/// How long shutdown waits for the node's threads and tasks to let go of the store.
pub const STORE_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until SIGTERM/Ctrl-C or until the driver or the API server ends on its own (a
/// panic, or a part it depends on stopped): then stops the rest in order, driver first
/// (a commit in progress completes), then the API. Returns what failed, if anything.
async fn supervise(
    app: &App,
    mut driver_task: JoinHandle<Result<(), crate::driver::DriverFailed>>,
    mut api_task: JoinHandle<std::io::Result<()>>,
    shutdown_tx: watch::Sender<bool>,
) -> Option<(String, Option<i32>)> {
    let (mut driver_done, mut api_done) = (false, false);
    let failure = tokio::select! {
        () = wait_for_signal() => None,
        r = &mut driver_task => {
            driver_done = true;
            Some(match r {
                Ok(Err(f)) => (format!("the consensus driver failed: {}", f.reason), Some(f.code)),
                r => (ended("the consensus driver", r.map(|_| Ok(()))), None),
            })
        }
        r = &mut api_task => {
            api_done = true;
            Some((ended("the API server", r), None))
        }
    };
    match &failure {
        None => info!("shutting down"),
        Some((what, _)) => {
            error!(what = %what, "a part of the node stopped; shutting the node down");
            app.health.stopped(what.clone());
        }
    }
    let _ = shutdown_tx.send(true);
    if !driver_done {
        let _ = driver_task.await;
    }
    if !api_done {
        let _ = api_task.await;
    }
    failure
}

/// Describes how a task that should have run until shutdown ended.
fn ended(what: &str, r: Result<std::io::Result<()>, tokio::task::JoinError>) -> String {
    match r {
        Ok(Ok(())) => format!("{what} stopped unexpectedly"),
        Ok(Err(e)) => format!("{what} failed: {e}"),
        Err(e) if e.is_panic() => {
            let p = e.into_panic();
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            format!("{what} panicked: {msg}")
        }
        Err(e) => format!("{what} was cancelled: {e}"),
    }
}

/// Closes the database once nothing else holds it. The intake thread, the network actor
/// and blocking tasks let go of the store shortly after the driver and the API stop;
/// closing it here, before `run` returns, joins RocksDB's background threads before the
/// process exits. (Leaving the last reference to a thread that outlived `main` let the
/// database close while the process ran its exit handlers: SIGABRT, `pthread lock:
/// Invalid argument`.)
async fn close_store(store: Arc<Store>) {
    let deadline = tokio::time::Instant::now() + STORE_RELEASE_TIMEOUT;
    let mut store = store;
    loop {
        match Arc::try_unwrap(store) {
            Ok(s) => {
                // Dropping may join background compactions: off the async workers.
                let _ = tokio::task::spawn_blocking(move || drop(s)).await;
                return;
            }
            Err(still) => {
                if tokio::time::Instant::now() >= deadline {
                    error!(
                        holders = Arc::strong_count(&still) - 1,
                        "the store is still in use after shutdown; it closes when the process exits"
                    );
                    // Keep it open: closing under a running user is worse than exiting.
                    std::mem::forget(still);
                    return;
                }
                store = still;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
