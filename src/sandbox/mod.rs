//! What an agent gets of the machine (SPEC §16): its environment, built
//! from an allowlist rather than inherited; the filesystem it may write
//! and read (`for_story`, the Landlock policy of a story, in `landlock`);
//! and a block of ports of its own. README "Safety" says what each setup
//! gets.
//!
//! The agent's environment: the system's basics, `AI_SDLC_*`, its preset's
//! own keys (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, ...), `agent.env.pass`
//! (names, or `PREFIX_*`) and `agent.env.set`, both trusted config.
//! Everything else (`GH_TOKEN`, `SSH_AUTH_SOCK`, `AWS_*`, `NPM_TOKEN`, ...)
//! is dropped: the runner commits, pushes and opens pull requests itself,
//! so the agent needs none of those powers. Trusted phase commands
//! (`worktree.setup`, a phase's own `command`, `merge.verify`) are the
//! user's own and keep the whole environment (a build may need its
//! registry token).

pub mod landlock;

use crate::agent::Preset;
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// What every process needs, or what says how to reach the network; no
/// secret among them.
const BASICS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "TZ",
    "TMPDIR",
    "XDG_*",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "NIX_SSL_CERT_FILE",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_NOSYSTEM",
    "AI_SDLC_*",
    // Under the Slurm launcher the agent runs inside a job step: the ids
    // and the allocation are where it runs, not a secret.
    "SLURM_*",
];

/// Does `name` match `pattern` (`NAME`, or `PREFIX_*`)?
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// The environment variable names an agent of `preset` keeps: the basics,
/// its own keys, and `pass`.
fn kept(preset: Preset, pass: &[String], name: &str) -> bool {
    BASICS
        .iter()
        .chain(preset.env_keys())
        .any(|p| matches(p, name))
        || pass.iter().any(|p| matches(p, name))
}

/// The agent's environment, from `from` (the executor's own): what it
/// keeps, then `set`; and the names it does not get.
pub fn agent_env(
    preset: Preset,
    pass: &[String],
    set: &[(String, String)],
    from: impl Iterator<Item = (OsString, OsString)>,
) -> (Vec<(OsString, OsString)>, Vec<String>) {
    let mut env = Vec::new();
    let mut dropped = Vec::new();
    for (k, v) in from {
        let name = k.to_string_lossy();
        if kept(preset, pass, &name) {
            env.push((k, v));
        } else {
            dropped.push(name.into_owned());
        }
    }
    for (k, v) in set {
        env.retain(|(n, _)| n.as_os_str() != OsStr::new(k));
        env.push((k.into(), v.into()));
    }
    dropped.sort();
    (env, dropped)
}

/// The filesystem sandbox of a story's agents, held while it runs: the
/// ruleset, and the private `TMPDIR` (removed with it: it was made here).
pub struct Sandbox {
    pub ruleset: landlock::Ruleset,
    tmpdir: PathBuf,
    /// The repo's objects, when the agent works in a worktree of it.
    objects: Option<PathBuf>,
}

impl Sandbox {
    /// What its agents' environment gets: `TMPDIR`, and git's index and
    /// new objects in it. The shared `.git` is read-only to an agent, yet
    /// `git add` and `git status` work on a copy of the worktree's index
    /// with new objects kept apart (the repo's are read through
    /// `GIT_ALTERNATE_OBJECT_DIRECTORIES`): aider adds each file it makes,
    /// and gave up on the file when it could not. A commit still fails at
    /// its ref, and the runner commits the worktree itself.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        let mut env = vec![("TMPDIR", self.tmpdir.clone())];
        if let Some(objects) = &self.objects {
            env.push(("GIT_INDEX_FILE", self.tmpdir.join("git-index")));
            env.push(("GIT_OBJECT_DIRECTORY", self.tmpdir.join("git-objects")));
            env.push(("GIT_ALTERNATE_OBJECT_DIRECTORIES", objects.clone()));
        }
        env
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmpdir);
    }
}

/// The sandbox of the agents of a story working in `worktree` of `repo`:
/// `None` when the kernel has no Landlock (the runner says so once).
pub fn for_story(
    preset: Preset,
    config: &crate::config::SandboxConfig,
    repo: &Path,
    worktree: &Path,
    id: &str,
) -> Result<Option<Sandbox>, String> {
    if !config.enabled || landlock::abi().is_none() {
        return Ok(None);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let tmpdir = private_tmp(id).map_err(|e| format!("cannot make its TMPDIR: {e}"))?;
    let mut write = vec![worktree.to_path_buf(), tmpdir.clone()];
    if let Some(h) = &home {
        for s in preset.state() {
            let p = h.join(s.trim_end_matches('/'));
            // Its folders made now, empty: the CLI cannot make them in $HOME.
            if s.ends_with('/') && !p.exists() {
                let _ = std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&p);
            }
            write.push(p);
        }
    }
    for (var, sub) in preset.state_env() {
        if let Some(d) = std::env::var_os(var).filter(|d| !d.is_empty()) {
            let p = PathBuf::from(d).join(sub);
            if !p.exists() {
                let _ = std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&p);
            }
            write.push(p);
        }
    }
    write.extend(config.write.iter().map(|w| at(w, repo, home.as_deref())));
    let mut hide: Vec<PathBuf> = landlock::SECRETS.iter().map(PathBuf::from).collect();
    hide.extend(
        config
            .hide
            .iter()
            .map(|h| at(h, home.as_deref().unwrap_or(repo), home.as_deref())),
    );
    let policy = landlock::Policy { write, home, hide };
    let ruleset = landlock::Ruleset::new(&policy).ok_or("Landlock refused the ruleset")?;
    // The agent's git index starts as the worktree's, read from where
    // `check_link` verified it is (this repo's own metadata, not where an
    // earlier agent may have re-pointed the `.git` file); none for a
    // checkout of its own (`--no-worktree`).
    let objects = crate::worktree::check_link(repo, worktree)
        .ok()
        .and_then(|gitdir| {
            let objects = crate::worktree::common_dir(repo).ok()?.join("objects");
            std::fs::create_dir(tmpdir.join("git-objects")).ok()?;
            let index = gitdir.join("index");
            if std::fs::symlink_metadata(&index).is_ok_and(|m| m.is_file()) {
                let _ = std::fs::copy(&index, tmpdir.join("git-index"));
            }
            Some(objects)
        });
    Ok(Some(Sandbox {
        ruleset,
        tmpdir,
        objects,
    }))
}

/// Where a configured path points: `~/...` under `home`, an absolute path
/// as it is, anything else under `base`.
fn at(p: &str, base: &Path, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => base.join(p),
    }
}

/// A block of ports a story has for itself while it runs, held by a lock
/// (released when the holder exits, however it ends).
pub struct Ports {
    pub first: u16,
    _lock: std::fs::File,
}

/// Where ports start, and the last block's start.
const PORTS_FROM: u16 = 20_000;
const PORTS_TO: u16 = 60_000;

/// This user's own folder `name` under `parent`: made 0700, refused when
/// another user owns it.
fn own_dir(parent: &Path, name: &str) -> std::io::Result<crate::paths::Dir> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let top = crate::paths::Dir::open(parent)?.child_or_create(name)?;
    let meta = std::fs::symlink_metadata(top.path())?;
    // SAFETY: getuid cannot fail.
    if meta.uid() != unsafe { libc::getuid() } {
        return Err(std::io::Error::other(format!(
            "{} belongs to another user",
            top.path().display()
        )));
    }
    let _ = std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700));
    Ok(top)
}

/// The folder of port locks on this host, for this user: under
/// `XDG_RUNTIME_DIR`, else `/tmp/ai-sdlc-<uid>`.
fn lock_dir() -> std::io::Result<crate::paths::Dir> {
    let top = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => own_dir(Path::new(&d), "ai-sdlc")?,
        // SAFETY: getuid cannot fail.
        None => own_dir(
            Path::new("/tmp"),
            &format!("ai-sdlc-{}", unsafe { libc::getuid() }),
        )?,
    };
    top.child_or_create("ports")
}

/// A story's private `TMPDIR`: `$TMPDIR/ai-sdlc-<uid>/tmp/<host>@<ID>@<pid>`
/// (made 0700). Those of this host whose executor is gone (killed
/// outright, so it could not remove its own) are removed first: every
/// entry of that folder was made here.
fn private_tmp(id: &str) -> std::io::Result<PathBuf> {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let root = own_dir(&std::env::temp_dir(), &format!("ai-sdlc-{uid}"))?.child_or_create("tmp")?;
    let host = crate::process::hostname();
    for e in std::fs::read_dir(root.path())?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.split('@');
        let (Some(h), Some(_), Some(pid), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        // SAFETY: kill with signal 0 only asks whether the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if h == host && gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let name = format!("{host}@{id}@{}", std::process::id());
    root.child_or_create(&name)?;
    let path = root.path().join(name);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
    Ok(path)
}

/// Is every port of `first..first+count` free on 127.0.0.1 now?
fn free(first: u16, count: u16) -> bool {
    (first..first.saturating_add(count))
        .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// Reserve `count` free ports for a story, distinct from every block
/// another story on this host holds. Blocks are tried from one that
/// depends on `seed` (the story), so a story often gets the same ones.
pub fn reserve_ports(count: u16, seed: &str) -> Result<Ports, String> {
    let count = count.clamp(1, 1000);
    let dir = lock_dir().map_err(|e| format!("cannot keep port locks: {e}"))?;
    let blocks = u32::from((PORTS_TO - PORTS_FROM) / count);
    let start = seed
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % blocks;
    for i in 0..blocks {
        let first = PORTS_FROM + (((start + i) % blocks) as u16) * count;
        let name = first.to_string();
        let Ok(file) = dir.open_append(&name) else {
            continue;
        };
        // SAFETY: flock on our own descriptor.
        let locked = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } == 0;
        if locked && free(first, count) {
            return Ok(Ports { first, _lock: file });
        }
    }
    Err(format!(
        "no block of {count} free ports between {PORTS_FROM} and {PORTS_TO}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(env: &[(OsString, OsString)]) -> Vec<String> {
        env.iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn an_agent_keeps_the_basics_and_its_own_keys_and_nothing_else() {
        let from = [
            "PATH",
            "HOME",
            "LC_ALL",
            "AI_SDLC_STORY_ID",
            "SLURM_JOB_ID",
            "ANTHROPIC_API_KEY",
            "OPENAI_API_KEY",
            "GH_TOKEN",
            "SSH_AUTH_SOCK",
            "AWS_SECRET_ACCESS_KEY",
            "NPM_TOKEN",
            "MY_TOOL_HOME",
        ]
        .map(|k| (OsString::from(k), OsString::from("v")));
        let pass = vec!["MY_TOOL_*".to_string()];
        let set = vec![("EXTRA".to_string(), "1".to_string())];
        let (env, dropped) = agent_env(Preset::Claude, &pass, &set, from.clone().into_iter());
        assert_eq!(
            names(&env),
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "AI_SDLC_STORY_ID",
                "SLURM_JOB_ID",
                "ANTHROPIC_API_KEY",
                "MY_TOOL_HOME",
                "EXTRA"
            ]
        );
        assert_eq!(
            dropped,
            [
                "AWS_SECRET_ACCESS_KEY",
                "GH_TOKEN",
                "NPM_TOKEN",
                "OPENAI_API_KEY",
                "SSH_AUTH_SOCK"
            ]
        );
        // Codex gets OpenAI's key, not Anthropic's.
        let (env, _) = agent_env(Preset::Codex, &[], &[], from.into_iter());
        let n = names(&env);
        assert!(n.contains(&"OPENAI_API_KEY".to_string()));
        assert!(!n.contains(&"ANTHROPIC_API_KEY".to_string()));
    }

    #[test]
    fn two_stories_get_distinct_free_port_blocks() {
        let seed = format!("unit-{}", std::process::id());
        let a = reserve_ports(10, &seed).unwrap();
        let b = reserve_ports(10, &seed).unwrap();
        assert!(a.first.abs_diff(b.first) >= 10, "{} {}", a.first, b.first);
        drop(a);
        // Released with its holder; still distinct from the one held.
        let c = reserve_ports(10, &seed).unwrap();
        assert!(c.first.abs_diff(b.first) >= 10);
    }
}
