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

use crate::agent::{self, FailureKind, Preset, Report};
use crate::board::{Board, Story};
use crate::config::Config;
use crate::ipc::{Line, LineReader, MAX_LINE, Stream};
use crate::process;
use crate::prompt::{self, StoryFacts};
use crate::shutdown::{self, State};
use crate::workflow::{self, Verdict};
use crossbeam_channel::{RecvTimeoutError, bounded};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

/// How often a running phase checks for a stop, and the longest a
/// supervisor waits between reaping attempts of an exiting child.
pub const TICK: Duration = Duration::from_millis(50);

/// The name of the phase that runs `worktree.setup`.
pub const SETUP: &str = "setup";

/// An output line is passed on (to the log, to people) up to this size.
const MAX_SHOWN_LINE: usize = 64 * 1024;

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
}

#[derive(Debug, Clone)]
pub struct PhaseCommand {
    pub name: String,
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
                complete: workflow::flag(&p.name).is_some_and(|f| story.is_complete(f)),
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

    /// `argv` with its placeholders filled (one pass, SPEC §5), and whether
    /// `{prompt}` was among them (then stdin is empty).
    pub fn expand(&self, phase: &str, argv: &[String], prompt: &str) -> (Vec<String>, bool) {
        let mut used_prompt = false;
        let out = argv
            .iter()
            .map(|arg| {
                let (a, used) = prompt::fill(arg, &|n| self.arg_value(n, phase, prompt));
                used_prompt |= used.iter().any(|u| u == "prompt");
                a
            })
            .collect();
        (out, used_prompt)
    }

    /// The `AI_SDLC_*` environment of an agent (SPEC §5).
    pub fn env(&self, phase: &str) -> HashMap<&'static str, String> {
        HashMap::from([
            ("AI_SDLC_STORY_ID", self.id.clone()),
            ("AI_SDLC_STORY_TITLE", self.title.clone()),
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::TimedOut => "timed_out",
            Outcome::Cancelled => "cancelled",
            Outcome::Skipped => "skipped",
        }
    }

    /// The outcome in words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Outcome::TimedOut => "timed out",
            other => other.as_str(),
        }
    }
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
}

pub trait Observer {
    fn event(&mut self, e: Event);
    /// No output is waiting: a moment to flush.
    fn idle(&mut self) {}
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

/// Run the phases of `job` in order, skipping those already complete; a
/// review that asks for changes sends the story back to `implement`, up to
/// `max_rounds` rounds. Stops early on a failing phase or a shutdown
/// request (`shutdown::state()`).
pub fn run(job: &Job, limits: &Limits, obs: &mut dyn Observer) -> RunResult {
    let started = Instant::now();
    let count = job.phases.len();
    let mut result = RunResult {
        exit_code: Some(0),
        ..RunResult::default()
    };
    // What later prompts get: the story's sections (as phases here rewrite
    // them) and the outputs of phases that have none.
    let mut sections = job.sections.clone();
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut skip: Vec<bool> = job.phases.iter().map(|p| p.complete).collect();
    let mut round = 1u32;
    let mut index = 0;
    while index < count {
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
        let label = match round {
            r if r > 1 && workflow::flag(&phase.name).is_some() => {
                format!("{} {r}/{}", phase.name, job.max_rounds)
            }
            _ => phase.name.clone(),
        };
        let phase_started = Instant::now();
        let prompt = prompt_for(job, phase, &sections, &outputs);
        let Some(end) = attempts(job, index, phase, &label, &prompt, limits, obs) else {
            result.outcome = Outcome::Cancelled;
            result.exit_code = None;
            result.error = Some("run interrupted".into());
            break;
        };
        result.report.add_usage(&end.report);
        result.exit_code = end.status.and_then(|s| s.code());
        result.signal = end.status.and_then(|s| s.signal());
        let ok = end.ok();
        let output = end
            .report
            .handover
            .as_ref()
            .or(end.report.final_message.as_ref())
            .filter(|_| ok)
            .map(|m| workflow::bounded(m).to_string());
        let verdict = (ok && phase.name == "review")
            .then(|| workflow::verdict(output.as_deref().unwrap_or("")));
        let cancelled = end.stopped && end.idle.is_none();
        obs.event(Event::PhaseResult {
            name: &phase.name,
            round,
            outcome: match (ok, cancelled) {
                (true, _) => "succeeded",
                (false, true) => "cancelled",
                (false, false) => "failed",
            },
            output: output.as_deref(),
            verdict: verdict.as_ref(),
            duration_ms: phase_started.elapsed().as_millis() as u64,
            report: &end.report,
        });
        if !ok {
            fail(&mut result, phase, &label, &end);
            break;
        }
        result.report.final_message = end.report.final_message.clone();
        if let Some(text) = output {
            match workflow::section_of(&phase.name) {
                Some(sec) => set_section(&mut sections, sec.file, text),
                None => {
                    outputs.retain(|(n, _)| n != &phase.name);
                    outputs.push((phase.name.clone(), text));
                }
            }
        }
        let Some(v) = verdict.filter(|v| *v != Verdict::Approved) else {
            index += 1;
            continue;
        };
        // Changes requested: the reasons go to the next implement round.
        let review = sections
            .iter()
            .find(|(f, _)| *f == "review.md")
            .map_or(String::new(), |(_, t)| t.clone());
        let reasons = v.reasons(&review);
        set_section(&mut sections, "review.md", reasons.clone());
        let back = job.phases[..index]
            .iter()
            .rposition(|p| p.name == "implement");
        match back {
            Some(b) if round < job.max_rounds => {
                round += 1;
                skip[b..].iter_mut().for_each(|s| *s = false);
                index = b;
            }
            _ => {
                result.outcome = Outcome::Failed;
                result.failed_phase = Some(phase.name.clone());
                result.error = Some(format!(
                    "the review still requests changes after {round} {}: {}",
                    if round == 1 { "round" } else { "rounds" },
                    one_line(&reasons, 1000)
                ));
                break;
            }
        }
    }
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
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
    if phase.name == "review" {
        let mut facts = job.facts.clone();
        // Never the diff of another repo an agent re-pointed the worktree at.
        let tied =
            job.workdir == job.repo || crate::worktree::check_link(&job.repo, &job.workdir).is_ok();
        (facts.diff_stat, facts.diff) = if tied {
            review_diff(&job.workdir, &job.facts.base_branch)
        } else {
            let no = "(no diff: the worktree's .git no longer points at this repo)".to_string();
            (no.clone(), no)
        };
        return prompt::render(&phase.template, &facts, &phase.name, &earlier);
    }
    prompt::render(&phase.template, &job.facts, &phase.name, &earlier)
}

/// The diff a review reads is cut to this many bytes.
const MAX_DIFF: usize = 200 * 1024;

/// The story's work as a diff stat and a diff against where its branch
/// left `base`: commits and uncommitted changes, new files included. Read
/// only: nothing in the worktree or its index changes.
fn review_diff(workdir: &std::path::Path, base: &str) -> (String, String) {
    let base = if base.is_empty() { "HEAD" } else { base };
    let from = crate::git::run(workdir, &["merge-base", base, "HEAD"])
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "HEAD".to_string());
    let unavailable = |e: crate::git::GitError| format!("(no diff: {e})");
    // (`git::run` keeps external diffs and textconv out of every diff.)
    let mut stat =
        crate::git::run(workdir, &["diff", "--stat", &from, "--"]).unwrap_or_else(unavailable);
    let mut diff = crate::git::run(workdir, &["diff", &from, "--"]).unwrap_or_else(unavailable);
    let new_files = crate::git::run(
        workdir,
        &["ls-files", "--others", "--exclude-standard", "-z"],
    )
    .unwrap_or_default();
    for file in new_files.split('\0').filter(|f| !f.is_empty()).take(200) {
        stat.push_str(&format!(" {file} (new, not yet added)\n"));
        if diff.len() < MAX_DIFF {
            // Exit code 1 means "they differ".
            if let Ok(d) = crate::git::run_allowing(
                workdir,
                &["diff", "--no-index", "--", "/dev/null", file],
                &[0, 1],
            ) {
                diff.push_str(&d);
            }
        }
    }
    if stat.trim().is_empty() {
        stat = "(no changes)".into();
    }
    if diff.len() > MAX_DIFF {
        diff = format!(
            "{}\n[ai-sdlc: the diff is cut here at {} KiB; run `git diff {from}` for the rest]\n",
            agent::cut(&diff, MAX_DIFF),
            MAX_DIFF / 1024
        );
    }
    (stat.trim_end().to_string(), diff.trim_end().to_string())
}

/// Fill in why the run failed at `phase`.
fn fail(result: &mut RunResult, phase: &PhaseCommand, label: &str, end: &PhaseEnd) {
    let summary = end.summary(phase);
    result.outcome = if end.stopped && end.idle.is_none() {
        Outcome::Cancelled
    } else {
        Outcome::Failed
    };
    result.failure = end.report.failure.as_ref().map(|(k, _)| *k);
    result.failed_phase = Some(phase.name.clone());
    result.error = Some(if phase.name == SETUP {
        format!("setup failed: {summary}")
    } else if end.spawn_error.is_some() {
        summary
    } else if end.report.failure.is_some() || end.idle.is_some() {
        format!("phase {label}: {summary}")
    } else {
        format!("phase {label} {summary}")
    });
}

/// Run one phase, again after a transient failure (`limits.retries`, with
/// pauses that double). `None` when a stop came before it started.
fn attempts(
    job: &Job,
    index: usize,
    phase: &PhaseCommand,
    label: &str,
    prompt: &str,
    limits: &Limits,
    obs: &mut dyn Observer,
) -> Option<PhaseEnd> {
    let count = job.phases.len();
    let mut attempt = 0;
    // Tokens and cost of the attempts that were retried.
    let mut spent = Report::default();
    loop {
        if shutdown::stopping() {
            return None;
        }
        let mut end = run_phase(job, index, count, phase, label, prompt, limits, obs);
        let summary = end.summary(phase);
        obs.event(Event::PhaseFinished {
            index,
            count,
            name: label,
            summary: &summary,
        });
        let kind = end.report.failure.as_ref().map(|(k, _)| *k);
        let retry = kind.filter(|k| k.transient()).filter(|_| !end.ok());
        let Some(k) = retry.filter(|_| attempt < limits.retries && !end.stopped) else {
            end.report.add_usage(&spent);
            return Some(end);
        };
        spent.add_usage(&end.report);
        attempt += 1;
        let pause = backoff(limits.retry_delay, attempt);
        let message = format!(
            "{}: {}; retry {attempt} of {} in {}",
            k.describe(),
            end.report.failure.as_ref().map_or("", |f| f.1.as_str()),
            limits.retries,
            crate::time::human_duration(pause.as_millis() as u64)
        );
        obs.event(Event::Problem {
            code: "retry",
            message: &message,
        });
        // A stop ends the pause at once.
        let _ = shutdown::on_stop().recv_timeout(pause);
    }
}

/// The pause before retry `n` (1-based): `first`, doubled each time, at
/// most ten minutes.
fn backoff(first: Duration, n: u32) -> Duration {
    first
        .saturating_mul(1u32 << (n - 1).min(16))
        .min(Duration::from_secs(600))
}

struct PhaseEnd {
    /// `None` when the agent could not be started.
    status: Option<ExitStatus>,
    /// Stopped by a shutdown request (or the idle limit).
    stopped: bool,
    /// Printed nothing for the idle limit.
    idle: Option<Duration>,
    spawn_error: Option<String>,
    last_line: Option<String>,
    report: Report,
}

impl PhaseEnd {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
            && self.report.failure.is_none()
            && self.idle.is_none()
    }

    /// How the phase ended, for people and `blocked_reason`.
    fn summary(&self, phase: &PhaseCommand) -> String {
        if let Some(e) = &self.spawn_error {
            return e.clone();
        }
        if let Some(idle) = self.idle {
            return format!(
                "printed nothing for {}: the agent looked hung and was stopped",
                crate::time::human_duration(idle.as_millis() as u64)
            );
        }
        let how = match self.status {
            Some(s) if s.success() && self.report.failure.is_none() => {
                return "succeeded".to_string();
            }
            Some(s) => process::exit_text(s),
            None => "did not run".to_string(),
        };
        if let Some((kind, words)) = &self.report.failure {
            let program = phase.argv.first().map(String::as_str).unwrap_or("agent");
            return format!("{words} ({program}: {}; {how})", kind.describe());
        }
        match &self.last_line {
            Some(l) => format!("{how}: {l}"),
            None => how,
        }
    }
}

fn spawn_reader(
    stream: Stream,
    pipe: impl std::io::Read + Send + 'static,
    tx: crossbeam_channel::Sender<(Stream, String)>,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name(format!("agent-{}", stream.as_str()))
        .stack_size(128 * 1024)
        .spawn(move || {
            let mut reader = LineReader::new(pipe, MAX_LINE);
            loop {
                let line = match reader.next_line() {
                    Ok(Some(Line::Full(b) | Line::Cut(b))) => {
                        String::from_utf8_lossy(b).into_owned()
                    }
                    Ok(Some(Line::TooLong(n))) => {
                        format!("[ai-sdlc: a {n}-byte line was left out]")
                    }
                    Ok(None) | Err(_) => return,
                };
                // A full channel blocks this thread, and so the agent's
                // pipe: its output can never grow our memory.
                if tx.send((stream, line)).is_err() {
                    return;
                }
            }
        })
}

/// The agent's CLI, before it starts, when its preset has a check that
/// costs no tokens (codex, which would retry forever without a login):
/// its words when it says the agent cannot authenticate.
fn auth_problem(job: &Job, phase: &PhaseCommand) -> Option<String> {
    let (check, key_vars) = phase.preset.auth_check()?;
    if key_vars
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
    {
        return None;
    }
    let answer = process::ask(check, &job.workdir, Duration::from_secs(10)).ok()?;
    if answer.code == Some(0) {
        return None;
    }
    let words = match process::last_word(&answer.text) {
        "" => "not logged in",
        w => w,
    };
    Some(format!(
        "{words} (`{}` says so; log in, or set {})",
        check.join(" "),
        key_vars.join(" or ")
    ))
}

fn start_agent(job: &Job, phase: &PhaseCommand, prompt: &str) -> Result<Child, String> {
    let (argv, used_prompt) = job.expand(&phase.name, &phase.argv, prompt);
    let program = argv.first().ok_or("the agent command is empty")?;
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .current_dir(&job.workdir)
        .envs(job.env(&phase.name))
        .env_remove("AI_SDLC_ROOT")
        .env_remove(process::RUNNER_PID_VAR)
        .stdin(if used_prompt {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // No pre_exec hook (so std can use posix_spawn): the executor sweeps its
    // descendants, and the runner sweeps the executor's group.
    cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "cannot start phase {}: command {program:?} not found (run from {}); install it, or check the agent settings and the phase's command in .ai-sdlc.json",
            phase.name,
            job.workdir.display()
        ),
        _ => format!("cannot start phase {}: {program:?}: {e}", phase.name),
    })
}

/// Agents share the executor's process group: signal its descendants, never
/// the executor itself. No reaping here: the agent's `Child` is reaped by its owner.
fn signal_agents(sig: libc::c_int) {
    process::signal_descendants(sig, false);
}

#[allow(clippy::too_many_arguments)]
fn run_phase(
    job: &Job,
    index: usize,
    count: usize,
    phase: &PhaseCommand,
    label: &str,
    prompt: &str,
    limits: &Limits,
    obs: &mut dyn Observer,
) -> PhaseEnd {
    let mut end = PhaseEnd {
        status: None,
        stopped: false,
        idle: None,
        spawn_error: None,
        last_line: None,
        report: Report::default(),
    };
    if let Some(words) = auth_problem(job, phase) {
        end.status = Some(ExitStatus::from_raw(1 << 8));
        end.report.failure = Some((FailureKind::Auth, words));
        return end;
    }
    let mut child = match start_agent(job, phase, prompt) {
        Ok(c) => c,
        Err(e) => {
            obs.event(Event::Problem {
                code: "spawn_failed",
                message: &e,
            });
            end.spawn_error = Some(e);
            return end;
        }
    };
    obs.event(Event::PhaseStarted {
        index,
        count,
        name: label,
        pid: child.id(),
    });
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = prompt.to_string();
        // An agent that never reads its stdin must not block the run: write
        // from a thread; dropping the handle closes stdin (EOF).
        let _ = thread::Builder::new()
            .name("agent-stdin".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = stdin.write_all(prompt.as_bytes());
            });
    }
    let (tx, rx) = bounded(256);
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.extend(spawn_reader(Stream::Stdout, out, tx.clone()).ok());
    }
    if let Some(err) = child.stderr.take() {
        readers.extend(spawn_reader(Stream::Stderr, err, tx.clone()).ok());
    }
    drop(tx);
    let mut heard = Heard {
        reader: phase.preset.reader(&job.workdir.to_string_lossy()),
        last_err: None,
        last_out: None,
        last_progress: Instant::now(),
    };
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let mut pipes_open = true;
    let mut next_check = Instant::now();
    let status = loop {
        let now = Instant::now();
        if pipes_open {
            match rx.recv_timeout(next_check.saturating_duration_since(now)) {
                Ok(item) => {
                    heard.take(obs, item);
                    for item in rx.try_iter().take(1024) {
                        heard.take(obs, item);
                    }
                    if rx.is_empty() {
                        obs.idle();
                    }
                    if Instant::now() < next_check {
                        continue;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => pipes_open = false,
            }
        } else if let Ok(Some(st)) = child.wait_timeout(next_check.saturating_duration_since(now)) {
            // The pipes closed; the agent's exit comes at once (wait_timeout wakes on SIGCHLD).
            break st;
        }
        next_check = Instant::now() + TICK;
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => {
                // Never spin on a child we cannot wait for: report it as lost.
                let message = format!("lost track of the agent (pid {}): {e}", child.id());
                obs.event(Event::Problem {
                    code: "wait_failed",
                    message: &message,
                });
                break ExitStatus::from_raw(255 << 8);
            }
        }
        let now = Instant::now();
        let state = shutdown::state();
        let hung = limits
            .idle
            .filter(|d| now.saturating_duration_since(heard.last_progress) >= *d);
        if (state != State::Running || hung.is_some()) && kill_at.is_none() {
            end.stopped = true;
            end.idle = hung.filter(|_| state == State::Running);
            signal_agents(libc::SIGTERM);
            kill_at = Some(now + limits.grace);
        }
        if !killed && (state == State::Forced || kill_at.is_some_and(|k| now >= k)) {
            signal_agents(libc::SIGKILL);
            killed = true;
        }
    };
    // Whatever the agent left behind dies with the phase.
    signal_agents(libc::SIGKILL);
    let drain_until = Instant::now() + Duration::from_secs(2);
    while pipes_open {
        match rx.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
            Ok(item) => heard.take(obs, item),
            Err(RecvTimeoutError::Disconnected) => pipes_open = false,
            Err(RecvTimeoutError::Timeout) => {
                // Something outside our descendants holds the pipe; leave its reader behind.
                log::debug!(
                    "[{}] agent pipes still open after exit; not waiting",
                    job.id
                );
                readers.clear();
                break;
            }
        }
    }
    obs.idle();
    for r in readers {
        let _ = r.join();
    }
    end.status = Some(status);
    end.report = heard.reader.report();
    end.last_line = heard.last_err.or(heard.last_out);
    end
}

/// What a phase's output told so far.
struct Heard {
    reader: Box<dyn agent::Reader>,
    last_err: Option<String>,
    last_out: Option<String>,
    /// The last line that counted as a sign of life.
    last_progress: Instant,
}

impl Heard {
    fn take(&mut self, obs: &mut dyn Observer, (stream, line): (Stream, String)) {
        let seen = self.reader.line(stream == Stream::Stderr, &line);
        if seen.progress {
            self.last_progress = Instant::now();
        }
        let shown_line = agent::cut(&line, MAX_SHOWN_LINE);
        obs.event(Event::Output {
            stream,
            line: &shown_line,
            show: seen.show.as_deref(),
        });
        if !line.trim().is_empty() {
            let slot = if stream == Stream::Stderr {
                &mut self.last_err
            } else {
                &mut self.last_out
            };
            *slot = Some(agent::cut(line.trim(), 200));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_ten_minutes() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(30), 1), s(30));
        assert_eq!(backoff(s(30), 2), s(60));
        assert_eq!(backoff(s(30), 3), s(120));
        assert_eq!(backoff(s(30), 40), s(600));
    }
}
