//! The binary against a stub of the node API (served from a real store): writing with a
//! nonce race, refusals, an unreachable node, queries, proof + offline verify, checkpoint
//! + audit. The same flows run against a real dev node in the end-to-end suite.

mod common;

use common::{StubNode, World, anchor, code, json, run, text};
use ledger::hash::hash_document;

fn stub(bad_nonce_first: bool) -> (StubNode, tempfile::TempDir, String, String) {
    let (w, _, _) = World::standard("http-test");
    let dir = tempfile::tempdir().unwrap();
    let genesis = w.write_genesis(dir.path()).display().to_string();
    let key = w.write_clerk_key(dir.path()).display().to_string();
    (StubNode::start(w, bad_nonce_first), dir, genesis, key)
}

#[test]
fn anchor_waits_for_commit_and_survives_a_nonce_race() {
    let (node, dir, _, key) = stub(true);
    let doc = dir.path().join("minutes.txt");
    std::fs::write(&doc, b"council minutes").unwrap();
    let o = run(&[
        "anchor",
        doc.to_str().unwrap(),
        "--label",
        "minutes",
        "--node",
        &node.url,
        "--key",
        &key,
        "--wait",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["status"], "committed");
    assert_eq!(j["kind"], "anchor");
    assert_eq!(
        j["document_hash"],
        hash_document(b"council minutes").to_hex()
    );
    // Block 7 went to the racing client; ours is block 8.
    assert_eq!(j["height"], 8);
    assert_eq!(
        *node.submissions.lock().unwrap(),
        2,
        "re-signed once after bad_nonce"
    );
    let w = node.world.lock().unwrap();
    let id = ledger::hash::Hash::from_hex(j["id"].as_str().unwrap()).unwrap();
    let loc = w.store.tx_location(&id).unwrap().unwrap();
    assert_eq!(j["leaf_index"], loc.leaf_index);
}

#[test]
fn the_nodes_refusal_is_shown_with_its_reason() {
    let (node, _dir, _, key) = stub(false);
    let h = hash_document(b"deed").to_hex();
    let o = run(&[
        "land", "transfer", "--parcel", "P-404", "--from", "alice", "--to", "bob", "--deed", &h,
        "--node", &node.url, "--key", &key,
    ]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    assert!(text(&o).contains("parcel_not_found"), "{}", text(&o));
    // And as JSON on stderr.
    let o = run(&[
        "land", "transfer", "--parcel", "P-1", "--from", "mallory", "--to", "bob", "--deed", &h,
        "--node", &node.url, "--key", &key, "--json",
    ]);
    assert_eq!(code(&o), 3);
    let e: serde_json::Value = serde_json::from_slice(&o.stderr).unwrap();
    assert_eq!(e["error"], "refused");
    assert_eq!(e["reason"], "not_current_owner");
    assert_eq!(e["exit_code"], 3);
    // Without --wait the record is accepted as pending.
    let o = run(&[
        "land", "transfer", "--parcel", "P-1", "--from", "alice", "--to", "bob", "--deed", &h,
        "--node", &node.url, "--key", &key,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("submitted land_transfer"), "{}", text(&o));
}

#[test]
fn unreachable_nodes_missing_keys_and_unknown_records_have_their_codes() {
    let (node, dir, _, key) = stub(false);
    let o = run(&[
        "approval",
        "revoke",
        "--id",
        "A",
        "--reason",
        "r",
        "--node",
        "http://127.0.0.1:9",
        "--key",
        &key,
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("cannot reach the node"), "{}", text(&o));
    let o = run(&[
        "approval", "revoke", "--id", "A", "--reason", "r", "--node", &node.url,
    ]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(text(&o).contains("--key"), "{}", text(&o));
    let missing = dir.path().join("nope.key");
    let o = run(&[
        "approval",
        "revoke",
        "--id",
        "A",
        "--reason",
        "r",
        "--node",
        &node.url,
        "--key",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    let o = run(&["query", "tx", &"ab".repeat(32), "--node", &node.url]);
    assert_eq!(code(&o), 7, "{}", text(&o));
    let o = run(&["query", "tx", "not-a-hash", "--node", &node.url]);
    assert_eq!(code(&o), 1, "{}", text(&o));
}

#[test]
fn queries_print_records_and_pages() {
    let (node, dir, _, _) = stub(false);
    let (doc_id, more) = {
        let mut w = node.world.lock().unwrap();
        let id = w.block(vec![
            anchor(b"shared"),
            anchor(b"shared"),
            anchor(b"shared"),
        ])[0];
        (id, w.block(vec![anchor(b"shared")])[0])
    };
    let o = run(&["query", "tx", &doc_id.to_hex(), "--node", &node.url]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("status: committed"), "{t}");
    assert!(t.contains("anchor  by city"), "{t}");

    let f = dir.path().join("shared.txt");
    std::fs::write(&f, b"shared").unwrap();
    let o = run(&[
        "query",
        "anchor",
        "--file",
        f.to_str().unwrap(),
        "--limit",
        "2",
        "--node",
        &node.url,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let t = text(&o);
    assert_eq!(t.matches("[leaf ").count(), 2, "{t}");
    let next = t
        .lines()
        .find_map(|l| l.split("more with --after ").nth(1))
        .expect("a cursor")
        .trim()
        .to_string();
    let o = run(&[
        "query",
        "anchor",
        "--hash",
        &hash_document(b"shared").to_hex(),
        "--after",
        &next,
        "--limit",
        "2",
        "--node",
        &node.url,
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["records"].as_array().unwrap().len(), 2);
    assert_eq!(j["records"][1]["id"], more.to_hex());
    assert!(j["next"].is_null());
}

#[test]
fn proof_then_offline_verify() {
    let (node, dir, genesis, _) = stub(false);
    let doc_id = {
        let mut w = node.world.lock().unwrap();
        w.block(vec![anchor(b"permit text")])[0]
    };
    let out = dir.path().join("proof.json");
    let o = run(&[
        "proof",
        &doc_id.to_hex(),
        "--out",
        out.to_str().unwrap(),
        "--node",
        &node.url,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let doc = dir.path().join("permit.txt");
    std::fs::write(&doc, b"permit text").unwrap();
    let o = run(&[
        "verify",
        out.to_str().unwrap(),
        "--genesis",
        &genesis,
        "--file",
        doc.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("the document (blake3"), "{}", text(&o));
    let o = run(&["proof", &"cd".repeat(32), "--node", &node.url]);
    assert_eq!(code(&o), 7, "{}", text(&o));
}

#[test]
fn checkpoint_then_audit_over_http() {
    let (node, dir, genesis, _) = stub(false);
    let cp = dir.path().join("cp.json");
    let o = run(&[
        "checkpoint",
        "--out",
        cp.to_str().unwrap(),
        "--node",
        &node.url,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    {
        let mut w = node.world.lock().unwrap();
        for i in 0..3u8 {
            w.block(vec![anchor(&[i]), anchor(&[i, i])]);
        }
    }
    let o = run(&[
        "audit",
        "--genesis",
        &genesis,
        "--checkpoint",
        cp.to_str().unwrap(),
        "--node",
        &node.url,
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["tip_height"], 9);
    assert_eq!(j["txs"], 14);
    assert_eq!(j["checkpoint"]["height"], 6);
    let o = run(&["audit", "--genesis", &genesis, "--node", &node.url]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("audit PASSED"), "{}", text(&o));

    // Against another chain's genesis.
    let other = World::new("elsewhere");
    let other_dir = tempfile::tempdir().unwrap();
    let g2 = other.write_genesis(other_dir.path());
    let o = run(&[
        "audit",
        "--genesis",
        g2.to_str().unwrap(),
        "--node",
        &node.url,
        "--json",
    ]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    assert_eq!(json(&o)["check"], "genesis");

    // A store altered behind the node's back.
    {
        let mut w = node.world.lock().unwrap();
        let cb = w.store.committed_block(8).unwrap().unwrap();
        let mut stx = cb.block.txs[0].clone();
        stx.tx.created_at_ms += 1;
        w.tamper_tx_bytes(cb.block.header.log_size - 2, &stx.encode());
    }
    let o = run(&["audit", "--genesis", &genesis, "--node", &node.url]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    assert!(
        text(&o).contains("AUDIT FAILED: audit failed at height 8"),
        "{}",
        text(&o)
    );
}

/// `govledger bench-proofs` for one second on 2 connections, verifying against `genesis`.
fn bench_proofs(
    node: &StubNode,
    ids: &std::path::Path,
    genesis: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut a = vec![
        "bench-proofs",
        "--nodes",
        &node.url,
        "--ids",
        ids.to_str().unwrap(),
        "--duration",
        "1",
        "--warmup",
        "0",
        "--concurrency",
        "2",
        "--genesis",
        genesis,
        "--quiet",
        "--json",
    ];
    a.extend_from_slice(extra);
    run(&a)
}

#[test]
fn bench_proofs_serves_and_verifies_every_bundle() {
    let (node, dir, genesis, _) = stub(false);
    let mut ids = Vec::new();
    {
        let mut w = node.world.lock().unwrap();
        for i in 0..3u8 {
            ids.extend(w.block(vec![anchor(&[i]), anchor(&[i, 1]), anchor(&[i, 2])]));
        }
    }
    let unknown = "ef".repeat(32);
    let ids_file = dir.path().join("acks.txt");
    let mut lines: Vec<String> = ids.iter().map(|id| id.to_hex()).collect();
    lines.push(unknown);
    std::fs::write(&ids_file, lines.join("\n") + "\n").unwrap();
    let args = |genesis: &str| bench_proofs(&node, &ids_file, genesis, &[]);
    let o = args(&genesis);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let j = json(&o);
    let serve = &j["serve"];
    assert!(serve["ok"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(serve["failed"], 0, "{j}");
    assert!(serve["bundles_per_s"].as_f64().unwrap() > 0.0, "{j}");
    let verify = &j["verify"];
    assert_eq!(verify["bundles"], serve["ok"], "{j}");
    assert!(verify["blocks"].as_u64().unwrap() >= 1, "{j}");
    assert!(verify["batched_per_s"].as_f64().unwrap() > 0.0, "{j}");

    // Bundles of this chain do not verify against another chain's genesis.
    let other = World::new("elsewhere");
    let other_dir = tempfile::tempdir().unwrap();
    let g2 = other.write_genesis(other_dir.path());
    let o = args(g2.to_str().unwrap());
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("does not verify"), "{}", text(&o));

    // A file that is not a list of ids.
    std::fs::write(&ids_file, "not-an-id\n").unwrap();
    let o = args(&genesis);
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("line 1"), "{}", text(&o));
}

/// `bench-proofs --status`: the subjects are found from the records (approvals; anchors name
/// none), their status bundles served and every one verified offline both ways; against
/// another chain's genesis they do not verify.
#[test]
fn bench_proofs_status_serves_and_verifies_status_bundles() {
    let (node, dir, genesis, _) = stub(false);
    let issue = |id: &str| {
        ledger::tx::TxBody::ApprovalIssue(ledger::tx::ApprovalIssue {
            approval_id: id.into(),
            kind: "business-licence".into(),
            subject: "91310000MA1K000001".into(),
            decision: ledger::tx::Decision::Granted,
            document_hash: ledger::hash::Hash([7; 32]),
            valid_from_ms: 0,
            valid_until_ms: None,
            note: String::new(),
        })
    };
    let mut ids = Vec::new();
    {
        let mut w = node.world.lock().unwrap();
        for i in 0..3u8 {
            ids.extend(w.block(vec![
                issue(&format!("LIC-{i}-a")),
                anchor(&[i]),
                issue(&format!("LIC-{i}-b")),
            ]));
        }
    }
    let ids_file = dir.path().join("acks.txt");
    let lines: Vec<String> = ids.iter().map(|id| id.to_hex()).collect();
    std::fs::write(&ids_file, lines.join("\n") + "\n").unwrap();
    let args = |genesis: &str| bench_proofs(&node, &ids_file, genesis, &["--status"]);
    let o = args(&genesis);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let j = json(&o);
    assert_eq!(j["bundles"], "status", "{j}");
    assert_eq!(
        j["ids"], 6,
        "six approvals, the anchors name no subject: {j}"
    );
    let serve = &j["serve"];
    assert!(serve["ok"].as_u64().unwrap() > 0, "{j}");
    assert_eq!(serve["failed"], 0, "{j}");
    assert_eq!(serve["not_found"], 0, "{j}");
    let verify = &j["verify"];
    assert_eq!(verify["bundles"], serve["ok"], "{j}");
    assert!(verify["cached_per_s"].as_f64().unwrap() > 0.0, "{j}");

    let other = World::new("elsewhere");
    let other_dir = tempfile::tempdir().unwrap();
    let g2 = other.write_genesis(other_dir.path());
    let o = args(g2.to_str().unwrap());
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("does not verify"), "{}", text(&o));
}
