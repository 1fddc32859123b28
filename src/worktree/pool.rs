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
    git::run(wt, &["switch", "--quiet", "--detach"])?;
    let pool = base
        .child_or_create(POOL)
        .map_err(|e| format!("cannot make the pool folder: {e}"))?;
    let n = (0..10_000)
        .find(|n| matches!(pool.exists(&n.to_string()), Ok(false)))
        .ok_or("the worktree pool is full (10,000 parked); `ai-sdlc worktrees prune` empties it")?;
    let dest = base.path().join(POOL).join(n.to_string());
    git::run(
        root,
        &[
            "worktree",
            "move",
            "--",
            &wt.to_string_lossy(),
            &dest.to_string_lossy(),
        ],
    )?;
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
                .and_then(|()| switch_safely(root, &p, branch, from))
        };
        if let Err(why) = usable {
            notes.push(format!("{shown}: {why}; not reused"));
            continue;
        }
        let dest = base.path().join(folder);
        git::run(
            root,
            &[
                "worktree",
                "move",
                "--",
                &p.to_string_lossy(),
                &dest.to_string_lossy(),
            ],
        )?;
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
    let exists = git::resolves(root, &format!("refs/heads/{branch}"))?;
    let target = if exists { branch } else { from };
    let ignored = crate::worktree::ignored(p)?;
    if !ignored.is_empty() {
        let mut args = vec!["ls-tree", "-r", "--name-only", target, "--"];
        args.extend(ignored.iter().map(|i| i.trim_end_matches('/')));
        let tracked = git::run(p, &args)?;
        if let Some(f) = tracked.lines().next() {
            return Err(format!(
                "{target} tracks {f}, which this worktree holds as an ignored file: the switch would overwrite it"
            ));
        }
    }
    let before = git::run(p, &["rev-parse", "HEAD"])?.trim().to_string();
    if exists {
        git::run(p, &["switch", "--quiet", "--", branch])?;
    } else {
        git::run(p, &["switch", "--quiet", "--no-track", "-c", branch, from])?;
    }
    let now_untracked = crate::worktree::changes(p)?;
    if now_untracked.is_empty() {
        return Ok(());
    }
    // Files it ignored are not ignored on the new branch: they would be
    // lost to a clean, or become the next story's work. Back as it was.
    let back = git::run(p, &["switch", "--quiet", "--detach", &before]);
    if back.is_ok() && !exists {
        // Made a moment ago, at `from`, with nothing on it.
        let _ = git::run(root, &["branch", "-D", "--", branch]);
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
