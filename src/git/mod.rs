//! Every git process the tool starts is built here, so hardening is
//! written once: every call gets the command-scope config of `harden`
//! (nothing the repo's config names runs: no filter, driver, hook,
//! fsmonitor, credential helper, signing command, transport; see there),
//! the repo variables a parent may have set are removed, stdin is closed,
//! no pager or editor runs, and a diff runs no external diff or textconv.
//! There is no list of calls that "run nothing": each is hardened from the
//! config git will read for it. Output is read through a bound; git's own
//! error text reaches the user; no git call can hang the runner.

pub mod commit;
pub mod diff;
pub mod guard;
pub mod harden;
pub mod push;
pub mod refs;
pub mod status;
pub mod worktree;

use crate::process;
use crate::shutdown::{self, State};
use std::fmt;
use std::io::Read;
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

/// The most a git call's stdout may bring in, unless the call sets its
/// own bound (a listing of a huge repo is a few MiB).
pub const MAX_OUTPUT: usize = 64 << 20;

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

/// `git -C dir args...`, hardened and ready to run.
pub fn command(dir: &Path, args: &[&str]) -> Result<Command, GitError> {
    let settings = harden::settings(dir).map_err(|e| GitError {
        args: args.join(" "),
        code: None,
        message: format!(
            "{e}; ai-sdlc runs no git there until it can tell what that config makes git run"
        ),
    })?;
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).arg("--no-pager");
    let mut args = args.iter().copied();
    if let Some(sub) = args.next() {
        cmd.arg(sub);
        match sub {
            // An external diff or textconv cannot be switched off by config.
            "diff" | "log" | "show" => {
                cmd.args(["--no-ext-diff", "--no-textconv"]);
            }
            // git's own receive-pack, never `remote.<name>.receivepack` (a
            // list in which the repo's value comes first).
            "push" => {
                cmd.arg("--receive-pack=git-receive-pack");
            }
            _ => {}
        }
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_EDITOR", "true")
        .env("GIT_SEQUENCE_EDITOR", "true")
        .env("GIT_PAGER", "cat");
    for var in REPO_VARS {
        cmd.env_remove(var);
    }
    // After any the user set (theirs, and trusted).
    let base: usize = std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    for (i, (k, v)) in settings.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{}", base + i), k)
            .env(format!("GIT_CONFIG_VALUE_{}", base + i), v);
    }
    cmd.env("GIT_CONFIG_COUNT", (base + settings.len()).to_string());
    Ok(cmd)
}

/// The longest any git call may take (a checkout of a huge repo, a slow
/// filter) before it is stopped: nothing may hang the runner.
const GIT_LIMIT: Duration = Duration::from_secs(600);

/// A full object id (SHA-1 or SHA-256 hex): never an option, a range or
/// a name git would resolve.
pub fn is_object_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Run git in `dir`: its stdout on success. It is killed after
/// `GIT_LIMIT`, or at once on a forced stop (a second Ctrl-C).
pub fn run(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    run_allowing(dir, args, &[0])
}

/// `run`, where exit codes `ok` also mean success (`diff --no-index`
/// exits 1 when the files differ).
pub fn run_allowing(dir: &Path, args: &[&str], ok: &[i32]) -> Result<String, GitError> {
    let out = run_bounded(dir, args, ok, MAX_OUTPUT)?;
    if out.cut {
        return Err(GitError {
            args: args.join(" "),
            code: None,
            message: format!(
                "git {}: more than {} MiB of output",
                args.join(" "),
                MAX_OUTPUT >> 20
            ),
        });
    }
    Ok(out.text)
}

/// What a bounded call printed.
#[derive(Debug)]
pub struct Bounded {
    /// At most the bound's bytes of its stdout.
    pub text: String,
    /// It printed more, and was stopped.
    pub cut: bool,
}

/// `run`, with these variables set for git (an author's name and date).
pub fn run_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String, GitError> {
    let out = run_full(dir, args, &[0], MAX_OUTPUT, env)?;
    Ok(out.text)
}

/// `run_allowing`, reading at most `max` bytes of stdout: a call that
/// prints more is stopped there (its exit status then does not count).
pub fn run_bounded(dir: &Path, args: &[&str], ok: &[i32], max: usize) -> Result<Bounded, GitError> {
    run_full(dir, args, ok, max, &[])
}

fn run_full(
    dir: &Path,
    args: &[&str],
    ok: &[i32],
    max: usize,
    env: &[(&str, &str)],
) -> Result<Bounded, GitError> {
    let failed = |code, message| GitError {
        args: args.join(" "),
        code,
        message,
    };
    let started = Instant::now();
    // Its own process group: a terminal's Ctrl-C is ours to act on, and a
    // stop takes the programs it started along.
    let mut child = command(dir, args)?
        .envs(env.iter().copied())
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
    let pgid = child.id();
    let out = child.stdout.take().and_then(|o| read_bounded(o, max, pgid));
    let err = child
        .stderr
        .take()
        .and_then(|e| read_bounded(e, 64 << 10, 0));
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
    log::debug!(
        "git {} ({:.1} ms, {status})",
        args.join(" "),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let collect =
        |h: Option<JoinHandle<(Vec<u8>, bool)>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    let ((out, cut), (err, _)) = (collect(out), collect(err));
    if cut || status.code().is_some_and(|c| ok.contains(&c)) {
        return Ok(Bounded {
            text: String::from_utf8_lossy(&out).into_owned(),
            cut,
        });
    }
    let err = String::from_utf8_lossy(&err).trim().to_string();
    let err = if err.is_empty() {
        format!("git {} failed ({status})", args.join(" "))
    } else {
        err
    };
    Err(failed(status.code(), err))
}

/// Read a pipe on a thread, keeping at most `max` bytes. Past that, the
/// process group `stop` (unless 0) is killed, so it cannot go on writing
/// into a pipe nobody reads; the rest is drained and dropped.
fn read_bounded(
    pipe: impl Read + Send + 'static,
    max: usize,
    stop: u32,
) -> Option<JoinHandle<(Vec<u8>, bool)>> {
    std::thread::Builder::new()
        .name("git-out".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut kept = Vec::new();
            let mut pipe = pipe.take(max as u64 + 1);
            let _ = pipe.read_to_end(&mut kept);
            let cut = kept.len() > max;
            if cut {
                kept.truncate(max);
                if stop != 0 {
                    process::signal_group(stop, libc::SIGKILL);
                }
                let _ = std::io::copy(&mut pipe.into_inner(), &mut std::io::sink());
            }
            (kept, cut)
        })
        .ok()
}

pub use refs::{is_ancestor, resolves};

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
            // Plain git here runs what the repo plants: its words are kept
            // for a failure, not printed.
            let out = Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(&repo)
                .env("M", &marks)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
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
        // A filter defined through an include: followed, and blanked.
        sh(
            r#"printf '[filter "y"]\n\tclean = touch %s/included\n' "$M" > .git/extra.cfg
            git config include.path extra.cfg
            echo '*.md filter=y' >> .gitattributes && echo x > c.md"#,
        );
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

    /// One program-valued key of git-config(1), planted in the repo's own
    /// config (with `extra` keys it needs), and the git call of the tool
    /// that would run it. `{S}` is a script that touches the marker, `{M}`
    /// the marker. `plain`: plain git runs it in this test's setting (some need
    /// a terminal, a server, or are read from the user's own config only).
    struct Plant {
        key: &'static str,
        value: &'static str,
        extra: &'static [(&'static str, &'static str)],
        call: &'static [&'static str],
        plain: bool,
    }

    const fn plant(key: &'static str, value: &'static str, call: &'static [&'static str]) -> Plant {
        Plant {
            key,
            value,
            extra: &[],
            call,
            plain: true,
        }
    }

    const SIGNED: &[(&str, &str)] = &[("commit.gpgSign", "true")];
    const SSH_SIGNED: &[(&str, &str)] = &[("commit.gpgSign", "true"), ("gpg.format", "ssh")];

    const PLANTS: &[Plant] = &[
        plant(
            "core.sshCommand",
            "{S}",
            &["push", "ssh://localhost:1/x", "HEAD:refs/heads/x"],
        ),
        plant(
            "core.gitProxy",
            "{S}",
            &["push", "git://localhost:1/x", "HEAD:refs/heads/x"],
        ),
        Plant {
            extra: &[("protocol.ext.allow", "always")],
            ..plant(
                "url.ext::{S}.insteadOf",
                "evil:",
                &["push", "evil:", "HEAD:refs/heads/x"],
            )
        },
        plant(
            "protocol.ext.allow",
            "always",
            &["push", "ext::{S}", "HEAD:refs/heads/x"],
        ),
        Plant {
            plain: false,
            ..plant("remote.o.vcs", "evil", &["push", "o", "HEAD:refs/heads/x"])
        },
        Plant {
            plain: false,
            ..plant(
                "credential.helper",
                "{S}",
                &["push", "http://127.0.0.1:1/x", "HEAD:refs/heads/x"],
            )
        },
        Plant {
            plain: false,
            ..plant(
                "core.askPass",
                "{S}",
                &["push", "http://127.0.0.1:1/x", "HEAD:refs/heads/x"],
            )
        },
        Plant {
            plain: false,
            ..plant("trace2.normalTarget", "{M}", &["status", "--porcelain"])
        },
        Plant {
            plain: false,
            ..plant("core.pager", "{S}", &["log", "-1"])
        },
        Plant {
            plain: false,
            ..plant("pager.log", "{S}", &["log", "-1"])
        },
        plant("core.editor", "{S}", &["commit", "--allow-empty", "-q"]),
        plant("diff.x.command", "{S}", &["diff", "HEAD~1"]),
        plant("diff.x.textconv", "{S}", &["diff", "HEAD~1"]),
        plant("diff.external", "{S}", &["diff", "HEAD~1"]),
        plant("filter.x.clean", "{S}", &["add", "-A"]),
        plant(
            "filter.x.smudge",
            "{S}",
            &["checkout", "-q", "HEAD~1", "--", "a.txt"],
        ),
        plant("filter.x.process", "{S}", &["add", "-A"]),
        plant(
            "merge.x.driver",
            "{S}",
            &["merge-tree", "--write-tree", "HEAD", "side"],
        ),
        Plant {
            extra: SIGNED,
            ..plant(
                "gpg.program",
                "{S}",
                &["commit", "--allow-empty", "-qm", "x"],
            )
        },
        Plant {
            extra: SSH_SIGNED,
            ..plant(
                "gpg.ssh.defaultKeyCommand",
                "{S}",
                &["commit", "--allow-empty", "-qm", "x"],
            )
        },
        Plant {
            extra: &[
                ("commit.gpgSign", "true"),
                ("gpg.format", "ssh"),
                ("user.signingKey", "key::x"),
            ],
            ..plant(
                "gpg.ssh.program",
                "{S}",
                &["commit", "--allow-empty", "-qm", "x"],
            )
        },
        Plant {
            plain: false,
            extra: &[("gpg.program", "{S}")],
            ..plant("log.showSignature", "true", &["log", "-1"])
        },
        plant("core.fsmonitor", "{S}", &["status", "--porcelain"]),
        plant(
            "core.hooksPath",
            "hooks2",
            &["commit", "--allow-empty", "-qm", "x"],
        ),
    ];

    /// Each planted key, one repo each: the tool's git call runs nothing
    /// (whatever it says, even failing); plain git does run it.
    #[test]
    fn no_program_valued_key_in_the_repos_config_runs() {
        let tmp = std::env::temp_dir().join(format!("ai-sdlc-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        for (i, p) in PLANTS.iter().enumerate() {
            let marker = tmp.join(format!("{i}.ran"));
            let script = tmp.join(format!("{i}.sh"));
            std::fs::create_dir_all(&tmp).unwrap();
            std::fs::write(
                &script,
                format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
            )
            .unwrap();
            std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            let fill = |t: &str| {
                t.replace("{S}", &script.to_string_lossy())
                    .replace("{M}", &marker.to_string_lossy())
            };
            let git_plain = |repo: &Path, args: &[&str]| {
                let mut c = Command::new("git");
                c.arg("-C")
                    .arg(repo)
                    .args(args)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .env("GIT_TERMINAL_PROMPT", "0")
                    // A failed ssh signing leaves git's key file behind.
                    .env("TMPDIR", &tmp)
                    .env_remove("GIT_EDITOR")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                c
            };
            // A repo with the key planted, for the tool's call, and its twin
            // for plain git's.
            let make = |repo: &Path| {
                std::fs::create_dir_all(repo).unwrap();
                let setup = "git init -q && git config user.email t@e.invalid && git config user.name t \
                    && echo '* filter=x diff=x merge=x' > .gitattributes && echo a > a.txt \
                    && git add -A && git commit -qm one && git checkout -qb side && echo side > a.txt \
                    && git commit -qam side && git checkout -q - && echo main > a.txt && git commit -qam two \
                    && mkdir hooks2 && printf '#!/bin/sh\\ntouch %s\\n' \"$M\" > hooks2/pre-commit && chmod +x hooks2/pre-commit \
                    && echo changed >> a.txt && git remote add o /nonexistent";
                let st = Command::new("sh")
                    .args(["-c", setup])
                    .current_dir(repo)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .env("GIT_CONFIG_NOSYSTEM", "1")
                    .env("M", &marker)
                    .status()
                    .unwrap();
                assert!(st.success());
                for (k, v) in std::iter::once((p.key, p.value)).chain(p.extra.iter().copied()) {
                    let st = git_plain(repo, &["config", &fill(k), &fill(v)])
                        .status()
                        .unwrap();
                    assert!(st.success(), "{k}");
                }
            };
            let call: Vec<String> = p.call.iter().map(|a| fill(a)).collect();
            let call: Vec<&str> = call.iter().map(String::as_str).collect();
            let repo = tmp.join(format!("{i}-tool"));
            make(&repo);
            let _ = run(&repo, &call);
            assert!(
                !marker.exists(),
                "{}: the tool's `git {}` ran it",
                p.key,
                call.join(" ")
            );
            if p.plain {
                // The same call, plain: it does run (the row can fail).
                let twin = tmp.join(format!("{i}-plain"));
                make(&twin);
                if let Ok(mut c) = git_plain(&twin, &call).spawn()
                    && !matches!(c.wait_timeout(Duration::from_secs(10)), Ok(Some(_)))
                {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                assert!(
                    marker.exists(),
                    "{}: plain `git {}` did not run it either",
                    p.key,
                    call.join(" ")
                );
            }
        }
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
