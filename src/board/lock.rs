//! `StoryClaim`: an exclusive `flock` on the story's folder (SPEC §4).
//! Released on drop, and by the kernel when the holder dies.
//!
//! The folder, not a lock file in it: a file can vanish under a running
//! story (`git clean -fdX` removes a git-ignored `.lock`), and a second
//! runner would then lock a new file and run the story twice. The folder
//! holds the tracked `story.md`, so it stays while the story exists.

use super::Board;
use crate::paths::{Dir, flock};
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum ClaimError {
    /// Another process (or another claim in this one) holds the lock.
    Held,
    Io(PathBuf, io::Error),
}

/// Holds a story for one runner. The folder is opened close-on-exec, so
/// agents never inherit the lock.
#[derive(Debug)]
pub struct StoryClaim {
    _dir: Dir,
}

impl StoryClaim {
    /// Claim story `id`, or fail at once if it is held.
    pub fn try_claim(board: &Board, id: &str) -> Result<StoryClaim, ClaimError> {
        let io_err = |e| ClaimError::Io(board.story_dir(id), e);
        let dir = board.open_story(id).map_err(io_err)?;
        match flock(&dir, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(true) => Ok(StoryClaim { _dir: dir }),
            Ok(false) => Err(ClaimError::Held),
            Err(e) => Err(io_err(e)),
        }
    }
}

/// Is story `id` held by a runner right now?
pub fn is_held(board: &Board, id: &str) -> bool {
    let Ok(dir) = board.open_story(id) else {
        return false;
    };
    // A shared lock succeeds unless someone holds the exclusive one; dropping
    // the handle releases it again.
    !matches!(flock(&dir, libc::LOCK_SH | libc::LOCK_NB), Ok(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_claim_holds_against_other_processes_and_outlives_lock_files() {
        let root = std::env::temp_dir().join(format!("ai-sdlc-lock-{}", std::process::id()));
        let board = Board {
            root: root.clone(),
            dir: root.join("stories"),
        };
        std::fs::create_dir_all(board.story_dir("S-1")).unwrap();
        let first = StoryClaim::try_claim(&board, "S-1").unwrap();
        assert!(is_held(&board, "S-1"));
        assert!(matches!(
            StoryClaim::try_claim(&board, "S-1"),
            Err(ClaimError::Held)
        ));
        // Another process: flock(1) exits 1 at once when the lock is held.
        let st = Command::new("flock")
            .args(["-n", "-x"])
            .arg(board.story_dir("S-1"))
            .arg("true")
            .status()
            .expect("flock(1) from util-linux runs");
        assert!(!st.success(), "another process took a held claim");
        drop(first);
        assert!(!is_held(&board, "S-1"));
        let again = StoryClaim::try_claim(&board, "S-1").unwrap();
        drop(again);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
