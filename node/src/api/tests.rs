//! The API against a real store: blocks are committed directly (as the driver would),
//! requests go through the router without sockets, except for `serve` itself.

use super::limits::{RateLimiter, client_key};
use super::router;
use crate::app::{App, NodeStatus, Waiters};
use crate::config::ApiConfig;
use crate::mempool::{Mempool, MempoolLimits};
use crate::metrics::Metrics;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use ledger::block::CommittedBlock;
use ledger::chain::build_block;
use ledger::crypto::SecretKey;
use ledger::execute::VerifiedTx;
use ledger::genesis::{ConsensusParams, Department, Genesis, Member, StateFormat};
use ledger::hash::{Hash, hash_document};
use ledger::proof::{Checkpoint, ProofBundle};
use ledger::store::{Store, TxLocation};
use ledger::tx::*;
use ledger::validator::Validator;
use ledger::vote::{CommitCertificate, Evidence, Vote, VoteType};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tower::ServiceExt;

const GENESIS_TIME_MS: u64 = 1_700_000_000_000;

struct World {
    app: Arc<App>,
    router: Router,
    /// Validator keys; 0-1 of `city`, 2-3 of `court`.
    vkeys: Vec<SecretKey>,
    /// Member of `city` with every role.
    clerk: SecretKey,
    /// Member of `court` with the `anchor` role only.
    anchorer: SecretKey,
    announced: mpsc::Receiver<Vec<VerifiedTx>>,
    _status: watch::Sender<NodeStatus>,
    _dir: tempfile::TempDir,
}

fn dept(id: &str) -> Department {
    Department {
        id: id.into(),
        name: id.to_uppercase(),
        governance_weight: 1,
    }
}

impl World {
    fn new() -> Self {
        Self::with_config(ApiConfig::default())
    }

    fn with_config(api_config: ApiConfig) -> Self {
        Self::build(api_config, MempoolLimits::default())
    }

    fn build(api_config: ApiConfig, mempool_limits: MempoolLimits) -> Self {
        let vkeys: Vec<SecretKey> = (1..=4).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let clerk = SecretKey::from_seed(&[42; 32]);
        let anchorer = SecretKey::from_seed(&[43; 32]);
        let genesis = Genesis {
            chain_id: "api-test".into(),
            genesis_time_ms: GENESIS_TIME_MS,
            departments: vec![dept("city"), dept("court")],
            members: vec![
                Member {
                    key: clerk.public_key(),
                    department: "city".into(),
                    roles: RoleSet::all(),
                    name: "clerk".into(),
                },
                Member {
                    key: anchorer.public_key(),
                    department: "court".into(),
                    roles: [Role::Anchor].into_iter().collect(),
                    name: "anchorer".into(),
                },
            ],
            validators: vkeys
                .iter()
                .enumerate()
                .map(|(i, k)| Validator {
                    department: if i < 2 { "city" } else { "court" }.into(),
                    public_key: k.public_key(),
                    power: 1,
                    address: String::new(),
                })
                .collect(),
            params: ConsensusParams::default(),
            state_format: StateFormat::CURRENT,
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), &genesis).unwrap());
        let tip = store.stored_tip().unwrap();
        let status = NodeStatus {
            height: tip.height,
            block_hash: tip.block_hash,
            block_time_ms: tip.time_ms,
            log_size: tip.log_size,
            log_root: store.log_root_at(tip.log_size).unwrap(),
            state_root: tip.state_root,
            round: 0,
            syncing: false,
            peers: vec![],
            validators: genesis.validators.clone(),
        };
        let (status_tx, status_rx) = watch::channel(status);
        let (announce_tx, announced) = mpsc::channel(64);
        let app = Arc::new(App {
            genesis_hash: genesis.hash(),
            mempool: Arc::new(Mempool::new(genesis.chain_id.clone(), mempool_limits, 0)),
            genesis: Arc::new(genesis),
            store,
            node_key: vkeys[0].public_key(),
            peer_id: "12D3KooWtest".into(),
            status: status_rx,
            waiters: Waiters::default(),
            metrics: Arc::new(Metrics::new()),
            api_config,
            announce: announce_tx,
            health: crate::health::Health::new(GENESIS_TIME_MS, 5_000, 0),
        });
        World {
            router: router(app.clone()),
            app,
            vkeys,
            clerk,
            anchorer,
            announced,
            _status: status_tx,
            _dir: dir,
        }
    }

    fn sign(&self, key: &SecretKey, nonce: u64, body: TxBody) -> SignedTx {
        Tx {
            chain_id: self.app.genesis.chain_id.clone(),
            signer: key.public_key(),
            nonce,
            created_at_ms: GENESIS_TIME_MS,
            expires_at_ms: u64::MAX,
            body,
        }
        .sign(key)
    }

    fn cert(&self, header: &ledger::BlockHeader) -> CommitCertificate {
        let votes: Vec<Vote> = self
            .vkeys
            .iter()
            .map(|k| {
                Vote::new_signed(
                    &self.app.genesis.chain_id,
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

    /// Commits a block of `txs` as the driver does: store, mempool, waiters.
    fn commit(&self, txs: Vec<VerifiedTx>) -> (u64, Vec<Hash>) {
        let store = &self.app.store;
        let tip = store.load_tip().unwrap();
        let n = txs.len();
        let (ex, refused) = build_block(
            store.state(),
            &tip,
            self.vkeys[0].public_key(),
            tip.time_ms + 1000,
            txs,
        )
        .unwrap();
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(ex.txs.len(), n);
        store.commit_block(&ex, &self.cert(&ex.header)).unwrap();
        let height = ex.header.height;
        let ids: Vec<Hash> = ex.txs.iter().map(VerifiedTx::id).collect();
        self.app
            .mempool
            .on_commit(store, height, &ids, crate::app::now_ms());
        let first = ex.first_leaf_index();
        for (i, id) in ids.iter().enumerate() {
            self.app.waiters.notify(
                id,
                TxLocation {
                    height,
                    leaf_index: first + i as u64,
                },
            );
        }
        (height, ids)
    }

    /// Commits signed transactions directly (not through the mempool).
    fn commit_signed(&self, txs: Vec<SignedTx>) -> Vec<Hash> {
        let v = txs
            .into_iter()
            .map(|t| VerifiedTx::verify(t).unwrap())
            .collect();
        self.commit(v).1
    }

    /// Commits everything in the mempool.
    fn commit_mempool(&self) -> (u64, Vec<Hash>) {
        let txs = self.app.mempool.take_for_block(usize::MAX, usize::MAX);
        self.commit(txs)
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        send_to(&self.router, req).await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        let (status, headers, body) = self.send(get_req(uri)).await;
        assert_json(&headers, &body);
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, body) = self.send(post_req(uri, body.to_string())).await;
        assert_json(&headers, &body);
        (status, headers, serde_json::from_slice(&body).unwrap())
    }

    async fn submit(&self, stx: &SignedTx) -> (StatusCode, Value) {
        let (s, _, v) = self
            .post("/v1/txs", json!({ "tx": hex::encode(stx.encode()) }))
            .await;
        (s, v)
    }
}

async fn send_to(router: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, body.to_vec())
}

fn get_req(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_req(uri: &str, body: impl Into<Body>) -> Request<Body> {
    // No content type, as `curl -d` would not send a JSON one.
    Request::post(uri).body(body.into()).unwrap()
}

fn assert_json(headers: &HeaderMap, body: &[u8]) {
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json",
        "body: {}",
        String::from_utf8_lossy(body)
    );
}

/// Checks an error answer: status, code, and a message for humans.
fn assert_error(status: StatusCode, v: &Value, want_status: StatusCode, code: &str) {
    assert_eq!(status, want_status, "{v}");
    assert_eq!(v["error"], code, "{v}");
    assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");
}

fn anchor(doc: &[u8]) -> TxBody {
    TxBody::Anchor(Anchor {
        document_hash: hash_document(doc),
        label: "doc".into(),
    })
}

fn issue(id: &str, subject: &str) -> TxBody {
    TxBody::ApprovalIssue(ApprovalIssue {
        approval_id: id.into(),
        kind: "building-permit".into(),
        subject: subject.into(),
        decision: Decision::Granted,
        document_hash: hash_document(id.as_bytes()),
        valid_from_ms: 0,
        valid_until_ms: None,
        note: String::new(),
    })
}

#[tokio::test]
async fn submit_then_duplicate_then_committed() {
    let mut w = World::new();
    let stx = w.sign(&w.clerk, 0, anchor(b"minutes"));
    let id = stx.id();

    let (s, v) = w.submit(&stx).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v, json!({ "id": id.to_hex(), "status": "pending" }));
    let announced = w.announced.try_recv().unwrap();
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].id(), id);

    // Idempotent: the same answer, nothing announced twice.
    let (s, v) = w.submit(&stx).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["status"], "pending");
    assert!(w.announced.try_recv().is_err());

    let (s, v) = w.get(&format!("/v1/txs/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "pending");
    assert!(v.get("record").is_none());

    let (s, v) = w
        .get(&format!("/v1/accounts/{}", w.clerk.public_key()))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["next_nonce"].as_u64(), v["pending_nonce"].as_u64()),
        (Some(0), Some(1))
    );

    let (height, ids) = w.commit_mempool();
    assert_eq!(ids, vec![id]);

    // Resubmitting a committed transaction answers where it is.
    let (s, v) = w.submit(&stx).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({ "id": id.to_hex(), "status": "committed", "height": height, "leaf_index": 0 })
    );

    let (s, v) = w.get(&format!("/v1/txs/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "committed");
    let r = &v["record"];
    assert_eq!(r["id"], id.to_hex());
    assert_eq!(r["leaf_index"], 0);
    assert_eq!(r["height"], height);
    let header = w.app.store.header(height).unwrap().unwrap();
    assert_eq!(r["block_time_ms"], header.time_ms);
    assert_eq!(r["kind"], "anchor");
    assert_eq!(r["signer"], w.clerk.public_key().to_hex());
    assert_eq!(r["department"], "city");
    let back: SignedTx = serde_json::from_value(r["tx"].clone()).unwrap();
    assert_eq!(back, stx);

    let (s, v) = w
        .get(&format!("/v1/accounts/{}", w.clerk.public_key()))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["member"]["department"], "city");
    assert_eq!(v["member"]["active"], true);
    assert_eq!(v["validator"], false);
    assert_eq!(
        (v["next_nonce"].as_u64(), v["pending_nonce"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, v) = w
        .get(&format!("/v1/accounts/{}", w.vkeys[2].public_key()))
        .await;
    assert_eq!(v["validator"], true);
    assert_eq!(v["member"], Value::Null);

    let (s, v) = w.get(&format!("/v1/txs/{}", Hash([7; 32]))).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn refusals_carry_their_reason() {
    let w = World::new();
    // A future nonce.
    let (s, v) = w.submit(&w.sign(&w.clerk, 5, anchor(b"a"))).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "refused");
    assert_eq!(v["reason"], "bad_nonce");
    // A role the signer lacks.
    let (s, v) = w
        .submit(&w.sign(&w.anchorer, 0, issue("BP-9", "ACME")))
        .await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "refused");
    assert_eq!(v["reason"], "missing_role");
    assert!(v["message"].as_str().unwrap().contains("approvals"), "{v}");
    // A signature that does not verify.
    let mut bad = w.sign(&w.clerk, 0, anchor(b"a"));
    bad.signature.0[5] ^= 1;
    let (s, v) = w.submit(&bad).await;
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "refused");
    assert_eq!(v["reason"], "bad_signature");
    // A stranger.
    let stranger = SecretKey::from_seed(&[99; 32]);
    let (s, v) = w.submit(&w.sign(&stranger, 0, anchor(b"a"))).await;
    assert_eq!(
        (s, &v["reason"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("unknown_signer"))
    );
    // Nothing was admitted.
    assert!(w.app.mempool.is_empty());
    let metrics = w.app.metrics.render();
    for reason in [
        "bad_nonce",
        "missing_role",
        "bad_signature",
        "unknown_signer",
    ] {
        let line = format!("govledger_txs_refused_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let w = World::new();
    let good = hex::encode(w.sign(&w.clerk, 0, anchor(b"a")).encode());
    // Not hex.
    let (s, _, v) = w.post("/v1/txs", json!({ "tx": "zz-not-hex" })).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "bad_encoding");
    // Hex, but not a transaction.
    let (s, _, v) = w.post("/v1/txs", json!({ "tx": "00ff00ff" })).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "bad_encoding");
    // A valid transaction with a trailing byte.
    let (s, _, v) = w
        .post("/v1/txs", json!({ "tx": format!("{good}00") }))
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "bad_encoding");
    // Larger than a transaction can be.
    let (s, _, v) = w
        .post("/v1/txs", json!({ "tx": "00".repeat(TX_BYTES_MAX + 1) }))
        .await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "bad_encoding");
    // Not JSON, or the wrong JSON.
    let (s, h, b) = w.send(post_req("/v1/txs", "garbage")).await;
    assert_json(&h, &b);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error(s, &v, StatusCode::BAD_REQUEST, "bad_request");
    let (s, _, v) = w.post("/v1/txs", json!({ "txx": good })).await;
    assert_error(s, &v, StatusCode::BAD_REQUEST, "bad_request");
    // A body over 256 KiB.
    let huge = json!({ "tx": "0".repeat(300 * 1024) });
    let (s, _, v) = w.post("/v1/txs", huge).await;
    assert_error(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Bad query parameters.
    let (s, h, b) = w
        .send(post_req(
            "/v1/txs?wait=perhaps",
            json!({ "tx": good }).to_string(),
        ))
        .await;
    assert_json(&h, &b);
    assert_error(
        s,
        &serde_json::from_slice(&b).unwrap(),
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    for uri in [
        "/v1/catalog?limit=abc",
        "/v1/catalog?limit=0",
        "/v1/catalog?after=-1",
        "/v1/blocks/tall",
        "/v1/access",
        "/v1/access?subject=12",
        "/v1/approvals",
        "/v1/consistency?old_size=1",
        "/v1/consistency?old_size=3&new_size=2",
        "/v1/consistency?old_size=0&new_size=99",
        "/v1/departments/Not%20A%20Dept/records",
        "/v1/departments/city/records?from_ms=5&to_ms=4",
        // A cursor that names no record (it would scan the department from time 0).
        "/v1/departments/city/records?after=987654",
        "/v1/chain/blocks?from=0",
        "/v1/proofs/xyz",
        "/v1/accounts/abc",
    ] {
        let (s, v) = w.get(uri).await;
        assert_error(s, &v, StatusCode::BAD_REQUEST, "bad_request");
    }
    // Unknown routes and methods.
    let (s, v) = w.get("/v2/everything").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    let (s, h, b) = w.send(post_req("/v1/status", "{}")).await;
    assert_json(&h, &b);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error(s, &v, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert!(w.app.mempool.is_empty());
}

#[tokio::test]
async fn batch_reports_each_transaction_in_order() {
    let mut w = World::new();
    let t0 = w.sign(&w.clerk, 0, anchor(b"0"));
    let mut t1 = w.sign(&w.clerk, 1, anchor(b"1"));
    t1.signature.0[0] ^= 1;
    let t1_fixed = w.sign(&w.clerk, 1, anchor(b"1"));
    let t2 = w.sign(&w.anchorer, 0, anchor(b"2"));
    let body = json!({ "txs": [
        hex::encode(t0.encode()),
        hex::encode(t1.encode()),
        "not hex",
        hex::encode(t2.encode()),
        hex::encode(t0.encode()),
        hex::encode(t1_fixed.encode()),
    ]});
    let (s, _, v) = w.post("/v1/txs/batch", body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = v["results"].as_array().unwrap();
    assert_eq!(r.len(), 6);
    assert_eq!(r[0], json!({ "id": t0.id().to_hex(), "status": "pending" }));
    assert_eq!(r[1]["id"], t1.id().to_hex());
    assert_eq!(
        (&r[1]["error"], &r[1]["reason"]),
        (&json!("refused"), &json!("bad_signature"))
    );
    assert_eq!(r[2]["error"], "bad_encoding");
    assert!(r[2].get("id").is_none());
    assert_eq!(r[3], json!({ "id": t2.id().to_hex(), "status": "pending" }));
    assert_eq!(r[4], json!({ "id": t0.id().to_hex(), "status": "pending" }));
    assert_eq!(
        r[5],
        json!({ "id": t1_fixed.id().to_hex(), "status": "pending" })
    );
    // The admitted ones, announced once.
    let announced: Vec<Hash> = w
        .announced
        .try_recv()
        .unwrap()
        .iter()
        .map(|t| t.id())
        .collect();
    assert_eq!(announced, vec![t0.id(), t2.id(), t1_fixed.id()]);
    assert!(w.announced.try_recv().is_err());
    assert_eq!(w.app.mempool.size().txs, 3);

    // Too many transactions.
    let many = vec![hex::encode(t0.encode()); super::limits::BATCH_TXS_MAX + 1];
    let (s, _, v) = w.post("/v1/txs/batch", json!({ "txs": many })).await;
    assert_error(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn wait_returns_once_committed() {
    let w = Arc::new(World::new());
    let stx = w.sign(&w.clerk, 0, anchor(b"waited"));
    let id = stx.id();
    let body = json!({ "tx": hex::encode(stx.encode()) }).to_string();
    let router = w.router.clone();
    let request = tokio::spawn(async move {
        send_to(
            &router,
            post_req("/v1/txs?wait=true&timeout_ms=60000", body),
        )
        .await
    });
    // Commit once the submission is in the mempool (its waiter is registered by then).
    while !w.app.mempool.contains(&id) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (height, _) = w.commit_mempool();
    let (s, _, body) = request.await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({ "id": id.to_hex(), "status": "committed", "height": height, "leaf_index": 0 })
    );

    // Already committed: answered at once.
    let (s, v) = {
        let (s, _, b) = w
            .send(post_req(
                "/v1/txs?wait=true",
                json!({ "tx": hex::encode(stx.encode()) }).to_string(),
            ))
            .await;
        (s, serde_json::from_slice::<Value>(&b).unwrap())
    };
    assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("committed")));

    // Never committed: a timeout, and the transaction stays pending.
    let other = w.sign(&w.clerk, 1, anchor(b"later"));
    let (s, h, b) = w
        .send(post_req(
            "/v1/txs?wait=true&timeout_ms=20",
            json!({ "tx": hex::encode(other.encode()) }).to_string(),
        ))
        .await;
    assert_json(&h, &b);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error(s, &v, StatusCode::GATEWAY_TIMEOUT, "timeout");
    assert!(w.app.mempool.contains(&other.id()));
}

/// Commits a ledger with every kind of record; returns the ids by name.
struct Ledger {
    w: World,
    proposal: Hash,
    evidence: Hash,
    pseudonym: Hash,
    block2_time_ms: u64,
}

fn ledger_with_records() -> Ledger {
    let w = World::new();
    let c = &w.clerk;
    let pseudonym = hash_document(b"citizen 1");
    let access = |purpose: &str| {
        TxBody::DataAccess(DataAccess {
            subject: pseudonym,
            resource_id: "R-1".into(),
            purpose: purpose.into(),
            legal_basis: "act 7".into(),
            accessed_at_ms: GENESIS_TIME_MS,
        })
    };
    let catalog = |id: &str| {
        TxBody::CatalogRegister(CatalogEntry {
            resource_id: id.into(),
            name: format!("resource {id}"),
            sharing: SharingType::Unconditional,
            open: OpenAttribute::Closed,
            format: "database".into(),
            link: String::new(),
        })
    };
    w.commit_signed(vec![
        w.sign(c, 0, issue("BP-1", "ACME")),
        w.sign(c, 1, issue("BP-2", "ACME")),
        w.sign(c, 2, issue("BP-3", "OTHER")),
        w.sign(
            c,
            3,
            TxBody::LandRegister(LandRegister {
                parcel_id: "P-1".into(),
                owner: "alice".into(),
                document_hash: hash_document(b"title"),
            }),
        ),
        w.sign(c, 4, catalog("R-1")),
        w.sign(c, 5, catalog("R-2")),
        w.sign(c, 6, access("benefits")),
        w.sign(c, 7, anchor(b"DOC")),
        w.sign(&w.anchorer, 0, anchor(b"DOC")),
    ]);
    // Validator 3 (court) equivocated at height 1; validator 2 (court) reports it.
    let vote = |b: u8| {
        Vote::new_signed(
            &w.app.genesis.chain_id,
            1,
            0,
            VoteType::Prevote,
            Some(Hash([b; 32])),
            &w.vkeys[3],
        )
    };
    let evidence = w.sign(
        &w.vkeys[2],
        0,
        TxBody::Evidence(Evidence::from_votes(vote(1), vote(2))),
    );
    let propose = w.sign(
        c,
        12,
        TxBody::GovernancePropose(GovernancePropose {
            action: GovAction::AddDepartment {
                id: "health".into(),
                name: "Health".into(),
                governance_weight: 1,
            },
            description: "a health department".into(),
        }),
    );
    let ids = w.commit_signed(vec![
        w.sign(
            c,
            8,
            TxBody::ApprovalAmend(ApprovalAmend {
                approval_id: "BP-1".into(),
                decision: Decision::Conditional,
                document_hash: hash_document(b"BP-1 amended"),
                valid_until_ms: None,
                reason: "conditions".into(),
            }),
        ),
        w.sign(
            c,
            9,
            TxBody::LandTransfer(LandTransfer {
                parcel_id: "P-1".into(),
                from: "alice".into(),
                to: "bob".into(),
                deed_hash: hash_document(b"deed"),
            }),
        ),
        w.sign(
            c,
            10,
            TxBody::LandEncumber(LandEncumber {
                parcel_id: "P-1".into(),
                encumbrance_id: "F-1".into(),
                kind: EncumbranceKind::CourtFreeze,
                holder: "court".into(),
                document_hash: hash_document(b"order"),
            }),
        ),
        w.sign(c, 11, access("tax")),
        propose.clone(),
        w.sign(c, 13, anchor(b"DOC")),
        w.sign(&w.anchorer, 1, anchor(b"DOC")),
        evidence.clone(),
    ]);
    assert_eq!(ids[4], propose.id());
    let block2_time_ms = w.app.store.header(2).unwrap().unwrap().time_ms;
    Ledger {
        proposal: propose.id(),
        evidence: evidence.id(),
        w,
        pseudonym,
        block2_time_ms,
    }
}

fn kinds(page: &Value) -> Vec<String> {
    page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap().to_string())
        .collect()
}

/// Follows `next` through every page; returns the leaf indexes.
async fn all_pages(w: &World, uri: &str, limit: usize) -> Vec<u64> {
    let mut leaves = vec![];
    let mut after: Option<u64> = None;
    loop {
        let sep = if uri.contains('?') { '&' } else { '?' };
        let mut u = format!("{uri}{sep}limit={limit}");
        if let Some(a) = after {
            u.push_str(&format!("&after={a}"));
        }
        let (s, v) = w.get(&u).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let records = v["records"].as_array().unwrap();
        assert!(records.len() <= limit);
        leaves.extend(records.iter().map(|r| r["leaf_index"].as_u64().unwrap()));
        match v["next"].as_u64() {
            Some(n) => {
                assert_eq!(records.len(), limit);
                assert_eq!(Some(n), leaves.last().copied());
                after = Some(n);
            }
            None => {
                assert!(v["next"].is_null());
                return leaves;
            }
        }
    }
}

#[tokio::test]
async fn queries_answer_every_index() {
    let l = ledger_with_records();
    let w = &l.w;

    let (s, v) = w.get("/v1/approvals/BP-1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["approval"]["issuer"], "city");
    assert_eq!(v["approval"]["decision"], "conditional");
    assert_eq!(v["approval"]["amendments"], 1);
    assert_eq!(kinds(&v["history"]), ["approval_issue", "approval_amend"]);
    assert!(v["history"]["next"].is_null());
    let (s, v) = w.get("/v1/approvals/BP-404").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");

    let (_, v) = w.get("/v1/approvals?subject=ACME").await;
    let ids: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["tx"]["tx"]["body"]["approval_issue"]["approval_id"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, ["BP-1", "BP-2"]);

    let (s, v) = w.get("/v1/parcels/P-1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["parcel"]["owner"], "bob");
    assert_eq!(v["parcel"]["encumbrances"][0]["kind"], "court_freeze");
    assert_eq!(
        kinds(&v["history"]),
        ["land_register", "land_transfer", "land_encumber"]
    );
    let (s, v) = w.get("/v1/parcels/P-2").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");

    let (_, v) = w.get("/v1/catalog").await;
    assert_eq!(kinds(&v), ["catalog_register", "catalog_register"]);
    let (s, v) = w.get("/v1/catalog/R-1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["entry"]["owner"], "city");
    assert_eq!(
        kinds(&v["history"]),
        ["catalog_register", "data_access", "data_access"]
    );

    let (_, v) = w.get(&format!("/v1/access?subject={}", l.pseudonym)).await;
    assert_eq!(kinds(&v), ["data_access", "data_access"]);
    for r in v["records"].as_array().unwrap() {
        assert_eq!(r["department"], "city");
    }
    let (_, v) = w
        .get(&format!("/v1/access?subject={}", Hash([3; 32])))
        .await;
    assert_eq!(v, json!({ "records": [], "next": null }));

    // The court's records: two anchors by its member, and the evidence by its validator.
    let (_, v) = w.get("/v1/departments/court/records").await;
    assert_eq!(kinds(&v), ["anchor", "anchor", "evidence"]);
    let ev = &v["records"][2];
    assert_eq!(ev["id"], l.evidence.to_hex());
    assert_eq!(ev["department"], "court");
    assert_eq!(ev["signer"], w.vkeys[2].public_key().to_hex());
    let (_, v) = w
        .get(&format!(
            "/v1/departments/court/records?from_ms={}",
            l.block2_time_ms
        ))
        .await;
    assert_eq!(kinds(&v), ["anchor", "evidence"]);
    let (_, v) = w
        .get(&format!(
            "/v1/departments/court/records?to_ms={}",
            l.block2_time_ms - 1
        ))
        .await;
    assert_eq!(kinds(&v), ["anchor"]);

    // Pagination: every city record exactly once, in log order, whatever the page size.
    let city = all_pages(w, "/v1/departments/city/records", 1000).await;
    assert_eq!(city.len(), 14);
    assert!(city.windows(2).all(|p| p[0] < p[1]));
    for limit in [1, 3, 5] {
        assert_eq!(
            all_pages(w, "/v1/departments/city/records", limit).await,
            city
        );
    }
    let doc = hash_document(b"DOC");
    let docs = all_pages(w, &format!("/v1/documents/{doc}"), 3).await;
    assert_eq!(docs.len(), 4);
    let (_, v) = w.get(&format!("/v1/documents/{doc}?limit=3")).await;
    assert_eq!(v["next"], docs[2]);

    let (s, v) = w.get(&format!("/v1/governance/{}", l.proposal)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Only city can vote (court has no member holding the governance role), so city's
    // proposal passes at once.
    assert!(
        v["proposal"]["status"]["executed"]["height"].is_u64(),
        "{v}"
    );
    assert_eq!(v["proposal"]["department"], "city");
    assert_eq!(kinds(&v["records"]), ["governance_propose"]);
    let (s, v) = w.get(&format!("/v1/governance/{}", Hash([1; 32]))).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn blocks_proofs_checkpoints_and_consistency_verify() {
    let l = ledger_with_records();
    let w = &l.w;
    let g = &*w.app.genesis;

    let (s, v) = w.get("/v1/blocks/latest").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["header"]["height"], 2);
    let header = w.app.store.header(2).unwrap().unwrap();
    assert_eq!(v["hash"], header.hash().to_hex());
    assert_eq!(v["tx_ids"].as_array().unwrap().len(), 8);
    assert_eq!(v["tx_ids"][7], l.evidence.to_hex());
    let (s, v) = w.get("/v1/blocks/1").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["tx_ids"].as_array().unwrap().len(), 9);
    assert_eq!(v["commit"]["height"], 1);
    let (s, v) = w.get("/v1/blocks/3").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");

    // Proof bundles verify offline with the genesis alone.
    let (s, v) = w.get(&format!("/v1/proofs/{}", l.evidence)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let bundle = ProofBundle::from_json(&v.to_string()).unwrap();
    let r = bundle.verify(g, None).unwrap();
    assert_eq!(
        (r.id, r.height, r.kind.as_str()),
        (l.evidence, 2, "evidence")
    );
    let (_, v) = w
        .get(&format!("/v1/documents/{}", hash_document(b"DOC")))
        .await;
    let first: Hash = serde_json::from_value(v["records"][0]["id"].clone()).unwrap();
    let (_, v) = w.get(&format!("/v1/proofs/{first}")).await;
    let bundle = ProofBundle::from_json(&v.to_string()).unwrap();
    assert_eq!(bundle.verify(g, Some(b"DOC")).unwrap().height, 1);
    let (s, v) = w.get(&format!("/v1/proofs/{}", Hash([5; 32]))).await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");

    // Checkpoints, and the consistency of the log between them.
    let (s, v) = w.get("/v1/checkpoint?height=1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let early: Checkpoint = serde_json::from_value(v).unwrap();
    let (_, v) = w.get("/v1/checkpoint").await;
    let late: Checkpoint = serde_json::from_value(v).unwrap();
    let e = early.verify(g).unwrap().clone();
    let l2 = late.verify(g).unwrap().clone();
    assert_eq!((e.height, l2.height), (1, 2));
    let (s, v) = w
        .get(&format!(
            "/v1/consistency?old_size={}&new_size={}",
            e.log_size, l2.log_size
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["old_size"].as_u64(), v["new_size"].as_u64()),
        (Some(e.log_size), Some(l2.log_size))
    );
    let proof: Vec<Hash> = serde_json::from_value(v["proof"].clone()).unwrap();
    ledger::history_log::verify_consistency(
        e.log_size,
        l2.log_size,
        &e.log_root,
        &l2.log_root,
        &proof,
    )
    .unwrap();
    let (s, v) = w.get("/v1/checkpoint?height=9").await;
    assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");

    // The chain as auditors download it.
    let (s, h, b) = w.send(get_req("/v1/chain/blocks?from=1&limit=10")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get(header::CONTENT_TYPE).unwrap(),
        "application/octet-stream"
    );
    let blocks: Vec<CommittedBlock> = ledger::codec::decode(&b).unwrap();
    assert_eq!(blocks.len(), 2);
    for (i, cb) in blocks.iter().enumerate() {
        assert_eq!(
            Some(cb),
            w.app.store.committed_block(i as u64 + 1).unwrap().as_ref()
        );
    }
    let (_, _, b) = w.send(get_req("/v1/chain/blocks?from=2&limit=1")).await;
    let blocks: Vec<CommittedBlock> = ledger::codec::decode(&b).unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].block.header.height, 2);
    let (_, _, b) = w.send(get_req("/v1/chain/blocks?from=3")).await;
    assert!(
        ledger::codec::decode::<Vec<CommittedBlock>>(&b)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn empty_chain_has_no_blocks_or_checkpoint() {
    let w = World::new();
    for uri in ["/v1/blocks/latest", "/v1/checkpoint", "/v1/blocks/1"] {
        let (s, v) = w.get(uri).await;
        assert_error(s, &v, StatusCode::NOT_FOUND, "not_found");
    }
    let (s, v) = w.get("/v1/consistency?old_size=0&new_size=0").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["proof"], json!([]));
}

#[tokio::test]
async fn status_genesis_health_and_metrics() {
    let w = World::new();
    w.submit(&w.sign(&w.clerk, 0, anchor(b"m"))).await;

    let (s, v) = w.get("/v1/status").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["chain_id"], "api-test");
    assert_eq!(v["genesis_hash"], w.app.genesis_hash.to_hex());
    assert_eq!(v["node_key"], w.vkeys[0].public_key().to_hex());
    assert_eq!(v["peer_id"], "12D3KooWtest");
    assert_eq!(v["height"], 0);
    assert_eq!(v["syncing"], false);
    assert_eq!(v["validators"].as_array().unwrap().len(), 4);
    assert_eq!(v["mempool"]["txs"], 1);

    let (s, v) = w.get("/v1/genesis").await;
    assert_eq!(s, StatusCode::OK);
    let g = Genesis::from_json(&v.to_string()).unwrap();
    assert_eq!(g.hash(), w.app.genesis_hash);

    let (s, _, b) = w.send(get_req("/healthz")).await;
    assert_eq!((s, b.as_slice()), (StatusCode::OK, b"ok\n".as_slice()));

    w.get("/v2/nothing").await;
    let (s, h, b) = w.send(get_req("/metrics")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        h.get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(b).unwrap();
    for line in [
        "govledger_api_requests_total{route=\"/v1/txs\",status=\"202\"} 1",
        "govledger_api_requests_total{route=\"/v1/status\",status=\"200\"} 1",
        "govledger_api_requests_total{route=\"/healthz\",status=\"200\"} 1",
        "govledger_api_requests_total{route=\"unmatched\",status=\"404\"} 1",
        "govledger_mempool_txs 1",
        "govledger_store_memory_bytes{kind=\"memtables\"}",
        "govledger_store_memory_bytes{kind=\"block_cache\"}",
        "govledger_store_memory_bytes{kind=\"table_readers\"}",
        "govledger_store_memory_bytes{kind=\"log_nodes\"}",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    // The genesis block wrote to the memtables.
    let memtables = text
        .lines()
        .find(|l| l.starts_with("govledger_store_memory_bytes{kind=\"memtables\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(memtables > 0, "{text}");
}

#[tokio::test]
async fn rate_limits_apply_per_client() {
    let w = World::with_config(ApiConfig {
        rate_limit_per_sec: 1,
        rate_limit_burst: 3,
        waiters_max: 10,
        ..ApiConfig::default()
    });
    let from = |ip: [u8; 4]| {
        let mut r = get_req("/v1/status");
        r.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
        r
    };
    for _ in 0..3 {
        assert_eq!(w.send(from([10, 0, 0, 1])).await.0, StatusCode::OK);
    }
    let (s, h, b) = w.send(from([10, 0, 0, 1])).await;
    assert_json(&h, &b);
    assert_error(
        s,
        &serde_json::from_slice(&b).unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
    let retry: u64 = h[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    // Another client is not affected.
    assert_eq!(w.send(from([10, 0, 0, 2])).await.0, StatusCode::OK);
    let text = w.app.metrics.render();
    assert!(
        text.contains("govledger_api_requests_total{route=\"/v1/status\",status=\"429\"} 1"),
        "{text}"
    );
}

#[test]
fn rate_limiter_table_is_bounded() {
    let t0 = Instant::now();
    let rl = RateLimiter::with_capacity(10, 2, 4);
    let ip = |i: u8| IpAddr::from([192, 168, 0, i]);
    for i in 0..4 {
        assert!(rl.check(ip(i), t0).is_ok());
    }
    // Table full: newcomers share the overflow bucket (burst 2).
    assert!(rl.check(ip(10), t0).is_ok());
    assert!(rl.check(ip(11), t0).is_ok());
    let wait = rl.check(ip(12), t0).unwrap_err();
    assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
    assert_eq!(rl.clients(), 4);
    // Once the tracked clients have refilled, they are swept and newcomers get a slot.
    let later = t0 + Duration::from_secs(1);
    assert!(rl.check(ip(13), later).is_ok());
    assert_eq!(rl.clients(), 1);
    // Refill: a limited client is admitted again after the wait it was given.
    let c = ip(50);
    let t = later;
    assert!(rl.check(c, t).is_ok());
    assert!(rl.check(c, t).is_ok());
    let wait = rl.check(c, t).unwrap_err();
    assert!(rl.check(c, t + wait).is_ok());
}

#[test]
fn ipv6_clients_are_keyed_by_prefix() {
    let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
    let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert_eq!(client_key(a), client_key(b));
    assert_ne!(client_key(a), client_key(c));
    let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    assert_eq!(client_key(mapped), IpAddr::from([10, 1, 2, 3]));
}

#[tokio::test]
async fn serve_answers_over_tcp_and_shuts_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(super::serve(w.app.clone(), listener, async move {
        let _ = stop_rx.await;
    }));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");

    // A submission waiting for its commit is answered when the server stops.
    let stx = w.sign(&w.clerk, 0, anchor(b"at shutdown"));
    let body = json!({ "tx": hex::encode(stx.encode()) }).to_string();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/txs?wait=true HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await.unwrap();
    while !w.app.mempool.contains(&stx.id()) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop_tx.send(()).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("\"error\":\"timeout\""), "{answer}");
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn full_mempool_and_waiter_limit_ask_to_retry() {
    let w = World::build(
        ApiConfig {
            waiters_max: 1,
            ..ApiConfig::default()
        },
        MempoolLimits {
            txs_max: 1,
            bytes_max: 1024 * 1024,
        },
    );
    let first = w.sign(&w.clerk, 0, anchor(b"1"));
    let body = json!({ "tx": hex::encode(first.encode()) }).to_string();
    let router = w.router.clone();
    let waiting =
        tokio::spawn(async move { send_to(&router, post_req("/v1/txs?wait=true", body)).await });
    while !w.app.mempool.contains(&first.id()) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The only waiter slot is taken.
    let second = w.sign(&w.clerk, 1, anchor(b"2"));
    let (s, h, b) = w
        .send(post_req(
            "/v1/txs?wait=true",
            json!({ "tx": hex::encode(second.encode()) }).to_string(),
        ))
        .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error(s, &v, StatusCode::SERVICE_UNAVAILABLE, "busy");
    assert_eq!(h[header::RETRY_AFTER], "1");
    // The mempool holds one transaction.
    let (s, h, b) = w
        .send(post_req(
            "/v1/txs",
            json!({ "tx": hex::encode(second.encode()) }).to_string(),
        ))
        .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error(s, &v, StatusCode::SERVICE_UNAVAILABLE, "mempool_full");
    assert_eq!(h[header::RETRY_AFTER], "1");
    // After the commit both are answered: the waiter, and a retry.
    w.commit_mempool();
    let (s, _, _) = waiting.await.unwrap();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(w.submit(&second).await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_forged_submission_takes_no_waiter_slot() {
    let w = World::build(
        ApiConfig {
            waiters_max: 1,
            ..ApiConfig::default()
        },
        MempoolLimits {
            txs_max: 10,
            bytes_max: 1024 * 1024,
        },
    );
    let mut bad = w.sign(&w.clerk, 0, anchor(b"forged"));
    bad.signature.0[5] ^= 1;
    let (s, _, b) = w
        .send(post_req(
            "/v1/txs?wait=true",
            json!({ "tx": hex::encode(bad.encode()) }).to_string(),
        ))
        .await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_error(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "refused");
    assert_eq!(v["reason"], "bad_signature");
    // The signature is checked before a waiter is registered: the table is empty.
    assert_eq!(w.app.waiters.len(), 0);
}

#[tokio::test]
async fn ids_with_reserved_characters_are_found_escaped() {
    let w = World::new();
    w.commit_signed(vec![w.sign(&w.clerk, 0, issue("BP 2026/1", "ACME & Co"))]);
    let (s, v) = w.get("/v1/approvals/BP%202026%2F1").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["approval"]["approval_id"], "BP 2026/1");
    let (_, v) = w.get("/v1/approvals?subject=ACME%20%26%20Co").await;
    assert_eq!(kinds(&v), ["approval_issue"]);
}

/// A running server on loopback with small bounds, for the slow-client tests.
async fn serve_small(
    w: &World,
    limits: super::ServerLimits,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(super::serve_with(
        w.app.clone(),
        listener,
        limits,
        async move {
            let _ = stop_rx.await;
        },
    ));
    (addr, stop_tx)
}

fn small_limits() -> super::ServerLimits {
    super::ServerLimits {
        header_read_timeout: Duration::from_millis(300),
        body_read_timeout: Duration::from_millis(300),
        connections_max: 16,
        connections_per_client_max: 4,
    }
}

/// Reads until the server closes the connection; `None` if it stays open for the
/// (generous) safety bound: the server never closed it.
async fn read_until_closed(conn: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut buf)).await {
        Ok(_) => Some(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => None,
    }
}

async fn healthz_answers(addr: SocketAddr) -> bool {
    use tokio::io::AsyncWriteExt;
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    read_until_closed(&mut conn)
        .await
        .is_some_and(|a| a.starts_with("HTTP/1.1 200"))
}

/// Slowloris: connections that never finish their headers are closed after the
/// header-read timeout, and a client cannot hold more than its share of connections, so
/// `/healthz` stays answerable.
#[tokio::test]
async fn slowloris_connections_are_closed_and_capped_per_client() {
    use tokio::io::AsyncWriteExt;
    let w = World::new();
    let limits = super::ServerLimits {
        // Long enough that the stalled connections are still open for the checks below.
        header_read_timeout: Duration::from_secs(3),
        ..small_limits()
    };
    let (addr, _stop) = serve_small(&w, limits).await;
    let mut stalled = vec![];
    for _ in 0..4 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        stalled.push(c);
    }
    // A fifth connection of the same client is closed at once, not served.
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut extra)
        .await
        .expect("the over-cap connection stays open");
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Another client (127.0.0.2 is loopback too) is served meanwhile.
    let other = tokio::net::TcpSocket::new_v4().unwrap();
    other.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut c = other.connect(addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut c).await.expect("healthz answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The stalled connections are closed by the header-read timeout...
    for c in &mut stalled {
        assert!(
            read_until_closed(c).await.is_some(),
            "a stalled connection stayed open"
        );
    }
    // ...which frees the client's share.
    assert!(healthz_answers(addr).await);
}

/// An idle keep-alive connection is closed after the idle (header-read) timeout.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::new();
    let (addr, _stop) = serve_small(&w, small_limits()).await;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // Keep-alive: the connection stays until the idle timeout closes it.
    assert!(
        read_until_closed(&mut c).await.is_some(),
        "an idle connection stayed open"
    );
}

/// A body shorter than its Content-Length is answered 408 after the body-read timeout.
#[tokio::test]
async fn a_body_that_stops_arriving_is_answered_408() {
    use tokio::io::AsyncWriteExt;
    let w = World::new();
    let (addr, _stop) = serve_small(&w, small_limits()).await;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"POST /v1/txs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"tx\":")
        .await
        .unwrap();
    let answer = read_until_closed(&mut c)
        .await
        .expect("the connection stayed open");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
}

/// Stalled batch uploads do not take the batch slots: a complete batch is answered while
/// more uploads than slots are stalled.
#[tokio::test]
async fn stalled_batch_uploads_do_not_block_batches() {
    use tokio::io::AsyncWriteExt;
    let w = World::new();
    let limits = super::ServerLimits {
        // Long enough that the stalled uploads are still stalled below.
        body_read_timeout: Duration::from_secs(600),
        header_read_timeout: Duration::from_secs(600),
        connections_max: 64,
        connections_per_client_max: 64,
    };
    let (addr, _stop) = serve_small(&w, limits).await;
    let mut stalled = vec![];
    for _ in 0..(super::limits::BATCHES_CONCURRENT_MAX + 2) {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"POST /v1/txs/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"txs\":[")
            .await
            .unwrap();
        stalled.push(c);
    }
    // Let the server take in the stalled requests' heads.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stx = w.sign(&w.clerk, 0, anchor(b"through the batch"));
    let body = json!({ "txs": [hex::encode(stx.encode())] }).to_string();
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/txs/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut c)
        .await
        .expect("the batch was not answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(stalled);
}
