//! Offline verification of a proof bundle: nothing here touches the network. The trust root
//! is the genesis file the citizen holds (its hash); everything else comes from the bundle
//! and is checked step by step by [`ledger::proof::ProofBundle::verify`].

use crate::exit::LocalError;
use ledger::Genesis;
use ledger::hash::Hash;
use ledger::proof::{ProofBundle, Step, VerifiedRecord, document_hashes};
use serde::Serialize;
use std::path::Path;

/// Bound on a proof bundle file.
pub const BUNDLE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// The step that failed: the bundle's format, or one of the ledger verifier's steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailedStep {
    /// The file is not a proof bundle (not JSON, missing fields, malformed hex).
    Format,
    /// A verification step.
    Ledger(Step),
}

impl FailedStep {
    /// Stable snake_case code (for `--json` and scripts).
    pub fn code(self) -> &'static str {
        match self {
            FailedStep::Format => "format",
            FailedStep::Ledger(s) => match s {
                Step::Genesis => "genesis",
                Step::RecordContent => "record_content",
                Step::Header => "header",
                Step::Inclusion => "inclusion",
                Step::ValidatorSetChange => "validator_set_change",
                Step::CommitCertificate => "commit_certificate",
                Step::DocumentHash => "document_hash",
            },
        }
    }

    /// Human name.
    pub fn name(self) -> &'static str {
        match self {
            FailedStep::Format => "bundle format",
            FailedStep::Ledger(s) => s.name(),
        }
    }
}

/// A bundle that does not verify: the step and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} check failed: {reason}", step.name())]
pub struct VerifyFailure {
    /// The failed step.
    pub step: FailedStep,
    /// Why.
    pub reason: String,
}

impl From<ledger::proof::VerifyError> for VerifyFailure {
    fn from(e: ledger::proof::VerifyError) -> Self {
        VerifyFailure {
            step: FailedStep::Ledger(e.step),
            reason: e.reason,
        }
    }
}

/// What a valid bundle proves, for printing.
#[derive(Clone, Debug, Serialize)]
pub struct Verified {
    /// The record.
    #[serde(flatten)]
    pub record: VerifiedRecord,
    /// The genesis hash it was checked against.
    pub genesis_hash: Hash,
    /// Chain id.
    pub chain_id: String,
    /// The document hash checked with `--file`, if any.
    pub document_hash: Option<Hash>,
}

/// Reads and validates a genesis file.
pub fn load_genesis(path: &Path) -> Result<Genesis, LocalError> {
    let text = read_text(path, ledger::genesis::GENESIS_BYTES_MAX as u64)?;
    Genesis::from_json(&text).map_err(|e| LocalError {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Reads a file of at most `max` bytes. The bound holds for what is read, not for what the
/// file claims: a pipe, a FIFO or `/dev/stdin` (whose size reads as 0) and a file that grows
/// while it is read are cut off at `max + 1` bytes and refused.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, LocalError> {
    use std::io::Read;
    let too_large = || LocalError {
        path: path.display().to_string(),
        reason: format!("larger than {max} bytes"),
    };
    let file = std::fs::File::open(path).map_err(|e| LocalError::io(path, e))?;
    let claimed = file.metadata().map(|m| m.len()).unwrap_or(0);
    if claimed > max {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(claimed).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| LocalError::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Reads a UTF-8 text file of at most `max` bytes.
pub fn read_text(path: &Path, max: u64) -> Result<String, LocalError> {
    String::from_utf8(read_bounded(path, max)?).map_err(|_| LocalError {
        path: path.display().to_string(),
        reason: "not UTF-8 text".into(),
    })
}

/// Verifies a bundle (JSON text) against `genesis`, and, if given, that the record names a
/// document with blake3 hash `document` (computed by the caller, e.g. streamed from a file).
pub fn verify_bundle(
    bundle_json: &str,
    genesis: &Genesis,
    document: Option<Hash>,
) -> Result<Verified, VerifyFailure> {
    let bundle = ProofBundle::from_json(bundle_json).map_err(|reason| VerifyFailure {
        step: FailedStep::Format,
        reason,
    })?;
    let record = bundle.verify(genesis, None)?;
    if let Some(got) = document {
        // The same rule as the ledger's step 7, on a hash streamed from disk rather than a
        // whole document in memory.
        let named = document_hashes(&bundle.record.tx.tx.body);
        if named.is_empty() {
            return Err(VerifyFailure {
                step: FailedStep::Ledger(Step::DocumentHash),
                reason: format!("the record ({}) names no document", record.kind),
            });
        }
        if !named.contains(&got) {
            return Err(VerifyFailure {
                step: FailedStep::Ledger(Step::DocumentHash),
                reason: format!(
                    "the document's blake3 is {got}; the record names {}",
                    named[0]
                ),
            });
        }
    }
    Ok(Verified {
        record,
        genesis_hash: genesis.hash(),
        chain_id: genesis.chain_id.clone(),
        document_hash: document,
    })
}

/// Verifies a bundle file against a genesis file and optionally a document file. Local
/// problems (a file cannot be read, the genesis is invalid) are `Err(LocalError)`; a bundle
/// that does not verify is `Ok(Err(VerifyFailure))`.
pub fn verify_files(
    bundle: &Path,
    genesis: &Path,
    document: Option<&Path>,
) -> Result<Result<Verified, VerifyFailure>, LocalError> {
    let genesis = load_genesis(genesis)?;
    let bytes = read_bounded(bundle, BUNDLE_BYTES_MAX)?;
    let doc_hash = document.map(crate::write::hash_file).transpose()?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Err(VerifyFailure {
            step: FailedStep::Format,
            reason: "the bundle is not UTF-8 JSON".into(),
        }));
    };
    Ok(verify_bundle(&text, &genesis, doc_hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipe_is_read_up_to_the_bound_and_refused_beyond_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("bundle.pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("mkfifo is not available; skipped");
            return;
        }
        // A writer that would send 8 MiB (its size reads as 0): the reader stops after
        // the bound and refuses it; the writer then sees a closed pipe.
        let path = fifo.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..128 {
                if f.write_all(&chunk).is_err() {
                    return;
                }
            }
        });
        let err = read_bounded(&fifo, 1024 * 1024).unwrap_err();
        assert!(err.reason.contains("larger than 1048576 bytes"), "{err:?}");
        writer.join().unwrap();
        // Within the bound, a pipe is read whole.
        let path = fifo.clone();
        let writer = std::thread::spawn(move || std::fs::write(&path, b"small").unwrap());
        assert_eq!(read_bounded(&fifo, 1024).unwrap(), b"small");
        writer.join().unwrap();
    }
}
