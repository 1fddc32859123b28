//! Commits, and merges made in git's object store only. May run: your own
//! global clean filters and signing program; nothing of the repo's.

use super::{GitError, run, run_allowing, run_env};
use std::path::Path;

/// Commit everything in the work tree at `dir` (`git add -A`: ignored
/// files stay out). `None` when there was nothing to commit.
pub fn commit_all(dir: &Path, message: &str) -> Result<Option<String>, GitError> {
    run(dir, &["add", "-A"])?;
    match run(dir, &["diff", "--cached", "--quiet"]) {
        Ok(_) => return Ok(None),
        Err(e) if e.code == Some(1) => {}
        Err(e) => return Err(e),
    }
    run(dir, &["commit", "--quiet", "-m", message])?;
    Ok(Some(super::refs::short(dir, "HEAD")?))
}

/// A commit of `tree` with `parents`, made by the tool (unsigned).
pub fn commit_tree(
    dir: &Path,
    tree: &str,
    parents: &[&str],
    message: &str,
) -> Result<String, GitError> {
    let mut args = vec![
        "-c",
        "commit.gpgsign=false",
        "commit-tree",
        tree,
        "-m",
        message,
    ];
    for p in parents {
        args.extend(["-p", p]);
    }
    Ok(run(dir, &args)?.trim().to_string())
}

/// How `branch` merges into `onto`.
#[derive(Debug, Clone, PartialEq)]
pub enum Fit {
    /// The merged tree.
    Clean(String),
    /// The files in conflict.
    Conflict(Vec<String>),
}

/// Merge `branch` into `onto` in git's object store only.
pub fn merge_tree(dir: &Path, onto: &str, branch: &str) -> Result<Fit, GitError> {
    let out = run_allowing(
        dir,
        &[
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            onto,
            branch,
        ],
        &[0, 1],
    )?;
    let mut lines = out.lines().filter(|l| !l.is_empty());
    let tree = lines.next().unwrap_or("").to_string();
    let conflicts: Vec<String> = lines.map(str::to_string).collect();
    if tree.is_empty() {
        return Err(GitError {
            args: "merge-tree".into(),
            code: None,
            message: format!("git merge-tree gave no result for {branch}"),
        });
    }
    Ok(if conflicts.is_empty() {
        Fit::Clean(tree)
    } else {
        Fit::Conflict(conflicts)
    })
}

/// Merge `branch` into `onto` as if their history met at `base` (a
/// cherry-pick, when `base` is `branch`'s parent), in the object store.
pub fn merge_tree_from(dir: &Path, base: &str, onto: &str, branch: &str) -> Result<Fit, GitError> {
    let merge_base = format!("--merge-base={base}");
    let out = run_allowing(
        dir,
        &[
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            &merge_base,
            onto,
            branch,
        ],
        &[0, 1],
    )?;
    let mut lines = out.lines().filter(|l| !l.is_empty());
    let tree = lines.next().unwrap_or("").to_string();
    let conflicts: Vec<String> = lines.map(str::to_string).collect();
    Ok(if conflicts.is_empty() {
        Fit::Clean(tree)
    } else {
        Fit::Conflict(conflicts)
    })
}

/// What a replay made.
#[derive(Debug, PartialEq)]
pub enum Replayed {
    /// The new tip: the commits replayed, in order, on the new base.
    Done(String),
    /// The commit that did not apply, and the files in conflict.
    Conflict { commit: String, files: Vec<String> },
    /// The range holds a merge commit, which a replay does not redo.
    HasMerges,
}

/// Replay the commits of `upstream..tip` (oldest first) onto `onto`, in
/// git's object store only: each a cherry-pick that keeps its author, date
/// and message (a rebase that touches no work tree). Nothing points at
/// what it made until the caller moves a ref.
pub fn replay(dir: &Path, onto: &str, upstream: &str, tip: &str) -> Result<Replayed, GitError> {
    let range = format!("{upstream}..{tip}");
    // One call for the whole range: each commit's id, parents, author and
    // message, as five NUL-ended fields.
    let listed = run(
        dir,
        &[
            "log",
            "-z",
            "--reverse",
            "--topo-order",
            "--format=%H %P%x00%an%x00%ae%x00%aI%x00%B",
            &range,
            "--",
        ],
    )?;
    let mut head = onto.to_string();
    for c in parse_log(&listed).map_err(|why| GitError {
        args: format!("log {range}"),
        code: None,
        message: why,
    })? {
        if c.parents.len() != 1 {
            return Ok(Replayed::HasMerges);
        }
        let tree = match merge_tree_from(dir, &c.parents[0], &head, &c.id)? {
            Fit::Clean(t) => t,
            Fit::Conflict(files) => {
                return Ok(Replayed::Conflict {
                    commit: c.id,
                    files,
                });
            }
        };
        head = commit_like(dir, &tree, &head, &c)?;
    }
    Ok(Replayed::Done(head))
}

/// A commit as `replay` reads it.
#[derive(Debug, PartialEq)]
struct Logged {
    id: String,
    parents: Vec<String>,
    name: String,
    email: String,
    date: String,
    message: String,
}

/// `git log -z` with five NUL-separated fields per commit; an id that is
/// not one (a message with a NUL in it) is an error, never a guess.
fn parse_log(out: &str) -> Result<Vec<Logged>, String> {
    if out.trim().is_empty() {
        return Ok(Vec::new());
    }
    let fields: Vec<&str> = out.trim_end_matches('\0').split('\0').collect();
    if !fields.len().is_multiple_of(5) {
        return Err(format!("{} fields, not five per commit", fields.len()));
    }
    fields
        .chunks(5)
        .map(|f| {
            let mut ids = f[0].split(' ').filter(|s| !s.is_empty());
            let id = ids
                .next()
                .filter(|s| super::is_object_id(s))
                .ok_or("not a commit id")?;
            let parents: Vec<String> = ids.map(str::to_string).collect();
            if !parents.iter().all(|p| super::is_object_id(p)) {
                return Err("not a commit id".to_string());
            }
            Ok(Logged {
                id: id.to_string(),
                parents,
                name: f[1].to_string(),
                email: f[2].to_string(),
                date: f[3].to_string(),
                message: f[4].trim_end().to_string(),
            })
        })
        .collect()
}

/// A commit of `tree` on `parent` with the author, date and message of
/// `like`.
fn commit_like(dir: &Path, tree: &str, parent: &str, like: &Logged) -> Result<String, GitError> {
    let env = [
        ("GIT_AUTHOR_NAME", like.name.as_str()),
        ("GIT_AUTHOR_EMAIL", like.email.as_str()),
        ("GIT_AUTHOR_DATE", like.date.as_str()),
    ];
    let args = [
        "-c",
        "commit.gpgsign=false",
        "commit-tree",
        tree,
        "-p",
        parent,
        "-m",
        &like.message,
    ];
    Ok(run_env(dir, &args, &env)?.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";

    #[test]
    fn a_log_of_commits_parses_to_each_with_its_parents_and_message() {
        let out = format!(
            "{A} {B}\0Ann\0a@x\02026-01-01T00:00:00+00:00\0S-1: one\n\nbody\n\0{C} {A} {B}\0Bob\0b@x\02026-01-02T00:00:00+00:00\0merge\n"
        );
        let got = parse_log(&out).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, A);
        assert_eq!(got[0].parents, vec![B]);
        assert_eq!(got[0].message, "S-1: one\n\nbody");
        assert_eq!(got[0].name, "Ann");
        assert_eq!(got[1].parents.len(), 2);
        assert_eq!(parse_log("").unwrap(), vec![]);
    }

    #[test]
    fn a_log_that_does_not_parse_is_an_error_not_a_guess() {
        // A NUL inside a message shifts the fields.
        let out = format!("{A} {B}\0Ann\0a@x\0date\0one\0two\n");
        assert!(parse_log(&out).is_err());
        let out = "not-an-id\0Ann\0a@x\0date\0msg\n";
        assert!(parse_log(out).is_err());
    }
}
