//! The filesystem sandbox of an agent's process tree, with Landlock (Linux
//! 5.13+, unprivileged, through raw system calls: no crate, and it works
//! in the static binary).
//!
//! What the agent may do, and nothing more (rules are an allowlist):
//! - **read** everything but the user's secrets: every entry of `/` and of
//!   each folder on the way to `$HOME`, and of `$HOME` each entry but
//!   `.ssh`, `.aws`, `.gnupg`, `.netrc`, `.git-credentials`, `.kube`,
//!   `.config/gh`, `.docker/config.json` and `agent.sandbox.hide` (a
//!   symbolic link in `$HOME` is not followed: it could lead to one of
//!   them). Listing a folder's names stays possible on the way down.
//! - **write** only its worktree, a private `TMPDIR`, its CLI's own state
//!   folders, `/dev/null` and friends, and `agent.sandbox.write`. Not the
//!   main checkout, not another story's worktree, not the shared `.git`
//!   (the runner commits), not `$HOME`.
//!
//! What Landlock cannot do here: spare one file inside a writable folder
//! (the worktree's own `.git` file stays writable: the runner's
//! `check_link` catches a re-pointed one), or hide a file from a folder's
//! listing. The network stays open: agents need their API.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;

/// Every file-system right of Landlock ABI `abi`.
fn all_rights(abi: i64) -> u64 {
    let mut r = (1u64 << 13) - 1; // ABI 1: EXECUTE ..= MAKE_SYM
    if abi >= 2 {
        r |= 1 << 13; // REFER
    }
    if abi >= 3 {
        r |= TRUNCATE;
    }
    if abi >= 5 {
        r |= IOCTL_DEV;
    }
    r
}

const READ: u64 = EXECUTE | READ_FILE | READ_DIR;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: i32 = 1;

/// The Landlock ABI version the kernel offers; `None` when it has none
/// (too old, or turned off).
pub fn abi() -> Option<i64> {
    // SAFETY: the documented way to ask for the version: no attribute.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v)
}

/// Where an agent may write, and what it may not read.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub write: Vec<PathBuf>,
    pub home: Option<PathBuf>,
    /// Under `home` (relative) or absolute: never readable.
    pub hide: Vec<PathBuf>,
}

/// The user's secrets, under `$HOME`.
pub const SECRETS: [&str; 8] = [
    ".ssh",
    ".aws",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".kube",
    ".config/gh",
    ".docker/config.json",
];

/// A ruleset ready to apply in a child (`restrict`).
pub struct Ruleset {
    fd: OwnedFd,
}

fn open_path(p: &Path) -> Option<OwnedFd> {
    let c = CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: open with O_PATH on a valid C string; we own the result.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    // SAFETY: a fresh descriptor.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Ruleset {
    /// Allow `rights` beneath the file or folder `fd` names.
    fn rule(&self, fd: &OwnedFd, rights: u64) {
        let attr = PathBeneathAttr {
            allowed_access: rights,
            parent_fd: fd.as_raw_fd(),
        };
        // SAFETY: a valid ruleset descriptor and attribute. A refused rule
        // only allows less.
        let _ = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                &attr as *const PathBeneathAttr,
                0u32,
            )
        };
    }

    /// Allow `rights` on `path` (never through a symbolic link: it could
    /// lead anywhere); a file takes only the rights that apply to files.
    fn add(&self, path: &Path, rights: u64, handled: u64) {
        let Some(fd) = open_path(path) else {
            return;
        };
        // The type of what was opened, not of what the path names now.
        // SAFETY: fstat of our own descriptor into a zeroed struct.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return;
        }
        let allowed = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => rights,
            libc::S_IFLNK => return,
            _ => rights & (EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV),
        };
        self.rule(&fd, allowed & handled);
    }

    /// Build the ruleset of `policy`; `None` without Landlock.
    pub fn new(policy: &Policy) -> Option<Ruleset> {
        let abi = abi()?;
        let handled = all_rights(abi);
        let attr = RulesetAttr {
            handled_access_fs: handled,
        };
        // SAFETY: a valid attribute of the size we pass.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor.
        let rs = Ruleset {
            fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        };
        let hidden: Vec<PathBuf> = policy
            .hide
            .iter()
            .map(|h| match &policy.home {
                Some(home) if h.is_relative() => home.join(h),
                _ => h.clone(),
            })
            .collect();
        rs.grant_reads(Path::new("/"), &hidden, handled, 0);
        for w in &policy.write {
            rs.add(w, handled, handled);
        }
        for dev in ["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"] {
            rs.add(
                Path::new(dev),
                READ_FILE | WRITE_FILE | TRUNCATE | IOCTL_DEV,
                handled,
            );
        }
        rs.add(Path::new("/dev/shm"), handled, handled);
        Some(rs)
    }

    /// Read access to `dir`'s entries, going down only where a hidden path
    /// lies beneath.
    fn grant_reads(&self, dir: &Path, hidden: &[PathBuf], handled: u64, depth: usize) {
        let above_hidden = |p: &Path| hidden.iter().any(|h| h.starts_with(p) && h != p);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        // Listing this folder (not its entries' contents) is allowed.
        self.add_dir_listing(dir, handled);
        for e in entries.flatten() {
            let p = e.path();
            if hidden.contains(&p) {
                continue;
            }
            if above_hidden(&p) && depth < 16 {
                self.grant_reads(&p, hidden, handled, depth + 1);
            } else {
                self.add(&p, READ, handled);
            }
        }
    }

    fn add_dir_listing(&self, dir: &Path, handled: u64) {
        if let Some(fd) = open_path(dir) {
            self.rule(&fd, READ_DIR & handled);
        }
    }

    /// The descriptor a child applies (`restrict_self`) before it runs the
    /// agent.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// In a child between fork and exec: no new privileges, then the
/// ruleset. Only system calls (async-signal-safe).
pub fn restrict_self(fd: i32) -> std::io::Result<()> {
    // SAFETY: prctl and the Landlock call, on our own process.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
