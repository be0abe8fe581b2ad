//! The HTTP API: the contract is `docs/api.md`.
//!
//! * [`write`]: submitting transactions (single, waiting, batch).
//! * [`read`]: queries over the store's indexes, as pages of record views.
//! * [`chain`]: blocks, proofs, checkpoints, consistency, genesis, status, health, metrics.
//! * [`limits`]: body, page and batch bounds, per-client rate limits, a connection cap.
//! * [`views`]: the JSON shapes; [`error`]: JSON errors and the extractors that produce them.
//!
//! Store reads, proof building and signature checks run on the blocking pool, at most
//! [`limits::BLOCKING_TASKS_MAX`] at a time, never on the async workers. Every answer is
//! counted in `govledger_api_requests_total{route,status}`; a panic in a handler becomes a
//! `500 internal` answer, not a lost connection.

pub mod chain;
pub mod error;
pub mod limits;
pub mod read;
pub mod views;
pub mod write;

#[cfg(test)]
mod tests;

use crate::app::App;
use crate::metrics::RouteLabels;
use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
pub use error::ApiError;
use futures::FutureExt;
use limits::{
    BATCH_BODY_BYTES_MAX, BATCHES_CONCURRENT_MAX, BLOCKING_TASKS_MAX, CONNECTIONS_MAX,
    CappedListener, RateLimiter, TX_BODY_BYTES_MAX, UNKNOWN_CLIENT,
};
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// How long in-flight requests may run after shutdown begins (waiting submissions are
/// answered at once; this bounds everything else).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Route label of requests that matched no route (bounded: never the raw path).
const UNMATCHED_ROUTE: &str = "unmatched";

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    /// The node.
    pub app: Arc<App>,
    limiter: Arc<RateLimiter>,
    blocking: Arc<Semaphore>,
    batches: Arc<Semaphore>,
    /// Becomes `true` when the server shuts down (waiting submissions stop waiting).
    shutdown: Arc<watch::Sender<bool>>,
}

impl ApiState {
    fn new(app: Arc<App>, shutdown: Arc<watch::Sender<bool>>) -> Self {
        let cfg = &app.api_config;
        ApiState {
            limiter: Arc::new(RateLimiter::new(
                cfg.rate_limit_per_sec,
                cfg.rate_limit_burst,
            )),
            blocking: Arc::new(Semaphore::new(BLOCKING_TASKS_MAX)),
            batches: Arc::new(Semaphore::new(BATCHES_CONCURRENT_MAX)),
            shutdown,
            app,
        }
    }

    /// Runs `f` on the blocking pool once one of the API's blocking slots is free.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&App) -> Result<T, ApiError> + Send + 'static,
    {
        let slot = self
            .blocking
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::Internal("the API's blocking slots are closed".into()))?;
        let app = self.app.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            f(&app)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("the request's task failed: {e}")))?
    }
}

/// The API's routes with their limits, rate limiting and request metrics. Serve it with
/// connect info (`into_make_service_with_connect_info::<SocketAddr>`) so that rate limits
/// are per client; without it all clients share one bucket.
pub fn router(app: Arc<App>) -> Router {
    build(app, Arc::new(watch::channel(false).0))
}

fn build(app: Arc<App>, shutdown: Arc<watch::Sender<bool>>) -> Router {
    let state = ApiState::new(app, shutdown);
    Router::new()
        .route(
            "/v1/txs",
            post(write::submit).layer(DefaultBodyLimit::max(TX_BODY_BYTES_MAX)),
        )
        .route(
            "/v1/txs/batch",
            post(write::submit_batch).layer(DefaultBodyLimit::max(BATCH_BODY_BYTES_MAX)),
        )
        .route("/v1/txs/{id}", get(read::tx))
        .route("/v1/accounts/{key}", get(read::account))
        .route("/v1/approvals", get(read::approvals_by_subject))
        .route("/v1/approvals/{id}", get(read::approval))
        .route("/v1/parcels/{id}", get(read::parcel))
        .route("/v1/catalog", get(read::catalog))
        .route("/v1/catalog/{id}", get(read::catalog_entry))
        .route("/v1/access", get(read::access))
        .route(
            "/v1/departments/{dept}/records",
            get(read::department_records),
        )
        .route("/v1/documents/{hash}", get(read::document))
        .route("/v1/governance/{proposal_id}", get(read::proposal))
        .route("/v1/blocks/latest", get(chain::latest_block))
        .route("/v1/blocks/{height}", get(chain::block))
        .route("/v1/chain/blocks", get(chain::chain_blocks))
        .route("/v1/proofs/{id}", get(chain::proof))
        .route("/v1/checkpoint", get(chain::checkpoint))
        .route("/v1/consistency", get(chain::consistency))
        .route("/v1/genesis", get(chain::genesis))
        .route("/v1/status", get(chain::status))
        .route("/healthz", get(chain::healthz))
        .route("/metrics", get(chain::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(catch_panic))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting, answers
/// waiting submissions with `timeout`, and lets in-flight requests finish (at most
/// [`SHUTDOWN_GRACE`]). At most [`CONNECTIONS_MAX`] connections are open at once.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let signal = Arc::new(watch::channel(false).0);
    let router = build(app, signal.clone());
    let listener = CappedListener::new(listener, CONNECTIONS_MAX).tap_io(|io| {
        // Small JSON answers: do not wait to coalesce them.
        let _ = io.tcp().set_nodelay(true);
    });
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stopped(signal.subscribe()))
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => return r,
        () = shutdown => {}
    }
    signal.send_replace(true);
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(
                grace_s = SHUTDOWN_GRACE.as_secs(),
                "API requests still running at shutdown were cut off"
            );
            Ok(())
        }
    }
}

/// Completes once the shutdown flag is set (never, if its sender is gone unset).
pub(crate) async fn stopped(mut flag: watch::Receiver<bool>) {
    if flag.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint; see docs/api.md".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed("this endpoint does not take this method; see docs/api.md".into())
}

/// Per-client token buckets (`api.rate_limit_*`).
async fn rate_limit(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(UNKNOWN_CLIENT, |c| c.0.ip());
    match st.limiter.check(ip, Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(wait) => ApiError::RateLimited {
            // Rounded up: a client that waits this long is admitted.
            retry_after_s: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
        }
        .into_response(),
    }
}

/// Counts every answer by route pattern and status.
async fn count_requests(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED_ROUTE.to_string(), |m| m.as_str().to_string());
    let resp = next.run(req).await;
    st.app
        .metrics
        .api_requests
        .get_or_create(&RouteLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Turns a panic in a handler into a `500 internal` answer.
async fn catch_panic(req: Request, next: Next) -> Response {
    match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            ApiError::Internal(format!("the request handler panicked: {what}")).into_response()
        }
    }
}
