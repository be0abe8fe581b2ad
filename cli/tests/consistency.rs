//! `govledger consistency`: checkpoints saved from a real store, compared offline. A chain
//! extends its own earlier checkpoints (in either order, through a node or a saved proof
//! file); a checkpoint of another chain built from the same genesis is a conflict, proven
//! from the certified headers alone or from the other chain's own proof; a proof that does
//! not verify, a malformed proof file and a tampered checkpoint are each refused with their
//! own exit code.

mod common;

use common::{StubNode, World, anchor, code, json, run, text, write_json};
use govledger_cli::consistency::{PROOF_FILE_BYTES_MAX, PROOF_HASHES_MAX, ProofFile};
use ledger::hash::Hash;
use ledger::proof::Checkpoint;
use ledger::tx::{GovAction, GovernancePropose, TxBody};
use std::path::{Path, PathBuf};
use std::process::Output;

const CHAIN: &str = "consistency-test";

/// The standard chain (six blocks, a validator added from height 4) and two more blocks:
/// log sizes by height 2, 3, 4, 4, 7, 8, 10, 13.
fn chain() -> World {
    let (mut w, _, _) = World::standard(CHAIN);
    w.block(vec![anchor(b"seven a"), anchor(b"seven b")]);
    w.block(vec![anchor(b"8a"), anchor(b"8b"), anchor(b"8c")]);
    assert_eq!(w.store.load_tip().unwrap().frontier.size(), 13);
    w
}

/// Another chain of the same genesis: one record per block for nine blocks, then six more
/// in block ten (log sizes 1…9, then 15), none of them the standard chain's records.
fn other_chain() -> World {
    let mut w = World::new(CHAIN);
    for i in 0..9u8 {
        w.block(vec![anchor(&[b'f', i])]);
    }
    w.block((0..6u8).map(|i| anchor(&[b'g', i])).collect());
    w
}

fn checkpoint(w: &World, h: u64) -> Checkpoint {
    w.store.checkpoint(&w.genesis, Some(h)).unwrap().unwrap()
}

fn save_cp(w: &World, dir: &Path, h: u64, name: &str) -> PathBuf {
    write_json(dir, name, &checkpoint(w, h))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn consistency(genesis: &Path, a: &Path, b: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["consistency", "--genesis", s(genesis), s(a), s(b)];
    args.extend_from_slice(extra);
    run(&args)
}

/// Stderr as text, asserted to be one line (the CLI's errors are).
fn one_line_error(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(e.trim_end().lines().count(), 1, "one line: {e}");
    assert!(e.starts_with("error: "), "{e}");
    e
}

/// A closed loopback port: any attempt to use the network fails.
const NO_NODE: &str = "http://127.0.0.1:9";

#[test]
fn a_later_checkpoint_is_consistent_in_either_order_through_a_node_and_then_offline() {
    let w = chain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genesis = w.write_genesis(d);
    let old = save_cp(&w, d, 2, "cp-2.json");
    let new = save_cp(&w, d, 8, "cp-8.json");
    let expected_proof = w.store.consistency_proof(3, 13).unwrap();
    let (old_hash, new_hash) = (
        checkpoint(&w, 2).header.header.hash(),
        w.store.load_tip().unwrap().block_hash,
    );
    let node = StubNode::start(w, false);
    let proof_file = d.join("proof-2-8.json");

    // Through the node (not trusted; its proof is checked), saving the proof.
    let o = consistency(
        &genesis,
        &old,
        &new,
        &["--node", &node.url, "--out", s(&proof_file), "--json"],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["result"], "consistent");
    assert_eq!(j["consistent"], true);
    assert_eq!(j["chain_id"], CHAIN);
    assert_eq!(j["swapped"], false);
    assert_eq!(j["old"]["height"], 2);
    assert_eq!(j["old"]["log_size"], 3);
    assert_eq!(j["old"]["block_hash"], old_hash.to_hex());
    assert_eq!(j["new"]["height"], 8);
    assert_eq!(j["new"]["log_size"], 13);
    assert_eq!(j["new"]["block_hash"], new_hash.to_hex());
    assert_eq!(j["proof"]["source"], "node");
    assert_eq!(j["proof"]["from"], node.url);
    assert_eq!(j["proof"]["hashes"], expected_proof.len());
    assert_eq!(j["saved"], s(&proof_file));
    assert!(j["conflict"].is_null() && j["reason"].is_null());

    // The saved file: version 1, lower-case hex, exactly the store's proof.
    let saved = std::fs::read_to_string(&proof_file).unwrap();
    let v: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["kind"], "consistency");
    assert_eq!(v["chain_id"], CHAIN);
    assert_eq!(
        (v["old_size"].as_u64(), v["new_size"].as_u64()),
        (Some(3), Some(13))
    );
    let f = ProofFile::parse(&saved).unwrap();
    assert_eq!(f.proof, expected_proof);
    assert_eq!(saved, saved.to_lowercase(), "lower-case hex only");

    // Offline with the saved proof, files given newest first: no network is touched.
    let o = consistency(
        &genesis,
        &new,
        &old,
        &["--proof", s(&proof_file), "--node", NO_NODE],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let t = text(&o);
    assert!(t.starts_with("CONSISTENT: the ledger at height 8"), "{t}");
    assert!(t.contains("given newest first"), "{t}");
    assert!(t.contains("from the file"), "{t}");
    assert!(
        t.contains("nothing recorded by height 2 was removed, changed or reordered"),
        "{t}"
    );
    let o = consistency(&genesis, &new, &old, &["--proof", s(&proof_file), "--json"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["swapped"], true);
    assert_eq!(j["old"]["height"], 2);
    assert_eq!(j["proof"]["source"], "file");

    // The node in the other order too.
    let o = consistency(&genesis, &new, &old, &["--node", &node.url]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("from the node"), "{}", text(&o));
}

#[test]
fn the_same_block_is_identical_and_equal_logs_need_no_proof() {
    let w = chain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genesis = w.write_genesis(d);
    let a = save_cp(&w, d, 3, "cp-3.json");
    let b = save_cp(&w, d, 3, "cp-3-again.json");
    let out = d.join("p.json");
    let o = consistency(&genesis, &a, &b, &["--out", s(&out)]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).starts_with(
            "IDENTICAL: both files are checkpoints of the same certified block at height 3"
        ),
        "{}",
        text(&o)
    );
    let f = ProofFile::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!((f.old_size, f.new_size, f.proof.len()), (4, 4, 0));
    let o = consistency(&genesis, &a, &a, &["--json", "--proof", s(&out)]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(json(&o)["result"], "identical");

    // Block 4 is empty: heights 3 and 4 have the same log; no proof, no node.
    let c = save_cp(&w, d, 4, "cp-4.json");
    let o = consistency(&genesis, &c, &a, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let t = text(&o);
    assert!(t.starts_with("CONSISTENT"), "{t}");
    assert!(
        t.contains("none needed: both logs have 4 records and the same root"),
        "{t}"
    );
}

#[test]
fn a_proof_file_that_does_not_verify_or_is_malformed_is_refused() {
    let w = chain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genesis = w.write_genesis(d);
    let old = save_cp(&w, d, 2, "cp-2.json");
    let new = save_cp(&w, d, 8, "cp-8.json");
    let good = ProofFile {
        chain_id: CHAIN.into(),
        genesis_hash: w.genesis.hash(),
        old_size: 3,
        new_size: 13,
        proof: w.store.consistency_proof(3, 13).unwrap(),
    };
    assert!(good.proof.len() >= 3);
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ok = write("ok.json", &good.to_json());
    let o = consistency(&genesis, &old, &new, &["--proof", s(&ok)]);
    assert_eq!(code(&o), 0, "{}", text(&o));

    // One hash changed, wherever it is: consistency is not shown (exit 5), and the output
    // says that this alone is no evidence of a fork.
    for i in 0..good.proof.len() {
        let mut bad = good.clone();
        bad.proof[i].0[7] ^= 0x10;
        let p = write("bad.json", &bad.to_json());
        let o = consistency(&genesis, &old, &new, &["--proof", s(&p), "--node", NO_NODE]);
        assert_eq!(code(&o), 5, "hash {i}: {}", text(&o));
        let t = text(&o);
        assert!(t.starts_with("NOT SHOWN CONSISTENT"), "{t}");
        assert!(t.contains("not evidence of a fork by itself"), "{t}");
        let o = consistency(&genesis, &old, &new, &["--proof", s(&p), "--json"]);
        assert_eq!(code(&o), 5);
        let j = json(&o);
        assert_eq!(j["result"], "unproven");
        assert_eq!(j["consistent"], false);
        assert!(j["reason"].as_str().unwrap().contains("root"), "{j}");
        assert!(j["conflict"].is_null());
    }
    // One hash dropped: the wrong length, said as such.
    let mut short = good.clone();
    short.proof.pop();
    let p = write("short.json", &short.to_json());
    let o = consistency(&genesis, &old, &new, &["--proof", s(&p)]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    assert!(text(&o).contains("hashes"), "{}", text(&o));

    // Malformed or foreign files: exit 4, one line naming the file and the problem.
    let good_json: serde_json::Value = serde_json::from_str(&good.to_json()).unwrap();
    let with = |k: &str, v: serde_json::Value| {
        let mut j = good_json.clone();
        j[k] = v;
        j.to_string()
    };
    let mut upper = good_json.clone();
    upper["proof"][0] = good.proof[0].to_hex().to_uppercase().into();
    let many: Vec<String> = vec![good.proof[0].to_hex(); PROOF_HASHES_MAX + 1];
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "extra-field",
            with("signed_by", "me".into()),
            "unknown field `signed_by`",
        ),
        (
            "version-2",
            with("version", 2.into()),
            "version 2 is not supported",
        ),
        (
            "kind",
            with("kind", "inclusion".into()),
            "kind \"inclusion\"",
        ),
        (
            "old-size",
            with("old_size", 4.into()),
            "it proves log sizes 4 → 13",
        ),
        (
            "new-size",
            with("new_size", 12.into()),
            "it proves log sizes 3 → 12",
        ),
        (
            "reversed",
            with("old_size", 14.into()),
            "old_size 14 is larger than new_size 13",
        ),
        (
            "chain",
            with("chain_id", "another-chain".into()),
            "it is for chain \"another-chain\"",
        ),
        (
            "genesis",
            with("genesis_hash", Hash([1; 32]).to_hex().into()),
            "it is for genesis",
        ),
        ("upper", upper.to_string(), "proof[0]"),
        (
            "many",
            with("proof", many.into()),
            "more than the bound of 128",
        ),
        ("not-json", "{\"version\": 1,".into(), "not JSON"),
        (
            "a-checkpoint",
            serde_json::to_string(&checkpoint(&w, 2)).unwrap(),
            "no `kind` field",
        ),
    ];
    for (name, body, expected) in cases {
        // (Named apart from the inputs: "genesis.json" is the genesis.)
        let p = write(&format!("proof-{name}.json"), &body);
        let o = consistency(&genesis, &old, &new, &["--proof", s(&p), "--node", NO_NODE]);
        assert_eq!(code(&o), 4, "{name}: {}", text(&o));
        let e = one_line_error(&o);
        assert!(e.contains(expected), "{name}: {expected:?} not in {e}");
        assert!(
            e.contains(&format!(
                "proof-{name}.json: refused as a consistency proof file"
            )),
            "{e}"
        );
        let o = consistency(&genesis, &old, &new, &["--proof", s(&p), "--json"]);
        let e: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
        assert_eq!(e["exit_code"], 4, "{name}");
    }
    // Unreadable files: exit 6.
    let o = consistency(
        &genesis,
        &old,
        &new,
        &["--proof", s(&d.join("missing.json"))],
    );
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(one_line_error(&o).contains("missing.json"));
    let huge = write("huge.json", &" ".repeat(PROOF_FILE_BYTES_MAX as usize + 1));
    let o = consistency(&genesis, &old, &new, &["--proof", s(&huge)]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(one_line_error(&o).contains("larger than 65536 bytes"));
}

#[test]
fn another_chain_from_the_same_genesis_is_a_conflict() {
    let a = chain();
    let b = other_chain();
    assert_eq!(a.genesis.hash(), b.genesis.hash());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genesis = a.write_genesis(d);

    // Two certified blocks at height 2, by the genesis validators: all four signed both
    // in round 0.
    let a2 = save_cp(&a, d, 2, "a-2.json");
    let b2 = save_cp(&b, d, 2, "b-2.json");
    let o = consistency(&genesis, &a2, &b2, &[]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    let t = text(&o);
    let (ha, hb) = (
        checkpoint(&a, 2).header.header.hash(),
        checkpoint(&b, 2).header.header.hash(),
    );
    assert!(t.starts_with("CONFLICT"), "{t}");
    assert!(
        t.contains("two different blocks are certified at height 2"),
        "{t}"
    );
    assert!(t.contains(&ha.to_hex()) && t.contains(&hb.to_hex()), "{t}");
    assert!(t.contains("more than a third of the voting power"), "{t}");
    assert!(
        t.contains("4 validator(s) holding 4 of its 4 voting power"),
        "{t}"
    );
    assert!(t.contains("double-signing"), "{t}");
    let o = consistency(&genesis, &b2, &a2, &["--json"]);
    assert_eq!(code(&o), 5);
    let j = json(&o);
    assert_eq!(j["result"], "conflict");
    assert_eq!(j["consistent"], false);
    assert_eq!(j["conflict"]["kind"], "fork");
    assert_eq!(j["conflict"]["height"], 2);
    assert_eq!(j["conflict"]["old_block_hash"], hb.to_hex());
    assert_eq!(j["conflict"]["new_block_hash"], ha.to_hex());
    assert_eq!(j["conflict"]["signed_both"]["power"], 4);
    assert_eq!(j["conflict"]["signed_both"]["total_power"], 4);
    assert_eq!(
        j["conflict"]["signed_both"]["validators"]
            .as_array()
            .unwrap()
            .len(),
        4
    );

    // Height 5: the standard chain's block is certified by five validators, the other's by
    // the genesis four: the sets differ, the chains diverged lower.
    let a5 = save_cp(&a, d, 5, "a-5.json");
    let b5 = save_cp(&b, d, 5, "b-5.json");
    let o = consistency(&genesis, &a5, &b5, &["--json"]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["conflict"]["kind"], "fork");
    assert!(j["conflict"]["signed_both"].is_null());
    assert!(
        j["conflict"]["proves"]
            .as_str()
            .unwrap()
            .contains("different validator sets"),
        "{j}"
    );

    // A later header with a smaller log (height 9: 9 records; height 8 of the standard
    // chain: 13).
    let a8 = save_cp(&a, d, 8, "a-8.json");
    let b9 = save_cp(&b, d, 9, "b-9.json");
    let o = consistency(&genesis, &a8, &b9, &["--json", "--node", NO_NODE]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["conflict"]["kind"], "log_shrank");
    assert!(
        j["conflict"]["proves"]
            .as_str()
            .unwrap()
            .contains("forked at or below height 8")
    );

    // Logs of one size (4 records: height 3 and height 4) with different roots.
    let a3 = save_cp(&a, d, 3, "a-3.json");
    let b4 = save_cp(&b, d, 4, "b-4.json");
    let o = consistency(&genesis, &b4, &a3, &["--json"]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    assert_eq!(json(&o)["conflict"]["kind"], "same_size_roots_differ");

    // The other chain's own node, asked for its proof from 3 to 6 records: the proof
    // reaches its certified root and shows that its first 3 records are not those of the
    // old checkpoint. Saved, it shows the same offline.
    let b6 = save_cp(&b, d, 6, "b-6.json");
    // The other chain's log has 3 records at height 3.
    let prefix_root = checkpoint(&b, 3).header.header.log_root;
    let node = StubNode::start(b, false);
    let evidence = d.join("evidence.json");
    let o = consistency(
        &genesis,
        &a2,
        &b6,
        &["--node", &node.url, "--out", s(&evidence), "--json"],
    );
    assert_eq!(code(&o), 5, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["conflict"]["kind"], "prefix_differs");
    assert_eq!(j["conflict"]["height"], 2);
    assert_eq!(j["conflict"]["new_prefix_root"], prefix_root.to_hex());
    assert_eq!(j["saved"], s(&evidence));
    let o = consistency(&genesis, &a2, &b6, &["--proof", s(&evidence)]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("the first 3 records of that log have root"),
        "{t}"
    );
    assert!(t.contains("forked at or below height 2"), "{t}");
}

#[test]
fn a_fork_below_both_checkpoints_is_found_in_their_validator_changes() {
    // Both chains add the fifth validator in block 2 (announced by the header at height
    // 3), with different records before it.
    let a = chain();
    let mut b = World::new(CHAIN);
    b.block(vec![anchor(b"another first block")]);
    b.block(vec![TxBody::GovernancePropose(GovernancePropose {
        action: GovAction::AddValidator {
            validator: common::validator(&b.keys[4]),
        },
        description: "add the fifth validator".into(),
    })]);
    b.block(vec![anchor(b"3")]);
    b.block(vec![]);
    b.block(vec![anchor(b"5")]);
    let cp_a = checkpoint(&a, 6);
    let cp_b = checkpoint(&b, 5);
    assert_eq!(cp_a.validator_changes.len(), 1);
    assert_eq!(cp_b.validator_changes.len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genesis = a.write_genesis(d);
    let pa = write_json(d, "a-6.json", &cp_a);
    let pb = write_json(d, "b-5.json", &cp_b);
    let o = consistency(&genesis, &pa, &pb, &["--node", NO_NODE]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("two different blocks are certified at height 3"),
        "{t}"
    );
    assert!(
        t.contains("the header announcing the validator set in force from height 4"),
        "{t}"
    );
    assert!(t.contains("double-signing"), "{t}");
}

#[test]
fn tampered_or_foreign_checkpoints_are_refused_naming_the_file() {
    let w = chain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genesis = w.write_genesis(d);
    let good = save_cp(&w, d, 2, "cp-2.json");
    let cp8 = checkpoint(&w, 8);

    let mut forged = cp8.clone();
    forged.header.header.time_ms += 1;
    forged.header.bytes.0 = forged.header.header.encode();
    let mut decoded_only = cp8.clone();
    decoded_only.header.header.log_size += 1;
    let mut few = cp8.clone();
    few.header.commit.signatures.truncate(2);
    let mut no_change = cp8.clone();
    no_change.validator_changes.clear();
    let other = World::new("another-chain");
    let mut other_chain = other;
    other_chain.block(vec![anchor(b"x")]);
    let foreign = checkpoint(&other_chain, 1);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "forged",
            serde_json::to_string(&forged).unwrap(),
            "commit certificate check failed",
        ),
        (
            "decoded",
            serde_json::to_string(&decoded_only).unwrap(),
            "header check failed",
        ),
        (
            "few",
            serde_json::to_string(&few).unwrap(),
            "more than two thirds is needed",
        ),
        (
            "no-change",
            serde_json::to_string(&no_change).unwrap(),
            "validator-set change check failed",
        ),
        (
            "foreign",
            serde_json::to_string(&foreign).unwrap(),
            "another genesis",
        ),
        ("not-json", "checkpoint".into(), "not a checkpoint"),
        (
            "a-proof-file",
            "{\"version\": 1, \"kind\": \"consistency\"}".into(),
            "not a checkpoint",
        ),
    ];
    for (name, body, expected) in cases {
        let p = d.join(format!("{name}.json"));
        std::fs::write(&p, body).unwrap();
        // As either file.
        for o in [
            consistency(&genesis, &good, &p, &["--node", NO_NODE]),
            consistency(&genesis, &p, &good, &["--node", NO_NODE]),
        ] {
            assert_eq!(code(&o), 4, "{name}: {}", text(&o));
            let e = one_line_error(&o);
            assert!(e.contains(&format!("{name}.json: ")), "{e}");
            assert!(e.contains(expected), "{name}: {expected:?} not in {e}");
        }
    }
    let o = consistency(&genesis, &good, &d.join("nowhere.json"), &[]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(one_line_error(&o).contains("nowhere.json"));
    // The wrong genesis refuses both.
    let g2 = d.join("g2.json");
    let mut g = w.genesis.clone();
    g.genesis_time_ms += 1;
    std::fs::write(&g2, g.to_json()).unwrap();
    let o = consistency(&g2, &good, &good, &["--json"]);
    assert_eq!(code(&o), 4, "{}", text(&o));
    let e: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(e["exit_code"], 4);
    assert!(
        e["message"].as_str().unwrap().contains("another genesis"),
        "{e}"
    );
}

#[test]
fn without_a_proof_source_or_with_a_node_that_cannot_show_it() {
    let w = chain();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let genesis = w.write_genesis(d);
    let old = save_cp(&w, d, 2, "cp-2.json");
    let new = save_cp(&w, d, 8, "cp-8.json");

    // Different log sizes and neither --proof nor --node: a usage error.
    let o = consistency(&genesis, &old, &new, &[]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    let e = one_line_error(&o);
    assert!(
        e.contains("--proof FILE") && e.contains("--node URL"),
        "{e}"
    );
    // An unreachable node: exit 2.
    let o = consistency(&genesis, &old, &new, &["--node", NO_NODE]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    // --out must not overwrite an input.
    let before = std::fs::read(&old).unwrap();
    let o = consistency(&genesis, &old, &new, &["--node", NO_NODE, "--out", s(&old)]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(one_line_error(&o).contains("is one of the input files"));
    assert_eq!(std::fs::read(&old).unwrap(), before);

    // A node of another chain (same genesis, longer log) answers with its own proof: it
    // does not reach the new checkpoint's root, so nothing is shown, and nothing is saved.
    let node = StubNode::start(other_chain(), false);
    let out = d.join("never.json");
    let o = consistency(
        &genesis,
        &old,
        &new,
        &["--node", &node.url, "--out", s(&out)],
    );
    assert_eq!(code(&o), 5, "{}", text(&o));
    let t = text(&o);
    assert!(t.starts_with("NOT SHOWN CONSISTENT"), "{t}");
    assert!(t.contains("not evidence of a fork by itself"), "{t}");
    assert!(!out.exists());
}
