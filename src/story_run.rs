//! Run one story's phases as agent processes (SPEC §5) and report `Event`s
//! to an observer. Knows nothing of IPC or terminals: the single-story mode
//! plugs in the console, the executor plugs in the IPC writer.

use crate::ipc::{Line, LineReader, MAX_LINE, Stream};
use crate::process;
use crate::shutdown::{self, State};
use crossbeam_channel::{RecvTimeoutError, bounded};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

/// How often a running phase checks for a stop or the deadline, and the
/// longest a supervisor waits between reaping attempts of an exiting child.
pub const TICK: Duration = Duration::from_millis(50);

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
    /// The full text of `story.md`.
    pub prompt: String,
}

#[derive(Debug, Clone)]
pub struct PhaseCommand {
    pub name: String,
    pub argv: Vec<String>,
}

impl Job {
    /// `argv` with `{id}`, `{title}`, ... replaced, and whether `{prompt}` was used.
    pub fn expand(&self, phase: &str, argv: &[String]) -> (Vec<String>, bool) {
        let story_file = self.story_file.to_string_lossy();
        let worktree = self.workdir.to_string_lossy();
        let values: [(&str, &str); 8] = [
            ("{id}", &self.id),
            ("{title}", &self.title),
            ("{slug}", &self.slug),
            ("{phase}", phase),
            ("{story_file}", &story_file),
            ("{worktree}", &worktree),
            ("{branch}", &self.branch),
            ("{prompt}", &self.prompt),
        ];
        let mut used_prompt = false;
        let out = argv
            .iter()
            .map(|arg| {
                let mut a = arg.clone();
                for (k, v) in values {
                    if a.contains(k) {
                        used_prompt |= k == "{prompt}";
                        a = a.replace(k, v);
                    }
                }
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
        ])
    }
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub deadline: Option<Instant>,
    /// SIGTERM to SIGKILL.
    pub grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
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
    },
    PhaseFinished {
        index: usize,
        count: usize,
        name: &'a str,
        /// "succeeded", "exited with code 3: <last error line>", "timed out after 30.0s"...
        summary: &'a str,
    },
    /// Something went wrong that is not the agent's own output.
    Problem {
        code: &'a str,
        message: &'a str,
    },
}

pub trait Observer {
    fn event(&mut self, e: Event);
    /// No output is waiting: a moment to flush.
    fn idle(&mut self) {}
}

#[derive(Debug, Clone)]
pub struct RunResult {
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub failed_phase: Option<String>,
    pub duration_ms: u64,
    /// Why it failed, for `blocked_reason`: phase, exit code or signal, last error line.
    pub error: Option<String>,
}

impl RunResult {
    /// A run that failed before or outside its phases.
    pub fn failed(error: String, duration_ms: u64) -> RunResult {
        RunResult {
            outcome: Outcome::Failed,
            exit_code: None,
            signal: None,
            failed_phase: None,
            duration_ms,
            error: Some(error),
        }
    }
}

/// Run every phase of `job` in order. Stops early on a failing phase, the
/// deadline, or a shutdown request (`shutdown::state()`).
pub fn run(job: &Job, limits: &Limits, obs: &mut dyn Observer) -> RunResult {
    let started = Instant::now();
    let count = job.phases.len();
    let mut result = RunResult {
        outcome: Outcome::Succeeded,
        exit_code: Some(0),
        signal: None,
        failed_phase: None,
        duration_ms: 0,
        error: None,
    };
    for (index, phase) in job.phases.iter().enumerate() {
        if shutdown::stopping() {
            result.outcome = Outcome::Cancelled;
            result.exit_code = None;
            result.error = Some("run interrupted".into());
            break;
        }
        let end = run_phase(job, index, count, phase, limits, obs);
        let summary = end.summary(limits, started);
        obs.event(Event::PhaseFinished {
            index,
            count,
            name: &phase.name,
            summary: &summary,
        });
        result.exit_code = end.status.and_then(|s| s.code());
        result.signal = end
            .status
            .and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
        let ok = end.status.is_some_and(|s| s.success());
        result.outcome = if end.timed_out {
            Outcome::TimedOut
        } else if end.stopped && !ok {
            Outcome::Cancelled
        } else if !ok {
            Outcome::Failed
        } else {
            continue;
        };
        result.failed_phase = Some(phase.name.clone());
        result.error = Some(if end.spawn_error.is_some() {
            summary
        } else if end.timed_out {
            format!("{summary} (phase {})", phase.name)
        } else {
            format!("phase {} {summary}", phase.name)
        });
        break;
    }
    result.duration_ms = started.elapsed().as_millis() as u64;
    result
}

struct PhaseEnd {
    /// `None` when the agent could not be started.
    status: Option<ExitStatus>,
    timed_out: bool,
    stopped: bool,
    spawn_error: Option<String>,
    last_line: Option<String>,
}

impl PhaseEnd {
    fn summary(&self, limits: &Limits, started: Instant) -> String {
        if let Some(e) = &self.spawn_error {
            return e.clone();
        }
        let how = if self.timed_out {
            let limit = limits
                .deadline
                .map(|d| d.saturating_duration_since(started))
                .unwrap_or_default();
            format!(
                "timed out after {}",
                crate::time::human_duration(limit.as_millis() as u64)
            )
        } else {
            match self.status {
                Some(s) if s.success() => return "succeeded".to_string(),
                Some(s) => process::exit_text(s),
                None => "did not run".to_string(),
            }
        };
        match &self.last_line {
            Some(l) if !self.timed_out => format!("{how}: {l}"),
            _ => how,
        }
    }
}

fn cut(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
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
                if tx.send((stream, line)).is_err() {
                    return;
                }
            }
        })
}

fn start_agent(job: &Job, phase: &PhaseCommand) -> Result<Child, String> {
    let (argv, used_prompt) = job.expand(&phase.name, &phase.argv);
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
            "cannot start phase {}: command {program:?} not found (run from {}); check agent.command or the phase's command in .ai-sdlc.json",
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

fn run_phase(
    job: &Job,
    index: usize,
    count: usize,
    phase: &PhaseCommand,
    limits: &Limits,
    obs: &mut dyn Observer,
) -> PhaseEnd {
    let mut end = PhaseEnd {
        status: None,
        timed_out: false,
        stopped: false,
        spawn_error: None,
        last_line: None,
    };
    let mut child = match start_agent(job, phase) {
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
        name: &phase.name,
        pid: child.id(),
    });
    if let Some(mut stdin) = child.stdin.take() {
        let prompt = job.prompt.clone();
        // An agent that never reads its stdin must not block the run: write from a thread.
        let _ = thread::Builder::new()
            .name("agent-stdin".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = stdin.write_all(prompt.as_bytes());
            });
    }
    let (tx, rx) = bounded(4096);
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.extend(spawn_reader(Stream::Stdout, out, tx.clone()).ok());
    }
    if let Some(err) = child.stderr.take() {
        readers.extend(spawn_reader(Stream::Stderr, err, tx.clone()).ok());
    }
    drop(tx);
    let mut last_err: Option<String> = None;
    let mut last_out: Option<String> = None;
    let mut on_line = |obs: &mut dyn Observer, (stream, line): (Stream, String)| {
        obs.event(Event::Output {
            stream,
            line: &line,
        });
        if !line.trim().is_empty() {
            let slot = if stream == Stream::Stderr {
                &mut last_err
            } else {
                &mut last_out
            };
            *slot = Some(line);
        }
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
                    on_line(obs, item);
                    for item in rx.try_iter().take(1024) {
                        on_line(obs, item);
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
                break std::os::unix::process::ExitStatusExt::from_raw(255 << 8);
            }
        }
        let now = Instant::now();
        let state = shutdown::state();
        let overdue = limits.deadline.is_some_and(|d| now >= d);
        if (state != State::Running || overdue) && kill_at.is_none() {
            end.timed_out = overdue && state == State::Running;
            end.stopped = !end.timed_out;
            signal_agents(libc::SIGTERM);
            kill_at = Some(now + limits.grace);
        }
        if !killed && (state == State::Forced || kill_at.is_some_and(|k| now >= k)) {
            signal_agents(libc::SIGKILL);
            killed = true;
        }
    };
    // Whatever the agent left behind in its group dies with the phase.
    signal_agents(libc::SIGKILL);
    let drain_until = Instant::now() + Duration::from_secs(2);
    while pipes_open {
        match rx.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
            Ok(item) => on_line(obs, item),
            Err(RecvTimeoutError::Disconnected) => pipes_open = false,
            Err(RecvTimeoutError::Timeout) => {
                // Something outside the group holds the pipe; leave its reader behind.
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
    end.last_line = last_err.or(last_out).map(|l| cut(l.trim(), 200));
    end
}
