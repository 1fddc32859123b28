//! Worktrees: add, list, move, switch, fast-forward, remove. May run:
//! your own global filters (git lfs) while files are checked out (add,
//! switch, fast-forward); nothing of the repo's.

use super::{GitError, run};
use std::path::{Path, PathBuf};

/// One entry of `git worktree list`.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: PathBuf,
    pub branch: Option<String>,
}

pub fn list(root: &Path) -> Result<Vec<Listed>, GitError> {
    let out = run(root, &["worktree", "list", "--porcelain", "-z"])?;
    let mut entries = Vec::new();
    let mut current: Option<Listed> = None;
    for field in out.split('\0') {
        if let Some(p) = field.strip_prefix("worktree ") {
            entries.extend(current.take());
            current = Some(Listed {
                path: PathBuf::from(p),
                branch: None,
            });
        } else if let (Some(b), Some(e)) = (field.strip_prefix("branch "), current.as_mut()) {
            e.branch = Some(b.strip_prefix("refs/heads/").unwrap_or(b).to_string());
        }
    }
    entries.extend(current);
    Ok(entries)
}

/// A new worktree at `path` on `branch`; a new branch made at `from` when
/// given.
pub fn add(root: &Path, path: &Path, branch: &str, from: Option<&str>) -> Result<(), GitError> {
    let p = path.to_string_lossy();
    match from {
        Some(f) => run(
            root,
            &["worktree", "add", "--quiet", "-b", branch, "--", &p, f],
        ),
        None => run(root, &["worktree", "add", "--quiet", "--", &p, branch]),
    }
    .map(|_| ())
}

/// A new worktree at `path`, detached at `at`.
pub fn add_detached(root: &Path, path: &Path, at: &str) -> Result<(), GitError> {
    let p = path.to_string_lossy();
    run(
        root,
        &["worktree", "add", "--quiet", "--detach", "--", &p, at],
    )
    .map(|_| ())
}

pub fn move_to(root: &Path, from: &Path, to: &Path) -> Result<(), GitError> {
    let (f, t) = (from.to_string_lossy(), to.to_string_lossy());
    run(root, &["worktree", "move", "--", &f, &t]).map(|_| ())
}

/// Remove a worktree. Without `force`, git refuses one with changes.
pub fn remove(root: &Path, path: &Path, force: bool) -> Result<(), GitError> {
    let p = path.to_string_lossy();
    let mut args = vec!["worktree", "remove"];
    if force {
        args.push("--force");
    }
    args.extend(["--", &p]);
    run(root, &args).map(|_| ())
}

/// Forget worktrees whose folders are gone.
pub fn prune(root: &Path) -> Result<(), GitError> {
    run(root, &["worktree", "prune"]).map(|_| ())
}

/// Switch the worktree at `dir` to `branch`; a new branch made at `from`
/// when given.
pub fn switch(dir: &Path, branch: &str, from: Option<&str>) -> Result<(), GitError> {
    match from {
        Some(f) => run(dir, &["switch", "--quiet", "--no-track", "-c", branch, f]),
        None => run(dir, &["switch", "--quiet", "--", branch]),
    }
    .map(|_| ())
}

/// Move the branch checked out at `dir` forward to the commit `to`, and
/// its files with it; refused unless `to` descends from where it is.
pub fn fast_forward(dir: &Path, to: &str) -> Result<(), GitError> {
    run(dir, &["merge", "--ff-only", "--quiet", to]).map(|_| ())
}

/// Detach the worktree at `dir` (at `at`, or where it is).
pub fn detach(dir: &Path, at: Option<&str>) -> Result<(), GitError> {
    let mut args = vec!["switch", "--quiet", "--detach"];
    args.extend(at);
    run(dir, &args).map(|_| ())
}
