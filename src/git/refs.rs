//! Refs and commits: what a name points at, and moving a branch. May run:
//! nothing (no filter, no hook: these read and write refs only).

use super::{GitError, run};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The commit `rev` names, in full.
pub fn commit_of(dir: &Path, rev: &str) -> Result<String, GitError> {
    Ok(run(
        dir,
        &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
    )?
    .trim()
    .to_string())
}

/// The short name of the commit at `rev`, for people.
pub fn short(dir: &Path, rev: &str) -> Result<String, GitError> {
    Ok(run(dir, &["rev-parse", "--short", rev])?.trim().to_string())
}

/// The branch checked out at `dir`, as `refs/heads/...`; `None` on a
/// detached HEAD.
pub fn head_ref(dir: &Path) -> Result<Option<String>, GitError> {
    match run(dir, &["symbolic-ref", "--quiet", "HEAD"]) {
        Ok(r) => Ok(Some(r.trim().to_string())),
        Err(e) if e.code == Some(1) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Does `rev` name an object (`rev-parse --verify --quiet`)? An error only
/// when git itself failed, not when the answer is no.
pub fn resolves(dir: &Path, rev: &str) -> Result<bool, GitError> {
    match run(dir, &["rev-parse", "--verify", "--quiet", rev]) {
        Ok(_) => Ok(true),
        Err(e) if e.code == Some(1) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Does the branch exist?
pub fn branch_exists(dir: &Path, branch: &str) -> Result<bool, GitError> {
    resolves(dir, &format!("refs/heads/{branch}"))
}

/// Is `a` an ancestor of (or the same commit as) `b`?
pub fn is_ancestor(dir: &Path, a: &str, b: &str) -> Result<bool, GitError> {
    match run(dir, &["merge-base", "--is-ancestor", a, b]) {
        Ok(_) => Ok(true),
        Err(e) if e.code == Some(1) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Move `refname` to `new`, only if it is at `old` now (`""`: only if it
/// does not exist), with `message` in its reflog.
pub fn update(
    dir: &Path,
    refname: &str,
    new: &str,
    old: &str,
    message: &str,
) -> Result<(), GitError> {
    run(dir, &["update-ref", "-m", message, refname, new, old]).map(|_| ())
}

/// Delete a branch.
pub fn delete_branch(dir: &Path, branch: &str) -> Result<(), GitError> {
    run(dir, &["branch", "-D", "--", branch]).map(|_| ())
}

/// Every branch and the commit it is at, in one call: `ai-sdlc/S-0001`
/// -> its full commit id.
pub fn branch_tips(dir: &Path) -> Result<HashMap<String, String>, GitError> {
    let out = run(
        dir,
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads/",
        ],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (sha, name) = l.split_once(' ')?;
            Some((
                name.strip_prefix("refs/heads/")?.to_string(),
                sha.to_string(),
            ))
        })
        .collect())
}

/// The branches with commits `base` (a branch) does not have, in one call.
pub fn not_merged_into(dir: &Path, base: &str) -> Result<HashSet<String>, GitError> {
    let out = run(
        dir,
        &[
            "for-each-ref",
            &format!("--no-merged=refs/heads/{base}"),
            "--format=%(refname)",
            "refs/heads/",
        ],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| Some(l.strip_prefix("refs/heads/")?.to_string()))
        .collect())
}

/// The refs below `prefix` (`refs/heads/ai-sdlc/`), by short name.
pub fn list(dir: &Path, prefix: &str) -> Result<Vec<String>, GitError> {
    let out = run(dir, &["for-each-ref", "--format=%(refname:short)", prefix])?;
    Ok(out.lines().map(str::to_string).collect())
}

/// The repo's common git dir (its `.git`), absolute.
pub fn common_dir(dir: &Path) -> Result<std::path::PathBuf, GitError> {
    let out = run(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )?;
    Ok(std::path::PathBuf::from(out.trim()))
}
