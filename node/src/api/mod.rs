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
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
pub use error::ApiError;
use futures::{FutureExt, StreamExt};
use limits::{
    BATCH_BODY_BYTES_MAX, BATCHES_CONCURRENT_MAX, BLOCKING_TASKS_MAX, BODY_BYTES_IN_FLIGHT_MAX,
    CONNECTIONS_MAX, ConnectionTable, RateLimiter, TX_BODY_BYTES_MAX, UNKNOWN_CLIENT, accept,
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
    /// Bytes of request bodies in flight ([`BODY_BYTES_IN_FLIGHT_MAX`]).
    body_bytes: Arc<Semaphore>,
    body_read_timeout: Duration,
    /// Becomes `true` when the server shuts down (waiting submissions stop waiting).
    shutdown: Arc<watch::Sender<bool>>,
}

impl ApiState {
    fn new(app: Arc<App>, shutdown: Arc<watch::Sender<bool>>, body_read_timeout: Duration) -> Self {
        let cfg = &app.api_config;
        ApiState {
            limiter: Arc::new(RateLimiter::new(
                cfg.rate_limit_per_sec,
                cfg.rate_limit_burst,
            )),
            blocking: Arc::new(Semaphore::new(BLOCKING_TASKS_MAX)),
            batches: Arc::new(Semaphore::new(BATCHES_CONCURRENT_MAX)),
            body_bytes: Arc::new(Semaphore::new(BODY_BYTES_IN_FLIGHT_MAX)),
            body_read_timeout,
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
    let timeout = Duration::from_millis(app.api_config.body_read_timeout_ms);
    build_with(app, shutdown, timeout)
}

fn build_with(
    app: Arc<App>,
    shutdown: Arc<watch::Sender<bool>>,
    body_read_timeout: Duration,
) -> Router {
    let state = ApiState::new(app, shutdown, body_read_timeout);
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
        .route(
            "/v1/proofs/status/validators",
            get(chain::status_validators),
        )
        .route("/v1/proofs/status/{kind}/{id}", get(chain::status_bundle))
        .route("/v1/proofs/history/{kind}/{id}", get(chain::history_page))
        .route("/v1/checkpoint", get(chain::checkpoint))
        .route("/v1/consistency", get(chain::consistency))
        .route("/v1/genesis", get(chain::genesis))
        .route("/v1/status", get(chain::status))
        .route("/healthz", get(chain::healthz))
        .route("/metrics", get(chain::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(catch_panic))
        .layer(middleware::from_fn_with_state(state.clone(), read_body))
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// The server's connection and timing bounds (from `[api]`).
#[derive(Clone, Copy, Debug)]
pub struct ServerLimits {
    /// Time to send a request's headers; also the idle timeout of keep-alive connections.
    pub header_read_timeout: Duration,
    /// Time to send a request's body once the headers are in.
    pub body_read_timeout: Duration,
    /// Open connections in total ([`CONNECTIONS_MAX`]).
    pub connections_max: usize,
    /// Open connections per client address.
    pub connections_per_client_max: usize,
}

impl ServerLimits {
    /// The limits of `cfg`.
    pub fn of(cfg: &crate::config::ApiConfig) -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_millis(cfg.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(cfg.body_read_timeout_ms),
            connections_max: CONNECTIONS_MAX,
            connections_per_client_max: cfg.connections_per_client_max,
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting, answers
/// waiting submissions with `timeout`, and lets in-flight requests finish (at most
/// [`SHUTDOWN_GRACE`]).
///
/// Our own accept loop over hyper's HTTP/1 connections (axum's `serve` sets no timer, so
/// it has no header-read timeout): at most [`CONNECTIONS_MAX`] connections are open
/// (further clients wait in the listen backlog), at most `api.connections_per_client_max`
/// of one client (a further one is closed at once); headers must arrive within
/// `api.header_read_timeout_ms`, which also closes idle keep-alive connections, and bodies
/// within `api.body_read_timeout_ms`.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = ServerLimits::of(&app.api_config);
    serve_with(app, listener, limits, shutdown).await
}

/// [`serve`] with explicit limits.
pub async fn serve_with(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let signal = Arc::new(watch::channel(false).0);
    let router = build_with(app, signal.clone(), limits.body_read_timeout);
    let table = ConnectionTable::new(limits.connections_max, limits.connections_per_client_max);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let reserved = tokio::select! {
            r = table.reserve() => r,
            () = &mut shutdown => break,
        };
        let (stream, addr) = tokio::select! {
            c = accept(&listener) => c,
            () = &mut shutdown => break,
        };
        let Some(slot) = table.admit(addr.ip(), reserved) else {
            tracing::debug!(client = %addr.ip(), "API connection refused: the client holds its share of connections");
            drop(stream);
            continue;
        };
        // Small JSON answers: do not wait to coalesce them.
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                tower::ServiceExt::oneshot(router.clone(), req.map(axum::body::Body::new))
            });
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let stop = signal.subscribe();
        conns.spawn(async move {
            let _slot = slot;
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "API connection ended");
                    }
                    return;
                }
                () = stopped(stop) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
        // Reap finished connections so that the set stays at the open ones.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    signal.send_replace(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            grace_s = SHUTDOWN_GRACE.as_secs(),
            "API requests still running at shutdown were cut off"
        );
        conns.abort_all();
    }
    Ok(())
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

/// Receives the whole request body before the handler runs, within the body-read timeout
/// and the route's size bound, counting its bytes against [`BODY_BYTES_IN_FLIGHT_MAX`]
/// until the answer is ready. A body that stops arriving is answered `408` (and the
/// connection closed) instead of holding the connection and a handler's slots.
async fn read_body(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let limit = if req.uri().path() == "/v1/txs/batch" {
        BATCH_BODY_BYTES_MAX
    } else {
        TX_BODY_BYTES_MAX
    };
    let too_large =
        || ApiError::PayloadTooLarge(format!("the request body is larger than {limit} bytes"));
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large().into_response();
    }
    let (parts, body) = req.into_parts();
    let mut held: Option<tokio::sync::OwnedSemaphorePermit> = None;
    let receive = async {
        let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::BadRequest(format!("the request body could not be read: {e}"))
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            let n = u32::try_from(chunk.len()).map_err(|_| too_large())?;
            let permit = st
                .body_bytes
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| {
                    ApiError::Busy("the node is receiving too many request bodies; retry".into())
                })?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    let body = match tokio::time::timeout(st.body_read_timeout, receive).await {
        Ok(Ok(buf)) => buf,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => {
            let mut resp = ApiError::RequestTimeout(format!(
                "the request body did not arrive within {} ms",
                st.body_read_timeout.as_millis()
            ))
            .into_response();
            resp.headers_mut().insert(
                header::CONNECTION,
                header::HeaderValue::from_static("close"),
            );
            return resp;
        }
    };
    let resp = next.run(Request::from_parts(parts, Body::from(body))).await;
    drop(held);
    resp
}
