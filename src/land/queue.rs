//! `ai-sdlc land`, the merge queue (SPEC §14): finished, unmerged stories
//! in dependency then priority order, each brought up to the current base
//! (`merge::make`), checked (`merge.verify`), and landed (`merge::advance`).
//! A story that conflicts, or whose checks fail, goes back to its agent in
//! a `resolve` phase (`resolve`), up to `land.maxResolveRounds` rounds;
//! then it is `blocked`, and only the stories that depend on it wait.

use super::merge::{Base, Made, Stopped, advance, make, verify};
use super::resolve::{self, Trouble};
use super::{Landing, landings, merge_order};
use crate::board::{Board, Status, text};
use crate::config::Config;
use crate::error::Error;
use crate::git;
use std::collections::{HashMap, HashSet};

/// Runs a story's `resolve` phase with its agent (the runner does).
pub trait Resolver {
    /// Round `round` of giving `l` back to its agent for `trouble`; `Err`:
    /// why the agent did not finish.
    fn resolve(&mut self, l: &Landing, trouble: &Trouble, round: u32) -> Result<(), String>;
}

/// What became of one story.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum LandOutcome {
    Landed {
        how: String,
        commit: String,
        /// Rounds its agent took to resolve it.
        resolved: u32,
        /// Where its branch's old tip is kept, when the branch moved.
        #[serde(skip_serializing_if = "Option::is_none")]
        kept: Option<String>,
    },
    /// Its work was in the base already.
    AlreadyIn,
    /// It could not land: `blocked` on the board, with why.
    Blocked { reason: String },
    /// A dependency did not land (or is not in the base): it waits.
    Waiting { reason: String },
    /// Not tried: the run was interrupted.
    Interrupted,
}

/// What `land --dry-run` predicts for one story.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub id: String,
    pub branch: String,
    /// `clean`, `conflict`, `in_base`, or `waits`.
    pub fit: String,
    /// "clean", "conflicts with S-0011 in shared.txt (goes back to its agent)".
    pub text: String,
    pub files: Vec<String>,
    pub with: Vec<String>,
}

/// The stories `land` takes: `ids`, or every done story whose branch has
/// work the base has not; in dependency, then priority order.
pub fn candidates(config: &Config, base: &str, ids: &[String]) -> Result<Vec<Landing>, Error> {
    let scan = crate::board::scan(config)?;
    let all = landings(config, &scan)?;
    let chosen: Vec<Landing> = if ids.is_empty() {
        let ahead =
            git::refs::not_merged_into(&config.root, base).map_err(|e| Error::failed(e.message))?;
        all.into_iter()
            .filter(|l| l.story.status == Status::Done && ahead.contains(&l.branch))
            .collect()
    } else {
        let mut v = Vec::new();
        for id in ids {
            match all.iter().find(|l| &l.story.id == id) {
                Some(l) => v.push(l.clone()),
                None if scan.get(id).is_some() => {
                    return Err(Error::usage(format!(
                        "{id} has no branch yet: run it first"
                    )));
                }
                None => {
                    return Err(Error::usage(format!(
                        "{id}: no such story on the board; `ai-sdlc status` lists them"
                    )));
                }
            }
        }
        v
    };
    Ok(merge_order(chosen))
}

/// Which of `landed` (stories landed before, with the commit each landed
/// as) changed any of `files`: who a conflict is with.
fn who_touched(config: &Config, landed: &[(String, String)], files: &[String]) -> Vec<String> {
    landed
        .iter()
        .filter(|(_, commit)| {
            let changed = git::run(
                &config.root,
                &["diff", "--name-only", &format!("{commit}^1"), commit, "--"],
            )
            .unwrap_or_default();
            changed.lines().any(|f| files.iter().any(|x| x == f))
        })
        .map(|(id, _)| id.clone())
        .collect()
}

/// Why `l` must wait: a dependency that did not land here and is not in
/// the base.
fn waiting_on(
    config: &Config,
    base_tip: &dyn Fn() -> Result<String, String>,
    l: &Landing,
    outcome: &HashMap<String, LandOutcome>,
) -> Option<String> {
    let board = Board::of(config);
    for dep in &l.story.dependencies {
        match outcome.get(dep) {
            Some(LandOutcome::Landed { .. } | LandOutcome::AlreadyIn) => continue,
            Some(_) => return Some(format!("waits on {dep}, which did not land")),
            None => {}
        }
        let Ok(d) = board.load(dep) else {
            return Some(format!("waits on {dep}: no such story"));
        };
        let branch = super::branch_of(&d);
        let root = &config.root;
        let in_base = git::refs::commit_of(root, &format!("refs/heads/{branch}"))
            .map_err(|e| e.message)
            .and_then(|tip| Ok((tip, base_tip()?)))
            .map(|(tip, base_tip)| matches!(git::is_ancestor(root, &tip, &base_tip), Ok(true)))
            .unwrap_or(d.status == Status::Done);
        if !in_base {
            return Some(format!("waits on {dep}: land it first (or with it)"));
        }
    }
    None
}

/// Predict, touching nothing: the order, and for each story whether it
/// lands clean, conflicts (with which story, in which files), or waits.
pub fn predict(
    config: &Config,
    base: &Base,
    order: &[Landing],
    resolve: bool,
) -> Result<Vec<Prediction>, String> {
    let root = &config.root;
    let mut tip = base.tip(root)?;
    let mut landed: Vec<(String, String)> = Vec::new();
    let mut outcome: HashMap<String, LandOutcome> = HashMap::new();
    let mut out = Vec::new();
    for l in order {
        let mut p = Prediction {
            id: l.story.id.clone(),
            branch: l.branch.clone(),
            fit: "clean".into(),
            text: "clean".into(),
            files: Vec::new(),
            with: Vec::new(),
        };
        if let Some(why) = waiting_on(config, &|| Ok(tip.clone()), l, &outcome) {
            (p.fit, p.text) = ("waits".into(), why.clone());
            outcome.insert(l.story.id.clone(), LandOutcome::Waiting { reason: why });
            out.push(p);
            continue;
        }
        match make(config, &tip, l) {
            Ok(Some(made)) => {
                landed.push((l.story.id.clone(), made.commit.clone()));
                outcome.insert(l.story.id.clone(), landed_as(&made, 0, None));
                tip = made.commit;
            }
            Ok(None) => {
                (p.fit, p.text) = ("in_base".into(), "already in the base".into());
                outcome.insert(l.story.id.clone(), LandOutcome::AlreadyIn);
            }
            Err(Stopped::Conflict(files)) => {
                let with = who_touched(config, &landed, &files);
                let t = Trouble::Conflict {
                    files: files.clone(),
                    with: with.clone(),
                };
                p.fit = "conflict".into();
                p.text = if resolve {
                    format!("{} (goes back to its agent)", t.describe())
                } else {
                    t.describe()
                };
                (p.files, p.with) = (files, with);
                // Assume it lands once resolved: its dependents are not held back.
                outcome.insert(
                    l.story.id.clone(),
                    if resolve {
                        LandOutcome::AlreadyIn
                    } else {
                        LandOutcome::Blocked {
                            reason: p.text.clone(),
                        }
                    },
                );
            }
            Err(Stopped::Other(e)) => return Err(e),
        }
        out.push(p);
    }
    Ok(out)
}

fn landed_as(made: &Made, resolved: u32, kept: Option<String>) -> LandOutcome {
    LandOutcome::Landed {
        how: made.how.to_string(),
        commit: made.commit.clone(),
        resolved,
        kept,
    }
}

/// The land queue's settings.
pub struct Options {
    /// Give a story that does not land back to its agent.
    pub resolve: bool,
    pub max_rounds: u32,
}

/// Land one story: make, check, advance; on a conflict or a failed check,
/// its agent resolves (up to `max_rounds` rounds), else it is blocked.
/// `landed` are the stories landed before it in this queue (for who a
/// conflict is with).
pub fn land_one(
    config: &Config,
    base: &Base,
    l: &Landing,
    opts: &Options,
    resolver: &mut dyn Resolver,
    landed: &[(String, String)],
) -> LandOutcome {
    let root = &config.root;
    let mut rounds = 0;
    loop {
        if crate::shutdown::stopping() {
            return LandOutcome::Interrupted;
        }
        let tip = match base.tip(root) {
            Ok(t) => t,
            Err(e) => return blocked(config, l, e),
        };
        let trouble = match make(config, &tip, l) {
            Ok(None) => return LandOutcome::AlreadyIn,
            Ok(Some(made)) => {
                let checked = match &config.land.verify {
                    Some(v) => verify(root, &config.worktree_base(), &made.commit, v),
                    None => Ok(()),
                };
                if crate::shutdown::stopping() {
                    return LandOutcome::Interrupted;
                }
                match checked {
                    Ok(()) => return advanced(config, base, &tip, l, &made, rounds),
                    Err(out) => Trouble::Verify(out),
                }
            }
            Err(Stopped::Conflict(files)) => {
                let with = who_touched(config, landed, &files);
                Trouble::Conflict { files, with }
            }
            Err(Stopped::Other(e)) => return blocked(config, l, e),
        };
        if !opts.resolve || rounds >= opts.max_rounds {
            let tried = if rounds > 0 {
                format!(
                    " after {rounds} resolve {}",
                    if rounds == 1 { "round" } else { "rounds" }
                )
            } else {
                String::new()
            };
            return blocked(
                config,
                l,
                format!("cannot land{tried}: it {}", trouble.describe()),
            );
        }
        rounds += 1;
        if let Err(e) = resolve_round(config, base, l, &tip, &trouble, rounds, resolver) {
            if crate::shutdown::stopping() {
                // Its work is done; only its landing was interrupted.
                set_status(config, l, Status::Done);
                return LandOutcome::Interrupted;
            }
            if rounds >= opts.max_rounds {
                return blocked(
                    config,
                    l,
                    format!(
                        "cannot land: it {}; its agent did not resolve it in {rounds} {} (the last: {e})",
                        trouble.describe(),
                        if rounds == 1 { "round" } else { "rounds" }
                    ),
                );
            }
            log::warn!("[{}] resolve round {rounds}: {e}", l.story.id);
        }
    }
}

/// Write only the story's status.
fn set_status(config: &Config, l: &Landing, status: Status) {
    let now = crate::time::iso_seconds(crate::time::now_ms());
    let changes = [("status", text(status.as_str())), ("updated", text(&now))];
    if let Err(e) = Board::of(config).patch(&l.story.id, &changes) {
        log::warn!("[{}] cannot record its status: {e}", l.story.id);
    }
}

/// One round: the merge into its worktree, its agent, the merge commit.
fn resolve_round(
    config: &Config,
    base: &Base,
    l: &Landing,
    base_tip: &str,
    trouble: &Trouble,
    round: u32,
    resolver: &mut dyn Resolver,
) -> Result<(), String> {
    let (wt, tip) = resolve::prepare(config, l, &base.name, base_tip, trouble)?;
    let resolved = resolver.resolve(l, trouble, round);
    if crate::shutdown::stopping() {
        return Err("interrupted; the agent's work is in its worktree, uncommitted".into());
    }
    let done = resolved.and_then(|()| resolve::finish(config, l, &wt, &tip, base_tip));
    if let Err(e) = done {
        // What the round left is kept, and the worktree is ready for the next.
        let kept = resolve::set_aside(config, l, &wt, &tip);
        return Err(match kept {
            Ok(r) => format!("{e} (what the round left is kept as {r})"),
            Err(k) => format!("{e}; {k}"),
        });
    }
    Ok(())
}

fn advanced(
    config: &Config,
    base: &Base,
    tip: &str,
    l: &Landing,
    made: &Made,
    rounds: u32,
) -> LandOutcome {
    match advance(config, base, tip, l, made) {
        Ok(done) => {
            if let Some(why) = done.branch_stayed {
                log::warn!("[{}] {why}", l.story.id);
            }
            if rounds > 0 {
                remove_clean_worktree(config, l);
            }
            landed_as(made, rounds, done.kept)
        }
        Err(e) => blocked(config, l, e),
    }
}

/// The worktree a resolve kept: removed once it landed, when it holds
/// nothing that would be lost (as after a run).
fn remove_clean_worktree(config: &Config, l: &Landing) {
    let root = &config.root;
    let Ok(Some(wt)) = super::merge::checked_out(root, &l.branch) else {
        return;
    };
    if crate::worktree::removable(&wt, &l.branch).is_err() {
        return;
    }
    let gone = crate::worktree::serialize(root, &config.worktree_base())
        .and_then(|_held| crate::worktree::remove(root, &wt, false));
    match gone {
        Ok(()) => {
            let _ = Board::of(config).patch(&l.story.id, &[("worktree_path", None)]);
        }
        Err(e) => log::warn!("[{}] landed; its worktree stays: {e}", l.story.id),
    }
}

/// Write the story `blocked`, with why.
fn blocked(config: &Config, l: &Landing, reason: String) -> LandOutcome {
    let now = crate::time::iso_seconds(crate::time::now_ms());
    let changes = [
        ("status", text(Status::Blocked.as_str())),
        ("blocked_reason", text(&reason)),
        ("blocked_at", text(&now)),
        ("updated", text(&now)),
    ];
    if let Err(e) = Board::of(config).patch(&l.story.id, &changes) {
        log::warn!("[{}] cannot record that it is blocked: {e}", l.story.id);
    }
    LandOutcome::Blocked { reason }
}

/// Land `order` in turn; `said` hears each story's result as it comes.
pub fn land_all(
    config: &Config,
    base: &Base,
    order: &[Landing],
    opts: &Options,
    resolver: &mut dyn Resolver,
    said: &mut dyn FnMut(&Landing, &LandOutcome),
) -> Vec<(String, LandOutcome)> {
    let mut outcome: HashMap<String, LandOutcome> = HashMap::new();
    let mut landed: Vec<(String, String)> = Vec::new();
    let mut results = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for l in order {
        if !seen.insert(l.story.id.clone()) {
            continue;
        }
        let r = if crate::shutdown::stopping() {
            LandOutcome::Interrupted
        } else if let Some(why) = waiting_on(config, &|| base.tip(&config.root), l, &outcome) {
            LandOutcome::Waiting { reason: why }
        } else {
            land_one(config, base, l, opts, resolver, &landed)
        };
        if let LandOutcome::Landed { commit, .. } = &r {
            landed.push((l.story.id.clone(), commit.clone()));
        }
        said(l, &r);
        outcome.insert(l.story.id.clone(), r.clone());
        results.push((l.story.id.clone(), r));
    }
    results
}
