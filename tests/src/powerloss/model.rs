//! The file system's contents as plain data: for every file its volatile bytes (what a
//! reader sees now) and its durable bytes (as of its last `fsync`/`fdatasync`); for every
//! directory its volatile entries and its durable entries (as of its last `fsync`). A power
//! cut replaces the volatile view with the durable one. No FUSE here, so it is easy to test.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};

/// Inode number of the root directory (FUSE's).
pub const ROOT_INO: u64 = 1;

/// Bound on one file's size: a runaway writer gets `EFBIG`, not the test machine's memory.
pub const FILE_BYTES_MAX: u64 = 1 << 30;

/// Bound on the number of inodes (files and directories) alive at once.
pub const INODES_MAX: usize = 100_000;

/// Why an operation failed (each maps to one errno).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    /// `ENOENT`.
    NotFound,
    /// `EEXIST`.
    Exists,
    /// `ENOTDIR`.
    NotDir,
    /// `EISDIR`.
    IsDir,
    /// `ENOTEMPTY`.
    NotEmpty,
    /// `EFBIG`.
    TooBig,
    /// `ENOSPC` (too many inodes).
    NoSpace,
    /// `EINVAL`.
    Invalid,
}

/// A regular file.
#[derive(Debug, Default, Clone)]
pub struct FileData {
    /// What readers see.
    pub data: Vec<u8>,
    /// What survives a power cut.
    durable: Vec<u8>,
    /// Byte ranges written since the last sync (copied into `durable` at the next one).
    dirty: Vec<(u64, u64)>,
    /// The smallest length the file had since the last sync (a truncation).
    min_len: u64,
}

impl FileData {
    fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), FsError> {
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|e| *e <= FILE_BYTES_MAX)
            .ok_or(FsError::TooBig)?;
        if end as usize > self.data.len() {
            self.data.resize(end as usize, 0);
        }
        self.data[offset as usize..end as usize].copy_from_slice(bytes);
        self.dirty.push((offset, end));
        Ok(())
    }

    fn set_len(&mut self, len: u64) -> Result<(), FsError> {
        if len > FILE_BYTES_MAX {
            return Err(FsError::TooBig);
        }
        let old = self.data.len() as u64;
        self.data.resize(len as usize, 0);
        if len < old {
            self.min_len = self.min_len.min(len);
        } else if len > old {
            self.dirty.push((old, len));
        }
        Ok(())
    }

    /// `fsync`: the current bytes become durable (only the changed ranges are copied).
    fn sync(&mut self) {
        self.durable.truncate(self.min_len as usize);
        self.durable.resize(self.data.len(), 0);
        let len = self.data.len() as u64;
        for (start, end) in self.dirty.drain(..) {
            let (start, end) = (start.min(len) as usize, end.min(len) as usize);
            self.durable[start..end].copy_from_slice(&self.data[start..end]);
        }
        self.min_len = len;
    }

    fn revert(&mut self) {
        self.data = self.durable.clone();
        self.dirty.clear();
        self.min_len = self.data.len() as u64;
    }

    /// Bytes written but not synced (an upper bound: ranges may overlap).
    fn unsynced_bytes(&self) -> u64 {
        self.dirty.iter().map(|(s, e)| e - s).sum::<u64>()
            + (self.durable.len() as u64).saturating_sub(self.min_len)
    }
}

/// A directory.
#[derive(Debug, Default, Clone)]
pub struct DirData {
    /// What readers see.
    pub entries: BTreeMap<OsString, u64>,
    /// What survives a power cut.
    durable: BTreeMap<OsString, u64>,
    /// The parent directory (for `..`).
    pub parent: u64,
}

/// What an inode is.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A regular file.
    File(FileData),
    /// A directory.
    Dir(DirData),
}

/// One inode.
#[derive(Debug, Clone)]
pub struct Inode {
    /// File or directory.
    pub kind: Kind,
    /// Permission bits.
    pub perm: u16,
    /// Modification time (seconds since the epoch; informational).
    pub mtime_s: u64,
}

impl Inode {
    /// The file's data, if a file.
    pub fn file(&self) -> Option<&FileData> {
        match &self.kind {
            Kind::File(f) => Some(f),
            Kind::Dir(_) => None,
        }
    }

    /// The directory, if a directory.
    pub fn dir(&self) -> Option<&DirData> {
        match &self.kind {
            Kind::Dir(d) => Some(d),
            Kind::File(_) => None,
        }
    }

    /// Size in bytes (files) or entries (directories).
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::File(f) => f.data.len() as u64,
            Kind::Dir(d) => d.entries.len() as u64,
        }
    }
}

/// Counters, for the test's report and for checking that syncs reach the file system.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// `fsync`/`fdatasync` calls on files.
    pub file_syncs: u64,
    /// `fsync` calls on directories.
    pub dir_syncs: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Power cuts so far.
    pub power_cuts: u64,
    /// Bytes dropped by power cuts (written, not synced).
    pub bytes_dropped: u64,
    /// Directory entries dropped by power cuts (created or removed, dir not synced).
    pub entries_dropped: u64,
}

/// The whole file system.
#[derive(Debug)]
pub struct Model {
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    /// Counters.
    pub stats: Stats,
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    /// An empty file system (its root directory is durable from the start).
    pub fn new() -> Self {
        let mut inodes = HashMap::new();
        inodes.insert(
            ROOT_INO,
            Inode {
                kind: Kind::Dir(DirData {
                    parent: ROOT_INO,
                    ..DirData::default()
                }),
                perm: 0o755,
                mtime_s: now_s(),
            },
        );
        Model {
            inodes,
            next_ino: ROOT_INO + 1,
            stats: Stats::default(),
        }
    }

    /// The inode `ino`.
    pub fn get(&self, ino: u64) -> Result<&Inode, FsError> {
        self.inodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn get_mut(&mut self, ino: u64) -> Result<&mut Inode, FsError> {
        self.inodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirData, FsError> {
        match &mut self.get_mut(ino)?.kind {
            Kind::Dir(d) => Ok(d),
            Kind::File(_) => Err(FsError::NotDir),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileData, FsError> {
        match &mut self.get_mut(ino)?.kind {
            Kind::File(f) => Ok(f),
            Kind::Dir(_) => Err(FsError::IsDir),
        }
    }

    /// The number of (volatile) names an inode has; directories count `.` and subdirs.
    pub fn nlink(&self, ino: u64) -> u32 {
        match self.inodes.get(&ino).map(|i| &i.kind) {
            Some(Kind::Dir(d)) => {
                2 + d
                    .entries
                    .values()
                    .filter(|c| matches!(self.inodes.get(c).map(|i| &i.kind), Some(Kind::Dir(_))))
                    .count() as u32
            }
            Some(Kind::File(_)) => self
                .inodes
                .values()
                .filter_map(Inode::dir)
                .map(|d| d.entries.values().filter(|c| **c == ino).count() as u32)
                .sum(),
            None => 0,
        }
    }

    /// Looks `name` up in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, FsError> {
        let dir = self.get(parent)?.dir().ok_or(FsError::NotDir)?;
        dir.entries.get(name).copied().ok_or(FsError::NotFound)
    }

    fn add_inode(
        &mut self,
        parent: u64,
        name: &OsStr,
        kind: Kind,
        perm: u16,
    ) -> Result<u64, FsError> {
        if self.inodes.len() >= INODES_MAX {
            return Err(FsError::NoSpace);
        }
        let dir = self.dir_mut(parent)?;
        if dir.entries.contains_key(name) {
            return Err(FsError::Exists);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.dir_mut(parent)?
            .entries
            .insert(name.to_os_string(), ino);
        self.inodes.insert(
            ino,
            Inode {
                kind,
                perm,
                mtime_s: now_s(),
            },
        );
        Ok(ino)
    }

    /// Creates an empty file.
    pub fn create_file(&mut self, parent: u64, name: &OsStr, perm: u16) -> Result<u64, FsError> {
        self.add_inode(parent, name, Kind::File(FileData::default()), perm)
    }

    /// Creates an empty directory.
    pub fn mkdir(&mut self, parent: u64, name: &OsStr, perm: u16) -> Result<u64, FsError> {
        let kind = Kind::Dir(DirData {
            parent,
            ..DirData::default()
        });
        self.add_inode(parent, name, kind, perm)
    }

    /// Removes a file's name.
    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        let ino = self.lookup(parent, name)?;
        if self.get(ino)?.dir().is_some() {
            return Err(FsError::IsDir);
        }
        self.dir_mut(parent)?.entries.remove(name);
        // The inode stays: a durable entry may still name it, and open handles may use it.
        Ok(())
    }

    /// Removes an empty directory.
    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Result<(), FsError> {
        let ino = self.lookup(parent, name)?;
        let dir = self.get(ino)?.dir().ok_or(FsError::NotDir)?;
        if !dir.entries.is_empty() {
            return Err(FsError::NotEmpty);
        }
        self.dir_mut(parent)?.entries.remove(name);
        Ok(())
    }

    /// Renames; `no_replace` is `RENAME_NOREPLACE`.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), FsError> {
        let ino = self.lookup(parent, name)?;
        self.dir_mut(new_parent)?;
        if let Ok(target) = self.lookup(new_parent, new_name) {
            if target == ino {
                return Ok(());
            }
            if no_replace {
                return Err(FsError::Exists);
            }
            let moving_dir = self.get(ino)?.dir().is_some();
            match (moving_dir, self.get(target)?.dir()) {
                (true, Some(d)) if !d.entries.is_empty() => return Err(FsError::NotEmpty),
                (true, None) => return Err(FsError::NotDir),
                (false, Some(_)) => return Err(FsError::IsDir),
                _ => {}
            }
        }
        if let Kind::Dir(d) = &mut self.get_mut(ino)?.kind {
            d.parent = new_parent;
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(new_parent)?
            .entries
            .insert(new_name.to_os_string(), ino);
        Ok(())
    }

    /// A new name for a file.
    pub fn link(&mut self, ino: u64, new_parent: u64, new_name: &OsStr) -> Result<(), FsError> {
        if self.get(ino)?.dir().is_some() {
            return Err(FsError::IsDir);
        }
        let dir = self.dir_mut(new_parent)?;
        if dir.entries.contains_key(new_name) {
            return Err(FsError::Exists);
        }
        dir.entries.insert(new_name.to_os_string(), ino);
        Ok(())
    }

    /// Reads up to `size` bytes at `offset`.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], FsError> {
        let f = self.get(ino)?.file().ok_or(FsError::IsDir)?;
        let start = (offset as usize).min(f.data.len());
        let end = start.saturating_add(size as usize).min(f.data.len());
        Ok(&f.data[start..end])
    }

    /// Writes `bytes` at `offset` (volatile until [`Model::fsync`]).
    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<(), FsError> {
        self.file_mut(ino)?.write(offset, bytes)?;
        self.stats.bytes_written += bytes.len() as u64;
        if let Ok(i) = self.get_mut(ino) {
            i.mtime_s = now_s();
        }
        Ok(())
    }

    /// Truncates or extends a file (volatile until [`Model::fsync`]).
    pub fn set_len(&mut self, ino: u64, len: u64) -> Result<(), FsError> {
        self.file_mut(ino)?.set_len(len)
    }

    /// Sets the permission bits.
    pub fn set_perm(&mut self, ino: u64, perm: u16) -> Result<(), FsError> {
        self.get_mut(ino)?.perm = perm;
        Ok(())
    }

    /// `fsync`/`fdatasync` of a file, or `fsync` of a directory: its contents become
    /// durable. A directory's sync covers its entries only, not the files they name.
    pub fn fsync(&mut self, ino: u64) -> Result<(), FsError> {
        match &mut self.get_mut(ino)?.kind {
            Kind::File(f) => {
                f.sync();
                self.stats.file_syncs += 1;
            }
            Kind::Dir(d) => {
                d.durable = d.entries.clone();
                self.stats.dir_syncs += 1;
            }
        }
        Ok(())
    }

    /// A power cut: every file and directory goes back to its durable contents; inodes no
    /// durable entry reaches are gone.
    pub fn power_cut(&mut self) {
        self.stats.power_cuts += 1;
        for inode in self.inodes.values_mut() {
            match &mut inode.kind {
                Kind::File(f) => {
                    self.stats.bytes_dropped += f.unsynced_bytes();
                    f.revert();
                }
                Kind::Dir(d) => {
                    let changed = d
                        .entries
                        .iter()
                        .filter(|(k, v)| d.durable.get(*k) != Some(v))
                        .count()
                        + d.durable
                            .keys()
                            .filter(|k| !d.entries.contains_key(*k))
                            .count();
                    self.stats.entries_dropped += changed as u64;
                    d.entries = d.durable.clone();
                }
            }
        }
        // Keep what the root reaches; fix each directory's parent.
        let mut reached: HashMap<u64, u64> = HashMap::from([(ROOT_INO, ROOT_INO)]);
        let mut todo = vec![ROOT_INO];
        while let Some(dir) = todo.pop() {
            let children: Vec<u64> = self
                .inodes
                .get(&dir)
                .and_then(Inode::dir)
                .map(|d| d.entries.values().copied().collect())
                .unwrap_or_default();
            for child in children {
                if let std::collections::hash_map::Entry::Vacant(e) = reached.entry(child) {
                    e.insert(dir);
                    todo.push(child);
                }
            }
        }
        self.inodes.retain(|ino, _| reached.contains_key(ino));
        for (ino, inode) in self.inodes.iter_mut() {
            if let Kind::Dir(d) = &mut inode.kind {
                d.parent = reached[ino];
            }
        }
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn unsynced_bytes_and_entries_are_dropped() {
        let mut m = Model::new();
        let d = m.mkdir(ROOT_INO, n("d"), 0o755).unwrap();
        m.fsync(ROOT_INO).unwrap();
        let f = m.create_file(d, n("f"), 0o644).unwrap();
        m.write(f, 0, b"hello").unwrap();
        m.fsync(f).unwrap();
        m.write(f, 5, b" world").unwrap();
        // The file is synced, its directory entry is not: the file is gone.
        let mut lost = Model::new();
        std::mem::swap(&mut lost, &mut m);
        lost.power_cut();
        assert_eq!(
            lost.lookup(lost.lookup(ROOT_INO, n("d")).unwrap(), n("f")),
            Err(FsError::NotFound)
        );
        // With the directory synced, the synced prefix survives, the rest does not.
        let mut m = Model::new();
        let d = m.mkdir(ROOT_INO, n("d"), 0o755).unwrap();
        m.fsync(ROOT_INO).unwrap();
        let f = m.create_file(d, n("f"), 0o644).unwrap();
        m.fsync(d).unwrap();
        m.write(f, 0, b"hello").unwrap();
        m.fsync(f).unwrap();
        m.write(f, 5, b" world").unwrap();
        m.write(f, 0, b"J").unwrap();
        m.power_cut();
        let f = m
            .lookup(m.lookup(ROOT_INO, n("d")).unwrap(), n("f"))
            .unwrap();
        assert_eq!(m.read(f, 0, 100).unwrap(), b"hello");
        assert!(m.stats.bytes_dropped >= 7);
    }

    #[test]
    fn truncation_and_rename_follow_the_last_sync() {
        let mut m = Model::new();
        let f = m.create_file(ROOT_INO, n("tmp"), 0o644).unwrap();
        m.write(f, 0, b"0123456789").unwrap();
        m.fsync(f).unwrap();
        m.fsync(ROOT_INO).unwrap();
        m.set_len(f, 3).unwrap();
        m.write(f, 5, b"ab").unwrap();
        m.fsync(f).unwrap();
        assert_eq!(m.read(f, 0, 100).unwrap(), b"012\0\0ab");
        m.rename(ROOT_INO, n("tmp"), ROOT_INO, n("final"), false)
            .unwrap();
        m.power_cut();
        // The rename was not synced: the old name, with the synced bytes.
        assert_eq!(m.lookup(ROOT_INO, n("final")), Err(FsError::NotFound));
        let f = m.lookup(ROOT_INO, n("tmp")).unwrap();
        assert_eq!(m.read(f, 0, 100).unwrap(), b"012\0\0ab");
        m.rename(ROOT_INO, n("tmp"), ROOT_INO, n("final"), false)
            .unwrap();
        m.fsync(ROOT_INO).unwrap();
        m.power_cut();
        assert!(m.lookup(ROOT_INO, n("final")).is_ok());
        assert_eq!(m.lookup(ROOT_INO, n("tmp")), Err(FsError::NotFound));
    }

    #[test]
    fn an_unlinked_file_comes_back_if_its_removal_was_not_synced() {
        let mut m = Model::new();
        let f = m.create_file(ROOT_INO, n("f"), 0o644).unwrap();
        m.write(f, 0, b"x").unwrap();
        m.fsync(f).unwrap();
        m.fsync(ROOT_INO).unwrap();
        m.unlink(ROOT_INO, n("f")).unwrap();
        m.power_cut();
        let f = m.lookup(ROOT_INO, n("f")).unwrap();
        assert_eq!(m.read(f, 0, 10).unwrap(), b"x");
        m.unlink(ROOT_INO, n("f")).unwrap();
        m.fsync(ROOT_INO).unwrap();
        m.power_cut();
        assert!(m.get(f).is_err(), "unreachable inodes are collected");
    }
}
