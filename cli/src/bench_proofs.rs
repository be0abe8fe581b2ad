//! `govledger bench-proofs`: how fast nodes serve proof bundles over HTTP, and how fast
//! they verify offline.
//!
//! 1. **Serve** (measured): `--concurrency` threads, each with its own keep-alive
//!    connection, ask `GET /v1/proofs/{id}` for ids drawn from `--ids` (e.g. the
//!    `--acks-out` file of `govledger bench`), spread over `--nodes`, for `--duration`.
//!    Every answer is counted (200, 404, 429 rate limited, other) with its latency.
//! 2. **Verify** (with `--genesis`): the bundles received (up to `--verify-max`) are
//!    parsed, then verified offline three ways, each on one thread and timed on its own:
//!    `ProofBundle::verify` one at a time with nothing cached (what `govledger verify`
//!    does for one file), `Verifier::verify` (certified headers cached across bundles),
//!    and `Verifier::verify_many` in batches of `VERIFY_BATCH` (record signatures checked
//!    in one batch equation). Every bundle must verify, each way, or the run fails.
//!
//! With `--status`, the same two phases for **status bundles** (proof format 2): first the
//! subjects of up to [`STATUS_SUBJECTS_MAX`] of the ids are found (each record's bundle is
//! fetched once, before the window, and its transaction names an approval, a parcel, a
//! catalogue resource or a citizen's pseudonym), then the threads ask
//! `GET /v1/proofs/status/{kind}/{id}` for them, and the bundles received are verified
//! offline with `StatusBundle::verify` (nothing cached) and `StatusVerifier` (certified
//! headers cached). Records that name no subject (anchors, governance) are skipped.
//!
//! A node's API has a per-client rate limit (`[api] rate_limit_per_sec`, default 2,000):
//! raise it on the measured node, or the run measures the limit (answers `429`).

use crate::exit::{LocalError, UsageError};
use crate::verify::{load_genesis, read_text};
use hdrhistogram::Histogram;
use ledger::hash::Hash;
use ledger::proof::{ProofBundle, Verifier};
use ledger::status::{StatusBundle, StatusVerifier, Subject};
use ledger::tx::TxBody;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest ids file read.
pub const IDS_FILE_BYTES_MAX: u64 = 1 << 30;
/// Most bundles kept for the verification phase.
pub const VERIFY_MAX_LIMIT: usize = 1_000_000;
/// Bundles per `Verifier::verify_many` call.
pub const VERIFY_BATCH: usize = 256;
/// Largest proof bundle accepted from a node.
pub const BUNDLE_BYTES_MAX: u64 = 1 << 20;
/// Most concurrent connections.
pub const CONCURRENCY_MAX: usize = 256;
/// Most subjects `--status` looks up (one record bundle fetched per id, before the window).
pub const STATUS_SUBJECTS_MAX: usize = 20_000;
/// Per-request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest latency the histogram records (µs).
const LATENCY_MAX_US: u64 = 60_000_000;

/// What to run.
#[derive(Clone, Debug)]
pub struct ProofBenchOptions {
    /// Node API URLs; thread i asks node i mod n.
    pub nodes: Vec<String>,
    /// File of committed record ids, one hex per line.
    pub ids: PathBuf,
    /// The measured window.
    pub duration: Duration,
    /// Requests before the window, not counted.
    pub warmup: Duration,
    /// Threads (connections).
    pub concurrency: usize,
    /// Verify offline against this genesis.
    pub genesis: Option<PathBuf>,
    /// Most bundles verified.
    pub verify_max: usize,
    /// Status bundles of the records' subjects instead of the records' proof bundles.
    pub status: bool,
    /// Progress on stderr.
    pub progress: bool,
}

/// Serving figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServeReport {
    /// Requests answered 200 in the window, per second.
    pub bundles_per_s: f64,
    /// Answers 200 in the window.
    pub ok: u64,
    /// Answers 404 (id not committed on that node).
    pub not_found: u64,
    /// Answers 429 (the node's per-client rate limit).
    pub rate_limited: u64,
    /// Other statuses, transport errors and timeouts.
    pub failed: u64,
    /// Mean bundle size (bytes of JSON).
    pub bundle_bytes_mean: f64,
    /// Latency of the 200 answers (ms): p50, p90, p99, max.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Offline verification figures (one thread each).
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// Bundles verified (each way).
    pub bundles: usize,
    /// Distinct blocks among them.
    pub blocks: usize,
    /// JSON parsing, bundles per second.
    pub parse_per_s: f64,
    /// `ProofBundle::verify`, nothing cached, per second.
    pub single_per_s: f64,
    /// `Verifier::verify` (certified headers cached), per second.
    pub cached_per_s: f64,
    /// `Verifier::verify_many` in batches of [`VERIFY_BATCH`], per second (record bundles
    /// only: status bundles have no batch verifier, 0).
    pub batched_per_s: f64,
    /// Mean time of one uncached verification (ms), what `govledger verify` spends.
    pub single_mean_ms: f64,
}

impl VerifyReport {
    /// The rates of `bundles` bundles of `blocks` blocks parsed, verified uncached and
    /// verified cached in the seconds given, and batched (0 when not measured).
    fn of_times(
        bundles: usize,
        blocks: usize,
        [parse_s, single_s, cached_s]: [f64; 3],
        batched_s: Option<f64>,
    ) -> Self {
        let n = bundles as f64;
        let rate = |s: f64| n / s.max(1e-9);
        VerifyReport {
            bundles,
            blocks,
            parse_per_s: rate(parse_s),
            single_per_s: rate(single_s),
            cached_per_s: rate(cached_s),
            batched_per_s: batched_s.map_or(0.0, rate),
            single_mean_ms: single_s * 1000.0 / n,
        }
    }
}

/// The outcome.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProofBenchReport {
    /// The nodes asked.
    pub nodes: Vec<String>,
    /// What was asked for: `"record"` proof bundles or `"status"` bundles.
    pub bundles: &'static str,
    /// Ids available (with `--status`: the subjects found from them).
    pub ids: usize,
    /// Threads.
    pub concurrency: usize,
    /// The measured window (s).
    pub duration_s: f64,
    /// Serving.
    pub serve: ServeReport,
    /// Offline verification, with `--genesis`.
    pub verify: Option<VerifyReport>,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    not_found: u64,
    rate_limited: u64,
    failed: u64,
    bytes: u64,
    latency: Option<Histogram<u64>>,
    kept: Vec<String>,
}

/// Runs the benchmark.
pub fn run(o: &ProofBenchOptions) -> anyhow::Result<ProofBenchReport> {
    if o.nodes.is_empty() {
        return Err(UsageError("--nodes: give at least one node URL".into()).into());
    }
    if o.concurrency == 0 || o.concurrency > CONCURRENCY_MAX {
        return Err(UsageError(format!("--concurrency must be 1..={CONCURRENCY_MAX}")).into());
    }
    if o.verify_max > VERIFY_MAX_LIMIT {
        return Err(UsageError(format!("--verify-max must be at most {VERIFY_MAX_LIMIT}")).into());
    }
    let ids = read_ids(&o.ids)?;
    let genesis = o.genesis.as_deref().map(load_genesis).transpose()?;
    let nodes: Vec<String> = o
        .nodes
        .iter()
        .map(|n| n.trim_end_matches('/').to_string())
        .collect();
    let paths: Vec<String> = if o.status {
        if o.progress {
            eprintln!("bench-proofs: finding the subjects of up to {STATUS_SUBJECTS_MAX} records");
        }
        let subjects = find_subjects(&nodes[0], &ids, o.concurrency)?;
        subjects
            .iter()
            .map(|s| format!("/v1/proofs/status/{}", crate::status::route(s)))
            .collect()
    } else {
        ids.iter()
            .map(|id| format!("/v1/proofs/{}", id.to_hex()))
            .collect()
    };
    if o.progress {
        eprintln!(
            "bench-proofs: {} {}, {} connections to {} node(s), {:?} warm-up + {:?}",
            paths.len(),
            if o.status { "subjects" } else { "ids" },
            o.concurrency,
            nodes.len(),
            o.warmup,
            o.duration
        );
    }

    let keep_max = if genesis.is_some() { o.verify_max } else { 0 };
    let start = Instant::now();
    let window_from = start + o.warmup;
    let window_to = window_from + o.duration;
    let total = Mutex::new(Tally::default());
    std::thread::scope(|s| {
        for t in 0..o.concurrency {
            let node = &nodes[t % nodes.len()];
            let (paths, total) = (&paths, &total);
            s.spawn(move || {
                let tally = serve_thread(node, paths, t as u64, window_from, window_to, keep_max);
                let mut all = total.lock().unwrap_or_else(|p| p.into_inner());
                merge(&mut all, tally, keep_max);
            });
        }
    });
    let tally = total.into_inner().unwrap_or_else(|p| p.into_inner());
    let duration_s = o.duration.as_secs_f64();
    let ms = |us: u64| us as f64 / 1000.0;
    let mut serve = ServeReport {
        bundles_per_s: tally.ok as f64 / duration_s,
        ok: tally.ok,
        not_found: tally.not_found,
        rate_limited: tally.rate_limited,
        failed: tally.failed,
        bundle_bytes_mean: tally.bytes as f64 / (tally.ok.max(1)) as f64,
        ..ServeReport::default()
    };
    if let Some(h) = tally.latency.as_ref().filter(|h| !h.is_empty()) {
        serve.p50_ms = ms(h.value_at_quantile(0.50));
        serve.p90_ms = ms(h.value_at_quantile(0.90));
        serve.p99_ms = ms(h.value_at_quantile(0.99));
        serve.max_ms = ms(h.max());
    }
    let verify = match &genesis {
        Some(g) => {
            if o.progress {
                eprintln!(
                    "bench-proofs: verifying {} bundles offline",
                    tally.kept.len()
                );
            }
            Some(if o.status {
                verify_status_phase(g, &tally.kept)?
            } else {
                verify_phase(g, &tally.kept)?
            })
        }
        None => None,
    };
    Ok(ProofBenchReport {
        nodes,
        bundles: if o.status { "status" } else { "record" },
        ids: paths.len(),
        concurrency: o.concurrency,
        duration_s,
        serve,
        verify,
    })
}

fn read_ids(path: &std::path::Path) -> Result<Vec<Hash>, anyhow::Error> {
    let text = read_text(path, IDS_FILE_BYTES_MAX)?;
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let id = Hash::from_hex(line).map_err(|_| LocalError {
            path: path.display().to_string(),
            reason: format!("line {}: not a 64-hex-digit record id", n + 1),
        })?;
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(LocalError {
            path: path.display().to_string(),
            reason: "no record ids in the file".into(),
        }
        .into());
    }
    Ok(ids)
}

fn merge(all: &mut Tally, t: Tally, keep_max: usize) {
    all.ok += t.ok;
    all.not_found += t.not_found;
    all.rate_limited += t.rate_limited;
    all.failed += t.failed;
    all.bytes += t.bytes;
    match (&mut all.latency, t.latency) {
        (Some(a), Some(b)) => {
            // Both histograms have the same bounds: adding cannot fail.
            let _ = a.add(b);
        }
        (a @ None, b) => *a = b,
        _ => {}
    }
    let room = keep_max.saturating_sub(all.kept.len());
    all.kept.extend(t.kept.into_iter().take(room));
}

/// The subject a record's transaction names, if it names one a status bundle is made for.
fn subject_of(body: &TxBody) -> Option<Subject> {
    Some(match body {
        TxBody::ApprovalIssue(a) => Subject::Approval(a.approval_id.clone()),
        TxBody::LandRegister(l) => Subject::Parcel(l.parcel_id.clone()),
        TxBody::LandTransfer(l) => Subject::Parcel(l.parcel_id.clone()),
        TxBody::CatalogRegister(c) => Subject::Resource(c.resource_id.clone()),
        TxBody::DataAccess(d) => Subject::Pseudonym(d.subject),
        _ => return None,
    })
}

/// The distinct subjects named by the first [`STATUS_SUBJECTS_MAX`] of `ids`, read from
/// their record bundles on `node` (`threads` connections). Not timed.
fn find_subjects(node: &str, ids: &[Hash], threads: usize) -> anyhow::Result<Vec<Subject>> {
    let ids = &ids[..ids.len().min(STATUS_SUBJECTS_MAX)];
    let found = Mutex::new(Vec::new());
    let chunk = ids.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        for part in ids.chunks(chunk) {
            let found = &found;
            s.spawn(move || {
                let agent = crate::bench::agent("govledger-bench-proofs", REQUEST_TIMEOUT);
                let mut mine = Vec::new();
                for id in part {
                    let url = format!("{node}/v1/proofs/{}", id.to_hex());
                    let Ok(mut resp) = agent.get(&url).call() else {
                        continue;
                    };
                    let Ok(text) = resp
                        .body_mut()
                        .with_config()
                        .limit(BUNDLE_BYTES_MAX)
                        .read_to_string()
                    else {
                        continue;
                    };
                    if let Ok(b) = ProofBundle::from_json(&text)
                        && let Some(subject) = subject_of(&b.record.tx.tx.body)
                    {
                        mine.push(subject);
                    }
                }
                found.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
            });
        }
    });
    let mut subjects = found.into_inner().unwrap_or_else(|p| p.into_inner());
    // Distinct, in a reproducible order (a parcel transferred is named twice).
    subjects.sort_by_cached_key(|s| serde_json::to_string(s).unwrap_or_default());
    subjects.dedup();
    if subjects.is_empty() {
        anyhow::bail!(
            "none of the {} records asked names an approval, parcel, resource or pseudonym \
             (or the node answered none of them): no status bundle to ask for",
            ids.len()
        );
    }
    Ok(subjects)
}

/// One connection's requests until `to`; answers before `from` are not counted.
fn serve_thread(
    node: &str,
    paths: &[String],
    seed: u64,
    from: Instant,
    to: Instant,
    keep_max: usize,
) -> Tally {
    let agent = crate::bench::agent("govledger-bench-proofs", REQUEST_TIMEOUT);
    let mut tally = Tally {
        latency: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).ok(),
        ..Tally::default()
    };
    // xorshift64*: a different, reproducible id sequence per thread.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    loop {
        let sent = Instant::now();
        if sent >= to {
            break;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let pick = x.wrapping_mul(0x2545_F491_4F6C_DD1D) % paths.len() as u64;
        let url = format!("{node}{}", paths[pick as usize]);
        let answer = agent.get(&url).call();
        let counted = sent >= from;
        let Ok(mut resp) = answer else {
            if counted {
                tally.failed += 1;
            }
            continue;
        };
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(BUNDLE_BYTES_MAX)
            .read_to_string();
        if !counted {
            continue;
        }
        match (status, body) {
            (200, Ok(text)) => {
                tally.ok += 1;
                tally.bytes += text.len() as u64;
                let us = sent.elapsed().as_micros() as u64;
                if let Some(h) = &mut tally.latency {
                    let _ = h.record(us.clamp(1, LATENCY_MAX_US));
                }
                if tally.kept.len() < keep_max {
                    tally.kept.push(text);
                }
            }
            (404, _) => tally.not_found += 1,
            (429, _) => tally.rate_limited += 1,
            _ => tally.failed += 1,
        }
    }
    tally
}

/// Parses every kept answer with `parse`; the seconds it took.
fn parse_timed<T, E: std::fmt::Display>(
    kept: &[String],
    what: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> anyhow::Result<(Vec<T>, f64)> {
    if kept.is_empty() {
        anyhow::bail!("no {what} was received: nothing to verify");
    }
    let t = Instant::now();
    let parsed = kept
        .iter()
        .enumerate()
        .map(|(i, text)| {
            parse(text).map_err(|e| anyhow::anyhow!("{what} {i} from the node does not parse: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((parsed, t.elapsed().as_secs_f64()))
}

/// Runs `check` on every bundle, one at a time; the seconds it took. The first failure
/// names the bundle (`how`: which way it was verified).
fn check_timed<T, E: std::fmt::Display>(
    bundles: &[T],
    what: &str,
    how: &str,
    check: impl Fn(&T) -> Result<(), E>,
) -> anyhow::Result<f64> {
    let t = Instant::now();
    for (i, b) in bundles.iter().enumerate() {
        check(b).map_err(|e| anyhow::anyhow!("{what} {i} does not verify{how}: {e}"))?;
    }
    Ok(t.elapsed().as_secs_f64())
}

fn verify_phase(genesis: &ledger::Genesis, kept: &[String]) -> anyhow::Result<VerifyReport> {
    let (bundles, parse_s) = parse_timed(kept, "bundle", ProofBundle::from_json)?;
    let blocks: std::collections::BTreeSet<u64> =
        bundles.iter().map(|b| b.header.header.height).collect();
    let single_s = check_timed(&bundles, "bundle", "", |b| {
        b.verify(genesis, None).map(drop)
    })?;
    let verifier = Verifier::new(genesis)?;
    let cached_s = check_timed(&bundles, "bundle", " (cached)", |b| {
        verifier.verify(b, None).map(drop)
    })?;

    let verifier = Verifier::new(genesis)?;
    let t = Instant::now();
    for (c, chunk) in bundles.chunks(VERIFY_BATCH).enumerate() {
        for (i, r) in verifier.verify_many(chunk).into_iter().enumerate() {
            r.map_err(|e| {
                anyhow::anyhow!(
                    "bundle {} does not verify (batched): {e}",
                    c * VERIFY_BATCH + i
                )
            })?;
        }
    }
    let batched_s = t.elapsed().as_secs_f64();
    Ok(VerifyReport::of_times(
        bundles.len(),
        blocks.len(),
        [parse_s, single_s, cached_s],
        Some(batched_s),
    ))
}

fn verify_status_phase(genesis: &ledger::Genesis, kept: &[String]) -> anyhow::Result<VerifyReport> {
    let (bundles, parse_s) = parse_timed(kept, "status bundle", StatusBundle::from_json)?;
    let blocks: std::collections::BTreeSet<&[u8]> = bundles
        .iter()
        .map(|b| b.header.bytes.0.as_slice())
        .collect();
    let single_s = check_timed(&bundles, "status bundle", "", |b| {
        b.verify(genesis).map(drop)
    })?;
    let verifier = StatusVerifier::new(genesis);
    let cached_s = check_timed(&bundles, "status bundle", " (cached)", |b| {
        verifier.verify(b).map(drop)
    })?;
    Ok(VerifyReport::of_times(
        bundles.len(),
        blocks.len(),
        [parse_s, single_s, cached_s],
        None,
    ))
}

/// The human summary.
pub fn summary(r: &ProofBenchReport) -> String {
    let mut s = String::new();
    let v = &r.serve;
    let _ = writeln!(
        s,
        "served      {:.0} {} bundles/s over {:.0} s ({} connections, {} node(s), {} {})",
        v.bundles_per_s,
        if r.bundles == "status" {
            "status"
        } else {
            "proof"
        },
        r.duration_s,
        r.concurrency,
        r.nodes.len(),
        r.ids,
        if r.bundles == "status" {
            "subjects"
        } else {
            "ids"
        }
    );
    let _ = writeln!(
        s,
        "answers     {} ok, {} not found, {} rate limited, {} failed; mean bundle {:.0} bytes",
        v.ok, v.not_found, v.rate_limited, v.failed, v.bundle_bytes_mean
    );
    let _ = writeln!(
        s,
        "latency     p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        v.p50_ms, v.p90_ms, v.p99_ms, v.max_ms
    );
    if let Some(f) = &r.verify {
        let _ = writeln!(
            s,
            "verified    {} bundles of {} blocks offline, one thread each way, all valid:",
            f.bundles, f.blocks
        );
        let _ = writeln!(s, "  parse JSON                  {:>9.0}/s", f.parse_per_s);
        let _ = writeln!(
            s,
            "  one at a time, no cache     {:>9.0}/s ({:.3} ms each)",
            f.single_per_s, f.single_mean_ms
        );
        let _ = writeln!(s, "  certified headers cached    {:>9.0}/s", f.cached_per_s);
        if r.bundles != "status" {
            let _ = writeln!(
                s,
                "  batched ({VERIFY_BATCH} per batch)       {:>9.0}/s",
                f.batched_per_s
            );
        }
    }
    s
}
