//! A story that does not land as it is goes back to its agent (SPEC §14):
//! its worktree gets the merge of the base into its branch, conflict
//! markers and all, as uncommitted changes (no merge is left half-applied:
//! git has no merge in progress there), and `land.md` says what to
//! resolve; after the agent's `resolve` phase, the runner commits the merge.

use super::merge::keep_tip;
use super::{Fit, Landing};
use crate::board::Board;
use crate::config::Config;
use crate::git;
use crate::workflow::LAND_FILE;
use std::path::{Path, PathBuf};

/// Why a story goes back to its agent.
#[derive(Debug, Clone)]
pub enum Trouble {
    /// It conflicts with the base in these files (with these stories).
    Conflict {
        files: Vec<String>,
        with: Vec<String>,
    },
    /// `merge.verify` failed on the merged result: its output.
    Verify(String),
}

impl Trouble {
    /// For people: "conflicts with S-0011 in shared.txt".
    pub fn describe(&self) -> String {
        match self {
            Trouble::Conflict { files, with } if with.is_empty() => {
                format!("conflicts with the base in {}", files.join(", "))
            }
            Trouble::Conflict { files, with } => {
                format!("conflicts with {} in {}", with.join(", "), files.join(", "))
            }
            Trouble::Verify(out) => format!(
                "merge.verify fails on the merged result: {}",
                out.lines().next().unwrap_or("")
            ),
        }
    }
}

/// The story's worktree, made (on its branch) when it has none. Refused
/// when it holds uncommitted changes: they are someone's work.
fn worktree_of(config: &Config, l: &Landing, base: &str) -> Result<PathBuf, String> {
    let root = &config.root;
    let wt_base = config.worktree_base();
    let (folder, _) = crate::worktree::place(root, &wt_base, &l.story)?;
    {
        let held = crate::worktree::serialize(root, &wt_base)?;
        crate::worktree::prepare(root, &held, &folder, &l.branch, base)?;
    }
    let wt = wt_base.join(folder);
    crate::worktree::check_link(root, &wt)?;
    let changes = crate::worktree::changes(&wt)?;
    if !changes.is_empty() {
        return Err(format!(
            "its worktree {} has {} uncommitted changes (an interrupted resolve?); look at them, commit or discard them, and land again",
            wt.display(),
            changes.len()
        ));
    }
    Ok(wt)
}

/// Give the worktree of story `l` the merge of `base_tip` into its branch,
/// as uncommitted changes, and write `land.md` for its resolve phase. The
/// worktree, and the branch tip the merge is made on.
pub fn prepare(
    config: &Config,
    l: &Landing,
    base: &str,
    base_tip: &str,
    trouble: &Trouble,
) -> Result<(PathBuf, String), String> {
    let root = &config.root;
    let wt = worktree_of(config, l, base)?;
    let tip = git::refs::commit_of(&wt, "HEAD")?;
    // The merged tree, with conflict markers where both changed a line.
    let tree = match git::commit::merge_tree(root, &tip, base_tip) {
        Ok(Fit::Clean(t)) => t,
        Ok(Fit::Conflict(_)) => conflicted_tree(root, &tip, base_tip)?,
        Err(e) => return Err(e.message),
    };
    git::run(&wt, &["read-tree", "-m", "-u", "HEAD", &tree])?;
    let mut text = format!(
        "# Landing on {base}\n\nThe story's branch {} does not land on {base} as it is: it {}.\n",
        l.branch,
        trouble.describe()
    );
    match trouble {
        Trouble::Conflict { files, .. } => {
            text.push_str("\nThe worktree holds the merge of the base into the branch; these files have conflict markers:\n\n");
            for f in files {
                text.push_str(&format!("- {f}\n"));
            }
        }
        Trouble::Verify(out) => {
            text.push_str(&format!(
                "\nThe worktree holds the merge of the base into the branch. The checks ({}) said:\n\n```\n{}\n```\n",
                config.land.verify.as_ref().map(|v| v.join(" ")).unwrap_or_default(),
                crate::workflow::bounded(out)
            ));
        }
    }
    Board::of(config).write_section(&l.story.id, LAND_FILE, &text)?;
    Ok((wt, tip))
}

/// The tree of a merge with conflicts: git writes the conflicted files with
/// their markers into it.
fn conflicted_tree(root: &Path, a: &str, b: &str) -> Result<String, String> {
    let out = git::run_allowing(
        root,
        &["merge-tree", "--write-tree", "--no-messages", a, b],
        &[0, 1],
    )?;
    out.lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "git merge-tree gave no tree".to_string())
}

/// Lines that mark a conflict git left in a file.
fn has_markers(text: &str) -> bool {
    text.lines().any(|l| {
        l.starts_with("<<<<<<< ") || l.starts_with(">>>>>>> ") || l == "=======" || l == "<<<<<<<"
    })
}

/// After the agent's resolve phase: commit the merge of `base_tip` into
/// the story's branch (its old tip `tip` kept first), unless a conflict
/// marker is left. The merge commit.
pub fn finish(
    config: &Config,
    l: &Landing,
    wt: &Path,
    tip: &str,
    base_tip: &str,
) -> Result<String, String> {
    let root = &config.root;
    crate::worktree::check_link(root, wt)?;
    if git::refs::commit_of(wt, "HEAD")? != tip {
        return Err(format!(
            "the agent moved {}'s HEAD during the resolve; its work is in {}, uncommitted",
            l.branch,
            wt.display()
        ));
    }
    let touched = git::run(wt, &["diff", "--name-only", "HEAD", "--"])?;
    let dir = crate::paths::Dir::open(wt).map_err(|e| e.to_string())?;
    for f in touched.lines().filter(|f| !f.is_empty()) {
        let p = Path::new(f);
        let (parent, name) = (p.parent().unwrap_or(Path::new("")), p.file_name());
        let Some(name) = name.and_then(|n| n.to_str()) else {
            continue;
        };
        let text = dir
            .descend(parent, false)
            .ok()
            .and_then(|d| d.read(name, 64 << 20).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if has_markers(&text) {
            return Err(format!(
                "the agent left conflict markers in {f}; its work is in {}, uncommitted",
                wt.display()
            ));
        }
    }
    git::run(wt, &["add", "-A"])?;
    let tree = git::run(wt, &["write-tree"])?.trim().to_string();
    let id = &l.story.id;
    let base = super::base(config).map_err(|e| e.to_string())?;
    let message = format!(
        "Merge {base} into {}: conflicts resolved by its agent\n\nStory: {id}\n",
        l.branch
    );
    let merge = git::commit::commit_tree(root, &tree, &[tip, base_tip], &message)?;
    keep_tip(root, id, tip)?;
    // The worktree's HEAD is the branch: it follows, its index is the tree.
    git::refs::update(
        root,
        &format!("refs/heads/{}", l.branch),
        &merge,
        tip,
        "ai-sdlc land: resolved",
    )?;
    Ok(merge)
}

/// After a round that did not resolve: what is in the worktree (the merge
/// and the agent's edits) is kept as a commit under
/// `refs/ai-sdlc/previous/<ID>/<n>`, and the worktree goes back to the
/// branch's tip for the next round. The ref it is kept under.
pub fn set_aside(config: &Config, l: &Landing, wt: &Path, tip: &str) -> Result<String, String> {
    crate::worktree::check_link(&config.root, wt)?;
    git::run(wt, &["add", "-A"])?;
    let tree = git::run(wt, &["write-tree"])?.trim().to_string();
    let message = format!("ai-sdlc land: an unfinished resolve of {}", l.story.id);
    let commit = git::commit::commit_tree(&config.root, &tree, &[tip], &message)?;
    let kept = keep_tip(&config.root, &l.story.id, &commit)?;
    git::run(wt, &["reset", "--quiet", "--hard", tip])?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    #[test]
    fn conflict_markers_are_found_and_plain_text_is_not() {
        assert!(super::has_markers(
            "a\n<<<<<<< HEAD\nb\n=======\nc\n>>>>>>> main\n"
        ));
        assert!(!super::has_markers("a\n== heading ==\n<<< not one\n"));
    }
}
