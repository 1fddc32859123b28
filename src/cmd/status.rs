//! `ai-sdlc status [--json]`: the board, grouped by status.

use crate::board::{self, Board, Scan, Status, lock};
use crate::cli::StatusArgs;
use crate::config::Config;
use crate::error::Error;
use crate::paths::rel;
use serde_json::json;
use std::io::{self, Write};

const GROUPS: [&str; 5] = ["in-progress", "ready", "backlog", "blocked", "done"];

pub fn run(config: &Config, args: &StatusArgs) -> Result<(), Error> {
    let scan = board::scan(config)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let board = Board::of(config);
    let held = |s: &board::Story| s.status == Status::InProgress && lock::is_held(&board, &s.id);
    let res = if args.json {
        let stories: Vec<_> = scan
            .stories
            .iter()
            .map(|s| {
                json!({
                    "id": s.id, "title": s.title, "status": s.status.as_str(),
                    "priority": s.priority, "created": s.created, "type": s.kind,
                    "labels": s.labels, "epic": s.epic, "dependencies": s.dependencies,
                    "slug": s.slug, "branch": s.branch, "worktree_path": s.worktree_path,
                    "pr_url": s.pr_url, "merged_at": s.merged_at,
                    "not_before": s.not_before.map(crate::time::iso_seconds),
                    "blocked_reason": s.blocked_reason,
                    "stuck": (s.status != Status::Done && s.status != Status::Blocked)
                        .then(|| board::stuck(s, &scan)).flatten(),
                    "path": rel(&config.root, &s.path),
                    "claimed": held(s),
                })
            })
            .collect();
        let errors: Vec<_> = scan
            .bad
            .iter()
            .map(|b| json!({"path": rel(&config.root, &b.path), "reason": b.reason}))
            .collect();
        writeln!(out, "{}", json!({"stories": stories, "errors": errors}))
    } else {
        print_board(&mut out, config, &scan, held)
    };
    let flushed = res.and_then(|_| out.flush());
    drop(out);
    if !args.json {
        for b in &scan.bad {
            errln!(
                "warning: {}: {} (skipped; fix the file to bring it back)",
                rel(&config.root, &b.path),
                b.reason
            );
        }
    }
    match flushed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::failed(format!("cannot write to stdout: {e}"))),
    }
}

fn print_board(
    out: &mut impl Write,
    config: &Config,
    scan: &Scan,
    held: impl Fn(&board::Story) -> bool,
) -> io::Result<()> {
    let n = scan.stories.len();
    writeln!(
        out,
        "Board {} ({n} {})",
        config.root.display(),
        if n == 1 { "story" } else { "stories" }
    )?;
    if n == 0 {
        writeln!(
            out,
            "\nNo stories yet. Add one: ai-sdlc add \"Fix login\" --ready"
        )?;
    }
    let title_width = scan
        .stories
        .iter()
        .map(|s| s.title.chars().count())
        .max()
        .unwrap_or(0)
        .min(48);
    let mut others: Vec<&str> = scan
        .stories
        .iter()
        .map(|s| s.status.as_str())
        .filter(|s| !GROUPS.contains(s))
        .collect();
    others.sort();
    others.dedup();
    for group in GROUPS.iter().copied().chain(others) {
        let members: Vec<&board::Story> = scan
            .stories
            .iter()
            .filter(|s| s.status.as_str() == group)
            .collect();
        if members.is_empty() {
            continue;
        }
        let typo = board::Status::parse(group)
            .meant()
            .map(|k| {
                format!("  (not a status ai-sdlc runs: did you mean `{k}`? never run as it is)")
            })
            .unwrap_or_default();
        writeln!(out, "\n{} ({}){typo}", group.to_uppercase(), members.len())?;
        for s in members {
            let title: String = if s.title.chars().count() > title_width {
                let mut t: String = s.title.chars().take(title_width - 1).collect();
                t.push('…');
                t
            } else {
                s.title.clone()
            };
            let now = crate::time::now_ms();
            let note = match s.status {
                Status::InProgress if held(s) => "running (claimed by a runner)".to_string(),
                Status::InProgress if !s.run_by_us() => {
                    "a stage of the TS ai-sdlc (not a run of this tool); `run --story` takes it over".to_string()
                }
                Status::InProgress => match crate::runner::plan::busy_worktree(config, s) {
                    Some(pid) => {
                        format!("no runner holds it, but process {pid} still works in its worktree")
                    }
                    None => "stale: no runner holds it; the next `run` returns it to ready".into(),
                },
                Status::Blocked => s.blocked_reason.clone().unwrap_or_default(),
                Status::Done => match (&s.merged_at, &s.pr_url) {
                    (Some(_), Some(u)) => format!("merged; PR {u}"),
                    (Some(_), None) => "merged".to_string(),
                    (None, Some(u)) => format!("PR {u}"),
                    (None, None) => String::new(),
                },
                Status::Ready if s.not_before.is_some_and(|t| t > now) => format!(
                    "parked until {} (a usage cap); `run` starts it then, `run --force` now",
                    crate::time::local_clock(s.not_before.unwrap_or(0), now)
                ),
                _ if !s.dependencies.is_empty() => board::stuck(s, scan)
                    .unwrap_or_else(|| format!("after {}", s.dependencies.join(", "))),
                _ => String::new(),
            };
            let prio = s
                .priority
                .map(|p| format!("p{p}"))
                .unwrap_or_else(|| "p-".into());
            let line = format!(
                "  {:<8} {:>5}  {:<title_width$}  {}",
                s.id, prio, title, note
            );
            writeln!(out, "{}", crate::term::printable(line.trim_end()))?;
        }
    }
    Ok(())
}
