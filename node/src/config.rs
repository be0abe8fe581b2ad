//! The node's configuration file (TOML). Operational settings only: protocol parameters
//! that every validator must agree on live in the genesis file.
//!
//! Every field has a documented default; `Config::validate` names the field and the fix.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Bound on the size of a config file.
pub const CONFIG_BYTES_MAX: u64 = 1024 * 1024;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[mempool]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MempoolConfig {
    /// Most transactions held (default 200000).
    pub txs_max: usize,
    /// Most bytes held (default 128 MiB).
    pub bytes_max: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        let d = crate::mempool::MempoolLimits::default();
        Self {
            txs_max: d.txs_max,
            bytes_max: d.bytes_max,
        }
    }
}

/// `[api]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Requests per second each client IP may make (token refill rate; default 2000).
    pub rate_limit_per_sec: u32,
    /// Burst size of each client's bucket (default 4000).
    pub rate_limit_burst: u32,
    /// Most concurrent `wait=true` submissions (default 10000).
    pub waiters_max: usize,
    /// How long a connection may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open waiting for the next request (ms; default
    /// [`crate::api::limits::HEADER_READ_TIMEOUT_MS`]).
    pub header_read_timeout_ms: u64,
    /// How long a request may take to send its whole body once its headers arrived (ms;
    /// default [`crate::api::limits::BODY_READ_TIMEOUT_MS`]).
    pub body_read_timeout_ms: u64,
    /// Open API connections per client address (IPv4 address or IPv6 /64), beside the
    /// global cap (default [`crate::api::limits::CONNECTIONS_PER_CLIENT_MAX`]).
    pub connections_per_client_max: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            rate_limit_per_sec: 2000,
            rate_limit_burst: 4000,
            waiters_max: 10_000,
            header_read_timeout_ms: crate::api::limits::HEADER_READ_TIMEOUT_MS,
            body_read_timeout_ms: crate::api::limits::BODY_READ_TIMEOUT_MS,
            connections_per_client_max: crate::api::limits::CONNECTIONS_PER_CLIENT_MAX,
        }
    }
}

/// The config file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of the database and the node's state (default `data`, relative to the
    /// config file).
    #[serde(default = "d_data_dir")]
    pub data_dir: PathBuf,
    /// The genesis file (default `genesis.json`, relative to the config file).
    #[serde(default = "d_genesis")]
    pub genesis: PathBuf,
    /// The node's key file: its consensus key if it is a validator, and its network
    /// identity (default `node.key`).
    #[serde(default = "d_node_key")]
    pub node_key: PathBuf,
    /// libp2p listen address (default `/ip4/0.0.0.0/tcp/26656`).
    #[serde(default = "d_p2p_listen")]
    pub p2p_listen: String,
    /// Peers to dial at start, as libp2p multiaddrs (e.g. `/ip4/10.0.0.2/tcp/26656`).
    /// The validators' `address` hints from genesis are dialled as well.
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// HTTP API listen address (default `127.0.0.1:8080`).
    #[serde(default = "d_api_listen")]
    pub api_listen: SocketAddr,
    /// `human` or `json` (default `human`).
    #[serde(default)]
    pub log_format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `govledger_node=debug,info` (default `info`;
    /// the `RUST_LOG` environment variable overrides it).
    #[serde(default = "d_log_level")]
    pub log_level: String,
    /// Mempool limits.
    #[serde(default)]
    pub mempool: MempoolConfig,
    /// API limits.
    #[serde(default)]
    pub api: ApiConfig,
    /// `[store]`: RocksDB's memory budgets, most of the node's resident memory besides the
    /// mempool (see docs/operations.md, "Memory").
    #[serde(default)]
    pub store: ledger::store::StoreOptions,
    /// Test and fault-injection switches: only in builds with the `fault-injection` feature
    /// (the end-to-end suite's); a release build refuses a `[testing]` section.
    #[cfg(feature = "fault-injection")]
    #[serde(default)]
    pub testing: TestingConfig,
    /// The operator's `--confirm-signing-state`: start although the chain store and the
    /// signing state disagree (see docs/operations.md, "Signing state"). Not in the file.
    #[serde(skip)]
    pub confirm_signing_state: bool,
}

/// `[testing]`: fault injection for the end-to-end test suite.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestingConfig {
    /// Make this validator byzantine: it signs a second, conflicting prevote for every
    /// block it prevotes (equivocation), to exercise evidence handling.
    pub equivocate: bool,
}

fn d_data_dir() -> PathBuf {
    "data".into()
}
fn d_genesis() -> PathBuf {
    "genesis.json".into()
}
fn d_node_key() -> PathBuf {
    "node.key".into()
}
fn d_p2p_listen() -> String {
    "/ip4/0.0.0.0/tcp/26656".into()
}
fn d_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn d_log_level() -> String {
    "info".into()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: d_data_dir(),
            genesis: d_genesis(),
            node_key: d_node_key(),
            p2p_listen: d_p2p_listen(),
            bootstrap: vec![],
            api_listen: d_api_listen(),
            log_format: LogFormat::Human,
            log_level: d_log_level(),
            mempool: MempoolConfig::default(),
            store: ledger::store::StoreOptions::default(),
            api: ApiConfig::default(),
            #[cfg(feature = "fault-injection")]
            testing: TestingConfig::default(),
            confirm_signing_state: false,
        }
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML or a field has the wrong type or name.
    #[error("config {path} is not valid: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// Why (with line and column).
        reason: String,
    },
    /// A value is out of range.
    #[error("config field `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why, and the fix.
        reason: String,
    },
}

impl Config {
    /// Reads, parses and validates a config file; relative paths in it are resolved
    /// against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        if meta.len() > CONFIG_BYTES_MAX {
            return Err(ConfigError::Parse {
                path: p,
                reason: format!("larger than {CONFIG_BYTES_MAX} bytes"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: p,
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for f in [&mut cfg.data_dir, &mut cfg.genesis, &mut cfg.node_key] {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let inv = |field, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.to_string(),
        };
        if self.p2p_listen.parse::<libp2p::Multiaddr>().is_err() {
            return Err(inv(
                "p2p_listen",
                "must be a libp2p multiaddr such as /ip4/0.0.0.0/tcp/26656",
            ));
        }
        for b in &self.bootstrap {
            if b.parse::<libp2p::Multiaddr>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "bootstrap",
                    reason: format!(
                        "{b:?} is not a libp2p multiaddr such as /ip4/10.0.0.2/tcp/26656"
                    ),
                });
            }
        }
        if self.mempool.txs_max == 0 || self.mempool.txs_max > 10_000_000 {
            return Err(inv("mempool.txs_max", "must be between 1 and 10000000"));
        }
        if self.mempool.bytes_max < 1024 * 1024 || self.mempool.bytes_max > 16 << 30 {
            return Err(inv("mempool.bytes_max", "must be between 1 MiB and 16 GiB"));
        }
        if self.api.rate_limit_per_sec == 0 || self.api.rate_limit_burst == 0 {
            return Err(inv(
                "api.rate_limit_per_sec",
                "rate limits must be positive (use a large value to effectively disable)",
            ));
        }
        let store_min = ledger::store::STORE_MEMORY_BYTES_MIN;
        for (field, v) in [
            ("store.memtable_bytes", self.store.memtable_bytes),
            ("store.block_cache_bytes", self.store.block_cache_bytes),
        ] {
            if v < store_min || v > 64 << 30 {
                return Err(inv(
                    field,
                    &format!("must be between {store_min} bytes and 64 GiB"),
                ));
            }
        }
        let depth_max = ledger::store::tree_store::TREE_MEMORY_DEPTH_MAX;
        if self.store.tree_memory_depth > depth_max {
            return Err(inv(
                "store.tree_memory_depth",
                &format!("must be at most {depth_max} (each level doubles its memory)"),
            ));
        }
        if self.api.waiters_max == 0 {
            return Err(inv("api.waiters_max", "must be positive"));
        }
        for (field, v) in [
            (
                "api.header_read_timeout_ms",
                self.api.header_read_timeout_ms,
            ),
            ("api.body_read_timeout_ms", self.api.body_read_timeout_ms),
        ] {
            if !(100..=600_000).contains(&v) {
                return Err(inv(field, "must be between 100 and 600000 ms"));
            }
        }
        if self.api.connections_per_client_max == 0
            || self.api.connections_per_client_max > crate::api::limits::CONNECTIONS_MAX
        {
            return Err(ConfigError::Invalid {
                field: "api.connections_per_client_max",
                reason: format!(
                    "must be between 1 and {} (the global connection cap)",
                    crate::api::limits::CONNECTIONS_MAX
                ),
            });
        }
        if self
            .log_level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(inv("log_level", "must be a tracing filter such as `info`"));
        }
        Ok(())
    }

    /// The config as TOML (for `testnet init` and `dev`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, "api_listen = \"127.0.0.1:9000\"\n").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.api_listen.port(), 9000);
        assert_eq!(c.data_dir, dir.path().join("data"));
        assert_eq!(c.mempool, MempoolConfig::default());
    }

    #[test]
    fn errors_name_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, "p2p_listen = \"nonsense\"\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("p2p_listen"), "{e}");
        std::fs::write(&p, "typo_field = 1\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("typo_field"), "{e}");
        std::fs::write(&p, "[mempool]\ntxs_max = 0\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("mempool.txs_max"), "{e}");
        std::fs::write(&p, "[store]\nblock_cache_bytes = 1024\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("store.block_cache_bytes"), "{e}");
        std::fs::write(&p, "[store]\nmemtable_bytes = 33554432\n").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.store.memtable_bytes, 32 << 20);
        assert_eq!(
            c.store.block_cache_bytes,
            ledger::store::StoreOptions::default().block_cache_bytes
        );
        let round = Config::default().to_toml();
        std::fs::write(&p, round).unwrap();
        Config::load(&p).unwrap();
    }
}
