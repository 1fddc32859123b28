//! Best of N (SPEC §17): several attempts at a story's implement phase.
//!
//! The phases before implement run once, in the story's worktree. Then
//! each attempt runs implement in a worktree and branch of its own
//! (`<ID>-<slug>-attempt-<k>` on `ai-sdlc/<ID>-<slug>-attempt-<k>`), from the
//! story branch's tip, concurrently within the run's limit: the story's
//! own slot, and the run's free ones (`Slots`). The verify command
//! (`attempts.verify`, else `merge.verify`) runs in each attempt's
//! worktree; a failure drops the attempt. `attempts.pick` chooses among
//! the rest: `judge` (a hidden workflow whose agent reads every attempt
//! and ends with `CHOSEN: <k>`), `smallest` or `first`. Every attempt's
//! tip is kept under `refs/ai-sdlc/attempts/<ID>/<k>`; the story branch
//! moves to the chosen one; the rest of the workflow (review) runs on it.
//! What happened is in the story's `attempts.json`, for `review` and
//! `pick`.

use super::attempt::{Place, Run, fail_at, furnish};
use super::record::Recorder;
use crate::agent::{Preset, Report};
use crate::config::Pick;
use crate::governor::Spend;
use crate::logs::RunLog;
use crate::paths::rel;
use crate::report::Note;
use crate::story::{Outcome, Part, RunResult};
use crate::workflow::{self, Kind};
use crate::{git, shutdown, worktree};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The story's record of its attempts, in its folder.
pub const RECORD_FILE: &str = "attempts.json";

/// How many attempts the story gets, when more than one: `run
/// --attempts`, else the story's `attempts`, else `agent.attempts`; only
/// with worktrees, an implement phase of the agent's, and implement still
/// to do.
fn wanted(run: &Run) -> Option<(u32, crate::board::Story)> {
    let ctx = run.ctx;
    let n = count(&ctx.config, &ctx.settings, run.story);
    if n < 2 || run.place.worktree.is_none() {
        return None;
    }
    if !ctx.config.worktree.commit {
        // An attempt's work is what is committed on its branch.
        run.note("worktree.commit is false: the story runs once, not in attempts");
        return None;
    }
    let implement = ctx
        .config
        .phases
        .iter()
        .any(|p| p.kind() == Kind::Implement && p.command.is_none());
    // Read again: `run --from` may have cleared its flags.
    let now = ctx.board.load(&run.story.id).ok()?;
    (implement && !now.is_complete("implementation_complete")).then_some((n, now))
}

/// How many attempts `story` gets: `run --attempts`, else its own
/// `attempts`, else `agent.attempts`; one without worktrees.
pub fn count(
    config: &crate::config::Config,
    settings: &super::Settings,
    story: &crate::board::Story,
) -> u32 {
    if !settings.worktrees {
        return 1;
    }
    settings
        .attempts
        .or(story.attempts)
        .unwrap_or(config.attempts.count)
}

/// Run the story's phases: best of N when it has several attempts, else
/// once.
pub(super) fn execute(run: &Run) -> RunResult {
    match wanted(run) {
        Some((n, now)) => run.best_of(n, &now),
        None => run.execute(&Part::default()),
    }
}

/// The tip of attempt `k` of story `id`, kept whatever is chosen.
pub fn attempt_ref(id: &str, k: u32) -> String {
    format!("refs/ai-sdlc/attempts/{id}/{k}")
}

/// What `attempts.json` says of a story's attempts.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Record {
    /// The commit every attempt started from.
    pub start: String,
    pub pick: String,
    /// The attempt the story branch holds (`None`: none passed, or the
    /// run stopped first).
    pub chosen: Option<u32>,
    /// Why it was chosen: the judge's reasons, or the rule's.
    pub why: Option<String>,
    pub attempts: Vec<Tried>,
}

/// One attempt, as it ended.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Tried {
    pub attempt: u32,
    pub agent: String,
    pub branch: String,
    pub worktree: String,
    /// `succeeded`, `failed`, `timed_out`, `cancelled`, `parked`, `not_started`.
    pub outcome: String,
    pub error: Option<String>,
    pub verify: Verify,
    /// The end of what the verify command printed.
    pub verify_output: Option<String>,
    /// Its tip, kept under `refs/ai-sdlc/attempts/<ID>/<k>`.
    pub commit: Option<String>,
    pub lines: Option<u64>,
    pub files: Option<u64>,
    pub cost_usd: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub duration_ms: u64,
    /// When its agent ended, ms after the attempts started (`first`).
    pub ended_ms: u64,
    pub final_message: Option<String>,
    /// Why its worktree is kept; `None` when it was removed.
    pub worktree_kept: Option<String>,
    pub log: Option<String>,
}

/// What the verify command said of an attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// Its agent did not succeed, or the run stopped first.
    #[default]
    NotRun,
    Passed,
    Failed,
    /// There is no verify command: an attempt whose agent succeeded counts.
    #[serde(rename = "none")]
    NoCommand,
}

impl Verify {
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::NotRun => "not_run",
            Verify::Passed => "passed",
            Verify::Failed => "failed",
            Verify::NoCommand => "none",
        }
    }
}

impl Tried {
    /// A candidate: its agent succeeded and the verify command passed.
    pub fn passed(&self) -> bool {
        self.outcome == "succeeded" && matches!(self.verify, Verify::Passed | Verify::NoCommand)
    }

    /// Why it dropped out.
    pub fn reason(&self) -> String {
        match (self.outcome.as_str(), &self.error) {
            ("succeeded", _) if self.verify == Verify::Failed => {
                // Its last words (a failing test's message), and how it ended.
                let out = self.verify_output.as_deref().unwrap_or("");
                let mut lines = out.lines().map(str::trim).filter(|l| !l.is_empty()).rev();
                let said: Vec<&str> = lines.by_ref().take(2).collect();
                let said = said.into_iter().rev().collect::<Vec<_>>().join(" ");
                format!("verify failed: {}", crate::agent::cut(&said, 300))
            }
            (o, Some(e)) => format!("{o}: {}", crate::agent::first_line(e, 300)),
            (o, None) => o.replace('_', " "),
        }
    }
}

/// Choose among the attempts that passed, by `rule` (not the judge):
/// `smallest` the fewest changed lines, `first` the first whose agent
/// ended; ties to the lower number.
pub fn pick_by(rule: Pick, tried: &[Tried]) -> Option<u32> {
    let passed = tried.iter().filter(|t| t.passed());
    match rule {
        Pick::First => passed.min_by_key(|t| (t.ended_ms, t.attempt)),
        Pick::Smallest | Pick::Judge => {
            passed.min_by_key(|t| (t.lines.unwrap_or(u64::MAX), t.attempt))
        }
    }
    .map(|t| t.attempt)
}

/// The record of story `id`, if it had attempts.
pub fn read_record(board: &crate::board::Board, id: &str) -> Option<Record> {
    serde_json::from_str(&board.section(id, RECORD_FILE)?).ok()
}

/// Write the record of story `id`'s attempts (atomically).
pub fn write_record(board: &crate::board::Board, id: &str, record: &Record) -> Result<(), String> {
    let text = serde_json::to_string_pretty(record).map_err(|e| e.to_string())?;
    board.write_section(id, RECORD_FILE, &format!("{text}\n"))
}

/// An attempt while it runs, and what is needed to settle it after.
struct Running {
    tried: Tried,
    path: PathBuf,
    placed: worktree::env::Placed,
    report: Report,
    /// What the governor counted of it when it ended.
    spent: Spend,
    /// It stopped at (or did not start for) a usage cap lifting then.
    not_before: Option<u64>,
}

impl<'a> Run<'a> {
    /// The story, best of `n`: shared phases, attempts, verify, pick,
    /// then the rest of its workflow on the chosen attempt.
    /// `now` is the story as it is after it was marked in-progress.
    pub(super) fn best_of(&self, n: u32, now: &crate::board::Story) -> RunResult {
        let started = Instant::now();
        let (ctx, id) = (self.ctx, &self.story.id);
        let agents = match self.attempt_agents() {
            Ok(a) => a,
            Err(why) => {
                let mut r = RunResult::failed(why, 0);
                r.failed_phase = Some("attempts".into());
                return r;
            }
        };
        let mut total = Report::default();
        let mut counted = Spend::default();
        // 1. The phases before implement, once.
        let phases = &ctx.config.phases;
        let at = phases
            .iter()
            .position(|p| p.kind() == Kind::Implement)
            .unwrap_or(0);
        let shared: Vec<String> = phases[..at]
            .iter()
            .filter(|p| !p.kind().flag().is_some_and(|f| now.is_complete(f)))
            .map(|p| p.name.clone())
            .collect();
        if !shared.is_empty() {
            self.say(&format!(
                "{} run once; {n} attempts at implement build on them",
                shared.join(", ")
            ));
            let part = Part {
                only: shared,
                ..Part::default()
            };
            let mut r = self.execute(&part);
            counted = counted + self.ended(&part, &r.report);
            if r.outcome != Outcome::Succeeded {
                // Counted already, under its own key.
                r.counted = counted;
                return r;
            }
            total.add_usage(&r.report);
        }
        let root = &ctx.config.root;
        let start = match git::refs::commit_of(root, &format!("refs/heads/{}", self.place.branch)) {
            Ok(c) => c,
            Err(e) => {
                let why = format!(
                    "cannot read its branch {} ({e}); its worktree is kept: check the branch with git and run it again",
                    self.place.branch
                );
                return RunResult::failed(why, 0);
            }
        };
        // 2. The attempts, side by side. One that finished in an earlier
        // run from this same start (stopped by Ctrl-C or a cap) is not run again.
        let earlier = read_record(&ctx.board, id)
            .filter(|r| r.start == start && r.chosen.is_none())
            .map(|r| r.attempts)
            .unwrap_or_default();
        // The story's budget is shared: each attempt gets an equal part of
        // what the shared phases left.
        let each = self.budget_left(counted, n);
        let mut running = self.attempts(n, &agents, &start, &earlier, each);
        for a in &running {
            total.add_usage(&a.report);
            counted = counted + a.spent;
        }
        let unstarted: Vec<&Tried> = running
            .iter()
            .map(|a| &a.tried)
            .filter(|t| t.outcome == "not_started")
            .collect();
        if let (false, [first, ..]) = (shutdown::stopping(), unstarted.as_slice()) {
            let ks: Vec<String> = unstarted.iter().map(|t| t.attempt.to_string()).collect();
            self.say(&format!(
                "attempts {} did not start ({}); the others are compared",
                ks.join(", "),
                first.error.as_deref().unwrap_or("")
            ));
        }
        // 3. Verify.
        for a in running.iter_mut() {
            if a.tried.outcome == "succeeded" && !shutdown::stopping() {
                self.verify(a);
            }
        }
        let mut record = Record {
            start: start.clone(),
            pick: ctx.config.attempts.pick.name().to_string(),
            ..Record::default()
        };
        let kept = self.keep_tips(&mut running, &start);
        let finish = |mut r: RunResult, total: &Report, counted: Spend| {
            r.report.add_usage(total);
            r.duration_ms = started.elapsed().as_millis() as u64;
            r.counted = counted;
            r
        };
        if shutdown::stopping() {
            record.attempts = self.settle(&mut running, None);
            self.write_record(&record);
            let mut r = RunResult::failed("run interrupted".into(), 0);
            r.outcome = Outcome::Cancelled;
            r.exit_code = None;
            return finish(r, &total, counted);
        }
        // 4. Pick.
        let tried: Vec<Tried> = running.iter().map(|a| a.tried.clone()).collect();
        let Some((k, why)) = self.pick(&tried, &start, &mut total, &mut counted) else {
            record.attempts = self.settle(&mut running, None);
            self.write_record(&record);
            let parked = running.iter().filter_map(|a| a.not_before).max();
            return finish(all_failed(id, &record.attempts, parked), &total, counted);
        };
        record.chosen = Some(k);
        record.why = Some(why.clone());
        self.say(&format!(
            "chose attempt {k} ({}): {}",
            record.pick,
            crate::agent::first_line(&why, 200)
        ));
        // 5. The story branch takes the chosen attempt's work.
        let tip = running
            .iter()
            .find(|a| a.tried.attempt == k)
            .and_then(|a| a.tried.commit.clone());
        let adopted = match (&tip, kept) {
            (_, Err(e)) => Err(e),
            (Some(tip), Ok(())) => self.adopt(tip),
            (None, Ok(())) => Ok(()),
        };
        record.attempts = self.settle(&mut running, Some(k));
        self.write_record(&record);
        if let Err(why) = adopted {
            let mut r = RunResult::default();
            fail_at(&mut r, "attempts", why);
            return finish(r, &total, counted);
        }
        // Implement is done: the rest of the workflow skips it.
        let done = [(
            "implementation_complete",
            Some(crate::board::frontmatter::Value::Bool(true)),
        )];
        if let Err(e) = self.recorder.patch(&done) {
            let mut r = RunResult::default();
            let why = format!(
                "its branch holds the chosen attempt {k}, but that is not recorded ({e}); run it again to go on"
            );
            fail_at(&mut r, "attempts", why);
            return finish(r, &total, counted);
        }
        let chosen = running.iter().find(|a| a.tried.attempt == k);
        // 6. The rest of the workflow, on the chosen work.
        let rest = phases[at + 1..].iter().any(|p| p.kind() != Kind::Setup);
        let mut r = if rest {
            self.execute(&Part {
                budget: self.budget_left(counted, 1),
                ..Part::default()
            })
        } else {
            RunResult {
                outcome: Outcome::Succeeded,
                exit_code: Some(0),
                ..RunResult::default()
            }
        };
        if r.report.final_message.is_none() {
            r.report.final_message = chosen.and_then(|a| a.report.final_message.clone());
        }
        r.commit = r.commit.or(tip);
        finish(r, &total, counted)
    }

    /// The story's budget left after `spent`, in `ways` equal parts
    /// (`None`: it has none).
    fn budget_left(&self, spent: Spend, ways: u32) -> Option<crate::governor::Budget> {
        let b = self.ctx.settings.story_budget;
        b.is_set().then(|| b.share(spent, ways))
    }

    /// Tell the user, and the log.
    fn say(&self, text: &str) {
        self.note(text);
        self.ctx.notes.send(Note::Info {
            id: Some(self.story.id.clone()),
            text: text.to_string(),
        });
    }

    /// A part of the story ended: the governor counts its spend now.
    fn ended(&self, part: &Part, r: &Report) -> Spend {
        let s = crate::story::spend(r);
        self.ctx.gov.lock().ended(&part.key(&self.story.id), s);
        s
    }

    /// The agent of each attempt, round robin over the story's
    /// `attempt_agents`, else `agent.attemptAgents` (`None`: the
    /// configured agent). A story may only name agents the config allows.
    fn attempt_agents(&self) -> Result<Vec<Preset>, String> {
        let c = &self.ctx.config;
        let allowed = c.agent.attempt_presets(&c.attempts);
        if let Some(p) = self
            .story
            .attempt_agents
            .iter()
            .find(|p| !allowed.contains(p))
        {
            return Err(format!(
                "its attempt_agents names {}, which {} does not allow: add it to agent.attemptAgents there (a story may only choose among the agents the config trusts)",
                p.name(),
                c.file_name()
            ));
        }
        Ok(if self.story.attempt_agents.is_empty() {
            c.attempts.agents.clone()
        } else {
            self.story.attempt_agents.clone()
        })
    }

    /// Run attempts 1..=n: each takes the story's own slot when it is
    /// free, else a free slot of the run's; none starts after a stop.
    fn attempts(
        &self,
        n: u32,
        agents: &[Preset],
        start: &str,
        earlier: &[Tried],
        budget: Option<crate::governor::Budget>,
    ) -> Vec<Running> {
        let ctx = self.ctx;
        // Round robin over the agents (none: the configured one).
        let agent_of =
            |k: u32| (!agents.is_empty()).then(|| agents[(k as usize - 1) % agents.len()]);
        let (tx, rx) = crossbeam_channel::bounded::<(Running, bool)>(n as usize);
        let mut next = 1;
        let mut own_free = true;
        let mut running = 0;
        let mut done: Vec<Running> = Vec::new();
        let mut held: Option<crate::governor::Hold> = None;
        let begun = Instant::now();
        std::thread::scope(|scope| {
            loop {
                while next <= n && !shutdown::stopping() && held.is_none() {
                    // A usage cap or the run's budget: no more attempts start.
                    if next > 1 {
                        held = ctx.gov.lock().hold(crate::time::now_ms());
                        if held.is_some() {
                            break;
                        }
                    }
                    let own = own_free;
                    if !own && !ctx.slots.try_take(ctx.gov.lock().limit()) {
                        break;
                    }
                    let k = next;
                    let agent = agent_of(k);
                    let tx = tx.clone();
                    let spawned = std::thread::Builder::new()
                        .name(format!("attempt-{k}"))
                        .stack_size(256 * 1024)
                        .spawn_scoped(scope, move || {
                            let before = earlier.iter().find(|t| t.attempt == k);
                            let mut a = self.one((k, n), agent, start, before, budget);
                            a.tried.ended_ms = begun.elapsed().as_millis() as u64;
                            let _ = tx.send((a, own));
                        });
                    match spawned {
                        Ok(_) => {
                            own_free &= !own;
                            running += 1;
                            next += 1;
                        }
                        Err(e) => {
                            if !own {
                                ctx.slots.give();
                            }
                            log::warn!("cannot start attempt {k}: {e}");
                            break;
                        }
                    }
                }
                if running == 0 {
                    break;
                }
                // A slot may free up elsewhere in the run: look again soon.
                if let Ok((a, own)) = rx.recv_timeout(Duration::from_millis(100)) {
                    running -= 1;
                    if own {
                        own_free = true;
                    } else {
                        ctx.slots.give();
                        ctx.gov.poke();
                    }
                    done.push(a);
                }
            }
        });
        for k in next..=n {
            let agent = agent_of(k);
            done.push(Running {
                tried: Tried {
                    attempt: k,
                    agent: self.agent_name(agent),
                    outcome: "not_started".into(),
                    error: Some(match &held {
                        Some(crate::governor::Hold::Paused { why, .. }) => {
                            format!("paused: {why}")
                        }
                        Some(crate::governor::Hold::Budget(why)) => why.clone(),
                        None => "run interrupted".into(),
                    }),
                    ..Tried::default()
                },
                path: PathBuf::new(),
                placed: Default::default(),
                report: Report::default(),
                spent: Spend::default(),
                not_before: match &held {
                    Some(crate::governor::Hold::Paused { until, .. }) => Some(*until),
                    _ => None,
                },
            });
        }
        done.sort_by_key(|a| a.tried.attempt);
        done
    }

    fn agent_name(&self, agent: Option<Preset>) -> String {
        agent
            .or(self.ctx.config.agent.preset())
            .map_or("the agent", |p| p.name())
            .to_string()
    }

    /// Attempt `k`: its worktree and branch, its implement phase in an
    /// executor, its work committed on its branch.
    fn one(
        &self,
        (k, n): (u32, u32),
        agent: Option<Preset>,
        start: &str,
        before: Option<&Tried>,
        budget: Option<crate::governor::Budget>,
    ) -> Running {
        let ctx = self.ctx;
        let (root, id) = (&ctx.config.root, &self.story.id);
        // Named from the story's key, never from its `branch:` field (a
        // story file is input): an attempt's branch is always the tool's own.
        let folder = format!("{}-attempt-{k}", self.story.key());
        let branch = worktree::branch_name(&folder);
        let base = ctx.config.worktree_base();
        let path = base.join(&folder);
        let mut tried = Tried {
            attempt: k,
            agent: self.agent_name(agent),
            branch: branch.clone(),
            worktree: rel(root, &path),
            ..Tried::default()
        };
        let mut a = Running {
            tried: Tried::default(),
            path: path.clone(),
            placed: Default::default(),
            report: Report::default(),
            spent: Spend::default(),
            not_before: None,
        };
        let made = worktree::serialize(root, &base)
            .and_then(|held| worktree::prepare(root, &held, &folder, &branch, start));
        let how = match made {
            Ok(h) => h,
            Err(e) => {
                tried.outcome = "failed".into();
                tried.error = Some(format!("cannot create its worktree: {e}"));
                a.tried = tried;
                return a;
            }
        };
        if let Some(t) = before.filter(|t| self.finished_before(t, &path)) {
            self.say(&format!(
                "attempt {k}: done in an earlier run ({}), not run again",
                t.commit.as_deref().map_or("", |c| &c[..c.len().min(12)])
            ));
            a.tried = Tried {
                worktree_kept: None,
                ..t.clone()
            };
            return a;
        }
        // Its own log; rotation never takes this run's others.
        let keep = ctx.config.logs_keep + n as usize + 2;
        let log = match RunLog::create(&ctx.board, id, keep) {
            Ok(l) => l,
            Err(e) => {
                tried.outcome = "failed".into();
                tried.error = Some(format!("cannot create its log: {e}"));
                a.tried = tried;
                return a;
            }
        };
        let log_rel = rel(root, &log.path);
        let mut run = Run {
            ctx,
            story: self.story,
            place: Place {
                workdir: path.clone(),
                branch,
                worktree: Some(path.clone()),
                fresh: how != worktree::Prepared::Reused,
                start: Some(crate::land::stack::Start {
                    commit: start.to_string(),
                    on: Vec::new(),
                }),
            },
            log: Arc::new(Mutex::new(log)),
            log_rel: log_rel.clone(),
            recorder: Arc::new(Recorder::quiet(&ctx.board, id)),
            placed: Default::default(),
            set_up: Default::default(),
        };
        if run.place.fresh {
            furnish(ctx, id, &path, &mut run.placed, &run.log);
        }
        self.say(&format!(
            "attempt {k}/{n} ({}) in {}, log {log_rel}",
            tried.agent, tried.worktree
        ));
        self.note(&format!("attempt {k}: its log is {log_rel}"));
        let implement = ctx
            .config
            .phases
            .iter()
            .find(|p| p.kind() == Kind::Implement)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| "implement".into());
        let part = Part {
            only: vec![implement],
            attempt: Some(k),
            agent,
            workflow: None,
            budget,
        };
        let r = run.execute(&part);
        a.spent = self.ended(&part, &r.report);
        a.not_before = r.not_before.filter(|_| r.outcome == Outcome::Parked);
        if a.not_before.is_some() {
            // The account's cap: no attempt (and no story) starts until it lifts.
            ctx.gov.capped(a.not_before);
        }
        tried.outcome = r.outcome.as_str().to_string();
        tried.error = r.error.clone();
        tried.duration_ms = r.duration_ms;
        tried.cost_usd = r.report.cost_usd;
        tried.input_tokens = r.report.input_tokens;
        tried.output_tokens = r.report.output_tokens;
        tried.final_message = run.recorder.output().or(r.report.final_message.clone());
        tried.log = Some(log_rel);
        if let Ok(c) = crate::land::counts(root, start, &run.place.branch) {
            tried.lines = Some(c.insertions + c.deletions);
            tried.files = Some(c.files);
        }
        let shown = match (&tried.outcome[..], tried.lines) {
            ("succeeded", Some(l)) => format!("succeeded, {l} lines changed"),
            _ => tried.reason(),
        };
        self.say(&format!("attempt {k}: {shown}"));
        a.tried = tried;
        a.placed = run.placed;
        a.report = r.report;
        a
    }

    /// Attempt `t` of an earlier run ended well, and its branch and
    /// worktree (at `path`) are still just as it left them.
    fn finished_before(&self, t: &Tried, path: &Path) -> bool {
        let root = &self.ctx.config.root;
        let tip = git::refs::commit_of(root, &format!("refs/heads/{}", t.branch)).ok();
        t.outcome == "succeeded"
            && t.commit.is_some()
            && tip == t.commit
            && worktree::changes(path).is_ok_and(|c| c.is_empty())
    }

    /// Run the verify command in the attempt's worktree.
    fn verify(&self, a: &mut Running) {
        let c = &self.ctx.config;
        let Some(argv) = c.attempts.verify.as_ref().or(c.land.verify.as_ref()) else {
            a.tried.verify = Verify::NoCommand;
            return;
        };
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let k = a.tried.attempt;
        let (ok, text) = match crate::process::ask(&words, &a.path, self.ctx.settings.timeout) {
            Ok(ans) => (
                ans.code == Some(0),
                format!(
                    "{}{}",
                    ans.text.trim(),
                    match ans.code {
                        Some(0) => String::new(),
                        Some(c) => format!("\n({} exited with code {c})", argv.join(" ")),
                        None => format!("\n({} was killed by a signal)", argv.join(" ")),
                    }
                ),
            ),
            Err(e) => (false, e),
        };
        let tail = tail(&text, 4 << 10);
        a.tried.verify = if ok { Verify::Passed } else { Verify::Failed };
        a.tried.verify_output = Some(tail.to_string());
        self.say(&format!("attempt {k}: verify {}", a.tried.verify.as_str()));
    }

    /// Every attempt's tip under `refs/ai-sdlc/attempts/<ID>/<k>`.
    fn keep_tips(&self, running: &mut [Running], start: &str) -> Result<(), String> {
        let root = &self.ctx.config.root;
        let mut failed = Ok(());
        for a in running.iter_mut() {
            let branch = format!("refs/heads/{}", a.tried.branch);
            let Ok(tip) = git::refs::commit_of(root, &branch) else {
                continue;
            };
            // No work of its own: nothing to keep.
            if tip == start {
                continue;
            }
            let name = attempt_ref(&self.story.id, a.tried.attempt);
            let old = git::refs::commit_of(root, &name).unwrap_or_default();
            let kept = git::refs::update(root, &name, &tip, &old, "ai-sdlc: an attempt's tip");
            match kept {
                Ok(()) => a.tried.commit = Some(tip),
                Err(e) => {
                    failed = Err(format!(
                        "cannot keep attempt {} under {name} ({e}); its work is on branch {}: run the story again",
                        a.tried.attempt, a.tried.branch
                    ))
                }
            }
        }
        failed
    }

    /// Choose: the only one that passed, else by `attempts.pick`.
    fn pick(
        &self,
        tried: &[Tried],
        start: &str,
        total: &mut Report,
        counted: &mut Spend,
    ) -> Option<(u32, String)> {
        let rule = self.ctx.config.attempts.pick;
        let passed: Vec<&Tried> = tried.iter().filter(|t| t.passed()).collect();
        match passed.as_slice() {
            [] => return None,
            [one] => return Some((one.attempt, "the only attempt that passed".into())),
            _ => {}
        }
        let by_rule = |why: String| pick_by(rule, tried).map(|k| (k, why));
        match rule {
            Pick::First => by_rule("the first to pass".into()),
            Pick::Smallest => {
                by_rule("the smallest change that passed (fewest lines changed)".into())
            }
            Pick::Judge => match self.judge(tried, start, total, counted) {
                Ok(chosen) => Some(chosen),
                Err(why) => {
                    self.say(&format!("{why}; picking the smallest instead"));
                    pick_by(Pick::Smallest, tried)
                        .map(|k| (k, format!("the smallest change ({why})")))
                }
            },
        }
    }

    /// The judge: a hidden workflow whose agent compares the attempts
    /// that passed (`attempts.md`) and names one.
    fn judge(
        &self,
        tried: &[Tried],
        start: &str,
        total: &mut Report,
        counted: &mut Spend,
    ) -> Result<(u32, String), String> {
        let ctx = self.ctx;
        let passed: Vec<&Tried> = tried.iter().filter(|t| t.passed()).collect();
        let text = evidence(&ctx.config.root, start, &passed);
        ctx.board
            .write_section(&self.story.id, workflow::ATTEMPTS_FILE, &text)?;
        // The judge only reads: it gets a throwaway worktree at the start,
        // so nothing it might write can get in the way of the chosen work.
        let root = &ctx.config.root;
        let scratch = crate::land::merge::Scratch::new(root, &ctx.config.worktree_base(), start)?;
        let judge = Run {
            ctx,
            story: self.story,
            place: Place {
                workdir: scratch.path.clone(),
                branch: self.place.branch.clone(),
                worktree: Some(scratch.path.clone()),
                fresh: false,
                start: None,
            },
            log: Arc::clone(&self.log),
            log_rel: self.log_rel.clone(),
            recorder: Arc::new(Recorder::quiet(&ctx.board, &self.story.id)),
            placed: Default::default(),
            set_up: Default::default(),
        };
        let part = Part {
            workflow: Some(workflow::JUDGE.into()),
            budget: self.budget_left(*counted, 1),
            ..Part::default()
        };
        self.say(&format!("the judge compares {} attempts", passed.len()));
        let r = judge.execute(&part);
        *counted = *counted + self.ended(&part, &r.report);
        total.add_usage(&r.report);
        if r.outcome != Outcome::Succeeded {
            return Err(format!(
                "the judge {}",
                r.error.unwrap_or_else(|| r.outcome.describe().to_string())
            ));
        }
        let answer = judge.recorder.output().unwrap_or_default();
        let max = tried.iter().map(|t| t.attempt).max().unwrap_or(0);
        match workflow::chosen(&answer, max) {
            Some((k, why)) if passed.iter().any(|t| t.attempt == k) => Ok((k, why)),
            Some((k, _)) => Err(format!("the judge chose attempt {k}, which did not pass")),
            None => Err("the judge's answer has no line CHOSEN: <number>".into()),
        }
    }

    /// Move the story branch (checked out in its worktree) to `tip`: it
    /// started where every attempt did, so this only moves forward.
    fn adopt(&self, tip: &str) -> Result<(), String> {
        let root = &self.ctx.config.root;
        let Some(wt) = &self.place.worktree else {
            return Err("the story has no worktree to take the chosen attempt's work (attempts need worktrees)".into());
        };
        worktree::check_link(root, wt)?;
        git::worktree::fast_forward(wt, tip).map_err(|e| {
            format!(
                "cannot move {} to the chosen attempt ({e}); every attempt is kept under refs/ai-sdlc/attempts/{}/",
                self.place.branch, self.story.id
            )
        })?;
        worktree::verify_on_branch(root, wt, &self.place.branch)?;
        Ok(())
    }

    /// Remove the worktrees of attempts that passed (their work is kept
    /// under their refs), and their branches; keep a failed attempt's,
    /// as a failed story's is. Returns the attempts as recorded.
    fn settle(&self, running: &mut [Running], chosen: Option<u32>) -> Vec<Tried> {
        let ctx = self.ctx;
        let root = &ctx.config.root;
        for a in running.iter_mut() {
            let t = &mut a.tried;
            if t.outcome == "not_started" {
                continue;
            }
            let why = match () {
                _ if ctx.settings.keep_worktrees => Some("asked to keep worktrees".into()),
                _ if chosen.is_none() => Some(t.reason()),
                _ if !t.passed() => Some(t.reason()),
                _ if t.commit.is_none() => Some("its work is not kept under a ref".into()),
                _ => {
                    worktree::env::take_back(&a.path, &a.placed);
                    let gone = worktree::removable(&a.path, &t.branch).and_then(|_| {
                        let held = worktree::serialize(root, &ctx.config.worktree_base())?;
                        let r = worktree::remove(root, &a.path, false);
                        drop(held);
                        r
                    });
                    match gone {
                        Ok(()) => {
                            if let Err(e) = git::refs::delete_branch(root, &t.branch) {
                                log::warn!("cannot delete {}: {e}", t.branch);
                            }
                            None
                        }
                        Err(e) => Some(e),
                    }
                }
            };
            t.worktree_kept = why;
        }
        running.iter().map(|a| a.tried.clone()).collect()
    }

    fn write_record(&self, record: &Record) {
        if let Err(e) = write_record(&self.ctx.board, &self.story.id, record) {
            self.say(&format!("the record of its attempts: {e}"));
        }
    }
}

/// Every attempt failed: the story is blocked with each one's reason (or
/// parked, when one stopped at a usage cap).
fn all_failed(id: &str, tried: &[Tried], parked: Option<u64>) -> RunResult {
    let reasons: Vec<String> = tried
        .iter()
        .map(|t| format!("attempt {} ({}): {}", t.attempt, t.agent, t.reason()))
        .collect();
    let mut r = RunResult::default();
    fail_at(
        &mut r,
        "implement",
        format!(
            "no attempt passed: {}. Every attempt's worktree is kept (`ai-sdlc review {id}` lists them): fix what failed and run it again, or `ai-sdlc pick {id} <k>` one that left work",
            reasons.join("; ")
        ),
    );
    if let Some(until) = parked {
        // Not a failure of the story: it waits for the cap, and runs again.
        r.outcome = Outcome::Parked;
        r.not_before = Some(until);
    }
    r
}

/// The last `max` bytes of `text`, at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    let mut at = text.len().saturating_sub(max);
    while !text.is_char_boundary(at) {
        at += 1;
    }
    &text[at..]
}

/// What the judge reads: each attempt that passed, by its number, with
/// its diff, what verify printed, and its agent's final message; within
/// the bound a section has.
fn evidence(root: &Path, start: &str, passed: &[&Tried]) -> String {
    let each = (workflow::MAX_OUTPUT - 4096) / passed.len().max(1);
    let numbers: Vec<String> = passed.iter().map(|t| t.attempt.to_string()).collect();
    let mut out = format!(
        "The attempts that passed: {}. Answer with one of these numbers.\n",
        numbers.join(", ")
    );
    for t in passed {
        let mut part = format!(
            "\n### Attempt {} ({}): {} lines changed in {} files\n\n",
            t.attempt,
            t.agent,
            t.lines.unwrap_or(0),
            t.files.unwrap_or(0)
        );
        if let Some(m) = &t.final_message {
            part.push_str(&format!(
                "Its agent's final message:\n\n{}\n\n",
                tail(m.trim(), each / 4)
            ));
        }
        if let Some(v) = &t.verify_output {
            part.push_str(&format!(
                "The checks printed:\n\n```\n{}\n```\n\n",
                tail(v.trim(), each / 8)
            ));
        }
        let diff = t
            .commit
            .as_deref()
            // All its work, however many commits (a resumed attempt has more).
            .and_then(|c| git::diff::between(root, start, c, each / 2).ok())
            .map(|b| b.text)
            .unwrap_or_default();
        part.push_str(&format!("Its diff:\n\n```diff\n{}\n```\n", diff.trim_end()));
        out.push_str(tail(&part, each));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tried(k: u32, outcome: &str, verify: &str, lines: u64, ended_ms: u64) -> Tried {
        Tried {
            attempt: k,
            outcome: outcome.into(),
            verify: serde_json::from_value(serde_json::json!(verify)).unwrap(),
            lines: Some(lines),
            ended_ms,
            ..Tried::default()
        }
    }

    #[test]
    fn smallest_and_first_choose_among_the_attempts_that_passed() {
        let t = [
            tried(1, "succeeded", "failed", 1, 10),
            tried(2, "succeeded", "passed", 30, 50),
            tried(3, "succeeded", "passed", 8, 90),
            tried(4, "failed", "not_run", 0, 5),
        ];
        assert_eq!(pick_by(Pick::Smallest, &t), Some(3));
        assert_eq!(pick_by(Pick::First, &t), Some(2));
        // Ties go to the lower number.
        let tie = [
            tried(2, "succeeded", "none", 5, 7),
            tried(1, "succeeded", "none", 5, 7),
        ];
        assert_eq!(pick_by(Pick::Smallest, &tie), Some(1));
        assert_eq!(pick_by(Pick::First, &tie), Some(1));
        assert_eq!(pick_by(Pick::Smallest, &t[..1]), None);
    }

    #[test]
    fn an_attempt_says_why_it_dropped_out() {
        let mut t = tried(1, "succeeded", "failed", 1, 1);
        t.verify_output = Some("FAIL: test_add\n(make exited with code 2)".into());
        assert_eq!(
            t.reason(),
            "verify failed: FAIL: test_add (make exited with code 2)"
        );
        let mut t = tried(2, "failed", "not_run", 0, 1);
        t.error = Some("phase implement exited with code 3".into());
        assert_eq!(t.reason(), "failed: phase implement exited with code 3");
        assert_eq!(
            tried(3, "not_started", "not_run", 0, 0).reason(),
            "not started"
        );
    }
}
