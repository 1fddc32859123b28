//! `ai-sdlc demo`: the built-in demo, run with `run --concurrent N`; then
//! the board, and where the branches, kept worktrees and logs are.

use crate::board::Status;
use crate::cli::{DemoArgs, LandArgs, RunArgs, StatusArgs};
use crate::config::Config;
use crate::demo::{FAILS_ON_PURPOSE, build_repo, make_dir};
use crate::error::Error;
use std::fs;

pub fn run(args: &DemoArgs, quiet: bool) -> Result<(), Error> {
    let root = make_dir(args.dir.as_deref())?;
    build_repo(&root)?;
    let concurrent = args.concurrent.clone().unwrap_or_else(|| "3".into());
    errln!(
        "Demo repo: {}\nRunning its 6 stories with `ai-sdlc run --concurrent {concurrent}` and a scripted agent ({FAILS_ON_PURPOSE} fails on purpose; S-0005 is stacked on S-0001; S-0006 gets three attempts, the smallest kept; S-0002 and S-0006 conflict, for `land` to resolve).\n",
        root.display()
    );
    let run_args = RunArgs {
        concurrent: Some(concurrent),
        ..RunArgs::default()
    };
    // The demo wrote this config itself: trusted.
    let ran = super::run::run(&root, &run_args, quiet, true);
    if let Err(e @ (Error::Usage(_) | Error::Failed(_) | Error::Interrupted(_))) = ran {
        return Err(e);
    }
    let config = Config::load(&root)?;
    errln!(
        "\nLanding the finished stories with `ai-sdlc land` (a conflict goes back to its agent):\n"
    );
    let landed = super::land::land(&config, &LandArgs::default(), quiet, true);
    if let Err(e @ (Error::Usage(_) | Error::Failed(_) | Error::Interrupted(_))) = landed {
        return Err(e);
    }
    outln!();
    super::status::run(&config, &StatusArgs { json: false })?;
    let branches = crate::worktree::story_branches(&root).unwrap_or_default();
    let kept: Vec<String> = fs::read_dir(config.worktree_base())
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| crate::paths::rel(&root, &e.path()))
                .collect()
        })
        .unwrap_or_default();
    outln!("\nWhere things are:");
    outln!("  branches (one per story, never deleted by run):");
    for b in &branches {
        outln!("    {b}");
    }
    if kept.is_empty() {
        outln!("  worktrees kept: none");
    } else {
        outln!("  worktrees kept (not finished, or holding files that are not committed):");
        for w in &kept {
            outln!("    {w}");
        }
    }
    outln!("  run logs: .ai-sdlc/stories/<ID>/logs/");
    let me = if crate::process::on_path("ai-sdlc") {
        "ai-sdlc".to_string()
    } else {
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "ai-sdlc".into())
    };
    let dir = root.display();
    outln!(
        "\nLook around:\n  {me} -C {dir} status\n  {me} -C {dir} logs {FAILS_ON_PURPOSE}\n  {me} -C {dir} worktrees\n  {me} -C {dir} review          # the story branches against main (merged ones say so)\n  {me} -C {dir} review S-0006   # its three attempts, and which was kept\n  {me} -C {dir} land --dry-run  # what landing would do now\n  git -C {dir} log --oneline --all"
    );
    // The one failure is on purpose: a demo that went as planned exits 0.
    let scan = crate::board::scan(&config)?;
    let mut unfinished = scan.stories.iter().filter(|s| s.status != Status::Done);
    let failed_only_on_purpose = unfinished
        .next()
        .is_some_and(|s| s.id == FAILS_ON_PURPOSE && s.status == Status::Blocked)
        && unfinished.next().is_none();
    match ran {
        Err(Error::Reported) if failed_only_on_purpose => Ok(()),
        other => other,
    }
}
