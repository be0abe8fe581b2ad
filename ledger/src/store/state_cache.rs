//! A bounded read cache of committed state entries, in front of RocksDB point lookups.
//!
//! Every transaction's state keys are read several times per node: when the mempool admits
//! it, when the proposer builds a block, when each validator executes the proposal, and
//! when the mempool re-checks after a commit. Without the cache each read is a RocksDB
//! `get` (memtable skip-list search, bloom filters, SST blocks): about a tenth of a node's
//! CPU at 10,000 tx/s.
//!
//! The cache holds exactly what RocksDB holds, including absence (`None`), so a hit and a
//! lookup give the same answer and execution stays deterministic. Committed state changes
//! only in [`super::Store::commit_block`], which, after its synced write, replaces the
//! cached entries of the keys it wrote and advances the *generation*. A reader that missed
//! notes the generation before its RocksDB lookup and inserts what it read only if no commit
//! happened in between ([`StateCache::fill`]); otherwise a value read before a commit could
//! be inserted after it and stay stale. Nothing iterates the map, so its order reaches
//! nothing hashed or signed.

use std::collections::HashMap;
use std::sync::RwLock;

/// Most entries held; the cache is emptied when full (hot keys come back at once).
pub const STATE_CACHE_ENTRIES_MAX: usize = 65_536;
/// Values larger than this are not cached (the validator-set history, the parameters).
pub const STATE_CACHE_VALUE_BYTES_MAX: usize = 1024;

#[derive(Default)]
struct Inner {
    generation: u64,
    map: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

/// See the module documentation.
#[derive(Default)]
pub struct StateCache {
    inner: RwLock<Inner>,
}

impl StateCache {
    /// `Some(entry)` on a hit (`entry` is `None` for a key known to be absent), with the
    /// generation to pass to [`StateCache::fill`] after a miss.
    pub fn get(&self, key: &[u8]) -> (Option<Option<Vec<u8>>>, u64) {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        (inner.map.get(key).cloned(), inner.generation)
    }

    /// Caches what a reader found in RocksDB, unless a commit happened since it noted
    /// `generation`.
    pub fn fill(&self, generation: u64, key: &[u8], value: Option<&[u8]>) {
        if value.is_some_and(|v| v.len() > STATE_CACHE_VALUE_BYTES_MAX) {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if inner.generation != generation {
            return;
        }
        if inner.map.len() >= STATE_CACHE_ENTRIES_MAX {
            inner.map.clear();
        }
        inner.map.insert(key.to_vec(), value.map(<[u8]>::to_vec));
    }

    /// After a commit is durable: the cached entries of the written keys take their new
    /// values (a key not cached stays uncached), and the generation advances.
    pub fn committed<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
    ) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        for (k, v) in writes {
            if let Some(slot) = inner.map.get_mut(k) {
                match v {
                    Some(v) if v.len() > STATE_CACHE_VALUE_BYTES_MAX => {
                        inner.map.remove(k);
                    }
                    v => *slot = v.clone(),
                }
            }
        }
        inner.generation += 1;
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fill_after_a_commit_is_refused() {
        let c = StateCache::default();
        let key = b"nonce/alice".to_vec();
        let (hit, g) = c.get(&key);
        assert_eq!(hit, None);
        // A commit writes the key between the reader's lookup and its fill.
        let writes = std::collections::BTreeMap::from([(key.clone(), Some(b"2".to_vec()))]);
        c.committed(&writes);
        c.fill(g, &key, Some(b"1"));
        assert_eq!(c.get(&key).0, None, "the stale value must not be cached");
        // A fresh reader caches the current value, and the next commit replaces it.
        let (_, g) = c.get(&key);
        c.fill(g, &key, Some(b"2"));
        assert_eq!(c.get(&key).0, Some(Some(b"2".to_vec())));
        let writes = std::collections::BTreeMap::from([(key.clone(), None)]);
        c.committed(&writes);
        assert_eq!(c.get(&key).0, Some(None));
    }

    #[test]
    fn large_values_are_not_cached_and_the_size_is_bounded() {
        let c = StateCache::default();
        let (_, g) = c.get(b"big");
        c.fill(g, b"big", Some(&[0u8; STATE_CACHE_VALUE_BYTES_MAX + 1]));
        assert!(c.is_empty());
        for i in 0..STATE_CACHE_ENTRIES_MAX as u64 + 5 {
            c.fill(g, &i.to_le_bytes(), None);
        }
        assert!(c.len() <= STATE_CACHE_ENTRIES_MAX);
        assert!(!c.is_empty());
    }
}
