//! Roots at past sizes and the RFC 9162 proofs, produced from stored nodes.

use super::largest_power_of_two_below;
use super::node::{LogError, NodeId, NodeReader, fold_range, range_hash, range_nodes};
use crate::hash::Hash;

/// MTH of the first `size` leaves of the log: [`super::empty_root`] for 0, otherwise the
/// `popcount(size)` peaks of that size folded from the right. Reads at most 64 nodes.
pub fn root_at(size: u64, reader: &(impl NodeReader + ?Sized)) -> Result<Hash, LogError> {
    if size == 0 {
        return Ok(super::empty_root());
    }
    range_hash(0, size, reader)
}

/// The subtrees, as `(start, len)` leaf ranges, whose MTHs form `PATH(index, D[size])` of RFC
/// 9162 §2.1.3.1, visited from the root down (the reverse of the proof's order).
/// Requires `index < size`.
pub(crate) fn for_each_inclusion_range<E>(
    index: u64,
    size: u64,
    mut visit: impl FnMut(u64, u64) -> Result<(), E>,
) -> Result<(), E> {
    debug_assert!(index < size);
    // The current subtree is D[start:start+n]; `index` is inside it.
    let (mut start, mut n) = (0u64, size);
    while n > 1 {
        let k = largest_power_of_two_below(n);
        if index - start < k {
            // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
            visit(start + k, n - k)?;
            n = k;
        } else {
            // PATH(m, D[n]) = PATH(m − k, D[k:n]) : MTH(D[0:k])
            visit(start, k)?;
            start += k;
            n -= k;
        }
    }
    Ok(())
}

/// The subtrees, as `(start, len)` leaf ranges, whose MTHs form `PROOF(old_size, D[new_size])` =
/// `SUBPROOF(old_size, D[new_size], true)` of RFC 9162 §2.1.4.1, visited from the root down (the
/// reverse of the proof's order). Requires `0 < old_size < new_size`.
pub(crate) fn for_each_consistency_range<E>(
    old_size: u64,
    new_size: u64,
    mut visit: impl FnMut(u64, u64) -> Result<(), E>,
) -> Result<(), E> {
    debug_assert!(0 < old_size && old_size < new_size);
    // SUBPROOF(m, D[start:start+n], b).
    let (mut start, mut n, mut m, mut b) = (0u64, new_size, old_size, true);
    loop {
        if m == n {
            // SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}.
            if !b {
                visit(start, n)?;
            }
            return Ok(());
        }
        let k = largest_power_of_two_below(n);
        if m <= k {
            // SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            visit(start + k, n - k)?;
            n = k;
        } else {
            // SUBPROOF(m − k, D[k:n], false) : MTH(D[0:k])
            visit(start, k)?;
            start += k;
            n -= k;
            m -= k;
            b = false;
        }
    }
}

/// Number of hashes in `PATH(index, D[size])`; `index < size`.
pub(crate) fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let mut len = 0;
    let _ = for_each_inclusion_range::<()>(index, size, |_, _| {
        len += 1;
        Ok(())
    });
    len
}

/// Number of hashes in `PROOF(old_size, D[new_size])`; `0 < old_size < new_size`.
pub(crate) fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let mut len = 0;
    let _ = for_each_consistency_range::<()>(old_size, new_size, |_, _| {
        len += 1;
        Ok(())
    });
    len
}

/// The inclusion proof of leaf `index` in the log of `size` leaves: `PATH(index, D[size])` of
/// RFC 9162 §2.1.3.1, from the leaf's sibling up to the root's child.
///
/// Every element is a stored node except at most one right-edge subtree, folded from at most
/// 64 stored nodes, so this reads O(log size) nodes. Errors: [`LogError::IndexOutOfRange`] if
/// `index ≥ size` (in particular for `size = 0`), or the reader's error (a `size` beyond the
/// stored log gives [`LogError::MissingNode`]).
pub fn inclusion_proof(
    index: u64,
    size: u64,
    reader: &(impl NodeReader + ?Sized),
) -> Result<Vec<Hash>, LogError> {
    if index >= size {
        return Err(LogError::IndexOutOfRange { index, size });
    }
    let mut ranges = Vec::with_capacity(64);
    for_each_inclusion_range::<LogError>(index, size, |start, len| {
        ranges.push((start, len));
        Ok(())
    })?;
    proof_from_ranges(&ranges, reader)
}

/// The MTHs of `ranges` (root down), bottom-up, with every node read in one batch.
fn proof_from_ranges(
    ranges: &[(u64, u64)],
    reader: &(impl NodeReader + ?Sized),
) -> Result<Vec<Hash>, LogError> {
    let mut ids: Vec<NodeId> = Vec::with_capacity(ranges.len() + 64);
    let mut ends = Vec::with_capacity(ranges.len());
    for &(start, len) in ranges {
        range_nodes(start, len, &mut ids);
        ends.push(ids.len());
    }
    let hashes = reader.nodes(&ids)?;
    let mut path = Vec::with_capacity(ranges.len());
    let mut from = 0;
    for end in ends {
        path.push(fold_range(&hashes[from..end]));
        from = end;
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof between the log of `old_size` leaves and the log of `new_size`
/// leaves: `PROOF(old_size, D[new_size])` of RFC 9162 §2.1.4.1, bottom-up.
///
/// RFC 9162 defines it for `0 < old_size < new_size`; for `old_size == new_size` and for
/// `old_size == 0` there is nothing to prove and the proof is empty (as in Trillian and the
/// RFC 9162 test vectors; [`super::verify_consistency`] then checks the roots directly), and
/// no node is read, so the caller checks `new_size` against its log.
/// Reads O(log new_size) nodes. Errors: [`LogError::SizesOutOfOrder`] if
/// `old_size > new_size`, or the reader's error.
pub fn consistency_proof(
    old_size: u64,
    new_size: u64,
    reader: &(impl NodeReader + ?Sized),
) -> Result<Vec<Hash>, LogError> {
    if old_size > new_size {
        return Err(LogError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::with_capacity(64);
    for_each_consistency_range::<LogError>(old_size, new_size, |start, len| {
        ranges.push((start, len));
        Ok(())
    })?;
    proof_from_ranges(&ranges, reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The proof lengths against closed forms (RFC 9162 / Trillian): an inclusion path has
    /// one hash per level below the point where the leaf leaves the right edge (`inner`) plus
    /// one per set bit above it (`border`).
    #[test]
    fn proof_lengths_match_closed_forms() {
        for size in 1..=300u64 {
            for index in 0..size {
                let inner = 64 - (index ^ (size - 1)).leading_zeros();
                let border = (index >> inner).count_ones();
                assert_eq!(inclusion_proof_len(index, size), (inner + border) as usize);
            }
            for old in 1..size {
                // Consistency = inclusion path of leaf old − 1, minus the levels below the
                // lowest zero bit of old − 1, plus the old root's own subtree unless old is a
                // power of two.
                let shift = (old - 1).trailing_ones().min(63);
                let inner = 64 - (((old - 1) ^ (size - 1)) >> shift).leading_zeros();
                let border = ((old - 1) >> shift >> inner).count_ones();
                let extra = usize::from(!old.is_power_of_two());
                assert_eq!(
                    consistency_proof_len(old, size),
                    (inner + border) as usize + extra,
                    "({old}, {size})"
                );
            }
        }
    }
}
