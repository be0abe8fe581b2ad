//! `govledger verify`: offline verification of proof bundles built from a real store, and
//! every kind of tampering named by its step.

mod common;

use common::{World, code, json, run, text, verify_cli, write_json};
use govledger_cli::verify::{FailedStep, verify_bundle};
use ledger::hash::hash_document;
use ledger::proof::{ProofBundle, Step};
use std::path::{Path, PathBuf};

struct Files {
    _dir: tempfile::TempDir,
    genesis: PathBuf,
    bundle: ProofBundle,
    world: World,
    dir: PathBuf,
}

/// A bundle for the `DOC2` anchor of the standard chain, which needs one validator-set
/// change.
fn files() -> Files {
    let (world, _, b) = World::standard("verify-test");
    let dir = tempfile::tempdir().unwrap();
    let genesis = world.write_genesis(dir.path());
    let bundle = world
        .store
        .proof_bundle(&world.genesis, &b)
        .unwrap()
        .unwrap();
    assert_eq!(bundle.validator_changes.len(), 1);
    Files {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        genesis,
        bundle,
        world,
    }
}

fn write_bundle(dir: &Path, name: &str, b: &ProofBundle) -> PathBuf {
    write_json(dir, name, b)
}

#[test]
fn a_valid_bundle_verifies_with_its_document() {
    let f = files();
    let p = write_bundle(&f.dir, "proof.json", &f.bundle);
    let o = verify_cli(&p, &f.genesis, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("VALID"), "{}", text(&o));

    let doc = f.dir.join("doc2.pdf");
    std::fs::write(&doc, b"DOC2").unwrap();
    let o = verify_cli(&p, &f.genesis, &["--file", doc.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["valid"], true);
    assert_eq!(j["height"], 5);
    assert_eq!(j["kind"], "anchor");
    assert_eq!(j["validator_changes"], 1);
    assert_eq!(j["document_hash"], hash_document(b"DOC2").to_hex());
    assert_eq!(j["genesis_hash"], f.world.genesis.hash().to_hex());
}

#[test]
fn a_changed_document_is_refused() {
    let f = files();
    let p = write_bundle(&f.dir, "proof.json", &f.bundle);
    let doc = f.dir.join("doc2.pdf");
    std::fs::write(&doc, b"DOC2 (edited)").unwrap();
    let o = verify_cli(&p, &f.genesis, &["--file", doc.to_str().unwrap()]);
    assert_eq!(code(&o), 4, "{}", text(&o));
    assert!(
        text(&o).contains("document hash check failed"),
        "{}",
        text(&o)
    );
    let o = verify_cli(&p, &f.genesis, &["--file", doc.to_str().unwrap(), "--json"]);
    assert_eq!(code(&o), 4);
    assert_eq!(json(&o)["valid"], false);
    assert_eq!(json(&o)["step"], "document_hash");
}

#[test]
fn the_wrong_genesis_is_refused() {
    let f = files();
    let p = write_bundle(&f.dir, "proof.json", &f.bundle);
    let other = World::new("another-chain");
    let other_dir = tempfile::tempdir().unwrap();
    let g2 = other.write_genesis(other_dir.path());
    let o = verify_cli(&p, &g2, &["--json"]);
    assert_eq!(code(&o), 4, "{}", text(&o));
    assert_eq!(json(&o)["step"], "genesis");

    // Same chain id, one member more: another trust root.
    let mut g3 = f.world.genesis.clone();
    g3.members[0].name = "someone else".into();
    let p3 = f.dir.join("g3.json");
    std::fs::write(&p3, g3.to_json()).unwrap();
    let o = verify_cli(&p, &p3, &[]);
    assert_eq!(code(&o), 4);
    assert!(text(&o).contains("genesis check failed"), "{}", text(&o));
}

#[test]
fn tampering_with_each_part_names_its_step() {
    let f = files();
    let good = &f.bundle;
    let cases: Vec<(&str, ProofBundle, &str)> = vec![
        (
            "record",
            {
                let mut t = good.clone();
                let n = t.record.tx_bytes.0.len();
                t.record.tx_bytes.0[n - 3] ^= 1;
                t
            },
            "record_content",
        ),
        (
            "path",
            {
                let mut t = good.clone();
                t.inclusion.path[0].0[0] ^= 0x80;
                t
            },
            "inclusion",
        ),
        (
            "header",
            {
                let mut t = good.clone();
                t.header.bytes.0[20] ^= 1;
                t
            },
            "header",
        ),
        (
            "signature",
            {
                let mut t = good.clone();
                t.header.commit.signatures[1].signature.0[9] ^= 1;
                t
            },
            "commit_certificate",
        ),
        (
            "validator set",
            {
                let mut t = good.clone();
                let mut vals = t.validator_changes[0].validators.validators().to_vec();
                vals[0].power = 9;
                t.validator_changes[0].validators = ledger::ValidatorSet::new(vals).unwrap();
                t
            },
            "validator_set_change",
        ),
    ];
    for (name, bundle, step) in cases {
        let p = write_bundle(&f.dir, &format!("{}.json", name.replace(' ', "-")), &bundle);
        let o = verify_cli(&p, &f.genesis, &["--json"]);
        assert_eq!(code(&o), 4, "{name}: {}", text(&o));
        assert_eq!(json(&o)["step"], step, "{name}");
        let o = verify_cli(&p, &f.genesis, &[]);
        assert!(text(&o).starts_with("INVALID: "), "{name}: {}", text(&o));
    }
}

#[test]
fn every_record_and_header_byte_is_covered() {
    // The library path of the same verifier: flip bytes all over the record and header.
    let f = files();
    let g = &f.world.genesis;
    let good = serde_json::to_string(&f.bundle).unwrap();
    verify_bundle(&good, g, None).unwrap();
    for pos in (0..f.bundle.record.tx_bytes.0.len()).step_by(5) {
        let mut t = f.bundle.clone();
        t.record.tx_bytes.0[pos] ^= 0x04;
        let e = verify_bundle(&serde_json::to_string(&t).unwrap(), g, None).unwrap_err();
        assert_eq!(
            e.step,
            FailedStep::Ledger(Step::RecordContent),
            "byte {pos}"
        );
    }
    for pos in (0..f.bundle.header.bytes.0.len()).step_by(5) {
        let mut t = f.bundle.clone();
        t.header.bytes.0[pos] ^= 0x04;
        let e = verify_bundle(&serde_json::to_string(&t).unwrap(), g, None).unwrap_err();
        assert_eq!(e.step, FailedStep::Ledger(Step::Header), "byte {pos}");
    }
    // A record that names no document cannot vouch for one.
    let gov_id = {
        let cb = f.world.store.committed_block(2).unwrap().unwrap();
        cb.block.txs[0].id()
    };
    let gov = f.world.store.proof_bundle(g, &gov_id).unwrap().unwrap();
    let e = verify_bundle(
        &serde_json::to_string(&gov).unwrap(),
        g,
        Some(hash_document(b"anything")),
    )
    .unwrap_err();
    assert_eq!(e.step, FailedStep::Ledger(Step::DocumentHash));
}

#[test]
fn unreadable_inputs_are_told_apart_from_invalid_bundles() {
    let f = files();
    let p = write_bundle(&f.dir, "proof.json", &f.bundle);
    // Not a bundle at all: verification fails at the format step.
    let junk = f.dir.join("junk.json");
    std::fs::write(&junk, "{\"version\": 1}").unwrap();
    let o = verify_cli(&junk, &f.genesis, &["--json"]);
    assert_eq!(code(&o), 4, "{}", text(&o));
    assert_eq!(json(&o)["step"], "format");
    std::fs::write(&junk, [0xff, 0xfe, 0x00]).unwrap();
    let o = verify_cli(&junk, &f.genesis, &["--json"]);
    assert_eq!(code(&o), 4, "{}", text(&o));
    assert_eq!(json(&o)["step"], "format");
    // Missing files are local errors.
    let o = verify_cli(&f.dir.join("missing.json"), &f.genesis, &[]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    let o = verify_cli(&p, &f.dir.join("missing-genesis.json"), &[]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    let o = verify_cli(&p, &f.genesis, &["--file", "/nonexistent/document.pdf"]);
    assert_eq!(code(&o), 6, "{}", text(&o));
}

#[test]
fn a_missing_file_is_reported_once_not_twice() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let missing = missing.to_str().unwrap();
    let o = run(&["verify", "--genesis", missing, missing]);
    assert_ne!(code(&o), 0);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    let reason = std::io::Error::from(std::io::ErrorKind::NotFound).to_string();
    let os = "(os error 2)";
    assert!(stderr.contains(os), "{stderr}");
    assert_eq!(stderr.matches(os).count(), 1, "said twice: {stderr}");
    assert!(stderr.lines().count() == 1, "one line: {stderr} ({reason})");
}
