//! A file system that forgets what was not synced, for power-loss tests.
//!
//! Killing a process (even with SIGKILL) keeps everything it wrote in the kernel's page
//! cache, so a crash test built on it passes whether or not the program calls `fsync`.
//! [`PowerLossFs`] is an in-memory FUSE file system served by the test process: it keeps,
//! per file, the bytes as of the file's last `fsync`/`fdatasync` and, per directory, the
//! entries as of the directory's last `fsync` ([`model`]). [`PowerLossFs::power_cut`]
//! unmounts it (the processes using it must be dead: kill them first), replaces every file
//! and directory by its durable contents, and mounts it again on the same path.
//!
//! The model is the strict POSIX one: `fsync` of a file does not make its name durable,
//! only `fsync` of the directory does (ext4 and XFS often persist more; a program that
//! survives this model survives them). Writes are sent to the file system as they happen
//! (no FUSE write-back cache), so nothing is held in the kernel that a cut would lose.

pub mod model;

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use model::{FsError, Kind, Model, Stats};
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the kernel may cache names and attributes. Every change goes through the
/// kernel itself, and a power cut remounts (dropping the kernel's caches), so the
/// caches cannot go stale.
const CACHE_TTL: Duration = Duration::from_secs(1);

/// Why the file system cannot be used here.
pub fn unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse does not exist (no FUSE in this kernel or container)".into());
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && which("fusermount3").is_none() {
        return Some(
            "not root and no fusermount3 (Debian package fuse3; scripts/setup.sh installs it)"
                .into(),
        );
    }
    None
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.exists())
}

/// The mounted file system. Dropping it unmounts it.
pub struct PowerLossFs {
    model: Arc<Mutex<Model>>,
    mountpoint: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl PowerLossFs {
    /// Mounts an empty file system on `mountpoint` (an existing empty directory).
    pub fn mount(mountpoint: &Path) -> io::Result<Self> {
        let model = Arc::new(Mutex::new(Model::new()));
        let session = Some(spawn(&model, mountpoint)?);
        Ok(PowerLossFs {
            model,
            mountpoint: mountpoint.to_path_buf(),
            session,
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// Cuts the power: unmounts, drops every unsynced write and directory change, and
    /// mounts the durable contents again. Every process using the file system must have
    /// exited (SIGKILL it first, as a power cut would).
    pub fn power_cut(&mut self) -> io::Result<()> {
        if let Some(s) = self.session.take() {
            s.umount_and_join()?;
        }
        lock(&self.model).power_cut();
        self.session = Some(spawn(&self.model, &self.mountpoint)?);
        Ok(())
    }

    /// The counters so far.
    pub fn stats(&self) -> Stats {
        lock(&self.model).stats
    }
}

impl Drop for PowerLossFs {
    fn drop(&mut self) {
        if let Some(s) = self.session.take()
            && let Err(e) = s.umount_and_join()
        {
            eprintln!(
                "powerloss: cannot unmount {}: {e}",
                self.mountpoint.display()
            );
        }
    }
}

fn spawn(model: &Arc<Mutex<Model>>, mountpoint: &Path) -> io::Result<fuser::BackgroundSession> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("govledger-powerloss".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    fuser::spawn_mount(Adapter(model.clone()), mountpoint, &config)
}

fn lock(m: &Mutex<Model>) -> MutexGuard<'_, Model> {
    // A panic in one request must not wedge the others (the test reports it anyway).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The FUSE side: translates requests to [`Model`] calls.
struct Adapter(Arc<Mutex<Model>>);

fn errno(e: FsError) -> Errno {
    match e {
        FsError::NotFound => Errno::ENOENT,
        FsError::Exists => Errno::EEXIST,
        FsError::NotDir => Errno::ENOTDIR,
        FsError::IsDir => Errno::EISDIR,
        FsError::NotEmpty => Errno::ENOTEMPTY,
        FsError::TooBig => Errno::EFBIG,
        FsError::NoSpace => Errno::ENOSPC,
        FsError::Invalid => Errno::EINVAL,
    }
}

fn attr(m: &Model, ino: u64) -> Result<FileAttr, FsError> {
    let inode = m.get(ino)?;
    let time = UNIX_EPOCH + Duration::from_secs(inode.mtime_s);
    let size = inode.size();
    Ok(FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind: match inode.kind {
            Kind::File(_) => FileType::RegularFile,
            Kind::Dir(_) => FileType::Directory,
        },
        perm: inode.perm,
        nlink: m.nlink(ino),
        // SAFETY: getuid/getgid have no preconditions.
        uid: unsafe { libc::getuid() },
        gid: unsafe { libc::getgid() },
        rdev: 0,
        blksize: 4096,
        flags: 0,
    })
}

fn perm_of(mode: u32, umask: u32) -> u16 {
    ((mode & !umask) & 0o7777) as u16
}

impl Filesystem for Adapter {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let m = lock(&self.0);
        match m.lookup(parent.0, name).and_then(|ino| attr(&m, ino)) {
            Ok(a) => reply.entry(&CACHE_TTL, &a, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let m = lock(&self.0);
        match attr(&m, ino.0) {
            Ok(a) => reply.attr(&CACHE_TTL, &a),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut m = lock(&self.0);
        let r = (|| {
            if let Some(mode) = mode {
                m.set_perm(ino.0, perm_of(mode, 0))?;
            }
            if let Some(size) = size {
                m.set_len(ino.0, size)?;
            }
            attr(&m, ino.0)
        })();
        match r {
            Ok(a) => reply.attr(&CACHE_TTL, &a),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(Errno::EPERM);
        }
        let mut m = lock(&self.0);
        match m
            .create_file(parent.0, name, perm_of(mode, umask))
            .and_then(|ino| attr(&m, ino))
        {
            Ok(a) => reply.entry(&CACHE_TTL, &a, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut m = lock(&self.0);
        match m
            .mkdir(parent.0, name, perm_of(mode, umask))
            .and_then(|ino| attr(&m, ino))
        {
            Ok(a) => reply.entry(&CACHE_TTL, &a, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match lock(&self.0).unlink(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match lock(&self.0).rmdir(parent.0, name) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let bits = flags.bits();
        if bits & !libc::RENAME_NOREPLACE != 0 {
            // RENAME_EXCHANGE and RENAME_WHITEOUT: not needed by the node.
            return reply.error(Errno::EINVAL);
        }
        let no_replace = bits & libc::RENAME_NOREPLACE != 0;
        match lock(&self.0).rename(parent.0, name, newparent.0, newname, no_replace) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut m = lock(&self.0);
        match m
            .link(ino.0, newparent.0, newname)
            .and_then(|()| attr(&m, ino.0))
        {
            Ok(a) => reply.entry(&CACHE_TTL, &a, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match lock(&self.0).get(ino.0) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let m = lock(&self.0);
        match m.read(ino.0, offset, size) {
            Ok(bytes) => reply.data(bytes),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match lock(&self.0).write(ino.0, offset, data) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a sync: nothing becomes durable here.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match lock(&self.0).fsync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let m = lock(&self.0);
        let dir = match m.get(ino.0).map(|i| i.dir()) {
            Ok(Some(d)) => d,
            Ok(None) => return reply.error(Errno::ENOTDIR),
            Err(e) => return reply.error(errno(e)),
        };
        let mut all = vec![
            (ino.0, FileType::Directory, OsStr::new(".")),
            (dir.parent, FileType::Directory, OsStr::new("..")),
        ];
        for (name, child) in &dir.entries {
            let kind = match m.get(*child).map(|i| &i.kind) {
                Ok(Kind::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            all.push((*child, kind, name.as_os_str()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match lock(&self.0).fsync(ino.0) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: free-space checks must not fail the node.
        let blocks = 1 << 24;
        reply.statfs(
            blocks,
            blocks / 2,
            blocks / 2,
            1 << 20,
            1 << 19,
            4096,
            255,
            4096,
        );
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut m = lock(&self.0);
        match m
            .create_file(parent.0, name, perm_of(mode, umask))
            .and_then(|ino| attr(&m, ino))
        {
            Ok(a) => reply.created(
                &CACHE_TTL,
                &a,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let mut m = lock(&self.0);
        let r = match mode {
            // Space reservation only: nothing to do in memory.
            libc::FALLOC_FL_KEEP_SIZE => m.get(ino.0).map(|_| ()),
            0 => {
                let end = offset.saturating_add(length);
                match m.get(ino.0).map(|i| i.size()) {
                    Ok(size) if end > size => m.set_len(ino.0, end),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            _ => return reply.error(Errno::EOPNOTSUPP),
        };
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}
