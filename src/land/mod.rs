//! Landing the work (SPEC §11): `review` (see and compare story branches),
//! `merge` (into their base, safely) and `pr` (push, pull request).
//!
//! Everything is computed without touching a working tree: `git
//! merge-tree --write-tree` says whether a branch merges cleanly, and
//! chaining it over the branches in merge order (with throwaway commits
//! that nothing points at) says whether it still will after the ones
//! before it.

pub mod merge;
pub mod pr;
pub mod queue;
pub mod resolve;
pub mod stack;

use crate::board::{Scan, Story, queue_order};
use crate::config::Config;
use crate::error::Error;
use crate::git;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A story and its branch (which exists).
#[derive(Debug, Clone)]
pub struct Landing {
    pub story: Story,
    pub branch: String,
}

/// The base the story branches go into: `worktree.baseBranch`, else the
/// branch the repo has checked out. It must be a branch.
pub fn base(config: &Config) -> Result<String, Error> {
    let b = crate::worktree::base_branch(&config.root, config.worktree.base_branch.as_deref())
        .map_err(Error::usage)?;
    if !git::resolves(&config.root, &format!("refs/heads/{b}"))
        .map_err(|e| Error::failed(e.message))?
    {
        return Err(Error::usage(format!(
            "the base {b:?} is not a branch (a detached HEAD?): check out the branch stories merge into, or set worktree.baseBranch in {}",
            config.file_name()
        )));
    }
    Ok(b)
}

/// The story's branch: the one it names, else ours.
pub fn branch_of(story: &Story) -> String {
    story
        .branch
        .clone()
        .unwrap_or_else(|| crate::worktree::branch_name(&story.key()))
}

/// Every story whose branch exists, in queue order.
pub fn landings(config: &Config, scan: &Scan) -> Result<Vec<Landing>, Error> {
    let tips = git::refs::branch_tips(&config.root).map_err(|e| Error::failed(e.message))?;
    Ok(scan
        .stories
        .iter()
        .map(|s| (s, branch_of(s)))
        .filter(|(_, b)| crate::worktree::branch_problem(b).is_none() && tips.contains_key(b))
        .map(|(s, branch)| Landing {
            story: s.clone(),
            branch,
        })
        .collect())
}

/// Merge order: a story after the stories it depends on, otherwise queue order.
pub fn merge_order(mut list: Vec<Landing>) -> Vec<Landing> {
    list.sort_by(|a, b| queue_order(&a.story, &b.story));
    let ids: HashSet<String> = list.iter().map(|l| l.story.id.clone()).collect();
    let mut placed: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    while !list.is_empty() {
        // The first whose dependencies (among these) are placed; a cycle
        // falls back to queue order.
        let at = list
            .iter()
            .position(|l| {
                l.story
                    .dependencies
                    .iter()
                    .all(|d| !ids.contains(d) || placed.contains(d))
            })
            .unwrap_or(0);
        let l = list.remove(at);
        placed.insert(l.story.id.clone());
        out.push(l);
    }
    out
}

/// Commits ahead and behind the base, and the diff stat of the branch's work.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    pub ahead: u64,
    pub behind: u64,
    pub files: u64,
    pub insertions: u64,
    pub deletions: u64,
}

pub fn counts(root: &Path, base: &str, branch: &str) -> Result<Counts, String> {
    let range = format!("{base}...{branch}");
    let lr = git::run(root, &["rev-list", "--left-right", "--count", &range, "--"])?;
    let mut nums = lr.split_whitespace().map(|n| n.parse::<u64>().unwrap_or(0));
    let (behind, ahead) = (nums.next().unwrap_or(0), nums.next().unwrap_or(0));
    let stat = git::run(root, &["diff", "--shortstat", &range, "--"])?;
    let mut c = Counts {
        ahead,
        behind,
        ..Counts::default()
    };
    for part in stat.split(',') {
        let n = part
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if part.contains("file") {
            c.files = n;
        } else if part.contains("insertion") {
            c.insertions = n;
        } else if part.contains("deletion") {
            c.deletions = n;
        }
    }
    Ok(c)
}

pub use crate::git::commit::Fit;

/// Merge `branch` into `onto` in git's object store only.
pub fn merge_tree(root: &Path, onto: &str, branch: &str) -> Result<Fit, String> {
    Ok(git::commit::merge_tree(root, onto, branch)?)
}

/// A commit of `tree` with `parents`, made by the tool (unsigned, no hook).
pub fn commit_tree(
    root: &Path,
    tree: &str,
    parents: &[&str],
    message: &str,
) -> Result<String, String> {
    Ok(git::commit::commit_tree(root, tree, parents, message)?)
}

/// Would each branch merge cleanly now, and after the ones before it (in
/// this order) are merged? A throwaway commit stands for each merge.
pub fn predict(
    root: &Path,
    base: &str,
    order: &[Landing],
) -> Result<HashMap<String, Prediction>, String> {
    let mut out = HashMap::new();
    let mut tip = git::refs::commit_of(root, &format!("refs/heads/{base}"))?;
    let base_tip = tip.clone();
    // The stories merged before, with the branch tip each brought.
    let mut merged_before: Vec<(String, String)> = Vec::new();
    for l in order {
        let now = merge_tree(root, &base_tip, &l.branch)?;
        let after = if tip == base_tip {
            now.clone()
        } else {
            merge_tree(root, &tip, &l.branch)?
        };
        let mut with = Vec::new();
        match &after {
            Fit::Clean(tree) => {
                let ahead = counts(root, &tip, &l.branch).map(|c| c.ahead).unwrap_or(0);
                if ahead > 0 {
                    tip = commit_tree(
                        root,
                        tree,
                        &[&tip, &l.branch],
                        "ai-sdlc review: simulated merge",
                    )?;
                    let branch_tip =
                        git::refs::commit_of(root, &format!("refs/heads/{}", l.branch))?;
                    merged_before.push((l.story.id.clone(), branch_tip));
                }
            }
            Fit::Conflict(files) => {
                with = conflicting_stories(root, &base_tip, &merged_before, &l.branch, files);
            }
        }
        out.insert(
            l.story.id.clone(),
            Prediction {
                now,
                after,
                before: merged_before
                    .iter()
                    .map(|(id, _)| id.clone())
                    .filter(|id| *id != l.story.id)
                    .collect(),
                with,
            },
        );
    }
    Ok(out)
}

/// Which of the stories merged before (id, branch tip) `branch` conflicts
/// with in `files`: each one that, merged alone into the base, makes
/// `branch` conflict in one of them.
fn conflicting_stories(
    root: &Path,
    base_tip: &str,
    before: &[(String, String)],
    branch: &str,
    files: &[String],
) -> Vec<String> {
    before
        .iter()
        .filter(|(_, other)| {
            let alone = match merge_tree(root, base_tip, other) {
                Ok(Fit::Clean(tree)) => {
                    commit_tree(root, &tree, &[base_tip, other], "ai-sdlc review: simulated merge").ok()
                }
                _ => None,
            };
            alone.is_some_and(|c| {
                matches!(merge_tree(root, &c, branch), Ok(Fit::Conflict(f)) if f.iter().any(|x| files.contains(x)))
            })
        })
        .map(|(id, _)| id.clone())
        .collect()
}

#[derive(Debug, Clone)]
pub struct Prediction {
    /// Into the base as it is.
    pub now: Fit,
    /// Into the base with the branches before it merged.
    pub after: Fit,
    /// Which stories those were.
    pub before: Vec<String>,
    /// Which of them it conflicts with.
    pub with: Vec<String>,
}

impl Prediction {
    /// For people: `clean`, `conflict: a.rs`, `clean now; conflicts with
    /// S-0001 in a.rs`.
    pub fn text(&self) -> String {
        let fit = |f: &Fit| match f {
            Fit::Clean(_) => "clean".to_string(),
            Fit::Conflict(files) => format!("conflict: {}", files.join(", ")),
        };
        match (&self.now, &self.after) {
            (a, b) if fit(a) == fit(b) => fit(a),
            (a, Fit::Conflict(files)) if !self.with.is_empty() => format!(
                "{} now; conflicts with {} in {}",
                fit(a),
                self.with.join(", "),
                files.join(", ")
            ),
            (a, b) => format!(
                "{} now; after {}: {}",
                fit(a),
                self.before.join(", "),
                fit(b)
            ),
        }
    }
}
