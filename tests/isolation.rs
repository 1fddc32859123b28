//! Agents that hold no keys (SPEC §16): an agent's environment is built
//! from an allowlist, and each running story has ports of its own.

use crate::support::*;

#[test]
fn an_agent_gets_the_basics_and_what_the_config_passes_never_the_users_keys() {
    let repo = TestRepo::new();
    let agent = repo.agent(
        "names",
        "env | cut -d= -f1 | sort > \"$REC/$id.names\"; echo \"$AI_SDLC_PORT $PORT\" > \"$REC/$id.port\"; sleep 1",
    );
    repo.config(serde_json::json!({
        "agent": {
            "command": [agent.to_string_lossy()],
            "env": {"pass": ["MY_TOOL_*"], "set": {"FROM_CONFIG": "1"}}
        }
    }));
    repo.ready_stories(2);
    let secrets = [
        ("GH_TOKEN", "ghp_secret"),
        ("GITHUB_TOKEN", "secret"),
        ("SSH_AUTH_SOCK", "/tmp/agent.sock"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("NPM_TOKEN", "secret"),
        ("ANTHROPIC_API_KEY", "sk-ant"),
        ("MY_TOOL_HOME", "/opt/tool"),
    ];
    let out = repo.run_env(&["run", "--concurrent", "2"], &secrets);
    expect_code(&out, 0);
    for id in ["S-0001", "S-0002"] {
        let names = repo.rec_file(&format!("{id}.names")).unwrap();
        let has = |n: &str| names.lines().any(|l| l == n);
        for (k, _) in &secrets[..6] {
            assert!(!has(k), "{id} got {k}:\n{names}");
        }
        for k in [
            "PATH",
            "HOME",
            "AI_SDLC_STORY_ID",
            "AI_SDLC_PORT",
            "PORT",
            "MY_TOOL_HOME",
            "FROM_CONFIG",
        ] {
            assert!(has(k), "{id} lacks {k}:\n{names}");
        }
    }
    // Two stories running at once have distinct blocks of ports.
    let port = |id: &str| -> u16 {
        let t = repo.rec_file(&format!("{id}.port")).unwrap();
        let mut w = t.split_whitespace();
        let (a, p) = (w.next().unwrap(), w.next().unwrap());
        assert_eq!(a, p, "PORT is AI_SDLC_PORT");
        a.parse().unwrap()
    };
    let (a, b) = (port("S-0001"), port("S-0002"));
    assert!(a.abs_diff(b) >= 10, "{a} and {b} overlap");
    // doctor names what an agent gets and what it does not, never values.
    let doc = stdout(&repo.run_env(&["doctor"], &secrets));
    assert!(
        doc.contains("agent environment: gets") && doc.contains("GH_TOKEN"),
        "{doc}"
    );
    assert!(!doc.contains("ghp_secret"), "{doc}");
    // The config's env settings are trusted like its commands.
    let shown = stdout(&repo.run(&["trust", "--show"]));
    assert!(
        shown.contains("agent.env") && shown.contains("MY_TOOL_*"),
        "{shown}"
    );
}

/// Under the filesystem sandbox (Landlock), an agent that tries every
/// escape gets none: it writes its worktree (and its TMPDIR), nothing else,
/// and reads no secret under `$HOME`; the runner commits its work.
#[test]
fn an_agent_writes_only_its_own_worktree_and_reads_no_secret() {
    let repo = TestRepo::new();
    let home = repo.home();
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY\n").unwrap();
    std::os::unix::fs::symlink(".ssh", home.join("keys")).unwrap();
    let agent = repo.agent(
        "escape",
        r#"
try() { if sh -c "$2" 2>>"$REC/$id.errors"; then echo "$1" >> "$REC/$id.escaped"; else echo "$1" >> "$REC/$id.refused"; fi; }
# Both stories' worktrees exist before either tries the other's.
n=0; while [ "$(ls "$(dirname "$PWD")" | wc -l)" -lt 2 ] && [ $n -lt 300 ]; do sleep 0.05; n=$((n+1)); done
for other in "$(dirname "$PWD")"/*; do
  [ "$other" = "$PWD" ] || try other-worktree ": > '$other/from-$id'"
done
try main-checkout ": > '$AI_SDLC_REPO/from-$id'"
try home ": > '$HOME/x-$id'"
try git-config ": >> '$AI_SDLC_REPO/.git/config'"
try git-hook ": > '$AI_SDLC_REPO/.git/hooks/x-$id'"
gitdir=$(sed 's/^gitdir: //' .git)
try commondir ": >> '$gitdir/commondir'"
try ssh-key "cat '$HOME/.ssh/id_ed25519' > '$PWD/key-$id.txt'"
try ssh-key-by-link "cat '$HOME/keys/id_ed25519' > '$PWD/key-link-$id.txt'"
try tmpdir ": > '$TMPDIR/scratch'"
echo "work of $id" > own.txt
# git add works (on the agent's own index); a commit cannot move a ref.
try git-add "git add own.txt"
try git-commit "git -c user.name=a -c user.email=a@b.c commit -qm mine"
# Both have tried before either ends: its worktree stays for the other's try.
: > "$REC/$id.tried"
n=0; while [ "$(ls "$REC"/*.tried | wc -l)" -lt 2 ] && [ $n -lt 300 ]; do sleep 0.05; n=$((n+1)); done
"#,
    );
    repo.use_agent(&agent);
    repo.ready_stories(2);
    let config_before = std::fs::read(repo.root.join(".git/config")).unwrap();
    let out = repo.run(&["run", "--concurrent", "2"]);
    if !landlock_here() {
        // Never silently: the run says it once.
        assert!(
            stderr(&out).contains("without a filesystem sandbox"),
            "{}",
            stderr(&out)
        );
        eprintln!("no Landlock on this kernel: the sandbox's escapes are not tried");
        return;
    }
    expect_code(&out, 0);
    for (id, slug) in [("S-0001", "s1"), ("S-0002", "s2")] {
        let escaped = repo.rec_file(&format!("{id}.escaped")).unwrap_or_default();
        assert_eq!(escaped, "tmpdir\ngit-add\n", "{id} escaped: {escaped}");
        let refused = repo.rec_file(&format!("{id}.refused")).unwrap_or_default();
        for what in [
            "other-worktree",
            "main-checkout",
            "home",
            "git-config",
            "git-hook",
            "commondir",
            "ssh-key",
            "ssh-key-by-link",
            "git-commit",
        ] {
            assert!(
                refused.lines().any(|l| l == what),
                "{id}: {what} was not tried:\n{refused}"
            );
        }
        // The refusals are the kernel's, in the agent's words.
        let errors = repo.rec_file(&format!("{id}.errors")).unwrap_or_default();
        assert!(errors.contains("Permission denied"), "{errors}");
        assert_eq!(repo.status(id), "done");
        let branch = format!("ai-sdlc/{id}-{slug}");
        assert_eq!(
            git(&repo.root, &["show", &format!("{branch}:own.txt")]),
            format!("work of {id}\n")
        );
        // What the runner committed holds no secret.
        let files = git(&repo.root, &["ls-tree", "-r", "--name-only", &branch]);
        for f in files.lines().filter(|f| f.starts_with("key-")) {
            let text = git(&repo.root, &["show", &format!("{branch}:{f}")]);
            assert!(!text.contains("PRIVATE KEY"), "{f}: {text}");
        }
        assert!(!files.lines().any(|f| f.starts_with("from-")), "{files}");
    }
    // Nothing outside the worktrees changed.
    let main = std::fs::read_dir(&repo.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("from-"))
        .collect::<Vec<_>>();
    assert!(main.is_empty(), "{main:?}");
    assert!(!home.join("x-S-0001").exists() && !home.join("x-S-0002").exists());
    let hooks = std::fs::read_dir(repo.root.join(".git/hooks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("x-"))
        .count();
    assert_eq!(hooks, 0);
    assert_eq!(
        std::fs::read(repo.root.join(".git/config")).unwrap(),
        config_before
    );
    // doctor names the protection.
    let doc = stdout(&repo.run(&["doctor"]));
    assert!(doc.contains("filesystem sandbox: Landlock"), "{doc}");
}

/// A story's private TMPDIR goes with it; when its executor was killed
/// outright and could not remove it, the next story on the host does.
#[test]
fn a_private_tmpdir_never_outlives_its_story() {
    if !landlock_here() {
        eprintln!("no Landlock on this kernel: agents get no private TMPDIR");
        return;
    }
    let repo = TestRepo::new();
    let agent = repo.agent(
        "tmp",
        r#"echo "$TMPDIR" > "$REC/$id.tmp"; echo x > "$TMPDIR/scratch"
case $id in
  S-0001) kill -9 "$PPID"; sleep 2 ;;
  S-0002) if [ -e "$(cat "$REC/S-0001.tmp")" ]; then echo kept; else echo gone; fi > "$REC/S-0002.seen" ;;
esac"#,
    );
    repo.use_agent(&agent);
    repo.ready_stories(2);
    let out = repo.run(&["run", "--max", "2"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked", "{}", stderr(&out));
    assert_eq!(repo.status("S-0002"), "done", "{}", stderr(&out));
    let first = repo.rec_file("S-0001.tmp").unwrap();
    let second = repo.rec_file("S-0002.tmp").unwrap();
    assert_ne!(first, second);
    assert_eq!(repo.rec_file("S-0002.seen").unwrap(), "gone\n");
    assert!(!std::path::Path::new(second.trim()).exists(), "{second}");
}

/// A sandbox that cannot be set up fails the story before its agent
/// starts: never an agent let loose because a folder could not be made.
#[test]
fn a_sandbox_that_cannot_be_made_fails_the_story_and_runs_no_agent() {
    if !landlock_here() {
        eprintln!("no Landlock on this kernel: nothing to set up");
        return;
    }
    let repo = TestRepo::new();
    let agent = repo.agent("ok", "echo w > w.txt");
    repo.use_agent(&agent);
    repo.ready_stories(1);
    // TMPDIR names a file: no private TMPDIR can be made under it.
    let not_a_dir = repo.rec.join("tmp-is-a-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let out = repo.run_env(&["run"], &[("TMPDIR", not_a_dir.to_str().unwrap())]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    let why = repo.blocked_reason("S-0001");
    assert!(
        why.contains("cannot set up the filesystem sandbox") && why.contains("\"sandbox\": false"),
        "{why}"
    );
    assert!(!repo.started("S-0001"), "the agent ran");
}

/// Under the sandbox an agent's git index is its own for the whole story,
/// as the worktree's is for an agent without one: what it staged in one
/// phase is staged in the next (the runner commits when the story ends).
#[test]
fn what_an_agent_stages_in_one_phase_is_staged_in_the_next() {
    if !landlock_here() {
        eprintln!("no Landlock on this kernel: agents use the worktree's own index");
        return;
    }
    let repo = TestRepo::new();
    let agent = repo.agent(
        "phases",
        r#"case "$AI_SDLC_PHASE" in
  implement) echo w > w.txt; git add w.txt ;;
  *) git status --porcelain > "$REC/$id.status"; echo more >> w.txt ;;
esac"#,
    );
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "workflow": {"phases": [{"name": "implement"}, {"name": "document"}]}
    }));
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert_eq!(
        repo.rec_file("S-0001.status").as_deref(),
        Some("A  w.txt\n"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        git(&repo.root, &["show", "ai-sdlc/S-0001-s1:w.txt"]),
        "w\nmore\n"
    );
}
