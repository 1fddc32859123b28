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
    let mut said = super::Said::new(args.json);
    let doc = serde_json::json!({"base": name});
    if chosen.is_empty() {
        if !args.json {
            outln!("nothing to merge: no done story has work that {name} does not have");
        }
        return said.end(doc, Ok(()));
    }
    let base = Base::open(config)?;
    let root = &config.root;
    let mut merged = 0;
    for l in &merge_order(chosen) {
        let entry = |result: &str, error: Option<&str>| serde_json::json!({"id": l.story.id, "result": result, "branch": l.branch, "error": error});
        let mut stop = |why: String| {
            let done = if merged > 0 {
                format!(" ({merged} merged before it stay merged)")
            } else {
                String::new()
            };
            let e = format!("{}: {why}; stopped here{done}", l.story.id);
            said.record(entry("stopped", Some(&e)));
            Error::failed(e)
        };
        let tip = match base.tip(root) {
            Ok(t) => t,
            Err(e) => {
                let err = stop(e);
                return said.end(doc, Err(err));
            }
        };
        let made = match make(config, &tip, l) {
            Ok(Some(m)) => m,
            Ok(None) => {
                said.story(
                    format!("{}: already in {name}; nothing to merge", l.story.id),
                    entry("already_in", None),
                );
                continue;
            }
            Err(Stopped::Conflict(files)) => {
                let err = stop(format!(
                    "{} does not merge cleanly into {name}: conflicts in {}. `ai-sdlc land {}` gives it back to its agent to resolve (`ai-sdlc review {}` shows it)",
                    l.branch,
                    files.join(", "),
                    l.story.id,
                    l.story.id
                ));
                return said.end(doc, Err(err));
            }
            Err(Stopped::Other(e)) => {
                let err = stop(e);
                return said.end(doc, Err(err));
            }
        };
        if let Some(v) = &config.land.verify {
            errln!("ai-sdlc: merge.verify: {}", v.join(" "));
            if let Err(out) = verify(root, &config.worktree_base(), &made.commit, v) {
                let err = stop(format!(
                    "merge.verify failed on the merged result, {name} is unchanged: {out}"
                ));
                return said.end(doc, Err(err));
            }
        }
        let done = match advance(config, &base, &tip, l, &made) {
            Ok(d) => d,
            Err(e) => {
                let err = stop(e);
                return said.end(doc, Err(err));
            }
        };
        merged += 1;
        let short = &made.commit[..made.commit.len().min(12)];
        let mut e = entry("merged", None);
        e["commit"] = made.commit.clone().into();
        e["how"] = made.how.to_string().into();
        said.story(
            format!(
                "{}: merged {} into {name} ({} {short})",
                l.story.id, l.branch, made.how
            ),
            e,
        );
        if let Some(why) = done.branch_stayed {
            errln!("ai-sdlc: warning: {}: {why}", l.story.id);
        }
        if args.delete_branch {
            match delete_branch(root, l) {
                Ok(text) if !said.json() => outln!("{text}"),
                Ok(_) => {}
                Err(e) => errln!("ai-sdlc: warning: {e}"),
            }
        }
    }
    said.end(doc, Ok(()))
}
