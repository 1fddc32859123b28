//! `ai-sdlc agent-executor <ID>`: the child of SPEC §6. Runs the story's
//! phases with `story_run`, reports over JSON lines on stdout, answers the
//! runner on stdin. Treats stdin EOF, EPIPE, SIGTERM and SIGHUP as "stop".
//! Never writes story files: the runner records the outcome.
//!
//! Memory stays bounded whatever the agent prints: the story's messages
//! go through a bounded channel, so a runner that reads slowly slows the
//! agent (its pipe fills) instead of growing this process. Health
//! responses take a small channel of their own, ahead of the queue.

use crate::board::Board;
use crate::cli::ExecutorArgs;
use crate::config::Config;
use crate::ipc::{self, Body, Line, LineReader, MAX_LINE, Message};
use crate::process;
use crate::shutdown;
use crate::story::{self, Event, Limits, Observer, Outcome, RunResult};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

/// What the stdout writer gets: a message, or `None` for the end (the stdin
/// listener keeps a sender until the process exits, so a closed channel
/// cannot be the signal).
type Out = Option<Message>;

/// Owns stdout: writes health responses first, then the story's messages,
/// flushing when nothing more is queued.
fn writer(rx: Receiver<Out>, mut urgent: Receiver<Message>) {
    let mut out = BufWriter::with_capacity(16 * 1024, std::io::stdout().lock());
    let mut broken = false;
    loop {
        let item = match urgent.try_recv() {
            Ok(m) => Some(m),
            Err(_) => crossbeam_channel::select! {
                recv(urgent) -> m => match m {
                    Ok(m) => Some(m),
                    // The listener is gone (stdin closed): no more answers,
                    // and a closed channel would be ready on every pass.
                    Err(_) => {
                        urgent = crossbeam_channel::never();
                        continue;
                    }
                },
                recv(rx) -> m => m.unwrap_or(None),
            },
        };
        let Some(msg) = item else { break };
        if broken {
            continue;
        }
        let mut ok = ipc::write_message(&mut out, &msg).is_ok();
        if ok && rx.is_empty() && urgent.is_empty() {
            ok = out.flush().is_ok();
        }
        if !ok {
            // EPIPE: the runner is gone. Stop the story; drain the rest.
            broken = true;
            shutdown::request_soft();
        }
    }
    let _ = out.flush();
}

/// Reads the runner's messages from stdin.
fn listen(id: String, tx: Sender<Message>) {
    let mut reader = LineReader::new(std::io::stdin().lock(), MAX_LINE);
    loop {
        match reader.next_line() {
            Ok(Some(Line::Full(b))) => match ipc::decode(b) {
                Ok(Message {
                    body: Body::HealthCheck,
                    ..
                }) => {
                    let body = Body::HealthResponse {
                        pid: std::process::id(),
                        rss_kb: process::rss_kb(),
                    };
                    // A full queue already holds answers: this one can go.
                    if let Err(TrySendError::Disconnected(_)) = tx.try_send(Message::new(&id, body))
                    {
                        return;
                    }
                }
                Ok(Message {
                    body: Body::Shutdown { .. },
                    ..
                }) => shutdown::request_soft(),
                Ok(_) => log::warn!("ignoring a child-bound message sent to the executor"),
                Err(why) => log::warn!("ignoring a line from the runner: {why}"),
            },
            Ok(Some(Line::TooLong(n))) => log::warn!("ignoring a {n}-byte line from the runner"),
            // EOF (or a cut line, or an error): the runner is gone or wants us to stop.
            Ok(Some(Line::Cut(_))) | Ok(None) | Err(_) => {
                shutdown::request_soft();
                return;
            }
        }
    }
}

struct Ipc {
    id: String,
    tx: Sender<Out>,
    /// The runner's guard of the shared git state, checked after each
    /// agent phase; with the board, for where what an agent wrote is kept.
    guard: Option<(crate::git::guard::Guard, Board)>,
    root: std::path::PathBuf,
}

impl Ipc {
    fn send(&self, body: Body) {
        let _ = self.tx.send(Some(Message::new(&self.id, body)));
    }
}

impl Observer for Ipc {
    fn event(&mut self, e: Event) {
        self.send(body_of(&e));
    }

    fn after_agent(&mut self) -> Option<String> {
        let (guard, board) = self.guard.as_ref()?;
        let id = self.id.clone();
        let t = guard.check_now(&|| crate::logs::git_state_folder(board, &id))?;
        Some(t.message(&self.root))
    }
}

/// A story's event as the message that reports it.
fn body_of(e: &Event) -> Body {
    match *e {
        Event::PhaseStarted {
            index,
            count,
            name,
            pid,
        } => Body::Status {
            phase: name.to_string(),
            phase_index: index,
            phase_count: count,
            progress: (index * 100 / count.max(1)) as u8,
            message: format!("started, pid {pid}"),
        },
        Event::Output { stream, line, show } => Body::Log {
            stream,
            line: line.to_string(),
            show: show.map(str::to_string),
        },
        Event::PhaseFinished {
            index,
            count,
            name,
            summary,
        } => Body::Status {
            phase: name.to_string(),
            phase_index: index,
            phase_count: count,
            progress: ((index + 1) * 100 / count.max(1)) as u8,
            message: summary.to_string(),
        },
        Event::PhaseResult {
            name,
            round,
            outcome,
            output,
            verdict,
            duration_ms,
            report,
        } => Body::PhaseResult(ipc::PhaseResult {
            phase: name.to_string(),
            round,
            outcome: outcome.to_string(),
            output: output.map(str::to_string),
            verdict: verdict.map(|v| v.as_str().to_string()),
            duration_ms,
            cost_usd: report.cost_usd,
            input_tokens: report.input_tokens,
            output_tokens: report.output_tokens,
            cost_from: report
                .cost_usd
                .map(|_| if report.priced { "pricing" } else { "cli" }.to_string()),
        }),
        Event::Problem { code, message } => Body::Error {
            code: code.to_string(),
            message: message.to_string(),
            recoverable: code == "retry",
        },
        Event::Limited {
            kind,
            words,
            not_before,
        } => Body::Limited {
            kind: kind.as_str().to_string(),
            message: crate::agent::cut(words, 300),
            not_before,
        },
        Event::Spent { usd, tokens } => Body::Spent { usd, tokens },
    }
}

pub fn main(root: &Path, args: ExecutorArgs) -> i32 {
    if !process::die_with_parent(libc::SIGTERM) {
        // The runner died while starting us: nothing to report to, nothing to run.
        return 1;
    }
    // Orphans of the agents become ours, so the sweep below finds them all.
    process::become_subreaper();
    if let Err(e) = shutdown::install(|_, _| {}) {
        log::warn!("cannot handle SIGTERM: {e}");
    }
    process::drop_controlling_terminal();
    let (tx, rx) = bounded::<Out>(256);
    let (urgent_tx, urgent_rx) = bounded::<Message>(4);
    let writer = std::thread::Builder::new()
        .name("ipc-out".into())
        .stack_size(128 * 1024)
        .spawn(move || writer(rx, urgent_rx));
    let listen_tx = urgent_tx;
    let id = args.id.clone();
    let _ = std::thread::Builder::new()
        .name("ipc-in".into())
        .stack_size(128 * 1024)
        .spawn(move || listen(id, listen_tx));
    let mut ipc = Ipc {
        id: args.id.clone(),
        tx,
        guard: None,
        root: root.to_path_buf(),
    };
    let (dev, ino) = std::fs::metadata(&args.worktree)
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        })
        .unwrap_or((0, 0));
    let slurm = crate::launch::slurm_step();
    ipc.send(Body::Started {
        pid: std::process::id(),
        host: process::hostname(),
        slurm_job_id: slurm.as_ref().map(|s| s.0.clone()),
        slurm_step_id: slurm.map(|s| s.1),
        dev,
        ino,
    });
    let r = match prepare(root, &args) {
        Ok((mut job, limits, board, (ports, preset, sandbox))) => {
            // Held while the story runs (its TMPDIR goes with it). A
            // sandbox that cannot be set up fails the story: never an
            // agent let loose because a folder could not be made.
            match isolate(&mut job, preset, &sandbox, &mut ipc) {
                Err(e) => {
                    ipc.send(Body::Error {
                        code: "sandbox".into(),
                        message: e.clone(),
                        recoverable: false,
                    });
                    RunResult::failed(e, 0)
                }
                Ok(_sandbox) => {
                    // Held while the story runs: its ports are its own.
                    let _ports = match crate::sandbox::reserve_ports(ports, &job.id) {
                        Ok(p) => {
                            job.port = Some(p.first);
                            Some(p)
                        }
                        Err(e) => {
                            ipc.send(Body::Error {
                                code: "ports".into(),
                                message: format!(
                                    "no ports of its own for this story ({e}): it runs without AI_SDLC_PORT; free some, or lower agent.ports"
                                ),
                                recoverable: true,
                            });
                            None
                        }
                    };
                    ipc.guard = crate::git::guard::Guard::attach(root, args.git_dir.as_deref())
                        .map(|g| (g, board));
                    story::run(&job, &limits, &mut ipc)
                }
            }
        }
        Err(e) => {
            log::error!("{e}");
            ipc.send(Body::Error {
                code: "setup_failed".into(),
                message: e.clone(),
                recoverable: false,
            });
            RunResult::failed(e, 0)
        }
    };
    let code = i32::from(r.outcome != Outcome::Succeeded);
    ipc.send(Body::Complete {
        success: r.outcome == Outcome::Succeeded,
        exit_code: r.exit_code,
        duration_ms: r.duration_ms,
        failed_phase: r.failed_phase,
        signal: r.signal,
        error: r.error,
        failure: r.failure.map(|f| f.as_str().to_string()),
        final_message: r.report.final_message,
        cost_usd: r.report.cost_usd,
        input_tokens: r.report.input_tokens,
        output_tokens: r.report.output_tokens,
        not_before: r.not_before,
    });
    // No descendant outlives the executor.
    process::signal_descendants(libc::SIGKILL, true);
    let _ = ipc.tx.send(None);
    if let Ok(w) = writer {
        let _ = w.join();
    }
    code
}

/// The story's filesystem sandbox, set on `job` (`None`: turned off, or
/// no Landlock here, which the story's log says); why not, when it is
/// asked for and cannot be made.
fn isolate(
    job: &mut story::Job,
    preset: crate::agent::Preset,
    sandbox: &crate::config::SandboxConfig,
    ipc: &mut Ipc,
) -> Result<Option<crate::sandbox::Sandbox>, String> {
    let s = crate::sandbox::for_story(preset, sandbox, &job.repo, &job.workdir, &job.id)
        .map_err(|e| {
            format!(
                "cannot set up the filesystem sandbox: {e}; fix that, or turn it off with \"agent\": {{\"sandbox\": false}}"
            )
        })?;
    if s.is_none() && sandbox.enabled {
        // Said once by the runner; in the log of each story too (under a
        // launcher, this is another machine).
        ipc.send(Body::Log {
            stream: crate::ipc::Stream::Stderr,
            line: format!(
                "no filesystem sandbox on {}: this kernel has no Landlock",
                crate::process::hostname()
            ),
            show: Some(String::new()),
        });
    }
    job.sandbox_fd = s.as_ref().map(|s| s.ruleset.raw_fd());
    job.sandbox_env = s.as_ref().map(|s| s.env()).unwrap_or_default();
    Ok(s)
}

/// What the executor needs of the config beyond the job: how many ports
/// a story gets, its agent's preset, the sandbox settings.
type Isolation = (u16, crate::agent::Preset, crate::config::SandboxConfig);

/// The story's job, its limits, the board, and its isolation.
fn prepare(
    root: &Path,
    args: &ExecutorArgs,
) -> Result<(story::Job, Limits, Board, Isolation), String> {
    let mut config = Config::load(root).map_err(|e| e.0)?;
    if let Some(w) = &args.workflow {
        config.use_workflow(w)?;
    }
    let fingerprint = crate::trust::fingerprint(&crate::trust::commands(&config));
    if args.commands.as_ref().is_some_and(|c| *c != fingerprint) {
        return Err(format!(
            "{} names other commands than when this run started (it was edited since); nothing was run. Check it, trust it (ai-sdlc trust) and run again",
            config.file_name()
        ));
    }
    if let Some(name) = &args.agent {
        // Only a built-in preset the config allows for attempts.
        let allowed = config.agent.attempt_presets(&config.attempts);
        match crate::agent::Preset::parse(name).filter(|p| allowed.contains(p)) {
            Some(p) => config.agent.use_preset(p),
            None => {
                return Err(format!(
                    "--agent {name:?}: not an agent {} allows for attempts (agent.attemptAgents)",
                    config.file_name()
                ));
            }
        }
    }
    let story = Board::of(&config)
        .load(&args.id)
        .map_err(|b| b.to_string())?;
    let mut job = story::Job::new(
        &config,
        &story,
        args.worktree.clone(),
        &args.branch,
        args.base.as_deref().unwrap_or(""),
        args.setup,
    )?;
    job.part = story::Part {
        only: args
            .only
            .as_deref()
            .map(|o| o.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        attempt: args.attempt,
        // The rest is the runner's to pass on as flags, here already taken.
        ..story::Part::default()
    };
    job.part.apply(&mut job.phases);
    job.load_prompts(&config)?;
    let a = &config.agent;
    let limits = Limits {
        grace: Duration::from_millis(args.grace_ms.unwrap_or(config.shutdown_timeout_ms)),
        idle: (a.idle_timeout_ms > 0).then(|| Duration::from_millis(a.idle_timeout_ms)),
        retries: a.retries,
        retry_delay: Duration::from_millis(a.retry_delay_ms),
        budget: crate::governor::Budget {
            usd: args.budget_usd,
            tokens: args.budget_tokens,
        },
        pricing: a.pricing,
    };
    let preset = config
        .agent
        .preset()
        .unwrap_or(crate::agent::Preset::Command);
    // The folders the worktree shares with the main checkout (`worktree.share`,
    // links) are written through: the user shared them on purpose.
    let mut sandbox = config.agent.sandbox.clone();
    sandbox.write.extend(config.worktree.share.iter().cloned());
    let isolation = (config.agent.ports, preset, sandbox);
    Ok((job, limits, Board::of(&config), isolation))
}
