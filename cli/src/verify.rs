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
                Step::StateProof => "state_proof",
                Step::History => "history",
                Step::Age => "age",
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

/// What a bundle file proved: a record (format 1) or a status (format 2).
#[derive(Clone, Debug)]
pub enum Verdict {
    /// A record bundle.
    Record(Box<Verified>),
    /// A status bundle.
    Status(Box<ledger::status::VerifiedStatus>),
}

/// The `version` of a bundle's JSON.
fn bundle_version(v: &serde_json::Value) -> Option<u64> {
    v.get("version").and_then(serde_json::Value::as_u64)
}

/// Verifies a bundle of either format, then its age: with `max_age_ms`, a bundle whose
/// block is older than that (by the local clock `now_ms`) is refused.
pub fn verify_any(
    bundle_json: &str,
    genesis: &Genesis,
    document: Option<Hash>,
    max_age_ms: Option<u64>,
    now_ms: u64,
) -> Result<Verdict, VerifyFailure> {
    let format = |reason: String| VerifyFailure {
        step: FailedStep::Format,
        reason,
    };
    let value: serde_json::Value = serde_json::from_str(bundle_json)
        .map_err(|e| format(format!("not a proof bundle: {e}")))?;
    let (verdict, time_ms) = match bundle_version(&value) {
        Some(2) => {
            if document.is_some() {
                return Err(format(
                    "a status bundle names no single document; verify the record's own bundle with --file".into(),
                ));
            }
            let bundle: ledger::status::StatusBundle = serde_json::from_value(value)
                .map_err(|e| format(format!("not a status bundle: {e}")))?;
            let v = bundle.verify(genesis)?;
            let t = v.time_ms;
            (Verdict::Status(Box::new(v)), t)
        }
        Some(1) => {
            let v = verify_bundle(bundle_json, genesis, document)?;
            let t = v.record.block_time_ms;
            (Verdict::Record(Box::new(v)), t)
        }
        Some(n) => {
            return Err(VerifyFailure {
                step: FailedStep::Ledger(Step::Genesis),
                reason: format!("bundle version {n} is unknown (this build reads 1 and 2)"),
            });
        }
        None => return Err(format("the bundle has no numeric `version`".into())),
    };
    if let Some(max) = max_age_ms {
        let age = now_ms.saturating_sub(time_ms);
        if age > max {
            return Err(VerifyFailure {
                step: FailedStep::Ledger(Step::Age),
                reason: format!(
                    "the bundle proves the state at {}, {} s ago; at most {} s are accepted (--max-age)",
                    crate::time::format_ms(time_ms),
                    age / 1000,
                    max / 1000
                ),
            });
        }
    }
    Ok(verdict)
}

/// A format-1 bundle's decoded copies (`record.tx`, `header.header`, each change's
/// `announced_by.header`) must be exactly what the bytes beside them decode to, in JSON
/// too: a field added to a decoded form would otherwise be shown to a reader with no
/// signed byte behind it.
fn check_decoded_forms(
    value: &serde_json::Value,
    bundle: &ProofBundle,
) -> Result<(), VerifyFailure> {
    let mismatch = |what: &str| VerifyFailure {
        step: FailedStep::Format,
        reason: format!("`{what}` is not exactly what its bytes decode to"),
    };
    let same = |json: Option<&serde_json::Value>,
                decoded: serde_json::Result<serde_json::Value>| {
        matches!((json, decoded), (Some(j), Ok(d)) if *j == d)
    };
    if let Ok(tx) = ledger::SignedTx::decode(&bundle.record.tx_bytes.0)
        && !same(value.pointer("/record/tx"), serde_json::to_value(&tx))
    {
        return Err(mismatch("record.tx"));
    }
    if let Ok(h) = ledger::BlockHeader::decode(&bundle.header.bytes.0)
        && !same(value.pointer("/header/header"), serde_json::to_value(&h))
    {
        return Err(mismatch("header.header"));
    }
    for (i, c) in bundle.validator_changes.iter().enumerate() {
        if let Ok(h) = ledger::BlockHeader::decode(&c.announced_by.bytes.0)
            && !same(
                value.pointer(&format!("/validator_changes/{i}/announced_by/header")),
                serde_json::to_value(&h),
            )
        {
            return Err(mismatch(&format!(
                "validator_changes[{i}].announced_by.header"
            )));
        }
    }
    Ok(())
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
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(bundle_json) {
        check_decoded_forms(&value, &bundle)?;
    }
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
    max_age_ms: Option<u64>,
) -> Result<Result<Verdict, VerifyFailure>, LocalError> {
    let genesis = load_genesis(genesis)?;
    let bytes = read_bounded(bundle, BUNDLE_BYTES_MAX)?;
    let doc_hash = document.map(crate::write::hash_file).transpose()?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Err(VerifyFailure {
            step: FailedStep::Format,
            reason: "the bundle is not UTF-8 JSON".into(),
        }));
    };
    Ok(verify_any(
        &text,
        &genesis,
        doc_hash,
        max_age_ms,
        crate::time::now_ms(),
    ))
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
