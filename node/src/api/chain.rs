//! The chain itself: blocks (JSON and the canonical bytes auditors download), proof
//! bundles, checkpoints, consistency proofs, the genesis, the node's status, health and
//! metrics.

use super::ApiState;
use super::error::{ApiError, ApiPath, ApiQuery};
use super::limits::{CHAIN_BLOCKS_MAX, CHAIN_BYTES_MAX};
use crate::app::NodeStatus;
use crate::mempool::MempoolSize;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ledger::block::BlockHeader;
use ledger::crypto::PublicKey;
use ledger::hash::Hash;
use ledger::proof::{Checkpoint, ProofBundle};
use ledger::status::{HistoryPage, PAGE_RECORDS_MAX, StatusBundle, Subject};
use ledger::tx::tx_id;
use ledger::vote::CommitCertificate;
use serde::{Deserialize, Serialize};

/// `GET /v1/blocks/...`.
#[derive(Debug, Serialize)]
pub struct BlockView {
    /// Block hash.
    pub hash: Hash,
    /// Header.
    pub header: BlockHeader,
    /// Commit certificate.
    pub commit: CommitCertificate,
    /// Record ids of its transactions, in log order.
    pub tx_ids: Vec<Hash>,
}

fn block_view(app: &crate::app::App, height: u64) -> Result<BlockView, ApiError> {
    let header = app
        .store
        .header(height)?
        .ok_or_else(|| ApiError::NotFound(format!("block {height} is not committed")))?;
    let commit = app
        .store
        .commit(height)?
        .ok_or_else(|| ApiError::Internal(format!("block {height} has no commit certificate")))?;
    let first = header.log_size.saturating_sub(u64::from(header.tx_count));
    let tx_ids = (first..header.log_size)
        .map(|leaf| match app.store.tx_bytes(leaf)? {
            Some(b) => Ok(tx_id(&b)),
            None => Err(ApiError::Internal(format!("leaf {leaf} is not stored"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(BlockView {
        hash: header.hash(),
        header,
        commit,
        tx_ids,
    })
}

/// `GET /v1/blocks/latest`.
pub async fn latest_block(State(st): State<ApiState>) -> Result<Json<BlockView>, ApiError> {
    st.blocking(|app| {
        let height = app.store.stored_tip()?.height;
        if height == 0 {
            return Err(ApiError::NotFound("no block has been committed yet".into()));
        }
        block_view(app, height).map(Json)
    })
    .await
}

/// `GET /v1/blocks/{height}`.
pub async fn block(
    State(st): State<ApiState>,
    ApiPath(height): ApiPath<u64>,
) -> Result<Json<BlockView>, ApiError> {
    st.blocking(move |app| block_view(app, height).map(Json))
        .await
}

/// `?from=&limit=` of `/v1/chain/blocks`.
#[derive(Debug, Deserialize)]
pub struct ChainParams {
    /// First height (default 1).
    pub from: Option<u64>,
    /// Most blocks (default and maximum 100).
    pub limit: Option<u64>,
}

/// `GET /v1/chain/blocks`: the canonical encoding of `Vec<CommittedBlock>`, at most
/// [`CHAIN_BLOCKS_MAX`] blocks, stopping before [`CHAIN_BYTES_MAX`] bytes (always at least
/// one block if `from` is committed), empty past the tip.
pub async fn chain_blocks(
    State(st): State<ApiState>,
    ApiQuery(p): ApiQuery<ChainParams>,
) -> Result<Response, ApiError> {
    let from = p.from.unwrap_or(1);
    if from == 0 {
        return Err(ApiError::BadRequest(
            "from must be at least 1 (the first block)".into(),
        ));
    }
    let limit = match p.limit {
        Some(0) => return Err(ApiError::BadRequest("limit must be at least 1".into())),
        Some(n) => n.min(CHAIN_BLOCKS_MAX),
        None => CHAIN_BLOCKS_MAX,
    };
    let bytes = st
        .blocking(move |app| {
            // A `Vec` in the canonical encoding is its length (u64 little-endian) followed
            // by its elements (docs/encoding.md), so blocks are encoded one at a time and
            // the answer stops before it grows past the bound.
            let mut count = 0u64;
            let mut out = vec![0u8; 8];
            let mut height = from;
            while count < limit {
                let Some(cb) = app.store.committed_block(height)? else {
                    break;
                };
                let enc = ledger::codec::encode(&cb);
                if count > 0 && out.len() + enc.len() > CHAIN_BYTES_MAX {
                    break;
                }
                out.extend_from_slice(&enc);
                count += 1;
                height += 1;
            }
            out[..8].copy_from_slice(&count.to_le_bytes());
            Ok(out)
        })
        .await?;
    let mut resp = bytes.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(resp)
}

/// `GET /v1/proofs/{id}`.
pub async fn proof(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ProofBundle>, ApiError> {
    let id = Hash::from_hex(&id)
        .map_err(|_| ApiError::BadRequest("the record id must be 64 hex digits".into()))?;
    st.blocking(move |app| {
        app.store
            .proof_bundle(&app.genesis, &id)?
            .map(Json)
            .ok_or_else(|| ApiError::NotFound(format!("record {id} is not committed")))
    })
    .await
}

/// `?records=` of `/v1/proofs/status/...`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusParams {
    /// Newest records of the history to include (default and most: 1000).
    pub records: Option<usize>,
}

/// Parses the `{kind}/{id}` of a status or history route.
pub fn parse_subject(kind: &str, id: &str) -> Result<Subject, ApiError> {
    let text_id = |what: &str| -> Result<String, ApiError> {
        super::read::check_id(what, id)?;
        Ok(id.to_string())
    };
    let hash = |what: &str| {
        Hash::from_hex(id)
            .map_err(|_| ApiError::BadRequest(format!("{what} must be 64 hex digits")))
    };
    Ok(match kind {
        "approval" => Subject::Approval(text_id("approval id")?),
        "parcel" => Subject::Parcel(text_id("parcel id")?),
        "resource" => Subject::Resource(text_id("resource id")?),
        "department" => Subject::Department(text_id("department id")?),
        "pseudonym" => Subject::Pseudonym(hash("a pseudonym")?),
        "proposal" => Subject::Proposal(hash("a proposal id")?),
        "member" => Subject::Member(PublicKey(hash("a member key")?.0)),
        other => {
            return Err(ApiError::NotFound(format!(
                "no status of kind {other:?}; kinds: approval, parcel, resource, department, \
                 pseudonym, proposal, member (and /v1/proofs/status/validators)"
            )));
        }
    })
}

async fn status_of(
    st: &ApiState,
    subject: Subject,
    records: Option<usize>,
) -> Result<Json<StatusBundle>, ApiError> {
    let records = records.unwrap_or(PAGE_RECORDS_MAX);
    st.blocking(move |app| {
        if records == 0 || records > PAGE_RECORDS_MAX {
            return Err(ApiError::BadRequest(format!(
                "records must be between 1 and {PAGE_RECORDS_MAX}"
            )));
        }
        app.store
            .status_bundle(&app.genesis, &subject, records)?
            .map(Json)
            .ok_or_else(|| ApiError::NotFound("no block has been committed yet".into()))
    })
    .await
}

/// `GET /v1/proofs/status/{kind}/{id}[?records=N]`: the status bundle of an approval, a
/// parcel, a catalogue resource, a department, a citizen pseudonym, a proposal or a
/// member key at the tip, with the newest `records` records of its history.
pub async fn status_bundle(
    State(st): State<ApiState>,
    ApiPath((kind, id)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<StatusParams>,
) -> Result<Json<StatusBundle>, ApiError> {
    let subject = parse_subject(&kind, &id)?;
    status_of(&st, subject, p.records).await
}

/// `GET /v1/proofs/status/validators`: the validator sets in force and scheduled.
pub async fn status_validators(State(st): State<ApiState>) -> Result<Json<StatusBundle>, ApiError> {
    status_of(&st, Subject::Validators, None).await
}

/// `?end=&records=&log_size=` of `/v1/proofs/history/...`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// The page ends before this position (0-based): the `before.count` of the newer page.
    pub end: u64,
    /// Records in the page (default and most: 1000).
    pub records: Option<usize>,
    /// The log size the inclusion paths are for (the bundle header's `log_size`).
    pub log_size: u64,
}

/// `GET /v1/proofs/history/{kind}/{id}?end=E&log_size=N[&records=K]`: an older page of a
/// history (records `E−K … E−1`), with inclusion paths in the log of size `N`, to append
/// to a status bundle's `history.pages`.
pub async fn history_page(
    State(st): State<ApiState>,
    ApiPath((kind, id)): ApiPath<(String, String)>,
    ApiQuery(p): ApiQuery<HistoryParams>,
) -> Result<Json<HistoryPage>, ApiError> {
    let subject = parse_subject(&kind, &id)?;
    let Some(history) = subject.history() else {
        return Err(ApiError::NotFound(format!(
            "{} has no history",
            subject.describe()
        )));
    };
    let records = p.records.unwrap_or(PAGE_RECORDS_MAX);
    if records == 0 || records > PAGE_RECORDS_MAX {
        return Err(ApiError::BadRequest(format!(
            "records must be between 1 and {PAGE_RECORDS_MAX}"
        )));
    }
    st.blocking(move |app| {
        let tip = app.store.stored_tip()?;
        if p.log_size == 0 || p.log_size > tip.log_size {
            return Err(ApiError::BadRequest(format!(
                "log_size must be between 1 and the current {}",
                tip.log_size
            )));
        }
        let head = ledger::state::StateView::history_head(&app.store.state(), &history)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if p.end > head.count {
            return Err(ApiError::BadRequest(format!(
                "end {} is beyond the history's {} records",
                p.end, head.count
            )));
        }
        if p.end == 0 {
            return Err(ApiError::BadRequest(
                "end 0: there is no record before the first".into(),
            ));
        }
        Ok(Json(app.store.history_page_proof(
            &history, p.end, records, p.log_size,
        )?))
    })
    .await
}

/// `?height=` of `/v1/checkpoint`.
#[derive(Debug, Deserialize)]
pub struct CheckpointParams {
    /// Height (default: the latest).
    pub height: Option<u64>,
}

/// `GET /v1/checkpoint[?height=H]`.
pub async fn checkpoint(
    State(st): State<ApiState>,
    ApiQuery(p): ApiQuery<CheckpointParams>,
) -> Result<Json<Checkpoint>, ApiError> {
    st.blocking(move |app| {
        app.store
            .checkpoint(&app.genesis, p.height)?
            .map(Json)
            .ok_or_else(|| {
                ApiError::NotFound(match p.height {
                    Some(h) => format!("block {h} is not committed"),
                    None => "no block has been committed yet".into(),
                })
            })
    })
    .await
}

/// `?old_size=&new_size=` of `/v1/consistency`.
#[derive(Debug, Deserialize)]
pub struct ConsistencyParams {
    /// The older log size.
    pub old_size: u64,
    /// The newer log size (at most the current one).
    pub new_size: u64,
}

/// `GET /v1/consistency`.
#[derive(Debug, Serialize)]
pub struct ConsistencyView {
    /// The older size.
    pub old_size: u64,
    /// The newer size.
    pub new_size: u64,
    /// RFC 9162 consistency proof.
    pub proof: Vec<Hash>,
}

/// `GET /v1/consistency?old_size=M&new_size=N`.
pub async fn consistency(
    State(st): State<ApiState>,
    ApiQuery(p): ApiQuery<ConsistencyParams>,
) -> Result<Json<ConsistencyView>, ApiError> {
    let (old_size, new_size) = (p.old_size, p.new_size);
    if old_size > new_size {
        return Err(ApiError::BadRequest(format!(
            "old_size ({old_size}) is larger than new_size ({new_size})"
        )));
    }
    st.blocking(move |app| {
        let size = app.store.stored_tip()?.log_size;
        if new_size > size {
            return Err(ApiError::BadRequest(format!(
                "new_size ({new_size}) is larger than the log ({size} records)"
            )));
        }
        let proof = app.store.consistency_proof(old_size, new_size)?;
        Ok(Json(ConsistencyView {
            old_size,
            new_size,
            proof,
        }))
    })
    .await
}

/// `GET /v1/genesis`.
pub async fn genesis(State(st): State<ApiState>) -> Response {
    Json(&*st.app.genesis).into_response()
}

/// `GET /v1/status`.
#[derive(Debug, Serialize)]
pub struct StatusView<'a> {
    /// Chain id.
    pub chain_id: &'a str,
    /// Genesis hash.
    pub genesis_hash: Hash,
    /// This node's key.
    pub node_key: PublicKey,
    /// This node's libp2p peer id.
    pub peer_id: &'a str,
    /// The chain as this node sees it.
    #[serde(flatten)]
    pub status: NodeStatus,
    /// Mempool size.
    pub mempool: MempoolSize,
}

/// `GET /v1/status`.
pub async fn status(State(st): State<ApiState>) -> Response {
    let app = &st.app;
    let status = app.status.borrow().clone();
    Json(StatusView {
        chain_id: &app.genesis.chain_id,
        genesis_hash: app.genesis_hash,
        node_key: app.node_key,
        peer_id: &app.peer_id,
        status,
        mempool: app.mempool.size(),
    })
    .into_response()
}

/// `GET /healthz`: `200 ok` while the node makes progress (its chain advanced recently)
/// and its store answers; else `503` with a JSON reason (`genesis_in_future`, `no_peers`,
/// `syncing`, `stopped`, `stalled`, `store`) and a message for humans.
pub async fn healthz(State(st): State<ApiState>) -> Response {
    let app = st.app.clone();
    // One point read; not queued behind the API's blocking slots so that a busy node
    // still reports healthy.
    let store = match tokio::task::spawn_blocking(move || app.store.stored_tip()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("the store does not answer: {e}")),
        Err(e) => Err(format!("the health check failed: {e}")),
    };
    if let Err(message) = store {
        return unhealthy(serde_json::json!({ "reason": "store" }), message);
    }
    let status = st.app.status.borrow().clone();
    match st.app.health.check(
        &status,
        &st.app.node_key,
        crate::app::now_ms(),
        std::time::Instant::now(),
    ) {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => {
            let message = why.message();
            unhealthy(serde_json::to_value(&why).unwrap_or_default(), message)
        }
    }
}

fn unhealthy(mut body: serde_json::Value, message: String) -> Response {
    if let Some(o) = body.as_object_mut() {
        o.insert("error".into(), "unhealthy".into());
        o.insert("message".into(), message.into());
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(st): State<ApiState>) -> Response {
    let m = &st.app.metrics;
    let size = st.app.mempool.size();
    m.mempool_txs
        .set(i64::try_from(size.txs).unwrap_or(i64::MAX));
    m.mempool_bytes
        .set(i64::try_from(size.bytes).unwrap_or(i64::MAX));
    m.set_store_memory(st.app.store.memory());
    let mut resp = m.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
