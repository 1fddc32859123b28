//! `ai-sdlc run`'s engine: a fixed pool of worker threads fed in queue
//! order, holding back stories until their dependencies are done (SPEC §3,
//! §4, §6). The command (`cmd::run`) decides what to print; this runs.
//!
//! Every story runs in an `agent-executor` child. `--concurrent 1` (the
//! single-story mode) is the same machinery with one worker, streaming the
//! agent's every line; `--concurrent N>1` shows the latest line of each.

mod attempt;
pub mod best_of;
mod child;
pub mod plan;
mod queue;
mod record;
pub mod resolve;

use crate::board::{Board, Story, lock};
use crate::cli::RunArgs;
use crate::config::Config;
use crate::error::Error;
use crate::governor::{Governor, Hold};
use crate::report::{Note, Notes, Reporter, Sink, StoryResult};
use crate::{shutdown, time};
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
    /// `--no-wait`: at a usage cap, stop instead of waiting for it to lift.
    pub no_wait: bool,
    /// What one story, and the run, may spend (`budget.*`, the flags).
    pub story_budget: crate::governor::Budget,
    pub run_budget: crate::governor::Budget,
    /// `run --attempts N`: every story's attempts (SPEC §17).
    pub attempts: Option<u32>,
}

impl Settings {
    /// The single-story mode: one story in the foreground, its output streamed.
    pub fn single_story(&self) -> bool {
        self.concurrency == 1
    }
}

fn dollars(flag: &str, value: &str) -> Result<f64, Error> {
    match value.trim().trim_start_matches('$').parse::<f64>() {
        Ok(d) if d.is_finite() && d > 0.0 && d <= 1e9 => Ok(d),
        _ => Err(Error::usage(format!(
            "{flag} {value:?}: expected an amount in US dollars greater than 0, like {flag} 2.50"
        ))),
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
    if config.agent.sandbox.enabled && crate::sandbox::landlock::abi().is_none() {
        warnings.push(
            "agents run without a filesystem sandbox: this kernel has no Landlock (Linux 5.13+), so they can write anywhere you can; their environment is still filtered (agent.sandbox: false says you know)"
                .to_string(),
        );
    }
    // Single-story mode runs the top story, unless told which or how many.
    let max = args
        .max
        .or((concurrency == 1 && args.story.is_empty()).then_some(1));
    let attempts = match &args.attempts {
        None => None,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n @ 1..) if n <= crate::config::MAX_ATTEMPTS => Some(n),
            _ => {
                return Err(Error::usage(format!(
                    "--attempts {v:?}: expected a whole number from 1 to {}, like --attempts 3",
                    crate::config::MAX_ATTEMPTS
                )));
            }
        },
    };
    let several = attempts.unwrap_or(config.attempts.count) > 1;
    if several && !worktrees {
        warnings.push(
            "attempts need worktrees (each attempt has its own): without them, each story runs once"
                .to_string(),
        );
    } else if several && !config.worktree.commit {
        warnings.push(format!(
            "attempts need worktree.commit (an attempt's work is what is committed on its branch): with it false in {}, each story runs once",
            config.file_name()
        ));
    }
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
        no_wait: args.no_wait,
        attempts,
        story_budget: crate::governor::Budget {
            usd: match &args.budget_story {
                Some(v) => Some(dollars("--budget-story", v)?),
                None => config.budget.story,
            },
            tokens: config.budget.story_tokens,
        },
        run_budget: crate::governor::Budget {
            usd: match &args.budget_run {
                Some(v) => Some(dollars("--budget-run", v)?),
                None => config.budget.run,
            },
            tokens: config.budget.run_tokens,
        },
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
    /// The run's limits: usage caps, rate limits, budgets.
    pub gov: Arc<Gov>,
    /// How many executors run now, against the governor's limit: a story
    /// takes one; its extra attempts take more when there are free ones.
    pub slots: Arc<Slots>,
}

/// The run's executor slots: the stories the dispatcher started, and the
/// extra attempts their workers started beside them (SPEC §17), never
/// more than the governor's limit together.
#[derive(Default)]
pub struct Slots {
    used: std::sync::Mutex<usize>,
}

impl Slots {
    /// Take a slot if fewer than `limit` are taken.
    pub fn try_take(&self, limit: usize) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if *used < limit {
            *used += 1;
            return true;
        }
        false
    }

    pub fn give(&self) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(1);
    }
}

/// The run's governor, shared by the dispatcher and the workers' readers
/// of their executors' messages.
pub struct Gov {
    state: std::sync::Mutex<Governor>,
    /// Wakes the dispatcher when the governor changed its mind.
    wake: (
        crossbeam_channel::Sender<()>,
        crossbeam_channel::Receiver<()>,
    ),
    /// The agent, for people and the ledger: `claude`.
    agent: String,
    model: Option<String>,
    cap_wait_ms: u64,
    /// The board folder, where the spend ledger is.
    sdlc_dir: std::path::PathBuf,
    /// Phases that run a command of the config's own, not the agent: they
    /// spend nothing.
    agentless: Vec<String>,
}

impl Gov {
    pub fn new(config: &Config, settings: &Settings) -> Gov {
        Gov {
            state: std::sync::Mutex::new(Governor::new(
                settings.concurrency,
                Duration::from_millis(config.governor.rate_quiet_ms),
                settings.story_budget,
                settings.run_budget,
            )),
            wake: crossbeam_channel::bounded(1),
            agent: config
                .agent
                .preset()
                .map_or("the agent", |p| p.name())
                .to_string(),
            model: config.agent.model.clone(),
            cap_wait_ms: config.governor.cap_wait_ms,
            sdlc_dir: config.sdlc_dir(),
            agentless: config
                .phases
                .iter()
                .filter(|p| p.command.is_some())
                .map(|p| p.name.clone())
                .chain([crate::workflow::SETUP.to_string()])
                .collect(),
        }
    }

    /// A phase of story `id` ended: one line in the spend ledger.
    pub fn record_spend(
        &self,
        id: &str,
        (attempt, agent): (Option<u32>, Option<crate::agent::Preset>),
        r: &crate::ipc::PhaseResult,
    ) -> Result<(), String> {
        if r.outcome == "skipped" || self.agentless.contains(&r.phase) {
            return Ok(());
        }
        let entry = crate::governor::ledger::Entry {
            ts: time::iso_seconds(time::now_ms()),
            story: id.to_string(),
            phase: r.phase.clone(),
            round: r.round,
            attempt,
            agent: agent.map_or_else(|| self.agent.clone(), |p| p.name().to_string()),
            model: self.model.clone(),
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cost_usd: r.cost_usd,
            cost_from: r.cost_from.clone(),
            duration_ms: r.duration_ms,
            outcome: r.outcome.clone(),
        };
        crate::governor::ledger::append(&self.sdlc_dir, &entry)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Governor> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn woken(&self) -> &crossbeam_channel::Receiver<()> {
        &self.wake.1
    }

    /// Tell the dispatcher to look again.
    pub fn poke(&self) {
        let _ = self.wake.0.try_send(());
    }

    /// "claude usage limit".
    pub fn cap_words(&self) -> String {
        format!("{} usage limit", self.agent)
    }

    /// A story was rate limited: halve the concurrency, and say so.
    pub fn rate_limited(&self, notes: &Notes, id: &str, words: &str) {
        if let Some((from, to)) = self.lock().limited(Instant::now()) {
            self.say_limit(notes, from, to, &format!("rate limited: {id}: {words}"));
        }
    }

    /// A story met its agent's usage cap (the run hears of it before the
    /// story ends): no new story starts until the cap lifts, or for
    /// `governor.capWait` until the story says when.
    pub fn capped(&self, at: Option<u64>) {
        let until = at.unwrap_or(time::now_ms() + self.cap_wait_ms);
        self.lock().pause(until, &self.cap_words());
        self.poke();
    }

    /// What a running story has spent so far: counted against the run's
    /// budget, shown against it.
    pub fn spent(&self, notes: &Notes, id: &str, spent: crate::governor::Spend) {
        let text = {
            let mut g = self.lock();
            g.spending(id, spent);
            g.spent_text()
        };
        if let Some(t) = text {
            notes.send(Note::Spent(t));
        }
    }

    fn say_limit(&self, notes: &Notes, from: usize, to: usize, why: &str) {
        let text = format!("concurrency {from} → {to} ({why})");
        log::info!("{text}");
        notes.send(Note::Warn { id: None, text });
        notes.send(Note::Concurrency(to));
        self.poke();
    }
}

/// The run's queue of `selected`, as `plan` and the options make it.
fn queue_of(plan: &Plan, settings: &Settings, args: &RunArgs, selected: Vec<Story>) -> Queue {
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
    Queue::new(selected, statuses, bad_keys, settings.max).forced(args.force)
}

/// What the run would do with each selected story if every one it starts
/// succeeds (`run --dry-run`): the real queue, nothing started. In queue
/// order: `None` for a story that would start, else why it would not.
pub fn dry_run(
    config: &Config,
    plan: &Plan,
    settings: &Settings,
    args: &RunArgs,
) -> Vec<(String, Option<String>)> {
    let mut queue = queue_of(plan, settings, args, plan.selected.clone());
    let board = Board::of(config);
    let held = |id: &str| lock::is_held(&board, id);
    let now = crate::time::now_ms();
    let mut out = Vec::new();
    while let Some(m) = queue.next(&held, now) {
        match m {
            Move::Start(s) => {
                queue.ended(&s.id, Some(crate::story::Outcome::Succeeded), None);
                out.push((s.id, None));
            }
            Move::Skip(s, why, _) | Move::Leave(s, why) => out.push((s.id, Some(why))),
        }
    }
    for (s, _, why) in queue.never_started(false, now, None) {
        out.push((s.id, Some(why)));
    }
    // What is left was never reported: beyond --max.
    for s in &plan.selected {
        if !out.iter().any(|(id, _)| *id == s.id) {
            out.push((s.id.clone(), Some("beyond --max".into())));
        }
    }
    out
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
    let queue = queue_of(&plan, &settings, args, plan.selected.clone());
    let gov = Arc::new(Gov::new(&config, &settings));
    let ctx = Arc::new(Ctx {
        gov,
        slots: Arc::default(),
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
/// The governor decides how many may run at once and whether any may
/// start now (a usage cap, the run's budget); while nothing may, the run
/// waits for a result, a stop, or the time something changes.
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
    let mut results: Vec<StoryResult> = Vec::new();
    let held = |id: &str| lock::is_held(&ctx.board, id);
    let mut in_flight = 0usize;
    let mut told = Told::default();
    let stop = shutdown::on_stop();
    let final_hold = loop {
        if let Some((from, to)) = ctx.gov.lock().tick(Instant::now()) {
            ctx.gov
                .say_limit(&ctx.notes, from, to, "no rate limit for a while");
        }
        let hold = ctx.gov.lock().hold(time::now_ms());
        told.hold(ctx, hold.as_ref());
        if hold.is_none() {
            let limit = ctx.gov.lock().limit();
            // A slot each: the stories, and the extra attempts beside them.
            while !shutdown::stopping() && in_flight < workers.len() && ctx.slots.try_take(limit) {
                let Some(m) = queue.next(&held, time::now_ms()) else {
                    ctx.slots.give();
                    break;
                };
                match m {
                    Move::Start(s) => {
                        ctx.gov.lock().started(&s.id);
                        if job_tx.send(s).is_ok() {
                            in_flight += 1;
                        } else {
                            ctx.slots.give();
                        }
                    }
                    Move::Skip(s, why, code) => {
                        ctx.slots.give();
                        results.push(skipped(ctx, &s, why, code));
                    }
                    Move::Leave(s, why) => {
                        ctx.slots.give();
                        ctx.notes.send(Note::Info {
                            id: Some(s.id.clone()),
                            text: format!("not run: {why}"),
                        });
                    }
                }
            }
        }
        // What the run waits for when nothing runs: a cap to lift, or a
        // parked story's time; nothing else will change.
        let waits_for = match &hold {
            Some(Hold::Paused { until, .. }) => Some(*until),
            Some(Hold::Budget(_)) => None,
            None => queue.wakes_at(),
        };
        if in_flight == 0
            && (shutdown::stopping()
                || !queue.has_waiting()
                || waits_for.is_none()
                || ctx.settings.no_wait)
        {
            break hold;
        }
        let next = [ctx.gov.lock().next_tick(), waits_for.map(instant_of)]
            .into_iter()
            .flatten()
            .min();
        let timeout = next.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(Instant::now())
        });
        crossbeam_channel::select! {
            recv(result_rx) -> got => {
                let Ok((story, a)) = got else { break None };
                in_flight -= 1;
                ctx.slots.give();
                ended(ctx, &mut queue, &mut results, &mut lander, story, a);
            }
            recv(ctx.gov.woken()) -> _ => {}
            recv(stop) -> _ => {}
            default(timeout) => {}
        }
    };
    drop(job_tx);
    for w in workers {
        let _ = w.join();
    }
    let stopping = shutdown::stopping();
    for (s, code, why) in queue.never_started(stopping, time::now_ms(), final_hold.as_ref()) {
        let r = match code {
            Some(queue::Skip::Parked) => {
                let mut r = StoryResult::not_run(&s, crate::story::Outcome::Parked, why);
                r.not_before = s.not_before;
                r.reason = Some(queue::Skip::Parked.code());
                ctx.notes.send(Note::Finished(Box::new(r.clone())));
                r
            }
            Some(code) => skipped(ctx, &s, why, code),
            None => StoryResult::not_run(&s, crate::story::Outcome::Cancelled, why),
        };
        keep_result(&mut results, r);
    }
    results.sort_by_key(|r| order.get(&r.id).copied().unwrap_or(usize::MAX));
    results
}

/// A story's result; a later one of the same story in this run (it
/// resumed after a usage cap) takes the place of its `parked` one.
fn keep_result(results: &mut Vec<StoryResult>, r: StoryResult) {
    match results.iter().position(|x| x.id == r.id) {
        Some(i) if results[i].outcome == crate::story::Outcome::Parked => results[i] = r,
        Some(_) => {}
        None => results.push(r),
    }
}

/// The instant of a wall-clock time (ms since the epoch).
fn instant_of(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms.saturating_sub(time::now_ms()))
}

/// A worker's story ended: land it (`run --land`), tell the queue and the
/// governor, keep its result. A story parked at a usage cap pauses the
/// run's agent until the cap lifts, and waits in the queue until then.
fn ended(
    ctx: &Ctx,
    queue: &mut Queue,
    results: &mut Vec<StoryResult>,
    lander: &mut Option<LandAfter>,
    story: Story,
    a: attempt::Attempt,
) {
    use crate::story::Outcome;
    match a {
        attempt::Attempt::Ran(mut r) => {
            // Its attempts' spend was counted as each ended.
            ctx.gov
                .lock()
                .ended(&story.id, spend_of(&r).less(r.counted));
            if let (Some(l), Outcome::Succeeded) = (lander.as_mut(), r.outcome) {
                r.landed = Some(l.land(ctx, &story.id));
            }
            if r.outcome == Outcome::Parked {
                let until = r.not_before.unwrap_or_default();
                ctx.gov.lock().pause(until, &ctx.gov.cap_words());
                if ctx.settings.no_wait {
                    queue.ended(&story.id, Some(r.outcome), None);
                } else {
                    let mut again = story.clone();
                    again.not_before = Some(until);
                    queue.park(again);
                }
            } else {
                let account_wide = r
                    .failure
                    .filter(|k| k.account_wide())
                    .map(|k| k.describe().to_string());
                queue.ended(&story.id, Some(r.outcome), account_wide);
            }
            ctx.notes.send(Note::Finished(r.clone()));
            if let Some(t) = ctx.gov.lock().spent_text() {
                ctx.notes.send(Note::Spent(t));
            }
            keep_result(results, *r);
        }
        attempt::Attempt::Gone(why) => {
            ctx.gov.lock().ended(&story.id, Default::default());
            queue.ended(&story.id, None, None);
            ctx.notes.send(Note::Info {
                id: Some(story.id.clone()),
                text: format!("not run: {why}"),
            });
        }
    }
}

/// What a story spent, as the governor counts it.
fn spend_of(r: &StoryResult) -> crate::governor::Spend {
    crate::governor::Spend {
        usd: r.cost_usd.unwrap_or(0.0),
        tokens: r.input_tokens.unwrap_or(0) + r.output_tokens.unwrap_or(0),
    }
}

/// What the run has said of the governor's holds, to say each change once.
#[derive(Default)]
struct Told {
    paused_until: Option<u64>,
    budget: bool,
}

impl Told {
    fn hold(&mut self, ctx: &Ctx, hold: Option<&Hold>) {
        let now = time::now_ms();
        match hold {
            Some(Hold::Paused { until, why }) if self.paused_until != Some(*until) => {
                self.paused_until = Some(*until);
                let text = format!(
                    "paused: {why}, resumes {} (in {}){}",
                    time::local_clock(*until, now),
                    time::human_duration(until.saturating_sub(now)),
                    if ctx.settings.no_wait {
                        "; --no-wait: stopping once the running stories end"
                    } else {
                        "; running stories go on, no new one starts until then"
                    }
                );
                log::info!("{text}");
                ctx.notes.send(Note::Warn { id: None, text });
                ctx.notes.send(Note::Paused(Some(*until), why.clone()));
            }
            None if self.paused_until.take().is_some() => {
                ctx.notes.send(Note::Info {
                    id: None,
                    text: "resumed: the usage limit has lifted".into(),
                });
                ctx.notes.send(Note::Paused(None, String::new()));
            }
            Some(Hold::Budget(why)) if !self.budget => {
                self.budget = true;
                ctx.notes.send(Note::Warn {
                    id: None,
                    text: format!("no new story starts: {why}"),
                });
            }
            _ => {}
        }
    }
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
                        attempt::attempt_with(&ctx, &story, &best_of::execute)
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
