//! `ai-sdlc prompt <ID> [--phase P]`: the exact prompt a phase would get.

use crate::board::Board;
use crate::cli::PromptArgs;
use crate::config::Config;
use crate::error::Error;
use crate::paths::rel;
use std::io::{self, Write};

/// `ai-sdlc prompt <ID> [--phase P]`: the exact prompt a phase would get.
pub fn run(config: &Config, args: &PromptArgs) -> Result<(), Error> {
    let with_workflow;
    let config = match &args.workflow {
        Some(w) => {
            let mut c = config.clone();
            c.use_workflow(w).map_err(Error::usage)?;
            with_workflow = c;
            &with_workflow
        }
        None => config,
    };
    let board = Board::of(config);
    let here = crate::paths::is_plain_name(&args.id)
        && config
            .stories_dir()
            .join(&args.id)
            .join("story.md")
            .exists();
    if !here {
        return Err(Error::usage(format!(
            "no story {} on the board; `ai-sdlc status` lists them",
            args.id
        )));
    }
    let story = board
        .load(&args.id)
        .map_err(|b| Error::usage(format!("{}: {}", rel(&config.root, &b.path), b.reason)))?;
    let (workdir, branch, base) = if config.worktree.enabled {
        let base =
            crate::worktree::base_branch(&config.root, config.worktree.base_branch.as_deref())
                .unwrap_or_else(|_| "HEAD".into());
        let wbase = config.worktree_base();
        let (folder, branch) =
            crate::worktree::place(&config.root, &wbase, &story).map_err(Error::usage)?;
        (wbase.join(folder), branch, base)
    } else {
        let branch = crate::worktree::base_branch(&config.root, None).unwrap_or_default();
        (config.root.clone(), branch.clone(), branch)
    };
    let mut job = crate::story::Job::new(config, &story, workdir, &branch, &base, false)
        .map_err(Error::usage)?;
    job.load_prompts(config).map_err(Error::usage)?;
    let names: Vec<&str> = job.phases.iter().map(|p| p.name.as_str()).collect();
    let phase = match &args.phase {
        Some(p) => job.phases.iter().find(|x| &x.name == p).ok_or_else(|| {
            Error::usage(format!(
                "--phase {p:?}: the workflow's phases are {}",
                names.join(", ")
            ))
        })?,
        None => job
            .phases
            .iter()
            .find(|p| {
                config
                    .phases
                    .iter()
                    .any(|c| c.name == p.name && c.command.is_none())
            })
            .unwrap_or(&job.phases[0]),
    };
    let mut text = crate::story::prompt_for(&job, phase, &job.sections, &[]);
    // The exact prompt, unless a terminal would run escape sequences in it.
    if crate::term::stdout_is_terminal() {
        text = crate::term::printable(&text).into_owned();
    }
    let mut out = io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|_| out.flush());
    if names.first() != Some(&phase.name.as_str()) {
        errln!(
            "note: this prompt carries what the story's section files hold now; during a run, it also carries what the phases before {} say then",
            phase.name
        );
    }
    match written {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Error::failed(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
