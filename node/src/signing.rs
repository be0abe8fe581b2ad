//! The signing state in its own small file, apart from the chain store.
//!
//! A validator must never sign two different messages at one (height, round, step). The
//! watermark that guarantees it ([`consensus::PersistedState`]) used to live in the chain
//! store: a node whose RocksDB directory was lost had no watermark and signed heights it
//! had signed before (measured: a second, different block 1 within seconds). Now it lives
//! in `<data_dir>/signing.state`, written and `fdatasync`ed before any message signed
//! under it leaves the process.
//!
//! The file is an append-only log of records: `len: u32 LE`, `blake3(payload): 32 bytes`,
//! `payload`. The first record is the [`Binding`] (format version, chain, genesis hash,
//! key): a file of another chain or key is refused. Each later record is a persisted
//! state; the last intact one wins. A torn tail (a record cut short by a crash) is cut
//! off at start. The log is rewritten (temporary file, fsync, rename, fsync of the
//! directory) once it exceeds [`COMPACT_BYTES`].
//!
//! At start-up [`open_checked`] compares the file with the chain store: a store with
//! blocks but no signing state, or a signing state that has signed above an empty store,
//! is refused until the operator confirms (`--confirm-signing-state`), with a message
//! that says what happened. A signing state of the previous layout (in the store's node
//! column family) is moved into the file.

use consensus::PersistedState;
use ledger::hash::Hash;
use ledger::store::Store;
use ledger::{PublicKey, codec};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// The file's name inside the data directory.
pub const SIGNING_FILE: &str = "signing.state";
/// Format version written in the binding record.
pub const SIGNING_FORMAT_VERSION: u32 = 1;
/// The log is compacted once it grows beyond this.
pub const COMPACT_BYTES: u64 = 1024 * 1024;
/// Largest record accepted when reading (a persisted state is a few KiB).
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;
/// Largest file read at start.
pub const FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Key of the signing state in the store's node column family (the previous layout).
pub const LEGACY_STORE_KEY: &[u8] = b"consensus_state";

/// What the file is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// [`SIGNING_FORMAT_VERSION`].
    pub version: u32,
    /// The chain.
    pub chain_id: String,
    /// Its genesis.
    pub genesis_hash: Hash,
    /// The signing key.
    pub key: PublicKey,
}

/// Signing-state errors.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// I/O.
    #[error("signing state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file belongs to another chain, genesis or key, or is not a signing state.
    #[error("signing state {path} does not belong to this node: {reason}")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The store and the signing state disagree; the operator must confirm.
    #[error("{0}")]
    NeedsConfirmation(String),
    /// The store could not be read.
    #[error("store: {0}")]
    Store(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SigningError + '_ {
    move |source| SigningError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The open signing-state file.
pub struct SigningFile {
    path: PathBuf,
    file: File,
    binding: Binding,
    len: u64,
    compact_bytes: u64,
}

fn record(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(36 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(blake3::hash(payload).as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits intact records off the front of `bytes`; returns them and the intact length.
fn records(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= 36 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or([0; 4])) as usize;
        if len > RECORD_BYTES_MAX || bytes.len() - at - 36 < len {
            break;
        }
        let payload = &bytes[at + 36..at + 36 + len];
        if blake3::hash(payload).as_bytes() != &bytes[at + 4..at + 36] {
            break;
        }
        out.push(payload);
        at += 36 + len;
    }
    (out, at)
}

fn sync_dir(dir: &Path) -> Result<(), SigningError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl SigningFile {
    /// Opens (or creates) the file at `path` bound to `binding`; returns it with the last
    /// state written, if any.
    pub fn open(
        path: &Path,
        binding: &Binding,
    ) -> Result<(Self, Option<PersistedState>), SigningError> {
        if !path.exists() {
            return Ok((Self::create(path, binding, None)?, None));
        }
        let mut bytes = Vec::new();
        File::open(path)
            .map_err(io(path))?
            .take(FILE_BYTES_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(io(path))?;
        if bytes.len() as u64 > FILE_BYTES_MAX {
            return Err(SigningError::Foreign {
                path: path.into(),
                reason: format!("larger than {FILE_BYTES_MAX} bytes"),
            });
        }
        let (recs, intact) = records(&bytes);
        let Some(first) = recs.first() else {
            // Nothing intact, not even the binding: a crash while creating it (creation
            // writes the binding and syncs before anything is signed), or not ours.
            if bytes.is_empty() || bytes.len() < 36 {
                warn!(path = %path.display(), "signing state file is empty or torn before its first record; recreating it");
                return Ok((Self::create(path, binding, None)?, None));
            }
            return Err(SigningError::Foreign {
                path: path.into(),
                reason: "not a signing state file (no intact binding record)".into(),
            });
        };
        let found: Binding = codec::decode(first).map_err(|e| SigningError::Foreign {
            path: path.into(),
            reason: format!("binding record: {e}"),
        })?;
        if found != *binding {
            return Err(SigningError::Foreign {
                path: path.into(),
                reason: format!(
                    "it is for chain {:?}, genesis {}, key {} (format {}); this node runs chain {:?}, genesis {}, key {}",
                    found.chain_id,
                    found.genesis_hash,
                    found.key,
                    found.version,
                    binding.chain_id,
                    binding.genesis_hash,
                    binding.key
                ),
            });
        }
        let mut state = None;
        for r in &recs[1..] {
            state = Some(
                PersistedState::from_bytes(r).map_err(|e| SigningError::Foreign {
                    path: path.into(),
                    reason: format!("a state record does not decode: {e}"),
                })?,
            );
        }
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(path))?;
        if intact < bytes.len() {
            warn!(path = %path.display(), cut = bytes.len() - intact, "signing state has a torn last record (a crash while writing it); cutting it off");
            file.set_len(intact as u64).map_err(io(path))?;
            file.sync_data().map_err(io(path))?;
        }
        let mut f = SigningFile {
            path: path.into(),
            file,
            binding: binding.clone(),
            len: intact as u64,
            compact_bytes: COMPACT_BYTES,
        };
        use std::io::Seek;
        f.file.seek(std::io::SeekFrom::End(0)).map_err(io(path))?;
        if f.len > COMPACT_BYTES
            && let Some(s) = &state
        {
            f = Self::create(path, binding, Some(s))?;
        }
        Ok((f, state))
    }

    /// Writes a fresh file (binding and, if given, one state) atomically in place.
    fn create(
        path: &Path,
        binding: &Binding,
        state: Option<&PersistedState>,
    ) -> Result<Self, SigningError> {
        let mut bytes = record(&codec::encode(binding));
        if let Some(s) = state {
            bytes.extend(record(&s.to_bytes()));
        }
        ledger::durable::write_atomic(path, &bytes).map_err(io(path))?;
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok(SigningFile {
            path: path.into(),
            file,
            binding: binding.clone(),
            len: bytes.len() as u64,
            compact_bytes: COMPACT_BYTES,
        })
    }

    /// Appends a state and syncs it; compacts the log when it has grown.
    pub fn write(&mut self, state: &PersistedState) -> Result<(), SigningError> {
        if self.len > self.compact_bytes {
            let compact_bytes = self.compact_bytes;
            *self = Self::create(&self.path, &self.binding, Some(state))?;
            self.compact_bytes = compact_bytes;
            return Ok(());
        }
        let rec = record(&state.to_bytes());
        self.file.write_all(&rec).map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))?;
        self.len += rec.len() as u64;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens the signing state of `data_dir` for `binding` and checks it against the chain
/// store (see the module documentation). `confirmed` is the operator's
/// `--confirm-signing-state`.
pub fn open_checked(
    data_dir: &Path,
    store: &Store,
    binding: &Binding,
    confirmed: bool,
) -> Result<(SigningFile, Option<PersistedState>), SigningError> {
    let path = data_dir.join(SIGNING_FILE);
    let tip = store
        .stored_tip()
        .map_err(|e| SigningError::Store(e.to_string()))?
        .height;
    let existed = path.exists();
    if !existed {
        let legacy = store
            .node_get(LEGACY_STORE_KEY)
            .map_err(|e| SigningError::Store(e.to_string()))?;
        if let Some(bytes) = legacy {
            let state = PersistedState::from_bytes(&bytes).map_err(|e| {
                SigningError::Store(format!(
                    "the signing state kept in the store (previous layout) is corrupt ({e}); refusing to start rather than risk double-signing"
                ))
            })?;
            let f = SigningFile::create(&path, binding, Some(&state))?;
            info!(path = %path.display(), height = state.height, "moved the signing state out of the chain store into its own file");
            return Ok((f, Some(state)));
        }
        if tip > 0 && !confirmed {
            return Err(SigningError::NeedsConfirmation(format!(
                "the chain store holds {tip} blocks but there is no signing state ({}). If this key signed \
                 consensus messages on this chain before (the file was lost or deleted), signing now could \
                 sign twice at one height and be punished as equivocation. Restore the file from a backup, \
                 or, if you are sure this key never signed beyond what the chain shows (a new key, or a \
                 node that never was a validator), start once with --confirm-signing-state.",
                path.display()
            )));
        }
    }
    let (file, state) = SigningFile::open(&path, binding)?;
    if let Some(s) = &state
        && existed
        && tip == 0
        && s.last_signed.is_some()
        && !confirmed
    {
        return Err(SigningError::NeedsConfirmation(format!(
            "the signing state ({}) says this key signed up to height {} but the chain store is empty \
             (was the database deleted?). The node keeps the signing state and will not sign at or \
             below that height again; start with --confirm-signing-state to re-sync the chain from peers \
             and resume signing above it.",
            path.display(),
            s.last_signed.map_or(0, |l| l.height)
        )));
    }
    if !existed {
        sync_dir(data_dir)?;
    }
    Ok((file, state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus::Step;

    fn binding() -> Binding {
        Binding {
            version: SIGNING_FORMAT_VERSION,
            chain_id: "t".into(),
            genesis_hash: ledger::hash::hash_document(b"g"),
            key: ledger::SecretKey::from_seed(&[1; 32]).public_key(),
        }
    }

    fn state(height: u64) -> PersistedState {
        PersistedState {
            height,
            round: 0,
            step: Step::Prevote,
            locked: None,
            valid: None,
            last_signed: Some(consensus::SignedStep {
                height,
                round: 0,
                step: Step::Prevote,
            }),
            signed: vec![],
        }
    }

    #[test]
    fn the_last_intact_state_wins_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SIGNING_FILE);
        let (mut f, s) = SigningFile::open(&path, &binding()).unwrap();
        assert!(s.is_none());
        f.write(&state(1)).unwrap();
        f.write(&state(2)).unwrap();
        drop(f);
        // A torn third record.
        let mut bytes = std::fs::read(&path).unwrap();
        let full = bytes.len();
        bytes.extend(&record(&state(3).to_bytes())[..20]);
        std::fs::write(&path, &bytes).unwrap();
        let (mut f, s) = SigningFile::open(&path, &binding()).unwrap();
        assert_eq!(s.unwrap().height, 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, full);
        f.write(&state(4)).unwrap();
        drop(f);
        let (_, s) = SigningFile::open(&path, &binding()).unwrap();
        assert_eq!(s.unwrap().height, 4);
    }

    #[test]
    fn a_file_of_another_key_or_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SIGNING_FILE);
        SigningFile::open(&path, &binding()).unwrap();
        let mut other = binding();
        other.key = ledger::SecretKey::from_seed(&[2; 32]).public_key();
        assert!(matches!(
            SigningFile::open(&path, &other),
            Err(SigningError::Foreign { .. })
        ));
        std::fs::write(&path, vec![0xabu8; 100]).unwrap();
        assert!(matches!(
            SigningFile::open(&path, &binding()),
            Err(SigningError::Foreign { .. })
        ));
    }

    #[test]
    fn compaction_keeps_the_last_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SIGNING_FILE);
        let (mut f, _) = SigningFile::open(&path, &binding()).unwrap();
        f.compact_bytes = 4096;
        let mut h = 0;
        while std::fs::metadata(&path).unwrap().len() <= 4096 {
            h += 1;
            f.write(&state(h)).unwrap();
        }
        h += 1;
        f.write(&state(h)).unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < 1024);
        drop(f);
        let (_, s) = SigningFile::open(&path, &binding()).unwrap();
        assert_eq!(s.unwrap().height, h);
    }
}
