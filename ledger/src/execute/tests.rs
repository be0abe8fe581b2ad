//! One test per rule and per refusal of the state machine.

use super::*;
use crate::crypto::SecretKey;
use crate::genesis::{ConsensusParams, Member, StateFormat};
use crate::hash::hash_document;
use crate::state::MemState;
use crate::tx::*;
use crate::validator::Validator;
use crate::vote::{Evidence, Vote, VoteType};

const T0: u64 = 1_800_000_000_000;

#[derive(Clone)]
struct Chain {
    genesis: Genesis,
    state: MemState,
    root: Hash,
    height: u64,
    /// Records committed so far (the log's size).
    leaves: u64,
    nonces: std::collections::BTreeMap<PublicKeyBytes, u64>,
    validators: Vec<SecretKey>,
}

type PublicKeyBytes = [u8; 32];

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed(&[seed; 32])
}

// Member keys.
fn land_clerk() -> SecretKey {
    key(10)
}
fn land_gov() -> SecretKey {
    key(11)
}
fn health_clerk() -> SecretKey {
    key(20)
}
fn health_gov() -> SecretKey {
    key(21)
}
fn civil_clerk() -> SecretKey {
    key(30)
}
fn civil_gov() -> SecretKey {
    key(31)
}
fn outsider() -> SecretKey {
    key(99)
}

fn roles(rs: &[Role]) -> RoleSet {
    rs.iter().copied().collect()
}

impl Chain {
    fn new() -> Self {
        let validators: Vec<SecretKey> = (1..=4).map(key).collect();
        let dept = |id: &str| Department {
            id: id.into(),
            name: id.to_uppercase(),
            governance_weight: 1,
        };
        let member = |k: SecretKey, d: &str, r: &[Role]| Member {
            key: k.public_key(),
            department: d.into(),
            roles: roles(r),
            name: String::new(),
        };
        let clerk_roles = [
            Role::Approvals,
            Role::LandRegistry,
            Role::Catalog,
            Role::DataAccess,
            Role::Anchor,
        ];
        let genesis = Genesis {
            chain_id: "test-chain".into(),
            genesis_time_ms: T0,
            departments: vec![dept("land"), dept("health"), dept("civil")],
            members: vec![
                member(land_clerk(), "land", &clerk_roles),
                member(land_gov(), "land", &[Role::Governance]),
                member(health_clerk(), "health", &clerk_roles),
                member(health_gov(), "health", &[Role::Governance]),
                member(civil_clerk(), "civil", &[Role::Anchor, Role::DataAccess]),
                member(civil_gov(), "civil", &[Role::Governance]),
            ],
            validators: validators
                .iter()
                .map(|k| Validator {
                    department: "land".into(),
                    public_key: k.public_key(),
                    power: 1,
                    address: String::new(),
                })
                .collect(),
            params: ConsensusParams::default(),
            state_format: StateFormat::CURRENT,
        };
        Self::start(genesis, validators)
    }

    fn start(genesis: Genesis, validators: Vec<SecretKey>) -> Self {
        let gs = genesis_state(&genesis).unwrap();
        let mut state = MemState::new();
        state.commit(&gs.writes, gs.tree.as_ref());
        Chain {
            genesis,
            state,
            root: gs.root,
            height: 0,
            leaves: 0,
            nonces: Default::default(),
            validators,
        }
    }

    fn tx(&mut self, k: &SecretKey, body: TxBody) -> VerifiedTx {
        let n = self.nonces.entry(k.public_key().0).or_insert(0);
        let stx = Tx {
            chain_id: self.genesis.chain_id.clone(),
            signer: k.public_key(),
            nonce: *n,
            created_at_ms: T0,
            expires_at_ms: u64::MAX,
            body,
        }
        .sign(k);
        *n += 1;
        VerifiedTx::verify(stx).unwrap()
    }

    /// Executes one block holding one transaction; commits it if accepted.
    fn run(&mut self, k: &SecretKey, body: TxBody) -> Result<Applied, Rejection> {
        let vtx = self.tx(k, body);
        let r = self.run_vtx(&vtx);
        if r.is_err() {
            // The nonce was not consumed.
            *self.nonces.get_mut(&k.public_key().0).unwrap() -= 1;
        }
        r
    }

    fn run_vtx(&mut self, vtx: &VerifiedTx) -> Result<Applied, Rejection> {
        let ctx = self.context();
        let mut ex = BlockExecutor::new(&self.state, ctx);
        let r = ex.apply(vtx);
        let done = ex.finish(&self.root).unwrap();
        self.state.commit(&done.writes, done.tree.as_ref());
        self.root = done.root;
        self.height += 1;
        self.leaves += u64::from(r.is_ok());
        r
    }

    fn context(&self) -> BlockContext {
        BlockContext {
            chain_id: self.genesis.chain_id.clone(),
            height: self.height + 1,
            time_ms: T0 + (self.height + 1) * 1000,
            first_leaf: self.leaves,
            state_format: self.genesis.state_format,
        }
    }
}

fn issue(id: &str) -> TxBody {
    TxBody::ApprovalIssue(ApprovalIssue {
        approval_id: id.into(),
        kind: "building-permit".into(),
        subject: "company-91310000".into(),
        decision: Decision::Granted,
        document_hash: hash_document(id.as_bytes()),
        valid_from_ms: T0,
        valid_until_ms: Some(T0 + 1_000_000),
        note: String::new(),
    })
}

fn amend(id: &str) -> TxBody {
    TxBody::ApprovalAmend(ApprovalAmend {
        approval_id: id.into(),
        decision: Decision::Conditional,
        document_hash: hash_document(b"amended"),
        valid_until_ms: None,
        reason: "conditions added".into(),
    })
}

fn revoke(id: &str) -> TxBody {
    TxBody::ApprovalRevoke(ApprovalRevoke {
        approval_id: id.into(),
        reason: "fraud".into(),
    })
}

fn register(parcel: &str, owner: &str) -> TxBody {
    TxBody::LandRegister(LandRegister {
        parcel_id: parcel.into(),
        owner: owner.into(),
        document_hash: hash_document(parcel.as_bytes()),
    })
}

fn transfer(parcel: &str, from: &str, to: &str) -> TxBody {
    TxBody::LandTransfer(LandTransfer {
        parcel_id: parcel.into(),
        from: from.into(),
        to: to.into(),
        deed_hash: hash_document(to.as_bytes()),
    })
}

fn encumber(parcel: &str, id: &str, kind: EncumbranceKind) -> TxBody {
    TxBody::LandEncumber(LandEncumber {
        parcel_id: parcel.into(),
        encumbrance_id: id.into(),
        kind,
        holder: "court".into(),
        document_hash: hash_document(id.as_bytes()),
    })
}

fn release(parcel: &str, id: &str) -> TxBody {
    TxBody::LandRelease(LandRelease {
        parcel_id: parcel.into(),
        encumbrance_id: id.into(),
        document_hash: hash_document(b"release"),
    })
}

fn catalog(id: &str, sharing: SharingType) -> CatalogEntry {
    CatalogEntry {
        resource_id: id.into(),
        name: "Household register".into(),
        sharing,
        open: OpenAttribute::Closed,
        format: "database".into(),
        link: "https://data.example.gov/r/1".into(),
    }
}

fn access(resource: &str, legal_basis: &str) -> TxBody {
    TxBody::DataAccess(DataAccess {
        subject: hash_document(b"citizen-1"),
        resource_id: resource.into(),
        purpose: "benefit eligibility check".into(),
        legal_basis: legal_basis.into(),
        accessed_at_ms: T0,
    })
}

fn anchor() -> TxBody {
    TxBody::Anchor(Anchor {
        document_hash: hash_document(b"minutes"),
        label: "council minutes".into(),
    })
}

fn propose(action: GovAction) -> TxBody {
    TxBody::GovernancePropose(GovernancePropose {
        action,
        description: "why".into(),
    })
}

fn vote(id: Hash, approve: bool) -> TxBody {
    TxBody::GovernanceVote(GovernanceVote {
        proposal_id: id,
        approve,
    })
}

#[test]
fn approval_lifecycle_and_issuer_only() {
    let mut c = Chain::new();
    c.run(&land_clerk(), issue("BP-1")).unwrap();
    assert_eq!(
        c.run(&land_clerk(), issue("BP-1")),
        Err(Rejection::ApprovalExists("BP-1".into()))
    );
    assert!(matches!(
        c.run(&health_clerk(), amend("BP-1")),
        Err(Rejection::NotIssuer { .. })
    ));
    assert!(matches!(
        c.run(&health_clerk(), revoke("BP-1")),
        Err(Rejection::NotIssuer { .. })
    ));
    c.run(&land_clerk(), amend("BP-1")).unwrap();
    let st = c.state.approval("BP-1").unwrap().unwrap();
    assert_eq!(st.decision, Decision::Conditional);
    assert_eq!(st.amendments, 1);
    c.run(&land_clerk(), revoke("BP-1")).unwrap();
    let st = c.state.approval("BP-1").unwrap().unwrap();
    assert_eq!(st.status, ApprovalStatus::Revoked);
    assert_eq!(
        c.run(&land_clerk(), amend("BP-1")),
        Err(Rejection::ApprovalRevoked("BP-1".into()))
    );
    assert_eq!(
        c.run(&land_clerk(), revoke("BP-1")),
        Err(Rejection::ApprovalRevoked("BP-1".into()))
    );
    assert_eq!(
        c.run(&land_clerk(), amend("nope")),
        Err(Rejection::ApprovalNotFound("nope".into()))
    );
}

#[test]
fn approval_validity_must_be_ordered() {
    let mut c = Chain::new();
    let mut body = issue("BP-2");
    if let TxBody::ApprovalIssue(a) = &mut body {
        a.valid_until_ms = Some(a.valid_from_ms - 1);
    }
    assert!(matches!(
        c.run(&land_clerk(), body),
        Err(Rejection::BadValidity { .. })
    ));
}

#[test]
fn roles_and_membership_are_enforced() {
    let mut c = Chain::new();
    assert!(matches!(
        c.run(&civil_clerk(), issue("X")),
        Err(Rejection::MissingRole {
            role: Role::Approvals,
            ..
        })
    ));
    assert!(matches!(
        c.run(&outsider(), anchor()),
        Err(Rejection::UnknownSigner(_))
    ));
    assert!(matches!(
        c.run(&land_gov(), anchor()),
        Err(Rejection::MissingRole {
            role: Role::Anchor,
            ..
        })
    ));
    c.run(&civil_clerk(), anchor()).unwrap();
}

#[test]
fn replay_and_chain_and_expiry_are_refused() {
    let mut c = Chain::new();
    let vtx = c.tx(&land_clerk(), anchor());
    c.run_vtx(&vtx).unwrap();
    assert_eq!(
        c.run_vtx(&vtx),
        Err(Rejection::BadNonce {
            expected: 1,
            got: 0
        })
    );
    // A future nonce.
    let stx = Tx {
        chain_id: "test-chain".into(),
        signer: land_clerk().public_key(),
        nonce: 5,
        created_at_ms: T0,
        expires_at_ms: u64::MAX,
        body: anchor(),
    }
    .sign(&land_clerk());
    let r = c.run_vtx(&VerifiedTx::verify(stx).unwrap());
    assert!(r.as_ref().unwrap_err().is_future_nonce(), "{r:?}");
    // Another chain.
    let stx = Tx {
        chain_id: "other".into(),
        signer: land_clerk().public_key(),
        nonce: 1,
        created_at_ms: T0,
        expires_at_ms: u64::MAX,
        body: anchor(),
    }
    .sign(&land_clerk());
    assert!(matches!(
        c.run_vtx(&VerifiedTx::verify(stx).unwrap()),
        Err(Rejection::WrongChain { .. })
    ));
    // Expired.
    let stx = Tx {
        chain_id: "test-chain".into(),
        signer: land_clerk().public_key(),
        nonce: 1,
        created_at_ms: T0,
        expires_at_ms: T0,
        body: anchor(),
    }
    .sign(&land_clerk());
    assert!(matches!(
        c.run_vtx(&VerifiedTx::verify(stx).unwrap()),
        Err(Rejection::Expired { .. })
    ));
}

#[test]
fn bad_signature_never_becomes_verified() {
    let mut c = Chain::new();
    let vtx = c.tx(&land_clerk(), anchor());
    let mut stx = vtx.tx().clone();
    stx.signature.0[10] ^= 0x40;
    assert!(VerifiedTx::verify(stx.clone()).is_err());
    let results = verify_batch(vec![vtx.tx().clone(), stx]);
    assert!(results[0].is_ok());
    assert!(results[1].is_err());
}

#[test]
fn land_title_rules() {
    let mut c = Chain::new();
    let k = land_clerk();
    c.run(&k, register("P-1", "alice")).unwrap();
    assert_eq!(
        c.run(&k, register("P-1", "bob")),
        Err(Rejection::ParcelExists("P-1".into()))
    );
    assert!(matches!(
        c.run(&k, transfer("P-1", "bob", "carol")),
        Err(Rejection::NotCurrentOwner { .. })
    ));
    assert!(matches!(
        c.run(&k, transfer("P-1", "alice", "alice")),
        Err(Rejection::TransferToSelf(_))
    ));
    c.run(&k, transfer("P-1", "alice", "bob")).unwrap();
    assert_eq!(c.state.parcel("P-1").unwrap().unwrap().owner, "bob");
    c.run(&k, encumber("P-1", "M-1", EncumbranceKind::Mortgage))
        .unwrap();
    assert!(matches!(
        c.run(&k, encumber("P-1", "M-1", EncumbranceKind::Lien)),
        Err(Rejection::EncumbranceExists { .. })
    ));
    // A mortgage does not block a transfer; a court freeze does.
    c.run(&k, transfer("P-1", "bob", "carol")).unwrap();
    c.run(&k, encumber("P-1", "F-1", EncumbranceKind::CourtFreeze))
        .unwrap();
    assert!(matches!(
        c.run(&k, transfer("P-1", "carol", "dave")),
        Err(Rejection::ParcelFrozen { .. })
    ));
    assert!(matches!(
        c.run(&k, release("P-1", "F-9")),
        Err(Rejection::EncumbranceNotFound { .. })
    ));
    c.run(&k, release("P-1", "F-1")).unwrap();
    c.run(&k, transfer("P-1", "carol", "dave")).unwrap();
    let p = c.state.parcel("P-1").unwrap().unwrap();
    assert_eq!(p.owner, "dave");
    assert_eq!(p.encumbrances.len(), 1);
    assert_eq!(
        c.run(&k, transfer("P-404", "a", "b")),
        Err(Rejection::ParcelNotFound("P-404".into()))
    );
    assert!(matches!(
        c.run(&k, release("P-404", "x")),
        Err(Rejection::ParcelNotFound(_))
    ));
}

#[test]
fn catalog_owner_only_updates() {
    let mut c = Chain::new();
    c.run(
        &health_clerk(),
        TxBody::CatalogRegister(catalog("R-1", SharingType::Conditional)),
    )
    .unwrap();
    assert_eq!(
        c.run(
            &land_clerk(),
            TxBody::CatalogRegister(catalog("R-1", SharingType::Conditional))
        ),
        Err(Rejection::ResourceExists("R-1".into()))
    );
    assert!(matches!(
        c.run(
            &land_clerk(),
            TxBody::CatalogUpdate(catalog("R-1", SharingType::Unconditional))
        ),
        Err(Rejection::NotResourceOwner { .. })
    ));
    c.run(
        &health_clerk(),
        TxBody::CatalogUpdate(catalog("R-1", SharingType::NotShared)),
    )
    .unwrap();
    assert_eq!(
        c.state.catalog("R-1").unwrap().unwrap().entry.sharing,
        SharingType::NotShared
    );
    assert!(matches!(
        c.run(
            &health_clerk(),
            TxBody::CatalogUpdate(catalog("R-2", SharingType::NotShared))
        ),
        Err(Rejection::ResourceNotFound(_))
    ));
}

#[test]
fn data_access_is_checked_against_the_catalogue() {
    let mut c = Chain::new();
    let h = health_clerk();
    c.run(
        &h,
        TxBody::CatalogRegister(catalog("open", SharingType::Unconditional)),
    )
    .unwrap();
    c.run(
        &h,
        TxBody::CatalogRegister(catalog("cond", SharingType::Conditional)),
    )
    .unwrap();
    c.run(
        &h,
        TxBody::CatalogRegister(catalog("closed", SharingType::NotShared)),
    )
    .unwrap();
    let other = civil_clerk();
    c.run(&other, access("open", "")).unwrap();
    assert_eq!(
        c.run(&other, access("cond", "")),
        Err(Rejection::LegalBasisRequired("cond".into()))
    );
    c.run(
        &other,
        access("cond", "Social Assistance Regulation art. 12"),
    )
    .unwrap();
    assert!(matches!(
        c.run(&other, access("closed", "any")),
        Err(Rejection::ResourceNotShared { .. })
    ));
    // The owner may access its own resources.
    c.run(&h, access("closed", "")).unwrap();
    assert_eq!(
        c.run(&other, access("missing", "x")),
        Err(Rejection::ResourceNotFound("missing".into()))
    );
    let mut body = access("open", "");
    if let TxBody::DataAccess(d) = &mut body {
        d.purpose = "  ".into();
    }
    assert_eq!(c.run(&other, body), Err(Rejection::PurposeRequired));
    let mut body = access("open", "");
    if let TxBody::DataAccess(d) = &mut body {
        d.accessed_at_ms = T0 + 10_000_000;
    }
    assert!(matches!(
        c.run(&other, body),
        Err(Rejection::AccessInFuture { .. })
    ));
}

#[test]
fn governance_needs_more_than_two_thirds() {
    let mut c = Chain::new();
    let newbie = key(50);
    let action = GovAction::AddMember {
        key: newbie.public_key(),
        department: "civil".into(),
        roles: roles(&[Role::Anchor]),
        name: "new clerk".into(),
    };
    let vtx = c.tx(&land_gov(), propose(action));
    let pid = vtx.id();
    c.run_vtx(&vtx).unwrap();
    // 1 of 3 departments: not yet.
    assert!(matches!(
        c.run(&newbie, anchor()),
        Err(Rejection::UnknownSigner(_))
    ));
    // Clerks cannot vote.
    assert!(matches!(
        c.run(&health_clerk(), vote(pid, true)),
        Err(Rejection::MissingRole { .. })
    ));
    c.run(&health_gov(), vote(pid, true)).unwrap();
    // 2 of 3 is not more than 2/3.
    assert_eq!(
        c.state.proposal(&pid).unwrap().unwrap().status,
        ProposalStatus::Open
    );
    assert_eq!(
        c.run(&health_gov(), vote(pid, true)),
        Err(Rejection::AlreadyVoted("health".into()))
    );
    c.run(&civil_gov(), vote(pid, true)).unwrap();
    assert!(matches!(
        c.state.proposal(&pid).unwrap().unwrap().status,
        ProposalStatus::Executed { .. }
    ));
    c.run(&newbie, anchor()).unwrap();
    assert_eq!(
        c.run(&land_gov(), vote(pid, true)),
        Err(Rejection::ProposalClosed(pid))
    );
}

#[test]
fn governance_rejection_and_removal() {
    let mut c = Chain::new();
    let action = GovAction::RemoveMember {
        key: civil_clerk().public_key(),
    };
    let vtx = c.tx(&land_gov(), propose(action.clone()));
    let pid = vtx.id();
    c.run_vtx(&vtx).unwrap();
    c.run(&civil_gov(), vote(pid, false)).unwrap();
    // 1 reject of 3: approval can no longer exceed 2/3.
    assert!(matches!(
        c.state.proposal(&pid).unwrap().unwrap().status,
        ProposalStatus::Rejected { .. }
    ));
    // Again, approved this time: the clerk can no longer sign.
    let vtx = c.tx(&land_gov(), propose(action));
    let pid = vtx.id();
    c.run_vtx(&vtx).unwrap();
    c.run(&health_gov(), vote(pid, true)).unwrap();
    c.run(&civil_gov(), vote(pid, true)).unwrap();
    assert!(matches!(
        c.run(&civil_clerk(), anchor()),
        Err(Rejection::SignerRemoved(_))
    ));
    // A proposal that cannot apply is refused up front.
    assert!(matches!(
        c.run(
            &land_gov(),
            propose(GovAction::GrantRole {
                key: outsider().public_key(),
                role: Role::Anchor
            })
        ),
        Err(Rejection::InvalidAction(_))
    ));
    assert!(matches!(
        c.run(&land_gov(), vote(Hash([7; 32]), true)),
        Err(Rejection::ProposalNotFound(_))
    ));
}

#[test]
fn validator_change_takes_effect_two_heights_later() {
    let mut c = Chain::new();
    let new_val = key(5);
    let action = GovAction::AddValidator {
        validator: Validator {
            department: "health".into(),
            public_key: new_val.public_key(),
            power: 1,
            address: String::new(),
        },
    };
    let vtx = c.tx(&land_gov(), propose(action));
    c.run_vtx(&vtx).unwrap();
    c.run(&health_gov(), vote(vtx.id(), true)).unwrap();
    c.run(&civil_gov(), vote(vtx.id(), true)).unwrap();
    let executed_at = c.height;
    let sets = c.state.validator_sets().unwrap();
    assert_eq!(sets.at(executed_at).unwrap().len(), 4);
    assert_eq!(sets.at(executed_at + 1).unwrap().len(), 4);
    assert_eq!(sets.at(executed_at + 2).unwrap().len(), 5);
}

#[test]
fn evidence_rules() {
    let mut c = Chain::new();
    let byz = &c.validators[0].clone();
    let chain = c.genesis.chain_id.clone();
    let a = Vote::new_signed(&chain, 1, 0, VoteType::Precommit, Some(Hash([1; 32])), byz);
    let b = Vote::new_signed(&chain, 1, 0, VoteType::Precommit, Some(Hash([2; 32])), byz);
    let ev = TxBody::Evidence(Evidence::from_votes(a.clone(), b.clone()));
    let reporter = c.validators[1].clone();
    // Members cannot submit evidence; validators can.
    assert_eq!(
        c.run(&land_clerk(), ev.clone()),
        Err(Rejection::NotAValidator)
    );
    let applied = c.run(&reporter, ev.clone()).unwrap();
    assert_eq!(applied.department, "land");
    assert_eq!(
        c.run(&reporter, ev.clone()),
        Err(Rejection::DuplicateEvidence)
    );
    // Not conflicting.
    assert!(matches!(
        c.run(
            &reporter,
            TxBody::Evidence(Evidence::DuplicateVote {
                a: a.clone(),
                b: a.clone()
            })
        ),
        Err(Rejection::InvalidEvidence(_))
    ));
    // Signed by a non-validator.
    let x = Vote::new_signed(
        &chain,
        1,
        0,
        VoteType::Prevote,
        Some(Hash([1; 32])),
        &outsider(),
    );
    let y = Vote::new_signed(&chain, 1, 0, VoteType::Prevote, None, &outsider());
    assert!(matches!(
        c.run(&reporter, TxBody::Evidence(Evidence::from_votes(x, y))),
        Err(Rejection::InvalidEvidence(_))
    ));
    // From the future.
    let f1 = Vote::new_signed(&chain, 999, 0, VoteType::Prevote, Some(Hash([1; 32])), byz);
    let f2 = Vote::new_signed(&chain, 999, 0, VoteType::Prevote, None, byz);
    assert!(matches!(
        c.run(&reporter, TxBody::Evidence(Evidence::from_votes(f1, f2))),
        Err(Rejection::InvalidEvidence(_))
    ));
}

#[test]
fn rejection_writes_nothing_and_roots_are_deterministic() {
    let mut a = Chain::new();
    let mut b = Chain::new();
    assert_eq!(a.root, b.root);
    for c in [&mut a, &mut b] {
        c.run(&land_clerk(), register("P", "x")).unwrap();
        let _ = c.run(&land_clerk(), transfer("P", "y", "z"));
        c.run(&land_clerk(), anchor()).unwrap();
    }
    assert_eq!(a.root, b.root);
    // Rejected transaction left the parcel unchanged.
    assert_eq!(a.state.parcel("P").unwrap().unwrap().owner, "x");
    // A different history gives a different root.
    let mut d = Chain::new();
    d.run(&land_clerk(), register("P", "x2")).unwrap();
    assert_ne!(d.root, Chain::new().root);
}

#[test]
fn batch_verification_matches_single() {
    let mut c = Chain::new();
    let mut txs = vec![];
    for i in 0..20 {
        let mut stx = c.tx(&land_clerk(), anchor()).tx().clone();
        if i % 7 == 3 {
            stx.signature.0[40] ^= 1;
        }
        txs.push(stx);
    }
    let singles: Vec<bool> = txs.iter().map(|t| t.verify_signature().is_ok()).collect();
    let batch: Vec<bool> = verify_batch(txs).iter().map(|r| r.is_ok()).collect();
    assert_eq!(singles, batch);
}

#[test]
fn params_change_by_governance() {
    let mut c = Chain::new();
    let mut p = ConsensusParams {
        max_block_txs: 123,
        ..ConsensusParams::default()
    };
    let vtx = c.tx(
        &land_gov(),
        propose(GovAction::SetParams { params: p.clone() }),
    );
    c.run_vtx(&vtx).unwrap();
    c.run(&health_gov(), vote(vtx.id(), true)).unwrap();
    c.run(&civil_gov(), vote(vtx.id(), true)).unwrap();
    assert_eq!(c.state.params().unwrap().max_block_txs, 123);
    p.max_block_txs = 0;
    assert!(matches!(
        c.run(&land_gov(), propose(GovAction::SetParams { params: p })),
        Err(Rejection::InvalidAction(_))
    ));
}

/// A state whose reads of one key fail, as a node-local storage error would.
struct FailingOn<'a> {
    inner: &'a MemState,
    key: Vec<u8>,
}

impl StateRead for FailingOn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if key == self.key.as_slice() {
            return Err(StateError::Storage("injected read failure".into()));
        }
        self.inner.get(key)
    }
}

/// A storage error while a passed proposal executes aborts the transaction (and with it
/// the block) on that node; it is never recorded as the proposal's failure reason, which
/// would give that node a different state root.
#[test]
fn a_storage_error_in_governance_execution_is_not_written_into_state() {
    let mut c = Chain::new();
    let newbie = key(51);
    let action = GovAction::AddMember {
        key: newbie.public_key(),
        department: "civil".into(),
        roles: roles(&[Role::Anchor]),
        name: "new clerk".into(),
    };
    let vtx = c.tx(&land_gov(), propose(action));
    let pid = vtx.id();
    c.run_vtx(&vtx).unwrap();
    c.run(&health_gov(), vote(pid, true)).unwrap();
    // The deciding vote, executed over a state that cannot read the new member's key.
    let deciding = c.tx(&civil_gov(), vote(pid, true));
    let failing = FailingOn {
        inner: &c.state,
        key: keys::member(&newbie.public_key()),
    };
    let mut ex = BlockExecutor::new(failing, c.context());
    let r = ex.apply(&deciding);
    assert!(matches!(r, Err(Rejection::State(_))), "{r:?}");
    assert!(
        ex.into_writes().is_empty(),
        "nothing of the failed execution is kept"
    );
    // On a node whose store answers, the same vote executes the proposal.
    c.run_vtx(&deciding).unwrap();
    assert!(matches!(
        c.state.proposal(&pid).unwrap().unwrap().status,
        ProposalStatus::Executed { .. }
    ));
}

/// `created_at_ms` more than the skew after the block time is refused.
#[test]
fn a_transaction_created_in_the_future_is_refused() {
    let mut c = Chain::new();
    let block_time = T0 + (c.height + 1) * 1000;
    let k = land_clerk();
    let mk = |created_at_ms| {
        VerifiedTx::verify(
            Tx {
                chain_id: c.genesis.chain_id.clone(),
                signer: k.public_key(),
                nonce: 0,
                created_at_ms,
                expires_at_ms: u64::MAX,
                body: anchor(),
            }
            .sign(&k),
        )
        .unwrap()
    };
    let far = mk(u64::MAX);
    let near = mk(block_time + TX_CREATED_SKEW_MAX_MS);
    assert_eq!(
        c.run_vtx(&far),
        Err(Rejection::CreatedInFuture {
            created_at_ms: u64::MAX,
            block_time_ms: block_time
        })
    );
    // Within the skew (the next block is 1 s later, so this one is well within).
    c.run_vtx(&near).unwrap();
}

// ---------------------------------------------------------------------------------------
// Governance liveness: a department counts in the tally only once it can vote, and no
// sequence of proposals leaves governance unable to pass anything.

/// A key from a number (distinct from the `key(seed)` keys above).
fn key_n(n: u32) -> SecretKey {
    let mut seed = [0xA5; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    SecretKey::from_seed(&seed)
}

/// The governance member of department `d{i}` in [`chain_of`].
fn gov_of(i: usize) -> SecretKey {
    key_n(1000 + i as u32)
}

/// A chain of `n` departments `d0`, `d1`, … of weight 1, each with one member holding only
/// the governance role ([`gov_of`]); four validators in `d0`.
fn chain_of(n: usize) -> Chain {
    let validators: Vec<SecretKey> = (1..=4).map(key).collect();
    let genesis = Genesis {
        chain_id: "test-chain".into(),
        genesis_time_ms: T0,
        departments: (0..n)
            .map(|i| Department {
                id: format!("d{i}"),
                name: format!("Department {i}"),
                governance_weight: 1,
            })
            .collect(),
        members: (0..n)
            .map(|i| Member {
                key: gov_of(i).public_key(),
                department: format!("d{i}"),
                roles: roles(&[Role::Governance]),
                name: String::new(),
            })
            .collect(),
        validators: validators
            .iter()
            .map(|k| Validator {
                department: "d0".into(),
                public_key: k.public_key(),
                power: 1,
                address: String::new(),
            })
            .collect(),
        params: ConsensusParams::default(),
        state_format: StateFormat::CURRENT,
    };
    Chain::start(genesis, validators)
}

/// A harmless action: the consensus parameters as they are.
fn same_params(c: &Chain) -> GovAction {
    GovAction::SetParams {
        params: c.state.params().unwrap(),
    }
}

/// [`pass`] of [`same_params`].
fn pass_same(c: &mut Chain, voters: &[SecretKey]) -> ProposalStatus {
    let action = same_params(c);
    pass(c, action, voters)
}

/// `voters[0]` proposes `action`, the others vote yes while it is open (one voter per
/// department). The proposal's final status.
fn pass(c: &mut Chain, action: GovAction, voters: &[SecretKey]) -> ProposalStatus {
    let vtx = c.tx(&voters[0], propose(action));
    let pid = vtx.id();
    c.run_vtx(&vtx).unwrap();
    for v in &voters[1..] {
        if c.state.proposal(&pid).unwrap().unwrap().status != ProposalStatus::Open {
            break;
        }
        c.run(v, vote(pid, true)).unwrap();
    }
    c.state.proposal(&pid).unwrap().unwrap().status
}

#[track_caller]
fn assert_executed(st: ProposalStatus, what: &str) {
    assert!(
        matches!(st, ProposalStatus::Executed { .. }),
        "{what}: {st:?}"
    );
}

fn gov_member(k: &SecretKey, department: &str, rs: &[Role]) -> GovAction {
    GovAction::AddMember {
        key: k.public_key(),
        department: department.into(),
        roles: roles(rs),
        name: "new".into(),
    }
}

/// Issue 16: on a one- or two-department chain, adding a department and then a voter for it
/// deadlocked (the new department's weight counted before it had anyone to vote: 1 of 2,
/// 2 of 3). On chains of 1, 2, 4 and 7 departments both pass, the new department counts
/// from then on, and every department (the new one included) can pass proposals.
#[test]
fn add_department_then_its_member_passes_on_small_and_large_chains() {
    for n in [1usize, 2, 4, 7] {
        let mut c = chain_of(n);
        let mut voters: Vec<SecretKey> = (0..n).map(gov_of).collect();
        let st = pass(
            &mut c,
            GovAction::AddDepartment {
                id: "tax-bureau".into(),
                name: "Tax Bureau".into(),
                governance_weight: 1,
            },
            &voters,
        );
        assert_executed(st, &format!("{n} departments: add-department"));
        // Not counted yet: it has no one who can vote.
        assert!(!c.state.governance_voters().unwrap().can_vote("tax-bureau"));
        let tax = key_n(77);
        let st = pass(
            &mut c,
            gov_member(&tax, "tax-bureau", &[Role::Governance, Role::Anchor]),
            &voters,
        );
        assert_executed(st, &format!("{n} departments: add-member for the new one"));
        assert_eq!(
            c.state.governance_voters().unwrap().count("tax-bureau"),
            1,
            "{n} departments"
        );
        c.run(&tax, anchor()).unwrap();
        // Now it counts: with it, everyone passes a proposal; the new department can
        // propose too.
        voters.insert(0, tax);
        let st = pass_same(&mut c, &voters);
        assert_executed(
            st,
            &format!("{n} departments: a proposal of the new department"),
        );
        // And it is needed: without its vote, n of n + 1 is not enough when n + 1 ≤ 3.
        if n <= 2 {
            let st = pass_same(&mut c, &voters[1..]);
            assert_eq!(st, ProposalStatus::Open, "{n} departments");
        }
    }
}

/// Every governance action can be carried out from genesis on chains of 1, 2, 4 and 7
/// departments, every department voting yes.
#[test]
fn every_governance_action_passes_from_genesis() {
    for n in [1usize, 2, 4, 7] {
        let mut c = chain_of(n);
        let mut voters: Vec<SecretKey> = (0..n).map(gov_of).collect();
        let run = |c: &mut Chain, voters: &[SecretKey], what: &str, action: GovAction| {
            let st = pass(c, action, voters);
            assert_executed(st, &format!("{n} departments: {what}"));
        };
        run(
            &mut c,
            &voters,
            "add-department",
            GovAction::AddDepartment {
                id: "new".into(),
                name: "New".into(),
                governance_weight: 3,
            },
        );
        let new_gov = key_n(1);
        run(
            &mut c,
            &voters,
            "add-member (governance) to the new department",
            gov_member(&new_gov, "new", &[Role::Governance]),
        );
        voters.push(new_gov.clone());
        let clerk = key_n(2);
        run(
            &mut c,
            &voters,
            "add-member (clerk)",
            gov_member(&clerk, "d0", &[Role::Anchor]),
        );
        run(
            &mut c,
            &voters,
            "grant-role",
            GovAction::GrantRole {
                key: clerk.public_key(),
                role: Role::Governance,
            },
        );
        assert_eq!(c.state.governance_voters().unwrap().count("d0"), 2);
        run(
            &mut c,
            &voters,
            "revoke-role",
            GovAction::RevokeRole {
                key: clerk.public_key(),
                role: Role::Governance,
            },
        );
        assert_eq!(c.state.governance_voters().unwrap().count("d0"), 1);
        run(
            &mut c,
            &voters,
            "grant-role (non-governance)",
            GovAction::GrantRole {
                key: clerk.public_key(),
                role: Role::Approvals,
            },
        );
        run(
            &mut c,
            &voters,
            "remove-member",
            GovAction::RemoveMember {
                key: clerk.public_key(),
            },
        );
        let val = key_n(3);
        run(
            &mut c,
            &voters,
            "add-validator",
            GovAction::AddValidator {
                validator: Validator {
                    department: "new".into(),
                    public_key: val.public_key(),
                    power: 1,
                    address: String::new(),
                },
            },
        );
        run(
            &mut c,
            &voters,
            "set-validator-power",
            GovAction::SetValidatorPower {
                key: val.public_key(),
                power: 2,
            },
        );
        run(
            &mut c,
            &voters,
            "remove-validator",
            GovAction::RemoveValidator {
                key: val.public_key(),
            },
        );
        let params = ConsensusParams {
            max_block_txs: 777,
            ..c.state.params().unwrap()
        };
        run(
            &mut c,
            &voters,
            "set-params",
            GovAction::SetParams { params },
        );
        assert_eq!(c.state.params().unwrap().max_block_txs, 777);
        // A department may give up its last voter (the new one, weight 3): it stops
        // counting, and the others still pass proposals.
        run(
            &mut c,
            &voters,
            "revoke the new department's only voter",
            GovAction::RevokeRole {
                key: new_gov.public_key(),
                role: Role::Governance,
            },
        );
        voters.pop();
        assert!(!c.state.governance_voters().unwrap().can_vote("new"));
        let action = same_params(&c);
        run(
            &mut c,
            &voters,
            "a proposal after a department lost its voters",
            action,
        );
    }
}

/// The last member holding the governance role on the chain can be neither removed nor
/// stripped of the role: the proposal is refused up front, and if it was proposed while
/// others remained, it fails when it passes.
#[test]
fn the_last_governance_member_cannot_be_removed() {
    let mut c = chain_of(1);
    for action in [
        GovAction::RemoveMember {
            key: gov_of(0).public_key(),
        },
        GovAction::RevokeRole {
            key: gov_of(0).public_key(),
            role: Role::Governance,
        },
    ] {
        match c.run(&gov_of(0), propose(action)) {
            Err(Rejection::InvalidAction(reason)) => {
                assert!(reason.contains("last active member"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
    // Other roles of the last voter may be revoked.
    let st = pass(
        &mut c,
        GovAction::RevokeRole {
            key: gov_of(0).public_key(),
            role: Role::Anchor,
        },
        &[gov_of(0)],
    );
    assert_executed(st, "revoking a role it does not even hold");

    // Two departments, each with one voter; each proposes removing the other's voter.
    let mut c = chain_of(2);
    let (a, b) = (gov_of(0), gov_of(1));
    let remove_a = c.tx(
        &b,
        propose(GovAction::RemoveMember {
            key: a.public_key(),
        }),
    );
    let remove_b = c.tx(
        &a,
        propose(GovAction::RevokeRole {
            key: b.public_key(),
            role: Role::Governance,
        }),
    );
    c.run_vtx(&remove_a).unwrap();
    c.run_vtx(&remove_b).unwrap();
    // a agrees to its own removal: 2 of 2, executed; d0 no longer counts.
    c.run(&a, vote(remove_a.id(), true)).unwrap();
    assert_executed(
        c.state.proposal(&remove_a.id()).unwrap().unwrap().status,
        "removing a",
    );
    assert!(!c.state.governance_voters().unwrap().can_vote("d0"));
    // b alone now decides; removing b would leave no one: the proposal fails.
    c.run(&b, vote(remove_b.id(), true)).unwrap();
    match c.state.proposal(&remove_b.id()).unwrap().unwrap().status {
        ProposalStatus::Failed { reason, .. } => {
            assert!(reason.contains("last active member"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.state.governance_voters().unwrap().count("d1"), 1);
    // And b still governs alone.
    let st = pass_same(&mut c, &[b]);
    assert_executed(st, "b alone");
}

/// A department that loses all its voters stops counting, for new proposals and for those
/// already open (judged at their next vote); its earlier votes count for nothing.
#[test]
fn a_department_without_voters_stops_counting() {
    let mut c = Chain::new();
    let g = genesis_state(&c.genesis).unwrap().writes;
    let voters: GovernanceVoters =
        codec::decode_prefix_exact(g[keys::GOVERNANCE_VOTERS].as_ref().unwrap()).unwrap();
    assert_eq!(
        voters.counts,
        vec![
            ("civil".to_string(), 1),
            ("health".to_string(), 1),
            ("land".to_string(), 1)
        ]
    );
    // Open before civil loses its voter: land yes (1 of 3).
    let before = c.tx(&land_gov(), propose(same_params(&c)));
    c.run_vtx(&before).unwrap();
    // Civil votes yes on another, then loses its only voter.
    let civil_yes = c.tx(&civil_gov(), propose(same_params(&c)));
    c.run_vtx(&civil_yes).unwrap();
    let st = pass(
        &mut c,
        GovAction::RemoveMember {
            key: civil_gov().public_key(),
        },
        &[land_gov(), health_gov(), civil_gov()],
    );
    assert_executed(st, "removing civil's voter");
    assert!(!c.state.governance_voters().unwrap().can_vote("civil"));
    // The open proposal: health's yes makes 2 of 2.
    c.run(&health_gov(), vote(before.id(), true)).unwrap();
    assert_executed(
        c.state.proposal(&before.id()).unwrap().unwrap().status,
        "the proposal open before",
    );
    // Civil's recorded yes counts for nothing: land's yes makes 1 of 2, still open; a
    // rejection by health then decides it.
    c.run(&land_gov(), vote(civil_yes.id(), true)).unwrap();
    assert_eq!(
        c.state.proposal(&civil_yes.id()).unwrap().unwrap().status,
        ProposalStatus::Open
    );
    c.run(&health_gov(), vote(civil_yes.id(), false)).unwrap();
    assert!(matches!(
        c.state.proposal(&civil_yes.id()).unwrap().unwrap().status,
        ProposalStatus::Rejected { .. }
    ));
    // Civil counts again once it has a voter again.
    let new_civil = key_n(5);
    let st = pass(
        &mut c,
        gov_member(&new_civil, "civil", &[Role::Governance]),
        &[land_gov(), health_gov()],
    );
    assert_executed(st, "a new voter for civil");
    let st = pass_same(&mut c, &[land_gov(), health_gov()]);
    assert_eq!(st, ProposalStatus::Open, "2 of 3 again");
}

/// splitmix64: a small seeded generator, the same sequence on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

/// One member key per department holding the governance role (the first in `keys` order),
/// by department id.
fn voters_by_department(
    c: &Chain,
    keys: &[SecretKey],
) -> std::collections::BTreeMap<String, Vec<SecretKey>> {
    let mut out: std::collections::BTreeMap<String, Vec<SecretKey>> = Default::default();
    for k in keys {
        if let Some(m) = c.state.member(&k.public_key()).unwrap()
            && m.active
            && m.roles.contains(Role::Governance)
        {
            out.entry(m.department).or_default().push(k.clone());
        }
    }
    out
}

/// Random sequences of governance proposals and votes, from chains of 1 to 7 departments.
/// After every step: the stored voter counts match the member records, some member can
/// still vote, and if every department that can vote approves a harmless proposal, it
/// executes.
#[test]
fn random_governance_never_deadlocks() {
    // What the sequences went through, to show they reach the interesting states.
    let (mut decided, mut last_voter_refused, mut lost_all_voters) = (0, 0, 0);
    for seed in 0..24u64 {
        let mut rng = Rng(seed);
        let n = 1 + rng.below(7);
        let mut c = chain_of(n);
        let mut keys: Vec<SecretKey> = (0..n).map(gov_of).collect();
        let mut next_key = 1u32;
        let mut next_dept = 0u32;
        let mut open: Vec<Hash> = vec![];
        for step in 0..60 {
            let ctx = format!("seed {seed}, {n} departments, step {step}");
            let by_dept = voters_by_department(&c, &keys);
            let any_voter = |rng: &mut Rng| {
                let ds: Vec<&Vec<SecretKey>> = by_dept.values().collect();
                let d = ds[rng.below(ds.len())];
                d[rng.below(d.len())].clone()
            };
            let op = rng.below(7);
            if op >= 5 && !open.is_empty() {
                // Vote on an open proposal.
                let pid = open[rng.below(open.len())];
                let approve = rng.chance(3, 4);
                match c.run(&any_voter(&mut rng), vote(pid, approve)) {
                    Ok(_) | Err(Rejection::AlreadyVoted(_)) | Err(Rejection::ProposalClosed(_)) => {
                    }
                    Err(e) => panic!("{ctx}: vote: {e:?}"),
                }
            } else {
                let departments = c.state.departments().unwrap();
                let random_key = |rng: &mut Rng| keys[rng.below(keys.len())].public_key();
                let action = match op % 5 {
                    0 => {
                        next_dept += 1;
                        GovAction::AddDepartment {
                            id: format!("x{next_dept}"),
                            name: "X".into(),
                            governance_weight: 1 + rng.below(3) as u32,
                        }
                    }
                    1 => {
                        let department = departments[rng.below(departments.len())].id.clone();
                        let k = if rng.chance(1, 4) {
                            keys[rng.below(keys.len())].clone()
                        } else {
                            next_key += 1;
                            let k = key_n(next_key);
                            keys.push(k.clone());
                            k
                        };
                        let rs: &[Role] = if rng.chance(2, 3) {
                            &[Role::Governance, Role::Anchor]
                        } else {
                            &[Role::Anchor]
                        };
                        gov_member(&k, &department, rs)
                    }
                    2 => GovAction::RemoveMember {
                        key: random_key(&mut rng),
                    },
                    3 => GovAction::GrantRole {
                        key: random_key(&mut rng),
                        role: Role::Governance,
                    },
                    _ => GovAction::RevokeRole {
                        key: random_key(&mut rng),
                        role: Role::Governance,
                    },
                };
                let vtx = c.tx(&any_voter(&mut rng), propose(action));
                match c.run_vtx(&vtx) {
                    Ok(_) => {
                        open.push(vtx.id());
                        // Some of the other departments vote at once.
                        for (_, ks) in by_dept.iter() {
                            if rng.chance(1, 2) {
                                let k = &ks[rng.below(ks.len())];
                                match c.run(k, vote(vtx.id(), rng.chance(3, 4))) {
                                    Ok(_)
                                    | Err(Rejection::AlreadyVoted(_))
                                    | Err(Rejection::ProposalClosed(_))
                                    | Err(Rejection::SignerRemoved(_))
                                    | Err(Rejection::MissingRole { .. }) => {}
                                    Err(e) => panic!("{ctx}: vote: {e:?}"),
                                }
                            }
                        }
                    }
                    // Not applicable to the state (an inactive member, the last voter…).
                    Err(Rejection::InvalidAction(reason)) => {
                        if reason.contains("last active member") {
                            last_voter_refused += 1;
                        }
                        *c.nonces.get_mut(&vtx.tx().tx.signer.0).unwrap() -= 1;
                    }
                    Err(e) => panic!("{ctx}: propose: {e:?}"),
                }
            }
            open.retain(|pid| {
                let still = c.state.proposal(pid).unwrap().unwrap().status == ProposalStatus::Open;
                decided += usize::from(!still);
                still
            });

            // The stored counts match the member records.
            let had = by_dept.keys().cloned().collect::<Vec<_>>();
            let by_dept = voters_by_department(&c, &keys);
            lost_all_voters += had.iter().filter(|d| !by_dept.contains_key(*d)).count();
            let expected: Vec<(String, u64)> = by_dept
                .iter()
                .map(|(d, ks)| (d.clone(), ks.len() as u64))
                .collect();
            assert_eq!(
                c.state.governance_voters().unwrap().counts,
                expected,
                "{ctx}"
            );
            assert!(!by_dept.is_empty(), "{ctx}: no one can vote");
            // All voting departments approve a harmless proposal: it executes.
            let mut probe = c.clone();
            let everyone: Vec<SecretKey> = by_dept.values().map(|ks| ks[0].clone()).collect();
            let action = same_params(&probe);
            let st = pass(&mut probe, action, &everyone);
            assert_executed(st, &ctx);
        }
    }
    assert!(
        decided > 100 && last_voter_refused > 0 && lost_all_voters > 0,
        "decided {decided}, last voter refused {last_voter_refused}, departments that lost all \
         their voters {lost_all_voters}"
    );
}
