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
    // The filesystem sandbox would refuse the agent's commit: off, to test
    // what stands behind it.
    repo.config(serde_json::json!({"agent": {"command": [agent], "sandbox": false}, "worktree": {"commit": false}}));
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

/// A script at `path` that records that it ran (touches `marker`) and
/// passes its input through, as a filter would.
fn marker_script(path: &std::path::Path, marker: &std::path::Path) {
    std::fs::write(
        path,
        format!("#!/bin/sh\ntouch '{}'\ncat\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A repo whose committed `.gitattributes` sends every file through the
/// filter driver `evil`, defined (after the commit) by `config_text` in
/// `.git/config`; `plant` names the files the config includes.
fn filtered_repo(config_text: &str, plant: &[(&str, &str)]) -> (TestRepo, std::path::PathBuf) {
    let repo = TestRepo::new();
    let marker = repo.rec.join("filter-ran");
    let script = repo.agents.join("evil.sh");
    marker_script(&script, &marker);
    std::fs::write(repo.root.join(".gitattributes"), "* filter=evil\n").unwrap();
    std::fs::write(repo.root.join("data.txt"), "data\n").unwrap();
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-qm", "attributes"]);
    let text = config_text.replace("SCRIPT", &script.to_string_lossy());
    let mut config = std::fs::OpenOptions::new()
        .append(true)
        .open(repo.root.join(".git/config"))
        .unwrap();
    std::io::Write::write_all(&mut config, text.as_bytes()).unwrap();
    for (name, body) in plant {
        std::fs::write(
            repo.rec.join(name),
            body.replace("SCRIPT", &script.to_string_lossy()),
        )
        .unwrap();
    }
    (repo, marker)
}

const EVIL_DRIVER: &str = "[filter \"evil\"]\n\tclean = SCRIPT\n\tsmudge = SCRIPT\n";

/// Run one story whose agent edits a file, so the runner makes a worktree,
/// looks at it, commits and removes it: every kind of git call it makes.
fn run_a_story(repo: &TestRepo) -> std::process::Output {
    repo.with_agent("a.sh", "echo more >> data.txt\necho new > new.txt");
    repo.ready_stories(1);
    repo.run(&["run"])
}

#[test]
fn a_filter_in_the_repos_own_config_runs_in_none_of_the_runners_git_calls() {
    let (repo, marker) = filtered_repo(EVIL_DRIVER, &[]);
    let out = run_a_story(&repo);
    expect_code(&out, 0);
    assert!(
        !marker.exists(),
        "a git call of the runner ran the repo's filter"
    );
    assert_eq!(repo.status("S-0001"), "done");
}

#[test]
fn a_filter_reached_through_an_include_runs_in_none_of_the_runners_git_calls() {
    for (how, config) in [
        ("include.path", "[include]\n\tpath = REC/evil.cfg\n"),
        (
            "includeIf onbranch",
            "[includeIf \"onbranch:ai-sdlc/**\"]\n\tpath = REC/evil.cfg\n",
        ),
        (
            "includeIf gitdir",
            "[includeIf \"gitdir:/\"]\n\tpath = REC/evil.cfg\n",
        ),
    ] {
        let (repo, marker) = filtered_repo("", &[("evil.cfg", EVIL_DRIVER)]);
        let text = config.replace("REC", &repo.rec.to_string_lossy());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(repo.root.join(".git/config"))
            .unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        let out = run_a_story(&repo);
        assert!(
            !marker.exists(),
            "{how}: a git call of the runner ran the included filter\n{}",
            stderr(&out)
        );
        expect_code(&out, 0);
    }
}

#[test]
fn a_signing_key_command_in_the_repos_config_never_runs_in_the_runners_commit() {
    let repo = TestRepo::new();
    let marker = repo.rec.join("key-command-ran");
    let script = repo.agents.join("key.sh");
    marker_script(&script, &marker);
    for (k, v) in [
        ("commit.gpgsign", "true"),
        ("gpg.format", "ssh"),
        ("gpg.ssh.defaultKeyCommand", &script.to_string_lossy()),
    ] {
        git(&repo.root, &["config", k, v]);
    }
    let out = run_a_story(&repo);
    assert!(
        !marker.exists(),
        "the runner's commit ran gpg.ssh.defaultKeyCommand"
    );
    // Signing cannot work without the key command: the story says so.
    if code(&out) != 0 {
        assert!(
            repo.blocked_reason("S-0001").contains("commit"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_worktree_whose_commondir_an_agent_re_points_is_never_done_nor_removed() {
    let repo = TestRepo::new();
    // The agent makes a repo of its own and re-points its worktree's shared
    // metadata at it: the runner's commit would land there.
    repo.with_agent(
        "commondir.sh",
        r#"git init -q "$REC/other"
gitdir=$(git rev-parse --git-dir)
printf '%s\n' "$REC/other/.git" > "$gitdir/commondir"
echo work > work.txt"#,
    );
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 1);
    assert_eq!(repo.status("S-0001"), "blocked", "{}", stderr(&out));
    assert!(
        repo.blocked_reason("S-0001").contains("commondir"),
        "{}",
        repo.blocked_reason("S-0001")
    );
    let other = repo.rec.join("other");
    let log = git_cmd(&other)
        .args(["log", "--oneline", "--all"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&log.stdout).trim().is_empty(),
        "the runner committed into the agent's repo"
    );
    assert!(repo.worktree("S-0001-s1").join("work.txt").exists());
}

#[test]
fn a_plant_of_one_phase_never_runs_in_the_next_trusted_phase() {
    let repo = TestRepo::new();
    let marker = repo.rec.join("fsmonitor-ran");
    let hook = repo.agents.join("fsmonitor.sh");
    std::fs::write(&hook, format!("#!/bin/sh\ntouch '{}'\n", marker.display())).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let agent = repo.agent(
        "plant.sh",
        &format!(
            "echo work > work.txt\ngit config core.fsmonitor '{}'",
            hook.display()
        ),
    );
    // The verify phase is the user's own command, and it runs git.
    repo.config(serde_json::json!({
        // The sandbox refuses the plant at the write; off, the guard is
        // what stands (isolation::every_escape_… tests the sandbox).
        "agent": {"command": [agent], "sandbox": false},
        "workflow": {"phases": [
            {"name": "implement"},
            {"name": "verify", "command": ["sh", "-c", "git status --porcelain >/dev/null"]}
        ]}
    }));
    repo.ready_stories(1);
    let out = repo.run(&["run"]);
    expect_code(&out, 1);
    assert!(
        !marker.exists(),
        "the next phase ran what the agent planted"
    );
    assert!(
        repo.blocked_reason("S-0001").contains("core.fsmonitor"),
        "{}",
        repo.blocked_reason("S-0001")
    );
}

#[test]
fn a_second_runner_never_restores_what_the_first_ones_agent_planted() {
    let repo = TestRepo::new();
    // S-0001 plants a key, then waits; S-0002 (in a second runner, started
    // after the plant) waits too. S-0001 ends first (its runner undoes the
    // plant), then S-0002: its runner must not put the plant back.
    repo.with_agent(
        "a.sh",
        r#"if [ "$id" = S-0001 ]; then
  git config core.pager 'touch planted-pager'
  touch "$REC/planted"
  while [ ! -e "$REC/go1" ]; do sleep 0.05; done
else
  touch "$REC/second"
  while [ ! -e "$REC/go2" ]; do sleep 0.05; done
fi
echo "$id" > "work-$id.txt""#,
    );
    repo.ready_stories(2);
    let first = repo.spawn(&["run", "--story", "S-0001"]);
    repo.wait_rec("planted");
    let second = repo.spawn(&["run", "--story", "S-0002"]);
    repo.wait_rec("second");
    std::fs::write(repo.rec.join("go1"), "").unwrap();
    let (code1, _, err1) = finish(first, 30);
    assert_eq!(code1, 1, "{err1}");
    std::fs::write(repo.rec.join("go2"), "").unwrap();
    let (code2, _, err2) = finish(second, 30);
    let config = std::fs::read_to_string(repo.root.join(".git/config")).unwrap();
    assert!(
        !config.contains("planted-pager"),
        "the second runner put the plant back ({code2}):\n{config}\n{err2}"
    );
}

#[test]
fn a_parked_worktree_whose_agent_ignored_a_folder_loses_nothing_when_reused() {
    let repo = TestRepo::new();
    // S-0001's agent ignores out/ on its branch and leaves a file there;
    // its clean worktree is parked. S-0002 takes it, on a branch where
    // out/ is not ignored.
    repo.with_agent(
        "a.sh",
        r#"if [ "$id" = S-0001 ]; then
  echo out/ >> .gitignore
  mkdir -p out && echo precious > out/data.bin
fi
echo "$id" > "work-$id.txt""#,
    );
    let agent = repo.agents.join("a.sh");
    repo.config(serde_json::json!({
        "agent": {"command": [agent]},
        "worktree": {"reuse": true}
    }));
    repo.ready_stories(2);
    let out = repo.run(&["run", "--story", "S-0001"]);
    expect_code(&out, 0);
    let out = repo.run(&["run", "--story", "S-0002"]);
    expect_code(&out, 0);
    let found = std::process::Command::new("find")
        .arg(repo.root.join(".ai-sdlc/worktrees"))
        .args(["-name", "data.bin"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&found.stdout).trim().is_empty(),
        "the file the agent left in its ignored folder was deleted:\n{}",
        stderr(&out)
    );
}

#[test]
fn every_file_git_follows_from_a_worktree_is_checked_before_the_runners_commit() {
    for (file, plant) in [
        ("gitdir", r#"echo "$REC/elsewhere/.git" > "$gitdir/gitdir""#),
        ("HEAD", r#"echo 'ref: ../../../outside' > "$gitdir/HEAD""#),
        (
            "config.worktree",
            r#"printf '[core]\n\tworktree = %s\n' "$REC" > "$gitdir/config.worktree""#,
        ),
    ] {
        let repo = TestRepo::new();
        repo.with_agent(
            "plant.sh",
            &format!("echo work > work.txt\ngitdir=$(git rev-parse --git-dir)\n{plant}"),
        );
        repo.ready_stories(1);
        let out = repo.run(&["run"]);
        expect_code(&out, 1);
        let reason = repo.blocked_reason("S-0001");
        assert!(reason.contains(file), "{file}: {reason}");
        assert!(
            repo.worktree("S-0001-s1").join("work.txt").exists(),
            "{file}: the work is gone"
        );
        let log = git(&repo.root, &["log", "--oneline", "ai-sdlc/S-0001-s1"]);
        assert_eq!(
            log.lines().count(),
            1,
            "{file}: something was committed:\n{log}"
        );
    }
}
