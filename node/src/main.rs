//! `govledger-node`: run a validator from a config file, or a single-node dev chain.

use clap::{Parser, Subcommand};
use govledger_node::config::Config;
use govledger_node::{dev, run};
use std::net::SocketAddr;
use std::path::PathBuf;

/// mimalloc returns freed pages to the system promptly; with glibc's per-thread arenas the
/// large, short-lived buffers of block sync and proposals stayed resident.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "govledger-node",
    version,
    about = "govledger validator node",
    after_help = "Examples:\n  govledger-node dev                       # single-node dev chain in ./devnet\n  govledger-node --config node-1/config.toml\n\nSee docs/operations.md."
)]
struct Cli {
    /// The node's config file (TOML; see docs/operations.md).
    #[arg(long, global = false)]
    config: Option<PathBuf>,
    /// Start although the chain store and the signing state disagree (a store with blocks
    /// but no signing state, or a signing state over an empty store). Read
    /// docs/operations.md ("Signing state") first: a wrong confirmation can double-sign.
    #[arg(long, global = true)]
    confirm_signing_state: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single-validator development chain, created in DIR on first start.
    Dev {
        /// Directory of the dev chain.
        #[arg(long, default_value = "devnet")]
        data: PathBuf,
        /// API listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        api: SocketAddr,
        /// libp2p listen address.
        #[arg(long, default_value = "/ip4/127.0.0.1/tcp/26656")]
        p2p: String,
    },
}

/// Logs every panic as one clear line (thread, location, message) before the default
/// report. A panic in an API handler is answered `500` and the node goes on; a panic in
/// the driver or the API server ends `run` with an error, so the process exits non-zero
/// (see `run::supervise`).
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location = %location,
            panic = %msg,
            "panic"
        );
        default(info);
    }));
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    install_panic_hook();
    let confirm = cli.confirm_signing_state;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match (cli.command, cli.config) {
            (Some(Command::Dev { data, api, p2p }), _) => {
                let (mut cfg, paths, created) = dev::prepare(&data, api, &p2p)?;
                cfg.confirm_signing_state = confirm;
                run::init_logging(&cfg);
                run::run(cfg, move |s| {
                    let verb = if created { "created" } else { "reusing" };
                    println!("govledger dev chain ({verb} {})", paths.dir.display());
                    println!("  API:         http://{}", s.api_addr);
                    println!("  genesis:     {}", paths.genesis.display());
                    println!("  client key:  {}  (member of `dev` with every role)", paths.client_key.display());
                    println!("  node key:    {}  (validator {})", paths.node_key.display(), s.node_key);
                    println!("  try:         govledger --node http://{} --key {} anchor README.md --wait", s.api_addr, paths.client_key.display());
                })
                .await
            }
            (None, Some(path)) => {
                let mut cfg = Config::load(&path)?;
                cfg.confirm_signing_state = confirm;
                run::init_logging(&cfg);
                run::run(cfg, |s| {
                    println!("govledger-node listening: API http://{} peer {}", s.api_addr, s.peer_id);
                })
                .await
            }
            (None, None) => Err(anyhow::anyhow!(
                "give --config FILE, or `dev` for a single-node dev chain (see --help)"
            )),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ledger::report::error_chain(e.as_ref()));
            std::process::ExitCode::from(1)
        }
    }
}
