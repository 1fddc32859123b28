//! Commits, and merges made in git's object store only. May run: your own
//! global clean filters and signing program; nothing of the repo's.

use super::{GitError, run, run_allowing};
use std::path::Path;

/// Commit everything in the work tree at `dir` (`git add -A`: ignored
/// files stay out). `None` when there was nothing to commit.
pub fn commit_all(dir: &Path, message: &str) -> Result<Option<String>, GitError> {
    run(dir, &["add", "-A"])?;
    match run(dir, &["diff", "--cached", "--quiet"]) {
        Ok(_) => return Ok(None),
        Err(e) if e.code == Some(1) => {}
        Err(e) => return Err(e),
    }
    run(dir, &["commit", "--quiet", "-m", message])?;
    Ok(Some(super::refs::short(dir, "HEAD")?))
}

/// A commit of `tree` with `parents`, made by the tool (unsigned).
pub fn commit_tree(
    dir: &Path,
    tree: &str,
    parents: &[&str],
    message: &str,
) -> Result<String, GitError> {
    let mut args = vec![
        "-c",
        "commit.gpgsign=false",
        "commit-tree",
        tree,
        "-m",
        message,
    ];
    for p in parents {
        args.extend(["-p", p]);
    }
    Ok(run(dir, &args)?.trim().to_string())
}

/// How `branch` merges into `onto`.
#[derive(Debug, Clone, PartialEq)]
pub enum Fit {
    /// The merged tree.
    Clean(String),
    /// The files in conflict.
    Conflict(Vec<String>),
}

/// Merge `branch` into `onto` in git's object store only.
pub fn merge_tree(dir: &Path, onto: &str, branch: &str) -> Result<Fit, GitError> {
    let out = run_allowing(
        dir,
        &[
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            onto,
            branch,
        ],
        &[0, 1],
    )?;
    let mut lines = out.lines().filter(|l| !l.is_empty());
    let tree = lines.next().unwrap_or("").to_string();
    let conflicts: Vec<String> = lines.map(str::to_string).collect();
    if tree.is_empty() {
        return Err(GitError {
            args: "merge-tree".into(),
            code: None,
            message: format!("git merge-tree gave no result for {branch}"),
        });
    }
    Ok(if conflicts.is_empty() {
        Fit::Clean(tree)
    } else {
        Fit::Conflict(conflicts)
    })
}
