//! Key files and the identities derived from them: the hex public key and the libp2p peer
//! id of a node key.

use ledger::PublicKey;
use ledger::keyfile::{self, KeyFileError};
use serde::Serialize;
use std::path::Path;

/// Prefix of a libp2p peer id for an ed25519 key: the identity multihash (code `0x00`,
/// length `0x24` = 36) of the protobuf `PublicKey { Type: Ed25519 (1), Data: 32 bytes }`
/// (`0x08 0x01` = field 1 varint 1, `0x12 0x20` = field 2, 32 bytes).
const PEER_ID_ED25519_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

const BASE58_ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Base58 (Bitcoin alphabet, as libp2p uses) of `bytes`.
pub fn base58(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    // Little-endian base-58 digits of the big-endian number `bytes`.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len() * 138 / 100 + 1);
    for &b in &bytes[zeros..] {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    out.extend(
        digits
            .iter()
            .rev()
            .map(|d| BASE58_ALPHABET[usize::from(*d)] as char),
    );
    out
}

/// The libp2p peer id of a node whose network identity is this ed25519 key: what libp2p
/// 0.57 prints as `PeerId` (`12D3KooW…`).
pub fn peer_id(key: &PublicKey) -> String {
    let mut bytes = Vec::with_capacity(PEER_ID_ED25519_PREFIX.len() + PublicKey::LEN);
    bytes.extend_from_slice(&PEER_ID_ED25519_PREFIX);
    bytes.extend_from_slice(key.as_bytes());
    base58(&bytes)
}

/// What `govledger keys show` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The key file.
    pub file: String,
    /// Hex public key: the member or validator key to put in genesis or governance.
    pub public_key: PublicKey,
    /// libp2p peer id, if the key is used as a node key.
    pub peer_id: String,
}

impl KeyInfo {
    /// The identities of a key.
    pub fn of(file: &Path, key: &PublicKey) -> Self {
        KeyInfo {
            file: file.display().to_string(),
            public_key: *key,
            peer_id: peer_id(key),
        }
    }
}

/// `keys new`: a fresh key in a new file (mode 0600; never overwrites).
pub fn new_key_file(path: &Path) -> Result<KeyInfo, KeyFileError> {
    let key = keyfile::generate(path)?;
    Ok(KeyInfo::of(path, &key.public_key()))
}

/// `keys show`: the identities of the key in a file.
pub fn show_key_file(path: &Path) -> Result<KeyInfo, KeyFileError> {
    let key = keyfile::read(path)?;
    Ok(KeyInfo::of(path, &key.public_key()))
}

/// A public key given on the command line as 64 hex digits or as a key file.
pub fn public_key_arg(s: &str) -> anyhow::Result<PublicKey> {
    let p = Path::new(s);
    if p.is_file() {
        return Ok(keyfile::read(p)?.public_key());
    }
    PublicKey::from_hex(s).map_err(|_| {
        crate::exit::UsageError(format!(
            "{s:?} is neither a key file nor a public key (64 hex digits)"
        ))
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::SecretKey;

    #[test]
    fn base58_known_values() {
        assert_eq!(base58(b""), "");
        assert_eq!(base58(&[0]), "1");
        assert_eq!(base58(&[0, 0, 1]), "112");
        assert_eq!(base58(b"hello world"), "StV1DL6CwTryKyV");
        assert_eq!(base58(&[0xff; 4]), "7YXq9G");
    }

    /// Vectors computed once with libp2p-identity 0.3.1 (the version libp2p 0.57 uses):
    /// `Keypair::ed25519_from_bytes(seed).public().to_peer_id()`.
    #[test]
    fn peer_id_matches_libp2p() {
        let k = SecretKey::from_seed(&[7; 32]).public_key();
        assert_eq!(
            k.to_hex(),
            "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"
        );
        assert_eq!(
            peer_id(&k),
            "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7"
        );
        let k = SecretKey::from_seed(&[1; 32]).public_key();
        assert_eq!(
            k.to_hex(),
            "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
        );
        assert_eq!(
            peer_id(&k),
            "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"
        );
    }
}
