//! What a work tree holds beside its commit. May run: your own global
//! clean filters (a status refreshes the index); nothing of the repo's.

use super::{GitError, run};
use std::path::Path;

/// Uncommitted and untracked changes, as `git status --porcelain` lines.
pub fn changes(dir: &Path) -> Result<Vec<String>, GitError> {
    let out = run(dir, &["status", "--porcelain", "--untracked-files=all"])?;
    Ok(lines(&out))
}

/// Uncommitted changes to tracked files.
pub fn tracked_changes(dir: &Path) -> Result<Vec<String>, GitError> {
    let out = run(dir, &["status", "--porcelain", "--untracked-files=no"])?;
    Ok(lines(&out))
}

/// Changes (untracked folders as one entry), and the files and folders
/// git ignores (`out/`, `.env`), in one status.
pub fn with_ignored(dir: &Path) -> Result<(Vec<String>, Vec<String>), GitError> {
    let out = run(
        dir,
        &[
            "status",
            "--porcelain",
            "--ignored",
            "--untracked-files=normal",
        ],
    )?;
    let (ignored, changes): (Vec<String>, Vec<String>) =
        lines(&out).into_iter().partition(|l| l.starts_with("!! "));
    Ok((
        changes,
        ignored.into_iter().map(|l| l[3..].to_string()).collect(),
    ))
}

fn lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Tracked files below `prefix`.
pub fn tracked(dir: &Path, prefix: &str) -> Result<Vec<String>, GitError> {
    let out = run(dir, &["ls-files", "-z", "--", prefix])?;
    Ok(out
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect())
}

/// Mark `files` skip-worktree in the index of `dir`: their changes in the
/// work tree are never staged.
pub fn skip_worktree(dir: &Path, files: &[&str]) -> Result<(), GitError> {
    let mut args = vec!["update-index", "--skip-worktree", "--"];
    args.extend(files.iter().copied());
    run(dir, &args).map(|_| ())
}

/// Untracked files and folders below `dir` that match `patterns`
/// (gitignore syntax), given to git as patterns: git opens no path of the
/// repo's for them.
pub fn matching(dir: &Path, patterns: &[String]) -> Result<Vec<String>, GitError> {
    let excludes: Vec<String> = patterns.iter().map(|p| format!("--exclude={p}")).collect();
    let mut args = vec!["ls-files", "-z", "--others", "--ignored", "--directory"];
    args.extend(excludes.iter().map(String::as_str));
    let out = run(dir, &args)?;
    Ok(out
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect())
}

/// Those of `paths` git ignores in the checkout at `dir`.
pub fn ignored_of(dir: &Path, paths: &[&str]) -> Result<Vec<String>, GitError> {
    let mut out = Vec::new();
    for chunk in paths.chunks(500) {
        let mut args = vec!["check-ignore", "--no-index", "--"];
        args.extend(chunk.iter().copied());
        let found = super::run_allowing(dir, &args, &[0, 1])?;
        out.extend(found.lines().filter(|l| !l.is_empty()).map(str::to_string));
    }
    Ok(out)
}

/// Those of `paths` that the tree of `rev` holds (files below a folder
/// count for it).
pub fn in_tree(dir: &Path, rev: &str, paths: &[&str]) -> Result<Vec<String>, GitError> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec!["ls-tree", "-r", "--name-only", rev, "--"];
    args.extend(paths.iter().copied());
    Ok(lines(&run(dir, &args)?))
}

/// Is `dir` in a git repository? An error when git itself cannot run.
pub fn is_repo(dir: &Path) -> Result<bool, GitError> {
    match run(dir, &["rev-parse", "--git-dir"]) {
        Ok(_) => Ok(true),
        Err(e) if e.code.is_some() => Ok(false),
        Err(e) => Err(e),
    }
}
