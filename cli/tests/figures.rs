//! The figures of the CLI (ignored by default; they print measurements and check only
//! correctness, never time):
//!
//! ```sh
//! cargo test --release -p govledger --test figures -- --ignored --nocapture
//! ```

mod common;

use common::{StoreSource, World, anchor};
use govledger_cli::audit::{AuditOptions, audit};
use govledger_cli::verify::verify_bundle;
use ledger::hash::hash_document;
use ledger::tx::*;
use std::time::Instant;

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn offline_verification_of_one_bundle() {
    let (w, _, b) = World::standard("figures-verify");
    let bundle = w.store.proof_bundle(&w.genesis, &b).unwrap().unwrap();
    let json = serde_json::to_string_pretty(&bundle).unwrap();
    let doc = hash_document(b"DOC2");
    let runs = 200u32;
    let started = Instant::now();
    for _ in 0..runs {
        let v = verify_bundle(&json, &w.genesis, Some(doc)).unwrap();
        assert_eq!(v.record.height, 5);
    }
    let per = started.elapsed() / runs;
    println!(
        "offline verification of one bundle ({} bytes, {} validator-set change, parse + verify + document check): {:.3} ms",
        json.len(),
        bundle.validator_changes.len(),
        per.as_secs_f64() * 1000.0
    );
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn audit_replay_of_100k_transactions() {
    const BLOCKS: u64 = 100;
    const TXS_PER_BLOCK: u64 = 1000;
    let mut w = World::new("figures-audit");
    let built = Instant::now();
    for b in 0..BLOCKS {
        let bodies = (0..TXS_PER_BLOCK)
            .map(|i| {
                let n = b * TXS_PER_BLOCK + i;
                match n % 4 {
                    0 | 1 => anchor(&n.to_le_bytes()),
                    2 => TxBody::ApprovalIssue(ApprovalIssue {
                        approval_id: format!("BP-{n}"),
                        kind: "building-permit".into(),
                        subject: format!("company-{}", n % 97),
                        decision: Decision::Granted,
                        document_hash: hash_document(&n.to_be_bytes()),
                        valid_from_ms: 0,
                        valid_until_ms: None,
                        note: String::new(),
                    }),
                    _ => TxBody::LandRegister(LandRegister {
                        parcel_id: format!("P-{n}"),
                        owner: format!("owner-{}", n % 1013),
                        document_hash: hash_document(&n.to_be_bytes()),
                    }),
                }
            })
            .collect();
        w.block(bodies);
    }
    println!(
        "built {BLOCKS} blocks of {TXS_PER_BLOCK} transactions in {:.1} s",
        built.elapsed().as_secs_f64()
    );
    let r = audit(
        &w.genesis,
        &mut StoreSource(&w.store),
        &AuditOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.txs, BLOCKS * TXS_PER_BLOCK);
    assert_eq!(r.tip_hash, w.store.load_tip().unwrap().block_hash);
    println!(
        "audit replay of {} transactions in {} blocks (read, batch signature checks, commit certificates, full re-execution): {:.2} s, {:.0} tx/s",
        r.txs,
        r.blocks,
        r.elapsed_ms as f64 / 1000.0,
        r.txs_per_sec
    );
}
