//! `ai-sdlc merge <ID>... | --all`: story branches into their base, one at
//! a time, in dependency then priority order.
//!
//! Safety: the merge is made in git's object store (`merge-tree`,
//! `commit-tree`), or for `rebase` in a throwaway worktree; `merge.verify`
//! runs on the result in a throwaway worktree; only then does the base
//! move: `git merge --ff-only` in the worktree that has it checked out (so
//! its files follow), else a compare-and-swap `update-ref`. Before any of
//! that, a base checkout with uncommitted changes (the board's files
//! aside) is refused, and a branch that would conflict stops the run there.

use super::{Fit, Landing, merge_tree};
use crate::config::Config;
use crate::error::Error;
use crate::git;
use crate::paths::rel;
use std::path::{Path, PathBuf};

/// The merged commit, and how it was made.
pub struct Made {
    pub commit: String,
    pub how: &'static str,
}

/// Make the commit the base will move to, without touching the base.
pub fn make(config: &Config, tip: &str, l: &Landing) -> Result<Made, String> {
    let root = &config.root;
    let id = &l.story.id;
    let conflict = |files: Vec<String>| {
        format!(
            "{} does not merge cleanly into the base: conflicts in {}. See `ai-sdlc review {id}`; rebase the branch on the base, or run the story again from it",
            l.branch,
            files.join(", ")
        )
    };
    let title: String = l.story.title.chars().filter(|c| !c.is_control()).collect();
    match config.land.strategy.as_str() {
        "squash" => match merge_tree(root, tip, &l.branch)? {
            Fit::Conflict(f) => Err(conflict(f)),
            Fit::Clean(tree) => {
                let subjects = git::run(
                    root,
                    &["log", "--format=- %s", &format!("{tip}..{}", l.branch)],
                )?;
                let msg = format!("{id}: {title}\n\n{}\n\nStory: {id}\n", subjects.trim_end());
                Ok(Made {
                    commit: super::commit_tree(root, &tree, &[tip], &msg)?,
                    how: "squashed as",
                })
            }
        },
        "rebase" => rebase(config, tip, l).map(|commit| Made {
            commit,
            how: "rebased onto it, now at",
        }),
        _ => {
            if git::is_ancestor(root, tip, &l.branch)? {
                let commit = git::run(root, &["rev-parse", &l.branch])?
                    .trim()
                    .to_string();
                return Ok(Made {
                    commit,
                    how: "fast-forward to",
                });
            }
            match merge_tree(root, tip, &l.branch)? {
                Fit::Conflict(f) => Err(conflict(f)),
                Fit::Clean(tree) => {
                    let msg = format!("Merge {}: {id} {title}\n\nStory: {id}\n", l.branch);
                    Ok(Made {
                        commit: super::commit_tree(root, &tree, &[tip, &l.branch], &msg)?,
                        how: "merge commit",
                    })
                }
            }
        }
    }
}

/// A throwaway worktree, detached at `at`, removed on drop.
struct Scratch {
    root: PathBuf,
    path: PathBuf,
}

impl Scratch {
    fn new(root: &Path, wt_base: &Path, at: &str) -> Result<Scratch, String> {
        let _ = std::fs::create_dir_all(wt_base);
        let path = wt_base.join(format!(
            ".land-{}-{}",
            std::process::id(),
            crate::time::now_ms()
        ));
        git::worktree::add_detached(root, &path, at)?;
        Ok(Scratch {
            root: root.to_path_buf(),
            path,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Ours, made a moment ago: removed with whatever the verify built.
        let _ = git::worktree::remove(&self.root, &self.path, true);
    }
}

/// The branch's commits replayed onto `tip`, in a throwaway worktree.
fn rebase(config: &Config, tip: &str, l: &Landing) -> Result<String, String> {
    let scratch = Scratch::new(&config.root, &config.worktree_base(), &l.branch)?;
    let p = &scratch.path;
    if let Err(e) = git::run(p, &["-c", "commit.gpgsign=false", "rebase", "--quiet", tip]) {
        let files = git::run(p, &["diff", "--name-only", "--diff-filter=U"]).unwrap_or_default();
        let _ = git::run(p, &["rebase", "--abort"]);
        let files: Vec<&str> = files.lines().collect();
        return Err(if files.is_empty() {
            format!("{} cannot be rebased onto the base: {e}", l.branch)
        } else {
            format!(
                "{} does not rebase cleanly onto the base: conflicts in {}. See `ai-sdlc review {}`",
                l.branch,
                files.join(", "),
                l.story.id
            )
        });
    }
    Ok(git::run(p, &["rev-parse", "HEAD"])?.trim().to_string())
}

/// Run `merge.verify` on `commit`, checked out in a throwaway worktree.
pub fn verify(root: &Path, wt_base: &Path, commit: &str, argv: &[String]) -> Result<(), String> {
    let scratch = Scratch::new(root, wt_base, commit)?;
    errln!(
        "ai-sdlc: merge.verify: {} (in {})",
        argv.join(" "),
        rel(root, &scratch.path)
    );
    let status = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(&scratch.path)
        .stdin(std::process::Stdio::null())
        .status()
        .map_err(|e| format!("cannot run {:?}: {e}", argv[0]))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {}",
            argv.join(" "),
            crate::process::exit_text(status)
        ))
    }
}

pub fn same_dir(a: &Path, b: &Path) -> bool {
    a.canonicalize().ok() == b.canonicalize().ok()
}

/// The worktree that has `branch` checked out, if one does.
pub fn checked_out(root: &Path, branch: &str) -> Result<Option<PathBuf>, Error> {
    let list = crate::worktree::list(root).map_err(Error::failed)?;
    Ok(list
        .into_iter()
        .find(|e| e.branch.as_deref() == Some(branch))
        .map(|e| e.path))
}

/// Uncommitted changes to tracked files in `worktree`, the board aside.
pub fn uncommitted(worktree: &Path, sdlc_folder: &str) -> Result<Vec<String>, Error> {
    let out = git::status::tracked_changes(worktree).map_err(|e| Error::failed(e.message))?;
    let board = format!("{}/", sdlc_folder.trim_end_matches('/'));
    Ok(out
        .into_iter()
        .filter(|l| l.len() > 3 && !l[3..].trim_matches('"').starts_with(&board))
        .collect())
}

/// Delete a merged story's branch, unless a worktree has it checked out:
/// what was done, or why not (`Err`).
pub fn delete_branch(root: &Path, l: &Landing) -> Result<String, String> {
    match checked_out(root, &l.branch) {
        Ok(Some(w)) => Ok(format!(
            "{}: kept branch {}: it is checked out in {}",
            l.story.id,
            l.branch,
            w.display()
        )),
        _ => match git::refs::delete_branch(root, &l.branch) {
            Ok(_) => Ok(format!("{}: deleted branch {}", l.story.id, l.branch)),
            Err(e) => Err(format!("cannot delete {}: {e}", l.branch)),
        },
    }
}
