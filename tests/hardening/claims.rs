//! Claims: two runners on one repo, stale stories, a worktree still in use.

use crate::support::*;

#[test]
fn git_clean_under_a_running_story_does_not_let_a_second_runner_take_it() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "echo run >> \"$REC/$id.runs\"\ntouch \"$REC/$id.ready\"\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done",
    );
    repo.ready_stories(1);
    let first = repo.spawn(&["run"]);
    repo.wait_rec("S-0001.ready");
    git(&repo.root, &["clean", "-fdX", "-q"]);
    let status = repo.run(&["status"]);
    assert!(stdout(&status).contains("running"), "{}", stdout(&status));
    let second = repo.run(&["run", "--story", "S-0001"]);
    expect_code(&second, 0);
    assert!(
        stderr(&second).contains("another runner"),
        "{}",
        stderr(&second)
    );
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (code, _, err) = finish(first, 30);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        repo.rec_file("S-0001.runs").unwrap(),
        "run\n",
        "the story ran twice"
    );
}

#[test]
fn stories_whose_worktree_names_collide_are_both_skipped() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story("S-1", "One", 1, "ready", "slug: 2-fix\n");
    repo.story("S-1-2", "Two", 2, "ready", "slug: fix\n");
    let out = repo.run(&["run", "--concurrent", "2"]);
    let err = stderr(&out);
    expect_code(&out, 1);
    assert!(
        err.contains("also that of S-1-2") && err.contains("also that of S-1"),
        "{err}"
    );
    assert!(!repo.started("S-1") && !repo.started("S-1-2"));
    assert!(!repo.worktree("S-1-2-fix").exists());
}

#[test]
fn a_story_whose_worktree_still_has_a_live_process_is_not_stale() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "echo run >> \"$REC/$id.runs\"\n[ -f \"$REC/$id.ready\" ] && exit 0\ntouch \"$REC/$id.ready\"\nsleep 300",
    );
    repo.ready_stories(1);
    let runner = repo.spawn(&["run"]);
    repo.wait_rec("S-0001.ready");
    // The runner and its executor die at once; a process in the worktree lives on.
    let wt = repo.worktree("S-0001-s1");
    let mut survivor = std::process::Command::new("sleep")
        .arg("300")
        .current_dir(&wt)
        .spawn()
        .unwrap();
    signal(runner.id(), libc::SIGKILL);
    signal((-repo.pid("S-0001", "ppid")) as u32, libc::SIGKILL);
    let _ = finish(runner, 10);
    assert_dies(repo.pid("S-0001", "pid"), 10, "the agent");
    let status = stdout(&repo.run(&["status"]));
    assert!(
        status.contains(&format!("process {}", survivor.id())),
        "{status}"
    );
    let out = repo.run(&["run"]);
    assert!(
        stderr(&out).contains("leaving it alone"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.status("S-0001"), "in-progress");
    assert_eq!(repo.rec_file("S-0001.runs").unwrap(), "run\n");
    survivor.kill().unwrap();
    survivor.wait().unwrap();
    let out = repo.run(&["run"]);
    assert!(
        stderr(&out).contains("returned it to ready"),
        "{}",
        stderr(&out)
    );
    assert_eq!(repo.status("S-0001"), "done", "{}", stderr(&out));
    assert_eq!(repo.rec_file("S-0001.runs").unwrap(), "run\nrun\n");
}

#[test]
fn a_dependency_running_in_another_runner_is_left_to_it() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "touch \"$REC/$id.ready\"\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done",
    );
    repo.story("S-0001", "First", 1, "ready", "");
    repo.story("S-0002", "Second", 2, "ready", "dependencies: [S-0001]\n");
    let a = repo.spawn(&["run", "--concurrent", "2"]);
    repo.wait_rec("S-0001.ready");
    let b = repo.run(&["run", "--concurrent", "2"]);
    expect_code(&b, 0);
    assert!(
        stderr(&b).contains("left to another runner")
            || stderr(&b).contains("running in another runner"),
        "{}",
        stderr(&b)
    );
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (code, _, err) = finish(a, 30);
    assert_eq!(code, 0, "{err}");
    assert_eq!(repo.status("S-0002"), "done");
}

#[test]
fn inside_a_story_worktree_the_main_board_is_used() {
    let repo = TestRepo::new();
    repo.with_agent(
        "a.sh",
        "touch \"$REC/$id.ready\"\nwhile [ ! -f \"$REC/go\" ]; do sleep 0.05; done",
    );
    repo.ready_stories(1);
    // The board is committed, so the worktree has a stale copy of it.
    git(&repo.root, &["add", "-A"]);
    git(&repo.root, &["commit", "-qm", "board"]);
    let runner = repo.spawn(&["run"]);
    repo.wait_rec("S-0001.ready");
    let wt = repo.worktree("S-0001-s1");
    let out = repo.bin().arg("status").current_dir(&wt).output().unwrap();
    let board = stdout(&out);
    assert!(
        board.contains(&format!("Board {}", repo.root.display())),
        "{board}"
    );
    assert!(
        board.contains("IN-PROGRESS") && board.contains("running"),
        "{board}"
    );
    std::fs::write(repo.rec.join("go"), "").unwrap();
    let (code, _, err) = finish(runner, 30);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_story_cannot_claim_every_process_as_its_agent() {
    let repo = TestRepo::new();
    repo.with_agent("a.sh", "exit 0");
    repo.story(
        "S-0001",
        "Stale",
        1,
        "in-progress",
        "worktree_path: /\nlast_run: {outcome: running}\n",
    );
    let out = repo.run(&["run"]);
    assert!(
        stderr(&out).contains("returned it to ready"),
        "{}",
        stderr(&out)
    );
    // Recovered, but never run in `/`: its worktree_path is refused.
    expect_code(&out, 1);
    assert!(stderr(&out).contains("worktree_path"), "{}", stderr(&out));
    assert_eq!(repo.status("S-0001"), "ready");
    assert!(repo.rec_file("S-0001.cwd").is_none());
}
