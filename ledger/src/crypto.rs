//! Keys and signatures: Ed25519 (RFC 8032) keys and signing from ed25519-dalek, and one
//! verification rule used everywhere, single or batched.
//!
//! # The verification rule
//!
//! A node must reach the same verdict on a signature whether it checked it alone or in a
//! batch, or two nodes could disagree on a block. ed25519-dalek's `verify_strict` is
//! cofactorless, and no batch verifier can match a cofactorless rule exactly (a signature
//! off by a small-order point passes a random-linear batch with probability 1/8). So, like
//! ZIP-215, govledger uses the *cofactored* equation for both paths:
//!
//! * `s` must be canonical (`s < ℓ`), which rules out signature malleability;
//! * `A` (the public key) and `R` must decode to curve points and must not be of small
//!   order, which rules out the weak keys that `verify_strict` exists to refuse;
//! * `[8]([s]B − R − [k]A) = 𝒪` with `k = SHA-512(R ‖ A ‖ M)`.
//!
//! Every signature that `verify_strict` accepts is accepted here. A batch passes exactly
//! when every member passes (up to probability 2⁻¹²⁸ per forged batch, with coefficients
//! derived from a blake3 transcript of the whole batch).

use crate::bytes::fixed_bytes;
use curve25519_dalek::{
    constants::ED25519_BASEPOINT_POINT,
    edwards::{CompressedEdwardsY, EdwardsPoint},
    scalar::Scalar,
    traits::{IsIdentity, VartimeMultiscalarMul},
};
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha512};

fixed_bytes!(
    /// An Ed25519 public key (compressed Edwards point).
    PublicKey,
    32
);

fixed_bytes!(
    /// An Ed25519 signature (`R ‖ s`).
    Signature,
    64
);

/// Why a signature or key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key is not a valid point, or is of small order.
    #[error("invalid public key")]
    BadKey,
    /// `R` is not a point or is of small order, or `s` is not canonical.
    #[error("malformed signature")]
    Malformed,
    /// The verification equation does not hold.
    #[error("signature does not verify")]
    Invalid,
}

impl PublicKey {
    /// Decodes the key to a curve point, refusing invalid and small-order keys.
    pub fn point(&self) -> Result<EdwardsPoint, SignatureError> {
        let p = CompressedEdwardsY(self.0)
            .decompress()
            .ok_or(SignatureError::BadKey)?;
        if p.is_small_order() {
            return Err(SignatureError::BadKey);
        }
        Ok(p)
    }

    /// Whether this is a usable key (a point of large order). Keys are checked when they
    /// enter genesis or governance, so a weak key can never be a member. Checked through
    /// the decompression cache: decoding a stored validator set checks its keys, and proof
    /// bundles decode one each (a decompression per validator per bundle, 8 % of the CPU of
    /// a node serving proofs, before the cache).
    pub fn is_valid(&self) -> bool {
        cached_point(self).is_ok()
    }

    /// Verifies `signature` over `domain ‖ message`.
    pub fn verify(
        &self,
        domain: &[u8],
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        single_equation_holds(&Prepared::new(self, domain, message, signature)?)
    }
}

/// Decompressed public keys, so that a key that signs often (a member key, a validator) is
/// decompressed once rather than per signature (decompression is a field square root:
/// about a fifth of a verification). Bounded by [`KEY_CACHE_MAX`]; cleared when full.
static KEY_CACHE: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<[u8; 32], EdwardsPoint>>,
> = std::sync::LazyLock::new(Default::default);

/// Most keys held in the decompression cache.
pub const KEY_CACHE_MAX: usize = 65_536;

/// [`PublicKey::point`] through the cache. Only valid keys are cached, so the verdict is
/// the same as without it.
fn cached_point(key: &PublicKey) -> Result<EdwardsPoint, SignatureError> {
    if let Ok(cache) = KEY_CACHE.read()
        && let Some(p) = cache.get(&key.0)
    {
        return Ok(*p);
    }
    let p = key.point()?;
    if let Ok(mut cache) = KEY_CACHE.write() {
        if cache.len() >= KEY_CACHE_MAX {
            cache.clear();
        }
        cache.insert(key.0, p);
    }
    Ok(p)
}

/// A secret signing key. Zeroised on drop; never serialised except into a key file.
#[derive(Clone)]
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        Ok(Self::from_seed(&seed))
    }

    /// The key for a 32-byte seed (RFC 8032 secret key).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `domain ‖ message`.
    pub fn sign(&self, domain: &[u8], message: &[u8]) -> Signature {
        let mut m = Vec::with_capacity(domain.len() + message.len());
        m.extend_from_slice(domain);
        m.extend_from_slice(message);
        Signature(self.0.sign(&m).to_bytes())
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public={})", self.public_key())
    }
}

/// A signature decoded and hashed, ready for the verification equation.
struct Prepared {
    a_bytes: [u8; 32],
    r_bytes: [u8; 32],
    a: EdwardsPoint,
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

impl Prepared {
    fn new(
        key: &PublicKey,
        domain: &[u8],
        message: &[u8],
        sig: &Signature,
    ) -> Result<Self, SignatureError> {
        let a = cached_point(key)?;
        let mut r_bytes = [0u8; 32];
        r_bytes.copy_from_slice(&sig.0[..32]);
        let mut s_bytes = [0u8; 32];
        s_bytes.copy_from_slice(&sig.0[32..]);
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))
            .ok_or(SignatureError::Malformed)?;
        let r = CompressedEdwardsY(r_bytes)
            .decompress()
            .ok_or(SignatureError::Malformed)?;
        if r.is_small_order() {
            return Err(SignatureError::Malformed);
        }
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(key.0);
        h.update(domain);
        h.update(message);
        let k = Scalar::from_hash(h);
        Ok(Self {
            a_bytes: key.0,
            r_bytes,
            a,
            r,
            s,
            k,
        })
    }
}

/// Collects signatures and verifies them together, which costs about half as much per
/// signature as verifying them one by one. The verdict for each item is the same as
/// [`PublicKey::verify`] would give.
#[derive(Default)]
pub struct BatchVerifier {
    items: Vec<Result<Prepared, SignatureError>>,
}

impl BatchVerifier {
    /// An empty batch with room for `n` items.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            items: Vec::with_capacity(n),
        }
    }

    /// Adds one signature over `domain ‖ message`.
    pub fn push(&mut self, key: &PublicKey, domain: &[u8], message: &[u8], sig: &Signature) {
        self.items.push(Prepared::new(key, domain, message, sig));
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Verifies every item; the result at position `i` is the verdict on the `i`-th push.
    pub fn verify(self) -> Vec<Result<(), SignatureError>> {
        let ok: Vec<&Prepared> = self.items.iter().filter_map(|r| r.as_ref().ok()).collect();
        let all_pass = ok.is_empty() || batch_equation_holds(&ok);
        self.items
            .iter()
            .map(|item| match item {
                Err(e) => Err(*e),
                Ok(_) if all_pass => Ok(()),
                Ok(p) => single_equation_holds(p),
            })
            .collect()
    }
}

fn single_equation_holds(p: &Prepared) -> Result<(), SignatureError> {
    let check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &-p.a, &p.s) - p.r;
    if check.mul_by_cofactor().is_identity() {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

/// `[8](−(Σ zᵢsᵢ)B + Σ zᵢRᵢ + Σ zᵢkᵢAᵢ) = 𝒪` with 128-bit coefficients `zᵢ` drawn from a
/// blake3 transcript of every input, so a forger cannot choose them.
///
/// Terms of one public key are gathered into one: `Σ zᵢkᵢA` over the signatures of `A` is a
/// single point of the multiscalar multiplication. The equation is the same; a batch in
/// which a few member keys sign most records (the usual case: a department's systems sign
/// with one key) needs about half as many points.
fn batch_equation_holds(items: &[&Prepared]) -> bool {
    if items.len() == 1 {
        return single_equation_holds(items[0]).is_ok();
    }
    let mut transcript = blake3::Hasher::new();
    transcript.update(b"govledger/batch-verify/v1");
    for p in items {
        transcript.update(&p.r_bytes);
        transcript.update(&p.a_bytes);
        transcript.update(p.k.as_bytes());
        transcript.update(p.s.as_bytes());
    }
    let mut xof = transcript.finalize_xof();
    let mut b_coeff = Scalar::ZERO;
    let mut scalars = Vec::with_capacity(1 + 2 * items.len());
    let mut points = Vec::with_capacity(1 + 2 * items.len());
    scalars.push(Scalar::ZERO); // replaced below
    points.push(ED25519_BASEPOINT_POINT);
    // Each distinct key's accumulated coefficient, in first-seen order.
    let mut key_slot: std::collections::BTreeMap<[u8; 32], usize> = Default::default();
    let mut key_scalars: Vec<Scalar> = Vec::new();
    let mut key_points: Vec<EdwardsPoint> = Vec::new();
    for p in items {
        let mut zb = [0u8; 32];
        xof.fill(&mut zb[..16]);
        let z = Scalar::from_bytes_mod_order(zb);
        b_coeff += z * p.s;
        scalars.push(-z);
        points.push(p.r);
        let slot = *key_slot.entry(p.a_bytes).or_insert_with(|| {
            key_scalars.push(Scalar::ZERO);
            key_points.push(p.a);
            key_points.len() - 1
        });
        key_scalars[slot] -= z * p.k;
    }
    scalars[0] = b_coeff;
    scalars.extend(key_scalars);
    points.extend(key_points);
    // Σ zᵢ([sᵢ]B − Rᵢ − [kᵢ]Aᵢ)
    let sum = EdwardsPoint::vartime_multiscalar_mul(scalars, points);
    sum.mul_by_cofactor().is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> SecretKey {
        SecretKey::from_seed(&[i; 32])
    }

    #[test]
    fn sign_and_verify() {
        let k = key(1);
        let sig = k.sign(b"dom", b"msg");
        assert_eq!(k.public_key().verify(b"dom", b"msg", &sig), Ok(()));
        assert_eq!(
            k.public_key().verify(b"dom", b"msh", &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            k.public_key().verify(b"dox", b"msg", &sig),
            Err(SignatureError::Invalid)
        );
        assert!(key(2).public_key().verify(b"dom", b"msg", &sig).is_err());
    }

    #[test]
    fn agrees_with_dalek_strict_on_honest_signatures() {
        for i in 0..20u8 {
            let k = key(i);
            let msg = vec![i; i as usize * 7];
            let sig = k.sign(b"", &msg);
            let vk = ed25519_dalek::VerifyingKey::from_bytes(&k.public_key().0).unwrap();
            let dsig = ed25519_dalek::Signature::from_bytes(&sig.0);
            assert!(vk.verify_strict(&msg, &dsig).is_ok());
            assert!(k.public_key().verify(b"", &msg, &sig).is_ok());
        }
    }

    #[test]
    fn non_canonical_s_is_refused() {
        let k = key(3);
        let mut sig = k.sign(b"d", b"m");
        // s + ℓ is a non-canonical encoding of the same scalar.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (s, l) in sig.0[32..].iter_mut().zip(L) {
            let v = *s as u16 + l as u16 + carry;
            *s = v as u8;
            carry = v >> 8;
        }
        assert_eq!(
            k.public_key().verify(b"d", b"m", &sig),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn small_order_key_is_refused() {
        // The identity point (y = 1) is of small order.
        let mut id = [0u8; 32];
        id[0] = 1;
        assert!(!PublicKey(id).is_valid());
        assert!(key(1).public_key().is_valid());
    }

    #[test]
    fn batch_matches_single_verdicts() {
        let mut b = BatchVerifier::default();
        let mut expected = vec![];
        for i in 0..16u8 {
            let k = key(i);
            let msg = [i; 10];
            let mut sig = k.sign(b"d", &msg);
            let bad = i % 5 == 3;
            if bad {
                sig.0[5] ^= 1;
            }
            expected.push(k.public_key().verify(b"d", &msg, &sig));
            b.push(&k.public_key(), b"d", &msg, &sig);
        }
        let got = b.verify();
        assert_eq!(got, expected);
        assert!(got.iter().filter(|r| r.is_err()).count() >= 3);
    }

    /// Terms of a repeated key are gathered; a bad signature among many of the same key
    /// must still fail the batch and be named by the fallback.
    #[test]
    fn batch_with_repeated_keys_matches_single_verdicts() {
        let keys = [key(1), key(2), key(3)];
        for bad_at in [None, Some(0usize), Some(17), Some(63)] {
            let mut b = BatchVerifier::default();
            let mut expected = vec![];
            for i in 0..64usize {
                let k = &keys[i % 3];
                let msg = (i as u64).to_le_bytes();
                let mut sig = k.sign(b"d", &msg);
                if bad_at == Some(i) {
                    // A valid signature of the same key over another message.
                    sig = k.sign(b"d", b"another message");
                }
                expected.push(k.public_key().verify(b"d", &msg, &sig));
                b.push(&k.public_key(), b"d", &msg, &sig);
            }
            assert_eq!(b.verify(), expected, "bad_at={bad_at:?}");
            assert_eq!(
                expected.iter().filter(|r| r.is_err()).count(),
                usize::from(bad_at.is_some())
            );
        }
    }

    #[test]
    fn batch_all_valid() {
        let mut b = BatchVerifier::with_capacity(64);
        for i in 0..64u8 {
            let k = key(i);
            b.push(&k.public_key(), b"x", &[i], &k.sign(b"x", &[i]));
        }
        assert!(b.verify().iter().all(|r| r.is_ok()));
    }
}
