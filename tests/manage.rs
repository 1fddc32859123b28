//! `logs`, `worktrees` and `status` against real runs.

use crate::support::*;
use std::io::Read;

#[test]
fn logs_shows_runs_lines_and_k_th_latest() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "echo \"line one of $(cat \"$REC/n\" 2>/dev/null || echo 1)\"\necho line two\necho 2 > \"$REC/n\"\nexit 1");
    repo.story("S-0001", "Logged", 1, "ready", "");
    expect_code(&repo.run(&["run"]), 1);
    expect_code(&repo.run(&["run", "--story", "S-0001"]), 1);
    let out = repo.run(&["logs", "S-0001"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("[stdout] line one of 2"),
        "{}",
        stdout(&out)
    );
    let out = repo.run(&["logs", "S-0001", "--run", "2"]);
    assert!(
        stdout(&out).contains("[stdout] line one of 1"),
        "{}",
        stdout(&out)
    );
    let out = repo.run(&["logs", "S-0001", "--lines", "1"]);
    assert_eq!(stdout(&out).lines().count(), 1);
    assert!(stdout(&out).contains("outcome failed"), "{}", stdout(&out));
    let out = repo.run(&["logs", "S-0001", "--run", "3"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("has 2 run logs"), "{}", stderr(&out));
    let out = repo.run(&["logs", "S-0999"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("no story S-0999"));
    repo.story("S-0002", "Never ran", 2, "backlog", "");
    let out = repo.run(&["logs", "S-0002"]);
    expect_code(&out, 1);
    assert!(stderr(&out).contains("no run logs yet"), "{}", stderr(&out));
}

#[test]
fn logs_follow_prints_a_log_as_it_is_written_and_stops_with_the_run() {
    let repo = TestRepo::new();
    repo.with_agent(
        "slow.sh",
        "echo first-line\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done\necho second-line\nexit 0",
    );
    repo.story("S-0001", "Followed", 1, "ready", "");
    let run = repo.spawn(&["run", "--concurrent", "2"]);
    assert!(wait_for(20, || {
        let out = repo.run(&["logs", "S-0001"]);
        stdout(&out).contains("first-line")
    }));
    let mut follow = repo.spawn(&["logs", "S-0001", "--follow"]);
    let mut out = follow.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (c, _, e) = finish(run, 30);
    assert_eq!(c, 0, "{e}");
    assert!(
        wait_for(10, || follow.try_wait().unwrap().is_some()),
        "logs --follow did not stop after the run"
    );
    let text = reader.join().unwrap();
    assert!(
        text.contains("first-line") && text.contains("second-line"),
        "{text}"
    );
    assert!(text.contains("outcome succeeded"), "{text}");
}

#[test]
fn worktrees_list_remove_and_prune() {
    let repo = TestRepo::new();
    repo.with_agent(
        "w.sh",
        "case $AI_SDLC_STORY_ID in\n S-0001) echo draft > notes.txt ;;\n S-0002) exit 1 ;;\n *) echo x > f.txt; git add f.txt; git commit -qm x ;;\nesac",
    );
    repo.story("S-0001", "Dirty done", 1, "ready", "");
    repo.story("S-0002", "Failed", 2, "ready", "");
    repo.story("S-0003", "Clean done", 3, "ready", "");
    // The agents' work stays uncommitted, so S-0001's worktree is dirty.
    repo.edit_config(|cfg| {
        cfg["worktree"] = serde_json::json!({"commit": false});
    });
    let out = repo.run(&["run", "--concurrent", "3", "--keep-worktrees"]);
    expect_code(&out, 1);

    let out = repo.run(&["worktrees"]);
    expect_code(&out, 0);
    let list = stdout(&out);
    let line = |id: &str| {
        list.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not listed:\n{list}"))
            .to_string()
    };
    assert!(
        line("S-0001").contains("done") && line("S-0001").contains("dirty (1)"),
        "{list}"
    );
    assert!(
        line("S-0002").contains("blocked") && line("S-0002").contains("clean"),
        "{list}"
    );
    assert!(
        line("S-0003").contains("ai-sdlc/S-0003-clean-done"),
        "{list}"
    );

    // remove refuses a dirty worktree and says what is uncommitted.
    let wt1 = repo.worktree("S-0001-dirty-done");
    let out = repo.run(&["worktrees", "remove", "S-0001"]);
    expect_code(&out, 1);
    assert!(
        stderr(&out).contains("notes.txt") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert!(wt1.join("notes.txt").exists());

    // prune: removes the clean done one, keeps dirty and non-done ones.
    let out = repo.run(&["worktrees", "prune"]);
    expect_code(&out, 0);
    assert!(
        !repo.worktree("S-0003-clean-done").exists(),
        "{}",
        stdout(&out)
    );
    assert!(wt1.exists());
    assert!(repo.worktree("S-0002-failed").exists());

    let out = repo.run(&["worktrees", "remove", "S-0001", "--force"]);
    expect_code(&out, 0);
    assert!(!wt1.exists());
    // No branch is ever deleted.
    let branches = git(&repo.root, &["branch", "--list", "ai-sdlc/*"]);
    for b in [
        "ai-sdlc/S-0001-dirty-done",
        "ai-sdlc/S-0002-failed",
        "ai-sdlc/S-0003-clean-done",
    ] {
        assert!(branches.contains(b), "{b} gone:\n{branches}");
    }
}

#[test]
fn status_tells_running_from_stale() {
    let repo = TestRepo::new();
    repo.with_agent("hold.sh", "while [ ! -f \"$REC/go\" ]; do sleep 0.05; done");
    repo.story("S-0001", "Running", 1, "ready", "");
    let run = repo.spawn(&["run", "--story", "S-0001"]);
    assert!(wait_for(20, || repo.started("S-0001")));
    // Made after the run started, or the run would have recovered it.
    repo.story(
        "S-0002",
        "Stale",
        2,
        "in-progress",
        "last_run: {outcome: running}\n",
    );
    // In progress in the TS tool: a lasting stage, not a dead run.
    repo.story("S-0003", "By TS", 3, "in-progress", "");
    let out = repo.run(&["status"]);
    let text = stdout(&out);
    let line = |id: &str| text.lines().find(|l| l.contains(id)).unwrap().to_string();
    assert!(line("S-0001").contains("running"), "{text}");
    assert!(line("S-0002").contains("stale"), "{text}");
    assert!(line("S-0003").contains("TS ai-sdlc"), "{text}");
    let j: serde_json::Value =
        serde_json::from_slice(&repo.run(&["status", "--json"]).stdout).unwrap();
    let claimed: Vec<bool> = j["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["claimed"].as_bool().unwrap())
        .collect();
    assert_eq!(claimed, [true, false, false]);
    std::fs::write(repo.rec.join("go"), "").unwrap();
    assert_eq!(finish(run, 20).0, 0);
}

#[test]
fn a_broken_story_is_reported_and_the_board_still_works() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story("S-0001", "Fine", 1, "ready", "");
    let bad = repo.story_path("S-0002");
    std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
    let broken = "---\nid: S-0002\ntitle: [unclosed\nstatus: ready\n---\n";
    std::fs::write(&bad, broken).unwrap();
    let out = repo.run(&["status"]);
    expect_code(&out, 0);
    assert!(stdout(&out).contains("S-0001"));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(".ai-sdlc/stories/S-0002/story.md") && err.contains("invalid YAML"),
        "{err}"
    );
    let out = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&out, 0);
    assert_eq!(repo.status("S-0001"), "done");
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        broken,
        "a broken story is never rewritten"
    );
}

#[test]
fn init_add_status_as_a_new_user() {
    let tmp = TempDir::new("newuser");
    git(&tmp.0, &["init", "-q"]);
    let ai = |args: &[&str]| tmp.bin().current_dir(&tmp.0).args(args).output().unwrap();
    assert_eq!(code(&ai(&["init"])), 0);
    let add = ai(&["add", "Fix login", "--ready", "--priority", "2"]);
    assert_eq!(stdout(&add).trim(), "S-0001");
    let add = ai(&[
        "add",
        "Second: with 'quotes'",
        "--label",
        "epic-auth",
        "--depends",
        "S-0001",
    ]);
    assert_eq!(stdout(&add).trim(), "S-0002");
    let story = std::fs::read_to_string(tmp.0.join(".ai-sdlc/stories/S-0002/story.md")).unwrap();
    for field in [
        "id: S-0002",
        "title: 'Second: with ''quotes'''",
        "slug: second-with-quotes",
        "priority: 12",
        "status: backlog",
        "type: feature",
        "created: '",
        "labels: [epic-auth]",
        "dependencies: [S-0001]",
        "research_complete: false",
        "plan_complete: false",
        "implementation_complete: false",
        "reviews_complete: false",
    ] {
        assert!(story.contains(field), "{field} missing:\n{story}");
    }
    let out = ai(&["status"]);
    assert!(
        stdout(&out).contains("READY (1)") && stdout(&out).contains("Fix login"),
        "{}",
        stdout(&out)
    );
    let gi = std::fs::read_to_string(tmp.0.join(".gitignore")).unwrap();
    assert!(gi.contains(".ai-sdlc/worktrees/"));
    // -C on a missing dir, and a wrongly typed config key.
    let out = ai(&["-C", "/nonexistent/x", "status"]);
    expect_code(&out, 2);
    assert!(stderr(&out).contains("/nonexistent/x"));
    std::fs::write(
        tmp.0.join(".ai-sdlc.json"),
        r#"{"orchestrator": {"concurrency": "lots"}}"#,
    )
    .unwrap();
    let out = ai(&["status"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("orchestrator.concurrency"),
        "{}",
        stderr(&out)
    );
}
