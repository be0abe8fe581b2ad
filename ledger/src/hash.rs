//! blake3 hashing with domain separation.
//!
//! Every hash in govledger is `blake3(prefix ‖ bytes)`. The history log uses the one-byte
//! prefixes of RFC 9162 (`0x00` leaf, `0x01` inner node); everything else uses an ASCII tag
//! ending in a version, e.g. `govledger/header/v1`. The tags are listed in `docs/encoding.md`.

use crate::bytes::fixed_bytes;

fixed_bytes!(
    /// A blake3 digest.
    Hash,
    32
);

impl Hash {
    /// The all-zero hash: the "previous block" of height 1 and the root of the empty log
    /// is *not* this (see [`crate::history_log::empty_root`]).
    pub const ZERO: Hash = Hash([0u8; 32]);
}

/// Domain tags. Changing any of them is a hard fork.
pub mod domain {
    /// RFC 9162 leaf prefix.
    pub const LEAF: &[u8] = &[0x00];
    /// RFC 9162 interior-node prefix.
    pub const NODE: &[u8] = &[0x01];
    /// Signing domain of a transaction.
    pub const TX_SIGN: &[u8] = b"govledger/tx/v1";
    /// Signing domain of a consensus vote.
    pub const VOTE_SIGN: &[u8] = b"govledger/vote/v1";
    /// Signing domain of a consensus proposal.
    pub const PROPOSAL_SIGN: &[u8] = b"govledger/proposal/v1";
    /// Hash of a block header (the block hash).
    pub const HEADER: &[u8] = b"govledger/header/v1";
    /// Hash of a validator set.
    pub const VALIDATORS: &[u8] = b"govledger/validators/v1";
    /// Chained state root.
    pub const STATE: &[u8] = b"govledger/state/v1";
    /// Hash of the genesis document.
    pub const GENESIS: &[u8] = b"govledger/genesis/v1";
    /// Hash of the empty log.
    pub const EMPTY_LOG: &[u8] = b"";
}

/// `blake3(prefix ‖ data)`.
pub fn hash_with(prefix: &[u8], data: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(prefix);
    h.update(data);
    Hash(*h.finalize().as_bytes())
}

/// `blake3(prefix ‖ parts[0] ‖ parts[1] ‖ …)`.
pub fn hash_parts(prefix: &[u8], parts: &[&[u8]]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(prefix);
    for p in parts {
        h.update(p);
    }
    Hash(*h.finalize().as_bytes())
}

/// blake3 of a whole document, without a prefix: what `govledger anchor FILE` computes.
pub fn hash_document(data: &[u8]) -> Hash {
    Hash(*blake3::hash(data).as_bytes())
}

/// Streaming variant of [`hash_document`] for large files.
pub fn hash_reader(mut r: impl std::io::Read) -> std::io::Result<Hash> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Hash(*h.finalize().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_json_form() {
        let h = hash_with(domain::LEAF, b"abc");
        let s = serde_json::to_string(&h).unwrap();
        assert_eq!(s, format!("\"{}\"", h.to_hex()));
        let back: Hash = serde_json::from_str(&s).unwrap();
        assert_eq!(back, h);
        assert!(Hash::from_hex("zz").is_err());
        assert!(Hash::from_hex(&"ab".repeat(31)).is_err());
    }

    #[test]
    fn binary_form_is_32_raw_bytes() {
        let h = hash_with(domain::NODE, b"x");
        let bytes = crate::codec::encode(&h);
        assert_eq!(bytes, h.0.to_vec());
    }

    #[test]
    fn prefixes_separate_domains() {
        assert_ne!(hash_with(domain::LEAF, b"a"), hash_with(domain::NODE, b"a"));
        assert_eq!(
            hash_parts(domain::NODE, &[b"a", b"b"]),
            hash_with(domain::NODE, b"ab")
        );
    }
}
