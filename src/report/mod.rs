//! The reporter: one thread owns the terminal. Workers, readers and the
//! signal thread send `Note`s; a `Sink` renders them (plain lines, quiet,
//! the live dashboard). Also the run summary and its JSON.

pub mod dashboard;

use crate::board::Story;
use crate::story::Outcome;
use crate::time::human_duration;
use crate::worktree::WorktreeFate;
use crossbeam_channel::{Sender, TrySendError, bounded};
use serde::Serialize;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

/// Notes waiting for the reporter: a terminal slower than an agent's
/// output must not grow the runner.
const NOTES_QUEUED: usize = 4096;

/// Notes not shown because the reporter was behind.
static NOT_SHOWN: AtomicU64 = AtomicU64::new(0);

/// Where notes go. Sending never waits: when the reporter is behind (a
/// terminal slower than an agent's output, a stderr pipe nobody reads)
/// the note is only counted, so no worker, reader or signal handler ever
/// stalls on the screen. The run logs have every line, and the summary is
/// made from the results, not from notes.
#[derive(Clone)]
pub struct Notes(Sender<Note>);

impl Notes {
    pub fn send(&self, note: Note) {
        if let Err(TrySendError::Full(_)) = self.0.try_send(note) {
            NOT_SHOWN.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What happened, for people.
#[derive(Debug, Clone)]
pub enum Note {
    /// How many stories the run may start.
    Planned {
        total: usize,
    },
    Started {
        id: String,
        title: String,
        pid: Option<u32>,
        worktree: Option<String>,
        branch: Option<String>,
    },
    Phase {
        id: String,
        name: String,
        index: usize,
        count: usize,
        /// "started, pid 42", "succeeded", "exited with code 3: ..."
        message: String,
    },
    /// The agent's latest output line.
    Output {
        id: String,
        line: String,
    },
    Info {
        id: Option<String>,
        text: String,
    },
    Warn {
        id: Option<String>,
        text: String,
    },
    Finished(Box<StoryResult>),
    /// The run waits for the agent's usage cap to lift at this time (ms
    /// since the epoch), and why; `None`: it no longer waits.
    Paused(Option<u64>, String),
    /// How many stories may run at once now (after a rate limit).
    Concurrency(usize),
    /// What the run has spent, against its budget: "$0.42 of $2.00".
    Spent(String),
}

/// One story's line in the summary and in `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct StoryResult {
    pub id: String,
    pub title: String,
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    pub branch: Option<String>,
    pub worktree: Option<String>,
    /// What became of the worktree: `worktree_kept` (and `worktree_parked`
    /// when it was parked for reuse) in JSON.
    #[serde(flatten, serialize_with = "fate_fields")]
    pub fate: Option<WorktreeFate>,
    pub log: Option<String>,
    pub error: Option<String>,
    /// `run --land`: what became of its landing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landed: Option<crate::land::queue::LandOutcome>,
    /// `run --pr`: its pull request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    /// Why it was skipped, as a code (`dependency_missing`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// Skipped while it waits on a dependency outside this run: it does
    /// not fail the run.
    #[serde(skip)]
    pub waiting: bool,
    /// Why the outcome could not be written to `story.md` (the run then exits 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unrecorded: Option<String>,
    /// What the agent's CLI reported, where it does.
    pub cost_usd: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub final_message: Option<String>,
    /// The kind of failure the agent's CLI reported (`auth`, `rate_limit`, ...).
    pub failure: Option<crate::agent::FailureKind>,
    /// The commit the runner made of the agent's work.
    pub commit: Option<String>,
    /// Parked at a usage cap: when it may start again.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "iso_time")]
    pub not_before: Option<u64>,
    /// Time and cost of each phase (and round) that ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseTime>,
    /// Of its spend, what the governor counted already (its attempts').
    #[serde(skip)]
    pub counted: crate::governor::Spend,
}

fn iso_time<S: serde::Serializer>(t: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(ms) => s.serialize_str(&crate::time::iso_seconds(*ms)),
        None => s.serialize_none(),
    }
}

/// `worktree_kept` (SPEC §7), and `worktree_parked: true` for a parked one.
fn fate_fields<S: serde::Serializer>(fate: &Option<WorktreeFate>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let parked = *fate == Some(WorktreeFate::Parked);
    let mut m = s.serialize_map(None)?;
    m.serialize_entry(
        "worktree_kept",
        &matches!(fate, Some(WorktreeFate::Kept(_))),
    )?;
    if parked {
        m.serialize_entry("worktree_parked", &true)?;
    }
    m.end()
}

impl StoryResult {
    /// A story that did not run (or not to the end), and why.
    pub fn not_run(story: &Story, outcome: Outcome, why: impl Into<String>) -> StoryResult {
        let mut r = StoryResult::new(&story.id, &story.title, outcome);
        r.error = Some(why.into());
        r
    }

    /// A story that ran: what its run reported.
    pub fn from_run(id: &str, title: &str, run: crate::story::RunResult) -> StoryResult {
        let mut r = StoryResult::new(id, title, run.outcome);
        r.exit_code = run.exit_code;
        r.signal = run.signal;
        r.duration_ms = run.duration_ms;
        r.error = run.error;
        r.cost_usd = run.report.cost_usd;
        r.input_tokens = run.report.input_tokens;
        r.output_tokens = run.report.output_tokens;
        r.final_message = run.report.final_message;
        r.failure = run.failure;
        r.commit = run.commit;
        r.not_before = run.not_before;
        r.counted = run.counted;
        r
    }

    pub fn new(id: &str, title: &str, outcome: Outcome) -> StoryResult {
        StoryResult {
            id: id.to_string(),
            title: title.to_string(),
            outcome,
            exit_code: None,
            signal: None,
            duration_ms: 0,
            branch: None,
            worktree: None,
            fate: None,
            landed: None,
            pr_url: None,
            reason: None,
            waiting: false,
            log: None,
            error: None,
            unrecorded: None,
            cost_usd: None,
            input_tokens: None,
            output_tokens: None,
            final_message: None,
            failure: None,
            commit: None,
            not_before: None,
            phases: Vec::new(),
            counted: Default::default(),
        }
    }
}

/// A phase's time and cost: `last_run.phases`, and `phases` in `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseTime {
    pub phase: String,
    pub round: u32,
    pub outcome: String,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

impl PhaseTime {
    pub fn value(&self) -> crate::board::frontmatter::Value {
        let mut m = vec![
            (
                "phase".to_string(),
                crate::board::frontmatter::Value::Str(self.phase.clone()),
            ),
            (
                "round".to_string(),
                crate::board::frontmatter::Value::Int(self.round.into()),
            ),
            (
                "outcome".to_string(),
                crate::board::frontmatter::Value::Str(self.outcome.clone()),
            ),
            (
                "duration_ms".to_string(),
                crate::board::frontmatter::Value::Int(self.duration_ms.min(i64::MAX as u64) as i64),
            ),
        ];
        if let Some(c) = self.cost_usd {
            m.push((
                "cost_usd".to_string(),
                crate::board::frontmatter::Value::Float(c),
            ));
        }
        if let Some(v) = &self.verdict {
            m.push((
                "verdict".to_string(),
                crate::board::frontmatter::Value::Str(v.clone()),
            ));
        }
        crate::board::frontmatter::Value::Map(m)
    }
}

/// Renders notes. One implementation per output style.
pub trait Sink: Send {
    fn note(&mut self, note: Note);
    /// Does this sink redraw on a timer? (Only then does `tick` run.)
    fn ticks(&self) -> bool {
        false
    }
    /// Called about ten times a second while the run lasts (redraws).
    fn tick(&mut self) {}
    /// The run is over: clear whatever is live on screen.
    fn close(&mut self) {}
}

/// One line per lifecycle event, prefixed with the story id.
pub struct Plain {
    /// Single-story mode streams the agent's output as it comes.
    pub stream_output: bool,
}

impl Sink for Plain {
    fn note(&mut self, note: Note) {
        let mut err = Printable(std::io::stderr().lock());
        let _ = match note {
            Note::Started {
                id,
                title,
                pid,
                worktree,
                branch,
            } => {
                let mut line = format!("[{id}] started {title:?}");
                if let Some(pid) = pid {
                    line.push_str(&format!(", pid {pid}"));
                }
                if let Some(w) = worktree {
                    line.push_str(&format!(", worktree {w}"));
                }
                if let Some(b) = branch {
                    line.push_str(&format!(", branch {b}"));
                }
                writeln!(err, "{line}")
            }
            Note::Phase {
                id,
                name,
                count: 0,
                message,
                ..
            } => writeln!(err, "[{id}] {name}: {message}"),
            Note::Phase {
                id,
                name,
                index,
                count,
                message,
            } => writeln!(err, "[{id}] phase {}/{count} {name}: {message}", index + 1),
            Note::Output { line, .. } if self.stream_output => writeln!(err, "{line}"),
            Note::Output { .. } => Ok(()),
            Note::Info { id: Some(id), text } => writeln!(err, "[{id}] {text}"),
            Note::Info { id: None, text } => writeln!(err, "ai-sdlc: {text}"),
            Note::Warn { id: Some(id), text } => writeln!(err, "[{id}] warning: {text}"),
            Note::Warn { id: None, text } => writeln!(err, "ai-sdlc: warning: {text}"),
            Note::Finished(r) => writeln!(err, "[{}] {}", r.id, finished_line(&r)),
            Note::Planned { .. } | Note::Paused(..) | Note::Concurrency(_) | Note::Spent(_) => {
                Ok(())
            }
        };
    }
}

/// A writer that makes everything written through it `printable`.
struct Printable<W: Write>(W);

impl<W: Write> Write for Printable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(crate::term::printable(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Only the summary.
pub struct Quiet;

impl Sink for Quiet {
    fn note(&mut self, note: Note) {
        if let Note::Warn { id, text } = note {
            match id {
                Some(id) => errln!("[{id}] warning: {text}"),
                None => errln!("ai-sdlc: warning: {text}"),
            }
        }
    }
}

pub fn finished_line(r: &StoryResult) -> String {
    let mut line = match r.outcome {
        Outcome::Skipped => r.outcome.describe().to_string(),
        o => format!("{} in {}", o.describe(), human_duration(r.duration_ms)),
    };
    if let Some(e) = &r.error {
        line.push_str(&format!(": {e}"));
    }
    if let Some(u) = &r.unrecorded {
        line.push_str(&format!("; warning: {u}"));
    }
    line
}

/// One story's lines in the summary: outcome, time, cost, worktree,
/// branch, log, tokens; then why it did not succeed, or what its agent said.
/// `parts` joined by two spaces into lines of at most `width` (a part that
/// would pass it starts a line of its own, indented under the story), so a
/// log path is never cut; without a width, one line.
fn packed(
    parts: &[String],
    id_w: usize,
    width: Option<usize>,
    cut: &dyn Fn(String) -> String,
) -> String {
    let Some(w) = width else {
        return parts.join("  ") + "\n";
    };
    let indent = " ".repeat(id_w + 4);
    let mut out = String::new();
    let mut line = String::new();
    for p in parts {
        let fits = line.chars().count() + 2 + p.chars().count() < w;
        if line.is_empty() {
            line = p.clone();
        } else if fits {
            line.push_str("  ");
            line.push_str(p);
        } else {
            out.push_str(&cut(std::mem::take(&mut line)));
            out.push('\n');
            line = format!("{indent}{p}");
        }
    }
    out.push_str(&cut(line));
    out.push('\n');
    out
}

fn result_lines(
    s: &mut String,
    r: &StoryResult,
    id_w: usize,
    width: Option<usize>,
    cut: &dyn Fn(String) -> String,
) {
    let mut parts = vec![format!(
        "  {:<id_w$}  {:<9}  {:>7}{}",
        r.id,
        r.outcome.as_str(),
        if r.outcome == Outcome::Skipped {
            "-".into()
        } else {
            human_duration(r.duration_ms)
        },
        r.cost_usd
            .map(|c| format!("  {}", crate::agent::usd(c)))
            .unwrap_or_default()
    )];
    if let Some(t) = r.not_before {
        parts.push(format!(
            "until {}",
            crate::time::local_clock(t, crate::time::now_ms())
        ));
    }
    match (&r.worktree, &r.fate) {
        (Some(w), Some(WorktreeFate::Kept(why))) => {
            parts.push(format!("worktree kept ({why}): {w}"))
        }
        (Some(_), Some(WorktreeFate::Parked)) => parts.push("worktree parked for reuse".into()),
        (Some(_), Some(WorktreeFate::Removed)) => parts.push("worktree removed".into()),
        (Some(w), None) => parts.push(format!("worktree kept: {w}")),
        (None, _) => {}
    }
    if let Some(b) = &r.branch {
        parts.push(b.clone());
    }
    if let Some(l) = &r.log {
        parts.push(format!("log {l}"));
    }
    // The cost is up front; the tokens, at the end.
    if let Some(u) = (crate::agent::Report {
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        ..Default::default()
    })
    .usage_text()
    {
        parts.push(u);
    }
    s.push_str(&packed(&parts, id_w, width, cut));
    if let Some(e) = &r.error
        && r.outcome != Outcome::Succeeded
    {
        s.push_str(&format!("  {:<id_w$}  {e}\n", ""));
    }
    if let Some(m) = r
        .final_message
        .as_deref()
        .filter(|_| r.outcome == Outcome::Succeeded)
    {
        s.push_str(&cut(format!(
            "  {:<id_w$}  \u{2192} {}",
            "",
            crate::agent::first_line(m, 400)
        )));
        s.push('\n');
    }
    if let Some(u) = &r.unrecorded {
        s.push_str(&format!("  {:<id_w$}  warning: {u}\n", ""));
    }
}

pub struct Reporter {
    tx: Notes,
    /// Dropped by `finish`: other senders (the signal handler's) may live on.
    close: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    pub fn start(mut sink: Box<dyn Sink>) -> Reporter {
        let (tx, rx) = bounded::<Note>(NOTES_QUEUED);
        let (close, closed) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("reporter".into())
            .spawn(move || {
                // An idle run must cost nothing: no timer unless the sink redraws.
                let tick = if sink.ticks() {
                    crossbeam_channel::tick(std::time::Duration::from_millis(100))
                } else {
                    crossbeam_channel::never()
                };
                loop {
                    crossbeam_channel::select! {
                        recv(rx) -> note => match note {
                            Ok(n) => sink.note(n),
                            Err(_) => break,
                        },
                        recv(tick) -> _ => sink.tick(),
                        recv(closed) -> _ => {
                            // Render what was sent before the close.
                            for n in rx.try_iter() {
                                sink.note(n);
                            }
                            break;
                        }
                    }
                }
                sink.close();
            })
            .ok();
        Reporter {
            tx: Notes(tx),
            close: Some(close),
            thread,
        }
    }

    pub fn sender(&self) -> Notes {
        self.tx.clone()
    }

    /// Wait until every note sent so far is rendered, and close the sink.
    pub fn finish(mut self) {
        drop(self.close.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Counts by outcome.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub succeeded: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub cancelled: usize,
    pub skipped: usize,
    pub parked: usize,
}

impl Totals {
    pub fn of(results: &[StoryResult]) -> Totals {
        let mut t = Totals::default();
        for r in results {
            *match r.outcome {
                Outcome::Succeeded => &mut t.succeeded,
                Outcome::Failed => &mut t.failed,
                Outcome::TimedOut => &mut t.timed_out,
                Outcome::Cancelled => &mut t.cancelled,
                Outcome::Skipped => &mut t.skipped,
                Outcome::Parked => &mut t.parked,
            } += 1;
        }
        t
    }
}

/// The run's cost and tokens, summed over the stories whose agent reported them.
pub fn usage_total(results: &[StoryResult]) -> crate::agent::Report {
    let mut total = crate::agent::Report::default();
    for r in results {
        total.add_usage(&crate::agent::Report {
            cost_usd: r.cost_usd,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            ..Default::default()
        });
    }
    total
}

/// The `--json` object of SPEC §7, with the run's cost and tokens.
pub fn json(results: &[StoryResult], duration_ms: u64) -> String {
    let t = Totals::of(results);
    let usage = usage_total(results);
    serde_json::json!({
        "results": results,
        "succeeded": t.succeeded,
        "failed": t.failed,
        "timed_out": t.timed_out,
        "cancelled": t.cancelled,
        "skipped": t.skipped,
        "parked": t.parked,
        "duration_ms": duration_ms,
        "cost_usd": usage.cost_usd,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
    })
    .to_string()
}

/// The human summary: one line per story (cut to `width` on a terminal, so
/// nothing wraps; the most useful columns first), the reason under each
/// story that did not succeed, and where to look next.
pub fn summary(results: &[StoryResult], duration_ms: u64, width: Option<usize>) -> String {
    let t = Totals::of(results);
    let usage = usage_total(results)
        .usage_text()
        .map(|u| format!("; {u}"))
        .unwrap_or_default();
    let parked = match t.parked {
        0 => String::new(),
        n => format!(", {n} parked"),
    };
    let mut s = format!(
        "\nSummary: {} succeeded, {} failed, {} timed out, {} cancelled, {} skipped{parked} in {}{usage}\n",
        t.succeeded,
        t.failed,
        t.timed_out,
        t.cancelled,
        t.skipped,
        human_duration(duration_ms)
    );
    let id_w = results.iter().map(|r| r.id.len()).max().unwrap_or(0);
    let cut = |line: String| match width {
        Some(w) if line.chars().count() >= w => {
            let mut l: String = line.chars().take(w.saturating_sub(2)).collect();
            l.push('…');
            l
        }
        _ => line,
    };
    for r in results {
        result_lines(&mut s, r, id_w, width, &cut);
    }
    let not_shown = NOT_SHOWN.load(Ordering::Relaxed);
    if not_shown > 0 {
        s.push_str(&format!(
            "{not_shown} lines were not shown (the terminal could not keep up); the run logs have them all\n"
        ));
    }
    if width.is_some() && !results.is_empty() {
        s.push_str("More: ai-sdlc logs <ID>, ai-sdlc worktrees, ai-sdlc status\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_line_wider_than_the_terminal_goes_on_below_never_cutting_the_log_path() {
        let parts: Vec<String> = [
            "  S-0001  succeeded     0.8s  $0.02",
            "worktree removed",
            "ai-sdlc/S-0001-write-the-notes-file",
            "log .ai-sdlc/stories/S-0001/logs/20261206T092014.751Z.log",
            "2400 tokens in, 120 out",
        ]
        .map(String::from)
        .to_vec();
        let cut = |l: String| l;
        let text = packed(&parts, 6, Some(120), &cut);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines.iter().all(|l| l.chars().count() < 120), "{text}");
        assert!(
            lines[1]
                .starts_with("          log .ai-sdlc/stories/S-0001/logs/20261206T092014.751Z.log"),
            "{text}"
        );
        // Not on a terminal: one line, as before.
        assert_eq!(packed(&parts, 6, None, &cut).lines().count(), 1);
    }
}
