//! The load generator: one worker per client key, each writing self-contained cycles that
//! cover every record kind a clerk can write, and remembering every transaction a node
//! acknowledged as committed.
//!
//! A cycle's transactions depend on each other (an amendment needs its approval, a
//! transfer its parcel) and carry consecutive nonces, so a worker submits a cycle as one
//! batch (`POST /v1/txs/batch`, admitted in order) and then waits for its last transaction
//! (`wait=true`): once that is committed, so is every earlier nonce, which the worker
//! confirms one by one before acknowledging them. Faults are expected: an unreachable,
//! paused or lagging node is skipped and the same signed bytes are resubmitted to the next
//! one (a resubmission is idempotent), until they commit, the worker gives up on a stalled
//! batch, or the run's drain time after the stop signal is over. Only what a node reported
//! as committed is written to the acknowledgement file.

use crate::args::Args;
use govledger_tests::{Api, ApiError, Signer, now_ms};
use ledger::hash::{Hash, hash_document};
use ledger::tx::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Every record kind the workload writes (evidence is written by validators, not clerks).
pub const KINDS: [&str; 13] = [
    "catalog_register",
    "catalog_update",
    "data_access",
    "anchor",
    "approval_issue",
    "approval_amend",
    "approval_revoke",
    "land_register",
    "land_encumber",
    "land_release",
    "land_transfer",
    "governance_propose",
    "governance_vote",
];

/// How long one `wait=true` request waits for a commit before the worker tries elsewhere.
const WAIT_TIMEOUT_MS: u64 = 5000;
/// Pause after a failed request before the next attempt.
const RETRY_PAUSE: Duration = Duration::from_millis(300);
/// How often the stop file is looked for and progress is printed.
const POLL: Duration = Duration::from_millis(200);
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Bound on the cycles in one batch (a cycle is at most 13 transactions; a batch request
/// takes at most 10,000).
const CYCLES_PER_BATCH_MAX: u64 = 100;

/// What `load` does.
pub struct LoadOptions {
    nodes: Vec<String>,
    keys: Vec<PathBuf>,
    acks_out: PathBuf,
    stats_out: Option<PathBuf>,
    stop_file: Option<PathBuf>,
    duration: Option<Duration>,
    cycles_per_batch: usize,
    drain: Duration,
    stall: Duration,
    pause: Duration,
    tag: String,
}

impl LoadOptions {
    /// Reads the flags.
    pub fn from_args(a: &Args) -> Result<LoadOptions, String> {
        a.reject_unknown(&[
            "nodes",
            "key",
            "acks-out",
            "stats-out",
            "stop-file",
            "duration-secs",
            "cycles-per-batch",
            "drain-secs",
            "stall-secs",
            "pause-ms",
            "tag",
        ])?;
        let nodes = a.list("nodes");
        if nodes.is_empty() {
            return Err("--nodes needs at least one API URL".into());
        }
        let keys: Vec<PathBuf> = a.list("key").into_iter().map(PathBuf::from).collect();
        if keys.is_empty() {
            return Err("--key needs at least one client key file".into());
        }
        let cycles = a.number("cycles-per-batch", 1)?;
        if cycles == 0 || cycles > CYCLES_PER_BATCH_MAX {
            return Err(format!(
                "--cycles-per-batch must be between 1 and {CYCLES_PER_BATCH_MAX}"
            ));
        }
        let duration = match a.get("duration-secs") {
            Some(_) => Some(a.secs("duration-secs", 0)?),
            None => None,
        };
        let stop_file = a.get("stop-file").map(PathBuf::from);
        if duration.is_none() && stop_file.is_none() {
            return Err("give --duration-secs or --stop-file (or both)".into());
        }
        Ok(LoadOptions {
            nodes,
            keys,
            acks_out: PathBuf::from(a.required("acks-out")?),
            stats_out: a.get("stats-out").map(PathBuf::from),
            stop_file,
            duration,
            cycles_per_batch: cycles as usize,
            drain: a.secs("drain-secs", 30)?,
            stall: a.secs("stall-secs", 90)?,
            pause: Duration::from_millis(a.number("pause-ms", 0)?),
            tag: a
                .get("tag")
                .map(str::to_string)
                .unwrap_or_else(|| format!("{:x}", now_ms())),
        })
    }
}

#[derive(Default)]
struct Stats {
    signed: u64,
    acked: BTreeMap<&'static str, u64>,
    refused: BTreeMap<String, u64>,
    request_errors: u64,
    abandoned: u64,
}

/// State shared by the workers.
struct Shared {
    acks: Mutex<std::fs::File>,
    stats: Mutex<Stats>,
    /// Proposals each worker should vote on (filled by the previous worker).
    inboxes: Vec<Mutex<VecDeque<Hash>>>,
    stop: AtomicBool,
    /// Until when workers may still wait for submitted transactions after the stop.
    drain_until: Mutex<Option<Instant>>,
}

/// A poisoned lock only means another worker panicked; its data is still consistent
/// enough for counting.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Records that a node reported `p` committed. An acknowledged proposal goes to the
    /// next worker, which votes on it.
    fn ack(&self, worker: usize, p: &Pending) -> Result<(), String> {
        lock(&self.acks)
            .write_all(format!("{}\n", p.id).as_bytes())
            .map_err(|e| format!("cannot write the acknowledgement file: {e}"))?;
        *lock(&self.stats).acked.entry(p.kind).or_default() += 1;
        let n = self.inboxes.len();
        if p.kind == "governance_propose" && n > 1 {
            lock(&self.inboxes[(worker + 1) % n]).push_back(p.id);
        }
        Ok(())
    }

    fn refused(&self, reason: &str) {
        *lock(&self.stats)
            .refused
            .entry(reason.to_string())
            .or_default() += 1;
    }

    fn request_error(&self) {
        lock(&self.stats).request_errors += 1;
    }

    fn draining_over(&self) -> bool {
        matches!(*lock(&self.drain_until), Some(t) if Instant::now() > t)
    }
}

/// One signed transaction of a batch, not yet acknowledged.
struct Pending {
    stx: SignedTx,
    id: Hash,
    kind: &'static str,
}

struct Worker {
    index: usize,
    signer: Signer,
    nodes: Vec<Api>,
    node: usize,
    shared: Arc<Shared>,
    tag: String,
    cycle: u64,
    cycles_per_batch: usize,
    stall: Duration,
    pause: Duration,
}

impl Worker {
    /// A cycle: every record kind, each depending only on earlier ones of the cycle.
    fn cycle_bodies(&mut self) -> Vec<TxBody> {
        let (d, c, tag) = (self.index, self.cycle, &self.tag);
        self.cycle += 1;
        let id = |what: &str| format!("{what}-{tag}-{d}-{c}");
        let doc = |what: &str| hash_document(format!("{what}/{tag}/{d}/{c}").as_bytes());
        let resource = id("RES");
        let approval = id("BP");
        let parcel = id("P");
        let owner = format!("owner-{d}-{c}");
        let now = now_ms();
        let mut bodies = vec![
            TxBody::CatalogRegister(CatalogEntry {
                resource_id: resource.clone(),
                name: format!("e2e register {d}/{c}"),
                sharing: SharingType::Conditional,
                open: OpenAttribute::Closed,
                format: "database".into(),
                link: format!("https://data.example.gov/{resource}"),
            }),
            TxBody::CatalogUpdate(CatalogEntry {
                resource_id: resource.clone(),
                name: format!("e2e register {d}/{c} (v2)"),
                sharing: SharingType::Conditional,
                open: OpenAttribute::Conditional,
                format: "api".into(),
                link: format!("https://data.example.gov/{resource}/v2"),
            }),
            TxBody::DataAccess(DataAccess {
                subject: doc("citizen"),
                resource_id: resource,
                purpose: "e2e eligibility check".into(),
                legal_basis: "E2E Act art. 1".into(),
                accessed_at_ms: now.saturating_sub(1000),
            }),
            TxBody::Anchor(Anchor {
                document_hash: doc("minutes"),
                label: format!("e2e minutes {d}/{c}"),
            }),
            TxBody::ApprovalIssue(ApprovalIssue {
                approval_id: approval.clone(),
                kind: "building-permit".into(),
                subject: format!("company-{d}-{c}"),
                decision: Decision::Granted,
                document_hash: doc("permit"),
                valid_from_ms: 0,
                valid_until_ms: None,
                note: "e2e".into(),
            }),
            TxBody::ApprovalAmend(ApprovalAmend {
                approval_id: approval.clone(),
                decision: Decision::Conditional,
                document_hash: doc("permit-v2"),
                valid_until_ms: Some(now + 365 * 24 * 3600 * 1000),
                reason: "conditions added".into(),
            }),
            TxBody::ApprovalRevoke(ApprovalRevoke {
                approval_id: approval,
                reason: "withdrawn by the applicant".into(),
            }),
            TxBody::LandRegister(LandRegister {
                parcel_id: parcel.clone(),
                owner: owner.clone(),
                document_hash: doc("title"),
            }),
            TxBody::LandEncumber(LandEncumber {
                parcel_id: parcel.clone(),
                encumbrance_id: "M-1".into(),
                kind: EncumbranceKind::Mortgage,
                holder: "City Bank".into(),
                document_hash: doc("mortgage"),
            }),
            TxBody::LandRelease(LandRelease {
                parcel_id: parcel.clone(),
                encumbrance_id: "M-1".into(),
                document_hash: doc("release"),
            }),
            TxBody::LandTransfer(LandTransfer {
                parcel_id: parcel,
                from: owner,
                to: format!("buyer-{d}-{c}"),
                deed_hash: doc("deed"),
            }),
            TxBody::GovernancePropose(GovernancePropose {
                // Only the proposer and one other department ever approve it, so with four
                // or more departments it stays open and changes nothing.
                action: GovAction::AddDepartment {
                    id: format!("e2e-{tag}-{d}-{c}"),
                    name: format!("E2E department {d}/{c}"),
                    governance_weight: 1,
                },
                description: "e2e load".into(),
            }),
        ];
        if let Some(p) = lock(&self.shared.inboxes[d]).pop_front() {
            bodies.push(TxBody::GovernanceVote(GovernanceVote {
                proposal_id: p,
                approve: true,
            }));
        }
        bodies
    }

    fn next_node(&mut self) {
        self.node = (self.node + 1) % self.nodes.len();
    }

    fn run(mut self) -> Result<(), String> {
        while !self.shared.stop.load(Ordering::Relaxed) {
            let mut batch = vec![];
            for _ in 0..self.cycles_per_batch {
                for body in self.cycle_bodies() {
                    let kind = KINDS
                        .iter()
                        .copied()
                        .find(|k| *k == body.kind())
                        .unwrap_or("other");
                    let stx = self.signer.sign(body);
                    batch.push(Pending {
                        id: stx.id(),
                        stx,
                        kind,
                    });
                }
            }
            lock(&self.shared.stats).signed += batch.len() as u64;
            self.next_node();
            self.submit_batch(batch)?;
            std::thread::sleep(self.pause);
        }
        Ok(())
    }

    /// Submits a batch and waits until a node reports each transaction committed, or gives
    /// up (stall, refusal, or the end of the drain time).
    fn submit_batch(&mut self, mut pending: Vec<Pending>) -> Result<(), String> {
        let mut last_progress = Instant::now();
        let mut resync = false;
        while !pending.is_empty() {
            if self.shared.draining_over() {
                break;
            }
            if last_progress.elapsed() > self.stall {
                eprintln!(
                    "load: worker {} gives up on {} transactions after {:?} without a commit",
                    self.index,
                    pending.len(),
                    self.stall
                );
                resync = true;
                break;
            }
            let txs: Vec<String> = pending
                .iter()
                .map(|p| hex::encode(p.stx.encode()))
                .collect();
            let answer = self.nodes[self.node].post("/v1/txs/batch", &json!({ "txs": txs }));
            let results = match answer {
                Ok(v) => v["results"].as_array().cloned().unwrap_or_default(),
                Err(e) => {
                    self.request_failed(&e);
                    continue;
                }
            };
            let mut keep = vec![true; pending.len()];
            let mut try_elsewhere = false;
            let mut cut = None;
            for (i, p) in pending.iter().enumerate() {
                if try_elsewhere || cut.is_some() {
                    break;
                }
                let r = results.get(i).cloned().unwrap_or(Value::Null);
                match (r["status"].as_str(), r["error"].as_str()) {
                    (Some("committed"), _) => {
                        self.shared.ack(self.index, p)?;
                        keep[i] = false;
                        last_progress = Instant::now();
                    }
                    (Some("pending"), _) => {}
                    (_, Some("refused")) => {
                        let reason = r["reason"].as_str().unwrap_or("unknown");
                        if reason == "bad_nonce" {
                            // This node is behind, or lost an earlier nonce of ours (a
                            // restart empties its mempool): another node may hold it.
                            try_elsewhere = true;
                        } else {
                            self.shared.refused(reason);
                            eprintln!(
                                "load: worker {} {} refused: {}",
                                self.index,
                                p.kind,
                                r["message"].as_str().unwrap_or(reason)
                            );
                            cut = Some(i);
                        }
                    }
                    _ => {
                        // mempool_full, or an answer we cannot read: retry later.
                        try_elsewhere = true;
                    }
                }
            }
            if let Some(i) = cut {
                // Later nonces of the batch can no longer apply: drop them and reuse the
                // refused transaction's nonce for the next cycle.
                lock(&self.shared.stats).abandoned += (pending.len() - i - 1) as u64;
                self.signer.nonce = pending[i].stx.tx.nonce;
                keep[i..].iter_mut().for_each(|k| *k = false);
            }
            pending = pending
                .into_iter()
                .zip(keep)
                .filter_map(|(p, k)| k.then_some(p))
                .collect();
            if try_elsewhere {
                self.next_node();
                std::thread::sleep(RETRY_PAUSE);
                continue;
            }
            if let Some(last) = pending.last() {
                let path = format!("/v1/txs?wait=true&timeout_ms={WAIT_TIMEOUT_MS}");
                let body = json!({ "tx": hex::encode(last.stx.encode()) });
                match self.nodes[self.node].post(&path, &body) {
                    Ok(v) if v["status"] == "committed" => {
                        last_progress = Instant::now();
                        pending = self.confirm(pending)?;
                    }
                    Ok(_) => {}
                    // Not committed in time: maybe this node is cut off; ask another.
                    Err(e) if e.status == 504 => self.next_node(),
                    Err(e) => self.request_failed(&e),
                }
            }
        }
        if !pending.is_empty() {
            lock(&self.shared.stats).abandoned += pending.len() as u64;
        }
        if resync {
            self.resync_nonce();
        }
        Ok(())
    }

    /// Acknowledges every pending transaction the current node reports committed.
    fn confirm(&mut self, pending: Vec<Pending>) -> Result<Vec<Pending>, String> {
        let mut rest = vec![];
        for p in pending {
            match self.nodes[self.node].tx(&p.id) {
                Ok(v) if v["status"] == "committed" => self.shared.ack(self.index, &p)?,
                _ => rest.push(p),
            }
        }
        Ok(rest)
    }

    fn request_failed(&mut self, e: &ApiError) {
        self.shared.request_error();
        if e.status == 400 {
            eprintln!("load: worker {}: bad request: {}", self.index, e.body);
        }
        self.next_node();
        std::thread::sleep(RETRY_PAUSE);
    }

    /// After giving up on transactions that may or may not commit later, continue from the
    /// nonce a node expects next (counting its mempool).
    fn resync_nonce(&mut self) {
        let key = self.signer.key.public_key();
        for _ in 0..self.nodes.len() {
            if let Ok(v) = self.nodes[self.node].get(&format!("/v1/accounts/{key}"))
                && let Some(n) = v["pending_nonce"].as_u64()
            {
                self.signer.nonce = n;
                return;
            }
            self.next_node();
        }
    }
}

fn chain_id(nodes: &[Api]) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for api in nodes {
            if let Ok(v) = api.get("/v1/status")
                && let Some(c) = v["chain_id"].as_str()
            {
                return Ok(c.to_string());
            }
        }
        if Instant::now() > deadline {
            return Err("no node answers /v1/status".into());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn write_stats(path: &Path, stats: &Value) -> Result<(), String> {
    std::fs::write(path, format!("{stats:#}\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs the load until the stop file appears or the duration is over, then drains.
pub fn run(o: &LoadOptions) -> Result<(), String> {
    let apis = |urls: &[String]| urls.iter().map(|u| Api::new(u)).collect::<Vec<_>>();
    let chain = chain_id(&apis(&o.nodes))?;
    let acks = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&o.acks_out)
        .map_err(|e| format!("cannot open {}: {e}", o.acks_out.display()))?;
    let workers = o.keys.len();
    let shared = Arc::new(Shared {
        acks: Mutex::new(acks),
        stats: Mutex::new(Stats::default()),
        inboxes: (0..workers).map(|_| Mutex::new(VecDeque::new())).collect(),
        stop: AtomicBool::new(false),
        drain_until: Mutex::new(None),
    });
    let mut handles = vec![];
    for (index, path) in o.keys.iter().enumerate() {
        let key = ledger::keyfile::read(path)
            .map_err(|e| format!("cannot read key {}: {e}", path.display()))?;
        let mut worker = Worker {
            index,
            signer: Signer::new(key, &chain),
            nodes: apis(&o.nodes),
            node: index % o.nodes.len(),
            shared: shared.clone(),
            tag: o.tag.clone(),
            cycle: 0,
            cycles_per_batch: o.cycles_per_batch,
            stall: o.stall,
            pause: o.pause,
        };
        // Continue after whatever this key already signed.
        worker.resync_nonce();
        handles.push(std::thread::spawn(move || {
            let w = worker.index;
            let r = worker.run();
            if let Err(e) = &r {
                eprintln!("load: worker {w} stopped: {e}");
            }
            r
        }));
    }
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut last_acked = 0;
    loop {
        std::thread::sleep(POLL);
        let by_file = o.stop_file.as_ref().is_some_and(|f| f.exists());
        let by_time = o.duration.is_some_and(|d| started.elapsed() >= d);
        if by_file || by_time {
            break;
        }
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        if last_report.elapsed() >= PROGRESS_EVERY {
            let acked: u64 = lock(&shared.stats).acked.values().sum();
            eprintln!(
                "load: {acked} acknowledged ({:.1}/s), {} request errors",
                (acked - last_acked) as f64 / last_report.elapsed().as_secs_f64(),
                lock(&shared.stats).request_errors
            );
            last_acked = acked;
            last_report = Instant::now();
        }
    }
    let load_secs = started.elapsed().as_secs_f64();
    *lock(&shared.drain_until) = Some(Instant::now() + o.drain);
    shared.stop.store(true, Ordering::Relaxed);
    let mut failed = vec![];
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed.push(e),
            Err(_) => failed.push("a worker panicked".into()),
        }
    }
    let st = lock(&shared.stats);
    let acked: u64 = st.acked.values().sum();
    let stats = json!({
        "tag": o.tag,
        "workers": workers,
        "load_secs": load_secs,
        "signed": st.signed,
        "acked": acked,
        "acked_by_kind": st.acked,
        "refused": st.refused,
        "request_errors": st.request_errors,
        "abandoned": st.abandoned,
        "kinds_missing": KINDS.iter().filter(|k| !st.acked.contains_key(*k)).collect::<Vec<_>>(),
    });
    eprintln!(
        "load: done after {load_secs:.1} s: {acked} acknowledged, {} refused, {} abandoned, {} request errors",
        st.refused.values().sum::<u64>(),
        st.abandoned,
        st.request_errors
    );
    if let Some(p) = &o.stats_out {
        write_stats(p, &stats)?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}
