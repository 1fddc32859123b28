//! `ai-sdlc merge <ID>... | --all`: story branches into their base, one at
//! a time, in dependency then priority order (SPEC §11).

use crate::board::{Board, Status, text};
use crate::cli::MergeArgs;
use crate::config::Config;
use crate::error::Error;
use crate::git;
use crate::land::merge::{checked_out, delete_branch, make, same_dir, uncommitted, verify};
use crate::land::{Landing, base, counts, landings, merge_order};

pub fn run(config: &Config, args: &MergeArgs) -> Result<(), Error> {
    if args.all != args.ids.is_empty() {
        return Err(Error::usage(
            "name the stories to merge (ai-sdlc merge S-0001 S-0002), or pass --all",
        ));
    }
    if config.land.verify.is_some() {
        // merge.verify is a command from the config: trusted, or nothing runs.
        crate::trust::check(config, false)?;
    }
    let scan = crate::board::scan(config)?;
    let base = base(config)?;
    let root = &config.root;
    let all = landings(config, &scan)?;
    let chosen: Vec<Landing> = if args.all {
        all.into_iter()
            .filter(|l| l.story.status == Status::Done)
            .filter(|l| counts(root, &base, &l.branch).is_ok_and(|c| c.ahead > 0))
            .collect()
    } else {
        let mut v = Vec::new();
        for id in &args.ids {
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
    if chosen.is_empty() {
        outln!("nothing to merge: no done story has work that {base} does not have");
        return Ok(());
    }
    let checkout = checked_out(root, &base)?;
    if let Some(w) = checkout.as_ref().filter(|w| !same_dir(w, root)) {
        crate::worktree::check_link(root, w).map_err(Error::failed)?;
    }
    if let Some(w) = &checkout {
        let dirty = uncommitted(w, &config.sdlc_folder)?;
        if !dirty.is_empty() {
            return Err(Error::failed(format!(
                "{base} is checked out in {} with uncommitted changes; nothing was merged. Commit or stash them first:\n  {}",
                w.display(),
                dirty.join("\n  ")
            )));
        }
    }
    let board = Board::of(config);
    let order = merge_order(chosen);
    let mut merged = 0;
    for l in &order {
        let tip = git::refs::commit_of(root, &format!("refs/heads/{base}"))
            .map_err(|e| Error::failed(e.message))?;
        let c = counts(root, &tip, &l.branch).map_err(Error::failed)?;
        if c.ahead == 0 {
            outln!("{}: already in {base}; nothing to merge", l.story.id);
            continue;
        }
        let stop = |why: String| {
            let done = if merged > 0 {
                format!(" ({merged} merged before it stay merged)")
            } else {
                String::new()
            };
            Error::failed(format!("{}: {why}; stopped here{done}", l.story.id))
        };
        let new = match make(config, &tip, l) {
            Ok(n) => n,
            Err(e) => return Err(stop(e)),
        };
        if let Some(v) = &config.land.verify
            && let Err(e) = verify(root, &config.worktree_base(), &new.commit, v)
        {
            return Err(stop(format!(
                "merge.verify failed on the merged result, {base} is unchanged: {e}"
            )));
        }
        let moved = match &checkout {
            Some(w) => git::run(w, &["merge", "--ff-only", "--quiet", &new.commit]).map(|_| ()),
            None => git::refs::update(
                root,
                &format!("refs/heads/{base}"),
                &new.commit,
                &tip,
                &format!("ai-sdlc merge {}", l.story.id),
            ),
        };
        if let Err(e) = moved {
            return Err(stop(format!(
                "cannot move {base} to the merge ({e}); {base} is as it was: commit or stash what git names, then run the merge again"
            )));
        }
        merged += 1;
        let short = &new.commit[..new.commit.len().min(12)];
        let now = crate::time::iso_seconds(crate::time::now_ms());
        if let Err(e) = board.patch(
            &l.story.id,
            &[("merged_at", text(&now)), ("merge_commit", text(short))],
        ) {
            errln!("ai-sdlc: warning: {}: merged, but {e}", l.story.id);
        }
        outln!(
            "{}: merged {} into {base} ({} {short})",
            l.story.id,
            l.branch,
            new.how
        );
        if args.delete_branch {
            match delete_branch(root, l) {
                Ok(said) => outln!("{said}"),
                Err(e) => errln!("ai-sdlc: warning: {e}"),
            }
        }
    }
    Ok(())
}
