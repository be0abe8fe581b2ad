//! `govledger testnet init`: everything a local N-validator network needs, in one folder.
//!
//! ```text
//! DIR/genesis.json             one department per validator (dept-1..N)
//! DIR/node-i/node.key          validator i's consensus and network key (mode 0600)
//! DIR/node-i/config.toml       its govledger-node config
//! DIR/clients/dept-i.key       a member key of dept-i holding every writing role
//! DIR/README.txt               the summary that is also printed
//! ```
//!
//! The config is written as TOML text here (the CLI does not link the node); its fields are
//! those of `node/src/config.rs`.

use crate::exit::{LocalError, UsageError};
use crate::keys::peer_id;
use ledger::genesis::{ConsensusParams, Department, Genesis, Member, StateFormat};
use ledger::keyfile;
use ledger::tx::{Role, RoleSet};
use ledger::validator::Validator;
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Most validators `testnet init` creates (the validator-set bound).
pub const TESTNET_VALIDATORS_MAX: u32 = ledger::validator::VALIDATOR_SET_MAX as u32;

/// Readable names for the first departments; further ones are numbered.
const DEPARTMENT_NAMES: [&str; 8] = [
    "Land and Resources Bureau",
    "Planning and Construction Bureau",
    "Market Regulation Bureau",
    "Health Commission",
    "Civil Affairs Bureau",
    "Public Security Bureau",
    "Human Resources and Social Security Bureau",
    "Data Administration Bureau",
];

/// The roles of the testnet client keys: every role that writes records.
pub const CLIENT_ROLES: [Role; 6] = [
    Role::Approvals,
    Role::LandRegistry,
    Role::Catalog,
    Role::DataAccess,
    Role::Anchor,
    Role::Governance,
];

/// What to create.
#[derive(Clone, Debug)]
pub struct TestnetOptions {
    /// Number of validators (and departments).
    pub validators: u32,
    /// Output folder (must not exist or be empty).
    pub out: PathBuf,
    /// Chain id.
    pub chain_id: String,
    /// P2P port of node 1; node i listens on `base_port + i - 1`.
    pub base_port: u16,
    /// API port of node 1; node i serves on `api_base_port + i - 1`.
    pub api_base_port: u16,
    /// The address the nodes reach each other at.
    pub host: Ipv4Addr,
    /// Genesis time (ms since the epoch).
    pub genesis_time_ms: u64,
}

/// One node of the testnet.
#[derive(Clone, Debug, Serialize)]
pub struct TestnetNode {
    /// `node-i`.
    pub name: String,
    /// Its department.
    pub department: String,
    /// Its config file.
    pub config: PathBuf,
    /// Its key file.
    pub key_file: PathBuf,
    /// Its validator (and node) public key.
    pub public_key: ledger::PublicKey,
    /// Its libp2p peer id.
    pub peer_id: String,
    /// Its P2P address.
    pub p2p_address: String,
    /// Its API URL.
    pub api_url: String,
}

/// One client key.
#[derive(Clone, Debug, Serialize)]
pub struct TestnetClient {
    /// Its department.
    pub department: String,
    /// Its key file.
    pub key_file: PathBuf,
    /// Its public key.
    pub public_key: ledger::PublicKey,
}

/// What `testnet init` created.
#[derive(Clone, Debug, Serialize)]
pub struct Testnet {
    /// Chain id.
    pub chain_id: String,
    /// The genesis file.
    pub genesis: PathBuf,
    /// Its hash (the trust root verifiers pin).
    pub genesis_hash: ledger::hash::Hash,
    /// The nodes.
    pub nodes: Vec<TestnetNode>,
    /// The client keys.
    pub clients: Vec<TestnetClient>,
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The name of department `i` (1-based).
pub fn department_name(i: u32) -> String {
    match DEPARTMENT_NAMES.get((i - 1) as usize) {
        Some(n) => (*n).to_string(),
        None => format!("Department {i}"),
    }
}

fn port(base: u16, i: u32, what: &str) -> Result<u16, UsageError> {
    u16::try_from(u32::from(base) + i - 1)
        .map_err(|_| UsageError(format!("{what} {base} + {} exceeds 65535", i - 1)))
}

/// Renders node `i`'s config.
fn config_toml(
    name: &str,
    department: &str,
    listen_host: Ipv4Addr,
    p2p_port: u16,
    bootstrap: &[String],
    api: &str,
) -> String {
    let boot = bootstrap
        .iter()
        .map(|b| format!("    {},\n", toml_str(b)))
        .collect::<String>();
    format!(
        "# govledger-node config of {name} (validator of {department}), written by `govledger testnet init`.\n\
         # Paths are relative to this file. Start with: govledger-node --config {name}/config.toml\n\
         data_dir = {}\n\
         genesis = {}\n\
         node_key = {}\n\
         p2p_listen = {}\n\
         bootstrap = [\n{boot}]\n\
         api_listen = {}\n\
         log_format = \"human\"\n\
         log_level = \"info\"\n",
        toml_str("data"),
        toml_str("../genesis.json"),
        toml_str("node.key"),
        toml_str(&format!("/ip4/{listen_host}/tcp/{p2p_port}")),
        toml_str(api),
    )
}

fn ensure_empty_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(LocalError {
                    path: dir.display().to_string(),
                    reason: "exists and is not empty; refusing to overwrite a testnet".into(),
                }
                .into());
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| LocalError::io(dir, e))?;
            Ok(())
        }
        Err(e) => Err(LocalError::io(dir, e).into()),
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), LocalError> {
    std::fs::write(path, text).map_err(|e| LocalError::io(path, e))
}

fn mkdir(path: &Path) -> Result<(), LocalError> {
    std::fs::create_dir_all(path).map_err(|e| LocalError::io(path, e))
}

/// Creates the testnet folder.
pub fn init(o: &TestnetOptions) -> anyhow::Result<Testnet> {
    if o.validators == 0 || o.validators > TESTNET_VALIDATORS_MAX {
        return Err(UsageError(format!(
            "--validators must be between 1 and {TESTNET_VALIDATORS_MAX}"
        ))
        .into());
    }
    let n = o.validators;
    // Check every port before writing anything.
    port(o.base_port, n, "--base-port")?;
    port(o.api_base_port, n, "--api-base-port")?;
    ensure_empty_dir(&o.out)?;
    // Loopback testnets stay on loopback; otherwise nodes listen on every interface and
    // reach each other at `host`.
    let listen_host = if o.host.is_loopback() {
        o.host
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let clients_dir = o.out.join("clients");
    mkdir(&clients_dir)?;
    let mut departments = vec![];
    let mut validators = vec![];
    let mut members = vec![];
    let mut nodes = vec![];
    let mut clients = vec![];
    let roles: RoleSet = CLIENT_ROLES.into_iter().collect();
    for i in 1..=n {
        let dept = format!("dept-{i}");
        let name = format!("node-{i}");
        let dir = o.out.join(&name);
        mkdir(&dir)?;
        let key_file = dir.join("node.key");
        let key = keyfile::generate(&key_file)?.public_key();
        let p2p_port = port(o.base_port, i, "--base-port")?;
        let api_port = port(o.api_base_port, i, "--api-base-port")?;
        let p2p_address = format!("/ip4/{}/tcp/{p2p_port}", o.host);
        departments.push(Department {
            id: dept.clone(),
            name: department_name(i),
            governance_weight: 1,
        });
        validators.push(Validator {
            department: dept.clone(),
            public_key: key,
            power: 1,
            address: p2p_address.clone(),
        });
        nodes.push(TestnetNode {
            name,
            department: dept.clone(),
            config: dir.join("config.toml"),
            key_file,
            public_key: key,
            peer_id: peer_id(&key),
            p2p_address,
            api_url: format!("http://{}:{api_port}", o.host),
        });
        let client_file = clients_dir.join(format!("{dept}.key"));
        let client = keyfile::generate(&client_file)?.public_key();
        members.push(Member {
            key: client,
            department: dept.clone(),
            roles,
            name: format!("{dept} clerk"),
        });
        clients.push(TestnetClient {
            department: dept,
            key_file: client_file,
            public_key: client,
        });
    }
    let genesis = Genesis {
        chain_id: o.chain_id.clone(),
        genesis_time_ms: o.genesis_time_ms,
        departments,
        members,
        validators,
        params: ConsensusParams::default(),
        state_format: StateFormat::CURRENT,
    };
    genesis
        .validate()
        .map_err(|e| UsageError(format!("the testnet genesis is not valid: {e}")))?;
    let genesis_path = o.out.join("genesis.json");
    write_file(&genesis_path, &(genesis.to_json() + "\n"))?;
    for (i, node) in nodes.iter().enumerate() {
        let bootstrap: Vec<String> = nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, other)| other.p2p_address.clone())
            .collect();
        let p2p_port = port(o.base_port, i as u32 + 1, "--base-port")?;
        let api = node
            .api_url
            .strip_prefix("http://")
            .unwrap_or(&node.api_url)
            .to_string();
        let text = config_toml(
            &node.name,
            &node.department,
            listen_host,
            p2p_port,
            &bootstrap,
            &api,
        );
        write_file(&node.config, &text)?;
    }
    let net = Testnet {
        chain_id: genesis.chain_id.clone(),
        genesis: genesis_path,
        genesis_hash: genesis.hash(),
        nodes,
        clients,
    };
    write_file(&o.out.join("README.txt"), &summary(&net))?;
    Ok(net)
}

/// The human summary: how to start the nodes and which keys and URLs to use.
pub fn summary(t: &Testnet) -> String {
    let mut s = format!(
        "govledger testnet {:?}: {} validators\n\ngenesis       {}\ngenesis hash  {} (the trust root verifiers pin)\n\nnodes:\n",
        t.chain_id,
        t.nodes.len(),
        t.genesis.display(),
        t.genesis_hash
    );
    for n in &t.nodes {
        s += &format!(
            "  {}  {}  api {}  p2p {}  peer {}\n      govledger-node --config {}\n",
            n.name,
            n.department,
            n.api_url,
            n.p2p_address,
            n.peer_id,
            n.config.display()
        );
    }
    s += "\nclient keys (roles: approvals, land_registry, catalog, data_access, anchor, governance):\n";
    for c in &t.clients {
        s += &format!("  {}  {}\n", c.department, c.key_file.display());
    }
    if let (Some(n), Some(c)) = (t.nodes.first(), t.clients.first()) {
        s += &format!(
            "\ntry:\n  export GOVLEDGER_NODE={} GOVLEDGER_KEY={}\n  govledger anchor {} --label genesis --wait\n",
            n.api_url,
            c.key_file.display(),
            t.genesis.display()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(toml_str("x\u{1}"), "\"x\\u0001\"");
    }

    #[test]
    fn names_and_ports() {
        assert_eq!(department_name(1), "Land and Resources Bureau");
        assert_eq!(department_name(20), "Department 20");
        assert_eq!(port(26656, 3, "p").unwrap(), 26658);
        assert!(port(65535, 2, "p").is_err());
    }
}
