//! Run one story's phases as agent processes (SPEC §5, §9) and report
//! `Event`s to an observer (the executor turns them into IPC messages).
//!
//! Each phase gets its prompt (its template, filled with the story and the
//! final messages of earlier phases) on stdin, then EOF. The agent's output
//! goes through its preset's reader, which finds the current step, the
//! final message, tokens, cost, and a failure in the CLI's own words. A
//! phase fails when its agent exits non-zero, reports a failure, or prints
//! nothing for `agent.idleTimeout`; a failure its preset calls transient is
//! retried (`agent.retries`) after a pause that doubles each time.

mod diff;
mod phase;

pub use phase::TICK;

use crate::agent::{self, FailureKind, Preset, Report};
pub use crate::board::Outcome;
use crate::board::{Board, Story};
use crate::config::Config;
use crate::ipc::Stream;
use crate::prompt::{self, StoryFacts};
use crate::workflow::{self, End, Kind, REVIEW_FILE, SETUP, Step, Verdict};
use phase::{At, PhaseEnd};
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A command line with its placeholders filled.
#[derive(Debug, Default)]
pub struct Expanded {
    pub argv: Vec<String>,
    /// `{prompt}` was among them: then stdin is empty.
    pub used_prompt: bool,
    /// The values a shell script's placeholders refer to.
    pub env: Vec<(&'static str, String)>,
}

/// Everything a story run needs, resolved by the runner.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub title: String,
    pub slug: String,
    pub branch: String,
    /// The board's `story.md`, absolute.
    pub story_file: PathBuf,
    pub repo: PathBuf,
    /// The agents' working directory: the worktree, or the repo.
    pub workdir: PathBuf,
    pub phases: Vec<PhaseCommand>,
    /// What prompts are filled with.
    pub facts: StoryFacts,
    /// The story's sections found when the run began (section file, else
    /// the body's section), by file name: what earlier phases produced,
    /// here or in the TS tool.
    pub sections: Vec<(&'static str, String)>,
    /// Implement rounds a review may ask for.
    pub max_rounds: u32,
    /// The first phase is `worktree.setup` (which gets no prompt).
    pub has_setup: bool,
    /// `agent.env.pass` and `agent.env.set`: what an agent's environment
    /// keeps and gets beyond the basics (`sandbox::agent_env`).
    pub env_pass: Vec<String>,
    pub env_set: Vec<(String, String)>,
    /// The first of the ports the story has for itself (`AI_SDLC_PORT`).
    pub port: Option<u16>,
    /// The Landlock ruleset its agents run under (a descriptor the
    /// executor holds open), and the variables that go with it (their
    /// private `TMPDIR`, git's index and new objects there).
    pub sandbox_fd: Option<i32>,
    pub sandbox_env: Vec<(&'static str, PathBuf)>,
    /// A part of the story's run (SPEC §17), as the runner asks for it:
    /// the whole workflow by default.
    pub part: Part,
}

/// Which part of a story's run an executor does: the whole workflow, or
/// (a story with several attempts) the phases before implement, one
/// attempt's implement, or the judge.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    /// Only these phases run, even when complete (empty: every phase).
    pub only: Vec<String>,
    /// Which attempt this is (`AI_SDLC_ATTEMPT`).
    pub attempt: Option<u32>,
    /// The attempt's own agent, when not the configured one.
    pub agent: Option<Preset>,
    /// A built-in workflow of the runner's (`judge`), instead of the run's.
    pub workflow: Option<String>,
    /// Its share of the story's budget, instead of all of it.
    pub budget: Option<crate::governor::Budget>,
}

impl Part {
    /// Whom the governor counts this part's spend under, within the story.
    pub fn key(&self, id: &str) -> String {
        match (&self.workflow, self.attempt) {
            (_, Some(k)) => format!("{id}#{k}"),
            (Some(w), None) => format!("{id}#{w}"),
            (None, None) if !self.only.is_empty() => format!("{id}#shared"),
            (None, None) => id.to_string(),
        }
    }

    /// Only the phases named run; those run even when complete.
    pub fn apply(&self, phases: &mut [PhaseCommand]) {
        if self.only.is_empty() {
            return;
        }
        for p in phases.iter_mut().filter(|p| p.kind != Kind::Setup) {
            p.complete = !self.only.contains(&p.name);
        }
    }
}

#[derive(Debug, Clone)]
pub struct PhaseCommand {
    pub name: String,
    pub kind: Kind,
    /// It runs the agent (not a command of the config's own).
    pub agent: bool,
    /// Its completion flag was `true` when the run began: it is skipped.
    pub complete: bool,
    pub preset: Preset,
    pub argv: Vec<String>,
    /// The prompt template.
    pub template: String,
}

impl Job {
    /// The job for `story`: each phase's command and prompt template, from
    /// the config and the repo's templates.
    pub fn new(
        config: &Config,
        story: &Story,
        workdir: PathBuf,
        branch: &str,
        base_branch: &str,
        setup: bool,
    ) -> Result<Job, String> {
        let board = Board::of(config);
        let text = board.text(&story.id)?;
        let mut phases = Vec::new();
        // A new worktree's `worktree.setup` runs first, as a phase of its own.
        if let (true, Some(argv)) = (setup, &config.worktree.setup) {
            phases.push(PhaseCommand {
                name: SETUP.to_string(),
                kind: Kind::Setup,
                agent: false,
                complete: false,
                preset: Preset::Command,
                argv: argv.clone(),
                template: String::new(),
            });
        }
        for p in &config.phases {
            let (preset, argv) = config.command_of(p).ok_or_else(|| {
                format!(
                    "no agent configured: set agent.preset (or agent.command) in {}",
                    config.file_name()
                )
            })?;
            phases.push(PhaseCommand {
                name: p.name.clone(),
                kind: p.kind(),
                agent: p.command.is_none(),
                complete: p.kind().flag().is_some_and(|f| story.is_complete(f)),
                preset,
                argv,
                // Read by `load_prompts`, where prompts are made.
                template: String::new(),
            });
        }
        let body = prompt::body_of(&text);
        let facts = StoryFacts {
            id: story.id.clone(),
            title: story.title.clone(),
            body,
            branch: branch.to_string(),
            base_branch: base_branch.to_string(),
            worktree: workdir.to_string_lossy().into_owned(),
            story_file: story.path.to_string_lossy().into_owned(),
            ..StoryFacts::default()
        };
        Ok(Job {
            id: story.id.clone(),
            title: story.title.clone(),
            slug: story.slug.clone(),
            branch: branch.to_string(),
            story_file: story.path.clone(),
            repo: config.root.clone(),
            workdir,
            phases,
            facts,
            sections: Vec::new(),
            has_setup: setup && config.worktree.setup.is_some(),
            max_rounds: config.workflow.max_review_rounds.max(1),
            env_pass: config.agent.env_pass.clone(),
            env_set: config.agent.env_set.clone(),
            port: None,
            sandbox_fd: None,
            sandbox_env: Vec::new(),
            part: Part::default(),
        })
    }

    /// Read what prompts are made of: each phase's template, and the
    /// story's sections (section file, else the body's section). Only
    /// where prompts are made (the executor, `ai-sdlc prompt`).
    pub fn load_prompts(&mut self, config: &Config) -> Result<(), String> {
        let skip = usize::from(self.has_setup);
        for p in self.phases.iter_mut().skip(skip) {
            p.template = prompt::template(&config.root, &config.sdlc_dir(), &p.name)?;
        }
        let board = Board::of(config);
        self.sections = workflow::SECTIONS
            .iter()
            .filter_map(|sec| {
                let found = board
                    .section(&self.id, sec.file)
                    .or_else(|| workflow::body_section(&self.facts.body, sec.headings))?;
                Some((sec.file, workflow::bounded(&found).to_string()))
            })
            .collect();
        Ok(())
    }

    /// A placeholder's value in an agent's command line.
    fn arg_value(&self, name: &str, phase: &str, prompt: &str) -> Option<String> {
        Some(match name {
            "id" => self.id.clone(),
            "title" => self.title.clone(),
            "slug" => self.slug.clone(),
            "phase" => phase.to_string(),
            "story_file" => self.story_file.to_string_lossy().into_owned(),
            "worktree" => self.workdir.to_string_lossy().into_owned(),
            "branch" => self.branch.clone(),
            "prompt" => prompt.to_string(),
            _ => return None,
        })
    }

    /// `argv` with its placeholders filled (one pass, SPEC §5). In a shell
    /// script (`sh -c SCRIPT`) a placeholder becomes a variable whose value
    /// goes in the environment: a story's text is never shell code.
    pub fn expand(&self, phase: &str, argv: &[String], prompt: &str) -> Result<Expanded, String> {
        let value = |n: &str| self.arg_value(n, phase, prompt);
        let script = prompt::shell_script(argv);
        let mut e = Expanded::default();
        for (i, arg) in argv.iter().enumerate() {
            let (a, used) = if Some(i) == script {
                prompt::fill_script(arg, &prompt::placeholder_var)?
            } else {
                prompt::fill(arg, &value)
            };
            e.used_prompt |= used.iter().any(|u| u == "prompt");
            if Some(i) == script {
                for name in used {
                    if let (Some(var), Some(v)) = (prompt::placeholder_var(&name), value(&name))
                        && !e.env.iter().any(|(k, _)| *k == var)
                    {
                        e.env.push((var, v));
                    }
                }
            }
            e.argv.push(a);
        }
        Ok(e)
    }

    /// The `AI_SDLC_*` environment of an agent (SPEC §5), and its ports:
    /// `AI_SDLC_PORT`, and `PORT` unless it has one.
    pub fn env(&self, phase: &str) -> HashMap<&'static str, String> {
        let mut env = self.ai_sdlc_env(phase);
        if let Some(k) = self.part.attempt {
            env.insert("AI_SDLC_ATTEMPT", k.to_string());
        }
        if let Some(p) = self.port {
            env.insert("AI_SDLC_PORT", p.to_string());
            let own =
                std::env::var_os("PORT").is_some() || self.env_set.iter().any(|(k, _)| k == "PORT");
            if !own {
                env.insert("PORT", p.to_string());
            }
        }
        env
    }

    fn ai_sdlc_env(&self, phase: &str) -> HashMap<&'static str, String> {
        HashMap::from([
            ("AI_SDLC_STORY_ID", self.id.clone()),
            ("AI_SDLC_STORY_TITLE", self.title.clone()),
            ("AI_SDLC_STORY_SLUG", self.slug.clone()),
            (
                "AI_SDLC_STORY_FILE",
                self.story_file.to_string_lossy().into_owned(),
            ),
            ("AI_SDLC_PHASE", phase.to_string()),
            (
                "AI_SDLC_WORKTREE",
                self.workdir.to_string_lossy().into_owned(),
            ),
            ("AI_SDLC_BRANCH", self.branch.clone()),
            ("AI_SDLC_REPO", self.repo.to_string_lossy().into_owned()),
            (
                "AI_SDLC_MAIN_WORKTREE",
                self.repo.to_string_lossy().into_owned(),
            ),
        ])
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    /// SIGTERM to SIGKILL.
    pub grace: Duration,
    /// No output this long means the agent hangs.
    pub idle: Option<Duration>,
    /// Retries of a phase that failed in a transient way.
    pub retries: u32,
    /// The first retry's pause; it doubles each time.
    pub retry_delay: Duration,
    /// The most the story may spend in this run.
    pub budget: crate::governor::Budget,
    /// What tokens cost, for CLIs that report only tokens.
    pub pricing: Option<crate::config::Pricing>,
}

#[derive(Debug)]
pub enum Event<'a> {
    PhaseStarted {
        index: usize,
        count: usize,
        name: &'a str,
        pid: u32,
    },
    Output {
        stream: Stream,
        line: &'a str,
        /// What to show people instead of the line (`Some("")`: nothing).
        show: Option<&'a str>,
    },
    PhaseFinished {
        index: usize,
        count: usize,
        name: &'a str,
        /// "succeeded", "exited with code 3: <last error line>", ...
        summary: &'a str,
    },
    /// A phase (or one round of it) ended, or was skipped: for the board.
    PhaseResult {
        name: &'a str,
        round: u32,
        outcome: &'a str,
        output: Option<&'a str>,
        verdict: Option<&'a Verdict>,
        duration_ms: u64,
        report: &'a Report,
    },
    /// Something people should know that is not the agent's own output: a
    /// failure to start, a retry.
    Problem { code: &'a str, message: &'a str },
    /// The agent's CLI is rate limited, its service overloaded, or its
    /// account at a usage cap (lifting at `not_before`, ms since the epoch,
    /// when it said): the whole run should know at once.
    Limited {
        kind: FailureKind,
        words: &'a str,
        not_before: Option<u64>,
    },
    /// What this story has spent so far in this run, as its agents report
    /// it: the runner weighs it against the run's budget.
    Spent { usd: f64, tokens: u64 },
}

pub trait Observer {
    fn event(&mut self, e: Event);
    /// No output is waiting: a moment to flush.
    fn idle(&mut self) {}
    /// After each phase that ran the agent, before anything else runs: a
    /// check of what the agent may have left for later phases (the
    /// executor's guard of the shared git state). `Some(why)` fails the
    /// story there.
    fn after_agent(&mut self) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub failed_phase: Option<String>,
    pub duration_ms: u64,
    /// Why it failed, for `blocked_reason`: phase, the CLI's words or the
    /// exit code and last error line.
    pub error: Option<String>,
    /// What kind of failure the agent's CLI reported, if it said.
    pub failure: Option<FailureKind>,
    /// Tokens and cost of every phase and attempt; the last phase's final message.
    pub report: Report,
    /// The commit the runner made of the agent's work.
    pub commit: Option<String>,
    /// Parked at a usage cap: not to start again before this (ms since the
    /// epoch).
    pub not_before: Option<u64>,
    /// Of `report`'s spend, what the governor counted already (a story's
    /// attempts, SPEC §17, each counted as it ended).
    pub counted: crate::governor::Spend,
}

impl RunResult {
    /// A run that failed before or outside its phases.
    pub fn failed(error: String, duration_ms: u64) -> RunResult {
        RunResult {
            outcome: Outcome::Failed,
            duration_ms,
            error: Some(error),
            ..RunResult::default()
        }
    }
}

/// What later prompts get as a run goes on: the story's sections (as
/// phases here rewrite them) and the outputs of phases that have none.
struct Carried {
    sections: Vec<(&'static str, String)>,
    outputs: Vec<(String, String)>,
}

impl Carried {
    /// Keep a phase's output for the phases after it.
    fn keep(&mut self, phase: &PhaseCommand, text: String) {
        match phase.kind.section() {
            Some(sec) => set_section(&mut self.sections, sec.file, text),
            None => {
                self.outputs.retain(|(n, _)| n != &phase.name);
                self.outputs.push((phase.name.clone(), text));
            }
        }
    }

    fn section(&self, file: &str) -> String {
        self.sections
            .iter()
            .find(|(f, _)| *f == file)
            .map_or(String::new(), |(_, t)| t.clone())
    }
}

/// One phase, run: how it ended, what it handed on, what a review said,
/// and why it failed if it did.
struct Ran {
    end: PhaseEnd,
    output: Option<String>,
    verdict: Option<Verdict>,
    failed: Option<String>,
}

/// Run the phase at `index` in `round` (retried after a transient
/// failure) and report its result; `None` when a stop came first.
fn run_one(
    job: &Job,
    (index, round): (usize, u32),
    carried: &Carried,
    spent: crate::governor::Spend,
    limits: &Limits,
    obs: &mut dyn Observer,
) -> Option<Ran> {
    let phase = &job.phases[index];
    let label = match round {
        r if r > 1 && phase.kind.flag().is_some() => {
            format!("{} {r}/{}", phase.name, job.max_rounds)
        }
        _ => phase.name.clone(),
    };
    let started = Instant::now();
    let prompt = prompt_for(job, phase, &carried.sections, &carried.outputs);
    let at = At {
        index,
        phase,
        label: &label,
        prompt: &prompt,
        spent,
    };
    let mut end = phase::attempts(job, &at, limits, obs)?;
    // A CLI that reports only tokens: their cost at `agent.pricing`.
    let r = &mut end.report;
    if r.cost_usd.is_none()
        && let (priced, Some("pricing")) =
            crate::governor::spend_of(None, r.input_tokens, r.output_tokens, limits.pricing)
    {
        r.cost_usd = Some(priced.usd);
        r.priced = true;
    }
    let ok = end.ok();
    let output = end
        .report
        .handover
        .as_ref()
        .or(end.report.final_message.as_ref())
        .filter(|_| ok)
        .map(|m| workflow::bounded(m).to_string());
    let verdict = (ok && phase.kind == Kind::Review)
        .then(|| workflow::verdict(output.as_deref().unwrap_or("")));
    obs.event(Event::PhaseResult {
        name: &phase.name,
        round,
        outcome: match (ok, end.cancelled()) {
            (true, _) => "succeeded",
            (false, true) => "cancelled",
            (false, false) => "failed",
        },
        output: output.as_deref(),
        verdict: verdict.as_ref(),
        duration_ms: started.elapsed().as_millis() as u64,
        report: &end.report,
    });
    let failed = (!ok).then(|| end.reason(phase, &label));
    Some(Ran {
        end,
        output,
        verdict,
        failed,
    })
}

/// Run the phases of `job` in order, skipping those already complete; a
/// review that asks for changes sends the story back to `implement`, up to
/// `max_rounds` rounds (`workflow::next`). Stops early on a failing phase
/// or a shutdown request (`shutdown::state()`).
pub fn run(job: &Job, limits: &Limits, obs: &mut dyn Observer) -> RunResult {
    let started = Instant::now();
    let mut result = RunResult {
        exit_code: Some(0),
        ..RunResult::default()
    };
    let mut carried = Carried {
        sections: job.sections.clone(),
        outputs: Vec::new(),
    };
    let kinds: Vec<Kind> = job.phases.iter().map(|p| p.kind).collect();
    let mut skip: Vec<bool> = job.phases.iter().map(|p| p.complete).collect();
    let (mut index, mut round) = (0, 1u32);
    while index < job.phases.len() {
        let phase = &job.phases[index];
        if skip[index] {
            obs.event(Event::PhaseResult {
                name: &phase.name,
                round,
                outcome: "skipped",
                output: None,
                verdict: None,
                duration_ms: 0,
                report: &Report::default(),
            });
            index += 1;
            continue;
        }
        // The spend of the phases before, against the story's budget.
        let spent = spend(&result.report);
        if phase.agent && over_budget(&mut result, phase, limits) {
            break;
        }
        let Some(ran) = run_one(job, (index, round), &carried, spent, limits, obs) else {
            result.outcome = Outcome::Cancelled;
            result.exit_code = None;
            result.error = Some("run interrupted".into());
            break;
        };
        count(&mut result, &ran.end.report, obs);
        if let Some(why) = phase.agent.then(|| obs.after_agent()).flatten() {
            result.outcome = Outcome::Failed;
            result.failed_phase = Some("git state".into());
            result.error = Some(why);
            break;
        }
        result.exit_code = ran.end.status.and_then(|s| s.code());
        result.signal = ran.end.status.and_then(|s| s.signal());
        let end = match &ran.verdict {
            _ if ran.failed.is_some() => End::Failed,
            Some(v) if *v != Verdict::Approved => End::ChangesRequested,
            _ => End::Succeeded,
        };
        if end != End::Failed {
            result.report.final_message = ran.end.report.final_message.clone();
        }
        if let Some(text) = ran.output {
            carried.keep(phase, text);
        }
        // Changes requested: the reasons go to the next implement round.
        let reasons = ran
            .verdict
            .as_ref()
            .map(|v| v.reasons(&carried.section(REVIEW_FILE)));
        if let Some(r) = reasons.clone().filter(|_| end == End::ChangesRequested) {
            set_section(&mut carried.sections, REVIEW_FILE, r);
        }
        match workflow::next(&kinds, job.max_rounds, index, round, end) {
            Step::Run(i) => index = i,
            Step::Done => break,
            Step::Fail => {
                result.outcome = if ran.end.cancelled() {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed
                };
                result.failure = ran.end.report.failure.as_ref().map(|(k, _)| *k);
                let now_secs = crate::time::now_ms() / 1000;
                result.not_before = ran.end.report.cap_lifts_at(now_secs).map(|s| s * 1000);
                result.failed_phase = Some(phase.name.clone());
                result.error = ran.failed;
                break;
            }
            Step::Back { to, round: r } => {
                skip[to..].iter_mut().for_each(|s| *s = false);
                (index, round) = (to, r);
            }
            Step::OutOfRounds => {
                result.outcome = Outcome::Failed;
                result.failed_phase = Some(phase.name.clone());
                result.error = Some(format!(
                    "the review still requests changes after {round} {}: {}",
                    if round == 1 { "round" } else { "rounds" },
                    one_line(&reasons.unwrap_or_default(), 1000)
                ));
                break;
            }
        }
    }
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

/// Add a phase's usage to the story's, and tell the runner the total.
fn count(result: &mut RunResult, phase: &Report, obs: &mut dyn Observer) {
    result.report.add_usage(phase);
    let now = spend(&result.report);
    obs.event(Event::Spent {
        usd: now.usd,
        tokens: now.tokens,
    });
}

/// Before an agent phase: is the story over its budget already? Then it
/// fails, saying so.
fn over_budget(result: &mut RunResult, phase: &PhaseCommand, limits: &Limits) -> bool {
    let Some(over) = limits.budget.over(spend(&result.report)) else {
        return false;
    };
    result.outcome = Outcome::Failed;
    result.failure = Some(FailureKind::OverBudget);
    result.failed_phase = Some(phase.name.clone());
    result.error = Some(format!(
        "over budget: {over} before phase {}; raise budget.story (or --budget-story) and run it again",
        phase.name
    ));
    true
}

/// What a report's totals come to (costs are priced per phase already).
pub fn spend(r: &Report) -> crate::governor::Spend {
    crate::governor::spend_of(r.cost_usd, r.input_tokens, r.output_tokens, None).0
}

/// `text` on one line (`; ` between its lines), at most `max` bytes.
fn one_line(text: &str, max: usize) -> String {
    let joined: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    agent::cut(&joined.join("; "), max)
}

fn set_section(sections: &mut Vec<(&'static str, String)>, file: &'static str, text: String) {
    sections.retain(|(f, _)| *f != file);
    sections.push((file, text));
}

/// The prompt of `phase`: its template, filled with the story, the
/// sections of the phases before it and the outputs of other phases; a
/// review also gets the diff of the story's work.
pub fn prompt_for(
    job: &Job,
    phase: &PhaseCommand,
    sections: &[(&'static str, String)],
    outputs: &[(String, String)],
) -> String {
    let mut earlier: Vec<(String, String)> = workflow::sections_for(&phase.name)
        .into_iter()
        .filter_map(|sec| {
            let (_, text) = sections.iter().find(|(f, _)| *f == sec.file)?;
            Some((sec.label.to_string(), text.clone()))
        })
        .collect();
    earlier.extend(outputs.iter().filter(|(n, _)| n != &phase.name).cloned());
    if phase.kind == Kind::Review {
        let mut facts = job.facts.clone();
        // Never the diff of another repo an agent re-pointed the worktree at.
        let tied =
            job.workdir == job.repo || crate::worktree::check_link(&job.repo, &job.workdir).is_ok();
        (facts.diff_stat, facts.diff) = if tied {
            diff::review_diff(&job.workdir, &job.facts.base_branch)
        } else {
            let no = "(no diff: the worktree's .git no longer points at this repo)".to_string();
            (no.clone(), no)
        };
        return prompt::render(&phase.template, &facts, &phase.name, &earlier);
    }
    prompt::render(&phase.template, &job.facts, &phase.name, &earlier)
}
