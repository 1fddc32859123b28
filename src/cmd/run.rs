//! `ai-sdlc run`: resolve the options, check trust, make the plan, print
//! it (`--dry-run`) or carry it out (`runner`), then the summary and the
//! exit status.

use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::Error;
use crate::report::{self, Sink};
use crate::runner::plan::PlannedPhase;
use crate::runner::{self, Plan, Settings};
use crate::shutdown;
use crate::story::Outcome;
use std::path::Path;

/// `assume_trusted`: this process wrote the repo's config (the demo).
pub fn run(root: &Path, args: &RunArgs, quiet: bool, assume_trusted: bool) -> Result<(), Error> {
    let config = load(root, args)?;
    let (mut settings, warnings) = runner::settings(&config, args)?;
    for w in warnings {
        errln!("ai-sdlc: warning: {w}");
    }
    // Before anything is written or started: the config's commands must
    // be trusted (a dry run starts nothing).
    if !args.dry_run
        && !assume_trusted
        && let Some(w) = crate::trust::check(&config, args.trust)?
    {
        errln!("ai-sdlc: warning: {w}");
    }
    settings.commands = crate::trust::fingerprint(&crate::trust::commands(&config));
    let plan = runner::plan::prepare(&config, &mut settings, args)?;
    for line in &plan.said {
        errln!("{line}");
    }
    if plan.selected.is_empty() {
        let what = match &args.epic {
            Some(e) => format!("no ready stories in epic {e:?}"),
            None => "no ready stories".to_string(),
        };
        errln!(
            "ai-sdlc: {what}; nothing to run. Mark one ready (status: ready) or add one: ai-sdlc add \"Title\" --ready"
        );
        if args.json {
            outln!("{}", report::json(&[], 0));
        }
        return Ok(());
    }
    if args.dry_run {
        print_plan(&config, &settings, &plan);
        return Ok(());
    }
    let sink: Box<dyn Sink> = if quiet {
        Box::new(report::Quiet)
    } else if crate::term::stderr_is_terminal() {
        Box::new(report::dashboard::Dashboard::new(settings.single_story()))
    } else {
        Box::new(report::Plain {
            stream_output: settings.single_story(),
        })
    };
    let ran = runner::start(config, settings, plan, args, sink);
    errput!(
        "{}",
        report::summary(&ran.results, ran.duration_ms, crate::term::terminal_width())
    );
    if args.json {
        outln!("{}", report::json(&ran.results, ran.duration_ms));
    }
    status(&ran.results)
}

/// The repo's config, with `--workflow` applied and `--from` checked.
fn load(root: &Path, args: &RunArgs) -> Result<Config, Error> {
    let mut config = Config::load(root)?;
    for w in &config.warnings {
        errln!("ai-sdlc: warning: {w}");
    }
    if let Some(w) = &args.workflow {
        config.use_workflow(w).map_err(Error::usage)?;
    }
    if let Some(f) = &args.from
        && !config.phases.iter().any(|p| &p.name == f)
    {
        let names: Vec<&str> = config.phases.iter().map(|p| p.name.as_str()).collect();
        return Err(Error::usage(format!(
            "--from {f:?}: the workflow has no such phase; its phases are {}",
            names.join(", ")
        )));
    }
    Ok(config)
}

/// The run's exit status (SPEC §7): interrupted, something did not
/// succeed, or all is well.
fn status(results: &[report::StoryResult]) -> Result<(), Error> {
    if let Some(code) = shutdown::exit_code() {
        return Err(Error::Interrupted(code - 128));
    }
    let t = report::Totals::of(results);
    if results.len() > 1 && t.failed + t.timed_out == results.len() {
        errln!("ai-sdlc: every story failed; their logs say why (ai-sdlc logs <ID>)");
    }
    // Stories that wait on a dependency outside this run do not fail it.
    let waiting = results.iter().filter(|r| r.waiting).count();
    if t.failed + t.timed_out + t.skipped + t.cancelled > waiting
        || results.iter().any(|r| r.unrecorded.is_some())
    {
        return Err(Error::Reported);
    }
    // Stopped at a usage cap (`--no-wait`): nothing failed, but not done.
    let capped = results
        .iter()
        .filter(|r| r.outcome == Outcome::Parked || r.reason == Some("usage_cap"))
        .count();
    if capped > 0 {
        let when = results
            .iter()
            .filter_map(|r| r.not_before)
            .min()
            .map(|t| crate::time::local_clock(t, crate::time::now_ms()));
        return Err(Error::TryLater(format!(
            "{capped} {} stopped at the agent's usage cap; run again {}",
            if capped == 1 { "story" } else { "stories" },
            when.map_or("later".to_string(), |w| format!("after {w}"))
        )));
    }
    Ok(())
}

/// `--dry-run`: what would run, where, and how.
fn print_plan(config: &Config, settings: &Settings, plan: &Plan) {
    let (selected, phases): (&[crate::board::Story], &[PlannedPhase]) =
        (&plan.selected, &plan.phases);
    let n = settings.max.unwrap_or(selected.len()).min(selected.len());
    outln!(
        "Plan: {n} of {} selected {} would start, up to {} at once{}",
        selected.len(),
        if selected.len() == 1 {
            "story"
        } else {
            "stories"
        },
        settings.concurrency,
        match (&settings.worktrees, &settings.base_branch) {
            (true, Some(b)) => format!(", each in a worktree branched from {b}"),
            (true, None) => ", each in a worktree".to_string(),
            (false, _) => ", in the repo itself (no worktrees)".to_string(),
        }
    );
    for (i, s) in selected.iter().enumerate() {
        let prio = s
            .priority
            .map(|p| format!("p{p}"))
            .unwrap_or_else(|| "p-".into());
        let after = if s.dependencies.is_empty() {
            String::new()
        } else {
            format!("  (after {})", s.dependencies.join(", "))
        };
        let marker = if i < n { "" } else { "  [beyond --max]" };
        outln!("{:>3}. {}  {prio}  {}{after}{marker}", i + 1, s.id, s.title);
        if settings.worktrees {
            let base = config.worktree_base();
            match crate::worktree::place(&config.root, &base, s) {
                Ok((folder, branch)) => outln!(
                    "     worktree {}  branch {branch}",
                    crate::paths::rel(&config.root, &base.join(folder))
                ),
                Err(e) => outln!("     not run: {e}"),
            }
        }
        for p in phases {
            let done = crate::workflow::flag(&p.name).filter(|f| s.is_complete(f));
            match done {
                Some(f) if settings.from.is_none() => {
                    outln!("     {} (skipped: {f} is true)", p.name)
                }
                _ => outln!("     {} ({}): {}", p.name, p.preset, p.argv.join(" ")),
            }
        }
    }
    if let Some(line) = plan.launch.explain(&config.root) {
        outln!("{line}");
    }
}
