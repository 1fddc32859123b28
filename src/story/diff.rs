//! The story's work as a review reads it: a diff stat and a diff against
//! where its branch left the base, commits and uncommitted changes, new
//! files included. Read only: nothing in the worktree or its index changes.

use crate::agent;

/// The diff a review reads is cut to this many bytes.
const MAX_DIFF: usize = 200 * 1024;

/// The story's work as a diff stat and a diff against where its branch
/// left `base`: commits and uncommitted changes, new files included. Read
/// only: nothing in the worktree or its index changes.
pub fn review_diff(workdir: &std::path::Path, base: &str) -> (String, String) {
    let base = if base.is_empty() { "HEAD" } else { base };
    let from = crate::git::run(workdir, &["merge-base", base, "HEAD"])
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "HEAD".to_string());
    let unavailable = |e: crate::git::GitError| format!("(no diff: {e})");
    // (`git::run` keeps external diffs and textconv out of every diff.)
    let mut stat =
        crate::git::run(workdir, &["diff", "--stat", &from, "--"]).unwrap_or_else(unavailable);
    let mut diff = crate::git::run(workdir, &["diff", &from, "--"]).unwrap_or_else(unavailable);
    let new_files = crate::git::run(
        workdir,
        &["ls-files", "--others", "--exclude-standard", "-z"],
    )
    .unwrap_or_default();
    for file in new_files.split('\0').filter(|f| !f.is_empty()).take(200) {
        stat.push_str(&format!(" {file} (new, not yet added)\n"));
        if diff.len() < MAX_DIFF {
            // Exit code 1 means "they differ".
            if let Ok(d) = crate::git::run_allowing(
                workdir,
                &["diff", "--no-index", "--", "/dev/null", file],
                &[0, 1],
            ) {
                diff.push_str(&d);
            }
        }
    }
    if stat.trim().is_empty() {
        stat = "(no changes)".into();
    }
    if diff.len() > MAX_DIFF {
        diff = format!(
            "{}\n[ai-sdlc: the diff is cut here at {} KiB; run `git diff {from}` for the rest]\n",
            agent::cut(&diff, MAX_DIFF),
            MAX_DIFF / 1024
        );
    }
    (stat.trim_end().to_string(), diff.trim_end().to_string())
}
