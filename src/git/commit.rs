//! Commits, and merges made in git's object store only. May run: your own
//! global clean filters and signing program; nothing of the repo's.

use super::{GitError, run, run_allowing, run_env};
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

/// Merge `branch` into `onto` as if their history met at `base` (a
/// cherry-pick, when `base` is `branch`'s parent), in the object store.
pub fn merge_tree_from(dir: &Path, base: &str, onto: &str, branch: &str) -> Result<Fit, GitError> {
    let merge_base = format!("--merge-base={base}");
    let out = run_allowing(
        dir,
        &[
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            &merge_base,
            onto,
            branch,
        ],
        &[0, 1],
    )?;
    let mut lines = out.lines().filter(|l| !l.is_empty());
    let tree = lines.next().unwrap_or("").to_string();
    let conflicts: Vec<String> = lines.map(str::to_string).collect();
    Ok(if conflicts.is_empty() {
        Fit::Clean(tree)
    } else {
        Fit::Conflict(conflicts)
    })
}

/// What a replay made.
#[derive(Debug, PartialEq)]
pub enum Replayed {
    /// The new tip: the commits replayed, in order, on the new base.
    Done(String),
    /// The commit that did not apply, and the files in conflict.
    Conflict { commit: String, files: Vec<String> },
    /// The range holds a merge commit, which a replay does not redo.
    HasMerges,
}

/// Replay the commits of `upstream..tip` (oldest first) onto `onto`, in
/// git's object store only: each a cherry-pick that keeps its author, date
/// and message (a rebase that touches no work tree). Nothing points at
/// what it made until the caller moves a ref.
pub fn replay(dir: &Path, onto: &str, upstream: &str, tip: &str) -> Result<Replayed, GitError> {
    let range = format!("{upstream}..{tip}");
    let listed = run(
        dir,
        &[
            "rev-list",
            "--reverse",
            "--topo-order",
            "--parents",
            &range,
            "--",
        ],
    )?;
    let mut head = onto.to_string();
    for line in listed.lines() {
        let ids: Vec<&str> = line.split_whitespace().collect();
        let (commit, parents) = match ids.split_first() {
            Some((c, p)) => (*c, p),
            None => continue,
        };
        if parents.len() != 1 {
            return Ok(Replayed::HasMerges);
        }
        let tree = match merge_tree_from(dir, parents[0], &head, commit)? {
            Fit::Clean(t) => t,
            Fit::Conflict(files) => {
                return Ok(Replayed::Conflict {
                    commit: commit.to_string(),
                    files,
                });
            }
        };
        head = commit_like(dir, &tree, &head, commit)?;
    }
    Ok(Replayed::Done(head))
}

/// A commit of `tree` on `parent` with the author, date and message of
/// `like`.
fn commit_like(dir: &Path, tree: &str, parent: &str, like: &str) -> Result<String, GitError> {
    let info = run(
        dir,
        &["log", "-1", "--format=%an%x00%ae%x00%aI%x00%B", like],
    )?;
    let mut parts = info.splitn(4, '\0');
    let (name, email, date, message) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("").trim_end(),
    );
    let env = [
        ("GIT_AUTHOR_NAME", name),
        ("GIT_AUTHOR_EMAIL", email),
        ("GIT_AUTHOR_DATE", date),
    ];
    let args = [
        "-c",
        "commit.gpgsign=false",
        "commit-tree",
        tree,
        "-p",
        parent,
        "-m",
        message,
    ];
    Ok(run_env(dir, &args, &env)?.trim().to_string())
}
