//! Validators and validator sets.

use crate::codec::{self, DecodeError, check_len};
use crate::crypto::PublicKey;
use crate::hash::{Hash, domain, hash_with};
use crate::tx::{DepartmentId, check_department_id};
use serde::{Deserialize, Serialize};

/// Bound on the number of validators in a set.
pub const VALIDATOR_SET_MAX: usize = 256;
/// Bound on a validator's network address hint.
pub const ADDRESS_BYTES_MAX: usize = 256;
/// Bound on the total voting power, so that quorum arithmetic never overflows.
pub const TOTAL_POWER_MAX: u64 = 1 << 60;

/// A validator: a department's consensus key, its voting power and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validator {
    /// The department that runs it.
    pub department: DepartmentId,
    /// Its consensus key, which is also its node (libp2p) key.
    pub public_key: PublicKey,
    /// Voting power (≥ 1).
    pub power: u64,
    /// A network address hint (a libp2p multiaddr such as `/ip4/10.0.0.1/tcp/26656`).
    pub address: String,
}

impl Validator {
    /// Stateless checks of the fields.
    pub fn check_limits(&self) -> Result<(), DecodeError> {
        check_department_id(&self.department)?;
        check_len("address", self.address.len(), ADDRESS_BYTES_MAX)?;
        if self.power == 0 || self.power > TOTAL_POWER_MAX {
            return Err(DecodeError::Malformed(format!(
                "validator power must be between 1 and {TOTAL_POWER_MAX}"
            )));
        }
        if !self.public_key.is_valid() {
            return Err(DecodeError::Malformed(
                "validator public key is not a valid ed25519 key".into(),
            ));
        }
        Ok(())
    }
}

/// Why a validator set is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    /// No validators.
    #[error("the validator set is empty")]
    Empty,
    /// Too many validators.
    #[error("the validator set has {0} validators, the limit is {VALIDATOR_SET_MAX}")]
    TooLarge(usize),
    /// A key appears twice.
    #[error("validator {0} appears twice")]
    Duplicate(PublicKey),
    /// Total power above [`TOTAL_POWER_MAX`].
    #[error("total voting power exceeds {TOTAL_POWER_MAX}")]
    PowerOverflow,
    /// A validator's fields are invalid.
    #[error("validator {key}: {reason}")]
    BadValidator {
        /// The validator.
        key: PublicKey,
        /// What is wrong.
        reason: String,
    },
}

/// A validator set, sorted by public key (its canonical order), with a cached total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    #[serde(skip)]
    total_power: u64,
}

impl<'de> Deserialize<'de> for ValidatorSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            validators: Vec<Validator>,
        }
        let raw = Raw::deserialize(d)?;
        ValidatorSet::new(raw.validators).map_err(serde::de::Error::custom)
    }
}

impl ValidatorSet {
    /// Builds a set: sorts by key and checks every invariant.
    pub fn new(mut validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if validators.len() > VALIDATOR_SET_MAX {
            return Err(ValidatorSetError::TooLarge(validators.len()));
        }
        validators.sort_by_key(|v| v.public_key);
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            if i > 0 && validators[i - 1].public_key == v.public_key {
                return Err(ValidatorSetError::Duplicate(v.public_key));
            }
            v.check_limits()
                .map_err(|e| ValidatorSetError::BadValidator {
                    key: v.public_key,
                    reason: e.to_string(),
                })?;
            total = total
                .checked_add(v.power)
                .filter(|t| *t <= TOTAL_POWER_MAX)
                .ok_or(ValidatorSetError::PowerOverflow)?;
        }
        Ok(Self {
            validators,
            total_power: total,
        })
    }

    /// The validators in canonical (key) order.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.validators.len()
    }

    /// Always false: a set has at least one validator.
    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    /// Sum of the voting power.
    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    /// The validator with this key.
    pub fn get(&self, key: &PublicKey) -> Option<&Validator> {
        self.index_of(key).map(|i| &self.validators[i])
    }

    /// Position of the key in canonical order.
    pub fn index_of(&self, key: &PublicKey) -> Option<usize> {
        self.validators
            .binary_search_by(|v| v.public_key.cmp(key))
            .ok()
    }

    /// Voting power of the key (0 if not a validator).
    pub fn power_of(&self, key: &PublicKey) -> u64 {
        self.get(key).map_or(0, |v| v.power)
    }

    /// Whether `power` is more than two thirds of the total.
    pub fn is_quorum(&self, power: u64) -> bool {
        3 * power as u128 > 2 * self.total_power as u128
    }

    /// Whether `power` is more than one third of the total (at least one honest validator).
    pub fn is_one_third(&self, power: u64) -> bool {
        3 * power as u128 > self.total_power as u128
    }

    /// The hash that headers commit to: `blake3("govledger/validators/v1" ‖ encode(list of
    /// (department, public key, power)))`. Address hints are not part of it.
    pub fn hash(&self) -> Hash {
        let entries: Vec<(&str, &PublicKey, u64)> = self
            .validators
            .iter()
            .map(|v| (v.department.as_str(), &v.public_key, v.power))
            .collect();
        hash_with(domain::VALIDATORS, &codec::encode(&entries))
    }

    /// The proposer of `(height, round)`: weighted round robin over the canonical order,
    /// computed alike by every validator. Slot `(height + round) mod total_power` falls in
    /// the power interval of exactly one validator, so over any window of `total_power`
    /// consecutive slots each validator proposes in proportion to its power.
    pub fn proposer(&self, height: u64, round: u32) -> &Validator {
        let slot = ((height as u128 + round as u128) % self.total_power as u128) as u64;
        let mut acc = 0u64;
        for v in &self.validators {
            acc += v.power;
            if slot < acc {
                return v;
            }
        }
        // Unreachable: slot < total_power = acc after the loop.
        &self.validators[self.validators.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;

    fn v(seed: u8, power: u64) -> Validator {
        Validator {
            department: format!("d{seed}"),
            public_key: SecretKey::from_seed(&[seed; 32]).public_key(),
            power,
            address: String::new(),
        }
    }

    #[test]
    fn sorted_unique_and_quorum() {
        let set = ValidatorSet::new(vec![v(3, 1), v(1, 1), v(2, 1), v(4, 1)]).unwrap();
        assert!(
            set.validators()
                .windows(2)
                .all(|w| w[0].public_key < w[1].public_key)
        );
        assert_eq!(set.total_power(), 4);
        assert!(!set.is_quorum(2));
        assert!(set.is_quorum(3));
        assert!(set.is_one_third(2));
        assert!(!set.is_one_third(1));
        assert!(matches!(
            ValidatorSet::new(vec![v(1, 1), v(1, 2)]),
            Err(ValidatorSetError::Duplicate(_))
        ));
        assert_eq!(ValidatorSet::new(vec![]), Err(ValidatorSetError::Empty));
        assert!(ValidatorSet::new(vec![v(1, 0)]).is_err());
    }

    #[test]
    fn proposer_is_weighted() {
        let set = ValidatorSet::new(vec![v(1, 3), v(2, 1)]).unwrap();
        let mut counts = std::collections::BTreeMap::new();
        for h in 0..400 {
            *counts.entry(set.proposer(h, 0).public_key).or_insert(0u32) += 1;
        }
        let heavy = set.get(&v(1, 3).public_key).map(|x| x.public_key).unwrap();
        assert_eq!(counts[&heavy], 300);
    }

    #[test]
    fn decoding_revalidates() {
        let set = ValidatorSet::new(vec![v(1, 1), v(2, 1)]).unwrap();
        let bytes = codec::encode(&set);
        let back: ValidatorSet = codec::decode(&bytes).unwrap();
        assert_eq!(back.total_power(), 2);
        let json = serde_json::to_string(&set).unwrap();
        let back: ValidatorSet = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set);
        // Reversed order is not canonical.
        let mut raw = set.validators().to_vec();
        raw.reverse();
        let bytes = codec::encode(&(raw,));
        assert!(codec::decode::<ValidatorSet>(&bytes).is_err());
    }
}
