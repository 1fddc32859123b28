//! The story's work as a review reads it: a diff stat and a diff against
//! where its branch left the base, commits and uncommitted changes, new
//! files included. Read only: nothing in the worktree or its index changes.

use crate::agent;
use crate::git::diff;

/// The diff a review reads is cut to this many bytes.
const MAX_DIFF: usize = 200 * 1024;

/// The story's work as a diff stat and a diff against where its branch
/// left `base`: commits and uncommitted changes, new files included. Read
/// only: nothing in the worktree or its index changes, and git's output is
/// read only up to `MAX_DIFF` (an agent may leave a huge file).
pub fn review_diff(workdir: &std::path::Path, base: &str) -> (String, String) {
    let base = if base.is_empty() { "HEAD" } else { base };
    let from = diff::merge_base(workdir, base, "HEAD").unwrap_or_else(|_| "HEAD".to_string());
    let unavailable = |e: crate::git::GitError| format!("(no diff: {e})");
    let mut cut = false;
    let mut stat = match diff::stat(workdir, &from) {
        Ok(b) => b.text,
        Err(e) => unavailable(e),
    };
    let mut text = match diff::patch(workdir, &from, MAX_DIFF + 1) {
        Ok(b) => {
            cut |= b.cut;
            b.text
        }
        Err(e) => unavailable(e),
    };
    for file in diff::untracked(workdir)
        .unwrap_or_default()
        .iter()
        .take(200)
    {
        stat.push_str(&format!(" {file} (new, not yet added)\n"));
        let room = (MAX_DIFF + 1).saturating_sub(text.len());
        if room == 0 {
            cut = true;
            continue;
        }
        if let Ok(d) = diff::new_file(workdir, file, room) {
            cut |= d.cut;
            text.push_str(&d.text);
        }
    }
    if stat.trim().is_empty() {
        stat = "(no changes)".into();
    }
    if cut || text.len() > MAX_DIFF {
        text = format!(
            "{}\n[ai-sdlc: the diff is cut here at {} KiB; run `git diff {from}` for the rest]\n",
            agent::cut(&text, MAX_DIFF),
            MAX_DIFF / 1024
        );
    }
    (stat.trim_end().to_string(), text.trim_end().to_string())
}
