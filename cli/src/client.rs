//! The HTTP client of a node's API (`docs/api.md`). Plain HTTP, blocking, one agent per
//! process. Every answer that is not a success becomes a [`ClientError`] that keeps the
//! node's error code, reason and message, so the user sees exactly why.

use crate::exit::Exit;
use ledger::block::CommittedBlock;
use ledger::hash::Hash;
use ledger::proof::{Checkpoint, ProofBundle};
use ledger::tx::SignedTx;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Default node URL.
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:8080";
/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of a whole request (a `wait=true` submission waits up to 30 s on the node).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on a JSON answer (a proof bundle with many validator changes can be large).
pub const JSON_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Bound on a `/v1/chain/blocks` answer (the node sends at most 16 MiB).
pub const CHAIN_PAGE_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// Most blocks one `/v1/chain/blocks` request asks for (the node's own bound).
pub const CHAIN_PAGE_BLOCKS_MAX: u32 = 100;
/// How often an overloaded node (429, 503) is retried, honouring `Retry-After`.
pub const BUSY_RETRIES_MAX: u32 = 3;
/// Longest `Retry-After` the client waits.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(5);

/// Why a request to the node failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node URL is not usable.
    #[error("invalid node URL {url:?}: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No connection (refused, unknown host, network down).
    #[error(
        "cannot reach the node at {url}: {reason} (is it running? set --node or GOVLEDGER_NODE)"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The request timed out on the client side.
    #[error("the node at {url} did not answer in time")]
    Timeout {
        /// The URL.
        url: String,
    },
    /// The node answered with an error.
    #[error("{}", describe_api_error(*status, code, reason.as_deref(), message))]
    Api {
        /// HTTP status.
        status: u16,
        /// The node's error code (`refused`, `not_found`, `bad_request`, ...).
        code: String,
        /// For `refused`: the state machine's reason code (`bad_nonce`, ...).
        reason: Option<String>,
        /// The node's message for humans.
        message: String,
        /// `Retry-After`, if the node sent one.
        retry_after: Option<Duration>,
    },
    /// The node answered 2xx but the body is not what the API promises.
    #[error("unexpected answer from the node for {what}: {reason}")]
    Decode {
        /// What was requested.
        what: String,
        /// Why it does not parse.
        reason: String,
    },
}

fn describe_api_error(status: u16, code: &str, reason: Option<&str>, message: &str) -> String {
    match (code, reason) {
        ("refused", Some(r)) => format!("the node refused the transaction ({r}): {message}"),
        ("not_found", _) => format!("not found: {message}"),
        _ => format!("the node answered {status} {code}: {message}"),
    }
}

impl ClientError {
    /// The exit code for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            ClientError::BadUrl { .. } => Exit::Usage,
            ClientError::Unreachable { .. }
            | ClientError::Timeout { .. }
            | ClientError::Decode { .. } => Exit::Node,
            ClientError::Api { status, code, .. } => match (*status, code.as_str()) {
                (404, _) | (_, "not_found") => Exit::NotFound,
                (_, "refused") => Exit::Refused,
                (400 | 413 | 422, _) => Exit::Refused,
                _ => Exit::Node,
            },
        }
    }

    /// The state machine's reason code, if the node refused a transaction.
    pub fn refusal_reason(&self) -> Option<&str> {
        match self {
            ClientError::Api {
                code,
                reason: Some(r),
                ..
            } if code == "refused" => Some(r),
            _ => None,
        }
    }

    /// Whether the node said it is busy (mempool full, rate limited): worth a retry.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            ClientError::Api {
                status: 429 | 503,
                ..
            }
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A machine-readable form for `--json` error output.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ClientError::Api {
                status,
                code,
                reason,
                message,
                ..
            } => serde_json::json!({
                "error": code, "status": status, "reason": reason, "message": message,
            }),
            other => serde_json::json!({
                "error": match other {
                    ClientError::BadUrl { .. } => "bad_url",
                    ClientError::Unreachable { .. } => "unreachable",
                    ClientError::Timeout { .. } => "timeout",
                    _ => "bad_answer",
                },
                "message": other.to_string(),
            }),
        }
    }
}

/// `GET /v1/status` (the fields the CLI uses; the node sends more).
#[derive(Clone, Debug, Deserialize)]
pub struct Status {
    /// Chain id.
    pub chain_id: String,
    /// Genesis hash.
    pub genesis_hash: Hash,
    /// Height of the last committed block.
    pub height: u64,
    /// Log size after it.
    #[serde(default)]
    pub log_size: u64,
}

/// `GET /v1/accounts/{key}` (the fields the CLI uses).
#[derive(Clone, Debug, Deserialize)]
pub struct Account {
    /// Next nonce counting the transactions already in the mempool.
    pub pending_nonce: u64,
    /// Next nonce after the committed transactions.
    #[serde(default)]
    pub next_nonce: u64,
}

/// The answer to a submission.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct Submitted {
    /// Record id.
    pub id: Hash,
    /// `pending` or `committed`.
    pub status: String,
    /// Height, once committed.
    #[serde(default)]
    pub height: Option<u64>,
    /// Leaf index, once committed.
    #[serde(default)]
    pub leaf_index: Option<u64>,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ConsistencyAnswer {
    old_size: u64,
    new_size: u64,
    proof: Vec<Hash>,
}

/// Reads an answer: its status, its `Retry-After` (whole seconds) and at most `limit` bytes
/// of body.
pub fn read_answer(
    mut resp: ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<(u16, Option<Duration>, Vec<u8>), ureq::Error> {
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let bytes = resp.body_mut().with_config().limit(limit).read_to_vec()?;
    Ok((status, retry_after, bytes))
}

/// Percent-encodes one path segment (ids may hold `/`, spaces, non-ASCII).
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A client of one node.
#[derive(Clone)]
pub struct NodeClient {
    base: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("base", &self.base)
            .finish()
    }
}

enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
}

impl NodeClient {
    /// A client for the node at `url` (`http://host:port`, optionally with a path prefix).
    pub fn new(url: &str) -> Result<Self, ClientError> {
        let base = url.trim().trim_end_matches('/').to_string();
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.to_string(),
            reason: reason.into(),
        };
        if base.starts_with("https://") {
            return Err(bad(
                "this build speaks plain HTTP only; put TLS in front of the node and use its http:// address inside the trusted network",
            ));
        }
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| bad("must start with http://"))?;
        if rest.is_empty() {
            return Err(bad("no host"));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .user_agent(concat!("govledger-cli/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(NodeClient {
            base,
            agent: config.into(),
        })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn transport(&self, e: ureq::Error) -> ClientError {
        match e {
            ureq::Error::Timeout(_) => ClientError::Timeout {
                url: self.base.clone(),
            },
            ureq::Error::BadUri(reason) => ClientError::BadUrl {
                url: self.base.clone(),
                reason,
            },
            other => ClientError::Unreachable {
                url: self.base.clone(),
                reason: other.to_string(),
            },
        }
    }

    /// One request; a non-2xx answer becomes [`ClientError::Api`]. Returns the body bytes.
    fn request(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Body<'_>,
        limit: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{}", self.base, path);
        let result = match body {
            Body::None => {
                let mut req = self.agent.get(&url);
                for (k, v) in query {
                    req = req.query(k, v);
                }
                req.call()
            }
            Body::Json(v) => {
                let mut req = self.agent.post(&url);
                for (k, val) in query {
                    req = req.query(k, val);
                }
                req.send_json(v)
            }
        };
        let resp = result.map_err(|e| self.transport(e))?;
        let (status, retry_after, bytes) =
            read_answer(resp, limit).map_err(|e| self.transport(e))?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        Err(match serde_json::from_slice::<ApiErrorBody>(&bytes) {
            Ok(b) => ClientError::Api {
                status,
                code: b.error,
                reason: b.reason,
                message: b.message,
                retry_after,
            },
            Err(_) => ClientError::Api {
                status,
                code: match status {
                    404 => "not_found".into(),
                    _ => format!("http_{status}"),
                },
                reason: None,
                message: String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
                    .trim()
                    .to_string(),
                retry_after,
            },
        })
    }

    /// Like [`Self::request`], retrying while the node says it is busy.
    fn request_retrying(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        limit: u64,
    ) -> Result<Vec<u8>, ClientError> {
        let mut attempt = 0;
        loop {
            let b = match body {
                Some(v) => Body::Json(v),
                None => Body::None,
            };
            match self.request(path, query, b, limit) {
                Err(e) if e.is_busy() && attempt < BUSY_RETRIES_MAX => {
                    attempt += 1;
                    let wait = e
                        .retry_after()
                        .unwrap_or(Duration::from_millis(500))
                        .min(RETRY_AFTER_MAX);
                    std::thread::sleep(wait);
                }
                other => return other,
            }
        }
    }

    fn parse<T: DeserializeOwned>(&self, what: &str, bytes: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode {
            what: what.to_string(),
            reason: e.to_string(),
        })
    }

    /// `GET path?query` as JSON.
    pub fn get_json(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<serde_json::Value, ClientError> {
        let bytes = self.request_retrying(path, query, None, JSON_BYTES_MAX)?;
        self.parse(path, &bytes)
    }

    /// `GET path?query` into a type.
    pub fn get_typed<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let bytes = self.request_retrying(path, query, None, JSON_BYTES_MAX)?;
        self.parse(path, &bytes)
    }

    /// `GET /v1/status`.
    pub fn status(&self) -> Result<Status, ClientError> {
        self.get_typed("/v1/status", &[])
    }

    /// `GET /v1/genesis` as a validated genesis.
    pub fn genesis(&self) -> Result<ledger::Genesis, ClientError> {
        let bytes = self.request_retrying("/v1/genesis", &[], None, JSON_BYTES_MAX)?;
        let text = String::from_utf8_lossy(&bytes);
        ledger::Genesis::from_json(&text).map_err(|e| ClientError::Decode {
            what: "/v1/genesis".into(),
            reason: e.to_string(),
        })
    }

    /// `GET /v1/accounts/{key}`.
    pub fn account(&self, key: &ledger::PublicKey) -> Result<Account, ClientError> {
        self.get_typed(&format!("/v1/accounts/{}", key.to_hex()), &[])
    }

    /// `POST /v1/txs` (with `wait=true` if `wait`).
    pub fn submit(&self, stx: &SignedTx, wait: bool) -> Result<Submitted, ClientError> {
        let body = serde_json::json!({ "tx": hex::encode(stx.encode()) });
        let query: Vec<(&str, String)> = if wait {
            vec![("wait", "true".into())]
        } else {
            vec![]
        };
        let bytes = self.request_retrying("/v1/txs", &query, Some(&body), JSON_BYTES_MAX)?;
        self.parse("/v1/txs", &bytes)
    }

    /// `GET /v1/chain/blocks?from=&limit=`: canonical bytes of `Vec<CommittedBlock>`.
    pub fn chain_blocks(&self, from: u64, limit: u32) -> Result<Vec<CommittedBlock>, ClientError> {
        let query = [
            ("from", from.to_string()),
            ("limit", limit.min(CHAIN_PAGE_BLOCKS_MAX).to_string()),
        ];
        let bytes =
            self.request_retrying("/v1/chain/blocks", &query, None, CHAIN_PAGE_BYTES_MAX)?;
        ledger::codec::decode::<Vec<CommittedBlock>>(&bytes).map_err(|e| ClientError::Decode {
            what: format!("/v1/chain/blocks?from={from}"),
            reason: e.to_string(),
        })
    }

    /// `GET /v1/proofs/{id}`.
    pub fn proof(&self, id: &Hash) -> Result<ProofBundle, ClientError> {
        self.get_typed(&format!("/v1/proofs/{}", id.to_hex()), &[])
    }

    /// `GET /v1/checkpoint[?height=]`.
    pub fn checkpoint(&self, height: Option<u64>) -> Result<Checkpoint, ClientError> {
        let query: Vec<(&str, String)> = height
            .map(|h| ("height", h.to_string()))
            .into_iter()
            .collect();
        self.get_typed("/v1/checkpoint", &query)
    }

    /// `GET /v1/consistency?old_size=&new_size=`.
    pub fn consistency(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, ClientError> {
        let a: ConsistencyAnswer = self.get_typed(
            "/v1/consistency",
            &[
                ("old_size", old_size.to_string()),
                ("new_size", new_size.to_string()),
            ],
        )?;
        if a.old_size != old_size || a.new_size != new_size {
            return Err(ClientError::Decode {
                what: "/v1/consistency".into(),
                reason: format!(
                    "asked for sizes {old_size}→{new_size}, got {}→{}",
                    a.old_size, a.new_size
                ),
            });
        }
        Ok(a.proof)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(NodeClient::new("http://127.0.0.1:8080/").is_ok());
        assert_eq!(NodeClient::new("http://h:1/").unwrap().url(), "http://h:1");
        assert!(matches!(
            NodeClient::new("https://x"),
            Err(ClientError::BadUrl { .. })
        ));
        assert!(matches!(
            NodeClient::new("localhost:8080"),
            Err(ClientError::BadUrl { .. })
        ));
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("BP-2026/001 x"), "BP-2026%2F001%20x");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn api_errors_map_to_exit_codes() {
        let api = |status, code: &str, reason: Option<&str>| ClientError::Api {
            status,
            code: code.into(),
            reason: reason.map(String::from),
            message: "m".into(),
            retry_after: None,
        };
        let refused = api(422, "refused", Some("bad_nonce"));
        assert_eq!(refused.exit(), Exit::Refused);
        assert_eq!(refused.refusal_reason(), Some("bad_nonce"));
        assert!(refused.to_string().contains("bad_nonce"));
        assert_eq!(api(404, "not_found", None).exit(), Exit::NotFound);
        assert_eq!(api(503, "mempool_full", None).exit(), Exit::Node);
        assert!(api(429, "rate_limited", None).is_busy());
        assert_eq!(api(500, "internal", None).exit(), Exit::Node);
    }

    #[test]
    fn unreachable_node_is_exit_2() {
        // Port 9 (discard) on loopback is closed on any sane test machine.
        let c = NodeClient::new("http://127.0.0.1:9").unwrap();
        let e = c.status().unwrap_err();
        assert_eq!(e.exit(), Exit::Node, "{e}");
        assert!(e.to_string().contains("cannot reach"), "{e}");
    }
}
