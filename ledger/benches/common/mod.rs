//! Fixtures shared by the ledger benchmarks: a genesis with four validators and several
//! clerks holding every role, a generator of valid mixed transactions of about 300 bytes
//! (approvals, land registrations, data-access events, anchors), commit certificates,
//! and a chain of blocks built and committed into a store.
//!
//! Every generated transaction is valid when applied in generation order: each clerk has
//! its own nonce sequence, ids are unique, and data-access events name catalogue
//! resources registered by [`Fixture::catalog_bodies`] in the first block.
#![allow(dead_code)]

use ledger::block::BlockHeader;
use ledger::chain::{ChainTip, ExecutedBlock, build_block};
use ledger::crypto::SecretKey;
use ledger::execute::{VerifiedTx, genesis_state, verify_batch};
use ledger::genesis::{ConsensusParams, Department, Genesis, Member, StateFormat};
use ledger::hash::hash_document;
use ledger::state::{MemState, StateRead};
use ledger::tx::*;
use ledger::validator::Validator;
use ledger::vote::{CommitCertificate, Vote, VoteType};

/// Departments (one validator each).
pub const DEPARTMENTS: usize = 4;
/// Clerks per department.
pub const CLERKS_PER_DEPARTMENT: usize = 2;
/// Transactions per block in the chain-building fixtures.
pub const BLOCK_TXS: usize = 1000;
/// Chain id of the fixtures.
pub const CHAIN_ID: &str = "bench";
/// Genesis time (ms); blocks follow one second apart.
pub const GENESIS_TIME_MS: u64 = 1_700_000_000_000;

/// splitmix64: a fixed, dependency-free stream of pseudo-random numbers.
pub fn randoms(seed: u64) -> impl Iterator<Item = u64> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn department_id(d: usize) -> String {
    format!("dept-{}", d + 1)
}

fn resource_id(d: usize) -> String {
    format!("RES-{}-HOUSEHOLD-REGISTER", department_id(d))
}

/// Keys, genesis and the per-clerk nonces of the generator.
pub struct Fixture {
    /// The genesis.
    pub genesis: Genesis,
    /// Validator keys, in genesis order.
    pub validators: Vec<SecretKey>,
    /// Clerk keys; clerk `i` belongs to department `i % DEPARTMENTS`.
    pub clerks: Vec<SecretKey>,
    nonces: Vec<u64>,
    seq: u64,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    /// Four validators, [`DEPARTMENTS`] × [`CLERKS_PER_DEPARTMENT`] clerks with every role.
    pub fn new() -> Self {
        let validators: Vec<SecretKey> = (0..DEPARTMENTS)
            .map(|i| SecretKey::from_seed(&[i as u8 + 1; 32]))
            .collect();
        let clerks: Vec<SecretKey> = (0..DEPARTMENTS * CLERKS_PER_DEPARTMENT)
            .map(|i| SecretKey::from_seed(&[i as u8 + 100; 32]))
            .collect();
        let genesis = Genesis {
            chain_id: CHAIN_ID.into(),
            genesis_time_ms: GENESIS_TIME_MS,
            departments: (0..DEPARTMENTS)
                .map(|d| Department {
                    id: department_id(d),
                    name: format!("Department {}", d + 1),
                    governance_weight: 1,
                })
                .collect(),
            members: clerks
                .iter()
                .enumerate()
                .map(|(i, k)| Member {
                    key: k.public_key(),
                    department: department_id(i % DEPARTMENTS),
                    roles: RoleSet::all(),
                    name: format!("clerk {i}"),
                })
                .collect(),
            validators: validators
                .iter()
                .enumerate()
                .map(|(d, k)| Validator {
                    department: department_id(d),
                    public_key: k.public_key(),
                    power: 1,
                    address: String::new(),
                })
                .collect(),
            params: ConsensusParams::default(),
            // GOVLEDGER_BENCH_STATE_FORMAT=1 measures a chain of the chained root, for a
            // before/after comparison in one sitting.
            state_format: match std::env::var("GOVLEDGER_BENCH_STATE_FORMAT").as_deref() {
                Ok("1") => StateFormat::V1,
                _ => StateFormat::CURRENT,
            },
        };
        genesis.validate().expect("the bench genesis is valid");
        let nonces = vec![0; clerks.len()];
        Fixture {
            genesis,
            validators,
            clerks,
            nonces,
            seq: 0,
        }
    }

    /// The genesis state in memory and its tip.
    pub fn genesis_mem(&self) -> (MemState, ChainTip) {
        let gs = genesis_state(&self.genesis).expect("genesis state");
        let mut mem = MemState::new();
        mem.commit(&gs.writes, gs.tree.as_ref());
        (mem, ChainTip::genesis(&self.genesis, gs.root))
    }

    fn sign(&mut self, clerk: usize, body: TxBody) -> SignedTx {
        let nonce = self.nonces[clerk];
        self.nonces[clerk] += 1;
        Tx {
            chain_id: CHAIN_ID.into(),
            signer: self.clerks[clerk].public_key(),
            nonce,
            created_at_ms: GENESIS_TIME_MS,
            expires_at_ms: u64::MAX,
            body,
        }
        .sign(&self.clerks[clerk])
    }

    /// One unconditionally shared catalogue resource per department (signed by the
    /// department's first clerk): the first block of every chain, so that data-access
    /// events apply.
    pub fn catalog_txs(&mut self) -> Vec<SignedTx> {
        (0..DEPARTMENTS)
            .map(|d| {
                let body = TxBody::CatalogRegister(CatalogEntry {
                    resource_id: resource_id(d),
                    name: "Household register".into(),
                    sharing: SharingType::Unconditional,
                    open: OpenAttribute::Closed,
                    format: "database".into(),
                    link: format!("https://data.example.gov/{}/household", department_id(d)),
                });
                self.sign(d, body)
            })
            .collect()
    }

    /// The body of mixed record `n`: approvals, land registrations, data-access events
    /// and anchors in turn, each about 300 bytes once signed.
    fn body(&self, n: u64, clerk: usize) -> TxBody {
        let doc = hash_document(&n.to_le_bytes());
        match n % 4 {
            0 => TxBody::ApprovalIssue(ApprovalIssue {
                approval_id: format!("BP-2026-{n:010}"),
                kind: "building-permit".into(),
                subject: format!("91310000MA1K{:06}", n % 1_000_000),
                decision: Decision::Granted,
                document_hash: doc,
                valid_from_ms: GENESIS_TIME_MS,
                valid_until_ms: Some(GENESIS_TIME_MS + 365 * 86_400_000),
                note: "granted with the standard height and setback conditions".into(),
            }),
            1 => TxBody::LandRegister(LandRegister {
                parcel_id: format!("110105-{:03}-{n:010}", n % 997),
                owner: format!("Holder {n} of the Eastern District Housing Cooperative"),
                document_hash: doc,
            }),
            2 => TxBody::DataAccess(DataAccess {
                subject: hash_document(&(n ^ 0x5555).to_le_bytes()),
                resource_id: resource_id((clerk + 1 + n as usize) % DEPARTMENTS),
                purpose: "verification of household membership for a housing subsidy claim".into(),
                legal_basis: format!("Housing Subsidy Regulation art. 12, case {n}"),
                accessed_at_ms: GENESIS_TIME_MS,
            }),
            _ => TxBody::Anchor(Anchor {
                document_hash: doc,
                label: format!(
                    "minutes of the district council meeting {n}, resolutions and annexes, public version"
                ),
            }),
        }
    }

    /// The next `n` mixed transactions, clerks taking turns.
    pub fn next_txs(&mut self, n: usize) -> Vec<SignedTx> {
        (0..n)
            .map(|_| {
                let s = self.seq;
                self.seq += 1;
                let clerk = (s % self.clerks.len() as u64) as usize;
                let body = self.body(s, clerk);
                self.sign(clerk, body)
            })
            .collect()
    }

    /// The next `n` mixed transactions, verified (in one batch).
    pub fn next_verified(&mut self, n: usize) -> Vec<VerifiedTx> {
        verify(self.next_txs(n))
    }

    /// A commit certificate for `header` signed by every validator.
    pub fn cert(&self, header: &BlockHeader) -> CommitCertificate {
        let votes: Vec<Vote> = self
            .validators
            .iter()
            .map(|k| {
                Vote::new_signed(
                    CHAIN_ID,
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

    /// Builds the next block on `tip` from `txs` (all must apply).
    pub fn build<S: StateRead>(
        &self,
        state: S,
        tip: &ChainTip,
        txs: Vec<VerifiedTx>,
    ) -> ExecutedBlock {
        let n = txs.len();
        let (executed, refused) = build_block(
            state,
            tip,
            self.validators[0].public_key(),
            tip.time_ms + 1000,
            txs,
        )
        .expect("block builds");
        assert!(refused.is_empty(), "refused: {:?}", refused.first());
        assert_eq!(executed.txs.len(), n);
        executed
    }
}

/// Verifies a batch, panicking on an invalid signature (fixtures are always valid).
pub fn verify(txs: Vec<SignedTx>) -> Vec<VerifiedTx> {
    verify_batch(txs)
        .into_iter()
        .map(|r| r.expect("fixture signature verifies"))
        .collect()
}

/// Mean encoded size of `txs` (bytes).
pub fn mean_size(txs: &[SignedTx]) -> f64 {
    txs.iter().map(|t| t.encode().len()).sum::<usize>() as f64 / txs.len().max(1) as f64
}

/// A store holding a chain: the catalogue block, then blocks of [`BLOCK_TXS`] mixed
/// transactions.
#[cfg(feature = "rocksdb")]
pub struct StoreChain {
    /// The generator (its nonces continue the chain).
    pub fixture: Fixture,
    /// The store.
    pub store: ledger::store::Store,
    /// The store's tip.
    pub tip: ChainTip,
    /// Record ids of the mixed transactions committed so far, in log order.
    pub ids: Vec<ledger::hash::Hash>,
    /// Bytes of the mixed transactions committed so far (their canonical encodings).
    pub raw_bytes: u64,
    _dir: tempfile::TempDir,
}

#[cfg(feature = "rocksdb")]
impl StoreChain {
    /// A new store in a temporary directory holding the catalogue block.
    pub fn new() -> Self {
        let mut fixture = Fixture::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ledger::store::Store::open(dir.path(), &fixture.genesis).expect("store opens");
        let tip = store.load_tip().expect("tip");
        let catalog = verify(fixture.catalog_txs());
        let mut chain = StoreChain {
            fixture,
            store,
            tip,
            ids: vec![],
            raw_bytes: 0,
            _dir: dir,
        };
        chain.commit(catalog);
        chain.ids.clear();
        chain.raw_bytes = 0;
        chain
    }

    /// Builds and commits one block of `txs`.
    pub fn commit(&mut self, txs: Vec<VerifiedTx>) {
        let executed = self.fixture.build(self.store.state(), &self.tip, txs);
        let cert = self.fixture.cert(&executed.header);
        self.store
            .commit_block(&executed, &cert)
            .expect("block commits");
        self.ids.extend(executed.txs.iter().map(VerifiedTx::id));
        self.raw_bytes += executed
            .txs
            .iter()
            .map(|t| t.bytes().len() as u64)
            .sum::<u64>();
        self.tip = self.tip.after(&executed);
    }

    /// Builds (not commits) the next block of [`BLOCK_TXS`] fresh transactions.
    pub fn next_block(&mut self) -> (ExecutedBlock, CommitCertificate) {
        let txs = self.fixture.next_verified(BLOCK_TXS);
        let executed = self.fixture.build(self.store.state(), &self.tip, txs);
        let cert = self.fixture.cert(&executed.header);
        (executed, cert)
    }

    /// Commits a block made by [`Self::next_block`].
    pub fn commit_built(&mut self, executed: &ExecutedBlock, cert: &CommitCertificate) {
        self.store
            .commit_block(executed, cert)
            .expect("block commits");
        self.ids.extend(executed.txs.iter().map(VerifiedTx::id));
        self.raw_bytes += executed
            .txs
            .iter()
            .map(|t| t.bytes().len() as u64)
            .sum::<u64>();
        self.tip = self.tip.after(executed);
    }

    /// Grows the chain to at least `records` mixed records, reporting progress on stderr.
    pub fn grow_to(&mut self, records: usize) {
        let started = std::time::Instant::now();
        let mut last_report = started;
        while self.ids.len() < records {
            let (executed, cert) = self.next_block();
            self.commit_built(&executed, &cert);
            if last_report.elapsed().as_secs() >= 10 {
                last_report = std::time::Instant::now();
                eprintln!(
                    "  building the store: {} / {records} records, {:.0} s",
                    self.ids.len(),
                    started.elapsed().as_secs_f64()
                );
            }
        }
        self.store.flush().expect("flush");
        let built = self.store.disk_bytes();
        let compacting = std::time::Instant::now();
        self.store.compact().expect("compact");
        let raw = self.raw_bytes.max(1) as f64;
        eprintln!(
            "built a store of {} records ({} bytes of transactions) in {:.1} s: {} bytes on \
             disk ({:.2}x), {} bytes ({:.2}x) after a full compaction ({:.1} s)",
            self.ids.len(),
            self.raw_bytes,
            started.elapsed().as_secs_f64(),
            built,
            built as f64 / raw,
            self.store.disk_bytes(),
            self.store.disk_bytes() as f64 / raw,
            compacting.elapsed().as_secs_f64()
        );
    }
}
