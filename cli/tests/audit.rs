//! The auditor over chains read from a real store: an honest chain passes; a store altered
//! behind the node's back, a forged or foreign checkpoint, a truncated chain and a bad
//! consistency proof each fail with the height and the check.

mod common;

use common::{StoreSource, World, anchor};
use govledger_cli::audit::{AuditError, AuditOptions, BoxError, ChainSource, audit};
use ledger::block::CommittedBlock;
use ledger::hash::Hash;
use ledger::tx::TxBody;
use ledger::vote::{CommitCertificate, Vote, VoteType};

fn run_audit(
    w: &World,
    opts: &AuditOptions,
) -> Result<govledger_cli::audit::AuditReport, AuditError> {
    let mut heights = vec![];
    let r = audit(&w.genesis, &mut StoreSource(&w.store), opts, &mut |p| {
        heights.push(p.height)
    });
    if r.is_ok() {
        let expected: Vec<u64> = (1..=opts.to_height.unwrap_or(w.height())).collect();
        assert_eq!(heights, expected, "progress reports every height in order");
    }
    r
}

fn expect_mismatch(
    r: Result<govledger_cli::audit::AuditReport, AuditError>,
    height: u64,
    check: &str,
) {
    match r {
        Err(AuditError::Mismatch {
            height: h,
            check: c,
            reason,
        }) => {
            assert_eq!((h, c), (height, check), "{reason}");
        }
        Err(other) => panic!("expected a mismatch at {height} ({check}), got {other}"),
        Ok(_) => panic!("expected a mismatch at {height} ({check}), the audit passed"),
    }
}

#[test]
fn an_honest_chain_passes_and_the_report_matches_the_store() {
    let (w, _, _) = World::standard("audit-test");
    let opts = AuditOptions {
        page_blocks: 2,
        ..AuditOptions::default()
    };
    let r = run_audit(&w, &opts).unwrap();
    let tip = w.store.load_tip().unwrap();
    assert_eq!(r.blocks, 6);
    assert_eq!(r.tip_height, 6);
    assert_eq!(r.txs, 8);
    assert_eq!(r.tip_hash, tip.block_hash);
    assert_eq!(r.log_size, tip.frontier.size());
    assert_eq!(r.log_root, tip.frontier.root());
    assert_eq!(r.state_root, tip.state_root);
    assert_eq!(r.validator_set_changes, 1);
    assert!(r.checkpoint.is_none());
    // An explicit end height works too.
    let r = run_audit(
        &w,
        &AuditOptions {
            to_height: Some(4),
            ..AuditOptions::default()
        },
    );
    assert_eq!(r.map(|r| r.tip_height).ok(), Some(4));
}

#[test]
fn a_checkpoint_is_found_and_extended_consistently() {
    let (mut w, _, _) = World::standard("audit-cp");
    let cp = w.store.checkpoint(&w.genesis, Some(3)).unwrap().unwrap();
    w.block(vec![anchor(b"later 1"), anchor(b"later 2")]);
    let r = run_audit(
        &w,
        &AuditOptions {
            checkpoint: Some(cp.clone()),
            ..AuditOptions::default()
        },
    )
    .unwrap();
    let c = r.checkpoint.unwrap();
    assert_eq!(c.height, 3);
    assert_eq!(c.log_size, cp.header.header.log_size);
    assert_eq!(c.new_log_size, r.log_size);
    assert!(c.consistency_proof_hashes > 0);
    // The tip itself as the checkpoint: an empty proof between equal sizes.
    let tip_cp = w.store.checkpoint(&w.genesis, None).unwrap().unwrap();
    let r = run_audit(
        &w,
        &AuditOptions {
            checkpoint: Some(tip_cp),
            ..AuditOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.checkpoint.unwrap().consistency_proof_hashes, 0);
}

#[test]
fn a_store_altered_behind_the_nodes_back_fails_at_that_block() {
    // A transaction's bytes rewritten (its signature no longer matches).
    let (mut w, _, _) = World::standard("audit-tamper");
    let cb = w.store.committed_block(5).unwrap().unwrap();
    let leaf = cb.block.header.log_size - 2;
    let mut stx = cb.block.txs[1].clone();
    if let TxBody::Anchor(a) = &mut stx.tx.body {
        a.label = "forged".into();
    }
    w.tamper_tx_bytes(leaf, &stx.encode());
    expect_mismatch(
        run_audit(&w, &AuditOptions::default()),
        5,
        "transaction signature",
    );

    // A different, validly signed transaction put in place of a committed one (an insider
    // with the clerk's key): the block's tx root no longer matches.
    let (mut w, _, _) = World::standard("audit-tamper-2");
    let cb = w.store.committed_block(3).unwrap().unwrap();
    let leaf = cb.block.header.log_size - 1;
    let mut replacement = cb.block.txs[0].clone();
    replacement.tx.body = anchor(b"something else");
    let replacement = replacement.tx.sign(&w.clerk);
    w.tamper_tx_bytes(leaf, &replacement.encode());
    let r = run_audit(&w, &AuditOptions::default());
    if let Err(AuditError::Mismatch { reason, .. }) = &r {
        assert!(reason.contains("tx_root"), "{reason}");
    }
    expect_mismatch(r, 3, "execution");
}

/// A source that alters what another source serves.
struct Altered<'a, F: FnMut(&mut CommittedBlock) + Send> {
    inner: StoreSource<'a>,
    alter: F,
    stop_after: Option<u64>,
    corrupt_consistency: bool,
}

impl<F: FnMut(&mut CommittedBlock) + Send> ChainSource for Altered<'_, F> {
    fn blocks(&mut self, from: u64, limit: u32) -> Result<Vec<CommittedBlock>, BoxError> {
        let mut blocks = self.inner.blocks(from, limit)?;
        if let Some(stop) = self.stop_after {
            blocks.retain(|b| b.block.header.height <= stop);
        }
        blocks.iter_mut().for_each(&mut self.alter);
        Ok(blocks)
    }
    fn consistency_proof(&mut self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, BoxError> {
        let mut p = self.inner.consistency_proof(old_size, new_size)?;
        if self.corrupt_consistency
            && let Some(h) = p.first_mut()
        {
            h.0[0] ^= 1;
        }
        Ok(p)
    }
}

fn altered<'a>(
    w: &'a World,
    alter: impl FnMut(&mut CommittedBlock) + Send,
) -> Altered<'a, impl FnMut(&mut CommittedBlock) + Send> {
    Altered {
        inner: StoreSource(&w.store),
        alter,
        stop_after: None,
        corrupt_consistency: false,
    }
}

/// Replaces the commit certificate of block `height` with genuine precommits of `signers`.
fn recertify(
    height: u64,
    chain_id: &str,
    signers: Vec<ledger::SecretKey>,
) -> impl FnMut(&mut CommittedBlock) + Send {
    let chain_id = chain_id.to_string();
    move |b| {
        if b.block.header.height == height {
            let h = &b.block.header;
            let votes: Vec<Vote> = signers
                .iter()
                .map(|k| {
                    Vote::new_signed(
                        &chain_id,
                        h.height,
                        0,
                        VoteType::Precommit,
                        Some(h.hash()),
                        k,
                    )
                })
                .collect();
            b.commit = CommitCertificate::from_votes(h.height, 0, h.hash(), &votes);
            assert_eq!(b.commit.signatures.len(), signers.len());
        }
    }
}

#[test]
fn commit_certificates_and_header_links_are_checked() {
    let (w, _, _) = World::standard("audit-links");
    let g = &w.genesis;
    let opts = AuditOptions::default();
    let mut noop = |_: govledger_cli::audit::Progress| {};

    let mut s = altered(&w, |b| {
        if b.block.header.height == 4 {
            b.commit.signatures[0].signature.0[3] ^= 1;
        }
    });
    expect_mismatch(audit(g, &mut s, &opts, &mut noop), 4, "commit certificate");

    // Too few signers: two of four is not more than two thirds.
    let mut s = altered(&w, |b| {
        if b.block.header.height == 2 {
            b.commit.signatures.truncate(2);
        }
    });
    expect_mismatch(audit(g, &mut s, &opts, &mut noop), 2, "commit certificate");

    // From height 4 the fifth validator is in force: a certificate of the old set's four
    // keys is still > 2/3 of five, but one signed by a key outside the set is not valid.
    let outsider = ledger::SecretKey::from_seed(&[99; 32]);
    let mut s = altered(&w, move |b| {
        if b.block.header.height == 5 {
            b.commit.signatures[0].validator = outsider.public_key();
        }
    });
    expect_mismatch(audit(g, &mut s, &opts, &mut noop), 5, "commit certificate");

    // A genuinely signed precommit of a key that is not a validator at that height: the
    // fifth key, in force only from height 4, signs block 3 beside the four validators.
    // Every signature verifies and the four alone are a quorum; the certificate is refused
    // all the same, naming the key.
    let fifth = w.keys[4].public_key();
    let r = audit(
        g,
        &mut altered(&w, recertify(3, &g.chain_id, w.keys.clone())),
        &opts,
        &mut noop,
    );
    match &r {
        Err(AuditError::Mismatch { reason, .. }) => assert!(
            reason.contains(&format!("{fifth} is not a validator")),
            "{reason}"
        ),
        _ => panic!("expected a mismatch, got {:?}", r.as_ref().err()),
    }
    expect_mismatch(r, 3, "commit certificate");
    // The same certificate without the outsider is accepted (the test alters nothing else).
    let r = audit(
        g,
        &mut altered(&w, recertify(3, &g.chain_id, w.keys[..4].to_vec())),
        &opts,
        &mut noop,
    );
    assert!(r.is_ok(), "{:?}", r.err());

    // A block whose header was rewritten (and re-certified by nobody) breaks the link.
    let mut s = altered(&w, |b| {
        if b.block.header.height == 3 {
            b.block.header.prev_hash = Hash([7; 32]);
        }
    });
    expect_mismatch(audit(g, &mut s, &opts, &mut noop), 3, "header link");

    // A transaction dropped from a block.
    let mut s = altered(&w, |b| {
        if b.block.header.height == 5 {
            b.block.txs.pop();
        }
    });
    expect_mismatch(audit(g, &mut s, &opts, &mut noop), 5, "execution");
}

#[test]
fn checkpoints_catch_rewritten_and_truncated_history() {
    let (w, _, _) = World::standard("audit-history");
    let g = &w.genesis;
    let mut noop = |_: govledger_cli::audit::Progress| {};

    // A checkpoint from a different history of the same genesis (a fork kept by the
    // auditor): the chain's block at that height differs.
    let mut fork = World::new("audit-history");
    fork.block(vec![anchor(b"DOC"), anchor(b"other")]);
    fork.block(vec![anchor(b"the fork's block 2")]);
    let fork_cp = fork
        .store
        .checkpoint(&fork.genesis, Some(2))
        .unwrap()
        .unwrap();
    let opts = AuditOptions {
        checkpoint: Some(fork_cp),
        ..AuditOptions::default()
    };
    expect_mismatch(
        audit(g, &mut StoreSource(&w.store), &opts, &mut noop),
        2,
        "checkpoint",
    );

    // The node serves a chain that ends below the checkpoint.
    let cp = w.store.checkpoint(g, Some(5)).unwrap().unwrap();
    let opts = AuditOptions {
        checkpoint: Some(cp.clone()),
        ..AuditOptions::default()
    };
    let mut s = altered(&w, |_| {});
    s.stop_after = Some(3);
    expect_mismatch(audit(g, &mut s, &opts, &mut noop), 5, "checkpoint");

    // A consistency proof that does not lead to the checkpoint's root.
    let cp2 = w.store.checkpoint(g, Some(3)).unwrap().unwrap();
    let opts = AuditOptions {
        checkpoint: Some(cp2),
        ..AuditOptions::default()
    };
    let mut s = altered(&w, |_| {});
    s.corrupt_consistency = true;
    expect_mismatch(audit(g, &mut s, &opts, &mut noop), 6, "consistency proof");

    // A forged checkpoint does not verify on its own.
    let mut forged = cp;
    forged.header.header.time_ms += 1;
    forged.header.bytes.0 = forged.header.header.encode();
    let opts = AuditOptions {
        checkpoint: Some(forged),
        ..AuditOptions::default()
    };
    let r = audit(g, &mut StoreSource(&w.store), &opts, &mut noop);
    assert!(matches!(r, Err(AuditError::Checkpoint(_))), "{r:?}");
    assert_eq!(
        r.unwrap_err().exit(),
        Some(govledger_cli::exit::Exit::AuditMismatch)
    );

    // A source that announced more blocks than it serves.
    let opts = AuditOptions {
        to_height: Some(9),
        ..AuditOptions::default()
    };
    expect_mismatch(
        audit(g, &mut StoreSource(&w.store), &opts, &mut noop),
        7,
        "completeness",
    );

    // The wrong genesis: block 1 does not follow it.
    let other = World::new("audit-history-other");
    expect_mismatch(
        audit(
            &other.genesis,
            &mut StoreSource(&w.store),
            &AuditOptions::default(),
            &mut noop,
        ),
        1,
        "header link",
    );
}
