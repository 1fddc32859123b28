//! One story onto its base: the primitive under `merge` and `land`.
//!
//! Safety: what the base will move to is made in git's object store only
//! (`merge-tree`, `commit-tree`, and a replay of commits for `rebase` and
//! restacking); `merge.verify` runs on it in a throwaway worktree; only
//! then does the base move: `git merge --ff-only` in the worktree that has
//! it checked out (so its files follow), else a compare-and-swap
//! `update-ref`. A story branch is moved only after its old tip is kept
//! under `refs/ai-sdlc/previous/<ID>/<n>`. Nothing is ever half-applied in
//! a checkout: an interruption between two steps leaves every ref where it
//! was, or where the last step put it.

use super::{Fit, Landing};
use crate::board::{Board, text};
use crate::config::Config;
use crate::error::Error;
use crate::git::{self, commit::Replayed};
use std::path::{Path, PathBuf};

/// The branch stories land on, and the worktree that has it checked out.
pub struct Base {
    pub name: String,
    pub checkout: Option<PathBuf>,
}

impl Base {
    /// The base of `config`, refused before anything moves when its
    /// checkout has uncommitted changes (the board's files aside).
    pub fn open(config: &Config) -> Result<Base, Error> {
        let root = &config.root;
        let name = super::base(config)?;
        let checkout = checked_out(root, &name)?;
        if let Some(w) = checkout.as_ref().filter(|w| !same_dir(w, root)) {
            crate::worktree::check_link(root, w).map_err(Error::failed)?;
        }
        if let Some(w) = &checkout {
            let dirty = uncommitted(w, &config.sdlc_folder)?;
            if !dirty.is_empty() {
                return Err(Error::failed(format!(
                    "{name} is checked out in {} with uncommitted changes; nothing was landed. Commit or stash them first:\n  {}",
                    w.display(),
                    dirty.join("\n  ")
                )));
            }
        }
        Ok(Base { name, checkout })
    }

    /// The commit the base is at now.
    pub fn tip(&self, root: &Path) -> Result<String, String> {
        Ok(git::refs::commit_of(
            root,
            &format!("refs/heads/{}", self.name),
        )?)
    }
}

/// What the base will move to, and how it was made.
#[derive(Debug, Clone)]
pub struct Made {
    pub commit: String,
    pub how: &'static str,
    /// Where the story branch moves with it (to what landed), if anywhere.
    pub branch_to: Option<String>,
    /// Where the story branch was when this was made.
    pub from: String,
}

/// Why a story cannot land as it is.
#[derive(Debug, Clone, PartialEq)]
pub enum Stopped {
    /// It conflicts with the base, in these files.
    Conflict(Vec<String>),
    /// Anything else (git failed), in words.
    Other(String),
}

impl From<String> for Stopped {
    fn from(e: String) -> Stopped {
        Stopped::Other(e)
    }
}

impl From<git::GitError> for Stopped {
    fn from(e: git::GitError) -> Stopped {
        Stopped::Other(e.message)
    }
}

/// Where the story's own commits start, and whether that is off the base
/// (a stacked story whose dependency moved): the commit its branch started
/// from (`base_ref`) when that is in its history but not in the base; else
/// `meet`, where it meets the base.
fn upstream(
    root: &Path,
    base_tip: &str,
    tip: &str,
    meet: &str,
    l: &Landing,
) -> Result<(String, bool), Stopped> {
    if let Some(r) = l.story.base_ref.as_deref().filter(|r| *r != meet)
        && git::is_ancestor(root, r, tip)?
        && !git::is_ancestor(root, r, base_tip)?
    {
        return Ok((r.to_string(), true));
    }
    Ok((meet.to_string(), false))
}

/// The story's own commits replayed onto the base (a rebase in git's
/// object store): the new tip, or the conflict; `None` when its history
/// holds a merge (a resolved conflict), which a replay does not redo.
fn replayed(
    root: &Path,
    base_tip: &str,
    upstream: &str,
    tip: &str,
) -> Result<Option<String>, Stopped> {
    match git::commit::replay(root, base_tip, upstream, tip)? {
        Replayed::Done(t) => Ok(Some(t)),
        Replayed::Conflict { files, .. } => Err(Stopped::Conflict(files)),
        Replayed::HasMerges => Ok(None),
    }
}

/// One commit on the base with the tree of `base` merged with `src`.
fn squash(root: &Path, base_tip: &str, src: &str, message: &str) -> Result<String, Stopped> {
    match git::commit::merge_tree(root, base_tip, src)? {
        Fit::Conflict(f) => Err(Stopped::Conflict(f)),
        Fit::Clean(tree) => Ok(git::commit::commit_tree(root, &tree, &[base_tip], message)?),
    }
}

/// Make the commit the base will move to from `base_tip`, without moving
/// anything (`merge.strategy`). A stacked story whose dependency landed is
/// first restacked onto the base: its own commits only (from its
/// `base_ref`), so its dependency's are not duplicated. `None` when its
/// work is in the base already.
pub fn make(config: &Config, base_tip: &str, l: &Landing) -> Result<Option<Made>, Stopped> {
    let root = &config.root;
    let tip = git::refs::commit_of(root, &format!("refs/heads/{}", l.branch))?;
    // One call answers "already in" (it meets the base at its own tip) and
    // "a fast-forward" (at the base's).
    let meet = git::diff::merge_base(root, base_tip, &tip)?;
    if meet == tip {
        return Ok(None);
    }
    let id = &l.story.id;
    let title: String = l.story.title.chars().filter(|c| !c.is_control()).collect();
    let (up, stacked) = upstream(root, base_tip, &tip, &meet, l)?;
    let ff = !stacked && meet == base_tip;
    let made = |commit: String, how| Made {
        branch_to: (commit != tip).then(|| commit.clone()),
        from: tip.clone(),
        commit,
        how,
    };
    let squashed_message = || -> Result<String, Stopped> {
        let subjects = git::run(
            root,
            &["log", "--format=- %s", &format!("{base_tip}..{tip}")],
        )?;
        Ok(format!(
            "{id}: {title}\n\n{}\n\nStory: {id}\n",
            subjects.trim_end()
        ))
    };
    Ok(Some(match config.land.strategy.as_str() {
        "squash" => {
            let src = match stacked {
                true => replayed(root, base_tip, &up, &tip)?.unwrap_or(tip.clone()),
                false => tip.clone(),
            };
            made(
                squash(root, base_tip, &src, &squashed_message()?)?,
                "squashed as",
            )
        }
        "rebase" if ff => made(tip.clone(), "fast-forward to"),
        "rebase" => match replayed(root, base_tip, &up, &tip)? {
            Some(t) => made(t, "rebased onto it, now at"),
            // A resolved conflict is a merge: its work lands as one commit.
            None => {
                let message = format!("{id}: {title}\n\nStory: {id}\n");
                made(
                    squash(root, base_tip, &tip, &message)?,
                    "squashed (its history holds a merge) as",
                )
            }
        },
        _ if ff => made(tip.clone(), "fast-forward to"),
        _ if stacked => match replayed(root, base_tip, &up, &tip)? {
            Some(t) => made(t, "restacked onto it, now at"),
            None => {
                merge_commit(root, base_tip, &tip, l, &title).map(|c| made(c, "merge commit"))?
            }
        },
        _ => made(
            merge_commit(root, base_tip, &tip, l, &title)?,
            "merge commit",
        ),
    }))
}

fn merge_commit(
    root: &Path,
    base_tip: &str,
    tip: &str,
    l: &Landing,
    title: &str,
) -> Result<String, Stopped> {
    let id = &l.story.id;
    match git::commit::merge_tree(root, base_tip, tip)? {
        Fit::Conflict(f) => Err(Stopped::Conflict(f)),
        Fit::Clean(tree) => {
            let msg = format!("Merge {}: {id} {title}\n\nStory: {id}\n", l.branch);
            Ok(git::commit::commit_tree(
                root,
                &tree,
                &[base_tip, tip],
                &msg,
            )?)
        }
    }
}

/// A throwaway worktree, detached at `at`, removed on drop (with what
/// was made in it: it is ours).
pub struct Scratch {
    root: PathBuf,
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(root: &Path, wt_base: &Path, at: &str) -> Result<Scratch, String> {
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

/// The end of a check's output kept for people and for a resolve phase.
const MAX_VERIFY_OUTPUT: usize = 16 << 10;

/// Run `merge.verify` on `commit`, checked out in a throwaway worktree. On
/// failure: what it said (its last 16 KiB) and how it ended. A stop (Ctrl-C)
/// stops it.
pub fn verify(root: &Path, wt_base: &Path, commit: &str, argv: &[String]) -> Result<(), String> {
    let scratch = Scratch::new(root, wt_base, commit)?;
    let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
    let answer = crate::process::ask(
        &argv_ref,
        &scratch.path,
        std::time::Duration::from_secs(3600),
    )?;
    if answer.code == Some(0) {
        return Ok(());
    }
    let text = answer.text.trim();
    let tail = &text[text.len().saturating_sub(MAX_VERIFY_OUTPUT)..];
    let tail = tail.trim_start_matches(|c: char| !c.is_ascii());
    Err(format!(
        "{} {}\n{tail}",
        argv.join(" "),
        match answer.code {
            Some(c) => format!("exited with code {c}"),
            None => "was killed by a signal".into(),
        }
    ))
}

/// What `advance` did.
pub struct Advanced {
    /// The story branch's old tip, kept under this ref, when it moved.
    pub kept: Option<String>,
    /// Why the story branch did not move with the base, if it did not.
    pub branch_stayed: Option<String>,
}

/// Move the base from `base_tip` to `made.commit`; then the story branch
/// to what landed (its old tip kept first); then write `merged_at`.
pub fn advance(
    config: &Config,
    base: &Base,
    base_tip: &str,
    l: &Landing,
    made: &Made,
) -> Result<Advanced, String> {
    let root = &config.root;
    let moved = match &base.checkout {
        Some(w) => git::run(w, &["merge", "--ff-only", "--quiet", &made.commit]).map(|_| ()),
        None => git::refs::update(
            root,
            &format!("refs/heads/{}", base.name),
            &made.commit,
            base_tip,
            &format!("ai-sdlc land {}", l.story.id),
        ),
    };
    moved.map_err(|e| {
        format!(
            "cannot move {} to the merge ({e}); {} is as it was: commit or stash what git names, then land again",
            base.name, base.name
        )
    })?;
    let mut done = Advanced {
        kept: None,
        branch_stayed: None,
    };
    if let Some(to) = &made.branch_to {
        match move_branch(root, (&l.story.id, &l.branch), &made.from, to) {
            Ok(kept) => done.kept = Some(kept),
            Err(why) => done.branch_stayed = Some(why),
        }
    }
    let now = crate::time::iso_seconds(crate::time::now_ms());
    let short = &made.commit[..made.commit.len().min(12)];
    let mut changes = vec![("merged_at", text(&now)), ("merge_commit", text(short))];
    if done.kept.is_some() {
        changes.push(("base_ref", text(base_tip)));
    }
    if let Err(e) = Board::of(config).patch(&l.story.id, &changes) {
        done.branch_stayed
            .get_or_insert_with(String::new)
            .push_str(&format!("landed, but {e}"));
    }
    Ok(done)
}

/// The refs a story branch's old tips are kept under.
pub fn previous_prefix(id: &str) -> String {
    format!("refs/ai-sdlc/previous/{id}/")
}

/// Every kept old tip, by story: `S-0001` -> its refs (oldest first) and
/// the commit each is at, in one call.
pub fn previous_tips(
    root: &Path,
) -> Result<std::collections::HashMap<String, Vec<(String, String)>>, String> {
    let out = git::run(
        root,
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/ai-sdlc/previous/",
        ],
    )?;
    let mut by_id: std::collections::HashMap<String, Vec<(u64, String, String)>> =
        Default::default();
    for line in out.lines() {
        let Some((sha, name)) = line.split_once(' ') else {
            continue;
        };
        let rest = name.strip_prefix("refs/ai-sdlc/previous/").unwrap_or("");
        if let Some((id, n)) = rest.rsplit_once('/') {
            let n = n.parse().unwrap_or(u64::MAX);
            by_id
                .entry(id.to_string())
                .or_default()
                .push((n, name.to_string(), sha.to_string()));
        }
    }
    Ok(by_id
        .into_iter()
        .map(|(id, mut v)| {
            v.sort();
            (id, v.into_iter().map(|(_, r, c)| (r, c)).collect())
        })
        .collect())
}

/// Keep the branch's tip under the next `refs/ai-sdlc/previous/<ID>/<n>`;
/// the ref it is kept under.
pub fn keep_tip(root: &Path, id: &str, tip: &str) -> Result<String, String> {
    let prefix = previous_prefix(id);
    let message = format!("ai-sdlc: the old tip of {id}");
    // The first is the common case: one call, which fails if it is taken.
    let first = format!("{prefix}1");
    if git::refs::update(root, &first, tip, "", &message).is_ok() {
        return Ok(first);
    }
    let taken = git::refs::list(root, &prefix)?;
    let n = taken
        .iter()
        .filter_map(|r| r.rsplit('/').next()?.parse::<u64>().ok())
        .max()
        .map_or(1, |n| n + 1);
    let name = format!("{prefix}{n}");
    git::refs::update(root, &name, tip, "", &message)?;
    Ok(name)
}

/// Move the story branch to `to`, its old tip kept first. A worktree that
/// has it checked out follows (`reset --keep`: a change of its own that
/// the move would touch leaves the branch where it was).
pub fn move_branch(
    root: &Path,
    (id, branch): (&str, &str),
    old: &str,
    to: &str,
) -> Result<String, String> {
    let refname = format!("refs/heads/{branch}");
    let kept = keep_tip(root, id, old)?;
    match checked_out(root, branch).map_err(|e| e.to_string())? {
        Some(w) => {
            crate::worktree::check_link(root, &w)?;
            git::run(&w, &["reset", "--quiet", "--keep", to]).map_err(|e| {
                format!(
                    "its worktree {} has changes the move would touch ({e}); the branch stays at its old tip",
                    w.display()
                )
            })?;
        }
        None => git::refs::update(root, &refname, to, old, "ai-sdlc land")?,
    }
    Ok(kept)
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
