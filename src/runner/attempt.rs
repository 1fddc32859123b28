//! One story, start to end, on a worker thread: claim, worktree, write
//! `in-progress`, run it in an executor child, commit the agent's work,
//! write the outcome, keep or remove the worktree (SPEC §5). The runner
//! alone writes story files.

use super::record::Recorder;
use super::{Ctx, child};
use crate::board::frontmatter::Value;
use crate::board::lock::{ClaimError, StoryClaim};
use crate::board::{Status, Story, outcome_patch, text};
use crate::logs::{self, RunLog};
use crate::paths::rel;
use crate::report::{Note, StoryResult};
use crate::story::{Job, Outcome, Part, RunResult};
use crate::time;
use crate::workflow::Kind;
use crate::worktree::{self, WorktreeFate};
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

/// Run a queued story start to end (SPEC §5).
pub fn attempt(ctx: &Ctx, queued: &Story) -> Attempt {
    attempt_with(ctx, queued, &|run| run.execute(&Part::default()))
}

/// Run a queued story start to end, its phases run by `execute` (once,
/// or best of N: `best_of::execute`).
pub fn attempt_with(ctx: &Ctx, queued: &Story, execute: &dyn Fn(&Run) -> RunResult) -> Attempt {
    if crate::shutdown::stopping() {
        return not_run(queued, Outcome::Cancelled, super::queue::INTERRUPTED.into());
    }
    let (claim, story) = match claim(ctx, queued) {
        Ok(held) => held,
        Err(a) => return a,
    };
    let place = match place(ctx, &story) {
        Ok(p) => p,
        Err(Unplaced::Skip(e)) => {
            let why = format!("cannot create its worktree: {e}");
            return not_run(&story, Outcome::Skipped, why);
        }
        Err(Unplaced::Block(why)) => return block(ctx, &story, why),
    };
    let run = match Run::start(ctx, &story, place) {
        Ok(r) => r,
        Err(why) => return not_run(&story, Outcome::Skipped, why),
    };
    let result = execute(&run);
    let mut r = run.finish(result);
    if ctx.settings.pr && r.outcome == Outcome::Succeeded && r.unrecorded.is_none() {
        r.pr_url = open_pr(ctx, &story, run.place.branch.as_str());
    }
    drop(claim);
    Attempt::Ran(Box::new(r))
}

/// A story that cannot start until a person decides: `blocked`, with why.
fn block(ctx: &Ctx, story: &Story, why: String) -> Attempt {
    let now = time::iso_seconds(time::now_ms());
    let last_run = Value::Map(vec![("outcome".into(), Value::Str("failed".into()))]);
    let written = ctx.board.patch(
        &story.id,
        &outcome_patch(Outcome::Failed, &now, &why, last_run, None),
    );
    let mut r = StoryResult::not_run(story, Outcome::Failed, why);
    if let Err(e) = written {
        r.unrecorded = Some(format!("its status is not recorded: {e}"));
    }
    Attempt::Ran(Box::new(r))
}

/// Claim the story and read it again under the claim: another runner may
/// have run it meanwhile.
fn claim(ctx: &Ctx, queued: &Story) -> Result<(StoryClaim, Story), Attempt> {
    let claim = match StoryClaim::try_claim(&ctx.board, &queued.id) {
        Ok(c) => c,
        Err(ClaimError::Held) => return Err(Attempt::Gone("another runner has claimed it".into())),
        Err(ClaimError::Io(p, e)) => {
            let why = format!("cannot claim {}: {e}", p.display());
            return Err(not_run(queued, Outcome::Skipped, why));
        }
    };
    let story = match ctx.board.load(&queued.id) {
        Ok(s) => s,
        Err(bad) => return Err(not_run(queued, Outcome::Skipped, bad.to_string())),
    };
    if !runnable(ctx, &story) {
        return Err(Attempt::Gone(format!("it is {} now", story.status)));
    }
    if let Some(t) = story
        .not_before
        .filter(|t| *t > time::now_ms() && !ctx.force)
    {
        return Err(Attempt::Gone(format!(
            "it is parked at a usage cap until {}",
            time::iso_seconds(t)
        )));
    }
    Ok((claim, story))
}

/// Where a story's agents work.
pub(super) struct Place {
    /// The worktree, or the repo without worktrees.
    pub(super) workdir: PathBuf,
    pub(super) branch: String,
    /// The story's own worktree, when it has one.
    pub(super) worktree: Option<PathBuf>,
    /// The worktree is new to this story (made, or taken from the pool):
    /// it gets its included files, shares and setup.
    pub(super) fresh: bool,
    /// Where a branch made for this run started (`base_ref`), and on which
    /// dependencies' work (stacking).
    pub(super) start: Option<crate::land::stack::Start>,
}

/// Why a story cannot be placed: skipped (nothing written, try again), or
/// blocked (its dependencies conflict: a person must decide).
enum Unplaced {
    Skip(String),
    Block(String),
}

impl From<String> for Unplaced {
    fn from(why: String) -> Unplaced {
        Unplaced::Skip(why)
    }
}

/// Make, reuse or take from the pool the story's worktree (or, without
/// worktrees, the repo itself).
fn place(ctx: &Ctx, story: &Story) -> Result<Place, Unplaced> {
    let root = &ctx.config.root;
    if !ctx.settings.worktrees {
        return Ok(Place {
            workdir: root.clone(),
            branch: ctx.settings.base_branch.clone().unwrap_or_default(),
            worktree: None,
            fresh: false,
            start: None,
        });
    }
    let base = ctx.config.worktree_base();
    let (folder, branch) = worktree::place(root, &base, story)?;
    // A new branch starts from the base, or from its dependencies' work.
    let start = match crate::git::refs::branch_exists(root, &branch) {
        Ok(true) => None,
        _ => {
            let from = ctx.settings.base_branch.as_deref().unwrap_or("HEAD");
            Some(
                crate::land::stack::start_point(root, &ctx.board, story, from)
                    .map_err(Unplaced::Block)?,
            )
        }
    };
    let from = start.as_ref().map_or_else(
        || ctx.settings.base_branch.as_deref().unwrap_or("HEAD"),
        |s| s.commit.as_str(),
    );
    let mut pool_notes = Vec::new();
    // One worktree change at a time, across threads and runners.
    let made = worktree::serialize(root, &base).and_then(|held| {
        if ctx.config.worktree.reuse
            && matches!(held.exists(&folder), Ok(false))
            && worktree::pool::take(root, &held, &folder, &branch, from, &mut pool_notes)?.is_some()
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
    let how = made?;
    let path = base.join(&folder);
    if let Some(said) = start.as_ref().and_then(|s| s.describe()) {
        ctx.notes.send(Note::Info {
            id: Some(story.id.clone()),
            text: said,
        });
    }
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
    Ok(Place {
        workdir: path.clone(),
        branch,
        worktree: Some(path),
        fresh: how != worktree::Prepared::Reused,
        start,
    })
}

/// One story's run, from the moment it is marked in-progress (or one of
/// its attempts, SPEC §17).
pub(super) struct Run<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) story: &'a Story,
    pub(super) place: Place,
    pub(super) log: Arc<Mutex<RunLog>>,
    /// The log, relative to the repo, as `last_run.log` names it.
    pub(super) log_rel: String,
    pub(super) recorder: Arc<Recorder>,
    /// What was copied and linked into a fresh worktree, to take back.
    pub(super) placed: worktree::env::Placed,
    /// `worktree.setup` ran in it: a fresh worktree gets it once, however
    /// many executors run there (a story's attempts, SPEC §17).
    pub(super) set_up: std::sync::atomic::AtomicBool,
}

impl<'a> Run<'a> {
    /// Open the run log, furnish a fresh worktree, write `in-progress`.
    fn start(ctx: &'a Ctx, story: &'a Story, place: Place) -> Result<Run<'a>, String> {
        let root = &ctx.config.root;
        let log = RunLog::create(&ctx.board, &story.id, ctx.config.logs_keep)
            .map_err(|e| format!("cannot create a run log in {}: {e}", story.dir().display()))?;
        let log_rel = rel(root, &log.path);
        let recorder = Arc::new(Recorder::new(
            &ctx.board,
            &story.id,
            place.worktree.as_deref(),
            ctx.config.phases.last().map(|p| p.name.as_str()),
        ));
        let mut run = Run {
            ctx,
            story,
            place,
            log: Arc::new(Mutex::new(log)),
            log_rel,
            recorder,
            placed: worktree::env::Placed::default(),
            set_up: Default::default(),
        };
        if let (true, Some(w)) = (run.place.fresh, run.place.worktree.clone()) {
            furnish(ctx, &story.id, &w, &mut run.placed, &run.log);
        }
        run.mark_in_progress()
            .map_err(|e| format!("cannot mark it in-progress: {e}"))?;
        Ok(run)
    }

    fn mark_in_progress(&self) -> Result<(), String> {
        let now = time::iso_seconds(time::now_ms());
        let running = Value::Map(vec![
            ("outcome".into(), Value::Str("running".into())),
            ("log".into(), Value::Str(self.log_rel.clone())),
        ]);
        let mut changes = vec![
            ("status", text(Status::InProgress.as_str())),
            ("started_at", text(&now)),
            ("updated", text(&now)),
            // Says that this tool runs it: an in-progress story without it is
            // a stage of the TS tool, never "stale".
            ("last_run", Some(running)),
            // It runs now: whatever parked it is over (or overruled, --force).
            ("not_before", None),
        ];
        if self.place.worktree.is_some() {
            // Never replace what is set (the TS tool's branch): it is what we used.
            if self.story.branch.is_none() {
                changes.push(("branch", text(&self.place.branch)));
            }
            if self.story.worktree_path.is_none() {
                // Absolute, as the TS tool writes it: a live pointer it follows from anywhere.
                changes.push(("worktree_path", text(self.place.workdir.to_string_lossy())));
            }
        }
        if let Some(start) = &self.place.start {
            changes.push(("base_ref", text(&start.commit)));
        }
        changes.extend(flags_to_clear(self.ctx, self.story));
        self.recorder.patch(&changes)
    }

    pub(super) fn note(&self, text: &str) {
        logs::lock(&self.log).note(text);
    }

    /// Run the story's phases (or `part` of them) in an executor, then
    /// check what its agents left and commit their work.
    pub(super) fn execute(&self, part: &Part) -> RunResult {
        let ctx = self.ctx;
        let job = Job::new(
            &ctx.config,
            self.story,
            self.place.workdir.clone(),
            &self.place.branch,
            ctx.settings.base_branch.as_deref().unwrap_or(""),
            self.place.fresh && !self.set_up.swap(true, std::sync::atomic::Ordering::Relaxed),
        );
        let mut job = match job {
            Ok(j) => j,
            Err(e) => return RunResult::failed(e, 0),
        };
        job.part = part.clone();
        let key = part.key(&self.story.id);
        if key != self.story.id {
            // A part of the story (an attempt): the governor counts its
            // spend under its own key until it ends (`best_of`).
            ctx.gov.lock().started(&key);
        }
        self.note(&format!(
            "run of {} {:?} in {}",
            self.story.id,
            self.story.title,
            self.place.workdir.display()
        ));
        if let Some(g) = &ctx.guard {
            g.started(&key);
        }
        let root = &ctx.config.root;
        let shown = self.place.worktree.as_ref().map(|w| rel(root, w));
        let mut result = child::run(ctx, &job, &self.log, &self.recorder, shown);
        self.check_git(&mut result, &key);
        self.park(&mut result);
        self.log_report(&result);
        // A workflow of the runner's own (the judge) makes no work to commit.
        if result.outcome == Outcome::Succeeded
            && ctx.config.worktree.commit
            && part.workflow.is_none()
        {
            self.commit(&mut result, part.attempt);
        }
        self.note(&format!(
            "outcome {} after {}{}",
            result.outcome.as_str(),
            time::human_duration(result.duration_ms),
            result
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
        result
    }

    /// Before anything else touches git: what the agent did to the state
    /// every worktree shares is undone and blocks the story; nor does any
    /// git call go where an agent re-pointed its worktree.
    fn check_git(&self, result: &mut RunResult, key: &str) {
        let ctx = self.ctx;
        let root = &ctx.config.root;
        let tampered = ctx.guard.as_ref().and_then(|g| {
            g.ended(key, &|who| {
                // An attempt's key is `<ID>#<k>`: kept with its story.
                let id = who.split('#').next().unwrap_or(who);
                logs::git_state_folder(&ctx.board, id)
            })
        });
        if let Some(t) = tampered {
            let why = t.message(root);
            self.note(&why);
            fail_at(result, "git state", why);
        }
        if let Some(Err(why)) = self
            .place
            .worktree
            .as_ref()
            .map(|w| worktree::check_link(root, w))
        {
            self.note(&why);
            fail_at(result, "worktree", why);
        }
    }

    /// A story that stopped at its agent's usage cap is parked, not failed:
    /// `ready` again, not before the cap lifts (the CLI's word, else
    /// `governor.capWait`); its worktree, branch and finished phases stay.
    fn park(&self, result: &mut RunResult) {
        if result.outcome != Outcome::Failed
            || result.failure != Some(crate::agent::FailureKind::UsageCap)
        {
            return;
        }
        let now = time::now_ms();
        let until = result
            .not_before
            .filter(|t| *t > now)
            .unwrap_or(now + self.ctx.config.governor.cap_wait_ms);
        result.outcome = Outcome::Parked;
        result.not_before = Some(until);
        self.note(&format!(
            "parked at the usage cap until {}: {}",
            time::iso_seconds(until),
            result.error.as_deref().unwrap_or("usage limit reached")
        ));
    }

    /// The agent's final message and usage, into the log.
    fn log_report(&self, result: &RunResult) {
        if let Some(m) = &result.report.final_message {
            let mut log = logs::lock(&self.log);
            for line in m.lines().take(10) {
                log.line("runner", &format!("final message | {line}"));
            }
            log.flush();
        }
        if let Some(usage) = result.report.usage_text() {
            self.note(&format!("usage: {usage}"));
        }
    }

    /// Commit the agent's work on the story branch; a commit that fails
    /// fails the story.
    fn commit(&self, result: &mut RunResult, attempt: Option<u32>) {
        let Some(path) = &self.place.worktree else {
            return;
        };
        let branch = &self.place.branch;
        let committed = worktree::commit(path, branch, &commit_message(self.story, attempt))
            .map_err(|e| format!("cannot commit the agent's work on {branch}: {e}"))
            // Done only when the commit is on the story's branch in this repo.
            .and_then(|sha| {
                worktree::verify_on_branch(&self.ctx.config.root, path, branch)?;
                Ok(sha)
            });
        match committed {
            Ok(Some(sha)) => {
                self.note(&format!("committed the agent's work on {branch}: {sha}"));
                result.commit = Some(sha);
            }
            Ok(None) => {
                self.note("nothing to commit: the worktree has no changes");
                if let Some(why) = self.made_nothing(result) {
                    self.note(&why);
                    fail_at(result, "implement", why);
                }
            }
            Err(e) => fail_at(result, "commit", e),
        }
    }

    /// An implement phase ran and the story's branch has no work of its own
    /// (none now, none from before): almost never what the user wants.
    /// Why it fails, unless an empty result is allowed.
    fn made_nothing(&self, result: &RunResult) -> Option<String> {
        let ctx = self.ctx;
        if ctx.config.workflow.allow_empty || self.story.allow_empty {
            return None;
        }
        let implement_ran = self.recorder.phases().iter().any(|p| {
            p.outcome == "succeeded"
                && ctx
                    .config
                    .phases
                    .iter()
                    .any(|c| c.name == p.phase && c.kind() == Kind::Implement)
        });
        let start = match (&self.place.start, &self.story.base_ref) {
            (Some(s), _) => s.commit.clone(),
            (None, Some(r)) => r.clone(),
            (None, None) => ctx.settings.base_branch.clone()?,
        };
        let root = &ctx.config.root;
        let branch = format!("refs/heads/{}", self.place.branch);
        // Its tip is where it started (or before): no commit of its own.
        let bare = crate::git::is_ancestor(root, &branch, &start).ok()?;
        if !implement_ran || !bare {
            return None;
        }
        let said = result
            .report
            .final_message
            .as_deref()
            .map(|m| format!("; it said: {}", crate::agent::first_line(m, 300)))
            .unwrap_or_default();
        Some(format!(
            "the agent made no change{said}. If that is the right result, set allow_empty: true in the story (or workflow.allowEmpty in {}) and run it again",
            ctx.config.file_name()
        ))
    }

    /// Write the outcome (SPEC §5 table) and keep or remove the worktree.
    fn finish(&self, run: RunResult) -> StoryResult {
        let ctx = self.ctx;
        let now = time::iso_seconds(time::now_ms());
        let reason = run.error.clone().unwrap_or_else(|| "failed".into());
        let not_before = run.not_before.map(time::iso_seconds);
        let mut changes = outcome_patch(
            run.outcome,
            &now,
            &reason,
            self.last_run(&run),
            not_before.as_deref(),
        );
        // The last phase's flag stands whatever the outcome: the phase is done.
        changes.extend(self.recorder.take_pending());
        // ... unless the work it did was refused after it (it made nothing):
        // then it is to be done again.
        if run.outcome != Outcome::Succeeded && run.failed_phase.as_deref() == Some("implement") {
            changes.retain(|(k, _)| *k != "implementation_complete");
            changes.push(("implementation_complete", Some(Value::Bool(false))));
        }
        let reviewed_here = ctx.config.phases.iter().any(|p| p.kind() == Kind::Review);
        if run.outcome == Outcome::Succeeded && ctx.config.workflow.mark_reviewed && !reviewed_here
        {
            changes.push(("reviews_complete", Some(Value::Bool(true))));
        }
        let unrecorded = self
            .recorder
            .patch(&changes)
            .err()
            .map(|e| unrecorded(ctx, self.story, run.outcome, &e));
        let mut r = StoryResult::from_run(&self.story.id, &self.story.title, run);
        r.log = Some(self.log_rel.clone());
        r.phases = self.recorder.phases();
        if let Some(path) = &self.place.worktree {
            r.branch = Some(self.place.branch.clone());
            r.worktree = Some(rel(&ctx.config.root, path));
            let fate = match &unrecorded {
                Some(_) => WorktreeFate::Kept("its outcome is not recorded".into()),
                None => self.settle_worktree(r.outcome, path),
            };
            if !matches!(fate, WorktreeFate::Kept(_)) {
                // A live pointer to a removed worktree makes the TS tool warn
                // and refuse to resume the story: it goes with the worktree.
                self.recorder.forget_worktree();
                if let Err(e) = self.recorder.patch(&[("worktree_path", None)]) {
                    log::warn!("[{}] worktree removed, but {e}", self.story.id);
                }
            }
            r.fate = Some(fate);
        }
        r.unrecorded = unrecorded;
        r
    }

    /// `last_run` of this run: outcome, exit code, time, log, usage, phases.
    fn last_run(&self, run: &RunResult) -> Value {
        let mut last_run = vec![
            ("outcome".into(), Value::Str(run.outcome.as_str().into())),
            (
                "exit_code".into(),
                run.exit_code.map_or(Value::Null, |c| Value::Int(c.into())),
            ),
            ("duration_ms".into(), Value::Int(run.duration_ms as i64)),
            ("log".into(), Value::Str(self.log_rel.clone())),
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
        if let Some(phases) = self.recorder.phases_value() {
            last_run.push(("phases".into(), phases));
        }
        Value::Map(last_run)
    }

    /// Remove (or park) the worktree of a story that succeeded and left
    /// nothing uncommitted; keep it otherwise, and say why.
    fn settle_worktree(&self, outcome: Outcome, path: &std::path::Path) -> WorktreeFate {
        let ctx = self.ctx;
        let kept = |why: &str| WorktreeFate::Kept(why.to_string());
        match (outcome, ctx.settings.keep_worktrees) {
            (_, true) => return kept("asked to keep worktrees"),
            (Outcome::Cancelled, _) => return kept("run interrupted"),
            (Outcome::TimedOut, _) => return kept("timed out"),
            (Outcome::Parked, _) => return kept("parked at the usage cap"),
            (Outcome::Succeeded, false) => {}
            _ => return kept("story failed"),
        }
        // What the tool put there goes first; what the agent left stays.
        worktree::env::take_back(path, &self.placed);
        let (root, branch) = (&ctx.config.root, &self.place.branch);
        let reuse = ctx.config.worktree.reuse;
        let ready = if reuse {
            worktree::parkable(path, branch)
        } else {
            worktree::removable(path, branch)
        };
        if let Err(why) = ready {
            return WorktreeFate::Kept(why);
        }
        let gone = worktree::serialize(root, &ctx.config.worktree_base()).and_then(|held| {
            if reuse {
                worktree::pool::park(root, &held, path).map(|_| WorktreeFate::Parked)
            } else {
                worktree::remove(root, path, false).map(|_| WorktreeFate::Removed)
            }
        });
        gone.unwrap_or_else(|e| WorktreeFate::Kept(format!("cannot remove it: {e}")))
    }
}

/// The story failed at `phase` (a step of the runner's own) for `why`.
pub(super) fn fail_at(result: &mut RunResult, phase: &str, why: String) {
    result.outcome = Outcome::Failed;
    // Not the agent's failure, whatever the agent said.
    result.failure = None;
    result.failed_phase = Some(phase.into());
    result.error = Some(why);
}

/// `run --pr`: open the finished story's pull request, and say how it
/// went; its address.
fn open_pr(ctx: &Ctx, story: &Story, branch: &str) -> Option<String> {
    let base = ctx.settings.base_branch.clone().unwrap_or_default();
    let opened = ctx
        .board
        .load(&story.id)
        .map_err(|b| b.to_string())
        .and_then(|s| crate::land::pr::open(&ctx.config, &base, &s, branch));
    let (text, url) = match opened {
        Ok(crate::land::pr::Opened::New(url)) => (format!("opened pull request {url}"), Some(url)),
        Ok(crate::land::pr::Opened::Already(url)) => {
            (format!("pull request already open: {url}"), Some(url))
        }
        Err(e) => (format!("no pull request: {e}"), None),
    };
    ctx.notes.send(Note::Info {
        id: Some(story.id.clone()),
        text,
    });
    url
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

/// `<ID>: <title>`, and the trailer `Story: <ID>` (and `Attempt: <k>`).
fn commit_message(story: &Story, attempt: Option<u32>) -> String {
    let title: String = story
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let (id, title) = (&story.id, title.trim());
    match attempt {
        Some(k) => format!("{id}: {title} (attempt {k})\n\nStory: {id}\nAttempt: {k}\n"),
        None => format!("{id}: {title}\n\nStory: {id}\n"),
    }
}

/// A new worktree made ready: `.worktreeinclude` copied, `worktree.share`
/// linked; what was done goes to the log.
pub(super) fn furnish(
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
