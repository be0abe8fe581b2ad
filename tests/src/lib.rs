//! End-to-end test support: a cluster of real `govledger-node` processes on loopback,
//! a small HTTP client for their API, and a file system that loses unsynced writes
//! ([`powerloss`]).
//!
//! The node binary is taken from the build directory of the test binary itself
//! (`target/release/govledger-node`), which `scripts/test.sh` builds before the tests run.

pub mod powerloss;

use ledger::crypto::SecretKey;
use ledger::genesis::{ConsensusParams, Department, Genesis, Member, StateFormat};
use ledger::hash::Hash;
use ledger::tx::{Role, RoleSet, SignedTx, Tx, TxBody};
use ledger::validator::Validator;
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the node binary is.
pub fn node_binary() -> PathBuf {
    if let Ok(p) = std::env::var("GOVLEDGER_NODE_BIN") {
        return PathBuf::from(p);
    }
    // target/release/deps/<test> → target/release/govledger-node
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("govledger-node");
    assert!(
        bin.exists(),
        "{} not found: build it first (scripts/test.sh does: cargo build --release --workspace --bins)",
        bin.display()
    );
    bin
}

/// A free TCP port on 127.0.0.1 (racy by nature; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One node of a test cluster.
pub struct Node {
    /// Index in the cluster.
    pub index: usize,
    /// Its directory (config, key, data).
    pub dir: PathBuf,
    /// API base URL.
    pub url: String,
    /// Validator key.
    pub key: SecretKey,
    /// The process, while running.
    pub child: Option<Child>,
}

impl Node {
    /// Starts the node process (logs to `dir/node.log`).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "node {} already running", self.index);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("node.log"))
            .expect("log file");
        let child = Command::new(node_binary())
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .env("RUST_LOG", "info")
            .spawn()
            .expect("start node");
        self.child = Some(child);
    }

    /// Stops the node with SIGTERM (clean shutdown) and waits.
    pub fn stop(&mut self) {
        let _ = self.stop_status();
    }

    /// Stops the node with SIGTERM and returns how it exited (`None` if it was not
    /// running, or did not stop within 20 s and was killed).
    pub fn stop_status(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        send_signal(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kills the node with SIGKILL (a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Deletes the node's data (a wiped disk).
    pub fn wipe(&mut self) {
        assert!(self.child.is_none());
        let _ = std::fs::remove_dir_all(self.dir.join("data"));
    }

    /// An API client for this node.
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }
}

fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of validators on loopback, one department each, plus one client key per
/// department holding every role.
pub struct Cluster {
    /// Keeps the directory alive.
    pub root: tempfile::TempDir,
    /// The genesis.
    pub genesis: Genesis,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// Client keys, one per department (`dept-i` for node i).
    pub clients: Vec<SecretKey>,
}

/// Consensus parameters for tests: short timeouts, idle blocks every second.
pub fn test_params() -> ConsensusParams {
    ConsensusParams {
        timeout_propose_ms: 1000,
        timeout_propose_delta_ms: 500,
        timeout_prevote_ms: 500,
        timeout_prevote_delta_ms: 250,
        timeout_precommit_ms: 500,
        timeout_precommit_delta_ms: 250,
        idle_block_interval_ms: 1000,
        ..ConsensusParams::default()
    }
}

impl Cluster {
    /// Creates (does not start) a cluster of `n` validators.
    pub fn new(n: usize) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let keys: Vec<SecretKey> = (0..n)
            .map(|_| SecretKey::generate().expect("rng"))
            .collect();
        let clients: Vec<SecretKey> = (0..n)
            .map(|_| SecretKey::generate().expect("rng"))
            .collect();
        let p2p: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let api: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut roles: RoleSet = Role::ALL.into_iter().collect();
        roles.remove(Role::Node);
        let genesis = Genesis {
            chain_id: "e2e".into(),
            genesis_time_ms: 1_700_000_000_000,
            departments: (0..n)
                .map(|i| Department {
                    id: format!("dept-{i}"),
                    name: format!("Department {i}"),
                    governance_weight: 1,
                })
                .collect(),
            members: clients
                .iter()
                .enumerate()
                .map(|(i, k)| Member {
                    key: k.public_key(),
                    department: format!("dept-{i}"),
                    roles,
                    name: format!("clerk {i}"),
                })
                .collect(),
            validators: keys
                .iter()
                .enumerate()
                .map(|(i, k)| Validator {
                    department: format!("dept-{i}"),
                    public_key: k.public_key(),
                    power: 1,
                    address: format!("/ip4/127.0.0.1/tcp/{}", p2p[i]),
                })
                .collect(),
            params: test_params(),
            state_format: StateFormat::CURRENT,
        };
        genesis.validate().expect("genesis");
        std::fs::write(root.path().join("genesis.json"), genesis.to_json()).expect("genesis");
        let nodes = (0..n)
            .map(|i| {
                let dir = root.path().join(format!("node-{i}"));
                std::fs::create_dir_all(&dir).expect("dir");
                ledger::keyfile::write_new(&dir.join("node.key"), &keys[i]).expect("key");
                let config = format!(
                    "data_dir = \"data\"\ngenesis = \"../genesis.json\"\nnode_key = \"node.key\"\n\
                     p2p_listen = \"/ip4/127.0.0.1/tcp/{}\"\napi_listen = \"127.0.0.1:{}\"\n\
                     log_level = \"info\"\n\n[api]\nrate_limit_per_sec = 100000\nrate_limit_burst = 100000\n",
                    p2p[i], api[i]
                );
                std::fs::write(dir.join("config.toml"), config).expect("config");
                Node {
                    index: i,
                    dir,
                    url: format!("http://127.0.0.1:{}", api[i]),
                    key: keys[i].clone(),
                    child: None,
                }
            })
            .collect();
        Cluster {
            root,
            genesis,
            nodes,
            clients,
        }
    }

    /// Appends lines to node `i`'s config (before it starts).
    pub fn append_config(&self, i: usize, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.nodes[i].dir.join("config.toml"))
            .expect("config");
        writeln!(f, "{text}").expect("config");
    }

    /// Adds a node that is not in genesis (a future validator), bootstrapped to the others.
    /// Returns its index.
    pub fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let key = SecretKey::generate().expect("rng");
        let (p2p, api) = (free_port(), free_port());
        let dir = self.root.path().join(format!("node-{i}"));
        std::fs::create_dir_all(&dir).expect("dir");
        ledger::keyfile::write_new(&dir.join("node.key"), &key).expect("key");
        let bootstrap: Vec<String> = self
            .genesis
            .validators
            .iter()
            .map(|v| format!("\"{}\"", v.address))
            .collect();
        let config = format!(
            "data_dir = \"data\"\ngenesis = \"../genesis.json\"\nnode_key = \"node.key\"\n\
             p2p_listen = \"/ip4/127.0.0.1/tcp/{p2p}\"\napi_listen = \"127.0.0.1:{api}\"\n\
             bootstrap = [{}]\nlog_level = \"info\"\n",
            bootstrap.join(", ")
        );
        std::fs::write(dir.join("config.toml"), config).expect("config");
        self.nodes.push(Node {
            index: i,
            dir,
            url: format!("http://127.0.0.1:{api}"),
            key,
            child: None,
        });
        i
    }

    /// The p2p listen address of node `i` (from its config).
    pub fn p2p_address(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.nodes[i].dir.join("config.toml")).expect("config");
        text.lines()
            .find_map(|l| l.strip_prefix("p2p_listen = "))
            .map(|v| v.trim_matches('"').to_string())
            .expect("p2p_listen")
    }

    /// Starts every node.
    pub fn start_all(&mut self) {
        for n in &mut self.nodes {
            n.start();
        }
    }

    /// Waits until every running node in `which` has committed at least `height`.
    pub fn wait_height(&self, which: &[usize], height: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for &i in which {
            loop {
                if let Ok(h) = self.nodes[i].api().height()
                    && h >= height
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {i} did not reach height {height} in {timeout:?} (at {:?}); log: {}",
                    self.nodes[i].api().height().ok(),
                    self.tail_log(i)
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The last lines of a node's log (for failure messages).
    pub fn tail_log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.nodes[i].dir.join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Checks that the running nodes in `which` agree on the header hash at every
    /// common height.
    pub fn assert_agreement(&self, which: &[usize]) {
        let tips: Vec<u64> = which
            .iter()
            .map(|&i| self.nodes[i].api().height().expect("height"))
            .collect();
        let common = tips.iter().copied().min().unwrap_or(0);
        for h in 1..=common {
            let hashes: Vec<String> = which
                .iter()
                .map(|&i| {
                    self.nodes[i]
                        .api()
                        .get(&format!("/v1/blocks/{h}"))
                        .expect("block")["hash"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            assert!(
                hashes.windows(2).all(|w| w[0] == w[1]),
                "nodes disagree at height {h}: {hashes:?}"
            );
        }
    }
}

/// Signs transactions for one key, keeping its nonce.
pub struct Signer {
    /// The key.
    pub key: SecretKey,
    /// Next nonce to use.
    pub nonce: u64,
    chain_id: String,
}

impl Signer {
    /// A signer starting at nonce 0.
    pub fn new(key: SecretKey, chain_id: &str) -> Self {
        Signer {
            key,
            nonce: 0,
            chain_id: chain_id.to_string(),
        }
    }

    /// Signs the next transaction.
    pub fn sign(&mut self, body: TxBody) -> SignedTx {
        let now = now_ms();
        let stx = Tx {
            chain_id: self.chain_id.clone(),
            signer: self.key.public_key(),
            nonce: self.nonce,
            created_at_ms: now,
            expires_at_ms: now + 3_600_000,
            body,
        }
        .sign(&self.key);
        self.nonce += 1;
        stx
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A JSON client for one node's API.
pub struct Api {
    base: String,
    agent: ureq::Agent,
}

/// An API answer that was not 2xx.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status (0 if the node is unreachable).
    pub status: u16,
    /// Body.
    pub body: String,
}

impl Api {
    /// A client for `base` (`http://host:port`).
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Api {
            base: base.trim_end_matches('/').to_string(),
            agent,
        }
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        let resp = self
            .agent
            .get(&format!("{}{}", self.base, path))
            .call()
            .map_err(|e| ApiError {
                status: 0,
                body: e.to_string(),
            })?;
        read_json(resp)
    }

    /// POST a JSON document.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let resp = self
            .agent
            .post(&format!("{}{}", self.base, path))
            .send_json(body)
            .map_err(|e| ApiError {
                status: 0,
                body: e.to_string(),
            })?;
        read_json(resp)
    }

    /// GET raw bytes.
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ApiError> {
        let resp = self
            .agent
            .get(&format!("{}{}", self.base, path))
            .call()
            .map_err(|e| ApiError {
                status: 0,
                body: e.to_string(),
            })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| ApiError {
                status,
                body: e.to_string(),
            })?;
        if status / 100 != 2 {
            return Err(ApiError {
                status,
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok(bytes)
    }

    /// Committed height.
    pub fn height(&self) -> Result<u64, ApiError> {
        Ok(self.get("/v1/status")?["height"].as_u64().unwrap_or(0))
    }

    /// Submits a transaction; `wait` waits for its commit.
    pub fn submit(&self, stx: &SignedTx, wait: bool) -> Result<Value, ApiError> {
        let path = if wait {
            "/v1/txs?wait=true&timeout_ms=60000"
        } else {
            "/v1/txs"
        };
        self.post(
            path,
            &serde_json::json!({ "tx": hex::encode(stx.encode()) }),
        )
    }

    /// Status of a record id.
    pub fn tx(&self, id: &Hash) -> Result<Value, ApiError> {
        self.get(&format!("/v1/txs/{id}"))
    }
}

fn read_json(resp: ureq::http::Response<ureq::Body>) -> Result<Value, ApiError> {
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| ApiError {
            status,
            body: e.to_string(),
        })?;
    if status / 100 != 2 {
        return Err(ApiError { status, body: text });
    }
    serde_json::from_str(&text).map_err(|e| ApiError {
        status,
        body: format!("{e}: {text}"),
    })
}
