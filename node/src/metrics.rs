//! Prometheus metrics (`GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of API request counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The matched route, e.g. `/v1/txs`.
    pub route: String,
    /// HTTP status code.
    pub status: u16,
}

/// Labels of refused transactions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The refusal code, e.g. `bad_nonce`.
    pub reason: String,
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    /// Height of the last committed block.
    pub height: Gauge,
    /// Current consensus round.
    pub round: Gauge,
    /// Transactions committed since start.
    pub committed_txs: Counter,
    /// Transactions in the mempool.
    pub mempool_txs: Gauge,
    /// Bytes in the mempool.
    pub mempool_bytes: Gauge,
    /// Connected peers.
    pub peers: Gauge,
    /// Seconds between consecutive block times.
    pub block_interval: Histogram,
    /// Seconds from decision to durable commit.
    pub commit_latency: Histogram,
    /// Transactions per block.
    pub block_txs: Histogram,
    /// API requests by route and status.
    pub api_requests: Family<RouteLabels, Counter>,
    /// Refused transactions by reason.
    pub txs_refused: Family<ReasonLabels, Counter>,
    /// Messages from peers that were dropped as invalid.
    pub peer_messages_invalid: Counter,
    /// Gossiped transactions dropped because the intake queue was full.
    pub intake_dropped_txs: Counter,
    /// Store memory by kind (`memtables`, `block_cache`, `table_readers`, `log_nodes`,
    /// `tree_nodes`),
    /// updated when scraped.
    pub store_memory: Family<KindLabels, Gauge>,
}

/// Labels of store memory.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// What the bytes are.
    pub kind: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("govledger");
        let m = Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            committed_txs: Counter::default(),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            peers: Gauge::default(),
            block_interval: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            commit_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            block_txs: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            api_requests: Family::default(),
            txs_refused: Family::default(),
            peer_messages_invalid: Counter::default(),
            intake_dropped_txs: Counter::default(),
            store_memory: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "height",
            "Height of the last committed block",
            m.height.clone(),
        );
        registry.register("round", "Current consensus round", m.round.clone());
        registry.register(
            "committed_txs",
            "Transactions committed since the node started",
            m.committed_txs.clone(),
        );
        registry.register(
            "mempool_txs",
            "Transactions in the mempool",
            m.mempool_txs.clone(),
        );
        registry.register(
            "mempool_bytes",
            "Bytes in the mempool",
            m.mempool_bytes.clone(),
        );
        registry.register("peers", "Connected peers", m.peers.clone());
        registry.register(
            "block_interval_seconds",
            "Time between consecutive blocks",
            m.block_interval.clone(),
        );
        registry.register(
            "commit_latency_seconds",
            "Time from consensus decision to durable commit",
            m.commit_latency.clone(),
        );
        registry.register("block_txs", "Transactions per block", m.block_txs.clone());
        registry.register(
            "api_requests",
            "API requests by route and status",
            m.api_requests.clone(),
        );
        registry.register(
            "txs_refused",
            "Transactions refused at admission, by reason",
            m.txs_refused.clone(),
        );
        registry.register(
            "peer_messages_invalid",
            "Messages from peers dropped as invalid",
            m.peer_messages_invalid.clone(),
        );
        registry.register(
            "intake_dropped_txs",
            "Gossiped transactions dropped because the intake queue was full",
            m.intake_dropped_txs.clone(),
        );
        registry.register(
            "store_memory_bytes",
            "Memory held by the store, by kind (memtables, block_cache, table_readers, log_nodes, tree_nodes)",
            m.store_memory.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the store memory gauges.
    pub fn set_store_memory(&self, m: ledger::store::StoreMemory) {
        for (kind, v) in [
            ("memtables", m.memtables),
            ("block_cache", m.block_cache),
            ("table_readers", m.table_readers),
            ("log_nodes", m.log_nodes),
            ("tree_nodes", m.tree_nodes),
        ] {
            self.store_memory
                .get_or_create(&KindLabels { kind: kind.into() })
                .set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}
