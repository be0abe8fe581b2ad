//! The RocksDB store: committed blocks, certificates, transactions, the history log's
//! nodes, the state and the indexes, each committed block in **one atomic, synced write
//! batch**. After a crash the store reopens at exactly the last committed block.
//!
//! Column families (keys → values):
//!
//! | cf | key | value |
//! |---|---|---|
//! | `meta` | `genesis`, `tip`, `schema` | genesis hash, [`StoredTip`], version |
//! | `headers` | height (u64 BE) | canonical header bytes |
//! | `commits` | height (u64 BE) | canonical commit-certificate bytes |
//! | `txs` | leaf index (u64 BE) | canonical signed-transaction bytes |
//! | `txids` | record id | [`TxLocation`] |
//! | `log` | [`NodeId::key`] of a node of level ≥ [`LOG_MEMORY_LEVEL_FIRST`] | 32-byte node hash |
//! | `leaves` | chunk number (u64 BE) | the chunk's leaf hashes, 32 bytes each, at most [`LEAF_CHUNK`] |
//! | `state` | state key | state value |
//! | `index` | index key (see [`crate::index`]) | empty |
//! | `valsets` | activation height (u64 BE) | validator set |
//! | `node` | free-form | the node's own data (signing state, ...) |
//! | `tree` | tree position (see [`tree_store`]) | state-tree node (state format 2) |
//! | `history` | history head key ‖ position (u64 BE, from 1) | leaf index (u64) and the head's hash after that record (format 2) |

use crate::block::{Block, BlockHeader, CommittedBlock};
use crate::chain::{ChainTip, ExecutedBlock};
use crate::codec::{self, DecodeError};
use crate::execute::genesis_state;
use crate::genesis::{Genesis, StateFormat};
use crate::hash::Hash;
use crate::history_log::{self, Frontier, LogError, NodeId, NodeReader};
use crate::index::{IndexQuery, index_keys, leaf_of_key};
use crate::state::{StateError, StateRead, StateView};
use crate::state_tree::{self, Child, Node, NodeKey, NodeRead, StateProof, TreeUpdate};
use crate::tx::SignedTx;
use crate::validator::ValidatorSet;
use crate::vote::CommitCertificate;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteBufferManager, WriteOptions,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

const CF_META: &str = "meta";
const CF_HEADERS: &str = "headers";
const CF_COMMITS: &str = "commits";
const CF_TXS: &str = "txs";
const CF_TXIDS: &str = "txids";
const CF_LOG: &str = "log";
const CF_STATE: &str = "state";
const CF_INDEX: &str = "index";
const CF_VALSETS: &str = "valsets";
const CF_NODE: &str = "node";
const CF_LEAVES: &str = "leaves";
const CF_TREE: &str = "tree";
const CF_HISTORY: &str = "history";
const ALL_CFS: [&str; 13] = [
    CF_META, CF_HEADERS, CF_COMMITS, CF_TXS, CF_TXIDS, CF_LOG, CF_STATE, CF_INDEX, CF_VALSETS,
    CF_NODE, CF_LEAVES, CF_TREE, CF_HISTORY,
];

const KEY_GENESIS: &[u8] = b"genesis";
const KEY_TIP: &[u8] = b"tip";
const KEY_SCHEMA: &[u8] = b"schema";
const KEY_TREE_ROOT: &[u8] = b"tree_root";
/// The first depth whose interior nodes the `tree` column family holds ([`tree_store`]).
const KEY_TREE_STORED_FROM: &[u8] = b"tree_stored_from";
/// 2: the history log's nodes below [`LOG_MEMORY_LEVEL_FIRST`] are not stored; the leaves
/// are, in chunks of [`LEAF_CHUNK`] (`leaves`).
const SCHEMA_VERSION: u32 = 2;

/// Default memory for all memtables together.
pub const MEMTABLE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Default block cache size. 32 MiB: at 64 MiB a node that had served a catch-up of 1.3M
/// records idled at 312 MiB resident, over the 300 MiB budget of issue 7; the cache holds
/// mostly the hot state (nonces, members) and recent blocks either way.
pub const BLOCK_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Smallest memtable budget or block cache accepted (below it RocksDB thrashes).
pub const STORE_MEMORY_BYTES_MIN: usize = 4 * 1024 * 1024;

/// RocksDB's memory budgets: most of a node's resident memory besides the mempool. Also
/// the `[store]` section of the node's config file (every field optional).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreOptions {
    /// All memtables together (a write buffer manager caps them; default 64 MiB).
    pub memtable_bytes: usize,
    /// The block cache shared by every column family (default 32 MiB).
    pub block_cache_bytes: usize,
    /// Levels of the state tree held in memory (default [`TREE_MEMORY_DEPTH`], at most
    /// [`tree_store::TREE_MEMORY_DEPTH_MAX`]): each level more doubles the memory (18: at
    /// most 262,143 nodes, about 40 MB) and saves one read per update and proof.
    pub tree_memory_depth: u16,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            memtable_bytes: MEMTABLE_BYTES_MAX,
            block_cache_bytes: BLOCK_CACHE_BYTES,
            tree_memory_depth: TREE_MEMORY_DEPTH,
        }
    }
}

/// What RocksDB holds in memory now (its own accounting), and the history log's copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Memtables of every column family (active and not yet flushed).
    pub memtables: u64,
    /// Blocks in the block cache.
    pub block_cache: u64,
    /// Index and filter blocks of open SST files (outside the block cache).
    pub table_readers: u64,
    /// Upper levels of the history log held in memory.
    pub log_nodes: u64,
    /// Upper levels of the state tree held in memory.
    pub tree_nodes: u64,
}
/// Most items one index query returns.
pub const PAGE_LIMIT_MAX: usize = 1000;

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("database error: {0}")]
    Db(#[from] rocksdb::Error),
    /// Stored bytes do not decode: the database is corrupt.
    #[error("corrupt {what}: {source}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Why it does not decode.
        source: DecodeError,
    },
    /// The database belongs to another chain.
    #[error(
        "this data directory holds chain with genesis {stored}, not {given}; use another directory"
    )]
    GenesisMismatch {
        /// Stored genesis hash.
        stored: Hash,
        /// Given genesis hash.
        given: Hash,
    },
    /// Not initialised.
    #[error("the store has no genesis; initialise it first")]
    NotInitialised,
    /// A block does not follow the tip.
    #[error("block {got} does not follow the stored tip {tip}")]
    NotNext {
        /// Tip height.
        tip: u64,
        /// Block height.
        got: u64,
    },
    /// Genesis invalid.
    #[error(transparent)]
    Genesis(#[from] crate::genesis::GenesisError),
    /// State read failure.
    #[error(transparent)]
    State(#[from] StateError),
    /// History log failure.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Unknown schema.
    #[error("data directory has schema version {0}; this build reads version {SCHEMA_VERSION}")]
    Schema(u32),
    /// A state proof was asked of a chain without a state tree.
    #[error(
        "this chain's genesis has state format 1 (a chained state root): it has no state tree to prove values with"
    )]
    NoStateTree,
    /// A page cursor names a leaf that does not exist (the caller's error, not the store's).
    #[error("the cursor `after={0}` names no record; use the `next` of a previous page")]
    UnknownCursor(u64),
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Where a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// History-log leaf index.
    pub leaf_index: u64,
}

/// The tip as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTip {
    /// Height (0 = genesis only).
    pub height: u64,
    /// Block hash.
    pub block_hash: Hash,
    /// Block time.
    pub time_ms: u64,
    /// State root.
    pub state_root: Hash,
    /// Log size.
    pub log_size: u64,
}

/// One page of an index query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Leaf indexes, in log order.
    pub leaves: Vec<u64>,
    /// Cursor for the next page (pass as `after`), if there may be more.
    pub next: Option<u64>,
}

/// The RocksDB store.
pub struct Store {
    db: DB,
    chain_id: String,
    /// The upper levels of the history log (filled at open, extended after each synced
    /// commit).
    log_memory: std::sync::RwLock<LogMemory>,
    /// Committed state entries read recently (see [`StateCache`]).
    state_cache: StateCache,
    /// The chain's state format (from its genesis).
    state_format: StateFormat,
    /// The state tree's root and upper levels (format 2), as committed.
    tree_memory: std::sync::RwLock<TreeMemory>,
    /// The parts of proof bundles shared by every record of a block (its header and
    /// certificate, the validator-set changes up to it), for recent blocks. Committed
    /// blocks never change, so entries never go stale.
    pub(crate) proof_parts: std::sync::Mutex<
        std::collections::BTreeMap<u64, std::sync::Arc<crate::proof::BlockProofParts>>,
    >,
}

/// Most blocks whose proof-bundle parts are cached (the highest kept).
pub const PROOF_PARTS_CACHE_MAX: usize = 256;

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

impl Store {
    /// Opens (creating if needed) the store in `path` for `genesis`. A new store is
    /// initialised with the genesis state; an existing one must hold the same genesis.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<Self> {
        Self::open_with(path, genesis, StoreOptions::default())
    }

    /// [`Store::open`] with explicit memory budgets (each at least
    /// [`STORE_MEMORY_BYTES_MIN`]; smaller values are raised to it).
    pub fn open_with(path: &Path, genesis: &Genesis, options: StoreOptions) -> Result<Self> {
        let memtable_bytes = options.memtable_bytes.max(STORE_MEMORY_BYTES_MIN);
        let block_cache_bytes = options.block_cache_bytes.max(STORE_MEMORY_BYTES_MIN);
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_open_files(512);
        opts.set_keep_log_file_num(4);
        opts.set_max_background_jobs(2);
        let wbm = WriteBufferManager::new_write_buffer_manager(memtable_bytes, false);
        opts.set_write_buffer_manager(&wbm);
        let cache = Cache::new_lru_cache(block_cache_bytes);
        let cf_opts = |compress: bool, bloom: bool| {
            let mut o = Options::default();
            let mut t = BlockBasedOptions::default();
            t.set_block_cache(&cache);
            if bloom {
                t.set_bloom_filter(10.0, false);
            }
            o.set_block_based_table_factory(&t);
            o.set_write_buffer_size((memtable_bytes / 4).min(16 * 1024 * 1024));
            o.set_compression_type(if compress {
                DBCompressionType::Lz4
            } else {
                DBCompressionType::None
            });
            o
        };
        let cfs = ALL_CFS.iter().map(|name| {
            let (compress, bloom) = match *name {
                // Hashes do not compress.
                CF_LOG | CF_TXIDS | CF_LEAVES | CF_TREE | CF_HISTORY => (false, true),
                CF_STATE => (true, true),
                _ => (true, false),
            };
            ColumnFamilyDescriptor::new(*name, cf_opts(compress, bloom))
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        let store = Store {
            db,
            chain_id: genesis.chain_id.clone(),
            log_memory: Default::default(),
            state_cache: StateCache::default(),
            state_format: genesis.state_format,
            tree_memory: std::sync::RwLock::new(TreeMemory::new(options.tree_memory_depth)),
            proof_parts: Default::default(),
        };
        store.init(genesis)?;
        store.load_log_memory()?;
        store.load_tree_memory()?;
        Ok(store)
    }

    fn cf(&self, name: &'static str) -> &ColumnFamily {
        // Every name in ALL_CFS is created at open, so the handle always exists.
        match self.db.cf_handle(name) {
            Some(cf) => cf,
            None => unreachable!("column family {name} is created at open"),
        }
    }

    /// Reads the stored log nodes of the levels [`LogMemory`] holds.
    fn load_log_memory(&self) -> Result<()> {
        let mut memory = LogMemory::for_size(self.stored_tip()?.log_size);
        let from = NodeId::new(memory.min_level(), 0).key();
        for item in self.db.iterator_cf(
            self.cf(CF_LOG),
            IteratorMode::From(&from, Direction::Forward),
        ) {
            let (k, v) = item?;
            let (Some(id), Ok(h)) = (NodeId::from_key(&k), <[u8; 32]>::try_from(v.as_ref())) else {
                return Err(StoreError::Corrupt {
                    what: "history log node",
                    source: DecodeError::Malformed("bad key or value length".into()),
                });
            };
            memory.push(id, Hash(h));
        }
        *self.log_memory.write().unwrap_or_else(|p| p.into_inner()) = memory;
        Ok(())
    }

    /// Reads the state tree's root and recomputes its upper levels from the stored nodes
    /// (see [`tree_store`]); converts the stored layout first if the store was written
    /// with another number of levels in memory.
    fn load_tree_memory(&self) -> Result<()> {
        let depth = self
            .tree_memory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .depth();
        let mut memory = TreeMemory::new(depth);
        if let Some(b) = self.db.get_cf(self.cf(CF_META), KEY_TREE_ROOT)? {
            memory.root = Some(decode::<(u64, Child)>(&b, "state tree root")?);
        }
        let Some((_, root)) = memory.root else {
            if self.state_format.has_tree() {
                return Err(StoreError::Corrupt {
                    what: "state tree root",
                    source: DecodeError::Malformed("missing in a store of state format 2".into()),
                });
            }
            *self.tree_memory.write().unwrap_or_else(|p| p.into_inner()) = memory;
            return Ok(());
        };
        let stored_from = self
            .db
            .get_cf(self.cf(CF_META), KEY_TREE_STORED_FROM)?
            .map(|b| decode::<u16>(&b, "tree_stored_from"))
            .transpose()?
            .unwrap_or(0);
        // Only this code writes it, at most the largest memory depth: anything else is a
        // damaged store, refused (and never `read_to + 1` overflowing below).
        if stored_from > tree_store::TREE_MEMORY_DEPTH_MAX {
            return Err(StoreError::Corrupt {
                what: "tree_stored_from",
                source: DecodeError::Malformed(format!(
                    "{stored_from} is deeper than the {} levels a store may hold in memory",
                    tree_store::TREE_MEMORY_DEPTH_MAX
                )),
            });
        }
        // Nodes are read down to the deeper of the two boundaries: the levels above it are
        // recomputed.
        let read_to = depth.max(stored_from);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound((read_to + 1).to_be_bytes().to_vec());
        let mut nodes = Vec::new();
        let mut now_in_memory = Vec::new();
        for item in self
            .db
            .iterator_cf_opt(self.cf(CF_TREE), ro, IteratorMode::Start)
        {
            let (k, v) = item?;
            let Some((d, path)) = tree_store::position_of(&k) else {
                return Err(StoreError::Corrupt {
                    what: "state tree position",
                    source: DecodeError::Malformed(format!("key {}", hex::encode(&k))),
                });
            };
            let node = tree_store::decode_node(&v).ok_or_else(|| StoreError::Corrupt {
                what: "state tree node",
                source: DecodeError::Malformed(format!("at {}", hex::encode(&k))),
            })?;
            if d < depth && !node.is_leaf() {
                now_in_memory.push(k.to_vec());
            }
            nodes.push((d, path, node));
        }
        let stored_root = nodes.iter().find(|(d, _, _)| *d == 0).map(|(_, _, n)| *n);
        let upper = tree_store::rebuild_upper(read_to, nodes).map_err(|e| StoreError::Corrupt {
            what: "state tree",
            source: DecodeError::Malformed(e),
        })?;
        // The levels recomputed, with the nodes below them, must make the stored root.
        let root_node = if read_to == 0 {
            stored_root
        } else {
            upper.get(&(0, Hash::ZERO)).copied()
        };
        let mut batch = WriteBatch::default();
        let cf = self.cf(CF_TREE);
        for k in &now_in_memory {
            batch.delete_cf(cf, k);
        }
        // Opened with fewer levels in memory than it was written with: the interior nodes
        // of the levels given up are stored now.
        let mut now_stored: Vec<(Vec<u8>, Vec<u8>)> = upper
            .iter()
            .filter(|((d, _), n)| *d >= depth && *d < stored_from && !n.is_leaf())
            .map(|((d, path), n)| {
                (
                    tree_store::position_key(*d, path),
                    tree_store::encode_node(n),
                )
            })
            .collect();
        now_stored.sort_unstable();
        for (k, v) in &now_stored {
            batch.put_cf(cf, k, v);
        }
        memory.set_nodes(upper);
        let made = root_node.map_or(state_tree::EMPTY_SUBTREE, |n| n.child().hash());
        if made != root.hash() {
            return Err(StoreError::Corrupt {
                what: "state tree",
                source: DecodeError::Malformed(format!(
                    "the stored nodes make root {}, the stored root is {}",
                    made,
                    root.hash()
                )),
            });
        }
        if stored_from != depth || !now_in_memory.is_empty() {
            batch.put_cf(
                self.cf(CF_META),
                KEY_TREE_STORED_FROM,
                codec::encode(&depth),
            );
            self.sync_write(batch)?;
        }
        *self.tree_memory.write().unwrap_or_else(|p| p.into_inner()) = memory;
        Ok(())
    }

    /// Puts a tree update into a batch: the positions it empties deleted, then its new
    /// nodes (a later write to the same key wins), then the new root. Interior nodes of
    /// the levels held in memory are not stored ([`tree_store`]).
    fn put_tree_update(&self, batch: &mut WriteBatch, update: &TreeUpdate) {
        let cf = self.cf(CF_TREE);
        // Only the committing thread changes the memory copy, after this batch is written.
        let memory = self.tree_memory.read().unwrap_or_else(|p| p.into_inner());
        let held = memory.depth();
        // In key order: RocksDB's memtable inserts keys that follow the previous one
        // without a search from the top (the update emits them children first).
        let mut puts: Vec<(Vec<u8>, Vec<u8>)> = update
            .nodes
            .iter()
            .filter(|(k, node)| k.depth >= held || node.is_leaf())
            .map(|(k, node)| {
                (
                    tree_store::position_key(k.depth, &k.path),
                    tree_store::encode_node(node),
                )
            })
            .collect();
        puts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        // Most stale positions are rewritten by the update itself: only the others are
        // deleted (a delete and a put of one key would both go through the memtable), and
        // of the levels in memory only the leaves, the rest never being stored.
        for k in &update.stale {
            let stored = k.depth >= held || memory.get(k).is_none_or(|n| n.is_leaf());
            if !stored {
                continue;
            }
            let pos = tree_store::position_key(k.depth, &k.path);
            if puts
                .binary_search_by(|(p, _)| p.as_slice().cmp(&pos))
                .is_err()
            {
                batch.delete_cf(cf, pos);
            }
        }
        drop(memory);
        for (k, v) in &puts {
            batch.put_cf(cf, k, v);
        }
        batch.put_cf(
            self.cf(CF_META),
            KEY_TREE_ROOT,
            codec::encode(&(update.version, update.root)),
        );
    }

    /// After the batch of [`Self::put_tree_update`] is durable: the memory copy follows.
    fn tree_committed(memory: &mut TreeMemory, update: &TreeUpdate) {
        for k in &update.stale {
            memory.remove(k.depth, &k.path);
        }
        for (k, node) in &update.nodes {
            memory.put(k.depth, k.path, *node);
        }
        memory.root = Some((update.version, update.root));
    }

    fn sync_write(&self, batch: WriteBatch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    fn init(&self, genesis: &Genesis) -> Result<()> {
        let given = genesis.hash();
        if let Some(stored) = self.db.get_cf(self.cf(CF_META), KEY_GENESIS)? {
            let stored = decode::<Hash>(&stored, "genesis hash")?;
            if stored != given {
                return Err(StoreError::GenesisMismatch { stored, given });
            }
            let schema = self
                .db
                .get_cf(self.cf(CF_META), KEY_SCHEMA)?
                .map(|b| decode::<u32>(&b, "schema"))
                .transpose()?
                .unwrap_or(0);
            if schema != SCHEMA_VERSION {
                return Err(StoreError::Schema(schema));
            }
            return Ok(());
        }
        let gs = genesis_state(genesis)?;
        let root = gs.root;
        let mut batch = WriteBatch::default();
        for (k, v) in &gs.writes {
            if let Some(v) = v {
                batch.put_cf(self.cf(CF_STATE), k, v);
            }
        }
        if let Some(update) = &gs.tree {
            self.put_tree_update(&mut batch, update);
            let held = self
                .tree_memory
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .depth();
            batch.put_cf(self.cf(CF_META), KEY_TREE_STORED_FROM, codec::encode(&held));
        }
        batch.put_cf(
            self.cf(CF_VALSETS),
            be(1),
            codec::encode(&genesis.validator_set()?),
        );
        let tip = StoredTip {
            height: 0,
            block_hash: Hash::ZERO,
            time_ms: genesis.genesis_time_ms,
            state_root: root,
            log_size: 0,
        };
        batch.put_cf(self.cf(CF_META), KEY_TIP, codec::encode(&tip));
        batch.put_cf(self.cf(CF_META), KEY_SCHEMA, codec::encode(&SCHEMA_VERSION));
        // Written last in the same batch: its presence means initialisation completed.
        batch.put_cf(self.cf(CF_META), KEY_GENESIS, codec::encode(&given));
        self.sync_write(batch)
    }

    /// The stored tip.
    pub fn stored_tip(&self) -> Result<StoredTip> {
        let b = self
            .db
            .get_cf(self.cf(CF_META), KEY_TIP)?
            .ok_or(StoreError::NotInitialised)?;
        decode(&b, "tip")
    }

    /// The tip with the history log's right edge loaded (O(log n) reads).
    pub fn load_tip(&self) -> Result<ChainTip> {
        let t = self.stored_tip()?;
        let frontier = Frontier::load(t.log_size, self)?;
        Ok(ChainTip {
            chain_id: self.chain_id.clone(),
            height: t.height,
            block_hash: t.block_hash,
            time_ms: t.time_ms,
            state_root: t.state_root,
            frontier,
            state_format: self.state_format,
        })
    }

    /// Commits an executed block and its certificate in one atomic, synced batch. The
    /// caller has checked the certificate; the block must follow the stored tip.
    pub fn commit_block(&self, executed: &ExecutedBlock, commit: &CommitCertificate) -> Result<()> {
        let tip = self.stored_tip()?;
        let h = executed.header.height;
        if h != tip.height + 1 {
            return Err(StoreError::NotNext {
                tip: tip.height,
                got: h,
            });
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_HEADERS), be(h), executed.header.encode());
        batch.put_cf(self.cf(CF_COMMITS), be(h), codec::encode(commit));
        let first = executed.first_leaf_index();
        let (cf_txs, cf_ids, cf_index) = (self.cf(CF_TXS), self.cf(CF_TXIDS), self.cf(CF_INDEX));
        // Record ids and index keys are put in key order: the memtable then inserts each
        // after the previous one without a search from the top.
        let mut ids = Vec::with_capacity(executed.txs.len());
        let mut index = Vec::with_capacity(executed.txs.len() * 3);
        for (i, (vtx, applied)) in executed.txs.iter().zip(&executed.applied).enumerate() {
            let leaf = first + i as u64;
            batch.put_cf(cf_txs, be(leaf), vtx.bytes());
            let loc = TxLocation {
                height: h,
                leaf_index: leaf,
            };
            ids.push((vtx.id().0, codec::encode(&loc)));
            index.extend(index_keys(vtx.tx(), applied, executed.header.time_ms, leaf));
        }
        ids.sort_unstable_by_key(|a| a.0);
        for (id, loc) in &ids {
            batch.put_cf(cf_ids, id, loc);
        }
        index.sort_unstable();
        for k in &index {
            batch.put_cf(cf_index, k, []);
        }
        let cf_log = self.cf(CF_LOG);
        for (id, hash) in &executed.log_nodes {
            if id.level >= LOG_MEMORY_LEVEL_FIRST {
                batch.put_cf(cf_log, id.key(), hash.0);
            }
        }
        self.put_leaf_chunks(&mut batch, executed)?;
        let cf_state = self.cf(CF_STATE);
        for (k, v) in &executed.writes {
            match v {
                Some(v) => batch.put_cf(cf_state, k, v),
                None => batch.delete_cf(cf_state, k),
            }
        }
        if let Some(sets) = &executed.validator_sets {
            for (from, set) in &sets.sets {
                if *from > h {
                    batch.put_cf(self.cf(CF_VALSETS), be(*from), codec::encode(set));
                }
            }
        }
        let cf_history = self.cf(CF_HISTORY);
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = executed
            .history
            .iter()
            .map(|e| {
                (
                    history_key(&e.head_key, e.head.count),
                    codec::encode(&(e.leaf_index, e.head.hash)),
                )
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in &entries {
            batch.put_cf(cf_history, k, v);
        }
        match (&executed.tree, self.state_format.has_tree()) {
            (Some(update), true) if update.version == h => self.put_tree_update(&mut batch, update),
            (None, false) => {}
            _ => {
                return Err(StoreError::Corrupt {
                    what: "executed block",
                    source: DecodeError::Malformed(format!(
                        "block {h} was executed for another state format than the store's"
                    )),
                });
            }
        }
        let new_tip = StoredTip {
            height: h,
            block_hash: executed.header.hash(),
            time_ms: executed.header.time_ms,
            state_root: executed.header.state_root,
            log_size: executed.header.log_size,
        };
        batch.put_cf(self.cf(CF_META), KEY_TIP, codec::encode(&new_tip));
        // The tree's memory copy is locked across the write: a proof made at the tip
        // (holding the read lock) sees the root, nodes and values of one version.
        let mut tree_memory = self.tree_memory.write().unwrap_or_else(|p| p.into_inner());
        self.sync_write(batch)?;
        if let Some(update) = &executed.tree {
            Self::tree_committed(&mut tree_memory, update);
        }
        drop(tree_memory);
        self.state_cache.committed(&executed.writes);
        // Only what is durably committed enters the memory copy.
        let mut memory = self.log_memory.write().unwrap_or_else(|p| p.into_inner());
        for (id, hash) in &executed.log_nodes {
            memory.push(*id, *hash);
        }
        Ok(())
    }

    /// The header at `height`.
    pub fn header(&self, height: u64) -> Result<Option<BlockHeader>> {
        self.db
            .get_cf(self.cf(CF_HEADERS), be(height))?
            .map(|b| decode(&b, "header"))
            .transpose()
    }

    /// The commit certificate of `height`.
    pub fn commit(&self, height: u64) -> Result<Option<CommitCertificate>> {
        self.db
            .get_cf(self.cf(CF_COMMITS), be(height))?
            .map(|b| decode(&b, "commit certificate"))
            .transpose()
    }

    /// The block at `height` with its certificate.
    pub fn committed_block(&self, height: u64) -> Result<Option<CommittedBlock>> {
        let Some(header) = self.header(height)? else {
            return Ok(None);
        };
        let commit = self.commit(height)?.ok_or(StoreError::Corrupt {
            what: "commit certificate",
            source: DecodeError::Malformed(format!("missing for height {height}")),
        })?;
        let first = header.log_size - header.tx_count as u64;
        let txs = self.txs_range(first, header.tx_count as u64)?;
        Ok(Some(CommittedBlock {
            block: Block { header, txs },
            commit,
        }))
    }

    /// Transactions at leaf indexes `[first, first + count)`.
    pub fn txs_range(&self, first: u64, count: u64) -> Result<Vec<SignedTx>> {
        let mut out = Vec::with_capacity(count.min(100_000) as usize);
        let it = self.db.iterator_cf(
            self.cf(CF_TXS),
            IteratorMode::From(&be(first), Direction::Forward),
        );
        for item in it.take(count as usize) {
            let (_, v) = item?;
            out.push(decode(&v, "transaction")?);
        }
        Ok(out)
    }

    /// The canonical bytes of the transaction at a leaf index.
    pub fn tx_bytes(&self, leaf: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_TXS), be(leaf))?)
    }

    /// The transaction at a leaf index.
    pub fn tx_at(&self, leaf: u64) -> Result<Option<SignedTx>> {
        self.tx_bytes(leaf)?
            .map(|b| decode(&b, "transaction"))
            .transpose()
    }

    /// Where a record is, by id.
    pub fn tx_location(&self, id: &Hash) -> Result<Option<TxLocation>> {
        self.db
            .get_cf(self.cf(CF_TXIDS), id.0)?
            .map(|b| decode(&b, "tx location"))
            .transpose()
    }

    /// One page of an index query: leaves after `after` (exclusive), at most `limit`.
    pub fn query(&self, q: &IndexQuery<'_>, after: Option<u64>, limit: usize) -> Result<Page> {
        let limit = limit.clamp(1, PAGE_LIMIT_MAX);
        let (mut start, end) = q.range();
        // Seek straight past the cursor instead of scanning from the start of the range.
        if let Some(a) = after {
            let time = if q.is_by_time() {
                // A by-time cursor seeks to its record's time; one that names no record
                // would scan the range from time 0, so it is refused.
                self.leaf_time(a)?.ok_or(StoreError::UnknownCursor(a))?
            } else {
                0
            };
            let seek = q.seek_after(a, time);
            if seek > start {
                start = seek;
            }
        }
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(end);
        let it = self.db.iterator_cf_opt(
            self.cf(CF_INDEX),
            ro,
            IteratorMode::From(&start, Direction::Forward),
        );
        let mut leaves = Vec::new();
        let mut more = false;
        for item in it {
            let (k, _) = item?;
            let Some(leaf) = leaf_of_key(&k) else {
                continue;
            };
            if let Some(a) = after
                && leaf <= a
            {
                continue;
            }
            if leaves.len() == limit {
                more = true;
                break;
            }
            leaves.push(leaf);
        }
        // Department queries are ordered by time, then leaf; a cursor by leaf works because
        // leaves grow with time.
        let next = if more { leaves.last().copied() } else { None };
        Ok(Page { leaves, next })
    }

    /// The block time of the record at a leaf index.
    fn leaf_time(&self, leaf: u64) -> Result<Option<u64>> {
        let Some(bytes) = self.tx_bytes(leaf)? else {
            return Ok(None);
        };
        let Some(loc) = self.tx_location(&crate::tx::tx_id(&bytes))? else {
            return Ok(None);
        };
        Ok(self.header(loc.height)?.map(|h| h.time_ms))
    }

    /// Every validator set with its activation height, from genesis on.
    pub fn validator_set_history(&self) -> Result<Vec<(u64, ValidatorSet)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_VALSETS), IteratorMode::Start)
        {
            let (k, v) = item?;
            let from =
                u64::from_be_bytes(k.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                    what: "validator set key",
                    source: DecodeError::Malformed("not 8 bytes".into()),
                })?);
            out.push((from, decode(&v, "validator set")?));
        }
        Ok(out)
    }

    /// The validator set in force at `height`.
    pub fn validator_set_at(&self, height: u64) -> Result<Option<ValidatorSet>> {
        let mut it = self.db.iterator_cf(
            self.cf(CF_VALSETS),
            IteratorMode::From(&be(height), Direction::Reverse),
        );
        match it.next() {
            Some(item) => {
                let (_, v) = item?;
                Ok(Some(decode(&v, "validator set")?))
            }
            None => Ok(None),
        }
    }

    /// Root of the history log at a past size.
    pub fn log_root_at(&self, size: u64) -> Result<Hash> {
        Ok(history_log::root_at(size, self)?)
    }

    /// Inclusion proof of `leaf` in the log of `size`.
    pub fn inclusion_proof(&self, leaf: u64, size: u64) -> Result<Vec<Hash>> {
        Ok(history_log::inclusion_proof(leaf, size, self)?)
    }

    /// Consistency proof between two sizes.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>> {
        Ok(history_log::consistency_proof(old_size, new_size, self)?)
    }

    /// Every member key record (active or removed), in key order.
    pub fn members(&self) -> Result<Vec<(crate::crypto::PublicKey, crate::state::MemberState)>> {
        let prefix = [crate::state::keys::MEMBER];
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(crate::index::prefix_end(&prefix));
        let mut out = vec![];
        for item in self.db.iterator_cf_opt(
            self.cf(CF_STATE),
            ro,
            IteratorMode::From(&prefix, Direction::Forward),
        ) {
            let (k, v) = item?;
            let key: [u8; 32] = k[1..].try_into().map_err(|_| StoreError::Corrupt {
                what: "member key",
                source: DecodeError::Malformed("not 32 bytes".into()),
            })?;
            out.push((crate::crypto::PublicKey(key), decode(&v, "member")?));
        }
        Ok(out)
    }

    /// A read view of the committed state.
    pub fn state(&self) -> StoreState<'_> {
        StoreState { store: self }
    }

    /// The node's own data (e.g. consensus signing state).
    pub fn node_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(CF_NODE), key)?)
    }

    /// Writes the node's own data, synced before returning.
    pub fn node_put_sync(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_NODE), key, value);
        self.sync_write(b)
    }

    /// The chain's state format.
    pub fn state_format(&self) -> StateFormat {
        self.state_format
    }

    /// The chain id.
    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// Approximate bytes on disk (SST files) of every column family.
    pub fn disk_bytes(&self) -> u64 {
        ALL_CFS
            .iter()
            .filter_map(|n| {
                self.db
                    .property_int_value_cf(self.cf(n), "rocksdb.total-sst-files-size")
                    .ok()
                    .flatten()
            })
            .sum()
    }

    /// Compacts every column family down to its last level (what RocksDB does over time
    /// on its own): for measuring the size of the live data, and for an operator who
    /// wants the space of overwritten and deleted entries back at once.
    pub fn compact(&self) -> Result<()> {
        self.flush()?;
        for n in ALL_CFS {
            self.db
                .compact_range_cf(self.cf(n), None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// Flushes memtables to disk (for measuring size; not needed for durability).
    pub fn flush(&self) -> Result<()> {
        for n in ALL_CFS {
            self.db.flush_cf(self.cf(n))?;
        }
        Ok(())
    }
}

impl Store {
    /// Memory held by RocksDB and the log's in-memory levels (for the node's metrics).
    /// Properties RocksDB cannot give count as zero.
    pub fn memory(&self) -> StoreMemory {
        let prop = |cf: &'static str, name: &str| -> u64 {
            self.db
                .property_int_value_cf(self.cf(cf), name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        let mut m = StoreMemory::default();
        for cf in ALL_CFS {
            m.memtables += prop(cf, "rocksdb.cur-size-all-mem-tables");
            m.table_readers += prop(cf, "rocksdb.estimate-table-readers-mem");
        }
        // One cache is shared by every column family: its usage is the same through each.
        m.block_cache = prop(CF_META, "rocksdb.block-cache-usage");
        m.log_nodes = self
            .log_memory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .bytes() as u64;
        m.tree_nodes = self
            .tree_memory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .bytes() as u64;
        m
    }

    /// The stored leaves `[chunk·LEAF_CHUNK, …)` of one chunk (fewer than [`LEAF_CHUNK`] for
    /// the chunk at the log's right edge; none beyond it).
    fn leaf_chunk(&self, chunk: u64) -> Result<Vec<Hash>, LogError> {
        let v = self
            .db
            .get_pinned_cf(self.cf(CF_LEAVES), be(chunk))
            .map_err(|e| LogError::Storage(e.to_string()))?;
        let Some(v) = v else {
            return Ok(Vec::new());
        };
        if v.len() % Hash::LEN != 0 || v.len() > LEAF_CHUNK as usize * Hash::LEN {
            return Err(LogError::Storage(format!(
                "leaf chunk {chunk} has {} bytes",
                v.len()
            )));
        }
        Ok(v.chunks_exact(Hash::LEN)
            .map(|c| {
                let mut h = [0u8; Hash::LEN];
                h.copy_from_slice(c);
                Hash(h)
            })
            .collect())
    }

    /// Writes the leaf chunks a block touches: the block's leaves appended to the chunk at
    /// the log's right edge (rewritten as it fills), then whole new chunks.
    fn put_leaf_chunks(&self, batch: &mut WriteBatch, executed: &ExecutedBlock) -> Result<()> {
        let mut leaf = executed.first_leaf_index();
        let leaves = executed.log_nodes.iter().filter(|(id, _)| id.level == 0);
        let mut chunk = leaf / LEAF_CHUNK;
        let mut row: Vec<u8> = Vec::with_capacity(LEAF_CHUNK as usize * Hash::LEN);
        if !leaf.is_multiple_of(LEAF_CHUNK) {
            let stored = self.leaf_chunk(chunk)?;
            if stored.len() as u64 != leaf % LEAF_CHUNK {
                return Err(StoreError::Corrupt {
                    what: "history log leaf chunk",
                    source: DecodeError::Malformed(format!(
                        "chunk {chunk} holds {} leaves, expected {}",
                        stored.len(),
                        leaf % LEAF_CHUNK
                    )),
                });
            }
            for h in stored {
                row.extend_from_slice(&h.0);
            }
        }
        let cf = self.cf(CF_LEAVES);
        for (id, hash) in leaves {
            debug_assert_eq!(id.index, leaf);
            row.extend_from_slice(&hash.0);
            leaf += 1;
            if leaf.is_multiple_of(LEAF_CHUNK) {
                batch.put_cf(cf, be(chunk), &row);
                row.clear();
                chunk += 1;
            }
        }
        if !row.is_empty() {
            batch.put_cf(cf, be(chunk), &row);
        }
        Ok(())
    }
}

fn node_value(level: u8, index: u64, v: Option<&[u8]>) -> Result<Hash, LogError> {
    let v = v.ok_or(LogError::MissingNode { level, index })?;
    let arr: [u8; 32] = v
        .try_into()
        .map_err(|_| LogError::Storage(format!("node ({level}, {index}) is not 32 bytes")))?;
    Ok(Hash(arr))
}

impl NodeReader for Store {
    /// Three sources, cheapest first: the upper levels from memory; a node below
    /// [`LOG_MEMORY_LEVEL_FIRST`] as the MTH of its leaves, read with one point lookup per
    /// [`LEAF_CHUNK`]-leaf chunk (a proof's low siblings share one chunk); any other node in
    /// one RocksDB multi-get.
    fn nodes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, LogError> {
        let mut out: Vec<Option<Hash>> = {
            let memory = self.log_memory.read().unwrap_or_else(|p| p.into_inner());
            ids.iter().map(|id| memory.get(*id)).collect()
        };
        let mut chunks: Vec<(u64, Vec<Hash>)> = Vec::new();
        let mut point = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            if id.level >= log_memory::LOG_MEMORY_LEVEL_FIRST {
                point.push(i);
                continue;
            }
            let width = 1u64 << id.level;
            let first = id.index * width;
            let chunk = first / LEAF_CHUNK;
            let leaves = match chunks.iter().position(|(c, _)| *c == chunk) {
                Some(p) => &chunks[p].1,
                None => {
                    chunks.push((chunk, self.leaf_chunk(chunk)?));
                    &chunks[chunks.len() - 1].1
                }
            };
            let from = (first - chunk * LEAF_CHUNK) as usize;
            let Some(span) = leaves.get(from..from + width as usize) else {
                return Err(LogError::MissingNode {
                    level: id.level,
                    index: id.index,
                });
            };
            out[i] = Some(history_log::merkle_root(span));
        }
        if !point.is_empty() {
            let keys: Vec<[u8; NodeId::KEY_LEN]> = point.iter().map(|i| ids[*i].key()).collect();
            let got = self.db.batched_multi_get_cf(self.cf(CF_LOG), &keys, false);
            for (i, r) in point.iter().zip(got) {
                let v = r.map_err(|e| LogError::Storage(e.to_string()))?;
                out[*i] = Some(node_value(ids[*i].level, ids[*i].index, v.as_deref())?);
            }
        }
        // Every slot is filled above; a gap would be a bug here, reported, not hidden.
        out.into_iter()
            .zip(ids)
            .map(|(h, id)| {
                h.ok_or(LogError::MissingNode {
                    level: id.level,
                    index: id.index,
                })
            })
            .collect()
    }

    fn node(&self, level: u8, index: u64) -> Result<Hash, LogError> {
        self.nodes(&[NodeId::new(level, index)])?
            .pop()
            .ok_or(LogError::MissingNode { level, index })
    }
}

/// The committed state, read from the store.
pub struct StoreState<'a> {
    store: &'a Store,
}

impl Store {
    /// A stored tree node, from the `tree` column family.
    fn stored_tree_node(&self, key: &NodeKey) -> Result<Option<Node>, StateError> {
        let pos = tree_store::position_key(key.depth, &key.path);
        let v = self
            .db
            .get_pinned_cf(self.cf(CF_TREE), &pos)
            .map_err(|e| StateError::Storage(e.to_string()))?;
        v.map(|b| {
            tree_store::decode_node(&b).ok_or_else(|| StateError::Corrupt {
                key: hex::encode(&pos),
                source: DecodeError::Malformed("not a state tree node".into()),
            })
        })
        .transpose()
    }

    /// Proves the current values (or absence) of `keys` at the tip, all at one height: the
    /// tip's header, and per key its value and state proof against the header's
    /// `state_root`. Only for a chain of state format 2.
    pub fn prove_state(&self, keys: &[&[u8]]) -> Result<TipStateProofs> {
        if !self.state_format.has_tree() {
            return Err(StoreError::NoStateTree);
        }
        // Held across every read: no commit can change the tree, the values or the tip.
        let memory = self.tree_memory.read().unwrap_or_else(|p| p.into_inner());
        let tip = self.stored_tip()?;
        let locked = LockedTree {
            store: self,
            memory: &memory,
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let value = self.db.get_cf(self.cf(CF_STATE), key)?;
            let proof = state_tree::prove(&locked, tip.height, key, value.as_deref())?;
            out.push((value, proof));
        }
        Ok(TipStateProofs {
            height: tip.height,
            state_root: tip.state_root,
            proofs: out,
        })
    }
}

fn history_key(head_key: &[u8], position: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(head_key.len() + 8);
    k.extend_from_slice(head_key);
    k.extend_from_slice(&position.to_be_bytes());
    k
}

/// Records of one history, in order, with the head before the first of them
/// ([`Store::history_page`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    /// The head before the page's first record.
    pub before: crate::history::HistoryHead,
    /// Per record: its leaf index, and the head's hash after it.
    pub records: Vec<(u64, Hash)>,
}

impl Store {
    /// The records at positions `end − limit … end − 1` (0-based) of the history whose
    /// head is under `head_key` (state format 2), with the head before them. Positions
    /// beyond the history are not returned: a page ends at the history's stored end.
    pub fn history_page(&self, head_key: &[u8], end: u64, limit: u64) -> Result<HistoryPage> {
        let start = end.saturating_sub(limit);
        let corrupt = |why: String| StoreError::Corrupt {
            what: "history entry",
            source: DecodeError::Malformed(why),
        };
        let before = if start == 0 {
            crate::history::HistoryHead::default()
        } else {
            let v = self
                .db
                .get_cf(self.cf(CF_HISTORY), history_key(head_key, start))?
                .ok_or_else(|| corrupt(format!("position {start} is missing")))?;
            let (_, hash) = decode::<(u64, Hash)>(&v, "history entry")?;
            crate::history::HistoryHead { count: start, hash }
        };
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(history_key(head_key, end.saturating_add(1)));
        let from = history_key(head_key, start + 1);
        let mut records = Vec::with_capacity((end - start).min(PAGE_LIMIT_MAX as u64) as usize);
        for (i, item) in self
            .db
            .iterator_cf_opt(
                self.cf(CF_HISTORY),
                ro,
                IteratorMode::From(&from, Direction::Forward),
            )
            .enumerate()
        {
            let (k, v) = item?;
            let position = k
                .len()
                .checked_sub(8)
                .and_then(|at| k.get(at..))
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            if k.len() != head_key.len() + 8 || position != Some(start + 1 + i as u64) {
                return Err(corrupt(format!(
                    "expected position {} of the history",
                    start + 1 + i as u64
                )));
            }
            records.push(decode::<(u64, Hash)>(&v, "history entry")?);
        }
        Ok(HistoryPage { before, records })
    }
}

/// Values and proofs of state keys at one height ([`Store::prove_state`]).
#[derive(Clone, Debug)]
pub struct TipStateProofs {
    /// The tip's height.
    pub height: u64,
    /// Its header's `state_root`.
    pub state_root: Hash,
    /// Per key asked, in order: its value (`None`: absent) and the proof.
    pub proofs: Vec<(Option<Vec<u8>>, StateProof)>,
}

/// The tree under a held read lock of its memory copy.
struct LockedTree<'a> {
    store: &'a Store,
    memory: &'a TreeMemory,
}

impl NodeRead for LockedTree<'_> {
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError> {
        if self.memory.holds(key.depth)
            && let Some(n) = self.memory.get(key)
        {
            return Ok(Some(n));
        }
        self.store.stored_tree_node(key)
    }

    fn root_of(&self, version: u64) -> Result<Option<Child>, StateError> {
        Ok(self
            .memory
            .root
            .filter(|(v, _)| *v == version)
            .map(|(_, c)| c))
    }
}

impl NodeRead for Store {
    /// The upper levels from memory, the others with one RocksDB point lookup. The store
    /// holds only the tip's tree, so the version in `key` is not consulted. For the
    /// driver, which executes on the tip it commits; a reader that races commits uses
    /// [`Store::prove_state`].
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError> {
        {
            let memory = self.tree_memory.read().unwrap_or_else(|p| p.into_inner());
            if memory.holds(key.depth)
                && let Some(n) = memory.get(key)
            {
                return Ok(Some(n));
            }
        }
        self.stored_tree_node(key)
    }

    fn root_of(&self, version: u64) -> Result<Option<Child>, StateError> {
        let memory = self.tree_memory.read().unwrap_or_else(|p| p.into_inner());
        Ok(memory.root.filter(|(v, _)| *v == version).map(|(_, c)| c))
    }
}

impl StateRead for StoreState<'_> {
    fn tree(&self) -> Option<&dyn NodeRead> {
        if self.store.state_format.has_tree() {
            Some(self.store)
        } else {
            None
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let cache = &self.store.state_cache;
        let (hit, generation) = cache.get(key);
        if let Some(entry) = hit {
            return Ok(entry);
        }
        let value = self
            .store
            .db
            .get_cf(self.store.cf(CF_STATE), key)
            .map_err(|e| StateError::Storage(e.to_string()))?;
        cache.fill(generation, key, value.as_deref());
        Ok(value)
    }
}

impl StoreState<'_> {
    /// Convenience: the validator set in force at a height, from the state's history.
    pub fn validator_set_at(&self, height: u64) -> Result<Option<ValidatorSet>, StateError> {
        Ok(self.validator_sets()?.at(height).cloned())
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    codec::decode_prefix_exact(bytes).map_err(|source| StoreError::Corrupt { what, source })
}

mod log_memory;
mod state_cache;
pub mod tree_store;
pub use log_memory::{LEAF_CHUNK, LOG_MEMORY_BYTES_MAX, LOG_MEMORY_LEVEL_FIRST, LogMemory};
pub use state_cache::{STATE_CACHE_ENTRIES_MAX, STATE_CACHE_VALUE_BYTES_MAX, StateCache};
pub use tree_store::{TREE_MEMORY_DEPTH, TreeMemory};

#[cfg(test)]
mod tests;
