//! Key files: `{"type": "ed25519", "public_key": "<hex>", "secret_key": "<hex seed>"}`,
//! created with mode 0600 and never overwritten.

use crate::crypto::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Refusing to overwrite.
    #[error("{0} already exists; refusing to overwrite a key file")]
    Exists(String),
    /// Not a key file.
    #[error("{path} is not a govledger key file: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No randomness.
    #[error("cannot get randomness from the operating system: {0}")]
    Random(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: String,
    public_key: PublicKey,
    secret_key: String,
}

/// Bound on a key file's size.
pub const KEY_FILE_BYTES_MAX: u64 = 4096;

/// Reads a key file and checks that its public key matches its secret key.
pub fn read(path: &Path) -> Result<SecretKey, KeyFileError> {
    let p = path.display().to_string();
    let io = |source| KeyFileError::Io {
        path: p.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > KEY_FILE_BYTES_MAX {
        return Err(KeyFileError::Invalid {
            path: p,
            reason: "file is too large".into(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse(&text).map_err(|reason| KeyFileError::Invalid { path: p, reason })
}

/// Parses key file contents.
pub fn parse(text: &str) -> Result<SecretKey, String> {
    let kf: KeyFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if kf.kind != "ed25519" {
        return Err(format!("key type {:?} is not \"ed25519\"", kf.kind));
    }
    let mut seed = [0u8; 32];
    hex::decode_to_slice(kf.secret_key.trim(), &mut seed)
        .map_err(|_| "secret_key must be 64 hex digits".to_string())?;
    let key = SecretKey::from_seed(&seed);
    if key.public_key() != kf.public_key {
        return Err("public_key does not belong to secret_key".into());
    }
    Ok(key)
}

/// The file contents for a key.
pub fn render(key: &SecretKey) -> String {
    let kf = KeyFile {
        kind: "ed25519".into(),
        public_key: key.public_key(),
        secret_key: hex::encode(key.seed()),
    };
    serde_json::to_string_pretty(&kf).unwrap_or_default() + "\n"
}

/// Writes a key to a new file with mode 0600; refuses to overwrite.
pub fn write_new(path: &Path, key: &SecretKey) -> Result<(), KeyFileError> {
    use std::io::Write;
    let p = path.display().to_string();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyFileError::Exists(p.clone())
        } else {
            KeyFileError::Io {
                path: p.clone(),
                source: e,
            }
        }
    })?;
    // The file's name is durable only once its directory is synced too: without it a
    // power cut can leave no key file behind a chain that was started with it.
    f.write_all(render(key).as_bytes())
        .and_then(|_| f.sync_all())
        .and_then(|_| crate::durable::sync_parent(path))
        .map_err(|source| KeyFileError::Io { path: p, source })
}

/// Generates a key and writes it to a new file.
pub fn generate(path: &Path) -> Result<SecretKey, KeyFileError> {
    let key = SecretKey::generate().map_err(|e| KeyFileError::Random(e.to_string()))?;
    write_new(path, &key)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_mode_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        let k = generate(&p).unwrap();
        assert_eq!(read(&p).unwrap().public_key(), k.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(matches!(generate(&p), Err(KeyFileError::Exists(_))));
        std::fs::write(dir.path().join("bad"), "{}").unwrap();
        assert!(matches!(
            read(&dir.path().join("bad")),
            Err(KeyFileError::Invalid { .. })
        ));
        let other = SecretKey::from_seed(&[1; 32]);
        let mut text = render(&k);
        text = text.replace(&k.public_key().to_hex(), &other.public_key().to_hex());
        assert!(parse(&text).is_err());
    }
}
