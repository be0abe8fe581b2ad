//! Creating files and directories so that they survive a power cut.
//!
//! `fsync` of a file makes its bytes durable, not its name: the directory entry is durable
//! only once the directory itself is synced. These helpers do both (the power-loss test,
//! tests/tests/powerloss.rs, fails without them: the dev chain's files vanished).

use std::io::Write;
use std::path::Path;

/// Syncs a directory (its entries: files created, renamed or removed in it).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Syncs the directory holding `path` (the current directory for a bare name).
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => sync_dir(Path::new(".")),
    }
}

/// `create_dir_all`, then syncs the parent of every directory it created, so the whole
/// path survives a power cut.
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut p = path;
    while !p.as_os_str().is_empty() && !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    std::fs::create_dir_all(path)?;
    // Deepest first: each new directory's entry in its parent.
    for dir in &missing {
        sync_parent(dir)?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically and durably: a temporary file beside it, synced,
/// renamed over `path`, and the directory synced. After a power cut `path` holds either
/// the old contents (or nothing) or all of the new ones.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_parent(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_nested_directories_and_replaces_files() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all(&deep).unwrap();
        let f = deep.join("x.json");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert!(!deep.join("x.tmp").exists());
    }
}
