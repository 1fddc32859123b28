//! Diffs, read through a bound: what a review, `review` and `land` show of
//! a story's work. May run: nothing of the repo's (no external diff, no
//! textconv, no filter: see `harden`).

use super::{Bounded, GitError, run, run_bounded};
use std::path::Path;

/// A diff stat is cut at this many bytes (a story that touched 100,000
/// files has a long one).
const MAX_STAT: usize = 256 << 10;

/// Where `b`'s history left `a`'s.
pub fn merge_base(dir: &Path, a: &str, b: &str) -> Result<String, GitError> {
    Ok(run(dir, &["merge-base", a, b])?.trim().to_string())
}

/// `git diff --stat <from>`: the work tree against `from`.
pub fn stat(dir: &Path, from: &str) -> Result<Bounded, GitError> {
    run_bounded(dir, &["diff", "--stat", from, "--"], &[0], MAX_STAT)
}

/// `git diff <from>`, at most `max` bytes.
pub fn patch(dir: &Path, from: &str, max: usize) -> Result<Bounded, GitError> {
    run_bounded(dir, &["diff", from, "--"], &[0], max)
}

/// `git diff <from>..<to>`: what the commits after `from` up to `to`
/// changed, at most `max` bytes.
pub fn between(dir: &Path, from: &str, to: &str, max: usize) -> Result<Bounded, GitError> {
    run_bounded(dir, &["diff", &format!("{from}..{to}"), "--"], &[0], max)
}

/// An untracked file as a diff against nothing, at most `max` bytes.
pub fn new_file(dir: &Path, file: &str, max: usize) -> Result<Bounded, GitError> {
    // Exit code 1 means "they differ".
    run_bounded(
        dir,
        &["diff", "--no-index", "--", "/dev/null", file],
        &[0, 1],
        max,
    )
}

/// Untracked files git does not ignore.
pub fn untracked(dir: &Path) -> Result<Vec<String>, GitError> {
    let out = run(dir, &["ls-files", "--others", "--exclude-standard", "-z"])?;
    Ok(out
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect())
}
