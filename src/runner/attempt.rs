//! One story, start to end, on a worker thread: claim, worktree, write
//! `in-progress`, run it in an executor child, commit the agent's work,
//! write the outcome, keep or remove the worktree (SPEC §5). The runner
//! alone writes story files.

use super::record::Recorder;
use super::{Ctx, child};
use crate::board::frontmatter::Value;
use crate::board::lock::{ClaimError, StoryClaim};
use crate::board::{Status, Story, text};
use crate::logs::{self, RunLog};
use crate::paths::rel;
use crate::report::{Note, StoryResult};
use crate::story::{Job, Outcome, RunResult};
use crate::time;
use crate::worktree;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub enum Attempt {
    Ran(Box<StoryResult>),
    /// Not ours to run any more (another runner has it, or it changed status).
    Gone(String),
}

fn not_run(story: &Story, outcome: Outcome, why: String) -> Attempt {
    let why = if outcome == Outcome::Skipped {
        // Skipped here means nothing was written: say so, and what to do.
        format!("{why} (the story is unchanged; run again once this is fixed)")
    } else {
        why
    };
    Attempt::Ran(Box::new(StoryResult::not_run(story, outcome, why)))
}

/// The result of a story whose handling panicked in the runner. Its claim
/// was released while unwinding; the next run finds it stale if it was left
/// in-progress.
pub fn crashed(story: &Story, panic: Box<dyn std::any::Any + Send>) -> Attempt {
    let what = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into());
    not_run(
        story,
        Outcome::Failed,
        format!("internal error in ai-sdlc while running this story ({what}); please report it"),
    )
}

fn runnable(ctx: &Ctx, s: &Story) -> bool {
    match s.status {
        Status::Done => ctx.by_id && ctx.force,
        Status::Ready => true,
        _ => ctx.by_id,
    }
}

pub fn attempt(ctx: &Ctx, queued: &Story) -> Attempt {
    if crate::shutdown::stopping() {
        return not_run(queued, Outcome::Cancelled, super::queue::INTERRUPTED.into());
    }
    let claim = match StoryClaim::try_claim(&ctx.board, &queued.id) {
        Ok(c) => c,
        Err(ClaimError::Held) => return Attempt::Gone("another runner has claimed it".into()),
        Err(ClaimError::Io(p, e)) => {
            return not_run(
                queued,
                Outcome::Skipped,
                format!("cannot claim {}: {e}", p.display()),
            );
        }
    };
    // Re-read under the claim: another runner may have run it meanwhile.
    let story = match ctx.board.load(&queued.id) {
        Ok(s) => s,
        Err(bad) => return not_run(queued, Outcome::Skipped, bad.to_string()),
    };
    if !runnable(ctx, &story) {
        return Attempt::Gone(format!("it is {} now", story.status));
    }
    let root = &ctx.config.root;
    // Whether the worktree is new to this story (made, or taken from the
    // pool): then it gets its included files, shares and setup.
    let mut fresh = false;
    let (workdir, branch, worktree) = if ctx.settings.worktrees {
        let base = ctx.config.worktree_base();
        let from = ctx.settings.base_branch.as_deref().unwrap_or("HEAD");
        let placed = worktree::place(root, &base, &story);
        let mut pool_notes = Vec::new();
        // One worktree change at a time, across threads and runners.
        let made = placed.clone().and_then(|(folder, branch)| {
            let held = worktree::serialize(root, &base)?;
            if ctx.config.worktree.reuse
                && matches!(held.exists(&folder), Ok(false))
                && crate::worktree::env::take(root, &held, &folder, &branch, from, &mut pool_notes)?
                    .is_some()
            {
                return Ok(worktree::Prepared::Pooled);
            }
            worktree::prepare(root, &held, &folder, &branch, from)
        });
        for text in pool_notes {
            ctx.notes.send(Note::Warn {
                id: Some(story.id.clone()),
                text,
            });
        }
        match (placed, made) {
            (Ok((folder, branch)), Ok(how)) => {
                let path = base.join(&folder);
                let said = match how {
                    worktree::Prepared::Reused => Some("reusing its existing worktree"),
                    worktree::Prepared::Pooled => Some("took a parked worktree for"),
                    worktree::Prepared::Created => None,
                };
                if let Some(said) = said {
                    ctx.notes.send(Note::Info {
                        id: Some(story.id.clone()),
                        text: format!("{said} {}", rel(root, &path)),
                    });
                }
                fresh = how != worktree::Prepared::Reused;
                (path.clone(), branch, Some(path))
            }
            (Err(e), _) | (_, Err(e)) => {
                return not_run(
                    &story,
                    Outcome::Skipped,
                    format!("cannot create its worktree: {e}"),
                );
            }
        }
    } else {
        (
            root.clone(),
            ctx.settings.base_branch.clone().unwrap_or_default(),
            None,
        )
    };
    let log = match RunLog::create(&ctx.board, &story.id, ctx.config.logs_keep) {
        Ok(l) => l,
        Err(e) => {
            return not_run(
                &story,
                Outcome::Skipped,
                format!("cannot create a run log in {}: {e}", story.dir().display()),
            );
        }
    };
    let log_rel = rel(root, &log.path);
    let log = Arc::new(Mutex::new(log));
    let recorder = Arc::new(Recorder::new(
        &ctx.board,
        &story.id,
        worktree.as_deref(),
        ctx.config.phases.last().map(|p| p.name.as_str()),
    ));
    let mut placed = crate::worktree::env::Placed::default();
    if let (true, Some(w)) = (fresh, &worktree) {
        furnish(ctx, &story.id, w, &mut placed, &log);
    }
    let now = time::iso_seconds(time::now_ms());
    let running = Value::Map(vec![
        ("outcome".into(), Value::Str("running".into())),
        ("log".into(), Value::Str(log_rel.clone())),
    ]);
    let mut changes = vec![
        ("status", text("in-progress")),
        ("started_at", text(&now)),
        ("updated", text(&now)),
        // Says that this tool runs it: an in-progress story without it is
        // a stage of the TS tool, never "stale".
        ("last_run", Some(running)),
    ];
    if worktree.is_some() {
        // Never replace what is set (the TS tool's branch): it is what we used.
        if story.branch.is_none() {
            changes.push(("branch", text(&branch)));
        }
        if story.worktree_path.is_none() {
            // Absolute, as the TS tool writes it: a live pointer it follows from anywhere.
            changes.push(("worktree_path", text(workdir.to_string_lossy())));
        }
    }
    changes.extend(flags_to_clear(ctx, &story));
    if let Err(e) = recorder.patch(&changes) {
        return not_run(
            &story,
            Outcome::Skipped,
            format!("cannot mark it in-progress: {e}"),
        );
    }
    let job = match Job::new(
        &ctx.config,
        &story,
        workdir.clone(),
        &branch,
        ctx.settings.base_branch.as_deref().unwrap_or(""),
        fresh,
    ) {
        Ok(j) => j,
        Err(e) => {
            let r = RunResult::failed(e, 0);
            return Attempt::Ran(Box::new(finish(
                ctx, &story, r, worktree, &branch, log_rel, &recorder, &placed,
            )));
        }
    };
    logs::lock(&log).note(&format!(
        "run of {} {:?} in {}",
        story.id,
        story.title,
        workdir.display()
    ));
    if let Some(g) = &ctx.guard {
        g.started(&story.id);
    }
    let mut result = child::run(
        ctx,
        &job,
        &log,
        &recorder,
        worktree.as_ref().map(|w| rel(root, w)),
    );
    // Before anything else touches git: what the agent did to the state
    // every worktree shares is undone, and blocks the story.
    if let Some(t) = ctx
        .guard
        .as_ref()
        .and_then(|g| g.ended(&story.id, &|who| keep_folder(ctx, who)))
    {
        let why = t.message(root);
        logs::lock(&log).note(&why);
        result.outcome = Outcome::Failed;
        result.failed_phase = Some("git state".into());
        result.error = Some(why);
    }
    // Nor does any git call go where an agent re-pointed its worktree.
    if let Some(Err(why)) = worktree.as_ref().map(|w| worktree::check_link(root, w)) {
        logs::lock(&log).note(&why);
        result.outcome = Outcome::Failed;
        result.failed_phase = Some("worktree".into());
        result.error = Some(why);
    }
    if let Some(m) = &result.report.final_message {
        let mut log = logs::lock(&log);
        for line in m.lines().take(10) {
            log.line("runner", &format!("final message | {line}"));
        }
        log.flush();
    }
    if let Some(usage) = result.report.usage_text() {
        logs::lock(&log).note(&format!("usage: {usage}"));
    }
    let mut commit = None;
    if result.outcome == Outcome::Succeeded
        && ctx.config.worktree.commit
        && let Some(path) = &worktree
    {
        match worktree::commit(path, &branch, &commit_message(&story)) {
            Ok(Some(sha)) => {
                logs::lock(&log).note(&format!("committed the agent's work on {branch}: {sha}"));
                commit = Some(sha);
            }
            Ok(None) => logs::lock(&log).note("nothing to commit: the worktree has no changes"),
            Err(e) => {
                result.outcome = Outcome::Failed;
                result.failed_phase = Some("commit".into());
                result.error = Some(format!("cannot commit the agent's work on {branch}: {e}"));
            }
        }
    }
    logs::lock(&log).note(&format!(
        "outcome {} after {}{}",
        result.outcome.as_str(),
        time::human_duration(result.duration_ms),
        result
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    ));
    drop(log);
    let mut r = finish(
        ctx, &story, result, worktree, &branch, log_rel, &recorder, &placed,
    );
    r.commit = commit;
    if ctx.settings.pr && r.outcome == Outcome::Succeeded && r.unrecorded.is_none() {
        let base = ctx.settings.base_branch.clone().unwrap_or_default();
        let opened = ctx
            .board
            .load(&story.id)
            .map_err(|b| b.to_string())
            .and_then(|s| crate::land::pr::open(&ctx.config, &base, &s, &branch));
        let text = match opened {
            Ok(crate::land::pr::Opened::New(url)) => format!("opened pull request {url}"),
            Ok(crate::land::pr::Opened::Already(url)) => {
                format!("pull request already open: {url}")
            }
            Err(e) => format!("no pull request: {e}"),
        };
        ctx.notes.send(Note::Info {
            id: Some(story.id.clone()),
            text,
        });
    }
    drop(claim);
    Attempt::Ran(Box::new(r))
}

/// Where what an agent wrote into the shared git state is kept: a new
/// folder beside story `id`'s logs.
fn keep_folder(ctx: &Ctx, id: &str) -> Option<crate::paths::Dir> {
    let name = format!("{}.git-state", time::file_stamp(time::now_ms()));
    let made = ctx
        .board
        .open_story(id)
        .and_then(|d| d.child_or_create("logs"))
        .and_then(|logs| logs.make_child(&name));
    match made {
        Ok(d) => Some(d),
        Err(e) => {
            log::warn!("[{id}] cannot make a folder for what its agent wrote into .git: {e}");
            None
        }
    }
}

/// `run --from <phase>` (or `--force` on a done story, from the first
/// phase): the completion flags of that phase and the later ones, cleared.
fn flags_to_clear(ctx: &Ctx, story: &Story) -> Vec<(&'static str, Option<Value>)> {
    let phases = &ctx.config.phases;
    let from = match &ctx.settings.from {
        Some(f) => phases.iter().position(|p| &p.name == f),
        None => (story.status == Status::Done).then_some(0),
    };
    let Some(from) = from else {
        return Vec::new();
    };
    phases[from..]
        .iter()
        .filter_map(|p| crate::workflow::flag(&p.name))
        .filter(|f| story.is_complete(f))
        .map(|f| (f, Some(Value::Bool(false))))
        .collect()
}

/// `<ID>: <title>`, and the trailer `Story: <ID>`.
fn commit_message(story: &Story) -> String {
    let title: String = story
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("{}: {}\n\nStory: {}\n", story.id, title.trim(), story.id)
}

/// A new worktree made ready: `.worktreeinclude` copied, `worktree.share`
/// linked; what was done goes to the log.
fn furnish(
    ctx: &Ctx,
    id: &str,
    wt: &std::path::Path,
    placed: &mut crate::worktree::env::Placed,
    log: &Mutex<RunLog>,
) {
    let root = &ctx.config.root;
    if let Err(e) = crate::worktree::env::include(root, wt, placed) {
        ctx.notes.send(Note::Warn {
            id: Some(id.to_string()),
            text: format!("{}: {e}", crate::worktree::env::INCLUDE_FILE),
        });
    }
    let warnings = crate::worktree::env::share(root, wt, &ctx.config.worktree.share, placed);
    let mut log = logs::lock(log);
    if !placed.is_empty() {
        log.note(&format!(
            "copied and linked {} files ({} KiB) from the main checkout ({} and worktree.share){}",
            placed.count(),
            placed.bytes.div_ceil(1024),
            crate::worktree::env::INCLUDE_FILE,
            if placed.skipped.is_empty() {
                String::new()
            } else {
                format!(
                    "; left {} that the worktree already has",
                    placed.skipped.len()
                )
            }
        ));
    }
    for w in warnings {
        log.note(&w);
        ctx.notes.send(Note::Warn {
            id: Some(id.to_string()),
            text: w,
        });
    }
}

/// Write the outcome (SPEC §5 table) and keep or remove the worktree.
#[allow(clippy::too_many_arguments)]
fn finish(
    ctx: &Ctx,
    story: &Story,
    run: RunResult,
    worktree: Option<PathBuf>,
    branch: &str,
    log_rel: String,
    recorder: &Recorder,
    placed: &crate::worktree::env::Placed,
) -> StoryResult {
    let root = &ctx.config.root;
    let now = time::iso_seconds(time::now_ms());
    let mut last_run = vec![
        ("outcome".into(), Value::Str(run.outcome.as_str().into())),
        (
            "exit_code".into(),
            run.exit_code.map_or(Value::Null, |c| Value::Int(c.into())),
        ),
        ("duration_ms".into(), Value::Int(run.duration_ms as i64)),
        ("log".into(), Value::Str(log_rel.clone())),
    ];
    let rep = &run.report;
    if let Some(c) = rep.cost_usd {
        last_run.push(("cost_usd".into(), Value::Float(c)));
    }
    for (k, n) in [
        ("input_tokens", rep.input_tokens),
        ("output_tokens", rep.output_tokens),
    ] {
        if let Some(n) = n {
            last_run.push((k.into(), Value::Int(n.min(i64::MAX as u64) as i64)));
        }
    }
    if let Some(phases) = recorder.phases_value() {
        last_run.push(("phases".into(), phases));
    }
    let last_run = Value::Map(last_run);
    let reason = run.error.clone().unwrap_or_else(|| "failed".into());
    let mut changes = match run.outcome {
        Outcome::Succeeded => vec![
            ("status", text("done")),
            ("finished_at", text(&now)),
            ("updated", text(&now)),
            ("last_run", Some(last_run)),
            ("blocked_reason", None),
            ("blocked_at", None),
        ],
        Outcome::Failed | Outcome::TimedOut => vec![
            ("status", text("blocked")),
            ("blocked_reason", text(reason)),
            ("blocked_at", text(&now)),
            ("updated", text(&now)),
            ("last_run", Some(last_run)),
        ],
        Outcome::Cancelled => vec![
            ("status", text("ready")),
            ("updated", text(&now)),
            ("last_run", Some(last_run)),
        ],
        Outcome::Skipped => Vec::new(),
    };
    // The last phase's flag stands whatever the outcome: the phase is done.
    changes.extend(recorder.take_pending());
    let reviewed_here = ctx.config.phases.iter().any(|p| p.name == "review");
    if run.outcome == Outcome::Succeeded && ctx.config.workflow.mark_reviewed && !reviewed_here {
        changes.push(("reviews_complete", Some(Value::Bool(true))));
    }
    let unrecorded = recorder
        .patch(&changes)
        .err()
        .map(|e| unrecorded(ctx, story, run.outcome, &e));
    let mut r = StoryResult::new(&story.id, &story.title, run.outcome);
    r.exit_code = run.exit_code;
    r.signal = run.signal;
    r.duration_ms = run.duration_ms;
    r.log = Some(log_rel);
    r.error = run.error;
    r.cost_usd = run.report.cost_usd;
    r.input_tokens = run.report.input_tokens;
    r.output_tokens = run.report.output_tokens;
    r.final_message = run.report.final_message;
    r.failure = run.failure;
    r.phases = recorder.phases();
    if let Some(path) = worktree {
        r.branch = Some(branch.to_string());
        r.worktree = Some(rel(root, &path));
        let kept_because = match (run.outcome, ctx.settings.keep_worktrees) {
            _ if unrecorded.is_some() => Some("its outcome is not recorded".into()),
            (Outcome::Succeeded, false) => {
                // What the tool put there goes first; what the agent left stays.
                crate::worktree::env::take_back(&path, placed);
                let reuse = ctx.config.worktree.reuse;
                let ready = if reuse {
                    worktree::parkable(&path, branch)
                } else {
                    worktree::removable(&path, branch)
                };
                ready.err().or_else(|| {
                    let base = ctx.config.worktree_base();
                    let held = worktree::serialize(root, &base);
                    let gone = held.and_then(|held| {
                        if reuse {
                            crate::worktree::env::park(root, &held, &path).map(|_| true)
                        } else {
                            worktree::remove(root, &path, false).map(|_| false)
                        }
                    });
                    match gone {
                        Ok(parked) => {
                            r.worktree_parked = parked;
                            None
                        }
                        Err(e) => Some(format!("cannot remove it: {e}")),
                    }
                })
            }
            (_, true) => Some("asked to keep worktrees".into()),
            (Outcome::Cancelled, _) => Some("run interrupted".into()),
            (Outcome::TimedOut, _) => Some("timed out".into()),
            _ => Some("story failed".into()),
        };
        r.worktree_kept = kept_because.is_some();
        r.kept_because = kept_because;
        if !r.worktree_kept {
            // A live pointer to a removed worktree makes the TS tool warn
            // and refuse to resume the story: it goes with the worktree.
            recorder.forget_worktree();
            if let Err(e) = recorder.patch(&[("worktree_path", None)]) {
                log::warn!("[{}] worktree removed, but {e}", story.id);
            }
        }
    }
    r.unrecorded = unrecorded;
    r
}

/// What to tell the user when a story's outcome could not be written: the
/// outcome, why, and what `story.md` says now.
fn unrecorded(ctx: &Ctx, story: &Story, outcome: Outcome, why: &str) -> String {
    let now = match ctx.board.load(&story.id) {
        Ok(s) if s.status == Status::InProgress => {
            "it still says status: in-progress; the next run returns it to ready".to_string()
        }
        Ok(s) => format!("it says status: {}", s.status),
        Err(bad) => format!("it cannot be read now ({})", bad.reason),
    };
    format!(
        "the outcome ({}) was not recorded in {}: {why}; {now}",
        outcome.describe(),
        rel(&ctx.config.root, &story.path)
    )
}
