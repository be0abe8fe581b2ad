//! Power loss under a real `govledger-node dev` chain: its directory lives on
//! [`PowerLossFs`], which forgets every write and directory change not yet synced. Each
//! cycle submits transactions with `wait=true`, cuts the power at a random moment
//! (SIGKILL, then the file system reverts to its durable contents), restarts the node and
//! checks that every transaction acknowledged as committed is still there in the same
//! block, that the restored signing state is not behind what was signed, and that the
//! chain goes on committing.
//!
//! A SIGKILL alone keeps the page cache, so it cannot tell a synced write from an unsynced
//! one; this test fails when the store's commit is written with `set_sync(false)` (see
//! docs/testing.md). Seeded: `GOVLEDGER_POWERLOSS_SEED=N` replays a run's cut moments.
//! Without FUSE it skips with a message, unless `GOVLEDGER_POWERLOSS_STRICT=1`.

use govledger_tests::powerloss::{self, PowerLossFs};
use govledger_tests::{Api, Signer, free_port, node_binary};
use ledger::hash::hash_document;
use ledger::tx::{Anchor, TxBody};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Power cuts per run.
const CYCLES: usize = 6;
/// A cut comes this long after the node answers, at the earliest / latest (ms).
const CUT_AFTER_MS_MIN: u64 = 200;
const CUT_AFTER_MS_MAX: u64 = 3_000;
/// How long a (re)started node may take to answer its API.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a transaction submitted after a restart may take to commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(40);
/// Known-stall tolerance: a lone validator that was locked on a block whose body is not
/// persisted may legitimately stall after a power cut (it may not propose another block
/// at that height, and no peer can send it the body). The lead is adding persistence of
/// locked blocks; until then a stall after a restart is reported, and tolerated only if
/// this is true. It is false: no stall was seen in this test's runs, so a stall fails.
const TOLERATE_LOCKED_BLOCK_STALL: bool = false;

/// A transaction the node acknowledged as committed.
#[derive(Debug, Clone)]
struct Acked {
    id: String,
    height: u64,
    /// The block's hash, read right after the acknowledgement (`None` if the power was
    /// cut before it could be read).
    block_hash: Option<String>,
}

/// A small seeded generator (splitmix64): the cut moments replay from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

struct DevNode {
    dir: PathBuf,
    log: PathBuf,
    api_port: u16,
    p2p_port: u16,
    child: Option<Child>,
}

impl DevNode {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(node_binary())
            .arg("dev")
            .arg("--data")
            .arg(&self.dir)
            .arg("--api")
            .arg(format!("127.0.0.1:{}", self.api_port))
            .arg("--p2p")
            .arg(format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .env("RUST_LOG", "info")
            .spawn()
            .expect("start node");
        self.child = Some(child);
    }

    /// The power cut's kill: no shutdown, no chance to flush anything.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn api(&self) -> Api {
        Api::new(&format!("http://127.0.0.1:{}", self.api_port))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    }

    /// Waits until the API answers; fails if the node exits first.
    fn wait_ready(&mut self, context: &str) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.api().height().is_ok() {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "{context}: the node exited ({status}) instead of starting; log:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{context}: the node did not answer in {START_TIMEOUT:?}; log:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        self.kill();
    }
}

fn anchor(i: u64) -> TxBody {
    TxBody::Anchor(Anchor {
        document_hash: hash_document(&i.to_le_bytes()),
        label: format!("powerloss {i}"),
    })
}

fn next_nonce(api: &Api, signer: &Signer) -> u64 {
    let v = get(api, &format!("/v1/accounts/{}", signer.key.public_key()))
        .unwrap_or_else(|e| panic!("account: {} {}", e.status, e.body));
    v["next_nonce"].as_u64().unwrap_or(0)
}

/// Pause between submissions: keeps the acknowledged transactions (each checked after
/// every cut) to a few hundred per cycle, and the checks under the API's rate limit.
const SUBMIT_PAUSE: Duration = Duration::from_millis(5);
/// Retries of a read refused by the API's rate limit (429), 100 ms apart.
const RATE_LIMITED_RETRIES: u32 = 100;

/// GET, waiting out the API's rate limit.
fn get(api: &Api, path: &str) -> Result<serde_json::Value, govledger_tests::ApiError> {
    let mut tries = 0;
    loop {
        match api.get(path) {
            Err(e) if e.status == 429 && tries < RATE_LIMITED_RETRIES => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            r => return r,
        }
    }
}

fn block_hash(api: &Api, height: u64) -> Option<String> {
    get(api, &format!("/v1/blocks/{height}"))
        .ok()
        .and_then(|b| b["hash"].as_str().map(str::to_string))
}

/// The height of the signing state the node restored at its last start (from its log).
fn restored_signing_height(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let start = text.rfind("store opened")?;
    let line = text[start..]
        .lines()
        .find(|l| l.contains("restored consensus signing state"))?;
    let h = line.split("height=").nth(1)?;
    h.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Submits with `wait=true` until `stop` (or the node dies), recording acknowledgements.
fn submit_until_cut(
    api: Api,
    mut signer: Signer,
    mut doc: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) -> u64 {
    while !stop.load(Ordering::Relaxed) {
        let stx = signer.sign(anchor(doc));
        doc += 1;
        let Ok(v) = api.submit(&stx, true) else {
            break;
        };
        if v["status"] != "committed" {
            continue;
        }
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let height = v["height"].as_u64().expect("committed without a height");
        let hash = block_hash(&api, height);
        acked.lock().unwrap_or_else(|p| p.into_inner()).push(Acked {
            id,
            height,
            block_hash: hash,
        });
        std::thread::sleep(SUBMIT_PAUSE);
    }
    doc
}

#[test]
fn acknowledged_commits_survive_power_cuts() {
    let strict = std::env::var("GOVLEDGER_POWERLOSS_STRICT").as_deref() == Ok("1");
    let skip = |why: String| {
        assert!(
            !strict,
            "GOVLEDGER_POWERLOSS_STRICT=1 but the power-loss test cannot run: {why}"
        );
        eprintln!("\n!!!!! SKIPPED acknowledged_commits_survive_power_cuts: {why} !!!!!");
        eprintln!("!!!!! (set GOVLEDGER_POWERLOSS_STRICT=1 to make this a failure) !!!!!\n");
    };
    if let Some(why) = powerloss::unavailable() {
        return skip(why);
    }
    let seed = std::env::var("GOVLEDGER_POWERLOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(govledger_tests::now_ms);
    eprintln!("powerloss: seed {seed} (replay with GOVLEDGER_POWERLOSS_SEED={seed})");
    let mut rng = Rng(seed);

    let root = tempfile::tempdir().expect("tempdir");
    let mnt = root.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mountpoint");
    let mut fs = match PowerLossFs::mount(&mnt) {
        Ok(fs) => fs,
        Err(e) => return skip(format!("cannot mount FUSE on {}: {e}", mnt.display())),
    };
    let mut node = DevNode {
        dir: fs.path().join("dev"),
        log: root.path().join("node.log"),
        api_port: free_port(),
        p2p_port: free_port(),
        child: None,
    };
    node.start();
    node.wait_ready("first start");
    let client = ledger::keyfile::read(&node.dir.join("client.key")).expect("client key");
    let chain_id = node.api().get("/v1/genesis").expect("genesis")["chain_id"]
        .as_str()
        .unwrap_or("govledger-dev")
        .to_string();

    let mut all_acked: Vec<Acked> = Vec::new();
    let mut doc = 0u64;
    for cycle in 1..=CYCLES {
        let api = node.api();
        let mut signer = Signer::new(client.clone(), &chain_id);
        signer.nonce = next_nonce(&api, &signer);
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let submitter = {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || submit_until_cut(api, signer, doc, stop, acked))
        };
        let cut_after = rng.range(CUT_AFTER_MS_MIN, CUT_AFTER_MS_MAX);
        std::thread::sleep(Duration::from_millis(cut_after));
        // The power cut: the process dies at once, then unsynced data is gone.
        node.kill();
        stop.store(true, Ordering::Relaxed);
        doc = submitter.join().expect("submitter");
        let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|p| p.into_inner()));
        all_acked.extend(acked.iter().cloned());
        fs.power_cut().expect("power cut");
        let stats = fs.stats();
        eprintln!(
            "powerloss: cycle {cycle}: cut after {cut_after} ms, {} acknowledged this cycle \
             ({} in all); dropped so far {} unsynced bytes, {} directory entries; {} file and {} \
             directory syncs",
            acked.len(),
            all_acked.len(),
            stats.bytes_dropped,
            stats.entries_dropped,
            stats.file_syncs,
            stats.dir_syncs
        );

        let context = format!("cycle {cycle} (seed {seed})");
        node.start();
        node.wait_ready(&context);
        let api = node.api();
        let height = api.height().expect("height");
        let acked_max = all_acked.iter().map(|a| a.height).max().unwrap_or(0);
        assert!(
            height >= acked_max,
            "{context}: the node restarted at height {height}, below the acknowledged height \
             {acked_max}: acknowledged commits were lost; log:\n{}",
            node.log_tail()
        );
        for a in &all_acked {
            let tx = get(&api, &format!("/v1/txs/{}", a.id))
                .unwrap_or_else(|e| panic!("{context}: tx {}: {} {}", a.id, e.status, e.body));
            assert_eq!(
                tx["status"], "committed",
                "{context}: acknowledged transaction {} (height {}) is gone: {tx}",
                a.id, a.height
            );
            assert_eq!(
                tx["record"]["height"].as_u64(),
                Some(a.height),
                "{context}: acknowledged transaction {} moved: {tx}",
                a.id
            );
            if let Some(h) = &a.block_hash {
                assert_eq!(
                    block_hash(&api, a.height).as_ref(),
                    Some(h),
                    "{context}: block {} changed hash after the power cut (a re-decided height: \
                     the validator signed two blocks at it)",
                    a.height
                );
            }
        }
        // The signing state must not be behind what the validator signed: it precommitted
        // every block up to the tip before committing it.
        if height > 0 {
            let restored = restored_signing_height(&node.log);
            assert!(
                restored.is_some_and(|r| r >= height),
                "{context}: the restored signing state (height {restored:?}) is behind the \
                 stored tip {height}: after a power cut it could sign again what it signed; \
                 log:\n{}",
                node.log_tail()
            );
        }
        // The chain goes on: a new transaction commits above everything acknowledged.
        // A transaction sent before the cut and never acknowledged may still commit (in a
        // locked block the node restores), taking the nonce read here: a probe refused for
        // its nonce is signed again with a fresh one.
        let mut probe = Signer::new(client.clone(), &chain_id);
        probe.nonce = next_nonce(&api, &probe);
        let mut stx = probe.sign(anchor(doc));
        doc += 1;
        let started = Instant::now();
        let committed = loop {
            match api.submit(&stx, true) {
                Ok(v) if v["status"] == "committed" => break v["height"].as_u64(),
                _ if started.elapsed() > COMMIT_TIMEOUT => break None,
                Err(e) if e.body.contains("nonce") => {
                    probe.nonce = next_nonce(&api, &probe);
                    stx = probe.sign(anchor(doc));
                    doc += 1;
                }
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        match committed {
            Some(h) => assert!(h > acked_max, "{context}: committed at {h} ≤ {acked_max}"),
            None if TOLERATE_LOCKED_BLOCK_STALL => {
                eprintln!(
                    "powerloss: {context}: KNOWN STALL tolerated (locked block not persisted); \
                     stopping the cycles here"
                );
                break;
            }
            None => panic!(
                "{context}: the chain does not commit after the restart (a lone validator \
                 locked on a block whose body was not persisted?); log:\n{}",
                node.log_tail()
            ),
        }
    }
    node.kill();
    assert!(
        !all_acked.is_empty(),
        "no transaction was acknowledged in {CYCLES} cycles: the test checked nothing"
    );
    let stats = fs.stats();
    assert!(
        stats.file_syncs > 0 && stats.bytes_dropped > 0,
        "the file system saw no syncs or dropped nothing ({stats:?}): the test exercised nothing"
    );
    eprintln!(
        "powerloss: {} acknowledged transactions survived {CYCLES} power cuts (seed {seed}); {stats:?}",
        all_acked.len()
    );
}
