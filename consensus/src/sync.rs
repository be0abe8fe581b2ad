//! Block sync support: a commit certificate turned back into the precommit votes it holds.
//!
//! A validator that fell behind (restarted, partitioned) and receives the certificate of
//! the height it is at can feed these votes as [`Input::Vote`](crate::Input::Vote): they
//! are verified and counted like any other, and L49 decides the height once the block is
//! known valid. No separate "commit" input is needed, and nothing is trusted that the
//! signatures do not prove.

use ledger::{CommitCertificate, Vote, VoteType};

/// The precommits of `certificate`, in its (canonical) order.
pub fn certificate_votes(certificate: &CommitCertificate) -> Vec<Vote> {
    certificate
        .signatures
        .iter()
        .map(|s| Vote {
            height: certificate.height,
            round: certificate.round,
            vote_type: VoteType::Precommit,
            block_hash: Some(certificate.block_hash),
            validator: s.validator,
            signature: s.signature,
        })
        .collect()
}
