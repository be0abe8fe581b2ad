//! Candidate blocks of the heights being decided: proposed by peers or built here, with
//! the result of executing them once validated.

use ledger::block::Block;
use ledger::chain::ExecutedBlock;
use ledger::hash::Hash;
use std::collections::BTreeMap;

/// Most candidate blocks kept (over the current and the next height). A correct proposer
/// sends one block per round; more come only from equivocators or many rounds.
pub const CANDIDATES_MAX: usize = 64;

/// A candidate block.
pub struct Candidate {
    /// The block.
    pub block: Block,
    /// Its execution, once validated.
    pub executed: Option<ExecutedBlock>,
    /// The verdict, once known.
    pub valid: Option<bool>,
}

/// Candidate blocks by hash.
#[derive(Default)]
pub struct Candidates {
    by_hash: BTreeMap<Hash, Candidate>,
    /// Insertion order, for eviction.
    order: Vec<Hash>,
}

impl Candidates {
    /// Adds a block (ignored if known). Evicts the oldest beyond [`CANDIDATES_MAX`].
    pub fn insert(&mut self, hash: Hash, block: Block) {
        if self.by_hash.contains_key(&hash) {
            return;
        }
        if self.order.len() >= CANDIDATES_MAX {
            let old = self.order.remove(0);
            self.by_hash.remove(&old);
        }
        self.order.push(hash);
        self.by_hash.insert(
            hash,
            Candidate {
                block,
                executed: None,
                valid: None,
            },
        );
    }

    /// A candidate.
    pub fn get(&self, hash: &Hash) -> Option<&Candidate> {
        self.by_hash.get(hash)
    }

    /// A candidate, mutably.
    pub fn get_mut(&mut self, hash: &Hash) -> Option<&mut Candidate> {
        self.by_hash.get_mut(hash)
    }

    /// Removes a candidate.
    pub fn take(&mut self, hash: &Hash) -> Option<Candidate> {
        self.order.retain(|h| h != hash);
        self.by_hash.remove(hash)
    }

    /// Forgets candidates of heights below `height`.
    pub fn drop_below(&mut self, height: u64) {
        self.by_hash.retain(|_, c| c.block.header.height >= height);
        let by_hash = &self.by_hash;
        self.order.retain(|h| by_hash.contains_key(h));
    }
}
