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

/// The pull request's text: the story, its acceptance criteria, the review.
fn body(config: &Config, story: &Story) -> String {
    let board = Board::of(config);
    let story_text = board.text(&story.id).unwrap_or_default();
    let body = crate::prompt::body_of(&story_text);
    let summary: String = body
        .lines()
        .skip_while(|l| l.starts_with('#') || l.trim().is_empty())
        .take_while(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = format!("{}\n", summary.trim());
    if let Some(ac) = crate::prompt::acceptance_criteria(&body) {
        out.push_str(&format!("\n## Acceptance criteria\n\n{ac}\n"));
    }
    if let Some(review) = board.section(&story.id, "review.md") {
        out.push_str(&format!(
            "\n## Review notes\n\n{}\n",
            crate::workflow::bounded(&review)
        ));
    }
    out.push_str(&format!(
        "\n---\nStory {} on the ai-sdlc board.\n",
        story.id
    ));
    crate::agent::cut(&out, 60_000)
}

/// Push the branch and open its pull request, unless `pr_url` says one is open.
pub fn open(config: &Config, base: &str, story: &Story, branch: &str) -> Result<Opened, String> {
    if let Some(url) = &story.pr_url {
        return Ok(Opened::Already(url.clone()));
    }
    let remote = &config.land.remote;
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    git::push::push(&config.root, remote, &refspec, false)
        .map_err(|e| format!("cannot push {branch} to {remote}: {e}"))?;
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
        "gh", "pr", "create", "--head", branch, "--base", base, "--title", &title, "--body", &body,
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
        .patch(&story.id, &[("pr_url", text(&url))])
        .map_err(|e| format!("opened {url}, but {e}"))?;
    Ok(Opened::New(url))
}
