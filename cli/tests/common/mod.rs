//! Test fixtures: a chain built in a real store (the node's own storage code), a chain
//! source over it for the auditor, and a minimal HTTP stub of the node API over it so the
//! CLI binary can be driven end to end before the real node exists.
#![allow(dead_code)]

use govledger_cli::audit::{BoxError, ChainSource};
use ledger::block::{BlockHeader, CommittedBlock};
use ledger::chain::build_block;
use ledger::crypto::SecretKey;
use ledger::execute::VerifiedTx;
use ledger::genesis::{ConsensusParams, Department, Genesis, Member, StateFormat};
use ledger::hash::{Hash, hash_document};
use ledger::store::Store;
use ledger::tx::*;
use ledger::validator::Validator;
use ledger::vote::{CommitCertificate, Vote, VoteType};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

/// The CLI binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_govledger"))
}

/// Runs the CLI with `args` (no GOVLEDGER_* from the environment).
pub fn run(args: &[&str]) -> Output {
    std::process::Command::new(bin())
        .args(args)
        .env_remove("GOVLEDGER_NODE")
        .env_remove("GOVLEDGER_KEY")
        .output()
        .expect("the govledger binary runs")
}

/// Exit code of a finished run.
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// Stdout as JSON.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// Stdout and stderr as text, for assertions and messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A chain in a store: one department `city`, four genesis validators (a fifth key is
/// added by governance in [`World::standard`]) and one clerk with every role.
pub struct World {
    pub genesis: Genesis,
    pub keys: Vec<SecretKey>,
    pub clerk: SecretKey,
    pub store: Store,
    pub dir: tempfile::TempDir,
    pub nonce: u64,
    /// Stores opened while the chain's own was closed for tampering.
    scratch: u32,
}

pub fn validator(k: &SecretKey) -> Validator {
    Validator {
        department: "city".into(),
        public_key: k.public_key(),
        power: 1,
        address: String::new(),
    }
}

pub fn anchor(doc: &[u8]) -> TxBody {
    TxBody::Anchor(Anchor {
        document_hash: hash_document(doc),
        label: "doc".into(),
    })
}

impl World {
    /// Overwrites a committed transaction's bytes behind the ledger's back, as an attacker
    /// with disk access would: the store is closed, its RocksDB opened raw (no ledger code,
    /// so no tamper switch exists in the ledger), the `txs` row of `leaf` rewritten, and the
    /// store reopened.
    pub fn tamper_tx_bytes(&mut self, leaf: u64, bytes: &[u8]) {
        let db_path = self.dir.path().join("db");
        // Close the store (RocksDB allows one open instance): a scratch store stands in.
        self.scratch += 1;
        let scratch = self.dir.path().join(format!("scratch-{}", self.scratch));
        drop(std::mem::replace(
            &mut self.store,
            Store::open(&scratch, &self.genesis).unwrap(),
        ));
        {
            let opts = rocksdb::Options::default();
            let cfs = rocksdb::DB::list_cf(&opts, &db_path).unwrap();
            let db = rocksdb::DB::open_cf(&opts, &db_path, &cfs).unwrap();
            let cf = db
                .cf_handle("txs")
                .expect("the store has a txs column family");
            assert!(
                db.get_cf(cf, leaf.to_be_bytes()).unwrap().is_some(),
                "leaf {leaf} is not in the store"
            );
            let mut wo = rocksdb::WriteOptions::default();
            wo.set_sync(true);
            db.put_cf_opt(cf, leaf.to_be_bytes(), bytes, &wo).unwrap();
        }
        self.store = Store::open(&db_path, &self.genesis).unwrap();
    }

    pub fn new(chain_id: &str) -> Self {
        let keys: Vec<SecretKey> = (1..=5).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let clerk = SecretKey::from_seed(&[42; 32]);
        let genesis = Genesis {
            chain_id: chain_id.into(),
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
            state_format: StateFormat::CURRENT,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db"), &genesis).unwrap();
        World {
            genesis,
            keys,
            clerk,
            store,
            dir,
            nonce: 0,
            scratch: 0,
        }
    }

    /// Block 1 anchors `DOC`; block 2 adds validator 5 (in force from height 4); block 3
    /// anchors; block 4 is empty; block 5 anchors `DOC2` among others; block 6 registers
    /// a parcel. Returns the ids of the `DOC` and `DOC2` anchors.
    pub fn standard(chain_id: &str) -> (World, Hash, Hash) {
        let mut w = World::new(chain_id);
        let a = w.block(vec![anchor(b"DOC"), anchor(b"other")])[0];
        let v5 = validator(&w.keys[4]);
        w.block(vec![TxBody::GovernancePropose(GovernancePropose {
            action: GovAction::AddValidator { validator: v5 },
            description: "add the fifth validator".into(),
        })]);
        w.block(vec![anchor(b"3")]);
        w.block(vec![]);
        let b = w.block(vec![anchor(b"x"), anchor(b"DOC2"), anchor(b"y")])[1];
        w.block(vec![TxBody::LandRegister(LandRegister {
            parcel_id: "P-1".into(),
            owner: "alice".into(),
            document_hash: hash_document(b"title"),
        })]);
        (w, a, b)
    }

    pub fn cert(&self, header: &BlockHeader) -> CommitCertificate {
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

    pub fn sign(&mut self, body: TxBody) -> SignedTx {
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
        t
    }

    /// Commits a block with the given bodies signed by the clerk; returns the record ids.
    pub fn block(&mut self, bodies: Vec<TxBody>) -> Vec<Hash> {
        let txs: Vec<SignedTx> = bodies.into_iter().map(|b| self.sign(b)).collect();
        self.commit_txs(txs).unwrap()
    }

    /// Commits already signed transactions in one block; refused ones are an error with
    /// the state machine's reason code and message.
    pub fn commit_txs(&mut self, txs: Vec<SignedTx>) -> Result<Vec<Hash>, (String, String)> {
        let vtxs: Vec<VerifiedTx> = txs
            .into_iter()
            .map(|t| VerifiedTx::verify(t).map_err(|e| ("bad_signature".into(), e.to_string())))
            .collect::<Result<_, _>>()?;
        let tip = self.store.load_tip().unwrap();
        let proposer = self.keys[0].public_key();
        // Block times follow the wall clock, as a real proposer's do: the CLI stamps
        // `created_at_ms` with it, and blocks refuse transactions created far after them.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let time_ms = (tip.time_ms + 1000).max(now_ms);
        let (ex, refused) = build_block(self.store.state(), &tip, proposer, time_ms, vtxs).unwrap();
        if let Some((_, r)) = refused.first() {
            return Err((r.code().to_string(), r.to_string()));
        }
        let cert = self.cert(&ex.header);
        self.store.commit_block(&ex, &cert).unwrap();
        Ok(ex.txs.iter().map(|t| t.id()).collect())
    }

    pub fn height(&self) -> u64 {
        self.store.stored_tip().unwrap().height
    }

    /// Writes the genesis file and returns its path.
    pub fn write_genesis(&self, dir: &Path) -> PathBuf {
        let p = dir.join("genesis.json");
        std::fs::write(&p, self.genesis.to_json()).unwrap();
        p
    }

    /// Writes the clerk's key file and returns its path.
    pub fn write_clerk_key(&self, dir: &Path) -> PathBuf {
        let p = dir.join("clerk.key");
        ledger::keyfile::write_new(&p, &self.clerk).unwrap();
        p
    }
}

/// The auditor's view of a store, as the node's `/v1/chain/blocks` would serve it.
pub struct StoreSource<'a>(pub &'a Store);

impl ChainSource for StoreSource<'_> {
    fn blocks(&mut self, from: u64, limit: u32) -> Result<Vec<CommittedBlock>, BoxError> {
        let mut out = vec![];
        for h in from..from + u64::from(limit) {
            match self.0.committed_block(h)? {
                Some(b) => out.push(b),
                None => break,
            }
        }
        Ok(out)
    }
    fn consistency_proof(&mut self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, BoxError> {
        Ok(self.0.consistency_proof(old_size, new_size)?)
    }
}

// ---- a stub of the node's HTTP API -------------------------------------------------------

/// A stub node serving a [`World`] on a loopback port. Submissions are executed and
/// committed in a block of their own at once. `bad_nonce_first` makes the first submission
/// fail with `bad_nonce`, as when another client raced it.
pub struct StubNode {
    pub url: String,
    pub world: Arc<Mutex<World>>,
    pub submissions: Arc<Mutex<u32>>,
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(stream: &mut std::net::TcpStream) -> Option<Request> {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|s| !s.is_empty())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Some(Request {
        method,
        path: path.to_string(),
        query,
        body,
    })
}

fn respond(stream: &mut std::net::TcpStream, status: u16, ctype: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn json_response(stream: &mut std::net::TcpStream, status: u16, v: serde_json::Value) {
    respond(stream, status, "application/json", v.to_string().as_bytes());
}

fn error(code: &str, reason: Option<&str>, message: &str) -> serde_json::Value {
    let mut v = serde_json::json!({ "error": code, "message": message });
    if let Some(r) = reason {
        v["reason"] = r.into();
    }
    v
}

fn record_view(w: &World, leaf: u64) -> serde_json::Value {
    let stx = w.store.tx_at(leaf).unwrap().unwrap();
    let loc = w.store.tx_location(&stx.id()).unwrap().unwrap();
    let header = w.store.header(loc.height).unwrap().unwrap();
    serde_json::json!({
        "id": stx.id(), "leaf_index": leaf, "height": loc.height,
        "block_time_ms": header.time_ms, "kind": stx.tx.body.kind(),
        "signer": stx.tx.signer, "department": "city", "tx": stx,
    })
}

impl StubNode {
    pub fn start(world: World, bad_nonce_first: bool) -> StubNode {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let world = Arc::new(Mutex::new(world));
        let submissions = Arc::new(Mutex::new(0u32));
        let (w, s) = (world.clone(), submissions.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(req) = read_request(&mut stream) else {
                    continue;
                };
                let mut world = w.lock().unwrap();
                handle(&mut world, &s, bad_nonce_first, req, &mut stream);
            }
        });
        StubNode {
            url,
            world,
            submissions,
        }
    }
}

fn handle(
    w: &mut World,
    submissions: &Mutex<u32>,
    bad_nonce_first: bool,
    req: Request,
    stream: &mut std::net::TcpStream,
) {
    let q = |k: &str| {
        req.query
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
    };
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let g = w.genesis.clone();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["v1", "status"]) => {
            let tip = w.store.stored_tip().unwrap();
            json_response(
                stream,
                200,
                serde_json::json!({
                    "chain_id": g.chain_id, "genesis_hash": g.hash(), "height": tip.height,
                    "block_hash": tip.block_hash, "log_size": tip.log_size,
                }),
            );
        }
        ("GET", ["v1", "genesis"]) => {
            respond(stream, 200, "application/json", g.to_json().as_bytes());
        }
        ("GET", ["v1", "accounts", key]) => {
            let key = ledger::PublicKey::from_hex(key).unwrap();
            let n = if key == w.clerk.public_key() {
                w.nonce
            } else {
                0
            };
            json_response(
                stream,
                200,
                serde_json::json!({"key": key, "member": null, "validator": false,
                                   "next_nonce": n, "pending_nonce": n}),
            );
        }
        ("POST", ["v1", "txs"]) => {
            let mut count = submissions.lock().unwrap();
            *count += 1;
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let bytes = hex::decode(body["tx"].as_str().unwrap()).unwrap();
            let Ok(stx) = SignedTx::decode(&bytes) else {
                return json_response(stream, 400, error("bad_encoding", None, "bad tx"));
            };
            if bad_nonce_first && *count == 1 {
                // Another client took this nonce first.
                w.nonce += 1;
                let filler = Tx {
                    chain_id: g.chain_id.clone(),
                    signer: w.clerk.public_key(),
                    nonce: w.nonce - 1,
                    created_at_ms: 0,
                    expires_at_ms: u64::MAX,
                    body: anchor(b"race"),
                }
                .sign(&w.clerk);
                w.commit_txs(vec![filler]).unwrap();
                return json_response(
                    stream,
                    422,
                    error(
                        "refused",
                        Some("bad_nonce"),
                        "nonce is not the signer's next",
                    ),
                );
            }
            let wait = q("wait").as_deref() == Some("true");
            let id = stx.id();
            match w.commit_txs(vec![stx]) {
                Ok(_) => {
                    w.nonce += 1;
                    let loc = w.store.tx_location(&id).unwrap().unwrap();
                    if wait {
                        json_response(
                            stream,
                            200,
                            serde_json::json!({"id": id, "status": "committed",
                                "height": loc.height, "leaf_index": loc.leaf_index}),
                        );
                    } else {
                        json_response(
                            stream,
                            202,
                            serde_json::json!({"id": id, "status": "pending"}),
                        );
                    }
                }
                Err((code, message)) => {
                    json_response(stream, 422, error("refused", Some(&code), &message))
                }
            }
        }
        ("GET", ["v1", "txs", id]) => {
            let id = Hash::from_hex(id).unwrap();
            match w.store.tx_location(&id).unwrap() {
                Some(loc) => json_response(
                    stream,
                    200,
                    serde_json::json!({"id": id, "status": "committed",
                                       "record": record_view(w, loc.leaf_index)}),
                ),
                None => json_response(stream, 404, error("not_found", None, "unknown record")),
            }
        }
        ("GET", ["v1", "documents", hash]) => {
            let h = Hash::from_hex(hash).unwrap();
            let size = w.store.stored_tip().unwrap().log_size;
            let after = q("after").and_then(|a| a.parse::<u64>().ok());
            let limit = q("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(100);
            let mut records: Vec<serde_json::Value> = vec![];
            let mut next = serde_json::Value::Null;
            for leaf in 0..size {
                if after.is_some_and(|a| leaf <= a) {
                    continue;
                }
                let stx = w.store.tx_at(leaf).unwrap().unwrap();
                if ledger::proof::document_hashes(&stx.tx.body).contains(&h) {
                    if records.len() == limit {
                        next = records[limit - 1]["leaf_index"].clone();
                        break;
                    }
                    records.push(record_view(w, leaf));
                }
            }
            json_response(
                stream,
                200,
                serde_json::json!({"records": records, "next": next}),
            );
        }
        ("GET", ["v1", "chain", "blocks"]) => {
            let from: u64 = q("from").unwrap().parse().unwrap();
            let limit: u64 = q("limit").unwrap().parse().unwrap();
            let mut blocks = vec![];
            for h in from..from + limit.min(100) {
                match w.store.committed_block(h).unwrap() {
                    Some(b) => blocks.push(b),
                    None => break,
                }
            }
            respond(
                stream,
                200,
                "application/octet-stream",
                &ledger::codec::encode(&blocks),
            );
        }
        ("GET", ["v1", "consistency"]) => {
            let old: u64 = q("old_size").unwrap().parse().unwrap();
            let new: u64 = q("new_size").unwrap().parse().unwrap();
            let proof = w.store.consistency_proof(old, new).unwrap();
            json_response(
                stream,
                200,
                serde_json::json!({"old_size": old, "new_size": new, "proof": proof}),
            );
        }
        ("GET", ["v1", "proofs", "status", kind, id]) => {
            let subject = match *kind {
                "approval" => Some(ledger::status::Subject::Approval(id.to_string())),
                "parcel" => Some(ledger::status::Subject::Parcel(id.to_string())),
                "resource" => Some(ledger::status::Subject::Resource(id.to_string())),
                "pseudonym" => Hash::from_hex(id)
                    .ok()
                    .map(ledger::status::Subject::Pseudonym),
                _ => None,
            };
            match subject.and_then(|s| w.store.status_bundle(&g, &s, 1000).unwrap()) {
                Some(b) => json_response(stream, 200, serde_json::to_value(&b).unwrap()),
                None => json_response(stream, 404, error("not_found", None, "no such subject")),
            }
        }
        ("GET", ["v1", "proofs", id]) => {
            let id = Hash::from_hex(id).unwrap();
            match w.store.proof_bundle(&g, &id).unwrap() {
                Some(b) => json_response(stream, 200, serde_json::to_value(&b).unwrap()),
                None => json_response(stream, 404, error("not_found", None, "unknown record")),
            }
        }
        ("GET", ["v1", "checkpoint"]) => {
            let h = q("height").and_then(|h| h.parse().ok());
            match w.store.checkpoint(&g, h).unwrap() {
                Some(c) => json_response(stream, 200, serde_json::to_value(&c).unwrap()),
                None => json_response(stream, 404, error("not_found", None, "no such height")),
            }
        }
        _ => json_response(stream, 404, error("not_found", None, "no such route")),
    }
}

/// Writes `value` as pretty JSON to `dir/name` and returns the path.
pub fn write_json<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(value).unwrap()).unwrap();
    p
}

/// Runs `govledger verify BUNDLE --genesis GENESIS EXTRA…`.
pub fn verify_cli(bundle: &Path, genesis: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "verify",
        bundle.to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run(&args)
}
