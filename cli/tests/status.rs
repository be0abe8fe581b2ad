//! `govledger verify` of status bundles (proof format 2) built from a real store: what it
//! says, its exit codes (0 in force, 8 proven not in force, 4 invalid), `--max-age`, and
//! bundles that lie.

mod common;

use common::verify_cli as verify;
use common::{World, code, json, text, write_json};
use govledger_cli::verify::verify_any;
use ledger::hash::Hash;
use ledger::status::{StatusBundle, Subject};
use ledger::tx::*;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, b: &StatusBundle) -> PathBuf {
    write_json(dir, name, b)
}

fn issue(id: &str, until: Option<u64>) -> TxBody {
    TxBody::ApprovalIssue(ApprovalIssue {
        approval_id: id.into(),
        kind: "business-licence".into(),
        subject: "91310000MA1K000001".into(),
        decision: Decision::Granted,
        document_hash: Hash([7; 32]),
        valid_from_ms: 0,
        valid_until_ms: until,
        note: String::new(),
    })
}

#[test]
fn status_bundles_say_what_is_in_force_and_refuse_lies() {
    let (mut w, _, _) = World::standard("status-test");
    w.block(vec![issue("LIC-1", None), issue("LIC-OLD", Some(5_000))]);
    w.block(vec![TxBody::ApprovalRevoke(ApprovalRevoke {
        approval_id: "LIC-1".into(),
        reason: "obtained by fraud".into(),
    })]);
    w.block(vec![issue("LIC-2", None)]);
    let dir = tempfile::tempdir().unwrap();
    let genesis = w.write_genesis(dir.path());
    let bundle = |s: Subject| {
        w.store
            .status_bundle(&w.genesis, &s, 1000)
            .unwrap()
            .unwrap()
    };

    // Valid and in force: exit 0, in plain words, with the whole history.
    let ok = write(
        dir.path(),
        "lic2.json",
        &bundle(Subject::Approval("LIC-2".into())),
    );
    let o = verify(&ok, &genesis, &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("approval LIC-2") && t.contains("VALID, not revoked"),
        "{t}"
    );
    assert!(t.contains("history COMPLETE: 1 record"), "{t}");
    // The validator set changed once (block 2 of the standard chain): the bundle follows it.
    assert!(t.contains("following 1 validator-set change"), "{t}");
    let j = json(&verify(&ok, &genesis, &["--json"]));
    assert_eq!(j["valid"], true);
    assert_eq!(j["in_force"], true);

    // Valid proofs of what is not in force: revoked, expired, absent. Exit 8.
    for (id, words) in [
        ("LIC-1", "REVOKED"),
        ("LIC-OLD", "EXPIRED"),
        ("LIC-NONE", "NO SUCH APPROVAL"),
    ] {
        let p = write(dir.path(), "x.json", &bundle(Subject::Approval(id.into())));
        let o = verify(&p, &genesis, &[]);
        assert_eq!(code(&o), 8, "{id}: {}", text(&o));
        assert!(text(&o).contains(words), "{id}: {}", text(&o));
    }
    let revoked = write(
        dir.path(),
        "lic1.json",
        &bundle(Subject::Approval("LIC-1".into())),
    );
    assert!(text(&verify(&revoked, &genesis, &[])).contains("revoked LIC-1: obtained by fraud"));

    // --max-age: on the command line (these blocks are not older than an hour), and with
    // the reader's clock two hours after the block.
    assert_eq!(code(&verify(&ok, &genesis, &["--max-age", "1h"])), 0);
    let text_ok = std::fs::read_to_string(&ok).unwrap();
    let at = w.store.stored_tip().unwrap().time_ms;
    let hour = 3_600_000;
    let verdict = |now| verify_any(&text_ok, &w.genesis, None, Some(hour), now);
    assert!(verdict(at + hour / 2).is_ok());
    let e = verdict(at + 2 * hour).unwrap_err();
    assert_eq!(e.step.code(), "age", "{e}");

    // Lies: a revoked approval shown as the valid one's state; the validator set changed
    // without its announcement; another genesis; an unknown field.
    let mut lie = bundle(Subject::Approval("LIC-1".into()));
    lie.state[0] = bundle(Subject::Approval("LIC-2".into())).state[0].clone();
    let o = verify(&write(dir.path(), "lie.json", &lie), &genesis, &["--json"]);
    assert_eq!(
        (code(&o), json(&o)["step"].clone()),
        (4, "state_proof".into())
    );
    let mut lie = bundle(Subject::Approval("LIC-2".into()));
    lie.validator_changes.clear();
    let o = verify(&write(dir.path(), "lie.json", &lie), &genesis, &["--json"]);
    assert_eq!(
        (code(&o), json(&o)["step"].clone()),
        (4, "validator_set_change".into())
    );
    let mut v = serde_json::to_value(bundle(Subject::Approval("LIC-2".into()))).unwrap();
    v["header"]["note"] = "trust me".into();
    let p = dir.path().join("extra.json");
    std::fs::write(&p, v.to_string()).unwrap();
    let o = verify(&p, &genesis, &["--json"]);
    assert_eq!((code(&o), json(&o)["step"].clone()), (4, "format".into()));
}

/// A format-1 bundle whose decoded record shows a field no signed byte backs is refused
/// (the JSON of `record.tx` must be exactly what `tx_bytes` decode to).
#[test]
fn a_record_bundle_with_an_unbacked_field_is_refused() {
    let (w, a, _) = World::standard("status-test-v1");
    let dir = tempfile::tempdir().unwrap();
    let genesis = w.write_genesis(dir.path());
    let b = w.store.proof_bundle(&w.genesis, &a).unwrap().unwrap();
    let mut v = serde_json::to_value(&b).unwrap();
    let p = dir.path().join("ok.json");
    std::fs::write(&p, v.to_string()).unwrap();
    assert_eq!(code(&verify(&p, &genesis, &[])), 0);
    for at in ["/record/tx/tx/body/anchor", "/header/header"] {
        let mut bad = v.clone();
        bad.pointer_mut(at)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert("approved_by_minister".into(), true.into());
        std::fs::write(&p, bad.to_string()).unwrap();
        let o = verify(&p, &genesis, &["--json"]);
        assert_eq!(code(&o), 4, "{at}: {}", text(&o));
        assert_eq!(json(&o)["step"], "format", "{at}");
    }
    v["version"] = 7.into();
    std::fs::write(&p, v.to_string()).unwrap();
    let o = verify(&p, &genesis, &["--json"]);
    assert_eq!((code(&o), json(&o)["step"].clone()), (4, "genesis".into()));
}
