//! `ai-sdlc run`: a fixed pool of worker threads fed in queue order, holding
//! back stories until their dependencies are done (SPEC §3, §4, §6).
//!
//! Every story runs in an `agent-executor` child. `--concurrent 1` (the
//! single-story mode) is the same machinery with one worker, streaming the
//! agent's every line; `--concurrent N>1` shows the latest line of each.

mod attempt;
mod child;
pub mod plan;
mod record;

use crate::board::{Board, Status, Story, lock};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::{EXIT_FAILED, Failure, Outcome as Exit};
use crate::report::{self, Note, Notes, Reporter, StoryResult};
use crate::shutdown;
use crate::story::Outcome;
use crossbeam_channel::unbounded;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The run's options, resolved from flags, environment and config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub concurrency: usize,
    pub timeout: Duration,
    pub grace: Duration,
    pub worktrees: bool,
    pub keep_worktrees: bool,
    pub max: Option<usize>,
    /// Worktrees branch from this; without worktrees, the repo's branch.
    pub base_branch: Option<String>,
    pub health_interval: Duration,
    pub health_misses: u32,
    /// `run --workflow`: passed on to the executors.
    pub workflow: Option<String>,
    /// `run --from`: the phase each story starts at again.
    pub from: Option<String>,
    /// `run --pr`: open a pull request for each story that ends done.
    pub pr: bool,
    /// The fingerprint of the commands checked as trusted: the executors
    /// refuse a config that names others (edited after the check).
    pub commands: String,
}

impl Settings {
    /// The single-story mode: one story in the foreground, its output streamed.
    pub fn single_story(&self) -> bool {
        self.concurrency == 1
    }
}

fn seconds(flag: &str, value: &str) -> Result<Duration, Failure> {
    let max = (crate::config::MAX_MS / 1000) as f64;
    match value.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= max => Ok(Duration::from_secs_f64(s)),
        _ => Err(Failure::usage(format!(
            "{flag} {value:?}: expected a number of seconds greater than 0 and at most {max} (a year), like {flag} 900"
        ))),
    }
}

/// Resolve the options of `run`; warnings go to stderr.
pub fn settings(config: &Config, args: &RunArgs) -> Result<Settings, Failure> {
    let requested = match &args.concurrent {
        Some(v) => v.trim().parse::<i64>().map_err(|_| {
            Failure::usage(format!(
                "--concurrent {v:?}: expected a whole number of stories to run at once, like --concurrent 3"
            ))
        })?,
        None => config.concurrency,
    };
    let concurrency = if requested < 1 {
        errln!(
            "ai-sdlc: warning: concurrency {requested} is less than 1; running one story at a time"
        );
        1
    } else {
        requested.min(1024) as usize
    };
    let timeout = match &args.timeout {
        Some(v) => seconds("--timeout", v)?,
        None => Duration::from_millis(config.agent_timeout_ms.max(1)),
    };
    let grace = match &args.shutdown_timeout {
        Some(v) => seconds("--shutdown-timeout", v)?,
        None => Duration::from_millis(config.shutdown_timeout_ms),
    };
    let worktrees = config.worktree.enabled && !args.no_worktree;
    if !worktrees && concurrency > 1 {
        errln!(
            "ai-sdlc: warning: without worktrees, the {concurrency} concurrent stories share one directory and can overwrite each other's work"
        );
    }
    // Single-story mode runs the top story, unless told which or how many.
    let max = args
        .max
        .or((concurrency == 1 && args.story.is_empty()).then_some(1));
    Ok(Settings {
        concurrency,
        timeout,
        grace,
        worktrees,
        keep_worktrees: args.keep_worktrees || config.worktree.keep,
        max,
        base_branch: None,
        health_interval: Duration::from_millis(config.health_check_interval_ms),
        health_misses: config.health_miss_threshold,
        workflow: args.workflow.clone(),
        from: args.from.clone(),
        commands: String::new(),
        pr: args.pr,
    })
}

/// Shared by the workers of one run.
pub struct Ctx {
    pub config: Config,
    pub board: Board,
    pub settings: Settings,
    pub notes: Notes,
    /// `run --story`: any status but done (or done with --force) may run.
    pub by_id: bool,
    pub force: bool,
    /// The repo's shared git state, checked as each agent ends.
    pub guard: Option<crate::git::guard::Guard>,
    /// How executors are started (`None`: as children of the runner).
    pub launcher: Option<crate::launch::Launcher>,
}

pub fn command(root: &Path, args: &RunArgs, quiet: bool) -> Exit {
    let mut config = Config::load(root)?;
    if let Some(w) = &args.workflow {
        config.use_workflow(w).map_err(Failure::usage)?;
    }
    if let Some(f) = &args.from
        && !config.phases.iter().any(|p| &p.name == f)
    {
        let names: Vec<&str> = config.phases.iter().map(|p| p.name.as_str()).collect();
        return Err(Failure::usage(format!(
            "--from {f:?}: the workflow has no such phase; its phases are {}",
            names.join(", ")
        )));
    }
    let mut settings = settings(&config, args)?;
    // Before anything is written or started: the config's commands must
    // be trusted (a dry run starts nothing).
    if !args.dry_run {
        crate::trust::check(&config, args.trust)?;
    }
    settings.commands = crate::trust::fingerprint(&crate::trust::commands(&config));
    let scan = crate::board::scan(&config)?;
    for b in &scan.bad {
        errln!(
            "ai-sdlc: warning: {}: {} (skipped)",
            crate::paths::rel(&config.root, &b.path),
            b.reason
        );
    }
    // A dry run writes nothing: stale stories are only reported.
    let scan = if !args.dry_run && plan::recover_stale(&config, &scan) > 0 {
        crate::board::scan(&config)?
    } else {
        scan
    };
    if args.story.is_empty() {
        for s in scan.stories.iter().filter(|s| {
            s.status == Status::InProgress
                && !s.run_by_us()
                && !lock::is_held(&Board::of(&config), &s.id)
        }) {
            errln!(
                "ai-sdlc: [{}] is in-progress in the TS ai-sdlc, not in a run of this tool; left alone (`ai-sdlc run --story {}` takes it over)",
                s.id,
                s.id
            );
        }
    }
    let selected = plan::select(&scan, args, &config.root)?;
    plan::check_cycles(&scan, &selected)?;
    if selected.is_empty() {
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
        return Ok(0);
    }
    let phases = plan::phase_commands(&config)?;
    let launcher =
        crate::launch::resolve(&config, args.launcher.as_deref()).map_err(Failure::usage)?;
    let launcher_missing = launcher
        .as_ref()
        .is_some_and(|l| !l.argv[0].contains('{') && !crate::process::findable(&l.argv[0], &config.root));
    if let (true, false, Some(l)) = (launcher_missing, args.dry_run, &launcher) {
        return Err(Failure::usage(format!(
            "the launcher {:?} is not on PATH (orchestrator.launcher in {}, or --launcher); install it, or run without one",
            l.argv[0],
            config.file_name()
        )));
    }
    if args.pr && !args.dry_run {
        crate::land::pr::ready(&config)?;
    }
    if settings.worktrees {
        crate::worktree::check_repo(&config.root).map_err(Failure::usage)?;
        settings.base_branch = Some(
            crate::worktree::base_branch(&config.root, config.worktree.base_branch.as_deref())
                .map_err(Failure::usage)?,
        );
    } else {
        settings.base_branch = crate::worktree::base_branch(&config.root, None).ok();
    }
    if args.dry_run {
        plan::print(&config, &settings, &selected, &phases);
        if let Some(l) = &launcher {
            outln!(
                "Each story's executor starts through: {}{}",
                l.argv.join(" "),
                if launcher_missing {
                    format!(" ({} is not on PATH here)", l.argv[0])
                } else {
                    String::new()
                }
            );
        }
        return Ok(0);
    }
    let sink: Box<dyn report::Sink> = if quiet {
        Box::new(report::Quiet)
    } else if crate::term::stderr_is_terminal() {
        Box::new(report::dashboard::Dashboard::new(settings.single_story()))
    } else {
        Box::new(report::Plain {
            stream_output: settings.single_story(),
        })
    };
    let reporter = Reporter::start(sink);
    let notes = reporter.sender();
    let total = settings.max.unwrap_or(usize::MAX).min(selected.len());
    notes.send(Note::Planned { total });
    let grace = settings.grace;
    let signal_notes = notes.clone();
    if let Err(e) = shutdown::install(move |sig, state| {
        let text = match state {
            shutdown::State::Forced => format!(
                "{} again: killing every running story now (SIGKILL)",
                crate::process::signal_name(sig)
            ),
            _ => format!(
                "{}: stopping; nothing new starts, running stories get SIGTERM and, after {}, SIGKILL. Press Ctrl-C again to kill them now",
                crate::process::signal_name(sig),
                crate::time::human_duration(grace.as_millis() as u64)
            ),
        };
        signal_notes.send(Note::Warn { id: None, text });
    }) {
        log::warn!("cannot handle Ctrl-C ({e}); an interrupted run may leave stories in-progress");
    }
    let started = Instant::now();
    // Taken before any agent of this run starts.
    let guard = match crate::git::guard::Guard::new(&config.root) {
        Ok(g) => Some(g),
        Err(e) => {
            log::debug!("no git state to guard: {e}");
            None
        }
    };
    let ctx = Arc::new(Ctx {
        guard,
        launcher,
        board: Board::of(&config),
        config,
        settings,
        notes,
        by_id: !args.story.is_empty(),
        force: args.force,
    });
    let bad_keys = if ctx.settings.worktrees {
        plan::key_problems(&scan)
    } else {
        HashMap::new()
    };
    let results = dispatch(&ctx, scan_statuses(&scan.stories), bad_keys, selected);
    let duration_ms = started.elapsed().as_millis() as u64;
    drop(ctx);
    reporter.finish();
    errput!(
        "{}",
        report::summary(&results, duration_ms, crate::term::terminal_width())
    );
    if args.json {
        outln!("{}", report::json(&results, duration_ms));
    }
    if let Some(code) = shutdown::exit_code() {
        return Ok(code);
    }
    let t = report::Totals::of(&results);
    if results.len() > 1 && t.failed + t.timed_out == results.len() {
        errln!("ai-sdlc: every story failed; their logs say why (ai-sdlc logs <ID>)");
    }
    if t.failed + t.timed_out + t.skipped + t.cancelled > 0
        || results.iter().any(|r| r.unrecorded.is_some())
    {
        return Ok(EXIT_FAILED);
    }
    Ok(0)
}

fn scan_statuses(stories: &[Story]) -> HashMap<String, Status> {
    stories
        .iter()
        .map(|s| (s.id.clone(), s.status.clone()))
        .collect()
}

enum Gate {
    Go,
    Wait,
    Skip(String),
    /// Another runner has it (or a dependency of it): not ours, not counted.
    Leave(String),
}

/// What the dispatcher knows besides its queue.
struct Known {
    /// Statuses on the board when the run started.
    board: HashMap<String, Status>,
    /// Stories that cannot get a worktree: id -> why.
    bad_keys: HashMap<String, String>,
    finished: HashMap<String, Outcome>,
    /// Selected and not finished: waiting or in flight.
    pending: HashSet<String>,
    /// Left to another runner.
    left: HashSet<String>,
}

impl Known {
    fn gate(&self, ctx: &Ctx, story: &Story) -> Gate {
        if let Some(why) = self.bad_keys.get(&story.id) {
            return Gate::Skip(why.clone());
        }
        for dep in &story.dependencies {
            match self.finished.get(dep) {
                Some(Outcome::Succeeded) => continue,
                Some(o) => return Gate::Skip(format!("dependency {dep} {}", o.describe())),
                None => {}
            }
            if self.pending.contains(dep) {
                return Gate::Wait;
            }
            if self.left.contains(dep) {
                return Gate::Leave(format!("its dependency {dep} is left to another runner"));
            }
            match self.board.get(dep) {
                Some(Status::Done) => {}
                Some(Status::InProgress) if lock::is_held(&ctx.board, dep) => {
                    return Gate::Leave(format!(
                        "its dependency {dep} is running in another runner, which runs it next"
                    ));
                }
                Some(s) => return Gate::Skip(format!("dependency {dep} is {s}, not done")),
                None => return Gate::Skip(format!("dependency {dep} does not exist")),
            }
        }
        Gate::Go
    }
}

/// Feed the workers in queue order and collect their results.
fn dispatch(
    ctx: &Arc<Ctx>,
    board: HashMap<String, Status>,
    bad_keys: HashMap<String, String>,
    selected: Vec<Story>,
) -> Vec<StoryResult> {
    let n = ctx.settings.concurrency.min(selected.len()).max(1);
    let max = ctx.settings.max.unwrap_or(usize::MAX);
    let (job_tx, job_rx) = unbounded::<Story>();
    let (result_tx, result_rx) = unbounded::<(Story, attempt::Attempt)>();
    let mut workers = Vec::new();
    for i in 0..n {
        let (ctx, jobs, results) = (Arc::clone(ctx), job_rx.clone(), result_tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                // This thread spawns and reaps each child: PDEATHSIG follows the thread.
                for story in jobs {
                    // A bug in handling one story fails that story, not the run.
                    let a = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        attempt::attempt(&ctx, &story)
                    }))
                    .unwrap_or_else(|panic| attempt::crashed(&story, panic));
                    if results.send((story, a)).is_err() {
                        return;
                    }
                }
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => log::warn!("cannot start worker {i}: {e}"),
        }
    }
    drop(result_tx);
    let order: HashMap<String, usize> = selected
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    let mut waiting: Vec<Story> = selected;
    let mut known = Known {
        pending: waiting.iter().map(|s| s.id.clone()).collect(),
        board,
        bad_keys,
        finished: HashMap::new(),
        left: HashSet::new(),
    };
    let mut results = Vec::new();
    let (mut in_flight, mut started) = (0usize, 0usize);
    // An agent that cannot log in (or is out of quota) fails every story
    // alike: stop starting them, and say why.
    let mut halted: Option<String> = None;
    let skip = |s: &Story, why: String, results: &mut Vec<StoryResult>| {
        let r = StoryResult::not_run(s, Outcome::Skipped, why);
        ctx.notes.send(Note::Finished(Box::new(r.clone())));
        results.push(r);
    };
    loop {
        let mut i = 0;
        while !shutdown::stopping()
            && halted.is_none()
            && in_flight < workers.len()
            && started < max
            && i < waiting.len()
        {
            match known.gate(ctx, &waiting[i]) {
                Gate::Go => {
                    let s = waiting.remove(i);
                    if job_tx.send(s).is_ok() {
                        in_flight += 1;
                        started += 1;
                    }
                }
                Gate::Wait => i += 1,
                Gate::Skip(why) => {
                    let s = waiting.remove(i);
                    known.pending.remove(&s.id);
                    known.finished.insert(s.id.clone(), Outcome::Skipped);
                    skip(&s, why, &mut results);
                    i = 0;
                }
                Gate::Leave(why) => {
                    let s = waiting.remove(i);
                    known.pending.remove(&s.id);
                    ctx.notes.send(Note::Info {
                        id: Some(s.id.clone()),
                        text: format!("not run: {why}"),
                    });
                    known.left.insert(s.id);
                    i = 0;
                }
            }
        }
        if in_flight == 0 {
            break;
        }
        let Ok((story, a)) = result_rx.recv() else {
            break;
        };
        in_flight -= 1;
        known.pending.remove(&story.id);
        match a {
            attempt::Attempt::Ran(r) => {
                if let Some(kind) = r.failure.filter(|k| k.account_wide())
                    && halted.is_none()
                {
                    halted = Some(format!(
                        "not started: the agent failed in {} ({}), which would fail every story; fix that and run again",
                        story.id,
                        kind.describe()
                    ));
                }
                known.finished.insert(story.id.clone(), r.outcome);
                ctx.notes.send(Note::Finished(r.clone()));
                results.push(*r);
            }
            attempt::Attempt::Gone(why) => {
                ctx.notes.send(Note::Info {
                    id: Some(story.id.clone()),
                    text: format!("not run: {why}"),
                });
            }
        }
    }
    drop(job_tx);
    for w in workers {
        let _ = w.join();
    }
    // What never started: interrupted, held back by a dependency that did
    // not succeed, or left without a worker (none could be started).
    for s in waiting {
        if let Some(why) = &halted {
            skip(&s, why.clone(), &mut results);
        } else if shutdown::stopping() {
            results.push(StoryResult::not_run(
                &s,
                Outcome::Cancelled,
                attempt::INTERRUPTED,
            ));
        } else if started < max {
            let why = if s.dependencies.is_empty() {
                "not started: no worker thread could be started (see the warnings above)"
                    .to_string()
            } else {
                format!(
                    "dependencies {} did not succeed in this run",
                    s.dependencies.join(", ")
                )
            };
            skip(&s, why, &mut results);
        }
    }
    results.sort_by_key(|r| order.get(&r.id).copied().unwrap_or(usize::MAX));
    results
}
