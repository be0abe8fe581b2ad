//! Fixed-size byte strings (hashes, keys, signatures) with one serde form per format:
//! raw bytes in the canonical binary encoding (no length prefix: the size is part of the
//! type) and lower-case hex in JSON.

/// Defines a `Copy` newtype over `[u8; N]` with hex `Display`/`Debug`/`FromStr` and the
/// dual serde representation described in the module documentation.
macro_rules! fixed_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lower-case hex, the form used in JSON and on the command line.
            pub fn to_hex(&self) -> String {
                $crate::bytes::encode_hex(&self.0)
            }

            /// Parses exactly `2 * LEN` hex digits.
            pub fn from_hex(s: &str) -> Result<Self, $crate::bytes::HexError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s.trim(), &mut out).map_err(|_| $crate::bytes::HexError {
                    what: stringify!($name),
                    expected_len: $len * 2,
                })?;
                Ok(Self(out))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let h = self.to_hex();
                write!(f, "{}({}…)", stringify!($name), &h[..12])
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::bytes::HexError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    use serde::ser::SerializeTuple;
                    let mut t = s.serialize_tuple($len)?;
                    for b in &self.0 {
                        t.serialize_element(b)?;
                    }
                    t.end()
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "{} bytes ({} hex digits)", $len, $len * 2)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_hex(v).map_err(E::custom)
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<$name, A::Error> {
                        let mut out = [0u8; $len];
                        for (i, b) in out.iter_mut().enumerate() {
                            *b = seq
                                .next_element()?
                                .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                        }
                        Ok($name(out))
                    }
                }
                if d.is_human_readable() {
                    d.deserialize_str(V)
                } else {
                    d.deserialize_tuple($len, V)
                }
            }
        }
    };
}

pub(crate) use fixed_bytes;

/// A hex string that is not the hex form of the expected fixed-size value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: expected {expected_len} hex digits")]
pub struct HexError {
    /// The type that was being parsed.
    pub what: &'static str,
    /// How many hex digits it takes.
    pub expected_len: usize,
}

/// Lower-case hex of `bytes`, through a table (the `hex` crate builds its string one
/// `char` at a time through an iterator: 4 % of the CPU of a node serving proof bundles).
pub fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod hex_tests {
    #[test]
    fn encode_hex_matches_the_hex_crate() {
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(super::encode_hex(&all), hex::encode(&all));
        assert_eq!(super::encode_hex(&[]), "");
    }
}
