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
use tokio::sync::{mpsc, watch};
use tracing::info;

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
    });
    let driver = Driver::new(
        app.clone(),
        net.clone(),
        events,
        announce_rx,
        status_tx,
        DriverConfig {
            key,
            equivocate: cfg.testing.equivocate,
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

    wait_for_signal().await;
    info!("shutting down");
    let _ = shutdown_tx.send(true);
    // The driver finishes the step it is in: a commit in progress completes.
    let _ = driver_task.await;
    let _ = api_task.await;
    drop(net);
    drop(app);
    // The last reference to the store closes the database.
    match Arc::try_unwrap(store) {
        Ok(store) => drop(store),
        Err(_) => info!("store still referenced by background tasks; it closes on exit"),
    }
    info!("stopped");
    Ok(())
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
