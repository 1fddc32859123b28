//! One phase of a story as an agent process: its prompt on stdin, its
//! output through the preset's reader, the idle limit and a shutdown
//! enforced by the staged stop of `supervise`, and a transient failure
//! retried after a pause that doubles each time (`agent.retries`).

use super::{Event, Job, Limits, Observer, PhaseCommand};
use crate::agent::{self, FailureKind, Preset, Report};
use crate::governor::{Spend, spend_of};
use crate::ipc::{Line, LineReader, MAX_LINE, Stream};
use crate::process;
use crate::shutdown;
use crate::supervise::{self, Action, Seen, Stage, Why};
use crate::workflow::Kind;
use crossbeam_channel::{RecvTimeoutError, bounded};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

/// How often a running phase checks for a stop, and the longest a
/// supervisor waits between reaping attempts of an exiting child.
pub const TICK: Duration = Duration::from_millis(50);

/// An output line is passed on (to the log, to people) up to this size.
const MAX_SHOWN_LINE: usize = 64 * 1024;

/// Which phase of the job runs now, and what it is called on screen.
pub struct At<'a> {
    pub index: usize,
    pub phase: &'a PhaseCommand,
    /// `implement 2/3` in a later round.
    pub label: &'a str,
    pub prompt: &'a str,
    /// What the story spent in this run before this phase.
    pub spent: Spend,
}

/// Run one phase, again after a transient failure (`limits.retries`, with
/// pauses that double). `None` when a stop came before it started.
pub fn attempts(job: &Job, at: &At, limits: &Limits, obs: &mut dyn Observer) -> Option<PhaseEnd> {
    let (index, phase, label) = (at.index, at.phase, at.label);
    let count = job.phases.len();
    let mut attempt = 0;
    // Tokens and cost of the attempts that were retried.
    let mut spent = Report::default();
    loop {
        if shutdown::stopping() {
            return None;
        }
        let before = at.spent
            + spend_of(
                spent.cost_usd,
                spent.input_tokens,
                spent.output_tokens,
                limits.pricing,
            )
            .0;
        let mut end = run_phase(job, at, before, limits, obs);
        let summary = end.summary(phase);
        obs.event(Event::PhaseFinished {
            index,
            count,
            name: label,
            summary: &summary,
        });
        let kind = end.report.failure.as_ref().map(|(k, _)| *k);
        if let Some(k @ (FailureKind::RateLimit | FailureKind::Overloaded)) = kind {
            obs.event(Event::Limited {
                kind: k,
                words: end.report.failure.as_ref().map_or("", |f| f.1.as_str()),
                not_before: None,
            });
        }
        let retry = kind.filter(|k| k.transient()).filter(|_| !end.ok());
        let Some(k) = retry.filter(|_| attempt < limits.retries && end.stopped.is_none()) else {
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

pub struct PhaseEnd {
    /// `None` when the agent could not be started.
    pub status: Option<ExitStatus>,
    /// Why the agent was stopped, if it was (a shutdown, the idle limit).
    pub stopped: Option<Why>,
    /// The idle limit, for the words of a hung agent's failure.
    pub idle_limit: Option<Duration>,
    pub spawn_error: Option<String>,
    pub last_line: Option<String>,
    pub report: Report,
    /// Stopped over budget: by how much ("$0.52 of $0.50").
    pub over_budget: Option<String>,
}

impl PhaseEnd {
    fn new(idle_limit: Option<Duration>) -> PhaseEnd {
        PhaseEnd {
            status: None,
            stopped: None,
            idle_limit,
            spawn_error: None,
            last_line: None,
            report: Report::default(),
            over_budget: None,
        }
    }

    fn hung(&self) -> bool {
        self.stopped == Some(Why::Idle)
    }

    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
            && self.report.failure.is_none()
            && !self.hung()
            && self.over_budget.is_none()
    }

    /// Stopped by a shutdown request, not for a fault of its own.
    pub fn cancelled(&self) -> bool {
        self.stopped == Some(Why::Shutdown)
    }

    /// How the phase ended, for people and `blocked_reason`.
    pub fn summary(&self, phase: &PhaseCommand) -> String {
        if let Some(e) = &self.spawn_error {
            return e.clone();
        }
        if self.hung() {
            let last = self
                .last_line
                .as_deref()
                .map(|l| format!(" (its last words: {l})"))
                .unwrap_or_default();
            return format!(
                "printed nothing for {}: the agent looked hung and was stopped{last}",
                crate::time::human_duration(self.idle_limit.unwrap_or_default().as_millis() as u64)
            );
        }
        if let Some(over) = &self.over_budget {
            return format!("over budget: {over}; the agent was stopped");
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

    /// Why the story failed at this phase, for `blocked_reason`.
    pub fn reason(&self, phase: &PhaseCommand, label: &str) -> String {
        let summary = self.summary(phase);
        if phase.kind == Kind::Setup {
            format!("setup failed: {summary}")
        } else if self.spawn_error.is_some() {
            summary
        } else if self.report.failure.is_some() || self.hung() || self.over_budget.is_some() {
            format!("phase {label}: {summary}")
        } else {
            format!("phase {label} {summary}")
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

/// `--max-budget-usd` for a CLI that keeps to a budget itself (Claude
/// Code): what is left of the story's, after what it spent before.
fn budget_flag(phase: &PhaseCommand, limits: &Limits, before: Spend) -> Vec<String> {
    match (phase.preset, phase.agent, limits.budget.usd) {
        (Preset::Claude, true, Some(max)) => vec![
            "--max-budget-usd".into(),
            format!("{:.4}", (max - before.usd).max(0.0)),
        ],
        _ => Vec::new(),
    }
}

fn start_agent(
    job: &Job,
    phase: &PhaseCommand,
    prompt: &str,
    extra: &[String],
) -> Result<Child, String> {
    let mut e = job
        .expand(&phase.name, &phase.argv, prompt)
        .map_err(|why| format!("cannot start phase {}: {why}", phase.name))?;
    e.argv.extend(extra.iter().cloned());
    if phase.agent && job.sandbox_fd.is_some() {
        phase.preset.inside_sandbox(&mut e.argv);
    }
    let (argv, used_prompt) = (&e.argv, e.used_prompt);
    let program = argv.first().ok_or("the agent command is empty")?;
    let mut cmd = Command::new(program);
    if phase.agent {
        // The agent's environment is built, not inherited (`sandbox`).
        let (env, _) = crate::sandbox::agent_env(
            phase.preset,
            &job.env_pass,
            &job.env_set,
            std::env::vars_os(),
        );
        cmd.env_clear().envs(env);
        cmd.envs(job.sandbox_env.iter().map(|(k, v)| (k, v)));
        if let Some(fd) = job.sandbox_fd {
            use std::os::unix::process::CommandExt;
            // SAFETY: between fork and exec, only system calls.
            unsafe {
                cmd.pre_exec(move || crate::sandbox::landlock::restrict_self(fd));
            }
        }
    }
    cmd.args(&argv[1..])
        .current_dir(&job.workdir)
        .envs(job.env(&phase.name))
        .envs(phase.preset.env().iter().copied())
        .envs(e.env.iter().map(|(k, v)| (*k, v)))
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

/// Feed one output item to `heard`; then, if the channel is empty, tell
/// the observer it may flush.
fn take_all(
    heard: &mut Heard,
    obs: &mut dyn Observer,
    first: (Stream, String),
    rx: &crossbeam_channel::Receiver<(Stream, String)>,
) {
    heard.take(obs, first);
    for item in rx.try_iter().take(1024) {
        heard.take(obs, item);
    }
    if rx.is_empty() {
        obs.idle();
    }
}

/// Start the phase's agent with its prompt on stdin (written from a
/// thread: an agent that never reads it must not block the run) and its
/// output read by two threads into one bounded channel.
fn launch(job: &Job, at: &At, extra: &[String], obs: &mut dyn Observer) -> Result<Agent, String> {
    let mut child = start_agent(job, at.phase, at.prompt, extra)?;
    obs.event(Event::PhaseStarted {
        index: at.index,
        count: job.phases.len(),
        name: at.label,
        pid: child.id(),
    });
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = at.prompt.to_string();
        // Dropping the handle closes stdin (EOF).
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
    Ok(Agent {
        child,
        output: rx,
        readers,
    })
}

/// A started agent: the process, its output lines, the threads that read them.
struct Agent {
    child: Child,
    output: crossbeam_channel::Receiver<(Stream, String)>,
    readers: Vec<thread::JoinHandle<()>>,
}

fn run_phase(
    job: &Job,
    at: &At,
    before: Spend,
    limits: &Limits,
    obs: &mut dyn Observer,
) -> PhaseEnd {
    let mut end = PhaseEnd::new(limits.idle);
    if let Some(words) = auth_problem(job, at.phase) {
        end.status = Some(ExitStatus::from_raw(1 << 8));
        end.report.failure = Some((FailureKind::Auth, words));
        return end;
    }
    let extra = budget_flag(at.phase, limits, before);
    let Agent {
        mut child,
        output: rx,
        mut readers,
    } = match launch(job, at, &extra, obs) {
        Ok(started) => started,
        Err(e) => {
            obs.event(Event::Problem {
                code: "spawn_failed",
                message: &e,
            });
            end.spawn_error = Some(e);
            return end;
        }
    };
    let mut heard = Heard {
        reader: at.phase.preset.reader(&job.workdir.to_string_lossy()),
        last_err: None,
        last_out: None,
        last_progress: Instant::now(),
        purse: Purse {
            before,
            budget: limits.budget,
            pricing: limits.pricing,
            told: before,
            told_at: Instant::now(),
            over: None,
        },
        hopeless: false,
    };
    let (status, stage, pipes_open) = watch(&mut child, &rx, &mut heard, limits, obs);
    // Whatever the agent left behind dies with the phase.
    signal_agents(libc::SIGKILL);
    if pipes_open && !drain(&rx, &mut heard, obs) {
        // Something outside our descendants holds the pipe; leave its reader behind.
        log::debug!(
            "[{}] agent pipes still open after exit; not waiting",
            job.id
        );
        readers.clear();
    }
    obs.idle();
    for r in readers {
        let _ = r.join();
    }
    end.status = Some(status);
    end.stopped = stage.why();
    end.report = heard.reader.report();
    end.last_line = heard.last_err.or(heard.last_out);
    if end.stopped == Some(Why::OverBudget) {
        let over = heard.purse.over.take().unwrap_or_default();
        end.report.failure = Some((FailureKind::OverBudget, format!("over budget: {over}")));
        end.over_budget = Some(over);
    }
    end
}

/// Follow the agent until it exits: pass on its output, stop it on a
/// shutdown or when it prints nothing for the idle limit (the staged stop
/// of `supervise`). Its exit status, the stage it ended in, and whether
/// its pipes are still open.
fn watch(
    child: &mut Child,
    rx: &crossbeam_channel::Receiver<(Stream, String)>,
    heard: &mut Heard,
    limits: &Limits,
    obs: &mut dyn Observer,
) -> (ExitStatus, Stage, bool) {
    let mut stage = Stage::Running;
    let mut pipes_open = true;
    let mut next_check = Instant::now();
    let status = loop {
        let now = Instant::now();
        if pipes_open {
            match rx.recv_timeout(next_check.saturating_duration_since(now)) {
                Ok(item) => {
                    take_all(heard, obs, item, rx);
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
        let hung = limits
            .idle
            .is_some_and(|d| now.saturating_duration_since(heard.last_progress) >= d);
        let over = heard.purse.over.is_some();
        let seen = Seen {
            now,
            shutdown: shutdown::state(),
            fault: hung
                .then_some(Why::Idle)
                .or(over.then_some(Why::OverBudget))
                .or(heard.hopeless.then_some(Why::Hopeless)),
        };
        let action;
        (stage, action) = supervise::next(stage, seen, limits.grace);
        match action {
            Some(Action::Terminate) => signal_agents(libc::SIGTERM),
            Some(Action::Kill) => signal_agents(libc::SIGKILL),
            None => {}
        }
    };
    (status, stage, pipes_open)
}

/// Read what is left in the agent's pipes, for at most two seconds: false
/// when they are still open then.
fn drain(
    rx: &crossbeam_channel::Receiver<(Stream, String)>,
    heard: &mut Heard,
    obs: &mut dyn Observer,
) -> bool {
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(item) => heard.take(obs, item),
            Err(RecvTimeoutError::Disconnected) => return true,
            Err(RecvTimeoutError::Timeout) => return false,
        }
    }
}

/// What a phase's output told so far.
struct Heard {
    reader: Box<dyn agent::Reader>,
    last_err: Option<String>,
    last_out: Option<String>,
    /// The last line that counted as a sign of life.
    last_progress: Instant,
    purse: Purse,
    /// The CLI met a failure its retries will not mend: stop it.
    hopeless: bool,
}

/// The story's spend while a phase runs, against its budget.
struct Purse {
    /// Spent before this phase (or attempt).
    before: Spend,
    budget: crate::governor::Budget,
    pricing: Option<crate::config::Pricing>,
    /// What the runner was last told, and when.
    told: Spend,
    told_at: Instant,
    /// Over budget: by how much ("$0.52 of $0.50").
    over: Option<String>,
}

/// The runner hears of a story's spend at most this often while it runs.
const SPENT_EVERY: Duration = Duration::from_secs(1);

impl Purse {
    /// After a line: is the story over its budget now? Tell the runner
    /// what it has spent, now and then.
    fn check(&mut self, reader: &dyn agent::Reader, obs: &mut dyn Observer) {
        let (cost, input, output) = reader.usage();
        if cost.is_none() && input.is_none() && output.is_none() {
            return;
        }
        let now = self.before + spend_of(cost, input, output, self.pricing).0;
        if self.over.is_none() {
            self.over = self.budget.over(now);
        }
        if now != self.told && self.told_at.elapsed() >= SPENT_EVERY {
            (self.told, self.told_at) = (now, Instant::now());
            obs.event(Event::Spent {
                usd: now.usd,
                tokens: now.tokens,
            });
        }
    }
}

impl Heard {
    fn take(&mut self, obs: &mut dyn Observer, (stream, line): (Stream, String)) {
        let seen = self.reader.line(stream == Stream::Stderr, &line);
        if seen.progress {
            self.last_progress = Instant::now();
        }
        self.hopeless |= seen.hopeless;
        if seen.retrying
            && let Some(words) = seen.show.as_deref()
        {
            obs.event(Event::Problem {
                code: "cli_retry",
                message: words,
            });
        }
        if let Some(kind) = seen.limited {
            let not_before = (kind == FailureKind::UsageCap)
                .then(|| self.reader.report().resets_at.map(|s| s * 1000))
                .flatten();
            obs.event(Event::Limited {
                kind,
                words: seen
                    .show
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .unwrap_or(&line),
                not_before,
            });
        }
        let shown_line = agent::cut(&line, MAX_SHOWN_LINE);
        obs.event(Event::Output {
            stream,
            line: &shown_line,
            show: seen.show.as_deref(),
        });
        self.purse.check(self.reader.as_ref(), obs);
        // What people saw of it: the step a structured line stood for,
        // never its raw JSON; a line that stood for nothing is not kept.
        let said = match seen.show.as_deref() {
            Some(s) => s.trim(),
            None => line.trim(),
        };
        if !said.is_empty() {
            let slot = if stream == Stream::Stderr {
                &mut self.last_err
            } else {
                &mut self.last_out
            };
            *slot = Some(agent::cut(said, 200));
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
