//! `ai-sdlc review [<ID>]`: every story branch against its base, computed
//! without touching a working tree; with an id, that story's diff.

use crate::cli::ReviewArgs;
use crate::config::Config;
use crate::error::Error;
use crate::land::{Counts, Fit, Landing, base, branch_of, counts, landings, merge_order, predict};
use crate::paths::rel;
use serde_json::json;
use std::io::Write;

pub fn run(config: &Config, args: &ReviewArgs) -> Result<(), Error> {
    let scan = crate::board::scan(config)?;
    let base = base(config)?;
    let all = merge_order(landings(config, &scan)?);
    let fail = |e: String| Error::failed(e);
    let predictions = predict(&config.root, &base, &all).map_err(fail)?;
    let previous = crate::land::merge::previous_tips(&config.root).map_err(fail)?;
    let none = Vec::new();
    let previous_of = |id: &str| previous.get(id).unwrap_or(&none);
    let shown: Vec<&Landing> = match &args.id {
        Some(id) => {
            let one: Vec<&Landing> = all.iter().filter(|l| &l.story.id == id).collect();
            if one.is_empty() {
                return Err(Error::usage(match scan.get(id) {
                    Some(s) => format!(
                        "{id} has no branch yet ({} does not exist): run it first",
                        branch_of(s)
                    ),
                    None => {
                        format!("{id}: no such story on the board; `ai-sdlc status` lists them")
                    }
                }));
            }
            one
        }
        None => all.iter().collect(),
    };
    let mut rows = Vec::new();
    let board = crate::board::Board::of(config);
    for l in &shown {
        let c = counts(&config.root, &base, &l.branch).map_err(fail)?;
        let tip = crate::git::refs::commit_of(&config.root, &format!("refs/heads/{}", l.branch))
            .map_err(|e| fail(e.message))?;
        let older = crate::land::stack::stale_deps(&config.root, &board, &l.story, &tip);
        rows.push((*l, c, older));
    }
    let attempts: std::collections::HashMap<String, crate::runner::best_of::Record> = rows
        .iter()
        .filter_map(|(l, _, _)| {
            let id = &l.story.id;
            Some((id.clone(), crate::runner::best_of::read_record(&board, id)?))
        })
        .collect();
    if args.json {
        outln!(
            "{}",
            json_of(&base, &rows, &predictions, &previous, &attempts)
        );
        return Ok(());
    }
    if rows.is_empty() {
        errln!("ai-sdlc: no story has a branch yet; `ai-sdlc run` makes them");
        return Ok(());
    }
    outln!("Story branches against {base} (in merge order):");
    let width = rows
        .iter()
        .map(|(l, _, _)| l.branch.len())
        .max()
        .unwrap_or(0);
    for (l, c, older) in &rows {
        outln!(
            "{}",
            line(l, c, older, &predictions[&l.story.id].text(), width)
        );
    }
    if args.id.is_some() {
        let l = rows[0].0;
        let kept = previous_of(&l.story.id);
        if !kept.is_empty() {
            outln!("Its old tips, kept when land moved its branch (oldest first):");
            for (r, c) in kept {
                outln!("  {r}  {}", &c[..c.len().min(12)]);
            }
        }
        if let Some(a) = attempts.get(&l.story.id) {
            for text in attempt_lines(&l.story.id, a) {
                outln!("{text}");
            }
        }
        let range = format!("{base}...{}", l.branch);
        let diff = if args.stat {
            crate::git::run(&config.root, &["diff", "--stat", &range, "--"])
        } else {
            crate::git::run(&config.root, &["diff", "--stat", "--patch", &range, "--"])
        }
        .map_err(|e| Error::failed(e.message))?;
        show(&diff, !args.no_pager && !args.stat);
    } else {
        outln!(
            "`ai-sdlc review <ID>` shows a story's diff; `ai-sdlc land` lands them in this order; see {} for the board",
            rel(&config.root, &config.stories_dir())
        );
    }
    Ok(())
}

/// `review --json`: each story's branch against the base.
fn json_of(
    base: &str,
    rows: &[(&Landing, Counts, Vec<String>)],
    predictions: &std::collections::HashMap<String, crate::land::Prediction>,
    previous: &std::collections::HashMap<String, Vec<(String, String)>>,
    attempts: &std::collections::HashMap<String, crate::runner::best_of::Record>,
) -> serde_json::Value {
    let none = Vec::new();
    let previous_of = |id: &str| previous.get(id).unwrap_or(&none);
    let list: Vec<_> = rows
        .iter()
        .map(|(l, c, older)| {
            let p = &predictions[&l.story.id];
            json!({
                "id": l.story.id, "title": l.story.title, "status": l.story.status.as_str(),
                "branch": l.branch, "base": base,
                "ahead": c.ahead, "behind": c.behind,
                "files": c.files, "insertions": c.insertions, "deletions": c.deletions,
                "merged": c.ahead == 0 && l.story.merged_at.is_some(),
                "nothing_to_merge": c.ahead == 0,
                "merges_cleanly": matches!(p.now, Fit::Clean(_)),
                "conflicts": conflicts(&p.now),
                "merges_cleanly_in_order": matches!(p.after, Fit::Clean(_)),
                "conflicts_in_order": conflicts(&p.after),
                "merged_before": p.before,
                "conflicts_with": p.with,
                "stacked_on_older": older,
                "previous_tips": previous_of(&l.story.id)
                    .iter()
                    .map(|(r, c)| json!({"ref": r, "commit": c}))
                    .collect::<Vec<_>>(),
                "pr_url": l.story.pr_url, "merged_at": l.story.merged_at,
                "attempts": attempts.get(&l.story.id),
            })
        })
        .collect();
    json!({ "base": base, "stories": list })
}

/// A story's attempts (SPEC §17), a line each: agent, verify result,
/// lines changed, cost, time, and what became of it.
fn attempt_lines(id: &str, a: &crate::runner::best_of::Record) -> Vec<String> {
    let held = match a.chosen {
        Some(k) => format!("its branch holds attempt {k}"),
        None => "none was chosen".into(),
    };
    let mut out = vec![
        format!(
            "Its attempts ({}, pick: {}; {held}):",
            a.attempts.len(),
            a.pick
        ),
        format!(
            "     #  {:<9} {:<11} {:<7} {:>6} {:>8} {:>7}",
            "agent", "outcome", "verify", "lines", "cost", "time"
        ),
    ];
    for t in &a.attempts {
        let chosen = a.chosen == Some(t.attempt);
        let what = if chosen {
            format!(
                "chosen: {}",
                crate::agent::first_line(a.why.as_deref().unwrap_or(""), 120)
            )
        } else if t.passed() {
            "passed, not chosen".into()
        } else {
            t.reason()
        };
        let fate = match &t.worktree_kept {
            Some(_) if t.outcome != "not_started" => format!("; worktree kept: {}", t.worktree),
            _ => String::new(),
        };
        out.push(format!(
            "  {} {:>2}  {:<9} {:<11} {:<7} {:>6} {:>8} {:>7}  {what}{fate}",
            if chosen { "*" } else { " " },
            t.attempt,
            t.agent,
            t.outcome,
            t.verify.as_str(),
            t.lines.map_or("-".into(), |l| l.to_string()),
            t.cost_usd.map_or("-".into(), crate::agent::usd),
            crate::time::human_duration(t.duration_ms),
        ));
    }
    out.push(format!(
        "  Each attempt's work is kept under refs/ai-sdlc/attempts/{id}/<k>; `ai-sdlc pick {id} <k>` switches to another."
    ));
    out
}

fn conflicts(f: &Fit) -> Vec<String> {
    match f {
        Fit::Conflict(files) => files.clone(),
        Fit::Clean(_) => Vec::new(),
    }
}

fn line(l: &Landing, c: &Counts, older: &[String], fit: &str, width: usize) -> String {
    let state = if c.ahead == 0 && l.story.merged_at.is_some() {
        "merged".to_string()
    } else if c.ahead == 0 {
        "nothing to merge".to_string()
    } else {
        format!("merge: {fit}")
    };
    let mut pr = l
        .story
        .pr_url
        .as_deref()
        .map(|u| format!("  PR {u}"))
        .unwrap_or_default();
    if !older.is_empty() {
        // Its dependency moved on (a review round) after it started.
        pr.push_str(&format!("  stacked on an older {}", older.join(", ")));
    }
    format!(
        "  {:<8} {:<11} {:<width$}  {:>3} ahead {:>3} behind  {:>3} files +{} -{}  {state}{pr}",
        l.story.id,
        l.story.status.as_str(),
        l.branch,
        c.ahead,
        c.behind,
        c.files,
        c.insertions,
        c.deletions,
    )
}

/// Print `text` (a diff: what an agent wrote, so never raw control
/// characters on a terminal), through a pager when stdout is a terminal.
fn show(text: &str, page: bool) {
    let tty = crate::term::stdout_is_terminal();
    let text = if tty {
        crate::term::printable(text).into_owned()
    } else {
        text.to_string()
    };
    if tty && page {
        let pager = std::env::var("PAGER")
            .ok()
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| "less -FX".into());
        let spawned = std::process::Command::new("sh")
            .args(["-c", &pager])
            .stdin(std::process::Stdio::piped())
            .spawn();
        if let Ok(mut child) = spawned {
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(text.as_bytes());
            }
            let _ = child.wait();
            return;
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}
