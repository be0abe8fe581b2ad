//! The API's bounds: request body sizes, pagination, per-client rate limits (token
//! buckets in a bounded table), caps on open connections (in total and per client) and
//! the timeouts that keep slow or silent clients from holding them.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bound on the body of `POST /v1/txs`.
pub const TX_BODY_BYTES_MAX: usize = 256 * 1024;
/// Bound on the body of `POST /v1/txs/batch`.
pub const BATCH_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Bound on the transactions of one batch.
pub const BATCH_TXS_MAX: usize = 10_000;
/// Batches verified and admitted at once. A slot is taken only once the whole body has
/// arrived, so that clients that stop sending cannot hold one.
pub const BATCHES_CONCURRENT_MAX: usize = 4;
/// Bytes of request bodies being received or held by handlers at once, over all
/// connections (eight full batches). Taken chunk by chunk as bytes arrive: a stalled
/// upload holds only what it sent, and only until [`BODY_READ_TIMEOUT_MS`]. A request
/// that would exceed it is answered `503 busy`.
pub const BODY_BYTES_IN_FLIGHT_MAX: usize = 8 * BATCH_BODY_BYTES_MAX;
/// Default of `api.header_read_timeout_ms`: the time a connection has to send a request's
/// headers. hyper starts this timer whenever the connection waits for a request head,
/// so it is also the idle timeout of keep-alive connections (slowloris and idle
/// connections are closed after it).
pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
/// Default of `api.body_read_timeout_ms`: the time a request has to send its whole body
/// once its headers are in (a 16 MiB batch at 1 MiB/s fits). Past it the request is
/// answered `408 request_timeout` and the connection closed.
pub const BODY_READ_TIMEOUT_MS: u64 = 30_000;
/// Default of `api.connections_per_client_max`: open connections of one client address
/// (IPv4 address or IPv6 /64). A further connection of that client is closed at once, so
/// one client cannot take the whole [`CONNECTIONS_MAX`].
pub const CONNECTIONS_PER_CLIENT_MAX: usize = 64;
/// Default page size.
pub const PAGE_LIMIT_DEFAULT: usize = 100;
/// Largest page size (larger requests are clamped).
pub const PAGE_LIMIT_MAX: usize = ledger::store::PAGE_LIMIT_MAX;
/// Most blocks in one `/v1/chain/blocks` answer.
pub const CHAIN_BLOCKS_MAX: u64 = 100;
/// Bound on one `/v1/chain/blocks` answer (at least one block is always sent).
pub const CHAIN_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Default wait of a `wait=true` submission.
pub const WAIT_TIMEOUT_DEFAULT_MS: u64 = 30_000;
/// Longest wait of a `wait=true` submission (longer requests are clamped).
pub const WAIT_TIMEOUT_MAX_MS: u64 = 120_000;
/// Blocking tasks (store reads, proof building, verification) running at once for the API;
/// more requests queue for a slot rather than growing the blocking thread pool.
pub const BLOCKING_TASKS_MAX: usize = 64;
/// Open API connections; further clients wait in the listen backlog. Keeps file
/// descriptors for the database and the network.
pub const CONNECTIONS_MAX: usize = 256;
/// Clients tracked by the rate limiter. Beyond that, new clients share one bucket until
/// idle entries are swept.
pub const RATE_CLIENTS_MAX: usize = 16 * 1024;
/// Least time between two sweeps of a full rate-limiter table.
const RATE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The rate-limiting key of a client address: an IPv4 address, or the /64 prefix of an
/// IPv6 address (one site typically holds a whole /64, so per-address buckets there
/// would be no limit at all).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The key used when the connection's address is unknown (e.g. requests driven without a
/// socket).
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.last = now;
    }

    /// Takes a token, or says how long until one is available.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        self.refill(now, rate, burst);
        // The tolerance absorbs rounding, so that waiting exactly the time given is enough.
        if self.tokens + 1e-9 >= 1.0 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

struct Table {
    buckets: HashMap<IpAddr, Bucket>,
    /// Shared by the clients that do not fit in the table.
    overflow: Bucket,
    last_sweep: Option<Instant>,
}

/// Per-client token buckets: `rate_per_sec` requests per second with bursts of `burst`.
/// Memory is bounded by [`RATE_CLIENTS_MAX`] (or the `max_clients` given to
/// [`RateLimiter::with_capacity`]).
pub struct RateLimiter {
    table: Mutex<Table>,
    rate_per_sec: f64,
    burst: f64,
    max_clients: usize,
}

impl RateLimiter {
    /// A limiter with [`RATE_CLIENTS_MAX`] client slots. Zero values are raised to 1.
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        Self::with_capacity(rate_per_sec, burst, RATE_CLIENTS_MAX)
    }

    /// A limiter with `max_clients` client slots.
    pub fn with_capacity(rate_per_sec: u32, burst: u32, max_clients: usize) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                overflow: Bucket::full(burst, Instant::now()),
                last_sweep: None,
            }),
            rate_per_sec: f64::from(rate_per_sec.max(1)),
            burst,
            max_clients: max_clients.max(1),
        }
    }

    /// Admits one request of the client at `ip` at time `now`, or says how long it must
    /// wait.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let (rate, burst) = (self.rate_per_sec, self.burst);
        let key = client_key(ip);
        // The data stays consistent whatever panicked while holding the lock.
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = t.buckets.get_mut(&key) {
            return b.take(now, rate, burst);
        }
        if t.buckets.len() >= self.max_clients {
            let due = t
                .last_sweep
                .is_none_or(|s| now.saturating_duration_since(s) >= RATE_SWEEP_INTERVAL);
            if due {
                // A bucket that has refilled completely is the same as no bucket.
                let refill_time = burst / rate;
                t.buckets.retain(|_, b| {
                    now.saturating_duration_since(b.last).as_secs_f64() < refill_time
                });
                t.last_sweep = Some(now);
            }
            if t.buckets.len() >= self.max_clients {
                return t.overflow.take(now, rate, burst);
            }
        }
        let mut b = Bucket::full(burst, now);
        let verdict = b.take(now, rate, burst);
        t.buckets.insert(key, b);
        verdict
    }

    /// Clients currently tracked.
    pub fn clients(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .buckets
            .len()
    }
}

/// Open connections, in total and per client (the key of [`client_key`]). A connection
/// holds one [`ConnectionSlot`] while it is open.
pub struct ConnectionTable {
    total: Arc<Semaphore>,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_client_max: usize,
}

/// One open connection's place in a [`ConnectionTable`]; freed on drop.
pub struct ConnectionSlot {
    _total: OwnedSemaphorePermit,
    client: IpAddr,
    per_client: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut m = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.client);
            }
        }
    }
}

impl ConnectionTable {
    /// At most `total_max` connections, at most `per_client_max` of one client.
    pub fn new(total_max: usize, per_client_max: usize) -> Self {
        ConnectionTable {
            total: Arc::new(Semaphore::new(total_max.max(1))),
            per_client: Arc::new(Mutex::new(HashMap::new())),
            per_client_max: per_client_max.max(1),
        }
    }

    /// Waits until fewer than the global cap are open (further clients wait in the
    /// listen backlog meanwhile).
    pub async fn reserve(&self) -> OwnedSemaphorePermit {
        loop {
            // The semaphore is never closed, so acquiring only waits.
            if let Ok(s) = self.total.clone().acquire_owned().await {
                return s;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Admits a connection of the client at `ip` with a reserved global place, or `None`
    /// when that client already holds its share.
    pub fn admit(&self, ip: IpAddr, reserved: OwnedSemaphorePermit) -> Option<ConnectionSlot> {
        let client = client_key(ip);
        let mut m = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(client).or_insert(0);
        if *n >= self.per_client_max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            _total: reserved,
            client,
            per_client: self.per_client.clone(),
        })
    }

    /// Connections open for the client at `ip`.
    pub fn open_for(&self, ip: IpAddr) -> usize {
        let m = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&client_key(ip)).copied().unwrap_or(0)
    }
}

/// Accepts the next connection; connection-level errors of one client are skipped, other
/// errors (e.g. out of file descriptors) back off instead of spinning.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(c) => return c,
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                tracing::warn!(error = %e, "API accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
