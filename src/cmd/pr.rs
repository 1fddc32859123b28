//! `ai-sdlc pr <ID>... | --all`: push story branches and open their pull
//! requests (SPEC §11).

use crate::board::Status;
use crate::cli::PrArgs;
use crate::config::Config;
use crate::error::Error;
use crate::land::pr::{Opened, open, ready, retarget};
use crate::land::{Landing, base, counts, landings};

pub fn run(config: &Config, args: &PrArgs) -> Result<(), Error> {
    if args.all != args.ids.is_empty() {
        return Err(Error::usage(
            "name the stories (ai-sdlc pr S-0001), or pass --all",
        ));
    }
    let scan = crate::board::scan(config)?;
    let all = landings(config, &scan)?;
    let name = base(config)?;
    let merged = |l: &Landing| {
        l.story.merged_at.is_some()
            || counts(&config.root, &name, &l.branch).is_ok_and(|c| c.ahead == 0)
    };
    let chosen: Vec<&Landing> = if args.all {
        all.iter()
            .filter(|l| l.story.status == Status::Done && l.story.pr_url.is_none())
            .filter(|l| {
                let m = merged(l);
                if m {
                    outln!(
                        "{}: already merged into {name}; no pull request",
                        l.story.id
                    );
                }
                !m
            })
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
    let chosen: Vec<&Landing> = chosen
        .into_iter()
        .filter(|l| {
            if args.all || !merged(l) {
                return true;
            }
            outln!(
                "{}: already merged into {name}; no pull request",
                l.story.id
            );
            false
        })
        .collect();
    let stories: Vec<_> = scan.stories.clone();
    if chosen.is_empty() {
        outln!("no pull request to open: every done story with a branch has one, or is merged");
        if crate::process::on_path("gh") {
            say_retargeted(config, &name, &stories);
        }
        return Ok(());
    }
    ready(config)?;
    say_retargeted(config, &name, &stories);
    let mut failed = 0;
    for l in chosen {
        match open(config, &name, &l.story, &l.branch) {
            Ok(Opened::New(url)) => outln!("{}: opened {url}", l.story.id),
            Ok(Opened::Already(url)) => outln!("{}: already open at {url}", l.story.id),
            Err(e) => {
                failed += 1;
                errln!("ai-sdlc: {}: {e}", l.story.id);
            }
        }
    }
    if failed > 0 {
        return Err(Error::Reported);
    }
    Ok(())
}

/// Stacked pull requests whose dependency merged: moved to the base.
pub fn say_retargeted(config: &Config, base: &str, stories: &[crate::board::Story]) {
    for r in retarget(config, base, stories) {
        match r {
            Ok(said) => outln!("{said}"),
            Err(e) => errln!("ai-sdlc: warning: {e}"),
        }
    }
}
