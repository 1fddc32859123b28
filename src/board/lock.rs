//! `StoryClaim`: an exclusive `flock` on `stories/<ID>/.lock` (SPEC §4).
//! Released on drop, and by the kernel when the holder dies.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".lock";

#[derive(Debug)]
pub enum ClaimError {
    /// Another process (or another claim in this one) holds the lock.
    Held,
    Io(PathBuf, io::Error),
}

/// Holds a story for one runner. The lock file is opened close-on-exec, so
/// agents never inherit it.
#[derive(Debug)]
pub struct StoryClaim {
    _file: File,
}

fn open(story_dir: &Path) -> Result<File, ClaimError> {
    let path = story_dir.join(LOCK_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| ClaimError::Io(path, e))
}

fn try_flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
        if rc == 0 {
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

impl StoryClaim {
    /// Claim the story in `story_dir`, or fail at once if it is held.
    pub fn try_claim(story_dir: &Path) -> Result<StoryClaim, ClaimError> {
        let file = open(story_dir)?;
        match try_flock(&file, libc::LOCK_EX) {
            Ok(true) => Ok(StoryClaim { _file: file }),
            Ok(false) => Err(ClaimError::Held),
            Err(e) => Err(ClaimError::Io(story_dir.join(LOCK_FILE), e)),
        }
    }
}

/// Wait for an exclusive lock on `path` (created if missing); held until the
/// file is dropped. For short critical sections shared by several runners.
pub fn hold(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Is the story held by a runner right now? (A story without a lock file is not.)
pub fn is_held(story_dir: &Path) -> bool {
    let path = story_dir.join(LOCK_FILE);
    let Ok(file) = File::open(&path) else {
        return false;
    };
    // A shared lock succeeds unless someone holds the exclusive one; dropping
    // the file releases it again.
    !matches!(try_flock(&file, libc::LOCK_SH), Ok(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_second_claim_fails_while_the_first_holds() {
        let dir = std::env::temp_dir().join(format!("ai-sdlc-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = StoryClaim::try_claim(&dir).unwrap();
        assert!(is_held(&dir));
        assert!(matches!(StoryClaim::try_claim(&dir), Err(ClaimError::Held)));
        // Another process: flock(1) exits 1 at once when the lock is held.
        let lock = dir.join(LOCK_FILE);
        let st = Command::new("flock")
            .args(["-n", "-x"])
            .arg(&lock)
            .arg("true")
            .status()
            .expect("flock(1) from util-linux runs");
        assert!(!st.success(), "another process took a held claim");
        drop(first);
        assert!(!is_held(&dir));
        let again = StoryClaim::try_claim(&dir).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
