//! Proof bundles end to end over a real store: build, verify offline, and tamper with
//! every part to see verification fail at the right step.
#![cfg(feature = "rocksdb")]

use ledger::block::BlockHeader;
use ledger::chain::build_block;
use ledger::crypto::SecretKey;
use ledger::execute::VerifiedTx;
use ledger::genesis::{ConsensusParams, Department, Genesis, Member};
use ledger::hash::{Hash, hash_document};
use ledger::proof::{ProofBundle, Step};
use ledger::store::Store;
use ledger::tx::*;
use ledger::validator::Validator;
use ledger::vote::{CommitCertificate, Vote, VoteType};

struct World {
    genesis: Genesis,
    keys: Vec<SecretKey>, // validator keys, genesis ones first
    clerk: SecretKey,
    store: Store,
    _dir: tempfile::TempDir,
    nonce: u64,
}

fn validator(k: &SecretKey) -> Validator {
    Validator {
        department: "city".into(),
        public_key: k.public_key(),
        power: 1,
        address: String::new(),
    }
}

impl World {
    fn new() -> Self {
        let keys: Vec<SecretKey> = (1..=5).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let clerk = SecretKey::from_seed(&[42; 32]);
        let genesis = Genesis {
            chain_id: "proof-test".into(),
            genesis_time_ms: 1_000,
            departments: vec![Department {
                id: "city".into(),
                name: "City".into(),
                governance_weight: 1,
            }],
            members: vec![Member {
                key: clerk.public_key(),
                department: "city".into(),
                roles: RoleSet::all(),
                name: "clerk".into(),
            }],
            validators: keys[..4].iter().map(validator).collect(),
            params: ConsensusParams::default(),
            state_format: ledger::genesis::StateFormat::CURRENT,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &genesis).unwrap();
        World {
            genesis,
            keys,
            clerk,
            store,
            _dir: dir,
            nonce: 0,
        }
    }

    fn cert(&self, header: &BlockHeader) -> CommitCertificate {
        let set = self
            .store
            .state()
            .validator_set_at(header.height)
            .unwrap()
            .unwrap();
        let votes: Vec<Vote> = self
            .keys
            .iter()
            .filter(|k| set.get(&k.public_key()).is_some())
            .map(|k| {
                Vote::new_signed(
                    &self.genesis.chain_id,
                    header.height,
                    0,
                    VoteType::Precommit,
                    Some(header.hash()),
                    k,
                )
            })
            .collect();
        CommitCertificate::from_votes(header.height, 0, header.hash(), &votes)
    }

    /// Commits a block with the given bodies; returns the record ids.
    fn block(&mut self, bodies: Vec<TxBody>) -> Vec<Hash> {
        let txs: Vec<VerifiedTx> = bodies
            .into_iter()
            .map(|body| {
                let t = Tx {
                    chain_id: self.genesis.chain_id.clone(),
                    signer: self.clerk.public_key(),
                    nonce: self.nonce,
                    created_at_ms: 0,
                    expires_at_ms: u64::MAX,
                    body,
                }
                .sign(&self.clerk);
                self.nonce += 1;
                VerifiedTx::verify(t).unwrap()
            })
            .collect();
        let tip = self.store.load_tip().unwrap();
        let proposer = self.keys[0].public_key();
        let (ex, refused) =
            build_block(self.store.state(), &tip, proposer, tip.time_ms + 1000, txs).unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        let cert = self.cert(&ex.header);
        self.store.commit_block(&ex, &cert).unwrap();
        ex.txs.iter().map(|t| t.id()).collect()
    }
}

fn anchor(doc: &[u8]) -> TxBody {
    TxBody::Anchor(Anchor {
        document_hash: hash_document(doc),
        label: "doc".into(),
    })
}

/// Chain: block 1 anchors DOC; block 2 adds validator 5 (in force from height 4);
/// blocks 3-4 filler; block 5 anchors DOC2.
fn world() -> (World, Hash, Hash) {
    let mut w = World::new();
    let a = w.block(vec![anchor(b"DOC"), anchor(b"other")])[0];
    let v5 = validator(&w.keys[4]);
    w.block(vec![TxBody::GovernancePropose(GovernancePropose {
        action: GovAction::AddValidator { validator: v5 },
        description: "add the fifth validator".into(),
    })]);
    w.block(vec![anchor(b"3")]);
    w.block(vec![]);
    let b = w.block(vec![anchor(b"x"), anchor(b"DOC2"), anchor(b"y")])[1];
    (w, a, b)
}

fn expect_step(bundle: &ProofBundle, g: &Genesis, doc: Option<&[u8]>, step: Step) {
    match bundle.verify(g, doc) {
        Err(e) => assert_eq!(e.step, step, "{e}"),
        Ok(_) => panic!("tampered bundle verified (expected {step:?} to fail)"),
    }
}

#[test]
fn bundles_verify_and_survive_json() {
    let (w, a, b) = world();
    let ba = w.store.proof_bundle(&w.genesis, &a).unwrap().unwrap();
    assert!(ba.validator_changes.is_empty());
    let r = ba.verify(&w.genesis, Some(b"DOC")).unwrap();
    assert_eq!(r.height, 1);
    let bb = w.store.proof_bundle(&w.genesis, &b).unwrap().unwrap();
    assert_eq!(bb.validator_changes.len(), 1);
    assert_eq!(bb.validator_changes[0].activation_height, 4);
    assert_eq!(bb.validator_changes[0].governance.len(), 1);
    assert_eq!(bb.header.commit.signatures.len(), 5);
    let json = serde_json::to_string_pretty(&bb).unwrap();
    let back = ProofBundle::from_json(&json).unwrap();
    let r = back.verify(&w.genesis, Some(b"DOC2")).unwrap();
    assert_eq!(r.height, 5);
    assert_eq!(r.kind, "anchor");
    assert!(
        w.store
            .proof_bundle(&w.genesis, &Hash([9; 32]))
            .unwrap()
            .is_none()
    );
}

#[test]
fn every_tampering_names_its_step() {
    let (w, _, b) = world();
    let g = &w.genesis;
    let good = w.store.proof_bundle(g, &b).unwrap().unwrap();
    good.verify(g, None).unwrap();

    // The document.
    expect_step(&good, g, Some(b"DOC3"), Step::DocumentHash);

    // Wrong genesis.
    let mut other = g.clone();
    other.chain_id = "elsewhere".into();
    expect_step(&good, &other, None, Step::Genesis);

    // Record bytes: flip every byte in turn (a sample of positions to keep it quick).
    let n = good.record.tx_bytes.0.len();
    for pos in (0..n).step_by(7) {
        let mut t = good.clone();
        t.record.tx_bytes.0[pos] ^= 0x01;
        expect_step(&t, g, None, Step::RecordContent);
    }
    // The decoded record disagreeing with its bytes.
    let mut t = good.clone();
    t.record.tx.tx.nonce += 1;
    expect_step(&t, g, None, Step::RecordContent);
    // Record id.
    let mut t = good.clone();
    t.record.id.0[3] ^= 1;
    expect_step(&t, g, None, Step::RecordContent);

    // Inclusion path elements.
    for i in 0..good.inclusion.path.len() {
        let mut t = good.clone();
        t.inclusion.path[i].0[0] ^= 0x80;
        expect_step(&t, g, None, Step::Inclusion);
    }
    let mut t = good.clone();
    t.inclusion.path.pop();
    expect_step(&t, g, None, Step::Inclusion);
    let mut t = good.clone();
    t.record.leaf_index += 1;
    // Moving the index inside the block breaks the path.
    expect_step(&t, g, None, Step::Inclusion);

    // Header bytes.
    for pos in (0..good.header.bytes.0.len()).step_by(11) {
        let mut t = good.clone();
        t.header.bytes.0[pos] ^= 0x01;
        expect_step(&t, g, None, Step::Header);
    }
    // Header consistently rewritten (bytes and decoded): the commit no longer matches.
    let mut t = good.clone();
    t.header.header.time_ms += 1;
    t.header.bytes.0 = t.header.header.encode();
    expect_step(&t, g, None, Step::CommitCertificate);
    // Log root rewritten consistently: inclusion fails first.
    let mut t = good.clone();
    t.header.header.log_root.0[0] ^= 1;
    t.header.bytes.0 = t.header.header.encode();
    expect_step(&t, g, None, Step::Inclusion);

    // A commit signature.
    for i in 0..good.header.commit.signatures.len() {
        let mut t = good.clone();
        t.header.commit.signatures[i].signature.0[9] ^= 1;
        expect_step(&t, g, None, Step::CommitCertificate);
    }
    // Too few signatures.
    let mut t = good.clone();
    t.header.commit.signatures.truncate(3);
    expect_step(&t, g, None, Step::CommitCertificate);

    // Validator-set changes: removed, altered, its announcement's commit broken.
    let mut t = good.clone();
    t.validator_changes.clear();
    expect_step(&t, g, None, Step::ValidatorSetChange);
    let mut t = good.clone();
    let mut vals = t.validator_changes[0].validators.validators().to_vec();
    vals[0].power = 7;
    t.validator_changes[0].validators = ledger::ValidatorSet::new(vals).unwrap();
    expect_step(&t, g, None, Step::ValidatorSetChange);
    let mut t = good.clone();
    t.validator_changes[0].announced_by.commit.signatures[0]
        .signature
        .0[1] ^= 1;
    expect_step(&t, g, None, Step::ValidatorSetChange);
    let mut t = good.clone();
    t.validator_changes[0].governance[0].path[0].0[0] ^= 1;
    expect_step(&t, g, None, Step::ValidatorSetChange);
}

#[test]
fn checkpoints_verify_and_prove_consistency() {
    let (w, _, _) = world();
    let g = &w.genesis;
    let early = w.store.checkpoint(g, Some(2)).unwrap().unwrap();
    let late = w.store.checkpoint(g, None).unwrap().unwrap();
    let e = early.verify(g).unwrap().clone();
    let l = late.verify(g).unwrap().clone();
    assert_eq!(l.height, 5);
    let proof = w.store.consistency_proof(e.log_size, l.log_size).unwrap();
    ledger::history_log::verify_consistency(
        e.log_size,
        l.log_size,
        &e.log_root,
        &l.log_root,
        &proof,
    )
    .unwrap();
    let mut bad = late.clone();
    bad.header.commit.signatures.truncate(2);
    assert_eq!(bad.verify(g).unwrap_err().step, Step::CommitCertificate);
}
