//! Status bundles from a real store: what they prove, pages, and tampering of every field.

use super::*;
use crate::chain::build_block;
use crate::crypto::SecretKey;
use crate::execute::VerifiedTx;
use crate::store::Store;
use crate::tx::*;
use crate::vote::{Vote, VoteType};

struct World {
    genesis: Genesis,
    validators: Vec<SecretKey>,
    clerk: SecretKey,
    store: Store,
    nonce: u64,
    _dir: tempfile::TempDir,
}

const CITIZEN: Hash = Hash([0x5a; 32]);

impl World {
    fn new() -> Self {
        let (genesis, validators, members) = crate::genesis::tests::sample();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &genesis).unwrap();
        World {
            genesis,
            validators,
            clerk: members[0].clone(),
            store,
            nonce: 0,
            _dir: dir,
        }
    }

    fn tx(&mut self, body: TxBody) -> VerifiedTx {
        let stx = Tx {
            chain_id: self.genesis.chain_id.clone(),
            signer: self.clerk.public_key(),
            nonce: self.nonce,
            created_at_ms: 0,
            expires_at_ms: u64::MAX,
            body,
        }
        .sign(&self.clerk);
        self.nonce += 1;
        VerifiedTx::verify(stx).unwrap()
    }

    fn block(&mut self, bodies: Vec<TxBody>) {
        let txs: Vec<VerifiedTx> = bodies.into_iter().map(|b| self.tx(b)).collect();
        let tip = self.store.load_tip().unwrap();
        let proposer = self.genesis.validators[0].public_key;
        let (ex, refused) =
            build_block(self.store.state(), &tip, proposer, tip.time_ms + 1000, txs).unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        let h = &ex.header;
        let votes: Vec<Vote> = self
            .validators
            .iter()
            .map(|k| {
                Vote::new_signed(
                    &self.genesis.chain_id,
                    h.height,
                    0,
                    VoteType::Precommit,
                    Some(h.hash()),
                    k,
                )
            })
            .collect();
        let cert = CommitCertificate::from_votes(h.height, 0, h.hash(), &votes);
        self.store.commit_block(&ex, &cert).unwrap();
    }

    fn bundle(&self, subject: Subject, records: usize) -> StatusBundle {
        self.store
            .status_bundle(&self.genesis, &subject, records)
            .unwrap()
            .unwrap()
    }
}

fn access(n: u64) -> TxBody {
    TxBody::DataAccess(DataAccess {
        subject: CITIZEN,
        resource_id: "R-1".into(),
        purpose: format!("case {n}"),
        legal_basis: String::new(),
        accessed_at_ms: 0,
    })
}

/// Three blocks: an approval issued, amended and revoked; a parcel registered and frozen;
/// a catalogue resource and five accesses to a citizen's data through it.
fn world() -> World {
    let mut w = World::new();
    w.block(vec![
        TxBody::ApprovalIssue(ApprovalIssue {
            approval_id: "BP-1".into(),
            kind: "building-permit".into(),
            subject: "company-1".into(),
            decision: Decision::Granted,
            document_hash: Hash([1; 32]),
            valid_from_ms: 0,
            valid_until_ms: None,
            note: String::new(),
        }),
        TxBody::CatalogRegister(CatalogEntry {
            resource_id: "R-1".into(),
            name: "household register".into(),
            sharing: SharingType::Unconditional,
            open: OpenAttribute::Closed,
            format: "json".into(),
            link: String::new(),
        }),
        TxBody::LandRegister(LandRegister {
            parcel_id: "P-1".into(),
            owner: "owner-a".into(),
            document_hash: Hash([2; 32]),
        }),
    ]);
    w.block(vec![
        TxBody::ApprovalAmend(ApprovalAmend {
            approval_id: "BP-1".into(),
            decision: Decision::Granted,
            document_hash: Hash([3; 32]),
            valid_until_ms: None,
            reason: "typo".into(),
        }),
        access(0),
        access(1),
        access(2),
        TxBody::LandEncumber(LandEncumber {
            parcel_id: "P-1".into(),
            encumbrance_id: "court-7".into(),
            kind: EncumbranceKind::CourtFreeze,
            holder: "district court".into(),
            document_hash: Hash([4; 32]),
        }),
    ]);
    w.block(vec![
        TxBody::ApprovalRevoke(ApprovalRevoke {
            approval_id: "BP-1".into(),
            reason: "fraud".into(),
        }),
        access(3),
        access(4),
    ]);
    w
}

fn kinds(v: &VerifiedStatus) -> Vec<&'static str> {
    v.records.iter().map(|r| r.tx.tx.body.kind()).collect()
}

#[test]
fn bundles_prove_the_current_state_and_the_whole_history() {
    let w = world();
    let g = &w.genesis;
    let v = w
        .bundle(Subject::Approval("BP-1".into()), 1000)
        .verify(g)
        .unwrap();
    let Current::Approval(Some(a)) = &v.current else {
        panic!("{:?}", v.current)
    };
    assert_eq!(approval_validity(a, v.time_ms), Validity::Revoked);
    assert!(v.complete);
    assert_eq!(v.head.unwrap().count, 3);
    assert_eq!(
        kinds(&v),
        ["approval_issue", "approval_amend", "approval_revoke"]
    );
    assert_eq!(v.height, 3);

    let v = w
        .bundle(Subject::Pseudonym(CITIZEN), 1000)
        .verify(g)
        .unwrap();
    assert!(v.complete);
    assert_eq!(v.records.len(), 5);
    assert!(kinds(&v).iter().all(|k| *k == "data_access"));

    let v = w
        .bundle(Subject::Resource("R-1".into()), 1000)
        .verify(g)
        .unwrap();
    assert_eq!(v.records.len(), 6, "its registration and five accesses");

    let v = w
        .bundle(Subject::Parcel("P-1".into()), 1000)
        .verify(g)
        .unwrap();
    let Current::Parcel(Some(p)) = &v.current else {
        panic!()
    };
    assert!(p.freeze().is_some());
    assert_eq!(kinds(&v), ["land_register", "land_encumber"]);

    let v = w
        .bundle(Subject::Department("land".into()), 1000)
        .verify(g)
        .unwrap();
    assert_eq!(
        v.records.len(),
        11,
        "every record is the clerk's department's"
    );
    assert!(matches!(&v.current, Current::Department(Some(d)) if d.id == "land"));

    let v = w
        .bundle(Subject::Member(w.clerk.public_key()), 1000)
        .verify(g)
        .unwrap();
    assert!(matches!(&v.current, Current::Member(Some(m)) if m.active));
    assert!(v.head.is_none() && v.records.is_empty());

    let v = w.bundle(Subject::Validators, 1000).verify(g).unwrap();
    assert!(matches!(&v.current, Current::Validators(s) if s.sets.len() == 1));

    // Absence is proven too: no such approval, no access to another citizen.
    let v = w
        .bundle(Subject::Approval("BP-404".into()), 1000)
        .verify(g)
        .unwrap();
    assert_eq!(v.current, Current::Approval(None));
    assert_eq!(v.head.unwrap().count, 0);
    assert!(v.complete && v.records.is_empty());
    let v = w
        .bundle(Subject::Pseudonym(Hash([9; 32])), 1000)
        .verify(g)
        .unwrap();
    assert!(v.complete && v.records.is_empty());
}

#[test]
fn long_histories_come_in_pages_each_provably_the_next() {
    let w = world();
    let g = &w.genesis;
    let mut b = w.bundle(Subject::Pseudonym(CITIZEN), 2);
    let v = b.verify(g).unwrap();
    assert!(!v.complete);
    assert_eq!(v.records.len(), 2);
    let log_size = BlockHeader::decode(&b.header.bytes.0).unwrap().log_size;
    let id = HistoryId::Pseudonym(CITIZEN);
    let history = b.history.as_mut().unwrap();
    let p1 = w.store.history_page_proof(&id, 3, 2, log_size).unwrap();
    let p2 = w.store.history_page_proof(&id, 1, 2, log_size).unwrap();
    assert_eq!(p2.records.len(), 1);
    history.pages.push(p1.clone());
    let v = b.verify(g).unwrap();
    assert!(!v.complete);
    assert_eq!(v.records.len(), 4);
    // A page that is not the next one (skipping records, or the same page twice) fails.
    let mut skip = b.clone();
    skip.history.as_mut().unwrap().pages[1] = p2.clone();
    assert_eq!(skip.verify(g).unwrap_err().step, Step::History);
    let mut twice = b.clone();
    twice.history.as_mut().unwrap().pages.push(p1);
    assert_eq!(twice.verify(g).unwrap_err().step, Step::History);
    b.history.as_mut().unwrap().pages.push(p2);
    let v = b.verify(g).unwrap();
    assert!(v.complete);
    assert_eq!(v.records.len(), 5);
    let leaves: Vec<u64> = v.records.iter().map(|r| r.leaf_index).collect();
    let mut sorted = leaves.clone();
    sorted.sort();
    assert_eq!(leaves, sorted, "oldest first");
}

/// A node that hides a record, swaps one for another of the log or claims a shorter
/// history cannot make a bundle that verifies.
#[test]
fn a_node_that_hides_a_record_is_caught() {
    let w = world();
    let g = &w.genesis;
    let good = w.bundle(Subject::Pseudonym(CITIZEN), 1000);
    let mut hidden = good.clone();
    hidden.history.as_mut().unwrap().pages[0].records.remove(2);
    assert_eq!(hidden.verify(g).unwrap_err().step, Step::History);
    // Hiding the oldest and claiming the page starts later, from the zero hash.
    let mut later = good.clone();
    let page = &mut later.history.as_mut().unwrap().pages[0];
    page.records.remove(0);
    assert_eq!(later.verify(g).unwrap_err().step, Step::History);
    let mut later = good.clone();
    let page = &mut later.history.as_mut().unwrap().pages[0];
    page.records.remove(0);
    page.before.count = 1;
    assert_eq!(later.verify(g).unwrap_err().step, Step::History);
    // Another record of the log, with its own valid inclusion path, in place of one.
    let other = w.bundle(Subject::Approval("BP-1".into()), 1000);
    let mut swapped = good.clone();
    swapped.history.as_mut().unwrap().pages[0].records[1] =
        other.history.unwrap().pages[0].records[1].clone();
    assert_eq!(swapped.verify(g).unwrap_err().step, Step::History);
    // The head of another history in place of this one's: its proof is for another key.
    let mut head = good.clone();
    head.state[0] = w.bundle(Subject::Resource("R-1".into()), 1).state[1].clone();
    assert_eq!(head.verify(g).unwrap_err().step, Step::StateProof);
    // A subject swapped for another's.
    let mut subject = good;
    subject.subject = Subject::Pseudonym(Hash([9; 32]));
    assert_eq!(subject.verify(g).unwrap_err().step, Step::StateProof);
}

/// Every leaf of the bundle's JSON, changed, makes it refused: at parsing or at a named
/// step. And a field added anywhere at the bundle's own levels is refused at parsing.
#[test]
fn tampering_with_any_field_is_refused() {
    let w = world();
    let g = &w.genesis;
    for subject in [
        Subject::Approval("BP-1".into()),
        Subject::Parcel("P-1".into()),
        Subject::Member(w.clerk.public_key()),
    ] {
        let good = serde_json::to_value(w.bundle(subject.clone(), 1000)).unwrap();
        let parse = |v: &serde_json::Value| serde_json::from_value::<StatusBundle>(v.clone());
        parse(&good).unwrap().verify(g).unwrap();
        // One verifier for all: the honest bundle's certified header must excuse nothing.
        let shared = StatusVerifier::new(g);
        shared.verify(&parse(&good).unwrap()).unwrap();
        let mut paths = vec![];
        leaves(&good, String::new(), &mut paths);
        assert!(paths.len() > 20, "{}", paths.len());
        let mut tried = 0;
        for path in &paths {
            let mut bad = good.clone();
            let slot = bad.pointer_mut(path).unwrap();
            *slot = mutate(slot);
            tried += 1;
            if let Ok(b) = parse(&bad) {
                assert!(
                    b.verify(g).is_err(),
                    "{subject:?}: changing {path} still verifies"
                );
                assert!(
                    shared.verify(&b).is_err(),
                    "{subject:?}: changing {path} verifies after the honest bundle"
                );
            }
        }
        assert_eq!(tried, paths.len());
        for at in ["", "/header", "/state/0", "/state/0/proof"] {
            let mut bad = good.clone();
            bad.pointer_mut(at)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .insert("note".into(), "unbacked".into());
            let refused = match parse(&bad) {
                Err(_) => true,
                Ok(b) => b.verify(g).is_err(),
            };
            assert!(refused, "a field added at {at:?} is accepted");
        }
    }
}

fn leaves(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                leaves(x, format!("{at}/{k}"), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

fn mutate(v: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value as V;
    match v {
        V::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let mut b = s.clone().into_bytes();
            let last = b.len() - 1;
            b[last] = if b[last] == b'0' { b'1' } else { b'0' };
            V::String(String::from_utf8(b).unwrap())
        }
        V::String(s) => V::String(format!("{s}x")),
        V::Number(n) => match n.as_u64() {
            Some(u) if u < u64::MAX => V::from(u + 1),
            _ => V::from(0),
        },
        V::Bool(b) => V::Bool(!b),
        V::Null => V::String("00".into()),
        other => other.clone(),
    }
}
