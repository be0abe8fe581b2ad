//! History heads: for every thing that has a history (an approval, a parcel, a catalogue
//! resource, a citizen pseudonym's access events, a department's records, a governance
//! proposal), the state (format 2) holds a head — the number of records so far and a hash
//! chained over them in log order — so that a history can be proven complete: a state
//! proof of the head, and every record with its inclusion proof in the history log, from
//! which the verifier recomputes the head.
//!
//! A head is `{count, hash}`: `count = 0, hash = 0³²` before the first record, and after a
//! record with log leaf index `i` and record id `id`:
//!
//! ```text
//! hash' = blake3("govledger/history/v1" ‖ hash ‖ u64_le(i) ‖ id),  count' = count + 1
//! ```
//!
//! Long histories are verified in pages, newest first: a page gives the records
//! `count−k … count−1` and the hash *before* its first record; the verifier chains the
//! records onto it and must reach the head (for the newest page) or the previous page's
//! "before" (for an older one), and the oldest page must start from `0³²` at count 0.

use crate::execute::Applied;
use crate::hash::{Hash, hash_parts};
use crate::state::keys;
use crate::tx::{SignedTx, TxBody};
use serde::{Deserialize, Serialize};

/// Hash domain of a head's chain.
pub const HISTORY_TAG: &[u8] = b"govledger/history/v1";

/// What a history belongs to. The byte is the second byte of the head's state key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum HistoryId {
    /// An approval: its issue, amendments and revocation.
    Approval(String),
    /// A land parcel: registration, transfers, encumbrances and releases.
    Parcel(String),
    /// A catalogue resource: its registration and updates, and every access event to it.
    Resource(String),
    /// A citizen pseudonym: every access event to their data.
    Pseudonym(Hash),
    /// A department: every record signed by one of its keys (for evidence, by its
    /// validator).
    Department(String),
    /// A governance proposal: the proposal and its votes.
    Proposal(Hash),
}

impl HistoryId {
    /// The tag byte in the head's state key.
    pub fn tag(&self) -> u8 {
        match self {
            HistoryId::Approval(_) => b'a',
            HistoryId::Parcel(_) => b'l',
            HistoryId::Resource(_) => b'c',
            HistoryId::Pseudonym(_) => b's',
            HistoryId::Department(_) => b'd',
            HistoryId::Proposal(_) => b'g',
        }
    }

    /// The id's bytes in the head's state key (UTF-8 of a string id, or 32 raw bytes).
    pub fn id_bytes(&self) -> &[u8] {
        match self {
            HistoryId::Approval(s)
            | HistoryId::Parcel(s)
            | HistoryId::Resource(s)
            | HistoryId::Department(s) => s.as_bytes(),
            HistoryId::Pseudonym(h) | HistoryId::Proposal(h) => &h.0,
        }
    }

    /// The head's state key: [`keys::HISTORY`], the tag byte, the id bytes.
    pub fn state_key(&self) -> Vec<u8> {
        let id = self.id_bytes();
        let mut k = Vec::with_capacity(2 + id.len());
        k.push(keys::HISTORY);
        k.push(self.tag());
        k.extend_from_slice(id);
        k
    }

    /// A short name for messages: `approval BP-1`, `pseudonym 3f…`.
    pub fn describe(&self) -> String {
        match self {
            HistoryId::Approval(s) => format!("approval {s}"),
            HistoryId::Parcel(s) => format!("parcel {s}"),
            HistoryId::Resource(s) => format!("catalogue resource {s}"),
            HistoryId::Pseudonym(h) => format!("pseudonym {h}"),
            HistoryId::Department(s) => format!("department {s}"),
            HistoryId::Proposal(h) => format!("proposal {h}"),
        }
    }
}

/// The head of one history (its canonical encoding is the state value: `u64` count, then
/// the 32-byte hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryHead {
    /// Records so far.
    pub count: u64,
    /// The chain over them (`0³²` when there are none).
    pub hash: Hash,
}

impl Default for HistoryHead {
    /// The head of a history without records.
    fn default() -> Self {
        HistoryHead {
            count: 0,
            hash: Hash::ZERO,
        }
    }
}

impl HistoryHead {
    /// The head after one more record.
    pub fn next(&self, leaf_index: u64, record_id: &Hash) -> HistoryHead {
        HistoryHead {
            count: self.count.saturating_add(1),
            hash: link(&self.hash, leaf_index, record_id),
        }
    }
}

/// One link of a head's chain.
pub fn link(prev: &Hash, leaf_index: u64, record_id: &Hash) -> Hash {
    hash_parts(
        HISTORY_TAG,
        &[&prev.0, &leaf_index.to_le_bytes(), &record_id.0],
    )
}

/// The histories a committed record belongs to, in a fixed order, without repeats.
pub fn histories_of(stx: &SignedTx, applied: &Applied) -> Vec<HistoryId> {
    let mut out = Vec::with_capacity(3);
    out.push(HistoryId::Department(applied.department.clone()));
    match &stx.tx.body {
        TxBody::ApprovalIssue(a) => out.push(HistoryId::Approval(a.approval_id.clone())),
        TxBody::ApprovalAmend(a) => out.push(HistoryId::Approval(a.approval_id.clone())),
        TxBody::ApprovalRevoke(a) => out.push(HistoryId::Approval(a.approval_id.clone())),
        TxBody::LandRegister(l) => out.push(HistoryId::Parcel(l.parcel_id.clone())),
        TxBody::LandTransfer(l) => out.push(HistoryId::Parcel(l.parcel_id.clone())),
        TxBody::LandEncumber(l) => out.push(HistoryId::Parcel(l.parcel_id.clone())),
        TxBody::LandRelease(l) => out.push(HistoryId::Parcel(l.parcel_id.clone())),
        TxBody::CatalogRegister(c) => out.push(HistoryId::Resource(c.resource_id.clone())),
        TxBody::CatalogUpdate(c) => out.push(HistoryId::Resource(c.resource_id.clone())),
        TxBody::DataAccess(d) => {
            out.push(HistoryId::Pseudonym(d.subject));
            out.push(HistoryId::Resource(d.resource_id.clone()));
        }
        TxBody::Anchor(_) | TxBody::Evidence(_) => {}
        TxBody::GovernancePropose(_) => out.push(HistoryId::Proposal(stx.id())),
        TxBody::GovernanceVote(v) => out.push(HistoryId::Proposal(v.proposal_id)),
    }
    out
}

/// Why a page of a history does not chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The page's records are not in log order.
    #[error("record {index} (leaf {leaf}) is not after the record before it")]
    OutOfOrder {
        /// Position in the page.
        index: usize,
        /// Its leaf index.
        leaf: u64,
    },
    /// The records do not lead to the expected head.
    #[error(
        "the {count} records chained onto the page's start give {computed}, not the expected {expected}"
    )]
    Mismatch {
        /// Records in the page.
        count: usize,
        /// What they give.
        computed: Hash,
        /// What they should give.
        expected: Hash,
    },
    /// A page claims to start before the first record, or counts do not add up.
    #[error("{0}")]
    Count(String),
}

/// Checks that `records` (leaf index, record id), in order, chained onto `before` (the
/// head before the page's first record) give `after`. Counts must add up too.
pub fn check_page(
    before: &HistoryHead,
    records: &[(u64, Hash)],
    after: &HistoryHead,
) -> Result<(), HistoryError> {
    if before.count.checked_add(records.len() as u64) != Some(after.count) {
        return Err(HistoryError::Count(format!(
            "a page starting at record {} with {} records cannot end at record {}",
            before.count,
            records.len(),
            after.count
        )));
    }
    if before.count == 0 && before.hash != Hash::ZERO {
        return Err(HistoryError::Count(
            "a page starting at record 0 must start from the zero hash".into(),
        ));
    }
    let mut h = *before;
    let mut last: Option<u64> = None;
    for (index, (leaf, id)) in records.iter().enumerate() {
        if last.is_some_and(|l| *leaf <= l) {
            return Err(HistoryError::OutOfOrder { index, leaf: *leaf });
        }
        last = Some(*leaf);
        h = h.next(*leaf, id);
    }
    if h.hash != after.hash {
        return Err(HistoryError::Mismatch {
            count: records.len(),
            computed: h.hash,
            expected: after.hash,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u64) -> (u64, Hash) {
        (i * 3, crate::hash::hash_with(b"t", &i.to_le_bytes()))
    }

    #[test]
    fn a_page_chains_only_in_order_and_complete() {
        let records: Vec<(u64, Hash)> = (0..5).map(rec).collect();
        let mut head = HistoryHead::default();
        let mut heads = vec![head];
        for (leaf, id) in &records {
            head = head.next(*leaf, id);
            heads.push(head);
        }
        check_page(&heads[0], &records, &heads[5]).unwrap();
        // Two pages, newest first, each provably the next.
        check_page(&heads[2], &records[2..], &heads[5]).unwrap();
        check_page(&heads[0], &records[..2], &heads[2]).unwrap();
        // A missing record, a swapped pair, a foreign record: refused.
        let mut missing = records.clone();
        missing.remove(3);
        assert!(check_page(&heads[0], &missing, &heads[5]).is_err());
        assert!(check_page(&heads[1], &missing, &heads[5]).is_err());
        let mut swapped = records.clone();
        swapped.swap(1, 2);
        assert!(matches!(
            check_page(&heads[0], &swapped, &heads[5]),
            Err(HistoryError::OutOfOrder { index: 2, .. })
        ));
        let mut foreign = records.clone();
        foreign[4].1.0[0] ^= 1;
        assert!(matches!(
            check_page(&heads[0], &foreign, &heads[5]),
            Err(HistoryError::Mismatch { .. })
        ));
        // A page claiming to be the first but starting from another hash.
        let fake = HistoryHead {
            count: 0,
            hash: heads[2].hash,
        };
        assert!(check_page(&fake, &records[2..], &heads[3]).is_err());
    }

    #[test]
    fn head_keys_do_not_collide_across_kinds() {
        let ids = [
            HistoryId::Approval("x".into()),
            HistoryId::Parcel("x".into()),
            HistoryId::Resource("x".into()),
            HistoryId::Department("x".into()),
            HistoryId::Pseudonym(Hash([b'x'; 32])),
            HistoryId::Proposal(Hash([b'x'; 32])),
        ];
        let keys: std::collections::BTreeSet<Vec<u8>> = ids.iter().map(|i| i.state_key()).collect();
        assert_eq!(keys.len(), ids.len());
        assert_eq!(ids[0].state_key(), b"Hax".to_vec());
    }
}
