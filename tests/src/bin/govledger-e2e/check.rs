//! The checker: what must hold after any fault.
//!
//! 1. Every node reaches the height the most advanced node had when the check started
//!    (the network converged after healing).
//! 2. Every node's chain links (height, `prev_hash`, `tx_root`), and all nodes have the same
//!    header hash at every common height; the API's block hash is the hash of the header
//!    it serves.
//! 3. No transaction id appears twice in a node's chain.
//! 4. Every acknowledged transaction is in every node's chain exactly once, and every node
//!    reports it committed at that height (`GET /v1/txs/{id}`).
//! 5. Committed evidence names only the byzantine department (if one is given), and names
//!    it at least once; without one, there is no evidence at all.

use crate::args::Args;
use govledger_tests::Api;
use ledger::block::CommittedBlock;
use ledger::genesis::Genesis;
use ledger::hash::Hash;
use ledger::tx::TxBody;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Blocks asked for per `/v1/chain/blocks` request (the endpoint's maximum).
const BLOCKS_PER_REQUEST: u64 = 100;
/// Failures listed in full; the rest are counted.
const FAILURES_SHOWN_MAX: usize = 20;

/// What `check` does.
pub struct CheckOptions {
    nodes: Vec<String>,
    names: Vec<String>,
    genesis: PathBuf,
    acks: Vec<PathBuf>,
    byzantine: Option<String>,
    converge: Duration,
    out: Option<PathBuf>,
}

impl CheckOptions {
    /// Reads the flags.
    pub fn from_args(a: &Args) -> Result<CheckOptions, String> {
        a.reject_unknown(&[
            "nodes",
            "names",
            "genesis",
            "acks",
            "byzantine",
            "converge-secs",
            "out",
        ])?;
        let nodes = a.list("nodes");
        if nodes.is_empty() {
            return Err("--nodes needs at least one API URL".into());
        }
        let mut names = a.list("names");
        if names.is_empty() {
            names = (1..=nodes.len()).map(|i| format!("node-{i}")).collect();
        }
        if names.len() != nodes.len() {
            return Err("--names must name every node of --nodes".into());
        }
        Ok(CheckOptions {
            nodes,
            names,
            genesis: PathBuf::from(a.required("genesis")?),
            acks: a.list("acks").into_iter().map(PathBuf::from).collect(),
            byzantine: a.get("byzantine").map(str::to_string),
            converge: a.secs("converge-secs", 90)?,
            out: a.get("out").map(PathBuf::from),
        })
    }
}

/// One node's chain as the checker needs it.
struct Chain {
    /// Header hash at height `i + 1`.
    hashes: Vec<Hash>,
    /// Transaction id → the heights it appears at.
    ids: HashMap<Hash, Vec<u64>>,
    /// Transactions per record kind.
    kinds: BTreeMap<&'static str, u64>,
    /// (evidence id, offending validator key, height, reporter key).
    evidence: Vec<(Hash, ledger::PublicKey, u64, ledger::PublicKey)>,
}

fn fetch_chain(api: &Api, tip: u64) -> Result<Chain, String> {
    let mut chain = Chain {
        hashes: vec![],
        ids: HashMap::new(),
        kinds: BTreeMap::new(),
        evidence: vec![],
    };
    let mut prev = Hash::ZERO;
    let mut from = 1;
    while from <= tip {
        let bytes = api
            .get_bytes(&format!(
                "/v1/chain/blocks?from={from}&limit={BLOCKS_PER_REQUEST}"
            ))
            .map_err(|e| format!("GET /v1/chain/blocks?from={from}: {} {}", e.status, e.body))?;
        let blocks: Vec<CommittedBlock> = ledger::codec::decode(&bytes)
            .map_err(|e| format!("blocks from height {from} do not decode: {e}"))?;
        if blocks.is_empty() {
            return Err(format!("the node serves no block at height {from}"));
        }
        for cb in blocks {
            let h = cb.block.header.height;
            if h > tip {
                break;
            }
            if h != from {
                return Err(format!("asked for height {from}, got {h}"));
            }
            if cb.block.header.prev_hash != prev && h > 1 {
                return Err(format!("block {h} does not link to block {}", h - 1));
            }
            if cb.block.compute_tx_root() != cb.block.header.tx_root {
                return Err(format!("block {h}: transactions do not match tx_root"));
            }
            prev = cb.block.hash();
            chain.hashes.push(prev);
            for stx in &cb.block.txs {
                let id = stx.id();
                chain.ids.entry(id).or_default().push(h);
                *chain.kinds.entry(stx.tx.body.kind()).or_default() += 1;
                if let TxBody::Evidence(ev) = &stx.tx.body {
                    chain
                        .evidence
                        .push((id, ev.key().validator, h, stx.tx.signer));
                }
            }
            from += 1;
        }
    }
    Ok(chain)
}

fn read_acks(paths: &[PathBuf]) -> Result<Vec<Hash>, String> {
    let mut ids = vec![];
    for p in paths {
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read acknowledgements {}: {e}", p.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            ids.push(
                Hash::from_hex(line)
                    .map_err(|e| format!("{}:{}: not a transaction id: {e}", p.display(), n + 1))?,
            );
        }
    }
    Ok(ids)
}

/// Waits until every node has at least the height the most advanced one has now.
fn converge(apis: &[Api], names: &[String], limit: Duration, fail: &mut Vec<String>) -> u64 {
    let target = apis
        .iter()
        .filter_map(|a| a.height().ok())
        .max()
        .unwrap_or(0);
    let deadline = Instant::now() + limit;
    loop {
        let heights: Vec<Option<u64>> = apis.iter().map(|a| a.height().ok()).collect();
        if heights.iter().all(|h| h.is_some_and(|h| h >= target)) {
            return target;
        }
        if Instant::now() > deadline {
            for (name, h) in names.iter().zip(&heights) {
                match h {
                    Some(h) if *h >= target => {}
                    Some(h) => fail.push(format!(
                        "{name} did not catch up: height {h} after {limit:?}, the others reached {target}"
                    )),
                    None => fail.push(format!("{name} does not answer /v1/status")),
                }
            }
            return target;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs every check; prints a report and fails if anything does not hold.
pub fn run(o: &CheckOptions) -> Result<(), String> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&o.genesis)
        .map_err(|e| format!("cannot read {}: {e}", o.genesis.display()))?;
    let genesis = Genesis::from_json(&text).map_err(|e| format!("genesis: {e}"))?;
    let department_of = |key: &ledger::PublicKey| {
        genesis
            .validators
            .iter()
            .find(|v| v.public_key == *key)
            .map(|v| v.department.clone())
            .unwrap_or_else(|| format!("unknown validator {key}"))
    };
    let acks = read_acks(&o.acks)?;
    let apis: Vec<Api> = o.nodes.iter().map(|u| Api::new(u)).collect();
    let mut fail: Vec<String> = vec![];

    // 1. Convergence.
    let target = converge(&apis, &o.names, o.converge, &mut fail);

    // 2. Each node's chain up to its current tip.
    let mut chains: Vec<Option<Chain>> = vec![];
    let mut tips = vec![];
    for (api, name) in apis.iter().zip(&o.names) {
        let tip = api.height().unwrap_or(0);
        tips.push(tip);
        match fetch_chain(api, tip) {
            Ok(c) => {
                // The API's notion of the block hash is the header's hash.
                if tip > 0 {
                    match api.get(&format!("/v1/blocks/{tip}")) {
                        Ok(b)
                            if b["hash"].as_str() == Some(&c.hashes[tip as usize - 1].to_hex()) => {
                        }
                        Ok(b) => fail.push(format!(
                            "{name}: /v1/blocks/{tip} says hash {}, the header hashes to {}",
                            b["hash"],
                            c.hashes[tip as usize - 1]
                        )),
                        Err(e) => fail.push(format!("{name}: /v1/blocks/{tip}: {}", e.body)),
                    }
                }
                chains.push(Some(c));
            }
            Err(e) => {
                fail.push(format!("{name}: {e}"));
                chains.push(None);
            }
        }
    }
    let fetched: Vec<(usize, &Chain)> = chains
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
        .collect();
    let common = fetched
        .iter()
        .map(|(_, c)| c.hashes.len() as u64)
        .min()
        .unwrap_or(0);
    // Agreement at every common height.
    for h in 1..=common {
        let i = h as usize - 1;
        let first = fetched[0].1.hashes[i];
        if fetched.iter().any(|(_, c)| c.hashes[i] != first) {
            let all: Vec<String> = fetched
                .iter()
                .map(|(n, c)| format!("{}={}", o.names[*n], c.hashes[i]))
                .collect();
            fail.push(format!("nodes disagree at height {h}: {}", all.join(" ")));
            break;
        }
    }

    // 3. No id twice; 4. every acknowledged id exactly once, everywhere.
    for (n, c) in &fetched {
        for (id, heights) in &c.ids {
            if heights.len() > 1 {
                fail.push(format!(
                    "{}: transaction {id} is in the chain {} times (heights {heights:?})",
                    o.names[*n],
                    heights.len()
                ));
            }
        }
    }
    let mut unique_acks = acks.clone();
    unique_acks.sort();
    unique_acks.dedup();
    let per_node: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = fetched
            .iter()
            .map(|(n, c)| {
                let (api, name, acks) = (&apis[*n], &o.names[*n], &unique_acks);
                s.spawn(move || {
                    let mut f = vec![];
                    for id in acks {
                        let heights = c.ids.get(id).map(Vec::as_slice).unwrap_or(&[]);
                        if heights.len() != 1 {
                            f.push(format!(
                                "{name}: acknowledged transaction {id} is in the chain {} times",
                                heights.len()
                            ));
                            continue;
                        }
                        match api.tx(id) {
                            Ok(v)
                                if v["status"] == "committed"
                                    && v["record"]["height"].as_u64() == Some(heights[0]) => {}
                            Ok(v) => f.push(format!(
                                "{name}: acknowledged transaction {id} (height {}) answers {v}",
                                heights[0]
                            )),
                            Err(e) => {
                                f.push(format!("{name}: GET /v1/txs/{id}: {} {}", e.status, e.body))
                            }
                        }
                    }
                    f
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec!["a lookup thread panicked".into()])
            })
            .collect()
    });
    for f in per_node {
        fail.extend(f);
    }

    // 5. Evidence, as committed in the most advanced chain.
    let reference = fetched
        .iter()
        .max_by_key(|(_, c)| c.hashes.len())
        .map(|(_, c)| *c);
    let mut evidence = vec![];
    if let Some(c) = reference {
        for (id, offender, height, reporter) in &c.evidence {
            let against = department_of(offender);
            evidence.push(json!({
                "id": id.to_hex(),
                "height": height,
                "against": against,
                "validator": offender.to_hex(),
                "reported_by": department_of(reporter),
            }));
            if o.byzantine.as_deref() != Some(against.as_str()) {
                fail.push(format!(
                    "evidence {id} at height {height} names {against}, which was not byzantine"
                ));
            }
        }
        if let Some(b) = &o.byzantine
            && !evidence.iter().any(|e| e["against"] == b.as_str())
        {
            fail.push(format!(
                "no committed evidence names the byzantine department {b}"
            ));
        }
    }

    let txs_in_chain: u64 = reference.map(|c| c.ids.len() as u64).unwrap_or(0);
    let report = json!({
        "passed": fail.is_empty(),
        "nodes": o.names,
        "tips": tips,
        "converged_to": target,
        "common_height": common,
        "txs_in_chain": txs_in_chain,
        "kinds_in_chain": reference.map(|c| c.kinds.clone()).unwrap_or_default(),
        "acked": unique_acks.len(),
        "acked_duplicate_lines": acks.len() - unique_acks.len(),
        "evidence": evidence,
        "failures": fail.iter().take(FAILURES_SHOWN_MAX).collect::<Vec<_>>(),
        "failures_total": fail.len(),
        "check_secs": started.elapsed().as_secs_f64(),
    });
    if let Some(p) = &o.out {
        std::fs::write(p, format!("{report:#}\n"))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    eprintln!(
        "check: {} nodes, tips {tips:?}, agreement on heights 1-{common}, {txs_in_chain} transactions in the chain, {} acknowledged, {} evidence",
        o.names.len(),
        unique_acks.len(),
        evidence.len()
    );
    for e in &evidence {
        eprintln!(
            "check: evidence {} at height {} against {} (reported by {})",
            e["id"], e["height"], e["against"], e["reported_by"]
        );
    }
    println!("{report}");
    if fail.is_empty() {
        eprintln!("check: PASSED");
        Ok(())
    } else {
        for f in fail.iter().take(FAILURES_SHOWN_MAX) {
            eprintln!("check: FAILED: {f}");
        }
        let more = fail.len().saturating_sub(FAILURES_SHOWN_MAX);
        if more > 0 {
            eprintln!("check: … and {more} more failures");
        }
        Err(format!("{} checks failed", fail.len()))
    }
}
