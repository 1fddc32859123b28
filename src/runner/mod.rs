//! `ai-sdlc run`'s engine: a fixed pool of worker threads fed in queue
//! order, holding back stories until their dependencies are done (SPEC §3,
//! §4, §6). The command (`cmd::run`) decides what to print; this runs.
//!
//! Every story runs in an `agent-executor` child. `--concurrent 1` (the
//! single-story mode) is the same machinery with one worker, streaming the
//! agent's every line; `--concurrent N>1` shows the latest line of each.

mod attempt;
mod child;
pub mod plan;
mod queue;
mod record;
pub mod resolve;

use crate::board::{Board, Story, lock};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::Error;
use crate::report::{Note, Notes, Reporter, Sink, StoryResult};
use crate::shutdown;
use crossbeam_channel::unbounded;
use queue::{Move, Queue};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use plan::Plan;

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

fn seconds(flag: &str, value: &str) -> Result<Duration, Error> {
    let max = (crate::config::MAX_MS / 1000) as f64;
    match value.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s <= max => Ok(Duration::from_secs_f64(s)),
        _ => Err(Error::usage(format!(
            "{flag} {value:?}: expected a number of seconds greater than 0 and at most {max} (a year), like {flag} 900"
        ))),
    }
}

/// Resolve the options of `run`, and what to warn about.
pub fn settings(config: &Config, args: &RunArgs) -> Result<(Settings, Vec<String>), Error> {
    let mut warnings = Vec::new();
    let requested = match &args.concurrent {
        Some(v) => v.trim().parse::<i64>().map_err(|_| {
            Error::usage(format!(
                "--concurrent {v:?}: expected a whole number of stories to run at once, like --concurrent 3"
            ))
        })?,
        None => config.concurrency,
    };
    let concurrency = if requested < 1 {
        warnings.push(format!(
            "concurrency {requested} is less than 1; running one story at a time"
        ));
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
        warnings.push(format!(
            "without worktrees, the {concurrency} concurrent stories share one directory and can overwrite each other's work"
        ));
    }
    // Single-story mode runs the top story, unless told which or how many.
    let max = args
        .max
        .or((concurrency == 1 && args.story.is_empty()).then_some(1));
    let settings = Settings {
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
    };
    Ok((settings, warnings))
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
    pub guard: Option<Arc<crate::git::guard::Guard>>,
    /// How executors are started.
    pub launch: crate::launch::Launch,
}

/// What a run did.
pub struct Ran {
    /// One per story that was tried or reported, in queue order.
    pub results: Vec<StoryResult>,
    pub duration_ms: u64,
}

/// Run the plan's stories, telling `sink` what happens (the dashboard,
/// plain lines, or nothing). Returns once every child is reaped.
pub fn start(
    config: Config,
    settings: Settings,
    plan: Plan,
    args: &RunArgs,
    sink: Box<dyn Sink>,
) -> Ran {
    let reporter = Reporter::start(sink);
    let notes = reporter.sender();
    let total = settings.max.unwrap_or(usize::MAX).min(plan.selected.len());
    notes.send(Note::Planned { total });
    install_signals(&notes, settings.grace);
    let started = Instant::now();
    // Taken before any agent of this run starts.
    let guard = match crate::git::guard::Guard::new(&config.root) {
        Ok(g) => Some(Arc::new(g)),
        Err(e) => {
            log::debug!("no git state to guard: {e}");
            None
        }
    };
    let bad_keys = if settings.worktrees {
        plan::key_problems(&plan.scan)
    } else {
        HashMap::new()
    };
    let statuses = plan
        .scan
        .stories
        .iter()
        .map(|s| (s.id.clone(), s.status.clone()))
        .collect();
    let queue = Queue::new(plan.selected, statuses, bad_keys, settings.max);
    let ctx = Arc::new(Ctx {
        guard,
        launch: plan.launch,
        board: Board::of(&config),
        config,
        settings,
        notes,
        by_id: !args.story.is_empty(),
        force: args.force,
    });
    let lander = args.land.then(|| LandAfter::new(&ctx));
    let results = dispatch(&ctx, queue, lander);
    let duration_ms = started.elapsed().as_millis() as u64;
    drop(ctx);
    reporter.finish();
    Ran {
        results,
        duration_ms,
    }
}

/// Ctrl-C (and SIGTERM, SIGHUP, SIGQUIT) stop the run; the reporter says how.
fn install_signals(notes: &Notes, grace: Duration) {
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
}

/// `run --land`: each story that finishes done is landed at once, on the
/// dispatcher's thread, before the stories that depend on it start.
struct LandAfter {
    base: Result<crate::land::merge::Base, String>,
    resolver: Result<resolve::AgentResolver, String>,
    opts: crate::land::queue::Options,
    /// LandOutcome in this run: for whom a conflict is with.
    landed: Vec<(String, String)>,
}

impl LandAfter {
    fn new(ctx: &Ctx) -> LandAfter {
        LandAfter {
            base: crate::land::merge::Base::open(&ctx.config).map_err(|e| e.to_string()),
            resolver: resolve::AgentResolver::from_run(ctx),
            opts: crate::land::queue::Options {
                resolve: ctx.config.land.resolves(&ctx.config.agent),
                max_rounds: ctx.config.land.max_resolve_rounds,
            },
            landed: Vec::new(),
        }
    }

    /// Land story `id`; say how it went.
    fn land(&mut self, ctx: &Ctx, id: &str) -> crate::land::queue::LandOutcome {
        use crate::land::queue::{LandOutcome, land_one};
        let (base, resolver) = match (&self.base, &mut self.resolver) {
            (Ok(b), Ok(r)) => (b, r),
            (Err(e), _) => return LandOutcome::Blocked { reason: e.clone() },
            (_, Err(e)) => return LandOutcome::Blocked { reason: e.clone() },
        };
        let story = match ctx.board.load(id) {
            Ok(s) => s,
            Err(bad) => {
                return LandOutcome::Blocked {
                    reason: bad.to_string(),
                };
            }
        };
        let branch = crate::land::branch_of(&story);
        let l = crate::land::Landing { story, branch };
        let r = land_one(&ctx.config, base, &l, &self.opts, resolver, &self.landed);
        if let LandOutcome::Landed { commit, .. } = &r {
            self.landed.push((id.to_string(), commit.clone()));
        }
        let text = match &r {
            LandOutcome::Landed { how, commit, .. } => {
                format!(
                    "landed on {}: {how} {}",
                    base.name,
                    &commit[..commit.len().min(12)]
                )
            }
            LandOutcome::AlreadyIn => format!("already in {}", base.name),
            LandOutcome::Blocked { reason } | LandOutcome::Waiting { reason } => {
                format!("not landed: {reason}")
            }
            LandOutcome::Interrupted => "not landed: interrupted".into(),
        };
        ctx.notes.send(Note::Info {
            id: Some(id.to_string()),
            text,
        });
        r
    }
}

/// Start the workers, feed them in queue order, collect their results.
fn dispatch(ctx: &Arc<Ctx>, mut queue: Queue, mut lander: Option<LandAfter>) -> Vec<StoryResult> {
    let order: HashMap<String, usize> = queue
        .waiting()
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    let n = ctx.settings.concurrency.min(order.len()).max(1);
    let (job_tx, job_rx) = unbounded::<Story>();
    let (result_tx, result_rx) = unbounded::<(Story, attempt::Attempt)>();
    let workers = spawn_workers(ctx, n, &job_rx, &result_tx);
    drop(result_tx);
    let mut results = Vec::new();
    let held = |id: &str| lock::is_held(&ctx.board, id);
    let mut in_flight = 0usize;
    loop {
        while !shutdown::stopping() && in_flight < workers.len() {
            let Some(m) = queue.next(&held) else { break };
            match m {
                Move::Start(s) => {
                    if job_tx.send(s).is_ok() {
                        in_flight += 1;
                    }
                }
                Move::Skip(s, why, code) => results.push(skipped(ctx, &s, why, code)),
                Move::Leave(s, why) => ctx.notes.send(Note::Info {
                    id: Some(s.id.clone()),
                    text: format!("not run: {why}"),
                }),
            }
        }
        if in_flight == 0 {
            break;
        }
        let Ok((story, a)) = result_rx.recv() else {
            break;
        };
        in_flight -= 1;
        match a {
            attempt::Attempt::Ran(mut r) => {
                if let (Some(l), crate::story::Outcome::Succeeded) = (&mut lander, r.outcome) {
                    r.landed = Some(l.land(ctx, &story.id));
                }
                let account_wide = r
                    .failure
                    .filter(|k| k.account_wide())
                    .map(|k| k.describe().to_string());
                queue.ended(&story.id, Some(r.outcome), account_wide);
                ctx.notes.send(Note::Finished(r.clone()));
                results.push(*r);
            }
            attempt::Attempt::Gone(why) => {
                queue.ended(&story.id, None, None);
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
    for (s, code, why) in queue.never_started(shutdown::stopping()) {
        match code {
            Some(code) => results.push(skipped(ctx, &s, why, code)),
            None => results.push(StoryResult::not_run(
                &s,
                crate::story::Outcome::Cancelled,
                why,
            )),
        }
    }
    results.sort_by_key(|r| order.get(&r.id).copied().unwrap_or(usize::MAX));
    results
}

/// A skipped story's result, reported as it happens.
fn skipped(ctx: &Ctx, s: &Story, why: String, code: queue::Skip) -> StoryResult {
    let mut r = StoryResult::not_run(s, crate::story::Outcome::Skipped, why);
    r.reason = Some(code.code());
    r.waiting = code.waits();
    ctx.notes.send(Note::Finished(Box::new(r.clone())));
    r
}

/// `n` worker threads: each takes a story, runs it start to end, and
/// sends back what became of it.
fn spawn_workers(
    ctx: &Arc<Ctx>,
    n: usize,
    jobs: &crossbeam_channel::Receiver<Story>,
    results: &crossbeam_channel::Sender<(Story, attempt::Attempt)>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut workers = Vec::new();
    for i in 0..n {
        let (ctx, jobs, results) = (Arc::clone(ctx), jobs.clone(), results.clone());
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
    workers
}
