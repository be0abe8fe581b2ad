//! Submission: `POST /v1/txs` (optionally waiting for the commit) and `POST /v1/txs/batch`.
//!
//! A transaction is decoded on the async runtime (bounded, cheap), then verified and
//! checked against the mempool's state off it, in one blocking task. Admitted
//! transactions are handed to the network once per request.

use super::error::{ApiError, ApiJson, ApiQuery};
use super::limits::{BATCH_TXS_MAX, WAIT_TIMEOUT_DEFAULT_MS, WAIT_TIMEOUT_MAX_MS};
use super::views::SubmitView;
use super::{ApiState, stopped};
use crate::app::{App, now_ms};
use crate::mempool::MempoolError;
use crate::metrics::ReasonLabels;
use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ledger::execute::{Rejection, VerifiedTx, verify_batch};
use ledger::hash::Hash;
use ledger::store::TxLocation;
use ledger::tx::{SignedTx, TX_BYTES_MAX, tx_id};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Body of `POST /v1/txs`.
#[derive(Debug, Deserialize)]
pub struct SubmitBody {
    /// Hex of the canonical `SignedTx` bytes.
    pub tx: String,
}

/// Query of `POST /v1/txs`.
#[derive(Debug, Default, Deserialize)]
pub struct SubmitParams {
    /// Wait until the transaction is committed.
    #[serde(default)]
    pub wait: bool,
    /// How long to wait (ms; default 30000, at most 120000).
    pub timeout_ms: Option<u64>,
}

/// Body of `POST /v1/txs/batch`.
#[derive(Debug, Deserialize)]
pub struct BatchBody {
    /// Hex of each transaction's canonical bytes.
    pub txs: Vec<String>,
}

/// One result of a batch.
#[derive(Debug, Serialize)]
pub struct BatchItem {
    /// Record id (absent when the bytes do not decode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Hash>,
    /// `pending` or `committed` when accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// Height, if already committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Leaf index, if already committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_index: Option<u64>,
    /// Error code when not accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    /// For `refused`: the state machine's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// For humans, when not accepted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl BatchItem {
    fn accepted(v: SubmitView) -> Self {
        BatchItem {
            id: Some(v.id),
            status: Some(v.status),
            height: v.height,
            leaf_index: v.leaf_index,
            error: None,
            reason: None,
            message: None,
        }
    }

    fn failed(id: Option<Hash>, e: &ApiError) -> Self {
        let body = e.body();
        BatchItem {
            id,
            status: None,
            height: None,
            leaf_index: None,
            error: Some(body.error),
            reason: body.reason,
            message: Some(body.message),
        }
    }
}

/// Answer of `POST /v1/txs/batch`.
#[derive(Debug, Serialize)]
pub struct BatchView {
    /// One result per transaction, in request order.
    pub results: Vec<BatchItem>,
}

/// Decodes a hex transaction: `bad_encoding` unless it is a canonical `SignedTx` within
/// the size bound. Returns the transaction and its record id.
fn decode_tx(hex_tx: &str) -> Result<(SignedTx, Hash), ApiError> {
    let hex_tx = hex_tx.trim();
    if hex_tx.len() > 2 * TX_BYTES_MAX {
        return Err(ApiError::BadEncoding(format!(
            "the transaction is larger than {TX_BYTES_MAX} bytes"
        )));
    }
    let bytes = hex::decode(hex_tx)
        .map_err(|e| ApiError::BadEncoding(format!("the transaction is not hex: {e}")))?;
    let stx = SignedTx::decode(&bytes).map_err(|e| {
        ApiError::BadEncoding(format!("the transaction is not a canonical SignedTx: {e}"))
    })?;
    // Canonical decoding means the bytes are exactly the encoding the id is defined over.
    Ok((stx, tx_id(&bytes)))
}

/// What admission did with one verified transaction.
enum Admission {
    /// New in the mempool (to be announced).
    Admitted(VerifiedTx),
    /// Already held, or already committed at this location.
    Known(Option<TxLocation>),
}

/// Inserts a verified transaction; counts refusals.
fn admit(app: &App, vtx: VerifiedTx) -> Result<Admission, ApiError> {
    let id = vtx.id();
    let admitted = match app.mempool.insert(&app.store, vtx.clone(), now_ms()) {
        Ok(()) => true,
        Err(MempoolError::Duplicate(_)) => false,
        Err(MempoolError::Full { .. }) => {
            return Err(ApiError::MempoolFull(
                "the mempool is full; retry shortly".into(),
            ));
        }
        Err(MempoolError::Refused(r)) => return Err(refusal(app, r)),
    };
    // Also for a fresh admission: a commit may have raced with it, and a waiter
    // registered before the insert must not miss it.
    let loc = app.store.tx_location(&id)?;
    Ok(match (admitted, loc) {
        (true, None) => Admission::Admitted(vtx),
        (_, loc) => Admission::Known(loc),
    })
}

/// Maps a refusal to its error and counts it by reason.
fn refusal(app: &App, r: Rejection) -> ApiError {
    let e = ApiError::refused(r);
    if let ApiError::Refused(r) = &e {
        count_refused(app, r.code());
    }
    e
}

fn count_refused(app: &App, reason: &str) {
    app.metrics
        .txs_refused
        .get_or_create(&ReasonLabels {
            reason: reason.to_string(),
        })
        .inc();
}

/// `POST /v1/txs`.
pub async fn submit(
    State(st): State<ApiState>,
    ApiQuery(params): ApiQuery<SubmitParams>,
    ApiJson(body): ApiJson<SubmitBody>,
) -> Result<Response, ApiError> {
    let (stx, id) = decode_tx(&body.tx).inspect_err(|_| count_refused(&st.app, "bad_encoding"))?;
    let wait = params.wait;
    let (admission, waiter) = st
        .blocking(move |app| {
            let vtx =
                VerifiedTx::verify(stx).map_err(|e| refusal(app, Rejection::BadSignature(e)))?;
            // Registered after the signature check (a forged submission takes no waiter
            // slot) and before the insert, so that a commit right after it is not missed.
            let waiter = if wait {
                let rx = app
                    .waiters
                    .register(id, app.api_config.waiters_max)
                    .ok_or_else(|| {
                        ApiError::Busy(
                            "too many requests are waiting for commits; retry, or submit without wait=true and poll"
                                .into(),
                        )
                    })?;
                Some(rx)
            } else {
                None
            };
            Ok((admit(app, vtx)?, waiter))
        })
        .await?;
    let loc = match admission {
        Admission::Admitted(vtx) => {
            st.app.announce_txs(vec![vtx]);
            None
        }
        Admission::Known(loc) => loc,
    };
    if let Some(loc) = loc {
        return Ok((StatusCode::OK, Json(SubmitView::committed(id, loc))).into_response());
    }
    let Some(rx) = waiter else {
        return Ok((StatusCode::ACCEPTED, Json(SubmitView::pending(id))).into_response());
    };
    let timeout_ms = params
        .timeout_ms
        .unwrap_or(WAIT_TIMEOUT_DEFAULT_MS)
        .min(WAIT_TIMEOUT_MAX_MS);
    let still_pending = |why: &str| {
        ApiError::Timeout(format!(
            "transaction {id} {why}; it is still pending: poll GET /v1/txs/{id}"
        ))
    };
    let waited = tokio::select! {
        r = rx => r.ok(),
        () = tokio::time::sleep(Duration::from_millis(timeout_ms)) => {
            return Err(still_pending(&format!("was not committed within {timeout_ms} ms")));
        }
        () = stopped(st.shutdown.subscribe()) => {
            return Err(still_pending("was not committed before the node began shutting down"));
        }
    };
    let loc = match waited {
        Some(loc) => Some(loc),
        // The waiter was dropped without a commit (the node is stopping): look once more.
        None => {
            st.blocking(move |app| Ok(app.store.tx_location(&id)?))
                .await?
        }
    };
    match loc {
        Some(loc) => Ok((StatusCode::OK, Json(SubmitView::committed(id, loc))).into_response()),
        None => Err(still_pending(
            "was not committed before the node stopped waiting",
        )),
    }
}

/// `POST /v1/txs/batch`. The body has arrived whole before the handler runs (the server's
/// body-read step bounds its time and the bytes of all bodies in flight); one of a few
/// batch slots is taken only then, so that clients that stop sending cannot hold a slot.
pub async fn submit_batch(State(st): State<ApiState>, req: Request) -> Result<Response, ApiError> {
    let ApiJson(body) = ApiJson::<BatchBody>::from_request(req, &()).await?;
    if body.txs.len() > BATCH_TXS_MAX {
        return Err(ApiError::PayloadTooLarge(format!(
            "a batch holds at most {BATCH_TXS_MAX} transactions, this one {}",
            body.txs.len()
        )));
    }
    let _slot = st
        .batches
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Internal("batch slots closed".into()))?;
    let decoded: Vec<Result<(SignedTx, Hash), ApiError>> =
        body.txs.iter().map(|h| decode_tx(h)).collect();
    drop(body);
    let (results, admitted) = st
        .blocking(move |app| {
            let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(decoded.len());
            let mut to_verify = Vec::with_capacity(decoded.len());
            let mut ids = Vec::with_capacity(decoded.len());
            for d in decoded {
                match d {
                    Ok((stx, id)) => {
                        results.push(None);
                        to_verify.push(stx);
                        ids.push((results.len() - 1, id));
                    }
                    Err(e) => {
                        count_refused(app, "bad_encoding");
                        results.push(Some(BatchItem::failed(None, &e)));
                    }
                }
            }
            let mut admitted = Vec::new();
            for ((slot, id), verdict) in ids.into_iter().zip(verify_batch(to_verify)) {
                let item = match verdict
                    .map_err(|e| refusal(app, Rejection::BadSignature(e)))
                    .and_then(|vtx| admit(app, vtx))
                {
                    Ok(Admission::Admitted(vtx)) => {
                        admitted.push(vtx);
                        BatchItem::accepted(SubmitView::pending(id))
                    }
                    Ok(Admission::Known(Some(loc))) => {
                        BatchItem::accepted(SubmitView::committed(id, loc))
                    }
                    Ok(Admission::Known(None)) => BatchItem::accepted(SubmitView::pending(id)),
                    Err(e) => {
                        if let ApiError::Internal(msg) = &e {
                            tracing::error!(error = %msg, %id, "batch admission failed");
                        }
                        BatchItem::failed(Some(id), &e)
                    }
                };
                results[slot] = Some(item);
            }
            let results: Vec<BatchItem> = results.into_iter().flatten().collect();
            Ok((results, admitted))
        })
        .await?;
    st.app.announce_txs(admitted);
    Ok(Json(BatchView { results }).into_response())
}
