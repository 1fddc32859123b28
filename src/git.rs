//! Every git process the tool starts is built here, so hardening is
//! written once: no hook, fsmonitor, pager, editor or credential prompt
//! runs, the repo variables a parent may have set are removed, and stdin is
//! closed. git's own error text reaches the user; no git call can hang the
//! runner.
//!
//! A repo's own config (`.git/config`, `config.worktree`: scope local and
//! worktree) is shared by every worktree, so an agent can write it. Any
//! key there that makes git run a command (a filter driver, a diff or
//! merge driver, `core.sshCommand`, `gpg.program`, a credential helper...)
//! is blanked on the command line of each git call that could run it, and
//! a diff runs no external diff or textconv. The user's own global and
//! system config are left as they are.

use crate::process;
use crate::shutdown::{self, State};
use std::fmt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

/// Variables that would point git at another repo than the one we name
/// (set when we run under a git hook or `rebase --exec`).
const REPO_VARS: [&str; 9] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
];

/// A git command that failed, or could not start.
#[derive(Debug, Clone)]
pub struct GitError {
    pub args: String,
    /// The exit code; `None` when git could not start or died by a signal.
    pub code: Option<i32>,
    /// git's stderr, or why it could not run.
    pub message: String,
}

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<GitError> for String {
    fn from(e: GitError) -> String {
        e.message
    }
}

/// `git -C dir <hardening> args...`, ready to run.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        // An agent may set core.fsmonitor or plant hooks in the shared
        // config and hooks folder: never run either. Nothing can create a
        // hook under /dev/null.
        .args([
            "-c",
            "core.fsmonitor=false",
            "-c",
            "core.hooksPath=/dev/null",
            "--no-pager",
        ])
        .args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_EDITOR", "true")
        .env("GIT_PAGER", "cat");
    for var in REPO_VARS {
        cmd.env_remove(var);
    }
    cmd
}

/// The longest any git call may take (a checkout of a huge repo, a slow
/// hook) before it is stopped: nothing may hang the runner.
const GIT_LIMIT: Duration = Duration::from_secs(600);

/// Run git in `dir`: its stdout on success. It is killed after
/// `GIT_LIMIT`, or at once on a forced stop (a second Ctrl-C).
pub fn run(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    run_allowing(dir, args, &[0])
}

/// Config keys with which git runs a command (as git spells them, lower
/// case but for the subsection).
const RUNS_A_COMMAND: &str = r"^(core\.(sshcommand|askpass|editor|pager)|sequence\.editor|(merge|filter)\..+\.(driver|clean|smudge|process)|gpg\.(.+\.)?program|credential\.(.+\.)?helper|uploadpack\.packobjectshook)$";

/// Subcommands (as we call them) that run no command a config key names.
fn inert(args: &[&str]) -> bool {
    match args {
        ["worktree", sub, ..] => matches!(*sub, "list" | "prune"),
        [first, ..] => matches!(
            *first,
            "rev-parse" | "symbolic-ref" | "merge-base" | "config" | "ls-files" | "update-index"
        ),
        [] => true,
    }
}

/// `-c <key>=` for every key of the repo's own config that would make git
/// run a command: blank, so git runs nothing.
fn blanked(dir: &Path) -> Result<Vec<String>, GitError> {
    let listed = run_plain(
        dir,
        &["config", "--show-scope", "--get-regexp", RUNS_A_COMMAND],
        &[0, 1],
    )?;
    let mut out = Vec::new();
    for line in listed.lines() {
        let mut parts = line.splitn(2, '\t');
        let (Some(scope), Some(rest)) = (parts.next(), parts.next()) else {
            continue;
        };
        let key = rest.split(' ').next().unwrap_or("");
        if matches!(scope, "local" | "worktree") && !key.is_empty() {
            out.push("-c".into());
            out.push(format!("{key}="));
        }
    }
    Ok(out)
}

/// `run`, where exit codes `ok` also mean success (`diff --no-index`
/// exits 1 when the files differ).
pub fn run_allowing(dir: &Path, args: &[&str], ok: &[i32]) -> Result<String, GitError> {
    if inert(args) {
        return run_plain(dir, args, ok);
    }
    let blank = blanked(dir)?;
    let mut all: Vec<&str> = blank.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    // A diff runs no external diff (diff.external, diff.<driver>.command)
    // and no textconv filter: a blank one would be an error, not a no-op.
    if args.first() == Some(&"diff") {
        let at = blank.len() + 1;
        all.splice(at..at, ["--no-ext-diff", "--no-textconv"]);
    }
    run_plain(dir, &all, ok)
}

fn run_plain(dir: &Path, args: &[&str], ok: &[i32]) -> Result<String, GitError> {
    let failed = |code, message| GitError {
        args: args.join(" "),
        code,
        message,
    };
    // Its own process group: a terminal's Ctrl-C is ours to act on, and a
    // stop takes the hooks it started along.
    let mut child = command(dir, args)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            failed(
                None,
                format!("cannot run git: {e}; install git and make sure it is on PATH"),
            )
        })?;
    let out = child.stdout.take().and_then(process::drain);
    let err = child.stderr.take().and_then(process::drain);
    let deadline = Instant::now() + GIT_LIMIT;
    let status = loop {
        match child.wait_timeout(Duration::from_millis(200)) {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline && shutdown::state() != State::Forced => {}
            other => {
                process::signal_group(child.id(), libc::SIGKILL);
                let _ = child.wait();
                let why = match other {
                    Err(e) => format!("cannot wait for it: {e}"),
                    _ if shutdown::state() == State::Forced => "stopped by a forced stop".into(),
                    _ => format!(
                        "did not finish within {} s; stopped it",
                        GIT_LIMIT.as_secs()
                    ),
                };
                return Err(failed(None, format!("git {}: {why}", args.join(" "))));
            }
        }
    };
    let collect =
        |h: Option<JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    let (out, err) = (collect(out), collect(err));
    if status.code().is_some_and(|c| ok.contains(&c)) {
        return Ok(String::from_utf8_lossy(&out).into_owned());
    }
    let err = String::from_utf8_lossy(&err).trim().to_string();
    let err = if err.is_empty() {
        format!("git {} failed ({status})", args.join(" "))
    } else {
        err
    };
    Err(failed(status.code(), err))
}

/// Does `rev` name an object (`rev-parse --verify --quiet`)? An error only
/// when git itself failed, not when the answer is no.
pub fn resolves(dir: &Path, rev: &str) -> Result<bool, GitError> {
    match run(dir, &["rev-parse", "--verify", "--quiet", rev]) {
        Ok(_) => Ok(true),
        Err(e) if e.code == Some(1) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Is `a` an ancestor of (or the same commit as) `b`?
pub fn is_ancestor(dir: &Path, a: &str, b: &str) -> Result<bool, GitError> {
    match run(dir, &["merge-base", "--is-ancestor", a, b]) {
        Ok(_) => Ok(true),
        Err(e) if e.code == Some(1) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repo whose own config and hooks an agent has filled with
    /// commands: none of them runs in any git call the tool makes.
    #[test]
    fn nothing_the_repos_config_or_hooks_name_runs() {
        let tmp = std::env::temp_dir().join(format!("ai-sdlc-git-{}", std::process::id()));
        let (repo, marks) = (tmp.join("repo"), tmp.join("marks"));
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&marks).unwrap();
        let sh = |script: &str| {
            let st = Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(&repo)
                .env("M", &marks)
                .status()
                .unwrap();
            assert!(st.success(), "{script}");
        };
        sh(
            "git init -q && git config user.email t@e.invalid && git config user.name t \
            && echo '*.txt filter=x diff=x' > .gitattributes && echo a > a.txt \
            && git add -A && git commit -qm init",
        );
        sh(r#"git config core.fsmonitor "touch $M/fsmonitor"
            git config filter.x.clean "touch $M/clean; cat"
            git config filter.x.smudge "touch $M/smudge; cat"
            git config diff.x.textconv "touch $M/textconv; cat"
            git config diff.external "touch $M/external"
            git config gpg.program "touch $M/gpg"
            git config commit.gpgsign true
            for h in pre-commit post-checkout post-commit reference-transaction; do
              printf '#!/bin/sh\ntouch %s/%s\n' "$M" "$h" > .git/hooks/$h; chmod +x .git/hooks/$h
            done"#);
        std::fs::write(repo.join("a.txt"), "changed\n").unwrap();
        std::fs::write(repo.join("b.txt"), "new\n").unwrap();
        run(&repo, &["status", "--porcelain"]).unwrap();
        run(&repo, &["diff", "HEAD"]).unwrap();
        run(&repo, &["add", "-A"]).unwrap();
        // gpg.program is blanked, so signing (asked for) fails: nothing ran.
        let signed = run(&repo, &["commit", "-qm", "work"]);
        assert!(signed.is_err(), "a commit signed by the repo's gpg.program");
        run(
            &repo,
            &["-c", "commit.gpgsign=false", "commit", "-qm", "work"],
        )
        .unwrap();
        let wt = tmp.join("wt");
        run(
            &repo,
            &["worktree", "add", "-q", "-b", "w", wt.to_str().unwrap()],
        )
        .unwrap();
        assert!(wt.join("a.txt").exists());
        let ran: Vec<String> = std::fs::read_dir(&marks)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(ran.is_empty(), "these ran: {ran:?}");
        // The same calls without the tool's guard do run them (the test can fail).
        sh("git status --porcelain >/dev/null && git add -A");
        assert!(marks.join("fsmonitor").exists() || marks.join("clean").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
