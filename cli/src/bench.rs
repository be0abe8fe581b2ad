//! `govledger bench`: a load generator for a running network, open loop (a fixed offered
//! rate) or closed loop (as fast as the cluster commits, with a bounded number of
//! transactions in flight).
//!
//! How a run goes:
//!
//! 1. **Set-up** (not measured): every node answers `/v1/status`; if the mix has
//!    data-access events, each signer registers one unconditionally shared catalogue
//!    resource and waits for its commit, so that every access event is valid.
//! 2. **Pre-signing** (not measured): each signer's transactions are generated and signed
//!    with consecutive nonces from its `pending_nonce`, encoded and hex-encoded, on every
//!    core. Every transaction is valid when applied in nonce order: ids are unique to the
//!    run, land transfers move parcels the same signer registered earlier in the run.
//! 3. **ed25519 rate**: single and batch verification on one thread, so that figures from
//!    different machines can be compared (committed tx/s ÷ single verifications/s).
//! 4. **Load**: one sender thread per signer (or fewer with `--concurrency`), each signer
//!    bound to one node (signers spread over the nodes), posting `POST /v1/txs/batch` in
//!    nonce order. A tracker thread polls one node's `/v1/status` and `/v1/blocks/{h}` and
//!    takes the moment it sees a transaction's block as its commit time.
//! 5. **Drain**: after warm-up + duration no new transaction is sent; the run waits (at
//!    most `--drain`) for the ones in flight. Those never seen committed are timed out.
//!
//! Finality latency is commit observed − submit, where submit is the scheduled send time
//! in open loop (so a generator or connection that falls behind is charged to the latency,
//! not hidden: no coordinated omission) and the first send in closed loop. Offered and
//! committed rates count the measured window `[warm-up, warm-up + duration)` only.
//!
//! A signer's transactions must reach its node in nonce order (a node refuses a nonce
//! ahead of the signer's next one), so one signer never has two requests in flight. When a
//! node answers `mempool_full`, `busy` or `rate_limited` the signer backs off and resends
//! from the first transaction not admitted; when a node is unreachable the signer moves to
//! the next node and resumes from that node's `pending_nonce`; when a transaction is
//! refused for good, the signer's later transactions are re-signed from the freed nonce.

use crate::client::{ClientError, NodeClient};
use crate::exit::{LocalError, UsageError};
use crate::time::now_ms;
use crate::write::Writer;
use hdrhistogram::Histogram;
use ledger::codec;
use ledger::crypto::{PublicKey, SecretKey};
use ledger::execute::verify_batch;
use ledger::hash::{Hash, domain, hash_document};
use ledger::tx::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Default transactions per `POST /v1/txs/batch`.
pub const BATCH_DEFAULT: usize = 200;
/// Most transactions per batch (the node's bound).
pub const BATCH_MAX: usize = 10_000;
/// Default bound on transactions in flight (submitted, not yet seen committed) in closed
/// loop, over all signers.
pub const INFLIGHT_DEFAULT: usize = 20_000;
/// In open loop a signer posts at most once per tick: at low rates this keeps requests
/// (and their cost on the nodes) few, at the price of at most one tick of added latency
/// (charged to the latency, since it is measured from the scheduled time).
pub const SEND_TICK: Duration = Duration::from_millis(10);
/// Default interval between two polls of the tracked node's status.
pub const POLL_DEFAULT: Duration = Duration::from_millis(20);
/// Pre-signed transactions per second of the run in closed loop, unless `--presign`.
pub const PRESIGN_RATE_CLOSED_LOOP: u64 = 12_000;
/// Bound on pre-signed transactions (about 700 bytes of memory each).
pub const PRESIGN_MAX: u64 = 5_000_000;
/// Signatures timed for the single-verification rate (and for batches).
pub const VERIFY_SAMPLE: usize = 3000;
/// Batch size of the batch-verification rate.
pub const VERIFY_BATCH: usize = 1000;
/// First back-off after a busy answer; doubled up to [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Timeout of one batch request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a batch answer.
pub const ANSWER_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Most signer keys read from `--keys`.
pub const SIGNERS_MAX: usize = 4096;
/// Longest recorded latency (µs): an hour.
const LATENCY_MAX_US: u64 = 3_600_000_000;

// ---- the mix ---------------------------------------------------------------------------

/// A kind of generated record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Approval issue.
    Approvals,
    /// Land register, or now and then a transfer of a parcel registered earlier in the run.
    Land,
    /// Data-access event on a catalogue resource registered at set-up.
    Access,
    /// Document anchor.
    Anchor,
    /// Catalogue registration.
    Catalog,
    /// Governance proposal to add a department (never voted on).
    Governance,
}

impl Kind {
    /// Positional order of `--mix A:L:X:N[:C:G]`.
    pub const ALL: [Kind; 6] = [
        Kind::Approvals,
        Kind::Land,
        Kind::Access,
        Kind::Anchor,
        Kind::Catalog,
        Kind::Governance,
    ];

    /// Name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Approvals => "approvals",
            Kind::Land => "land",
            Kind::Access => "access",
            Kind::Anchor => "anchor",
            Kind::Catalog => "catalog",
            Kind::Governance => "governance",
        }
    }

    fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// Weights of the record kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Kind, u32)>,
    total: u64,
}

impl Mix {
    /// Parses `--mix`: weights in the order approvals:land:access:anchor[:catalog:governance]
    /// (`1:1:1:1`, `4:2:2:2:0:1`), or kinds by name with optional weights
    /// (`approvals:anchor`, `approvals=3,land=1,governance=1`).
    pub fn parse(s: &str) -> Result<Mix, String> {
        let parts: Vec<&str> = s
            .split([':', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            return Err("the mix is empty".into());
        }
        let mut weights: BTreeMap<Kind, u32> = BTreeMap::new();
        if parts.iter().all(|p| p.parse::<u32>().is_ok()) {
            if parts.len() < 4 || parts.len() > Kind::ALL.len() {
                return Err(format!(
                    "{s:?}: give 4 to 6 weights, approvals:land:access:anchor[:catalog:governance]"
                ));
            }
            for (kind, w) in Kind::ALL.into_iter().zip(&parts) {
                weights.insert(kind, w.parse().unwrap_or(0));
            }
        } else {
            for p in parts {
                let (name, w) = match p.split_once('=') {
                    Some((n, w)) => (
                        n.trim(),
                        w.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("{p:?}: the weight must be a whole number"))?,
                    ),
                    None => (p, 1),
                };
                let kind = Kind::from_name(name).ok_or_else(|| {
                    format!(
                        "{name:?} is not a kind (approvals, land, access, anchor, catalog, governance)"
                    )
                })?;
                *weights.entry(kind).or_default() += w;
            }
        }
        let weights: Vec<(Kind, u32)> = weights.into_iter().filter(|(_, w)| *w > 0).collect();
        let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Err(format!("{s:?}: every weight is zero"));
        }
        Ok(Mix { weights, total })
    }

    /// Whether the mix has this kind.
    pub fn has(&self, kind: Kind) -> bool {
        self.weights.iter().any(|(k, _)| *k == kind)
    }

    /// The kind for a uniformly random `r`.
    fn pick(&self, r: u64) -> Kind {
        let mut x = r % self.total;
        for (k, w) in &self.weights {
            if x < u64::from(*w) {
                return *k;
            }
            x -= u64::from(*w);
        }
        self.weights[0].0
    }

    /// `approvals=1,land=1,…`.
    pub fn describe(&self) -> String {
        self.weights
            .iter()
            .map(|(k, w)| format!("{}={w}", k.name()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

// ---- options ---------------------------------------------------------------------------

/// What to run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Node API URLs; signer `i` submits to node `i mod n`, the first is tracked.
    pub nodes: Vec<String>,
    /// Folder of signer key files (`*.key`).
    pub keys: PathBuf,
    /// Offered rate (tx/s) in open loop; `None` for closed loop.
    pub rate: Option<f64>,
    /// Measured window.
    pub duration: Duration,
    /// Load before the measured window.
    pub warmup: Duration,
    /// Longest wait for the transactions in flight after the load.
    pub drain: Duration,
    /// Record kinds.
    pub mix: Mix,
    /// Transactions per request.
    pub batch: usize,
    /// Sender threads (at most one per signer is useful).
    pub concurrency: Option<usize>,
    /// Closed loop: most transactions in flight over all signers.
    pub inflight: usize,
    /// Transactions to pre-sign (default: rate × (warm-up + duration) in open loop).
    pub presign: Option<u64>,
    /// Interval between two polls of the tracked node.
    pub poll: Duration,
    /// Where to write the ids of every transaction seen committed.
    pub acks_out: Option<PathBuf>,
    /// Print progress to stderr every few seconds.
    pub progress: bool,
}

/// Parses a duration that may be zero (`0`, `5s`, `500ms`, `2m`), for `--warmup`.
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    match crate::args::parse_duration_ms(s) {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(e) => {
            // The shared parser refuses zero; a zero with a valid unit means "none".
            let t = s.trim();
            let digits = t.chars().take_while(char::is_ascii_digit).count();
            let zero = digits > 0 && t[..digits].bytes().all(|b| b == b'0');
            let unit_ok = crate::args::parse_duration_ms(&format!("1{}", &t[digits..])).is_ok();
            if zero && unit_ok {
                Ok(Duration::ZERO)
            } else {
                Err(e)
            }
        }
    }
}

/// Parses a positive duration (`60`, `60s`, `2m`), for `--duration` and `--drain`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::args::parse_duration_ms(s).map(Duration::from_millis)
}

// ---- the report ------------------------------------------------------------------------

/// Finality latency percentiles (ms).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Transactions measured (submitted in the window and seen committed).
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Single-core ed25519 verification measured during the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyRate {
    /// `PublicKey::verify` one at a time, per second.
    pub single_per_s: f64,
    /// `execute::verify_batch` of 1,000 signed transactions (decode-free: encoding, ids
    /// and the batch equation), per second.
    pub batch_per_s: f64,
    /// Committed tx/s ÷ single verifications/s.
    pub committed_to_single_ratio: f64,
}

/// The outcome of a run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BenchReport {
    /// `open` (fixed offered rate) or `closed` (as fast as it commits).
    pub mode: String,
    /// Open loop: the offered rate asked for.
    pub target_rate_tps: Option<f64>,
    /// Closed loop: the bound on transactions in flight.
    pub inflight_max: Option<usize>,
    /// The nodes.
    pub nodes: Vec<String>,
    /// The tracked node.
    pub tracked_node: String,
    /// Signer keys.
    pub signers: usize,
    /// Sender threads.
    pub concurrency: usize,
    /// Transactions per request.
    pub batch: usize,
    /// The mix.
    pub mix: String,
    /// The run's id (in every generated record id).
    pub run_id: String,
    /// Warm-up (s).
    pub warmup_s: f64,
    /// Measured window (s).
    pub duration_s: f64,
    /// Mean encoded size of the generated transactions (bytes).
    pub mean_tx_bytes: f64,
    /// Pre-signed transactions.
    pub presigned: u64,
    /// Time spent pre-signing (s).
    pub presign_s: f64,
    /// Transactions that had to be signed during the load (pre-signed ones ran out, or
    /// re-signed after a refusal): the generator was then on the sending path.
    pub signed_during_load: u64,
    /// Submitted in the window ÷ duration.
    pub offered_tps: f64,
    /// Seen committed in the window ÷ duration.
    pub committed_tps: f64,
    /// Transactions submitted in the window.
    pub submitted_in_window: u64,
    /// Transactions seen committed in the window.
    pub committed_in_window: u64,
    /// Lowest and highest committed count of one whole second of the window.
    pub committed_per_s_min: u64,
    /// See `committed_per_s_min`.
    pub committed_per_s_max: u64,
    /// Finality latency of the window's transactions.
    pub latency: Latency,
    /// Open loop: the largest delay of a first send behind its schedule (ms).
    pub send_lag_max_ms: f64,
    /// Distinct transactions sent in the whole run.
    pub submitted_total: u64,
    /// Of them, seen committed (warm-up, window and drain).
    pub committed_total: u64,
    /// Sent and never seen committed by the end of the drain.
    pub timed_out: u64,
    /// Not admitted because a node was full or busy, and sent again.
    pub rejected_retried: u64,
    /// Refused for good, by the node's reason code.
    pub refused: BTreeMap<String, u64>,
    /// Later transactions of a signer dropped (re-signed) after a refusal.
    pub dropped_after_refusal: u64,
    /// Requests that failed in transport (connection refused, reset, timeout).
    pub send_errors: u64,
    /// Times a signer resumed from a node's `pending_nonce` (a node lost transactions).
    pub resyncs: u64,
    /// Batch requests.
    pub requests: u64,
    /// Heights of the tracked node at the start and the end of the load.
    pub height_start: u64,
    /// See `height_start`.
    pub height_end: u64,
    /// Blocks seen during the run and their mean transaction count.
    pub blocks: u64,
    /// See `blocks`.
    pub mean_block_txs: f64,
    /// Single-core ed25519 rates.
    pub ed25519: VerifyRate,
    /// CPU time of this process during the load and drain (s), all threads.
    pub bench_cpu_s: f64,
    /// Wall time of the load and drain (s).
    pub wall_s: f64,
    /// Committed per second since the start of the load (warm-up included).
    pub committed_per_s: Vec<u64>,
    /// Where the acknowledged ids were written, and how many.
    pub acks_out: Option<String>,
    /// Ids acknowledged as committed (set-up included).
    pub acked: u64,
}

// ---- generation ------------------------------------------------------------------------

/// One signed transaction ready to send.
struct Prepared {
    id: Hash,
    nonce: u64,
    /// `"<hex of the canonical bytes>"`: a JSON string, ready for the batch body.
    json: Box<str>,
}

/// Produces one signer's transactions.
struct Generator {
    signer: usize,
    key: SecretKey,
    chain_id: String,
    run: String,
    nonce: u64,
    seq: u64,
    rng: u64,
    mix: Arc<Mix>,
    resources: Arc<Vec<String>>,
    /// Parcels this signer registered in the run, with their current owner.
    parcels: VecDeque<(String, String)>,
    time_ms: u64,
    expires_at_ms: u64,
    bytes: u64,
    made: u64,
}

impl Generator {
    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next body: about 300 bytes once signed.
    fn body(&mut self) -> TxBody {
        let kind = {
            let r = self.random();
            self.mix.pick(r)
        };
        let (s, n, run) = (self.signer, self.seq, self.run.clone());
        let doc = hash_document(format!("{run}/{s}/{n}").as_bytes());
        match kind {
            Kind::Approvals => TxBody::ApprovalIssue(ApprovalIssue {
                approval_id: format!("BP-{run}-{s}-{n:08}"),
                kind: "building-permit".into(),
                subject: format!("91310000MA1K{:06}", self.random() % 1_000_000),
                decision: Decision::Granted,
                document_hash: doc,
                valid_from_ms: self.time_ms,
                valid_until_ms: Some(self.time_ms + 365 * 86_400_000),
                note: "granted with the standard height and setback conditions".into(),
            }),
            Kind::Land => {
                // About one land record in four transfers a parcel registered earlier.
                if !self.parcels.is_empty() && self.random().is_multiple_of(4) {
                    let (parcel, from) = self.parcels.pop_front().unwrap_or_default();
                    let to = format!("Buyer {n} of the Western District Housing Association");
                    self.parcels.push_back((parcel.clone(), to.clone()));
                    TxBody::LandTransfer(LandTransfer {
                        parcel_id: parcel,
                        from,
                        to,
                        deed_hash: doc,
                    })
                } else {
                    let parcel = format!("110105-{run}-{s}-{n:08}");
                    let owner = format!("Holder {n} of the Eastern District Housing Cooperative");
                    self.parcels.push_back((parcel.clone(), owner.clone()));
                    TxBody::LandRegister(LandRegister {
                        parcel_id: parcel,
                        owner,
                        document_hash: doc,
                    })
                }
            }
            Kind::Access => {
                let r = self.random() as usize;
                TxBody::DataAccess(DataAccess {
                    subject: hash_document(&self.random().to_le_bytes()),
                    resource_id: self.resources[r % self.resources.len().max(1)].clone(),
                    purpose: "verification of household membership for a housing subsidy claim"
                        .into(),
                    legal_basis: format!("Housing Subsidy Regulation art. 12, case {n}"),
                    accessed_at_ms: self.time_ms,
                })
            }
            Kind::Anchor => TxBody::Anchor(Anchor {
                document_hash: doc,
                label: format!(
                    "minutes of the district council meeting {n}, resolutions and annexes, public version"
                ),
            }),
            Kind::Catalog => TxBody::CatalogRegister(CatalogEntry {
                resource_id: format!("BENCH-{run}-{s}-C{n:08}"),
                name: format!("Benchmark register {n} of signer {s}"),
                sharing: SharingType::Unconditional,
                open: OpenAttribute::Closed,
                format: "database".into(),
                link: format!("https://data.example.gov/bench/{run}/{s}/{n}"),
            }),
            Kind::Governance => TxBody::GovernancePropose(GovernancePropose {
                action: GovAction::AddDepartment {
                    id: format!("b-{run}-{s}-{n}"),
                    name: format!("Benchmark department {n}"),
                    governance_weight: 1,
                },
                description: "load-generator proposal; never voted on, it stays open".into(),
            }),
        }
    }

    fn next(&mut self) -> (Prepared, SignedTx) {
        let body = self.body();
        self.seq += 1;
        let nonce = self.nonce;
        self.nonce += 1;
        let stx = Tx {
            chain_id: self.chain_id.clone(),
            signer: self.key.public_key(),
            nonce,
            created_at_ms: self.time_ms,
            expires_at_ms: self.expires_at_ms,
            body,
        }
        .sign(&self.key);
        let bytes = stx.encode();
        self.bytes += bytes.len() as u64;
        self.made += 1;
        let mut json = String::with_capacity(bytes.len() * 2 + 2);
        json.push('"');
        json.push_str(&hex::encode(&bytes));
        json.push('"');
        let p = Prepared {
            id: tx_id(&bytes),
            nonce,
            json: json.into_boxed_str(),
        };
        (p, stx)
    }
}

// ---- shared state of the load ----------------------------------------------------------

struct PendingTx {
    signer: u32,
    /// Submit time, µs since the start of the load.
    submitted_us: u64,
}

#[derive(Default)]
struct Counters {
    submitted_total: u64,
    submitted_in_window: u64,
    requests: u64,
    rejected_retried: u64,
    refused: BTreeMap<String, u64>,
    dropped_after_refusal: u64,
    send_errors: u64,
    resyncs: u64,
    signed_during_load: u64,
    send_lag_max_us: u64,
}

struct Tracked {
    latency: Histogram<u64>,
    committed_per_s: Vec<u64>,
    committed_total: u64,
    acks: Vec<Hash>,
    blocks: u64,
    block_txs: u64,
    height: u64,
}

struct Shared {
    start: Instant,
    window_start_us: u64,
    window_end_us: u64,
    pending: Mutex<HashMap<Hash, PendingTx>>,
    /// Signalled when the tracker removed committed transactions.
    progress: Condvar,
    in_flight: Vec<AtomicUsize>,
    /// No new transaction after this (the load is over).
    stop_new: AtomicBool,
    /// Everything stops (the drain is over).
    stop_all: AtomicBool,
    counters: Mutex<Counters>,
    tracked: Mutex<Tracked>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn in_window(&self, us: u64) -> bool {
        us >= self.window_start_us && us < self.window_end_us
    }
}

// ---- sending ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

enum Answer {
    Results(Vec<BatchResult>),
    /// 429 / 503: not now.
    Busy(Option<Duration>),
    /// Anything else: a bug on one side.
    Failed(String),
}

fn post_batch(agent: &ureq::Agent, url: &str, body: &str) -> Result<Answer, String> {
    let resp = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .map_err(|e| e.to_string())?;
    let (status, retry_after, bytes) =
        crate::client::read_answer(resp, ANSWER_BYTES_MAX).map_err(|e| e.to_string())?;
    match status {
        200 => serde_json::from_slice::<BatchAnswer>(&bytes)
            .map(|a| Answer::Results(a.results))
            .map_err(|e| format!("unreadable batch answer: {e}")),
        429 | 503 => Ok(Answer::Busy(retry_after)),
        _ => {
            let msg = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => format!("{status} {}: {}", b.error, b.message),
                Err(_) => format!("{status}: {}", String::from_utf8_lossy(&bytes)),
            };
            Ok(Answer::Failed(msg))
        }
    }
}

/// One signer: its pre-signed transactions and where it stands.
struct Signer {
    index: usize,
    public: PublicKey,
    node: usize,
    txs: Vec<Prepared>,
    generator: Generator,
    first_nonce: u64,
    /// Index of the next transaction to send.
    next: usize,
    /// Transactions `..sent` have been sent at least once.
    sent: usize,
    /// Open loop: this signer's share of the rate (tx/s) and its place in the schedule.
    last_post: Option<Instant>,
    backoff: Duration,
    not_before: Option<Instant>,
}

impl Signer {
    /// Open loop: the scheduled time (µs since start) of this signer's `j`-th transaction.
    fn scheduled_us(&self, j: usize, rate: f64, signers: usize) -> u64 {
        ((j * signers + self.index) as f64 / rate * 1e6) as u64
    }

    /// Open loop: how many of this signer's transactions are due at `now_us`.
    fn due(&self, now_us: u64, rate: f64, signers: usize, end_us: u64) -> usize {
        let t = now_us.min(end_us.saturating_sub(1)) as f64 / 1e6;
        let x = t * rate - self.index as f64;
        if x < 0.0 {
            return 0;
        }
        (x / signers as f64).floor() as usize + 1
    }

    fn ensure(&mut self, upto: usize, counters: &Mutex<Counters>) {
        let mut made = 0;
        while self.txs.len() < upto {
            let (p, _) = self.generator.next();
            self.txs.push(p);
            made += 1;
        }
        if made > 0 {
            lock(counters).signed_during_load += made;
        }
    }

    /// Index of the transaction with `nonce`, clamped to what exists.
    fn index_of(&self, nonce: u64) -> usize {
        (nonce.saturating_sub(self.first_nonce) as usize).min(self.txs.len())
    }

    fn back_off(&mut self, hint: Option<Duration>) {
        self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        let wait = hint.unwrap_or(self.backoff).min(BACKOFF_MAX);
        self.not_before = Some(Instant::now() + wait);
    }
}

struct SenderCtx<'a> {
    shared: &'a Shared,
    clients: &'a [NodeClient],
    urls: Vec<String>,
    rate: Option<f64>,
    signers_total: usize,
    batch: usize,
    inflight_per_signer: usize,
}

/// What one step of a signer did.
enum Step {
    Sent,
    Idle,
    Done,
}

impl SenderCtx<'_> {
    /// Sends one batch of `s` if one is due; `Done` when it has nothing more to send.
    fn step(&self, s: &mut Signer, agent: &ureq::Agent) -> Result<Step, String> {
        let shared = self.shared;
        if shared.stop_all.load(Ordering::Relaxed) {
            return Ok(Step::Done);
        }
        let stop_new = shared.stop_new.load(Ordering::Relaxed);
        if stop_new && s.next >= s.sent {
            return Ok(Step::Done);
        }
        if let Some(t) = s.not_before {
            if Instant::now() < t {
                return Ok(Step::Idle);
            }
            s.not_before = None;
        }
        let now_us = shared.now_us();
        // How far this batch may go.
        let mut end = match self.rate {
            Some(rate) => {
                if let Some(last) = s.last_post
                    && last.elapsed() < SEND_TICK
                {
                    return Ok(Step::Idle);
                }
                let due = s.due(now_us, rate, self.signers_total, shared.window_end_us);
                if stop_new { s.sent } else { due.max(s.sent) }
            }
            None => {
                if stop_new {
                    s.sent
                } else {
                    let in_flight = shared.in_flight[s.index].load(Ordering::Relaxed);
                    let room = self.inflight_per_signer.saturating_sub(in_flight);
                    s.sent.max(s.next + room)
                }
            }
        };
        end = end.min(s.next + self.batch);
        if end <= s.next {
            return Ok(Step::Idle);
        }
        s.ensure(end, &shared.counters);
        let start = s.next;
        // Record first sends before the request leaves, so the tracker can never see a
        // commit it does not know about.
        if end > s.sent {
            let mut first_in_window = 0;
            let mut lag_max = 0;
            {
                let mut pending = lock(&shared.pending);
                for j in s.sent..end {
                    let submitted_us = match self.rate {
                        Some(rate) => {
                            let sched = s.scheduled_us(j, rate, self.signers_total);
                            lag_max = lag_max.max(now_us.saturating_sub(sched));
                            sched
                        }
                        None => now_us,
                    };
                    if shared.in_window(submitted_us) {
                        first_in_window += 1;
                    }
                    pending.insert(
                        s.txs[j].id,
                        PendingTx {
                            signer: s.index as u32,
                            submitted_us,
                        },
                    );
                }
            }
            shared.in_flight[s.index].fetch_add(end - s.sent, Ordering::Relaxed);
            let mut c = lock(&shared.counters);
            c.submitted_total += (end - s.sent) as u64;
            c.submitted_in_window += first_in_window;
            c.send_lag_max_us = c.send_lag_max_us.max(lag_max);
            s.sent = end;
        }
        let mut body = String::with_capacity(16 + (end - start) * (s.txs[start].json.len() + 1));
        body.push_str("{\"txs\":[");
        for (k, p) in s.txs[start..end].iter().enumerate() {
            if k > 0 {
                body.push(',');
            }
            body.push_str(&p.json);
        }
        body.push_str("]}");
        s.last_post = Some(Instant::now());
        lock(&shared.counters).requests += 1;
        let answer = match post_batch(agent, &self.urls[s.node], &body) {
            Ok(a) => a,
            Err(e) => {
                // Unreachable or timed out: move to the next node and resume from what it has.
                lock(&shared.counters).send_errors += 1;
                note(&format!(
                    "signer {}: {} failed ({e}); moving to the next node",
                    s.index, self.urls[s.node]
                ));
                s.node = (s.node + 1) % self.urls.len();
                s.next = start;
                self.resync(s)?;
                return Ok(Step::Sent);
            }
        };
        let results = match answer {
            Answer::Results(r) => r,
            Answer::Busy(hint) => {
                lock(&shared.counters).rejected_retried += (end - start) as u64;
                s.back_off(hint);
                return Ok(Step::Sent);
            }
            Answer::Failed(msg) => return Err(format!("{}: {msg}", self.urls[s.node])),
        };
        if results.len() != end - start {
            return Err(format!(
                "{} answered {} results for {} transactions",
                self.urls[s.node],
                results.len(),
                end - start
            ));
        }
        s.next = end;
        let mut clean = true;
        for (k, r) in results.iter().enumerate() {
            let j = start + k;
            if r.status.is_some() {
                continue;
            }
            clean = false;
            match (r.error.as_deref(), r.reason.as_deref()) {
                (Some("mempool_full"), _) => {
                    lock(&shared.counters).rejected_retried += (end - j) as u64;
                    s.next = j;
                    s.back_off(None);
                    break;
                }
                (Some("refused"), Some("bad_nonce")) => {
                    // The node lacks an earlier transaction of ours (it restarted, or we
                    // moved to it): resume from its pending nonce.
                    s.next = j;
                    self.resync(s)?;
                    break;
                }
                (Some("bad_encoding"), _) => {
                    return Err(format!(
                        "{} could not decode a generated transaction",
                        self.urls[s.node]
                    ));
                }
                (error, reason) => {
                    let code = reason.or(error).unwrap_or("unknown").to_string();
                    self.refused(s, j, code);
                    break;
                }
            }
        }
        if clean {
            s.backoff = Duration::ZERO;
        }
        Ok(Step::Sent)
    }

    /// Resumes `s` at its node's pending nonce: the first of our transactions that node
    /// does not hold (it restarted and lost its mempool, or we just moved to it).
    fn resync(&self, s: &mut Signer) -> Result<(), String> {
        lock(&self.shared.counters).resyncs += 1;
        s.back_off(None);
        match self.clients[s.node].account(&s.public) {
            Ok(acc) if acc.pending_nonce < s.first_nonce => {
                // The node is behind the chain (still syncing): start over once it caught up.
                s.next = 0;
            }
            Ok(acc) => {
                let at = s.index_of(acc.pending_nonce);
                if at > s.sent {
                    return Err(format!(
                        "signer {} ({}) is at nonce {} on {}, beyond what this run sent: is another client using its key?",
                        s.index,
                        s.public,
                        acc.pending_nonce,
                        self.clients[s.node].url()
                    ));
                }
                s.next = at;
            }
            // Not reachable either: try again after the back-off.
            Err(_) => {}
        }
        Ok(())
    }

    /// Transaction `j` of `s` is refused for good: later ones are dropped and re-signed
    /// from its nonce.
    fn refused(&self, s: &mut Signer, j: usize, code: String) {
        let shared = self.shared;
        let dropped = s.txs.len().saturating_sub(j + 1);
        {
            let mut pending = lock(&shared.pending);
            let mut removed = 0;
            for p in &s.txs[j..s.sent.max(j)] {
                if pending.remove(&p.id).is_some() {
                    removed += 1;
                }
            }
            shared.in_flight[s.index].fetch_sub(removed, Ordering::Relaxed);
        }
        {
            let mut c = lock(&shared.counters);
            *c.refused.entry(code).or_default() += 1;
            c.dropped_after_refusal += dropped as u64;
        }
        let nonce = s.txs.get(j).map(|p| p.nonce).unwrap_or(s.generator.nonce);
        s.txs.truncate(j);
        s.generator.nonce = nonce;
        // Parcels registered by the dropped transactions do not exist.
        s.generator.parcels.clear();
        s.next = j;
        s.sent = s.sent.min(j);
    }
}

fn note(msg: &str) {
    eprintln!("bench: {msg}");
}

/// One load-generating connection: statuses are answers, not errors.
pub(crate) fn agent(name: &str, timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(timeout))
        .user_agent(format!("{name}/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn sender_thread(ctx: &SenderCtx<'_>, mut signers: Vec<Signer>) -> Result<Vec<Signer>, String> {
    let agent = agent("govledger-bench", REQUEST_TIMEOUT);
    let mut done = vec![false; signers.len()];
    while done.iter().any(|d| !d) {
        let mut sent_any = false;
        for (i, s) in signers.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            match ctx.step(s, &agent)? {
                Step::Sent => sent_any = true,
                Step::Idle => {}
                Step::Done => done[i] = true,
            }
        }
        if !sent_any {
            match ctx.rate {
                Some(_) => std::thread::sleep(Duration::from_millis(1)),
                None => {
                    let pending = lock(&ctx.shared.pending);
                    let _ = ctx
                        .shared
                        .progress
                        .wait_timeout(pending, Duration::from_millis(5));
                }
            }
        }
    }
    Ok(signers)
}

// ---- tracking commits ------------------------------------------------------------------

#[derive(Deserialize)]
struct BlockIds {
    tx_ids: Vec<Hash>,
}

fn tracker_thread(shared: &Shared, clients: &[NodeClient], mut node: usize, poll: Duration) {
    let mut last = lock(&shared.tracked).height;
    let mut failures = 0u32;
    loop {
        let stopping = shared.stop_all.load(Ordering::Relaxed);
        let step = (|| -> Result<bool, ClientError> {
            let height = clients[node].status()?.height;
            let mut any = false;
            while last < height {
                let view: BlockIds =
                    clients[node].get_typed(&format!("/v1/blocks/{}", last + 1), &[])?;
                last += 1;
                any = true;
                let now_us = shared.now_us();
                let mut committed = vec![];
                {
                    let mut pending = lock(&shared.pending);
                    for id in &view.tx_ids {
                        if let Some(p) = pending.remove(id) {
                            committed.push((*id, p));
                        }
                    }
                }
                for (_, p) in &committed {
                    shared.in_flight[p.signer as usize].fetch_sub(1, Ordering::Relaxed);
                }
                shared.progress.notify_all();
                let mut t = lock(&shared.tracked);
                t.height = last;
                t.blocks += 1;
                t.block_txs += view.tx_ids.len() as u64;
                let second = (now_us / 1_000_000) as usize;
                if t.committed_per_s.len() <= second {
                    t.committed_per_s.resize(second + 1, 0);
                }
                t.committed_per_s[second] += committed.len() as u64;
                t.committed_total += committed.len() as u64;
                for (id, p) in committed {
                    if shared.in_window(p.submitted_us) {
                        let lat = now_us
                            .saturating_sub(p.submitted_us)
                            .clamp(1, LATENCY_MAX_US);
                        t.latency.saturating_record(lat);
                    }
                    t.acks.push(id);
                }
            }
            Ok(any)
        })();
        match step {
            Ok(any) => {
                failures = 0;
                if !any {
                    if stopping {
                        return;
                    }
                    std::thread::sleep(poll);
                }
            }
            Err(e) => {
                failures += 1;
                note(&format!(
                    "tracking {} failed ({e}); trying the next node",
                    clients[node].url()
                ));
                node = (node + 1) % clients.len();
                if stopping && failures as usize > clients.len() {
                    return;
                }
                std::thread::sleep(poll.max(Duration::from_millis(200)));
            }
        }
    }
}

// ---- the run ---------------------------------------------------------------------------

/// Reads every `*.key` file of `dir`, sorted by name.
pub fn read_keys(dir: &Path) -> anyhow::Result<Vec<(PathBuf, SecretKey)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| LocalError::io(dir, e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "key"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(UsageError(format!(
            "{} holds no *.key files (use the clients/ folder of `govledger testnet init`)",
            dir.display()
        ))
        .into());
    }
    if paths.len() > SIGNERS_MAX {
        return Err(UsageError(format!("more than {SIGNERS_MAX} key files")).into());
    }
    let mut keys = vec![];
    for p in paths {
        let k = ledger::keyfile::read(&p)?;
        keys.push((p, k));
    }
    Ok(keys)
}

fn cpu_seconds() -> f64 {
    // utime and stime (fields 14 and 15) of /proc/self/stat, in clock ticks (USER_HZ,
    // 100 on Linux).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the ')' the fields start at 3 (state), so utime (14) is index 11.
    (ticks(11) + ticks(12)) / 100.0
}

/// Single-core verification rates over `sample` (signed transactions).
fn measure_verification(sample: &[SignedTx]) -> VerifyRate {
    let messages: Vec<Vec<u8>> = sample.iter().map(|s| codec::encode(&s.tx)).collect();
    let started = Instant::now();
    let mut ok = 0usize;
    for (s, m) in sample.iter().zip(&messages) {
        if s.tx.signer.verify(domain::TX_SIGN, m, &s.signature).is_ok() {
            ok += 1;
        }
    }
    let single = ok as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let chunks: Vec<Vec<SignedTx>> = sample.chunks(VERIFY_BATCH).map(<[_]>::to_vec).collect();
    let started = Instant::now();
    let mut ok = 0usize;
    for c in chunks {
        ok += verify_batch(c).iter().filter(|r| r.is_ok()).count();
    }
    let batch = ok as f64 / started.elapsed().as_secs_f64().max(1e-9);
    VerifyRate {
        single_per_s: single,
        batch_per_s: batch,
        committed_to_single_ratio: 0.0,
    }
}

fn run_id() -> String {
    let seed = format!("{}/{}", now_ms(), std::process::id());
    hex::encode(&blake3::hash(seed.as_bytes()).as_bytes()[..4])
}

/// Runs the benchmark.
pub fn run(o: &BenchOptions) -> anyhow::Result<BenchReport> {
    if o.nodes.is_empty() {
        return Err(UsageError("--nodes needs at least one URL".into()).into());
    }
    if o.batch == 0 || o.batch > BATCH_MAX {
        return Err(UsageError(format!("--batch must be between 1 and {BATCH_MAX}")).into());
    }
    if let Some(r) = o.rate
        && !(r.is_finite() && r > 0.0)
    {
        return Err(UsageError("--rate must be a positive number of tx/s".into()).into());
    }
    let keys = read_keys(&o.keys)?;
    let clients: Vec<NodeClient> = o
        .nodes
        .iter()
        .map(|u| NodeClient::new(u))
        .collect::<Result<_, _>>()?;
    let mut chain_id = None;
    for c in &clients {
        let st = c.status()?;
        match &chain_id {
            None => chain_id = Some(st.chain_id),
            Some(id) if *id != st.chain_id => {
                return Err(UsageError(format!(
                    "{} serves chain {:?}, {} serves {id:?}",
                    c.url(),
                    st.chain_id,
                    clients[0].url()
                ))
                .into());
            }
            Some(_) => {}
        }
    }
    let chain_id = chain_id.unwrap_or_default();
    let run = run_id();
    let n_signers = keys.len();
    let node_of = |i: usize| i % clients.len();
    let total_s = (o.warmup + o.duration).as_secs_f64();
    let expires_at_ms = now_ms() + (o.warmup + o.duration + o.drain).as_millis() as u64 + 3_600_000;

    // 1. Set-up: one catalogue resource per signer's department, committed.
    let mut setup_ids = vec![];
    let mut resources = vec![];
    if o.mix.has(Kind::Access) {
        let results: Vec<anyhow::Result<(String, Hash)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = keys
                .iter()
                .enumerate()
                .map(|(i, (_, key))| {
                    let client = &clients[node_of(i)];
                    let chain_id = chain_id.clone();
                    let run = run.clone();
                    scope.spawn(move || {
                        let resource = format!("BENCH-{run}-R{i}");
                        let mut w =
                            Writer::new(client, key.clone(), 3_600_000).with_chain_id(chain_id);
                        let body = TxBody::CatalogRegister(CatalogEntry {
                            resource_id: resource.clone(),
                            name: format!("Benchmark household register {i}"),
                            sharing: SharingType::Unconditional,
                            open: OpenAttribute::Closed,
                            format: "database".into(),
                            link: format!("https://data.example.gov/bench/{run}/{i}"),
                        });
                        let written = w.submit(body, true)?;
                        Ok((resource, written.submitted.id))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("set-up thread panicked")))
                })
                .collect()
        });
        for r in results {
            let (resource, id) = r?;
            resources.push(resource);
            setup_ids.push(id);
        }
    }
    let resources = Arc::new(resources);
    let mix = Arc::new(o.mix.clone());

    // 2. Pre-signing.
    let presign_total = o
        .presign
        .unwrap_or_else(|| match o.rate {
            Some(r) => (r * total_s).ceil() as u64 + n_signers as u64,
            None => (PRESIGN_RATE_CLOSED_LOOP as f64 * total_s) as u64,
        })
        .min(PRESIGN_MAX);
    let per_signer = (presign_total as usize).div_ceil(n_signers);
    let mut generators = vec![];
    for (i, (_, key)) in keys.iter().enumerate() {
        let nonce = clients[node_of(i)]
            .account(&key.public_key())?
            .pending_nonce;
        generators.push(Generator {
            signer: i,
            key: key.clone(),
            chain_id: chain_id.clone(),
            run: run.clone(),
            nonce,
            seq: 0,
            rng: 0x5eed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            mix: mix.clone(),
            resources: resources.clone(),
            parcels: VecDeque::new(),
            time_ms: now_ms(),
            expires_at_ms,
            bytes: 0,
            made: 0,
        });
    }
    let presign_started = Instant::now();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let sample_per_signer = VERIFY_SAMPLE.div_ceil(n_signers);
    let mut signed: Vec<(Generator, Vec<Prepared>, Vec<SignedTx>)> = Vec::new();
    {
        let mut queue: Vec<(usize, Generator)> = generators.into_iter().enumerate().collect();
        let mut groups: Vec<Vec<(usize, Generator)>> = (0..threads).map(|_| vec![]).collect();
        while let Some((i, g)) = queue.pop() {
            groups[i % threads].push((i, g));
        }
        let mut out: Vec<(usize, Generator, Vec<Prepared>, Vec<SignedTx>)> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = groups
                    .into_iter()
                    .map(|group| {
                        scope.spawn(move || {
                            group
                                .into_iter()
                                .map(|(i, mut g)| {
                                    let mut txs = Vec::with_capacity(per_signer);
                                    let mut sample = vec![];
                                    for _ in 0..per_signer {
                                        let (p, stx) = g.next();
                                        if sample.len() < sample_per_signer {
                                            sample.push(stx);
                                        }
                                        txs.push(p);
                                    }
                                    (i, g, txs, sample)
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            });
        out.sort_by_key(|(i, ..)| *i);
        for (_, g, txs, sample) in out {
            signed.push((g, txs, sample));
        }
    }
    if signed.len() != n_signers {
        return Err(anyhow::anyhow!("a pre-signing thread failed"));
    }
    let presign_s = presign_started.elapsed().as_secs_f64();
    let presigned = (per_signer * n_signers) as u64;
    let (bytes, made) = signed
        .iter()
        .fold((0u64, 0u64), |(b, m), (g, ..)| (b + g.bytes, m + g.made));
    let mean_tx_bytes = bytes as f64 / made.max(1) as f64;

    // 3. Single-core verification rate.
    let sample: Vec<SignedTx> = signed
        .iter_mut()
        .flat_map(|(_, _, s)| std::mem::take(s))
        .take(VERIFY_SAMPLE)
        .collect();
    let mut ed25519 = measure_verification(&sample);
    drop(sample);

    // 4. Load.
    let height_start = clients[0].status()?.height;
    let concurrency = o.concurrency.unwrap_or(n_signers).clamp(1, n_signers);
    let mut signers: Vec<Signer> = signed
        .into_iter()
        .enumerate()
        .map(|(i, (g, txs, _))| Signer {
            index: i,
            public: g.key.public_key(),
            node: node_of(i),
            first_nonce: txs.first().map(|p| p.nonce).unwrap_or(g.nonce),
            txs,
            generator: g,
            next: 0,
            sent: 0,
            last_post: None,
            backoff: Duration::ZERO,
            not_before: None,
        })
        .collect();
    let warmup_us = o.warmup.as_micros() as u64;
    let shared = Shared {
        start: Instant::now(),
        window_start_us: warmup_us,
        window_end_us: warmup_us + o.duration.as_micros() as u64,
        pending: Mutex::new(HashMap::with_capacity(presign_total as usize)),
        progress: Condvar::new(),
        in_flight: (0..n_signers).map(|_| AtomicUsize::new(0)).collect(),
        stop_new: AtomicBool::new(false),
        stop_all: AtomicBool::new(false),
        counters: Mutex::new(Counters::default()),
        tracked: Mutex::new(Tracked {
            latency: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .map_err(|e| anyhow::anyhow!("histogram: {e}"))?,
            committed_per_s: vec![],
            committed_total: 0,
            acks: vec![],
            blocks: 0,
            block_txs: 0,
            height: height_start,
        }),
    };
    let cpu_start = cpu_seconds();
    let ctx = SenderCtx {
        shared: &shared,
        clients: &clients,
        urls: clients
            .iter()
            .map(|c| format!("{}/v1/txs/batch", c.url()))
            .collect(),
        rate: o.rate,
        signers_total: n_signers,
        batch: o.batch,
        inflight_per_signer: (o.inflight / n_signers).max(o.batch.min(o.inflight).max(1)),
    };
    let mut groups: Vec<Vec<Signer>> = (0..concurrency).map(|_| vec![]).collect();
    for s in signers.drain(..) {
        let g = s.index % concurrency;
        groups[g].push(s);
    }
    let load_end = o.warmup + o.duration;
    let outcome: Result<(), String> = std::thread::scope(|scope| {
        let tracker = scope.spawn(|| tracker_thread(&shared, &clients, 0, o.poll));
        let senders: Vec<_> = groups
            .into_iter()
            .map(|g| {
                let ctx = &ctx;
                scope.spawn(move || sender_thread(ctx, g))
            })
            .collect();
        // The load, then the drain.
        let mut last_note = Instant::now();
        let mut failed = None;
        let mut drain_started = None;
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let elapsed = shared.start.elapsed();
            if senders.iter().any(|h| h.is_finished()) && !shared.stop_new.load(Ordering::Relaxed) {
                // A sender stopped early: only an error does that.
                shared.stop_new.store(true, Ordering::Relaxed);
                shared.stop_all.store(true, Ordering::Relaxed);
                failed = Some(());
                break;
            }
            if elapsed >= load_end && drain_started.is_none() {
                shared.stop_new.store(true, Ordering::Relaxed);
                drain_started = Some(Instant::now());
            }
            if let Some(d) = drain_started {
                let left = lock(&shared.pending).len();
                if left == 0 || d.elapsed() >= o.drain {
                    shared.stop_all.store(true, Ordering::Relaxed);
                    break;
                }
            }
            if o.progress && last_note.elapsed() >= Duration::from_secs(5) {
                last_note = Instant::now();
                let (sent, committed, h) = {
                    let t = lock(&shared.tracked);
                    (
                        lock(&shared.counters).submitted_total,
                        t.committed_total,
                        t.height,
                    )
                };
                eprintln!(
                    "bench: {:>5.1} s  sent {sent}  committed {committed}  in flight {}  height {h}",
                    elapsed.as_secs_f64(),
                    lock(&shared.pending).len()
                );
            }
        }
        let mut result = Ok(());
        for h in senders {
            match h.join() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => result = Err("a sender thread panicked".into()),
            }
        }
        if failed.is_some() && result.is_ok() {
            result = Err("a sender stopped early".into());
        }
        let _ = tracker.join();
        result
    });
    let wall_s = shared.start.elapsed().as_secs_f64();
    let bench_cpu_s = cpu_seconds() - cpu_start;
    outcome.map_err(|e| anyhow::anyhow!("the load failed: {e}"))?;

    // 5. Report.
    let counters = std::mem::take(&mut *lock(&shared.counters));
    let timed_out = lock(&shared.pending).len() as u64;
    let tracked = shared
        .tracked
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let duration_s = o.duration.as_secs_f64();
    let first_s = o.warmup.as_secs() as usize;
    let last_s = load_end.as_secs() as usize;
    let mut committed_in_window = 0u64;
    let mut per_s_min = u64::MAX;
    let mut per_s_max = 0;
    for s in first_s..last_s {
        let c = tracked.committed_per_s.get(s).copied().unwrap_or(0);
        committed_in_window += c;
        per_s_min = per_s_min.min(c);
        per_s_max = per_s_max.max(c);
    }
    if per_s_min == u64::MAX {
        per_s_min = 0;
    }
    let committed_tps = committed_in_window as f64 / duration_s;
    ed25519.committed_to_single_ratio = committed_tps / ed25519.single_per_s.max(1e-9);
    let h = &tracked.latency;
    let ms = |us: u64| us as f64 / 1000.0;
    let latency = if h.is_empty() {
        Latency::default()
    } else {
        Latency {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    };
    let mut acks: Vec<Hash> = setup_ids;
    acks.extend(tracked.acks.iter().copied());
    if let Some(path) = &o.acks_out {
        let mut text = String::with_capacity(acks.len() * 65);
        for id in &acks {
            let _ = writeln!(text, "{}", id.to_hex());
        }
        std::fs::write(path, text).map_err(|e| LocalError::io(path, e))?;
    }
    Ok(BenchReport {
        mode: if o.rate.is_some() { "open" } else { "closed" }.into(),
        target_rate_tps: o.rate,
        inflight_max: o.rate.is_none().then_some(o.inflight),
        nodes: o.nodes.clone(),
        tracked_node: clients[0].url().to_string(),
        signers: n_signers,
        concurrency,
        batch: o.batch,
        mix: o.mix.describe(),
        run_id: run,
        warmup_s: o.warmup.as_secs_f64(),
        duration_s,
        mean_tx_bytes,
        presigned,
        presign_s,
        signed_during_load: counters.signed_during_load,
        offered_tps: counters.submitted_in_window as f64 / duration_s,
        committed_tps,
        submitted_in_window: counters.submitted_in_window,
        committed_in_window,
        committed_per_s_min: per_s_min,
        committed_per_s_max: per_s_max,
        latency,
        send_lag_max_ms: counters.send_lag_max_us as f64 / 1000.0,
        submitted_total: counters.submitted_total,
        committed_total: tracked.committed_total,
        timed_out,
        rejected_retried: counters.rejected_retried,
        refused: counters.refused,
        dropped_after_refusal: counters.dropped_after_refusal,
        send_errors: counters.send_errors,
        resyncs: counters.resyncs,
        requests: counters.requests,
        height_start,
        height_end: tracked.height,
        blocks: tracked.blocks,
        mean_block_txs: tracked.block_txs as f64 / tracked.blocks.max(1) as f64,
        ed25519,
        bench_cpu_s,
        wall_s,
        committed_per_s: tracked.committed_per_s,
        acks_out: o.acks_out.as_ref().map(|p| p.display().to_string()),
        acked: acks.len() as u64,
    })
}

/// The text form of a report.
pub fn summary(r: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "govledger bench: {} loop{}, {} signers over {} nodes, {} sender threads, batches of {}",
        r.mode,
        match (r.target_rate_tps, r.inflight_max) {
            (Some(rate), _) => format!(" at {rate:.0} tx/s offered"),
            (None, Some(n)) => format!(", at most {n} in flight"),
            _ => String::new(),
        },
        r.signers,
        r.nodes.len(),
        r.concurrency,
        r.batch
    );
    let _ = writeln!(
        s,
        "mix {}; mean transaction {:.0} bytes; run id {}",
        r.mix, r.mean_tx_bytes, r.run_id
    );
    let _ = writeln!(
        s,
        "pre-signed {} transactions in {:.1} s; signed during the load: {}",
        r.presigned, r.presign_s, r.signed_during_load
    );
    let _ = writeln!(
        s,
        "window        {:.0} s after {:.0} s of warm-up (heights {} → {}, {} blocks of {:.0} tx on average)",
        r.duration_s, r.warmup_s, r.height_start, r.height_end, r.blocks, r.mean_block_txs
    );
    let _ = writeln!(
        s,
        "offered       {:>10.0} tx/s   ({} submitted in the window)",
        r.offered_tps, r.submitted_in_window
    );
    let _ = writeln!(
        s,
        "committed     {:>10.0} tx/s   ({} in the window; per second min {} max {})",
        r.committed_tps, r.committed_in_window, r.committed_per_s_min, r.committed_per_s_max
    );
    let l = &r.latency;
    let _ = writeln!(
        s,
        "finality      p50 {:.0} ms  p90 {:.0} ms  p99 {:.0} ms  max {:.0} ms  mean {:.0} ms  ({} tx)",
        l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms, l.count
    );
    if r.target_rate_tps.is_some() {
        let _ = writeln!(
            s,
            "send lag      max {:.0} ms behind schedule",
            r.send_lag_max_ms
        );
    }
    let refused = if r.refused.is_empty() {
        "none".to_string()
    } else {
        r.refused
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        s,
        "whole run     {} submitted, {} committed, {} timed out; rejected and retried {}; refused: {refused}; dropped after a refusal {}",
        r.submitted_total,
        r.committed_total,
        r.timed_out,
        r.rejected_retried,
        r.dropped_after_refusal
    );
    let _ = writeln!(
        s,
        "transport     {} requests, {} failed, {} resyncs",
        r.requests, r.send_errors, r.resyncs
    );
    let _ = writeln!(
        s,
        "ed25519       {:.0} verifications/s single, {:.0}/s in batches of {VERIFY_BATCH} (one core); committed ÷ single = {:.3}",
        r.ed25519.single_per_s, r.ed25519.batch_per_s, r.ed25519.committed_to_single_ratio
    );
    let _ = writeln!(
        s,
        "this process  {:.1} s CPU over {:.1} s ({:.2} cores)",
        r.bench_cpu_s,
        r.wall_s,
        r.bench_cpu_s / r.wall_s.max(1e-9)
    );
    if let Some(p) = &r.acks_out {
        let _ = writeln!(s, "acks          {} committed ids written to {p}", r.acked);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_forms() {
        let m = Mix::parse("1:1:1:1").unwrap();
        assert_eq!(m.describe(), "approvals=1,land=1,access=1,anchor=1");
        let m = Mix::parse("4:0:2:2:0:1").unwrap();
        assert!(!m.has(Kind::Land) && m.has(Kind::Governance));
        let m = Mix::parse("approvals:anchor").unwrap();
        assert_eq!(m.describe(), "approvals=1,anchor=1");
        let m = Mix::parse("approvals=3,governance=1,catalog").unwrap();
        assert_eq!(m.describe(), "approvals=3,catalog=1,governance=1");
        assert!(Mix::parse("").is_err());
        assert!(Mix::parse("0:0:0:0").is_err());
        assert!(Mix::parse("1:2").is_err());
        assert!(Mix::parse("votes").is_err());
        // Every kind is picked in proportion.
        let m = Mix::parse("3:1:0:0").unwrap();
        let approvals = (0..4000u64)
            .filter(|r| m.pick(*r) == Kind::Approvals)
            .count();
        assert_eq!(approvals, 3000);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_or_zero("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration_or_zero("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration_or_zero("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("0").is_err());
    }

    fn generator(mix: &str) -> Generator {
        Generator {
            signer: 3,
            key: SecretKey::from_seed(&[5; 32]),
            chain_id: "govledger-testnet".into(),
            run: "0badcafe".into(),
            nonce: 7,
            seq: 0,
            rng: 1,
            mix: Arc::new(Mix::parse(mix).unwrap()),
            resources: Arc::new(vec!["BENCH-0badcafe-R0".into(), "BENCH-0badcafe-R1".into()]),
            parcels: VecDeque::new(),
            time_ms: 1_790_000_000_000,
            expires_at_ms: 1_790_003_600_000,
            bytes: 0,
            made: 0,
        }
    }

    #[test]
    fn generated_transactions_are_canonical_signed_and_in_nonce_order() {
        let mut g = generator("1:1:1:1:1:1");
        let mut seen = std::collections::HashSet::new();
        let mut kinds = std::collections::BTreeSet::new();
        let mut registered = std::collections::HashMap::new();
        for i in 0..600u64 {
            let (p, stx) = g.next();
            assert_eq!(p.nonce, 7 + i);
            assert_eq!(stx.tx.nonce, p.nonce);
            stx.verify_signature().unwrap();
            stx.tx.check_limits().unwrap();
            let bytes = hex::decode(p.json.trim_matches('"')).unwrap();
            assert_eq!(SignedTx::decode(&bytes).unwrap(), stx);
            assert_eq!(tx_id(&bytes), p.id);
            assert!(seen.insert(p.id));
            kinds.insert(stx.tx.body.kind());
            // A transfer moves a parcel registered earlier, from its current owner.
            match &stx.tx.body {
                TxBody::LandRegister(l) => {
                    assert!(
                        registered
                            .insert(l.parcel_id.clone(), l.owner.clone())
                            .is_none()
                    );
                }
                TxBody::LandTransfer(t) => {
                    assert_eq!(registered.get(&t.parcel_id), Some(&t.from));
                    registered.insert(t.parcel_id.clone(), t.to.clone());
                }
                _ => {}
            }
        }
        for k in [
            "approval_issue",
            "land_register",
            "land_transfer",
            "data_access",
            "anchor",
            "catalog_register",
            "governance_propose",
        ] {
            assert!(kinds.contains(k), "{k} missing from {kinds:?}");
        }
        let mean = g.bytes as f64 / g.made as f64;
        assert!((240.0..=360.0).contains(&mean), "mean size {mean}");
    }

    #[test]
    fn open_loop_schedule_spreads_signers() {
        let s = Signer {
            index: 1,
            public: SecretKey::from_seed(&[1; 32]).public_key(),
            node: 0,
            txs: vec![],
            generator: generator("1:1:1:1"),
            first_nonce: 0,
            next: 0,
            sent: 0,
            last_post: None,
            backoff: Duration::ZERO,
            not_before: None,
        };
        // 4 signers at 1000 tx/s: signer 1 sends at 1 ms, 5 ms, 9 ms, …
        assert_eq!(s.scheduled_us(0, 1000.0, 4), 1000);
        assert_eq!(s.scheduled_us(2, 1000.0, 4), 9000);
        assert_eq!(s.due(0, 1000.0, 4, u64::MAX), 0);
        assert_eq!(s.due(1000, 1000.0, 4, u64::MAX), 1);
        assert_eq!(s.due(9000, 1000.0, 4, u64::MAX), 3);
        // Nothing is scheduled at or after the end of the load.
        assert_eq!(s.due(1_000_000, 1000.0, 4, 9000), 2);
    }
}
