//! `ai-sdlc merge <ID>... | --all`: story branches into their base, one at
//! a time, in dependency then priority order (SPEC §11). The one-story
//! primitive of landing: it stops at the first story that does not land as
//! it is (`ai-sdlc land` gives such a story back to its agent).

use crate::board::Status;
use crate::cli::MergeArgs;
use crate::config::Config;
use crate::error::Error;
use crate::land::merge::{Base, Stopped, advance, delete_branch, make, verify};
use crate::land::{Landing, base, counts, landings, merge_order};

/// The stories `merge` was asked for.
fn chosen(config: &Config, args: &MergeArgs, base: &str) -> Result<Vec<Landing>, Error> {
    let scan = crate::board::scan(config)?;
    let all = landings(config, &scan)?;
    if args.all {
        return Ok(all
            .into_iter()
            .filter(|l| l.story.status == Status::Done)
            .filter(|l| counts(&config.root, base, &l.branch).is_ok_and(|c| c.ahead > 0))
            .collect());
    }
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
    Ok(v)
}

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
    let name = base(config)?;
    let chosen = chosen(config, args, &name)?;
    if chosen.is_empty() {
        outln!("nothing to merge: no done story has work that {name} does not have");
        return Ok(());
    }
    let base = Base::open(config)?;
    let root = &config.root;
    let mut merged = 0;
    for l in &merge_order(chosen) {
        let stop = |why: String| {
            let done = if merged > 0 {
                format!(" ({merged} merged before it stay merged)")
            } else {
                String::new()
            };
            Error::failed(format!("{}: {why}; stopped here{done}", l.story.id))
        };
        let tip = base.tip(root).map_err(Error::failed)?;
        let made = match make(config, &tip, l) {
            Ok(Some(m)) => m,
            Ok(None) => {
                outln!("{}: already in {name}; nothing to merge", l.story.id);
                continue;
            }
            Err(Stopped::Conflict(files)) => {
                return Err(stop(format!(
                    "{} does not merge cleanly into {name}: conflicts in {}. `ai-sdlc land {}` gives it back to its agent to resolve (`ai-sdlc review {}` shows it)",
                    l.branch,
                    files.join(", "),
                    l.story.id,
                    l.story.id
                )));
            }
            Err(Stopped::Other(e)) => return Err(stop(e)),
        };
        if let Some(v) = &config.land.verify {
            errln!("ai-sdlc: merge.verify: {}", v.join(" "));
            if let Err(out) = verify(root, &config.worktree_base(), &made.commit, v) {
                return Err(stop(format!(
                    "merge.verify failed on the merged result, {name} is unchanged: {out}"
                )));
            }
        }
        let done = advance(config, &base, &tip, l, &made).map_err(stop)?;
        merged += 1;
        let short = &made.commit[..made.commit.len().min(12)];
        outln!(
            "{}: merged {} into {name} ({} {short})",
            l.story.id,
            l.branch,
            made.how
        );
        if let Some(why) = done.branch_stayed {
            errln!("ai-sdlc: warning: {}: {why}", l.story.id);
        }
        if args.delete_branch {
            match delete_branch(root, l) {
                Ok(said) => outln!("{said}"),
                Err(e) => errln!("ai-sdlc: warning: {e}"),
            }
        }
    }
    Ok(())
}
