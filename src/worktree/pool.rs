//! The pool of parked worktrees (`worktree.reuse`, SPEC §12): a finished
//! story's clean worktree is detached and parked, ignored build caches and
//! all, and the next story takes it instead of checking out a new one. A
//! parked worktree is taken only when nothing in it would be lost by the
//! switch to the new story's branch: an ignored file that the new branch
//! tracks (the switch would overwrite it) or no longer ignores (it would
//! become part of the new story's work) leaves it parked.

use crate::git;
use crate::paths::{self, Dir};
use std::path::{Path, PathBuf};

/// Parked worktrees, below the worktree base.
pub const POOL: &str = ".pool";

/// Park the clean worktree `wt` in the pool: detach it from its branch
/// (the branch can be merged and deleted), keep its files (ignored build
/// caches included), move it to `<base>/.pool/<n>`. `base` is held.
pub fn park(root: &Path, base: &Dir, wt: &Path) -> Result<PathBuf, String> {
    git::worktree::detach(wt, None)?;
    let pool = base
        .child_or_create(POOL)
        .map_err(|e| format!("cannot make the pool folder: {e}"))?;
    let n = (0..10_000)
        .find(|n| matches!(pool.exists(&n.to_string()), Ok(false)))
        .ok_or("the worktree pool is full (10,000 parked); `ai-sdlc worktrees prune` empties it")?;
    let dest = base.path().join(POOL).join(n.to_string());
    git::worktree::move_to(root, wt, &dest)?;
    Ok(dest)
}

/// The parked worktrees, oldest number first.
pub fn parked(base: &Path) -> Vec<PathBuf> {
    let pool = base.join(POOL);
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(&pool)
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let n = e.file_name().to_str()?.parse::<u64>().ok()?;
                Some((n, e.path()))
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// Take a clean parked worktree for `branch` (made from `from` when it
/// does not exist yet) and move it to `<base>/<folder>`. `None` when the
/// pool has none that can be used; the ones skipped and why go to `notes`.
/// Runs with `base` held: no two runners take the same one.
pub fn take(
    root: &Path,
    base: &Dir,
    folder: &str,
    branch: &str,
    from: &str,
    notes: &mut Vec<String>,
) -> Result<Option<PathBuf>, String> {
    let registered = crate::worktree::list(root)?;
    for p in parked(base.path()) {
        let shown = paths::rel(root, &p);
        let ours = registered
            .iter()
            .any(|e| e.path == p || e.path.canonicalize().ok() == p.canonicalize().ok());
        let usable = if !ours {
            Err("is not a worktree of this repo any more".to_string())
        } else {
            crate::worktree::check_link(root, &p)
                .and_then(|_| switch_safely(root, &p, branch, from))
        };
        if let Err(why) = usable {
            notes.push(format!("{shown}: {why}; not reused"));
            continue;
        }
        let dest = base.path().join(folder);
        git::worktree::move_to(root, &p, &dest)?;
        return Ok(Some(dest));
    }
    Ok(None)
}

/// Switch the parked worktree `p` to `branch` (made from `from` when it
/// does not exist), unless that would lose a file: it must be clean; no
/// file it ignores may be tracked on the new branch; and after the switch
/// nothing it ignored may have become untracked (then it switches back).
fn switch_safely(root: &Path, p: &Path, branch: &str, from: &str) -> Result<(), String> {
    let changes = crate::worktree::changes(p)?;
    if !changes.is_empty() {
        return Err(format!(
            "has {} uncommitted or untracked changes (`ai-sdlc worktrees prune` empties the pool)",
            changes.len()
        ));
    }
    let exists = git::refs::branch_exists(root, branch)?;
    let target = if exists { branch } else { from };
    let ignored = crate::worktree::ignored(p)?;
    let held: Vec<&str> = ignored.iter().map(|i| i.trim_end_matches('/')).collect();
    if let Some(f) = git::status::in_tree(p, target, &held)?.first() {
        return Err(format!(
            "{target} tracks {f}, which this worktree holds as an ignored file: the switch would overwrite it"
        ));
    }
    let before = git::refs::commit_of(p, "HEAD")?;
    git::worktree::switch(p, branch, (!exists).then_some(from))?;
    let now_untracked = crate::worktree::changes(p)?;
    if now_untracked.is_empty() {
        return Ok(());
    }
    // Files it ignored are not ignored on the new branch: they would be
    // lost to a clean, or become the next story's work. Back as it was.
    let back = git::worktree::detach(p, Some(&before));
    if back.is_ok() && !exists {
        // Made a moment ago, at `from`, with nothing on it.
        let _ = git::refs::delete_branch(root, branch);
    }
    Err(format!(
        "{} ignored here would not be ignored on {branch}",
        now_untracked
            .iter()
            .map(|l| l.get(3..).unwrap_or(l).to_string())
            .take(3)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
