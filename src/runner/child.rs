//! One `agent-executor` child: spawn it in its own process group with
//! PDEATHSIG, read its JSON lines on a thread, health-check it, enforce the
//! time limit and shutdown, reap it, and sweep its group (DESIGN.md, "Child
//! processes: the rules"). Only this worker thread signals the child.

use super::Ctx;
use super::record::Recorder;
use crate::agent;
use crate::cli::EXECUTOR_COMMAND;
use crate::ipc::{self, Body, Line, LineReader, MAX_LINE, Message};
use crate::logs::{self, RunLog};
use crate::process;
use crate::report::{Note, Notes};
use crate::shutdown::{self, State};
use crate::story::{self, Job, Outcome, RunResult};
use crossbeam_channel::{Receiver, bounded};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStdout, Command, ExitStatus, Stdio};
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

pub fn run(
    ctx: &Ctx,
    job: &Job,
    log: &Arc<Mutex<RunLog>>,
    recorder: &Arc<Recorder>,
    worktree: Option<String>,
) -> RunResult {
    let started = Instant::now();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return RunResult::failed(
                format!("cannot find the ai-sdlc binary to start the executor: {e}"),
                started.elapsed().as_millis() as u64,
            );
        }
    };
    let stderr = match logs::lock(log).file() {
        Ok(f) => Stdio::from(f),
        Err(_) => Stdio::inherit(),
    };
    // Under a launcher: `<launcher...> <this binary> agent-executor ...`.
    let mut cmd = match &ctx.launcher {
        Some(l) => {
            let (argv, _) = job.expand("launcher", &l.argv, "");
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.arg("-C")
        .arg(&ctx.config.root)
        .arg(EXECUTOR_COMMAND)
        .arg("--worktree")
        .arg(&job.workdir)
        .arg("--branch")
        .arg(&job.branch)
        .arg("--base")
        .arg(&job.facts.base_branch)
        .arg("--grace-ms")
        .arg(ctx.settings.grace.as_millis().to_string())
        .arg("--commands")
        .arg(&ctx.settings.commands);
    if let Some(w) = &ctx.settings.workflow {
        cmd.arg("--workflow").arg(w);
    }
    if job.has_setup {
        cmd.arg("--setup");
    }
    cmd
        // An id may start with `-`: after `--` it is never an option.
        .arg("--")
        .arg(&job.id)
        .current_dir(&job.workdir)
        .env("AI_SDLC_STORY_ID", &job.id)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(stderr);
    // No pre_exec hook, so std can posix_spawn (a fork of this multi-threaded
    // runner costs copy-on-write faults in every thread): the executor sets
    // its PDEATHSIG itself and checks it still has this parent. It is
    // spawned from this worker thread, which lives until it is reaped.
    if ctx.launcher.is_none() {
        cmd.env(process::RUNNER_PID_VAR, std::process::id().to_string());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return RunResult::failed(
                format!("cannot start the executor: {e}"),
                started.elapsed().as_millis() as u64,
            );
        }
    };
    let pgid = child.id();
    // wait_timeout drops child.stdin on every call: keep our own handle.
    let mut stdin = child.stdin.take();
    // Never wait on an executor that stops reading (SIGSTOP, a bug): our
    // messages are a few dozen bytes, so a pipe write is all or nothing,
    // and one that does not fit is skipped (a missed health check).
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
    let here = std::fs::metadata(&job.workdir)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        })
        .unwrap_or((0, 0));
    let heard = Arc::new(Heard {
        last_health_ms: AtomicU64::new(0),
        started_ms: AtomicU64::new(0),
        slurm_step: Mutex::new(None),
        misplaced: Mutex::new(None),
        here,
        complete: Mutex::new(None),
        start: started,
    });
    let (done_tx, done_rx) = bounded::<()>(1);
    if let Some(out) = child.stdout.take() {
        let (heard, log, notes, id, recorder) = (
            Arc::clone(&heard),
            Arc::clone(log),
            ctx.notes.clone(),
            job.id.clone(),
            Arc::clone(recorder),
        );
        let every_line = ctx.settings.single_story();
        let launched = ctx.launcher.is_some();
        let spawned = std::thread::Builder::new()
            .name(format!("ipc-{id}"))
            .stack_size(128 * 1024)
            .spawn(move || {
                let to = To {
                    id: &id,
                    heard: &heard,
                    log: &log,
                    notes: &notes,
                    recorder: &recorder,
                    launched,
                };
                read_child(out, &to, every_line);
                drop(done_tx);
            });
        if let Err(e) = spawned {
            log::warn!("[{}] cannot start its reader: {e}", job.id);
        }
    }
    logs::lock(log).note(&format!(
        "executor started, pid {pgid}{}",
        if ctx.launcher.is_some() {
            " (the launcher's)"
        } else {
            ""
        }
    ));
    ctx.notes.send(Note::Started {
        id: job.id.clone(),
        title: job.title.clone(),
        pid: Some(pgid),
        worktree,
        branch: Some(job.branch.clone()).filter(|b| !b.is_empty()),
    });
    if ctx.launcher.is_some() {
        ctx.notes.send(Note::Phase {
            id: job.id.clone(),
            name: "queued on cluster".into(),
            index: 0,
            count: 0,
            message: "waiting for the launcher to start it".into(),
        });
    }
    let sup = supervise(ctx, job, &mut child, &mut stdin, &heard, log, &done_rx);
    // After reaping: sweep anything the story left behind in its group.
    process::signal_group(pgid, libc::SIGKILL);
    drop(stdin);
    if !matches!(
        done_rx.recv_timeout(Duration::from_secs(2)),
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
    let mut r = judge(sup, complete, started, ctx);
    if let Some(why) = heard
        .misplaced
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        r.outcome = Outcome::Failed;
        r.error = Some(why);
    } else if ctx.launcher.is_some() && r.outcome == Outcome::Failed {
        // What the launcher (Slurm) said about a step it ended.
        let path = logs::lock(log).path.clone();
        let tail = std::fs::read(&path)
            .map(|b| String::from_utf8_lossy(&b[b.len().saturating_sub(8192)..]).into_owned())
            .unwrap_or_default();
        if let Some(reason) = crate::launch::slurm_reason(&tail) {
            r.error = Some(match r.error.take() {
                Some(e) => format!("{e}; Slurm: {reason}"),
                None => format!("Slurm: {reason}"),
            });
        }
    }
    r
}

struct Supervised {
    status: Option<ExitStatus>,
    timed_out: bool,
    stopped: bool,
}

/// Wait for the child to exit while enforcing the shutdown, the time limit
/// and health checks. Sleeps until something happens: the child closes its
/// stdout (it is exiting), a stop or force is requested, or the next
/// deadline or health check is due; no polling while children just work.
fn supervise(
    ctx: &Ctx,
    job: &Job,
    child: &mut std::process::Child,
    stdin: &mut Option<std::process::ChildStdin>,
    heard: &Heard,
    log: &Mutex<RunLog>,
    closed: &Receiver<()>,
) -> Supervised {
    let pgid = child.id();
    let launched = ctx.launcher.is_some();
    // The time limit runs from the executor's start: under a launcher the
    // story may wait in a queue first, and that is not its time.
    let deadline = || match heard.started_ms.load(Ordering::Relaxed) {
        0 if launched => None,
        0 => Some(heard.start + ctx.settings.timeout),
        ms => Some(heard.start + Duration::from_millis(ms - 1) + ctx.settings.timeout),
    };
    let far = Instant::now() + Duration::from_secs(3600 * 24 * 365);
    let interval = ctx.settings.health_interval;
    let mut next_health = Instant::now() + interval;
    let mut checks_sent = 0u64;
    let mut unresponsive = false;
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let mut sup = Supervised {
        status: None,
        timed_out: false,
        stopped: false,
    };
    let (mut on_stop, mut on_force) = (shutdown::on_stop(), shutdown::on_force());
    let mut output_open = true;
    let send = |stdin: &mut Option<std::process::ChildStdin>, body: Body| {
        if let Some(w) = stdin.as_mut() {
            match ipc::write_message(w, &Message::new(&job.id, body)) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // A child that is gone makes this fail: that is for the exit status to tell.
                Err(_) => *stdin = None,
                Ok(()) => {}
            }
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(st)) => {
                sup.status = Some(st);
                return sup;
            }
            Ok(None) => {}
            Err(e) => {
                // Never spin on a child we cannot wait for.
                logs::lock(log).note(&format!("cannot wait for the executor: {e}"));
                return sup;
            }
        }
        let now = Instant::now();
        let state = shutdown::state();
        let deadline = deadline().unwrap_or(far);
        let misplaced = heard
            .misplaced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if kill_at.is_none() && (state != State::Running || now >= deadline || misplaced) {
            sup.timed_out = state == State::Running && !misplaced;
            sup.stopped = state != State::Running;
            let why = if misplaced {
                "it cannot work where it runs"
            } else if sup.timed_out {
                "time limit reached"
            } else {
                "shutting down"
            };
            send(
                stdin,
                Body::Shutdown {
                    grace_ms: ctx.settings.grace.as_millis() as u64,
                },
            );
            if launched {
                // Signalling the launcher (srun) would kill the executor
                // at once: the executor stops its agents on the message,
                // and the launcher goes only if it has not after the grace.
                logs::lock(log).note(&format!("{why}: shutdown message to the executor"));
                kill_at = Some(now + ctx.settings.grace + Duration::from_secs(3));
            } else {
                logs::lock(log).note(&format!("{why}: SIGTERM to the executor's group {pgid}"));
                process::signal_group(pgid, libc::SIGTERM);
                kill_at = Some(now + ctx.settings.grace);
            }
        }
        if !killed && (state == State::Forced || kill_at.is_some_and(|k| now >= k)) {
            logs::lock(log).note(&format!("SIGKILL to the executor's group {pgid}"));
            ctx.notes.send(Note::Info {
                id: Some(job.id.clone()),
                text: "did not stop in time: SIGKILL".into(),
            });
            process::signal_group(pgid, libc::SIGKILL);
            let step = heard
                .slurm_step
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some((job_id, step_id)) = step {
                crate::launch::scancel(&job_id, &step_id);
            }
            killed = true;
        }
        let started_ms = heard.started_ms.load(Ordering::Relaxed);
        let started = !launched || started_ms > 0;
        if now >= next_health && (kill_at.is_some() || !started) {
            // Nothing to ask a queued or stopping executor.
            next_health = now + interval;
        } else if now >= next_health {
            next_health = now + interval;
            send(stdin, Body::HealthCheck);
            checks_sent += 1;
            let heard_ms = heard
                .last_health_ms
                .load(Ordering::Relaxed)
                .max(started_ms.saturating_sub(1));
            let last = heard.start + Duration::from_millis(heard_ms);
            let silent = now.saturating_duration_since(last);
            let limit = interval * ctx.settings.health_misses;
            if checks_sent > u64::from(ctx.settings.health_misses)
                && silent > limit
                && !unresponsive
            {
                unresponsive = true;
                let text = format!(
                    "unresponsive: no health response for {}",
                    crate::time::human_duration(silent.as_millis() as u64)
                );
                logs::lock(log).note(&text);
                ctx.notes.send(Note::Warn {
                    id: Some(job.id.clone()),
                    text,
                });
            } else if unresponsive && silent <= limit {
                unresponsive = false;
                logs::lock(log).note("responsive again");
                ctx.notes.send(Note::Info {
                    id: Some(job.id.clone()),
                    text: "responsive again".into(),
                });
            }
        }
        let mut wake_at = next_health.min(deadline);
        if let Some(k) = kill_at.filter(|_| !killed) {
            wake_at = wake_at.min(k);
        }
        let wait = wake_at.saturating_duration_since(Instant::now());
        if !output_open || killed {
            // It closed its stdout, or was killed: its exit is moments away.
            if let Ok(Some(st)) = child.wait_timeout(wait.min(story::TICK)) {
                sup.status = Some(st);
                return sup;
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

fn judge(sup: Supervised, complete: Option<Body>, started: Instant, ctx: &Ctx) -> RunResult {
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
            ..
        }) => {
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
            if success && exited_cleanly && !sup.timed_out && !sup.stopped {
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
    if sup.timed_out {
        r.outcome = Outcome::TimedOut;
        r.error = Some(format!(
            "timed out after {}",
            crate::time::human_duration(ctx.settings.timeout.as_millis() as u64)
        ));
    } else if sup.stopped {
        r.outcome = Outcome::Cancelled;
        r.error = Some("run interrupted".into());
    }
    r
}

/// Where what the executor reports goes.
struct To<'a> {
    id: &'a str,
    heard: &'a Heard,
    log: &'a Mutex<RunLog>,
    notes: &'a Notes,
    /// The board: phase outputs, flags.
    recorder: &'a Recorder,
    /// Started through a launcher: where it runs is news.
    launched: bool,
}

/// Put what the executor reported into the story's log and tell the
/// reporter. Returns the agent's output line, for the caller to pass on as
/// it sees fit.
fn record(to: &To, body: Body) -> Option<String> {
    let (id, notes, heard) = (to.id, to.notes, to.heard);
    let mut log = logs::lock(to.log);
    match body {
        Body::PhaseResult(r) => to.recorder.phase(r, &mut log),
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
        Body::HealthCheck | Body::Shutdown { .. } => {
            log.line("runner", "ignored a runner-bound message from the executor");
        }
    }
    None
}

/// Reads the executor's messages. The reporter gets the agent's output
/// lines at most every `OUTPUT_NOTE_EVERY`, or `every_line` (the
/// single-story mode streams them).
fn read_child(out: ChildStdout, to: &To, every_line: bool) {
    let (id, log, notes) = (to.id, to.log, to.notes);
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
