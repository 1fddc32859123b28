//! What a story's run writes while it holds the claim: the fields of its
//! `story.md`, kept in step in the board and in the copy of the board its
//! worktree holds (which the TS tool reads while the worktree exists), and
//! what each phase reports: its section file, its completion flag, its
//! time and cost for `last_run.phases`.
//!
//! The worktree's copies of the story's files are marked skip-worktree in
//! the worktree's own index: our writes to them never show as the agent's
//! changes, never enter its commit, and never keep a clean worktree from
//! being removed. The story branch keeps the board files as its base had
//! them, so merging it changes nothing on the board.

use crate::board::frontmatter::{Change, Value};
use crate::board::{self, Board, STORY_FILE};
use crate::ipc::PhaseResult;
use crate::logs::RunLog;
use crate::paths::{self, Dir};
use crate::report::PhaseTime;
use crate::workflow;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The story's folder in its worktree, and which of its files the
/// worktree tracks (those are kept in step).
struct Copy {
    worktree: PathBuf,
    /// The story folder, relative to the repo (and so to the worktree).
    rel: PathBuf,
    tracked: Vec<String>,
}

/// `last_run.phases` holds at most this many entries.
const MAX_PHASES: usize = 64;

pub struct Recorder {
    board: Board,
    id: String,
    copy: Mutex<Option<Copy>>,
    /// One per phase (or round) that ran.
    phases: Mutex<Vec<PhaseTime>>,
    /// The workflow's last phase: its flag is written with the outcome
    /// (one write of the story fewer), not when it is reported.
    last_phase: Option<String>,
    pending: Mutex<Vec<(&'static str, bool)>>,
    /// `false` for an attempt (SPEC §17): its phases are timed, but only
    /// the chosen one's work counts on the board, written by the runner.
    writes: bool,
    /// What the last phase that succeeded handed on (its final message,
    /// or the end of a plain command's output).
    output: Mutex<Option<String>>,
}

impl Recorder {
    /// For story `id`; with its worktree, whose copies are kept in step
    /// from now on.
    pub fn new(
        board: &Board,
        id: &str,
        worktree: Option<&Path>,
        last_phase: Option<&str>,
    ) -> Recorder {
        let copy = worktree.and_then(|w| {
            let rel = board
                .story_dir(id)
                .strip_prefix(&board.root)
                .ok()?
                .to_path_buf();
            Some(Copy {
                tracked: keep_out_of_the_agents_changes(w, &rel),
                worktree: w.to_path_buf(),
                rel,
            })
        });
        Recorder {
            board: board.clone(),
            id: id.to_string(),
            copy: Mutex::new(copy),
            phases: Mutex::new(Vec::new()),
            last_phase: last_phase.map(str::to_string),
            pending: Mutex::new(Vec::new()),
            writes: true,
            output: Mutex::new(None),
        }
    }

    /// For one attempt of story `id`, or its judge: phases are timed,
    /// nothing is written.
    pub fn quiet(board: &Board, id: &str) -> Recorder {
        Recorder {
            writes: false,
            ..Recorder::new(board, id, None, None)
        }
    }

    /// Flags of the last phase, for the outcome's write.
    pub fn take_pending(&self) -> Vec<(&'static str, Option<Value>)> {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.drain(..)
            .map(|(f, v)| (f, Some(Value::Bool(v))))
            .collect()
    }

    /// The worktree is gone: nothing more to keep in step.
    pub fn forget_worktree(&self) {
        *self.copy.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The worktree's copy of the story's folder, when it tracks `file`.
    fn copy_dir(&self, file: &str) -> Option<(Dir, String)> {
        let guard = self.copy.lock().unwrap_or_else(|p| p.into_inner());
        let c = guard.as_ref()?;
        if !c.tracked.iter().any(|t| t == file) {
            return None;
        }
        let path = c.worktree.join(&c.rel);
        // The worktree is the agent's: never through a symlink it planted.
        match paths::open_beneath(&c.worktree, &path, false) {
            Ok(d) => Some((d, paths::rel(&self.board.root, &path.join(file)))),
            Err(e) => {
                log::warn!(
                    "[{}] cannot keep the worktree's copy of {file} in step: {e}",
                    self.id
                );
                None
            }
        }
    }

    /// Change fields of the story, in the board and in the worktree's copy.
    pub fn patch(&self, changes: &[Change]) -> Result<(), String> {
        self.board.patch(&self.id, changes)?;
        if let Some((dir, shown)) = self.copy_dir(STORY_FILE)
            && let Err(e) = board::patch_in(&dir, &shown, changes)
        {
            // The board is what counts; the copy is TS's view of it.
            log::warn!("[{}] the worktree's copy is not in step: {e}", self.id);
        }
        Ok(())
    }

    /// Write a section file, in the board and in the worktree's copy.
    fn section(&self, file: &str, text: &str) -> Result<(), String> {
        self.board.write_section(&self.id, file, text)?;
        if let Some((dir, shown)) = self.copy_dir(file)
            && let Err(e) = dir.replace(file, text.as_bytes(), None)
        {
            log::warn!(
                "[{}] cannot write the worktree's copy {shown}: {e}",
                self.id
            );
        }
        Ok(())
    }

    /// Record a phase's end: its output in its section file, its flag;
    /// say so in the log. A write that fails is logged; the run goes on.
    pub fn phase(&self, r: PhaseResult, log: &mut RunLog) {
        if r.outcome == "skipped" {
            let flag = workflow::flag(&r.phase).unwrap_or("its flag");
            log.note(&format!(
                "phase {}: already complete ({flag}: true); skipped",
                r.phase
            ));
            return;
        }
        let mut phases = self.phases.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded whatever the executor's stdout says (an agent can write to it).
        if phases.len() >= MAX_PHASES {
            log.note("more phase results than any workflow has; ignoring this one");
            return;
        }
        phases.push(PhaseTime {
            phase: r.phase.clone(),
            round: r.round,
            outcome: r.outcome.clone(),
            duration_ms: r.duration_ms,
            cost_usd: r.cost_usd,
            verdict: r.verdict.clone(),
        });
        drop(phases);
        if r.outcome != "succeeded" {
            return;
        }
        *self.output.lock().unwrap_or_else(|p| p.into_inner()) = r.output.clone();
        if !self.writes {
            return;
        }
        if let (Some(sec), Some(text)) = (workflow::section_of(&r.phase), &r.output) {
            match self.section(sec.file, &format!("{}\n", workflow::bounded(text))) {
                Ok(()) => log.note(&format!("phase {}: its output is in {}", r.phase, sec.file)),
                Err(e) => log.note(&format!("phase {}: {e}", r.phase)),
            }
        }
        let approved = r.verdict.as_deref().is_none_or(|v| v == "approved");
        if let (Some(f), true) = (workflow::flag(&r.phase), approved)
            && self.last_phase.as_deref() == Some(r.phase.as_str())
        {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((f, true));
            return;
        }
        let changes: Vec<Change> = match (workflow::flag(&r.phase), approved) {
            (None, _) => Vec::new(),
            (Some(f), true) => vec![(f, Some(Value::Bool(true)))],
            // Changes requested: implement again (also after an interruption).
            (Some(_), false) => vec![
                ("implementation_complete", Some(Value::Bool(false))),
                ("reviews_complete", Some(Value::Bool(false))),
            ],
        };
        if let Err(e) = self.patch(&changes) {
            log.note(&format!(
                "phase {}: its completion is not recorded: {e}",
                r.phase
            ));
        }
        if !approved {
            log.note(&format!(
                "phase {} round {}: changes requested ({})",
                r.phase,
                r.round,
                r.verdict.as_deref().unwrap_or("")
            ));
        }
    }

    /// What the last phase that succeeded handed on.
    pub fn output(&self) -> Option<String> {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The phases that ran, in order.
    pub fn phases(&self) -> Vec<PhaseTime> {
        self.phases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `last_run.phases`, when any phase ran.
    pub fn phases_value(&self) -> Option<Value> {
        let p = self.phases();
        (!p.is_empty()).then(|| Value::List(p.iter().map(PhaseTime::value).collect()))
    }
}

/// Mark the worktree's tracked copies of the story's files skip-worktree
/// in its index; returns their names.
fn keep_out_of_the_agents_changes(worktree: &Path, rel: &Path) -> Vec<String> {
    // No copy of the story folder in the worktree (the board is not
    // committed): nothing to keep in step, no git to ask.
    if !worktree.join(rel).is_dir() {
        return Vec::new();
    }
    let rel_s = rel.to_string_lossy();
    let listed = match crate::git::status::tracked(worktree, &rel_s) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("cannot list the board files in {}: {e}", worktree.display());
            return Vec::new();
        }
    };
    let files: Vec<&str> = listed
        .iter()
        .map(String::as_str)
        .filter(|f| Path::new(f).parent() == Some(rel))
        .collect();
    if files.is_empty() {
        return Vec::new();
    }
    if let Err(e) = crate::git::status::skip_worktree(worktree, &files) {
        log::warn!(
            "cannot keep the board files in {} out of the story's changes: {e}",
            worktree.display()
        );
        return Vec::new();
    }
    files
        .iter()
        .filter_map(|f| Path::new(f).file_name()?.to_str().map(str::to_string))
        .collect()
}
