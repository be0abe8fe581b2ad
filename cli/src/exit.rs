//! Exit codes: one per kind of outcome, so that scripts can tell a refused transaction from
//! an unreachable node and a forged proof from a missing file.

use std::fmt;

/// The process exit codes of `govledger`. Stable: scripts depend on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: success (for `verify`: the proof is valid; for `audit`: every check passed).
    Ok,
    /// 1: bad command line or bad input value (a malformed hash, time or id).
    Usage,
    /// 2: the node is unreachable, timed out, overloaded or answered something unexpected.
    Node,
    /// 3: the node refused the transaction or the request (its reason code is printed).
    Refused,
    /// 4: `verify`: the proof bundle (or the document) does not verify; the failed step is
    /// printed. `consistency`: a checkpoint or the proof file does not verify or is
    /// malformed.
    VerifyFailed,
    /// 5: `audit`: the chain does not re-verify, or does not extend the checkpoint.
    /// `consistency`: the checkpoints conflict (a fork), or the proof does not verify.
    AuditMismatch,
    /// 6: a local file could not be read or written (key file, genesis, document, output).
    Local,
    /// 7: the node has no such record, block or proof.
    NotFound,
    /// 8: `verify`/`status`: the status bundle is valid and proves that the thing is *not*
    /// in force: an approval revoked, expired or not yet valid, or absent; a parcel,
    /// resource, proposal, department or member key absent; a member key removed.
    NotInForce,
}

impl Exit {
    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Usage => 1,
            Exit::Node => 2,
            Exit::Refused => 3,
            Exit::VerifyFailed => 4,
            Exit::AuditMismatch => 5,
            Exit::Local => 6,
            Exit::NotFound => 7,
            Exit::NotInForce => 8,
        }
    }
}

/// The exit-code table as a literal, for `concat!` into `--help` texts.
macro_rules! exit_codes_text {
    () => {
        "Exit codes:
  0  success (verify: the proof is valid; audit: every check passed)
  1  usage: bad arguments or a malformed value (hash, time, id)
  2  node unreachable, timed out, overloaded, or an unexpected answer
  3  refused by the node (the reason code is printed, e.g. bad_nonce, parcel_frozen)
  4  verification failed (the failed step, or the file, is printed)
  5  audit mismatch (the height and reason are printed); consistency: conflict, or not shown
  6  local file error (key file, genesis, document, output file)
  7  not found on the node
  8  status proven, but not in force (revoked, expired, absent, removed)"
    };
}

/// The exit-code table for `--help` and the docs.
pub const EXIT_CODES_HELP: &str = exit_codes_text!();

/// A bad value on the command line that clap could not catch (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A local file problem (exit 6).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct LocalError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

impl LocalError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, e: std::io::Error) -> Self {
        LocalError {
            path: path.display().to_string(),
            reason: e.to_string(),
        }
    }
}

/// The outcome was already printed (e.g. `verify` printed which step failed); exit with
/// this code and print nothing more.
#[derive(Debug)]
pub struct Reported(pub Exit);

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}", self.0.code())
    }
}

impl std::error::Error for Reported {}

/// The exit code for an error: the first error in its chain that has a known kind decides.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    // A context (such as `Reported`) is not an item of the chain; anyhow finds it directly.
    if let Some(r) = err.downcast_ref::<Reported>() {
        return r.0;
    }
    for cause in err.chain() {
        if let Some(r) = cause.downcast_ref::<Reported>() {
            return r.0;
        }
        if cause.downcast_ref::<UsageError>().is_some() {
            return Exit::Usage;
        }
        if cause.downcast_ref::<LocalError>().is_some()
            || cause
                .downcast_ref::<ledger::keyfile::KeyFileError>()
                .is_some()
            || cause.downcast_ref::<std::io::Error>().is_some()
        {
            return Exit::Local;
        }
        if let Some(e) = cause.downcast_ref::<crate::client::ClientError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::consistency::ConsistencyError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::audit::AuditError>()
            && let Some(code) = e.exit()
        {
            return code;
        }
        if cause
            .downcast_ref::<crate::verify::VerifyFailure>()
            .is_some()
        {
            return Exit::VerifyFailed;
        }
    }
    // Anything else is a local problem we did not classify (e.g. an invalid genesis file).
    Exit::Local
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_documented() {
        let all = [
            Exit::Ok,
            Exit::Usage,
            Exit::Node,
            Exit::Refused,
            Exit::VerifyFailed,
            Exit::AuditMismatch,
            Exit::Local,
            Exit::NotFound,
        ];
        let mut codes: Vec<u8> = all.iter().map(|e| e.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for c in codes {
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {c}  ")), "{c}");
        }
    }

    #[test]
    fn chain_decides_the_code() {
        let e = anyhow::Error::new(UsageError("bad".into())).context("while parsing");
        assert_eq!(exit_for(&e), Exit::Usage);
        let e = anyhow::Error::new(std::io::Error::other("disk")).context("writing");
        assert_eq!(exit_for(&e), Exit::Local);
        let e = anyhow::Error::new(Reported(Exit::VerifyFailed));
        assert_eq!(exit_for(&e), Exit::VerifyFailed);
    }
}
