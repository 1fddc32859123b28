//! The git boundary: what a repo or an agent plants in git never runs, and work is never committed elsewhere.

use crate::support::*;

#[test]
fn commits_made_on_a_detached_head_are_never_lost() {
    let detach = "git checkout -q --detach\necho work > detached.txt\ngit add detached.txt\ngit commit -qm 'work on a detached HEAD'\ngit rev-parse HEAD > \"$REC/$id.sha\"";
    // With the runner's commit: it refuses to commit off the story branch.
    let repo = TestRepo::new();
    repo.with_agent("d.sh", detach);
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 1);
    assert!(
        repo.blocked_reason("S-0001")
            .contains("left the worktree off"),
        "{}",
        stderr(&out)
    );
    let wt = repo.worktree("S-0001-s1");
    let sha = repo.rec_file("S-0001.sha").unwrap();
    assert_eq!(
        git(&wt, &["rev-parse", "HEAD"]),
        sha,
        "the detached commit is gone"
    );
    // Without it: the story is done, and the worktree kept because of its HEAD.
    let repo = TestRepo::new();
    let agent = repo.agent("d.sh", detach);
    repo.config(serde_json::json!({"agent": {"command": [agent]}, "worktree": {"commit": false}}));
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 0);
    assert_eq!(repo.status("S-0001"), "done");
    assert!(stderr(&out).contains("detached"), "{}", stderr(&out));
    let wt = repo.worktree("S-0001-s1");
    assert_eq!(
        git(&wt, &["rev-parse", "HEAD"]),
        repo.rec_file("S-0001.sha").unwrap()
    );
}

#[test]
fn a_git_filter_that_hangs_cannot_hang_the_run() {
    // The user's own (global) config is trusted: its filter runs, and here
    // it hangs in the runner's `git add`.
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "echo work > work.txt");
    repo.ready_stories(1);
    let global = repo.rec.join("gitconfig");
    std::fs::write(
        &global,
        format!(
            "[filter \"slow\"]\n\tclean = \"echo $$ > {}/hook.pid; exec sleep 300\"\n",
            repo.rec.display()
        ),
    )
    .unwrap();
    std::fs::write(repo.root.join(".gitattributes"), "work.txt filter=slow\n").unwrap();
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-qm", "attributes"]);
    let err_file = repo.rec.join("stderr");
    let runner = repo
        .cmd(&["run"])
        .env("GIT_CONFIG_GLOBAL", &global)
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    repo.wait_rec("hook.pid");
    // A first Ctrl-C lets the commit finish; a second one stops it.
    signal(runner.id(), libc::SIGINT);
    let said = || std::fs::read_to_string(&err_file).unwrap_or_default();
    assert!(
        wait_for(10, || said().contains("SIGINT: stopping")),
        "{}",
        said()
    );
    signal(runner.id(), libc::SIGINT);
    let (code, _, _) = finish(runner, 20);
    assert_eq!(code, 130, "{}", said());
    assert_dies(repo.pid("hook", "pid"), 5, "the filter");
    // The agent's work is still there, uncommitted.
    assert!(repo.worktree("S-0001-s1").join("work.txt").exists());
}

#[test]
fn an_fsmonitor_an_agent_plants_never_runs_in_the_runners_git_calls() {
    let repo = TestRepo::new();
    let marker = repo.rec.join("fsmonitor-ran");
    let hook = repo.agents.join("fsmonitor.sh");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // S-0001's agent sets core.fsmonitor in the shared config as its last act;
    // S-0002 then gets a worktree, a status check, a commit and a removal.
    repo.with_agent(
        "a.sh",
        &format!(
            "echo work > \"work-$id.txt\"\n[ \"$id\" = S-0001 ] && git config core.fsmonitor {}\nexit 0",
            hook.display()
        ),
    );
    repo.ready_stories(2);
    let out = repo.run(&["run", "--story", "S-0001", "--story", "S-0002"]);
    expect_code(&out, 1);
    assert!(!marker.exists(), "the runner ran the planted fsmonitor");
    assert_eq!(repo.status("S-0002"), "done");
    // The agent that planted it is blocked for it, and it is undone.
    assert!(repo.blocked_reason("S-0001").contains("set core.fsmonitor"));
    assert!(
        !std::fs::read_to_string(repo.root.join(".git/config"))
            .unwrap()
            .contains("fsmonitor")
    );
}

#[test]
fn a_worktree_an_agent_ties_to_another_repo_gets_no_git_call_and_keeps_its_work() {
    let repo = TestRepo::new();
    // The agent makes a repo of its own on the story's branch and points its
    // worktree's .git at it: the runner's commit would land there, and the
    // worktree (the work) would be removed as clean.
    repo.with_agent(
        "repoint.sh",
        r#"git init -q "$REC/fake" && git -C "$REC/fake" checkout -q -b "$AI_SDLC_BRANCH"
printf 'gitdir: %s\n' "$REC/fake/.git" > .git
echo work > work.txt"#,
    );
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked");
    let reason = repo.blocked_reason("S-0001");
    assert!(
        reason.contains(".git") && reason.contains("points at"),
        "{reason}"
    );
    // Nothing was committed into the agent's repo; the work is still there.
    let fake = repo.rec.join("fake");
    let log = git_cmd(&fake).args(["log", "--oneline"]).output().unwrap();
    assert!(
        !log.status.success(),
        "the runner committed into the agent's repo"
    );
    assert!(repo.worktree("S-0001-s1").join("work.txt").exists());
}
