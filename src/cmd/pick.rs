//! `ai-sdlc pick <ID> <k>`: a story with several attempts (SPEC §17)
//! switched by hand to attempt `k`: its branch moves to that attempt's
//! kept tip; the tip it replaces is kept under `refs/ai-sdlc/previous/`.

use crate::board::{Board, lock};
use crate::cli::PickArgs;
use crate::config::Config;
use crate::error::Error;
use crate::runner::best_of::{attempt_ref, read_record, write_record};

pub fn run(config: &Config, args: &PickArgs) -> Result<(), Error> {
    let (root, id) = (&config.root, args.id.as_str());
    let board = Board::of(config);
    let story = board.load(id).map_err(|b| Error::usage(b.to_string()))?;
    let mut record = read_record(&board, id).ok_or_else(|| {
        Error::usage(format!(
            "{id} has had no attempts to pick from; `ai-sdlc run --story {id} --attempts 3` makes some"
        ))
    })?;
    let numbers: Vec<String> = record
        .attempts
        .iter()
        .map(|t| t.attempt.to_string())
        .collect();
    let k = args
        .attempt
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|k| record.attempts.iter().any(|t| t.attempt == *k))
        .ok_or_else(|| {
            Error::usage(format!(
                "{id} has no attempt {:?}; its attempts are {} (`ai-sdlc review {id}` lists them)",
                args.attempt,
                numbers.join(", ")
            ))
        })?;
    if lock::is_held(&board, id) {
        return Err(Error::failed(format!(
            "a run is working on {id} now; pick once it ends"
        )));
    }
    let tip = crate::git::refs::commit_of(root, &attempt_ref(id, k)).map_err(|_| {
        Error::failed(format!(
            "attempt {k} of {id} left no work to switch to (it failed before anything was committed); its worktree, if kept, is {}",
            record
                .attempts
                .iter()
                .find(|t| t.attempt == k)
                .map_or("gone", |t| t.worktree.as_str())
        ))
    })?;
    let branch = crate::land::branch_of(&story);
    // The story file names it: only a branch name ai-sdlc would use (as `land`).
    if let Some(why) = crate::worktree::branch_problem(&branch) {
        return Err(Error::usage(format!("{id}: {why}")));
    }
    let old = crate::git::refs::commit_of(root, &format!("refs/heads/{branch}"))
        .map_err(|e| Error::failed(format!("cannot read {branch}: {}", e.message)))?;
    if old == tip {
        outln!("{id}: {branch} is already attempt {k}");
        return Ok(());
    }
    let kept =
        crate::land::merge::move_branch(root, (id, &branch), &old, &tip).map_err(Error::failed)?;
    record.chosen = Some(k);
    record.why = Some("picked by hand (ai-sdlc pick)".into());
    if let Err(e) = write_record(&board, id, &record) {
        errln!("ai-sdlc: warning: {e}");
    }
    outln!(
        "{id}: {branch} is now attempt {k} ({}); what it held is kept as {kept}",
        &tip[..tip.len().min(12)]
    );
    Ok(())
}
