//! `ai-sdlc pr <ID>... | --all`: push each story branch to `pr.remote` and
//! open a pull request with the GitHub CLI; `pr_url` on the story (the TS
//! tool's field) says it is open, and it is never opened twice.

use crate::board::{Board, Story, text};
use crate::config::Config;
use crate::error::Error;
use crate::git;
use std::time::Duration;

pub enum Opened {
    New(String),
    Already(String),
}

/// Can pull requests be opened here at all? `gh` on PATH, the remote set.
pub fn ready(config: &Config) -> Result<(), Error> {
    if !crate::process::on_path("gh") {
        return Err(Error::usage(
            "gh (the GitHub CLI) is not on PATH: install it (https://cli.github.com) and run `gh auth login`",
        ));
    }
    let remote = &config.land.remote;
    if !git::push::has_remote(&config.root, remote) {
        return Err(Error::usage(format!(
            "this repo has no remote {remote:?} to push story branches to: add one (git remote add {remote} <url>) or set pr.remote in {}",
            config.file_name()
        )));
    }
    Ok(())
}

/// The agent's final message of the story's latest run, from its run log
/// (where the runner writes its first lines).
fn final_message(config: &Config, story: &Story) -> Option<String> {
    let (runs, dir) = crate::logs::runs(&Board::of(config), &story.id);
    let name = runs.first()?.file_name()?.to_str()?.to_string();
    let bytes = dir?.read(&name, 16 << 20).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("[runner] final message | ").map(|(_, m)| m))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// The pull request's text: the story's own text (its template comment
/// gone), the agent's final message, the review's notes and verdict.
fn body(config: &Config, story: &Story) -> String {
    let board = Board::of(config);
    let story_text = board.text(&story.id).unwrap_or_default();
    // The title heading is the pull request's title already.
    let mut out = crate::prompt::description(&story_text);
    if out.is_empty() {
        out = "(The story has no description.)".into();
    }
    out.push('\n');
    if let Some(m) = final_message(config, story) {
        out.push_str(&format!("\n## What the agent said\n\n{m}\n"));
    }
    if let Some(review) = board.section(&story.id, crate::workflow::REVIEW_FILE) {
        let verdict = match crate::workflow::verdict(&review) {
            crate::workflow::Verdict::Approved => "approved",
            _ => "changes requested",
        };
        out.push_str(&format!(
            "\n## Review ({verdict})\n\n{}\n",
            crate::workflow::bounded(&review)
        ));
    }
    out.push_str(&format!(
        "\n---\nStory {} on the ai-sdlc board.\n",
        story.id
    ));
    crate::agent::cut(&out, 60_000)
}

/// Where a story's pull request goes: its one unmerged dependency's
/// branch (a stacked pull request), else the base.
pub fn target(config: &Config, base: &str, story: &Story) -> String {
    let root = &config.root;
    let Ok(base_tip) = git::refs::commit_of(root, &format!("refs/heads/{base}")) else {
        return base.to_string();
    };
    let board = Board::of(config);
    let unmerged: Vec<String> = story
        .dependencies
        .iter()
        .filter_map(|d| board.load(d).ok())
        .filter(|d| d.merged_at.is_none())
        .map(|d| super::branch_of(&d))
        .filter(|b| {
            git::refs::commit_of(root, &format!("refs/heads/{b}"))
                .is_ok_and(|t| matches!(git::is_ancestor(root, &t, &base_tip), Ok(false)))
        })
        .collect();
    match unmerged.as_slice() {
        [one] => one.clone(),
        _ => base.to_string(),
    }
}

/// Push `branch` to the remote.
fn push(config: &Config, branch: &str) -> Result<(), String> {
    let remote = &config.land.remote;
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    git::push::push(&config.root, remote, &refspec, false)
        .map_err(|e| format!("cannot push {branch} to {remote}: {e}"))
}

/// Push the branch and open its pull request, unless `pr_url` says one is
/// open; a stacked story's goes to its dependency's branch (pushed too).
pub fn open(config: &Config, base: &str, story: &Story, branch: &str) -> Result<Opened, String> {
    if let Some(url) = &story.pr_url {
        return Ok(Opened::Already(url.clone()));
    }
    let into = target(config, base, story);
    if into != base {
        push(config, &into)?;
    }
    push(config, branch)?;
    let title = format!(
        "{}: {}",
        story.id,
        story
            .title
            .chars()
            .filter(|c| !c.is_control())
            .collect::<String>()
    );
    let body = body(config, story);
    let argv = [
        "gh", "pr", "create", "--head", branch, "--base", &into, "--title", &title, "--body", &body,
    ];
    let answer = crate::process::ask(&argv, &config.root, Duration::from_secs(120))?;
    if answer.code != Some(0) {
        return Err(format!(
            "gh pr create failed: {}",
            crate::process::last_word(&answer.text)
        ));
    }
    let url = answer
        .text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with("https://") || l.starts_with("http://"))
        .ok_or_else(|| format!("gh pr create printed no URL: {}", answer.text.trim()))?
        .to_string();
    Board::of(config)
        .patch(
            &story.id,
            &[("pr_url", text(&url)), ("pr_base", text(&into))],
        )
        .map_err(|e| format!("opened {url}, but {e}"))?;
    Ok(Opened::New(url))
}

/// Stacked pull requests whose dependency has merged since: moved to the
/// base (`gh pr edit --base`), as stacked pull requests are. What was done.
pub fn retarget(config: &Config, base: &str, stories: &[Story]) -> Vec<Result<String, String>> {
    let mut out = Vec::new();
    for s in stories {
        let (Some(url), Some(on)) = (&s.pr_url, &s.pr_base) else {
            continue;
        };
        if on == base || s.merged_at.is_some() || target(config, base, s) != *base {
            continue;
        }
        let argv = ["gh", "pr", "edit", url, "--base", base];
        let done = crate::process::ask(&argv, &config.root, Duration::from_secs(120))
            .and_then(|a| match a.code {
                Some(0) => Ok(()),
                _ => Err(format!(
                    "gh pr edit failed: {}",
                    crate::process::last_word(&a.text)
                )),
            })
            .and_then(|()| {
                Board::of(config)
                    .patch(&s.id, &[("pr_base", text(base))])
                    .map_err(|e| e.to_string())
            });
        out.push(match done {
            Ok(()) => Ok(format!(
                "{}: its pull request now targets {base} ({on} merged)",
                s.id
            )),
            Err(e) => Err(format!("{}: cannot retarget {url} to {base}: {e}", s.id)),
        });
    }
    out
}
