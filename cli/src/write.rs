//! Building, signing and submitting transactions.
//!
//! A submission fetches the chain id (once) and the signer's pending nonce, signs the
//! transaction locally (the node never signs for anyone) and posts its canonical bytes. If
//! another submission by the same key raced it (`bad_nonce`), it refetches the nonce and
//! signs again, a few times.

use crate::client::{ClientError, NodeClient, Submitted};
use crate::exit::{LocalError, UsageError};
use ledger::hash::{Hash, hash_reader};
use ledger::tx::{SignedTx, Tx, TxBody};
use ledger::{PublicKey, SecretKey};
use std::path::Path;

/// How many times a submission is re-signed with a fresh nonce after `bad_nonce`.
pub const BAD_NONCE_RETRIES_MAX: u32 = 5;
/// Pause before re-signing after `bad_nonce`, times the attempt number.
pub const BAD_NONCE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);
/// Default time to live of a transaction (ms).
pub const DEFAULT_TTL_MS: u64 = 3600 * 1000;

/// Signs and submits transactions for one key.
pub struct Writer<'a> {
    client: &'a NodeClient,
    key: SecretKey,
    chain_id: Option<String>,
    ttl_ms: u64,
}

/// A submitted transaction.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Written {
    /// The node's answer.
    #[serde(flatten)]
    pub submitted: Submitted,
    /// Record kind.
    pub kind: &'static str,
    /// The signer.
    pub signer: PublicKey,
    /// The nonce it was signed with.
    pub nonce: u64,
    /// Expiry (ms since the epoch).
    pub expires_at_ms: u64,
}

impl<'a> Writer<'a> {
    /// A writer for `key` against `client`; transactions expire `ttl_ms` after signing.
    pub fn new(client: &'a NodeClient, key: SecretKey, ttl_ms: u64) -> Self {
        Writer {
            client,
            key,
            chain_id: None,
            ttl_ms,
        }
    }

    /// Uses this chain id instead of asking the node.
    pub fn with_chain_id(mut self, chain_id: String) -> Self {
        self.chain_id = Some(chain_id);
        self
    }

    /// The signer's public key.
    pub fn signer(&self) -> PublicKey {
        self.key.public_key()
    }

    fn chain_id(&mut self) -> Result<String, ClientError> {
        if let Some(c) = &self.chain_id {
            return Ok(c.clone());
        }
        let c = self.client.status()?.chain_id;
        self.chain_id = Some(c.clone());
        Ok(c)
    }

    /// Builds and signs a transaction with the given nonce, created now.
    pub fn sign(&self, chain_id: &str, nonce: u64, body: TxBody, now_ms: u64) -> SignedTx {
        Tx {
            chain_id: chain_id.to_string(),
            signer: self.key.public_key(),
            nonce,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(self.ttl_ms),
            body,
        }
        .sign(&self.key)
    }

    /// Signs `body` with the signer's next nonce and submits it; with `wait`, returns once
    /// it is committed.
    pub fn submit(&mut self, body: TxBody, wait: bool) -> anyhow::Result<Written> {
        let chain_id = self.chain_id()?;
        let kind = body.kind();
        let mut attempt = 0;
        loop {
            let nonce = self.client.account(&self.key.public_key())?.pending_nonce;
            let stx = self.sign(&chain_id, nonce, body.clone(), crate::time::now_ms());
            stx.tx
                .check_limits()
                .map_err(|e| UsageError(format!("the transaction is not acceptable: {e}")))?;
            match self.client.submit(&stx, wait) {
                Ok(submitted) => {
                    if submitted.id != stx.id() {
                        return Err(ClientError::Decode {
                            what: "/v1/txs".into(),
                            reason: format!(
                                "the node answered record id {}, the transaction's is {}",
                                submitted.id,
                                stx.id()
                            ),
                        }
                        .into());
                    }
                    return Ok(Written {
                        submitted,
                        kind,
                        signer: stx.tx.signer,
                        nonce,
                        expires_at_ms: stx.tx.expires_at_ms,
                    });
                }
                Err(e)
                    if e.refusal_reason() == Some("bad_nonce")
                        && attempt < BAD_NONCE_RETRIES_MAX =>
                {
                    attempt += 1;
                    // Give the racing transaction a moment to reach the node's mempool.
                    std::thread::sleep(BAD_NONCE_BACKOFF * attempt);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Loads the signing key named by `--key` / `GOVLEDGER_KEY`.
pub fn load_key(path: Option<&Path>) -> anyhow::Result<SecretKey> {
    let path = path.ok_or_else(|| {
        UsageError("a signing key is needed: pass --key FILE or set GOVLEDGER_KEY".into())
    })?;
    Ok(ledger::keyfile::read(path)?)
}

/// blake3 of a file, streamed (what `govledger anchor` records).
pub fn hash_file(path: &Path) -> Result<Hash, LocalError> {
    let f = std::fs::File::open(path).map_err(|e| LocalError::io(path, e))?;
    hash_reader(std::io::BufReader::with_capacity(1 << 20, f)).map_err(|e| LocalError::io(path, e))
}

/// A document given as `FILE|HASH`: an existing file is hashed; otherwise the value must be
/// a blake3 hash (64 hex digits).
pub fn document_hash(value: &str) -> anyhow::Result<Hash> {
    let p = Path::new(value);
    if p.is_file() {
        return Ok(hash_file(p)?);
    }
    Hash::from_hex(value).map_err(|_| {
        if value.len() == 64 {
            UsageError(format!("{value:?} is not a blake3 hash (64 hex digits)")).into()
        } else {
            LocalError {
                path: value.to_string(),
                reason: "no such file (and not a 64-hex-digit document hash)".into(),
            }
            .into()
        }
    })
}

/// Resolves the `--document FILE|HASH` / `--document-hash HASH` pair of a command.
pub fn document_arg(document: Option<&str>, hash: Option<&str>) -> anyhow::Result<Hash> {
    match (document, hash) {
        (Some(d), None) => document_hash(d),
        (None, Some(h)) => Hash::from_hex(h)
            .map_err(|_| UsageError(format!("{h:?} is not a blake3 hash (64 hex digits)")).into()),
        _ => Err(UsageError("give the document as a file or a hash".into()).into()),
    }
}

/// Bound on a pseudonym secret file.
const SECRET_FILE_BYTES_MAX: u64 = 4096;

/// Reads a department's 32-byte pseudonym secret: a file holding 64 hex digits (surrounding
/// whitespace ignored) or exactly 32 raw bytes.
pub fn read_pseudonym_secret(path: &Path) -> Result<[u8; 32], LocalError> {
    let bad = |reason: &str| LocalError {
        path: path.display().to_string(),
        reason: reason.into(),
    };
    let bytes = crate::verify::read_bounded(path, SECRET_FILE_BYTES_MAX)?;
    let mut key = [0u8; 32];
    if let Ok(text) = std::str::from_utf8(&bytes)
        && hex::decode_to_slice(text.trim(), &mut key).is_ok()
    {
        return Ok(key);
    }
    if bytes.len() == 32 {
        key.copy_from_slice(&bytes);
        return Ok(key);
    }
    Err(bad(
        "a pseudonym secret is 64 hex digits (or 32 raw bytes); create one with `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n' > FILE`",
    ))
}

/// A citizen's pseudonym: `blake3::keyed_hash(secret, citizen_id)`, the 32-byte keyed hash
/// of the citizen id's UTF-8 bytes (exactly as given) under the departments' shared secret.
/// Without the secret the public cannot enumerate citizen ids against the ledger.
pub fn pseudonym(secret: &[u8; 32], citizen_id: &str) -> Hash {
    Hash(*blake3::keyed_hash(secret, citizen_id.as_bytes()).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_argument_forms() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("deed.pdf");
        std::fs::write(&f, b"deed").unwrap();
        let h = ledger::hash::hash_document(b"deed");
        assert_eq!(document_hash(f.to_str().unwrap()).unwrap(), h);
        assert_eq!(document_hash(&h.to_hex()).unwrap(), h);
        assert_eq!(document_arg(None, Some(&h.to_hex())).unwrap(), h);
        let e = document_hash("missing.pdf").unwrap_err();
        assert_eq!(crate::exit::exit_for(&e), crate::exit::Exit::Local);
        let e = document_arg(None, Some("xyz")).unwrap_err();
        assert_eq!(crate::exit::exit_for(&e), crate::exit::Exit::Usage);
    }

    #[test]
    fn pseudonym_is_keyed_blake3() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        std::fs::write(&p, format!("{}\n", "11".repeat(32))).unwrap();
        let secret = read_pseudonym_secret(&p).unwrap();
        assert_eq!(secret, [0x11; 32]);
        let got = pseudonym(&secret, "110101199001011234");
        assert_eq!(
            got.0,
            *blake3::keyed_hash(&[0x11; 32], b"110101199001011234").as_bytes()
        );
        assert_ne!(got, pseudonym(&[0x12; 32], "110101199001011234"));
        std::fs::write(&p, [7u8; 32]).unwrap();
        assert_eq!(read_pseudonym_secret(&p).unwrap(), [7; 32]);
        std::fs::write(&p, "short").unwrap();
        assert!(read_pseudonym_secret(&p).is_err());
    }

    #[test]
    fn signed_transactions_carry_ttl_and_verify() {
        let client = NodeClient::new("http://127.0.0.1:9").unwrap();
        let key = SecretKey::from_seed(&[3; 32]);
        let w = Writer::new(&client, key.clone(), 60_000).with_chain_id("c".into());
        let body = TxBody::Anchor(ledger::tx::Anchor {
            document_hash: Hash([1; 32]),
            label: "x".into(),
        });
        let stx = w.sign("c", 4, body, 1_000);
        assert_eq!(stx.tx.nonce, 4);
        assert_eq!(stx.tx.expires_at_ms, 61_000);
        assert_eq!(stx.tx.signer, key.public_key());
        stx.verify_signature().unwrap();
    }
}
