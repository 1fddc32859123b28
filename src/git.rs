//! Every git process the tool starts is built here, so hardening is
//! written once: no fsmonitor, pager, editor or credential prompt runs, the
//! repo variables a parent may have set are removed, and stdin is closed.
//! git's own error text reaches the user.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};

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
        // An agent may set core.fsmonitor in the shared config: never run it.
        .args(["-c", "core.fsmonitor=false", "--no-pager"])
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

/// Run git in `dir`: its stdout on success.
pub fn run(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let failed = |code, message| GitError {
        args: args.join(" "),
        code,
        message,
    };
    let out = command(dir, args).output().map_err(|e| {
        failed(
            None,
            format!("cannot run git: {e}; install git and make sure it is on PATH"),
        )
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let err = if err.is_empty() {
        format!("git {} failed ({})", args.join(" "), out.status)
    } else {
        err
    };
    Err(failed(out.status.code(), err))
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
