//! Stacking (SPEC §14): a story with dependencies starts from their work,
//! not from the bare base. From the base when every dependency is in it;
//! from the one unmerged dependency's branch tip; from a merge of several
//! unmerged ones onto the base, made in git's object store (a conflict
//! between them blocks the story).

use super::{Fit, branch_of};
use crate::board::{Board, Story};
use crate::git;
use std::path::Path;

/// Where a new story branch starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// The commit: also the story's `base_ref`.
    pub commit: String,
    /// The dependencies whose branches it holds beyond the base.
    pub on: Vec<String>,
}

impl Start {
    /// For the log and the dashboard: "stacked on S-0001", "stacked on a merge of S-0001, S-0003".
    pub fn describe(&self) -> Option<String> {
        match self.on.as_slice() {
            [] => None,
            [one] => Some(format!("stacked on {one}")),
            many => Some(format!("stacked on a merge of {}", many.join(", "))),
        }
    }
}

/// A dependency's branch that is not in the base yet: its id and tip.
fn unmerged(root: &Path, board: &Board, base_tip: &str, dep: &str) -> Option<(String, String)> {
    let story = board.load(dep).ok()?;
    let branch = branch_of(&story);
    let tip = git::refs::commit_of(root, &format!("refs/heads/{branch}")).ok()?;
    match git::is_ancestor(root, &tip, base_tip) {
        Ok(false) => Some((dep.to_string(), tip)),
        _ => None,
    }
}

/// Where `story`'s new branch starts, given the base (`from`: a branch or
/// a commit). `Err` says which dependencies conflict, and in what files.
pub fn start_point(root: &Path, board: &Board, story: &Story, from: &str) -> Result<Start, String> {
    let base_tip = git::refs::commit_of(root, from).map_err(|e| e.message)?;
    let deps: Vec<(String, String)> = story
        .dependencies
        .iter()
        .filter_map(|d| unmerged(root, board, &base_tip, d))
        .collect();
    let commit = match deps.as_slice() {
        [] => base_tip,
        [(_, tip)] => tip.clone(),
        _ => merge_all(root, &base_tip, &deps)?,
    };
    Ok(Start {
        commit,
        on: deps.into_iter().map(|(id, _)| id).collect(),
    })
}

/// The base with each dependency's branch merged in, in order.
fn merge_all(root: &Path, base_tip: &str, deps: &[(String, String)]) -> Result<String, String> {
    let mut tip = base_tip.to_string();
    for (i, (id, branch_tip)) in deps.iter().enumerate() {
        match git::commit::merge_tree(root, &tip, branch_tip).map_err(|e| e.message)? {
            Fit::Clean(tree) => {
                let message =
                    format!("Merge the work of {id} (ai-sdlc: the start of a stacked story)");
                tip = git::commit::commit_tree(root, &tree, &[&tip, branch_tip], &message)
                    .map_err(|e| e.message)?;
            }
            Fit::Conflict(files) => {
                let before: Vec<&str> = deps[..i].iter().map(|(d, _)| d.as_str()).collect();
                return Err(format!(
                    "dependencies {} and {id} conflict in {}; land one of them first (ai-sdlc land), or make them agree",
                    before.join(", "),
                    files.join(", ")
                ));
            }
        }
    }
    Ok(tip)
}

/// Whether a stacked story's dependency moved on after the story started
/// (a review round): the ids of those whose branch tip is not in the
/// story's branch any more ("stacked on an older S-0001").
pub fn stale_deps(root: &Path, board: &Board, story: &Story, branch_tip: &str) -> Vec<String> {
    if story.base_ref.is_none() {
        return Vec::new();
    }
    story
        .dependencies
        .iter()
        .filter(|d| {
            let Ok(dep) = board.load(d) else { return false };
            if dep.merged_at.is_some() {
                return false;
            }
            let Ok(tip) = git::refs::commit_of(root, &format!("refs/heads/{}", branch_of(&dep)))
            else {
                return false;
            };
            matches!(git::is_ancestor(root, &tip, branch_tip), Ok(false))
        })
        .cloned()
        .collect()
}
