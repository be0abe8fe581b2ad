//! `govledger-node dev`: a single-validator development chain in one directory, created
//! on first start and reused afterwards.
//!
//! ```text
//! DIR/genesis.json   the chain (one department, `dev`, one validator)
//! DIR/node.key       the validator's key
//! DIR/client.key     a member key of `dev` holding every role: write records at once
//! DIR/config.toml    the node config (data in DIR/data)
//! ```

use crate::config::Config;
use anyhow::Context;
use ledger::genesis::{ConsensusParams, Department, Genesis, Member, StateFormat};
use ledger::tx::{Role, RoleSet};
use ledger::validator::Validator;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Chain id of dev chains.
pub const DEV_CHAIN_ID: &str = "govledger-dev";

/// Paths of a dev directory.
pub struct DevPaths {
    /// The directory.
    pub dir: PathBuf,
    /// `genesis.json`.
    pub genesis: PathBuf,
    /// `node.key`.
    pub node_key: PathBuf,
    /// `client.key`.
    pub client_key: PathBuf,
    /// `config.toml`.
    pub config: PathBuf,
}

impl DevPaths {
    /// The paths under `dir`.
    pub fn new(dir: &Path) -> Self {
        DevPaths {
            dir: dir.to_path_buf(),
            genesis: dir.join("genesis.json"),
            node_key: dir.join("node.key"),
            client_key: dir.join("client.key"),
            config: dir.join("config.toml"),
        }
    }
}

/// Creates the dev chain in `dir` if it does not exist yet, and returns its config with
/// the API and p2p addresses given on the command line.
pub fn prepare(dir: &Path, api: SocketAddr, p2p: &str) -> anyhow::Result<(Config, DevPaths, bool)> {
    let paths = DevPaths::new(dir);
    ledger::durable::create_dir_all(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let created = !paths.genesis.exists();
    if created {
        let node = if paths.node_key.exists() {
            ledger::keyfile::read(&paths.node_key)?
        } else {
            ledger::keyfile::generate(&paths.node_key)?
        };
        let client = if paths.client_key.exists() {
            ledger::keyfile::read(&paths.client_key)?
        } else {
            ledger::keyfile::generate(&paths.client_key)?
        };
        let mut roles: RoleSet = Role::ALL.into_iter().collect();
        roles.remove(Role::Node);
        let genesis = Genesis {
            chain_id: DEV_CHAIN_ID.into(),
            genesis_time_ms: crate::app::now_ms(),
            departments: vec![Department {
                id: "dev".into(),
                name: "Development Department".into(),
                governance_weight: 1,
            }],
            members: vec![Member {
                key: client.public_key(),
                department: "dev".into(),
                roles,
                name: "dev client".into(),
            }],
            validators: vec![Validator {
                department: "dev".into(),
                public_key: node.public_key(),
                power: 1,
                address: String::new(),
            }],
            params: ConsensusParams {
                // A lone validator needs no slack for peers: keep dev snappy.
                timeout_propose_ms: 1000,
                idle_block_interval_ms: 5000,
                ..ConsensusParams::default()
            },
            state_format: StateFormat::CURRENT,
        };
        genesis.validate()?;
        write_new(&paths.genesis, &genesis.to_json())?;
    }
    let cfg = Config {
        data_dir: dir.join("data"),
        genesis: paths.genesis.clone(),
        node_key: paths.node_key.clone(),
        p2p_listen: p2p.to_string(),
        api_listen: api,
        ..Config::default()
    };
    cfg.validate()?;
    if !paths.config.exists() {
        let mut on_disk = cfg.clone();
        on_disk.data_dir = "data".into();
        on_disk.genesis = "genesis.json".into();
        on_disk.node_key = "node.key".into();
        write_new(&paths.config, &on_disk.to_toml())?;
    }
    Ok((cfg, paths, created))
}

/// Synced file and directory: after a power cut the file is whole or absent (the power-loss
/// test found `genesis.json` gone after a cut, and a new chain created in its place).
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    ledger::durable::write_atomic(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let api: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (cfg, paths, created) = prepare(dir.path(), api, "/ip4/127.0.0.1/tcp/0").unwrap();
        assert!(created);
        let g = crate::run::load_genesis(&cfg.genesis).unwrap();
        let client = ledger::keyfile::read(&paths.client_key).unwrap();
        assert!(g.members.iter().any(|m| m.key == client.public_key()));
        let (_, _, again) = prepare(dir.path(), api, "/ip4/127.0.0.1/tcp/0").unwrap();
        assert!(!again);
        let g2 = crate::run::load_genesis(&cfg.genesis).unwrap();
        assert_eq!(g.hash(), g2.hash());
        Config::load(&paths.config).unwrap();
    }
}
