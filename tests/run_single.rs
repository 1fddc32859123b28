//! `ai-sdlc run` in single-story mode, against a real git repo and scripted agents.

use crate::support::*;

const COMMIT: &str = "echo \"work of $AI_SDLC_STORY_ID\" > \"work-$AI_SDLC_STORY_ID.txt\"\ngit add -A && git commit -q -m \"agent did $AI_SDLC_STORY_ID\"\necho done-output";

#[test]
fn top_ready_story_runs_in_its_worktree_and_is_done() {
    let repo = TestRepo::new();
    repo.with_agent("commit.sh", COMMIT);
    repo.story("S-0001", "Second priority", 5, "ready", "");
    repo.story("S-0002", "First priority", 1, "ready", "labels: [a, b]\n");
    let before = repo.read_story("S-0002");

    let out = repo.run(&["run"]);
    expect_code(&out, 0);

    assert_eq!(repo.status("S-0002"), "done");
    assert_eq!(repo.status("S-0001"), "ready", "only the top story runs");
    // The agent ran in the story's own worktree, on its branch, and committed there.
    let wt = repo.worktree("S-0002-first-priority");
    assert_eq!(
        repo.rec_file("S-0002.cwd").unwrap().trim(),
        wt.to_str().unwrap()
    );
    let log = git(
        &repo.root,
        &["log", "--format=%s", "ai-sdlc/S-0002-first-priority"],
    );
    assert!(log.contains("agent did S-0002"), "{log}");
    assert!(!git(&repo.root, &["log", "--format=%s", "main"]).contains("agent did"));
    assert!(!wt.exists(), "a clean worktree of a done story is removed");
    // The prompt came on stdin; every AI_SDLC_* variable was set.
    assert!(
        repo.rec_file("S-0002.stdin")
            .unwrap()
            .contains("Body of S-0002.")
    );
    let env = repo.rec_file("S-0002.env").unwrap();
    for (k, v) in [
        ("AI_SDLC_STORY_ID", "S-0002".to_string()),
        ("AI_SDLC_STORY_TITLE", "First priority".into()),
        (
            "AI_SDLC_STORY_FILE",
            repo.story_path("S-0002").display().to_string(),
        ),
        ("AI_SDLC_PHASE", "implement".into()),
        ("AI_SDLC_WORKTREE", wt.display().to_string()),
        ("AI_SDLC_BRANCH", "ai-sdlc/S-0002-first-priority".into()),
        ("AI_SDLC_REPO", repo.root.display().to_string()),
    ] {
        assert!(
            env.lines().any(|l| l == format!("{k}={v}")),
            "{k}={v} missing in\n{env}"
        );
    }
    assert!(!env.contains("AI_SDLC_ROOT="), "{env}");
    // Every line of story.md the runner did not own is unchanged, in order.
    let after = repo.read_story("S-0002");
    let owned = [
        "status:",
        "started_at:",
        "updated:",
        "branch:",
        "worktree_path:",
        "finished_at:",
        "last_run:",
        "implementation_complete:",
        "base_ref:",
    ];
    let kept: Vec<&str> = after
        .lines()
        .filter(|l| !owned.iter().any(|o| l.starts_with(o)))
        .collect();
    let orig: Vec<&str> = before
        .lines()
        .filter(|l| !l.starts_with("status:"))
        .collect();
    assert_eq!(kept, orig);
    assert!(repo.field("S-0002", "finished_at").is_some());
    // The default workflow's one phase is `implement`; the worktree is gone
    // and so is the pointer to it.
    assert_eq!(
        repo.field("S-0002", "implementation_complete").as_deref(),
        Some("true")
    );
    assert_eq!(repo.field("S-0002", "worktree_path"), None);
    assert_eq!(
        repo.field("S-0002", "branch").as_deref(),
        Some("ai-sdlc/S-0002-first-priority")
    );
    assert!(
        repo.field("S-0002", "last_run")
            .unwrap()
            .contains("outcome: succeeded")
    );
    // Output streamed to the terminal and into the log.
    assert!(stderr(&out).contains("done-output"), "{}", stderr(&out));
    let logs = repo.logs("S-0002");
    assert_eq!(logs.len(), 1);
    assert!(logs[0].contains("[stdout] done-output"), "{}", logs[0]);
}

#[test]
fn a_failing_agent_blocks_the_story_with_its_reason() {
    let repo = TestRepo::new();
    repo.with_agent(
        "fail.sh",
        "echo 'progress line'\necho 'fatal: tests are red' >&2\nexit 3",
    );
    repo.story("S-0001", "Doomed", 1, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    let reason = repo.blocked_reason("S-0001");
    assert!(
        reason.contains("exited with code 3") && reason.contains("fatal: tests are red"),
        "{reason}"
    );
    assert!(repo.field("S-0001", "blocked_at").is_some());
    assert!(
        repo.worktree("S-0001-doomed").exists(),
        "a failed story's worktree is kept"
    );
}

#[test]
fn a_timed_out_agent_is_killed_and_blocked() {
    let repo = TestRepo::new();
    repo.with_agent("slow.sh", "sleep 30");
    repo.story("S-0001", "Slow", 1, "ready", "");
    let out = repo.run(&["run", "--timeout", "1", "--shutdown-timeout", "1"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    assert!(repo.blocked_reason("S-0001").contains("timed out"));
    assert_dies(
        repo.pid("S-0001", "pid"),
        2,
        "the agent past its time limit",
    );
}

#[test]
fn uncommitted_work_keeps_the_worktree_when_commits_are_off() {
    let repo = TestRepo::new();
    let agent = repo.agent("dirty.sh", "echo draft > notes.txt");
    repo.config(serde_json::json!({
        "agent": {"command": [agent]},
        "worktree": {"commit": false}
    }));
    repo.story("S-0001", "Dirty", 1, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert_eq!(repo.status("S-0001"), "done");
    let kept = repo.worktree("S-0001-dirty").join("notes.txt");
    assert_eq!(std::fs::read_to_string(kept).unwrap(), "draft\n");
    assert!(stderr(&out).contains("uncommitted"), "{}", stderr(&out));
}

#[test]
fn ctrl_c_returns_the_story_to_ready_and_leaves_no_agent() {
    let repo = TestRepo::new();
    repo.with_agent("hang.sh", "sleep 300 &\nrec bg $!\nsleep 300");
    repo.story("S-0001", "Hang", 1, "ready", "");
    repo.story("S-0002", "Next", 2, "ready", "");
    let child = repo.spawn(&["run"]);
    let pid = child.id();
    repo.wait_rec("S-0001.bg");
    assert_eq!(repo.status("S-0001"), "in-progress");
    signal(pid, libc::SIGINT);
    let (code, _, err) = finish(child, 20);
    assert_eq!(code, 130, "{err}");
    assert_eq!(repo.status("S-0001"), "ready");
    // The one story of this run is reported; the next one was never its.
    assert!(!err.contains("S-0002"), "{err}");
    for which in ["pid", "bg"] {
        let p = repo.pid("S-0001", which);
        assert_dies(p, 5, &format!("agent process {which}"));
    }
}

#[test]
fn no_agent_configured_says_how_to_set_one() {
    let repo = TestRepo::new();
    repo.config(serde_json::json!({"logs": {"keep": 3}}));
    repo.story("S-0001", "Anything", 1, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("\"preset\": \"claude\"") && err.contains("\"command\""),
        "{err}"
    );
    assert_eq!(repo.status("S-0001"), "ready");
}

#[test]
fn a_missing_agent_binary_is_one_clear_line_and_nothing_changes() {
    let repo = TestRepo::new();
    repo.config(serde_json::json!({"agent": {"command": ["no-such-agent-xyz", "-p"]}}));
    repo.story("S-0001", "Anything", 1, "ready", "");
    let before = repo.read_story("S-0001");
    let out = repo.run(&["run"]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("no-such-agent-xyz") && err.contains("agent.command"),
        "{err}"
    );
    assert_eq!(repo.read_story("S-0001"), before);
}

#[test]
fn not_a_git_repo_is_a_clear_error_and_no_worktree_works_there() {
    let tmp = TempDir::new("nogit");
    let root = &tmp.0;
    let out = tmp.bin().arg("-C").arg(root).arg("init").output().unwrap();
    expect_code(&out, 0);
    let rec = root.join("ran");
    std::fs::write(
        root.join(".ai-sdlc.json"),
        serde_json::json!({"agent": {"command": ["sh", "-c", format!("pwd > {}", rec.display())]}})
            .to_string(),
    )
    .unwrap();
    // As its author: trust the command this config names.
    let trusted = tmp.bin().arg("-C").arg(root).arg("trust").output().unwrap();
    expect_code(&trusted, 0);
    let add = tmp
        .bin()
        .arg("-C")
        .arg(root)
        .args(["add", "X", "--ready"])
        .output()
        .unwrap();
    assert_eq!(stdout(&add).trim(), "S-0001");
    let out = tmp.bin().arg("-C").arg(root).arg("run").output().unwrap();
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("not a git repository") && stderr(&out).contains("--no-worktree"),
        "{}",
        stderr(&out)
    );
    let out = tmp
        .bin()
        .arg("-C")
        .arg(root)
        .args(["run", "--no-worktree"])
        .output()
        .unwrap();
    expect_code(&out, 0);
    assert_eq!(
        std::fs::read_to_string(&rec).unwrap().trim(),
        root.to_str().unwrap()
    );
}

#[test]
fn a_failing_phase_stops_the_later_ones() {
    let repo = TestRepo::new();
    let agent = repo.agent(
        "phase.sh",
        "[ \"$AI_SDLC_PHASE\" = verify ] && exit 4\nexit 0",
    );
    repo.config(serde_json::json!({
        "agent": {"command": [agent.to_string_lossy()]},
        "workflow": {"phases": [{"name": "implement"}, {"name": "verify"}, {"name": "review"}]}
    }));
    repo.story("S-0001", "Phased", 1, "ready", "");
    let out = repo.run(&["run"]);
    expect_code(&out, 1);
    assert_eq!(
        repo.rec_file("S-0001.phases").unwrap(),
        "implement\nverify\n"
    );
    assert!(
        repo.blocked_reason("S-0001")
            .contains("phase verify exited with code 4")
    );
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story("S-0001", "Planned", 1, "ready", "");
    // A stale story (in-progress, nobody holds it) stays as it is too.
    repo.story("S-0002", "Stale", 2, "in-progress", "");
    let before = repo.read_story("S-0001");
    let stale = repo.read_story("S-0002");
    let out = repo.run(&["run", "--dry-run", "--concurrent", "2"]);
    expect_code(&out, 0);
    let plan = stdout(&out);
    assert!(
        plan.contains("S-0001") && plan.contains("ai-sdlc/S-0001-planned") && plan.contains("a.sh"),
        "{plan}"
    );
    assert_eq!(repo.read_story("S-0001"), before);
    assert_eq!(repo.read_story("S-0002"), stale);
    assert!(!repo.started("S-0001"));
    assert!(!repo.root.join(".ai-sdlc/stories/S-0001/logs").exists());
}

#[test]
fn nothing_ready_is_not_an_error() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story("S-0001", "Later", 1, "backlog", "");
    let out = repo.run(&["run", "--json"]);
    expect_code(&out, 0);
    assert!(stderr(&out).contains("no ready stories"));
    assert_eq!(json(&out)["succeeded"], 0);
}

/// The binary replaced on disk during a run (an upgrade) does not stop the
/// next story: the runner starts its executors from its own image.
#[test]
fn a_binary_replaced_mid_run_still_starts_the_next_story() {
    let repo = TestRepo::new();
    let copy = repo.rec.join("ai-sdlc-copy");
    std::fs::copy(BIN, &copy).unwrap();
    let agent = repo.agent(
        "waits",
        r#"if [ "$id" = S-0001 ]; then n=0; while [ ! -e "$REC/go" ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done; fi
echo w > "w-$id.txt""#,
    );
    repo.use_agent(&agent);
    repo.ready_stories(2);
    let mut cmd = std::process::Command::new(&copy);
    hermetic(&mut cmd, &repo.home(), &repo.xdg());
    let child = cmd
        .arg("-C")
        .arg(&repo.root)
        .args(["run", "--max", "2"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(20, || repo.started("S-0001")),
        "S-0001 never started"
    );
    // The upgrade: a new file at the binary's path.
    std::fs::remove_file(&copy).unwrap();
    std::fs::write(&copy, "#!/bin/sh\nexit 99\n").unwrap();
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (code, _, err) = finish(child, 60);
    assert_eq!(code, 0, "{err}");
    assert_eq!(repo.status("S-0001"), "done");
    assert_eq!(repo.status("S-0002"), "done", "{err}");
}
