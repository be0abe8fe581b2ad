//! `genesis.json`: the chain id, departments, member keys and roles, validators and
//! consensus parameters. Its hash is the trust root that verifiers pin.

use crate::codec::{self, check_len};
use crate::crypto::PublicKey;
use crate::hash::{Hash, domain, hash_with};
use crate::tx::{CHAIN_ID_BYTES_MAX, DepartmentId, LABEL_BYTES_MAX, RoleSet, check_department_id};
use crate::validator::{Validator, ValidatorSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Bound on the departments in genesis.
pub const DEPARTMENTS_MAX: usize = 1024;
/// Bound on the member keys in genesis.
pub const MEMBERS_MAX: usize = 16 * 1024;
/// Bound on the size of a genesis file.
pub const GENESIS_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest frame a node sends or accepts on the gossip path (a proposal carries its whole
/// block). The node's gossip codec uses this bound.
pub const GOSSIP_FRAME_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Room in a gossip frame for everything of a proposal but its transactions' bytes: the
/// message envelope, the signed proposal and the header.
pub const PROPOSAL_ENVELOPE_BYTES_MAX: u64 = 64 * 1024;
/// Encoding overhead of one transaction inside a block (its length prefix).
pub const BLOCK_TX_OVERHEAD_BYTES: u64 = 8;
/// Hard cap on `max_block_bytes`: a block of that many transaction bytes still fits one
/// gossip frame. Together with `max_block_txs`, `validate` checks that the worst-case
/// block fits ([`GOSSIP_FRAME_BYTES_MAX`]).
pub const BLOCK_BYTES_HARD_MAX: u64 = GOSSIP_FRAME_BYTES_MAX - PROPOSAL_ENVELOPE_BYTES_MAX;
/// Latest time any block or genesis may carry (ms since the Unix epoch; the end of the
/// year 9999). Times are bounded so that `time + 1` and `time + period` never overflow.
pub const TIME_MS_MAX: u64 = 253_402_300_799_999;
/// Hard cap on `max_block_txs`.
pub const BLOCK_TXS_HARD_MAX: u32 = 100_000;

/// A department (a government body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// Id, e.g. `land-bureau`.
    pub id: DepartmentId,
    /// Name, e.g. `Municipal Land and Resources Bureau`.
    pub name: String,
    /// Weight in governance votes (default 1).
    #[serde(default = "one")]
    pub governance_weight: u32,
}

fn one() -> u32 {
    1
}

/// A member key of a department and its roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The key.
    pub key: PublicKey,
    /// Its department.
    pub department: DepartmentId,
    /// Its roles.
    pub roles: RoleSet,
    /// A label (person or system).
    #[serde(default)]
    pub name: String,
}

/// Protocol parameters every validator must agree on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusParams {
    /// Most transactions in one block.
    pub max_block_txs: u32,
    /// Most bytes of transactions in one block.
    pub max_block_bytes: u64,
    /// Propose timeout of round 0 (ms).
    pub timeout_propose_ms: u64,
    /// Added to the propose timeout per round (ms).
    pub timeout_propose_delta_ms: u64,
    /// Prevote timeout of round 0 (ms).
    pub timeout_prevote_ms: u64,
    /// Added to the prevote timeout per round (ms).
    pub timeout_prevote_delta_ms: u64,
    /// Precommit timeout of round 0 (ms).
    pub timeout_precommit_ms: u64,
    /// Added to the precommit timeout per round (ms).
    pub timeout_precommit_delta_ms: u64,
    /// When idle, an empty block is proposed at most this often (ms).
    pub idle_block_interval_ms: u64,
    /// How far ahead of a validator's clock a proposed block's time may be (ms).
    pub clock_drift_max_ms: u64,
    /// How long a governance proposal stays open for votes (ms).
    pub governance_voting_period_ms: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        Self {
            max_block_txs: 10_000,
            max_block_bytes: 8 * 1024 * 1024,
            timeout_propose_ms: 3000,
            timeout_propose_delta_ms: 500,
            timeout_prevote_ms: 1000,
            timeout_prevote_delta_ms: 500,
            timeout_precommit_ms: 1000,
            timeout_precommit_delta_ms: 500,
            idle_block_interval_ms: 5000,
            clock_drift_max_ms: 10_000,
            governance_voting_period_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

impl ConsensusParams {
    /// Checks ranges; the message names the field.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |field: &str, why: String| GenesisError::Invalid {
            field: format!("params.{field}"),
            reason: why,
        };
        if self.max_block_txs == 0 || self.max_block_txs > BLOCK_TXS_HARD_MAX {
            return Err(bad(
                "max_block_txs",
                format!("must be between 1 and {BLOCK_TXS_HARD_MAX}"),
            ));
        }
        if self.max_block_bytes < crate::tx::TX_BYTES_MAX as u64
            || self.max_block_bytes > BLOCK_BYTES_HARD_MAX
        {
            return Err(bad(
                "max_block_bytes",
                format!(
                    "must be between {} (one maximal transaction) and {BLOCK_BYTES_HARD_MAX}",
                    crate::tx::TX_BYTES_MAX
                ),
            ));
        }
        let worst_frame = self
            .max_block_bytes
            .saturating_add(u64::from(self.max_block_txs).saturating_mul(BLOCK_TX_OVERHEAD_BYTES))
            .saturating_add(PROPOSAL_ENVELOPE_BYTES_MAX);
        if worst_frame > GOSSIP_FRAME_BYTES_MAX {
            return Err(bad(
                "max_block_bytes",
                format!(
                    "a block of {} transaction bytes and {} transactions ({worst_frame} bytes with \
                     their framing) does not fit one gossip frame of {GOSSIP_FRAME_BYTES_MAX} \
                     bytes; lower max_block_bytes or max_block_txs",
                    self.max_block_bytes, self.max_block_txs
                ),
            ));
        }
        for (name, v) in [
            ("timeout_propose_ms", self.timeout_propose_ms),
            ("timeout_prevote_ms", self.timeout_prevote_ms),
            ("timeout_precommit_ms", self.timeout_precommit_ms),
        ] {
            if !(10..=600_000).contains(&v) {
                return Err(bad(name, "must be between 10 and 600000 ms".into()));
            }
        }
        for (name, v) in [
            ("timeout_propose_delta_ms", self.timeout_propose_delta_ms),
            ("timeout_prevote_delta_ms", self.timeout_prevote_delta_ms),
            (
                "timeout_precommit_delta_ms",
                self.timeout_precommit_delta_ms,
            ),
        ] {
            if v > 600_000 {
                return Err(bad(name, "must be at most 600000 ms".into()));
            }
        }
        if !(10..=3_600_000).contains(&self.idle_block_interval_ms) {
            return Err(bad(
                "idle_block_interval_ms",
                "must be between 10 and 3600000 ms".into(),
            ));
        }
        if self.clock_drift_max_ms > 3_600_000 {
            return Err(bad(
                "clock_drift_max_ms",
                "must be at most 3600000 ms".into(),
            ));
        }
        if self.governance_voting_period_ms == 0 {
            return Err(bad(
                "governance_voting_period_ms",
                "must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// The genesis document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// Chain id; every transaction and vote names it.
    pub chain_id: String,
    /// Time of the chain's start (ms since the epoch); block 1 is later.
    pub genesis_time_ms: u64,
    /// The departments.
    pub departments: Vec<Department>,
    /// Member keys.
    pub members: Vec<Member>,
    /// The first validator set.
    pub validators: Vec<Validator>,
    /// Consensus parameters.
    #[serde(default)]
    pub params: ConsensusParams,
    /// What the headers' `state_root` is ([`StateFormat`]). Absent from the JSON and from
    /// the encoding when 1, so a version-1 genesis keeps its hash; new chains use 2.
    #[serde(default, skip_serializing_if = "StateFormat::is_v1")]
    pub state_format: StateFormat,
}

/// What a chain's headers commit to as `state_root`, fixed by its genesis.
///
/// - 1: a hash chained over each block's write set ([`crate::state::chain_state_root`]):
///   it commits to the state but proves nothing about one key.
/// - 2: the root of the state tree ([`crate::state_tree`]): proofs of a key's value and
///   of its absence, and history heads in the state (status bundles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StateFormat(pub u32);

impl StateFormat {
    /// The chained root of the first chains.
    pub const V1: StateFormat = StateFormat(1);
    /// The state tree and history heads.
    pub const V2: StateFormat = StateFormat(2);
    /// What new chains get (`govledger init`, `testnet`, the dev node).
    pub const CURRENT: StateFormat = StateFormat::V2;

    /// Whether this is format 1 (for serde's `skip_serializing_if`).
    pub fn is_v1(&self) -> bool {
        *self == Self::V1
    }

    /// Whether headers commit to the state tree.
    pub fn has_tree(&self) -> bool {
        self.0 >= 2
    }
}

impl Default for StateFormat {
    /// A genesis that does not name its format is of format 1 (it was written before
    /// format 2 existed, and its hash must not change).
    fn default() -> Self {
        Self::V1
    }
}

/// A genesis document that cannot be used, with the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// Not valid JSON, or a field has the wrong type or name.
    #[error("genesis is not valid: {0}")]
    Parse(String),
    /// A field's value is not acceptable.
    #[error("genesis field `{field}`: {reason}")]
    Invalid {
        /// The field, e.g. `members[2].department`.
        field: String,
        /// Why, and what to do.
        reason: String,
    },
}

impl Genesis {
    /// Parses and validates a genesis file.
    pub fn from_json(text: &str) -> Result<Self, GenesisError> {
        if text.len() > GENESIS_BYTES_MAX {
            return Err(GenesisError::Parse(format!(
                "file is {} bytes, the limit is {GENESIS_BYTES_MAX}",
                text.len()
            )));
        }
        let g: Genesis =
            serde_json::from_str(text).map_err(|e| GenesisError::Parse(e.to_string()))?;
        g.validate()?;
        Ok(g)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain data to a String cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The trust root: `blake3("govledger/genesis/v1" ‖ encode(genesis))`. JSON
    /// formatting does not change it.
    pub fn hash(&self) -> Hash {
        hash_with(domain::GENESIS, &codec::encode(self))
    }

    /// The first validator set.
    pub fn validator_set(&self) -> Result<ValidatorSet, GenesisError> {
        ValidatorSet::new(self.validators.clone()).map_err(|e| GenesisError::Invalid {
            field: "validators".into(),
            reason: e.to_string(),
        })
    }

    /// Checks every field; the error names the field and says what to fix.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let invalid = |field: String, reason: String| GenesisError::Invalid { field, reason };
        if self.chain_id.is_empty() || self.chain_id.len() > CHAIN_ID_BYTES_MAX {
            return Err(invalid(
                "chain_id".into(),
                format!("must be 1-{CHAIN_ID_BYTES_MAX} bytes"),
            ));
        }
        if self.genesis_time_ms > TIME_MS_MAX {
            return Err(invalid(
                "genesis_time_ms".into(),
                format!("must be at most {TIME_MS_MAX} (ms since the Unix epoch, year 9999)"),
            ));
        }
        if self.departments.is_empty() {
            return Err(invalid(
                "departments".into(),
                "at least one department is needed".into(),
            ));
        }
        if self.departments.len() > DEPARTMENTS_MAX {
            return Err(invalid(
                "departments".into(),
                format!("at most {DEPARTMENTS_MAX}"),
            ));
        }
        let mut dept_ids = BTreeSet::new();
        for (i, d) in self.departments.iter().enumerate() {
            check_department_id(&d.id)
                .map_err(|e| invalid(format!("departments[{i}].id"), e.to_string()))?;
            check_len("name", d.name.len(), LABEL_BYTES_MAX)
                .map_err(|e| invalid(format!("departments[{i}].name"), e.to_string()))?;
            if d.governance_weight == 0 || d.governance_weight > 1_000_000 {
                return Err(invalid(
                    format!("departments[{i}].governance_weight"),
                    "must be between 1 and 1000000".into(),
                ));
            }
            if !dept_ids.insert(d.id.as_str()) {
                return Err(invalid(
                    format!("departments[{i}].id"),
                    format!("department {:?} is listed twice", d.id),
                ));
            }
        }
        if self.members.len() > MEMBERS_MAX {
            return Err(invalid("members".into(), format!("at most {MEMBERS_MAX}")));
        }
        let mut member_keys = BTreeSet::new();
        for (i, m) in self.members.iter().enumerate() {
            if !dept_ids.contains(m.department.as_str()) {
                return Err(invalid(
                    format!("members[{i}].department"),
                    format!(
                        "unknown department {:?}; add it to `departments` first",
                        m.department
                    ),
                ));
            }
            if !m.key.is_valid() {
                return Err(invalid(
                    format!("members[{i}].key"),
                    "not a valid ed25519 public key".into(),
                ));
            }
            if !member_keys.insert(m.key) {
                return Err(invalid(
                    format!("members[{i}].key"),
                    "this key is listed twice; a key belongs to one department".into(),
                ));
            }
            check_len("name", m.name.len(), LABEL_BYTES_MAX)
                .map_err(|e| invalid(format!("members[{i}].name"), e.to_string()))?;
        }
        for (i, v) in self.validators.iter().enumerate() {
            if !dept_ids.contains(v.department.as_str()) {
                return Err(invalid(
                    format!("validators[{i}].department"),
                    format!(
                        "unknown department {:?}; add it to `departments` first",
                        v.department
                    ),
                ));
            }
            v.check_limits()
                .map_err(|e| invalid(format!("validators[{i}]"), e.to_string()))?;
        }
        self.validator_set()?;
        self.params.validate()?;
        if !(1..=2).contains(&self.state_format.0) {
            return Err(invalid(
                "state_format".into(),
                format!(
                    "{} is not a state format this build knows (1: chained root, 2: state tree)",
                    self.state_format.0
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    pub(crate) fn sample() -> (Genesis, Vec<SecretKey>, Vec<SecretKey>) {
        let validators: Vec<SecretKey> = (1..=4).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let members: Vec<SecretKey> = (10..=12).map(|i| SecretKey::from_seed(&[i; 32])).collect();
        let g = Genesis {
            chain_id: "test".into(),
            genesis_time_ms: 1_700_000_000_000,
            departments: vec![
                Department {
                    id: "land".into(),
                    name: "Land Bureau".into(),
                    governance_weight: 1,
                },
                Department {
                    id: "health".into(),
                    name: "Health Commission".into(),
                    governance_weight: 1,
                },
            ],
            members: vec![Member {
                key: members[0].public_key(),
                department: "land".into(),
                roles: RoleSet::all(),
                name: "clerk".into(),
            }],
            validators: validators
                .iter()
                .map(|k| Validator {
                    department: "land".into(),
                    public_key: k.public_key(),
                    power: 1,
                    address: String::new(),
                })
                .collect(),
            params: ConsensusParams::default(),
            state_format: StateFormat::CURRENT,
        };
        (g, validators, members)
    }

    #[test]
    fn json_round_trip_and_stable_hash() {
        let (g, _, _) = sample();
        let text = g.to_json();
        let back = Genesis::from_json(&text).unwrap();
        assert_eq!(back, g);
        assert_eq!(back.hash(), g.hash());
        let compact = serde_json::to_string(&g).unwrap();
        assert_eq!(Genesis::from_json(&compact).unwrap().hash(), g.hash());
    }

    /// A version-1 genesis (no `state_format`) keeps the bytes, hence the hash, it had
    /// before the field existed; a version-2 one appends the format as a u32.
    #[test]
    fn a_format_1_genesis_keeps_its_encoding_and_hash() {
        #[derive(Serialize)]
        struct Before<'a> {
            chain_id: &'a String,
            genesis_time_ms: u64,
            departments: &'a Vec<Department>,
            members: &'a Vec<Member>,
            validators: &'a Vec<Validator>,
            params: &'a ConsensusParams,
        }
        let (mut g, _, _) = sample();
        g.state_format = StateFormat::V1;
        let before = codec::encode(&Before {
            chain_id: &g.chain_id,
            genesis_time_ms: g.genesis_time_ms,
            departments: &g.departments,
            members: &g.members,
            validators: &g.validators,
            params: &g.params,
        });
        assert_eq!(codec::encode(&g), before);
        assert!(!g.to_json().contains("state_format"));
        let old_json = g.to_json();
        assert_eq!(
            Genesis::from_json(&old_json).unwrap().state_format,
            StateFormat::V1
        );
        g.state_format = StateFormat::V2;
        let mut v2 = before.clone();
        v2.extend_from_slice(&2u32.to_le_bytes());
        assert_eq!(codec::encode(&g), v2);
        assert_ne!(g.hash(), hash_with(domain::GENESIS, &before));
        let back = Genesis::from_json(&g.to_json()).unwrap();
        assert_eq!(back.state_format, StateFormat::V2);
        assert_eq!(back.hash(), g.hash());
        g.state_format = StateFormat(3);
        let e = g.validate().unwrap_err();
        assert!(e.to_string().contains("state_format"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let (mut g, _, _) = sample();
        g.members[0].department = "nowhere".into();
        let e = Genesis::from_json(&g.to_json()).unwrap_err();
        assert!(e.to_string().contains("members[0].department"), "{e}");
        let (mut g, _, _) = sample();
        g.params.max_block_txs = 0;
        let e = g.validate().unwrap_err();
        assert!(e.to_string().contains("params.max_block_txs"), "{e}");
        let e = Genesis::from_json(r#"{"chain_id": "x", "bogus": 1}"#).unwrap_err();
        assert!(matches!(e, GenesisError::Parse(_)));
        let (mut g, _, _) = sample();
        g.validators.clear();
        assert!(g.validate().is_err());
    }
}
