//! Queries: transaction status, accounts, approvals, parcels, the catalogue, access
//! events, departments' records, documents and governance proposals. Every list is a
//! page of [`RecordView`]s over one secondary index of the store.

use super::ApiState;
use super::error::{ApiError, ApiPath, ApiQuery};
use super::limits::{PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use super::views::{PageView, RecordLoader, RecordView};
use crate::app::App;
use axum::Json;
use axum::extract::State;
use ledger::crypto::PublicKey;
use ledger::hash::Hash;
use ledger::index::IndexQuery;
use ledger::state::{
    ApprovalState, CatalogState, MemberState, ParcelState, ProposalState, StateView,
};
use ledger::tx::{ID_BYTES_MAX, check_department_id};
use serde::{Deserialize, Serialize};

/// `?after=&limit=`.
#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    /// Leaf index cursor (exclusive).
    pub after: Option<u64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
}

impl PageParams {
    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(PAGE_LIMIT_DEFAULT),
            Some(0) => Err(ApiError::BadRequest("limit must be at least 1".into())),
            Some(n) => Ok(n.min(PAGE_LIMIT_MAX)),
        }
    }
}

/// One page of an index query, as record views.
fn load_page(
    app: &App,
    q: &IndexQuery<'_>,
    after: Option<u64>,
    limit: usize,
) -> Result<PageView, ApiError> {
    let page = app.store.query(q, after, limit)?;
    RecordLoader::new(&app.store).page(page)
}

/// Checks an approval, parcel or resource id from a path or query.
pub(super) fn check_id(what: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > ID_BYTES_MAX || id.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{what} must be 1-{ID_BYTES_MAX} bytes without control characters"
        )));
    }
    Ok(())
}

fn parse_hash(what: &str, s: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(s).map_err(|_| ApiError::BadRequest(format!("{what} must be 64 hex digits")))
}

/// `GET /v1/txs/{id}`.
#[derive(Debug, Serialize)]
pub struct TxView {
    /// Record id.
    pub id: Hash,
    /// `committed` or `pending`.
    pub status: &'static str,
    /// The record, once committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<RecordView>,
}

/// `GET /v1/txs/{id}`.
pub async fn tx(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TxView>, ApiError> {
    let id = parse_hash("the record id", &id)?;
    st.blocking(move |app| {
        if let Some(loc) = app.store.tx_location(&id)? {
            let record = RecordLoader::new(&app.store).at(id, loc)?;
            return Ok(Json(TxView {
                id,
                status: "committed",
                record: Some(record),
            }));
        }
        if app.mempool.contains(&id) {
            return Ok(Json(TxView {
                id,
                status: "pending",
                record: None,
            }));
        }
        Err(ApiError::NotFound(format!(
            "transaction {id} is neither committed nor pending on this node"
        )))
    })
    .await
}

/// `GET /v1/accounts/{key}`.
#[derive(Debug, Serialize)]
pub struct AccountView {
    /// The key.
    pub key: PublicKey,
    /// Its member record (kept, inactive, after removal), if any.
    pub member: Option<MemberState>,
    /// Whether it is in the validator set for the next height.
    pub validator: bool,
    /// Its next nonce after the committed transactions.
    pub next_nonce: u64,
    /// Its next nonce counting the transactions in this node's mempool.
    pub pending_nonce: u64,
}

/// `GET /v1/accounts/{key}`.
pub async fn account(
    State(st): State<ApiState>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<AccountView>, ApiError> {
    let key = PublicKey::from_hex(&key)
        .map_err(|_| ApiError::BadRequest("the key must be 64 hex digits".into()))?;
    st.blocking(move |app| {
        let state = app.store.state();
        let tip = app.store.stored_tip()?;
        let validator = state
            .validator_sets()?
            .at(tip.height + 1)
            .is_some_and(|s| s.get(&key).is_some());
        let pending_nonce = app
            .mempool
            .pending_nonce(&app.store, &key)
            .map_err(ApiError::Internal)?;
        Ok(Json(AccountView {
            key,
            member: state.member(&key)?,
            validator,
            next_nonce: state.next_nonce(&key)?,
            pending_nonce,
        }))
    })
    .await
}

/// `GET /v1/approvals/{id}`.
#[derive(Debug, Serialize)]
pub struct ApprovalView {
    /// Its current form.
    pub approval: ApprovalState,
    /// Whether it is in force at the tip's block time: `valid`, `revoked`, `expired` or
    /// `not_yet_valid` (its `status` says only whether it was revoked).
    pub validity: ledger::status::Validity,
    /// The height and block time `validity` is judged at.
    pub as_of_height: u64,
    /// The block time (ms since the epoch).
    pub as_of_ms: u64,
    /// Every record about it.
    pub history: PageView,
}

/// `GET /v1/approvals/{id}`.
pub async fn approval(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<ApprovalView>, ApiError> {
    check_id("the approval id", &id)?;
    let limit = p.limit()?;
    st.blocking(move |app| {
        let approval = app
            .store
            .state()
            .approval(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("approval {id:?} does not exist")))?;
        let history = load_page(app, &IndexQuery::Approval(&id), p.after, limit)?;
        let tip = app.store.stored_tip()?;
        Ok(Json(ApprovalView {
            validity: ledger::status::approval_validity(&approval, tip.time_ms),
            as_of_height: tip.height,
            as_of_ms: tip.time_ms,
            approval,
            history,
        }))
    })
    .await
}

/// `?subject=` of the approval and access lists.
#[derive(Debug, Deserialize)]
pub struct SubjectParams {
    /// The subject.
    pub subject: Option<String>,
}

fn subject(p: SubjectParams) -> Result<String, ApiError> {
    p.subject
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadRequest("the query parameter `subject` is required".into()))
}

/// `GET /v1/approvals?subject=S`.
pub async fn approvals_by_subject(
    State(st): State<ApiState>,
    ApiQuery(s): ApiQuery<SubjectParams>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<PageView>, ApiError> {
    let subject = subject(s)?;
    check_id("the subject", &subject)?;
    let limit = p.limit()?;
    st.blocking(move |app| {
        load_page(app, &IndexQuery::ApprovalSubject(&subject), p.after, limit).map(Json)
    })
    .await
}

/// `GET /v1/parcels/{id}`.
#[derive(Debug, Serialize)]
pub struct ParcelView {
    /// Current title and encumbrances.
    pub parcel: ParcelState,
    /// Its full history.
    pub history: PageView,
}

/// `GET /v1/parcels/{id}`.
pub async fn parcel(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<ParcelView>, ApiError> {
    check_id("the parcel id", &id)?;
    let limit = p.limit()?;
    st.blocking(move |app| {
        let parcel = app
            .store
            .state()
            .parcel(&id)?
            .ok_or_else(|| ApiError::NotFound(format!("parcel {id:?} is not registered")))?;
        let history = load_page(app, &IndexQuery::Parcel(&id), p.after, limit)?;
        Ok(Json(ParcelView { parcel, history }))
    })
    .await
}

/// `GET /v1/catalog`.
pub async fn catalog(
    State(st): State<ApiState>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<PageView>, ApiError> {
    let limit = p.limit()?;
    st.blocking(move |app| {
        load_page(app, &IndexQuery::CatalogRegistrations, p.after, limit).map(Json)
    })
    .await
}

/// `GET /v1/catalog/{id}`.
#[derive(Debug, Serialize)]
pub struct CatalogView {
    /// The current entry.
    pub entry: CatalogState,
    /// Its registration, updates and the access events on it.
    pub history: PageView,
}

/// `GET /v1/catalog/{id}`.
pub async fn catalog_entry(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<CatalogView>, ApiError> {
    check_id("the resource id", &id)?;
    let limit = p.limit()?;
    st.blocking(move |app| {
        let entry = app.store.state().catalog(&id)?.ok_or_else(|| {
            ApiError::NotFound(format!("catalogue resource {id:?} does not exist"))
        })?;
        let history = load_page(app, &IndexQuery::Resource(&id), p.after, limit)?;
        Ok(Json(CatalogView { entry, history }))
    })
    .await
}

/// `GET /v1/access?subject=PSEUDONYM`.
pub async fn access(
    State(st): State<ApiState>,
    ApiQuery(s): ApiQuery<SubjectParams>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<PageView>, ApiError> {
    let pseudonym = parse_hash("the subject pseudonym", &subject(s)?)?;
    let limit = p.limit()?;
    st.blocking(move |app| {
        load_page(app, &IndexQuery::Pseudonym(&pseudonym), p.after, limit).map(Json)
    })
    .await
}

/// `?from_ms=&to_ms=` (inclusive; default: all time).
#[derive(Debug, Deserialize)]
pub struct TimeRange {
    /// From (inclusive).
    pub from_ms: Option<u64>,
    /// To (inclusive).
    pub to_ms: Option<u64>,
}

/// `GET /v1/departments/{dept}/records`.
pub async fn department_records(
    State(st): State<ApiState>,
    ApiPath(dept): ApiPath<String>,
    ApiQuery(t): ApiQuery<TimeRange>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<PageView>, ApiError> {
    check_department_id(&dept).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (from_ms, to_ms) = (t.from_ms.unwrap_or(0), t.to_ms.unwrap_or(u64::MAX));
    if from_ms > to_ms {
        return Err(ApiError::BadRequest(format!(
            "from_ms ({from_ms}) is after to_ms ({to_ms})"
        )));
    }
    let limit = p.limit()?;
    st.blocking(move |app| {
        let q = IndexQuery::Department {
            department: &dept,
            from_ms,
            to_ms,
        };
        load_page(app, &q, p.after, limit).map(Json)
    })
    .await
}

/// `GET /v1/documents/{hash}`.
pub async fn document(
    State(st): State<ApiState>,
    ApiPath(hash): ApiPath<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<PageView>, ApiError> {
    let hash = parse_hash("the document hash", &hash)?;
    let limit = p.limit()?;
    st.blocking(move |app| load_page(app, &IndexQuery::Document(&hash), p.after, limit).map(Json))
        .await
}

/// `GET /v1/governance/{proposal_id}`.
#[derive(Debug, Serialize)]
pub struct ProposalView {
    /// The proposal, its votes and status.
    pub proposal: ProposalState,
    /// The proposing record and the votes.
    pub records: PageView,
}

/// `GET /v1/governance/{proposal_id}`.
pub async fn proposal(
    State(st): State<ApiState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<ProposalView>, ApiError> {
    let id = parse_hash("the proposal id", &id)?;
    let limit = p.limit()?;
    st.blocking(move |app| {
        let proposal = app.store.state().proposal(&id)?.ok_or_else(|| {
            ApiError::NotFound(format!("governance proposal {id} does not exist"))
        })?;
        let records = load_page(app, &IndexQuery::Proposal(&id), p.after, limit)?;
        Ok(Json(ProposalView { proposal, records }))
    })
    .await
}
