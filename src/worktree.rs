//! The git CLI wrapper for story worktrees: check the repo, create or reuse
//! `<basePath>/<ID>-<slug>` on branch `ai-sdlc/<ID>-<slug>`, tell clean from
//! dirty, remove, list. git's own error text reaches the user.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const BRANCH_PREFIX: &str = "ai-sdlc/";

/// Run git in `dir`; stdout on success, git's stderr (or why git could not run) on failure.
pub fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|e| format!("cannot run git: {e}; install git and make sure it is on PATH"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let err = if err.is_empty() {
            format!("git {} failed ({})", args.join(" "), out.status)
        } else {
            err
        };
        Err(err)
    }
}

/// Is `root` a git repo with at least one commit? The error says what to do.
pub fn check_repo(root: &Path) -> Result<(), String> {
    if git(root, &["rev-parse", "--git-dir"]).is_err() {
        return Err(format!(
            "{} is not a git repository; stories run in git worktrees. Run `git init && git add -A && git commit -m init` there, or pass --no-worktree",
            root.display()
        ));
    }
    if git(root, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).is_err() {
        return Err(format!(
            "the git repository at {} has no commit yet; worktrees branch from a commit. Make a first commit (git add -A && git commit -m init), or pass --no-worktree",
            root.display()
        ));
    }
    Ok(())
}

/// The branch worktrees start from: the configured one, or what the repo has checked out.
pub fn base_branch(root: &Path, configured: Option<&str>) -> Result<String, String> {
    if let Some(b) = configured {
        git(
            root,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{b}^{{commit}}"),
            ],
        )
        .map_err(|_| {
            format!(
                "worktree.baseBranch {b:?} is not a branch or commit in {}",
                root.display()
            )
        })?;
        return Ok(b.to_string());
    }
    match git(root, &["symbolic-ref", "--quiet", "--short", "HEAD"]) {
        Ok(b) => Ok(b.trim().to_string()),
        // Detached HEAD: branch from the commit itself.
        Err(_) => git(root, &["rev-parse", "HEAD"]).map(|s| s.trim().to_string()),
    }
}

pub fn branch_name(key: &str) -> String {
    format!("{BRANCH_PREFIX}{key}")
}

/// One entry of `git worktree list --porcelain`.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub branch: Option<String>,
}

pub fn list(root: &Path) -> Result<Vec<Entry>, String> {
    let out = git(root, &["worktree", "list", "--porcelain"])?;
    let mut entries = Vec::new();
    for block in out.split("\n\n") {
        let mut path = None;
        let mut branch = None;
        for line in block.lines() {
            if let Some(p) = line.strip_prefix("worktree ") {
                path = Some(PathBuf::from(p));
            } else if let Some(b) = line.strip_prefix("branch ") {
                branch = Some(b.strip_prefix("refs/heads/").unwrap_or(b).to_string());
            }
        }
        if let Some(path) = path {
            entries.push(Entry { path, branch });
        }
    }
    Ok(entries)
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Serializes worktree changes across every runner on this repo: git's own
/// locks do not make concurrent `git worktree add` and `prune` safe. Held
/// until dropped.
pub fn serialize(base: &Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    let path = base.join(".lock");
    crate::board::lock::hold(&path).map_err(|e| format!("cannot lock {}: {e}", path.display()))
}

/// What `prepare` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    Created,
    /// The worktree was there already, on the story's branch (a resumed run).
    Reused,
}

/// Create or reuse the worktree `path` on `branch`, branching from `base`
/// when the branch does not exist. Callers serialize calls within a runner.
pub fn prepare(root: &Path, path: &Path, branch: &str, base: &str) -> Result<Prepared, String> {
    let entries = list(root)?;
    if path.exists() {
        let ours = entries.iter().find(|e| same_path(&e.path, path));
        return match ours {
            Some(e) if e.branch.as_deref() == Some(branch) => Ok(Prepared::Reused),
            Some(e) => Err(format!(
                "{} is a worktree on {} rather than {branch}; remove it (ai-sdlc worktrees remove) or check out {branch} there",
                path.display(),
                e.branch.as_deref().unwrap_or("a detached HEAD")
            )),
            None => Err(format!(
                "{} exists and is not a git worktree of this repo; move it away and run again",
                path.display()
            )),
        };
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // A stale registration (its folder deleted by hand) would make git refuse the path.
    let _ = git(root, &["worktree", "prune"]);
    let path_arg = path.to_string_lossy();
    let branch_exists = git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ],
    )
    .is_ok();
    if branch_exists {
        git(root, &["worktree", "add", "--quiet", &path_arg, branch])?;
    } else {
        git(
            root,
            &["worktree", "add", "--quiet", "-b", branch, &path_arg, base],
        )?;
    }
    Ok(Prepared::Created)
}

/// Uncommitted and untracked changes in the worktree, as `git status --porcelain` lines.
pub fn changes(path: &Path) -> Result<Vec<String>, String> {
    let out = git(path, &["status", "--porcelain", "--untracked-files=all"])?;
    Ok(out
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect())
}

/// Remove a worktree. Without `force`, git refuses one with changes.
pub fn remove(root: &Path, path: &Path, force: bool) -> Result<(), String> {
    let path_arg = path.to_string_lossy();
    let mut args = vec!["worktree", "remove"];
    if force {
        args.push("--force");
    }
    args.push(&path_arg);
    git(root, &args).map(|_| ())
}
