//! `ai-sdlc pr <ID>... | --all`: push story branches and open their pull
//! requests (SPEC §11).

use crate::board::Status;
use crate::cli::PrArgs;
use crate::config::Config;
use crate::error::Error;
use crate::land::pr::{Opened, open, ready};
use crate::land::{Landing, base, landings};

pub fn run(config: &Config, args: &PrArgs) -> Result<(), Error> {
    if args.all != args.ids.is_empty() {
        return Err(Error::usage(
            "name the stories (ai-sdlc pr S-0001), or pass --all",
        ));
    }
    let scan = crate::board::scan(config)?;
    let all = landings(config, &scan)?;
    let chosen: Vec<&Landing> = if args.all {
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
    if chosen.is_empty() {
        outln!("no pull request to open: every done story with a branch has one");
        return Ok(());
    }
    ready(config)?;
    let base = base(config)?;
    let mut failed = 0;
    for l in chosen {
        match open(config, &base, &l.story, &l.branch) {
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
