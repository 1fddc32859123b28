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

pub mod guard;

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
        [first, ..] => {
            matches!(
                *first,
                "rev-parse"
                    | "symbolic-ref"
                    | "merge-base"
                    | "config"
                    | "ls-files"
                    | "update-index"
            ) || matches!(args, ["diff", "--cached", ..])
        }
        [] => true,
    }
}

/// Does git run a command named by this config key (`section.sub.name`,
/// section and name in lower case)?
fn runs_a_command(key: &str) -> bool {
    let (section, rest) = key.split_once('.').unwrap_or((key, ""));
    let (sub, name) = match rest.rsplit_once('.') {
        Some((sub, name)) => (Some(sub), name),
        None => (None, rest),
    };
    matches!(
        (section, sub, name),
        ("core", None, "sshcommand" | "askpass" | "editor" | "pager")
            | ("sequence", None, "editor")
            | ("merge", Some(_), "driver")
            | ("filter", Some(_), "clean" | "smudge" | "process")
            | ("gpg" | "credential", _, "program" | "helper")
            | ("uploadpack", None, "packobjectshook")
    )
}

/// The `section.sub.name` keys of a git config text with their values
/// (section and name in lower case, as git spells them), or `None` when it
/// does more than a simple reader can follow (includes, continued lines,
/// a variable after a section header, an escaped subsection name).
pub fn config_entries(text: &str) -> Option<Vec<(String, String)>> {
    let mut entries = Vec::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if line.ends_with('\\') {
            return None;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let (head, after) = rest.split_once(']')?;
            let head = head.trim();
            if !(after.trim().is_empty() || after.trim_start().starts_with(['#', ';']))
                || head.contains('\\')
            {
                return None;
            }
            section = match head.split_once(char::is_whitespace) {
                Some((name, sub)) => {
                    let sub = sub.trim();
                    let sub = sub.strip_prefix('"')?.strip_suffix('"')?;
                    format!("{}.{sub}", name.to_ascii_lowercase())
                }
                // `[section.sub]` (old style): all lower case.
                None => head.to_ascii_lowercase(),
            };
            if section == "include" || section.starts_with("includeif") {
                return None;
            }
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim().trim_matches('"')),
            None => (line, "true"),
        };
        if section.is_empty() || name.is_empty() || name.contains(char::is_whitespace) {
            return None;
        }
        entries.push((
            format!("{section}.{}", name.to_ascii_lowercase()),
            value.to_string(),
        ));
    }
    Some(entries)
}

/// The keys of a git config text (see `config_entries`).
fn config_keys(text: &str) -> Option<Vec<String>> {
    Some(config_entries(text)?.into_iter().map(|(k, _)| k).collect())
}

/// The repo's own config files for the checkout at `dir` (its common
/// `config`, and the `config.worktree` files), found as git finds them
/// from `dir/.git`; `None` when that is not a plain layout.
fn repo_config_files(dir: &Path) -> Option<Vec<std::path::PathBuf>> {
    let dotgit = dir.join(".git");
    let meta = dotgit.symlink_metadata().ok()?;
    let gitdir = if meta.is_dir() {
        dotgit
    } else if meta.is_file() && meta.len() < 4096 {
        let text = std::fs::read_to_string(&dotgit).ok()?;
        let p = std::path::PathBuf::from(text.strip_prefix("gitdir:")?.trim());
        if p.is_absolute() { p } else { dir.join(p) }
    } else {
        return None;
    };
    let common = match std::fs::read_to_string(gitdir.join("commondir")) {
        Ok(c) => {
            let c = std::path::PathBuf::from(c.trim());
            if c.is_absolute() { c } else { gitdir.join(c) }
        }
        Err(_) => gitdir.clone(),
    };
    Some(vec![
        common.join("config"),
        common.join("config.worktree"),
        gitdir.join("config.worktree"),
    ])
}

/// The keys of the repo's own config that make git run a command, read
/// from its files without starting git when they are plain.
fn repo_command_keys(dir: &Path) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for f in repo_config_files(dir)? {
        let text = match std::fs::read(&f) {
            Ok(b) if b.len() <= 1 << 20 => String::from_utf8(b).ok()?,
            Ok(_) => return None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return None,
        };
        out.extend(
            config_keys(&text)?
                .into_iter()
                .filter(|k| runs_a_command(k)),
        );
    }
    Some(out)
}

/// `-c <key>=` for every key of the repo's own config that would make git
/// run a command: blank, so git runs nothing.
fn blanked(dir: &Path) -> Result<Vec<String>, GitError> {
    let keys = match repo_command_keys(dir) {
        Some(keys) => keys,
        None => {
            let listed = run_plain(
                dir,
                &["config", "--show-scope", "--get-regexp", RUNS_A_COMMAND],
                &[0, 1],
            )?;
            listed
                .lines()
                .filter_map(|line| {
                    let (scope, rest) = line.split_once('\t')?;
                    let key = rest.split(' ').next()?;
                    (matches!(scope, "local" | "worktree") && !key.is_empty())
                        .then(|| key.to_string())
                })
                .collect()
        }
    };
    Ok(keys
        .into_iter()
        .flat_map(|k| ["-c".to_string(), format!("{k}={}", neutral(&k))])
        .collect())
}

/// The value that makes a key run nothing of the repo's: git's own
/// default where an empty value would be an error (`ssh`), else empty.
fn neutral(key: &str) -> &'static str {
    if key == "core.sshcommand" { "ssh" } else { "" }
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
    // A push runs git's own receive-pack, not `remote.<name>.receivepack`
    // (a list in which the repo's value comes first, so `-c` cannot
    // replace it), and no `core.gitProxy` (the same) nor `ext::` transport.
    let after = blank.len() + 1;
    match args.first() {
        Some(&"diff") => {
            all.splice(after..after, ["--no-ext-diff", "--no-textconv"]);
        }
        Some(&"push") => {
            all.splice(after..after, ["--receive-pack=git-receive-pack"]);
            all.splice(
                0..0,
                [
                    "-c",
                    "protocol.git.allow=never",
                    "-c",
                    "protocol.ext.allow=never",
                ],
            );
        }
        _ => {}
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

    #[test]
    fn command_keys_are_read_as_git_spells_them() {
        let text = "[core]\n\tbare = false\n\tsshCommand = x\n[filter \"LFS2\"]\n\tclean = y\n[Credential]\n\thelper\n[diff.x]\n\ttextconv = z\n";
        let keys: Vec<String> = config_keys(text)
            .unwrap()
            .into_iter()
            .filter(|k| runs_a_command(k))
            .collect();
        assert_eq!(
            keys,
            ["core.sshcommand", "filter.LFS2.clean", "credential.helper"]
        );
        assert_eq!(config_keys("[include]\n\tpath = other\n"), None);
        assert_eq!(config_keys("[core] sshCommand = x\n"), None);
        assert_eq!(config_keys("[filter \"a\\\"b\"]\n\tclean = x\n"), None);
        assert_eq!(config_keys("[core]\n\tx = a \\\n b\n"), None);
    }

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
        // A filter defined through an include: the simple reader gives up,
        // git is asked, and it is blanked all the same.
        sh(
            r#"printf '[filter "y"]\n\tclean = touch %s/included\n' "$M" > .git/extra.cfg
            git config include.path extra.cfg
            echo '*.md filter=y' >> .gitattributes && echo x > c.md"#,
        );
        assert_eq!(repo_command_keys(&repo), None);
        run(&repo, &["add", "-A"]).unwrap();
        run(&repo, &["status", "--porcelain"]).unwrap();
        assert!(!marks.join("included").exists(), "the included filter ran");
        // A push to a remote whose receive-pack command the repo names.
        let remote = tmp.join("remote.git");
        sh(&format!(
            r#"git init -q --bare {r} && git config remote.origin.url {r} && git config remote.origin.receivepack "touch $M/receivepack; git-receive-pack""#,
            r = remote.display()
        ));
        run(
            &repo,
            &["push", "--quiet", "origin", "HEAD:refs/heads/pushed"],
        )
        .unwrap();
        assert!(
            !marks.join("receivepack").exists(),
            "the repo's receivepack ran"
        );
        assert!(run(&remote, &["rev-parse", "--verify", "pushed"]).is_ok());
        // The same calls without the tool's guard do run them (the test can fail).
        sh("git status --porcelain >/dev/null && git add -A");
        assert!(marks.join("fsmonitor").exists() || marks.join("clean").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
