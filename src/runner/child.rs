//! One `agent-executor` child: spawn it (through its launcher) in its own
//! process group, read its JSON lines on a thread, health-check it, stop it
//! at the time limit or on shutdown (the staged stop of `supervise`), reap
//! it, and sweep its group (DESIGN.md, "Child processes: the rules"). Only
//! this worker thread signals the child.

use super::Ctx;
use super::record::Recorder;
use crate::agent;
use crate::cli::ExecutorArgs;
use crate::ipc::{self, Body, Line, LineReader, MAX_LINE, Message};
use crate::logs::{self, RunLog};
use crate::process;
use crate::report::{Note, Notes};
use crate::shutdown;
use crate::story::{self, Job, Outcome, RunResult};
use crate::supervise::{self, Action, Seen, Stage, Why};
use crossbeam_channel::{Receiver, bounded};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, ChildStdout, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

/// The dashboard needs the latest line, not every line.
const OUTPUT_NOTE_EVERY: Duration = Duration::from_millis(100);

/// What the reader thread learned from the child.
struct Heard {
    /// Milliseconds after `start` of the last health response.
    last_health_ms: AtomicU64,
    /// Milliseconds after `start` the executor said it started, plus one
    /// (0: not yet; under a launcher it may wait in a queue).
    started_ms: AtomicU64,
    /// The Slurm step it runs in.
    slurm_step: Mutex<Option<(String, String)>>,
    /// Why the executor cannot work where it runs (another node that does
    /// not see the worktree).
    misplaced: Mutex<Option<String>>,
    /// The worktree as the runner sees it: `st_dev`, `st_ino`.
    here: (u64, u64),
    complete: Mutex<Option<Body>>,
    start: Instant,
}

impl Heard {
    fn new(start: Instant, workdir: &std::path::Path) -> Heard {
        let here = std::fs::metadata(workdir)
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            })
            .unwrap_or((0, 0));
        Heard {
            last_health_ms: AtomicU64::new(0),
            started_ms: AtomicU64::new(0),
            slurm_step: Mutex::new(None),
            misplaced: Mutex::new(None),
            here,
            complete: Mutex::new(None),
            start,
        }
    }

    fn misplaced(&self) -> bool {
        self.misplaced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// When the executor said it started (`None`: not yet).
    fn started_at(&self) -> Option<Instant> {
        match self.started_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.start + Duration::from_millis(ms - 1)),
        }
    }
}

/// Run the story's executor to its end: spawn, supervise, reap, judge.
pub fn run(
    ctx: &Ctx,
    job: &Job,
    log: &Arc<Mutex<RunLog>>,
    recorder: &Arc<Recorder>,
    worktree: Option<String>,
) -> RunResult {
    let started = Instant::now();
    let mut child = match spawn(ctx, job, log) {
        Ok(c) => c,
        Err(e) => return RunResult::failed(e, started.elapsed().as_millis() as u64),
    };
    let pgid = child.id();
    let mut stdin = take_stdin(&mut child);
    let heard = Arc::new(Heard::new(started, &job.workdir));
    let closed = start_reader(ctx, job, log, recorder, &heard, &mut child);
    announce(ctx, job, log, pgid, worktree);
    let watch = Watch {
        ctx,
        job,
        heard: &heard,
        log,
        pgid,
    };
    let sup = watch.supervise(&mut child, &mut stdin, &closed);
    // After reaping: sweep anything the story left behind in its group.
    process::signal_group(pgid, libc::SIGKILL);
    drop(stdin);
    if !matches!(
        closed.recv_timeout(Duration::from_secs(2)),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected)
    ) {
        log::debug!(
            "[{}] executor output still open after exit; not waiting",
            job.id
        );
    }
    let complete = heard
        .complete
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let mut r = judge(&sup, complete, started, ctx.settings.timeout);
    if let Some(why) = heard
        .misplaced
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        r.outcome = Outcome::Failed;
        r.error = Some(why);
    } else if r.outcome == Outcome::Failed
        && !ctx.launch.is_local()
        && let Some(reason) = ctx.launch.failure_words(&log_tail(log))
    {
        // What the launcher (Slurm) said about a step it ended.
        r.error = Some(match r.error.take() {
            Some(e) => format!("{e}; Slurm: {reason}"),
            None => format!("Slurm: {reason}"),
        });
    }
    r
}

/// The last 8 KiB of the story's log (which may be huge: never read whole).
fn log_tail(log: &Mutex<RunLog>) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let path = logs::lock(log).path.clone();
    let mut tail = Vec::new();
    let read = std::fs::File::open(&path).and_then(|mut f| {
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(8192)))?;
        f.take(8192).read_to_end(&mut tail)
    });
    match read {
        Ok(_) => String::from_utf8_lossy(&tail).into_owned(),
        Err(_) => String::new(),
    }
}

/// Start the executor: `[launcher...] <this binary> -C <repo>
/// agent-executor ... -- <ID>`, in a new process group, its stderr the
/// story's log.
fn spawn(ctx: &Ctx, job: &Job, log: &Mutex<RunLog>) -> Result<Child, String> {
    // Locally, the very binary that runs (even when an upgrade replaced
    // its file mid-run); a launcher on another machine needs its path.
    let self_exe = std::path::Path::new("/proc/self/exe");
    let exe = if ctx.launch.is_local() && self_exe.exists() {
        self_exe.to_path_buf()
    } else {
        std::env::current_exe()
            .map_err(|e| format!("cannot find the ai-sdlc binary to start the executor: {e}"))?
    };
    let stderr = match logs::lock(log).file() {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::inherit(),
    };
    let args = ExecutorArgs {
        id: job.id.clone(),
        worktree: job.workdir.clone(),
        branch: job.branch.clone(),
        base: Some(job.facts.base_branch.clone()),
        grace_ms: Some(ctx.settings.grace.as_millis() as u64),
        workflow: job
            .part
            .workflow
            .clone()
            .or_else(|| ctx.settings.workflow.clone()),
        commands: Some(match &job.part.workflow {
            // The runner's own workflow (the judge): the commands its
            // config names.
            Some(w) => {
                let mut c = ctx.config.clone();
                c.use_workflow(w)?;
                crate::trust::fingerprint(&crate::trust::commands(&c))
            }
            None => ctx.settings.commands.clone(),
        }),
        setup: job.has_setup,
        budget_usd: job.part.budget.unwrap_or(ctx.settings.story_budget).usd,
        budget_tokens: job.part.budget.unwrap_or(ctx.settings.story_budget).tokens,
        git_dir: ctx.guard.as_ref().map(|g| g.git_dir().to_path_buf()),
        only: (!job.part.only.is_empty()).then(|| job.part.only.join(",")),
        attempt: job.part.attempt,
        agent: job.part.agent.map(|p| p.name().to_string()),
    };
    let launcher = match ctx.launch.prefix() {
        Some(prefix) => Some(job.expand("launcher", prefix, "")?),
        None => None,
    };
    let prefix = launcher.as_ref().map(|e| e.argv.as_slice());
    let mut cmd = ctx
        .launch
        .command(&exe, &args.to_argv(&ctx.config.root), prefix);
    if exe == self_exe
        && let Ok(named) = std::env::current_exe()
    {
        // `ps` shows the binary's name, not /proc/self/exe.
        std::os::unix::process::CommandExt::arg0(&mut cmd, named);
    }
    if let Some(e) = &launcher {
        cmd.envs(e.env.iter().map(|(k, v)| (*k, v)));
    }
    cmd.current_dir(&job.workdir)
        .env("AI_SDLC_STORY_ID", &job.id)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    // No pre_exec hook, so std can posix_spawn (a fork of this multi-threaded
    // runner costs copy-on-write faults in every thread): the executor sets
    // its PDEATHSIG itself and checks it still has this parent. It is
    // spawned from this worker thread, which lives until it is reaped.
    if ctx.launch.is_local() {
        cmd.env(process::RUNNER_PID_VAR, std::process::id().to_string());
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start the executor: {e}"))
}

/// The child's stdin, for our messages. wait_timeout drops `child.stdin` on
/// every call, so it is taken out. Never wait on an executor that stops
/// reading (SIGSTOP, a bug): our messages are a few dozen bytes, so a
/// pipe write is all or nothing, and one that does not fit is skipped (a
/// missed health check).
fn take_stdin(child: &mut Child) -> Option<ChildStdin> {
    let stdin = child.stdin.take();
    if let Some(s) = &stdin {
        use std::os::fd::AsRawFd;
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            let flags = libc::fcntl(s.as_raw_fd(), libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(s.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
    }
    stdin
}

/// Read the child's messages on a thread. The receiver disconnects when
/// the child closes its stdout.
fn start_reader(
    ctx: &Ctx,
    job: &Job,
    log: &Arc<Mutex<RunLog>>,
    recorder: &Arc<Recorder>,
    heard: &Arc<Heard>,
    child: &mut Child,
) -> Receiver<()> {
    let (done_tx, done_rx) = bounded::<()>(1);
    let Some(out) = child.stdout.take() else {
        return done_rx;
    };
    let (heard, log, notes, id, recorder) = (
        Arc::clone(heard),
        Arc::clone(log),
        ctx.notes.clone(),
        job.id.clone(),
        Arc::clone(recorder),
    );
    let (key, attempt, agent) = (job.part.key(&job.id), job.part.attempt, job.part.agent);
    let every_line = ctx.settings.single_story();
    let launched = !ctx.launch.is_local();
    let gov = Arc::clone(&ctx.gov);
    let spawned = std::thread::Builder::new()
        .name(format!("ipc-{id}"))
        .stack_size(128 * 1024)
        .spawn(move || {
            let to = To {
                id: &id,
                key: &key,
                attempt,
                agent,
                heard: &heard,
                log: &log,
                notes: &notes,
                recorder: &recorder,
                launched,
                gov: &gov,
            };
            read_child(out, &to, every_line);
            drop(done_tx);
        });
    if let Err(e) = spawned {
        log::warn!("[{}] cannot start its reader: {e}", job.id);
    }
    done_rx
}

/// Say that the executor started: in the log, to the reporter.
fn announce(ctx: &Ctx, job: &Job, log: &Mutex<RunLog>, pgid: u32, worktree: Option<String>) {
    let launched = !ctx.launch.is_local();
    logs::lock(log).note(&format!(
        "executor started, pid {pgid}{}",
        if launched { " (the launcher's)" } else { "" }
    ));
    ctx.notes.send(Note::Started {
        id: job.part.key(&job.id),
        title: job.title.clone(),
        pid: Some(pgid),
        worktree,
        branch: Some(job.branch.clone()).filter(|b| !b.is_empty()),
    });
    if launched {
        ctx.notes.send(Note::Phase {
            id: job.part.key(&job.id),
            name: "queued on cluster".into(),
            index: 0,
            count: 0,
            message: "waiting for the launcher to start it".into(),
        });
    }
}

/// How the executor ended, and why it was stopped if it was.
struct Supervised {
    status: Option<ExitStatus>,
    stopped: Option<Why>,
}

/// Health checks (SPEC §6): one each interval; a child that answered none
/// for `misses` intervals is unresponsive until it answers again.
struct Health {
    interval: Duration,
    misses: u32,
    next: Instant,
    sent: u64,
    unresponsive: bool,
}

/// What changed about a child's health.
#[derive(Debug, PartialEq)]
enum HealthNews {
    Unresponsive(Duration),
    Responsive,
}

impl Health {
    fn new(interval: Duration, misses: u32, now: Instant) -> Health {
        Health {
            interval,
            misses,
            next: now + interval,
            sent: 0,
            unresponsive: false,
        }
    }

    /// Is a check due at `now`? `ask`: the child is there to be asked (not
    /// queued, not stopping). A due check that is not asked is skipped.
    fn due(&mut self, now: Instant, ask: bool) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.interval;
        if ask {
            self.sent += 1;
        }
        ask
    }

    /// After a check: `last` is when the child last answered (or started).
    fn judge(&mut self, now: Instant, last: Instant) -> Option<HealthNews> {
        let silent = now.saturating_duration_since(last);
        let limit = self.interval * self.misses;
        if self.sent > u64::from(self.misses) && silent > limit && !self.unresponsive {
            self.unresponsive = true;
            return Some(HealthNews::Unresponsive(silent));
        }
        if self.unresponsive && silent <= limit {
            self.unresponsive = false;
            return Some(HealthNews::Responsive);
        }
        None
    }
}

/// Send a message to the child; a full pipe skips it, a gone child closes it.
fn send(stdin: &mut Option<ChildStdin>, id: &str, body: Body) {
    if let Some(w) = stdin.as_mut() {
        match ipc::write_message(w, &Message::new(id, body)) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // A child that is gone makes this fail: that is for the exit status to tell.
            Err(_) => *stdin = None,
            Ok(()) => {}
        }
    }
}

/// The worker's hold on one running executor.
struct Watch<'a> {
    ctx: &'a Ctx,
    job: &'a Job,
    heard: &'a Heard,
    log: &'a Mutex<RunLog>,
    pgid: u32,
}

impl Watch<'_> {
    /// Carry out what the staged stop asks of the executor.
    fn act(&self, action: Action, why: Why, stdin: &mut Option<ChildStdin>) {
        let (pgid, log) = (self.pgid, self.log);
        match action {
            Action::Terminate => {
                let grace_ms = self.ctx.settings.grace.as_millis() as u64;
                send(stdin, &self.job.id, Body::Shutdown { grace_ms });
                if self.ctx.launch.signals_to_stop() {
                    logs::lock(log).note(&format!(
                        "{}: SIGTERM to the executor's group {pgid}",
                        why.describe()
                    ));
                    process::signal_group(pgid, libc::SIGTERM);
                } else {
                    // The executor stops its agents on the message; the
                    // launcher goes only if it has not after the grace.
                    logs::lock(log).note(&format!(
                        "{}: shutdown message to the executor",
                        why.describe()
                    ));
                }
            }
            Action::Kill => {
                logs::lock(log).note(&format!("SIGKILL to the executor's group {pgid}"));
                self.ctx.notes.send(Note::Info {
                    id: Some(self.job.part.key(&self.job.id)),
                    text: "did not stop in time: SIGKILL".into(),
                });
                let step = self
                    .heard
                    .slurm_step
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                self.ctx.launch.kill(pgid, step.as_ref());
            }
        }
    }

    /// The deadline of the story's time limit: from the executor's start
    /// (under a launcher it may wait in a queue first, and that is not
    /// its time); `None` while it has not started.
    fn deadline(&self) -> Option<Instant> {
        let timeout = self.ctx.settings.timeout;
        match self.heard.started_at() {
            Some(t) => Some(t + timeout),
            None if self.ctx.launch.queues() => None,
            None => Some(self.heard.start + timeout),
        }
    }

    /// A health check, when one is due; what changed goes to the log and
    /// the reporter.
    fn check_health(&self, health: &mut Health, stage: Stage, stdin: &mut Option<ChildStdin>) {
        let now = Instant::now();
        let started = self.heard.started_at();
        let there = stage == Stage::Running && (started.is_some() || !self.ctx.launch.queues());
        if !health.due(now, there) {
            return;
        }
        send(stdin, &self.job.id, Body::HealthCheck);
        let answered = self.heard.start
            + Duration::from_millis(self.heard.last_health_ms.load(Ordering::Relaxed));
        let last = started.map_or(answered, |s| answered.max(s));
        let (text, warn) = match health.judge(now, last) {
            None => return,
            Some(HealthNews::Unresponsive(silent)) => (
                format!(
                    "unresponsive: no health response for {}",
                    crate::time::human_duration(silent.as_millis() as u64)
                ),
                true,
            ),
            Some(HealthNews::Responsive) => ("responsive again".to_string(), false),
        };
        logs::lock(self.log).note(&text);
        let id = Some(self.job.part.key(&self.job.id));
        self.ctx.notes.send(if warn {
            Note::Warn { id, text }
        } else {
            Note::Info { id, text }
        });
    }

    /// Wait for the child to exit while enforcing the shutdown, the time
    /// limit and health checks. Sleeps until something happens: the child
    /// closes its stdout (it is exiting), a stop or force is requested, or
    /// the next deadline or health check is due; no polling while
    /// children just work.
    fn supervise(
        &self,
        child: &mut Child,
        stdin: &mut Option<ChildStdin>,
        closed: &Receiver<()>,
    ) -> Supervised {
        let grace = self.ctx.launch.grace(self.ctx.settings.grace);
        let mut health = Health::new(
            self.ctx.settings.health_interval,
            self.ctx.settings.health_misses,
            Instant::now(),
        );
        let mut stage = Stage::Running;
        let (mut on_stop, mut on_force) = (shutdown::on_stop(), shutdown::on_force());
        let mut output_open = true;
        let far = Instant::now() + Duration::from_secs(3600 * 24 * 365);
        let ended = |status, stage: Stage| Supervised {
            status,
            stopped: stage.why(),
        };
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return ended(Some(st), stage),
                Ok(None) => {}
                Err(e) => {
                    // Never spin on a child we cannot wait for.
                    logs::lock(self.log).note(&format!("cannot wait for the executor: {e}"));
                    return ended(None, stage);
                }
            }
            let now = Instant::now();
            let deadline = self.deadline().unwrap_or(far);
            let fault = if self.heard.misplaced() {
                Some(Why::Misplaced)
            } else {
                (now >= deadline).then_some(Why::TimeLimit)
            };
            let seen = Seen {
                now,
                shutdown: shutdown::state(),
                fault,
            };
            let (next, action) = supervise::next(stage, seen, grace);
            stage = next;
            if let (Some(a), Some(why)) = (action, stage.why()) {
                self.act(a, why, stdin);
            }
            self.check_health(&mut health, stage, stdin);
            let mut wake_at = health.next.min(deadline);
            if let Some(k) = stage.due() {
                wake_at = wake_at.min(k);
            }
            let wait = wake_at.saturating_duration_since(Instant::now());
            if !output_open || matches!(stage, Stage::Killed { .. }) {
                // It closed its stdout, or was killed: its exit is moments away.
                if let Ok(Some(st)) = child.wait_timeout(wait.min(story::TICK)) {
                    return ended(Some(st), stage);
                }
                continue;
            }
            crossbeam_channel::select! {
                recv(closed) -> _ => output_open = false,
                recv(on_stop) -> _ => on_stop = crossbeam_channel::never(),
                recv(on_force) -> _ => on_force = crossbeam_channel::never(),
                default(wait) => {}
            }
        }
    }
}

/// The story's result from how its executor ended and what it reported.
fn judge(
    sup: &Supervised,
    complete: Option<Body>,
    started: Instant,
    timeout: Duration,
) -> RunResult {
    let status = sup.status;
    let mut r = RunResult {
        outcome: Outcome::Failed,
        exit_code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        duration_ms: started.elapsed().as_millis() as u64,
        ..RunResult::default()
    };
    let exited_cleanly = status.is_some_and(|s| s.success());
    match complete {
        Some(Body::Complete {
            success,
            exit_code,
            failed_phase,
            signal,
            error,
            failure,
            final_message,
            cost_usd,
            input_tokens,
            output_tokens,
            not_before,
            ..
        }) => {
            r.not_before = not_before;
            r.report = agent::Report {
                final_message,
                input_tokens,
                output_tokens,
                cost_usd,
                ..agent::Report::default()
            };
            r.failure = failure.as_deref().and_then(agent::FailureKind::parse);
            // Anything can write to the executor's stdout (an agent that
            // finds it): success counts only from an executor that then
            // exited cleanly by itself.
            if success && exited_cleanly && sup.stopped.is_none() {
                r.outcome = Outcome::Succeeded;
                r.exit_code = Some(0);
                r.signal = None;
                return r;
            }
            if success {
                r.error = Some(match status {
                    Some(s) => format!(
                        "the executor reported success, then {}",
                        process::exit_text(s)
                    ),
                    None => "the executor reported success but could not be waited for".into(),
                });
            } else {
                r.exit_code = exit_code;
                r.signal = signal;
                r.failed_phase = failed_phase;
                r.error = error;
            }
        }
        _ => {
            r.error = Some(match status {
                Some(s) => format!(
                    "the executor {} before reporting completion",
                    process::exit_text(s)
                ),
                None => "the executor could not be waited for".into(),
            });
        }
    }
    match sup.stopped {
        Some(Why::TimeLimit) => {
            r.outcome = Outcome::TimedOut;
            r.error = Some(format!(
                "timed out after {}",
                crate::time::human_duration(timeout.as_millis() as u64)
            ));
        }
        Some(Why::Shutdown) => {
            r.outcome = Outcome::Cancelled;
            r.error = Some("run interrupted".into());
        }
        _ => {}
    }
    r
}

/// Where what the executor reports goes.
struct To<'a> {
    id: &'a str,
    /// What the governor counts this executor's spend under.
    key: &'a str,
    /// The attempt and its own agent, for the spend ledger.
    attempt: Option<u32>,
    agent: Option<crate::agent::Preset>,
    heard: &'a Heard,
    log: &'a Mutex<RunLog>,
    notes: &'a Notes,
    /// The board: phase outputs, flags.
    recorder: &'a Recorder,
    /// Started through a launcher: where it runs is news.
    launched: bool,
    /// The run's limits, told of rate limits, caps and spend as they come.
    gov: &'a super::Gov,
}

/// Put what the executor reported into the story's log and tell the
/// reporter. Returns the agent's output line, for the caller to pass on as
/// it sees fit.
fn record(to: &To, body: Body) -> Option<String> {
    // People see a part of a story (an attempt) by its own key: `S-0001#2`.
    let (id, notes, heard) = (to.key, to.notes, to.heard);
    let mut log = logs::lock(to.log);
    match body {
        Body::PhaseResult(r) => {
            if let Err(e) = to.gov.record_spend(to.id, (to.attempt, to.agent), &r) {
                log.note(&format!("the spend ledger: {e}"));
                log::warn!("[{id}] {e}");
            }
            to.recorder.phase(r, &mut log)
        }
        Body::Log { stream, line, show } => {
            log.line(stream.as_str(), &line);
            // The agent's step stands for a structured line; "" for nothing.
            return match show {
                Some(s) if s.is_empty() => None,
                Some(s) => Some(s),
                None => Some(line),
            };
        }
        Body::Status {
            phase,
            phase_index,
            phase_count,
            message,
            ..
        } => {
            log.note(&format!(
                "phase {}/{phase_count} {phase}: {message}",
                phase_index + 1
            ));
            notes.send(Note::Phase {
                id: id.to_string(),
                name: phase,
                index: phase_index,
                count: phase_count,
                message,
            });
        }
        Body::Error { code, message, .. } => {
            log.note(&format!("error {code}: {message}"));
            notes.send(Note::Warn {
                id: Some(id.to_string()),
                text: message,
            });
        }
        Body::Started {
            host,
            slurm_job_id,
            slurm_step_id,
            dev,
            ino,
            ..
        } => {
            heard.started_ms.store(
                heard.start.elapsed().as_millis() as u64 + 1,
                Ordering::Relaxed,
            );
            let step = slurm_job_id.map(|j| (j, slurm_step_id.unwrap_or_else(|| "0".into())));
            let place = match &step {
                Some((j, s)) => format!("on {host}, Slurm step {j}.{s}"),
                None => format!("on {host}"),
            };
            log.note(&format!("executor running {place}"));
            *heard.slurm_step.lock().unwrap_or_else(|p| p.into_inner()) = step;
            if heard.here != (0, 0) && (dev, ino) != heard.here {
                let why = format!(
                    "the executor on {host} does not see the worktree the runner made (another folder, or none, at that path): the repo, its worktrees and the board must be on a filesystem every node mounts at the same path"
                );
                log.note(&why);
                *heard.misplaced.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
            }
            if to.launched {
                notes.send(Note::Phase {
                    id: id.to_string(),
                    name: "starting".into(),
                    index: 0,
                    count: 0,
                    message: format!("running {place}"),
                });
            }
        }
        Body::HealthResponse { .. } => {
            heard
                .last_health_ms
                .store(heard.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        body @ Body::Complete { .. } => {
            *heard.complete.lock().unwrap_or_else(|p| p.into_inner()) = Some(body);
        }
        body @ (Body::Limited { .. } | Body::Spent { .. }) => {
            drop(log);
            governed(to, body);
        }
        Body::HealthCheck | Body::Shutdown { .. } => {
            log.line("runner", "ignored a runner-bound message from the executor");
        }
    }
    None
}

/// What the governor hears as a story runs: its agent's rate limits and
/// caps, its spend.
fn governed(to: &To, body: Body) {
    match body {
        Body::Limited {
            kind,
            message,
            not_before,
        } => {
            logs::lock(to.log).note(&format!("limited ({kind}): {message}"));
            match agent::FailureKind::parse(&kind) {
                Some(agent::FailureKind::UsageCap) => to.gov.capped(not_before),
                Some(agent::FailureKind::RateLimit | agent::FailureKind::Overloaded) => {
                    to.gov.rate_limited(to.notes, to.id, &message)
                }
                _ => {}
            }
        }
        Body::Spent { usd, tokens } => {
            let spent = crate::governor::Spend { usd, tokens };
            to.gov.spent(to.notes, to.key, spent);
        }
        _ => {}
    }
}

/// Reads the executor's messages. The reporter gets the agent's output
/// lines at most every `OUTPUT_NOTE_EVERY`, or `every_line` (the
/// single-story mode streams them).
fn read_child(out: ChildStdout, to: &To, every_line: bool) {
    let (id, log, notes) = (to.key, to.log, to.notes);
    let mut reader = LineReader::new(out, MAX_LINE);
    let mut bad = 0u64;
    let mut pending_output: Option<String> = None;
    let mut last_note = Instant::now() - OUTPUT_NOTE_EVERY;
    loop {
        let item = match reader.next_line() {
            Ok(Some(Line::Full(b))) => ipc::decode(b),
            Ok(Some(Line::Cut(_))) => Err("a line cut off by the end of the stream".to_string()),
            Ok(Some(Line::TooLong(n))) => Err(format!("a {n}-byte line, over the 1 MiB limit")),
            Ok(None) | Err(_) => break,
        };
        match item {
            Ok(msg) => {
                if let Some(line) = record(to, msg.body) {
                    if every_line {
                        notes.send(Note::Output {
                            id: id.to_string(),
                            line,
                        });
                    } else {
                        pending_output = Some(line);
                    }
                }
            }
            Err(why) => {
                bad += 1;
                logs::lock(log).line("runner", &format!("ignored an IPC line: {why}"));
                if bad <= 3 {
                    log::warn!("[{id}] ignored a line from the executor: {why}");
                }
            }
        }
        let quiet = !reader.has_buffered();
        if pending_output.is_some() && (quiet || last_note.elapsed() >= OUTPUT_NOTE_EVERY) {
            last_note = Instant::now();
            if let Some(line) = pending_output.take() {
                notes.send(Note::Output {
                    id: id.to_string(),
                    line,
                });
            }
        }
        if quiet {
            logs::lock(log).flush();
        }
    }
    if bad > 3 {
        log::warn!("[{id}] ignored {bad} bad lines from the executor in all; see its log");
    }
    logs::lock(log).flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_unresponsive_after_missed_checks_and_responsive_when_it_answers() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut h = Health::new(s(1), 2, t);
        assert!(!h.due(t, true), "not before the first interval");
        // Checks sent at 1, 2 and 3 s; the child last answered at 0.
        for i in 1..=2 {
            assert!(h.due(t + s(i), true));
            assert_eq!(h.judge(t + s(i), t), None, "{i}");
        }
        assert!(h.due(t + s(3), true));
        assert_eq!(h.judge(t + s(3), t), Some(HealthNews::Unresponsive(s(3))));
        // Said once, not at every check.
        assert!(h.due(t + s(4), true));
        assert_eq!(h.judge(t + s(4), t), None);
        assert!(h.due(t + s(5), true));
        assert_eq!(h.judge(t + s(5), t + s(5)), Some(HealthNews::Responsive));
    }

    #[test]
    fn a_child_that_is_not_asked_is_never_judged_unresponsive() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut h = Health::new(s(1), 1, t);
        for i in 1..10 {
            assert!(!h.due(t + s(i), false));
        }
        assert_eq!(h.judge(t + s(10), t), None);
    }

    fn complete(success: bool) -> Body {
        Body::Complete {
            success,
            exit_code: Some(i32::from(!success)),
            duration_ms: 5,
            failed_phase: (!success).then(|| "implement".to_string()),
            signal: None,
            error: (!success).then(|| "phase implement exited with code 1".to_string()),
            failure: None,
            final_message: None,
            cost_usd: Some(0.5),
            input_tokens: None,
            output_tokens: None,
            not_before: None,
        }
    }

    #[test]
    fn the_outcome_follows_from_how_the_executor_ended_and_why_it_was_stopped() {
        let ok = ExitStatus::from_raw(0);
        let failed = ExitStatus::from_raw(1 << 8);
        let killed = ExitStatus::from_raw(libc::SIGKILL);
        let t = Instant::now();
        let timeout = Duration::from_secs(60);
        let sup = |status, stopped| Supervised { status, stopped };
        let j = |s: &Supervised, c: Option<Body>| judge(s, c, t, timeout);
        let r = j(&sup(Some(ok), None), Some(complete(true)));
        assert_eq!(
            (r.outcome, r.report.cost_usd),
            (Outcome::Succeeded, Some(0.5))
        );
        let r = j(&sup(Some(failed), None), Some(complete(false)));
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.failed_phase.as_deref(), Some("implement"));
        // A success message from an executor that then died is no success.
        let r = j(&sup(Some(killed), None), Some(complete(true)));
        assert_eq!(r.outcome, Outcome::Failed);
        assert!(
            r.error
                .unwrap()
                .contains("reported success, then was killed by SIGKILL")
        );
        let r = j(&sup(Some(failed), None), None);
        assert!(r.error.unwrap().contains("before reporting completion"));
        let r = j(&sup(Some(killed), Some(Why::TimeLimit)), None);
        assert_eq!(r.outcome, Outcome::TimedOut);
        assert_eq!(r.error.as_deref(), Some("timed out after 1m00s"));
        let r = j(&sup(Some(ok), Some(Why::Shutdown)), Some(complete(true)));
        assert_eq!(r.outcome, Outcome::Cancelled);
    }
}
