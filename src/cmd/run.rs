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
    log::info!(
        "config: {} (repo {})",
        config.file_name(),
        config.root.display()
    );
    let (mut settings, warnings) = runner::settings(&config, args)?;
    log::info!(
        "up to {} at once, time limit {} s, grace {} s, {}",
        settings.concurrency,
        settings.timeout.as_secs(),
        settings.grace.as_secs(),
        if settings.worktrees {
            format!("worktrees under {}", config.worktree_base().display())
        } else {
            "no worktrees".to_string()
        }
    );
    for w in warnings {
        errln!("ai-sdlc: warning: {w}");
    }
    // Before anything is written or started: the config's commands must
    // be trusted. A dry run starts nothing, and says whether the real run
    // would be refused.
    let mut refused = None;
    if !assume_trusted {
        match crate::trust::check(&config, args.trust) {
            Ok(Some(w)) => errln!("ai-sdlc: warning: {w}"),
            Ok(None) => {}
            Err(e) if args.dry_run => refused = Some(e.to_string()),
            Err(e) => return Err(e),
        }
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
        return print_plan(&config, &settings, &plan, args, refused);
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
fn print_plan(
    config: &Config,
    settings: &Settings,
    plan: &Plan,
    args: &RunArgs,
    refused: Option<String>,
) -> Result<(), Error> {
    // The real queue decides, as the run would if each story succeeded.
    let order = runner::dry_run(config, plan, settings, args);
    let starts = order.iter().filter(|(_, why)| why.is_none()).count();
    let story = |id: &str| plan.selected.iter().find(|s| s.id == id);
    // Phases a story would skip: done before, unless --from or a forced rerun.
    let skipped = |s: &crate::board::Story, p: &PlannedPhase| {
        let forced = s.status == crate::board::Status::Done && args.force;
        crate::workflow::flag(&p.name)
            .filter(|f| s.is_complete(f) && settings.from.is_none() && !forced)
    };
    let place = |s: &crate::board::Story| {
        settings.worktrees.then(|| {
            let base = config.worktree_base();
            crate::worktree::place(&config.root, &base, s).map(|(folder, branch)| {
                (crate::paths::rel(&config.root, &base.join(folder)), branch)
            })
        })
    };
    if args.json {
        let stories: Vec<serde_json::Value> = order
            .iter()
            .filter_map(|(id, why)| story(id).map(|s| (s, why)))
            .map(|(s, why)| {
                let (worktree, branch) = match place(s) {
                    Some(Ok((w, b))) => (Some(w), Some(b)),
                    _ => (None, None),
                };
                let phases: Vec<serde_json::Value> = plan
                    .phases
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "name": p.name,
                            "preset": p.preset.to_string(),
                            "argv": p.argv,
                            "skipped": skipped(s, p).map(|f| format!("{f} is true")),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "id": s.id,
                    "title": s.title,
                    "starts": why.is_none(),
                    "why_not": why,
                    "dependencies": s.dependencies,
                    "worktree": worktree,
                    "branch": branch,
                    "attempts": runner::best_of::count(config, settings, s),
                    "phases": phases,
                })
            })
            .collect();
        let doc = serde_json::json!({
            "dry_run": true,
            "concurrency": settings.concurrency,
            "base_branch": settings.base_branch,
            "refused": refused,
            "stories": stories,
        });
        outln!("{doc}");
    } else {
        outln!(
            "Plan: {starts} of {} selected {} would start, up to {} at once{}",
            plan.selected.len(),
            if plan.selected.len() == 1 {
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
        for (i, (id, why)) in order.iter().enumerate() {
            let Some(s) = story(id) else { continue };
            let prio = s
                .priority
                .map(|p| format!("p{p}"))
                .unwrap_or_else(|| "p-".into());
            let after = if s.dependencies.is_empty() {
                String::new()
            } else {
                format!("  (after {})", s.dependencies.join(", "))
            };
            let marker = match why {
                None => String::new(),
                Some(w) => format!("  [not started: {}]", w.trim_start_matches("not started: ")),
            };
            outln!("{:>3}. {}  {prio}  {}{after}{marker}", i + 1, s.id, s.title);
            if why.is_some() {
                continue;
            }
            match place(s) {
                Some(Ok((folder, branch))) => outln!("     worktree {folder}  branch {branch}"),
                Some(Err(e)) => outln!("     not run: {e}"),
                None => {}
            }
            let n = runner::best_of::count(config, settings, s);
            if n > 1 {
                outln!(
                    "     {n} attempts at implement, each in a worktree of its own; pick: {}",
                    config.attempts.pick.name()
                );
            }
            for p in &plan.phases {
                match skipped(s, p) {
                    Some(f) => outln!("     {} (skipped: {f} is true)", p.name),
                    None => outln!("     {} ({}): {}", p.name, p.preset, p.argv.join(" ")),
                }
            }
        }
        if let Some(line) = plan.launch.explain(&config.root) {
            outln!("{line}");
        }
    }
    match refused {
        Some(why) => Err(Error::usage(format!(
            "the real run would be refused: {why}"
        ))),
        None => Ok(()),
    }
}
