//! API errors and the extractors that turn malformed requests into them.
//!
//! Every error answers `{"error": <code>, "message": <text>}` (plus `reason` for a
//! refused transaction) with the status `docs/api.md` lists, never axum's plain-text
//! rejections.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ledger::execute::Rejection;
use ledger::state::StateError;
use ledger::store::StoreError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A malformed request: query, path or JSON body.
    #[error("{0}")]
    BadRequest(String),
    /// The transaction bytes are not hex or not a canonical `SignedTx`.
    #[error("{0}")]
    BadEncoding(String),
    /// The state machine refuses the transaction.
    #[error("{0}")]
    Refused(Rejection),
    /// No such record, block or route.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body (or batch) is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The mempool is full: retry later.
    #[error("{0}")]
    MempoolFull(String),
    /// The node is at a limit other than the mempool (e.g. `wait=true` requests): retry.
    #[error("{0}")]
    Busy(String),
    /// The client exceeded its rate limit.
    #[error("too many requests from this address; retry in {retry_after_s} s")]
    RateLimited {
        /// Seconds until a request will be accepted.
        retry_after_s: u64,
    },
    /// A `wait=true` submission did not commit in time (it may still commit).
    #[error("{0}")]
    Timeout(String),
    /// The client did not send its request body in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// The node cannot serve (its store does not answer).
    #[error("{0}")]
    Unavailable(String),
    /// The node failed: not the client's fault.
    #[error("{0}")]
    Internal(String),
}

/// The JSON body of an error.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable code.
    pub error: &'static str,
    /// For `refused`: the state machine's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// For humans.
    pub message: String,
}

impl ApiError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BadEncoding(_) => "bad_encoding",
            ApiError::Refused(_) => "refused",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::MempoolFull(_) => "mempool_full",
            ApiError::Busy(_) => "busy",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Timeout(_) => "timeout",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::BadEncoding(_) => StatusCode::BAD_REQUEST,
            ApiError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MempoolFull(_) | ApiError::Busy(_) | ApiError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `Retry-After` in seconds, for the answers that invite a retry.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            ApiError::MempoolFull(_) | ApiError::Busy(_) => Some(1),
            ApiError::RateLimited { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code(),
            reason: match self {
                ApiError::Refused(r) => Some(r.code()),
                _ => None,
            },
            message: self.to_string(),
        }
    }

    /// A refusal by the state machine; a failure to read the state is the node's fault.
    pub fn refused(r: Rejection) -> Self {
        match r {
            Rejection::State(e) => ApiError::Internal(format!("cannot check the transaction: {e}")),
            r => ApiError::Refused(r),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(msg) | ApiError::Unavailable(msg) = &self {
            tracing::error!(error = %msg, "API request failed");
        }
        let mut resp = (self.status(), Json(self.body())).into_response();
        if let Some(s) = self.retry_after_s() {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownCursor(_) => ApiError::BadRequest(e.to_string()),
            StoreError::NoStateTree => ApiError::NotFound(e.to_string()),
            e => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// [`Query`] whose rejection is a JSON `bad_request`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// [`Path`] whose rejection is a JSON `bad_request`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// A JSON body, read within the route's body limit. Unlike axum's `Json` it does not
/// insist on a `Content-Type` (so `curl -d` works); a body over the limit is a JSON
/// `payload_too_large`, anything unparsable a JSON `bad_request`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!("request body too large: {}", e.body_text()))
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::BadRequest(format!("the body is not the expected JSON: {e}")))
    }
}
