//! Files the tool reads, writes, locks or deletes under a folder it trusts
//! (the repo root, or the configured worktree base), never through a
//! symlink or `..` that the repo or an agent planted (SPEC §13).
//!
//! A `Dir` is an open directory handle. Every folder below a trusted root is
//! opened one component at a time with `O_NOFOLLOW`, and every file
//! operation is relative to a handle (`openat`, `renameat`, `unlinkat`), so
//! a symlink swapped in after a check cannot redirect it either. Files are
//! read only when they are regular files (never a FIFO, a device or a
//! symlink to `/dev/zero`), and never past a size limit.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// An open directory, and the path it was opened by (for messages).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// `path` relative to `root` when it is inside it, for messages.
pub fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}

fn cstr(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// A relative path of plain components (no `..`, not absolute).
pub fn shareable(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !rel.starts_with(".git")
}

/// Is `name` one plain path component (not empty, `.`, `..`, no `/`, no NUL)?
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

fn check_name(name: &str) -> io::Result<()> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a plain file name"),
        ))
    }
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

/// The error for a symlink where the tool wants a real file or folder.
fn link_refused(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is a symbolic link (or not what it should be); ai-sdlc never follows links inside the board or the worktree base, since one could lead outside the repo. Replace it with a real file or folder",
            path.display()
        ),
    )
}

/// Random hex for temporary names: from the kernel, else from the clock.
fn random_hex() -> String {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), libc::GRND_NONBLOCK) };
    if n != buf.len() as isize {
        let t = crate::time::now_ms() ^ u64::from(std::process::id()) << 40;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        buf = (t ^ u64::from(nanos).rotate_left(17)).to_le_bytes();
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A whole file's bytes, or why not.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// Over the limit: how many bytes it has.
    TooBig(u64),
    NotRegular,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::TooBig(n) => write!(f, "it is too big ({n} bytes)"),
            ReadError::NotRegular => f.write_str(
                "it is not a regular file (a symbolic link, a FIFO or a device); ai-sdlc reads only regular files here",
            ),
        }
    }
}

/// What a folder entry is (a symlink is never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file, with its permission bits.
    File(u32),
    Link,
    Dir,
    Other,
}

impl Dir {
    /// Open a folder the tool trusts (the repo root, a configured absolute
    /// worktree base). Symlinks in *this* path are the user's own.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))?;
        // SAFETY: open with a valid C string; the descriptor is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(last_error());
        }
        Ok(Dir {
            // SAFETY: fd is a fresh descriptor we own.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor, for `flock`.
    pub fn raw_fd(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }

    /// A second handle on the same folder.
    fn reopen(&self) -> io::Result<Dir> {
        // SAFETY: openat of "." relative to our descriptor.
        let fd = unsafe {
            libc::openat(
                self.raw_fd(),
                c".".as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(last_error());
        }
        Ok(Dir {
            // SAFETY: fd is a fresh descriptor we own.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            path: self.path.clone(),
        })
    }

    /// `openat(name)` relative to this folder, never following a symlink
    /// (`O_NOFOLLOW`) and close-on-exec; a symlink (or, for a folder, a
    /// file) where `name` should be is refused with a message.
    fn openat(&self, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<OwnedFd> {
        check_name(name)?;
        let c = cstr(name)?;
        // SAFETY: openat relative to our descriptor with a valid C string.
        let fd = unsafe {
            libc::openat(
                self.raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                libc::c_uint::from(mode),
            )
        };
        if fd < 0 {
            let e = last_error();
            let folder = flags & libc::O_DIRECTORY != 0;
            return Err(match e.raw_os_error() {
                Some(libc::ELOOP) => link_refused(&self.path.join(name)),
                Some(libc::ENOTDIR) if folder => link_refused(&self.path.join(name)),
                _ => e,
            });
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// Open the child folder `name`, never through a symlink.
    pub fn child(&self, name: &str) -> io::Result<Dir> {
        Ok(Dir {
            fd: self.openat(name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?,
            path: self.path.join(name),
        })
    }

    /// The child folder `name`, made (mode 0777 less the umask) when missing.
    pub fn child_or_create(&self, name: &str) -> io::Result<Dir> {
        match self.child(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let c = cstr(name)?;
                // SAFETY: mkdirat relative to our descriptor; it never follows a symlink.
                if unsafe { libc::mkdirat(self.raw_fd(), c.as_ptr(), 0o777) } != 0 {
                    let e = last_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                self.child(name)
            }
            other => other,
        }
    }

    /// Make the child folder `name`; `AlreadyExists` when it is there.
    pub fn make_child(&self, name: &str) -> io::Result<Dir> {
        check_name(name)?;
        let c = cstr(name)?;
        // SAFETY: mkdirat relative to our descriptor.
        if unsafe { libc::mkdirat(self.raw_fd(), c.as_ptr(), 0o777) } != 0 {
            return Err(last_error());
        }
        self.child(name)
    }

    /// Delete the empty child folder `name`.
    pub fn remove_dir(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        let c = cstr(name)?;
        // SAFETY: unlinkat relative to our descriptor.
        if unsafe { libc::unlinkat(self.raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// `fstatat(name)` without following a symlink.
    fn lstat(&self, name: &str) -> io::Result<libc::stat> {
        check_name(name)?;
        let c = cstr(name)?;
        // SAFETY: fstatat fills a stat we own; AT_SYMLINK_NOFOLLOW never follows.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::fstatat(
                self.raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(last_error());
        }
        Ok(st)
    }

    /// How long ago the entry `name` was last modified.
    pub fn age(&self, name: &str) -> io::Result<std::time::Duration> {
        let st = self.lstat(name)?;
        let modified = std::time::UNIX_EPOCH
            + std::time::Duration::new(
                st.st_mtime.max(0) as u64,
                st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
            );
        Ok(std::time::SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default())
    }

    /// Is there an entry `name` here (of any kind, a symlink included)?
    pub fn exists(&self, name: &str) -> io::Result<bool> {
        match self.lstat(name) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Walk down `rel`: plain components only (no `..`, no absolute path),
    /// none of them a symlink; folders are made on the way with `create`.
    pub fn descend(&self, rel: &Path, create: bool) -> io::Result<Dir> {
        let mut dir = self.reopen()?;
        for part in rel.components() {
            let name = match part {
                Component::CurDir => continue,
                Component::Normal(n) => n.to_str().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "a path that is not UTF-8")
                })?,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "{} leaves {}; it must be a relative path inside it",
                            rel.display(),
                            self.path.display()
                        ),
                    ));
                }
            };
            dir = if create {
                dir.child_or_create(name)?
            } else {
                dir.child(name)?
            };
        }
        Ok(dir)
    }

    fn open_file(&self, name: &str, flags: libc::c_int, mode: libc::mode_t) -> io::Result<File> {
        Ok(File::from(self.openat(name, flags, mode)?))
    }

    /// Read the regular file `name`, at most `max` bytes. Never blocks on a
    /// FIFO, never follows a symlink, never reads a device.
    pub fn read(&self, name: &str, max: u64) -> Result<Vec<u8>, ReadError> {
        let file = self
            .open_file(name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => ReadError::NotRegular,
                _ => ReadError::Io(e),
            })?;
        let meta = file.metadata().map_err(ReadError::Io)?;
        if !meta.is_file() {
            return Err(ReadError::NotRegular);
        }
        if meta.len() > max {
            return Err(ReadError::TooBig(meta.len()));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // One byte more than allowed tells a file that grew past the limit.
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(ReadError::Io)?;
        if bytes.len() as u64 > max {
            return Err(ReadError::TooBig(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// Open the regular file `name` for reading (never a symlink, a FIFO
    /// or a device).
    pub fn open_regular(&self, name: &str) -> io::Result<File> {
        let file = self.open_file(name, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
        if !file.metadata()?.is_file() {
            return Err(link_refused(&self.path.join(name)));
        }
        Ok(file)
    }

    /// Create the new file `name` (never an existing one, never through a
    /// symlink), for appending.
    pub fn create_new(&self, name: &str) -> io::Result<File> {
        self.open_file(
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_APPEND,
            0o666,
        )
    }

    /// Open the regular file `name` for appending, made when missing
    /// (never through a symlink, never a FIFO or a device).
    pub fn open_append(&self, name: &str) -> io::Result<File> {
        let file = self.open_file(
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_NONBLOCK,
            0o666,
        )?;
        if !file.metadata()?.is_file() {
            return Err(link_refused(&self.path.join(name)));
        }
        Ok(file)
    }

    /// The mode bits of `name` when it is a regular file.
    fn mode_of(&self, name: &str) -> Option<u32> {
        let st = self.lstat(name).ok()?;
        (st.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(st.st_mode & 0o777)
    }

    /// Replace `name` with `contents` so that a crash leaves the old or the
    /// new file: a new temporary file with a random name (`O_EXCL`, never a
    /// symlink), fsync, rename, fsync of the folder. With `expected`, the
    /// file must still hold exactly those bytes right before the rename
    /// (somebody saved it meanwhile otherwise): `Ok(false)`, nothing changed.
    pub fn replace(
        &self,
        name: &str,
        contents: &[u8],
        expected: Option<&[u8]>,
    ) -> io::Result<bool> {
        let mode = self.mode_of(name).unwrap_or(0o644);
        self.replace_as(name, contents, expected, mode)
    }

    /// `replace`, giving the new file permissions `mode`.
    pub fn replace_as(
        &self,
        name: &str,
        contents: &[u8],
        expected: Option<&[u8]>,
        mode: u32,
    ) -> io::Result<bool> {
        check_name(name)?;
        let mut tries = 0;
        let (tmp, mut file) = loop {
            let tmp = format!(".{name}.tmp.{}", random_hex());
            match self.open_file(&tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL, 0o600) {
                Ok(f) => break (tmp, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        let result = (|| -> io::Result<bool> {
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
            file.write_all(contents)?;
            file.sync_all()?;
            if let Some(expected) = expected {
                let now = self
                    .read(name, expected.len() as u64 + 1)
                    .map_err(|e| io::Error::other(e.to_string()))?;
                if now != expected {
                    return Ok(false);
                }
            }
            self.rename(&tmp, name)?;
            self.sync()?;
            Ok(true)
        })();
        if !matches!(result, Ok(true)) {
            let _ = self.remove_file(&tmp);
        }
        result
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (cstr(from)?, cstr(to)?);
        // SAFETY: renameat within our descriptor; it replaces a symlink at
        // `to` rather than following it.
        if unsafe { libc::renameat(self.raw_fd(), f.as_ptr(), self.raw_fd(), t.as_ptr()) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// fsync the folder, so a rename in it survives a crash.
    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: fsync on our descriptor.
        if unsafe { libc::fsync(self.raw_fd()) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// What changes whenever `name` is written, replaced or its mode set
    /// (inode, size, ctime, mode), without following a symlink: a cheap
    /// "has it changed" that no agent can set back (ctime cannot be).
    pub fn fingerprint(&self, name: &str) -> io::Result<[i64; 5]> {
        let st = self.lstat(name)?;
        Ok([
            st.st_ino as i64,
            st.st_size,
            st.st_ctime,
            st.st_ctime_nsec,
            i64::from(st.st_mode),
        ])
    }

    /// What `name` is, without following a symlink.
    pub fn kind(&self, name: &str) -> io::Result<Kind> {
        let st = self.lstat(name)?;
        Ok(match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File(st.st_mode & 0o7777),
            libc::S_IFLNK => Kind::Link,
            libc::S_IFDIR => Kind::Dir,
            _ => Kind::Other,
        })
    }

    /// The target of the symlink `name`.
    pub fn readlink(&self, name: &str) -> io::Result<String> {
        check_name(name)?;
        let c = cstr(name)?;
        let mut buf = vec![0u8; 4096];
        // SAFETY: readlinkat into a buffer we own, of the length we pass.
        let n = unsafe {
            libc::readlinkat(
                self.raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(last_error());
        }
        buf.truncate(n as usize);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// Make the symlink `name` pointing at `target`.
    pub fn symlink(&self, target: &str, name: &str) -> io::Result<()> {
        check_name(name)?;
        let (t, c) = (cstr(target)?, cstr(name)?);
        // SAFETY: symlinkat relative to our descriptor.
        if unsafe { libc::symlinkat(t.as_ptr(), self.raw_fd(), c.as_ptr()) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Move `name` (whatever it is, never followed) to `to_name` in `to`.
    pub fn move_to(&self, name: &str, to: &Dir, to_name: &str) -> io::Result<()> {
        check_name(name)?;
        check_name(to_name)?;
        let (f, t) = (cstr(name)?, cstr(to_name)?);
        // SAFETY: renameat between two descriptors we own.
        if unsafe { libc::renameat(self.raw_fd(), f.as_ptr(), to.raw_fd(), t.as_ptr()) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Delete the file (or symlink itself) `name` in this folder.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        let c = cstr(name)?;
        // SAFETY: unlinkat relative to our descriptor; a symlink is removed, not followed.
        if unsafe { libc::unlinkat(self.raw_fd(), c.as_ptr(), 0) } != 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// The names in this folder (no `.`, `..`), with whether each is a
    /// real folder (not a symlink to one).
    pub fn entries(&self) -> io::Result<Vec<(String, bool)>> {
        // The folder the descriptor holds, whatever its path points at now.
        let via_fd = PathBuf::from(format!("/proc/self/fd/{}", self.raw_fd()));
        let list = std::fs::read_dir(&via_fd).or_else(|_| std::fs::read_dir(&self.path))?;
        let mut out = Vec::new();
        for entry in list {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                out.push((name.to_string(), entry.file_type()?.is_dir()));
            }
        }
        Ok(out)
    }
}

/// The folder `path`, which must be `root` or below it, reached without
/// following a symlink below `root`; made when missing with `create`.
pub fn open_beneath(root: &Path, path: &Path, create: bool) -> io::Result<Dir> {
    let rel = path.strip_prefix(root).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not inside {}", path.display(), root.display()),
        )
    })?;
    Dir::open(root)?.descend(rel, create)
}

/// `flock(op)` on an open folder: `Ok(false)` when a non-blocking lock
/// is held elsewhere.
pub fn flock(dir: &Dir, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is involved.
        if unsafe { libc::flock(dir.raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// Wait for an exclusive lock on the open folder `dir`; held until the
/// returned handle is dropped. For short critical sections shared by
/// several runners.
pub fn hold(dir: Dir) -> io::Result<Dir> {
    flock(&dir, libc::LOCK_EX)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("ai-sdlc-paths-{tag}-{}", random_hex()));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn replace_writes_atomically_and_never_through_a_symlink() {
        let root = tmp("replace");
        let victim = root.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let dir = Dir::open(&root).unwrap();
        symlink(&victim, root.join("story.md")).unwrap();
        assert!(dir.replace("story.md", b"new", None).unwrap());
        // The link was replaced by a file; its target is untouched.
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(root.join("story.md")).unwrap(),
            "new"
        );
        assert!(
            !std::fs::symlink_metadata(root.join("story.md"))
                .unwrap()
                .is_symlink()
        );
        // A save between the read and the rename is detected, not overwritten.
        assert!(!dir.replace("story.md", b"mine", Some(b"older")).unwrap());
        assert_eq!(
            std::fs::read_to_string(root.join("story.md")).unwrap(),
            "new"
        );
        let names: Vec<String> = dir.entries().unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names.len(), 2, "a temporary file was left: {names:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn folders_are_never_reached_through_symlinks_or_dotdot() {
        let root = tmp("walk");
        let outside = tmp("outside");
        std::fs::create_dir_all(root.join("a")).unwrap();
        symlink(&outside, root.join("a/logs")).unwrap();
        let a = open_beneath(&root, &root.join("a"), false).unwrap();
        let e = a.child_or_create("logs").unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(open_beneath(&root, &root.join("a/../.."), false).is_err());
        assert!(
            Dir::open(&root)
                .unwrap()
                .descend(Path::new("/etc"), false)
                .is_err()
        );
        assert!(a.create_new("../x").is_err());
        let made = open_beneath(&root, &root.join("b/c"), true).unwrap();
        assert!(made.path().ends_with("b/c") && root.join("b/c").is_dir());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn reads_only_regular_files_within_a_limit() {
        let root = tmp("read");
        let dir = Dir::open(&root).unwrap();
        std::fs::write(root.join("ok"), "hello").unwrap();
        assert_eq!(dir.read("ok", 5).unwrap(), b"hello");
        assert!(matches!(dir.read("ok", 4), Err(ReadError::TooBig(5))));
        symlink("/dev/zero", root.join("zero")).unwrap();
        assert!(matches!(dir.read("zero", 100), Err(ReadError::NotRegular)));
        let fifo = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(matches!(dir.read("fifo", 100), Err(ReadError::NotRegular)));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
