//! The canonical binary encoding: bincode 2.0.1 in its legacy configuration (little-endian,
//! fixed-width integers, `u64` length prefixes, `u32` enum tags, `u8` option tags).
//!
//! Decoding is strict: it refuses trailing bytes, claimed lengths beyond the input or
//! beyond [`DECODE_BYTES_MAX`], invalid tags, invalid UTF-8, and any input that does not
//! re-encode to exactly the same bytes. So every value has one encoding and every encoding
//! one value, which is what hashing and signing need. The byte layout is documented in
//! `docs/encoding.md`.

use serde::{Serialize, de::DeserializeOwned};

/// The largest input any decoder accepts (a block at the hard size cap, plus headroom).
pub const DECODE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The configuration of every encoding: legacy layout, no limit (encoding is of values we
/// built and bounded ourselves).
fn encode_config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::NoLimit,
> {
    bincode::config::legacy()
}

/// The configuration of a decode with a byte limit of `N`.
///
/// bincode allocates a string's or byte list's claimed length before it reads the bytes,
/// checking the claim only against the configured limit. In the serde path every claim is
/// of bytes that must be present in the input (primitives claim their fixed width, strings
/// and byte lists their length; sequences are pre-allocated by serde's cautious size hint),
/// so a limit of the input's own length refuses a lying length before it allocates. The
/// limit is a type parameter, so it is chosen from power-of-two tiers (see
/// [`decode_prefix_exact`]): a claim can allocate at most twice the input's size.
fn decode_config<const N: usize>() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::Limit<N>,
> {
    bincode::config::legacy().with_limit::<N>()
}

fn decode_limited<const N: usize, T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, decode_config::<N>())
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input is larger than the decoder accepts.
    #[error("input of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit that applied.
        max: usize,
    },
    /// bincode refused the bytes (truncated, bad tag, bad UTF-8, oversized length, ...).
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// The value was decoded but bytes were left over.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The value decodes but re-encodes differently: the input was not canonical.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// A field is longer than its documented bound.
    #[error("field `{field}` is {len} long, the limit is {max}")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// Its length (bytes for strings, items for lists).
        len: usize,
        /// Its bound.
        max: usize,
    },
}

/// Encodes a value canonically.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serialisation into a Vec cannot fail for our types: they contain no maps with
    // non-serialisable keys and nothing exceeds the limit we construct ourselves.
    match bincode::serde::encode_to_vec(value, encode_config()) {
        Ok(v) => v,
        Err(e) => unreachable_encode(e),
    }
}

#[cold]
fn unreachable_encode(e: bincode::error::EncodeError) -> Vec<u8> {
    // Only reachable by constructing in memory a value larger than DECODE_BYTES_MAX, which
    // every constructor in this crate bounds. Fail loudly rather than emit a wrong encoding.
    panic!("canonical encoding failed: {e}")
}

/// Decodes a value, refusing anything that is not its canonical encoding.
pub fn decode<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let value: T = decode_prefix_exact(bytes)?;
    // Canonicality: bincode's legacy configuration is canonical for our types except where
    // a decoder is lenient; re-encoding and comparing rules out every such case at once.
    if encode(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

/// Decodes a value that must use every byte, without the re-encoding check (for callers
/// that re-encode anyway or hash the original bytes, e.g. the store reading its own data).
pub fn decode_prefix_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() > DECODE_BYTES_MAX {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: DECODE_BYTES_MAX,
        });
    }
    // The smallest tier that holds the input (1 KiB .. DECODE_BYTES_MAX).
    const K: usize = 1024;
    let decoded = match bytes.len().max(K).next_power_of_two() {
        n if n <= K => decode_limited::<K, T>(bytes),
        n if n <= 4 * K => decode_limited::<{ 4 * K }, T>(bytes),
        n if n <= 16 * K => decode_limited::<{ 16 * K }, T>(bytes),
        n if n <= 64 * K => decode_limited::<{ 64 * K }, T>(bytes),
        n if n <= 256 * K => decode_limited::<{ 256 * K }, T>(bytes),
        n if n <= 1024 * K => decode_limited::<{ 1024 * K }, T>(bytes),
        n if n <= 4096 * K => decode_limited::<{ 4096 * K }, T>(bytes),
        n if n <= 16384 * K => decode_limited::<{ 16384 * K }, T>(bytes),
        _ => decode_limited::<DECODE_BYTES_MAX, T>(bytes),
    };
    let (value, used): (T, usize) = decoded.map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Checks a string or list length against its bound.
pub fn check_len(field: &'static str, len: usize, max: usize) -> Result<(), DecodeError> {
    if len > max {
        Err(DecodeError::FieldTooLong { field, len, max })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        a: u64,
        b: String,
        c: Option<bool>,
        d: Vec<u16>,
    }

    #[test]
    fn layout_is_fixed_width_little_endian() {
        let s = Sample {
            a: 1,
            b: "hi".into(),
            c: Some(true),
            d: vec![0x0102],
        };
        let bytes = encode(&s);
        let expected: Vec<u8> = [
            &1u64.to_le_bytes()[..],
            &2u64.to_le_bytes(),
            b"hi",
            &[1, 1],
            &1u64.to_le_bytes(),
            &[0x02, 0x01],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode::<Sample>(&bytes).unwrap(), s);
    }

    #[test]
    fn refuses_trailing_truncated_and_bad_tags() {
        let s = Sample {
            a: 7,
            b: String::new(),
            c: None,
            d: vec![],
        };
        let mut bytes = encode(&s);
        bytes.push(0);
        assert_eq!(decode::<Sample>(&bytes), Err(DecodeError::TrailingBytes(1)));
        bytes.pop();
        assert!(matches!(
            decode::<Sample>(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Malformed(_))
        ));
        // Option tag 2 is invalid.
        let mut bad = bytes.clone();
        bad[16] = 2;
        assert!(decode::<Sample>(&bad).is_err());
    }

    #[test]
    fn refuses_huge_claimed_length_without_allocating() {
        // a = 0, b's length claims 2^62 bytes.
        let mut bytes = 0u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(matches!(
            decode::<Sample>(&bytes),
            Err(DecodeError::Malformed(_))
        ));
        // Same for a Vec<u16> claiming 2^40 items.
        let mut bytes = 0u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        assert!(decode::<Sample>(&bytes).is_err());
    }

    #[test]
    fn a_claimed_length_beyond_the_input_is_refused_by_the_limit() {
        // A 100-byte input whose string claims 60 MiB: refused by the limit (before any
        // allocation), not by running out of input after allocating 60 MiB.
        let mut bytes = 7u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&(60u64 << 20).to_le_bytes());
        bytes.resize(100, b'a');
        match decode::<Sample>(&bytes) {
            Err(DecodeError::Malformed(m)) => assert!(m.contains("imit"), "{m}"),
            other => panic!("expected the limit to refuse it, got {other:?}"),
        }
        // The same at every tier boundary: a claim just past the input is refused by the
        // limit wherever the input's size falls, and a value using the whole tier decodes.
        for len in [1000usize, 5000, 70_000, 300_000, 2_000_000] {
            let s = Sample {
                a: 1,
                b: "x".repeat(len),
                c: None,
                d: vec![],
            };
            let bytes = encode(&s);
            assert_eq!(decode::<Sample>(&bytes).unwrap(), s);
            let mut lying = bytes.clone();
            let claim = (bytes.len().next_power_of_two() * 2) as u64;
            lying[8..16].copy_from_slice(&claim.to_le_bytes());
            match decode::<Sample>(&lying) {
                Err(DecodeError::Malformed(m)) => assert!(m.contains("imit"), "{len}: {m}"),
                other => panic!("{len}: expected the limit to refuse it, got {other:?}"),
            }
        }
    }

    #[test]
    fn bool_must_be_zero_or_one() {
        let bytes = encode(&Some(true));
        assert_eq!(bytes, vec![1, 1]);
        assert!(decode::<Option<bool>>(&[1, 2]).is_err());
    }
}
