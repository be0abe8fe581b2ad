//! The upper levels of the history log, kept in memory so that a proof reads only the few
//! low nodes near its leaf from RocksDB.
//!
//! Nodes of level ≥ [`LogMemory::min_level`] are held for indexes `0..len` of each level,
//! exactly as committed. The lowest held level starts at [`LOG_MEMORY_LEVEL_FIRST`] (about
//! 4 MB per million records) and moves up one level whenever the copy would exceed
//! [`LOG_MEMORY_BYTES_MAX`] (halving it), so memory stays bounded however long the log grows.
//! A node that is not held is read from RocksDB: the copy is an accelerator, never the truth.

use crate::hash::Hash;
use crate::history_log::NodeId;

/// The lowest level of the log whose nodes are stored one by one (in the `log` column
/// family), and the lowest level held in memory while the budget allows. Nodes below it are
/// not stored: they are computed from the leaves of their [`LEAF_CHUNK`]-leaf chunk, which
/// are stored together (the `leaves` column family).
pub const LOG_MEMORY_LEVEL_FIRST: u8 = 4;

/// Most bytes of node hashes held in memory.
pub const LOG_MEMORY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Leaves read together to compute the nodes below [`LOG_MEMORY_LEVEL_FIRST`].
pub const LEAF_CHUNK: u64 = 1 << LOG_MEMORY_LEVEL_FIRST;

/// See the module documentation.
#[derive(Debug)]
pub struct LogMemory {
    min_level: u8,
    /// `levels[l]` holds level `min_level + l`.
    levels: Vec<Vec<Hash>>,
    nodes: usize,
}

impl Default for LogMemory {
    fn default() -> Self {
        Self {
            min_level: LOG_MEMORY_LEVEL_FIRST,
            levels: Vec::new(),
            nodes: 0,
        }
    }
}

impl LogMemory {
    /// An empty copy whose lowest level suits a log of `log_size` leaves (about
    /// `2·size/2^level` nodes are held).
    pub fn for_size(log_size: u64) -> Self {
        let mut min_level = LOG_MEMORY_LEVEL_FIRST;
        while min_level < 63 && held_bytes(log_size, min_level) > LOG_MEMORY_BYTES_MAX as u64 {
            min_level += 1;
        }
        Self {
            min_level,
            ..Self::default()
        }
    }

    /// The lowest level held.
    pub fn min_level(&self) -> u8 {
        self.min_level
    }

    /// Bytes of hashes held.
    pub fn bytes(&self) -> usize {
        self.nodes * Hash::LEN
    }

    /// Appends a committed node if it is the next one of a held level (nodes complete in
    /// index order); anything else is ignored and stays in RocksDB only.
    pub fn push(&mut self, id: NodeId, hash: Hash) {
        let Some(l) = id.level.checked_sub(self.min_level) else {
            return;
        };
        let l = usize::from(l);
        if self.levels.len() <= l {
            self.levels.resize_with(l + 1, Vec::new);
        }
        if self.levels[l].len() as u64 == id.index {
            self.levels[l].push(hash);
            self.nodes += 1;
        }
        while self.bytes() > LOG_MEMORY_BYTES_MAX && self.levels.len() > 1 {
            let dropped = self.levels.remove(0);
            self.nodes -= dropped.len();
            self.min_level += 1;
        }
    }

    /// A held node.
    pub fn get(&self, id: NodeId) -> Option<Hash> {
        let l = usize::from(id.level.checked_sub(self.min_level)?);
        self.levels
            .get(l)?
            .get(usize::try_from(id.index).ok()?)
            .copied()
    }
}

/// Bytes of the nodes of levels ≥ `level` in a log of `size` leaves.
fn held_bytes(size: u64, level: u8) -> u64 {
    (u64::from(level)..64)
        .map(|l| size >> l)
        .sum::<u64>()
        .saturating_mul(Hash::LEN as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> Hash {
        crate::history_log::leaf_hash(&i.to_le_bytes())
    }

    #[test]
    fn holds_levels_from_the_first_and_ignores_gaps_and_low_levels() {
        let mut m = LogMemory::default();
        m.push(NodeId::new(0, 0), h(0));
        m.push(NodeId::new(3, 0), h(1));
        assert_eq!(m.bytes(), 0);
        m.push(NodeId::new(4, 0), h(2));
        m.push(NodeId::new(4, 2), h(3)); // a gap: not held
        m.push(NodeId::new(4, 1), h(4));
        m.push(NodeId::new(9, 0), h(5));
        assert_eq!(m.get(NodeId::new(4, 0)), Some(h(2)));
        assert_eq!(m.get(NodeId::new(4, 1)), Some(h(4)));
        assert_eq!(m.get(NodeId::new(4, 2)), None);
        assert_eq!(m.get(NodeId::new(9, 0)), Some(h(5)));
        assert_eq!(m.get(NodeId::new(3, 0)), None);
        assert_eq!(m.bytes(), 3 * 32);
    }

    #[test]
    fn the_first_level_suits_the_budget() {
        assert_eq!(LogMemory::for_size(0).min_level(), LOG_MEMORY_LEVEL_FIRST);
        assert_eq!(
            LogMemory::for_size(1_000_000).min_level(),
            LOG_MEMORY_LEVEL_FIRST
        );
        let big = LogMemory::for_size(1 << 40);
        assert!(held_bytes(1 << 40, big.min_level()) <= LOG_MEMORY_BYTES_MAX as u64);
        assert!(held_bytes(1 << 40, big.min_level() - 1) > LOG_MEMORY_BYTES_MAX as u64);
    }
}
