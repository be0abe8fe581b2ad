//! `govledger consistency`: whether a later saved checkpoint extends an earlier one, checked
//! offline against the genesis, or evidence that the two cannot be on one chain.
//!
//! Both checkpoints are verified against the genesis on their own (a certified header and the
//! validator-set changes leading to it). Then, with the lower height as "old":
//!
//! * every pair of certified headers the two files hold at one height (their headers, and
//!   the headers announcing validator-set changes) must be the same block; two different
//!   certified blocks at one height are a fork;
//! * at the same height the two headers are the same block: identical;
//! * a later header's history log cannot be smaller, and two logs of the same size cannot
//!   have different roots;
//! * otherwise the RFC 9162 consistency proof from the old log size to the new one must
//!   verify against both certified roots. It comes from a proof file (`--proof`, saved
//!   earlier with `--out`; no network at all) or from a node (`--node`), which is not
//!   trusted: only the two certified roots are.
//!
//! A proof that reproduces the new certified root but a different old root proves that the
//! new log's first records are not the old log (a conflict). A proof that does not reach
//! the new root proves nothing about the chain: it is reported as "not shown consistent".
//!
//! The proof file format is documented in `docs/proof-format.md` ("Consistency proof files").

use crate::client::NodeClient;
use crate::exit::{Exit, LocalError};
use crate::time::format_ms;
use crate::verify::{BUNDLE_BYTES_MAX, read_bounded, read_text};
use ledger::Genesis;
use ledger::PublicKey;
use ledger::block::BlockHeader;
use ledger::hash::Hash;
use ledger::history_log::{ProofError, verify_consistency};
use ledger::proof::{BundleHeader, Checkpoint, VerifyError};
use ledger::validator::ValidatorSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The proof file format version this code writes and reads.
pub const PROOF_FILE_VERSION: u64 = 1;
/// The proof file's `kind`.
pub const PROOF_FILE_KIND: &str = "consistency";
/// Bound on the hashes of a proof file. An RFC 9162 consistency proof between log sizes
/// `m < n` has at most `⌈log₂ n⌉ + 1` hashes, so at most 65 for any `u64` size; 128 is the
/// `2·log₂ n` bound of `docs/history-log.md` (§8) for `n < 2^64`, with room to spare. The
/// verifier then checks the exact length the two sizes determine.
pub const PROOF_HASHES_MAX: usize = 128;
/// Bound on a proof file: 128 hashes of 64 hex digits, pretty-printed (about 70 bytes
/// each, 9 KB), a chain id of at most 64 bytes and the other fields fit many times over.
pub const PROOF_FILE_BYTES_MAX: u64 = 64 * 1024;
/// Bound on a checkpoint file (the same bound as a proof bundle: a checkpoint carries one
/// header per validator-set change).
pub const CHECKPOINT_BYTES_MAX: u64 = BUNDLE_BYTES_MAX;

/// Why the command could not reach a verdict about the two checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum ConsistencyError {
    /// A checkpoint file is not a checkpoint (exit 4).
    #[error("{file}: not a checkpoint: {reason}")]
    CheckpointFormat {
        /// The file.
        file: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A checkpoint does not verify against the genesis (exit 4).
    #[error("{file}: the checkpoint does not verify against the genesis: {error}")]
    Checkpoint {
        /// The file.
        file: String,
        /// The failed step and why.
        error: VerifyError,
    },
    /// The proof file is malformed, or not for these checkpoints (exit 4).
    #[error("{file}: refused as a consistency proof file: {reason}")]
    ProofFile {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A proof is needed and neither `--proof` nor `--node` says where to get it (exit 1).
    #[error(
        "the checkpoints' history logs have {old_size} and {new_size} records: a consistency proof between them is needed; give --proof FILE (offline) or --node URL (or GOVLEDGER_NODE) to fetch one"
    )]
    NoProofSource {
        /// The old log size.
        old_size: u64,
        /// The new log size.
        new_size: u64,
    },
    /// `--out` names one of the input files (exit 1).
    #[error("--out {0} is one of the input files; choose another file")]
    OutIsInput(String),
}

impl ConsistencyError {
    /// The exit code.
    pub fn exit(&self) -> Exit {
        match self {
            ConsistencyError::CheckpointFormat { .. }
            | ConsistencyError::Checkpoint { .. }
            | ConsistencyError::ProofFile { .. } => Exit::VerifyFailed,
            ConsistencyError::NoProofSource { .. } | ConsistencyError::OutIsInput(_) => Exit::Usage,
        }
    }
}

// ---- the proof file ------------------------------------------------------------------------

/// A consistency proof file (version 1): the RFC 9162 consistency proof from the log of
/// `old_size` records to the log of `new_size` records of one chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofFile {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis_hash: Hash,
    /// The older log size.
    pub old_size: u64,
    /// The newer log size.
    pub new_size: u64,
    /// The proof's hashes, in RFC 9162 order.
    pub proof: Vec<Hash>,
}

/// The file as JSON: every field required, no other field, hashes as strings (checked to be
/// lower-case hex after parsing, so that the error can name the hash).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofFileJson {
    version: u64,
    kind: String,
    chain_id: String,
    genesis_hash: String,
    old_size: u64,
    new_size: u64,
    proof: Vec<String>,
}

/// Parses exactly 64 lower-case hex digits (upper case, spaces and other lengths are
/// refused: the file has one spelling).
pub fn parse_lower_hex(s: &str) -> Result<Hash, String> {
    let ok = s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !ok {
        let shown: String = s.chars().take(70).collect();
        return Err(format!("{shown:?} is not 64 lower-case hex digits"));
    }
    Hash::from_hex(s).map_err(|e| e.to_string())
}

impl ProofFile {
    /// Parses a proof file's text. Every error is one line that names the problem.
    pub fn parse(text: &str) -> Result<ProofFile, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Some(obj) = value.as_object() else {
            return Err("not a JSON object".into());
        };
        // Version and kind first, so that another file (a checkpoint, a bundle, a later
        // version) is named as such rather than by its first unknown field.
        match obj.get("version") {
            None => return Err("no `version` field".into()),
            Some(v) if v.as_u64() == Some(PROOF_FILE_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "version {v} is not supported (this build reads version {PROOF_FILE_VERSION})"
                ));
            }
        }
        match obj.get("kind") {
            Some(serde_json::Value::String(k)) if k == PROOF_FILE_KIND => {}
            Some(k) => return Err(format!("kind {k} is not \"{PROOF_FILE_KIND}\"")),
            None => {
                return Err(format!(
                    "no `kind` field (a consistency proof file has \"kind\": \"{PROOF_FILE_KIND}\"; is this a checkpoint or a proof bundle?)"
                ));
            }
        }
        if let Some(n) = obj
            .get("proof")
            .and_then(serde_json::Value::as_array)
            .map(Vec::len)
            && n > PROOF_HASHES_MAX
        {
            return Err(format!(
                "the proof has {n} hashes, more than the bound of {PROOF_HASHES_MAX}"
            ));
        }
        let raw: ProofFileJson = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let genesis_hash =
            parse_lower_hex(&raw.genesis_hash).map_err(|e| format!("genesis_hash: {e}"))?;
        let proof = raw
            .proof
            .iter()
            .enumerate()
            .map(|(i, h)| parse_lower_hex(h).map_err(|e| format!("proof[{i}]: {e}")))
            .collect::<Result<Vec<Hash>, String>>()?;
        if raw.old_size > raw.new_size {
            return Err(format!(
                "old_size {} is larger than new_size {}",
                raw.old_size, raw.new_size
            ));
        }
        Ok(ProofFile {
            chain_id: raw.chain_id,
            genesis_hash,
            old_size: raw.old_size,
            new_size: raw.new_size,
            proof,
        })
    }

    /// The file's text (pretty JSON, lower-case hex, a final newline).
    pub fn to_json(&self) -> String {
        let raw = ProofFileJson {
            version: PROOF_FILE_VERSION,
            kind: PROOF_FILE_KIND.into(),
            chain_id: self.chain_id.clone(),
            genesis_hash: self.genesis_hash.to_hex(),
            old_size: self.old_size,
            new_size: self.new_size,
            proof: self.proof.iter().map(Hash::to_hex).collect(),
        };
        crate::output::to_json(&raw) + "\n"
    }

    /// Checks that the file is for this chain and these two log sizes.
    pub fn check_for(&self, genesis: &Genesis, old_size: u64, new_size: u64) -> Result<(), String> {
        if self.chain_id != genesis.chain_id {
            return Err(format!(
                "it is for chain {:?}, the checkpoints are of chain {:?}",
                self.chain_id, genesis.chain_id
            ));
        }
        if self.genesis_hash != genesis.hash() {
            return Err(format!(
                "it is for genesis {}, the checkpoints are of genesis {}",
                self.genesis_hash,
                genesis.hash()
            ));
        }
        if (self.old_size, self.new_size) != (old_size, new_size) {
            return Err(format!(
                "it proves log sizes {} → {}, the checkpoints' logs have {old_size} and {new_size} records",
                self.old_size, self.new_size
            ));
        }
        if (old_size == 0 || old_size == new_size) && !self.proof.is_empty() {
            return Err(format!(
                "a proof from log size {old_size} to {new_size} has no hashes; the file has {}",
                self.proof.len()
            ));
        }
        Ok(())
    }
}

/// Reads and parses a proof file: an unreadable or oversized file is a [`LocalError`]
/// (exit 6), a malformed one a [`ConsistencyError::ProofFile`] (exit 4).
pub fn read_proof_file(path: &Path) -> anyhow::Result<ProofFile> {
    let bytes = read_bounded(path, PROOF_FILE_BYTES_MAX)?;
    let refused = |reason: String| ConsistencyError::ProofFile {
        file: path.display().to_string(),
        reason,
    };
    let text = String::from_utf8(bytes).map_err(|_| refused("not UTF-8 JSON".into()))?;
    Ok(ProofFile::parse(&text).map_err(refused)?)
}

// ---- checkpoints -----------------------------------------------------------------------------

/// A checkpoint that verified against the genesis, with the file it came from.
#[derive(Clone, Debug)]
pub struct LoadedCheckpoint {
    /// The file, as given.
    pub file: String,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
}

impl LoadedCheckpoint {
    /// Its certified header.
    pub fn header(&self) -> &BlockHeader {
        &self.checkpoint.header.header
    }
}

/// Reads a checkpoint file and verifies it against the genesis.
pub fn load_checkpoint(path: &Path, genesis: &Genesis) -> anyhow::Result<LoadedCheckpoint> {
    let file = path.display().to_string();
    let text = read_text(path, CHECKPOINT_BYTES_MAX)?;
    let checkpoint = verify_checkpoint_text(&file, &text, genesis)?;
    Ok(LoadedCheckpoint { file, checkpoint })
}

/// Parses a checkpoint's JSON and verifies it against the genesis.
pub fn verify_checkpoint_text(
    file: &str,
    text: &str,
    genesis: &Genesis,
) -> Result<Checkpoint, ConsistencyError> {
    let checkpoint: Checkpoint =
        serde_json::from_str(text).map_err(|e| ConsistencyError::CheckpointFormat {
            file: file.to_string(),
            reason: e.to_string(),
        })?;
    checkpoint
        .verify(genesis)
        .map_err(|error| ConsistencyError::Checkpoint {
            file: file.to_string(),
            error,
        })?;
    Ok(checkpoint)
}

/// A header a checkpoint proves certified: its own, or one announcing a validator-set
/// change (both verified by [`Checkpoint::verify`]), with the set that certified it.
struct Certified<'a> {
    header: &'a BundleHeader,
    set: &'a ValidatorSet,
    what: String,
}

fn certified_headers<'a>(cp: &'a Checkpoint, genesis_set: &'a ValidatorSet) -> Vec<Certified<'a>> {
    let mut out = Vec::with_capacity(cp.validator_changes.len() + 1);
    let mut set = genesis_set;
    for c in &cp.validator_changes {
        out.push(Certified {
            header: &c.announced_by,
            set,
            what: format!(
                "the header announcing the validator set in force from height {}",
                c.activation_height
            ),
        });
        set = &c.validators;
    }
    out.push(Certified {
        header: &cp.header,
        set,
        what: "the checkpoint's header".into(),
    });
    out
}

// ---- the verdict -----------------------------------------------------------------------------

/// The outcome, as `result` in `--json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Both files are checkpoints of the same block.
    Identical,
    /// The new checkpoint's log extends the old one's (proven).
    Consistent,
    /// The two cannot be on one chain (proven from certified data).
    Conflict,
    /// A proof was given or fetched but does not verify: consistency is not shown, and
    /// nothing is proven against the chain.
    Unproven,
}

impl Outcome {
    /// The exit code: 0 identical or consistent, 5 otherwise.
    pub fn exit(self) -> Exit {
        match self {
            Outcome::Identical | Outcome::Consistent => Exit::Ok,
            Outcome::Conflict | Outcome::Unproven => Exit::AuditMismatch,
        }
    }
}

/// What kind of conflict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// Two different certified blocks at one height.
    Fork,
    /// The later header's log has fewer records than the earlier one's.
    LogShrank,
    /// Two logs of the same size with different roots.
    SameSizeRootsDiffer,
    /// A proof that reaches the new certified root shows that the new log's first
    /// `old_size` records have another root than the old certified one.
    PrefixDiffers,
}

/// Validators that signed both of two conflicting certificates of one validator set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SignedBoth {
    /// Their keys.
    pub validators: Vec<PublicKey>,
    /// Their voting power.
    pub power: u64,
    /// The set's total voting power.
    pub total_power: u64,
    /// The round of the old file's certificate.
    pub old_round: u32,
    /// The round of the new file's certificate.
    pub new_round: u32,
}

/// A conflict between the two checkpoints: evidence that the chain was forked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// The kind.
    pub kind: ConflictKind,
    /// For `fork`: the height of the two blocks; otherwise the old checkpoint's height
    /// (the chain was forked at or below it).
    pub height: u64,
    /// The old file's block at `height` (`fork`), or its checkpoint's block.
    pub old_block_hash: Hash,
    /// The new file's block at `height` (`fork`), or its checkpoint's block.
    pub new_block_hash: Hash,
    /// `prefix_differs`: the root of the new log's first `old_size` records, as the proof
    /// shows.
    pub new_prefix_root: Option<Hash>,
    /// `fork` with the same validator set on both sides: who signed both blocks.
    pub signed_both: Option<SignedBoth>,
    /// What the conflict proves, in words.
    pub proves: String,
}

/// The verdict before it is printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The same block.
    Identical,
    /// Proven consistent.
    Consistent,
    /// Proven conflicting.
    Conflict(Box<Conflict>),
    /// The proof does not verify; why.
    Unproven(String),
}

/// What a decision without a proof gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The certified headers decide it alone.
    Decided(Verdict),
    /// A consistency proof between these sizes is needed (empty when the sizes are equal
    /// or the old log is empty).
    Proof {
        /// The old log size.
        old_size: u64,
        /// The new log size.
        new_size: u64,
    },
}

/// Why a fork of certified blocks means that validators broke the protocol.
const FORK_MEANING: &str = "Tendermint finalises at most one block per height unless validators holding more than a third of the voting power break the protocol: so validators holding more than a third of the voting power of the set in force where the two branches diverged signed conflicting blocks, or their keys were stolen.";

fn fork_conflict(a: &Certified<'_>, b: &Certified<'_>, old_file: &str, new_file: &str) -> Conflict {
    let ha = &a.header.header;
    let hb = &b.header.header;
    let same_set = ha.validators_hash == hb.validators_hash;
    let signed_both = same_set.then(|| {
        let other: std::collections::BTreeSet<PublicKey> = b
            .header
            .commit
            .signatures
            .iter()
            .map(|s| s.validator)
            .collect();
        let validators: Vec<PublicKey> = a
            .header
            .commit
            .signatures
            .iter()
            .map(|s| s.validator)
            .filter(|k| other.contains(k))
            .collect();
        SignedBoth {
            power: validators.iter().map(|k| a.set.power_of(k)).sum(),
            total_power: a.set.total_power(),
            validators,
            old_round: a.header.commit.round,
            new_round: b.header.commit.round,
        }
    });
    let who = match &signed_both {
        Some(s) if s.old_round == s.new_round => format!(
            " Both blocks were certified by the same validator set: {} validator(s) holding {} of its {} voting power signed precommits for both, in the same round {}, i.e. two conflicting votes each (double-signing); the signatures are in the two files.",
            s.validators.len(),
            s.power,
            s.total_power,
            s.old_round
        ),
        Some(s) => format!(
            " Both blocks were certified by the same validator set; {} validator(s) holding {} of its {} voting power signed both, in rounds {} and {}. Signing for another block in a later round is allowed only after more than two thirds prevoted for it, so these signatures alone do not single out who broke the rules.",
            s.validators.len(),
            s.power,
            s.total_power,
            s.old_round,
            s.new_round
        ),
        None => " The two blocks were certified by different validator sets, so the branches diverged below this height.".into(),
    };
    Conflict {
        kind: ConflictKind::Fork,
        height: ha.height,
        old_block_hash: ha.hash(),
        new_block_hash: hb.hash(),
        new_prefix_root: None,
        proves: format!(
            "two different blocks are certified at height {}: {} ({} of {old_file}) and {} ({} of {new_file}), each with precommit signatures of validators holding more than two thirds of the voting power of the validator set in force, followed from the genesis. The chain was forked: the two branches diverged at height {} or below. {FORK_MEANING}{who}",
            ha.height,
            ha.hash(),
            a.what,
            hb.hash(),
            b.what,
            ha.height
        ),
        signed_both,
    }
}

/// Orders two verified checkpoints by height (the lower is "old"; `swapped` when they were
/// given newest first) and decides what the certified headers alone decide.
pub fn decide(
    genesis: &Genesis,
    old: &LoadedCheckpoint,
    new: &LoadedCheckpoint,
) -> anyhow::Result<Decision> {
    let genesis_set = genesis.validator_set()?;
    let a = certified_headers(&old.checkpoint, &genesis_set);
    let b = certified_headers(&new.checkpoint, &genesis_set);
    let by_height: BTreeMap<u64, &Certified<'_>> =
        b.iter().map(|c| (c.header.header.height, c)).collect();
    // The lowest height with two different certified blocks: the nearest to the fork.
    let fork = a
        .iter()
        .filter_map(|x| {
            let y = by_height.get(&x.header.header.height)?;
            (x.header.header.hash() != y.header.header.hash()).then_some((x, *y))
        })
        .min_by_key(|(x, _)| x.header.header.height);
    if let Some((x, y)) = fork {
        return Ok(Decision::Decided(Verdict::Conflict(Box::new(
            fork_conflict(x, y, &old.file, &new.file),
        ))));
    }
    let (ho, hn) = (old.header(), new.header());
    if ho.height == hn.height {
        return Ok(Decision::Decided(Verdict::Identical));
    }
    if hn.log_size < ho.log_size {
        return Ok(Decision::Decided(Verdict::Conflict(Box::new(Conflict {
            kind: ConflictKind::LogShrank,
            height: ho.height,
            old_block_hash: ho.hash(),
            new_block_hash: hn.hash(),
            new_prefix_root: None,
            signed_both: None,
            proves: format!(
                "the certified header at height {} ({}) has a history log of {} records, fewer than the {} records certified at height {} ({}). The log only grows, so the two headers cannot be on one chain: the chain was forked at or below height {}. {FORK_MEANING}",
                hn.height, new.file, hn.log_size, ho.log_size, ho.height, old.file, ho.height
            ),
        }))));
    }
    if hn.log_size == ho.log_size && hn.log_root != ho.log_root {
        return Ok(Decision::Decided(Verdict::Conflict(Box::new(Conflict {
            kind: ConflictKind::SameSizeRootsDiffer,
            height: ho.height,
            old_block_hash: ho.hash(),
            new_block_hash: hn.hash(),
            new_prefix_root: None,
            signed_both: None,
            proves: format!(
                "the certified headers at heights {} ({}) and {} ({}) both have a history log of {} records, with different roots {} and {}: one log cannot have two roots, so the two headers cannot be on one chain and the chain was forked at or below height {}. {FORK_MEANING}",
                ho.height,
                old.file,
                hn.height,
                new.file,
                ho.log_size,
                ho.log_root,
                hn.log_root,
                ho.height
            ),
        }))));
    }
    Ok(Decision::Proof {
        old_size: ho.log_size,
        new_size: hn.log_size,
    })
}

/// Whether a proof between these sizes has hashes at all (RFC 9162 proofs are empty when
/// the old log is empty or both logs have the same size).
pub fn proof_needed(old_size: u64, new_size: u64) -> bool {
    old_size > 0 && old_size < new_size
}

/// Judges a consistency proof against the two certified headers (old first).
pub fn judge_proof(
    old: &BlockHeader,
    new: &BlockHeader,
    proof: &[Hash],
    old_file: &str,
    new_file: &str,
) -> Verdict {
    let (m, n) = (old.log_size, new.log_size);
    match verify_consistency(m, n, &old.log_root, &new.log_root, proof) {
        Ok(()) => Verdict::Consistent,
        Err(ProofError::OldRootMismatch { computed, .. })
            // The proof reaches the new certified root from the root it computes for the
            // old size: its hashes are then the new log's own subtrees (blake3 is collision
            // resistant), so that root is the new log's first `m` records, and it is not
            // the old certified root.
            if verify_consistency(m, n, &computed, &new.log_root, proof).is_ok() =>
        {
            Verdict::Conflict(Box::new(Conflict {
                kind: ConflictKind::PrefixDiffers,
                height: old.height,
                old_block_hash: old.hash(),
                new_block_hash: new.hash(),
                new_prefix_root: Some(computed),
                signed_both: None,
                proves: format!(
                    "the consistency proof reproduces the certified log root of height {} ({}) and shows that the first {m} records of that log have root {computed}, not the root {} certified at height {} ({}): the newer history does not contain the older one (records were removed, changed or reordered), so the two headers cannot be on one chain and the chain was forked at or below height {}. {FORK_MEANING}",
                    new.height, new_file, old.log_root, old.height, old_file, old.height
                ),
            }))
        }
        Err(e) => Verdict::Unproven(e.to_string()),
    }
}

// ---- the command -----------------------------------------------------------------------------

/// Where the proof came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofSource {
    /// A proof file (`--proof`).
    File,
    /// A node (`--node`).
    Node,
}

/// The proof that was checked.
#[derive(Clone, Debug, Serialize)]
pub struct ProofUsed {
    /// File or node.
    pub source: ProofSource,
    /// The file's path or the node's URL.
    pub from: String,
    /// The old log size.
    pub old_size: u64,
    /// The new log size.
    pub new_size: u64,
    /// Hashes in the proof.
    pub hashes: usize,
}

/// One checkpoint, as printed.
#[derive(Clone, Debug, Serialize)]
pub struct Side {
    /// The file.
    pub file: String,
    /// Height.
    pub height: u64,
    /// Block hash.
    pub block_hash: Hash,
    /// Block time.
    pub time_ms: u64,
    /// History-log size.
    pub log_size: u64,
    /// History-log root.
    pub log_root: Hash,
}

impl Side {
    fn of(cp: &LoadedCheckpoint) -> Side {
        let h = cp.header();
        Side {
            file: cp.file.clone(),
            height: h.height,
            block_hash: h.hash(),
            time_ms: h.time_ms,
            log_size: h.log_size,
            log_root: h.log_root,
        }
    }
}

/// The report (`--json` prints it as it is; `docs/cli.md` lists the fields).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `identical`, `consistent`, `conflict` or `unproven`.
    pub result: Outcome,
    /// Whether the new checkpoint is proven to extend the old one.
    pub consistent: bool,
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash (the trust root).
    pub genesis_hash: Hash,
    /// The files were given newest first.
    pub swapped: bool,
    /// The older checkpoint.
    pub old: Side,
    /// The newer checkpoint.
    pub new: Side,
    /// The proof checked, if one was read or fetched.
    pub proof: Option<ProofUsed>,
    /// Where the proof was saved (`--out`).
    pub saved: Option<String>,
    /// The conflict, for `conflict`.
    pub conflict: Option<Conflict>,
    /// Why the proof does not verify, for `unproven`.
    pub reason: Option<String>,
}

/// The command's inputs.
#[derive(Clone, Debug)]
pub struct ConsistencyOptions {
    /// The genesis file.
    pub genesis: PathBuf,
    /// The first checkpoint file.
    pub first: PathBuf,
    /// The second checkpoint file.
    pub second: PathBuf,
    /// A proof file (no network).
    pub proof: Option<PathBuf>,
    /// Where to save the checked proof.
    pub out: Option<PathBuf>,
    /// The node to fetch a proof from, when `proof` is not given.
    pub node: Option<String>,
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Runs the check: loads and verifies everything, fetches the proof if needed, saves it
/// with `--out`. Input problems are errors; a conflict or an unverified proof is a report
/// (its `result.exit()` is 5).
pub fn run(opts: &ConsistencyOptions) -> anyhow::Result<Report> {
    if let Some(out) = &opts.out
        && [&opts.genesis, &opts.first, &opts.second]
            .iter()
            .any(|p| same_file(out, p))
    {
        return Err(ConsistencyError::OutIsInput(out.display().to_string()).into());
    }
    let genesis = crate::verify::load_genesis(&opts.genesis)?;
    let first = load_checkpoint(&opts.first, &genesis)?;
    let second = load_checkpoint(&opts.second, &genesis)?;
    let swapped = second.header().height < first.header().height;
    let (old, new) = if swapped {
        (second, first)
    } else {
        (first, second)
    };
    let (m, n) = (old.header().log_size, new.header().log_size);
    // A proof file is parsed whenever it is given, so that a malformed one is always
    // refused; it must match the checkpoints when it is used (a conflict between the
    // certified headers needs no proof, and is not hidden behind one).
    let file = match &opts.proof {
        None => None,
        Some(p) => Some((p.display().to_string(), read_proof_file(p)?)),
    };
    let matching =
        |(path, f): (String, ProofFile)| -> Result<(String, ProofFile), ConsistencyError> {
            f.check_for(&genesis, m, n)
                .map_err(|reason| ConsistencyError::ProofFile {
                    file: path.clone(),
                    reason,
                })?;
            Ok((path, f))
        };
    let mut report = Report {
        result: Outcome::Identical,
        consistent: true,
        chain_id: genesis.chain_id.clone(),
        genesis_hash: genesis.hash(),
        swapped,
        old: Side::of(&old),
        new: Side::of(&new),
        proof: None,
        saved: None,
        conflict: None,
        reason: None,
    };
    let mut checked_proof: Option<Vec<Hash>> = None;
    let verdict = match decide(&genesis, &old, &new)? {
        Decision::Decided(Verdict::Identical) => {
            if let Some(f) = file {
                let (path, f) = matching(f)?;
                report.proof = Some(ProofUsed {
                    source: ProofSource::File,
                    from: path,
                    old_size: f.old_size,
                    new_size: f.new_size,
                    hashes: f.proof.len(),
                });
            }
            checked_proof = Some(vec![]);
            Verdict::Identical
        }
        Decision::Decided(v) => v,
        Decision::Proof { old_size, new_size } => {
            // Where the proof comes from: the file, else none when it is empty, else the node.
            let source = match file.map(matching).transpose()? {
                Some((path, f)) => Some((ProofSource::File, path, f.proof)),
                None if !proof_needed(old_size, new_size) => None,
                None => {
                    let Some(url) = &opts.node else {
                        return Err(ConsistencyError::NoProofSource { old_size, new_size }.into());
                    };
                    let client = NodeClient::new(url)?;
                    let proof = client.consistency(old_size, new_size)?;
                    Some((ProofSource::Node, client.url().to_string(), proof))
                }
            };
            let proof = match source {
                Some((source, from, proof)) => {
                    report.proof = Some(ProofUsed {
                        source,
                        from,
                        old_size,
                        new_size,
                        hashes: proof.len(),
                    });
                    proof
                }
                None => vec![],
            };
            let v = judge_proof(old.header(), new.header(), &proof, &old.file, &new.file);
            // A proof that reached the new certified root (consistent, or evidence of a
            // conflict) is worth keeping; one that failed is not.
            if matches!(&v, Verdict::Consistent)
                || matches!(&v, Verdict::Conflict(c) if c.kind == ConflictKind::PrefixDiffers)
            {
                checked_proof = Some(proof);
            }
            v
        }
    };
    if let (Some(out), Some(proof)) = (&opts.out, checked_proof) {
        let f = ProofFile {
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            old_size: m,
            new_size: n,
            proof,
        };
        std::fs::write(out, f.to_json()).map_err(|e| LocalError::io(out, e))?;
        report.saved = Some(out.display().to_string());
    }
    match verdict {
        Verdict::Identical => {}
        Verdict::Consistent => report.result = Outcome::Consistent,
        Verdict::Conflict(c) => {
            report.result = Outcome::Conflict;
            report.consistent = false;
            report.conflict = Some(*c);
        }
        Verdict::Unproven(reason) => {
            report.result = Outcome::Unproven;
            report.consistent = false;
            report.reason = Some(reason);
        }
    }
    Ok(report)
}

// ---- text ------------------------------------------------------------------------------------

fn side_line(label: &str, s: &Side) -> String {
    format!(
        "  {label:<8} height {}, block {}, {}, history log of {} records, root {} ({})",
        s.height,
        s.block_hash,
        format_ms(s.time_ms),
        s.log_size,
        s.log_root,
        s.file
    )
}

fn proof_line(r: &Report) -> String {
    match &r.proof {
        Some(p) => {
            let from = match p.source {
                ProofSource::File => format!("from the file {}", p.from),
                ProofSource::Node => format!(
                    "from the node {} (not trusted: checked against both certified roots)",
                    p.from
                ),
            };
            format!(
                "  proof    RFC 9162 consistency proof from log size {} to {} ({} hashes) {from}",
                p.old_size, p.new_size, p.hashes
            )
        }
        None if r.old.log_size == 0 => {
            "  proof    none needed: the old log is empty, a prefix of every log".into()
        }
        None if r.old.log_size == r.new.log_size => format!(
            "  proof    none needed: both logs have {} records and the same root",
            r.old.log_size
        ),
        None => "  proof    none".into(),
    }
}

/// The text form of a report.
pub fn describe(r: &Report) -> String {
    let mut lines = vec![];
    let (o, n) = (&r.old, &r.new);
    match r.result {
        Outcome::Identical => lines.push(format!(
            "IDENTICAL: both files are checkpoints of the same certified block at height {} ({}); consistent",
            o.height, o.block_hash
        )),
        Outcome::Consistent => lines.push(format!(
            "CONSISTENT: the ledger at height {} ({}) extends the ledger at height {} ({})",
            n.height, n.file, o.height, o.file
        )),
        Outcome::Conflict => lines.push(
            "CONFLICT: the two checkpoints cannot both be of one chain; both verify against the genesis"
                .into(),
        ),
        Outcome::Unproven => lines.push(format!(
            "NOT SHOWN CONSISTENT: the consistency proof does not verify against the two certified roots: {}",
            r.reason.as_deref().unwrap_or("")
        )),
    }
    lines.push(format!(
        "  chain    {:?}, genesis {}",
        r.chain_id, r.genesis_hash
    ));
    lines.push(side_line("old", o));
    lines.push(side_line("new", n));
    if r.swapped {
        lines.push(format!(
            "  note     the files were given newest first: {} is the older checkpoint",
            o.file
        ));
    }
    // A conflict of the certified headers needs no proof: no line about one.
    if r.result == Outcome::Consistent || (r.proof.is_some() && r.result != Outcome::Identical) {
        lines.push(proof_line(r));
    }
    if let Some(saved) = &r.saved {
        lines.push(format!(
            "  saved    the proof to {saved} (check again offline with --proof {saved})"
        ));
    }
    match r.result {
        Outcome::Identical => {}
        Outcome::Consistent => lines.push(format!(
            "Both headers are certified by validators followed from the genesis, and the first {} records of the newer history log are exactly the older log: nothing recorded by height {} was removed, changed or reordered.",
            o.log_size, o.height
        )),
        Outcome::Conflict => {
            if let Some(c) = &r.conflict {
                lines.push(format!("What this proves: {}", c.proves));
                if let Some(s) = &c.signed_both {
                    let keys: Vec<String> = s.validators.iter().map(|k| k.to_hex()).collect();
                    lines.push(format!("  signed both: {}", keys.join(", ")));
                }
            }
            lines.push(
                "Keep both files (and the proof, if one was used): with the genesis they are the evidence, checkable offline by anyone."
                    .into(),
            );
        }
        Outcome::Unproven => lines.push(
            "This is not evidence of a fork by itself: it shows only that this proof (the node that sent it, or the file) does not prove that the newer log extends the older one, and a wrong, corrupted or truncated proof fails the same way. Had the proof reproduced the newer checkpoint's certified root, a different older root would have been reported as a conflict; it did not. If both checkpoints are of one chain, a correct proof exists: fetch it from another node."
                .into(),
        ),
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::history_log::{MemoryLog, consistency_proof, leaf_hash};

    fn file_json(proof: &[String]) -> serde_json::Value {
        serde_json::json!({
            "version": 1, "kind": "consistency", "chain_id": "c",
            "genesis_hash": "ab".repeat(32), "old_size": 3, "new_size": 7, "proof": proof,
        })
    }

    fn hashes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:02x}").repeat(32)).collect()
    }

    #[test]
    fn a_proof_file_round_trips() {
        let f = ProofFile {
            chain_id: "c".into(),
            genesis_hash: Hash([0xab; 32]),
            old_size: 3,
            new_size: 7,
            proof: vec![Hash([1; 32]), Hash([0xfe; 32])],
        };
        let text = f.to_json();
        assert!(text.ends_with('\n'));
        assert_eq!(ProofFile::parse(&text).unwrap(), f);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["kind"], "consistency");
        assert_eq!(v["proof"][1], "fe".repeat(32));
    }

    #[test]
    fn every_malformed_file_is_refused_with_a_reason() {
        let ok = file_json(&hashes(4));
        assert!(ProofFile::parse(&ok.to_string()).is_ok());
        let with = |k: &str, v: serde_json::Value| {
            let mut j = ok.clone();
            j[k] = v;
            j.to_string()
        };
        let without = |k: &str| {
            let mut j = ok.clone();
            j.as_object_mut().unwrap().remove(k);
            j.to_string()
        };
        let mut upper = hashes(4);
        upper[2] = upper[2].to_uppercase().replace("02", "AB");
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "not JSON"),
            ("[1, 2]".into(), "not a JSON object"),
            (without("version"), "no `version`"),
            (with("version", 2.into()), "version 2 is not supported"),
            (with("version", "1".into()), "is not supported"),
            (without("kind"), "no `kind` field"),
            (with("kind", "checkpoint".into()), "kind \"checkpoint\""),
            (with("extra", 1.into()), "unknown field `extra`"),
            (without("new_size"), "missing field `new_size`"),
            (with("old_size", (-1).into()), "invalid value"),
            (
                with("old_size", 8.into()),
                "old_size 8 is larger than new_size 7",
            ),
            (file_json(&upper).to_string(), "proof[2]"),
            (
                file_json(&[format!(" {}", "a".repeat(63))]).to_string(),
                "proof[0]",
            ),
            (
                file_json(&["ab".repeat(31)]).to_string(),
                "not 64 lower-case hex",
            ),
            (with("genesis_hash", "AB".repeat(32).into()), "genesis_hash"),
            (
                file_json(&hashes(PROOF_HASHES_MAX + 1)).to_string(),
                "129 hashes, more than the bound of 128",
            ),
        ];
        for (text, expected) in cases {
            let e = ProofFile::parse(&text).unwrap_err();
            assert!(e.contains(expected), "{expected:?} not in {e:?}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
        // At the bound it is accepted (the exact length is checked when verifying).
        assert!(ProofFile::parse(&file_json(&hashes(PROOF_HASHES_MAX)).to_string()).is_ok());
    }

    #[test]
    fn the_bounds_hold_for_the_largest_files() {
        // The longest RFC 9162 proofs are within ⌈log₂ n⌉ + 1 hashes: far below the bound.
        let mut log = MemoryLog::new();
        let mut longest = 0;
        for n in 1..=300u64 {
            log.push(leaf_hash(&n.to_le_bytes()));
            for m in 1..n {
                let p = consistency_proof(m, n, &log).unwrap();
                let bound = 64 - (n - 1).leading_zeros() as usize + 1;
                assert!(p.len() <= bound, "{m} → {n}: {} hashes", p.len());
                longest = longest.max(p.len());
            }
        }
        assert!(longest < PROOF_HASHES_MAX);
        // A file with the most hashes and the longest chain id fits the byte bound.
        let f = ProofFile {
            chain_id: "\u{1}".repeat(ledger::tx::CHAIN_ID_BYTES_MAX),
            genesis_hash: Hash([0xff; 32]),
            old_size: u64::MAX - 1,
            new_size: u64::MAX,
            proof: vec![Hash([0xff; 32]); PROOF_HASHES_MAX],
        };
        assert!((f.to_json().len() as u64) < PROOF_FILE_BYTES_MAX);
    }

    #[test]
    fn a_file_must_match_the_checkpoints() {
        let g = test_genesis();
        let f = ProofFile {
            chain_id: g.chain_id.clone(),
            genesis_hash: g.hash(),
            old_size: 3,
            new_size: 7,
            proof: vec![Hash([1; 32]); 4],
        };
        assert!(f.check_for(&g, 3, 7).is_ok());
        assert!(
            f.check_for(&g, 3, 8)
                .unwrap_err()
                .contains("log sizes 3 → 7")
        );
        assert!(f.check_for(&g, 2, 7).unwrap_err().contains("3 → 7"));
        let mut other = g.clone();
        other.chain_id = "other".into();
        assert!(f.check_for(&other, 3, 7).unwrap_err().contains("chain"));
        let mut other = g.clone();
        other.genesis_time_ms += 1;
        assert!(f.check_for(&other, 3, 7).unwrap_err().contains("genesis"));
        let same = ProofFile {
            old_size: 7,
            ..f.clone()
        };
        assert!(
            same.check_for(&g, 7, 7)
                .unwrap_err()
                .contains("has no hashes")
        );
    }

    fn test_genesis() -> Genesis {
        let key = ledger::SecretKey::from_seed(&[1; 32]);
        Genesis {
            chain_id: "unit".into(),
            genesis_time_ms: 1_000,
            departments: vec![ledger::genesis::Department {
                id: "city".into(),
                name: "City".into(),
                governance_weight: 1,
            }],
            members: vec![],
            validators: vec![ledger::validator::Validator {
                department: "city".into(),
                public_key: key.public_key(),
                power: 1,
                address: String::new(),
            }],
            params: ledger::genesis::ConsensusParams::default(),
            state_format: ledger::genesis::StateFormat::CURRENT,
        }
    }

    fn header(height: u64, log: &MemoryLog, size: u64) -> BlockHeader {
        BlockHeader {
            chain_id: "unit".into(),
            height,
            time_ms: 1_000 + height,
            prev_hash: Hash::ZERO,
            tx_root: Hash::ZERO,
            tx_count: 0,
            log_size: size,
            log_root: ledger::history_log::root_at(size, log).unwrap(),
            state_root: Hash::ZERO,
            validators_hash: Hash::ZERO,
            next_validators_hash: Hash::ZERO,
            proposer: ledger::SecretKey::from_seed(&[1; 32]).public_key(),
        }
    }

    #[test]
    fn proofs_are_judged_against_both_roots() {
        let mut log = MemoryLog::new();
        for i in 0..7u8 {
            log.push(leaf_hash(&[i]));
        }
        let (old, new) = (header(2, &log, 3), header(5, &log, 7));
        let proof = consistency_proof(3, 7, &log).unwrap();
        assert_eq!(
            judge_proof(&old, &new, &proof, "a", "b"),
            Verdict::Consistent
        );
        // One hash changed: nothing is proven.
        let mut bad = proof.clone();
        bad[1].0[0] ^= 1;
        assert!(matches!(
            judge_proof(&old, &new, &bad, "a", "b"),
            Verdict::Unproven(_)
        ));
        let short = &proof[..proof.len() - 1];
        match judge_proof(&old, &new, short, "a", "b") {
            Verdict::Unproven(r) => assert!(r.contains("hashes"), "{r}"),
            other => panic!("{other:?}"),
        }
        // Another log with the same last records but a different third record: the old
        // checkpoint's root is not the new log's prefix, and the honest proof of the new
        // log shows it.
        let mut forked = MemoryLog::new();
        for i in [0u8, 1, 9, 3, 4, 5, 6] {
            forked.push(leaf_hash(&[i]));
        }
        let new_forked = header(5, &forked, 7);
        let proof = consistency_proof(3, 7, &forked).unwrap();
        match judge_proof(&old, &new_forked, &proof, "a", "b") {
            Verdict::Conflict(c) => {
                assert_eq!(c.kind, ConflictKind::PrefixDiffers);
                assert_eq!(
                    c.new_prefix_root,
                    Some(ledger::history_log::root_at(3, &forked).unwrap())
                );
                assert!(
                    c.proves.contains("forked at or below height 2"),
                    "{}",
                    c.proves
                );
            }
            other => panic!("{other:?}"),
        }
        // Sizes that need no proof.
        let same = header(6, &log, 7);
        assert_eq!(judge_proof(&new, &same, &[], "a", "b"), Verdict::Consistent);
        assert!(!proof_needed(0, 5) && !proof_needed(5, 5) && proof_needed(4, 5));
    }

    #[test]
    fn lower_case_hex_only() {
        assert!(parse_lower_hex(&"0a".repeat(32)).is_ok());
        assert!(parse_lower_hex(&"0A".repeat(32)).is_err());
        assert!(parse_lower_hex(&format!("{} ", "0a".repeat(32))).is_err());
        assert!(parse_lower_hex(&"g0".repeat(32)).is_err());
        assert!(parse_lower_hex("é").is_err());
    }
}
