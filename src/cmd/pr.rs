//! `ai-sdlc pr <ID>... | --all`: push story branches and open their pull
//! requests (SPEC §11).

use crate::board::Status;
use crate::cli::PrArgs;
use crate::config::Config;
use crate::error::Error;
use crate::land::pr::{Opened, open, ready, retarget};
use crate::land::{Landing, base, counts, landings};
use serde_json::json;

pub fn run(config: &Config, args: &PrArgs) -> Result<(), Error> {
    if args.all != args.ids.is_empty() {
        return Err(Error::usage(
            "name the stories (ai-sdlc pr S-0001), or pass --all",
        ));
    }
    let scan = crate::board::scan(config)?;
    let all = landings(config, &scan)?;
    let name = base(config)?;
    let mut said = super::Said::new(args.json);
    let mut retargeted = Vec::new();
    let entry = |id: &str, result: &str, url: Option<&str>, error: Option<&str>| serde_json::json!({"id": id, "result": result, "url": url, "error": error});
    let merged = |l: &Landing| {
        l.story.merged_at.is_some()
            || counts(&config.root, &name, &l.branch).is_ok_and(|c| c.ahead == 0)
    };
    let candidates: Vec<&Landing> = if args.all {
        all.iter()
            .filter(|l| l.story.status == Status::Done && l.story.pr_url.is_none())
            .collect()
    } else {
        let mut v = Vec::new();
        for id in &args.ids {
            v.push(all.iter().find(|l| &l.story.id == id).ok_or_else(|| {
                Error::usage(match scan.get(id) {
                    Some(_) => format!("{id} has no branch yet: run it first"),
                    None => {
                        format!("{id}: no such story on the board; `ai-sdlc status` lists them")
                    }
                })
            })?);
        }
        v
    };
    let mut chosen = Vec::new();
    for l in candidates {
        if merged(l) {
            said.story(
                format!(
                    "{}: already merged into {name}; no pull request",
                    l.story.id
                ),
                entry(&l.story.id, "already_merged", None, None),
            );
        } else {
            chosen.push(l);
        }
    }
    let stories: Vec<_> = scan.stories.clone();
    if chosen.is_empty() {
        if !args.json {
            outln!("no pull request to open: every done story with a branch has one, or is merged");
        }
        if crate::process::on_path("gh") {
            say_retargeted(config, &name, &stories, &mut retargeted, args.json);
        }
        return said.end(json!({"base": name, "retargeted": retargeted}), Ok(()));
    }
    ready(config)?;
    say_retargeted(config, &name, &stories, &mut retargeted, args.json);
    let mut failed = 0;
    for l in chosen {
        let id = &l.story.id;
        match open(config, &name, &l.story, &l.branch) {
            Ok(Opened::New(url)) => said.story(
                format!("{id}: opened {url}"),
                entry(id, "opened", Some(&url), None),
            ),
            Ok(Opened::Already(url)) => said.story(
                format!("{id}: already open at {url}"),
                entry(id, "already_open", Some(&url), None),
            ),
            Err(e) => {
                failed += 1;
                errln!("ai-sdlc: {id}: {e}");
                said.record(entry(id, "failed", None, Some(&e.to_string())));
            }
        }
    }
    let r = if failed > 0 {
        Err(Error::Reported)
    } else {
        Ok(())
    };
    said.end(json!({"base": name, "retargeted": retargeted}), r)
}

/// Stacked pull requests whose dependency merged: moved to the base
/// (said, or kept in `into` for `--json`).
pub fn say_retargeted(
    config: &Config,
    base: &str,
    stories: &[crate::board::Story],
    into: &mut Vec<String>,
    json: bool,
) {
    for r in retarget(config, base, stories) {
        match r {
            Ok(said) if json => into.push(said),
            Ok(said) => outln!("{said}"),
            Err(e) => errln!("ai-sdlc: warning: {e}"),
        }
    }
}
