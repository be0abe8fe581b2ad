//! Secondary indexes for every query of the API, as sortable keys. Each key ends in the
//! record's history-log leaf index (u64 big-endian), so a prefix scan lists records in log
//! order and a leaf index is a stable pagination cursor. Values are empty.
//!
//! Ids inside keys are followed by a `0x00` separator; ids cannot contain control
//! characters (see [`crate::tx`]), so no id is a prefix of another's key.

use crate::crypto::PublicKey;
use crate::execute::Applied;
use crate::hash::Hash;
use crate::tx::{SignedTx, TxBody};

/// The kinds of index; the byte is the key prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexQuery<'a> {
    /// Every record about an approval (issue, amendments, revocation).
    Approval(&'a str),
    /// Issuances of approvals about a subject.
    ApprovalSubject(&'a str),
    /// Every record about a parcel (its title history).
    Parcel(&'a str),
    /// Every data-access event about a citizen pseudonym.
    Pseudonym(&'a Hash),
    /// Every record signed by a department, in a time range (ms, inclusive).
    Department {
        /// The department.
        department: &'a str,
        /// From (inclusive).
        from_ms: u64,
        /// To (inclusive).
        to_ms: u64,
    },
    /// Catalogue registrations/updates of a resource and access events on it.
    Resource(&'a str),
    /// Every record naming a document hash (anchors, approval and land documents).
    Document(&'a Hash),
    /// A governance proposal and its votes.
    Proposal(&'a Hash),
    /// Evidence against a validator.
    Validator(&'a PublicKey),
    /// Every catalogue registration (the list of resources).
    CatalogRegistrations,
}

const APPROVAL: u8 = b'A';
const SUBJECT: u8 = b'S';
const PARCEL: u8 = b'L';
const PSEUDONYM: u8 = b'P';
const DEPARTMENT: u8 = b'D';
const RESOURCE: u8 = b'C';
const DOCUMENT: u8 = b'H';
const PROPOSAL: u8 = b'G';
const VALIDATOR: u8 = b'V';
const CATALOG_REG: u8 = b'R';

fn with_str(prefix: u8, s: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + s.len() + 8);
    k.push(prefix);
    k.extend_from_slice(s.as_bytes());
    k.push(0);
    k
}

fn with_bytes(prefix: u8, b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + b.len() + 8);
    k.push(prefix);
    k.extend_from_slice(b);
    k
}

impl IndexQuery<'_> {
    /// The scan range `[start, end)` of this query, before any cursor.
    pub fn range(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            IndexQuery::Department {
                department,
                from_ms,
                to_ms,
            } => {
                let base = with_str(DEPARTMENT, department);
                let mut start = base.clone();
                start.extend_from_slice(&from_ms.to_be_bytes());
                let mut end = base;
                match to_ms.checked_add(1) {
                    Some(t) => end.extend_from_slice(&t.to_be_bytes()),
                    None => end = prefix_end(&end),
                }
                (start, end)
            }
            _ => {
                let p = self.prefix();
                let end = prefix_end(&p);
                (p, end)
            }
        }
    }

    /// The first key after the record at `after_leaf` (whose block time is
    /// `after_time_ms`, needed only by department queries, which are ordered by time).
    pub fn seek_after(&self, after_leaf: u64, after_time_ms: u64) -> Vec<u8> {
        let mut k = match self {
            IndexQuery::Department { department, .. } => {
                let mut k = with_str(DEPARTMENT, department);
                k.extend_from_slice(&after_time_ms.to_be_bytes());
                k
            }
            _ => self.prefix(),
        };
        match after_leaf.checked_add(1) {
            Some(n) => k.extend_from_slice(&n.to_be_bytes()),
            None => return prefix_end(&k),
        }
        k
    }

    /// Whether results are ordered by time (then leaf) rather than by leaf.
    pub fn is_by_time(&self) -> bool {
        matches!(self, IndexQuery::Department { .. })
    }

    fn prefix(&self) -> Vec<u8> {
        match self {
            IndexQuery::Approval(id) => with_str(APPROVAL, id),
            IndexQuery::ApprovalSubject(s) => with_str(SUBJECT, s),
            IndexQuery::Parcel(id) => with_str(PARCEL, id),
            IndexQuery::Pseudonym(h) => with_bytes(PSEUDONYM, &h.0),
            IndexQuery::Department { department, .. } => with_str(DEPARTMENT, department),
            IndexQuery::Resource(id) => with_str(RESOURCE, id),
            IndexQuery::Document(h) => with_bytes(DOCUMENT, &h.0),
            IndexQuery::Proposal(h) => with_bytes(PROPOSAL, &h.0),
            IndexQuery::Validator(k) => with_bytes(VALIDATOR, &k.0),
            IndexQuery::CatalogRegistrations => vec![CATALOG_REG],
        }
    }
}

/// The smallest key greater than every key starting with `p`.
pub fn prefix_end(p: &[u8]) -> Vec<u8> {
    let mut end = p.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: no upper bound short of infinity; use a key longer than any we write.
    vec![0xff; 1024]
}

/// The leaf index at the end of an index key.
pub fn leaf_of_key(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The index keys of one committed record.
pub fn index_keys(stx: &SignedTx, applied: &Applied, time_ms: u64, leaf: u64) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::with_capacity(4);
    let mut dept = with_str(DEPARTMENT, &applied.department);
    dept.extend_from_slice(&time_ms.to_be_bytes());
    keys.push(dept);
    match &stx.tx.body {
        TxBody::ApprovalIssue(a) => {
            keys.push(with_str(APPROVAL, &a.approval_id));
            keys.push(with_str(SUBJECT, &a.subject));
            keys.push(with_bytes(DOCUMENT, &a.document_hash.0));
        }
        TxBody::ApprovalAmend(a) => {
            keys.push(with_str(APPROVAL, &a.approval_id));
            keys.push(with_bytes(DOCUMENT, &a.document_hash.0));
        }
        TxBody::ApprovalRevoke(a) => keys.push(with_str(APPROVAL, &a.approval_id)),
        TxBody::LandRegister(l) => {
            keys.push(with_str(PARCEL, &l.parcel_id));
            keys.push(with_bytes(DOCUMENT, &l.document_hash.0));
        }
        TxBody::LandTransfer(l) => {
            keys.push(with_str(PARCEL, &l.parcel_id));
            keys.push(with_bytes(DOCUMENT, &l.deed_hash.0));
        }
        TxBody::LandEncumber(l) => {
            keys.push(with_str(PARCEL, &l.parcel_id));
            keys.push(with_bytes(DOCUMENT, &l.document_hash.0));
        }
        TxBody::LandRelease(l) => {
            keys.push(with_str(PARCEL, &l.parcel_id));
            keys.push(with_bytes(DOCUMENT, &l.document_hash.0));
        }
        TxBody::CatalogRegister(c) => {
            keys.push(with_str(RESOURCE, &c.resource_id));
            keys.push(vec![CATALOG_REG]);
        }
        TxBody::CatalogUpdate(c) => keys.push(with_str(RESOURCE, &c.resource_id)),
        TxBody::DataAccess(d) => {
            keys.push(with_bytes(PSEUDONYM, &d.subject.0));
            keys.push(with_str(RESOURCE, &d.resource_id));
        }
        TxBody::Anchor(a) => keys.push(with_bytes(DOCUMENT, &a.document_hash.0)),
        TxBody::GovernancePropose(_) => {
            // The proposal id is the proposing record's own id.
            keys.push(with_bytes(PROPOSAL, &stx.id().0));
        }
        TxBody::GovernanceVote(v) => keys.push(with_bytes(PROPOSAL, &v.proposal_id.0)),
        TxBody::Evidence(e) => keys.push(with_bytes(VALIDATOR, &e.key().validator.0)),
    }
    for k in &mut keys {
        k.extend_from_slice(&leaf.to_be_bytes());
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_do_not_collide_by_prefix() {
        let (s1, e1) = IndexQuery::Parcel("P-1").range();
        let (s2, _) = IndexQuery::Parcel("P-10").range();
        assert!(s2 >= e1 || s2 < s1, "P-10 keys must be outside P-1's range");
    }

    #[test]
    fn department_range_is_inclusive() {
        let (s, e) = IndexQuery::Department {
            department: "d",
            from_ms: 10,
            to_ms: 20,
        }
        .range();
        let mut k = with_str(DEPARTMENT, "d");
        k.extend_from_slice(&20u64.to_be_bytes());
        k.extend_from_slice(&7u64.to_be_bytes());
        assert!(k >= s && k < e);
        let mut k = with_str(DEPARTMENT, "d");
        k.extend_from_slice(&21u64.to_be_bytes());
        k.extend_from_slice(&0u64.to_be_bytes());
        assert!(k >= e);
        assert_eq!(leaf_of_key(&k), Some(0));
    }

    #[test]
    fn prefix_end_carries() {
        assert_eq!(prefix_end(&[1, 0xff]), vec![2]);
        assert_eq!(prefix_end(&[1, 2]), vec![1, 3]);
    }
}
